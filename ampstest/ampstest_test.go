package ampstest_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// Every URI the broker hands out reaches it, and a message published over
// one transport arrives over every other, in process included.
func TestEveryTransportReachesOneBroker(t *testing.T) {
	b := ampstest.NewBroker(t, &ampstest.Options{TLS: true, Unix: true})
	uris := map[string]string{
		"tcp":       b.TCPURL(),
		"preflight": b.PreflightURL("/edge/prefix"),
		"tcps":      b.TLSURL(),
		"unix":      b.UnixURL(),
		"ws":        b.WSURL(),
		"wss":       b.WSSURL(),
	}
	subs := map[string]*ampstest.Client{}
	for name, uri := range uris {
		c := b.Dial(uri, nil)
		c.Logon("sub-" + name)
		c.Subscribe("s-"+name, "orders")
		subs[name] = c
	}
	got := make(chan broker.Message, 1)
	ctx := context.Background()
	in, err := b.Connect(ctx, "in-process", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Subscribe(ctx, "orders", func(m broker.Message) { got <- m }, nil); err != nil {
		t.Fatal(err)
	}
	pub := ampstest.Dial(t, b.TCPURL(), nil)
	pub.Logon("pub")
	pub.Publish("orders", []byte(`{"id":1}`))
	for name, c := range subs {
		m := c.Next()
		if m.Header.Command != "p" || m.Header.Topic != "orders" || m.Header.SubIDs != "s-"+name || string(m.Body) != `{"id":1}` {
			t.Errorf("%s got %s", name, m)
		}
		if m.Field("l") != "8" {
			t.Errorf("%s: l = %q, want 8 (header %s)", name, m.Field("l"), m.RawHeader)
		}
	}
	if m := <-got; string(m.Data) != `{"id":1}` {
		t.Errorf("in-process client got %s", m.Data)
	}
	if st := b.Stats(); st.Connections != 7 { // network sessions: six subscribers and pub
		t.Errorf("Stats().Connections = %d, want 7", st.Connections)
	}
}

// The CA PEM verifies the broker's certificate on its own.
func TestCAPEMTrustsTheTLSTransports(t *testing.T) {
	b := ampstest.NewBroker(t, &ampstest.Options{TLS: true})
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b.CAPEM) {
		t.Fatalf("CAPEM holds no certificate: %q", b.CAPEM)
	}
	cfg := b.ClientTLSConfig()
	cfg.RootCAs = pool
	c := ampstest.Dial(t, b.TLSURL(), &ampstest.DialOptions{TLS: cfg})
	c.Logon("tls")
	if _, err := ampstest.DialConn(b.TLSURL(), nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("dial without the CA: %v, want a certificate error", err)
	}
}

// Authentication and entitlement options reach the broker.
func TestAuthAndEntitlements(t *testing.T) {
	b := ampstest.NewBroker(t, &ampstest.Options{
		Authenticator: broker.UserTable{"alice": "secret"},
		Entitler:      broker.TopicPrefixTable{"alice": {Read: []string{"orders"}, Write: []string{"orders"}}},
	})
	c := b.Dial(b.TCPURL(), nil)
	ack := c.LogonWith(&protocol.Header{ClientName: "x", UserID: "alice", Password: "wrong"})
	if ack.Header.Status != "failure" || ack.Header.Reason != "auth failure" {
		t.Fatalf("bad password: %s", ack)
	}
	c = b.Dial(b.TCPURL(), nil)
	c.LogonWith(&protocol.Header{ClientName: "y", UserID: "alice", Password: "secret"})
	c.Subscribe("ok", "orders/1")
	if err := c.Conn.Subscribe("no", "secrets"); err == nil || !strings.Contains(err.Error(), "not entitled") {
		t.Fatalf("subscribe outside the entitlement: %v, want not entitled", err)
	}
}

// The raw client sends what it is told, and a broker that closes the
// connection is seen as closed.
func TestRawFramesAndExpectClosed(t *testing.T) {
	b := ampstest.NewBroker(t, nil)
	c := ampstest.Dial(t, b.TCPURL(), nil)
	c.WriteRaw([]byte{0, 0, 0, 5, 'g', 'a', 'r', 'b', 'a'})
	if how := c.ExpectClosed(); how == "" {
		t.Fatal("no close reason")
	}
	ws := ampstest.Dial(t, b.WSURL(), nil)
	ws.WriteWS(true, []byte("not json"))
	ws.WriteWS(false, []byte{1, 2, 3})
	if _, err := ws.Conn.ExpectClosed(ampstest.DefaultTimeout); err != nil {
		t.Fatal(err)
	}
}

// TestReadTimeoutLeavesConnectionUsable: a read that times out (on
// WebSocket too, whose library would close the connection) leaves the
// connection in step for the next command.
func TestReadTimeoutLeavesConnectionUsable(t *testing.T) {
	b := ampstest.NewBroker(t, nil)
	for _, uri := range []string{b.TCPURL(), b.WSURL()} {
		c := ampstest.Dial(t, uri, nil)
		c.Logon("patient")
		_, err := c.Conn.ReadWithin(20 * time.Millisecond)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("%s: ReadWithin on a quiet connection = %v, want a timeout", uri, err)
		}
		c.ExpectNothing(20 * time.Millisecond)
		c.Subscribe("s", "after-timeout") // fails the test if the connection broke
		c.Publish("after-timeout", []byte("x"))
		if m := c.Next(); string(m.Body) != "x" {
			t.Fatalf("%s: got %s after a timed-out read", uri, m)
		}
	}
}
