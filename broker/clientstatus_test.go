package broker_test

import (
	"encoding/json"
	"testing"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// A client's life on /AMPS/ClientStatus: logon, subscribe, unsubscribe,
// then, on disconnect, a record per subscription it still had and the
// disconnect with its reason; a filter on the records works like on any
// topic, and clients cannot publish there.
func TestClientStatusEvents(t *testing.T) {
	tb := startBroker(t, nil)
	w := tb.Dial(tb.TCPURL(), nil)
	w.Logon("watcher")
	mustSubscribeFiltered(t, w, "w", broker.ClientStatusTopic, "/ClientStatus/client_name = 'alice'")

	a := tb.Dial(tb.WSURL(), nil)
	a.Logon("alice")
	mustSubscribeFiltered(t, a, "s1", "orders", "/qty > 1")
	a.Subscribe("s2", "fills")
	a.SendJSON(map[string]any{"c": "unsubscribe", "cid": "u", "sub_id": "s2", "a": "processed"}, nil)
	a.AwaitAck("u", protocol.AckProcessed)
	a.SendJSON(map[string]any{"c": "p", "cid": "x", "t": broker.ClientStatusTopic, "a": "processed"}, []byte(`{}`))
	if ack := a.AwaitAck("x", protocol.AckProcessed); ack.Header.Reason != broker.ReasonInvalidTopic {
		t.Fatalf("publish to %s: %s", broker.ClientStatusTopic, ack)
	}
	a.Close()

	type status struct {
		Event, ClientName, SubID, Topic, Filter, Reason, ConnectionName, Timestamp string
	}
	want := []status{
		{Event: "logon"},
		{Event: "subscribe", SubID: "s1", Topic: "orders", Filter: "/qty > 1"},
		{Event: "subscribe", SubID: "s2", Topic: "fills"},
		{Event: "unsubscribe", SubID: "s2", Topic: "fills"},
		{Event: "unsubscribe", SubID: "s1", Topic: "orders", Reason: "disconnect"},
		{Event: "disconnect", Reason: "connection closed"},
	}
	for i, wnt := range want {
		m := w.Next()
		var rec struct {
			ClientStatus struct {
				Event          string `json:"event"`
				ClientName     string `json:"client_name"`
				SubID          string `json:"sub_id"`
				Topic          string `json:"topic"`
				Filter         string `json:"filter"`
				Reason         string `json:"reason"`
				ConnectionName string `json:"connection_name"`
				Timestamp      string `json:"timestamp"`
			}
		}
		if err := json.Unmarshal(m.Body, &rec); err != nil || m.Header.Topic != broker.ClientStatusTopic {
			t.Fatalf("record %d: %s (%v)", i, m, err)
		}
		got := rec.ClientStatus
		if got.Event != wnt.Event || got.SubID != wnt.SubID || got.Topic != wnt.Topic || got.Filter != wnt.Filter ||
			got.Reason != wnt.Reason || got.ClientName != "alice" || got.ConnectionName == "" || len(got.Timestamp) != 23 {
			t.Fatalf("record %d: %s, want %+v from alice", i, m.Body, wnt)
		}
	}
}

// A catch-all regex subscription does not take the server's /AMPS/ topics;
// a regular expression that names them does.
func TestClientStatusAndRegexSubscriptions(t *testing.T) {
	tb := startBroker(t, nil)
	all := tb.Dial(tb.TCPURL(), nil)
	all.Logon("all")
	all.Subscribe("all", ".*")
	amps := tb.Dial(tb.TCPURL(), nil)
	amps.Logon("amps")
	amps.Subscribe("amps", "^/AMPS/")
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("someone")
	c.Publish("orders", []byte(`{}`))
	if m := all.Next(); m.Header.Topic != "orders" {
		t.Fatalf(".* got %s, want only the publish to orders", m)
	}
	if m := amps.Next(); m.Header.Topic != broker.ClientStatusTopic {
		t.Fatalf("^/AMPS/ got %s", m)
	}
}
