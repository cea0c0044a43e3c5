package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/admin"
	"github.com/ampsbroker/ampsbroker/ampstest"
)

// The one-port deployment of issue 15: nginx serves /client/ (TCP clients
// through the HTTP preflight), /ws/ (WebSocket clients) and /admin/ (the
// admin HTTP server, prefix stripped) on one port.

// adminTestInterval is the admin handler's sampling period in these
// tests: short, so that the dashboard's chart gets samples quickly.
const adminTestInterval = 250 * time.Millisecond

// startAdminServer serves tb's admin handler (sampling every
// adminTestInterval; actions as openActions says) on a loopback HTTP
// server and returns its address. Cleanup stops the server, then the
// handler.
func startAdminServer(t testing.TB, tb *testBroker, openActions bool) string {
	t.Helper()
	h := admin.NewHandler(tb.Broker.Broker, &admin.Options{Interval: adminTestInterval, OpenActions: openActions})
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		h.Close()
	})
	return strings.TrimPrefix(srv.URL, "http://")
}

// startOnePort starts a broker, its admin server and nginx with the three
// routes, and returns the broker and nginx's address.
func startOnePort(t testing.TB, openActions bool) (*testBroker, string) {
	t.Helper()
	tb := startBroker(t, brokerConfig{})
	adminAddr := startAdminServer(t, tb, openActions)
	return tb, startNginxRoutes(t, nginxRoutes{TCP: tb.TCPAddr, WS: tb.WSAddr, Admin: adminAddr})
}

// adminClientsByName fetches /amps/instance/clients.json through base
// (".../admin/") and returns the clients by client_name.
func adminClientsByName(t testing.TB, base string) map[string]map[string]string {
	t.Helper()
	code, typ, body := httpGet(t, base+"amps/instance/clients.json")
	if code != http.StatusOK || typ != "application/json" {
		t.Fatalf("GET %samps/instance/clients.json = %d %s: %s", base, code, typ, body)
	}
	var doc struct {
		AMPS struct {
			Instance struct {
				Clients []map[string]string
			}
		}
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("clients.json: %v in %s", err, body)
	}
	out := map[string]map[string]string{}
	for _, c := range doc.AMPS.Instance.Clients {
		out[c["client_name"]] = c
	}
	return out
}

// TestNginxOnePortAdmin: a Go stream client through /client/ and the JS
// client through /ws/ are both listed, with their transports, by the admin
// JSON fetched through /admin/; the dashboard and its assets are served
// there too.
func TestNginxOnePortAdmin(t *testing.T) {
	t.Parallel()
	_, proxy := startOnePort(t, false)
	base := "http://" + proxy + "/admin/"
	const topic = "nginx/admin"

	goc := logonTCP(t, proxy, "/client/amps/json", "go-tcp-via-nginx")
	d := startDriver(t, "ws://"+proxy+"/ws/amps/json", nil, "receive", "--topic", topic, "--count", "1")
	d.waitEvent("ready")

	clients := adminClientsByName(t, base)
	if len(clients) != 2 {
		t.Errorf("admin lists %d clients, want 2: %v", len(clients), clients)
	}
	for name, want := range map[string]map[string]string{
		"go-tcp-via-nginx": {"x_transport": "tcp", "authenticated_id": "interop", "subscription_count": "0"},
		"js-receiver":      {"x_transport": "websocket", "subscription_count": "1"},
	} {
		c, ok := clients[name]
		if !ok {
			t.Errorf("admin does not list %s: %v", name, clients)
			continue
		}
		for k, v := range want {
			if c[k] != v {
				t.Errorf("%s: %s = %q, want %q", name, k, c[k], v)
			}
		}
		// nginx is the peer the broker sees.
		if !strings.HasPrefix(c["remote_address"], "127.0.0.1:") {
			t.Errorf("%s: remote_address %q, want nginx's loopback address", name, c["remote_address"])
		}
	}
	for path, want := range map[string]string{
		"":                  "text/html; charset=utf-8",
		"dashboard/app.js":  "text/javascript; charset=utf-8",
		"dashboard/app.css": "text/css; charset=utf-8",
	} {
		if code, typ, _ := httpGet(t, base+path); code != http.StatusOK || typ != want {
			t.Errorf("GET %s%s through nginx = %d %s, want 200 %s", base, path, code, typ, want)
		}
	}

	// The JS client takes its message and leaves; the admin stops listing it.
	if err := goc.Publish(topic, []byte(`{"bye":true}`)); err != nil {
		t.Fatal(err)
	}
	d.result()
	waitFor(t, "the JS client to leave the admin's clients", 10*time.Second, func() bool {
		_, gone := adminClientsByName(t, base)["js-receiver"]
		return !gone
	})
}

// dashboardState is what the browser test reads of the dashboard.
type dashboardState struct {
	Polls   int
	Error   bool
	Status  string
	Clients []struct{ ID, Name, Transport, Action string }
	Samples int
	LastIn  float64
	LastOut float64
	Points  string
	Journal string
	Cluster string
}

// dashboardStateJS reads dashboardState from the page.
const dashboardStateJS = `(() => {
  const chart = document.getElementById("rate-chart");
  const status = document.getElementById("status");
  return {
    polls: Number(status.dataset.polls),
    error: status.classList.contains("error"),
    status: status.textContent,
    clients: [...document.querySelectorAll("#clients tbody tr[data-id]")].map(r => {
      const b = r.querySelector("button[data-action]");
      return {id: r.dataset.id, name: r.cells[1].textContent, transport: r.dataset.transport, action: b ? b.dataset.action : ""};
    }),
    samples: Number(chart.dataset.samples),
    lastIn: Number(chart.dataset.lastIn),
    lastOut: Number(chart.dataset.lastOut),
    points: document.getElementById("line-in").getAttribute("points"),
    journal: document.getElementById("journal").textContent,
    cluster: document.getElementById("cluster").textContent,
  };
})()`

