package admin_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/admin"
	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// newAdmin starts a broker and an admin handler for it, closed at the
// end of the test before the broker stops.
func newAdmin(t *testing.T, opts *admin.Options) (*ampstest.Broker, *admin.Handler) {
	t.Helper()
	b := ampstest.NewBroker(t, nil)
	h := admin.NewHandler(b.Broker, opts)
	t.Cleanup(func() { h.Close() })
	return b, h
}

// do sends method path to h and returns the status and body.
func do(t *testing.T, h http.Handler, method, path string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String(), w.Header()
}

// getJSON fetches path and decodes its JSON, failing unless 200.
func getJSON(t *testing.T, h http.Handler, path string) map[string]any {
	t.Helper()
	code, body, hdr := do(t, h, "GET", path)
	if code != http.StatusOK || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %d %s: %s", path, code, hdr.Get("Content-Type"), body)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
	return v
}

// at walks v by object keys; an integer-looking step "#id" picks the
// array item with that id.
func at(t *testing.T, v any, steps ...string) any {
	t.Helper()
	for _, s := range steps {
		if id, ok := strings.CutPrefix(s, "#"); ok {
			arr, isArr := v.([]any)
			if !isArr {
				t.Fatalf("at %s: %T is not an array", s, v)
			}
			found := false
			for _, item := range arr {
				if m, _ := item.(map[string]any); m != nil && m["id"] == id {
					v, found = m, true
					break
				}
			}
			if !found {
				t.Fatalf("no item with id %q in %v", id, arr)
			}
			continue
		}
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("at %s: %T is not an object", s, v)
		}
		if v, ok = m[s]; !ok {
			t.Fatalf("no key %q in %v", s, m)
		}
	}
	return v
}

// allStrings fails unless every leaf under v is a string (spec §1.1:
// numbers are written as strings).
func allStrings(t *testing.T, path string, v any) {
	t.Helper()
	switch n := v.(type) {
	case map[string]any:
		for k, c := range n {
			allStrings(t, path+"/"+k, c)
		}
	case []any:
		for _, c := range n {
			m, _ := c.(map[string]any)
			if _, ok := m["id"].(string); !ok {
				t.Errorf("%s: collection item without a string id: %v", path, c)
			}
			allStrings(t, path+"/[]", c)
		}
	case string:
	default:
		t.Errorf("%s: %T %v is not a string", path, v, v)
	}
}

