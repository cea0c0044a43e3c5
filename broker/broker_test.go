package broker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/listener"
	"github.com/ampsbroker/ampsbroker/transport"
)

// endpoint is a served listener: the network and address to dial.
type endpoint struct{ network, addr string }

// startBroker starts a broker with a TCP listener on 127.0.0.1:0 and a Unix
// listener in a temp dir, and shuts it down (checking it drains) at the end
// of the test.
func startBroker(t testing.TB, opts *broker.Options) (*broker.Broker, map[string]endpoint) {
	t.Helper()
	return startBrokerWith(t, opts, nil)
}

// startBrokerWith is startBroker with options for the TCP listener.
func startBrokerWith(t testing.TB, opts *broker.Options, tcpOpts *listener.TCPOptions) (*broker.Broker, map[string]endpoint) {
	t.Helper()
	b := broker.New(opts)
	tcp, err := listener.ListenTCP("127.0.0.1:0", tcpOpts)
	if err != nil {
		t.Fatal(err)
	}
	unix, err := listener.ListenUnix(filepath.Join(t.TempDir(), "amps.sock"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, l := range []transport.Listener{tcp, unix} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Serve(l); !errors.Is(err, broker.ErrBrokerClosed) {
				t.Errorf("Serve(%s) = %v, want ErrBrokerClosed", l.Name(), err)
			}
		}()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		wg.Wait()
	})
	return b, map[string]endpoint{
		"tcp":  {"tcp", tcp.Addr().String()},
		"unix": {"unix", unix.Addr().String()},
	}
}

// forEachTransport runs f once over TCP and once over a Unix socket.
func forEachTransport(t *testing.T, opts *broker.Options, f func(t *testing.T, b *broker.Broker, dial func() *wireClient)) {
	for _, name := range []string{"tcp", "unix"} {
		t.Run(name, func(t *testing.T) {
			b, eps := startBroker(t, opts)
			ep := eps[name]
			f(t, b, func() *wireClient { return dialWire(t, ep.network, ep.addr) })
		})
	}
}

func TestLogonAck(t *testing.T) {
	forEachTransport(t, nil, func(t *testing.T, b *broker.Broker, dial func() *wireClient) {
		c := dial()
		ack := c.logon("pub-1")
		want := map[string]string{
			"c": "ack", "cid": "0", "a": "processed", "status": "success",
			"client_name": "pub-1", "reason": "authentication disabled", "s": "0",
		}
		for k, v := range want {
			if got := ack.str(k); got != v {
				t.Errorf("logon ack %s = %q, want %q (ack %s)", k, got, v, ack.raw)
			}
		}
		if !regexp.MustCompile(`^\d+\.\d+\.\d+\.\d+`).MatchString(ack.str("version")) {
			t.Errorf("version %q lacks four numeric parts", ack.str("version"))
		}
		if !regexp.MustCompile(`^\d+\|0\|$`).MatchString(ack.str("bm")) {
			t.Errorf("bm %q, want <hash>|0|", ack.str("bm"))
		}
		// The JS client extracts s with the pattern "s":<digits>, (wire spec §5).
		if !regexp.MustCompile(`"s":\d+,`).MatchString(ack.raw) {
			t.Errorf("s is not a bare integer followed by a comma: %s", ack.raw)
		}
	})
}

func TestPublishSubscribeExactAndRegex(t *testing.T) {
	forEachTransport(t, nil, func(t *testing.T, b *broker.Broker, dial func() *wireClient) {
		sub, pub := dial(), dial()
		sub.logon("sub")
		pub.logon("pub")
		sub.subscribe("exact", "orders")
		sub.subscribe("rx", `^orders\.`)

		pub.publish("orders", []byte(`{"id":1}`))
		pub.publish("orders.eu", []byte(`{"id":2}`))
		pub.publish("other", []byte(`{"id":3}`))
		pub.publish("xorders.eu", []byte(`{"id":4}`)) // anchored regex: no match
		pub.publish("orders", []byte(`{"id":5}`))

		want := []struct{ topic, sids, body string }{
			{"orders", "exact", `{"id":1}`},
			{"orders.eu", "rx", `{"id":2}`},
			{"orders", "exact", `{"id":5}`},
		}
		for _, w := range want {
			f := sub.recvSkipping()
			if f.str("c") != "p" || f.str("t") != w.topic || f.str("sids") != w.sids || string(f.body) != w.body {
				t.Fatalf("got %s%s, want p on %s sids %s body %s", f.raw, f.body, w.topic, w.sids, w.body)
			}
			if f.str("l") != fmt.Sprint(len(w.body)) {
				t.Errorf("l = %s, want %d", f.str("l"), len(w.body))
			}
		}
	})
}

