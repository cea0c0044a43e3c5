package broker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/filter"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// subscribeFiltered subscribes with a content filter (and options) and
// returns the processed ack.
func subscribeFiltered(t *testing.T, c *ampstest.Client, id, topic, flt, opts string) ampstest.Message {
	t.Helper()
	c.Send(&protocol.Header{Command: protocol.CmdSubscribe, CommandID: id, SubID: id, Topic: topic,
		Filter: flt, Options: opts, AckType: protocol.AckProcessed}, nil)
	return c.AwaitAck(id, protocol.AckProcessed)
}

func mustSubscribeFiltered(t *testing.T, c *ampstest.Client, id, topic, flt string) {
	t.Helper()
	if ack := subscribeFiltered(t, c, id, topic, flt, ""); ack.Header.Status != protocol.StatusSuccess {
		t.Fatalf("subscribe %s %q: %s", topic, flt, ack)
	}
}

// expectDelivery reads the next message and checks its body and "sids".
func expectDelivery(t *testing.T, c *ampstest.Client, body, sids string) {
	t.Helper()
	m := c.Next()
	if string(m.Body) != body || m.Field("sids") != sids {
		t.Fatalf("got %s, want body %s with sids %q", m, body, sids)
	}
}

// A connection whose subscriptions on one topic have different filters
// gets each message once, with "sids" naming exactly the subscriptions
// whose filters took it; a message no filter takes is not sent at all.
func TestFilterSidsListExactlyTheMatchingSubscriptions(t *testing.T) {
	tb := startBroker(t, nil)
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("filters")
	mustSubscribeFiltered(t, c, "big", "orders", "/qty > 100")
	mustSubscribeFiltered(t, c, "ibm", "orders", "/sym = 'IBM'")
	mustSubscribeFiltered(t, c, "ibm2", "orders", "/sym BEGINS WITH ('IB')")
	p := tb.Dial(tb.TCPURL(), nil)
	p.Logon("pub")
	for _, body := range []string{
		`{"sym":"MSFT","qty":5}`, // no filter takes it
		`{"sym":"IBM","qty":500}`,
		`{"sym":"MSFT","qty":500}`,
		`{"sym":"IBM","qty":5}`,
	} {
		p.Publish("orders", []byte(body))
	}
	expectDelivery(t, c, `{"sym":"IBM","qty":500}`, "big,ibm,ibm2")
	expectDelivery(t, c, `{"sym":"MSFT","qty":500}`, "big")
	expectDelivery(t, c, `{"sym":"IBM","qty":5}`, "ibm,ibm2")
	c.ExpectNothing(50 * time.Millisecond)
}

// Filtered and unfiltered subscriptions of different connections on an
// exact and a regex topic: each connection gets what its own filters take.
func TestFilterExactAndRegexTopics(t *testing.T) {
	tb := startBroker(t, nil)
	rx := tb.Dial(tb.TCPURL(), nil)
	rx.Logon("regex")
	mustSubscribeFiltered(t, rx, "r", `^orders/`, "/qty >= 100 AND /side IN ('B', 'S')")
	all := tb.Dial(tb.WSURL(), nil)
	all.Logon("all")
	all.Subscribe("a", "orders/eu")
	p := tb.Dial(tb.TCPURL(), nil)
	p.Logon("pub")
	p.Publish("orders/eu", []byte(`{"qty":50,"side":"B"}`))
	p.Publish("orders/us", []byte(`{"qty":150,"side":"X"}`))
	p.Publish("orders/us", []byte(`{"qty":150,"side":"S"}`))
	expectDelivery(t, rx, `{"qty":150,"side":"S"}`, "r")
	expectDelivery(t, all, `{"qty":50,"side":"B"}`, "a")
}

// "replace" swaps a subscription's filter atomically.
func TestFilterReplaceChangesTheFilter(t *testing.T) {
	tb := startBroker(t, nil)
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("replace")
	mustSubscribeFiltered(t, c, "s", "t", "/n > 100")
	if ack := subscribeFiltered(t, c, "s", "t", "/n < 10", "replace"); ack.Header.Status != protocol.StatusSuccess {
		t.Fatalf("replace: %s", ack)
	}
	p := tb.Dial(tb.TCPURL(), nil)
	p.Logon("pub")
	p.Publish("t", []byte(`{"n":500}`))
	p.Publish("t", []byte(`{"n":5}`))
	expectDelivery(t, c, `{"n":5}`, "s")
	// Replacing with no filter takes everything again.
	if ack := subscribeFiltered(t, c, "s", "t", "", "replace"); ack.Header.Status != protocol.StatusSuccess {
		t.Fatalf("replace: %s", ack)
	}
	p.Publish("t", []byte(`{"n":500}`))
	expectDelivery(t, c, `{"n":500}`, "s")
}