func connID(t *testing.T, b *ampstest.Broker, transport string) string {
	t.Helper()
	for _, c := range b.Stats().Conns {
		if c.Transport == transport {
			return itoa(c.ID)
		}
	}
	t.Fatalf("no %s connection", transport)
	return ""
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func TestTreeJSON(t *testing.T) {
	b, h := newAdmin(t, &admin.Options{Description: "test broker"})
	tcp := b.Dial(b.TCPURL(), nil)
	tcp.LogonWith(logon("tcp-client", "alice"))
	tcp.Subscribe("sub-1", "orders")
	tcp.Publish("orders", []byte(`{"a":1}`))
	tcp.Flush("f")
	ws := b.Dial(b.WSURL(), nil)
	ws.Logon("ws-client")
	ws.Flush("f")

	v := getJSON(t, h, "/amps.json")
	allStrings(t, "", v)
	inst := at(t, v, "amps", "instance")
	// The collections scripts walk are always there (spec §4.1).
	for _, k := range []string{"clients", "subscriptions", "processors", "sow", "queues", "views", "memory", "queries", "api", "transports", "x_broker"} {
		at(t, inst, k)
	}
	for _, k := range []string{"cpus", "memory", "network", "name"} {
		at(t, v, "amps", "host", k)
	}
	if got := at(t, inst, "description"); got != "test broker" {
		t.Errorf("description = %v", got)
	}
	if got := at(t, inst, "uptime").(string); !regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{6}$`).MatchString(got) {
		t.Errorf("uptime = %q, want hh:mm:ss.uuuuuu", got)
	}
	if got := at(t, inst, "timestamp").(string); !regexp.MustCompile(`^\d{8}T\d{6}\.\d{6}Z$`).MatchString(got) {
		t.Errorf("timestamp = %q, want 20111130T000010.000000Z", got)
	}

	tid, wid := connID(t, b, "tcp"), connID(t, b, "websocket")
	c := at(t, inst, "clients", "#"+tid).(map[string]any)
	want := map[string]string{
		"client_name": "tcp-client", "authenticated_id": "alice", "x_transport": "tcp",
		"subscription_count": "1", "messages_in": "1", "connection_name": "amps-tcp-" + tid,
	}
	for k, w := range want {
		if c[k] != w {
			t.Errorf("tcp client %s = %v, want %q", k, c[k], w)
		}
	}
	if got := c["connect_time"].(string); !regexp.MustCompile(`^\d{8}T\d{6}\.\d{6}Z$`).MatchString(got) {
		t.Errorf("connect_time = %q", got)
	}
	if got := c["queue_max_latency"].(string); !regexp.MustCompile(`^\d+\.\d{12}$`).MatchString(got) {
		t.Errorf("queue_max_latency = %q, want seconds with 12 decimals", got)
	}
	for _, k := range []string{"bytes_in", "bytes_out", "messages_out", "queued_bytes_out", "messages_in_per_sec", "bytes_out_per_sec"} {
		if _, ok := c[k]; !ok {
			t.Errorf("tcp client has no %s: %v", k, c)
		}
	}
	if c["remote_address"] == "" || !strings.HasPrefix(c["remote_address"].(string), "127.0.0.1:") {
		t.Errorf("remote_address = %v", c["remote_address"])
	}
	if got := at(t, inst, "clients", "#"+wid, "x_transport"); got != "websocket" {
		t.Errorf("ws client transport = %v", got)
	}

	subs := at(t, inst, "subscriptions").([]any)
	if len(subs) != 1 {
		t.Fatalf("subscriptions = %v", subs)
	}
	s := subs[0].(map[string]any)
	if s["sub_id"] != "sub-1" || s["topic"] != "orders" || s["client_id"] != tid || s["message_type"] != "json" {
		t.Errorf("subscription = %v", s)
	}
	if got := at(t, inst, "transports", "#tcp", "is_enabled"); got != "true" {
		t.Errorf("tcp is_enabled = %v", got)
	}
	if got := at(t, inst, "transports", "#websocket", "x_connections"); got != "1" {
		t.Errorf("websocket x_connections = %v", got)
	}
	if got := at(t, inst, "processors", "#all", "messages_received"); got != "1" {
		t.Errorf("processors/all messages_received = %v", got)
	}
	if got := at(t, inst, "x_broker", "connections"); got != "2" {
		t.Errorf("x_broker connections = %v", got)
	}
}

func logon(name, user string) *protocol.Header {
	return &protocol.Header{ClientName: name, UserID: user}
}

func TestWrapping(t *testing.T) {
	b, h := newAdmin(t, nil)
	c := b.Dial(b.TCPURL(), nil)
	c.Logon("one")
	c.Flush("f")
	id := connID(t, b, "tcp")

	// A collection item comes as a one-element array in its ancestors.
	v := getJSON(t, h, "/amps/instance/clients/"+id+".json")
	clients := at(t, v, "amps", "instance", "clients").([]any)
	if len(clients) != 1 || at(t, clients[0], "id") != id || at(t, clients[0], "client_name") != "one" {
		t.Fatalf("clients/%s.json = %v", id, v)
	}
	if inst := at(t, v, "amps", "instance").(map[string]any); len(inst) != 1 {
		t.Errorf("instance wrapper holds more than the client: %v", inst)
	}
	// A leaf comes as its one key.
	v = getJSON(t, h, "/amps/instance/name.json")
	if got := at(t, v, "amps", "instance", "name"); got != broker.DefaultName {
		t.Errorf("name.json = %v", v)
	}
	v = getJSON(t, h, "/amps/instance/clients/"+id+"/client_name.json")
	if got := at(t, v, "amps", "instance", "clients", "#"+id, "client_name"); got != "one" {
		t.Errorf("client_name.json = %v", v)
	}
	v = getJSON(t, h, "/amps/instance.json")
	if len(v["amps"].(map[string]any)) != 1 {
		t.Errorf("instance.json: amps holds more than instance: %v", v)
	}
	at(t, v, "amps", "instance", "clients", "#"+id)
}

func TestErrors(t *testing.T) {
	_, h := newAdmin(t, nil)
	for _, c := range []struct {
		method, path string
		code         int
		says         string
	}{
		{"GET", "/nope", 404, "no admin node"},
		{"GET", "/amps/nope.json", 404, "no admin node"},
		{"GET", "/amps/instance/clients/999999.json", 404, "no admin node"},
		{"GET", "/amps/instance/name/deeper.json", 404, "no admin node"},
		{"GET", "/amps.rnc", 404, "no admin node"},
		{"GET", "/amps//instance.json", 404, "no admin node"},
		{"PUT", "/amps.json", 405, "not allowed"},
		{"DELETE", "/amps/administrator/clients/1/disconnect", 405, "not allowed"},
		{"POST", "/amps.json", 405, "only for actions"},
		{"GET", "/amps.xml", 501, ".xml representation is not supported"},
		{"GET", "/amps/instance/uptime.csv", 501, "has no history"},
		{"GET", "/amps/instance/uptime?t0=20240101T0", 501, "has no history"},
		// Without the right to run actions, an unknown one is refused first.
		{"GET", "/amps/administrator/nothing/disconnect", 403, "admin actions are off"},
	} {
		code, body, hdr := do(t, h, c.method, c.path)
		if code != c.code || !strings.Contains(body, c.says) {
			t.Errorf("%s %s = %d %q, want %d saying %q", c.method, c.path, code, body, c.code, c.says)
		}
		if code == 405 && hdr.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", c.method, c.path)
		}
	}
	if code, _, _ := do(t, h, "HEAD", "/amps.json"); code != 200 {
		t.Errorf("HEAD /amps.json = %d", code)
	}
}

func TestHTMLListing(t *testing.T) {
	_, h := newAdmin(t, nil)
	for path, wants := range map[string][]string{
		"/":                   {`href="amps"`},
		"/amps":               {`href="amps/instance"`, `href="amps/host"`, `href="amps.json"`},
		"/amps/instance":      {`href="instance/clients"`, `href="instance/x_broker"`, `href="instance.json"`},
		"/amps/instance/":     {`href="./clients"`},
		"/amps/instance/name": {"<pre>" + broker.DefaultName + "</pre>", `href="name.json"`},
	} {
		code, body, hdr := do(t, h, "GET", path)
		if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
			t.Errorf("GET %s = %d %s", path, code, hdr.Get("Content-Type"))
		}
		for _, w := range wants {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s: no %s in\n%s", path, w, body)
			}
		}
		if strings.Contains(body, `href="/`) {
			t.Errorf("GET %s: an absolute link breaks behind a prefix:\n%s", path, body)
		}
	}
}