func TestOneDeliveryListsEveryMatchingSubscription(t *testing.T) {
	_, eps := startBroker(t, nil)
	c := dialWire(t, "tcp", eps["tcp"].addr)
	c.logon("both")
	c.subscribe("a", "orders")
	c.subscribe("b", "ord.*") // unanchored regex (wire spec §11)
	c.subscribe("c", "nomatch")
	c.publish("orders", []byte("x")) // local echo: the publisher is subscribed
	f := c.recvSkipping()
	if got := f.str("sids"); got != "a,b" {
		t.Fatalf("sids = %q, want a,b (%s)", got, f.raw)
	}
	c.flush("f1") // no second delivery precedes the flush ack
}

func TestUnsubscribeStopsDeliveries(t *testing.T) {
	forEachTransport(t, nil, func(t *testing.T, b *broker.Broker, dial func() *wireClient) {
		sub, pub := dial(), dial()
		sub.logon("sub")
		pub.logon("pub")
		sub.subscribe("s1", "orders")
		sub.subscribe("s2", "marker")
		pub.publish("orders", []byte("before"))
		if f := sub.recvSkipping(); string(f.body) != "before" {
			t.Fatalf("got %s", f.raw)
		}
		sub.send(map[string]any{"c": "unsubscribe", "cid": "u1", "sub_id": "s1", "a": "processed"}, nil)
		if f := sub.recvSkipping(); f.str("c") != "ack" || f.str("cid") != "u1" || f.str("status") != "success" {
			t.Fatalf("unsubscribe ack: %s", f.raw)
		}
		pub.publish("orders", []byte("after"))
		pub.publish("marker", []byte("end"))
		// Deliveries from one publisher keep their order, so the marker
		// arriving first proves "after" was not delivered.
		if f := sub.recvSkipping(); f.str("t") != "marker" {
			t.Fatalf("after unsubscribe got %s%s", f.raw, f.body)
		}
		// unsubscribe all (the Go client's default, no sub_id).
		sub.send(map[string]any{"c": "unsubscribe", "cid": "u2", "a": "processed"}, nil)
		sub.recvSkipping()
		pub.publish("marker", []byte("gone"))
		pub.flush("pf")
		sub.flush("sf")
		if got := b.Stats().Subscriptions; got != 0 {
			t.Errorf("Subscriptions = %d after unsubscribe all", got)
		}
	})
}

func TestLargeMessageAndBurst(t *testing.T) {
	forEachTransport(t, nil, func(t *testing.T, b *broker.Broker, dial func() *wireClient) {
		sub, pub := dial(), dial()
		sub.logon("sub")
		pub.logon("pub")
		sub.subscribe("big", "big")
		sub.subscribe("burst", "burst")

		big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
		big[12345] = '\n'
		pub.publish("big", big)
		if f := sub.recvSkipping(); !bytes.Equal(f.body, big) {
			t.Fatalf("1 MiB body differs: got %d bytes", len(f.body))
		}

		const n = 10000
		go func() {
			for i := 0; i < n; i++ {
				pub.publish("burst", []byte(fmt.Sprintf(`{"n":%d}`, i)))
			}
		}()
		for i := 0; i < n; i++ {
			f := sub.recvSkipping()
			if want := fmt.Sprintf(`{"n":%d}`, i); string(f.body) != want {
				t.Fatalf("message %d: got %s, want %s", i, f.body, want)
			}
		}
	})
}

