// Package filejournal is the transaction log on disk: a broker.Journal
// kept in segment files under one directory (config spec §6A.3), with a
// CRC per entry, group commit (an entry is durable once fsynced), an
// exclusive lock on the directory, recovery at Open and retention by whole
// segments. The broker drives it through broker.Journal only.
package filejournal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
)

// Defaults for Options; each applies when its field is zero.
const (
	// DefaultSegmentSize is when a segment is full and the next one is
	// started: AMPS's JournalSize default, 1 GB (config §6A.2). A segment
	// may end below it (the next entry did not fit) and exceeds it only by
	// holding one entry larger than the whole size.
	DefaultSegmentSize = 1 << 30
	// DefaultFlushInterval is AMPS's FlushInterval default: the longest an
	// appended entry waits before its batch is written and fsynced
	// (config §6A.2.1).
	DefaultFlushInterval = 100 * time.Millisecond
	// DefaultBatchBytes writes a batch before FlushInterval once this much
	// is pending (config §6A.2.1 uses 1 MiB).
	DefaultBatchBytes = 1 << 20
	// DefaultMaxPendingBytes bounds the appended bytes not yet handed to
	// the writer: when the disk falls behind, Append waits instead of
	// letting the batch grow without limit.
	DefaultMaxPendingBytes = 64 << 20
	// DefaultName is the file prefix when Options.Name is empty, the
	// broker's default instance name.
	DefaultName = broker.DefaultName
	// dirMode is the mode of a journal directory Open creates (config
	// §6A.3: 0750).
	dirMode = 0o750
	// fileMode is the mode of the files Open creates.
	fileMode = 0o640
	// scanBuffer is the read buffer of recovery's scan.
	scanBuffer = 1 << 20
	// readChunk is how much a cursor reads from a segment at a time.
	readChunk = 256 << 10
)

// ErrCorrupt: a segment is damaged where a torn write cannot explain it:
// in an older segment, or in the newest with an intact entry after the
// damage. Open refuses the directory; the error names the file and the
// offset of the damage.
var ErrCorrupt = errors.New("journal corrupt")

// Options configure Open.
type Options struct {
	// Dir is the journal directory (JournalDirectory), created if missing.
	Dir string
	// Name is the instance name, the prefix of every file:
	// <Name>.<10-digit counter>.journal, <Name>.lock, <Name>.clients.ack.
	Name string
	// SegmentSize: see DefaultSegmentSize.
	SegmentSize int64
	// FlushInterval: see DefaultFlushInterval.
	FlushInterval time.Duration
	// BatchBytes: see DefaultBatchBytes.
	BatchBytes int
	// MaxPendingBytes: see DefaultMaxPendingBytes.
	MaxPendingBytes int
	// FirstPosition is the first position of a new, empty journal;
	// broker.FirstPositionSeed(time.Now()) when 0.
	FirstPosition broker.Position
	// Sync makes a written segment, checkpoint or the directory durable;
	// fdatasync when nil.
	// Tests replace it.
	Sync func(*os.File) error
	// Logger receives recovery's warnings (a torn tail cut off) and a
	// write failure; nothing when nil.
	Logger *slog.Logger
	// ForgetPublishersAfter, when positive, makes Open forget the
	// high-water mark of every publisher whose last sequenced entry is
	// older than this (AMPS InactiveClientAckExpiration), so the
	// checkpoint does not keep every client name ever seen. Such a
	// publisher's next logon ack says "s" 0. Zero keeps every mark.
	ForgetPublishersAfter time.Duration
}

// segment is one journal file and the index of its durable entries.
type segment struct {
	num     uint64
	path    string
	first   broker.Position
	offsets []int64 // file offset of each entry's frame
	times   []int64 // each entry's time, µs
	size    int64   // bytes written and synced
}

func (s *segment) next() broker.Position { return s.first + broker.Position(len(s.offsets)) }

