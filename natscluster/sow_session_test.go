package natscluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/natscluster/internal/natstest"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// TestOrderedSessionSemantics: on nodes whose SOW topics the cluster
// orders, a client's commands take effect in the order it sent them, as on
// one broker:
//   - a sow right after a publish on the same connection finds the record,
//     and so does another connection once the publish's processed ack came;
//   - an in-process client's Publish returns once its publish is applied;
//   - one publisher's messages to a SOW topic and to a plain topic reach
//     subscribers of every node in the order it sent them;
//   - a graceful Shutdown acks the ordered sow_deletes it finds in flight.
func TestOrderedSessionSemantics(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	var nodes []*ampstest.Broker
	for i := range 3 {
		// One replica: the stream's leader never moves, so a loaded
		// machine's raft elections do not fail publishes here (these
		// are the session's rules, not replication's).
		b, _ := startSOWNode(t, c.URL(i), fmt.Sprintf("node%d", i), 1)
		nodes = append(nodes, b)
	}

	t.Run("sow after publish", func(t *testing.T) {
		cl := logon(nodes[0], "ryw")
		other := logon(nodes[0], "ryw-other")
		for i := range 30 {
			id := 1000 + i
			cl.SendJSON(map[string]any{"c": "publish", "t": "positions"}, fmt.Appendf(nil, `{"id":%d,"n":%d}`, id, i))
			if got := queryOne(t, cl, fmt.Sprintf("q%d", i), id); got != i {
				t.Fatalf("sow right after publish %d on the same connection: n=%d; want %d", i, got, i)
			}
			cl.SendJSON(map[string]any{"c": "publish", "t": "positions", "cid": fmt.Sprintf("p%d", i), "a": "processed"}, fmt.Appendf(nil, `{"id":%d,"n":%d}`, id, -i))
			if a := cl.AwaitAck(fmt.Sprintf("p%d", i), "processed"); a.Header.Status != "success" {
				t.Fatalf("processed ack %s", a)
			}
			if got := queryOne(t, other, fmt.Sprintf("o%d", i), id); got != -i {
				t.Fatalf("sow on another connection after the processed ack: n=%d; want %d", got, -i)
			}
		}
	})

	t.Run("in-process publish", func(t *testing.T) {
		pub, err := nodes[1].Connect(context.Background(), "inproc", nil)
		if err != nil {
			t.Fatal(err)
		}
		q := logon(nodes[1], "inproc-q")
		for i := range 20 {
			id := 2000 + i
			if err := pub.Publish(context.Background(), "positions", fmt.Appendf(nil, `{"id":%d,"n":%d}`, id, i)); err != nil {
				t.Fatal(err)
			}
			if got := queryOne(t, q, fmt.Sprintf("q%d", i), id); got != i {
				t.Fatalf("sow after in-process publish %d: n=%d; want %d", i, got, i)
			}
		}
		// A delta that cannot merge is refused on every node, and the
		// in-process publisher is told.
		if err := pub.DeltaPublish(context.Background(), "positions", []byte(`[1]`)); err == nil {
			t.Error("a delta publish every node refuses returned no error")
		}
	})

	t.Run("one publisher's SOW and plain messages", func(t *testing.T) {
		const total = 600
		subs := make([]*ampstest.Client, len(nodes))
		for i, n := range nodes {
			subs[i] = logon(n, fmt.Sprintf("mixed-sub%d", i))
			subs[i].Subscribe("s", "^(positions|ticks)$")
		}
		pub := logon(nodes[0], "mixed-pub")
		awaitRouted(t, pub, "ticks", subs...)
		rng := rand.New(rand.NewPCG(1, 2))
		for n := range total {
			topic := "ticks"
			if rng.IntN(2) == 0 {
				topic = "positions"
			}
			pub.SendJSON(map[string]any{"c": "publish", "t": topic}, fmt.Appendf(nil, `{"id":%d,"n":%d}`, 3000+n%7, n))
		}
		var wg sync.WaitGroup
		errs := make([]error, len(subs))
		for i, s := range subs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = readInOrder(s, total)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("subscriber on node %d: %v", i, err)
			}
		}
	})

	t.Run("sow_delete in flight at Shutdown", func(t *testing.T) {
		node, _ := startSOWNode(t, c.URL(1), "stopping", 1)
		cl := logon(node, "deleter")
		const deletes = 20
		for i := range deletes {
			cl.SendJSON(map[string]any{"c": "sow_delete", "cid": fmt.Sprintf("d%d", i), "t": "positions", "filter": fmt.Sprintf("/id = %d", 9000+i), "a": "processed"}, nil)
		}
		// Stop once the node handed every delete to the order, before
		// they are all applied.
		for node.Stats().Cluster.Ordered < deletes {
			time.Sleep(time.Millisecond)
		}
		go node.Stop()
		acked := 0
		for {
			m, err := cl.Conn.Next()
			if err != nil {
				break // closed by the Shutdown
			}
			if m.Header.Command == protocol.CmdAck && m.Header.AckType == "processed" && m.Header.Status == "success" {
				acked++
			}
		}
		if acked != deletes {
			t.Errorf("%d of %d sow_deletes in flight at Shutdown were acked (success) before the connection closed", acked, deletes)
		}
	})
}

// queryOne answers a sow of "positions" for the record id on cl (cid
// names the query): its "n", or fails t when there is no such record.
func queryOne(t *testing.T, cl *ampstest.Client, cid string, id int) int {
	t.Helper()
	cl.SendJSON(map[string]any{"c": "sow", "cid": cid, "t": "positions", "filter": fmt.Sprintf("/id = %d", id)}, nil)
	view := map[int]int{}
	for {
		m := cl.Next()
		switch m.Header.Command {
		case "group_begin", protocol.CmdAck:
		case "group_end":
			n, ok := view[id]
			if !ok {
				t.Fatalf("sow %s: no record %d", cid, id)
			}
			return n
		case "sow":
			addRecords(t, m, view)
		default:
			t.Fatalf("in a sow result: %s", m)
		}
	}
}

// readInOrder reads n messages from cl and checks that their "n" fields
// are 0, 1, … n-1 in that order.
func readInOrder(cl *ampstest.Client, n int) error {
	var seen []string
	for want := range n {
		m, err := cl.Conn.Next()
		for err == nil && bytes.HasPrefix(m.Body, []byte(`{"probe"`)) { // awaitRouted's, late
			m, err = cl.Conn.Next()
		}
		if err != nil {
			return fmt.Errorf("after %d messages: %w", want, err)
		}
		var v struct{ N int }
		if err := json.Unmarshal(m.Body, &v); err != nil || m.Header.Command != protocol.CmdP {
			return fmt.Errorf("message %d: %s", want, m)
		}
		seen = append(seen, fmt.Sprintf("%s:%d", m.Header.Topic[:1], v.N))
		if v.N != want {
			return fmt.Errorf("message %d (topic %s) has n=%d: the publisher's order was not kept; got %v", want, m.Header.Topic, v.N, seen)
		}
	}
	return nil
}
