package filejournal

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/journal/journaltest"
)

func noSync(*os.File) error { return nil }

func openT(t testing.TB, o Options) *Journal {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Name == "" {
		o.Name = "test"
	}
	j, err := Open(o)
	if err != nil {
		t.Fatalf("Open %s: %v", o.Dir, err)
	}
	return j
}

func TestContracts(t *testing.T) {
	journaltest.Run(t, func(t *testing.T) (broker.Journal, func()) {
		j := openT(t, Options{SegmentSize: 512, FlushInterval: time.Hour})
		return j, func() {
			if err := j.Sync(); err != nil {
				t.Fatalf("Sync: %v", err)
			}
		}
	})
}

// fill appends n test entries, makes them durable and returns them.
func fill(t testing.TB, j *Journal, from, n int) []broker.Entry {
	t.Helper()
	var out []broker.Entry
	for i := from; i < from+n; i++ {
		e := journaltest.Entry(i)
		if _, err := j.Append(e); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		out = append(out, *e)
	}
	if err := j.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	return out
}

func TestRestartRoundTrip(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, Options{Dir: dir, SegmentSize: 1024, FirstPosition: 1000})
	want := fill(t, j, 0, 100)
	if st := j.Stats(); st.Segments < 5 || st.Durable != 1100 {
		t.Fatalf("stats %+v: want several segments, durable 1100", st)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = openT(t, Options{Dir: dir, SegmentSize: 1024})
	journaltest.SameEntries(t, journaltest.ReadAll(t, j), want)
	if hw := j.HighWaters(); hw["pub0"] != 100 || hw["pub1"] != 98 || hw["pub2"] != 99 {
		t.Fatalf("high-water marks after reopen: %v", hw)
	}
	want = append(want, fill(t, j, 100, 10)...)
	if want[100].Position != 1100 {
		t.Fatalf("first position after reopen %d, want 1100", want[100].Position)
	}
	j.Close()
	j = openT(t, Options{Dir: dir, SegmentSize: 1024})
	defer j.Close()
	journaltest.SameEntries(t, journaltest.ReadAll(t, j), want)
}

// segFiles lists the journal's segment files, oldest first.
func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "test.*.journal"))
	if err != nil || len(m) == 0 {
		t.Fatalf("segment files in %s: %v %v", dir, m, err)
	}
	return m
}

func TestTornTailEveryOffset(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, Options{Dir: dir, Sync: noSync})
	want := fill(t, j, 0, 5)
	lastOff := j.segs[0].offsets[4]
	j.Close()
	path := segFiles(t, dir)[0]
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	damaged := func(name string, data []byte) {
		if err := os.WriteFile(path, data, 0o640); err != nil {
			t.Fatal(err)
		}
		j := openT(t, Options{Dir: dir, Sync: noSync})
		defer j.Close()
		journaltest.SameEntries(t, journaltest.ReadAll(t, j), want[:4])
		if _, next := j.Bounds(); next != want[4].Position {
			t.Fatalf("%s: next position %d, want %d", name, next, want[4].Position)
		}
		if fi, _ := os.Stat(path); fi.Size() != lastOff {
			t.Fatalf("%s: file size %d after recovery, want the cut at %d", name, fi.Size(), lastOff)
		}
	}
	for cut := lastOff; cut < int64(len(orig)); cut++ {
		damaged("cut at "+itoa(cut), orig[:cut])
	}
	for off := lastOff; off < int64(len(orig)); off++ {
		bad := append([]byte(nil), orig...)
		bad[off] ^= 0x40
		damaged("flip at "+itoa(off), bad)
	}
	// After recovery the journal appends where the tail was cut.
	os.WriteFile(path, orig[:lastOff+3], 0o640)
	j = openT(t, Options{Dir: dir, Sync: noSync})
	more := fill(t, j, 4, 2)
	j.Close()
	j = openT(t, Options{Dir: dir, Sync: noSync})
	defer j.Close()
	journaltest.SameEntries(t, journaltest.ReadAll(t, j), append(want[:4:4], more...))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestCorruptMiddleRefused(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, Options{Dir: dir, SegmentSize: 512, Sync: noSync})
	fill(t, j, 0, 30)
	off := j.segs[0].offsets[2] + frameHeaderSize + 3
	j.Close()
	path := segFiles(t, dir)[0]
	data, _ := os.ReadFile(path)
	data[off] ^= 1
	os.WriteFile(path, data, 0o640)
	_, err := Open(Options{Dir: dir, Name: "test"})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) ||
		!strings.Contains(err.Error(), "offset "+itoa(off-frameHeaderSize-3)) {
		t.Fatalf("Open with a damaged first segment: %v; want ErrCorrupt naming %s and the entry's offset", err, path)
	}
	// A missing middle segment is refused too.
	data[off] ^= 1
	os.WriteFile(path, data, 0o640)
	os.Remove(segFiles(t, dir)[1])
	if _, err := Open(Options{Dir: dir, Name: "test"}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Open with a segment missing: %v", err)
	}
}