func TestHeartbeatsKeepIdleConnectionOpen(t *testing.T) {
	forEachTransport(t, nil, func(t *testing.T, b *broker.Broker, dial func() *wireClient) {
		c := dial()
		c.logon("hb")
		c.send(map[string]any{"c": "heartbeat", "cid": "1", "opts": "start,1", "a": "processed"}, nil)
		if f := c.recv(); f.str("a") != "processed" || f.str("status") != "success" {
			t.Fatalf("heartbeat ack: %s", f.raw)
		}
		// Answer four server beats, as a client does (wire spec §10.1).
		for i := 0; i < 4; i++ {
			f := c.recv()
			if f.raw != `{"c":"heartbeat"}` {
				t.Fatalf("beat %d: got %s", i, f.raw)
			}
			c.send(map[string]any{"c": "heartbeat", "opts": "beat"}, nil)
		}
		c.flush("still-open")
	})
}

func TestSilentHeartbeatingClientIsDropped(t *testing.T) {
	_, eps := startBroker(t, &broker.Options{HeartbeatMisses: 1})
	c := dialWire(t, "tcp", eps["tcp"].addr)
	c.logon("silent")
	c.send(map[string]any{"c": "heartbeat", "cid": "1", "o": "start,1", "a": "received"}, nil)
	if f := c.recv(); f.str("a") != "received" {
		t.Fatalf("heartbeat ack: %s", f.raw)
	}
	c.expectClosed() // never beats back
}

func TestSubscribeWithoutTopicFailsAndConnectionStaysUsable(t *testing.T) {
	forEachTransport(t, nil, func(t *testing.T, b *broker.Broker, dial func() *wireClient) {
		c := dial()
		c.logon("c")
		c.send(map[string]any{"c": "subscribe", "cid": "1", "sub_id": "1", "a": "processed"}, nil)
		f := c.recv()
		if f.str("status") != "failure" || f.str("reason") != "no topic" || f.str("cid") != "1" {
			t.Fatalf("got %s", f.raw)
		}
		c.subscribe("2", "t")
		c.publish("t", []byte("ok"))
		if f := c.recvSkipping(); string(f.body) != "ok" {
			t.Fatalf("got %s", f.raw)
		}
	})
}

func TestCommandFailures(t *testing.T) {
	_, eps := startBroker(t, nil)
	c := dialWire(t, "tcp", eps["tcp"].addr)
	c.logon("f")
	cases := []struct {
		header map[string]any
		reason string
	}{
		{map[string]any{"c": "subscribe", "cid": "r", "t": "a(b", "a": "processed"}, "bad regex topic"},
		{map[string]any{"c": "subscribe", "cid": "lookaround", "t": "(?!x)y", "a": "processed"}, "bad regex topic"},
		{map[string]any{"c": "subscribe", "cid": "f", "t": "a", "filter": "/x = 1", "a": "processed"}, "filters are not supported yet"},
		{map[string]any{"c": "sow", "cid": "s", "t": "a", "a": "processed,completed"}, "sow is not supported yet"},
		{map[string]any{"c": "sow_and_subscribe", "cid": "ss", "t": "a", "a": "processed"}, "sow_and_subscribe is not supported yet"},
		{map[string]any{"c": "delta_publish", "cid": "dp", "t": "a", "a": "processed"}, "delta_publish is not supported yet"},
		{map[string]any{"c": "p", "cid": "amps", "t": "/AMPS/x", "a": "processed"}, "invalid topic"},
		{map[string]any{"c": "p", "cid": "nt", "a": "processed"}, "no topic"},
		{map[string]any{"c": "heartbeat", "cid": "hb", "o": "start,abc", "a": "processed"}, "invalid options"},
		{map[string]any{"c": "logon", "cid": "again", "a": "processed"}, "already logged on"},
	}
	for _, tc := range cases {
		c.send(tc.header, nil)
		f := c.recv()
		if f.str("cid") != tc.header["cid"] || f.str("status") != "failure" || f.str("reason") != tc.reason {
			t.Errorf("%v: got %s, want failure %q", tc.header, f.raw, tc.reason)
		}
		if tc.header["c"] == "sow" {
			if f := c.recv(); f.str("a") != "completed" || f.str("status") != "failure" {
				t.Errorf("sow completed ack: %s", f.raw)
			}
		}
	}
	// subid in use, then replace.
	c.subscribe("dup", "one")
	c.send(map[string]any{"c": "subscribe", "cid": "dup2", "sub_id": "dup", "t": "two", "a": "processed"}, nil)
	if f := c.recv(); f.str("reason") != "subid in use" {
		t.Errorf("reused sub_id: %s", f.raw)
	}
	c.send(map[string]any{"c": "subscribe", "cid": "dup3", "sub_id": "dup", "t": "two", "o": "replace", "a": "processed"}, nil)
	if f := c.recv(); f.str("status") != "success" {
		t.Errorf("replace: %s", f.raw)
	}
	c.publish("one", []byte("1"))
	c.publish("two", []byte("2"))
	if f := c.recvSkipping(); f.str("t") != "two" || f.str("sids") != "dup" {
		t.Errorf("after replace got %s", f.raw)
	}
	// /AMPS/devnull is accepted and discarded (semantics §2).
	c.send(map[string]any{"c": "p", "cid": "dn", "t": "/AMPS/devnull", "a": "processed"}, []byte("x"))
	if f := c.recv(); f.str("status") != "success" {
		t.Errorf("devnull: %s", f.raw)
	}
}

