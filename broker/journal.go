package broker

import (
	"context"
	"errors"
	"hash/fnv"
	"strconv"
	"strings"
	"time"
)

// The journal (transaction log, replay spec §7). The broker drives a
// Journal through this interface only; implementations live where they
// like (MemJournal here, the file journal in journal/filejournal, later one
// on JetStream) and the broker never imports them.
//
// Positions. Every entry gets a Position when it is appended: a uint64
// above the previous entry's, across every topic, so the journal's order
// is the broker's delivery order. MemJournal and the file journal count up
// by one; the broker must not rely on that (a journal on a replicated
// stream may skip numbers), only on the order. An empty journal starts at
// FirstPositionSeed (unix seconds × 10^9), so positions keep rising even
// when a journal directory is wiped and clients still hold old bookmarks.
//
// Bookmark format (decision on spec §7.2 [I]). A bookmark is
// "<journal id>|<position>|": the first field is the instance's journal id
// (JournalID, a hash of the instance name), the second the entry's
// position. §7.2 describes AMPS's own bookmarks for publishes without a
// sequence exactly so (a server-made publisher id and the local id); we use
// that form for every entry, also for publishes that carry "s". Reasons:
// the bookmark resolves to a position by arithmetic (no (publisher,
// sequence) index to rebuild at start), one publisher id means a client's
// bookmark store sees one strictly increasing sequence and resumes from a
// single bookmark, and the order of bookmarks is the journal's order, which
// §7.2's "monotonically increasing" asks for. A bookmark with another
// journal id (another instance, an AMPS bookmark) is not found.

// Position is an entry's place in the journal; see above.
type Position uint64

// Sentinel errors of journals. Implementations wrap them with details;
// test with errors.Is.
var (
	// ErrJournalClosed: the journal (or the cursor) was closed; nothing
	// more can be appended or read through it.
	ErrJournalClosed = errors.New("journal closed")
	// ErrBookmarkNotFound: a bookmark, position or timestamp names no
	// retained entry (removed by retention, dropped by a bounded journal,
	// not yet written, or another journal's bookmark).
	ErrBookmarkNotFound = errors.New("bookmark not found")
	// ErrCaughtUp: a cursor has returned every durable entry; wait on
	// Journal.DurableChanged and call Next again.
	ErrCaughtUp = errors.New("cursor caught up with the durable tail")
	// ErrCursorOverrun: a bounded journal dropped the entry a cursor was
	// about to read; the reader has lost its place and must start again
	// (the broker treats it like a bookmark that has gone, §7.8).
	ErrCursorOverrun = errors.New("journal dropped entries the cursor had not read")
	// ErrJournalFailed: the journal could not make entries durable (a
	// write or sync of a file journal failed). Nothing appended after the
	// durable position will become durable: Append refuses, Durable stays
	// where it is, Err returns the failure (wrapping this) and
	// WaitDurable returns it. Close the journal; reopening it recovers
	// what is on disk.
	ErrJournalFailed = errors.New("journal failed: entries can no longer be made durable")
)

// EntryKind is what a journal entry records (spec §7.1).
type EntryKind uint8

const (
	// EntryPublish is a publish (or a delta_publish as merged), replayed.
	EntryPublish EntryKind = iota + 1
	// EntrySOWDelete is a sow_delete: never replayed, used to rebuild SOW.
	EntrySOWDelete
)

// Entry is one journaled message. Append fills Position and, when zero,
// Time; the other fields are the caller's.
type Entry struct {
	Position Position
	// Time is when the broker processed the message, to the microsecond
	// (the precision of "ts" and of bookmark timestamps): Append truncates
	// it. Append never lets it go backwards: an entry's Time is at least
	// its predecessor's, so FindTime can search by it.
	Time        time.Time
	Kind        EntryKind
	Topic       string
	MessageType string
	// ClientName and Sequence identify the publish for duplicate detection
	// and the high-water marks; Sequence 0 means the publish carried no "s".
	ClientName string
	Sequence   uint64
	// Header fields replay needs.
	CorrelationID string
	SOWKey        string
	User          string // authenticated user
	// Expiry is the instant the message expires; zero for never.
	Expiry time.Time
	Body   []byte
}