// A filter that does not compile fails the subscribe with "bad filter",
// the log names the position and the problem, and no subscription exists.
func TestFilterBadFilterIsRefused(t *testing.T) {
	var logs ampstest.LogBuffer
	tb := startBroker(t, &broker.Options{Logger: logs.Logger()})
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("bad")
	for _, tc := range []struct{ filter, log string }{
		{"/qty > ", "at byte"},
		{"/sym = 'IBM' AND", "at byte"},
		{"COUNT(/x) > 1", "aggregate"},
		{"NOSUCH(/x) = 1", "unknown function"},
		{`/a LIKE '(.)\\1'`, "backreference"},
	} {
		ack := subscribeFiltered(t, c, "s", "t", tc.filter, "")
		if ack.Header.Status != protocol.StatusFailure || ack.Header.Reason != broker.ReasonBadFilter {
			t.Errorf("%q: got %s, want failure %q", tc.filter, ack, broker.ReasonBadFilter)
		}
		if !strings.Contains(logs.String(), tc.log) {
			t.Errorf("%q: log does not say %q:\n%s", tc.filter, tc.log, logs.String())
		}
	}
	// A long filter is quoted in part: a client repeating a bad subscribe
	// cannot fill the log with it.
	long := "/a = '" + strings.Repeat("x", 5000)
	subscribeFiltered(t, c, "s", "t", long, "")
	if strings.Contains(logs.String(), long[:1000]) || !strings.Contains(logs.String(), "(5006 bytes)") {
		t.Errorf("a 5006-byte bad filter is not quoted in part in the log")
	}
	if n := tb.Stats().Subscriptions; n != 0 {
		t.Fatalf("refused filters left %d subscriptions", n)
	}
	// The id was never taken: a good filter can use it without replace.
	mustSubscribeFiltered(t, c, "s", "t", "/qty > 1")
}

// FIX and NVFIX bodies are filtered by tag and by name over TCP; a message
// type the filter engine cannot read refuses filters rather than matching
// them by accident.
func TestFilterMessageTypes(t *testing.T) {
	var logs ampstest.LogBuffer
	tb := startBroker(t, &broker.Options{Logger: logs.Logger()})
	dial := func(mt string) *ampstest.Client {
		c := ampstest.Dial(t, strings.Replace(tb.TCPURL(), "/amps/json", "/amps/"+mt, 1), nil)
		if ack := c.LogonWith(&protocol.Header{ClientName: mt + "-c", MessageType: mt}); ack.Header.Status != protocol.StatusSuccess {
			t.Fatalf("logon %s: %s", mt, ack)
		}
		return c
	}
	fix := dial("fix")
	mustSubscribeFiltered(t, fix, "f", "orders", "/35 = 'D' AND /38 >= 100")
	nv := dial("nvfix")
	mustSubscribeFiltered(t, nv, "n", "orders", "/Symbol = 'IBM' AND /Qty * 2 = 1000")
	if ack := subscribeFiltered(t, fix, "nested", "orders", "/a/b = 1", ""); ack.Header.Reason != broker.ReasonBadFilter {
		t.Errorf("nested path on fix: got %s, want %q", ack, broker.ReasonBadFilter)
	}
	x := dial("xml")
	if ack := subscribeFiltered(t, x, "x", "orders", "/a = 1", ""); ack.Header.Reason != broker.ReasonBadFilter {
		t.Errorf("xml filter: got %s, want %q", ack, broker.ReasonBadFilter)
	}
	if !strings.Contains(logs.String(), `message type \"xml\" cannot be filtered`) {
		t.Errorf("log does not say why the xml filter was refused:\n%s", logs.String())
	}
	fixPub, nvPub := dial("fix"), dial("nvfix")
	fixPub.Publish("orders", []byte("35=D\x0155=IBM\x0138=50\x01"))
	fixPub.Publish("orders", []byte("35=D\x0155=IBM\x0138=500\x01"))
	nvPub.Publish("orders", []byte("Symbol=MSFT\x01Qty=500\x01"))
	nvPub.Publish("orders", []byte("Symbol=IBM\x01Qty=500\x01"))
	expectDelivery(t, fix, "35=D\x0155=IBM\x0138=500\x01", "f")
	expectDelivery(t, nv, "Symbol=IBM\x01Qty=500\x01", "n")
}

