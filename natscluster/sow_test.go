package natscluster

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/natscluster/internal/natstest"
	"github.com/ampsbroker/ampsbroker/protocol"
	"github.com/nats-io/nats.go"
)

// sowTopics are the SOW topics of these tests.
var sowTopics = []broker.SOWTopic{{Name: "positions", Keys: []string{"/id"}}}

// startSOWNode starts a broker with sowTopics on an OrderedBackplane
// connected to url (stream replication replicas). Its cleanup stops the
// broker, then the backplane.
func startSOWNode(t testing.TB, url, id string, replicas int) (*ampstest.Broker, *OrderedBackplane) {
	t.Helper()
	return startSOWNodeWith(t, url, id, SOWConfig{Replicas: replicas})
}

// startSOWNodeWith is startSOWNode with the SOW order's configuration.
func startSOWNodeWith(t testing.TB, url, id string, cfg SOWConfig, extra ...nats.Option) (*ampstest.Broker, *OrderedBackplane) {
	t.Helper()
	return startOrderedNode(t, url, id, cfg, sowTopics, extra...)
}

// startOrderedNode is startSOWNodeWith with the broker's SOW topics.
func startOrderedNode(t testing.TB, url, id string, cfg SOWConfig, topics []broker.SOWTopic, extra ...nats.Option) (*ampstest.Broker, *OrderedBackplane) {
	t.Helper()
	obp := newOrdered(t, url, id, cfg, extra...)
	return ampstest.NewBroker(t, &ampstest.Options{Broker: &broker.Options{Backplane: obp, SOWTopics: topics}}), obp
}

// newOrdered makes an OrderedBackplane connected to url, closed by the
// test's cleanup (after the cleanups registered later, such as a broker's).
func newOrdered(t testing.TB, url, id string, cfg SOWConfig, extra ...nats.Option) *OrderedBackplane {
	t.Helper()
	nc := natstest.Connect(t, url, append([]nats.Option{nats.NoEcho()}, extra...)...)
	bp, err := NewBackplane(nc, BackplaneConfig{NodeID: id})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyWait)
	defer cancel()
	obp, err := NewOrderedBackplane(ctx, bp, cfg)
	if err != nil {
		bp.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := obp.Close(); err != nil {
			t.Errorf("backplane %s: Close: %v", id, err)
		}
	})
	return obp
}

