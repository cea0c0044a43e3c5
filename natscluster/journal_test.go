package natscluster

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/journal/journaltest"
	"github.com/ampsbroker/ampsbroker/natscluster/internal/natstest"
	"github.com/nats-io/nats.go"
)

// testTimeout bounds each test's requests.
const testTimeout = 30 * time.Second

var streamSerial atomic.Int64

// journalConfig names a stream (and prefix) of its own, so tests sharing a
// cluster never see each other's entries.
func journalConfig(replicas int) JournalConfig {
	n := streamSerial.Add(1)
	return JournalConfig{
		Stream:   fmt.Sprintf("J%d", n),
		Prefix:   fmt.Sprintf("j%d", n),
		Replicas: replicas,
	}
}

func openJournal(t testing.TB, nc *nats.Conn, cfg JournalConfig) *Journal {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	j, err := OpenJournal(ctx, nc, cfg)
	if err != nil {
		t.Fatalf("open journal %s: %v", cfg.Stream, err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// runContracts runs the journal contract tests, each subtest on a new
// stream reached through node (subtest number mod nodes).
func runContracts(t *testing.T, c *natstest.Cluster, replicas int) {
	n := 0
	journaltest.Run(t, func(t *testing.T) (broker.Journal, func()) {
		nc := natstest.Connect(t, c.URL(n%len(c.Servers)))
		n++
		return openJournal(t, nc, journalConfig(replicas)), nil
	})
}

func TestJournalContractsSingleNode(t *testing.T) {
	runContracts(t, natstest.StartCluster(t, 1), 1)
}

func TestJournalContractsThreeNodesR3(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	runContracts(t, c, 3)
	// The streams really are replicated on every node.
	nc := natstest.Connect(t, c.URL(0))
	j := openJournal(t, nc, journalConfig(3))
	if info := j.stream.CachedInfo(); info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream replication: config %d, cluster %+v", info.Config.Replicas, info.Cluster)
	}
}

func appendN(t *testing.T, j broker.Journal, from, n int) []broker.Entry {
	t.Helper()
	var out []broker.Entry
	for i := from; i < from+n; i++ {
		e := journaltest.Entry(i)
		if _, err := j.Append(e); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		out = append(out, *e)
	}
	return out
}

// A reopened journal has its entries, bounds, marks, and stamps times no
// earlier than its last entry's; a new stream starts at the position seed.
func TestJournalReopen(t *testing.T) {
	c := natstest.StartCluster(t, 1)
	nc := natstest.Connect(t, c.URL(0))
	cfg := journalConfig(1)
	before := broker.FirstPositionSeed(time.Now())
	j := openJournal(t, nc, cfg)
	if first, next := j.Bounds(); first != next || first < before {
		t.Fatalf("new journal bounds %d,%d; want empty at or above the seed %d", first, next, before)
	}
	e := journaltest.Entry(0)
	e.Time = time.Now().Add(time.Hour) // a clock ahead: later stamps are raised to it
	if _, err := j.Append(e); err != nil {
		t.Fatal(err)
	}
	want := append([]broker.Entry{*e}, appendN(t, j, 1, 9)...)
	first, next := j.Bounds()
	marks := j.HighWaters()
	j.Close()

	j2 := openJournal(t, nc, cfg)
	if f, n := j2.Bounds(); f != first || n != next || j2.Durable() != next {
		t.Fatalf("reopened bounds %d,%d durable %d; were %d,%d", f, n, j2.Durable(), first, next)
	}
	if got := j2.HighWaters(); fmt.Sprint(got) != fmt.Sprint(marks) || len(got) != 3 {
		t.Fatalf("reopened marks %v, were %v", got, marks)
	}
	journaltest.SameEntries(t, journaltest.ReadFrom(t, j2, first), want)
	e = journaltest.Entry(10)
	if _, err := j2.Append(e); err != nil {
		t.Fatal(err)
	}
	if e.Time.Before(want[9].Time) || e.Position != next {
		t.Fatalf("append after reopen: time %v before %v, or position %d not %d", e.Time, want[9].Time, e.Position, next)
	}
}

// Truncate purges below a position but not past an open cursor, and the
// marks of the purged entries survive it and a reopen.
func TestJournalTruncate(t *testing.T) {
	c := natstest.StartCluster(t, 1)
	nc := natstest.Connect(t, c.URL(0))
	cfg := journalConfig(1)
	j := openJournal(t, nc, cfg)
	want := appendN(t, j, 0, 20)
	cur, err := j.NewCursor(want[5].Position)
	if err != nil {
		t.Fatal(err)
	}
	first, err := j.Truncate(want[10].Position)
	if err != nil || first != want[5].Position {
		t.Fatalf("Truncate under a cursor at entry 5: %d, %v; want %d", first, err, want[5].Position)
	}
	cur.Close()
	if first, err = j.Truncate(want[18].Position); err != nil || first != want[18].Position {
		t.Fatalf("Truncate to entry 18: %d, %v", first, err)
	}
	if _, err := j.NewCursor(want[17].Position); !errors.Is(err, broker.ErrBookmarkNotFound) {
		t.Fatalf("cursor below the first retained: %v", err)
	}
	journaltest.SameEntries(t, journaltest.ReadFrom(t, j, first), want[18:])
	marks := j.HighWaters()
	if marks["pub0"] != 19 || marks["pub1"] != 20 || marks["pub2"] != 18 {
		t.Fatalf("marks after truncate %v", marks)
	}
	if st := j.Stats(); st.Entries != 2 || st.First != first || st.Bytes <= 0 || st.Cursors != 0 {
		t.Fatalf("stats after truncate %+v", st)
	}
	j.Close()
	j2 := openJournal(t, nc, cfg)
	if got := j2.HighWaters(); fmt.Sprint(got) != fmt.Sprint(marks) {
		t.Fatalf("marks after reopen %v, want %v (the purged entries' included)", got, marks)
	}
}

// Two nodes append to one replicated stream through different NATS nodes:
// positions are shared, so a bookmark taken on one node reads on the other,
// and a reader on the third node sees both writers' entries in one order.
func TestJournalSharedAcrossNodes(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	cfg := journalConfig(3)
	a := openJournal(t, natstest.Connect(t, c.URL(0)), cfg)
	b := openJournal(t, natstest.Connect(t, c.URL(1)), cfg)
	var all []broker.Entry
	for i := range 10 {
		w := a
		if i%2 == 1 {
			w = b
		}
		all = append(all, appendN(t, w, i, 1)...)
	}
	reader := openJournal(t, natstest.Connect(t, c.URL(2)), cfg)
	first, next := reader.Bounds()
	if first != all[0].Position || next != all[9].Position+1 {
		t.Fatalf("reader bounds %d,%d; entries at %d..%d", first, next, all[0].Position, all[9].Position)
	}
	bm := broker.FormatBookmark(1, all[4].Position)
	pos, err := broker.ParseBookmark(1, bm)
	if err != nil {
		t.Fatal(err)
	}
	journaltest.SameEntries(t, journaltest.ReadFrom(t, reader, pos), all[4:])
	if got := reader.HighWaters(); got["pub0"] != 10 || got["pub1"] != 8 || got["pub2"] != 9 {
		t.Fatalf("reader's marks %v", got)
	}
	// a's follower raises its durable position past b's entries.
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := broker.WaitDurable(ctx, a, all[9].Position); err != nil {
		t.Fatalf("writer a never saw b's last entry durable: %v", err)
	}
	journaltest.SameEntries(t, journaltest.ReadFrom(t, a, all[0].Position), all)
	if got := a.HighWaters(); got["pub0"] != 10 || got["pub1"] != 8 || got["pub2"] != 9 {
		t.Fatalf("writer a's marks %v (b's entries' included)", got)
	}
}

// An append through a paused link is acknowledged once the link resumes;
// Durable does not pass it before.
func TestJournalDurableWaitsForAck(t *testing.T) {
	c := natstest.StartCluster(t, 1)
	p := natstest.NewProxy(t, c.Servers[0].Addr().String())
	j := openJournal(t, natstest.Connect(t, p.URL()), journalConfig(1))
	appendN(t, j, 0, 1)
	before := j.Durable()
	p.Pause()
	done := make(chan error, 1)
	go func() {
		_, err := j.Append(journaltest.Entry(1))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("append returned through a paused link: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if d := j.Durable(); d != before {
		t.Fatalf("durable moved to %d while paused (was %d)", d, before)
	}
	p.Resume()
	if err := <-done; err != nil {
		t.Fatalf("append after resume: %v", err)
	}
	if d := j.Durable(); d != before+1 {
		t.Fatalf("durable %d after the ack, want %d", d, before+1)
	}
}

// AppendAsync from one caller stores entries in call order, calls done
// once each with Durable already above the position, and the entries read
// back as sent.
func TestJournalAppendAsyncKeepsOrder(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	j := openJournal(t, natstest.Connect(t, c.URL(1)), journalConfig(3))
	const n = 500
	type result struct {
		i       int
		pos     broker.Position
		durable broker.Position
		err     error
	}
	results := make(chan result, n)
	var sent []broker.Entry
	for i := range n {
		e := journaltest.Entry(i)
		if err := j.AppendAsync(e, func(pos broker.Position, err error) {
			results <- result{i, pos, j.Durable(), err}
		}); err != nil {
			t.Fatalf("AppendAsync %d: %v", i, err)
		}
		sent = append(sent, *e)
	}
	pos := make([]broker.Position, n)
	for range n {
		r := <-results
		if r.err != nil || r.durable <= r.pos || pos[r.i] != 0 {
			t.Fatalf("done of entry %d: position %d, durable %d, error %v (earlier position %d)", r.i, r.pos, r.durable, r.err, pos[r.i])
		}
		pos[r.i] = r.pos
	}
	for i := range sent {
		sent[i].Position = pos[i]
		if i > 0 && pos[i] <= pos[i-1] {
			t.Fatalf("entry %d at %d, not after entry %d at %d", i, pos[i], i-1, pos[i-1])
		}
	}
	journaltest.SameEntries(t, journaltest.ReadFrom(t, j, pos[0]), sent)
}
