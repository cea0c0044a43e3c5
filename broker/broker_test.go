package broker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/listener"
)

// startBroker starts a test broker serving TCP, WebSocket and a Unix
// socket; it stops, checking that it drains, when the test ends.
func startBroker(t testing.TB, opts *broker.Options) *ampstest.Broker {
	t.Helper()
	return ampstest.NewBroker(t, &ampstest.Options{Broker: opts, Unix: true})
}

// dialTCP connects a test client to a TCP listener at addr.
func dialTCP(t testing.TB, addr string) *ampstest.Client {
	t.Helper()
	return ampstest.Dial(t, "tcp://"+addr+"/amps/json", nil)
}

// forEachTransport runs f once over TCP and once over a Unix socket.
func forEachTransport(t *testing.T, opts *broker.Options, f func(t *testing.T, b *broker.Broker, dial func() *ampstest.Client)) {
	for _, name := range []string{"tcp", "unix"} {
		t.Run(name, func(t *testing.T) {
			b := startBroker(t, opts)
			uri := map[string]string{"tcp": b.TCPURL(), "unix": b.UnixURL()}[name]
			f(t, b.Broker, func() *ampstest.Client { return ampstest.Dial(t, uri, nil) })
		})
	}
}

func TestLogonAck(t *testing.T) {
	forEachTransport(t, nil, func(t *testing.T, b *broker.Broker, dial func() *ampstest.Client) {
		c := dial()
		ack := c.Logon("pub-1")
		want := map[string]string{
			"c": "ack", "cid": "0", "a": "processed", "status": "success",
			"client_name": "pub-1", "reason": "authentication disabled", "s": "0",
		}
		for k, v := range want {
			if got := ack.Field(k); got != v {
				t.Errorf("logon ack %s = %q, want %q (ack %s)", k, got, v, ack.RawHeader)
			}
		}
		if !regexp.MustCompile(`^\d+\.\d+\.\d+\.\d+`).MatchString(ack.Field("version")) {
			t.Errorf("version %q lacks four numeric parts", ack.Field("version"))
		}
		if !regexp.MustCompile(`^\d+\|0\|$`).MatchString(ack.Field("bm")) {
			t.Errorf("bm %q, want <hash>|0|", ack.Field("bm"))
		}
		// The JS client extracts s with the pattern "s":<digits>, (wire spec §5).
		if !regexp.MustCompile(`"s":\d+,`).MatchString(ack.RawHeader) {
			t.Errorf("s is not a bare integer followed by a comma: %s", ack.RawHeader)
		}
	})
}

func TestPublishSubscribeExactAndRegex(t *testing.T) {
	forEachTransport(t, nil, func(t *testing.T, b *broker.Broker, dial func() *ampstest.Client) {
		sub, pub := dial(), dial()
		sub.Logon("sub")
		pub.Logon("pub")
		sub.Subscribe("exact", "orders")
		sub.Subscribe("rx", `^orders\.`)

		pub.Publish("orders", []byte(`{"id":1}`))
		pub.Publish("orders.eu", []byte(`{"id":2}`))
		pub.Publish("other", []byte(`{"id":3}`))
		pub.Publish("xorders.eu", []byte(`{"id":4}`)) // anchored regex: no match
		pub.Publish("orders", []byte(`{"id":5}`))

		want := []struct{ topic, sids, body string }{
			{"orders", "exact", `{"id":1}`},
			{"orders.eu", "rx", `{"id":2}`},
			{"orders", "exact", `{"id":5}`},
		}
		for _, w := range want {
			f := sub.Next()
			if f.Field("c") != "p" || f.Field("t") != w.topic || f.Field("sids") != w.sids || string(f.Body) != w.body {
				t.Fatalf("got %s%s, want p on %s sids %s body %s", f.RawHeader, f.Body, w.topic, w.sids, w.body)
			}
			if f.Field("l") != fmt.Sprint(len(w.body)) {
				t.Errorf("l = %s, want %d", f.Field("l"), len(w.body))
			}
		}
	})
}

