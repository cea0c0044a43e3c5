package natscluster

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/natscluster/internal/natstest"
	"github.com/ampsbroker/ampsbroker/protocol"
	"github.com/nats-io/nats.go/jetstream"
)

// snapTopics: "positions" (keyed by /id, deltas merge) and "ticks"
// (records live tickLife unless "e" says otherwise).
var snapTopics = append(slices.Clone(sowTopics), tickTopics...)

// snapConfig snapshots often and keeps little of the stream past one.
var snapConfig = SOWConfig{SnapshotInterval: 100 * time.Millisecond, SnapshotRetain: 200 * time.Millisecond}

// streamState is the SOW stream's state as its server reports it.
func streamState(t *testing.T, o *OrderedBackplane) jetstream.StreamState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyWait)
	defer cancel()
	s, err := o.js.Stream(ctx, o.cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State
}

// awaitCut waits until a snapshot covers sequence seq and the stream was
// purged past it.
func awaitCut(t *testing.T, o *OrderedBackplane, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(readyWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), readyWait)
		infos, err := o.snapshots(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		var newest uint64
		if len(infos) > 0 {
			newest = infos[0].seq
		}
		if st := streamState(t, o); newest >= seq && st.FirstSeq > seq {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot at %d and cut past it within %v (newest snapshot %d, stream %+v)", seq, readyWait, newest, streamState(t, o))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSOWSnapshotBoundsCatchUp: node A takes publishes, deltas, a
// sow_delete and expiring records; it writes a snapshot and purges the
// stream. A node started afterwards loads the snapshot and the stream's
// tail only, answers sow with A's records, serves a sow_and_subscribe,
// tells a failing-over publisher its sequence, and expires a loaded
// record at its deadline on its own.
func TestSOWSnapshotBoundsCatchUp(t *testing.T) {
	c := natstest.StartCluster(t, 1)
	a, aBP := startOrderedNode(t, c.URL(0), "a", snapConfig, snapTopics)
	pub := logon(a, "pub")
	const keys, updates = 10, 300
	seq := 0
	send := func(cmd, topic string, extra map[string]any, body string) {
		seq++
		h := map[string]any{"c": cmd, "t": topic, "s": seq}
		for k, v := range extra {
			h[k] = v
		}
		pub.SendJSON(h, []byte(body))
	}
	for i := range updates {
		send("p", "positions", nil, fmt.Sprintf(`{"id":%d,"n":%d,"x":"a"}`, i%keys, i))
	}
	for k := range keys {
		send("delta_publish", "positions", nil, fmt.Sprintf(`{"id":%d,"x":"d%d"}`, k, k))
	}
	pub.SendJSON(map[string]any{"c": "sow_delete", "cid": "d", "t": "positions", "filter": "/id = 9", "a": "processed"}, nil)
	if m := pub.AwaitAck("d", protocol.AckProcessed); m.Header.Status != protocol.StatusSuccess {
		t.Fatalf("sow_delete: %s", m)
	}
	send("p", "ticks", map[string]any{"e": 1}, `{"id":1}`) // gone before the snapshot
	pub.Flush("f")
	awaitApplied(t, a)
	deadline := time.Now().Add(readyWait)
	for len(sowData(t, a, "ticks")) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the tick with a 1 s lifetime did not expire")
		}
		time.Sleep(50 * time.Millisecond)
	}
	const life = 3 * time.Second
	published := time.Now()
	send("p", "ticks", map[string]any{"e": int(life / time.Second)}, `{"id":2}`)
	pub.Flush("f")
	awaitApplied(t, a)
	last := streamState(t, aBP).LastSeq
	awaitCut(t, aBP, last)
	if aBP.snapsWritten.Load() == 0 {
		t.Fatal("node A wrote no snapshot")
	}
	// The older snapshots went, their delete markers too.
	deadline = time.Now().Add(readyWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), readyWait)
		info, err := aBP.snapStream.Info(ctx, jetstream.WithSubjectFilter("$O."+aBP.cfg.SnapshotBucket+".M.>"))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if len(info.State.Subjects) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the snapshot bucket names %d objects after %d snapshots; want the newest only", len(info.State.Subjects), aBP.snapsWritten.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}

	b, bBP := startOrderedNode(t, c.URL(0), "b", snapConfig, snapTopics)
	if st := b.Stats().Cluster; st.CatchingUp {
		t.Fatalf("node B serves while catching up: %+v", *st)
	}
	if bBP.snapLoaded.Load() < last {
		t.Fatalf("node B loaded the snapshot at %d; want one at %d or later", bBP.snapLoaded.Load(), last)
	}
	if n := bBP.streamApplied.Load(); n >= uint64(seq) {
		t.Fatalf("node B applied %d stream messages for %d publishes; want fewer (a snapshot)", n, seq)
	}
	t.Logf("%d publishes (stream last %d); node B loaded %d records at %d and applied %d stream messages",
		seq, last, bBP.snapRecords.Load(), bBP.snapLoaded.Load(), bBP.streamApplied.Load())
	want := sowData(t, a, "positions")
	if len(want) != keys-1 {
		t.Fatalf("node A's positions %v; want %d records", want, keys-1)
	}
	if got := sowData(t, b, "positions"); !slices.Equal(got, want) {
		t.Fatalf("node B's positions %v; node A's %v", got, want)
	}
	wantTicks := sowData(t, a, "ticks")
	if got := sowData(t, b, "ticks"); !slices.Equal(got, wantTicks) || len(got) != 1 {
		t.Fatalf("node B's ticks %v; node A's %v (one record)", got, wantTicks)
	}
	// A publisher failing over to B is told where it stands.
	fail := b.Dial(b.TCPURL(), &ampstest.DialOptions{Timeout: readyWait})
	if ack := fail.Logon("pub"); ack.Header.Sequence != uint64(seq) {
		t.Fatalf("the publisher's logon on node B: %s; want sequence %d", ack, seq)
	}
	// A sow_and_subscribe on B gets the snapshot's records, then A's next
	// update.
	sub := logon(b, "sas")
	sub.SendJSON(map[string]any{"c": "sow_and_subscribe", "cid": "s", "t": "positions", "bs": 100}, nil)
	view := map[int]int{}
	for inGroup := true; inGroup; {
		switch m := sub.Next(); m.Header.Command {
		case "group_begin":
		case "group_end":
			inGroup = false
		case "sow":
			addRecords(t, m, view)
		default:
			t.Fatalf("in the sow_and_subscribe's snapshot: %s", m)
		}
	}
	if len(view) != keys-1 {
		t.Fatalf("sow_and_subscribe on node B: %v; want %d records", view, keys-1)
	}
	send("p", "positions", nil, `{"id":0,"n":-1}`)
	if m := sub.Next(); m.Header.Command != protocol.CmdP || string(m.Body) != `{"id":0,"n":-1}` {
		t.Fatalf("sow_and_subscribe on node B after A's update: %s", m)
	}

	// A is gone: B's janitor alone expires the loaded tick, at the
	// deadline it had on A.
	a.Stop()
	if err := aBP.Close(); err != nil {
		t.Fatal(err)
	}
	deadline = published.Add(life + readyWait)
	for len(sowData(t, b, "ticks")) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the loaded tick did not expire on node B within %v of its deadline", readyWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if gone := time.Since(published); gone < life {
		t.Fatalf("the loaded tick expired on node B %v after its publish; its lifetime is %v", gone, life)
	}
	if st := b.Stats().Cluster; st.Expired == 0 {
		t.Fatalf("node B's stats %+v; want the tick expired through the order", *st)
	}
}

