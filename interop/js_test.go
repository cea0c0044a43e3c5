package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/protocol"

	"github.com/ampsbroker/ampsbroker/broker"
)

// Tests of the official AMPS JavaScript client (Node, driver.js) against the
// broker over WebSocket (wire spec §3, §13.1, §14.1).

// inbox collects what an in-process subscription receives.
type inbox chan broker.Message

func newInbox() inbox { return make(inbox, 4096) }

// handler copies each message into the inbox; the broker may reuse Data.
func (in inbox) handler(m broker.Message) {
	m.Data = append([]byte(nil), m.Data...)
	in <- m
}

// next returns the next message or fails after tcpIOTimeout.
func (in inbox) next(t testing.TB) broker.Message {
	t.Helper()
	select {
	case m := <-in:
		return m
	case <-time.After(tcpIOTimeout):
		t.Fatalf("no in-process delivery within %v", tcpIOTimeout)
		return broker.Message{}
	}
}

// connectInProcess opens an in-process client closed at test end.
func connectInProcess(t testing.TB, tb *testBroker, name string) *broker.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), tcpIOTimeout)
	defer cancel()
	c, err := tb.Connect(ctx, name, nil)
	if err != nil {
		t.Fatalf("Connect(%q): %v", name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// logonTCP dials the broker's stream transport and logs on.
// When preflightPath is not empty, the client first sends the HTTP
// preflight (GET preflightPath with Upgrade: tcp) and requires a 101 answer.
func logonTCP(t testing.TB, addr, preflightPath, name string) *ampstest.Conn {
	t.Helper()
	uri := "tcp://" + addr + "/amps/json"
	if preflightPath != "" {
		uri = "tcp://" + addr + preflightPath + "?http_preflight=true"
	}
	c, err := ampstest.DialConn(uri, &ampstest.DialOptions{Timeout: tcpIOTimeout})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	ack, err := c.LogonWith(&protocol.Header{ClientName: name, UserID: "interop", Version: "0.0.1:go-interop"})
	if err == nil && ack.Header.Status != protocol.StatusSuccess {
		err = fmt.Errorf("ack %s", ack)
	}
	if err != nil {
		t.Fatalf("TCP logon as %s: %v", name, err)
	}
	return c
}

// tcpIOTimeout bounds every read and write of a Go test client, so a broker
// that never answers fails the test instead of hanging it.
const tcpIOTimeout = 20 * time.Second

func TestJSLogon(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerConfig{})
	res := runDriver(t, tb.wsURI(), nil, "logon")
	if got := res.str("server_version"); got != broker.DefaultVersion {
		t.Errorf("client saw server version %q, want %q", got, broker.DefaultVersion)
	}
	if res.str("name_hash") == "" {
		t.Errorf("client has no name hash: the logon ack lacks bm (wire spec §7.1)")
	}
}

func TestJSPubSubBetweenTwoJSClients(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerConfig{})
	res := runDriver(t, tb.wsURI(), nil, "pubsub", "--topic", "orders", "--count", "25")
	if got := res.num("received"); got != 25 {
		t.Errorf("received %v messages, want 25", got)
	}
}

// jsReceives runs the "receive" scenario and has publish send count messages
// once the JS subscription is live; it checks what the JS client printed.
func jsReceives(t *testing.T, tb *testBroker, topic string, count int, publish func(i int, body []byte)) {
	t.Helper()
	d := startDriver(t, tb.wsURI(), nil, "receive", "--topic", topic, "--count", fmt.Sprint(count))
	d.waitEvent("ready")
	for i := 0; i < count; i++ {
		publish(i, []byte(fmt.Sprintf(`{"seq":%d,"from":"go","note":"naïve ☃"}`, i)))
	}
	_, events := d.result()
	var got []event
	for _, e := range events {
		if e.name() == "message" {
			got = append(got, e)
		}
	}
	if len(got) != count {
		t.Fatalf("JS client printed %d messages, want %d", len(got), count)
	}
	for i, e := range got {
		if e.str("topic") != topic {
			t.Errorf("message %d on topic %q, want %q", i, e.str("topic"), topic)
		}
		data, _ := e["data"].(map[string]any)
		if data["seq"] != float64(i) || data["from"] != "go" || data["note"] != "naïve ☃" {
			t.Errorf("message %d data %v, want seq %d from go with the UTF-8 note", i, data, i)
		}
	}
}

func TestJSReceivesFromTCPPublisher(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerConfig{})
	pub := logonTCP(t, tb.TCPAddr, "", "go-tcp-pub")
	jsReceives(t, tb, "from-tcp", 5, func(i int, body []byte) {
		if err := pub.Publish("from-tcp", body); err != nil {
			t.Fatalf("TCP publish %d: %v", i, err)
		}
	})
}

func TestJSReceivesFromInProcessPublisher(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerConfig{})
	pub := connectInProcess(t, tb, "go-inproc-pub")
	jsReceives(t, tb, "from-inproc", 5, func(i int, body []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), tcpIOTimeout)
		defer cancel()
		if err := pub.Publish(ctx, "from-inproc", body); err != nil {
			t.Fatalf("in-process Publish %d: %v", i, err)
		}
	})
}

