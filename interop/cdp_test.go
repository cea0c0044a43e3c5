package interop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// A minimal client of Chromium's DevTools protocol (CDP): JSON commands
// with ids over the page target's WebSocket, replies matched by id, and
// the events the tests read (console errors, uncaught exceptions, error
// log entries). No browser automation library is used.

const (
	// cdpStartTimeout bounds the wait for Chromium to write its DevTools
	// port file.
	cdpStartTimeout = 30 * time.Second
	// cdpReadLimit bounds one DevTools message; a full-page PNG screenshot
	// arrives base64-encoded in one.
	cdpReadLimit = 64 << 20
)

// cdpPage is a DevTools connection to one page.
type cdpPage struct {
	ws   *websocket.Conn
	done chan struct{} // closed when the read loop ends

	mu      sync.Mutex
	nextID  int64
	waiting map[int64]chan cdpMessage
	readErr error
	errors  []string // console errors, exceptions and error log entries
}

type cdpMessage struct {
	ID     int64           `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// startChromiumPage runs headless Chromium with remote debugging on an
// ephemeral loopback port and connects to its first page (about:blank).
// Cleanup closes the connection, waits for its read loop and stops the
// browser.
func startChromiumPage(t testing.TB, width, height int) *cdpPage {
	t.Helper()
	logs, profile := launchChromium(t, "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
		fmt.Sprintf("--window-size=%d,%d", width, height), "about:blank")
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\nchromium output:\n%s", append(args, logs.String())...)
	}
	// Chromium writes the port it chose, then the browser target's path.
	portFile := filepath.Join(profile, "DevToolsActivePort")
	deadline := time.Now().Add(cdpStartTimeout)
	var port string
	for {
		if b, err := os.ReadFile(portFile); err == nil {
			if first, _, ok := strings.Cut(string(b), "\n"); ok && first != "" {
				port = first
				break
			}
		}
		if time.Now().After(deadline) {
			fail("chromium wrote no %s within %v", portFile, cdpStartTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var targets []struct {
		Type, URL            string
		WebSocketDebuggerURL string `json:"webSocketDebuggerUrl"`
	}
	resp, err := http.Get("http://127.0.0.1:" + port + "/json/list")
	if err == nil {
		err = json.NewDecoder(resp.Body).Decode(&targets)
		resp.Body.Close()
	}
	if err != nil {
		fail("listing chromium's targets: %v", err)
	}
	wsURL := ""
	for _, tg := range targets {
		if tg.Type == "page" {
			wsURL = tg.WebSocketDebuggerURL
			break
		}
	}
	if wsURL == "" {
		fail("chromium has no page target: %+v", targets)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cdpStartTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		fail("connecting to %s: %v", wsURL, err)
	}
	ws.SetReadLimit(cdpReadLimit)
	p := &cdpPage{ws: ws, done: make(chan struct{}), waiting: map[int64]chan cdpMessage{}}
	go p.readLoop()
	t.Cleanup(func() {
		ws.CloseNow()
		<-p.done
	})
	return p
}

// readLoop hands replies to their callers and records error events until
// the connection ends.
func (p *cdpPage) readLoop() {
	defer close(p.done)
	for {
		_, data, err := p.ws.Read(context.Background())
		if err != nil {
			p.mu.Lock()
			p.readErr = err
			for id, ch := range p.waiting {
				close(ch)
				delete(p.waiting, id)
			}
			p.mu.Unlock()
			return
		}
		var m cdpMessage
		if err := json.Unmarshal(data, &m); err != nil {
			p.record("undecodable DevTools message: " + string(data))
			continue
		}
		if m.ID != 0 {
			p.mu.Lock()
			ch := p.waiting[m.ID]
			delete(p.waiting, m.ID)
			p.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		p.event(m.Method, m.Params)
	}
}

// event records what the page reports as an error: console.error and
// failed console.assert calls, uncaught exceptions, and error entries of
// the browser's log (failed loads, CSP violations).
func (p *cdpPage) event(method string, params json.RawMessage) {
	switch method {
	case "Runtime.consoleAPICalled":
		var e struct {
			Type string
			Args []struct {
				Value       any
				Description string
			}
		}
		if json.Unmarshal(params, &e) == nil && (e.Type == "error" || e.Type == "assert") {
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, fmt.Sprint(a.Value)+a.Description)
			}
			p.record("console." + e.Type + ": " + strings.Join(parts, " "))
		}
	case "Runtime.exceptionThrown":
		var e struct {
			ExceptionDetails struct {
				Text      string
				Exception struct{ Description string }
			}
		}
		if json.Unmarshal(params, &e) == nil {
			p.record("exception: " + e.ExceptionDetails.Text + " " + e.ExceptionDetails.Exception.Description)
		}
	case "Log.entryAdded":
		var e struct {
			Entry struct{ Level, Source, Text, URL string }
		}
		if json.Unmarshal(params, &e) == nil && e.Entry.Level == "error" {
			p.record("log " + e.Entry.Source + ": " + e.Entry.Text + " " + e.Entry.URL)
		}
	}
}

func (p *cdpPage) record(s string) {
	p.mu.Lock()
	p.errors = append(p.errors, s)
	p.mu.Unlock()
}

// errorsSeen returns the errors recorded so far.
func (p *cdpPage) errorsSeen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errors...)
}

// call sends a command and returns its result.
func (p *cdpPage) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	ch := make(chan cdpMessage, 1)
	p.mu.Lock()
	if p.readErr != nil {
		p.mu.Unlock()
		return nil, fmt.Errorf("%s: DevTools connection ended: %w", method, p.readErr)
	}
	p.nextID++
	id := p.nextID
	p.waiting[id] = ch
	p.mu.Unlock()
	msg, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err == nil {
		err = p.ws.Write(ctx, websocket.MessageText, msg)
	}
	if err != nil {
		p.mu.Lock()
		delete(p.waiting, id)
		p.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("%s: DevTools connection ended before the reply", method)
		}
		if m.Error != nil {
			return nil, fmt.Errorf("%s: %s (%d)", method, m.Error.Message, m.Error.Code)
		}
		return m.Result, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// evaluate runs a JavaScript expression in the page and decodes its value
// (returned by value, so it must be JSON-serialisable) into v.
func (p *cdpPage) evaluate(ctx context.Context, expr string, v any) error {
	res, err := p.call(ctx, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true})
	if err != nil {
		return err
	}
	var r struct {
		Result           struct{ Value json.RawMessage }
		ExceptionDetails *struct{ Text string }
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return err
	}
	if r.ExceptionDetails != nil {
		return fmt.Errorf("evaluating %q: %s", expr, r.ExceptionDetails.Text)
	}
	return json.Unmarshal(r.Result.Value, v)
}

// screenshot writes a PNG of the page's viewport to path.
func (p *cdpPage) screenshot(ctx context.Context, path string) error {
	res, err := p.call(ctx, "Page.captureScreenshot", map[string]any{"format": "png"})
	if err != nil {
		return err
	}
	var r struct{ Data []byte } // base64 in JSON
	if err := json.Unmarshal(res, &r); err != nil {
		return err
	}
	if len(r.Data) < 8 || string(r.Data[1:4]) != "PNG" {
		return errors.New("the screenshot is not a PNG")
	}
	return os.WriteFile(path, r.Data, 0o644)
}

// httpGet fetches url and returns its status, Content-Type and body.
func httpGet(t testing.TB, url string) (int, string, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", url, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}