// TestSOWGapStopsApplying: a node that finds the stream cut past what it
// applied (here: a node that does not see the cluster's snapshots, as one
// lagging by more than SnapshotRetain would find it) does not apply across
// the gap: it reports catching up and is not ready.
func TestSOWGapStopsApplying(t *testing.T) {
	c := natstest.StartCluster(t, 1)
	a, aBP := startOrderedNode(t, c.URL(0), "a", snapConfig, snapTopics)
	pub := logon(a, "pub")
	for i := range 20 {
		pub.SendJSON(map[string]any{"c": "p", "t": "positions"}, fmt.Appendf(nil, `{"id":%d,"n":%d}`, i, i))
	}
	pub.Flush("f")
	awaitApplied(t, a)
	awaitCut(t, aBP, streamState(t, aBP).LastSeq)
	pub.SendJSON(map[string]any{"c": "p", "t": "positions"}, []byte(`{"id":1,"n":99}`))
	pub.Flush("f")
	awaitApplied(t, a)
	blind := SOWConfig{SnapshotInterval: -1, SnapshotBucket: "OTHER_SNAP", CatchUpTimeout: 500 * time.Millisecond}
	lag, lagBP := startOrderedNode(t, c.URL(0), "lag", blind, snapTopics)
	s := awaitState(t, lagBP, "catching up after the gap", func(s broker.BackplaneState) bool { return lagBP.gapped.Load() })
	if !s.CatchingUp {
		t.Fatalf("node lag found the gap yet reports %+v", s)
	}
	if got := lagBP.applied.Load(); got != 0 {
		t.Fatalf("node lag applied up to %d across the gap", got)
	}
	if err := lag.Ready(); !errors.Is(err, broker.ErrCatchingUp) {
		t.Fatalf("node lag's Ready: %v; want ErrCatchingUp", err)
	}
	if got := sowData(t, lag, "positions"); len(got) != 0 {
		t.Fatalf("node lag holds %v; want nothing applied", got)
	}
}

