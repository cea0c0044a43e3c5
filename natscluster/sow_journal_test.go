package natscluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/natscluster/internal/natstest"
	"github.com/ampsbroker/ampsbroker/protocol"
	"github.com/nats-io/nats.go"
)

// startJournaledSOWNode starts a broker with sowTopics ordered on the SOW
// stream (R3) and the shared journal of cfg, every topic journaled,
// connected to NATS at url.
func startJournaledSOWNode(t *testing.T, url, id string, cfg JournalConfig, extra ...nats.Option) *ampstest.Broker {
	t.Helper()
	obp := newOrdered(t, url, id, SOWConfig{Replicas: 3, AckTimeout: cfg.AckTimeout}, extra...)
	j := openJournal(t, natstest.Connect(t, url, extra...), cfg)
	return ampstest.NewBroker(t, &ampstest.Options{Broker: &broker.Options{Backplane: obp, SOWTopics: sowTopics, Journal: j}})
}

// awaitPersisted reads c until a persisted ack covering sequence seq (the
// cumulative ack of a journal) and fails t on a failed one.
func awaitPersisted(t *testing.T, c *ampstest.Client, seq uint64) {
	t.Helper()
	for {
		m := c.Next()
		if m.Header.Command != protocol.CmdAck || m.Header.AckType != protocol.AckPersisted {
			continue
		}
		if m.Header.Status != protocol.StatusSuccess {
			t.Fatalf("persisted ack %s", m)
		}
		if m.Header.Sequence >= seq {
			return
		}
	}
}

// TestSOWTopicsWithJournal: nodes that order their SOW topics on the SOW
// stream and share a JetStream transaction log. Publishes, a delta publish
// and a sow_delete from publishers on A and B are acknowledged persisted;
// every node answers sow with the same records; a bookmark replay on C
// returns each publish once, a delta as the record it merged into, in each
// publisher's order; the journal holds each publish once (a removal is not
// journaled: the SOW comes from the order); and a node started afterwards
// takes its SOW from the order, with the same records, not from the
// journal on top of it.
func TestSOWTopicsWithJournal(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	cfg := journalConfig(3)
	var nodes []*ampstest.Broker
	for i := range 3 {
		nodes = append(nodes, startJournaledSOWNode(t, c.URL(i), fmt.Sprintf("node%d", i), cfg))
		if st := nodes[i].Stats().Cluster; !st.SOWOrdered {
			t.Fatalf("node %d: SOW topics not ordered with a journal: %+v", i, *st)
		}
	}
	pubA, pubB := logon(nodes[0], "pubA"), logon(nodes[1], "pubB")
	send := func(c *ampstest.Client, h protocol.Header, seq uint64, body string) {
		h.Topic, h.AckType = "positions", protocol.AckPersisted
		h.Set(protocol.FieldSequence, seq)
		c.Send(&h, []byte(body))
	}
	send(pubA, protocol.Header{Command: protocol.CmdPublish}, 1, `{"id":1,"n":0}`)
	send(pubA, protocol.Header{Command: protocol.CmdDeltaPublish}, 2, `{"id":1,"x":"y"}`)
	send(pubA, protocol.Header{Command: protocol.CmdPublish}, 3, `{"id":2,"n":5}`)
	send(pubA, protocol.Header{Command: protocol.CmdSOWDelete, CommandID: "d", Filter: "/id = 2"}, 4, "")
	send(pubB, protocol.Header{Command: protocol.CmdPublish}, 1, `{"id":3,"n":7}`)
	awaitPersisted(t, pubA, 4)
	awaitPersisted(t, pubB, 1)

	// pubA's flush waits until its commands were applied on A; the other
	// nodes apply them in the same order.
	pubA.Flush("f")
	awaitApplied(t, nodes...)
	want := map[int]int{1: 0, 3: 7}
	for i, n := range nodes {
		if got := sowView(t, n); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("SOW on node %d %v, want %v", i, got, want)
		}
	}

	replay := logon(nodes[2], "replay")
	replay.Send(&protocol.Header{Command: protocol.CmdSubscribe, CommandID: "r", SubID: "r", Topic: "positions", Bookmark: "0"}, nil)
	got, bms := readBookmarked(t, replay, 4)
	replay.ExpectNothing(200 * time.Millisecond)
	var fromA []string
	for _, b := range got {
		if b != `{"id":3,"n":7}` {
			fromA = append(fromA, b)
		}
	}
	if wantA := []string{`{"id":1,"n":0}`, `{"id":1,"n":0,"x":"y"}`, `{"id":2,"n":5}`}; !slices.Equal(fromA, wantA) || len(got) != 4 {
		t.Errorf("replayed %q; want A's %q in order and B's publish, each once", got, wantA)
	}
	if slices.Contains(bms, "") || len(slices.Compact(slices.Clone(bms))) != 4 {
		t.Errorf("replayed bookmarks %q; want four distinct ones", bms)
	}
	for i, n := range nodes {
		if e := n.Stats().Journal.Entries; e != 4 {
			t.Errorf("node %d: the journal holds %d entries, want the 4 publishes once", i, e)
		}
	}

	late := startJournaledSOWNode(t, c.URL(1), "late", cfg)
	if got := sowView(t, late); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("SOW on a node started afterwards %v, want %v", got, want)
	}
	if st := late.Stats().Cluster; st.Applied != 5 || st.ApplyRefused != 0 {
		t.Errorf("node started afterwards: %+v; want the 5 ordered commands applied once", *st)
	}
}

