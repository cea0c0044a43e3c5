package broker_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// sowBroker serves the SOW topics of these tests: "orders" keyed by /id,
// "quotes" with publisher-supplied keys.
func sowBroker(t *testing.T) *ampstest.Broker {
	t.Helper()
	return startBroker(t, &broker.Options{SOWTopics: []broker.SOWTopic{
		{Name: "orders", Keys: []string{"/id"}},
		{Name: "quotes"},
		{Pattern: `book/.*`, Keys: []string{"/sym"}},
	}})
}

// sowRecord is one record of a "sow" batch.
type sowRecord struct {
	topic, key, data string
}

// records returns a "sow" message's records.
func records(t *testing.T, m ampstest.Message) []sowRecord {
	t.Helper()
	recs, err := m.Records()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]sowRecord, len(recs))
	for i, r := range recs {
		out[i] = sowRecord{m.Header.Topic, r.Header.SOWKey, string(r.Data)}
	}
	return out
}

// queryResult reads one query's answer after its processed ack:
// group_begin, sow batches, group_end; it returns the records and the
// messages after group_end that the caller asked for (acks).
func readGroup(t *testing.T, c *ampstest.Client, queryID string) []sowRecord {
	t.Helper()
	if m := c.Read(); m.Header.Command != "group_begin" || m.Header.QueryID != queryID {
		t.Fatalf("want group_begin %s, got %s", queryID, m)
	}
	var out []sowRecord
	for {
		m := c.Read()
		switch m.Header.Command {
		case "sow":
			if m.Header.QueryID != queryID {
				t.Fatalf("sow batch of query %q, want %q", m.Header.QueryID, queryID)
			}
			out = append(out, records(t, m)...)
		case "group_end":
			return out
		default:
			t.Fatalf("inside a query result: %s", m)
		}
	}
}

func sowCommand(c *ampstest.Client, h map[string]any) {
	c.SendJSON(h, nil)
}

func expectAck(t *testing.T, c *ampstest.Client, ackType, status string) ampstest.Message {
	t.Helper()
	m := c.Read()
	if m.Header.Command != "ack" || m.Header.AckType != ackType || m.Header.Status != status {
		t.Fatalf("want %s ack %s, got %s", ackType, status, m)
	}
	return m
}

func TestSOWQuery(t *testing.T) {
	tb := sowBroker(t)
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("q")
	for _, body := range []string{
		`{"id":1,"sym":"A","qty":10}`, `{"id":2,"sym":"B","qty":200}`,
		`{"id":3,"sym":"C","qty":30}`, `{"id":1,"sym":"A","qty":100}`, // updates id 1
	} {
		c.Publish("orders", []byte(body))
	}
	sowCommand(c, map[string]any{"c": "sow", "cid": "q1", "t": "orders", "filter": "/qty >= 30",
		"orderby": "/qty DESC", "bs": 2, "a": "processed,completed,stats"})
	if a := expectAck(t, c, "processed", "success"); a.Header.QueryID != "q1" {
		t.Fatalf("processed ack without query_id: %s", a)
	}
	got := readGroup(t, c, "q1")
	var data []string
	for _, r := range got {
		data = append(data, r.data)
		if r.topic != "orders" || r.key == "" {
			t.Errorf("record %+v: want topic orders and a key", r)
		}
	}
	want := []string{`{"id":2,"sym":"B","qty":200}`, `{"id":1,"sym":"A","qty":100}`, `{"id":3,"sym":"C","qty":30}`}
	if !slices.Equal(data, want) {
		t.Fatalf("records %q, want %q", data, want)
	}
	if a := expectAck(t, c, "completed", "success"); a.Header.RecordsReturned != 3 {
		t.Fatalf("completed: %s", a)
	}
	if a := expectAck(t, c, "stats", "success"); a.Header.RecordsReturned != 3 || a.Header.Matches != 3 || a.Header.TopicMatches != 3 {
		t.Fatalf("stats: %s", a)
	}
	// top_n=0 returns the counts only.
	sowCommand(c, map[string]any{"c": "sow", "cid": "q2", "t": "orders", "o": "top_n=0", "a": "processed,stats"})
	expectAck(t, c, "processed", "success")
	if got := readGroup(t, c, "q2"); len(got) != 0 {
		t.Fatalf("top_n=0 returned %v", got)
	}
	if a := expectAck(t, c, "stats", "success"); a.Header.Matches != 3 || a.Header.RecordsReturned != 0 {
		t.Fatalf("stats of top_n=0: %s", a)
	}
	// skip_n with top_n pages through the ordered result.
	sowCommand(c, map[string]any{"c": "sow", "cid": "page", "t": "orders", "orderby": "/id", "o": "skip_n=1,top_n=1", "a": "processed"})
	expectAck(t, c, "processed", "success")
	if page := readGroup(t, c, "page"); len(page) != 1 || page[0].data != `{"id":2,"sym":"B","qty":200}` {
		t.Fatalf("skip_n=1,top_n=1 by /id: %v", page)
	}
	// sow_keys selects records by key; a literal non-SOW topic is refused.
	key := got[0].key
	sowCommand(c, map[string]any{"c": "sow", "cid": "q3", "t": "orders", "sow_keys": key, "a": "processed"})
	expectAck(t, c, "processed", "success")
	if got := readGroup(t, c, "q3"); len(got) != 1 || got[0].key != key {
		t.Fatalf("sow_keys %s: %v", key, got)
	}
	sowCommand(c, map[string]any{"c": "sow", "cid": "q4", "t": "plain", "a": "processed"})
	if a := expectAck(t, c, "processed", "failure"); a.Header.Reason != broker.ReasonNotSOWTopic {
		t.Fatalf("sow on a plain topic: %s", a)
	}
}