// awaitApplied waits until every node applied every publish the nodes
// handed to the order.
func awaitApplied(t testing.TB, nodes ...*ampstest.Broker) {
	t.Helper()
	deadline := time.Now().Add(readyWait)
	for {
		var ordered int64
		for _, n := range nodes {
			ordered += n.Stats().Cluster.Ordered
		}
		all := true
		for _, n := range nodes {
			all = all && n.Stats().Cluster.Applied >= ordered
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			for i, n := range nodes {
				t.Logf("node %d: %+v", i, *n.Stats().Cluster)
			}
			t.Fatalf("the nodes did not apply the %d ordered publishes within %v", ordered, readyWait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// position is a record of "positions": its key and its update's number.
type position struct{ ID, N int }

// addRecords adds the records of a "sow" batch to view (key → n).
func addRecords(t *testing.T, m ampstest.Message, view map[int]int) {
	t.Helper()
	recs, err := m.Records()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		var v position
		if err := json.Unmarshal(r.Data, &v); err != nil {
			t.Fatal(err)
		}
		view[v.ID] = v.N
	}
}

// sowView answers a sow query of "positions" on b as key → n.
func sowView(t *testing.T, b *ampstest.Broker) map[int]int {
	t.Helper()
	c := logon(b, "query")
	c.SendJSON(map[string]any{"c": "sow", "cid": "q", "t": "positions", "bs": 100}, nil)
	view := map[int]int{}
	for {
		m := c.Next()
		switch m.Header.Command {
		case "group_begin":
		case "group_end":
			return view
		case "sow":
			addRecords(t, m, view)
		default:
			t.Fatalf("in a sow result: %s", m)
		}
	}
}

// TestSOWOrderedAcrossNodes: three NATS nodes (R3 stream) and three
// brokers. Publishers on A and B update keys of one SOW topic at once (A
// keys 0–4, B keys 5–9, each key's updates numbered in steps of 5) while
// clients on C sow_and_subscribe one after another: each sees, per key,
// its snapshot's update then every later one once and in order, and ends
// with the SOW every node answers. A node started afterwards catches up
// from the stream before it serves and answers sow with the same records;
// a sow_delete on C removes the same records everywhere.
func TestSOWOrderedAcrossNodes(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	var nodes []*ampstest.Broker
	for i := range 3 {
		b, _ := startSOWNode(t, c.URL(i), fmt.Sprintf("node%d", i), 3)
		nodes = append(nodes, b)
		if st := b.Stats().Cluster; !st.SOWOrdered || st.CatchingUp {
			t.Fatalf("node %d cluster stats %+v; want SOW ordered, caught up", i, *st)
		}
	}
	const per, total, clients = 5, 400, 3
	published := make(chan error, 2)
	for side, base := range []int{0, per} {
		pub, err := nodes[side].Connect(context.Background(), fmt.Sprintf("pub%d", side), nil)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for i := range total {
				if err := pub.Publish(context.Background(), "positions", fmt.Appendf(nil, `{"id":%d,"n":%d}`, base+i%per, i)); err != nil {
					published <- err
					return
				}
				if i%40 == 0 {
					time.Sleep(2 * time.Millisecond) // the clients subscribe at different points
				}
			}
			published <- nil
		}()
	}
	lastA, lastB := (total-1)%per, per+(total-1)%per
	views := make([]map[int]int, clients)
	for ci := range clients {
		cl := logon(nodes[2], fmt.Sprintf("sas%d", ci))
		cl.SendJSON(map[string]any{"c": "sow_and_subscribe", "cid": "s", "t": "positions", "bs": 10}, nil)
		view := map[int]int{}
		for inGroup := true; inGroup; {
			m := cl.Next()
			switch m.Header.Command {
			case "group_begin":
			case "group_end":
				inGroup = false
			case "sow":
				addRecords(t, m, view)
			default:
				t.Fatalf("client %d in the snapshot: %s", ci, m)
			}
		}
		for view[lastA] != total-1 || view[lastB] != total-1 {
			m := cl.Next()
			var v position
			if m.Header.Command != protocol.CmdP || json.Unmarshal(m.Body, &v) != nil {
				t.Fatalf("client %d: unexpected %s", ci, m)
			}
			want := v.ID % per // a key's first update
			if n, ok := view[v.ID]; ok {
				want = n + per
			}
			if v.N != want {
				t.Fatalf("client %d: key %d went from %v to %d; want %d (a gap or a duplicate)", ci, v.ID, view[v.ID], v.N, want)
			}
			view[v.ID] = v.N
		}
		views[ci] = view
	}
	for range 2 {
		if err := <-published; err != nil {
			t.Fatal(err)
		}
	}
	awaitApplied(t, nodes...)
	want := sowView(t, nodes[0])
	if len(want) != 2*per {
		t.Fatalf("SOW on A %v; want %d records", want, 2*per)
	}
	for i, n := range nodes[1:] {
		if got := sowView(t, n); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("SOW on node %d %v, on A %v", i+1, got, want)
		}
	}
	for ci, v := range views {
		if fmt.Sprint(v) != fmt.Sprint(want) {
			t.Errorf("client %d's view %v, the SOW %v", ci, v, want)
		}
	}
	for i, n := range nodes {
		if st := n.Stats().Cluster; st.OrderFailures != 0 || st.ApplyRefused != 0 {
			t.Errorf("node %d cluster stats %+v; want no failures", i, *st)
		}
	}

	late, obp := startSOWNode(t, c.URL(2), "late", 3)
	if st := late.Stats().Cluster; st.CatchingUp || st.Applied < 2*total {
		t.Fatalf("a node started after %d publishes: %+v; want them applied before it serves", 2*total, *st)
	}
	if got := sowView(t, late); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("SOW on the late node %v, on A %v", got, want)
	}
	if obp.State().CatchingUp {
		t.Error("the late node's backplane still reports catching up")
	}
	// The late node's publishes reach the others in the same order.
	pub, err := late.Connect(context.Background(), "late-pub", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(context.Background(), "positions", []byte(`{"id":0,"n":-1}`)); err != nil {
		t.Fatal(err)
	}
	awaitApplied(t, append(nodes, late)...)
	want[0] = -1
	for i, n := range append(nodes, late) {
		if got := sowView(t, n); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("after the late node's publish: SOW on node %d %v, want %v", i, got, want)
		}
	}

	// A sow_delete on C removes the same records on every node; its stats
	// ack comes with the count once C applied it.
	del := logon(nodes[2], "del")
	del.SendJSON(map[string]any{"c": "sow_delete", "cid": "d", "t": "positions", "filter": "/id >= 5", "a": "stats"}, nil)
	if a := del.Next(); a.Header.AckType != "stats" || a.Header.Status != "success" || a.Header.RecordsDeleted != per {
		t.Fatalf("sow_delete on C: %s; want a stats ack with %d records deleted", a, per)
	}
	awaitApplied(t, append(nodes, late)...)
	for k := per; k < 2*per; k++ {
		delete(want, k)
	}
	for i, n := range append(nodes, late) {
		if got := sowView(t, n); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("after the sow_delete: SOW on node %d %v, want %v", i, got, want)
		}
	}
}

