package broker

import (
	"fmt"
	"maps"
	"sort"
	"sync"
	"time"
)

// DefaultMemJournalBytes bounds a MemJournal when NewMemJournal is given 0:
// 64 MiB holds a good stretch of replay for tests and small brokers
// without letting the journal hold the heap.
const DefaultMemJournalBytes = 64 << 20

// memEntryOverhead is what a retained entry costs beyond its strings and
// body (the Entry struct and slice slot), counted against the bound.
const memEntryOverhead = 160

// MemJournal is a Journal in memory: bounded in bytes (the oldest entries
// are dropped to make room, even under a cursor, which then gets
// ErrCursorOverrun), durable as soon as appended, gone when the process
// ends. For tests, and for brokers that want replay without durability.
type MemJournal struct {
	mu       sync.Mutex
	limit    int64
	entries  []Entry // entries[0] is at position first
	first    Position
	bytes    int64
	changed  chan struct{} // closed at the next append
	done     chan struct{}
	closed   bool
	high     map[string]uint64
	lastTime time.Time
	cursors  map[*memCursor]struct{}
}

// NewMemJournal returns an empty MemJournal holding at most maxBytes
// (DefaultMemJournalBytes when 0), whose first entry gets position first
// (FirstPositionSeed(time.Now()) when 0).
func NewMemJournal(maxBytes int64, first Position) *MemJournal {
	if maxBytes <= 0 {
		maxBytes = DefaultMemJournalBytes
	}
	if first == 0 {
		first = FirstPositionSeed(time.Now())
	}
	return &MemJournal{
		limit: maxBytes, first: first,
		changed: make(chan struct{}), done: make(chan struct{}),
		high: map[string]uint64{}, cursors: map[*memCursor]struct{}{},
	}
}

func memEntrySize(e *Entry) int64 {
	return int64(memEntryOverhead + len(e.Topic) + len(e.MessageType) + len(e.ClientName) +
		len(e.CorrelationID) + len(e.SOWKey) + len(e.User) + len(e.Body))
}

func (m *MemJournal) next() Position { return m.first + Position(len(m.entries)) }

// Append implements Journal.
func (m *MemJournal) Append(e *Entry) (Position, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrJournalClosed
	}
	if e.Time.IsZero() || e.Time.Before(m.lastTime) {
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		if e.Time.Before(m.lastTime) {
			e.Time = m.lastTime
		}
	}
	m.lastTime = e.Time
	e.Position = m.next()
	c := *e
	c.Body = append([]byte(nil), e.Body...)
	m.entries = append(m.entries, c)
	m.bytes += memEntrySize(&c)
	for m.bytes > m.limit && len(m.entries) > 1 {
		m.dropFirst()
	}
	if c.ClientName != "" && c.Sequence > m.high[c.ClientName] {
		m.high[c.ClientName] = c.Sequence
	}
	close(m.changed)
	m.changed = make(chan struct{})
	return c.Position, nil
}

func (m *MemJournal) dropFirst() {
	m.bytes -= memEntrySize(&m.entries[0])
	m.entries[0] = Entry{}
	m.entries = m.entries[1:]
	m.first++
}

// Bounds implements Journal.
func (m *MemJournal) Bounds() (Position, Position) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.first, m.next()
}

// Durable implements Journal: everything appended is durable.
func (m *MemJournal) Durable() Position {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.next()
}

// DurableChanged implements Journal.
func (m *MemJournal) DurableChanged() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

// Done implements Journal.
func (m *MemJournal) Done() <-chan struct{} { return m.done }

// Err implements Journal: a memory journal cannot fail to make an entry
// durable, so it is always nil.
func (m *MemJournal) Err() error { return nil }

// FindTime implements Journal.
func (m *MemJournal) FindTime(t time.Time) (Position, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrJournalClosed
	}
	i := sort.Search(len(m.entries), func(i int) bool { return !m.entries[i].Time.Before(t) })
	return m.first + Position(i), nil
}

// NewCursor implements Journal.
func (m *MemJournal) NewCursor(from Position) (Cursor, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrJournalClosed
	}
	if from < m.first || from > m.next() {
		return nil, fmt.Errorf("position %d outside the retained %d..%d: %w", from, m.first, m.next(), ErrBookmarkNotFound)
	}
	c := &memCursor{m: m, pos: from}
	m.cursors[c] = struct{}{}
	return c, nil
}

// Truncate implements Journal: it drops entries before before, but none an
// open cursor has still to read.
func (m *MemJournal) Truncate(before Position) (Position, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrJournalClosed
	}
	for c := range m.cursors {
		before = min(before, c.pos)
	}
	for m.first < before && len(m.entries) > 0 {
		m.dropFirst()
	}
	return m.first, nil
}

// HighWaters implements Journal.
func (m *MemJournal) HighWaters() map[string]uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.high)
}

// Stats implements Journal.
func (m *MemJournal) Stats() JournalStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return JournalStats{Bytes: m.bytes, Segments: 1, Entries: int64(len(m.entries)),
		First: m.first, Next: m.next(), Durable: m.next(), Cursors: len(m.cursors)}
}

// Close implements Journal. The entries go; Bounds and Durable stay at the
// next position, so Durable does not go backwards.
func (m *MemJournal) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.closed = true
		m.first = m.next()
		m.entries, m.bytes = nil, 0
		close(m.changed)
		m.changed = make(chan struct{})
		close(m.done)
	}
	return nil
}

type memCursor struct {
	m      *MemJournal
	pos    Position
	closed bool
}

func (c *memCursor) Next() (Entry, error) {
	m := c.m
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case c.closed || m.closed:
		return Entry{}, ErrJournalClosed
	case c.pos < m.first:
		return Entry{}, fmt.Errorf("cursor at %d, first retained %d: %w", c.pos, m.first, ErrCursorOverrun)
	case c.pos >= m.next():
		return Entry{}, ErrCaughtUp
	}
	e := m.entries[c.pos-m.first]
	e.Body = append([]byte(nil), e.Body...)
	c.pos++
	return e, nil
}

func (c *memCursor) Position() Position {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	return c.pos
}

func (c *memCursor) Close() error {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	c.closed = true
	delete(c.m.cursors, c)
	return nil
}
