package interop

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/ampsbroker/ampsbroker/broker"
)

// Tests of delta messages, refused options, bookmark resubscription and
// publish store replay with the official JavaScript client (driver.js
// scenarios deltapublish, deltasubscribe, options, bookmark,
// publishstore) through ws://, against the SOW topic sowTopic keyed by
// /id. The driver reports what the client saw; the expectations are here.

// The worked delta merge of semantics §3.7: a field of the delta replaces
// the stored one, null keeps the stored value, a nested object merges
// member by member, an array is replaced whole, a new field is appended.
const (
	mergeStored = `{"id":5,"st":"new","px":{"bid":9,"ask":11},"legs":[1,2],"memo":"x"}`
	mergeDelta  = `{"id":5,"st":"open","px":{"ask":12},"legs":[3],"memo":null,"venue":"X1"}`
	mergeResult = `{"id":5,"st":"open","px":{"bid":9,"ask":12},"legs":[3],"memo":"x","venue":"X1"}`
	// mergeSentinel is the driver's last publish, which every subscription
	// of the deltapublish scenario takes.
	mergeSentinel = `{"id":6,"st":"open","px":{"bid":9},"end":1}`
)

// strs returns field k of res, a list of strings, as a []string.
func strs(res event, k string) []string {
	list, _ := res[k].([]any)
	out := make([]string, 0, len(list))
	for _, v := range list {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

func TestJSDeltaPublish(t *testing.T) {
	t.Parallel()
	tb := startSOWBroker(t)
	res := runDriver(t, tb.wsURI(), nil, "deltapublish", "--topic", sowTopic)
	// The driver's two publishes to sowTopic are these (it sends them as
	// JSON.stringify renders its objects).
	if got := res.str("sow"); got != mergeResult {
		t.Errorf("sow() after deltaPublish shows %s,\nwant %s", got, mergeResult)
	}
	if got, want := strs(res, "all"), []string{mergeStored, mergeResult, mergeSentinel}; !reflect.DeepEqual(got, want) {
		t.Errorf("plain subscriber got %q,\nwant %q", got, want)
	}
	if got, want := strs(res, "merged_only"), []string{mergeResult, mergeSentinel}; !reflect.DeepEqual(got, want) {
		t.Errorf("subscriber whose filter only the merged record satisfies got %q,\nwant %q", got, want)
	}
	if got, want := strs(res, "plain"), []string{`{"id":5,"memo":null}`}; !reflect.DeepEqual(got, want) {
		t.Errorf("deltaPublish on a topic without SOW delivered %q, want the delta as sent %q", got, want)
	}
	// The exact bytes on the wire: the merged record as the table builds
	// it, under the record's key.
	var bodies []string
	raw, _ := res["raw"].([]any)
	for _, r := range raw {
		m, _ := r.(map[string]any)
		if m["t"] != sowTopic {
			continue
		}
		body, _ := m["body"].(string)
		bodies = append(bodies, body)
		if strings.Contains(body, `"id":5`) && m["k"] != res.str("sow_key") {
			t.Errorf("delivery %s under key %v, the sow record has key %q", body, m["k"], res.str("sow_key"))
		}
	}
	if want := []string{mergeStored, mergeResult, mergeSentinel}; !reflect.DeepEqual(bodies, want) {
		t.Errorf("raw bodies on %s: %q,\nwant %q", sowTopic, bodies, want)
	}

	// A stream client sees the same record under the same key.
	c := logonTCP(t, tb.TCPAddr, "", "go-delta-check")
	recs := tcpSOW(t, c, "check", sowTopic, "/id = 5")
	var want map[string]any
	if err := json.Unmarshal([]byte(mergeResult), &want); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || !reflect.DeepEqual(recs[0].data, want) || recs[0].key != res.str("sow_key") {
		t.Errorf("TCP sow of /id = 5: %+v, want %s under key %q", recs, mergeResult, res.str("sow_key"))
	}
}

// deltaEvent is one event of a driver QueryLog as the deltasubscribe
// scenario reports it.
type deltaEvent struct {
	C    string `json:"c"`
	Key  string `json:"key"`
	Data string `json:"data"`
}

func TestJSDeltaSubscribe(t *testing.T) {
	t.Parallel()
	tb := startSOWBroker(t)
	res := runDriver(t, tb.wsURI(), nil, "deltasubscribe", "--topic", sowTopic)
	c := logonTCP(t, tb.TCPAddr, "", "go-dsub-check")
	keys := keysByID(tcpSOW(t, c, "check", sowTopic, ""))
	if len(keys) != 2 {
		t.Fatalf("TCP sow found records %v, want ids 1 and 2", keys)
	}

	// What the scenario publishes, and what a delta subscriber gets for it:
	// a new record in full, an update as its key plus the changed fields
	// (nested objects recurse), an update changing nothing as the key
	// alone (left out with no_empties).
	type step struct {
		id, body string
		empty    bool
	}
	first := []step{
		{"1", `{"id":1,"qty":5,"px":{"bid":1,"ask":2},"st":"new"}`, false},
		{"1", `{"id":1,"qty":7,"px":{"ask":3}}`, false},
		{"1", `{"id":1}`, true},
		{"1", `{"id":1,"st":"open"}`, false}, // from a deltaPublish
		{"2", `{"id":2,"qty":1,"end":1}`, false},
	}
	second := []step{
		{"1", `{"id":1,"st":"done"}`, false},
		{"2", `{"id":2,"end":2}`, false},
	}
	live := func(noEmpties bool, steps ...step) []deltaEvent {
		var out []deltaEvent
		for _, s := range steps {
			if !(noEmpties && s.empty) {
				out = append(out, deltaEvent{"p", keys[s.id], s.body})
			}
		}
		return out
	}
	snapshot := []deltaEvent{
		{C: "group_begin"},
		{"sow", keys["1"], `{"id":1,"qty":7,"px":{"bid":1,"ask":3},"st":"open"}`},
		{"sow", keys["2"], `{"id":2,"qty":1,"end":1}`},
		{C: "group_end"},
	}
	all := append(append([]step(nil), first...), second...)
	want := map[string][]deltaEvent{
		"delta":         live(false, all...),
		"no_empties":    live(true, all...),
		"sow_and_delta": append(snapshot, live(false, second...)...),
	}
	for label, w := range want {
		rep, _ := res[label].(map[string]any)
		raw, _ := json.Marshal(rep["events"])
		var got []deltaEvent
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatalf("%s: events %s: %v", label, raw, err)
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("%s got\n  %+v\nwant\n  %+v", label, got, w)
		}
		// The bytes on the wire are the bodies above exactly.
		var wantRaw []string
		for _, e := range w {
			if e.C == "p" {
				wantRaw = append(wantRaw, e.Data)
			}
		}
		if gotRaw := strs(event(rep), "raw"); !reflect.DeepEqual(gotRaw, wantRaw) {
			t.Errorf("%s raw bodies %q,\nwant %q", label, gotRaw, wantRaw)
		}
	}
}

func TestJSOptionRefused(t *testing.T) {
	t.Parallel()
	tb := startSOWBroker(t)
	res := runDriver(t, tb.wsURI(), nil, "options", "--topic", sowTopic)
	// An option AMPS has and this broker does not implement yet is named
	// in the reason; one the command does not know at all, or a value
	// given to a switch, is "invalid options"; pause and rate without a
	// bookmark replay say so (README, Subscribe options).
	notYet := func(name string) string { return name + " option is not supported yet" }
	want := map[string]string{
		"subscribe conflation=1s":                               notYet("conflation"),
		"subscribe select=[-/a,+/b],skip_n=5":                   notYet("skip_n"),
		"subscribe oof,pause":                                   broker.ReasonReplayOnly, // pause and rate shape a bookmark replay
		"deltaSubscribe no_empties,rate=2x":                     broker.ReasonReplayOnly,
		"sowAndSubscribe conflation=100ms,conflation_key=[/id]": notYet("conflation"),
		"subscribe frobnicate":                                  broker.ReasonInvalidOptions,
		"subscribe no_empties":                                  broker.ReasonInvalidOptions,
		"subscribe replace=yes":                                 broker.ReasonInvalidOptions,
	}
	got, _ := res["reasons"].(map[string]any)
	if len(got) != len(want) {
		t.Errorf("driver tried %d cases (%v), the test knows %d", len(got), got, len(want))
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: rejected with %v, want %q", k, got[k], w)
		}
	}
}

