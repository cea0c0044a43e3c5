package broker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
)

// delta_publish merges into the stored record (the worked merge of
// semantics §3.7); the merged record is stored and delivered. On a topic
// without SOW a delta is a publish.
func TestDeltaPublish(t *testing.T) {
	tb := sowBroker(t)
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("delta")
	c.Subscribe("s", "orders")
	c.Subscribe("p", "plain")
	c.Publish("orders", []byte(`{"id":5,"st":"new","px":{"bid":9,"ask":11},"legs":[1,2],"memo":"x"}`))
	c.SendJSON(map[string]any{"c": "delta_publish", "t": "orders"}, []byte(`{"id":5,"st":"open","px":{"ask":12},"legs":[3],"memo":null,"venue":"X1"}`))
	c.SendJSON(map[string]any{"c": "delta_publish", "t": "plain"}, []byte(`{"a":1}`))
	merged := `{"id":5,"st":"open","px":{"bid":9,"ask":12},"legs":[3],"memo":"x","venue":"X1"}`
	c.Next()
	if m := c.Next(); string(m.Body) != merged {
		t.Fatalf("delivery of the delta: %s, want %s", m.Body, merged)
	}
	if m := c.Next(); string(m.Body) != `{"a":1}` {
		t.Fatalf("delta on a plain topic: %s", m)
	}
	sowCommand(c, map[string]any{"c": "sow", "cid": "q", "t": "orders", "a": "processed"})
	expectAck(t, c, "processed", "success")
	if got := readGroup(t, c, "q"); len(got) != 1 || got[0].data != merged {
		t.Fatalf("stored: %v", got)
	}
	// A delta that is not a JSON object is refused.
	c.SendJSON(map[string]any{"c": "delta_publish", "cid": "bad", "t": "orders", "a": "processed"}, []byte(`{"id":5,`))
	if a := expectAck(t, c, "processed", "failure"); a.Header.Reason != broker.ReasonInvalidDelta && a.Header.Reason != broker.ReasonInvalidSOWKey {
		t.Fatalf("bad delta: %s", a)
	}
	// In process.
	cl, _ := tb.Broker.Connect(context.Background(), "go", nil)
	if err := cl.DeltaPublish(context.Background(), "orders", []byte(`{"id":5,"st":"done"}`)); err != nil {
		t.Fatal(err)
	}
	deltas := make(chan string, 1)
	if _, err := cl.Subscribe(context.Background(), "orders", func(m broker.Message) { deltas <- string(m.Data) }, &broker.SubscribeOptions{Delta: true}); err != nil {
		t.Fatal(err)
	}
	if err := cl.DeltaPublish(context.Background(), "orders", []byte(`{"id":5,"memo":"y"}`)); err != nil {
		t.Fatal(err)
	}
	if d := <-deltas; d != `{"id":5,"memo":"y"}` {
		t.Fatalf("in-process delta subscription: %s", d)
	}
	if err := cl.DeltaPublish(context.Background(), "orders", []byte(`{"id":5,"memo":"x"}`)); err != nil {
		t.Fatal(err)
	}
	<-deltas
	got, _ := cl.SOW(context.Background(), "orders", nil)
	if len(got) != 1 || string(got[0].Data) != `{"id":5,"st":"done","px":{"bid":9,"ask":12},"legs":[3],"memo":"x","venue":"X1"}` {
		t.Fatalf("in-process delta: %+v", got)
	}
}

