package broker_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/internal/testcert"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/listener"
)

func logonAs(t *testing.T, c *ampstest.Client, user, pw string) ampstest.Message {
	t.Helper()
	c.SendJSON(map[string]any{"c": "logon", "cid": "L", "client_name": user + "-app", "user_id": user, "pw": pw, "mt": "json", "a": "processed"}, nil)
	return c.Read()
}

func TestEntitlements(t *testing.T) {
	ent := broker.TopicPrefixTable{
		"alice": {Read: []string{"orders/", "public/"}, Write: []string{"orders/"}},
		"*":     {Read: []string{"news/"}},
	}
	tb := startBroker(t, &broker.Options{
		Authenticator: broker.UserTable{"alice": "a-pw", "bob": "b-pw"},
		Entitler:      ent,
	})
	b := tb.Broker
	alice := tb.Dial(tb.TCPURL(), nil)
	if f := logonAs(t, alice, "alice", "a-pw"); f.Field("status") != "success" || f.Field("reason") != "" {
		t.Fatalf("alice logon: %s", f.RawHeader)
	}
	bob := tb.Dial(tb.TCPURL(), nil)
	logonAs(t, bob, "bob", "b-pw")

	// Literal topic: checked at subscribe.
	bob.SendJSON(map[string]any{"c": "subscribe", "cid": "1", "sub_id": "1", "t": "orders/1", "a": "processed"}, nil)
	if f := bob.Read(); f.Field("status") != "failure" || f.Field("reason") != "not entitled" {
		t.Fatalf("bob subscribe orders/1: %s", f.RawHeader)
	}
	// Regex: accepted; forbidden concrete topics are withheld silently.
	bob.Subscribe("rx", ".*") // matches everything; bob may read only news/
	alice.Subscribe("ax", "^(orders|secret)/")
	// Publish: refused without write permission.
	bob.SendJSON(map[string]any{"c": "p", "cid": "p1", "t": "orders/1", "a": "processed"}, []byte("x"))
	if f := bob.Next(); f.Field("status") != "failure" || f.Field("reason") != "not entitled" {
		t.Fatalf("bob publish: %s", f.RawHeader)
	}
	alice.Publish("orders/1", []byte("o1"))
	if f := alice.Next(); f.Field("t") != "orders/1" {
		t.Fatalf("alice got %s", f.RawHeader)
	}
	ic, _ := b.Connect(context.Background(), "feeder", nil) // in-process: not checked
	ic.Publish(context.Background(), "secret/x", []byte("s"))
	ic.Publish(context.Background(), "news/1", []byte("n"))
	if f := bob.Next(); f.Field("t") != "news/1" {
		t.Fatalf("bob's regex got %s (orders/1 and secret/x must be withheld)", f.RawHeader)
	}
	alice.Flush("af") // alice may not read secret/: nothing arrived before the flush ack
	if got := b.Stats().NotEntitled; got < 3 {
		t.Errorf("NotEntitled = %d, want >= 3", got)
	}

	// ResetEntitlements disconnects the user's connections.
	b.ResetEntitlements("bob")
	bob.ExpectClosed()
	alice.Flush("still-here")
}

func TestPerTransportSecurity(t *testing.T) {
	b := broker.New(&broker.Options{
		Authenticator: broker.UserTable{"ops": "x"},
		Transports: map[string]broker.TransportOptions{
			"open": {Authenticator: broker.AuthenticatorFunc(func(context.Context, *broker.LogonRequest) error { return nil })},
		},
	})
	defer b.Close()
	strict, open := serveTCP(t, b, "tcp"), serveTCP(t, b, "open")
	s := dialTCP(t, strict)
	if f := logonAs(t, s, "guest", ""); f.Field("reason") != "auth failure" {
		t.Fatalf("strict transport: %s", f.RawHeader)
	}
	o := dialTCP(t, open)
	if f := logonAs(t, o, "guest", ""); f.Field("status") != "success" {
		t.Fatalf("open transport: %s", f.RawHeader)
	}
}

