package broker_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/transport"
)

const unknownOverride = "Options.Transports names no transport"

// TestUnknownTransportOverrideIsLogged: an Options.Transports key that
// names no served transport is reported once, with the near miss.
func TestUnknownTransportOverrideIsLogged(t *testing.T) {
	var log ampstest.LogBuffer
	b := startBroker(t, &broker.Options{
		Logger:     slog.New(slog.NewTextHandler(&log, nil)),
		Transports: map[string]broker.TransportOptions{"TCP-Edge": {MaxConnections: 5}},
	})
	addr := serveTCP(t, b.Broker, "tcp_edge")
	for _, name := range []string{"one", "two"} {
		dialTCP(t, addr).Logon(name)
	}
	got := log.String()
	if n := strings.Count(got, unknownOverride); n != 1 {
		t.Fatalf("log has %d warnings about the override, want 1:\n%s", n, got)
	}
	for _, want := range []string{"level=WARN", "key=TCP-Edge", "did_you_mean=tcp_edge"} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
}

// TestServedTransportOverrideIsNotLogged: keys that name a transport with
// connections, or a listener being served that has none yet, raise
// nothing.
func TestServedTransportOverrideIsNotLogged(t *testing.T) {
	var log ampstest.LogBuffer
	b := startBroker(t, &broker.Options{
		Logger: slog.New(slog.NewTextHandler(&log, nil)),
		Transports: map[string]broker.TransportOptions{
			"tcp":  {MaxConnections: 5},
			"idle": {MaxConnections: 5},
		},
	})
	idle := &idleListener{name: "idle", accepting: make(chan struct{}), closed: make(chan struct{})}
	served := make(chan struct{})
	go func() { defer close(served); b.Serve(idle) }()
	t.Cleanup(func() { idle.Close(); <-served })
	<-idle.accepting // Serve has registered it
	dialTCP(t, b.TCPAddr).Logon("one")
	if got := log.String(); strings.Contains(got, unknownOverride) {
		t.Errorf("served overrides were reported:\n%s", got)
	}
}

// idleListener is a transport.Listener that never has a connection.
type idleListener struct {
	name      string
	once      sync.Once
	accepting chan struct{} // closed on the first Accept
	closeOnce sync.Once
	closed    chan struct{}
}

func (l *idleListener) Accept() (net.Conn, error) {
	l.once.Do(func() { close(l.accepting) })
	<-l.closed
	return nil, net.ErrClosed
}

func (l *idleListener) Handshake(context.Context, net.Conn) (transport.Conn, error) {
	return nil, errors.New("idleListener: no connections")
}

func (l *idleListener) Addr() net.Addr { return &net.TCPAddr{} }
func (l *idleListener) Name() string   { return l.name }
func (l *idleListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

// TestNoRegexTopics: with Options.NoRegexTopics a topic with regex
// characters is matched literally, over the wire and in process.
func TestNoRegexTopics(t *testing.T) {
	b := startBroker(t, &broker.Options{NoRegexTopics: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	sub, pub := dialTCP(t, b.TCPAddr), dialTCP(t, b.TCPAddr)
	sub.Logon("sub")
	pub.Logon("pub")
	sub.Subscribe("rx", "orders.*")

	inproc, err := b.Connect(ctx, "inproc", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer inproc.Close()
	got := make(chan string, 4)
	if _, err := inproc.Subscribe(ctx, "orders.*", func(m broker.Message) { got <- m.Topic }, nil); err != nil {
		t.Fatal(err)
	}

	pub.Publish("orders.eu", []byte(`{"id":1}`)) // would match as a regex
	pub.Publish("orders.*", []byte(`{"id":2}`))
	if f := sub.Next(); f.Field("t") != "orders.*" || string(f.Body) != `{"id":2}` {
		t.Errorf("network subscriber got %s%s, want only the publish to the literal topic", f.RawHeader, f.Body)
	}
	select {
	case topic := <-got:
		if topic != "orders.*" {
			t.Errorf("in-process subscriber got topic %q first, want the literal %q", topic, "orders.*")
		}
	case <-ctx.Done():
		t.Fatal("in-process subscriber got nothing")
	}
}
