package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
)

// fakeOrder is the cluster order of SOW-topic publishes for the fake
// nodes of one test: Order puts a publish in every node's queue (its
// origin's included) under one lock, so every node applies the same
// sequence; each node applies its queue from its own goroutine and, for
// the publishes it originated, then confirms the order (done).
type fakeOrder struct {
	hub   fakeHub
	mu    sync.Mutex
	nodes []*orderingNode
	// lostConfirm makes the origin's confirmation fail before the apply,
	// as when JetStream stored a publish and its ack timed out; notStored
	// makes it fail with no node applying the publish.
	lostConfirm bool
	notStored   atomic.Bool
	// resent makes the order answer every publish as a resend it already
	// held (broker.ErrAlreadyOrdered), applying nothing.
	resent bool
}

type orderedItem struct {
	p    *broker.RemotePublish
	done func(error) // the origin's; nil elsewhere
}

// orderingNode is a fake backplane that also orders SOW topics.
type orderingNode struct {
	*fakeBackplane
	order   *fakeOrder
	queue   chan orderedItem
	stop    chan struct{}
	stopped chan struct{}
	started bool
}

var _ broker.SOWOrderer = (*orderingNode)(nil)

func (o *fakeOrder) node(t *testing.T) *orderingNode {
	n := &orderingNode{fakeBackplane: o.hub.node(t), order: o, queue: make(chan orderedItem, fakeQueue),
		stop: make(chan struct{}), stopped: make(chan struct{})}
	o.mu.Lock()
	o.nodes = append(o.nodes, n)
	o.mu.Unlock()
	t.Cleanup(n.close)
	return n
}

func (n *orderingNode) Order(p *broker.RemotePublish, done func(error)) error {
	cp := *p
	cp.Body = append([]byte(nil), p.Body...)
	n.order.mu.Lock()
	defer n.order.mu.Unlock()
	for _, m := range n.order.nodes {
		it := orderedItem{p: &cp}
		if m == n {
			it.done = done
		}
		select {
		case m.queue <- it:
		default:
			return errors.New("fake order: queue full")
		}
	}
	return nil
}

func (n *orderingNode) StartOrdered(apply func(*broker.RemotePublish)) error {
	n.started = true
	go func() {
		defer close(n.stopped)
		for {
			select {
			case <-n.stop:
				return
			case it := <-n.queue:
				if n.order.resent {
					if it.done != nil {
						it.done(broker.ErrAlreadyOrdered)
					}
					continue
				}
				if n.order.notStored.Load() {
					if it.done != nil {
						it.done(errors.New("fake order: not stored"))
					}
					continue
				}
				if it.done != nil && n.order.lostConfirm {
					it.done(errors.New("fake order: confirmation lost"))
					apply(it.p)
					continue
				}
				apply(it.p)
				if it.done != nil {
					it.done(nil)
				}
			}
		}
	}()
	return nil
}

func (n *orderingNode) close() {
	close(n.stop)
	if n.started {
		<-n.stopped
	}
}

// sowNodes starts n brokers with the SOW topic "positions" (keyed by /id)
// on one fake order, with TCP listeners.
func sowNodes(t *testing.T, n int) []*ampstest.Broker {
	o := &fakeOrder{}
	// The backplanes first: their cleanups then run after the brokers'.
	bps := make([]*orderingNode, n)
	for i := range bps {
		bps[i] = o.node(t)
	}
	out := make([]*ampstest.Broker, n)
	for i := range out {
		out[i] = ampstest.NewBroker(t, &ampstest.Options{Broker: &broker.Options{
			Backplane: bps[i],
			SOWTopics: []broker.SOWTopic{{Name: "positions", Keys: []string{"/id"}}},
		}})
	}
	return out
}