func TestConnectionLimits(t *testing.T) {
	b := broker.New(&broker.Options{
		MaxConnections: 3,
		Transports:     map[string]broker.TransportOptions{"small": {MaxConnections: 1}},
	})
	defer b.Close()
	big, small := serveTCP(t, b, "tcp"), serveTCP(t, b, "small")

	s1 := dialTCP(t, small)
	s1.Logon("s1")
	s2 := dialTCP(t, small)
	s2.ExpectClosed() // transport limit
	b1 := dialTCP(t, big)
	b1.Logon("b1")
	b2 := dialTCP(t, big)
	b2.Logon("b2")
	b3 := dialTCP(t, big)
	b3.ExpectClosed() // broker limit
	st := b.Stats()
	if st.Rejected != 2 || st.Transports["small"] != 1 || st.Transports["tcp"] != 2 {
		t.Fatalf("stats: rejected %d, transports %v", st.Rejected, st.Transports)
	}
	// A closed connection frees its place.
	s1.Close()
	deadline := time.Now().Add(ampstest.DefaultTimeout)
	for b.Stats().Transports["small"] != 0 {
		if time.Now().After(deadline) {
			t.Fatal("closed connection still counted")
		}
		time.Sleep(5 * time.Millisecond)
	}
	dialTCP(t, small).Logon("s3")
}

func TestSubscriptionAndHeaderLimits(t *testing.T) {
	tb := startBroker(t, &broker.Options{MaxSubscriptions: 2, MaxHeaderSize: 200})
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("c")
	c.Subscribe("1", "a")
	c.Subscribe("2", "b")
	c.SendJSON(map[string]any{"c": "subscribe", "cid": "3", "t": "c", "a": "processed"}, nil)
	if f := c.Read(); f.Field("reason") != "too many subscriptions" {
		t.Fatalf("third subscription: %s", f.RawHeader)
	}
	// replace does not add a subscription
	c.SendJSON(map[string]any{"c": "subscribe", "cid": "4", "sub_id": "2", "t": "c", "o": "replace", "a": "processed"}, nil)
	if f := c.Read(); f.Field("status") != "success" {
		t.Fatalf("replace at the limit: %s", f.RawHeader)
	}
	big := make([]byte, 300)
	for i := range big {
		big[i] = 'x'
	}
	c.SendJSON(map[string]any{"c": "p", "t": "a", "x": string(big)}, nil)
	c.ExpectClosed()
}

func TestMessageAgeLimit(t *testing.T) {
	tb := startBroker(t, &broker.Options{MaxMessageAge: 300 * time.Millisecond, WriteTimeout: time.Hour})
	b := tb.Broker
	slow := tb.Dial(tb.TCPURL(), nil)
	slow.Logon("slow")
	slow.Subscribe("s", "feed")
	pub := tb.Dial(tb.TCPURL(), nil)
	pub.Logon("pub")
	body := make([]byte, 64<<10)
	for i := 0; i < 400; i++ { // 25 MiB: more than the socket buffers hold
		pub.Publish("feed", body)
	}
	pub.Flush("f")
	deadline := time.Now().Add(ampstest.DefaultTimeout)
	for b.Stats().SlowConsumers != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("SlowConsumers = %d; the age limit did not trigger", b.Stats().SlowConsumers)
		}
		time.Sleep(20 * time.Millisecond)
	}
	slow.ExpectClosed()
}

func TestInProcessDropWhenSlow(t *testing.T) {
	b := broker.New(nil)
	defer b.Close()
	ctx := context.Background()
	block := make(chan struct{})
	c, _ := b.Connect(ctx, "dropper", &broker.ClientOptions{QueueBytes: 4096, DropWhenSlow: true})
	var mu sync.Mutex
	var got int
	c.Subscribe(ctx, "t", func(broker.Message) {
		<-block
		mu.Lock()
		got++
		mu.Unlock()
	}, nil)

	pub, _ := b.Connect(ctx, "pub", nil)
	for i := 0; i < 1000; i++ {
		pub.Publish(ctx, "t", make([]byte, 100))
	}
	close(block)
	if b.Stats().Dropped == 0 {
		t.Fatal("nothing dropped")
	}
	// Every publish was either queued (and is handled now) or dropped.
	deadline := time.Now().Add(ampstest.DefaultTimeout)
	for {
		mu.Lock()
		n := got
		mu.Unlock()
		if int64(n)+b.Stats().Dropped == 1000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("handled %d + dropped %d != 1000 published", n, b.Stats().Dropped)
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case <-c.Done():
		t.Fatalf("client closed: %v", c.Err())
	default:
	}
}