func TestSOWKeys(t *testing.T) {
	tb := sowBroker(t)
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("k")
	// A message without its key field, or a publish to an explicit-key
	// topic without "k", is refused: nothing is stored under an empty key.
	c.SendJSON(map[string]any{"c": "p", "cid": "1", "t": "orders", "a": "processed"}, []byte(`{"sym":"X"}`))
	if a := expectAck(t, c, "processed", "failure"); a.Header.Reason != broker.ReasonInvalidSOWKey {
		t.Fatalf("missing /id: %s", a)
	}
	c.SendJSON(map[string]any{"c": "p", "cid": "2", "t": "quotes", "a": "processed"}, []byte(`{"px":1}`))
	if a := expectAck(t, c, "processed", "failure"); a.Header.Reason != broker.ReasonInvalidSOWKey {
		t.Fatalf("missing k: %s", a)
	}
	c.SendJSON(map[string]any{"c": "p", "t": "quotes", "k": "EURUSD"}, []byte(`{"px":1}`))
	c.SendJSON(map[string]any{"c": "p", "t": "quotes", "k": "EURUSD"}, []byte(`{"px":2}`))
	c.SendJSON(map[string]any{"c": "p", "t": "quotes", "k": "GBPUSD"}, []byte(`{"px":3}`))
	// Pattern topics: each matching topic has records of its own.
	c.Publish("book/IBM", []byte(`{"sym":"IBM","px":1}`))
	c.Publish("book/MSFT", []byte(`{"sym":"IBM","px":2}`))
	sowCommand(c, map[string]any{"c": "sow", "cid": "q", "t": "quotes", "bs": 10, "a": "processed"})
	expectAck(t, c, "processed", "success")
	got := readGroup(t, c, "q")
	if want := []sowRecord{{"quotes", "EURUSD", `{"px":2}`}, {"quotes", "GBPUSD", `{"px":3}`}}; !slices.Equal(got, want) {
		t.Fatalf("explicit keys: %v, want %v", got, want)
	}
	sowCommand(c, map[string]any{"c": "sow", "cid": "b", "t": "^book/", "bs": 10, "a": "processed"})
	expectAck(t, c, "processed", "success")
	got = readGroup(t, c, "b")
	if len(got) != 2 || got[0].topic != "book/IBM" || got[1].topic != "book/MSFT" {
		t.Fatalf("pattern topics over a regex query: %v", got)
	}
}

