package natscluster

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/natscluster/internal/natstest"
	"github.com/ampsbroker/ampsbroker/protocol"
	"github.com/nats-io/nats.go/jetstream"
)

// tickLife is the lifetime of a "ticks" record in these tests.
const tickLife = 300 * time.Millisecond

// tickTopics are the SOW topics of the expiry tests: records live
// tickLife unless a publish's "e" says otherwise.
var tickTopics = []broker.SOWTopic{{Name: "ticks", Keys: []string{"/id"}, Expiration: tickLife}}

// startTickNodes starts n brokers with tickTopics on an R3 SOW stream, node
// i on NATS node i.
func startTickNodes(t *testing.T, c *natstest.Cluster, n int) []*ampstest.Broker {
	t.Helper()
	var nodes []*ampstest.Broker
	for i := range n {
		b, _ := startOrderedNode(t, c.URL(i), fmt.Sprintf("node%d", i), SOWConfig{Replicas: 3}, tickTopics)
		nodes = append(nodes, b)
	}
	return nodes
}

// subscribeOOF subscribes c to topic with the oof option and waits for the
// processed ack.
func subscribeOOF(t *testing.T, c *ampstest.Client, topic string) {
	t.Helper()
	c.SendJSON(map[string]any{"c": "subscribe", "cid": "s", "sub_id": "s", "t": topic, "o": "oof", "a": "processed"}, nil)
	if m := c.AwaitAck("s", protocol.AckProcessed); m.Header.Status != protocol.StatusSuccess {
		t.Fatalf("subscribe to %s: %s", topic, m)
	}
}

// sowData answers a sow query of topic on b: the records' data, sorted.
func sowData(t *testing.T, b *ampstest.Broker, topic string) []string {
	t.Helper()
	c := logon(b, "query")
	defer c.Conn.Close()
	c.SendJSON(map[string]any{"c": "sow", "cid": "q", "t": topic, "bs": 100}, nil)
	var out []string
	for {
		m := c.Next()
		switch m.Header.Command {
		case "group_begin":
		case "group_end":
			slices.Sort(out)
			return out
		case "sow":
			recs, err := m.Records()
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				out = append(out, string(r.Data))
			}
		default:
			t.Fatalf("in a sow result: %s", m)
		}
	}
}

// TestSOWExpiresInClusterOrder: a record with a short lifetime expires on
// every node, with an "expired" out-of-focus notice to a subscriber of
// each, through one expire request in the cluster's order (the nodes'
// requests for the record are stored once).
func TestSOWExpiresInClusterOrder(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	nodes := startTickNodes(t, c, 3)
	var subs []*ampstest.Client
	for i, n := range nodes {
		sub := logon(n, fmt.Sprintf("sub%d", i))
		subscribeOOF(t, sub, "ticks")
		subs = append(subs, sub)
	}
	pub := logon(nodes[0], "pub")
	pub.Publish("ticks", []byte(`{"id":1}`))
	for i, sub := range subs {
		if m := sub.Next(); m.Header.Command != protocol.CmdP || string(m.Body) != `{"id":1}` {
			t.Fatalf("node %d: got %s, want the publish", i, m)
		}
		if m := sub.Next(); m.Header.Command != "oof" || m.Header.Reason != broker.OOFExpired || string(m.Body) != `{"id":1}` {
			t.Fatalf("node %d: got %s, want an expired notice", i, m)
		}
	}
	var requests int64
	for i, n := range nodes {
		if got := sowData(t, n, "ticks"); len(got) != 0 {
			t.Errorf("node %d: SOW %v after the expiry", i, got)
		}
		st := n.Stats().Cluster
		if st.Expired != 1 || st.ExpireStale != 0 {
			t.Errorf("node %d: %d records expired by the order, %d stale requests; want 1 and 0", i, st.Expired, st.ExpireStale)
		}
		requests += st.ExpireRequests
	}
	js, _ := jetstream.New(natstest.Connect(t, c.URL(0)))
	if n := streamMsgs(t, js, DefaultSOWStream); n != 2 {
		t.Errorf("SOW stream holds %d messages after a publish and %d expire requests for it; want 2", n, requests)
	}
}

