package admin_test

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/admin"
)

var (
	// pageRefs are the URLs the page loads: src and href attributes.
	pageRefs = regexp.MustCompile(`(?:src|href)="([^"]*)"`)
	// scriptFetches are the tree paths the script polls.
	scriptFetches = regexp.MustCompile(`getJSON\("([^"]+)"\)`)
	// scriptCheck is the path the script asks whether actions may run.
	scriptCheck = regexp.MustCompile(`CHECK_PATH = "([^"]+)"`)
)

// TestDashboardBehindPrefix loads the page as a browser would behind
// nginx's "/admin/": every URL in the page and every path its script
// fetches resolves against the page's own URL and answers 200 with the
// right Content-Type.
func TestDashboardBehindPrefix(t *testing.T) {
	for _, prefix := range []string{"", "/admin"} {
		_, h := newAdmin(t, &admin.Options{PathPrefix: prefix})
		page := prefix + "/"
		code, body, hdr := do(t, h, "GET", page)
		if code != 200 || hdr.Get("Content-Type") != "text/html; charset=utf-8" {
			t.Fatalf("GET %s = %d %s", page, code, hdr.Get("Content-Type"))
		}
		if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", page, csp)
		}
		base, _ := url.Parse("http://admin.example" + page)
		refs := pageRefs.FindAllStringSubmatch(body, -1)
		types := map[string]bool{}
		for _, m := range refs {
			ref := m[1]
			if strings.HasPrefix(ref, "data:") {
				continue
			}
			if strings.HasPrefix(ref, "/") || strings.Contains(ref, "//") {
				t.Errorf("page links %q: not relative, breaks behind a prefix", ref)
				continue
			}
			u := base.ResolveReference(&url.URL{Path: ref})
			code, _, hdr := do(t, h, "GET", u.Path)
			if code != 200 {
				t.Errorf("page reference %q (%s) = %d", ref, u.Path, code)
			}
			types[hdr.Get("Content-Type")] = true
		}
		for _, want := range []string{"text/javascript; charset=utf-8", "text/css; charset=utf-8"} {
			if !types[want] {
				t.Errorf("prefix %q: no asset served as %s among %v", prefix, want, types)
			}
		}

		_, js, _ := do(t, h, "GET", prefix+"/dashboard/app.js")
		fetches := scriptFetches.FindAllStringSubmatch(js, -1)
		if len(fetches) < 2 {
			t.Fatalf("the script fetches %v, want the instance and its samples", fetches)
		}
		for _, m := range fetches {
			getJSON(t, h, base.ResolveReference(&url.URL{Path: m[1]}).Path)
		}
		// The script's check of an action answers "false" while actions
		// are off, so the page shows no buttons.
		m := scriptCheck.FindStringSubmatch(js)
		if m == nil {
			t.Fatal("the script has no CHECK_PATH")
		}
		check := base.ResolveReference(&url.URL{Path: strings.TrimSuffix(m[1], "?path=")}).Path +
			"?path=" + url.QueryEscape("/amps/administrator/transports/tcp/disable")
		if code, body, _ := do(t, h, "GET", check); code != 200 || body != "false" {
			t.Errorf("GET %s = %d %q, want 200 false", check, code, body)
		}
	}
}

func TestDashboardErrors(t *testing.T) {
	_, h := newAdmin(t, &admin.Options{PathPrefix: "/admin"})
	for _, c := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/admin/dashboard/nope.js", 404},
		{"GET", "/admin/dashboard/index.html", 404}, // the page is only at the root
		{"GET", "/admin/dashboard/../dashboard/app.js", 404},
		{"GET", "/admin/dashboard/", 404},
		{"GET", "/dashboard/app.js", 404}, // outside the prefix
		{"POST", "/admin/", 405},
		{"PUT", "/admin/dashboard/app.js", 405},
	} {
		if code, body, _ := do(t, h, c.method, c.path); code != c.code {
			t.Errorf("%s %s = %d %q, want %d", c.method, c.path, code, body, c.code)
		}
	}
	// The prefix without its slash is sent, relatively, to the page.
	code, _, hdr := do(t, h, "GET", "/admin")
	if code != http.StatusFound || hdr.Get("Location") != "admin/" {
		t.Errorf("GET /admin = %d Location %q, want 302 to admin/", code, hdr.Get("Location"))
	}
	if code, _, hdr := do(t, h, "HEAD", "/admin/dashboard/app.css"); code != 200 || hdr.Get("Content-Type") != "text/css; charset=utf-8" {
		t.Errorf("HEAD app.css = %d %s", code, hdr.Get("Content-Type"))
	}
}

