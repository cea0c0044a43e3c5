package interop

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/internal/testcert"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/listener"
	"github.com/ampsbroker/ampsbroker/transport"
)

// shutdownTimeout bounds Broker.Shutdown at the end of a test.
const shutdownTimeout = 10 * time.Second

// syncBuffer is a goroutine-safe log sink; its content is printed only when
// a test fails, so passing runs stay quiet.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testBroker is a broker serving a TCP listener (with preflight) and a
// WebSocket listener on loopback, and optionally a wss listener.
type testBroker struct {
	*broker.Broker
	TCPAddr string // host:port of the stream transport
	WSAddr  string // host:port of the ws transport
	WSSAddr string // host:port of the wss transport, when asked for
	CAFile  string // PEM of the wss certificate, for NODE_EXTRA_CA_CERTS

	events *connEvents // every Options.ConnState report
}

// brokerConfig selects optional transports and security of startBroker.
type brokerConfig struct {
	wss            bool     // add a wss listener with a self-signed certificate
	originPatterns []string // WebSocket OriginPatterns (browsers send Origin)

	authenticator broker.Authenticator // Options.Authenticator; nil accepts all
	entitler      broker.Entitler      // Options.Entitler; nil allows all
}

// connEvents records the broker's connection state reports in order.
type connEvents struct {
	mu  sync.Mutex
	all []broker.ConnEvent
}

// record is the broker's Options.ConnState: it runs on connection
// goroutines, so it only appends.
func (r *connEvents) record(ev broker.ConnEvent) {
	r.mu.Lock()
	r.all = append(r.all, ev)
	r.mu.Unlock()
}

// snapshot returns the events so far.
func (r *connEvents) snapshot() []broker.ConnEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]broker.ConnEvent(nil), r.all...)
}

// startBroker starts a broker with its listeners; the test's cleanup shuts it
// down and waits for every Serve call to return.
func startBroker(t testing.TB, cfg brokerConfig) *testBroker {
	t.Helper()
	logs := &syncBuffer{}
	events := &connEvents{}
	b := broker.New(&broker.Options{
		Logger:        slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Authenticator: cfg.authenticator,
		Entitler:      cfg.entitler,
		ConnState:     events.record,
	})
	tb := &testBroker{Broker: b, events: events}
	var serving sync.WaitGroup
	serve := func(l transport.Listener) {
		serving.Add(1)
		go func() {
			defer serving.Done()
			if err := b.Serve(l); err != nil && !errors.Is(err, broker.ErrBrokerClosed) {
				logs.Write([]byte("Serve " + l.Name() + ": " + err.Error() + "\n"))
			}
		}()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("broker Shutdown: %v", err)
		}
		serving.Wait()
		if t.Failed() {
			t.Logf("broker log:\n%s", logs.String())
		}
	})

	tcp, err := listener.ListenTCP("127.0.0.1:0", nil)
	if err != nil {
		t.Fatalf("ListenTCP: %v", err)
	}
	tb.TCPAddr = tcp.Addr().String()
	serve(tcp)

	ws, err := listener.ListenWebSocket("127.0.0.1:0", &listener.WebSocketOptions{OriginPatterns: cfg.originPatterns})
	if err != nil {
		t.Fatalf("ListenWebSocket: %v", err)
	}
	tb.WSAddr = ws.Addr().String()
	serve(ws)

	if cfg.wss {
		tlsConf, caFile := selfSignedTLS(t)
		wss, err := listener.ListenWebSocket("127.0.0.1:0", &listener.WebSocketOptions{Name: "wss", TLSConfig: tlsConf})
		if err != nil {
			t.Fatalf("ListenWebSocket (wss): %v", err)
		}
		tb.WSSAddr = wss.Addr().String()
		tb.CAFile = caFile
		serve(wss)
	}
	return tb
}

// wsURI is the JS client's URI for this broker's ws transport.
func (tb *testBroker) wsURI() string { return "ws://" + tb.WSAddr + "/amps/json" }

// selfSignedTLS makes a certificate for 127.0.0.1 and localhost, returns a
// server config using it and the path of its issuer's PEM (the CA the
// client trusts, through NODE_EXTRA_CA_CERTS).
func selfSignedTLS(t testing.TB) (*tls.Config, string) {
	t.Helper()
	is := testcert.NewIssuer(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, is.PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{is.Server(t)}, MinVersion: tls.VersionTLS12}, caFile
}

// waitFor polls cond until it holds or the deadline passes. It is for
// conditions that settle asynchronously (a closed connection being reaped),
// not for measuring time.
func waitFor(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
