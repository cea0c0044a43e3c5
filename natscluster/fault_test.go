package natscluster

import (
	"context"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/journal/journaltest"
	"github.com/ampsbroker/ampsbroker/natscluster/internal/natstest"
	"github.com/nats-io/nats.go"
)

// faultBatch is how many entries must be acknowledged before and after
// the fault.
const faultBatch = 100

// faultRun appends entries one at a time and keeps what was acknowledged
// and what failed (a failed append may or may not be in the stream).
type faultRun struct {
	t      *testing.T
	j      *Journal
	cfg    JournalConfig
	next   int
	acked  map[broker.Position]broker.Entry
	failed map[uint64]bool // by entry sequence
	order  []broker.Position
}

func newFaultRun(t *testing.T, j *Journal, cfg JournalConfig) *faultRun {
	return &faultRun{t: t, j: j, cfg: cfg, acked: map[broker.Position]broker.Entry{}, failed: map[uint64]bool{}}
}

// appendUntil appends until n more entries are acknowledged.
func (r *faultRun) appendUntil(n int) {
	r.t.Helper()
	deadline := time.Now().Add(testTimeout)
	for goal := len(r.acked) + n; len(r.acked) < goal; r.next++ {
		if time.Now().After(deadline) {
			r.t.Fatalf("%d entries acknowledged, %d failed, by the deadline", len(r.acked), len(r.failed))
		}
		e := journaltest.Entry(r.next)
		if _, err := r.j.Append(e); err != nil {
			r.failed[e.Sequence] = true
			time.Sleep(20 * time.Millisecond)
			continue
		}
		r.acked[e.Position] = *e
		r.order = append(r.order, e.Position)
	}
}

// check reads the journal through url: every acknowledged entry at its
// position, in order, and nothing that was never appended.
func (r *faultRun) check(url string) {
	t := r.t
	t.Helper()
	rd := openJournal(t, natstest.Connect(t, url), r.cfg)
	got := journaltest.ReadFrom(t, rd, r.order[0])
	seen := 0
	for k := range got {
		e := &got[k]
		if want, ok := r.acked[e.Position]; ok {
			if err := journaltest.Same(e, &want); err != nil {
				t.Fatalf("through %s: %v", url, err)
			}
			seen++
		} else if !r.failed[e.Sequence] {
			t.Fatalf("through %s: entry %d (sequence %d) was never appended", url, e.Position, e.Sequence)
		}
		if k > 0 && e.Position <= got[k-1].Position {
			t.Fatalf("through %s: positions out of order at %d", url, k)
		}
	}
	if seen != len(r.acked) {
		t.Fatalf("through %s: %d of %d acknowledged entries found (%d failed appends)", url, seen, len(r.acked), len(r.failed))
	}
}

// Losing the NATS node a writer is connected to loses no acknowledged
// entry: the writer reconnects to another node and goes on appending to
// the R3 stream, a reader on a third node finds every acknowledged entry
// at its position (and nothing that was never sent), and the stopped node,
// restarted, catches up with the stream.
func TestJournalSurvivesNodeLoss(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	cfg := journalConfig(3)
	cfg.AckTimeout = 2 * time.Second
	writer := natstest.Connect(t, c.URLs(), nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if writer.ConnectedServerName() != c.Servers[0].Name() {
		t.Fatalf("writer connected to %s, want node 1", writer.ConnectedServerName())
	}
	r := newFaultRun(t, openJournal(t, writer, cfg), cfg)
	r.appendUntil(faultBatch)
	stopped := time.Now()
	c.Stop(0)
	r.appendUntil(faultBatch)
	t.Logf("node 1 stopped: %d appends failed, %v until %d more were acknowledged", len(r.failed), time.Since(stopped), faultBatch)
	if writer.ConnectedServerName() == c.Servers[0].Name() {
		t.Fatal("writer still on the stopped node")
	}
	r.check(c.URL(2))
	c.Restart(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for !c.Servers[0].JetStreamIsStreamCurrent("$G", cfg.Stream) {
		select {
		case <-ctx.Done():
			t.Fatal("the restarted node never caught up with the stream")
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Logf("node 1 current after %v", time.Since(stopped))
	r.check(c.URL(0))
	t.Logf("read back through node 1 after %v", time.Since(stopped))
}

// A slow and then silent link between the writer and its NATS node: slow
// appends still succeed, appends while the link is paused fail once their
// acknowledgement times out and Durable does not pass them, and after the
// link resumes appends succeed again; a reader finds every acknowledged
// entry.
func TestJournalSurvivesSlowAndPausedLink(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	cfg := journalConfig(3)
	cfg.AckTimeout = 300 * time.Millisecond
	p := natstest.NewProxy(t, c.Servers[0].Addr().String())
	r := newFaultRun(t, openJournal(t, natstest.Connect(t, p.URL()), cfg), cfg)
	p.SetDelay(5 * time.Millisecond)
	r.appendUntil(20)
	p.SetDelay(0)
	durable := r.j.Durable()
	p.Pause()
	e := journaltest.Entry(r.next)
	r.next++
	if _, err := r.j.Append(e); err == nil {
		t.Fatal("append acknowledged through a paused link")
	}
	r.failed[e.Sequence] = true
	if d := r.j.Durable(); d != durable {
		t.Fatalf("durable moved from %d to %d while the link was paused", durable, d)
	}
	p.Resume()
	r.appendUntil(20)
	r.check(c.URL(2))
}
