package natscluster

import (
	"context"
	"fmt"
	"sync"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/nats-io/nats.go/jetstream"
)

// cursor reads the stream from its position through consumers made as the
// follower's are (follow.go): when one reports trouble, Next makes another
// at once from the cursor's position, within the same wait. readMu
// serialises Next, which alone uses the resumer and the consumer it made;
// mu guards the fields, never held while waiting, so Close and Truncate
// never wait for a read. ctx ends when the cursor or its journal closes.
type cursor struct {
	j      *Journal
	ctx    context.Context
	cancel context.CancelFunc
	readMu sync.Mutex
	resume *resumer // made at the first read

	mu     sync.Mutex
	pos    broker.Position
	cons   *streamConsumer
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
// wait for it is short; it is bounded by OperationTimeout all the same,
// consumers made again after a lost NATS node included.
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
	ctx, cancel := context.WithTimeout(c.ctx, c.j.cfg.OperationTimeout)
	defer cancel()
	m, seq, err := c.read(ctx, pos)
	if err != nil {
		if c.isClosed() || c.j.isClosed() {
			return broker.Entry{}, broker.ErrJournalClosed
		}
		return broker.Entry{}, fmt.Errorf("natscluster: journal %s: read at %d: %w", c.j.cfg.Stream, pos, err)
	}
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

// read returns the first message at or after pos and its sequence,
// replacing the consumer while it reports trouble, until ctx ends.
func (c *cursor) read(ctx context.Context, pos broker.Position) (jetstream.Msg, uint64, error) {
	if c.resume == nil {
		c.resume = &resumer{spec: c.j.followSpec("journal cursor", false), name: c.j.consumerName("amps_cursor"),
			from: func() uint64 { return uint64(c.position()) }}
	}
	for {
		c.mu.Lock()
		cons := c.cons
		c.mu.Unlock()
		if cons == nil {
			var err error
			if cons, err = c.resume.open(ctx); err != nil {
				return nil, 0, err
			}
			c.mu.Lock()
			closed := c.closed
			if !closed {
				c.cons = cons
			}
			c.mu.Unlock()
			if closed { // closed while the consumer was made
				cons.end()
				c.j.followSpec("journal cursor", false).delete(cons.name)
				return nil, 0, broker.ErrJournalClosed
			}
		}
		m, md, err := cons.next(ctx)
		if err == nil {
			if seq := md.Sequence.Stream; seq >= uint64(pos) {
				return m, seq, nil
			}
			continue
		}
		if ctx.Err() != nil {
			return nil, 0, err
		}
		if !c.drop(cons) {
			return nil, 0, broker.ErrJournalClosed
		}
		cons.end()
		c.resume.lost(cons, err)
	}
}

// drop forgets cons as the cursor's consumer; false when the cursor closed
// (and so ended cons) meanwhile.
func (c *cursor) drop(cons *streamConsumer) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cons != cons {
		return false
	}
	c.cons = nil
	return true
}

// stop ends the cursor's consumer (deleting it); a Next in progress
// returns ErrJournalClosed.
func (c *cursor) stop() {
	c.mu.Lock()
	c.closed = true
	cons := c.cons
	c.cons = nil
	c.mu.Unlock()
	c.cancel()
	if cons != nil {
		cons.end()
		c.j.followSpec("journal cursor", false).delete(cons.name)
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