// bookmarkDropUser is the user the bookmark scenario's memory-backed
// client logs on as, so that the test can disconnect it from the broker.
const bookmarkDropUser = "js-bm-drop"

func TestJSBookmarkResubscribe(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerConfig{})
	d := startDriver(t, tb.wsURI(), nil, "bookmark", "--topic", "bm")
	drop := d.waitEvent("drop_me")
	if drop.str("user") != bookmarkDropUser {
		t.Fatalf("driver asks to drop user %q, the test expects %q", drop.str("user"), bookmarkDropUser)
	}
	// A server-side disconnect the client did not ask for: it must
	// reconnect and resubscribe by itself.
	tb.ResetEntitlements(bookmarkDropUser)
	res, _ := d.result()

	bookmarks := strs(res, "bookmarks")
	// Without a transaction log every bookmark subscription is live: the
	// message published while the client was away is never replayed.
	for label, want := range map[string]string{"first": "[1]", "second": "[3]"} {
		list, _ := res[label].([]any)
		if len(list) != len(bookmarks) {
			t.Errorf("%s round: %d subscriptions reported, want %d", label, len(list), len(bookmarks))
		}
		for i, got := range list {
			if fmt.Sprint(got) != want {
				t.Errorf("%s round, bookmark %q: got messages %v, want %s", label, bookmarks[i], got, want)
			}
		}
	}
	ha, _ := res["ha"].([]any)
	haBookmarks := strs(res, "ha_bookmarks")
	if len(ha) != len(haBookmarks) {
		t.Errorf("memory-backed client: %d subscriptions reported, want %d", len(ha), len(haBookmarks))
	}
	for i, got := range ha {
		if fmt.Sprint(got) != "[4 5]" {
			t.Errorf("memory-backed client, bookmark %q: got messages %v across the reconnect, want [4 5]", haBookmarks[i], got)
		}
	}
	// The client really resubscribed with bookmarks: one subscribe per
	// subscription after the drop, each with a bookmark.
	resubs, _ := res["resubscribes"].([]any)
	if len(resubs) != len(haBookmarks) {
		t.Errorf("after the drop the client sent %d subscribes (%v), want %d", len(resubs), resubs, len(haBookmarks))
	}
	for _, r := range resubs {
		m, _ := r.(map[string]any)
		if bm, _ := m["bm"].(string); bm == "" {
			t.Errorf("resubscribe %v carries no bookmark", m)
		}
	}
	t.Logf("resubscribes after the drop: %v; connection states %v", resubs, res["states"])
}

