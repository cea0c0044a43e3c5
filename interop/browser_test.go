package interop

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
)

// The official client's UMD bundle in a real browser: headless Chromium
// loads a page from a test HTTP server; the page connects to the broker's
// WebSocket transport with the browser's own WebSocket (which, unlike Node,
// sends Origin and offers permessage-deflate, wire spec §3.1) and reports
// back to the test server with fetch. No browser automation library is used.

// browserTimeout bounds the whole page run, Chromium start-up included.
const browserTimeout = 90 * time.Second

// browserPage subscribes and publishes between two clients inside the page,
// then tells the test it is ready, echoes what the test publishes to it, and
// posts its result.
const browserPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>ampsbroker interop</title>
<script src="/amps.js"></script></head>
<body><pre id="log">running</pre>
<script>
"use strict";
const uri = new URLSearchParams(location.search).get("uri");
const post = (path, obj) => fetch(path, {method: "POST", body: JSON.stringify(obj)});
const fail = (where, err) => post("/result", {ok: false, where: where, error: String((err && err.message) || JSON.stringify(err))});
window.addEventListener("error", e => fail("window", e.message));
window.addEventListener("unhandledrejection", e => fail("promise", e.reason));
(async () => {
  const errors = [];
  const onError = name => e => errors.push(name + ": " + ((e && e.message) || e));
  const sub = new amps.Client("browser-sub").errorHandler(onError("sub"));
  const pub = new amps.Client("browser-pub").errorHandler(onError("pub"));
  try { await sub.connect(uri); } catch (e) { return fail("connect sub", e); }
  try { await pub.connect(uri); } catch (e) { return fail("connect pub", e); }

  const local = [];
  let localDone;
  const localAll = new Promise(r => { localDone = r; });
  await sub.subscribe(m => { local.push(m.data); if (local.length === 3) localDone(); }, "browser/local");
  for (let i = 0; i < 3; i++) pub.publish("browser/local", {seq: i, text: "héllo ✓"});
  await localAll;

  let fromGo;
  const gotGo = new Promise(r => { fromGo = r; });
  await sub.subscribe(m => { pub.publish("browser/from-page", {echo: m.data}); fromGo(m.data); }, "browser/to-page");
  await post("/ready", {});
  const goData = await gotGo;
  await pub.flush();
  await sub.disconnect();
  await pub.disconnect();
  document.getElementById("log").textContent = "done";
  await post("/result", {ok: errors.length === 0, errors: errors, local: local, from_go: goData,
    server_version: sub.serverVersion()});
})().catch(e => fail("script", e));
</script></body></html>
`

// chromiumPath returns Debian's chromium, failing the test without it.
func chromiumPath(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	t.Fatalf("chromium not found: %s", installHint)
	return ""
}

// startChromium opens pageURL in headless Chromium.
func startChromium(t testing.TB, pageURL string) *ampstest.LogBuffer {
	t.Helper()
	logs, _ := launchChromium(t, pageURL)
	return logs
}

// launchChromium runs headless Chromium with args after its common flags
// and returns its output and its profile directory. Chromium runs in its
// own process group (it forks zygote and renderer processes); cleanup
// signals that group by its id and reaps the browser.
func launchChromium(t testing.TB, args ...string) (logs *ampstest.LogBuffer, profileDir string) {
	t.Helper()
	bin := chromiumPath(t)
	profile := t.TempDir()
	profileDir = filepath.Join(profile, "profile")
	cmd := exec.Command(bin, append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--disable-dev-shm-usage", "--disable-extensions",
		"--enable-logging=stderr", "--v=0",
		"--user-data-dir=" + profileDir,
	}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+profile)
	logs = &ampstest.LogBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	pgid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-pgid, syscall.SIGKILL)
			<-exited
		}
		// Renderers left in the group after the browser exited.
		syscall.Kill(-pgid, syscall.SIGKILL)
	})
	return logs, profileDir
}

func TestBrowserChromiumPubSub(t *testing.T) {
	t.Parallel()
	requireNodeModules(t)
	bundle, err := os.ReadFile(filepath.Join("node_modules", "amps", "amps.js"))
	if err != nil {
		t.Fatalf("reading the client's browser bundle: %v: %s", err, installHint)
	}
	// Browsers send Origin; the page's origin differs from the broker's host
	// (another port), so it is allowed explicitly.
	tb := startBroker(t, brokerConfig{originPatterns: []string{"127.0.0.1:*"}})

	ready := make(chan struct{}, 1)
	results := make(chan []byte, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, browserPage)
	})
	mux.HandleFunc("GET /amps.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Write(bundle)
	})
	mux.HandleFunc("POST /ready", func(w http.ResponseWriter, r *http.Request) {
		select {
		case ready <- struct{}{}:
		default:
		}
	})
	mux.HandleFunc("POST /result", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		select {
		case results <- body:
		default: // only the first result counts
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	in := newInbox()
	goc := connectInProcess(t, tb, "go-browser-peer")
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	if _, err := goc.Subscribe(ctx, "browser/from-page", in.handler, nil); err != nil {
		t.Fatalf("in-process Subscribe: %v", err)
	}

	pageURL := srv.URL + "/?uri=" + url.QueryEscape(tb.wsURI())
	logs := startChromium(t, pageURL)
	fatal := func(format string, args ...any) {
		t.Helper()
		args = append(args, logs.String())
		t.Fatalf(format+"\nchromium output:\n%s", args...)
	}

	select {
	case <-ready:
	case body := <-results:
		fatal("page failed before it was ready: %s", body)
	case <-ctx.Done():
		fatal("page did not get ready within %v", browserTimeout)
	}
	const fromGo = `{"hello":"browser","n":42}`
	if err := goc.Publish(ctx, "browser/to-page", []byte(fromGo)); err != nil {
		t.Fatalf("in-process Publish: %v", err)
	}
	var body []byte
	select {
	case body = <-results:
	case <-ctx.Done():
		fatal("page posted no result within %v", browserTimeout)
	}
	var res struct {
		OK     bool
		Where  string
		Error  string
		Errors []string
		Local  []struct {
			Seq  int
			Text string
		}
		FromGo        map[string]any `json:"from_go"`
		ServerVersion string         `json:"server_version"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		fatal("page result %q: %v", body, err)
	}
	if !res.OK {
		fatal("page reported failure at %q: %s %v", res.Where, res.Error, res.Errors)
	}
	if len(res.Local) != 3 {
		t.Errorf("page received %d local messages, want 3", len(res.Local))
	}
	for i, m := range res.Local {
		if m.Seq != i || m.Text != "héllo ✓" {
			t.Errorf("local message %d = %+v", i, m)
		}
	}
	if res.FromGo["hello"] != "browser" || res.FromGo["n"] != float64(42) {
		t.Errorf("page got %v from Go, want %s", res.FromGo, fromGo)
	}
	echo := in.next(t)
	var e struct{ Echo map[string]any }
	if err := json.Unmarshal(echo.Data, &e); err != nil || e.Echo["hello"] != "browser" {
		t.Errorf("echo from the page = %s (err %v)", echo.Data, err)
	}
	t.Logf("browser saw server version %s", res.ServerVersion)
}
