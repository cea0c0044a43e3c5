package broker_test

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// journalBroker starts a broker with a memory journal that records every
// topic but those starting with "plain".
func journalBroker(t *testing.T, opts *broker.Options) (*ampstest.Broker, *broker.MemJournal) {
	t.Helper()
	j := broker.NewMemJournal(64<<20, 1000)
	o := broker.Options{}
	if opts != nil {
		o = *opts
	}
	o.Journal = j
	o.JournalTopics = func(_, topic string) bool { return !strings.HasPrefix(topic, "plain") }
	b := startBroker(t, &o)
	t.Cleanup(func() { j.Close() })
	return b, j
}

// publishN publishes bodies {"n":from} … {"n":to-1} to topic and waits
// until the broker has handled them.
func publishN(t *testing.T, pub *ampstest.Client, topic string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		pub.Publish(topic, []byte(fmt.Sprintf(`{"n":%d}`, i)))
	}
	pub.Flush(pub.Conn.NextCommandID())
}

// replayed is what a bookmark subscriber read: the deliveries' bodies and
// bookmarks, and the acks (by type) with their bookmarks.
type replayed struct {
	bodies []string
	bms    []string
	acks   []string // "completed <bm>", "persisted <bm>", ...
}

// readUntil reads sub's messages until stop says so (after each), and
// returns them.
func readUntil(t *testing.T, c *ampstest.Client, stop func(m ampstest.Message, r *replayed) bool) replayed {
	t.Helper()
	var r replayed
	for {
		m := c.Next()
		switch m.Header.Command {
		case protocol.CmdP:
			r.bodies = append(r.bodies, string(m.Body))
			r.bms = append(r.bms, m.Header.Bookmark)
		case protocol.CmdAck:
			if m.Header.Status != protocol.StatusSuccess {
				t.Fatalf("failure ack: %s", m)
			}
			if m.Field("s") != "" {
				t.Errorf("a subscription's ack carries s: %s", m)
			}
			r.acks = append(r.acks, m.Header.AckType+" "+m.Header.Bookmark)
		}
		if stop(m, &r) {
			return r
		}
	}
}

// untilAck stops at the ack of type ackType.
func untilAck(ackType string) func(ampstest.Message, *replayed) bool {
	return func(m ampstest.Message, _ *replayed) bool {
		return m.Header.Command == protocol.CmdAck && m.Header.AckType == ackType
	}
}

// bodies returns {"n":from} … {"n":to-1}.
func bodies(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf(`{"n":%d}`, i))
	}
	return out
}

// subscribeBM sends a bookmark subscribe; extra adds header fields.
func subscribeBM(c *ampstest.Client, id, topic, bm string, extra map[string]any) {
	h := map[string]any{"c": "subscribe", "cid": id, "sub_id": id, "t": topic, "bm": bm, "a": "processed,completed"}
	for k, v := range extra {
		h[k] = v
	}
	c.SendJSON(h, nil)
}

// epochBookmarks subscribes from EPOCH to topic and returns the bookmarks
// of the n messages it holds.
func epochBookmarks(t *testing.T, b *ampstest.Broker, topic string, n int) []string {
	t.Helper()
	c := dialTCP(t, b.TCPAddr)
	c.Logon("probe")
	subscribeBM(c, "probe", topic, "0", nil)
	r := readUntil(t, c, untilAck(protocol.AckCompleted))
	if len(r.bms) != n {
		t.Fatalf("EPOCH replay of %s gave %d messages, want %d", topic, len(r.bms), n)
	}
	return r.bms
}

// replaySetup starts a journaled broker whose topic t holds {"n":0} …
// {"n":n-1}, followed by two messages on another topic, and returns it,
// a publisher, and the bookmarks of t's messages.
func replaySetup(t *testing.T, n int) (*ampstest.Broker, *ampstest.Client, []string) {
	t.Helper()
	b, _ := journalBroker(t, nil)
	pub := dialTCP(t, b.TCPAddr)
	pub.Logon("pub")
	publishN(t, pub, "t", 0, n)
	publishN(t, pub, "other", 100, 102)
	bm := epochBookmarks(t, b, "t", n)
	for i := 1; i < len(bm); i++ {
		if a, b := bmSeq(t, bm[i-1]), bmSeq(t, bm[i]); a >= b {
			t.Fatalf("bookmarks not increasing: %s then %s", bm[i-1], bm[i])
		}
	}
	return b, pub, bm
}

func TestReplayForms(t *testing.T) {
	_, _, bm := replaySetup(t, 5) // the bookmarks are the same in every setup
	for _, tc := range []struct {
		name, bm string
		want     []string
	}{
		{"epoch", "0", bodies(0, 5)},
		{"now", "0|1|", nil},
		{"bookmark", bm[2], bodies(3, 5)},
		{"list starts at its earliest", bm[3] + ", " + bm[1], bodies(2, 5)},
		{"list ignores unknown items", "1|2|," + bm[3], bodies(4, 5)},
		{"unknown bookmark starts now", "77|3|", nil},
		{"last bookmark", bm[4], nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, pub, _ := replaySetup(t, 5)
			c := dialTCP(t, b.TCPAddr)
			c.Logon("sub")
			subscribeBM(c, "s", "t", tc.bm, nil)
			r := readUntil(t, c, untilAck(protocol.AckCompleted))
			if diff := cmp.Diff(tc.want, r.bodies); diff != "" {
				t.Errorf("replay of %q (-want +got):\n%s", tc.bm, diff)
			}
			// completed carries the journal's tail when the command came:
			// the last entry, of whatever topic.
			if last := r.acks[len(r.acks)-1]; bmSeqOf(t, last) != bmSeq(t, bm[4])+2 {
				t.Errorf("completed ack %q, want the bookmark of the journal's last entry", last)
			}
			// Then live messages, with their bookmarks.
			publishN(t, pub, "t", 5, 6)
			r = readUntil(t, c, func(m ampstest.Message, _ *replayed) bool { return m.Header.Command == protocol.CmdP })
			if r.bodies[0] != `{"n":5}` || bmSeq(t, r.bms[0]) <= bmSeq(t, bm[4]) {
				t.Errorf("live message after replay: %v %v", r.bodies, r.bms)
			}
			c.ExpectNothing(20 * time.Millisecond)
		})
	}
}