// BenchmarkSOWCatchUp measures a node's start (StartOrdered's catch-up)
// after n ordered publishes over sowBenchKeys keys, with snapshots (the
// stream cut past them) and without (the whole stream replayed), and with
// a snapshot of n keys (each publish a record of its own). Run it with -benchtime=1x: each run starts one more node.
func BenchmarkSOWCatchUp(b *testing.B) {
	const n = 20000
	snap := SOWConfig{SnapshotInterval: 100 * time.Millisecond, SnapshotRetain: 100 * time.Millisecond}
	for _, tc := range []struct {
		name string
		cfg  SOWConfig
		keys int
	}{
		{"snapshot", snap, sowBenchKeys},
		{"snapshot_every_key", snap, n}, // a snapshot as large as the history
		{"none", SOWConfig{SnapshotInterval: -1}, sowBenchKeys},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := natstest.StartCluster(b, 1)
			_, aBP := startOrderedNode(b, c.URL(0), "a", tc.cfg, sowTopics)
			acks := make(chan error, 1024)
			go func() {
				for i := range n {
					rp := broker.RemotePublish{MessageType: "json", Topic: "positions", ClientName: "pub", Sequence: uint64(i + 1),
						Body: fmt.Appendf(nil, `{"id":%d,"pad":"%0200d"}`, i%tc.keys, i)}
					for aBP.Order(&rp, func(err error) { acks <- err }) != nil {
						time.Sleep(time.Millisecond) // the backplane is full
					}
				}
			}()
			for range n {
				if err := <-acks; err != nil {
					b.Fatal(err)
				}
			}
			deadline := time.Now().Add(sowBenchSettle)
			for aBP.applied.Load() < n || tc.cfg.SnapshotInterval > 0 && aBP.purgedBelow.Load() <= n {
				if time.Now().After(deadline) {
					b.Fatalf("node A applied %d of %d (purged below %d)", aBP.applied.Load(), n, aBP.purgedBelow.Load())
				}
				time.Sleep(10 * time.Millisecond)
			}
			b.ResetTimer()
			var applied, loaded uint64
			for i := range b.N {
				_, bp := startOrderedNode(b, c.URL(0), fmt.Sprint("late", i), tc.cfg, sowTopics)
				applied += bp.streamApplied.Load()
				loaded += uint64(bp.snapRecords.Load())
			}
			b.ReportMetric(float64(applied)/float64(b.N), "applied/start")
			b.ReportMetric(float64(loaded)/float64(b.N), "loaded/start")
		})
	}
}

// TestSOWGapWhileFollowing: a node whose apply is stuck while the other
// node orders more than its consumer buffers and cuts the stream past
// them applies what it received before the cut, then finds the gap and
// stops applying there, reporting catching up: when a message past the
// gap comes, and when none does (the stream cut to nothing; the lag poll
// finds it).
func TestSOWGapWhileFollowing(t *testing.T) {
	for _, after := range []bool{true, false} {
		t.Run(fmt.Sprintf("message_after_%v", after), func(t *testing.T) { gapWhileFollowing(t, after) })
	}
}

func gapWhileFollowing(t *testing.T, after bool) {
	c := natstest.StartCluster(t, 1)
	_, aBP := startOrderedNode(t, c.URL(0), "a", snapConfig, snapTopics)
	stuck := newOrdered(t, c.URL(0), "stuck", SOWConfig{SnapshotInterval: -1, SnapshotBucket: "OTHER_SNAP"})
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	var release sync.Once
	// Registered after newOrdered's cleanup, so it runs before it: Close
	// waits for an apply in progress.
	t.Cleanup(func() { release.Do(func() { close(gate) }) })
	var applied atomic.Uint64 // the last sequence applied
	if err := stuck.StartOrdered(func(p *broker.RemotePublish) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-gate
		if last := applied.Load(); p.Ordinal != last+1 {
			t.Errorf("applied %d after %d", p.Ordinal, last)
		}
		applied.Store(p.Ordinal)
	}); err != nil {
		t.Fatal(err)
	}
	orderN(t, aBP, 0, 1)
	select {
	case <-entered:
	case <-time.After(readyWait):
		t.Fatalf("the first update was not applied within %v", readyWait)
	}
	const more = 8 * sowConsumerBuffer // more than the consumer holds
	orderN(t, aBP, 1, more)
	awaitCut(t, aBP, 1+more)
	if after {
		orderN(t, aBP, 1+more, 1)
	}
	release.Do(func() { close(gate) })
	s := awaitState(t, stuck, "catching up after the gap", func(broker.BackplaneState) bool { return stuck.gapped.Load() })
	if !s.CatchingUp {
		t.Fatalf("node stuck found the gap yet reports %+v", s)
	}
	got := applied.Load()
	if got >= 1+more || got == 0 {
		t.Fatalf("node stuck applied up to %d of %d; want a gap", got, 1+more)
	}
	time.Sleep(50 * time.Millisecond) // nothing more comes
	if applied.Load() != got || stuck.applied.Load() != got {
		t.Fatalf("node stuck applied up to %d (backplane %d) after finding the gap at %d", applied.Load(), stuck.applied.Load(), got)
	}
	t.Logf("node stuck applied up to %d of %d, then found the gap", got, 1+more)
}