func TestSOWAndSubscribe(t *testing.T) {
	tb := sowBroker(t)
	p := tb.Dial(tb.TCPURL(), nil)
	p.Logon("pub")
	p.Publish("orders", []byte(`{"id":1,"qty":5}`))
	p.Publish("orders", []byte(`{"id":2,"qty":500}`))
	p.Flush("f")
	c := tb.Dial(tb.WSURL(), nil)
	c.Logon("sas")
	sowCommand(c, map[string]any{"c": "sow_and_subscribe", "cid": "s1", "t": "orders", "filter": "/qty > 100", "bs": 10, "a": "processed,completed"})
	if a := expectAck(t, c, "processed", "success"); a.Header.SubID != "s1" || a.Header.QueryID != "s1" {
		t.Fatalf("processed: %s", a)
	}
	if got := readGroup(t, c, "s1"); len(got) != 1 || got[0].data != `{"id":2,"qty":500}` {
		t.Fatalf("snapshot %v", got)
	}
	expectAck(t, c, "completed", "success")
	p.Publish("orders", []byte(`{"id":1,"qty":700}`))
	m := c.Next()
	if m.Header.Command != "p" || string(m.Body) != `{"id":1,"qty":700}` || m.Header.SOWKey == "" || m.Field("sids") != "s1" {
		t.Fatalf("live: %s", m)
	}
	// A topic without SOW: an empty group, then live messages.
	sowCommand(c, map[string]any{"c": "sow_and_subscribe", "cid": "s2", "t": "plain", "a": "processed"})
	expectAck(t, c, "processed", "success")
	if got := readGroup(t, c, "s2"); len(got) != 0 {
		t.Fatalf("plain topic snapshot %v", got)
	}
	p.Publish("plain", []byte(`{"x":1}`))
	if m := c.Next(); string(m.Body) != `{"x":1}` || m.Header.SOWKey != "" {
		t.Fatalf("live on a plain topic: %s", m)
	}
}

func TestSOWDelete(t *testing.T) {
	tb := sowBroker(t)
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("d")
	for i := 1; i <= 5; i++ {
		c.Publish("orders", []byte(fmt.Sprintf(`{"id":%d,"qty":%d}`, i, i*10)))
	}
	del := func(h map[string]any, body string) ampstest.Message {
		t.Helper()
		h["c"], h["t"], h["a"] = "sow_delete", "orders", "stats"
		var b []byte
		if body != "" {
			b = []byte(body)
		}
		c.SendJSON(h, b)
		return c.Read()
	}
	if a := del(map[string]any{"cid": "1", "filter": "/qty > 30"}, ""); a.Header.Status != "success" || a.Header.RecordsDeleted != 2 || a.Header.TopicMatches != 5 {
		t.Fatalf("delete by filter: %s", a)
	}
	if a := del(map[string]any{"cid": "2"}, `{"id":3,"qty":0}`); a.Header.RecordsDeleted != 1 {
		t.Fatalf("delete by data: %s", a)
	}
	if a := del(map[string]any{"cid": "3", "filter": "1=1", "sow_keys": "x"}, ""); a.Header.Status != "failure" || a.Header.Reason != broker.ReasonSOWDeleteMixed {
		t.Fatalf("two selectors: %s", a)
	}
	sowCommand(c, map[string]any{"c": "sow", "cid": "q", "t": "orders", "bs": 10, "a": "processed"})
	expectAck(t, c, "processed", "success")
	got := readGroup(t, c, "q")
	var keys []string
	for _, r := range got {
		keys = append(keys, r.key)
	}
	if len(got) != 2 {
		t.Fatalf("left after deletes: %v", got)
	}
	if a := del(map[string]any{"cid": "4", "sow_keys": strings.Join(keys, ",") + ",nosuch"}, ""); a.Header.RecordsDeleted != 2 {
		t.Fatalf("delete by keys: %s", a)
	}
	if a := del(map[string]any{"cid": "5", "filter": "1=1"}, ""); a.Header.RecordsDeleted != 0 || a.Header.TopicMatches != 0 {
		t.Fatalf("delete all of an empty topic: %s", a)
	}
}