// persistedPublisher publishes updates of its keys to "positions" with a
// sequence and persisted acks, and keeps which were acknowledged.
type persistedPublisher struct {
	c          *ampstest.Client
	name       string
	keys, base int

	mu     sync.Mutex
	sent   map[uint64]position // by sequence
	acked  uint64              // the cumulative persisted ack
	failed map[uint64]bool     // persisted failure acks: not covered by acked
}

// run publishes until stop is closed or the connection ends, pacing
// itself, then returns; a reader keeps the cumulative ack.
func (p *persistedPublisher) run(stop <-chan struct{}) {
	read, flushed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(read)
		for {
			m, err := p.c.Conn.ReadWithin(time.Second)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue // acks pause while an apply stalls; Close ends this
			}
			if err != nil {
				return
			}
			if m.Header.Command != protocol.CmdAck || m.Header.AckType != protocol.AckPersisted {
				continue
			}
			if m.Header.CommandID == "end" {
				close(flushed)
				continue
			}
			p.mu.Lock()
			if m.Header.Status == protocol.StatusSuccess {
				p.acked = max(p.acked, m.Header.Sequence)
			} else {
				p.failed[m.Header.Sequence] = true
			}
			p.mu.Unlock()
		}
	}()
	defer func() {
		p.c.Conn.Close()
		<-read
	}()
	for seq := uint64(1); ; seq++ {
		select {
		case <-stop:
			// The last acks: a flush asking for persisted follows them.
			h := protocol.Header{Command: protocol.CmdFlush, CommandID: "end", AckType: protocol.AckPersisted}
			if p.c.Conn.Send(&h, nil) == nil {
				select {
				case <-flushed:
				case <-time.After(testTimeout):
				}
			}
			return
		default:
		}
		rec := position{ID: p.base + int(seq)%p.keys, N: int(seq)}
		h := protocol.Header{Command: protocol.CmdPublish, Topic: "positions", AckType: protocol.AckPersisted}
		h.Set(protocol.FieldSequence, seq)
		p.mu.Lock()
		p.sent[seq] = rec
		p.mu.Unlock()
		if p.c.Conn.Send(&h, fmt.Appendf(nil, `{"id":%d,"n":%d}`, rec.ID, rec.N)) != nil {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// ackedRecords returns the publishes acknowledged persisted: covered by
// the cumulative ack and not failed on their own (a publish store hands a
// failed one back to its application).
func (p *persistedPublisher) ackedRecords() []position {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []position
	for seq := uint64(1); seq <= p.acked; seq++ {
		if !p.failed[seq] {
			out = append(out, p.sent[seq])
		}
	}
	return out
}

// TestClusterFaultsKeepPersisted: three nodes ordering their SOW topics and
// sharing a journal, node C's NATS link delayed by a proxy. Publishers on A
// and B publish with persisted acks, a client on C follows with
// sow_and_subscribe; then the NATS node under A stops and broker B stops.
// A's publisher goes on (A moved to another NATS node); C's client goes on;
// every publish acknowledged persisted before or after the faults is in
// the SOW (or a later update of its key) of A, C and the restarted B,
// which caught up and answers with the same records, and a bookmark
// replay finds every one of them in the journal.
func TestClusterFaultsKeepPersisted(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	cfg := journalConfig(3)
	cfg.AckTimeout = 2 * time.Second
	proxy := natstest.NewProxy(t, c.Servers[2].Addr().String())
	proxy.SetDelay(3 * time.Millisecond)
	a := startJournaledSOWNode(t, c.URLs(), "a", cfg, nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	b := startJournaledSOWNode(t, c.URL(1), "b", cfg)
	nodeC := startJournaledSOWNode(t, proxy.URL(), "c", cfg)

	follower := logon(nodeC, "follower")
	follower.SendJSON(map[string]any{"c": "sow_and_subscribe", "cid": "s", "t": "positions"}, nil)

	pubs := []*persistedPublisher{
		{c: logon(a, "pubA"), name: "pubA", keys: 5, base: 0, sent: map[uint64]position{}, failed: map[uint64]bool{}},
		{c: logon(b, "pubB"), name: "pubB", keys: 5, base: 5, sent: map[uint64]position{}, failed: map[uint64]bool{}},
	}
	stopA := make(chan struct{})
	done := make(chan struct{}, 2)
	go func() { pubs[0].run(stopA); done <- struct{}{} }()
	go func() { pubs[1].run(nil); done <- struct{}{} }()
	time.Sleep(300 * time.Millisecond)
	c.Stop(0)
	b.Stop() // B's publisher's connection ends with it
	<-done
	time.Sleep(700 * time.Millisecond) // A's publisher goes on after the faults
	close(stopA)
	<-done
	for _, p := range pubs {
		t.Logf("%s: %d publishes sent, %d covered by the persisted ack, %d failed", p.name, len(p.sent), p.acked, len(p.failed))
		if p.acked == 0 {
			t.Fatalf("%s: nothing acknowledged persisted", p.name)
		}
	}

	restarted := startJournaledSOWNode(t, c.URL(1), "b2", cfg)
	deadline := time.Now().Add(testTimeout)
	var views []map[int]int
	for {
		views = views[:0]
		for _, n := range []*ampstest.Broker{a, nodeC, restarted} {
			views = append(views, sowView(t, n))
		}
		same := fmt.Sprint(views[0]) == fmt.Sprint(views[1]) && fmt.Sprint(views[0]) == fmt.Sprint(views[2])
		if same {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SOW of A %v, C %v, restarted B %v: not equal after %v", views[0], views[1], views[2], testTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, p := range pubs {
		for _, r := range p.ackedRecords() {
			if views[0][r.ID] < r.N {
				t.Errorf("%s's update %+v acknowledged persisted; the SOW has n=%d for it", p.name, r, views[0][r.ID])
			}
		}
	}

	replay := logon(restarted, "replay")
	replay.Send(&protocol.Header{Command: protocol.CmdSubscribe, CommandID: "r", SubID: "r", Topic: "positions", Bookmark: "0", AckType: protocol.AckCompleted}, nil)
	journaled := map[position]int{}
	for {
		m := replay.Next()
		if m.Header.Command == protocol.CmdAck && m.Header.AckType == protocol.AckCompleted {
			break
		}
		if m.Header.Command != protocol.CmdP {
			continue
		}
		var r position
		if err := json.Unmarshal(m.Body, &r); err != nil {
			t.Fatal(err)
		}
		journaled[r]++
	}
	for _, p := range pubs {
		for _, r := range p.ackedRecords() {
			if journaled[r] != 1 {
				t.Errorf("%s's update %+v acknowledged persisted is %d times in the journal, want once", p.name, r, journaled[r])
			}
		}
	}
}