// TestOrderedCodec: an ordered publish decodes to what was encoded.
func TestOrderedCodec(t *testing.T) {
	o := &OrderedBackplane{Backplane: &Backplane{node: "n1", instance: "i1"}}
	var out broker.RemotePublish
	for i, in := range []broker.RemotePublish{
		{ClientName: "c", CorrelationID: "x", Sequence: 9, Delta: true, SOWKey: "k1", Expiration: 30, HasExpiration: true, Body: []byte(`{"a":1}`)},
		{ClientName: "d", Delete: true, Filter: "/a > 1", SOWKeys: "k1,k2", Token: 1<<40 | 3},
		{Expire: true, SOWKey: "k 1", ExpireVersion: 1<<50 | 5},
	} {
		data := o.encodeOrdered(&in)
		binary.LittleEndian.PutUint64(data[numberAt:], uint64(i)<<40+7) // as the sender stamps it
		from, err := decodeOrdered(data, &out)
		if want := (origin{"n1", "i1", uint64(i)<<40 + 7}); err != nil || from != want {
			t.Fatalf("decoded origin %+v, err %v; want %+v", from, err, want)
		}
		if fmt.Sprint(out) != fmt.Sprint(in) {
			t.Errorf("decoded %+v, encoded %+v", out, in)
		}
	}
	// A version 2 message (no expire version) still decodes.
	v2 := append([]byte{orderedVersionV2, flagDelta, 9, 0, 0}, make([]byte, 6)...)
	v2 = append(v2, `{"a":1}`...)
	if _, err := decodeOrdered(v2, &out); err != nil || !out.Delta || out.Sequence != 9 || string(out.Body) != `{"a":1}` || out.Expire {
		t.Errorf("version 2 message decoded as %+v, %v", out, err)
	}
	in := out
	if _, err := decodeOrdered([]byte{remoteVersion}, &out); err == nil {
		t.Error("a plain publish's data decoded as an ordered one")
	}
	if !slices.Equal(out.Body, in.Body) {
		t.Error("body changed by a failed decode")
	}
}

// TestSOWOrderSurvivesNATSNodeLoss: the NATS node that node A's broker is
// connected to stops while a client of A publishes with persisted acks
// (R3 stream): A reconnects to another NATS node, and afterwards the SOW
// of A and of B (on a NATS node that stayed) are equal and hold every
// update acknowledged persisted (or a later one of its key).
func TestSOWOrderSurvivesNATSNodeLoss(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	cfg := SOWConfig{Replicas: 3, AckTimeout: 2 * time.Second}
	a, obpA := startSOWNodeWith(t, c.URLs(), "a", cfg, nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	b, obpB := startSOWNodeWith(t, c.URL(1), "b", cfg)
	pub := logon(a, "pub")
	const keys, total, stopAt = 10, 60, 20
	acked := map[int]int{} // key → the last n acknowledged persisted
	failed := 0
	for i := range total {
		if i == stopAt {
			c.Stop(0)
		}
		cid := fmt.Sprint(i)
		pub.Send(&protocol.Header{Command: protocol.CmdPublish, CommandID: cid, Topic: "positions", AckType: protocol.AckPersisted}, fmt.Appendf(nil, `{"id":%d,"n":%d}`, i%keys, i))
		if m := pub.AwaitAck(cid, protocol.AckPersisted); m.Header.Status == protocol.StatusSuccess {
			acked[i%keys] = i
		} else {
			failed++
		}
	}
	t.Logf("%d of %d publishes not acknowledged persisted while NATS node 0 stopped", failed, total)
	published := time.Now()
	// A node whose consumer lived on the lost server makes another: its
	// applies pause for a fraction of a second (see
	// TestSOWApplyResumesAfterNATSNodeLoss).
	deadline := time.Now().Add(testTimeout)
	var maxLag uint64 // the largest lag either node showed meanwhile
	for {
		maxLag = max(maxLag, a.Stats().Cluster.Lag, b.Stats().Cluster.Lag)
		va, vb := sowView(t, a), sowView(t, b)
		missing := 0
		for k, n := range acked {
			if va[k] < n {
				missing++
			}
		}
		if fmt.Sprint(va) == fmt.Sprint(vb) && missing == 0 {
			t.Logf("SOW of A and B equal and complete %v after the publishes", time.Since(published))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: SOW on A %v, on B %v; acknowledged persisted %v", testTimeout, va, vb, acked)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := a.Stats().Cluster; !st.Connected {
		t.Errorf("node A's link after the loss: %+v; want connected again", *st)
	}
	// Once both applied everything, neither shows a lag.
	awaitState(t, obpA, "no lag on A", func(s broker.BackplaneState) bool { return s.Lag == 0 })
	awaitState(t, obpB, "no lag on B", func(s broker.BackplaneState) bool { return s.Lag == 0 })
	t.Logf("largest lag seen while the nodes caught up: %d", maxLag)
}