func TestOneDeliveryListsEveryMatchingSubscription(t *testing.T) {
	tb := startBroker(t, nil)
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("both")
	c.Subscribe("a", "orders")
	c.Subscribe("b", "ord.*") // unanchored regex (wire spec §11)
	c.Subscribe("c", "nomatch")
	c.Publish("orders", []byte("x")) // local echo: the publisher is subscribed
	f := c.Next()
	if got := f.Field("sids"); got != "a,b" {
		t.Fatalf("sids = %q, want a,b (%s)", got, f.RawHeader)
	}
	c.Flush("f1") // no second delivery precedes the flush ack
}

func TestUnsubscribeStopsDeliveries(t *testing.T) {
	forEachTransport(t, nil, func(t *testing.T, b *broker.Broker, dial func() *ampstest.Client) {
		sub, pub := dial(), dial()
		sub.Logon("sub")
		pub.Logon("pub")
		sub.Subscribe("s1", "orders")
		sub.Subscribe("s2", "marker")
		pub.Publish("orders", []byte("before"))
		if f := sub.Next(); string(f.Body) != "before" {
			t.Fatalf("got %s", f.RawHeader)
		}
		sub.SendJSON(map[string]any{"c": "unsubscribe", "cid": "u1", "sub_id": "s1", "a": "processed"}, nil)
		if f := sub.Next(); f.Field("c") != "ack" || f.Field("cid") != "u1" || f.Field("status") != "success" {
			t.Fatalf("unsubscribe ack: %s", f.RawHeader)
		}
		pub.Publish("orders", []byte("after"))
		pub.Publish("marker", []byte("end"))
		// Deliveries from one publisher keep their order, so the marker
		// arriving first proves "after" was not delivered.
		if f := sub.Next(); f.Field("t") != "marker" {
			t.Fatalf("after unsubscribe got %s%s", f.RawHeader, f.Body)
		}
		// unsubscribe all (the Go client's default, no sub_id).
		sub.SendJSON(map[string]any{"c": "unsubscribe", "cid": "u2", "a": "processed"}, nil)
		sub.Next()
		pub.Publish("marker", []byte("gone"))
		pub.Flush("pf")
		sub.Flush("sf")
		if got := b.Stats().Subscriptions; got != 0 {
			t.Errorf("Subscriptions = %d after unsubscribe all", got)
		}
	})
}

func TestLargeMessageAndBurst(t *testing.T) {
	forEachTransport(t, nil, func(t *testing.T, b *broker.Broker, dial func() *ampstest.Client) {
		sub, pub := dial(), dial()
		sub.Logon("sub")
		pub.Logon("pub")
		sub.Subscribe("big", "big")
		sub.Subscribe("burst", "burst")

		big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
		big[12345] = '\n'
		pub.Publish("big", big)
		if f := sub.Next(); !bytes.Equal(f.Body, big) {
			t.Fatalf("1 MiB body differs: got %d bytes", len(f.Body))
		}

		const n = 10000
		go func() {
			for i := 0; i < n; i++ {
				pub.Publish("burst", []byte(fmt.Sprintf(`{"n":%d}`, i)))
			}
		}()
		for i := 0; i < n; i++ {
			f := sub.Next()
			if want := fmt.Sprintf(`{"n":%d}`, i); string(f.Body) != want {
				t.Fatalf("message %d: got %s, want %s", i, f.Body, want)
			}
		}
	})
}

func TestHeartbeatsKeepIdleConnectionOpen(t *testing.T) {
	forEachTransport(t, nil, func(t *testing.T, b *broker.Broker, dial func() *ampstest.Client) {
		c := dial()
		c.Logon("hb")
		c.SendJSON(map[string]any{"c": "heartbeat", "cid": "1", "opts": "start,1", "a": "processed"}, nil)
		if f := c.Read(); f.Field("a") != "processed" || f.Field("status") != "success" {
			t.Fatalf("heartbeat ack: %s", f.RawHeader)
		}
		// Answer four server beats, as a client does (wire spec §10.1).
		for i := 0; i < 4; i++ {
			f := c.Read()
			if f.RawHeader != `{"c":"heartbeat"}` {
				t.Fatalf("beat %d: got %s", i, f.RawHeader)
			}
			c.SendJSON(map[string]any{"c": "heartbeat", "opts": "beat"}, nil)
		}
		c.Flush("still-open")
	})
}

