package main

import (
	"slices"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// sowRecord is one record of a sow result: its topic (the batch's), key and
// data.
type sowRecord struct {
	topic, key, data string
}

// querySOW sends a sow command h (its "c" and "a" are set here) and reads
// the answer: the processed ack, group_begin, the "sow" batches, group_end
// and the completed ack. It returns the records and the completed ack.
func querySOW(t *testing.T, c *ampstest.Client, h map[string]any) ([]sowRecord, ampstest.Message) {
	t.Helper()
	h["c"], h["a"] = "sow", "processed,completed"
	c.SendJSON(h, nil)
	expect := func(command, ackType string) ampstest.Message {
		t.Helper()
		m := c.Next()
		if m.Header.Command != command || m.Header.AckType != ackType || (command == protocol.CmdAck && m.Header.Status != protocol.StatusSuccess) {
			t.Fatalf("sow %v: want %s %s, got %s", h, command, ackType, m)
		}
		return m
	}
	expect(protocol.CmdAck, protocol.AckProcessed)
	expect(protocol.CmdGroupBegin, "")
	var out []sowRecord
	for {
		m := c.Next()
		if m.Header.Command == protocol.CmdGroupEnd {
			break
		}
		if m.Header.Command != protocol.CmdSOW {
			t.Fatalf("sow %v: inside the result: %s", h, m)
		}
		out = append(out, batchRecords(t, m)...)
	}
	return out, expect(protocol.CmdAck, protocol.AckCompleted)
}

// batchRecords returns a "sow" batch's records.
func batchRecords(t *testing.T, m ampstest.Message) []sowRecord {
	t.Helper()
	recs, err := m.Records()
	if err != nil {
		t.Fatal(err)
	}
	var out []sowRecord
	for _, r := range recs {
		out = append(out, sowRecord{m.Header.Topic, r.Header.SOWKey, string(r.Data)})
	}
	return out
}

// TestConfigSOWTopicsQueriedOverTCP serves the SOW topics of an XML file
// (sowConfig: "orders" keyed by /id, and the Pattern topics "user/[a-z]+")
// with ampsd -config, publishes over TCP and queries them.
func TestConfigSOWTopicsQueriedOverTCP(t *testing.T) {
	path, _ := writeConfig(t, sowConfig(""))
	log, stop := startRun(t, "-config", path)
	addr := boundAddrs(t, log, []string{"json-tcp"})["json-tcp"]
	c := ampstest.Dial(t, "tcp://"+addr+"/amps/json", &ampstest.DialOptions{Timeout: 10 * time.Second})
	c.Logon("ampsd-sow")

	for _, body := range []string{
		`{"id":1,"sym":"IBM","qty":10}`,
		`{"id":2,"sym":"MSFT","qty":20}`,
		`{"id":3,"sym":"AAPL","qty":30}`,
		`{"id":4,"sym":"IBM","qty":40}`,
		`{"id":2,"sym":"MSFT","qty":200}`, // replaces id 2
	} {
		c.Publish("orders", []byte(body))
	}
	c.Publish("user/alice", []byte(`{"id":1,"name":"alice"}`))
	c.Publish("user/bob", []byte(`{"id":1,"name":"bob"}`))
	c.Publish("user/bob", []byte(`{"id":2,"name":"bob again"}`))
	// The key field is /id: a message without it is refused, not stored.
	c.SendJSON(map[string]any{"c": "p", "cid": "nokey", "t": "orders", "a": "processed"}, []byte(`{"sym":"X","qty":99}`))
	if a := c.AwaitAck("nokey", protocol.AckProcessed); a.Header.Status != protocol.StatusFailure || a.Header.Reason != broker.ReasonInvalidSOWKey {
		t.Fatalf("publish without /id: %s, want a failure %q", a, broker.ReasonInvalidSOWKey)
	}
	c.Flush("f")

	recs, done := querySOW(t, c, map[string]any{"cid": "q1", "t": "orders", "filter": "/qty >= 30", "orderby": "/qty DESC", "bs": 2})
	var data []string
	keys := map[string]bool{}
	for _, r := range recs {
		data = append(data, r.data)
		if r.topic != "orders" || r.key == "" || keys[r.key] {
			t.Errorf("record %+v: want topic orders and a key of its own", r)
		}
		keys[r.key] = true
	}
	want := []string{`{"id":2,"sym":"MSFT","qty":200}`, `{"id":4,"sym":"IBM","qty":40}`, `{"id":3,"sym":"AAPL","qty":30}`}
	if !slices.Equal(data, want) {
		t.Errorf("sow orders /qty >= 30 by /qty DESC: records\n%q\nwant\n%q", data, want)
	}
	if done.Header.RecordsReturned != 3 {
		t.Errorf("completed ack %s, want records_returned 3", done)
	}

	// Every record of the topic: four ids, one of them updated.
	if all, _ := querySOW(t, c, map[string]any{"cid": "q2", "t": "orders", "orderby": "/id", "bs": 10}); len(all) != 4 {
		t.Errorf("sow orders: %d records %v, want 4", len(all), all)
	}

	// A regex over the Pattern topics: each user topic holds its own
	// records, the same id in two topics being two records.
	users, _ := querySOW(t, c, map[string]any{"cid": "q3", "t": "^user/", "orderby": "/name", "bs": 10})
	var got []sowRecord
	for _, r := range users {
		if r.key == "" {
			t.Errorf("Pattern topic record %+v has no key", r)
		}
		got = append(got, sowRecord{topic: r.topic, data: r.data})
	}
	wantUsers := []sowRecord{
		{topic: "user/alice", data: `{"id":1,"name":"alice"}`},
		{topic: "user/bob", data: `{"id":1,"name":"bob"}`},
		{topic: "user/bob", data: `{"id":2,"name":"bob again"}`},
	}
	if !slices.Equal(got, wantUsers) {
		t.Errorf("sow ^user/: %v, want %v", got, wantUsers)
	}

	// A literal topic that the file does not declare has no SOW.
	c.SendJSON(map[string]any{"c": "sow", "cid": "q4", "t": "not-declared", "a": "processed"}, nil)
	if a := c.AwaitAck("q4", protocol.AckProcessed); a.Header.Status != protocol.StatusFailure || a.Header.Reason != broker.ReasonNotSOWTopic {
		t.Errorf("sow on an undeclared topic: %s, want a failure %q", a, broker.ReasonNotSOWTopic)
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
}