// In-process clients take a filter in SubscribeOptions and get the compile
// error from Subscribe.
func TestFilterInProcess(t *testing.T) {
	b := broker.New(nil)
	t.Cleanup(func() { b.Close() })
	ctx := context.Background()
	c, err := b.Connect(ctx, "svc", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	if _, err := c.Subscribe(ctx, "px", func(m broker.Message) { got <- string(m.Data) },
		&broker.SubscribeOptions{Filter: "/px BETWEEN 10 AND 20 AND TOPIC_NAME() = 'px'"}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Subscribe(ctx, "px", func(broker.Message) {}, &broker.SubscribeOptions{Filter: "/px BETWEEN 10"})
	var fe *filter.Error
	if !errors.As(err, &fe) || fe.Offset != 14 || !strings.Contains(err.Error(), broker.ReasonBadFilter) {
		t.Fatalf("bad filter: got %v, want a *filter.Error at byte 14 (the end) saying %q", err, broker.ReasonBadFilter)
	}
	for _, body := range []string{`{"px":5}`, `{"px":15}`, `{"px":25}`} {
		if err := c.Publish(ctx, "px", []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case m := <-got:
		if m != `{"px":15}` {
			t.Fatalf("got %s, want {\"px\":15}", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery")
	}
	select {
	case m := <-got:
		t.Fatalf("unexpected delivery %s", m)
	case <-time.After(50 * time.Millisecond):
	}
	bin, err := b.Connect(ctx, "bin", &broker.ClientOptions{MessageType: "binary"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bin.Subscribe(ctx, "px", func(broker.Message) {}, &broker.SubscribeOptions{Filter: "/px > 1"}); err == nil || !strings.Contains(err.Error(), "cannot be filtered") {
		t.Fatalf("filter on binary: got %v, want a refusal", err)
	}
}

// CLIENT_NAME() is the publisher's name and AMPS_INSTANCE_NAME() the
// broker's Name.
func TestFilterEnvironmentFunctions(t *testing.T) {
	tb := startBroker(t, &broker.Options{Name: "east-1"})
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("sub")
	mustSubscribeFiltered(t, c, "s", "t", "CLIENT_NAME() = 'alice' AND AMPS_INSTANCE_NAME() = 'east-1' AND MESSAGE_SIZE() < 10")
	for _, name := range []string{"bob", "alice"} {
		p := tb.Dial(tb.TCPURL(), nil)
		p.Logon(name)
		p.Publish("t", []byte(`{"from":"`+name+`"}`))
		p.Publish("t", []byte(`{}`))
		p.Flush("f")
	}
	expectDelivery(t, c, `{}`, "s")
	c.ExpectNothing(50 * time.Millisecond)
}

// Connections subscribing with the same filter text share its evaluation
// (once per message); each still gets exactly what the filter takes, and
// a different filter on the same topic is not confused with it.
func TestFilterSharedBetweenConnections(t *testing.T) {
	tb := startBroker(t, nil)
	var big []*ampstest.Client
	for i := 0; i < 3; i++ {
		c := tb.Dial(tb.TCPURL(), nil)
		c.Logon("big")
		mustSubscribeFiltered(t, c, "s", "t", "/qty > 100")
		big = append(big, c)
	}
	small := tb.Dial(tb.TCPURL(), nil)
	small.Logon("small")
	mustSubscribeFiltered(t, small, "s", "t", "/qty <= 100")
	p := tb.Dial(tb.TCPURL(), nil)
	p.Logon("pub")
	for _, q := range []string{"50", "500", "7", "700"} {
		p.Publish("t", []byte(`{"qty":`+q+`}`))
	}
	for _, c := range big {
		expectDelivery(t, c, `{"qty":500}`, "s")
		expectDelivery(t, c, `{"qty":700}`, "s")
	}
	expectDelivery(t, small, `{"qty":50}`, "s")
	expectDelivery(t, small, `{"qty":7}`, "s")
}