func TestSilentHeartbeatingClientIsDropped(t *testing.T) {
	tb := startBroker(t, &broker.Options{HeartbeatMisses: 1})
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("silent")
	c.SendJSON(map[string]any{"c": "heartbeat", "cid": "1", "o": "start,1", "a": "received"}, nil)
	if f := c.Read(); f.Field("a") != "received" {
		t.Fatalf("heartbeat ack: %s", f.RawHeader)
	}
	c.ExpectClosed() // never beats back
}

func TestSubscribeWithoutTopicFailsAndConnectionStaysUsable(t *testing.T) {
	forEachTransport(t, nil, func(t *testing.T, b *broker.Broker, dial func() *ampstest.Client) {
		c := dial()
		c.Logon("c")
		c.SendJSON(map[string]any{"c": "subscribe", "cid": "1", "sub_id": "1", "a": "processed"}, nil)
		f := c.Read()
		if f.Field("status") != "failure" || f.Field("reason") != "no topic" || f.Field("cid") != "1" {
			t.Fatalf("got %s", f.RawHeader)
		}
		c.Subscribe("2", "t")
		c.Publish("t", []byte("ok"))
		if f := c.Next(); string(f.Body) != "ok" {
			t.Fatalf("got %s", f.RawHeader)
		}
	})
}

func TestCommandFailures(t *testing.T) {
	tb := startBroker(t, nil)
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("f")
	cases := []struct {
		header map[string]any
		reason string
	}{
		{map[string]any{"c": "subscribe", "cid": "r", "t": "a(b", "a": "processed"}, "bad regex topic"},
		{map[string]any{"c": "subscribe", "cid": "lookaround", "t": "(?!x)y", "a": "processed"}, "bad regex topic"},
		{map[string]any{"c": "subscribe", "cid": "f", "t": "a", "filter": "/x = ", "a": "processed"}, "bad filter"},
		{map[string]any{"c": "subscribe", "cid": "fn", "t": "a", "filter": "SUM(/x) > 1", "a": "processed"}, "bad filter"},
		{map[string]any{"c": "subscribe", "cid": "o1", "t": "a", "o": "frobnicate", "a": "processed"}, "invalid options"},
		{map[string]any{"c": "subscribe", "cid": "o2", "t": "a", "o": "replace=yes", "a": "processed"}, "invalid options"},
		{map[string]any{"c": "subscribe", "cid": "o3", "t": "a", "o": "replace, conflation=1s", "a": "processed"}, "conflation option is not supported yet"},
		{map[string]any{"c": "subscribe", "cid": "o4", "t": "a", "opts": "select=-/", "a": "processed"}, "invalid options"},
		{map[string]any{"c": "sow", "cid": "s", "t": "a", "a": "processed,completed"}, "not a sow topic"},
		{map[string]any{"c": "sow", "cid": "bs", "t": "a", "bs": 10001, "a": "processed"}, "invalid batch size"},
		{map[string]any{"c": "sow", "cid": "ob", "t": "a", "orderby": "/a UP", "a": "processed"}, "invalid orderby"},
		{map[string]any{"c": "sow", "cid": "ob2", "t": "a", "orderby": "/a+1", "a": "processed"}, "invalid orderby"},
		{map[string]any{"c": "sow_delete", "cid": "sd", "t": "a", "a": "processed"}, "sow_delete takes one of filter, sow_keys or message data"},
		{map[string]any{"c": "delta_subscribe", "cid": "ds", "t": "a", "o": "no_empties=1", "a": "processed"}, "invalid options"},
		{map[string]any{"c": "p", "cid": "amps", "t": "/AMPS/x", "a": "processed"}, "invalid topic"},
		{map[string]any{"c": "p", "cid": "nt", "a": "processed"}, "no topic"},
		{map[string]any{"c": "heartbeat", "cid": "hb", "o": "start,abc", "a": "processed"}, "invalid options"},
		{map[string]any{"c": "logon", "cid": "again", "a": "processed"}, "already logged on"},
	}
	for _, tc := range cases {
		c.SendJSON(tc.header, nil)
		f := c.Read()
		if f.Field("cid") != tc.header["cid"] || f.Field("status") != "failure" || f.Field("reason") != tc.reason {
			t.Errorf("%v: got %s, want failure %q", tc.header, f.RawHeader, tc.reason)
		}
		if tc.header["c"] == "sow" && tc.header["cid"] == "s" {
			if f := c.Read(); f.Field("a") != "completed" || f.Field("status") != "failure" {
				t.Errorf("sow completed ack: %s", f.RawHeader)
			}
		}
	}
	// subid in use, then replace.
	c.Subscribe("dup", "one")
	c.SendJSON(map[string]any{"c": "subscribe", "cid": "dup2", "sub_id": "dup", "t": "two", "a": "processed"}, nil)
	if f := c.Read(); f.Field("reason") != "subid in use" {
		t.Errorf("reused sub_id: %s", f.RawHeader)
	}
	c.SendJSON(map[string]any{"c": "subscribe", "cid": "dup3", "sub_id": "dup", "t": "two", "o": "replace", "a": "processed"}, nil)
	if f := c.Read(); f.Field("status") != "success" {
		t.Errorf("replace: %s", f.RawHeader)
	}
	c.Publish("one", []byte("1"))
	c.Publish("two", []byte("2"))
	if f := c.Next(); f.Field("t") != "two" || f.Field("sids") != "dup" {
		t.Errorf("after replace got %s", f.RawHeader)
	}
	// /AMPS/devnull is accepted and discarded (semantics §2).
	c.SendJSON(map[string]any{"c": "p", "cid": "dn", "t": "/AMPS/devnull", "a": "processed"}, []byte("x"))
	if f := c.Read(); f.Field("status") != "success" {
		t.Errorf("devnull: %s", f.RawHeader)
	}
}