func TestJSPublishesToGoSubscribers(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerConfig{})
	const topic, count = "from-js", 20
	tcpSub := logonTCP(t, tb.TCPAddr, "", "go-tcp-sub")
	if err := tcpSub.Subscribe("sub", topic); err != nil {
		t.Fatal(err)
	}
	in := newInbox()
	c := connectInProcess(t, tb, "go-inproc-sub")
	ctx, cancel := context.WithTimeout(context.Background(), tcpIOTimeout)
	defer cancel()
	if _, err := c.Subscribe(ctx, topic, in.handler, nil); err != nil {
		t.Fatalf("in-process Subscribe: %v", err)
	}
	runDriver(t, tb.wsURI(), nil, "publish", "--topic", topic, "--count", fmt.Sprint(count))

	for i := 0; i < count; i++ {
		want := fmt.Sprintf(`{"seq":%d,"from":"js"}`, i)
		m, err := tcpSub.Next()
		if err != nil {
			t.Fatalf("TCP subscriber, message %d: %v", i, err)
		}
		if m.Header.Topic != topic || string(m.Body) != want {
			t.Fatalf("TCP subscriber got %s%s, want topic %q body %s", m.RawHeader, m.Body, topic, want)
		}
		im := in.next(t)
		if im.Topic != topic || string(im.Data) != want {
			t.Fatalf("in-process subscriber got topic %q body %s, want %q %s", im.Topic, im.Data, topic, want)
		}
	}
}

func TestJSRegexTopicSubscription(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerConfig{})
	res := runDriver(t, tb.wsURI(), nil, "regex", "--topic", "rx")
	t.Logf("anchored %v, unanchored %v", res["anchored"], res["unanchored"])
}

// The official client's subscribe(handler, topic, filter): each handler
// gets exactly the messages its filter takes (the driver checks), including
// messages that several subscriptions of the client take at once.
func TestJSFilteredSubscribe(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerConfig{})
	res := runDriver(t, tb.wsURI(), nil, "filter", "--topic", "fx")
	got, _ := res["received"].(map[string]any)
	if len(got) != 3 {
		t.Fatalf("driver reported %v, want three inboxes", res["received"])
	}
}

func TestJSUnsubscribeStopsDeliveries(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerConfig{})
	runDriver(t, tb.wsURI(), nil, "unsubscribe", "--topic", "unsub")
}

func TestJSOneMebibyteMessage(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerConfig{})
	const size = 1 << 20
	tcpSub := logonTCP(t, tb.TCPAddr, "", "go-large-sub")
	if err := tcpSub.Subscribe("sub", "large"); err != nil {
		t.Fatal(err)
	}
	runDriver(t, tb.wsURI(), nil, "large", "--topic", "large", "--size", fmt.Sprint(size))
	// The same message reaches a stream subscriber intact.
	m, err := tcpSub.Next()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Body) != size {
		t.Fatalf("TCP subscriber got a %d-byte body, want %d", len(m.Body), size)
	}
	var v struct{ Pad string }
	if err := json.Unmarshal(m.Body, &v); err != nil || len(v.Pad) != size-len(`{"pad":""}`) {
		t.Fatalf("TCP subscriber body is not the published JSON (err %v, pad %d chars)", err, len(v.Pad))
	}
}

func TestJSThousandMessagesInOrder(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerConfig{})
	res := runDriver(t, tb.wsURI(), nil, "order", "--topic", "seq", "--count", "1000")
	t.Logf("1000 messages JS→broker→JS in %v ms (informational)", res["elapsed_ms"])
}

func TestJSHeartbeatHeldWhileIdle(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerConfig{})
	res := runDriver(t, tb.wsURI(), nil, "heartbeat", "--hold", "5")
	t.Logf("server heartbeats %v, client beats %v in 5 s", res["heartbeats"], res["beats"])
}

func TestJSFailureAckRejectsPromise(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerConfig{})
	res := runDriver(t, tb.wsURI(), nil, "failack", "--topic", "ok")
	reasons, _ := res["reasons"].(map[string]any)
	// "bad regex topic" and "bad filter" are AMPS's reasons (wire spec
	// §7.4 / §9.2), which the client must surface verbatim.
	want := map[string]string{"bad_regex": "bad regex topic", "bad_filter": "bad filter"}
	for k, w := range want {
		if got, _ := reasons[k].(string); got != w {
			t.Errorf("%s: promise rejected with %q, want %q", k, got, w)
		}
	}
}

func TestJSDisconnectIsClean(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerConfig{})
	runDriver(t, tb.wsURI(), nil, "disconnect", "--topic", "bye")
	// The driver has exited, so its connections are closed; the broker must
	// drop them and their subscriptions (wire spec §7.7).
	waitFor(t, "connections and subscriptions to be released", 10*time.Second, func() bool {
		s := tb.Stats()
		return s.Connections == 0 && s.Subscriptions == 0
	})
}

func TestJSOverWSS(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerConfig{wss: true})
	uri := "wss://" + tb.WSSAddr + "/amps/json"
	// The client offers no tlsOptions (see driver.js notes), so Node is told
	// to trust the test CA through NODE_EXTRA_CA_CERTS.
	env := []string{"NODE_EXTRA_CA_CERTS=" + tb.CAFile}
	res := runDriver(t, uri, env, "pubsub", "--topic", "secure", "--count", "5")
	if got := res.num("received"); got != 5 {
		t.Errorf("received %v messages over wss, want 5", got)
	}
	// And a plain ws URI against the wss port must not work.
	d := startDriver(t, "ws://"+tb.WSSAddr+"/amps/json", nil, "logon", "--timeout", "20")
	var res2 event
	for e := range d.events {
		d.record(e)
		if e.name() == "result" {
			res2 = e
		}
	}
	d.wait()
	if res2 == nil {
		t.Fatalf("plain ws driver printed no result:\n%s", d.transcript())
	}
	if ok, _ := res2["ok"].(bool); ok {
		t.Errorf("plain ws logon to the wss port succeeded")
	}
	t.Logf("plain ws to the wss port: %s", res2.str("error"))
}
