package filejournal

import (
	"fmt"
	"io"
	"maps"
	"os"
	"sort"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
)

// Bounds implements broker.Journal.
func (j *Journal) Bounds() (broker.Position, broker.Position) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.segs[0].first, j.next
}

// Durable implements broker.Journal: entries below it are fsynced.
func (j *Journal) Durable() broker.Position {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.durable
}

// DurableChanged implements broker.Journal.
func (j *Journal) DurableChanged() <-chan struct{} {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.changed
}

// Done implements broker.Journal.
func (j *Journal) Done() <-chan struct{} { return j.done }

// FindTime implements broker.Journal: the durable entries are searched
// through the segments' indexes, then the entries not yet durable
// through their times kept since Append; next when every entry is older.
func (j *Journal) FindTime(t time.Time) (broker.Position, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return 0, broker.ErrJournalClosed
	}
	us := t.UnixMicro()
	for _, s := range j.segs {
		if i := sort.Search(len(s.times), func(i int) bool { return s.times[i] >= us }); i < len(s.times) {
			return s.first + broker.Position(i), nil
		}
	}
	i := sort.Search(len(j.unsynced), func(i int) bool { return j.unsynced[i] >= us })
	return j.durable + broker.Position(i), nil
}

// NewCursor implements broker.Journal.
func (j *Journal) NewCursor(from broker.Position) (broker.Cursor, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil, broker.ErrJournalClosed
	}
	if first := j.segs[0].first; from < first || from > j.next {
		return nil, fmt.Errorf("position %d outside the retained %d..%d: %w", from, first, j.next, broker.ErrBookmarkNotFound)
	}
	c := &cursor{j: j, pos: from}
	j.cursors[c] = struct{}{}
	return c, nil
}

// Truncate implements broker.Journal: it removes the oldest segments whose
// entries all lie before before and before every open cursor's position,
// never the segment being written. The high-water marks are checkpointed
// before any file goes, so they outlive the entries that carried them.
// Appends go on meanwhile: the lock is held only to choose the segments.
func (j *Journal) Truncate(before broker.Position) (broker.Position, error) {
	j.truncMu.Lock()
	defer j.truncMu.Unlock()
	j.mu.Lock()
	if j.closing {
		j.mu.Unlock()
		return 0, broker.ErrJournalClosed
	}
	for c := range j.cursors {
		before = min(before, c.pos)
	}
	n := 0
	for n < len(j.segs)-1 && j.segs[n].next() <= before && j.segs[n].next() <= j.durable {
		n++
	}
	gone := j.segs[:n:n]
	high, seen := maps.Clone(j.high), maps.Clone(j.seen)
	j.segs = j.segs[n:]
	for _, s := range gone {
		j.totalBytes -= s.size
	}
	first := j.segs[0].first
	j.mu.Unlock()
	if n == 0 {
		return first, nil
	}
	// Should this fail, the files stay; they are whole, and the next Open
	// takes them back into the journal.
	if err := j.writeCheckpoint(high, seen); err != nil {
		return first, err
	}
	for _, s := range gone {
		if err := os.Remove(s.path); err != nil {
			return first, fmt.Errorf("journal: removing %s: %w", s.path, err)
		}
	}
	return first, j.syncDir()
}

// HighWaters implements broker.Journal.
func (j *Journal) HighWaters() map[string]uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return maps.Clone(j.high)
}

// Stats implements broker.Journal.
func (j *Journal) Stats() broker.JournalStats {
	j.mu.Lock()
	defer j.mu.Unlock()
	return broker.JournalStats{Bytes: j.totalBytes, Segments: len(j.segs),
		Entries: int64(j.durable - j.segs[0].first), First: j.segs[0].first,
		Next: j.next, Durable: j.durable, Cursors: len(j.cursors), Syncs: j.syncs}
}

// Close implements broker.Journal: it makes the pending batch durable,
// stops the writer, checkpoints the high-water marks and releases the
// directory lock.
//
// Done is closed last, once the lock is released: a Close during or after
// the first waits for it, so when any Close returns the directory may be
// opened again.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closing {
		j.mu.Unlock()
		<-j.done
		return nil
	}
	j.closing = true
	j.roomCond.Broadcast()
	j.mu.Unlock()
	j.wake()
	<-j.stopped
	j.truncMu.Lock()
	defer j.truncMu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	defer close(j.done)
	err := j.failed
	if err == nil {
		err = j.writeCheckpoint(j.high, j.seen)
	}
	j.closed = true
	j.notifyLocked()
	if cerr := j.out.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("journal: closing %s: %w", j.segs[len(j.segs)-1].path, cerr)
	}
	j.lock.Close()
	return err
}

// cursor reads durable entries through a buffer of its segment's bytes.
type cursor struct {
	j      *Journal
	pos    broker.Position // guarded by j.mu
	closed bool            // guarded by j.mu
	f      *os.File
	fnum   uint64
	buf    []byte
	bufOff int64 // file offset of buf[0]
}

func (c *cursor) Next() (broker.Entry, error) {
	j := c.j
	j.mu.Lock()
	if c.closed || j.closed {
		j.mu.Unlock()
		return broker.Entry{}, broker.ErrJournalClosed
	}
	if c.pos >= j.durable {
		j.mu.Unlock()
		return broker.Entry{}, broker.ErrCaughtUp
	}
	i := sort.Search(len(j.segs), func(i int) bool { return j.segs[i].next() > c.pos })
	s := j.segs[i]
	off, end := s.offsets[c.pos-s.first], s.size
	if k := int(c.pos-s.first) + 1; k < len(s.offsets) {
		end = s.offsets[k]
	}
	path, num, pos := s.path, s.num, c.pos
	j.mu.Unlock()

	frame, err := c.read(path, num, off, end)
	if err != nil {
		return broker.Entry{}, err
	}
	e, err := decodeFrame(frame[:frameHeaderSize], frame[frameHeaderSize:])
	if err == nil && e.Position != pos {
		err = fmt.Errorf("%w: position %d, want %d", errBadEntry, e.Position, pos)
	}
	if err != nil {
		return broker.Entry{}, fmt.Errorf("journal file %s at offset %d: %v: %w", path, off, err, ErrCorrupt)
	}
	j.mu.Lock()
	c.pos++
	j.mu.Unlock()
	return e, nil
}

// read returns the bytes [off, end) of segment num, from the buffer or
// after refilling it.
func (c *cursor) read(path string, num uint64, off, end int64) ([]byte, error) {
	if c.f == nil || c.fnum != num {
		if c.f != nil {
			c.f.Close()
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
		c.f, c.fnum, c.buf = f, num, c.buf[:0]
	}
	if off >= c.bufOff && end <= c.bufOff+int64(len(c.buf)) {
		return c.buf[off-c.bufOff : end-c.bufOff], nil
	}
	n := max(int(end-off), readChunk)
	if cap(c.buf) < n {
		c.buf = make([]byte, n)
	}
	c.buf = c.buf[:n]
	got, err := c.f.ReadAt(c.buf, off)
	if int64(got) < end-off {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("journal: reading %s at %d: %w", path, off, err)
	}
	c.buf, c.bufOff = c.buf[:got], off
	return c.buf[:end-off], nil
}

func (c *cursor) Position() broker.Position {
	c.j.mu.Lock()
	defer c.j.mu.Unlock()
	return c.pos
}

func (c *cursor) Close() error {
	c.j.mu.Lock()
	c.closed = true
	delete(c.j.cursors, c)
	c.j.mu.Unlock()
	if c.f != nil {
		return c.f.Close()
	}
	return nil
}

// Err implements broker.Journal.
func (j *Journal) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.failed
}