func TestConnStateAndStats(t *testing.T) {
	var mu sync.Mutex
	var events []broker.ConnEvent
	tb := startBroker(t, &broker.Options{ConnState: func(ev broker.ConnEvent) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	}})
	b := tb.Broker
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("watched")
	c.Subscribe("s", "t")
	st := b.Stats()
	if len(st.Conns) != 1 || st.Conns[0].ClientName != "watched" || st.Conns[0].Subscriptions != 1 || st.Conns[0].Transport != "tcp" {
		t.Fatalf("Conns = %+v", st.Conns)
	}
	// The HTTP handler serves the same snapshot.
	srv := httptest.NewServer(b.StatsHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var served broker.Stats
	json.NewDecoder(resp.Body).Decode(&served)
	resp.Body.Close()
	if served.Connections != 1 || len(served.Conns) != 1 || served.Conns[0].ClientName != "watched" {
		t.Fatalf("served stats %+v", served)
	}
	c.Close()
	deadline := time.Now().Add(ampstest.DefaultTimeout)
	for {
		mu.Lock()
		n := len(events)
		mu.Unlock()
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events: %+v", events)
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []broker.ConnState{broker.StateNew, broker.StateActive, broker.StateClosed}
	for i, ev := range events {
		if ev.State != want[i] || ev.ID == 0 || ev.ID != st.Conns[0].ID {
			t.Errorf("event %d: %+v", i, ev)
		}
	}
	if events[2].ClientName != "watched" || events[2].Err != nil {
		t.Errorf("closed event: %+v", events[2])
	}
}

// With mutual TLS the Authenticator sees the client's verified certificate.
func TestMutualTLSPeerCertificateReachesAuthenticator(t *testing.T) {
	is := testcert.NewIssuer(t)
	serverCert, clientCert, pool := is.Server(t), is.Client(t, "alice"), is.Pool
	var mu sync.Mutex
	var cn string
	b := broker.New(&broker.Options{Authenticator: broker.AuthenticatorFunc(func(_ context.Context, r *broker.LogonRequest) error {
		if r.Conn.TLS == nil || len(r.Conn.TLS.PeerCertificates) == 0 {
			return errors.New("no client certificate")
		}
		mu.Lock()
		cn = r.Conn.TLS.PeerCertificates[0].Subject.CommonName
		mu.Unlock()
		return nil
	})})
	defer b.Close()
	l, err := listener.ListenTCP("127.0.0.1:0", &listener.TCPOptions{TLSConfig: &tls.Config{
		Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool,
	}})
	if err != nil {
		t.Fatal(err)
	}
	go b.Serve(l)
	dial := func(certs []tls.Certificate) (*ampstest.Client, error) {
		conn, err := ampstest.DialConn("tcps://"+l.Addr().String()+"/amps/json",
			&ampstest.DialOptions{TLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: certs}})
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { conn.Close() })
		return ampstest.NewClient(t, conn), nil
	}
	c, err := dial([]tls.Certificate{clientCert})
	if err != nil {
		t.Fatal(err)
	}
	c.Logon("mtls")
	mu.Lock()
	if cn != "alice" {
		t.Errorf("authenticator saw CN %q", cn)
	}
	mu.Unlock()
	// Without a client certificate the TLS handshake fails.
	if c, err := dial(nil); err == nil {
		if _, err := c.Conn.Read(); err == nil {
			t.Fatal("connection without a client certificate was served")
		}
	}
}

// A transport's own slow-client budget applies to its connections only.
func TestPerTransportQueueBudget(t *testing.T) {
	b := broker.New(&broker.Options{Transports: map[string]broker.TransportOptions{
		"wan": {OutboundQueueBytes: 256 << 10},
	}})
	defer b.Close()
	lan, wan := serveTCP(t, b, "tcp"), serveTCP(t, b, "wan")
	onLAN := dialTCP(t, lan)
	onLAN.Logon("lan-reader")
	onLAN.Subscribe("s", "feed")
	onWAN := dialTCP(t, wan)
	onWAN.Logon("wan-reader")
	onWAN.Subscribe("s", "feed")
	pub := dialTCP(t, lan)
	pub.Logon("pub")
	body := make([]byte, 64<<10)
	for i := 0; i < 256; i++ { // 16 MiB, read by neither subscriber
		pub.Publish("feed", body)
	}
	pub.Flush("f")
	onWAN.ExpectClosed()
	st := b.Stats()
	if st.SlowConsumers != 1 || st.Transports["tcp"] != 2 {
		t.Fatalf("SlowConsumers %d, transports %v: only the wan reader should be gone", st.SlowConsumers, st.Transports)
	}
}

// serveTCP has b serve a TCP listener named name on 127.0.0.1:0 and returns
// its address. The listener closes with the broker.
func serveTCP(t *testing.T, b *broker.Broker, name string) string {
	t.Helper()
	l, err := listener.ListenTCP("127.0.0.1:0", &listener.TCPOptions{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	go b.Serve(l)
	return l.Addr().String()
}