// bmSeq is a bookmark's sequence field.
func bmSeq(t *testing.T, bm string) uint64 {
	t.Helper()
	f := strings.Split(bm, "|")
	if len(f) != 3 || f[2] != "" {
		t.Fatalf("bookmark %q is not <id>|<seq>|", bm)
	}
	n, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		t.Fatalf("bookmark %q: %v", bm, err)
	}
	return n
}

// bmSeqOf is the sequence of the bookmark in an ack summary "type bm".
func bmSeqOf(t *testing.T, ack string) uint64 {
	_, bm, _ := strings.Cut(ack, " ")
	return bmSeq(t, bm)
}

func TestReplayRanges(t *testing.T) {
	_, _, bm := replaySetup(t, 6)
	for _, tc := range []struct {
		bm   string
		want []string
	}{
		{"[" + bm[1] + ":" + bm[3] + "]", bodies(1, 4)},
		{"(" + bm[1] + ":" + bm[3] + "]", bodies(2, 4)},
		{"[" + bm[1] + ":" + bm[3] + ")", bodies(1, 3)},
		{"(" + bm[1] + ":" + bm[3] + ")", bodies(2, 3)},
		{"[0:" + bm[1] + "]", bodies(0, 2)},
		{"[" + bm[4] + ":0|1|]", bodies(4, 6)},
		{"[0|1|:0|1|]", nil}, // the last entry is on another topic
		{"[0:0|1|]", bodies(0, 6)},
		{"[0:0]", nil},
		{"(" + bm[3] + "," + bm[0] + ":" + bm[1] + "," + bm[2] + "]", bodies(1, 3)}, // lists: earliest start, latest end
	} {
		t.Run(tc.bm, func(t *testing.T) {
			b, pub, _ := replaySetup(t, 6)
			c := dialTCP(t, b.TCPAddr)
			c.Logon("sub")
			subscribeBM(c, "s", "t", tc.bm, nil)
			r := readUntil(t, c, untilAck(protocol.AckCompleted))
			if diff := cmp.Diff(tc.want, r.bodies); diff != "" {
				t.Errorf("range %s (-want +got):\n%s", tc.bm, diff)
			}
			// A finished range is over: nothing more comes, and its id
			// can be used again.
			publishN(t, pub, "t", 100, 101)
			c.ExpectNothing(30 * time.Millisecond)
			c.Subscribe("s", "t")
		})
	}
	t.Run("end not found", func(t *testing.T) {
		b, _, _ := replaySetup(t, 6)
		c := dialTCP(t, b.TCPAddr)
		c.Logon("sub")
		subscribeBM(c, "s", "t", "["+bm[1]+":77|1|]", nil)
		ack := c.AwaitAck("s", protocol.AckProcessed)
		if ack.Header.Status != protocol.StatusFailure || ack.Header.Reason != broker.ReasonBookmarkNotFound {
			t.Errorf("range with an unknown end: %s", ack)
		}
	})
}

func TestReplayNotFoundPolicy(t *testing.T) {
	for _, tc := range []struct {
		opt  string
		want []string
		fail bool
	}{
		{"", nil, false},
		{"bookmark_not_found=now", nil, false},
		{"bookmark_not_found=epoch", bodies(0, 3), false},
		{"bookmark_not_found=fail", nil, true},
	} {
		t.Run(tc.opt, func(t *testing.T) {
			b, _, _ := replaySetup(t, 3)
			c := dialTCP(t, b.TCPAddr)
			c.Logon("sub")
			subscribeBM(c, "s", "t", "77|1|", map[string]any{"o": tc.opt})
			if tc.fail {
				ack := c.AwaitAck("s", protocol.AckProcessed)
				if ack.Header.Status != protocol.StatusFailure || ack.Header.Reason != broker.ReasonBookmarkNotFound {
					t.Fatalf("bookmark_not_found=fail: %s", ack)
				}
				return
			}
			r := readUntil(t, c, untilAck(protocol.AckCompleted))
			if diff := cmp.Diff(tc.want, r.bodies); diff != "" {
				t.Errorf("unknown bookmark with %q (-want +got):\n%s", tc.opt, diff)
			}
		})
	}
}