func TestDashboardOffAndAuthenticated(t *testing.T) {
	_, off := newAdmin(t, &admin.Options{NoDashboard: true})
	if code, _, _ := do(t, off, "GET", "/"); code != 404 {
		t.Errorf("GET / with NoDashboard = %d, want 404", code)
	}
	getJSON(t, off, "/amps/instance.json") // the tree stays

	_, auth := newAdmin(t, &admin.Options{Authenticate: func(r *http.Request) (string, error) {
		if u, p, ok := r.BasicAuth(); ok && u == "ops" && p == "secret" {
			return u, nil
		}
		return "", errors.New("bad credentials")
	}})
	if code, _, hdr := do(t, auth, "GET", "/"); code != 401 || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("GET / unauthenticated = %d %q, want 401 with a Basic challenge", code, hdr.Get("WWW-Authenticate"))
	}
	r := "Basic " + "b3BzOnNlY3JldA==" // ops:secret
	if code, _, _ := do(t, auth, "GET", "/dashboard/app.js", "Authorization", r); code != 200 {
		t.Errorf("GET app.js authenticated = %d", code)
	}
}

// TestSamplesAndTopics: the chart's samples carry the message rates of
// the interval, and x_topics ranks topics by their traffic, then by
// subscriptions; the server's own /AMPS/ topics are left out.
func TestSamplesAndTopics(t *testing.T) {
	b, h := newAdmin(t, &admin.Options{Interval: 20 * time.Millisecond})
	sub := b.Dial(b.TCPURL(), nil)
	sub.Logon("sub")
	sub.Subscribe("s1", "busy")
	sub.Subscribe("s2", "quiet")
	sub.Subscribe("s3", "quieter")
	other := b.Dial(b.TCPURL(), nil)
	other.Logon("other")
	other.Subscribe("s4", "quiet")
	other.Flush("f")
	publish := func(n int) {
		for range n {
			other.Publish("busy", []byte(`{}`))
		}
		other.Flush("f")
	}
	publish(5)

	// until polls path until cond holds of its JSON.
	until := func(path, what string, cond func(v map[string]any) bool) map[string]any {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			v := getJSON(t, h, path)
			if cond(v) {
				return v
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never showed %s: %v", path, what, v)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	until("/amps/instance/statistics/x_samples.json", "messages_in_per_sec > 0", func(v map[string]any) bool {
		samples := at(t, v, "amps", "instance", "statistics", "x_samples").([]any)
		allStrings(t, "x_samples", samples)
		for _, s := range samples {
			if r, _ := strconv.ParseFloat(s.(map[string]any)["messages_in_per_sec"].(string), 64); r > 0 {
				return true
			}
		}
		return false
	})
	// The samples are left out of the instance the dashboard polls.
	inst := getJSON(t, h, "/amps/instance.json")
	if _, has := at(t, inst, "amps", "instance", "statistics").(map[string]any)["x_samples"]; has {
		t.Error("instance.json carries the history's samples")
	}

	topic := func(v map[string]any, i int) map[string]any {
		return at(t, v, "amps", "instance", "x_topics").([]any)[i].(map[string]any)
	}
	v := until("/amps/instance.json", "5 messages on busy", func(v map[string]any) bool {
		return topic(v, 0)["messages"] == "5"
	})
	topics := at(t, v, "amps", "instance", "x_topics").([]any)
	if len(topics) != 3 {
		t.Fatalf("x_topics = %v, want busy, quiet and quieter (no /AMPS/ topic)", topics)
	}
	if got := topic(v, 0); got["id"] != "busy!json" || got["subscriptions"] != "1" || got["sow"] != "false" {
		t.Errorf("first topic = %v, want busy", got)
	}
	// Without traffic, more subscriptions rank first.
	if topic(v, 1)["id"] != "quiet!json" || topic(v, 1)["subscriptions"] != "2" || topic(v, 2)["id"] != "quieter!json" {
		t.Errorf("then %v and %v, want quiet (2 subscriptions) and quieter", topic(v, 1), topic(v, 2))
	}
	// Once busy is in two samples in a row, it has a rate.
	publish(5)
	until("/amps/instance.json", "a rate on busy", func(v map[string]any) bool {
		r, _ := strconv.ParseFloat(topic(v, 0)["messages_per_sec"].(string), 64)
		return r > 0 && topic(v, 0)["messages"] == "10"
	})
}
