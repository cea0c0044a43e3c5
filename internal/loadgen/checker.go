package loadgen

import (
	"fmt"
	"sync/atomic"
)

// maxReported is how many violations a checker keeps the text of; the
// rest are only counted.
const maxReported = 5

// checker verifies what one subscriber receives: from each publisher every
// sequence number it is owed exactly once, in increasing order. It is owed
// the sequence numbers s with s mod every = phase (every 1, phase 0: all of
// them; a filtered subscriber is owed a residue class). It is used by the
// subscriber's reading goroutine only, except next, which the publishers
// (flow control) and the runner (drain) read concurrently through done.
type checker struct {
	every, phase uint64
	// next[p] is one past the highest sequence number received from
	// publisher p.
	next []atomic.Uint64
	// delivered counts the messages received, violations included.
	delivered uint64
	// lost, dup and reordered count messages missing (gaps), received
	// again, and received after a later one.
	lost, dup, reordered uint64
	// bad counts bodies that could not be parsed, named an unknown
	// publisher or were not owed to this subscriber (a filter let them
	// through).
	bad uint64
	// errs holds the first maxReported violations, described.
	errs []string
	// skipped records, per publisher, the owed sequence numbers below next
	// that were skipped (lost so far): if one arrives late it is a
	// reordering, not a duplicate.
	skipped []map[uint64]struct{}
}

// newChecker returns a checker for messages from publishers publishers,
// owed the sequence numbers s with s mod every = phase.
func newChecker(publishers int, every, phase uint64) *checker {
	return &checker{every: max(every, 1), phase: phase % max(every, 1),
		next: make([]atomic.Uint64, publishers), skipped: make([]map[uint64]struct{}, publishers)}
}

// owedFrom returns the least owed sequence number at or above n.
func (c *checker) owedFrom(n uint64) uint64 {
	r := n % c.every
	if r <= c.phase {
		return n - r + c.phase
	}
	return n - r + c.every + c.phase
}

// owedBelow returns how many owed sequence numbers are below n.
func (c *checker) owedBelow(n uint64) uint64 {
	if n <= c.phase {
		return 0
	}
	return (n-c.phase-1)/c.every + 1
}

// done returns n such that the subscriber has received (or skipped) every
// message of publisher pub that it is owed below n: flow control and the
// drain wait on it.
func (c *checker) done(pub int) uint64 {
	return c.owedFrom(c.next[pub].Load())
}

func (c *checker) report(format string, args ...any) {
	if len(c.errs) < maxReported {
		c.errs = append(c.errs, fmt.Sprintf(format, args...))
	}
}

// receive records sequence number seq from publisher pub.
func (c *checker) receive(pub int, seq uint64) {
	c.delivered++
	if pub < 0 || pub >= len(c.next) {
		c.bad++
		c.report("message from unknown publisher %d (seq %d)", pub, seq)
		return
	}
	if seq%c.every != c.phase {
		c.bad++
		c.report("publisher %d: seq %d is not owed to this subscriber (its filter wants seq mod %d = %d)", pub, seq, c.every, c.phase)
		return
	}
	next := c.next[pub].Load()
	want := c.owedFrom(next)
	switch {
	case seq == want:
		c.next[pub].Store(seq + 1)
	case seq > want:
		// A gap: count it as lost now; a late arrival turns one back
		// into a reordering.
		missing := c.owedBelow(seq) - c.owedBelow(want)
		c.lost += missing
		c.report("publisher %d: expected seq %d, got %d (%d missing)", pub, want, seq, missing)
		if c.skipped[pub] == nil {
			c.skipped[pub] = make(map[uint64]struct{})
		}
		if missing <= 1<<16 { // remember small gaps only, to bound memory
			for s := want; s < seq; s += c.every {
				c.skipped[pub][s] = struct{}{}
			}
		}
		c.next[pub].Store(seq + 1)
	default:
		if _, ok := c.skipped[pub][seq]; ok {
			delete(c.skipped[pub], seq)
			c.lost--
			c.reordered++
			c.report("publisher %d: seq %d arrived after %d (out of order)", pub, seq, next-1)
		} else {
			c.dup++
			c.report("publisher %d: seq %d received again (next expected %d)", pub, seq, want)
		}
	}
}

// badBody records a message whose body could not be read.
func (c *checker) badBody(err error) {
	c.delivered++
	c.bad++
	c.report("%v", err)
}

// finish records that publisher p sent sent[p] messages in all, so that
// owed messages missing at the end count as lost.
func (c *checker) finish(sent []uint64) {
	for p, n := range sent {
		next := c.next[p].Load()
		if missing := c.owedBelow(n) - c.owedBelow(min(next, n)); missing > 0 {
			c.lost += missing
			c.report("publisher %d: last %d owed messages of %d sent never arrived", p, missing, n)
		}
	}
}

// violations is the number of messages lost, duplicated, reordered or
// malformed.
func (c *checker) violations() uint64 { return c.lost + c.dup + c.reordered + c.bad }