func TestReplayRefusals(t *testing.T) {
	b, _, _ := replaySetup(t, 1)
	c := dialTCP(t, b.TCPAddr)
	c.Logon("sub")
	for i, tc := range []struct {
		hdr    map[string]any
		reason string
	}{
		{map[string]any{"bm": "12|x|"}, broker.ReasonInvalidBookmark},
		{map[string]any{"bm": "[0:"}, broker.ReasonInvalidBookmark},
		{map[string]any{"bm": "(0|1|:0)x"}, broker.ReasonInvalidBookmark},
		{map[string]any{"bm": "20240101T25"}, broker.ReasonInvalidBookmark},
		{map[string]any{"bm": "0", "c": "delta_subscribe"}, broker.ReasonDeltaBookmark},
		{map[string]any{"bm": "0", "c": "sow_and_subscribe"}, broker.ReasonHistoricalSOW},
		{map[string]any{"bm": "[0:0|1|]", "t": "plain"}, broker.ReasonNotJournaled},
	} {
		id := fmt.Sprint("r", i)
		h := map[string]any{"c": "subscribe", "cid": id, "sub_id": id, "t": "t", "a": "processed"}
		for k, v := range tc.hdr {
			h[k] = v
		}
		c.SendJSON(h, nil)
		ack := c.AwaitAck(id, protocol.AckProcessed)
		if ack.Header.Status != protocol.StatusFailure || ack.Header.Reason != tc.reason {
			t.Errorf("%v: %s, want failure %q", tc.hdr, ack, tc.reason)
		}
	}
}

func TestReplayTimestamp(t *testing.T) {
	b, _ := journalBroker(t, nil)
	pub := dialTCP(t, b.TCPAddr)
	pub.Logon("pub")
	publishN(t, pub, "t", 0, 3)
	time.Sleep(20 * time.Millisecond)
	mid := time.Now().UTC()
	time.Sleep(20 * time.Millisecond)
	publishN(t, pub, "t", 3, 5)
	stamp := func(t time.Time) string { return t.Format("20060102T150405.000000") }
	for _, tc := range []struct {
		bm   string
		want []string
	}{
		{stamp(mid), bodies(3, 5)},
		{stamp(mid) + "Z", bodies(3, 5)},
		{"19700101T000000", bodies(0, 5)}, // before the journal: EPOCH
		{"[0:" + stamp(mid) + "]", bodies(0, 3)},
	} {
		t.Run(tc.bm, func(t *testing.T) {
			c := dialTCP(t, b.TCPAddr)
			c.Logon("sub")
			subscribeBM(c, "s", "t", tc.bm, nil)
			r := readUntil(t, c, untilAck(protocol.AckCompleted))
			if diff := cmp.Diff(tc.want, r.bodies); diff != "" {
				t.Errorf("replay from %s (-want +got):\n%s", tc.bm, diff)
			}
		})
	}
	t.Run("future", func(t *testing.T) {
		// A time to come: nothing is replayed, and messages published
		// before it comes are skipped.
		c := dialTCP(t, b.TCPAddr)
		c.Logon("sub")
		at := time.Now().Add(300 * time.Millisecond)
		subscribeBM(c, "s", "t", stamp(at.UTC()), nil)
		readUntil(t, c, untilAck(protocol.AckCompleted))
		publishN(t, pub, "t", 10, 11)
		time.Sleep(time.Until(at) + 20*time.Millisecond)
		publishN(t, pub, "t", 11, 12)
		r := readUntil(t, c, func(m ampstest.Message, _ *replayed) bool { return m.Header.Command == protocol.CmdP })
		if r.bodies[0] != `{"n":11}` {
			t.Errorf("replay from a future time delivered %v first, want the message published after it", r.bodies)
		}
	})
}

func TestReplayFilterRegexAndSelect(t *testing.T) {
	b, _ := journalBroker(t, nil)
	pub := dialTCP(t, b.TCPAddr)
	pub.Logon("pub")
	for i, topic := range []string{"orders.eu", "orders.us", "plain.orders", "fills", "orders.eu"} {
		pub.Publish(topic, []byte(fmt.Sprintf(`{"n":%d,"v":%d}`, i, i*10)))
	}
	pub.Flush("f")
	c := dialTCP(t, b.TCPAddr)
	c.Logon("sub")
	subscribeBM(c, "s", `^orders\.`, "0", map[string]any{"filter": "/v >= 10", "o": "select=[-/,+/n]"})
	r := readUntil(t, c, untilAck(protocol.AckCompleted))
	// plain.orders is not journaled, fills does not match, n=0 fails the
	// filter; select keeps /n.
	if diff := cmp.Diff([]string{`{"n":1}`, `{"n":4}`}, r.bodies); diff != "" {
		t.Errorf("filtered regex replay (-want +got):\n%s", diff)
	}
	// Live messages go through the same filter.
	pub.Publish("orders.us", []byte(`{"n":5,"v":0}`))
	pub.Publish("orders.us", []byte(`{"n":6,"v":60}`))
	r = readUntil(t, c, func(m ampstest.Message, _ *replayed) bool { return m.Header.Command == protocol.CmdP })
	if r.bodies[0] != `{"n":6}` {
		t.Errorf("live after replay: %v", r.bodies)
	}
}

func TestReplayLiteralTopicNotJournaled(t *testing.T) {
	b, _ := journalBroker(t, nil)
	pub := dialTCP(t, b.TCPAddr)
	pub.Logon("pub")
	publishN(t, pub, "plain", 0, 2)
	c := dialTCP(t, b.TCPAddr)
	c.Logon("sub")
	// A topic the journal does not record: a live subscription, as
	// without a journal (Options.BookmarkFallback).
	subscribeBM(c, "s", "plain", "0", nil)
	readUntil(t, c, untilAck(protocol.AckCompleted))
	publishN(t, pub, "plain", 2, 3)
	m := c.Next()
	if string(m.Body) != `{"n":2}` || m.Header.Bookmark != "" {
		t.Errorf("live delivery on a topic without journal: %s", m)
	}
}