// pendMeta describes one entry of the pending batch.
type pendMeta struct {
	size   int
	time   int64
	client string
	seq    uint64
}

// Journal is the file journal. Open it with Open.
type Journal struct {
	opts Options
	log  *slog.Logger
	lock *os.File

	truncMu   sync.Mutex // one Truncate at a time
	mu        sync.Mutex
	segs      []*segment // oldest first; the last is written
	next      broker.Position
	durable   broker.Position
	lastTime  time.Time
	pending   []byte
	spare     []byte     // an empty buffer for pending, reused
	roomCond  *sync.Cond // signalled when pending shrinks or at Close
	pendMetas []pendMeta
	// unsynced holds the times (µs) of the entries not yet durable, at
	// positions durable, durable+1, ..., for FindTime.
	unsynced   []int64
	pendSince  time.Time
	flushWant  bool
	high       map[string]uint64 // durable high-water marks
	seen       map[string]int64  // time (µs) of each publisher's last durable sequenced entry
	changed    chan struct{}
	failed     error
	closing    bool
	closed     bool
	cursors    map[*cursor]struct{}
	totalBytes int64
	syncs      int64 // commits synced, for Stats

	out *os.File // the last segment, written by run
	// scanReader is recovery's read buffer, one for every segment.
	scanReader *bufio.Reader
	kick       chan struct{}
	done       chan struct{} // closed when Close has finished
	stopped    chan struct{} // closed when run has returned
}

var _ broker.Journal = (*Journal)(nil)