// Out-of-focus notices: an update that the filter no longer takes gives
// "match" with the new record, a delete gives "deleted" with the old one,
// only to subscriptions with the oof option that had the record, in order
// with the topic's other messages.
func TestSOWOutOfFocus(t *testing.T) {
	tb := sowBroker(t)
	p := tb.Dial(tb.TCPURL(), nil)
	p.Logon("pub")
	p.Publish("orders", []byte(`{"id":9,"qty":900}`))
	p.Flush("f")
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("oof")
	sowCommand(c, map[string]any{"c": "sow_and_subscribe", "cid": "big", "t": "orders", "filter": "/qty > 100", "o": "oof", "a": "processed"})
	expectAck(t, c, "processed", "success")
	if got := readGroup(t, c, "big"); len(got) != 1 {
		t.Fatalf("snapshot %v", got)
	}
	if ack := subscribeFiltered(t, c, "all", "orders", "", "oof"); ack.Header.Status != "success" {
		t.Fatalf("subscribe all: %s", ack)
	}
	plain := tb.Dial(tb.TCPURL(), nil)
	plain.Logon("plain")
	mustSubscribeFiltered(t, plain, "p", "orders", "/qty > 100")

	p.Publish("orders", []byte(`{"id":9,"qty":5}`)) // out of "big"'s focus
	p.Publish("orders", []byte(`{"id":1,"qty":500}`))
	p.SendJSON(map[string]any{"c": "sow_delete", "cid": "d", "t": "orders", "filter": "/id = 1", "a": "processed"}, nil)
	p.AwaitAck("d", "processed")

	expect := func(cmd, sids, reason, body string) {
		t.Helper()
		m := c.Next()
		if m.Header.Command != cmd || m.Field("sids") != sids || m.Header.Reason != reason || string(m.Body) != body || m.Header.SOWKey == "" {
			t.Fatalf("got %s, want %s for %s (reason %q) with %s and a key", m, cmd, sids, reason, body)
		}
	}
	expect("p", "all", "", `{"id":9,"qty":5}`)
	expect("oof", "big", "match", `{"id":9,"qty":5}`)
	expect("p", "big,all", "", `{"id":1,"qty":500}`)
	expect("oof", "big,all", "deleted", `{"id":1,"qty":500}`)
	if m := plain.Next(); string(m.Body) != `{"id":1,"qty":500}` || m.Header.Command != "p" {
		t.Fatalf("subscription without oof: %s", m)
	}
	plain.ExpectNothing(50 * time.Millisecond)
}

// Records expire after the topic's lifetime, or the publish's "e"
// (seconds; 0 for ever), restarted by each update; an expiry is a delete
// with "expired" notices.
func TestSOWExpiration(t *testing.T) {
	tb := startBroker(t, &broker.Options{SOWTopics: []broker.SOWTopic{
		{Name: "ticks", Keys: []string{"/id"}, Expiration: 300 * time.Millisecond},
	}})
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("exp")
	if ack := subscribeFiltered(t, c, "o", "ticks", "", "oof"); ack.Header.Status != "success" {
		t.Fatal(ack)
	}
	c.Publish("ticks", []byte(`{"id":1}`))
	c.SendJSON(map[string]any{"c": "p", "t": "ticks", "e": 0}, []byte(`{"id":2}`))  // never expires
	c.SendJSON(map[string]any{"c": "p", "t": "ticks", "e": 60}, []byte(`{"id":3}`)) // a minute
	for i := 0; i < 3; i++ {
		if m := c.Next(); m.Header.Command != "p" {
			t.Fatalf("delivery: %s", m)
		}
	}
	start := time.Now()
	m := c.Next()
	if m.Header.Command != "oof" || m.Header.Reason != "expired" || string(m.Body) != `{"id":1}` {
		t.Fatalf("want an expired notice for id 1, got %s", m)
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Fatalf("expired after %v, lifetime 300ms", waited)
	}
	sowCommand(c, map[string]any{"c": "sow", "cid": "q", "t": "ticks", "bs": 10, "a": "processed"})
	expectAck(t, c, "processed", "success")
	got := readGroup(t, c, "q")
	if len(got) != 2 || got[0].data == `{"id":1}` || got[1].data == `{"id":1}` {
		t.Fatalf("left after the expiry: %v", got)
	}
}