func TestLockRefused(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, Options{Dir: dir})
	if _, err := Open(Options{Dir: dir, Name: "test"}); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "test.lock") {
		t.Fatalf("second Open: %v, want ErrLocked naming the lock file", err)
	}
	j.Close()
	j = openT(t, Options{Dir: dir})
	j.Close()
}

func TestRetentionKeepsReadersSegment(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, Options{Dir: dir, SegmentSize: 512, Sync: noSync})
	want := fill(t, j, 0, 40)
	nsegs := len(j.segs)
	if nsegs < 4 {
		t.Fatalf("%d segments, want at least 4", nsegs)
	}
	seg1 := j.segs[1]
	c, err := j.NewCursor(seg1.first + 1)
	if err != nil {
		t.Fatal(err)
	}
	_, next := j.Bounds()
	first, err := j.Truncate(next)
	if err != nil || first != seg1.first {
		t.Fatalf("Truncate with a reader in segment 1: first %d, %v; want %d", first, err, seg1.first)
	}
	if len(segFiles(t, dir)) != nsegs-1 {
		t.Fatalf("%d files after removing one of %d", len(segFiles(t, dir)), nsegs)
	}
	var got []broker.Entry
	for {
		e, err := c.Next()
		if errors.Is(err, broker.ErrCaughtUp) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
	}
	journaltest.SameEntries(t, got, want[seg1.first+1-want[0].Position:])
	c.Close()
	if first, _ = j.Truncate(next); first != j.segs[len(j.segs)-1].first || len(segFiles(t, dir)) != 1 {
		t.Fatalf("Truncate without readers: first %d, %d files", first, len(segFiles(t, dir)))
	}
	if _, err := j.NewCursor(want[0].Position); !errors.Is(err, broker.ErrBookmarkNotFound) {
		t.Fatalf("cursor into a removed segment: %v", err)
	}
	j.Close()
	j = openT(t, Options{Dir: dir, SegmentSize: 512})
	defer j.Close()
	if hw := j.HighWaters(); hw["pub0"] != 40 || hw["pub1"] != 38 || hw["pub2"] != 39 {
		t.Fatalf("high-water marks after removal and reopen: %v", hw)
	}
}

func TestDurableOnlyAfterSync(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var armed atomic.Bool
	j := openT(t, Options{FlushInterval: time.Hour, Sync: func(f *os.File) error {
		if armed.Load() {
			entered <- struct{}{}
			<-release
		}
		return nil
	}})
	defer j.Close()
	armed.Store(true) // Open has synced its new segment; the writer has not run
	defer armed.Store(false)
	d0 := j.Durable()
	j.Append(journaltest.Entry(0))
	synced := make(chan error, 1)
	go func() { synced <- j.Sync() }()
	<-entered
	if d := j.Durable(); d != d0 {
		t.Fatalf("durable position %d while fsync runs, want %d", d, d0)
	}
	c, _ := j.NewCursor(d0)
	defer c.Close()
	if _, err := c.Next(); !errors.Is(err, broker.ErrCaughtUp) {
		t.Fatalf("cursor read an entry before its fsync: %v", err)
	}
	close(release)
	if err := <-synced; err != nil {
		t.Fatal(err)
	}
	if d := j.Durable(); d != d0+1 {
		t.Fatalf("durable position %d after fsync, want %d", d, d0+1)
	}
	if e, err := c.Next(); err != nil || e.Position != d0 {
		t.Fatalf("cursor after fsync: %v %v", e.Position, err)
	}
}

func TestFlushIntervalCommits(t *testing.T) {
	j := openT(t, Options{FlushInterval: 5 * time.Millisecond, Sync: noSync})
	defer j.Close()
	p, _ := j.Append(journaltest.Entry(0))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if d, err := broker.WaitDurable(ctx, j, p); err != nil || d != p+1 {
		t.Fatalf("WaitDurable without Sync: %d, %v", d, err)
	}
}