// AsyncAppender is implemented by a Journal that can append without
// waiting until the entry is stored (natscluster's JetStream journal, whose
// Append waits for a replication round trip). AppendAsync stamps e.Time and
// copies e.Body as Append does, then calls done exactly once, from any
// goroutine, with e's position once it is durable or with why it is not
// stored; entries are stored, and done called, in the order of the calls
// (the broker's cumulative persisted ack relies on a publisher's outcomes
// coming in its order). An error returned means done is not called. The broker uses it where
// waiting would hold up others: the apply of a cluster's ordered SOW
// publishes (see SOWOrderer).
type AsyncAppender interface {
	AppendAsync(e *Entry, done func(Position, error)) error
}

// Journal is a transaction log. All methods are safe for concurrent use.
type Journal interface {
	// Append adds e at the tail, sets e.Position (and e.Time when zero, or
	// when it is before the previous entry's) and returns the position.
	// The entry is readable by cursors only once durable (Durable). Append
	// copies e.Body; the caller may reuse it. A sequenced entry
	// (ClientName != "" and Sequence > 0) raises that name's high-water
	// mark once durable. After Close it returns ErrJournalClosed; once the
	// journal has failed, Err's error (wrapping ErrJournalFailed).
	Append(e *Entry) (Position, error)

	// Bounds returns the first retained position and the position the next
	// Append will get. first == next when nothing is retained.
	Bounds() (first, next Position)

	// Durable returns the position up to which (exclusive) every entry is
	// durable: fsynced for a file journal, appended for a memory one. It
	// never goes backwards; entries below it survive a crash.
	Durable() Position

	// DurableChanged returns a channel closed at the next advance of
	// Durable, when the journal fails (Err) and at Close. Take the
	// channel, then read Durable (and Err), then wait: no change is
	// missed.
	DurableChanged() <-chan struct{}

	// Err returns nil while the journal can make entries durable, and
	// once it cannot (a write or sync failed) an error wrapping
	// ErrJournalFailed and the cause; it never goes back to nil. Entries
	// below Durable stay readable. Close does not set it.
	Err() error

	// Done returns a channel closed when Close has finished: the entries
	// Close made durable are below Durable, which no longer changes. A
	// waiter woken by Done reads Durable once more (see WaitDurable).
	Done() <-chan struct{}

	// FindTime returns the position of the first retained entry whose Time
	// is not before t, durable or not yet; Bounds' next when every entry
	// is older. A t before the first retained entry gives the first (spec
	// §7.8).
	FindTime(t time.Time) (Position, error)

	// NewCursor opens a reader positioned at from (first <= from <= next).
	// From outside that range it returns ErrBookmarkNotFound. Retention
	// keeps what an open cursor still has to read; close cursors.
	NewCursor(from Position) (Cursor, error)

	// Truncate removes entries before the position before, as far as it
	// may: a file journal removes whole segments only, and nothing an open
	// cursor still has to read. It returns the first position retained.
	// High-water marks are kept (spec §7.8).
	Truncate(before Position) (Position, error)

	// HighWaters returns, per client name, the highest sequence of a
	// durable entry under that name: what a logon ack's "s" may claim, and
	// what survives a crash and a reopen (and Truncate). The map is a copy.
	HighWaters() map[string]uint64

	// Stats reports sizes for Broker.Stats.
	Stats() JournalStats

	// Close makes the pending entries durable where it can, stops the
	// journal's goroutines and releases its resources (a file journal's
	// directory lock too), then closes Done. A call during or after the
	// first returns nil once the first has finished; open cursors return
	// ErrJournalClosed.
	Close() error
}