// Go code queries, subscribes to and deletes from the State of the World
// in process, with the guarantees of the network commands.
func TestSOWInProcess(t *testing.T) {
	b := broker.New(&broker.Options{SOWTopics: []broker.SOWTopic{{Name: "orders", Keys: []string{"/id"}}}})
	defer b.Close()
	ctx := context.Background()
	c, err := b.Connect(ctx, "svc", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 4; i++ {
		if err := c.Publish(ctx, "orders", []byte(fmt.Sprintf(`{"id":%d,"qty":%d}`, i, i*100))); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.SOW(ctx, "orders", &broker.SOWQuery{Filter: "/qty >= 200", OrderBy: "/qty DESC", TopN: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || string(got[0].Data) != `{"id":4,"qty":400}` || string(got[1].Data) != `{"id":3,"qty":300}` || got[0].Key == "" || !got[0].SOW {
		t.Fatalf("SOW: %+v", got)
	}
	if _, err := c.SOW(ctx, "plain", nil); err == nil || !strings.Contains(err.Error(), broker.ReasonNotSOWTopic) {
		t.Fatalf("SOW of a plain topic: %v", err)
	}
	if _, err := c.SOW(ctx, "orders", &broker.SOWQuery{Filter: "/qty >"}); err == nil {
		t.Fatal("bad filter accepted")
	}
	msgs := make(chan broker.Message, 10)
	if _, err := c.SOWAndSubscribe(ctx, "orders", func(m broker.Message) { msgs <- m }, &broker.SOWQuery{Filter: "/qty > 250"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, "orders", []byte(`{"id":1,"qty":999}`)); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for len(seen) < 3 {
		select {
		case m := <-msgs:
			seen = append(seen, fmt.Sprintf("%v %s", m.SOW, m.Data))
		case <-time.After(5 * time.Second):
			t.Fatalf("got %v", seen)
		}
	}
	want := []string{`true {"id":3,"qty":300}`, `true {"id":4,"qty":400}`, `false {"id":1,"qty":999}`}
	if !slices.Equal(seen, want) {
		t.Fatalf("SOWAndSubscribe: %q, want %q", seen, want)
	}
	if n, err := c.SOWDelete(ctx, "orders", "/qty < 300"); err != nil || n != 1 {
		t.Fatalf("SOWDelete: %d, %v", n, err)
	}
	if n, err := c.SOWDeleteKeys(ctx, "orders", got[0].Key, "nosuch"); err != nil || n != 1 {
		t.Fatalf("SOWDeleteKeys: %d, %v", n, err)
	}
	if left, _ := c.SOW(ctx, "orders", nil); len(left) != 2 {
		t.Fatalf("left: %+v", left)
	}
}

// sow_and_subscribe with "replace" and a new filter sends only the records
// newly in scope, and, with oof, an out-of-focus notice for those that
// left it; later changes follow the new filter.
func TestSOWAndSubscribeReplace(t *testing.T) {
	tb := sowBroker(t)
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("r")
	for _, b := range []string{`{"id":1,"qty":50}`, `{"id":2,"qty":200}`, `{"id":3,"qty":300}`} {
		c.Publish("orders", []byte(b))
	}
	sas := func(flt, opts string, want ...string) {
		t.Helper()
		c.SendJSON(map[string]any{"c": "sow_and_subscribe", "cid": "s", "t": "orders", "filter": flt, "o": opts, "orderby": "/id", "bs": 10, "a": "processed"}, nil)
		expectAck(t, c, "processed", "success")
		var got []string
		m := c.Read()
		for ; m.Header.Command == "oof"; m = c.Read() {
			if m.Header.Reason != "match" || m.Field("sids") != "s" {
				t.Fatalf("notice %s", m)
			}
			got = append(got, "oof "+string(m.Body))
		}
		if m.Header.Command != "group_begin" {
			t.Fatalf("want group_begin, got %s", m)
		}
		for {
			m = c.Read()
			if m.Header.Command == "group_end" {
				break
			}
			for _, r := range records(t, m) {
				got = append(got, r.data)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s (%s): %q, want %q", flt, opts, got, want)
		}
	}
	sas("/qty > 100", "oof", `{"id":2,"qty":200}`, `{"id":3,"qty":300}`)
	sas("/qty > 250", "replace,oof", `oof {"id":2,"qty":200}`)
	sas("/qty < 100 OR /qty > 250", "replace,oof", `{"id":1,"qty":50}`)
	sas("/qty < 100", "replace") // no oof asked: nothing for id 3, and id 1 was in
	c.Publish("orders", []byte(`{"id":4,"qty":10}`))
	c.Publish("orders", []byte(`{"id":5,"qty":900}`))
	if m := c.Next(); string(m.Body) != `{"id":4,"qty":10}` {
		t.Fatalf("live after the replace: %s", m)
	}
}

// The timestamp option adds "ts" to each record of a sow: when its
// publish was processed, as YYYYMMDDThhmmss.ffffffZ in UTC.
func TestSOWTimestamp(t *testing.T) {
	tb := sowBroker(t)
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("ts")
	before := time.Now().UTC().Truncate(time.Microsecond)
	c.Publish("orders", []byte(`{"id":1}`))
	sowCommand(c, map[string]any{"c": "sow", "cid": "q", "t": "orders", "o": "timestamp", "a": "processed"})
	expectAck(t, c, "processed", "success")
	c.Read() // group_begin
	m := c.Read()
	end, err := protocol.HeaderEnd(m.Body)
	if err != nil {
		t.Fatal(err)
	}
	var rh protocol.Header
	if err := protocol.DecodeHeader(m.Body[:end], &rh); err != nil {
		t.Fatal(err)
	}
	ts, err := time.Parse("20060102T150405.000000Z", rh.Timestamp)
	if err != nil || ts.Before(before) || ts.After(time.Now()) {
		t.Fatalf("record ts %q (%v): want a time since %v", rh.Timestamp, err, before)
	}
}

// The acks each SOW command returns, when all are asked for (semantics
// §3.6): sow and sow_and_subscribe answer received and processed before
// the result, completed and stats after group_end, never persisted;
// sow_delete answers every type, but completed only for a delete by
// filter, which has a query part.
func TestSOWAckMatrix(t *testing.T) {
	tb := sowBroker(t)
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("acks")
	c.Publish("orders", []byte(`{"id":1}`))
	all := "received,processed,completed,persisted,stats"
	sequence := func(h map[string]any) []string {
		t.Helper()
		h["a"] = all
		c.SendJSON(h, nil)
		var got []string
		for {
			m := c.Read()
			if m.Header.Command == "ack" {
				got = append(got, m.Header.AckType)
			} else {
				got = append(got, m.Header.Command)
			}
			if m.Header.AckType == "stats" {
				return got
			}
		}
	}
	for _, tc := range []struct {
		h    map[string]any
		want []string
	}{
		{map[string]any{"c": "sow", "cid": "q", "t": "orders"}, []string{"received", "processed", "group_begin", "sow", "group_end", "completed", "stats"}},
		{map[string]any{"c": "sow_and_subscribe", "cid": "s", "t": "orders"}, []string{"received", "processed", "group_begin", "sow", "group_end", "completed", "stats"}},
		{map[string]any{"c": "sow_delete", "cid": "d", "t": "orders", "filter": "/id = 2"}, []string{"received", "processed", "completed", "persisted", "stats"}},
		{map[string]any{"c": "sow_delete", "cid": "k", "t": "orders", "sow_keys": "x"}, []string{"received", "processed", "persisted", "stats"}},
	} {
		if got := sequence(tc.h); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.h["c"], got, tc.want)
		}
	}
}

// Key rules: topics of one key domain give equal values the same key; a
// key field holding an array keys on its first element; "k" on a publish
// to a topic with Keys is ignored.
func TestSOWKeyRules(t *testing.T) {
	tb := startBroker(t, &broker.Options{SOWTopics: []broker.SOWTopic{
		{Name: "a", Keys: []string{"/id"}, KeyDomain: "shared"},
		{Name: "b", Keys: []string{"/id"}, KeyDomain: "shared"},
		{Name: "c", Keys: []string{"/id"}},
	}})
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("keys")
	for _, topic := range []string{"a", "b", "c"} {
		if ack := subscribeFiltered(t, c, topic, topic, "", ""); ack.Header.Status != "success" {
			t.Fatal(ack)
		}
	}
	c.Publish("a", []byte(`{"id":7}`))
	c.Publish("b", []byte(`{"id":7}`))
	c.Publish("c", []byte(`{"id":7}`))
	c.SendJSON(map[string]any{"c": "p", "t": "c", "k": "mine"}, []byte(`{"id":[7,8]}`))
	ka, kb, kc, kArray := c.Next().Header.SOWKey, c.Next().Header.SOWKey, c.Next().Header.SOWKey, c.Next().Header.SOWKey
	if ka == "" || ka != kb || ka == kc {
		t.Fatalf("keys of id 7: a %q, b %q (one domain: equal), c %q (own domain: different)", ka, kb, kc)
	}
	if kArray != kc {
		t.Fatalf("an array key field keys on its first element and ignores k: %q, want %q", kArray, kc)
	}
}

// top_n limits only the snapshot of a sow_and_subscribe, never the live
// messages.
func TestSOWAndSubscribeTopN(t *testing.T) {
	tb := sowBroker(t)
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("topn")
	for i := 1; i <= 5; i++ {
		c.Publish("orders", []byte(fmt.Sprintf(`{"id":%d}`, i)))
	}
	c.SendJSON(map[string]any{"c": "sow_and_subscribe", "cid": "s", "t": "orders", "top_n": 2, "bs": 10, "a": "processed"}, nil)
	expectAck(t, c, "processed", "success")
	if got := readGroup(t, c, "s"); len(got) != 2 {
		t.Fatalf("snapshot with top_n 2: %v", got)
	}
	for i := 6; i <= 8; i++ {
		c.Publish("orders", []byte(fmt.Sprintf(`{"id":%d}`, i)))
	}
	for i := 6; i <= 8; i++ {
		if m := c.Next(); string(m.Body) != fmt.Sprintf(`{"id":%d}`, i) {
			t.Fatalf("live %d: %s", i, m)
		}
	}
}

// The timestamp and no_sowkey options of subscriptions: "ts" on the
// connection's deliveries (the same instant for every recipient), no "k";
// other connections' deliveries are unchanged.
func TestSubscriptionHeaderOptions(t *testing.T) {
	tb := sowBroker(t)
	conns := map[string]*ampstest.Client{}
	for _, o := range []string{"", "timestamp", "no_sowkey", "timestamp,no_sowkey"} {
		c := tb.Dial(tb.TCPURL(), nil)
		c.Logon("o" + o)
		if ack := subscribeFiltered(t, c, "s", "orders", "", o); ack.Header.Status != "success" {
			t.Fatalf("%s: %s", o, ack)
		}
		conns[o] = c
	}
	p := tb.Dial(tb.TCPURL(), nil)
	p.Logon("pub")
	p.Publish("orders", []byte(`{"id":1}`))
	var stamps []string
	for o, c := range conns {
		m := c.Next()
		stamped, keyed := m.Header.Timestamp != "", m.Header.SOWKey != ""
		if stamped != strings.Contains(o, "timestamp") || keyed == strings.Contains(o, "no_sowkey") {
			t.Errorf("options %q: delivery %s", o, m)
		}
		if stamped {
			stamps = append(stamps, m.Header.Timestamp)
		}
	}
	if len(stamps) != 2 || stamps[0] != stamps[1] {
		t.Errorf("ts differs between recipients: %q", stamps)
	}
}