// firstListingStale answers the first listing of the snapshot bucket with
// the one object named name, as a listing made just before a newer
// snapshot was stored would.
type firstListingStale struct {
	jetstream.Stream
	answered atomic.Bool
	subject  string
}

func (s *firstListingStale) Info(ctx context.Context, opts ...jetstream.StreamInfoOpt) (*jetstream.StreamInfo, error) {
	info, err := s.Stream.Info(ctx, opts...)
	if err == nil && s.answered.CompareAndSwap(false, true) {
		info.State.Subjects = map[string]uint64{s.subject: 1}
	}
	return info, err
}

// TestSnapshotLoadAfterStreamCutToNothing: a node that read an older
// snapshot while a newer one was stored and the stream cut to nothing
// (past the older one) reads the newest again instead of stopping at a
// gap; a node that applied everything stays ready while the stream is cut
// to nothing, round after round.
func TestSnapshotLoadAfterStreamCutToNothing(t *testing.T) {
	c := natstest.StartCluster(t, 1)
	cfg := snapConfig
	cfg.LagPollInterval = 50 * time.Millisecond
	a, aBP := startOrderedNode(t, c.URL(0), "a", cfg, snapTopics)
	idle, idleBP := startOrderedNode(t, c.URL(0), "idle", cfg, snapTopics)
	pub := logon(a, "pub")
	for round := range 3 {
		for i := range 20 {
			pub.SendJSON(map[string]any{"c": "p", "t": "positions"}, fmt.Appendf(nil, `{"id":%d,"n":%d}`, i, round))
		}
		pub.Flush("f")
		awaitApplied(t, a, idle)
		awaitCut(t, aBP, streamState(t, aBP).LastSeq)
		time.Sleep(3 * cfg.LagPollInterval)
		if idleBP.gapped.Load() || idle.Ready() != nil {
			t.Fatalf("round %d: a node that applied everything: gapped %v, Ready %v", round, idleBP.gapped.Load(), idle.Ready())
		}
	}
	if st := streamState(t, aBP); st.Msgs != 0 {
		t.Fatalf("stream %+v; want it cut to nothing", st)
	}
	const older = 5 // a snapshot the stale listing names, long cut past
	ctx, cancel := context.WithTimeout(context.Background(), readyWait)
	defer cancel()
	if _, err := aBP.snaps.PutBytes(ctx, snapshotName(older), []byte{snapshotVersion, older, snapEnd}); err != nil {
		t.Fatal(err)
	}
	late := newOrdered(t, c.URL(0), "late", SOWConfig{SnapshotInterval: -1, SnapshotRetain: cfg.SnapshotRetain, CatchUpTimeout: time.Second})
	late.snapStream = &firstListingStale{Stream: late.snapStream,
		subject: "$O." + late.cfg.SnapshotBucket + ".M." + base64.URLEncoding.EncodeToString([]byte(snapshotName(older)))}
	b := ampstest.NewBroker(t, &ampstest.Options{Broker: &broker.Options{Backplane: late, SOWTopics: snapTopics}})
	if late.gapped.Load() || b.Ready() != nil {
		t.Fatalf("a node whose first listing was stale: gapped %v, Ready %v, loaded snapshot %d", late.gapped.Load(), b.Ready(), late.snapLoaded.Load())
	}
	if got, want := sowView(t, b), sowView(t, a); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("its SOW %v, node a's %v", got, want)
	}
}

// TestSnapshotRetainAtLeastInterval: a SnapshotRetain shorter than the
// SnapshotInterval is raised to it (kept messages must outlast the time
// between snapshots); the defaults and a longer one stay.
func TestSnapshotRetainAtLeastInterval(t *testing.T) {
	for _, tc := range []struct{ interval, retain, want time.Duration }{
		{time.Minute, time.Second, time.Minute},
		{time.Second, time.Minute, time.Minute},
		{0, 0, DefaultSnapshotRetain},
		{-1, time.Second, time.Second}, // never snapshots: nothing to outlast
	} {
		c := SOWConfig{SnapshotInterval: tc.interval, SnapshotRetain: tc.retain}
		c.defaults()
		if c.SnapshotRetain != tc.want {
			t.Errorf("interval %v, retain %v: retain %v, want %v", tc.interval, tc.retain, c.SnapshotRetain, tc.want)
		}
	}
}