func TestUnknownCommandFailsThenCloses(t *testing.T) {
	tb := startBroker(t, nil)
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("u")
	c.SendJSON(map[string]any{"c": "frobnicate", "cid": "9", "a": "processed"}, nil)
	if f := c.Read(); f.Field("reason") != "unknown command" || f.Field("status") != "failure" {
		t.Fatalf("got %s", f.RawHeader)
	}
	c.ExpectClosed()
}

func TestCommandBeforeLogonFailsThenCloses(t *testing.T) {
	tb := startBroker(t, nil)
	c := tb.Dial(tb.TCPURL(), nil)
	c.SendJSON(map[string]any{"c": "subscribe", "cid": "1", "t": "x", "a": "processed"}, nil)
	if f := c.Read(); f.Field("status") != "failure" || f.Field("reason") != "logon required" {
		t.Fatalf("got %s", f.RawHeader)
	}
	c.ExpectClosed()
}

func TestAuthenticator(t *testing.T) {
	var seen *broker.LogonRequest
	auth := broker.AuthenticatorFunc(func(ctx context.Context, req *broker.LogonRequest) error {
		seen = req
		if req.Header.UserID == "alice" && req.Header.Password == "secret" {
			return nil
		}
		return errors.New("bad password")
	})
	tb := startBroker(t, &broker.Options{Authenticator: auth})
	b := tb.Broker
	ok := tb.Dial(tb.TCPURL(), nil)
	ok.SendJSON(map[string]any{"c": "logon", "cid": "1", "user_id": "alice", "pw": "secret", "mt": "json", "a": "processed"}, nil)
	if f := ok.Read(); f.Field("status") != "success" || f.Field("reason") != "" {
		t.Fatalf("good logon: %s", f.RawHeader)
	}
	if seen == nil || seen.Conn == nil || seen.Conn.Transport == "" || seen.Conn.RemoteAddr == nil {
		t.Fatalf("authenticator did not see the connection: %+v", seen)
	}
	bad := tb.Dial(tb.TCPURL(), nil)
	bad.SendJSON(map[string]any{"c": "logon", "cid": "2", "user_id": "alice", "pw": "nope", "mt": "json", "a": "processed"}, nil)
	if f := bad.Read(); f.Field("status") != "failure" || f.Field("reason") != "auth failure" {
		t.Fatalf("bad logon: %s", f.RawHeader)
	}
	bad.ExpectClosed()
	if got := b.Stats().AuthFailures; got != 1 {
		t.Errorf("AuthFailures = %d, want 1", got)
	}
}