func TestUnknownCommandFailsThenCloses(t *testing.T) {
	_, eps := startBroker(t, nil)
	c := dialWire(t, "tcp", eps["tcp"].addr)
	c.logon("u")
	c.send(map[string]any{"c": "frobnicate", "cid": "9", "a": "processed"}, nil)
	if f := c.recv(); f.str("reason") != "unknown command" || f.str("status") != "failure" {
		t.Fatalf("got %s", f.raw)
	}
	c.expectClosed()
}

func TestCommandBeforeLogonFailsThenCloses(t *testing.T) {
	_, eps := startBroker(t, nil)
	c := dialWire(t, "tcp", eps["tcp"].addr)
	c.send(map[string]any{"c": "subscribe", "cid": "1", "t": "x", "a": "processed"}, nil)
	if f := c.recv(); f.str("status") != "failure" || f.str("reason") != "logon required" {
		t.Fatalf("got %s", f.raw)
	}
	c.expectClosed()
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
	b, eps := startBroker(t, &broker.Options{Authenticator: auth})
	ok := dialWire(t, "tcp", eps["tcp"].addr)
	ok.send(map[string]any{"c": "logon", "cid": "1", "user_id": "alice", "pw": "secret", "mt": "json", "a": "processed"}, nil)
	if f := ok.recv(); f.str("status") != "success" || f.str("reason") != "" {
		t.Fatalf("good logon: %s", f.raw)
	}
	if seen == nil || seen.Conn == nil || seen.Conn.Transport == "" || seen.Conn.RemoteAddr == nil {
		t.Fatalf("authenticator did not see the connection: %+v", seen)
	}
	bad := dialWire(t, "tcp", eps["tcp"].addr)
	bad.send(map[string]any{"c": "logon", "cid": "2", "user_id": "alice", "pw": "nope", "mt": "json", "a": "processed"}, nil)
	if f := bad.recv(); f.str("status") != "failure" || f.str("reason") != "auth failure" {
		t.Fatalf("bad logon: %s", f.raw)
	}
	bad.expectClosed()
	if got := b.Stats().AuthFailures; got != 1 {
		t.Errorf("AuthFailures = %d, want 1", got)
	}
}

func TestMessageTypeRules(t *testing.T) {
	_, eps := startBroker(t, nil)
	for _, tc := range []struct {
		mt     any
		reason string
	}{
		{nil, "message type required"},
		{"yaml", "unknown message type"},
	} {
		c := dialWire(t, "tcp", eps["tcp"].addr)
		h := map[string]any{"c": "logon", "cid": "1", "a": "processed"}
		if tc.mt != nil {
			h["mt"] = tc.mt
		}
		c.send(h, nil)
		if f := c.recv(); f.str("status") != "failure" || f.str("reason") != tc.reason {
			t.Errorf("mt %v: %s", tc.mt, f.raw)
		}
		c.expectClosed()
	}
}

