package interop

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// Tests of the State of the World with the official JavaScript client
// (driver.js scenarios sowquery, sowsubscribe, sowdelete) through ws://,
// cross-checked by a stream client over TCP: the keys the JavaScript
// client saw are the keys the stream encoding carries for the same records.

// sowTopic is the SOW topic of these tests, keyed by /id as the driver's
// SOW scenarios require.
const sowTopic = "orders"

// startSOWBroker starts a broker whose topic sowTopic is a SOW topic.
func startSOWBroker(t *testing.T) *testBroker {
	t.Helper()
	return startBroker(t, brokerConfig{sowTopics: []broker.SOWTopic{{Name: sowTopic, Keys: []string{"/id"}}}})
}

// tcpRecord is one record of a sow result read over TCP.
type tcpRecord struct {
	key  string
	id   int
	data map[string]any
}

// tcpSOW runs a sow of topic with filter (may be empty) over c and returns
// the records: it reads the processed ack, group_begin, the "sow" batches
// (each a stream body of record header and data pairs) and group_end.
func tcpSOW(t *testing.T, c *ampstest.Conn, cid, topic, filter string) []tcpRecord {
	t.Helper()
	h := map[string]any{"c": "sow", "cid": cid, "t": topic, "bs": 10, "a": "processed"}
	if filter != "" {
		h["filter"] = filter
	}
	if err := c.SendJSON(h, nil); err != nil {
		t.Fatalf("TCP sow %s: %v", cid, err)
	}
	read := func() ampstest.Message {
		t.Helper()
		m, err := c.Read()
		if err != nil {
			t.Fatalf("TCP sow %s: %v", cid, err)
		}
		return m
	}
	if m := read(); m.Header.Command != protocol.CmdAck || m.Header.Status != protocol.StatusSuccess {
		t.Fatalf("TCP sow %s: want a processed success ack, got %s", cid, m)
	}
	if m := read(); m.Header.Command != protocol.CmdGroupBegin {
		t.Fatalf("TCP sow %s: want group_begin, got %s", cid, m)
	}
	var out []tcpRecord
	for {
		m := read()
		switch m.Header.Command {
		case protocol.CmdGroupEnd:
			return out
		case protocol.CmdSOW:
			out = append(out, tcpRecords(t, m)...)
		default:
			t.Fatalf("TCP sow %s: inside the result: %s", cid, m)
		}
	}
}

// tcpRecords splits a stream "sow" batch into its records.
func tcpRecords(t *testing.T, m ampstest.Message) []tcpRecord {
	t.Helper()
	var out []tcpRecord
	for b := m.Body; len(b) > 0; {
		end, err := protocol.HeaderEnd(b)
		if err != nil {
			t.Fatalf("record header in batch %s: %v", m, err)
		}
		var h protocol.Header
		if err := protocol.DecodeHeader(b[:end], &h); err != nil {
			t.Fatalf("record header %q: %v", b[:end], err)
		}
		b = b[end:]
		if int(h.Length) > len(b) {
			t.Fatalf("record l=%d beyond the batch %s", h.Length, m)
		}
		r := tcpRecord{key: h.SOWKey}
		if err := json.Unmarshal(b[:h.Length], &r.data); err != nil {
			t.Fatalf("record data %q: %v", b[:h.Length], err)
		}
		id, _ := r.data["id"].(float64)
		r.id = int(id)
		out = append(out, r)
		b = b[h.Length:]
	}
	if len(out) != int(m.Header.BatchSize) {
		t.Fatalf("sow batch bs=%d with %d records: %s", m.Header.BatchSize, len(out), m)
	}
	return out
}

// keysByID returns the key of each record by its id as text (the form the
// driver reports them in).
func keysByID(recs []tcpRecord) map[string]string {
	out := make(map[string]string)
	for _, r := range recs {
		out[fmt.Sprint(r.id)] = r.key
	}
	return out
}

