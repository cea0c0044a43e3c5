package broker_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
)

// snapshotNode is an orderingNode that takes the broker's SOWState and,
// when load is set, applies a snapshot (its records, then its high-water
// marks) before it applies the order, as a snapshotting backplane loads
// one.
type snapshotNode struct {
	*orderingNode
	state broker.SOWState
	load  *snapshot
}

var _ broker.SOWSnapshotter = (*snapshotNode)(nil)

func (n *snapshotNode) SetSOWState(s broker.SOWState) { n.state = s }

func (n *snapshotNode) StartOrdered(apply func(*broker.RemotePublish)) error {
	if n.load != nil {
		for i := range n.load.records {
			apply(&n.load.records[i])
		}
		for name, seq := range n.load.marks {
			n.state.RestoreSequence(name, seq)
		}
	}
	// The fake order gives no places: the node numbers what it applies,
	// past the snapshot's.
	var seq uint64
	if n.load != nil {
		for _, p := range n.load.records {
			seq = max(seq, p.Ordinal)
		}
	}
	return n.orderingNode.StartOrdered(func(p *broker.RemotePublish) {
		q := *p
		seq++
		q.Ordinal, q.OrderTime = seq, time.Now()
		apply(&q)
	})
}

// snapshot is what a SOWState hands out.
type snapshot struct {
	records []broker.RemotePublish
	marks   map[string]uint64
}

// take copies the state's records and marks (the node is idle: nothing
// is applied meanwhile).
func take(s broker.SOWState) *snapshot {
	out := &snapshot{marks: map[string]uint64{}}
	s.Records(func(p *broker.RemotePublish) {
		cp := *p
		cp.Body = slices.Clone(p.Body)
		out.records = append(out.records, cp)
	})
	s.Sequences(func(name string, seq uint64) { out.marks[name] = seq })
	return out
}

// snapshotTopics: "positions" keyed by /id, honouring "e".
var snapshotTopics = []broker.SOWTopic{{Name: "positions", Keys: []string{"/id"}, ExpirationEnabled: true}}

// TestClusterSOWStateSnapshot: a SOWState's records recreate every record
// (data, version, time, lifetime) and its marks the publishers' sequences:
// a node that loads them answers sow alike, tells the publisher its
// sequence on logon, and hands out the same snapshot.
func TestClusterSOWStateSnapshot(t *testing.T) {
	src := &snapshotNode{orderingNode: (&fakeOrder{}).node(t)}
	a := ampstest.NewBroker(t, &ampstest.Options{Broker: &broker.Options{Backplane: src, SOWTopics: snapshotTopics}})
	pub := a.Dial(a.TCPURL(), nil)
	pub.Logon("pub")
	const n = 20
	for i := 1; i <= n; i++ {
		h := map[string]any{"c": "p", "t": "positions", "s": i}
		if i%2 == 0 {
			h["e"] = 60 + i
		}
		if i > 15 {
			h["c"] = "delta_publish"
		}
		pub.SendJSON(h, fmt.Appendf(nil, `{"id":%d,"n":%d}`, i%10, i))
	}
	pub.Flush("f")
	awaitApplied(t, []*ampstest.Broker{a})
	snap := take(src.state)
	if len(snap.records) != 10 || snap.marks["pub"] != n {
		t.Fatalf("snapshot of node A: %d records, marks %v; want 10 records and pub at %d", len(snap.records), snap.marks, n)
	}
	start := time.Now()
	for _, p := range snap.records {
		if p.Ordinal == 0 || p.OrderTime.IsZero() || p.OrderTime.After(start) {
			t.Fatalf("record %s without the order's version and time: %+v", p.Body, p)
		}
		// Records 6..9 were last written by an even i (a lifetime) or by a
		// delta (16..20, whose lifetime is its own "e").
		var id, i int
		if _, err := fmt.Sscanf(string(p.Body), `{"id":%d,"n":%d}`, &id, &i); err != nil {
			t.Fatal(err)
		}
		if want := i%2 == 0; p.HasExpiration != want || want && p.Expiration != uint64(60+i) {
			t.Fatalf("record %s: expiration %v %d; want %v %d", p.Body, p.HasExpiration, p.Expiration, want, 60+i)
		}
	}

	dst := &snapshotNode{orderingNode: (&fakeOrder{}).node(t), load: snap}
	b := ampstest.NewBroker(t, &ampstest.Options{Broker: &broker.Options{Backplane: dst, SOWTopics: snapshotTopics}})
	if got, want := sowOf(t, b), sowOf(t, a); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("node B loaded from the snapshot answers %v; node A %v", got, want)
	}
	again := take(dst.state)
	key := func(p broker.RemotePublish) string { return p.SOWKey }
	slices.SortFunc(snap.records, func(x, y broker.RemotePublish) int { return strings.Compare(key(x), key(y)) })
	slices.SortFunc(again.records, func(x, y broker.RemotePublish) int { return strings.Compare(key(x), key(y)) })
	if fmt.Sprint(again.records) != fmt.Sprint(snap.records) {
		t.Fatalf("node B's snapshot differs from the one it loaded:\n%v\n%v", again.records, snap.records)
	}
	fail := b.Dial(b.TCPURL(), nil)
	if ack := fail.Logon("pub"); ack.Header.Sequence != n {
		t.Fatalf("the publisher's logon on node B: %s; want sequence %d", ack, n)
	}
}

// TestClusterSOWStateForeverRecord: on a topic whose records expire by
// default, a record published to live for ever ("e" 0) still lives for
// ever once loaded from a snapshot (it must not take the topic's lifetime,
// after which every node would expire it).
func TestClusterSOWStateForeverRecord(t *testing.T) {
	topics := []broker.SOWTopic{{Name: "positions", Keys: []string{"/id"}, Expiration: time.Hour}}
	src := &snapshotNode{orderingNode: (&fakeOrder{}).node(t)}
	a := ampstest.NewBroker(t, &ampstest.Options{Broker: &broker.Options{Backplane: src, SOWTopics: topics}})
	pub := a.Dial(a.TCPURL(), nil)
	pub.Logon("pub")
	pub.SendJSON(map[string]any{"c": "p", "t": "positions", "e": 0}, []byte(`{"id":1}`))
	pub.SendJSON(map[string]any{"c": "p", "t": "positions"}, []byte(`{"id":2}`))
	pub.Flush("f")
	awaitApplied(t, []*ampstest.Broker{a})
	snap := take(src.state)
	dst := &snapshotNode{orderingNode: (&fakeOrder{}).node(t), load: snap}
	ampstest.NewBroker(t, &ampstest.Options{Broker: &broker.Options{Backplane: dst, SOWTopics: topics}})
	lifetimes := func(s *snapshot) map[string]string {
		out := map[string]string{}
		for _, p := range s.records {
			out[string(p.Body)] = fmt.Sprint(p.HasExpiration, p.Expiration)
		}
		return out
	}
	want := map[string]string{`{"id":1}`: "true 0", `{"id":2}`: "true 3600"}
	if got := lifetimes(snap); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("node A's snapshot lifetimes %v, want %v", got, want)
	}
	if got := lifetimes(take(dst.state)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("node B's lifetimes after loading %v, want %v", got, want)
	}
}