// Cursor reads a journal in order at its reader's pace.
type Cursor interface {
	// Next returns the entry at the cursor's position and moves past it.
	// At the durable tail it returns ErrCaughtUp (wait on
	// Journal.DurableChanged); ErrCursorOverrun when a bounded journal
	// dropped the entry; ErrJournalClosed after Close of either. The
	// returned entry's Body is the caller's.
	Next() (Entry, error)
	// Position is the position of the entry Next returns next.
	Position() Position
	// Close releases the cursor (and retention's hold on what it reads).
	Close() error
}

// JournalStats are a journal's figures for Stats.
type JournalStats struct {
	Bytes    int64    // bytes retained
	Segments int      // files (1 for a memory journal)
	Entries  int64    // entries retained
	First    Position // first retained position
	Next     Position // next position to assign
	Durable  Position // see Journal.Durable
	Cursors  int      // open cursors
	// Syncs counts the commits that made entries durable since the
	// journal opened: fsyncs of a file journal; 0 for a memory journal.
	Syncs int64
}

// FirstPositionSeed is the first position of an empty journal created at
// now: unix seconds × 10^9 (spec §7.2 [I]), so a new journal continues
// above any earlier one that was wiped.
func FirstPositionSeed(now time.Time) Position {
	return Position(uint64(now.Unix()) * 1_000_000_000)
}

// JournalID is the publisher-id field of this instance's bookmarks: the
// FNV-1a 64-bit hash of the instance name, never 0 (0 is EPOCH/NOW).
// Deterministic and unsalted: clients store bookmarks across restarts.
func JournalID(instanceName string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(instanceName))
	if id := h.Sum64(); id != 0 {
		return id
	}
	return 1
}

// FormatBookmark is the bookmark of the entry at pos in the journal id's
// journal: "<id>|<pos>|".
func FormatBookmark(id uint64, pos Position) string {
	b := make([]byte, 0, 42)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, '|')
	b = strconv.AppendUint(b, uint64(pos), 10)
	b = append(b, '|')
	return string(b)
}

// ParseBookmark returns the position a single bookmark "<id>|<pos>|" names
// in the journal whose id is id. A bookmark of another journal, or a
// malformed one, gives ErrBookmarkNotFound (with the bookmark named).
func ParseBookmark(id uint64, bm string) (Position, error) {
	a, rest, ok := strings.Cut(bm, "|")
	b, tail, ok2 := strings.Cut(rest, "|")
	if !ok || !ok2 || tail != "" {
		return 0, bookmarkError(bm, "not of the form <id>|<sequence>|")
	}
	pid, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, bookmarkError(bm, "fields are not unsigned 64-bit decimals")
	}
	if pid != id {
		return 0, bookmarkError(bm, "another journal's bookmark (id "+strconv.FormatUint(id, 10)+" expected)")
	}
	return Position(seq), nil
}

func bookmarkError(bm, why string) error {
	return &bookmarkErr{bm: bm, why: why}
}

type bookmarkErr struct{ bm, why string }

func (e *bookmarkErr) Error() string { return "bookmark " + strconv.Quote(e.bm) + ": " + e.why }
func (e *bookmarkErr) Unwrap() error { return ErrBookmarkNotFound }

// WaitDurable blocks until j's durable position is above pos (returning
// it), ctx ends (its error), j fails (Err's error, wrapping
// ErrJournalFailed) or j has closed without making pos durable
// (ErrJournalClosed). An entry that Close made durable is reported
// durable: Done is closed after Close's last sync, and Durable is read
// once more after it.
func WaitDurable(ctx context.Context, j Journal, pos Position) (Position, error) {
	for {
		ch := j.DurableChanged()
		if d := j.Durable(); d > pos {
			return d, nil
		}
		if err := j.Err(); err != nil {
			return 0, err
		}
		select {
		case <-ch:
		case <-j.Done():
			if d := j.Durable(); d > pos {
				return d, nil
			}
			if err := j.Err(); err != nil {
				return 0, err
			}
			return 0, ErrJournalClosed
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}