// TestSOWExpiryRaceKeepsNodesEqual: updates that never expire, sent on
// another node around the instant their records expire, meet the record
// on every node or on none: after each round every node's SOW is the same.
// Each round's records are new keys; each key's update is a delta, which
// merges into the record when it meets it (keeping "a") and else makes a
// record of its own (without "a").
func TestSOWExpiryRaceKeepsNodesEqual(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	nodes := startTickNodes(t, c, 3)
	pub, upd := logon(nodes[0], "pub"), logon(nodes[1], "upd")
	const rounds, keys = 8, 20
	merged, fresh := 0, 0
	for round := range rounds {
		for k := range keys {
			pub.Publish("ticks", fmt.Appendf(nil, `{"id":%d,"a":%d}`, round*keys+k, round))
		}
		// The deltas spread over the instants the records expire: from
		// before the lifetime ends to past the janitors' tick after it.
		time.Sleep(tickLife - 100*time.Millisecond + rand.N(50*time.Millisecond))
		for k := range keys {
			upd.SendJSON(map[string]any{"c": "delta_publish", "t": "ticks", "e": 0}, fmt.Appendf(nil, `{"id":%d,"b":%d}`, round*keys+k, round))
			time.Sleep(20 * time.Millisecond)
		}
		pub.Flush("f")
		upd.Flush("f") // every update is in the order
		awaitApplied(t, nodes...)
		want := sowData(t, nodes[0], "ticks")
		for i, n := range nodes[1:] {
			if got := sowData(t, n, "ticks"); !slices.Equal(got, want) {
				t.Fatalf("round %d: SOW of node %d differs from node 0's:\n%v\n%v", round, i+1, got, want)
			}
		}
		merged, fresh = 0, 0
		for _, r := range want {
			if strings.Contains(r, `"a"`) {
				merged++
			} else {
				fresh++
			}
		}
	}
	t.Logf("%d updates met their record, %d came after its expiry", merged, fresh)
}

// TestSOWRestartedNodeDoesNotReviveExpired: a node stopped while records
// lived and started again after they expired on the other nodes catches
// up without them: their lifetime ran from the order's time, and the
// order holds their expiry.
func TestSOWRestartedNodeDoesNotReviveExpired(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	nodes := startTickNodes(t, c, 2)
	late, lateBP := startOrderedNode(t, c.URL(2), "late", SOWConfig{Replicas: 3}, tickTopics)
	pub := logon(nodes[0], "pub")
	const n = 5
	for i := range n {
		pub.SendJSON(map[string]any{"c": "p", "t": "ticks", "e": 2}, fmt.Appendf(nil, `{"id":%d}`, i))
	}
	pub.Flush("f")
	awaitApplied(t, nodes[0], nodes[1], late)
	if got := sowData(t, late, "ticks"); len(got) != n {
		t.Fatalf("before the restart node late holds %v", got)
	}
	late.Stop()
	if err := lateBP.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(readyWait)
	for len(sowData(t, nodes[0], "ticks")) != 0 || len(sowData(t, nodes[1], "ticks")) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the records did not expire within %v", readyWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
	again, _ := startOrderedNode(t, c.URL(2), "late", SOWConfig{Replicas: 3}, tickTopics)
	if got := sowData(t, again, "ticks"); len(got) != 0 {
		t.Fatalf("the restarted node shows records that expired while it was down: %v", got)
	}
	pub.SendJSON(map[string]any{"c": "p", "t": "ticks", "e": 60}, []byte(`{"id":99}`))
	pub.Flush("f")
	awaitApplied(t, nodes[0], nodes[1], again)
	if got := sowData(t, again, "ticks"); !slices.Equal(got, []string{`{"id":99}`}) {
		t.Fatalf("the restarted node holds %v, want the record published after it started", got)
	}
}