// Delta subscriptions (semantics §3.10): a new record in full, an update as
// the key fields and the changed fields, an update that changed nothing
// else as the keys alone unless no_empties; a connection with a full
// subscription too gets the full message; a topic without SOW, full
// messages; sow_and_delta_subscribe, the records in full then deltas; no
// bookmarks.
func TestDeltaSubscribe(t *testing.T) {
	tb := sowBroker(t)
	dl := tb.Dial(tb.TCPURL(), nil)
	dl.Logon("delta")
	dl.SendJSON(map[string]any{"c": "delta_subscribe", "cid": "d", "sub_id": "d", "t": "orders", "a": "processed"}, nil)
	expectAck(t, dl, "processed", "success")
	ne := tb.Dial(tb.TCPURL(), nil)
	ne.Logon("noempties")
	ne.SendJSON(map[string]any{"c": "delta_subscribe", "cid": "n", "sub_id": "n", "t": "orders", "o": "no_empties", "a": "processed"}, nil)
	expectAck(t, ne, "processed", "success")
	both := tb.Dial(tb.TCPURL(), nil)
	both.Logon("both")
	both.SendJSON(map[string]any{"c": "delta_subscribe", "cid": "d", "sub_id": "d", "t": "orders", "a": "processed"}, nil)
	expectAck(t, both, "processed", "success")
	both.Subscribe("f", "orders")

	p := tb.Dial(tb.TCPURL(), nil)
	p.Logon("pub")
	p.Publish("orders", []byte(`{"id":1,"qty":5,"px":{"bid":1,"ask":2},"st":"new"}`))
	p.Publish("orders", []byte(`{"id":1,"qty":7,"px":{"bid":1,"ask":3},"st":"new"}`))
	p.Publish("orders", []byte(`{"id":1,"qty":7,"px":{"bid":1,"ask":3},"st":"new"}`))
	p.Publish("plain", []byte(`{"x":1}`))
	want := []string{`{"id":1,"qty":5,"px":{"bid":1,"ask":2},"st":"new"}`, `{"id":1,"qty":7,"px":{"ask":3}}`, `{"id":1}`}
	for _, w := range want {
		if m := dl.Next(); string(m.Body) != w || m.Header.SOWKey == "" {
			t.Fatalf("delta subscriber: %s, want %s with its key", m, w)
		}
	}
	for _, w := range want[:2] {
		if m := ne.Next(); string(m.Body) != w {
			t.Fatalf("no_empties subscriber: %s, want %s", m.Body, w)
		}
	}
	ne.ExpectNothing(50 * time.Millisecond)
	for i := 0; i < 3; i++ {
		if m := both.Next(); !strings.HasPrefix(string(m.Body), `{"id":1,"qty":`) || m.Field("sids") != "d,f" {
			t.Fatalf("delta and full subscriptions on one connection: %s, want the full message once", m)
		}
	}

	s := tb.Dial(tb.TCPURL(), nil)
	s.Logon("sads")
	s.SendJSON(map[string]any{"c": "sow_and_delta_subscribe", "cid": "q", "t": "orders", "a": "processed"}, nil)
	expectAck(t, s, "processed", "success")
	if got := readGroup(t, s, "q"); len(got) != 1 || got[0].data != `{"id":1,"qty":7,"px":{"bid":1,"ask":3},"st":"new"}` {
		t.Fatalf("sow_and_delta_subscribe snapshot: %v", got)
	}
	p.Publish("orders", []byte(`{"id":1,"qty":7,"px":{"bid":1,"ask":3},"st":"done"}`))
	if m := s.Next(); string(m.Body) != `{"id":1,"st":"done"}` {
		t.Fatalf("sow_and_delta_subscribe live: %s", m)
	}
	s.SendJSON(map[string]any{"c": "delta_subscribe", "cid": "b", "t": "orders", "bm": "0", "a": "processed"}, nil)
	if a := expectAck(t, s, "processed", "failure"); a.Header.Reason != broker.ReasonDeltaBookmark {
		t.Fatalf("delta bookmark subscription: %s", a)
	}
	pl := tb.Dial(tb.TCPURL(), nil)
	pl.Logon("plain")
	pl.SendJSON(map[string]any{"c": "delta_subscribe", "cid": "d", "t": "plain", "a": "processed"}, nil)
	expectAck(t, pl, "processed", "success")
	p.Publish("plain", []byte(`{"x":2}`))
	p.Publish("plain", []byte(`{"x":3}`))
	for _, w := range []string{`{"x":2}`, `{"x":3}`} {
		if m := pl.Next(); string(m.Body) != w {
			t.Fatalf("delta subscription on a plain topic: %s, want %s", m.Body, w)
		}
	}
}

