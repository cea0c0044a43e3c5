package natscluster

import (
	"fmt"
	"testing"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/natscluster/internal/natstest"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// readBookmarked reads k published messages off c and returns their
// bodies and bookmarks ("bm").
func readBookmarked(t *testing.T, c *ampstest.Client, k int) (bodies, bms []string) {
	t.Helper()
	for len(bodies) < k {
		m := c.Next()
		if m.Header.Command != protocol.CmdP {
			continue // an ack of the bookmark subscription
		}
		bodies, bms = append(bodies, string(m.Body)), append(bms, m.Header.Bookmark)
	}
	return bodies, bms
}

// TestBackplaneSharedJournal: two nodes share the JetStream journal
// (R3) and the backplane. A publish on A is journaled once; a live
// subscription with the bookmark option on B gets it through the
// backplane with the journal's bookmark, the same one A's subscriber
// sees; and a bookmark subscription on B replays it from the shared
// journal, with that bookmark again.
func TestBackplaneSharedJournal(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	cfg := journalConfig(3)
	journals := []*Journal{
		openJournal(t, natstest.Connect(t, c.URL(0)), cfg),
		openJournal(t, natstest.Connect(t, c.URL(1)), cfg),
	}
	nodes := startNodesAt(t, []string{c.URL(0), c.URL(1)}, func(i int) broker.Options {
		return broker.Options{Journal: journals[i], JournalTopics: func(_, topic string) bool { return topic == "orders" }}
	})
	a, b := nodes[0], nodes[1]
	liveA, liveB := logon(a.Broker, "live-a"), logon(b.Broker, "live-b")
	for _, s := range []*ampstest.Client{liveA, liveB} {
		s.Send(&protocol.Header{Command: protocol.CmdSubscribe, CommandID: "s", SubID: "s", Topic: "orders", Options: "bookmark", AckType: protocol.AckProcessed}, nil)
		s.AwaitAck("s", protocol.AckProcessed)
	}
	pub := logon(a.Broker, "pub")
	probe := logon(b.Broker, "probe")
	probe.Subscribe("p", "probe")
	awaitRouted(t, pub, "probe", probe)

	const n = 20
	var want []string
	for i := 1; i <= n; i++ {
		body := fmt.Sprintf(`{"n":%d}`, i)
		pub.Publish("orders", []byte(body))
		want = append(want, body)
	}
	gotA, bmA := readBookmarked(t, liveA, n)
	gotB, bmB := readBookmarked(t, liveB, n)
	for i := range n {
		if gotA[i] != want[i] || gotB[i] != want[i] || bmA[i] == "" || bmB[i] != bmA[i] {
			t.Fatalf("message %d: A got %s bm %q, B got %s bm %q; want %s with one bookmark on both", i, gotA[i], bmA[i], gotB[i], bmB[i], want[i])
		}
	}

	replay := logon(b.Broker, "replay")
	replay.Send(&protocol.Header{Command: protocol.CmdSubscribe, CommandID: "r", SubID: "r", Topic: "orders", Bookmark: "0", AckType: protocol.AckProcessed}, nil)
	gotR, bmR := readBookmarked(t, replay, n)
	for i := range n {
		if gotR[i] != want[i] || bmR[i] != bmA[i] {
			t.Fatalf("replayed message %d on B: %s bm %q, want %s bm %q", i, gotR[i], bmR[i], want[i], bmA[i])
		}
	}
	if ja, jb := a.Broker.Stats().Journal, b.Broker.Stats().Journal; ja.Entries != n || jb.Entries != n {
		t.Errorf("journal figures: A %+v, B %+v; want the %d entries once in one stream", *ja, *jb, n)
	}
}
