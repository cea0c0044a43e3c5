package natscluster

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/journal/journaltest"
	"github.com/ampsbroker/ampsbroker/natscluster/internal/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// consumerHosts maps each consumer of stream to the index in c of the
// NATS server that holds it.
func consumerHosts(t *testing.T, js jetstream.JetStream, c *natstest.Cluster, stream string) map[string]int {
	t.Helper()
	deadline := time.Now().Add(readyWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), readyWait)
		hosts := map[string]int{}
		s, err := js.Stream(ctx, stream)
		if err == nil {
			lister := s.ListConsumers(ctx)
			for ci := range lister.Info() {
				for i, srv := range c.Servers {
					if ci.Cluster != nil && srv.Name() == ci.Cluster.Leader {
						hosts[ci.Name] = i
					}
				}
			}
			err = lister.Err()
		}
		cancel()
		if err == nil {
			return hosts
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s: consumers: %v", stream, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newConsumerOn calls open until the one consumer it adds to stream is held
// by server host (a consumer's server is picked at random), undoing each
// miss; it fails the test after 30 tries.
func newConsumerOn(t *testing.T, js jetstream.JetStream, c *natstest.Cluster, stream string, host int, open func() (undo func())) {
	t.Helper()
	const tries = 30
	for range tries {
		before := consumerHosts(t, js, c, stream)
		undo := open()
		deadline := time.Now().Add(readyWait)
		for {
			var added []int
			for name, h := range consumerHosts(t, js, c, stream) {
				if _, ok := before[name]; !ok {
					added = append(added, h)
				}
			}
			if len(added) == 1 && added[0] == host {
				return
			}
			if len(added) > 1 {
				t.Fatalf("stream %s: %d consumers added at once; want one", stream, len(added))
			}
			if len(added) == 1 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		undo()
	}
	t.Fatalf("stream %s: no consumer placed on server %d in %d tries", stream, host, tries)
}

// appendAfterStop appends entries through w until one is acknowledged,
// returning its position and when it was acknowledged.
func appendAfterStop(t *testing.T, w *Journal, from int, stopped time.Time) (broker.Position, time.Time) {
	t.Helper()
	for i := from; ; i++ {
		pos, err := w.Append(journaltest.Entry(i))
		if err == nil {
			return pos, time.Now()
		}
		if time.Since(stopped) > testTimeout {
			t.Fatalf("no append acknowledged within %v of the NATS node's stop: %v", testTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// closedJournalsLeaveNothing closes js and fails the test if a goroutine
// of the journal's code (its follower, a cursor's or scan's consumer, a
// consumer delete) still runs a moment later.
func closedJournalsLeaveNothing(t *testing.T, js ...*Journal) {
	t.Helper()
	for _, j := range js {
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
	frames := []string{"natscluster.(*Journal)", "natscluster.(*followSpec)", "natscluster.(*streamConsumer)", "natscluster.(*cursor)"}
	var left []string
	for deadline := time.Now().Add(ampstest.DefaultLeakGrace); ; time.Sleep(20 * time.Millisecond) {
		left = left[:0]
		for _, g := range ampstest.OtherGoroutines() {
			for _, f := range frames {
				if strings.Contains(g, f) {
					left = append(left, g)
					break
				}
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines of the journal still run after Close:\n%s", strings.Join(left, "\n\n"))
		}
	}
}

// journalResumeBound is how long after the stream takes appends again a
// node's follower and cursors must have them, in the tests below:
// generous for a loaded machine, yet well below the about 11 s nats.go's
// ordered consumer paused for when its server was the JetStream meta
// leader (the same bound as the SOW order's).
const journalResumeBound = resumeBound

// resumeSetup starts three NATS servers, a writer journal (R3) connected
// away from the meta leader and a reader's connection to the meta leader
// first; it returns the cluster, the meta leader's index, the stream's
// configuration and a JetStream context to list consumers with.
func resumeSetup(t *testing.T) (*natstest.Cluster, int, JournalConfig, *Journal, func() *nats.Conn, jetstream.JetStream) {
	c := natstest.StartCluster(t, 3)
	reconnect := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}
	leader := metaLeader(t, c)
	cfg := journalConfig(3)
	cfg.AckTimeout = time.Second
	w := openJournal(t, natstest.Connect(t, urlsFrom(c, (leader+1)%3), reconnect...), cfg)
	reader := func() *nats.Conn {
		return natstest.Connect(t, urlsFrom(c, leader), append(reconnect, nats.DontRandomize())...)
	}
	js, err := jetstream.New(natstest.Connect(t, c.URL((leader+2)%3)))
	if err != nil {
		t.Fatal(err)
	}
	return c, leader, cfg, w, reader, js
}

// TestJournalFollowerResumesAfterNATSNodeLoss: a node's journal follower
// reads a stream (R3) another node appends to; the NATS server the
// follower's node is connected to, that holds the follower's consumer and
// is the JetStream meta leader stops. The other node appends until
// JetStream acknowledges an entry: the following node's Durable passes it
// within journalResumeBound of that acknowledgement.
func TestJournalFollowerResumesAfterNATSNodeLoss(t *testing.T) {
	c, leader, cfg, w, reader, js := resumeSetup(t)
	var f *Journal // opened on an empty stream: its follower is its only consumer
	newConsumerOn(t, js, c, cfg.Stream, leader, func() func() {
		f = openJournal(t, reader(), cfg)
		return func() { f.Close() }
	})
	if !c.Servers[leader].JetStreamIsLeader() {
		t.Fatal("the meta leader changed during the setup")
	}
	appendN(t, w, 0, 10)
	awaitDurable(t, f, w.Durable())
	stopped := time.Now()
	c.Stop(leader)
	pos, acked := appendAfterStop(t, w, 10, stopped)
	awaitDurable(t, f, pos+1)
	resumed := time.Since(acked)
	t.Logf("the stream took appends again %v after the stop, the follower had them %v later", acked.Sub(stopped), resumed)
	if resumed > journalResumeBound {
		t.Errorf("the follower had the entry %v after the stream took it; want within %v", resumed, journalResumeBound)
	}
	closedJournalsLeaveNothing(t, f, w)
}

// awaitDurable waits until j's Durable reaches pos, failing after
// testTimeout.
func awaitDurable(t *testing.T, j *Journal, pos broker.Position) {
	t.Helper()
	awaitReach(t, func() uint64 { return uint64(j.Durable()) }, uint64(pos))
}

// TestJournalCursorResumesAfterNATSNodeLoss: a cursor of a node replays
// the entries the node appended, fetching one at a time; halfway, the NATS
// server the node is connected to, that holds the cursor's consumer and is
// the JetStream meta leader stops. The cursor delivers the rest, every
// entry once and in order, within journalResumeBound of the stop.
func TestJournalCursorResumesAfterNATSNodeLoss(t *testing.T) {
	c, leader, cfg, w, reader, js := resumeSetup(t)
	cfg.CursorBuffer = 1 // the entries after the stop are fetched after it
	r := openJournal(t, reader(), cfg)
	appendN(t, r, 0, 20)
	first, _ := r.Bounds()
	var cur broker.Cursor
	newConsumerOn(t, js, c, cfg.Stream, leader, func() func() {
		var err error
		if cur, err = r.NewCursor(first); err != nil {
			t.Fatal(err)
		}
		if _, err := cur.Next(); err != nil { // the consumer is made at the first read
			t.Fatal(err)
		}
		return func() { cur.Close() }
	})
	t.Cleanup(func() { cur.Close() })
	if !c.Servers[leader].JetStreamIsLeader() {
		t.Fatal("the meta leader changed during the setup")
	}
	next := first + 1
	read := func(until broker.Position) {
		t.Helper()
		deadline := time.Now().Add(testTimeout)
		for next <= until {
			e, err := cur.Next()
			switch {
			case err != nil:
				t.Logf("cursor at %d: %v", next, err)
				time.Sleep(time.Millisecond)
			case e.Position != next:
				t.Fatalf("cursor delivered entry %d; want %d", e.Position, next)
			default:
				next++
			}
			if time.Now().After(deadline) {
				t.Fatalf("cursor at %d after %v; want past %d", next, testTimeout, until)
			}
		}
	}
	read(first + 9)
	stopped := time.Now()
	c.Stop(leader)
	read(r.Durable() - 1)
	resumed := time.Since(stopped)
	t.Logf("the cursor delivered the last 10 entries %v after the stop", resumed)
	if resumed > journalResumeBound {
		t.Errorf("the cursor delivered the last entries %v after the stop; want within %v", resumed, journalResumeBound)
	}
	closedJournalsLeaveNothing(t, r, w)
}

// TestAppendAsyncOutcomesInOrder: AppendAsync's done calls come in the
// order of the calls (the broker's cumulative persisted ack relies on a
// publisher learning its outcomes in its order), however JetStream's acks
// arrive.
func TestAppendAsyncOutcomesInOrder(t *testing.T) {
	c := natstest.StartCluster(t, 1)
	j := openJournal(t, natstest.Connect(t, c.URL(0)), journalConfig(1))
	const total = 2000
	var mu sync.Mutex
	var got []broker.Position
	all := make(chan struct{})
	for i := range total {
		e := journaltest.Entry(i)
		err := j.AppendAsync(e, func(pos broker.Position, err error) {
			if err != nil {
				t.Errorf("append %d: %v", i, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if got = append(got, pos); len(got) == total {
				close(all)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-all:
	case <-time.After(testTimeout):
		t.Fatal("not every append was settled")
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < total; i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("outcome %d (position %d) came after position %d", i, got[i], got[i-1])
		}
	}
}