func TestAppendWaitsForRoom(t *testing.T) {
	release := make(chan struct{})
	var armed atomic.Bool
	j := openT(t, Options{MaxPendingBytes: 1, Sync: func(*os.File) error {
		if armed.Load() {
			<-release
		}
		return nil
	}})
	defer j.Close()
	armed.Store(true)
	j.Append(journaltest.Entry(0))
	j.wake()
	// The writer takes entry 0 and blocks in its fsync; entry 1 fills the
	// pending batch; entry 2 must wait for the writer to take entry 1.
	for j.Durable() == 0 {
		j.mu.Lock()
		taken := len(j.pending) == 0
		j.mu.Unlock()
		if taken {
			break
		}
		time.Sleep(time.Millisecond)
	}
	j.Append(journaltest.Entry(1))
	appended := make(chan struct{})
	go func() {
		j.Append(journaltest.Entry(2))
		close(appended)
	}()
	select {
	case <-appended:
		t.Fatal("Append went ahead with the pending batch over MaxPendingBytes")
	case <-time.After(50 * time.Millisecond):
	}
	armed.Store(false)
	close(release)
	<-appended
	if err := j.Sync(); err != nil || j.Durable() != j.next {
		t.Fatalf("after the backlog: durable %d, next %d, %v", j.Durable(), j.next, err)
	}
}

