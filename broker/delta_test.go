package broker_test

import (
	"context"
	"testing"

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
	got, _ := cl.SOW(context.Background(), "orders", nil)
	if len(got) != 1 || string(got[0].Data) != `{"id":5,"st":"done","px":{"bid":9,"ask":12},"legs":[3],"memo":"x","venue":"X1"}` {
		t.Fatalf("in-process delta: %+v", got)
	}
}