func TestMessageTypeRules(t *testing.T) {
	tb := startBroker(t, nil)
	for _, tc := range []struct {
		mt     any
		reason string
	}{
		{nil, "message type required"},
		{"yaml", "unknown message type"},
	} {
		c := tb.Dial(tb.TCPURL(), nil)
		h := map[string]any{"c": "logon", "cid": "1", "a": "processed"}
		if tc.mt != nil {
			h["mt"] = tc.mt
		}
		c.SendJSON(h, nil)
		if f := c.Read(); f.Field("status") != "failure" || f.Field("reason") != tc.reason {
			t.Errorf("mt %v: %s", tc.mt, f.RawHeader)
		}
		c.ExpectClosed()
	}
}

// Topics are per message type (semantics §2): an nvfix subscriber does not
// see json publishes to the same name.
func TestTopicsArePerMessageType(t *testing.T) {
	tb := startBroker(t, nil)
	fix := tb.Dial(tb.TCPURL(), nil)
	fix.SendJSON(map[string]any{"c": "logon", "cid": "1", "mt": "nvfix", "a": "processed"}, nil)
	fix.Read()
	fix.Subscribe("s", "t")
	js := tb.Dial(tb.TCPURL(), nil)
	js.Logon("json")
	js.Publish("t", []byte("{}"))
	js.Flush("f")
	fix.Publish("t", []byte("a=1"))
	if f := fix.Next(); string(f.Body) != "a=1" {
		t.Fatalf("nvfix subscriber got %s%s", f.RawHeader, f.Body)
	}
}

func TestInProcessAndNetworkClients(t *testing.T) {
	tb := startBroker(t, nil)
	b := tb.Broker
	ctx := context.Background()
	ic, err := b.Connect(ctx, "inproc", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan broker.Message, 10)
	if _, err := ic.Subscribe(ctx, `^prices/`, func(m broker.Message) { got <- m }, nil); err != nil {
		t.Fatal(err)
	}
	for _, ep := range [][2]string{{"tcp", tb.TCPURL()}, {"unix", tb.UnixURL()}} {
		name := ep[0]
		net := ampstest.Dial(t, ep[1], nil)
		net.Logon("net-" + name)
		net.Subscribe("n", "from-go")

		// network -> in-process
		net.Publish("prices/"+name, []byte(`{"px":1}`))
		select {
		case m := <-got:
			if m.Topic != "prices/"+name || string(m.Data) != `{"px":1}` {
				t.Fatalf("in-process got %+v", m)
			}
		case <-time.After(ampstest.DefaultTimeout):
			t.Fatal("in-process subscriber got nothing")
		}
		// in-process -> network
		if err := ic.Publish(ctx, "from-go", []byte("hello "+name)); err != nil {
			t.Fatal(err)
		}
		if f := net.Next(); f.Field("t") != "from-go" || string(f.Body) != "hello "+name || f.Field("sids") != "n" {
			t.Fatalf("network got %s%s", f.RawHeader, f.Body)
		}
	}
	if err := ic.Publish(ctx, "/AMPS/x", nil); err == nil {
		t.Error("publish to /AMPS/x succeeded")
	}
	if _, err := ic.Subscribe(ctx, "a(", func(broker.Message) {}, nil); err == nil || !strings.Contains(err.Error(), "bad regex topic") {
		t.Errorf("bad regex subscribe: %v", err)
	}
}