func TestBehindPrefix(t *testing.T) {
	b := ampstest.NewBroker(t, nil)
	stripped := admin.NewHandler(b.Broker, nil)
	defer stripped.Close()
	prefixed := admin.NewHandler(b.Broker, &admin.Options{PathPrefix: "/admin/"})
	defer prefixed.Close()
	mux := http.NewServeMux()
	mux.Handle("/strip/", http.StripPrefix("/strip", stripped))
	mux.Handle("/admin/", prefixed)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, p := range []string{"/strip/amps/instance.json", "/admin/amps/instance.json", "/admin/amps.json"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"instance"`) {
			t.Errorf("GET %s = %d %s", p, resp.StatusCode, body)
		}
	}
	if code, body, _ := do(t, prefixed, "GET", "/other/amps.json"); code != 404 || !strings.Contains(body, "outside the admin prefix") {
		t.Errorf("outside the prefix: %d %q", code, body)
	}
	if code, _, _ := do(t, prefixed, "GET", "/administrator/amps.json"); code != 404 {
		t.Errorf("a longer first segment is outside the prefix too: %d", code)
	}
}

func TestActionsRefusedByDefault(t *testing.T) {
	b, h := newAdmin(t, nil)
	c := b.Dial(b.TCPURL(), nil)
	c.Logon("keep")
	c.Flush("f")
	id := connID(t, b, "tcp")
	for _, p := range []string{
		"/amps/administrator/clients/" + id + "/disconnect",
		"/amps/administrator/transports/tcp/disable",
		"/amps/administrator/authorization/entitlement/reset",
	} {
		code, body, _ := do(t, h, "GET", p)
		if code != 403 || !strings.Contains(body, "OpenActions") {
			t.Errorf("GET %s = %d %q, want 403 naming the option", p, code, body)
		}
	}
	c.Flush("still-here")
	if !b.Transports()[0].Enabled {
		t.Error("a refused disable disabled the transport")
	}
	// Listing the actions is a read, and check answers false.
	v := getJSON(t, h, "/amps/administrator.json")
	at(t, v, "amps", "administrator", "clients", "#"+id, "disconnect")
	code, body, _ := do(t, h, "GET", "/amps/administrator/authorization/entitlement/transports/amps-admin/check?path=/amps/administrator/clients/"+id+"/disconnect")
	if code != 200 || body != "false" {
		t.Errorf("check = %d %q, want false", code, body)
	}
}

func TestActions(t *testing.T) {
	b, h := newAdmin(t, &admin.Options{OpenActions: true})
	c := b.Dial(b.TCPURL(), nil)
	c.Logon("victim")
	ws := b.Dial(b.WSURL(), nil)
	ws.LogonWith(logon("ws", "bob"))
	ws.Flush("f")
	id := connID(t, b, "tcp")
	pre := "/amps/administrator/"

	// Bad parameters: a clear 4xx, nothing changed.
	for p, want := range map[string]int{
		"clients/abc/disconnect":                                               400,
		"clients/999999/disconnect":                                            404,
		"transports/nope/disable":                                              404,
		"transports/nope/enable":                                               404,
		"authorization/entitlement/reset?user=bob":                             400,
		"authorization/entitlement/reset?user_id=":                             400,
		"authorization/entitlement/transports/amps-admin/check":                400,
		"authorization/entitlement/transport/amps-admin/check?path=/amps.json": 400,
		"clients/" + id + "/explode":                                           404,
	} {
		if code, body, _ := do(t, h, "GET", pre+p); code != want {
			t.Errorf("GET %s = %d %q, want %d", p, code, body, want)
		}
	}
	c.Flush("untouched")
	ws.Flush("untouched")
	// A cross-site page may not run an action.
	if code, _, _ := do(t, h, "GET", pre+"clients/"+id+"/disconnect", "Sec-Fetch-Site", "cross-site"); code != 403 {
		t.Errorf("cross-site disconnect = %d, want 403", code)
	}
	c.Flush("still-untouched")

	code, body, _ := do(t, h, "POST", pre+"clients/"+id+"/disconnect")
	var reply map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &reply) != nil || at(t, reply, "amps", "administrator", "result") != "ok" {
		t.Fatalf("disconnect = %d %q", code, body)
	}
	c.ExpectClosed()

	if code, body, _ := do(t, h, "GET", pre+"transports/websocket/disable.json"); code != 200 {
		t.Fatalf("disable = %d %q", code, body)
	}
	ws.ExpectClosed()
	if got := at(t, getJSON(t, h, "/amps/instance/transports/websocket.json"), "amps", "instance", "transports", "#websocket", "is_enabled"); got != "false" {
		t.Errorf("after disable is_enabled = %v", got)
	}
	if code, body, _ := do(t, h, "GET", pre+"transports/websocket/enable"); code != 200 {
		t.Fatalf("enable = %d %q", code, body)
	}
	ws2 := b.Dial(b.WSURL(), nil)
	ws2.LogonWith(logon("ws2", "bob"))
	ws2.Flush("f")
	other := b.Dial(b.TCPURL(), nil)
	other.LogonWith(logon("other", "carol"))
	other.Flush("f")
	for p, want := range map[string]int{
		"authorization/entitlement/transports/nope/reset":       404,
		"authorization/entitlement/transports/tcp/reset?x=1":    400,
		"authorization/entitlement/transports/amps-admin/reset": 404,
	} {
		if code, body, _ := do(t, h, "GET", pre+p); code != want {
			t.Errorf("GET %s = %d %q, want %d", p, code, body, want)
		}
	}
	other.Flush("untouched")
	ws2.Flush("untouched")
	if code, body, _ := do(t, h, "GET", pre+"authorization/entitlement/transport/websocket/reset"); code != 200 {
		t.Fatalf("reset websocket = %d %q", code, body)
	}
	ws2.ExpectClosed()
	other.Flush("tcp-stays")
	ws2 = b.Dial(b.WSURL(), nil)
	ws2.LogonWith(logon("ws2", "bob"))
	ws2.Flush("f")

	if code, body, _ := do(t, h, "GET", pre+"authorization/entitlement/reset?user_id=bob"); code != 200 {
		t.Fatalf("reset bob = %d %q", code, body)
	}
	ws2.ExpectClosed()
	other.Flush("carol-stays")
	if code, body, _ := do(t, h, "GET", pre+"authorization/entitlement/reset"); code != 200 {
		t.Fatalf("reset all = %d %q", code, body)
	}
	other.ExpectClosed()
}

func TestEntitlerAndAuthentication(t *testing.T) {
	users := map[string]string{"ops": "o", "root": "r"}
	ent := broker.EntitlerFunc(func(id *broker.Identity, path string, p broker.Permission) bool {
		switch id.UserID {
		case "root":
			return true
		case "ops":
			return p == broker.Read && strings.HasPrefix(path, "/amps/instance")
		}
		return false
	})
	auth := func(r *http.Request) (string, error) {
		u, pw, ok := r.BasicAuth()
		if !ok || users[u] != pw || pw == "" {
			return "", errors.New("bad or missing credentials")
		}
		return u, nil
	}
	b, h := newAdmin(t, &admin.Options{Entitler: ent, Authenticate: auth, ActionsNeedWrite: true})
	c := b.Dial(b.TCPURL(), nil)
	c.Logon("target")
	c.Flush("f")
	id := connID(t, b, "tcp")
	basic := func(u, pw string) string {
		r := httptest.NewRequest("GET", "/", nil)
		r.SetBasicAuth(u, pw)
		return r.Header.Get("Authorization")
	}
	disc := "/amps/administrator/clients/" + id + "/disconnect"
	for _, x := range []struct {
		path, auth string
		code       int
	}{
		{"/amps.json", "", 401},
		{"/amps.json", basic("ops", "wrong"), 401},
		{"/amps/instance.json", basic("ops", "o"), 200},
		{"/amps.json", basic("ops", "o"), 403},
		{disc, basic("ops", "o"), 403},
		{"/amps.json", basic("root", "r"), 200},
	} {
		code, body, hdr := do(t, h, "GET", x.path, "Authorization", x.auth)
		if code != x.code {
			t.Errorf("GET %s as %q = %d %q, want %d", x.path, x.auth, code, body, x.code)
		}
		if code == 401 && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("401 without a Basic challenge: %v", hdr)
		}
	}
	c.Flush("ops-could-not")
	chk := "/amps/administrator/authorization/entitlement/transports/amps-admin/check?path=" + disc
	if _, body, _ := do(t, h, "GET", chk, "Authorization", basic("root", "r")); body != "true" {
		t.Errorf("root check = %q, want true", body)
	}
	if code, body, _ := do(t, h, "GET", disc, "Authorization", basic("root", "r")); code != 200 {
		t.Fatalf("root disconnect = %d %q", code, body)
	}
	c.ExpectClosed()
}

// publishThree publishes three messages to b through TCP and waits for
// the flush.
func publishThree(b *ampstest.Broker) {
	c := b.Dial(b.TCPURL(), nil)
	c.Logon("pub")
	for range 3 {
		c.Publish("t", []byte(`{}`))
	}
	c.Flush("f")
}

func TestHistoryAndClose(t *testing.T) {
	b, h := newAdmin(t, &admin.Options{Interval: 5 * time.Millisecond, HistorySize: 4})
	publishThree(b)
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := h.Samples()
		if len(s) == 4 && s[3].MessagesIn == 3 {
			for i := 1; i < len(s); i++ {
				if !s[i].Time.After(s[i-1].Time) {
					t.Fatalf("samples out of order: %v", s)
				}
			}
			break
		}
		if len(s) > 4 {
			t.Fatalf("history holds %d samples, bound 4", len(s))
		}
		if time.Now().After(deadline) {
			t.Fatalf("history never reached 4 samples with 3 messages: %+v", s)
		}
		time.Sleep(time.Millisecond)
	}
	h.Close()
	h.Close() // twice is harmless
	for _, g := range ampstest.OtherGoroutines() {
		if strings.Contains(g, "admin.(*Handler).sampler") {
			t.Fatalf("the sampler outlived Close:\n%s", g)
		}
	}
	n := len(h.Samples())
	time.Sleep(20 * time.Millisecond)
	if len(h.Samples()) != n || n != 4 {
		t.Errorf("samples after Close: %d then %d", n, len(h.Samples()))
	}
	// The handler still answers after Close.
	getJSON(t, h, "/amps/instance.json")
}

func TestSOWTopics(t *testing.T) {
	b := ampstest.NewBroker(t, &ampstest.Options{Broker: &broker.Options{
		SOWTopics: []broker.SOWTopic{{Name: "orders/eu", Keys: []string{"/id"}}},
	}})
	h := admin.NewHandler(b.Broker, nil)
	defer h.Close()
	c := b.Dial(b.TCPURL(), nil)
	c.Logon("pub")
	c.Publish("orders/eu", []byte(`{"id":1}`))
	c.Publish("orders/eu", []byte(`{"id":2}`))
	c.Publish("orders/eu", []byte(`{"id":1,"v":2}`))
	c.Flush("f")

	// The topic's slash is escaped in the id's path segment.
	v := getJSON(t, h, "/amps/instance/sow/orders%2Feu!json.json")
	sow := at(t, v, "amps", "instance", "sow", "#orders/eu!json").(map[string]any)
	if sow["valid_keys"] != "2" || sow["topic"] != "orders/eu" || sow["message_type"] != "json" || sow["stored_bytes"] == "0" {
		t.Errorf("sow = %v", sow)
	}
	if _, body, _ := do(t, h, "GET", "/amps/instance/sow"); !strings.Contains(body, `href="sow/orders%2Feu%21json"`) &&
		!strings.Contains(body, `href="sow/orders%2Feu!json"`) {
		t.Errorf("sow listing does not link the escaped id:\n%s", body)
	}
}

func TestHeadRunsNoAction(t *testing.T) {
	b, h := newAdmin(t, &admin.Options{OpenActions: true})
	c := b.Dial(b.TCPURL(), nil)
	c.Logon("stay")
	c.Flush("f")
	if code, _, _ := do(t, h, "HEAD", "/amps/administrator/clients/"+connID(t, b, "tcp")+"/disconnect"); code != 405 {
		t.Errorf("HEAD on an action = %d, want 405", code)
	}
	c.Flush("still-here")
}

func TestTransactionLogNode(t *testing.T) {
	_, h := newAdmin(t, nil)
	if tl := at(t, getJSON(t, h, "/amps.json"), "amps", "instance", "transaction_log"); len(tl.(map[string]any)) != 0 {
		t.Errorf("without a journal transaction_log is %v, want empty", tl)
	}
	j := broker.NewMemJournal(1<<20, 100)
	defer j.Close()
	b := ampstest.NewBroker(t, &ampstest.Options{Broker: &broker.Options{Journal: j}})
	hj := admin.NewHandler(b.Broker, nil)
	defer hj.Close()
	c, err := b.Broker.Connect(t.Context(), "pub", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := c.Publish(t.Context(), "t", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	tl := at(t, getJSON(t, hj, "/amps.json"), "amps", "instance", "transaction_log")
	want := map[string]any{"x_entries": "3", "x_first_position": "100", "x_next_position": "103", "x_durable_position": "103", "x_not_durable": "0"}
	for k, v := range want {
		if got := tl.(map[string]any)[k]; got != v {
			t.Errorf("transaction_log %s = %v, want %v (%v)", k, got, v, tl)
		}
	}
}

// stubBackplane is a backplane that is up and carries nothing.
type stubBackplane struct{}

func (stubBackplane) Publish(*broker.RemotePublish) error     { return nil }
func (stubBackplane) Start(func(*broker.RemotePublish)) error { return nil }
func (stubBackplane) State() broker.BackplaneState            { return broker.BackplaneState{Connected: true} }

func TestClusterNode(t *testing.T) {
	_, h := newAdmin(t, nil)
	if cl := at(t, getJSON(t, h, "/amps.json"), "amps", "instance", "x_cluster"); len(cl.(map[string]any)) != 0 {
		t.Errorf("without a backplane x_cluster is %v, want empty", cl)
	}
	b := ampstest.NewBroker(t, &ampstest.Options{Broker: &broker.Options{Backplane: stubBackplane{}}})
	hc := admin.NewHandler(b.Broker, nil)
	defer hc.Close()
	c, err := b.Broker.Connect(t.Context(), "pub", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := c.Publish(t.Context(), "t", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	cl := at(t, getJSON(t, hc, "/amps.json"), "amps", "instance", "x_cluster")
	want := map[string]any{"x_connected": "true", "x_published": "2", "x_publish_failures": "0", "x_received": "0", "x_lost": "0"}
	for k, v := range want {
		if got := cl.(map[string]any)[k]; got != v {
			t.Errorf("x_cluster %s = %v, want %v (%v)", k, got, v, cl)
		}
	}
}

// probeBackplane is a backplane that orders SOW topics and reports the
// state a test sets.
type probeBackplane struct {
	mu sync.Mutex
	s  broker.BackplaneState
}

func (*probeBackplane) Publish(*broker.RemotePublish) error     { return nil }
func (*probeBackplane) Start(func(*broker.RemotePublish)) error { return nil }
func (*probeBackplane) Order(_ *broker.RemotePublish, done func(error)) error {
	go done(nil)
	return nil
}
func (*probeBackplane) StartOrdered(func(*broker.RemotePublish)) error { return nil }
func (p *probeBackplane) State() broker.BackplaneState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.s
}
func (p *probeBackplane) set(s broker.BackplaneState) {
	p.mu.Lock()
	p.s = s
	p.mu.Unlock()
}

// TestReadyNode: /amps/instance/x_ready answers 200 when the broker is
// ready and 503 with the reason when it is not (catching up, link down,
// closed, or a lag above max_lag when asked), and x_cluster shows the
// node's catching up and lag.
func TestReadyNode(t *testing.T) {
	_, single := newAdmin(t, nil)
	if code, body, hdr := do(t, single, "GET", "/amps/instance/x_ready"); code != 200 || body != "ready\n" || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Errorf("single node x_ready: %d %q %v; want 200 ready", code, body, hdr)
	}
	if code, body, _ := do(t, single, "GET", "/amps/instance/x_ready?max_lag=many"); code != 400 || !strings.Contains(body, "max_lag") {
		t.Errorf("x_ready?max_lag=many: %d %q; want 400 naming max_lag", code, body)
	}

	bp := &probeBackplane{}
	bp.set(broker.BackplaneState{Connected: true, CatchingUp: true, Lag: 7})
	b := ampstest.NewBroker(t, &ampstest.Options{Broker: &broker.Options{Backplane: bp, SOWTopics: []broker.SOWTopic{{Name: "s", Keys: []string{"/id"}}}}})
	h := admin.NewHandler(b.Broker, nil)
	defer h.Close()
	probe := func(path string, wantCode int, wantBody string) {
		t.Helper()
		code, body, _ := do(t, h, "GET", path)
		if code != wantCode || !strings.Contains(body, wantBody) {
			t.Errorf("%s: %d %q; want %d with %q", path, code, body, wantCode, wantBody)
		}
	}
	probe("/amps/instance/x_ready", 503, "not ready: "+broker.ErrCatchingUp.Error()+": 7 ")
	if code, _, _ := do(t, h, "HEAD", "/amps/instance/x_ready"); code != 503 {
		t.Errorf("HEAD x_ready while catching up: %d; want 503", code)
	}
	r := httptest.NewRequest("GET", "/amps/instance/x_ready.json", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var doc map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil || w.Code != 503 {
		t.Fatalf("x_ready.json: %d %q (%v); want 503 and JSON", w.Code, w.Body, err)
	}
	if n := at(t, doc, "amps", "instance", "x_ready").(map[string]any); n["ready"] != "false" || !strings.Contains(n["reason"].(string), "catching up") {
		t.Errorf("x_ready.json while catching up: %v", n)
	}
	cl := at(t, getJSON(t, h, "/amps/instance/x_cluster.json"), "amps", "instance", "x_cluster").(map[string]any)
	if cl["x_catching_up"] != "true" || cl["x_lag"] != "7" || cl["x_sow_ordered"] != "true" {
		t.Errorf("x_cluster while catching up: %v", cl)
	}

	// Caught up but 7 behind: ready, unless the probe bounds the lag.
	bp.set(broker.BackplaneState{Connected: true, Lag: 7})
	probe("/amps/instance/x_ready", 200, "ready")
	probe("/amps/instance/x_ready?max_lag=7", 200, "ready")
	probe("/amps/instance/x_ready?max_lag=6", 503, "7 ordered SOW updates not applied yet, more than max_lag=6")
	if n := at(t, getJSON(t, h, "/amps/instance.json"), "amps", "instance", "x_ready").(map[string]any); n["ready"] != "true" {
		t.Errorf("instance.json x_ready %v; want ready", n)
	}

	bp.set(broker.BackplaneState{Connected: false})
	probe("/amps/instance/x_ready", 503, broker.ErrClusterDown.Error())

	bp.set(broker.BackplaneState{Connected: true})
	probe("/amps/instance/x_ready", 200, "ready")
	b.Broker.Close()
	probe("/amps/instance/x_ready", 503, broker.ErrBrokerClosed.Error())
}
