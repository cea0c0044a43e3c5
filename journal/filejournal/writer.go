package filejournal

import (
	"fmt"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
)

// Append implements broker.Journal: the entry joins the pending batch,
// which the writer makes durable within FlushInterval.
func (j *Journal) Append(e *broker.Entry) (broker.Position, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for len(j.pending) >= j.opts.MaxPendingBytes && !j.closing && j.failed == nil {
		j.wake()
		j.roomCond.Wait()
	}
	if j.closing {
		return 0, broker.ErrJournalClosed
	}
	if j.failed != nil {
		return 0, j.failed
	}
	// Times are kept in µs; never before the previous entry's.
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = time.UnixMicro(max(e.Time.UnixMicro(), j.lastTime.UnixMicro()))
	if !e.Expiry.IsZero() {
		e.Expiry = time.UnixMicro(e.Expiry.UnixMicro())
	}
	e.Position = j.next
	before := len(j.pending)
	j.pending = appendFrame(j.pending, e)
	if size := len(j.pending) - before; size-frameHeaderSize > MaxEntrySize {
		j.pending = j.pending[:before]
		return 0, fmt.Errorf("journal: entry of %d bytes exceeds MaxEntrySize %d", size, MaxEntrySize)
	}
	j.next++
	j.lastTime = e.Time
	if len(j.pendMetas) == 0 {
		j.pendSince = time.Now()
		j.wake()
	}
	j.pendMetas = append(j.pendMetas, pendMeta{size: len(j.pending) - before, time: micros(e.Time), client: e.ClientName, seq: e.Sequence})
	j.unsynced = append(j.unsynced, micros(e.Time))
	if len(j.pending) >= j.opts.BatchBytes {
		j.wake()
	}
	return e.Position, nil
}

func (j *Journal) wake() {
	select {
	case j.kick <- struct{}{}:
	default:
	}
}

// Sync writes and fsyncs every entry appended before it, now, and returns
// once they are durable (or the journal failed or closed).
func (j *Journal) Sync() error {
	j.mu.Lock()
	target := j.next
	j.flushWant = true
	j.mu.Unlock()
	j.wake()
	for {
		j.mu.Lock()
		d, ch, failed, closed := j.durable, j.changed, j.failed, j.closed
		j.mu.Unlock()
		switch {
		case d >= target:
			return nil
		case failed != nil:
			return failed
		case closed:
			return broker.ErrJournalClosed
		}
		<-ch
	}
}

// run is the writer: it owns the written segment, and writes and fsyncs
// the pending batch once it is BatchBytes (or MaxPendingBytes, if lower), its oldest entry has waited
// FlushInterval, Sync asks, or Close. Close stops it (closing, then kick).
func (j *Journal) run() {
	defer close(j.stopped)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		j.mu.Lock()
		n, since, want, closing := len(j.pending), j.pendSince, j.flushWant, j.closing
		j.mu.Unlock()
		if n == 0 {
			if closing {
				return
			}
			<-j.kick
			continue
		}
		if wait := j.opts.FlushInterval - time.Since(since); n < min(j.opts.BatchBytes, j.opts.MaxPendingBytes) && !want && !closing && wait > 0 {
			timer.Reset(wait)
			select {
			case <-j.kick:
				timer.Stop()
			case <-timer.C:
			}
			continue
		}
		if err := j.commit(); err != nil {
			j.mu.Lock()
			j.failed = fmt.Errorf("%w: %w", broker.ErrJournalFailed, err)
			j.pending, j.pendMetas = nil, nil
			j.log.Error("journal write failed; nothing more will be durable", "dir", j.opts.Dir, "durable", j.durable, "err", err)
			j.notifyLocked()
			j.roomCond.Broadcast()
			j.mu.Unlock()
			if closing {
				return
			}
		}
	}
}

func (j *Journal) notifyLocked() {
	close(j.changed)
	j.changed = make(chan struct{})
}

// commit writes the pending batch (starting new segments where the current
// one is full), fsyncs it, then publishes it: index, durable position,
// high-water marks, DurableChanged.
func (j *Journal) commit() error {
	j.mu.Lock()
	buf, metas := j.pending, j.pendMetas
	j.pending, j.pendMetas, j.flushWant = j.spare, nil, false
	j.spare = nil
	j.roomCond.Broadcast()
	first := j.durable
	seg := j.segs[len(j.segs)-1]
	size := seg.size
	j.mu.Unlock()

	whole := buf
	pos := first
	for i := 0; i < len(metas); {
		// The run of entries that fit the current segment (at least one).
		runBytes, k := 0, i
		for k < len(metas) && (k == i && size == segmentHeaderSize || size+int64(runBytes+metas[k].size) <= j.opts.SegmentSize) {
			runBytes += metas[k].size
			k++
		}
		if k == i { // the current segment is full
			if err := j.createSegment(seg.num+1, pos); err != nil {
				return err
			}
			j.mu.Lock()
			seg = j.segs[len(j.segs)-1]
			j.mu.Unlock()
			size = seg.size
			continue
		}
		if _, err := j.out.Write(buf[:runBytes]); err != nil {
			return fmt.Errorf("writing %s: %w", seg.path, err)
		}
		if err := j.opts.Sync(j.out); err != nil {
			return fmt.Errorf("syncing %s: %w", seg.path, err)
		}
		buf = buf[runBytes:]
		j.mu.Lock()
		for _, m := range metas[i:k] {
			seg.offsets = append(seg.offsets, size)
			seg.times = append(seg.times, m.time)
			size += int64(m.size)
			j.notePublisher(m.client, m.seq, m.time)
		}
		j.totalBytes += size - seg.size
		j.syncs++
		seg.size = size
		j.unsynced = j.unsynced[k-i:]
		pos += broker.Position(k - i)
		j.durable = pos
		j.notifyLocked()
		j.mu.Unlock()
		i = k
	}
	// Keep the buffer for the next batch unless a backlog made it large.
	if cap(whole) <= 2*j.opts.BatchBytes {
		j.mu.Lock()
		j.spare = whole[:0]
		j.mu.Unlock()
	}
	return nil
}