func TestJSSOWQuery(t *testing.T) {
	t.Parallel()
	tb := startSOWBroker(t)
	res := runDriver(t, tb.wsURI(), nil, "sowquery", "--topic", sowTopic)
	if got := res.str("not_sow_reason"); got != broker.ReasonNotSOWTopic {
		t.Errorf("sow on a topic without SOW rejected with %q, want %q", got, broker.ReasonNotSOWTopic)
	}
	jsKeys, _ := res["keys"].(map[string]any)
	c := logonTCP(t, tb.TCPAddr, "", "go-sow-check")
	recs := tcpSOW(t, c, "check", sowTopic, "")
	if len(recs) != 7 || len(jsKeys) != 7 {
		t.Fatalf("TCP sow found %d records, the JS client reported %d keys (%v); want 7 each", len(recs), len(jsKeys), jsKeys)
	}
	for id, key := range keysByID(recs) {
		if jsKeys[id] != key {
			t.Errorf("record %s: JS client saw key %v, TCP client %q", id, jsKeys[id], key)
		}
	}
}

func TestJSSOWAndSubscribe(t *testing.T) {
	t.Parallel()
	tb := startSOWBroker(t)
	const versions = 300
	res := runDriver(t, tb.wsURI(), nil, "sowsubscribe", "--topic", sowTopic, "--count", fmt.Sprint(versions))
	t.Logf("race: %v", res["race"])
	// The broker holds what the publishes left: ids 1, 2, 3, 4, 9 and 50,
	// the last at its last version; the keys match what the JS client saw
	// in its snapshot and on its live messages.
	c := logonTCP(t, tb.TCPAddr, "", "go-sas-check")
	recs := tcpSOW(t, c, "check", sowTopic, "")
	keys := keysByID(recs)
	if len(recs) != 6 {
		t.Fatalf("TCP sow found %d records (%v), want 6", len(recs), keys)
	}
	for _, r := range recs {
		if r.id == 50 && r.data["v"] != float64(versions-1) {
			t.Errorf("record 50 holds %v, want version %d", r.data, versions-1)
		}
	}
	snap, _ := res["snapshot_keys"].(map[string]any)
	for _, id := range []string{"2", "3"} {
		if snap[id] != keys[id] {
			t.Errorf("record %s: JS snapshot key %v, TCP key %q", id, snap[id], keys[id])
		}
	}
	live, _ := res["live_keys"].([]any)
	want := []any{keys["3"], keys["4"], keys["9"]}
	if fmt.Sprint(live) != fmt.Sprint(want) {
		t.Errorf("JS live messages carried keys %v, want those of records 3, 4, 9: %v", live, want)
	}
}

func TestJSSOWDelete(t *testing.T) {
	t.Parallel()
	tb := startSOWBroker(t)
	res := runDriver(t, tb.wsURI(), nil, "sowdelete", "--topic", sowTopic)
	results, _ := res["results"].(map[string]any)
	notSOW, _ := results["not_sow"].(map[string]any)
	if notSOW["reason"] != broker.ReasonNotSOWTopic {
		t.Errorf("sowDelete on a topic without SOW: ack %v, want reason %q", notSOW, broker.ReasonNotSOWTopic)
	}
	// The JS client's deletes left the topic empty for every client.
	c := logonTCP(t, tb.TCPAddr, "", "go-delete-check")
	if recs := tcpSOW(t, c, "check", sowTopic, ""); len(recs) != 0 {
		t.Errorf("after the JS client deleted everything a TCP sow finds %v", keysByID(recs))
	}
}

// A large result written while the same connection has live traffic: on
// WebSocket a batch is many frames, so nothing may be written inside one.
func TestJSSOWAndSubscribeLargeResultUnderLoad(t *testing.T) {
	t.Parallel()
	tb := startSOWBroker(t)
	const records = 3000
	res := runDriver(t, tb.wsURI(), nil, "sowbulk", "--topic", sowTopic, "--count", fmt.Sprint(records))
	t.Logf("snapshot %v records in %v batches, then %v live messages", res["records"], res["batches"], res["live"])
	if got := res.num("records"); got < records {
		t.Errorf("snapshot of %v records, want at least %d", got, records)
	}
}