func (o *Options) fill() {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.SegmentSize <= 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	if o.MaxPendingBytes <= 0 {
		o.MaxPendingBytes = DefaultMaxPendingBytes
	}
	if o.Sync == nil {
		o.Sync = func(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

func (j *Journal) segPath(num uint64) string {
	return filepath.Join(j.opts.Dir, fmt.Sprintf("%s.%010d.journal", j.opts.Name, num))
}

func (j *Journal) ackPath() string { return filepath.Join(j.opts.Dir, j.opts.Name+".clients.ack") }

// Open locks the directory, recovers the journal in it (config §6A.4) and
// starts the writer. A torn tail of the newest segment (damage at its end
// with no intact entry after it) is cut off, with a warning to
// Options.Logger; damage anywhere else fails with ErrCorrupt naming the
// file and offset; a directory another journal holds fails with
// ErrLocked.
func Open(opts Options) (*Journal, error) {
	opts.fill()
	if opts.Dir == "" {
		return nil, errors.New("filejournal: Options.Dir is empty")
	}
	if err := os.MkdirAll(opts.Dir, dirMode); err != nil {
		return nil, fmt.Errorf("journal directory: %w", err)
	}
	lock, err := lockDir(filepath.Join(opts.Dir, opts.Name+".lock"))
	if err != nil {
		return nil, err
	}
	j := &Journal{
		opts: opts, log: opts.Logger, lock: lock, high: map[string]uint64{}, seen: map[string]int64{},
		changed: make(chan struct{}), cursors: map[*cursor]struct{}{},
		kick: make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{}),
	}
	j.roomCond = sync.NewCond(&j.mu)
	if err := j.recover(); err != nil {
		if j.out != nil {
			j.out.Close()
		}
		lock.Close()
		return nil, err
	}
	go j.run()
	return j, nil
}

// segmentNumbers lists the counters of dir's segment files, ascending.
func (j *Journal) segmentNumbers() ([]uint64, error) {
	names, err := os.ReadDir(j.opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("journal directory: %w", err)
	}
	prefix := j.opts.Name + "."
	var nums []uint64
	for _, d := range names {
		n := d.Name()
		if !strings.HasPrefix(n, prefix) || !strings.HasSuffix(n, ".journal") {
			continue
		}
		c := strings.TrimSuffix(strings.TrimPrefix(n, prefix), ".journal")
		num, err := strconv.ParseUint(c, 10, 64)
		if err != nil || len(c) != 10 {
			continue
		}
		nums = append(nums, num)
	}
	sort.Slice(nums, func(a, b int) bool { return nums[a] < nums[b] })
	for i := 1; i < len(nums); i++ {
		if nums[i] != nums[i-1]+1 {
			return nil, fmt.Errorf("journal files %s and %s: segments between them are missing: %w",
				j.segPath(nums[i-1]), j.segPath(nums[i]), ErrCorrupt)
		}
	}
	return nums, nil
}

func (j *Journal) recover() error {
	defer func() { j.scanReader = nil }() // needed at Open only
	if err := j.loadCheckpoint(); err != nil {
		return err
	}
	nums, err := j.segmentNumbers()
	if err != nil {
		return err
	}
	for i, num := range nums {
		last := i == len(nums)-1
		seg, err := j.scanSegment(num, last)
		if err != nil {
			return err
		}
		if seg == nil { // the newest segment was torn while being created
			if err := os.Remove(j.segPath(num)); err != nil {
				return fmt.Errorf("journal: removing torn segment: %w", err)
			}
			break
		}
		if len(j.segs) > 0 {
			if prev := j.segs[len(j.segs)-1]; seg.first != prev.next() {
				return fmt.Errorf("journal file %s starts at position %d, but %s ends before %d: %w",
					seg.path, seg.first, prev.path, prev.next(), ErrCorrupt)
			}
		}
		j.segs = append(j.segs, seg)
		j.totalBytes += seg.size
	}
	j.forgetIdlePublishers(time.Now())
	if len(j.segs) == 0 {
		first := j.opts.FirstPosition
		if first == 0 {
			first = broker.FirstPositionSeed(time.Now())
		}
		num := uint64(0)
		if len(nums) > 0 {
			num = nums[len(nums)-1]
		}
		return j.createSegment(num, first)
	}
	last := j.segs[len(j.segs)-1]
	j.next, j.durable = last.next(), last.next()
	out, err := os.OpenFile(last.path, os.O_WRONLY, fileMode)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if _, err := out.Seek(last.size, 0); err != nil {
		out.Close()
		return fmt.Errorf("journal: %w", err)
	}
	j.out = out
	return nil
}

// scanSegment reads and indexes segment num. In the newest segment (last)
// a bad entry with nothing intact after it (see intactAfter) is a torn
// write: the file is cut there. A bad entry that an intact one follows,
// or any bad entry in an older segment, is ErrCorrupt: entries that were
// durable lie behind it. A newest segment too short to hold its header
// returns nil (it was being created).
func (j *Journal) scanSegment(num uint64, last bool) (*segment, error) {
	path := j.segPath(num)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	size := fi.Size()
	if last && size < segmentHeaderSize {
		return nil, nil
	}
	if j.scanReader == nil {
		j.scanReader = bufio.NewReaderSize(f, scanBuffer)
	}
	r := j.scanReader
	r.Reset(f)
	var head [segmentHeaderSize]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, fmt.Errorf("journal file %s at offset 0: segment header: %v: %w", path, err, ErrCorrupt)
	}
	first, err := parseSegmentHeader(head[:])
	if err != nil {
		return nil, fmt.Errorf("journal file %s at offset 0: %v: %w", path, err, ErrCorrupt)
	}
	seg := &segment{num: num, path: path, first: first}
	off := int64(segmentHeaderSize)
	var payload []byte
	for off < size {
		var e broker.Entry
		n, err := 0, error(nil)
		payload, n, err = readFrame(r, size-off, payload)
		if err != nil && !errors.Is(err, errBadEntry) {
			// A failing read is no evidence of a torn write: cut nothing.
			return nil, fmt.Errorf("journal: reading %s at offset %d: %w", path, off, err)
		}
		if err == nil {
			e, err = decodeFrame(payload[:frameHeaderSize], payload[frameHeaderSize:n])
		}
		if err == nil && e.Position != seg.next() {
			err = fmt.Errorf("%w: position %d, want %d", errBadEntry, e.Position, seg.next())
		}
		if err == nil && e.Time.UnixMicro() < j.lastMicros() {
			err = fmt.Errorf("%w: time goes backwards", errBadEntry)
		}
		if err != nil {
			if !last {
				return nil, fmt.Errorf("journal file %s at offset %d: %v: %w", path, off, err, ErrCorrupt)
			}
			// In the newest segment the damage is a torn write only if
			// nothing intact follows it: an intact entry after it means
			// entries that were durable sit behind damage in the middle.
			at, pos, found, serr := intactAfter(f, off, size, seg.next())
			if serr != nil {
				return nil, fmt.Errorf("journal: reading %s after offset %d: %w", path, off, serr)
			}
			if found {
				return nil, fmt.Errorf("journal file %s at offset %d: %v, yet an intact entry (position %d) follows at offset %d: damage in the middle, not a torn tail (truncating the file at %d would drop the entries from there): %w",
					path, off, err, pos, at, off, ErrCorrupt)
			}
			j.log.Warn("journal: cutting a torn tail", "file", path, "offset", off, "bytes", size-off, "why", err.Error())
			if err := truncateFile(path, off, j.opts.Sync); err != nil {
				return nil, err
			}
			break
		}
		seg.offsets = append(seg.offsets, off)
		seg.times = append(seg.times, micros(e.Time))
		j.lastTime = e.Time
		j.notePublisher(e.ClientName, e.Sequence, micros(e.Time))
		off += int64(n)
	}
	seg.size = off
	return seg, nil
}

func (j *Journal) lastMicros() int64 { return micros(j.lastTime) }

// notePublisher records a durable sequenced entry of client at time at
// (µs) in the high-water marks; entries without a client name or a
// sequence carry no mark.
func (j *Journal) notePublisher(client string, seq uint64, at int64) {
	if client == "" || seq == 0 {
		return
	}
	j.high[client] = max(j.high[client], seq)
	j.seen[client] = max(j.seen[client], at)
}

// forgetIdlePublishers drops the marks of publishers whose last entry is
// older than ForgetPublishersAfter before now.
func (j *Journal) forgetIdlePublishers(now time.Time) {
	if j.opts.ForgetPublishersAfter <= 0 {
		return
	}
	cutoff := now.Add(-j.opts.ForgetPublishersAfter).UnixMicro()
	n := 0
	for name, at := range j.seen {
		if at < cutoff {
			delete(j.seen, name)
			delete(j.high, name)
			n++
		}
	}
	if n > 0 {
		j.log.Info("journal: forgot idle publishers' sequence numbers", "publishers", n, "idle_longer_than", j.opts.ForgetPublishersAfter)
	}
}

// intactAfter looks for an intact frame starting anywhere in (from, size)
// of f: a payload length that fits in the file, a matching CRC, and a
// position the journal could have written there, at least want (the
// position of the damaged entry at from) and below want plus the number
// of frames the rest of the file could hold. The position check is cheap
// and makes the CRC, which is over the whole payload, rare on damaged
// bytes. It reads the rest of the file once, through a window.
func intactAfter(f *os.File, from, size int64, want broker.Position) (at int64, pos broker.Position, found bool, err error) {
	maxPos := want + broker.Position((size-from)/frameHeaderSize)
	// peek is what a candidate needs in the window: its frame header and
	// the uvarint position that opens its payload.
	const peek = frameHeaderSize + binary.MaxVarintLen64
	win := make([]byte, 0, scanBuffer)
	winOff := from + 1 // file offset of win[0]
	for p := from + 1; p+frameHeaderSize < size; p++ {
		if p+peek > winOff+int64(len(win)) && winOff+int64(len(win)) < size {
			// Slide the window to start at p.
			winOff = p
			n := min(int64(cap(win)), size-p)
			win = win[:n]
			if _, err := f.ReadAt(win, p); err != nil && err != io.EOF {
				return 0, 0, false, err
			}
		}
		h := win[p-winOff:]
		n := int64(binary.LittleEndian.Uint32(h))
		if n == 0 || n > MaxEntrySize || p+frameHeaderSize+n > size {
			continue
		}
		v, k := binary.Uvarint(h[frameHeaderSize:min(int64(len(h)), frameHeaderSize+n)])
		if k <= 0 || broker.Position(v) < want || broker.Position(v) >= maxPos {
			continue
		}
		sum := crc32.New(castagnoli)
		if _, err := io.Copy(sum, io.NewSectionReader(f, p+frameHeaderSize, n)); err != nil {
			return 0, 0, false, err
		}
		if sum.Sum32() == binary.LittleEndian.Uint32(h[4:]) {
			return p, broker.Position(v), true, nil
		}
	}
	return 0, 0, false, nil
}

// readFrame reads the next frame (header and payload) from r, of which
// left bytes remain in the file, into buf; n is the frame's length.
func readFrame(r io.Reader, left int64, buf []byte) ([]byte, int, error) {
	if left < frameHeaderSize {
		return buf, 0, fmt.Errorf("%w: %d bytes of a frame header", errBadEntry, left)
	}
	buf = append(buf[:0], make([]byte, frameHeaderSize)...)
	if _, err := io.ReadFull(r, buf); err != nil {
		return buf, 0, err
	}
	n, err := frameLength(buf)
	if err != nil {
		return buf, 0, err
	}
	if left-frameHeaderSize < int64(n) {
		return buf, 0, fmt.Errorf("%w: payload of %d bytes, %d present", errBadEntry, n, left-frameHeaderSize)
	}
	buf = append(buf, make([]byte, n)...)
	if _, err := io.ReadFull(r, buf[frameHeaderSize:]); err != nil {
		return buf, 0, err
	}
	return buf, frameHeaderSize + n, nil
}

func truncateFile(path string, size int64, sync func(*os.File) error) error {
	f, err := os.OpenFile(path, os.O_WRONLY, fileMode)
	if err != nil {
		return fmt.Errorf("journal: cutting the torn tail: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("journal: cutting the torn tail of %s at %d: %w", path, size, err)
	}
	return sync(f)
}

// createSegment starts segment num at position first and makes it the one
// written; its header and directory entry are durable before it is used.
func (j *Journal) createSegment(num uint64, first broker.Position) error {
	path := j.segPath(num)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fileMode)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	var h [segmentHeaderSize]byte
	putSegmentHeader(h[:], first)
	if _, err := f.Write(h[:]); err != nil {
		f.Close()
		return fmt.Errorf("journal: writing %s: %w", path, err)
	}
	if err := j.opts.Sync(f); err != nil {
		f.Close()
		return fmt.Errorf("journal: syncing %s: %w", path, err)
	}
	if err := j.syncDir(); err != nil {
		f.Close()
		return err
	}
	j.mu.Lock()
	j.segs = append(j.segs, &segment{num: num, path: path, first: first, size: segmentHeaderSize})
	j.totalBytes += segmentHeaderSize
	if len(j.segs) == 1 {
		j.next, j.durable = first, first
	}
	j.mu.Unlock()
	if j.out != nil {
		j.out.Close()
	}
	j.out = f
	return nil
}

// syncDir makes the directory's entries (new, renamed, removed files)
// durable, through Options.Sync like the files.
func (j *Journal) syncDir() error {
	dir := j.opts.Dir
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("journal directory: %w", err)
	}
	defer d.Close()
	if err := j.opts.Sync(d); err != nil {
		return fmt.Errorf("journal directory %s: sync: %w", dir, err)
	}
	return nil
}
