package natscluster

import (
	"fmt"
	"sync"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/nats-io/nats.go/jetstream"
)

// cursor reads the stream through an ordered consumer from its position.
// readMu serialises Next (the consumer's iterator has one reader); mu
// guards the fields, never held while waiting, so Close and Truncate
// never wait for a read.
type cursor struct {
	j      *Journal
	readMu sync.Mutex

	mu     sync.Mutex
	pos    broker.Position
	it     jetstream.MessagesContext
	closed bool
}

func (c *cursor) position() broker.Position {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pos
}

// Position implements broker.Cursor.
func (c *cursor) Position() broker.Position { return c.position() }

func (c *cursor) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Next implements broker.Cursor. Below Durable an entry is stored, so the
// wait for it is short; it is bounded by OperationTimeout all the same.
func (c *cursor) Next() (broker.Entry, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.isClosed() || c.j.isClosed() {
		return broker.Entry{}, broker.ErrJournalClosed
	}
	pos := c.position()
	if pos >= c.j.Durable() {
		return broker.Entry{}, broker.ErrCaughtUp
	}
	c.mu.Lock()
	it := c.it
	c.mu.Unlock()
	if it == nil {
		var err error
		if it, err = c.open(pos); err != nil {
			return broker.Entry{}, err
		}
	}
	m, err := it.Next(jetstream.NextMaxWait(c.j.cfg.OperationTimeout))
	if err != nil {
		if c.isClosed() || c.j.isClosed() {
			return broker.Entry{}, broker.ErrJournalClosed
		}
		return broker.Entry{}, fmt.Errorf("natscluster: journal %s: read at %d: %w", c.j.cfg.Stream, pos, err)
	}
	md, err := m.Metadata()
	if err != nil {
		return broker.Entry{}, fmt.Errorf("natscluster: journal %s: read at %d: %w", c.j.cfg.Stream, pos, err)
	}
	seq := md.Sequence.Stream
	e, err := decodeEntry(m.Data())
	if err != nil {
		return broker.Entry{}, fmt.Errorf("natscluster: journal %s: entry %d: %w", c.j.cfg.Stream, seq, err)
	}
	e.Position = broker.Position(seq)
	c.mu.Lock()
	c.pos = e.Position + 1
	c.mu.Unlock()
	c.j.advance(seq, "", 0) // read, so stored: another node's entry too
	return e, nil
}

// open starts the cursor's ordered consumer at pos.
func (c *cursor) open(pos broker.Position) (jetstream.MessagesContext, error) {
	ctx, cancel := c.j.opContext()
	defer cancel()
	cons, err := c.j.orderedConsumer(ctx, pos, false)
	if err != nil {
		return nil, err
	}
	it, err := cons.Messages(c.j.pullOpts()...)
	if err != nil {
		return nil, fmt.Errorf("natscluster: journal %s: cursor at %d: %w", c.j.cfg.Stream, pos, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed { // closed while the consumer was made
		it.Stop()
		return nil, broker.ErrJournalClosed
	}
	c.it = it
	return it, nil
}

// stop ends the cursor's consumer; a Next in progress returns
// ErrJournalClosed.
func (c *cursor) stop() {
	c.mu.Lock()
	c.closed = true
	it := c.it
	c.mu.Unlock()
	if it != nil {
		it.Stop()
	}
}

// Close implements broker.Cursor.
func (c *cursor) Close() error {
	c.stop()
	c.j.mu.Lock()
	delete(c.j.cursors, c)
	c.j.mu.Unlock()
	return nil
}