func TestInProcessUnsubscribeAndClose(t *testing.T) {
	b := broker.New(nil)
	defer b.Close()
	ctx := context.Background()
	c, _ := b.Connect(ctx, "c", nil)
	var mu sync.Mutex
	var seen []string
	sub, err := c.Subscribe(ctx, "t", func(m broker.Message) {
		mu.Lock()
		seen = append(seen, string(m.Data))
		mu.Unlock()
	}, nil)

	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	c.Subscribe(ctx, "marker", func(broker.Message) { close(done) }, nil)
	c.Publish(ctx, "t", []byte("1"))
	c.Publish(ctx, "marker", nil)
	<-done
	sub.Unsubscribe()
	c.Publish(ctx, "t", []byte("2"))
	c.Close()
	<-c.Done()
	if !errors.Is(c.Err(), broker.ErrClientClosed) {
		t.Errorf("Err = %v", c.Err())
	}
	if err := c.Publish(ctx, "t", nil); !errors.Is(err, broker.ErrClientClosed) {
		t.Errorf("Publish after Close = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != "1" {
		t.Errorf("seen %v, want [1]", seen)
	}
}

// A subscriber that never reads is disconnected as a slow consumer while
// the publisher and a well-behaved subscriber carry on.
func TestSlowConsumerIsDisconnected(t *testing.T) {
	tb := startBroker(t, &broker.Options{OutboundQueueBytes: 256 << 10})
	b := tb.Broker
	slow := tb.Dial(tb.TCPURL(), nil)
	slow.Logon("slow")
	slow.Subscribe("s", "feed")
	good := tb.Dial(tb.TCPURL(), nil)
	good.Logon("good")
	good.Subscribe("g", "feed")
	pub := tb.Dial(tb.TCPURL(), nil)
	pub.Logon("pub")

	body := bytes.Repeat([]byte("x"), 16<<10)
	// 32 MiB in all: far beyond the socket buffers plus the budget. The
	// publisher sends in batches of 4 (64 KiB) and waits for the
	// well-behaved subscriber to read each batch, so at most two batches
	// are counted against its budget (one still being released by the
	// writer) and only the reader that never reads can exceed it.
	const n, batch = 2048, 4
	for i := 0; i < n; i += batch {
		for j := 0; j < batch; j++ {
			pub.Publish("feed", body)
		}
		for j := 0; j < batch; j++ {
			if f := good.Next(); f.Field("c") != "p" || len(f.Body) != len(body) {
				t.Fatalf("well-behaved subscriber, message %d: %s", i+j, f.RawHeader)
			}
		}
	}
	deadline := time.Now().Add(ampstest.DefaultTimeout)
	for b.Stats().SlowConsumers != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("SlowConsumers = %d, want 1", b.Stats().SlowConsumers)
		}
		time.Sleep(10 * time.Millisecond)
	}
	slow.ExpectClosed()
}

func TestShutdownLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		b := broker.New(nil)
		tcp, err := listener.ListenTCP("127.0.0.1:0", nil)
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- b.Serve(tcp) }()
		ctx := context.Background()
		ic, _ := b.Connect(ctx, "ic", nil)
		ic.Subscribe(ctx, "t", func(broker.Message) {}, nil)
		var clients []*ampstest.Client
		for i := 0; i < 5; i++ {
			c := dialTCP(t, tcp.Addr().String())
			c.Logon(fmt.Sprint("c", i))
			c.Subscribe("s", "t")
			c.SendJSON(map[string]any{"c": "heartbeat", "o": "start,1"}, nil)
			clients = append(clients, c)
		}
		ic.Publish(ctx, "t", []byte("queued"))
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := b.Shutdown(sctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, broker.ErrBrokerClosed) {
			t.Fatalf("Serve returned %v", err)
		}
		// Graceful: what was queued is delivered before the close.
		for _, c := range clients {
			if f := c.Next(); string(f.Body) != "queued" {
				t.Errorf("got %s before close", f.RawHeader)
			}
			c.ExpectClosed()
			c.Close()
		}
		if _, err := b.Connect(ctx, "late", nil); !errors.Is(err, broker.ErrBrokerClosed) {
			t.Errorf("Connect after Shutdown = %v", err)
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d before, %d after Shutdown\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A failed publish that asked for a persisted ack echoes its sequence
// number, so a publish store can return the message to the application.
func TestFailedPublishAckCarriesSequence(t *testing.T) {
	tb := startBroker(t, nil)
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("store")
	c.SendJSON(map[string]any{"c": "publish", "t": "/AMPS/forbidden", "a": "persisted", "s": "1795369341455000001"}, []byte("x"))
	f := c.Read()
	if f.Field("a") != "persisted" || f.Field("status") != "failure" || f.Field("s") != "1795369341455000001" {
		t.Fatalf("got %s", f.RawHeader)
	}
	if !regexp.MustCompile(`"s":1795369341455000001,`).MatchString(f.RawHeader) {
		t.Errorf("s is not a bare integer followed by a comma (wire spec §5): %s", f.RawHeader)
	}
}

// Nothing for a subscription follows its unsubscribe ack (wire spec §7.7),
// even while publishers race the unsubscribe.
func TestNoDeliveryAfterUnsubscribeAck(t *testing.T) {
	tb := startBroker(t, nil)
	b := tb.Broker
	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		pub, err := b.Connect(ctx, fmt.Sprint("pub", g), nil)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					pub.Publish(ctx, "orders", []byte("x"))
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	sub := tb.Dial(tb.TCPURL(), nil)
	sub.Logon("sub")
	// awaitAck reads up to the ack of cid, calling seen for every delivery.
	awaitAck := func(cid string, seen func(ampstest.Message)) {
		for {
			f := sub.Read()
			if f.Field("c") == "ack" && f.Field("cid") == cid {
				return
			}
			if f.Field("c") == "p" && seen != nil {
				seen(f)
			}
		}
	}
	for i := 0; i < 30; i++ {
		id := fmt.Sprint("s", i)
		sub.SendJSON(map[string]any{"c": "subscribe", "cid": id, "sub_id": id, "t": "orders", "a": "processed"}, nil)
		awaitAck(id, nil)
		sub.SendJSON(map[string]any{"c": "unsubscribe", "cid": "u" + id, "sub_id": id, "a": "processed"}, nil)
		awaitAck("u"+id, nil)
		sub.SendJSON(map[string]any{"c": "flush", "cid": "f" + id, "a": "processed"}, nil)
		awaitAck("f"+id, func(f ampstest.Message) {
			if f.Field("sids") == id {
				t.Fatalf("iteration %d: delivery for %s after its unsubscribe ack: %s", i, id, f.RawHeader)
			}
		})
	}
}

// A client that beats on its own clock, never waiting for the server,
// still gets a server heartbeat every interval (wire spec §10.1).
func TestHeartbeatsReachAClientThatBeatsFirst(t *testing.T) {
	tb := startBroker(t, nil)
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("beater")
	c.SendJSON(map[string]any{"c": "heartbeat", "cid": "1", "opts": "start,1", "a": "processed"}, nil)
	if f := c.Read(); f.Field("a") != "processed" {
		t.Fatal(f.RawHeader)
	}
	stop := make(chan struct{})
	beaterDone := make(chan struct{})
	go func() {
		defer close(beaterDone)
		tick := time.NewTicker(700 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				c.SendJSON(map[string]any{"c": "heartbeat", "opts": "beat"}, nil)
			}
		}
	}()
	for i := 0; i < 3; i++ {
		if f := c.Read(); f.RawHeader != `{"c":"heartbeat"}` {
			t.Fatalf("got %s, want a server heartbeat", f.RawHeader)
		}
	}
	close(stop)
	<-beaterDone
}

// An unsubscribe that names only a query cancels that query and leaves
// the subscriptions alone.
func TestUnsubscribeQueryOnlyKeepsSubscriptions(t *testing.T) {
	tb := startBroker(t, nil)
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("q")
	c.Subscribe("s", "t")
	c.SendJSON(map[string]any{"c": "unsubscribe", "cid": "u", "query_id": "q1", "a": "processed"}, nil)
	if f := c.Read(); f.Field("cid") != "u" || f.Field("status") != "success" {
		t.Fatal(f.RawHeader)
	}
	c.Publish("t", []byte("still"))
	if f := c.Next(); string(f.Body) != "still" {
		t.Fatalf("got %s", f.RawHeader)
	}
}