// TestConcurrentAppendReadTruncate runs a publisher, a replaying reader
// and retention at once: the reader sees every entry once, in order,
// although retention removes segments behind it all the time.
func TestConcurrentAppendReadTruncate(t *testing.T) {
	j := openT(t, Options{SegmentSize: 2048, FlushInterval: time.Millisecond, Sync: noSync})
	defer j.Close()
	const n = 2000
	first, _ := j.Bounds()
	c, err := j.NewCursor(first)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop := make(chan struct{})
	truncated := make(chan int)
	go func() {
		removed := 0
		for {
			select {
			case <-stop:
				truncated <- removed
				return
			default:
			}
			_, next := j.Bounds()
			before, _ := j.Bounds()
			if after, err := j.Truncate(next); err == nil && after > before {
				removed++
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	go func() {
		for i := range n {
			if _, err := j.Append(journaltest.Entry(i)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < n; {
		e, err := c.Next()
		if errors.Is(err, broker.ErrCaughtUp) {
			if _, err := broker.WaitDurable(ctx, j, c.Position()); err != nil {
				t.Fatalf("waiting for entry %d: %v", i, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		want := journaltest.Entry(i)
		if e.Position != first+broker.Position(i) || string(e.Body) != string(want.Body) {
			t.Fatalf("entry %d: position %d body %s", i, e.Position, e.Body)
		}
		i++
	}
	close(stop)
	removed := <-truncated
	t.Logf("%d truncations removed segments while the reader read", removed)
	_, next := j.Bounds()
	if first, _ := j.Truncate(next); first != j.segs[len(j.segs)-1].first || len(segFiles(t, j.opts.Dir)) != 1 {
		t.Fatalf("after the reader caught up, Truncate kept from %d, %d files", first, len(segFiles(t, j.opts.Dir)))
	}
}

// TestCrashKeepsDurable opens the directory again while the first journal
// still runs, as after a crash (its lock released, no Close, no
// checkpoint): the durable entries and their high-water marks are back,
// the entries still pending are not.
func TestCrashKeepsDurable(t *testing.T) {
	dir := t.TempDir()
	crashed := openT(t, Options{Dir: dir, FlushInterval: time.Hour})
	want := fill(t, crashed, 0, 10)
	for i := 10; i < 15; i++ {
		crashed.Append(journaltest.Entry(i))
	}
	crashed.lock.Close() // the process "died": the kernel drops the lock
	j := openT(t, Options{Dir: dir})
	journaltest.SameEntries(t, journaltest.ReadAll(t, j), want)
	if hw := j.HighWaters(); hw["pub0"] != 10 || hw["pub1"] != 8 || hw["pub2"] != 9 {
		t.Fatalf("high-water marks recovered by the scan: %v", hw)
	}
	if _, err := os.Stat(j.ackPath()); !os.IsNotExist(err) {
		t.Fatalf("a checkpoint exists before any Close or Truncate: %v", err)
	}
	j.Close()
	crashed.Close() // stops its writer; the directory is not used again
}

// TestWriteFailureEndsWaits makes the sync of a batch fail: a waiter for
// an entry of that batch learns it (WaitDurable returns the failure), Err
// reports it, Append refuses, and the entries durable before stay.
func TestWriteFailureEndsWaits(t *testing.T) {
	var fail atomic.Bool
	disk := errors.New("injected: no space left on device")
	j := openT(t, Options{FlushInterval: time.Hour, Sync: func(*os.File) error {
		if fail.Load() {
			return disk
		}
		return nil
	}})
	defer j.Close()
	want := fill(t, j, 0, 3)
	pos, err := j.Append(journaltest.Entry(3))
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := broker.WaitDurable(ctx, j, pos)
		waited <- err
	}()
	fail.Store(true)
	if err := j.Sync(); !errors.Is(err, broker.ErrJournalFailed) || !errors.Is(err, disk) {
		t.Fatalf("Sync with a failing disk: %v", err)
	}
	if err := <-waited; !errors.Is(err, broker.ErrJournalFailed) || !errors.Is(err, disk) {
		t.Fatalf("WaitDurable across a write failure: %v, want the failure", err)
	}
	if err := j.Err(); !errors.Is(err, broker.ErrJournalFailed) || !errors.Is(err, disk) {
		t.Fatalf("Err after a write failure: %v", err)
	}
	if _, err := j.Append(journaltest.Entry(4)); !errors.Is(err, broker.ErrJournalFailed) {
		t.Fatalf("Append after a write failure: %v", err)
	}
	if d := j.Durable(); d != pos {
		t.Fatalf("Durable %d after the failure, want %d (the entries before it)", d, pos)
	}
	journaltest.SameEntries(t, journaltest.ReadAll(t, j), want)
}

// TestSecondCloseWaitsForLock starts a second Close while the first waits
// for the writer's last sync, then holds the first in its checkpoint: the
// second must not return before the first has released the directory
// lock, so the directory opens again as soon as any Close returns.
func TestSecondCloseWaitsForLock(t *testing.T) {
	dir := t.TempDir()
	var holdCommit, holdCheckpoint atomic.Bool
	inCommit, commitGo := make(chan struct{}), make(chan struct{})
	inCheckpoint, checkpointGo := make(chan struct{}), make(chan struct{})
	j := openT(t, Options{Dir: dir, FlushInterval: time.Hour, Sync: func(f *os.File) error {
		switch {
		case strings.HasSuffix(f.Name(), ".journal") && holdCommit.CompareAndSwap(true, false):
			close(inCommit)
			<-commitGo
		case strings.HasSuffix(f.Name(), ".tmp") && holdCheckpoint.CompareAndSwap(true, false):
			close(inCheckpoint)
			<-checkpointGo
		}
		return nil
	}})
	fill(t, j, 0, 2)
	if _, err := j.Append(journaltest.Entry(2)); err != nil {
		t.Fatal(err)
	}
	holdCommit.Store(true)
	holdCheckpoint.Store(true)
	first := make(chan error, 1)
	go func() { first <- j.Close() }()
	<-inCommit
	second := make(chan error, 1)
	go func() { second <- j.Close() }()
	time.Sleep(50 * time.Millisecond) // the second Close sees the first under way
	close(commitGo)
	<-inCheckpoint
	select {
	case err := <-second:
		_, oerr := Open(Options{Dir: dir, Name: "test"})
		close(checkpointGo)
		<-first
		t.Fatalf("second Close returned (%v) while the first held the lock; Open then: %v", err, oerr)
	case <-time.After(100 * time.Millisecond):
	}
	close(checkpointGo)
	if err := <-first; err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := <-second; err != nil {
		t.Fatalf("second Close: %v", err)
	}
	j2 := openT(t, Options{Dir: dir})
	j2.Close()
}

// TestDamageBeforeIntactNewestRefused damages an entry in the middle of
// the newest segment: the intact, durable entries after it must not be
// cut off as a torn tail; Open refuses with ErrCorrupt naming the file
// and the damaged entry's offset. Damage to the last entry alone is
// still a torn tail.
func TestDamageBeforeIntactNewestRefused(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, Options{Dir: dir, Sync: noSync})
	want := fill(t, j, 0, 6)
	offs := append([]int64(nil), j.segs[0].offsets...)
	j.Close()
	path := segFiles(t, dir)[0]
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, damage := range []struct {
		name string
		at   int64
	}{
		{"payload of entry 2", offs[2] + frameHeaderSize + 2},
		{"length of entry 2", offs[2]},
		{"CRC of entry 4", offs[4] + 5},
	} {
		bad := append([]byte(nil), orig...)
		bad[damage.at] ^= 0x10
		if err := os.WriteFile(path, bad, 0o640); err != nil {
			t.Fatal(err)
		}
		entry := offs[0]
		for _, o := range offs {
			if o <= damage.at {
				entry = o
			}
		}
		_, err := Open(Options{Dir: dir, Name: "test", Sync: noSync})
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) ||
			!strings.Contains(err.Error(), "offset "+itoa(entry)+":") {
			t.Fatalf("%s: Open = %v; want ErrCorrupt naming %s and offset %d", damage.name, err, path, entry)
		}
		if fi, _ := os.Stat(path); fi.Size() != int64(len(orig)) {
			t.Fatalf("%s: the refused file was changed to %d bytes", damage.name, fi.Size())
		}
	}
	// The same damage to the last entry is a torn tail.
	bad := append([]byte(nil), orig...)
	bad[offs[5]+frameHeaderSize+2] ^= 0x10
	os.WriteFile(path, bad, 0o640)
	j = openT(t, Options{Dir: dir, Sync: noSync})
	defer j.Close()
	journaltest.SameEntries(t, journaltest.ReadAll(t, j), want[:5])
}

// TestForgetIdlePublishers checks ForgetPublishersAfter: a publisher whose
// last sequenced entry is older than it loses its high-water mark at
// Open, whether the mark comes from the entries or, after retention
// removed them, from the checkpoint; a recent one keeps it.
func TestForgetIdlePublishers(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, Options{Dir: dir, SegmentSize: 512, Sync: noSync})
	now := time.Now()
	old := &broker.Entry{Kind: broker.EntryPublish, Topic: "t", MessageType: "json", ClientName: "old", Sequence: 5, Time: now.Add(-48 * time.Hour), Body: []byte("{}")}
	if _, err := j.Append(old); err != nil {
		t.Fatal(err)
	}
	for range 20 { // unsequenced filler: several segments
		if _, err := j.Append(&broker.Entry{Kind: broker.EntryPublish, Topic: "t", MessageType: "json", Body: make([]byte, 100)}); err != nil {
			t.Fatal(err)
		}
	}
	recent := &broker.Entry{Kind: broker.EntryPublish, Topic: "t", MessageType: "json", ClientName: "new", Sequence: 7, Time: now, Body: []byte("{}")}
	if _, err := j.Append(recent); err != nil {
		t.Fatal(err)
	}
	if err := j.Sync(); err != nil {
		t.Fatal(err)
	}
	_, next := j.Bounds()
	if first, err := j.Truncate(next); err != nil || first <= old.Position {
		t.Fatalf("Truncate kept from %d (%v); the old publisher's entry at %d must be gone", first, err, old.Position)
	}
	j.Close()

	j = openT(t, Options{Dir: dir, SegmentSize: 512, Sync: noSync})
	if hw := j.HighWaters(); len(hw) != 2 || hw["old"] != 5 || hw["new"] != 7 {
		t.Fatalf("marks without ForgetPublishersAfter: %v, want old 5 (from the checkpoint) and new 7", hw)
	}
	j.Close()
	j = openT(t, Options{Dir: dir, SegmentSize: 512, Sync: noSync, ForgetPublishersAfter: 24 * time.Hour})
	defer j.Close()
	if hw := j.HighWaters(); len(hw) != 1 || hw["new"] != 7 {
		t.Fatalf("marks with ForgetPublishersAfter 24h: %v, want only new 7", hw)
	}
}

func TestStatsCountSyncs(t *testing.T) {
	j := openT(t, Options{Dir: t.TempDir(), FlushInterval: time.Hour})
	if n := j.Stats().Syncs; n != 0 {
		t.Fatalf("a new journal counts %d syncs", n)
	}
	for i := 0; i < 3; i++ {
		if _, err := j.Append(&broker.Entry{Kind: broker.EntryPublish, Topic: "t", MessageType: "json", Body: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
		if err := j.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if n := j.Stats().Syncs; n != 3 {
		t.Errorf("three synced batches counted as %d syncs", n)
	}
}