// dashboardScreenshotEnv names a file the browser test also writes its
// screenshot to (the test's artifact directory always gets one).
const dashboardScreenshotEnv = "AMPS_DASHBOARD_SCREENSHOT"

// TestBrowserAdminDashboard loads the dashboard in headless Chromium
// through nginx's /admin/: it lists the TCP and WebSocket clients, its rate
// chart moves while a publisher runs, its disconnect button (actions are
// open) closes the WebSocket client, and the browser reports no console
// error. The screenshot is saved in the test's artifact directory.
func TestBrowserAdminDashboard(t *testing.T) {
	t.Parallel()
	_, proxy := startOnePort(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	const topic = "dashboard/ticks"

	// A WebSocket subscriber through /ws/, its deliveries drained.
	sub, err := ampstest.DialConn("ws://"+proxy+"/ws/amps/json", &ampstest.DialOptions{Timeout: tcpIOTimeout})
	if err != nil {
		t.Fatalf("dial /ws/: %v", err)
	}
	if _, err := sub.Logon("ws-subscriber"); err != nil {
		t.Fatal(err)
	}
	if err := sub.Subscribe("ticks", topic); err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush("ready"); err != nil {
		t.Fatal(err)
	}
	var drain sync.WaitGroup
	drain.Go(func() {
		for {
			if _, err := sub.Next(); err != nil {
				return // closed at the end of the test
			}
		}
	})
	defer drain.Wait()
	defer sub.Close()
	pub := logonTCP(t, proxy, "/client/amps/json", "tcp-publisher")

	page := startChromiumPage(t, 1280, 1500)
	for _, m := range []string{"Runtime.enable", "Log.enable", "Page.enable"} {
		if _, err := page.call(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := page.call(ctx, "Emulation.setDeviceMetricsOverride",
		map[string]any{"width": 1280, "height": 1500, "deviceScaleFactor": 1, "mobile": false}); err != nil {
		t.Fatal(err)
	}
	if _, err := page.call(ctx, "Page.navigate", map[string]any{"url": "http://" + proxy + "/admin/"}); err != nil {
		t.Fatal(err)
	}
	var st dashboardState
	until := func(what string, cond func() bool) {
		t.Helper()
		for {
			if err := page.evaluate(ctx, dashboardStateJS, &st); err != nil && ctx.Err() != nil {
				t.Fatalf("waiting for %s: %v", what, err)
			} else if err == nil && cond() {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("the dashboard never showed %s; last state %+v; errors %v", what, st, page.errorsSeen())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	transports := func() map[string]string {
		m := map[string]string{}
		for _, c := range st.Clients {
			m[c.Name] = c.Transport
		}
		return m
	}
	until("both clients", func() bool {
		tr := transports()
		return st.Polls > 0 && tr["ws-subscriber"] == "websocket" && tr["tcp-publisher"] == "tcp"
	})
	if st.Error {
		t.Errorf("the dashboard shows an error status: %+v", st)
	}
	if !strings.Contains(st.Journal, "not configured") || !strings.Contains(st.Cluster, "not configured") {
		t.Errorf("journal %q and cluster %q, want both not configured", st.Journal, st.Cluster)
	}
	idle := st.Points

	// The publisher runs until the chart shows messages in and out.
	stop := make(chan struct{})
	var published sync.WaitGroup
	published.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if err := pub.Publish(topic, fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
				t.Errorf("publish %d: %v", i, err)
				return
			}
		}
	})
	until("a moving rate chart", func() bool {
		return st.LastIn > 0 && st.LastOut > 0 && st.Points != idle
	})
	moved := st.Points
	until("the chart moving on", func() bool { return st.Points != moved })

	shot := filepath.Join(t.ArtifactDir(), "admin-dashboard.png")
	if err := page.screenshot(ctx, shot); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	t.Logf("dashboard screenshot: %s", shot)
	if dst := os.Getenv(dashboardScreenshotEnv); dst != "" {
		if err := page.screenshot(ctx, dst); err != nil {
			t.Fatalf("screenshot to %s=%s: %v", dashboardScreenshotEnv, dst, err)
		}
	}
	close(stop)
	published.Wait()

	// The disconnect button of the WebSocket client, confirmed, closes it.
	var target string
	for _, c := range st.Clients {
		if c.Name == "ws-subscriber" {
			target = c.Action
		}
	}
	if !strings.HasSuffix(target, "/disconnect") {
		t.Fatalf("no disconnect button for ws-subscriber with actions open: %+v", st.Clients)
	}
	var clicked bool
	if err := page.evaluate(ctx, `(() => { window.confirm = () => true;
	  const b = document.querySelector('button[data-action="`+target+`"]'); if (b) b.click(); return !!b; })()`, &clicked); err != nil || !clicked {
		t.Fatalf("clicking disconnect: %v (clicked %v)", err, clicked)
	}
	until("the WebSocket client gone", func() bool {
		_, present := transports()["ws-subscriber"]
		return !present && strings.Contains(st.Status, "updated")
	})
	if errs := page.errorsSeen(); len(errs) > 0 {
		t.Errorf("the browser reported %d errors:\n%s", len(errs), strings.Join(errs, "\n"))
	}
}