// TestReplayHandOffUnderLoad subscribes from EPOCH, and from a bookmark,
// while publishers keep publishing: every message arrives exactly once, in
// the journal's order, across the hand-off from replay to live.
func TestReplayHandOffUnderLoad(t *testing.T) {
	b, _ := journalBroker(t, nil)
	const n = 3000
	pub := dialTCP(t, b.TCPAddr)
	pub.Logon("pub")
	publishN(t, pub, "t", 0, 100)
	bm := epochBookmarks(t, b, "t", 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 100; i < n; i++ {
			if err := pub.Conn.Publish("t", []byte(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	check := func(name, bm string, from int) {
		c := dialTCP(t, b.TCPAddr)
		c.Logon(name)
		subscribeBM(c, name, "t", bm, nil)
		r := readUntil(t, c, func(m ampstest.Message, r *replayed) bool { return len(r.bodies) == n-from })
		if diff := cmp.Diff(bodies(from, n), r.bodies); diff != "" {
			t.Errorf("%s: replay then live (-want +got):\n%s", name, diff)
		}
		for i := 1; i < len(r.bms); i++ {
			if bmSeq(t, r.bms[i]) <= bmSeq(t, r.bms[i-1]) {
				t.Fatalf("%s: bookmark %s after %s", name, r.bms[i], r.bms[i-1])
			}
		}
	}
	var wg sync.WaitGroup
	for i, tc := range []struct {
		bm   string
		from int
	}{{"0", 0}, {bm[49], 50}, {bm[99], 100}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			check(fmt.Sprint("sub", i), tc.bm, tc.from)
		}()
	}
	wg.Wait()
	<-done
}

// TestReplayNeverSlowConsumer replays far more than the connection's
// outbound budget to a subscriber: it is never cut off, and gets it all.
func TestReplayNeverSlowConsumer(t *testing.T) {
	b, _ := journalBroker(t, &broker.Options{OutboundQueueBytes: 64 << 10})
	pub := dialTCP(t, b.TCPAddr)
	pub.Logon("pub")
	body := strings.Repeat("x", 1000)
	const n = 2000 // 2 MB, 30 times the budget
	for i := 0; i < n; i++ {
		pub.Publish("t", []byte(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, body)))
	}
	pub.Flush("f")
	c := dialTCP(t, b.TCPAddr)
	c.Logon("sub")
	subscribeBM(c, "s", "t", "0", nil)
	time.Sleep(200 * time.Millisecond) // the subscriber reads nothing for a while
	r := readUntil(t, c, untilAck(protocol.AckCompleted))
	if len(r.bodies) != n {
		t.Fatalf("replay gave %d messages, want %d", len(r.bodies), n)
	}
	if s := b.Broker.Stats(); s.SlowConsumers != 0 {
		t.Errorf("slow consumers: %d", s.SlowConsumers)
	}
}

func TestReplayUnsubscribeStopsIt(t *testing.T) {
	b, _ := journalBroker(t, &broker.Options{OutboundQueueBytes: 64 << 10})
	pub := dialTCP(t, b.TCPAddr)
	pub.Logon("pub")
	publishN(t, pub, "t", 0, 3000)
	c := dialTCP(t, b.TCPAddr)
	c.Logon("sub")
	subscribeBM(c, "s", "t", "0", nil)
	c.SendJSON(map[string]any{"c": "unsubscribe", "cid": "u", "sub_id": "s", "a": "processed"}, nil)
	got := 0
	for {
		m := c.Next()
		if m.Header.Command == protocol.CmdAck && m.Header.CommandID == "u" {
			break
		}
		if m.Header.Command == protocol.CmdP {
			got++
		}
	}
	if got == 3000 {
		t.Logf("the whole replay came before the unsubscribe was handled")
	}
	c.ExpectNothing(50 * time.Millisecond)
	if n := b.Broker.Stats().Subscriptions; n != 0 {
		t.Errorf("%d subscriptions after unsubscribe", n)
	}
}

func TestReplayPersistedAcks(t *testing.T) {
	b, pub, bm := replaySetup(t, 3)
	c := dialTCP(t, b.TCPAddr)
	c.Logon("sub")
	subscribeBM(c, "s", "t", "0", map[string]any{"a": "processed,completed,persisted"})
	readUntil(t, c, untilAck(protocol.AckCompleted))
	// Then the point the replay passed, which is the journal's tail: the
	// two messages of another topic after t's.
	tail := bmSeq(t, bm[2]) + 2
	readUntil(t, c, func(m ampstest.Message, _ *replayed) bool {
		return m.Header.AckType == protocol.AckPersisted && bmSeq(t, m.Header.Bookmark) == tail
	})
	publishN(t, pub, "t", 3, 4)
	r := readUntil(t, c, func(m ampstest.Message, _ *replayed) bool {
		return m.Header.Command == protocol.CmdAck && m.Header.AckType == protocol.AckPersisted
	})
	if len(r.bms) != 1 || bmSeqOf(t, r.acks[0]) != bmSeq(t, r.bms[0]) {
		t.Errorf("after a live message: %v %v, want a persisted ack naming it", r.bms, r.acks)
	}
}

func TestBookmarkOptionOnLiveSubscription(t *testing.T) {
	b, _ := journalBroker(t, &broker.Options{SOWTopics: []broker.SOWTopic{{Name: "sow", Keys: []string{"/n"}}}})
	c := dialTCP(t, b.TCPAddr)
	c.Logon("sub")
	for _, s := range []struct{ id, topic, opts string }{
		{"bm", "t", "bookmark"}, {"nobm", "t", ""}, {"plain", "plain", "bookmark"}, {"sow", "sow", "bookmark,timestamp"},
	} {
		c.SendJSON(map[string]any{"c": "subscribe", "cid": s.id, "sub_id": s.id, "t": s.topic, "o": s.opts, "a": "processed"}, nil)
		if ack := c.AwaitAck(s.id, protocol.AckProcessed); ack.Header.Status != protocol.StatusSuccess {
			t.Fatal(ack)
		}
	}
	pub := dialTCP(t, b.TCPAddr)
	pub.Logon("pub")
	publishN(t, pub, "t", 0, 1)
	publishN(t, pub, "plain", 1, 2)
	publishN(t, pub, "sow", 2, 3)
	want := epochBookmarks(t, b, "t", 1)[0]
	got := map[string]string{}
	for i := 0; i < 3; i++ {
		m := c.Next()
		got[m.Header.SubIDs] = m.Header.Bookmark
	}
	// One connection gets one delivery of a message however many of its
	// subscriptions match; the t message goes to bm and nobm together
	// and carries "bm" because one of them asked.
	if got["bm,nobm"] != want && got["nobm,bm"] != want {
		t.Errorf("bookmark option on t: %v, want %s", got, want)
	}
	if bm, ok := got["plain"]; !ok || bm != "" {
		t.Errorf("a message that is not journaled has a bookmark: %v", got)
	}
	if bm := got["sow"]; bm == "" || bmSeq(t, bm) != bmSeq(t, want)+1 {
		t.Errorf("journaled SOW message: bm %q, want the entry after %s (plain is not journaled)", bm, want)
	}
}

func TestReplayInProcess(t *testing.T) {
	b, _ := journalBroker(t, nil)
	ctx := t.Context()
	pub, err := b.Broker.Connect(ctx, "pub", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := pub.Publish(ctx, "t", []byte(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := b.Broker.Connect(ctx, "sub", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan broker.Message, 100)
	handler := func(m broker.Message) { got <- m }
	read := func(n int) (bodies, bms []string) {
		t.Helper()
		for i := 0; i < n; i++ {
			select {
			case m := <-got:
				bodies, bms = append(bodies, string(m.Data)), append(bms, m.Bookmark)
			case <-time.After(5 * time.Second):
				t.Fatalf("got %d of %d messages", i, n)
			}
		}
		return bodies, bms
	}
	s1, err := sub.Subscribe(ctx, "t", handler, &broker.SubscribeOptions{Bookmark: "0"})
	if err != nil {
		t.Fatal(err)
	}
	all, bms := read(5)
	if diff := cmp.Diff(bodies(0, 5), all); diff != "" {
		t.Fatalf("in-process EPOCH replay (-want +got):\n%s", diff)
	}
	if err := s1.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Subscribe(ctx, "t", handler, &broker.SubscribeOptions{Bookmark: bms[2]}); err != nil {
		t.Fatal(err)
	}
	rest, _ := read(2)
	if diff := cmp.Diff(bodies(3, 5), rest); diff != "" {
		t.Errorf("in-process replay from a bookmark (-want +got):\n%s", diff)
	}
	if err := pub.Publish(ctx, "t", []byte(`{"n":5}`)); err != nil {
		t.Fatal(err)
	}
	if live, bm := read(1); live[0] != `{"n":5}` || bm[0] == "" {
		t.Errorf("live after replay: %v %v", live, bm)
	}
	if _, err := sub.Subscribe(ctx, "t", handler, &broker.SubscribeOptions{Bookmark: "9|9|", BookmarkNotFound: "fail"}); err == nil ||
		!strings.Contains(err.Error(), broker.ReasonBookmarkNotFound) {
		t.Errorf("BookmarkNotFound fail: %v", err)
	}
	if _, err := sub.Subscribe(ctx, "t", handler, &broker.SubscribeOptions{Bookmark: "0", Delta: true}); err == nil {
		t.Error("a delta bookmark subscription was accepted")
	}
	select {
	case m := <-got:
		t.Errorf("unexpected message %s", m.Data)
	case <-time.After(20 * time.Millisecond):
	}
}

// bigJournal publishes 2000 messages of 4 KB to topic t of b, 8 MB: more
// than socket buffers hold, so a subscriber that reads nothing holds its
// replay up. It returns a logged-on subscriber connection.
func bigJournal(t *testing.T, b *ampstest.Broker) *ampstest.Client {
	t.Helper()
	pub := dialTCP(t, b.TCPAddr)
	pub.Logon("pub")
	pad := strings.Repeat("x", 4000)
	for i := 0; i < 2000; i++ {
		pub.Publish("t", []byte(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, pad)))
	}
	// Durable before the subscriber comes: a replay reads only durable
	// entries, and one that finds none yet is caught up at once.
	pub.Send(&protocol.Header{Command: protocol.CmdFlush, CommandID: "f", AckType: protocol.AckPersisted}, nil)
	pub.AwaitAck("f", protocol.AckPersisted)
	c := dialTCP(t, b.TCPAddr)
	// A small receive buffer: the socket buffers on both sides must hold
	// far less than the journal, whatever the system's autotuning allows.
	if err := c.Conn.NetConn().(*net.TCPConn).SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	c.Logon("sub")
	return c
}

func TestReplayingSubscriptionsInStats(t *testing.T) {
	b, _ := journalBroker(t, &broker.Options{OutboundQueueBytes: 64 << 10})
	c := bigJournal(t, b)
	// The subscriber reads nothing yet: its replay waits for room, and
	// counts as replaying until it has caught up.
	subscribeBM(c, "s", "t", "0", nil)
	c.AwaitAck("s", protocol.AckProcessed)
	if n := b.Broker.Stats().ReplayingSubscriptions; n != 1 {
		t.Errorf("while replaying: %d replaying subscriptions, want 1", n)
	}
	readUntil(t, c, untilAck(protocol.AckCompleted))
	if n := b.Broker.Stats().ReplayingSubscriptions; n != 0 {
		t.Errorf("after completed: %d replaying subscriptions, want 0", n)
	}
}

func TestReplayEntitlementAndSeveralSubscriptions(t *testing.T) {
	// Users may not read topics under "secret".
	ent := broker.EntitlerFunc(func(id *broker.Identity, topic string, p broker.Permission) bool {
		return p != broker.Read || !strings.HasPrefix(topic, "secret")
	})
	b, _ := journalBroker(t, &broker.Options{Entitler: ent})
	pub := dialTCP(t, b.TCPAddr)
	pub.Logon("pub")
	pub.Publish("open/a", []byte(`{"n":0}`))
	pub.Publish("secret/a", []byte(`{"n":1}`))
	pub.Publish("open/b", []byte(`{"n":2}`))
	pub.Flush("f")
	c := dialTCP(t, b.TCPAddr)
	c.Logon("sub")
	// A literal topic the user may not read is refused at once.
	subscribeBM(c, "lit", "secret/a", "0", map[string]any{"a": "processed"})
	if ack := c.AwaitAck("lit", protocol.AckProcessed); ack.Header.Reason != broker.ReasonNotEntitled {
		t.Errorf("bookmark subscription to a forbidden topic: %s", ack)
	}
	// A regex replay withholds the forbidden topic; two bookmark
	// subscriptions of one connection that both take a message each get
	// it, under their own id.
	subscribeBM(c, "all", `^(open|secret)/`, "0", nil)
	readUntil(t, c, untilAck(protocol.AckCompleted))
	subscribeBM(c, "b", `/b$`, "0", nil)
	readUntil(t, c, untilAck(protocol.AckCompleted))
	pub.Publish("open/b", []byte(`{"n":3}`))
	pub.Publish("secret/b", []byte(`{"n":4}`))
	pub.Flush("f2")
	got := map[string][]string{}
	for len(got["all"])+len(got["b"]) < 2 {
		m := c.Next()
		if m.Header.Command == protocol.CmdP {
			got[m.Header.SubIDs] = append(got[m.Header.SubIDs], string(m.Body))
		}
	}
	c.ExpectNothing(30 * time.Millisecond)
	want := map[string][]string{"all": {`{"n":3}`}, "b": {`{"n":3}`}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("live after replay (-want +got):\n%s", diff)
	}
}

// TestReplayRangeEndListMixed: an end list's latest item decides; a
// bookmark item with "]" must not end the range while a later timestamp
// item reaches further.
func TestReplayRangeEndListMixed(t *testing.T) {
	for _, br := range []string{"]", ")"} {
		t.Run(br, func(t *testing.T) {
			b, pub, bm := replaySetup(t, 6)
			c := dialTCP(t, b.TCPAddr)
			c.Logon("sub")
			subscribeBM(c, "s", "t", "[0:"+bm[1]+",20990101T000000"+br, nil)
			publishN(t, pub, "t", 6, 8)
			r := readUntil(t, c, func(m ampstest.Message, r *replayed) bool {
				return len(r.bodies) >= 8 || m.Header.Command == protocol.CmdAck && m.Header.AckType == protocol.AckCompleted
			})
			if diff := cmp.Diff(bodies(0, 8), r.bodies); diff != "" {
				t.Errorf("range ending %s (-want +got):\n%s", br, diff)
			}
		})
	}
}

func TestReplayTimestampRangeExcludesItsStart(t *testing.T) {
	b, _ := journalBroker(t, nil)
	pub := dialTCP(t, b.TCPAddr)
	pub.Logon("pub")
	for i := 0; i < 3; i++ {
		publishN(t, pub, "t", i, i+1)
		time.Sleep(2 * time.Millisecond) // entries a microsecond apart at least
	}
	c := dialTCP(t, b.TCPAddr)
	c.Logon("sub")
	subscribeBM(c, "ts", "t", "0", map[string]any{"o": "timestamp"})
	var ts []string
	for len(ts) < 3 {
		if m := c.Next(); m.Header.Command == protocol.CmdP {
			ts = append(ts, m.Header.Timestamp)
		}
	}
	readUntil(t, c, untilAck(protocol.AckCompleted))
	for _, tc := range []struct {
		bm   string
		want []string
	}{
		{"[" + ts[1] + ":0|1|]", bodies(1, 3)},
		{"(" + ts[1] + ":0|1|]", bodies(2, 3)},
		{ts[1], bodies(1, 3)},
	} {
		subscribeBM(c, tc.bm, "t", tc.bm, nil)
		r := readUntil(t, c, untilAck(protocol.AckCompleted))
		if diff := cmp.Diff(tc.want, r.bodies); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.bm, diff)
		}
	}
}

func TestReplayCompletedOnEmptyJournal(t *testing.T) {
	b, _ := journalBroker(t, nil)
	c := dialTCP(t, b.TCPAddr)
	c.Logon("sub")
	subscribeBM(c, "s", "t", "0", nil)
	r := readUntil(t, c, untilAck(protocol.AckCompleted))
	// No entry names the point an empty journal's replay completed at:
	// the bookmark is EPOCH, where a client resuming from it starts.
	if diff := cmp.Diff([]string{"processed ", "completed 0"}, r.acks); diff != "" {
		t.Errorf("acks (-want +got):\n%s", diff)
	}
}

// TestReplayInProcessDropWhenSlow: a client that drops what does not fit
// its queue still gets every replayed message: a replay waits instead.
func TestReplayInProcessDropWhenSlow(t *testing.T) {
	b, _ := journalBroker(t, nil)
	ctx := t.Context()
	pub, err := b.Broker.Connect(ctx, "pub", nil)
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 3000)
	const n = 50
	for i := 0; i < n; i++ {
		if err := pub.Publish(ctx, "t", []byte(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, pad))); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := b.Broker.Connect(ctx, "sub", &broker.ClientOptions{QueueBytes: 4 << 10, DropWhenSlow: true})
	if err != nil {
		t.Fatal(err)
	}
	// Small live messages on another topic share the queue, so a replayed
	// message may find it neither empty nor with room for it.
	if _, err := sub.Subscribe(ctx, "live", func(broker.Message) {}, nil); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				pub.Publish(ctx, "live", []byte(`{}`))
			}
		}
	}()
	got := make(chan string, n)
	if _, err := sub.Subscribe(ctx, "t", func(m broker.Message) {
		time.Sleep(time.Millisecond) // slower than the replay
		got <- string(m.Data[:12])
	}, &broker.SubscribeOptions{Bookmark: "0"}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		select {
		case m := <-got:
			if want := fmt.Sprintf(`{"n":%d,"pad"`, i)[:12]; m != want {
				t.Fatalf("message %d: %q, want %q", i, m, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d replayed messages arrived (dropped: %d)", i, n, b.Broker.Stats().Dropped)
		}
	}
}

// TestReplayExemptFromAgeLimit: a replaying subscriber that reads late
// has old messages queued, and is not cut off for it.
func TestReplayExemptFromAgeLimit(t *testing.T) {
	b, _ := journalBroker(t, &broker.Options{MaxMessageAge: 50 * time.Millisecond, OutboundQueueBytes: 64 << 10})
	c := bigJournal(t, b)
	subscribeBM(c, "s", "t", "0", nil)
	time.Sleep(500 * time.Millisecond) // ten times the age limit without reading
	r := readUntil(t, c, untilAck(protocol.AckCompleted))
	if len(r.bodies) != 2000 || b.Broker.Stats().SlowConsumers != 0 {
		t.Errorf("%d of 2000 messages, %d slow consumers", len(r.bodies), b.Broker.Stats().SlowConsumers)
	}
}

// TestReplayReplaceKeepsItsPlace: "replace" of a bookmark subscription
// swaps its filter where its replay has got to: nothing is replayed again
// and the new command's bookmark is not used.
func TestReplayReplaceKeepsItsPlace(t *testing.T) {
	b, pub, _ := replaySetup(t, 3)
	c := dialTCP(t, b.TCPAddr)
	c.Logon("sub")
	subscribeBM(c, "s", "t", "0", nil)
	if r := readUntil(t, c, untilAck(protocol.AckCompleted)); len(r.bodies) != 3 {
		t.Fatalf("first replay: %v", r.bodies)
	}
	before := b.Broker.Stats().Subscriptions
	c.SendJSON(map[string]any{"c": "subscribe", "cid": "r", "sub_id": "s", "t": "t", "bm": "0", "o": "replace",
		"filter": "/n >= 4", "a": "processed"}, nil)
	if ack := c.AwaitAck("r", protocol.AckProcessed); ack.Header.Status != protocol.StatusSuccess {
		t.Fatal(ack)
	}
	publishN(t, pub, "t", 3, 5)
	m := c.Next()
	if string(m.Body) != `{"n":4}` || m.Header.SubIDs != "s" {
		t.Errorf("after replace: %s, want only the new message the new filter takes", m)
	}
	c.ExpectNothing(30 * time.Millisecond)
	if n := b.Broker.Stats().Subscriptions; n != before {
		t.Errorf("%d subscriptions after replace, %d before", n, before)
	}
}

func TestReplayPauseResumeAndRate(t *testing.T) {
	b, _, _ := replaySetup(t, 10)
	c := dialTCP(t, b.TCPAddr)
	c.Logon("sub")
	// Entered paused: nothing comes until it is resumed.
	subscribeBM(c, "p", "t", "0", map[string]any{"o": "pause"})
	c.AwaitAck("p", protocol.AckProcessed)
	c.ExpectNothing(50 * time.Millisecond)
	c.SendJSON(map[string]any{"c": "subscribe", "cid": "r1", "sub_id": "p", "o": "resume", "a": "processed"}, nil)
	if ack := c.AwaitAck("r1", protocol.AckProcessed); ack.Header.Status != protocol.StatusSuccess || ack.Header.SubID != "p" {
		t.Fatalf("resume: %s", ack)
	}
	if r := readUntil(t, c, untilAck(protocol.AckCompleted)); len(r.bodies) != 10 {
		t.Fatalf("after resume: %v", r.bodies)
	}

	// At 50 messages a second, ten take at least 9 intervals; paused after
	// the first, nothing more comes until resumed, then the rest, once each.
	start := time.Now()
	subscribeBM(c, "q", "t", "0", map[string]any{"o": "rate=50"})
	var r replayed
	r = readUntil(t, c, func(m ampstest.Message, r *replayed) bool { return len(r.bodies) == 1 })
	c.SendJSON(map[string]any{"c": "subscribe", "cid": "pq", "sub_id": "q", "o": "pause", "a": "processed"}, nil)
	rest := readUntil(t, c, func(m ampstest.Message, _ *replayed) bool {
		return m.Header.CommandID == "pq" && m.Header.AckType == protocol.AckProcessed
	})
	c.ExpectNothing(100 * time.Millisecond) // at 50/s, five would have come
	c.SendJSON(map[string]any{"c": "subscribe", "cid": "rq", "sub_id": "q", "o": "resume", "a": "processed"}, nil)
	more := readUntil(t, c, untilAck(protocol.AckCompleted))
	all := append(append(r.bodies, rest.bodies...), more.bodies...)
	if diff := cmp.Diff(bodies(0, 10), all); diff != "" {
		t.Errorf("paused and resumed replay (-want +got):\n%s", diff)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("ten messages at rate=50 took %v, less than 9 intervals", d)
	}
}

func TestReplayPauseRefusals(t *testing.T) {
	b, _, _ := replaySetup(t, 1)
	c := dialTCP(t, b.TCPAddr)
	c.Logon("sub")
	c.Subscribe("live", "t")
	for i, tc := range []struct {
		hdr    map[string]any
		reason string
	}{
		{map[string]any{"sub_id": "live", "o": "pause"}, broker.ReasonReplayOnly},        // not a bookmark subscription
		{map[string]any{"sub_id": "nosuch", "o": "resume"}, broker.ReasonInvalidOptions}, // nothing to resume
		{map[string]any{"t": "t", "bm": "0", "o": "rate=2X"}, broker.ReasonInvalidOptions},
		{map[string]any{"t": "t", "bm": "0", "o": "rate=0"}, broker.ReasonInvalidOptions},
		{map[string]any{"t": "t", "bm": "0", "o": "live,pause"}, broker.ReasonInvalidOptions},
		{map[string]any{"t": "plain", "bm": "0", "o": "pause"}, broker.ReasonReplayOnly}, // topic not journaled
	} {
		id := fmt.Sprint("x", i)
		h := map[string]any{"c": "subscribe", "cid": id, "a": "processed"}
		if _, ok := tc.hdr["sub_id"]; !ok {
			h["sub_id"] = id
		}
		for k, v := range tc.hdr {
			h[k] = v
		}
		c.SendJSON(h, nil)
		if ack := c.AwaitAck(id, protocol.AckProcessed); ack.Header.Status != protocol.StatusFailure || ack.Header.Reason != tc.reason {
			t.Errorf("%v: %s, want failure %q", tc.hdr, ack, tc.reason)
		}
	}
}

func TestReplayTopN(t *testing.T) {
	b, pub, _ := replaySetup(t, 5)
	c := dialTCP(t, b.TCPAddr)
	c.Logon("sub")
	// top_n caps the replay: three messages, completed, and the
	// subscription is over.
	subscribeBM(c, "s", "t", "0", map[string]any{"o": "top_n=3"})
	r := readUntil(t, c, untilAck(protocol.AckCompleted))
	if diff := cmp.Diff(bodies(0, 3), r.bodies); diff != "" {
		t.Errorf("top_n=3 (-want +got):\n%s", diff)
	}
	publishN(t, pub, "t", 5, 6)
	c.ExpectNothing(30 * time.Millisecond)
	// The header works alike; top_n with NOW, or on a live subscription,
	// is refused.
	c.SendJSON(map[string]any{"c": "subscribe", "cid": "h", "sub_id": "h", "t": "t", "bm": "0", "top_n": 1, "a": "processed,completed"}, nil)
	if r := readUntil(t, c, untilAck(protocol.AckCompleted)); len(r.bodies) != 1 {
		t.Errorf("top_n header 1: %v", r.bodies)
	}
	for i, tc := range []map[string]any{
		{"t": "t", "bm": "0|1|", "o": "top_n=2"},
		{"t": "t", "o": "top_n=2"},
	} {
		id := fmt.Sprint("n", i)
		h := map[string]any{"c": "subscribe", "cid": id, "sub_id": id, "a": "processed"}
		for k, v := range tc {
			h[k] = v
		}
		c.SendJSON(h, nil)
		if ack := c.AwaitAck(id, protocol.AckProcessed); ack.Header.Status != protocol.StatusFailure {
			t.Errorf("%v: %s, want a failure", tc, ack)
		}
	}
}