func TestJSPublishStoreReplay(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerConfig{})
	res := runDriver(t, tb.wsURI(), nil, "publishstore", "--topic", "ps")
	t.Logf("sent %v; logon acks %v; persisted acks %v", res["sent"], res["logons"], res["persisted"])
	if got := fmt.Sprint(res["received"]); got != "[1 2 3 4 5 6 7]" {
		t.Errorf("subscriber received %s, want each of 1..7 once, in order", got)
	}
	if fw, _ := res["failed_writes"].([]any); len(fw) != 0 {
		t.Errorf("failedWriteHandler called: %v", fw)
	}
	// The sequence of each publish as sent, by message number; a replayed
	// message is sent again with its sequence.
	seqOf := map[float64]string{}
	sent, _ := res["sent"].([]any)
	counts := map[float64]int{}
	for _, s := range sent {
		pair, _ := s.([]any)
		if len(pair) != 2 {
			t.Fatalf("sent entry %v", s)
		}
		n, _ := pair[0].(float64)
		seq, _ := pair[1].(string)
		if prev, ok := seqOf[n]; ok && prev != seq {
			t.Errorf("message %v sent with sequence %s, before with %s", n, seq, prev)
		}
		seqOf[n] = seq
		counts[n]++
	}
	logons, _ := res["logons"].([]any)
	if len(logons) != 2 {
		t.Fatalf("logon acks %v, want 2", logons)
	}
	logonS := func(i int) string { m, _ := logons[i].(map[string]any); s, _ := m["s"].(string); return s }
	if logonS(0) != "0" {
		t.Errorf("first logon ack s = %q, want 0 for a client name never seen", logonS(0))
	}
	// Everything up to 6 reached the broker before the reconnect, so the
	// second logon ack carries the sequence of 6.
	if logonS(1) != seqOf[6] || seqOf[6] == "" {
		t.Errorf("second logon ack s = %q, want the sequence of message 6, %q", logonS(1), seqOf[6])
	}
	if res.str("ignored_logon_s") != logonS(1) {
		t.Errorf("the store was handed %q at the reconnect, the logon ack said %q", res.str("ignored_logon_s"), logonS(1))
	}
	// Messages 4..6 were still unacknowledged at the disconnect and the
	// store replayed them: the broker dropped them as duplicates (the
	// subscriber saw each once) and acknowledged them.
	if res.num("pending_at_disconnect") != 3 {
		t.Errorf("%v messages unacknowledged at the disconnect, want 3", res["pending_at_disconnect"])
	}
	for _, n := range []float64{4, 5, 6} {
		if counts[n] != 2 {
			t.Errorf("message %v sent %d times, want 2 (once, then replayed)", n, counts[n])
		}
	}
	// Every publish, the replayed ones too, got a persisted ack with its
	// sequence; none carries a reason (a "duplicate" reason would reach
	// failedWriteHandler).
	acked := map[string]int{}
	persisted, _ := res["persisted"].([]any)
	for _, p := range persisted {
		m, _ := p.(map[string]any)
		if m["status"] != "success" || m["reason"] != nil {
			t.Errorf("persisted ack %v, want success without a reason", m)
		}
		if s, ok := m["s"].(string); ok {
			acked[s]++
		}
	}
	for n := float64(1); n <= 7; n++ {
		if acked[seqOf[n]] != 1 {
			t.Errorf("message %v (s %s): %d persisted acks, want 1", n, seqOf[n], acked[seqOf[n]])
		}
	}
}
