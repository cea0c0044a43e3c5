package interop

import (
	"encoding/json"
	"fmt"
	"slices"
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
	recs, err := m.Records()
	if err != nil {
		t.Fatal(err)
	}
	var out []tcpRecord
	for _, rec := range recs {
		r := tcpRecord{key: rec.Header.SOWKey}
		if err := json.Unmarshal(rec.Data, &r.data); err != nil {
			t.Fatalf("record data %q: %v", rec.Data, err)
		}
		id, _ := r.data["id"].(float64)
		r.id = int(id)
		out = append(out, r)
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

// sowExpTopic is the SOW topic with expiration enabled that the driver's
// sowoof scenario derives from its --topic.
const sowExpTopic = sowTopic + "-exp"

// TestJSSOWOutOfFocus runs the sowoof scenario (out-of-focus notices for
// match, deleted and expired, none without oof, and sowAndSubscribe with
// replace), then checks over TCP that the keys the JavaScript client saw
// on its notices and records are the keys the broker holds, and that
// expiration removed exactly the records published with a lifetime.
func TestJSSOWOutOfFocus(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerConfig{sowTopics: []broker.SOWTopic{
		{Name: sowTopic, Keys: []string{"/id"}},
		{Name: sowExpTopic, Keys: []string{"/id"}, ExpirationEnabled: true},
	}})
	res := runDriver(t, tb.wsURI(), nil, "sowoof", "--topic", sowTopic)
	t.Logf("oof expired %v ms after the publish", res["oof_after_ms"])
	jsKeys, _ := res["keys"].(map[string]any)
	c := logonTCP(t, tb.TCPAddr, "", "go-oof-check")

	// What the driver's publishes, deletes and the expiry left.
	recs := tcpSOW(t, c, "main", sowTopic, "")
	keys := keysByID(recs)
	if got := fmt.Sprint(sortedIDs(recs)); got != "[1 2 4 5 6 9]" {
		t.Fatalf("%s holds ids %s, want [1 2 4 5 6 9]", sowTopic, got)
	}
	for id, k := range keys {
		if jsKeys[id] != k {
			t.Errorf("%s record %s: JS client saw key %v, TCP client %q", sowTopic, id, jsKeys[id], k)
		}
	}
	exp := tcpSOW(t, c, "exp", sowExpTopic, "")
	if got := fmt.Sprint(sortedIDs(exp)); got != "[2 9]" {
		t.Fatalf("%s holds ids %s after the expiry, want [2 9] (1 and 3 had a 1 s lifetime)", sowExpTopic, got)
	}
	for id, k := range keysByID(exp) {
		if jsKeys["e"+id] != k {
			t.Errorf("%s record %s: JS client saw key %v, TCP client %q", sowExpTopic, id, jsKeys["e"+id], k)
		}
	}

	// The oof frames as they came, in order; the two notices of the
	// replace have no set order between them.
	type notice struct{ reason, k, t string }
	var got []notice
	list, _ := res["notices"].([]any)
	for _, n := range list {
		m, _ := n.(map[string]any)
		r, _ := m["reason"].(string)
		k, _ := m["k"].(string)
		tp, _ := m["t"].(string)
		got = append(got, notice{r, k, tp})
	}
	key := func(id string) string { s, _ := jsKeys[id].(string); return s }
	want := []notice{
		{broker.OOFMatch, keys["1"], sowTopic},
		{broker.OOFDeleted, key("3"), sowTopic},
		{broker.OOFExpired, key("e1"), sowExpTopic},
		{broker.OOFMatch, keys["1"], sowTopic},
		{broker.OOFMatch, keys["2"], sowTopic},
		{broker.OOFMatch, keys["5"], sowTopic},
	}
	if len(got) == len(want) && got[3] != want[3] {
		got[3], got[4] = got[4], got[3]
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("oof frames %v,\nwant %v", got, want)
	}
	if key("3") == "" || key("e1") == "" || key("3") == keys["1"] || key("e1") == key("e2") {
		t.Errorf("the keys of the deleted and the expired record are missing or shared: %v", jsKeys)
	}
}

// sortedIDs returns the ids of recs in ascending order.
func sortedIDs(recs []tcpRecord) []int {
	ids := make([]int, 0, len(recs))
	for _, r := range recs {
		ids = append(ids, r.id)
	}
	slices.Sort(ids)
	return ids
}