// Topics are per message type (semantics §2): an nvfix subscriber does not
// see json publishes to the same name.
func TestTopicsArePerMessageType(t *testing.T) {
	_, eps := startBroker(t, nil)
	fix := dialWire(t, "tcp", eps["tcp"].addr)
	fix.send(map[string]any{"c": "logon", "cid": "1", "mt": "nvfix", "a": "processed"}, nil)
	fix.recv()
	fix.subscribe("s", "t")
	js := dialWire(t, "tcp", eps["tcp"].addr)
	js.logon("json")
	js.publish("t", []byte("{}"))
	js.flush("f")
	fix.publish("t", []byte("a=1"))
	if f := fix.recvSkipping(); string(f.body) != "a=1" {
		t.Fatalf("nvfix subscriber got %s%s", f.raw, f.body)
	}
}

func TestInProcessAndNetworkClients(t *testing.T) {
	b, eps := startBroker(t, nil)
	ctx := context.Background()
	ic, err := b.Connect(ctx, "inproc", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan broker.Message, 10)
	if _, err := ic.Subscribe(ctx, `^prices/`, func(m broker.Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tcp", "unix"} {
		net := dialWire(t, eps[name].network, eps[name].addr)
		net.logon("net-" + name)
		net.subscribe("n", "from-go")

		// network -> in-process
		net.publish("prices/"+name, []byte(`{"px":1}`))
		select {
		case m := <-got:
			if m.Topic != "prices/"+name || string(m.Data) != `{"px":1}` {
				t.Fatalf("in-process got %+v", m)
			}
		case <-time.After(ioTimeout):
			t.Fatal("in-process subscriber got nothing")
		}
		// in-process -> network
		if err := ic.Publish(ctx, "from-go", []byte("hello "+name)); err != nil {
			t.Fatal(err)
		}
		if f := net.recvSkipping(); f.str("t") != "from-go" || string(f.body) != "hello "+name || f.str("sids") != "n" {
			t.Fatalf("network got %s%s", f.raw, f.body)
		}
	}
	if err := ic.Publish(ctx, "/AMPS/x", nil); err == nil {
		t.Error("publish to /AMPS/x succeeded")
	}
	if _, err := ic.Subscribe(ctx, "a(", func(broker.Message) {}); err == nil || !strings.Contains(err.Error(), "bad regex topic") {
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
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	c.Subscribe(ctx, "marker", func(broker.Message) { close(done) })
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
	b, eps := startBroker(t, &broker.Options{OutboundQueueBytes: 256 << 10})
	slow := dialWire(t, "tcp", eps["tcp"].addr)
	slow.logon("slow")
	slow.subscribe("s", "feed")
	good := dialWire(t, "tcp", eps["tcp"].addr)
	good.logon("good")
	good.subscribe("g", "feed")
	pub := dialWire(t, "tcp", eps["tcp"].addr)
	pub.logon("pub")

	body := bytes.Repeat([]byte("x"), 16<<10)
	// 32 MiB in all: far beyond the socket buffers plus the budget. The
	// publisher sends in batches of 4 (64 KiB) and waits for the
	// well-behaved subscriber to read each batch, so at most two batches
	// are counted against its budget (one still being released by the
	// writer) and only the reader that never reads can exceed it.
	const n, batch = 2048, 4
	for i := 0; i < n; i += batch {
		for j := 0; j < batch; j++ {
			pub.publish("feed", body)
		}
		for j := 0; j < batch; j++ {
			if f := good.recvSkipping(); f.str("c") != "p" || len(f.body) != len(body) {
				t.Fatalf("well-behaved subscriber, message %d: %s", i+j, f.raw)
			}
		}
	}
	deadline := time.Now().Add(ioTimeout)
	for b.Stats().SlowConsumers != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("SlowConsumers = %d, want 1", b.Stats().SlowConsumers)
		}
		time.Sleep(10 * time.Millisecond)
	}
	slow.expectClosed()
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
		ic.Subscribe(ctx, "t", func(broker.Message) {})
		var clients []*wireClient
		for i := 0; i < 5; i++ {
			c := dialWire(t, "tcp", tcp.Addr().String())
			c.logon(fmt.Sprint("c", i))
			c.subscribe("s", "t")
			c.send(map[string]any{"c": "heartbeat", "o": "start,1"}, nil)
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
			if f := c.recvSkipping(); string(f.body) != "queued" {
				t.Errorf("got %s before close", f.raw)
			}
			c.expectClosed()
			c.conn.Close()
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
	_, eps := startBroker(t, nil)
	c := dialWire(t, "tcp", eps["tcp"].addr)
	c.logon("store")
	c.send(map[string]any{"c": "publish", "t": "/AMPS/forbidden", "a": "persisted", "s": "1795369341455000001"}, []byte("x"))
	f := c.recv()
	if f.str("a") != "persisted" || f.str("status") != "failure" || f.str("s") != "1795369341455000001" {
		t.Fatalf("got %s", f.raw)
	}
	if !regexp.MustCompile(`"s":1795369341455000001,`).MatchString(f.raw) {
		t.Errorf("s is not a bare integer followed by a comma (wire spec §5): %s", f.raw)
	}
}

// Nothing for a subscription follows its unsubscribe ack (wire spec §7.7),
// even while publishers race the unsubscribe.
func TestNoDeliveryAfterUnsubscribeAck(t *testing.T) {
	b, eps := startBroker(t, nil)
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
	sub := dialWire(t, "tcp", eps["tcp"].addr)
	sub.logon("sub")
	// awaitAck reads up to the ack of cid, calling seen for every delivery.
	awaitAck := func(cid string, seen func(frame)) {
		for {
			f := sub.recv()
			if f.str("c") == "ack" && f.str("cid") == cid {
				return
			}
			if f.str("c") == "p" && seen != nil {
				seen(f)
			}
		}
	}
	for i := 0; i < 30; i++ {
		id := fmt.Sprint("s", i)
		sub.send(map[string]any{"c": "subscribe", "cid": id, "sub_id": id, "t": "orders", "a": "processed"}, nil)
		awaitAck(id, nil)
		sub.send(map[string]any{"c": "unsubscribe", "cid": "u" + id, "sub_id": id, "a": "processed"}, nil)
		awaitAck("u"+id, nil)
		sub.send(map[string]any{"c": "flush", "cid": "f" + id, "a": "processed"}, nil)
		awaitAck("f"+id, func(f frame) {
			if f.str("sids") == id {
				t.Fatalf("iteration %d: delivery for %s after its unsubscribe ack: %s", i, id, f.raw)
			}
		})
	}
}

// A client that beats on its own clock, never waiting for the server,
// still gets a server heartbeat every interval (wire spec §10.1).
func TestHeartbeatsReachAClientThatBeatsFirst(t *testing.T) {
	_, eps := startBroker(t, nil)
	c := dialWire(t, "tcp", eps["tcp"].addr)
	c.logon("beater")
	c.send(map[string]any{"c": "heartbeat", "cid": "1", "opts": "start,1", "a": "processed"}, nil)
	if f := c.recv(); f.str("a") != "processed" {
		t.Fatal(f.raw)
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
				c.send(map[string]any{"c": "heartbeat", "opts": "beat"}, nil)
			}
		}
	}()
	for i := 0; i < 3; i++ {
		if f := c.recv(); f.raw != `{"c":"heartbeat"}` {
			t.Fatalf("got %s, want a server heartbeat", f.raw)
		}
	}
	close(stop)
	<-beaterDone
}

// An unsubscribe that names only a query cancels that query and leaves
// the subscriptions alone.
func TestUnsubscribeQueryOnlyKeepsSubscriptions(t *testing.T) {
	_, eps := startBroker(t, nil)
	c := dialWire(t, "tcp", eps["tcp"].addr)
	c.logon("q")
	c.subscribe("s", "t")
	c.send(map[string]any{"c": "unsubscribe", "cid": "u", "query_id": "q1", "a": "processed"}, nil)
	if f := c.recv(); f.str("cid") != "u" || f.str("status") != "success" {
		t.Fatal(f.raw)
	}
	c.publish("t", []byte("still"))
	if f := c.recvSkipping(); string(f.body) != "still" {
		t.Fatalf("got %s", f.raw)
	}
}