// select=[…]: each subscription gets the fields its list keeps, a
// connection whose subscriptions have different lists gets a delivery for
// each; a sow's records are projected after the filter saw them whole.
func TestSelectOption(t *testing.T) {
	tb := sowBroker(t)
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("sel")
	for _, s := range []struct{ id, opts string }{{"ids", "select=[-/,+/id]"}, {"ids2", "select=[-/,+/id]"}, {"nopx", "select=[-/px]"}, {"all", ""}} {
		if ack := subscribeFiltered(t, c, s.id, "orders", "", s.opts); ack.Header.Status != "success" {
			t.Fatalf("%s: %s", s.id, ack)
		}
	}
	c.Publish("orders", []byte(`{"id":1,"px":{"bid":9},"qty":5}`))
	got := map[string]string{}
	for i := 0; i < 3; i++ {
		m := c.Next()
		got[m.Field("sids")] = string(m.Body)
	}
	want := map[string]string{"ids,ids2": `{"id":1}`, "nopx": `{"id":1,"qty":5}`, "all": `{"id":1,"px":{"bid":9},"qty":5}`}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("sids %s: %s, want %s (all: %v)", k, got[k], w, got)
		}
	}
	sowCommand(c, map[string]any{"c": "sow", "cid": "q", "t": "orders", "filter": "/qty = 5", "o": "select=[-/,+/px/bid]", "a": "processed"})
	expectAck(t, c, "processed", "success")
	if recs := readGroup(t, c, "q"); len(recs) != 1 || recs[0].data != `{"px":{"bid":9}}` {
		t.Fatalf("sow with select: %v", recs)
	}
}

// A record coming back into a filtered delta subscription's focus comes in
// full: the subscriber no longer has it to apply a delta to.
func TestDeltaSubscribeBackIntoFocus(t *testing.T) {
	tb := sowBroker(t)
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("focus")
	c.SendJSON(map[string]any{"c": "delta_subscribe", "cid": "d", "t": "orders", "filter": "/qty > 100", "a": "processed"}, nil)
	expectAck(t, c, "processed", "success")
	for _, q := range []int{500, 50, 600, 700} {
		c.Publish("orders", []byte(fmt.Sprintf(`{"id":1,"qty":%d,"st":"x"}`, q)))
	}
	for _, want := range []string{`{"id":1,"qty":500,"st":"x"}`, `{"id":1,"qty":600,"st":"x"}`, `{"id":1,"qty":700}`} {
		if m := c.Next(); string(m.Body) != want {
			t.Fatalf("got %s, want %s", m.Body, want)
		}
	}
}

// The legacy header switch send_empty:false is the no_empties option.
func TestDeltaSendEmptyFalse(t *testing.T) {
	tb := sowBroker(t)
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("legacy")
	c.SendJSON(map[string]any{"c": "delta_subscribe", "cid": "d", "t": "orders", "send_empty": false, "a": "processed"}, nil)
	expectAck(t, c, "processed", "success")
	for _, b := range []string{`{"id":1,"v":1}`, `{"id":1,"v":1}`, `{"id":1,"v":2}`} {
		c.Publish("orders", []byte(b))
	}
	for _, want := range []string{`{"id":1,"v":1}`, `{"id":1,"v":2}`} {
		if m := c.Next(); string(m.Body) != want {
			t.Fatalf("got %s, want %s (no key-only update)", m.Body, want)
		}
	}
}

// A delta subscription with a select list counts only changes to the
// selected fields: with no_empties, a change elsewhere sends nothing.
func TestDeltaSubscribeSelectNoEmpties(t *testing.T) {
	tb := sowBroker(t)
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("sel")
	c.SendJSON(map[string]any{"c": "delta_subscribe", "cid": "d", "t": "orders", "o": "no_empties,select=[-/,+/id,+/qty]", "a": "processed"}, nil)
	expectAck(t, c, "processed", "success")
	for _, b := range []string{`{"id":1,"qty":5,"st":"new"}`, `{"id":1,"qty":5,"st":"done"}`, `{"id":1,"qty":6,"st":"done"}`} {
		c.Publish("orders", []byte(b))
	}
	for _, want := range []string{`{"id":1,"qty":5}`, `{"id":1,"qty":6}`} {
		if m := c.Next(); string(m.Body) != want {
			t.Fatalf("got %s, want %s", m.Body, want)
		}
	}
}
