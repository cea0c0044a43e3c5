package main

import (
	"fmt"
	"sync/atomic"
)

// maxReported is how many violations a checker keeps the text of; the
// rest are only counted.
const maxReported = 5

// checker verifies what one subscriber receives: from each publisher every
// sequence number exactly once, in increasing order. It is used by the
// subscriber's reading goroutine only, except next, which the publishers
// (flow control) and the runner (drain) read concurrently.
type checker struct {
	// next[p] is one past the highest sequence number received from
	// publisher p: what the subscriber expects next.
	next []atomic.Uint64
	// delivered counts the messages received, violations included.
	delivered uint64
	// lost, dup and reordered count messages missing (gaps), received
	// again, and received after a later one.
	lost, dup, reordered uint64
	// bad counts bodies that could not be parsed or named an unknown
	// publisher.
	bad uint64
	// errs holds the first maxReported violations, described.
	errs []string
	// skipped records, per publisher, the sequence numbers below next that
	// were skipped (lost so far): if one arrives late it is a reordering,
	// not a duplicate.
	skipped []map[uint64]struct{}
}

func newChecker(publishers int) *checker {
	return &checker{next: make([]atomic.Uint64, publishers), skipped: make([]map[uint64]struct{}, publishers)}
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
	next := c.next[pub].Load()
	switch {
	case seq == next:
		c.next[pub].Store(seq + 1)
	case seq > next:
		// A gap: count it as lost now; a late arrival turns one back
		// into a reordering.
		c.lost += seq - next
		c.report("publisher %d: expected seq %d, got %d (%d missing)", pub, next, seq, seq-next)
		if c.skipped[pub] == nil {
			c.skipped[pub] = make(map[uint64]struct{})
		}
		if seq-next <= 1<<16 { // remember small gaps only, to bound memory
			for s := next; s < seq; s++ {
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
			c.report("publisher %d: seq %d received again (next expected %d)", pub, seq, next)
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
// missing messages at the end count as lost.
func (c *checker) finish(sent []uint64) {
	for p, n := range sent {
		if next := c.next[p].Load(); next < n {
			c.lost += n - next
			c.report("publisher %d: last %d of %d messages never arrived", p, n-next, n)
		}
	}
}

// violations is the number of messages lost, duplicated, reordered or
// malformed.
func (c *checker) violations() uint64 { return c.lost + c.dup + c.reordered + c.bad }
