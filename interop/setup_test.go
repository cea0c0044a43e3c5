package interop

import (
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/listener"
)

// testBroker is an ampstest broker serving TCP (with preflight) and
// WebSocket on loopback, and optionally wss.
type testBroker struct {
	*ampstest.Broker
	CAFile string // PEM of the wss certificate's issuer, for NODE_EXTRA_CA_CERTS

	events *connEvents // every Options.ConnState report
}

// brokerConfig selects optional transports and security of startBroker.
type brokerConfig struct {
	wss            bool     // add a wss listener with a throwaway CA
	originPatterns []string // WebSocket OriginPatterns (browsers send Origin)

	authenticator broker.Authenticator // Options.Authenticator; nil accepts all
	entitler      broker.Entitler      // Options.Entitler; nil allows all

	sowTopics []broker.SOWTopic // Options.SOWTopics
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

// startBroker starts a broker with its listeners; it stops when the test
// ends, and its debug log is printed if the test failed.
func startBroker(t testing.TB, cfg brokerConfig) *testBroker {
	t.Helper()
	logs := &ampstest.LogBuffer{}
	events := &connEvents{}
	t.Cleanup(func() {
		// Runs after the broker's own cleanup has stopped it.
		if t.Failed() {
			t.Logf("broker log:\n%s", logs.String())
		}
	})
	b := ampstest.NewBroker(t, &ampstest.Options{
		Broker: &broker.Options{
			Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			ConnState: events.record,
			SOWTopics: cfg.sowTopics,
		},
		Authenticator: cfg.authenticator,
		Entitler:      cfg.entitler,
		WebSocket:     &listener.WebSocketOptions{OriginPatterns: cfg.originPatterns},
		TLS:           cfg.wss,
	})
	tb := &testBroker{Broker: b, events: events}
	if cfg.wss {
		tb.CAFile = filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(tb.CAFile, b.CAPEM, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return tb
}

// wsURI is the JS client's URI for this broker's ws transport.
func (tb *testBroker) wsURI() string { return tb.WSURL() }

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
