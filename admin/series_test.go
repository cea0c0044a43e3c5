package admin_test

import (
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/admin"
)

// sampleLine is one line of a leaf's history.
var sampleLine = regexp.MustCompile(`^(\d{8}T\d{6}\.\d{6}Z),(\d+(?:\.\d{12})?)$`)

// TestLeafHistory: the leaves of x_broker and processors/all answer
// t0/t1 and .csv with "timestamp,value" lines from the history.
func TestLeafHistory(t *testing.T) {
	b, h := newAdmin(t, &admin.Options{Interval: 10 * time.Millisecond, HistorySize: 50})
	publishThree(b)
	deadline := time.Now().Add(10 * time.Second)
	for s := h.Samples(); len(s) < 5 || s[len(s)-1].MessagesIn != 3; s = h.Samples() {
		if time.Now().After(deadline) {
			t.Fatalf("the history never reached 5 samples with 3 messages: %+v", s)
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.Close() // freeze the history

	lines := func(path string) [][]string {
		t.Helper()
		code, body, hdr := do(t, h, "GET", path)
		if code != 200 || hdr.Get("Content-Type") != "text/csv; charset=utf-8" {
			t.Fatalf("GET %s = %d %s %q", path, code, hdr.Get("Content-Type"), body)
		}
		var out [][]string
		for _, l := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
			if l == "" {
				continue
			}
			m := sampleLine.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("GET %s: line %q is not timestamp,value", path, l)
			}
			out = append(out, m[1:])
		}
		return out
	}
	samples := h.Samples()
	all := lines("/amps/instance/x_broker/messages_in.csv")
	if len(all) != len(samples) || all[len(all)-1][1] != "3" || all[0][0] != samples[0].Time.UTC().Format("20060102T150405.000000Z") {
		t.Fatalf("messages_in.csv = %v for %d samples, want one line each, the last 3", all, len(samples))
	}
	// t0 = t1: the one sample taken then.
	at := all[2][0]
	one := lines("/amps/instance/processors/all/messages_received?t0=" + at + "&t1=" + at)
	if len(one) != 1 || one[0][0] != at {
		t.Errorf("t0=t1=%s: %v, want that sample", at, one)
	}
	// t0 alone: from there on; a rate needs the sample before it.
	if got := lines("/amps/instance/x_broker/messages_in_per_sec.csv?t0=" + at); len(got) != len(all)-2 {
		t.Errorf("messages_in_per_sec from the third sample: %d lines, want %d", len(got), len(all)-2)
	}
	rates := lines("/amps/instance/processors/all/messages_received_per_sec.csv")
	if len(rates) != len(all)-1 {
		t.Errorf("rates: %d lines for %d samples, want one fewer", len(rates), len(all))
	}
	sum := 0.0
	for _, r := range rates {
		v, _ := strconv.ParseFloat(r[1], 64)
		sum += v
	}
	if sum <= 0 {
		t.Errorf("no rate above zero after 3 publishes: %v", rates)
	}
	// t1 alone, truncated times.
	if got := lines("/amps/instance/x_broker/connections?t1=" + at); len(got) != 3 {
		t.Errorf("t1=%s: %d lines, want 3", at, len(got))
	}
	if got := lines("/amps/instance/x_broker/connections?t0=2000&t1=" + url.QueryEscape("29991231T2")); len(got) != len(all) {
		t.Errorf("truncated t0=2000 t1=29991231T2: %d lines, want %d", len(got), len(all))
	}

	for _, c := range []struct {
		path string
		code int
		says string
	}{
		{"/amps/instance/x_broker/messages_in?t0=yesterday", 400, "parameter t0"},
		{"/amps/instance/x_broker/messages_in?t0=20240101T000000.", 400, "parameter t0"},
		{"/amps/instance/x_broker/messages_in?t0=20240102&t1=20240101", 400, "before t0"},
		{"/amps/instance/x_broker.csv", 400, "not a leaf"},
		{"/amps/instance/x_broker?t0=20240101", 501, "not a leaf"},
		{"/amps/instance/x_broker/messages_in.json?t0=20240101", 501, "in JSON"},
		{"/amps/instance/name.csv", 501, "has no history"},
		{"/amps/instance/nothing.csv", 404, "no admin node"},
	} {
		if code, body, _ := do(t, h, "GET", c.path); code != c.code || !strings.Contains(body, c.says) {
			t.Errorf("GET %s = %d %q, want %d saying %q", c.path, code, body, c.code, c.says)
		}
	}
}