// awaitApplied waits until every node applied every ordered publish.
func awaitApplied(t *testing.T, nodes []*ampstest.Broker) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ordered int64
		for _, n := range nodes {
			ordered += n.Stats().Cluster.Ordered
		}
		all := true
		for _, n := range nodes {
			all = all && n.Stats().Cluster.Applied == ordered
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			for i, n := range nodes {
				t.Logf("node %d: %+v", i, *n.Stats().Cluster)
			}
			t.Fatalf("the nodes did not apply the %d ordered publishes", ordered)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sowOf answers a sow query for every record of "positions" on node n.
func sowOf(t *testing.T, n *ampstest.Broker) []sowRecord {
	t.Helper()
	c := n.Dial(n.TCPURL(), nil)
	c.Logon("query")
	sowCommand(c, map[string]any{"c": "sow", "cid": "q", "t": "positions", "bs": 100, "a": "processed"})
	expectAck(t, c, "processed", "success")
	return readGroup(t, c, "q")
}

// TestClusterSOWSameOnEveryNode: publishers on nodes A and B publish and
// delta_publish to one SOW topic at once; once every node applied every
// ordered publish, a sow query returns the same records on both.
func TestClusterSOWSameOnEveryNode(t *testing.T) {
	nodes := sowNodes(t, 2)
	const perNode, each, keys = 3, 100, 10
	var wg sync.WaitGroup
	for ni, n := range nodes {
		for p := range perNode {
			c := connect(t, n.Broker, fmt.Sprintf("pub%d-%d", ni, p))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					body := fmt.Appendf(nil, `{"id":%d,"node":%d,"p":%d,"n":%d}`, i%keys, ni, p, i)
					var err error
					if i%3 == 0 {
						err = c.DeltaPublish(context.Background(), "positions", fmt.Appendf(nil, `{"id":%d,"last_delta":"%d-%d-%d"}`, i%keys, ni, p, i))
					} else {
						err = c.Publish(context.Background(), "positions", body)
					}
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	awaitApplied(t, nodes)
	a, b := sowOf(t, nodes[0]), sowOf(t, nodes[1])
	if len(a) != keys || !slices.Equal(a, b) {
		t.Fatalf("SOW on A (%d records) and B (%d records) differ:\nA %v\nB %v", len(a), len(b), a, b)
	}
	for i, n := range nodes {
		if st := n.Stats().Cluster; !st.SOWOrdered || st.OrderFailures != 0 || st.ApplyRefused != 0 || st.Ordered != perNode*each {
			t.Errorf("node %d cluster stats %+v; want SOW ordered, %d ordered, no failures", i, *st, perNode*each)
		}
	}
}

// TestClusterSOWAcks: over TCP, a publish to an ordered SOW topic is
// applied on its node (the publisher's own subscription gets it once, then)
// and acked processed once applied there, and persisted (with its
// sequence) once the order confirmed it, before or after; a message
// without its key is refused at once.
func TestClusterSOWAcks(t *testing.T) {
	nodes := sowNodes(t, 2)
	c := nodes[0].Dial(nodes[0].TCPURL(), nil)
	c.Logon("pub")
	sowCommand(c, map[string]any{"c": "subscribe", "cid": "s", "t": "positions", "a": "processed"})
	expectAck(t, c, "processed", "success")
	c.SendJSON(map[string]any{"c": "publish", "cid": "p1", "t": "positions", "s": 7, "a": "processed,persisted"}, []byte(`{"id":1}`))
	var got []string
	for len(got) < 3 {
		m := c.Next()
		switch {
		case m.Header.Command == "ack":
			got = append(got, m.Header.AckType+" "+m.Header.Status+" "+m.Field("s"))
		case m.Header.Command == "p" && string(m.Body) == `{"id":1}`:
			got = append(got, "delivery")
		default:
			t.Fatalf("unexpected %s", m)
		}
	}
	applied := slices.DeleteFunc(slices.Clone(got), func(s string) bool { return s == "persisted success 7" })
	if want := []string{"delivery", "processed success "}; len(got) != 3 || !slices.Equal(applied, want) {
		t.Errorf("acks and delivery %q; want the delivery, then processed, and persisted with s 7 anywhere", got)
	}
	c.SendJSON(map[string]any{"c": "publish", "cid": "p2", "t": "positions", "a": "processed"}, []byte(`{"other":1}`))
	if m := c.Next(); m.Header.Command != "ack" || m.Header.Status != "failure" {
		t.Errorf("a message without its key: %s; want a failure ack", m)
	}
	c.ExpectNothing(50 * time.Millisecond)
	awaitApplied(t, nodes)
	if a, b := sowOf(t, nodes[0]), sowOf(t, nodes[1]); len(a) != 1 || !slices.Equal(a, b) {
		t.Errorf("SOW on A %v, on B %v; want the one record on both", a, b)
	}
}

// TestClusterSOWAndSubscribeNoGap: while a publisher on node A updates
// keys in turn, clients on node B sow_and_subscribe one after another;
// each sees, per key, the snapshot's value and then every later update
// once, in order, and ends with the SOW of both nodes.
func TestClusterSOWAndSubscribeNoGap(t *testing.T) {
	nodes := sowNodes(t, 2)
	const keys, total, clients = 10, 1500, 4
	pub := connect(t, nodes[0].Broker, "pub")
	published := make(chan error, 1)
	go func() {
		for i := range total {
			if err := pub.Publish(context.Background(), "positions", fmt.Appendf(nil, `{"id":%d,"n":%d}`, i%keys, i)); err != nil {
				published <- err
				return
			}
			if i%50 == 0 {
				time.Sleep(time.Millisecond) // the clients subscribe at different points
			}
		}
		published <- nil
	}()
	type rec struct{ ID, N int }
	views := make([]map[int]int, clients)
	for ci := range clients {
		c := nodes[1].Dial(nodes[1].TCPURL(), nil)
		c.Logon(fmt.Sprintf("sas%d", ci))
		sowCommand(c, map[string]any{"c": "sow_and_subscribe", "cid": "s", "t": "positions", "bs": 10, "a": "processed"})
		expectAck(t, c, "processed", "success")
		view := map[int]int{}
		for _, r := range readGroup(t, c, "s") {
			var v rec
			if err := json.Unmarshal([]byte(r.data), &v); err != nil {
				t.Fatal(err)
			}
			view[v.ID] = v.N
		}
		for view[(total-1)%keys] != total-1 {
			m := c.Next()
			var v rec
			if m.Header.Command != "p" || json.Unmarshal(m.Body, &v) != nil {
				t.Fatalf("client %d: unexpected %s", ci, m)
			}
			// The next update of a key follows the one the client has,
			// or is the key's first when the snapshot had none.
			want := v.ID
			if n, ok := view[v.ID]; ok {
				want = n + keys
			}
			if v.N != want {
				t.Fatalf("client %d: key %d went from %v to %d; want %d (a gap or a duplicate)", ci, v.ID, view[v.ID], v.N, want)
			}
			view[v.ID] = v.N
		}
		views[ci] = view
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	awaitApplied(t, nodes)
	for i, n := range nodes {
		sow := map[int]int{}
		for _, r := range sowOf(t, n) {
			var v rec
			if err := json.Unmarshal([]byte(r.data), &v); err != nil {
				t.Fatal(err)
			}
			sow[v.ID] = v.N
		}
		for ci, view := range views {
			if fmt.Sprint(view) != fmt.Sprint(sow) {
				t.Errorf("client %d's view %v differs from node %d's SOW %v", ci, view, i, sow)
			}
		}
	}
}

// TestClusterSOWDelete: a sow_delete on node B (by filter, by keys, by
// data) is ordered like a publish: both nodes remove the same records, and
// B's client gets its stats ack with the counts once B applied it.
func TestClusterSOWDelete(t *testing.T) {
	nodes := sowNodes(t, 2)
	pub := connect(t, nodes[0].Broker, "pub")
	for i := range 10 {
		if err := pub.Publish(context.Background(), "positions", fmt.Appendf(nil, `{"id":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	awaitApplied(t, nodes)
	c := nodes[1].Dial(nodes[1].TCPURL(), nil)
	c.Logon("del")
	del := func(h map[string]any, body string) ampstest.Message {
		t.Helper()
		h["c"], h["t"], h["a"] = "sow_delete", "positions", "processed,stats"
		var b []byte
		if body != "" {
			b = []byte(body)
		}
		c.SendJSON(h, b)
		if a := c.Next(); a.Header.AckType != "processed" || a.Header.Status != "success" {
			t.Fatalf("want a processed ack, got %s", a)
		}
		return c.Next()
	}
	if a := del(map[string]any{"cid": "1", "filter": "/id >= 5"}, ""); a.Header.AckType != "stats" || a.Header.RecordsDeleted != 5 || a.Header.TopicMatches != 10 {
		t.Fatalf("delete by filter: %s", a)
	}
	if a := del(map[string]any{"cid": "2"}, `{"id":0}`); a.Header.RecordsDeleted != 1 {
		t.Fatalf("delete by data: %s", a)
	}
	var keys []string
	for _, r := range sowOf(t, nodes[1]) {
		if r.data == `{"id":1}` || r.data == `{"id":2}` {
			keys = append(keys, r.key)
		}
	}
	if a := del(map[string]any{"cid": "3", "sow_keys": keys[0] + "," + keys[1] + ",nosuch"}, ""); a.Header.RecordsDeleted != 2 {
		t.Fatalf("delete by keys %v: %s", keys, a)
	}
	awaitApplied(t, nodes)
	a, b := sowOf(t, nodes[0]), sowOf(t, nodes[1])
	if len(a) != 2 || !slices.Equal(a, b) {
		t.Errorf("after the deletes: SOW on A %v, on B %v; want the records of ids 3 and 4 on both", a, b)
	}
}

// TestClusterSOWJournalsUnconfirmedApply: with a journal, a SOW publish
// whose order failed unconfirmed is told so (persisted failure), yet when
// the order applies it after all, its node journals it (the journal then
// has what the SOW has), and the publisher's resend of it is a duplicate
// acked persisted.
func TestClusterSOWJournalsUnconfirmedApply(t *testing.T) {
	o := &fakeOrder{lostConfirm: true}
	bp := o.node(t)
	j := broker.NewMemJournal(0, 0)
	t.Cleanup(func() { j.Close() })
	n := ampstest.NewBroker(t, &ampstest.Options{Broker: &broker.Options{
		Backplane: bp, Journal: j,
		SOWTopics: []broker.SOWTopic{{Name: "positions", Keys: []string{"/id"}}},
	}})
	c := n.Dial(n.TCPURL(), nil)
	c.Logon("pub")
	publish := func() ampstest.Message {
		c.SendJSON(map[string]any{"c": "publish", "t": "positions", "s": 1, "a": "persisted"}, []byte(`{"id":1}`))
		for {
			m := c.Next()
			if m.Header.AckType == "persisted" {
				return m
			}
		}
	}
	if m := publish(); m.Header.Status != "failure" {
		t.Fatalf("unconfirmed publish: %s; want a persisted failure", m)
	}
	// The apply follows the failed confirmation.
	deadline := time.Now().Add(10 * time.Second)
	for len(sowOf(t, n)) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the SOW never held the record the order applied: %+v", *n.Stats().Cluster)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if e := j.Stats().Entries; e != 1 {
		t.Fatalf("journal holds %d entries; want the applied publish", e)
	}
	if m := publish(); m.Header.Status != "success" || m.Header.Sequence != 1 {
		t.Errorf("the resend: %s; want persisted success with s 1", m)
	}
	if e := j.Stats().Entries; e != 1 {
		t.Errorf("journal holds %d entries after the resend, want 1", e)
	}
}

// TestClusterSOWResendOfUnstoredPublish: a publish the order failed to
// store (it is applied nowhere) is not counted as processed, so its
// publisher's resend reaches the order and is applied, with or without a
// journal.
func TestClusterSOWResendOfUnstoredPublish(t *testing.T) {
	for _, journaled := range []bool{false, true} {
		t.Run(fmt.Sprint("journal=", journaled), func(t *testing.T) {
			o := &fakeOrder{}
			o.notStored.Store(true)
			n, c := orderedPublisher(t, o, journaled)
			persisted := func() ampstest.Message {
				for {
					if m := c.Next(); m.Header.AckType == "persisted" {
						return m
					}
				}
			}
			c.SendJSON(map[string]any{"c": "publish", "t": "positions", "s": 1, "a": "persisted"}, []byte(`{"id":1}`))
			if m := persisted(); m.Header.Status != "failure" {
				t.Fatalf("a publish the order did not store: %s; want a persisted failure", m)
			}
			o.notStored.Store(false)
			c.SendJSON(map[string]any{"c": "publish", "t": "positions", "s": 1, "a": "persisted"}, []byte(`{"id":1}`))
			c.SendJSON(map[string]any{"c": "publish", "t": "positions", "s": 2, "a": "persisted"}, []byte(`{"id":2}`))
			for m := persisted(); m.Header.Sequence < 2; m = persisted() {
				if m.Header.Status != "success" {
					t.Fatalf("resend: %s", m)
				}
			}
			if got := len(sowOf(t, n)); got != 2 {
				t.Errorf("SOW holds %d records after the resend of s=1 and s=2, want 2", got)
			}
		})
	}
}

// racingOrder fails every order's confirmation from another goroutine
// while applying the publish at the same time, as when JetStream's ack of
// a stored publish times out just as the consumer delivers it.
type racingOrder struct {
	*fakeBackplane
	q chan *broker.RemotePublish
}

func (r *racingOrder) Order(p *broker.RemotePublish, done func(error)) error {
	cp := *p
	cp.Body = append([]byte(nil), p.Body...)
	r.q <- &cp
	go done(errors.New("racing order: ack timed out"))
	return nil
}

func (r *racingOrder) StartOrdered(apply func(*broker.RemotePublish)) error {
	go func() {
		for i := uint64(1); ; i++ {
			p, ok := <-r.q
			if !ok {
				return
			}
			p.Ordinal = i
			apply(p)
		}
	}()
	return nil
}

// TestClusterSOWJournalsRacingFailure: with a journal, every publish the
// order applies on its node is journaled there, also when the failure of
// its confirmation races its apply.
func TestClusterSOWJournalsRacingFailure(t *testing.T) {
	hub := &fakeHub{}
	r := &racingOrder{fakeBackplane: hub.node(t), q: make(chan *broker.RemotePublish, 4096)}
	t.Cleanup(func() { close(r.q) })
	j := broker.NewMemJournal(0, 0)
	t.Cleanup(func() { j.Close() })
	n := ampstest.NewBroker(t, &ampstest.Options{Broker: &broker.Options{
		Backplane: r, Journal: j,
		SOWTopics: []broker.SOWTopic{{Name: "positions", Keys: []string{"/id"}}},
	}})
	c := n.Dial(n.TCPURL(), nil)
	c.Logon("pub")
	const total = 2000
	for i := 1; i <= total; i++ {
		c.SendJSON(map[string]any{"c": "publish", "t": "positions", "s": i, "a": "processed,persisted"}, fmt.Appendf(nil, `{"id":%d}`, i))
	}
	deadline := time.Now().Add(20 * time.Second)
	for n.Stats().Cluster.Applied < total {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d applied", n.Stats().Cluster.Applied, total)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The last apply's journal append may still be under way.
	for j.Stats().Entries < total && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if e := j.Stats().Entries; e != total {
		t.Errorf("%d publishes applied, the journal holds %d", total, e)
	}
}

// TestClusterSOWResendAlreadyOrdered: a resend the order already held is
// confirmed (processed, and persisted without a journal); with a journal
// its persisted ack waits for the journal to show the publish, as a
// duplicate's does, since the node that journals it is its first sending's
// (here none did).
func TestClusterSOWResendAlreadyOrdered(t *testing.T) {
	for _, journaled := range []bool{false, true} {
		t.Run(fmt.Sprint("journal=", journaled), func(t *testing.T) {
			_, c := orderedPublisher(t, &fakeOrder{resent: true}, journaled)
			c.SendJSON(map[string]any{"c": "publish", "cid": "p", "t": "positions", "s": 1, "a": "processed,persisted"}, []byte(`{"id":1}`))
			if m := c.AwaitAck("p", "processed"); m.Header.Status != "success" {
				t.Fatalf("processed: %s", m)
			}
			var persisted *ampstest.Message
			for {
				m, err := c.Conn.ReadWithin(300 * time.Millisecond)
				if err != nil {
					break
				}
				if m.Header.AckType == "persisted" {
					persisted = &m
					break
				}
			}
			switch {
			case !journaled && (persisted == nil || persisted.Header.Status != "success"):
				t.Errorf("without a journal: persisted %v; want success (the order holds it)", persisted)
			case journaled && persisted != nil:
				t.Errorf("with a journal that does not show it: persisted %s; want none yet", persisted)
			}
		})
	}
}

// orderedPublisher starts a node of o with the SOW topic "positions" (and
// a memory journal when journaled) and logs a TCP client "pub" on to it.
func orderedPublisher(t *testing.T, o *fakeOrder, journaled bool) (*ampstest.Broker, *ampstest.Client) {
	opts := &broker.Options{Backplane: o.node(t), SOWTopics: []broker.SOWTopic{{Name: "positions", Keys: []string{"/id"}}}}
	if journaled {
		j := broker.NewMemJournal(0, 0)
		t.Cleanup(func() { j.Close() })
		opts.Journal = j
	}
	n := ampstest.NewBroker(t, &ampstest.Options{Broker: opts})
	c := n.Dial(n.TCPURL(), nil)
	c.Logon("pub")
	return n, c
}
