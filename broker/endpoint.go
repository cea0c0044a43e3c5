package broker

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// endpoint is what every receiver of messages has, a network session and
// an in-process client alike: an id, a bounded outbound queue with its
// byte budget and message age limit, counters, and the close state. It has
// one close path, close(cause), and the cause decides how it ends.
type endpoint struct {
	// Read by every publisher that delivers to this endpoint.
	b   *Broker
	id  uint64
	log *slog.Logger
	q   *outbound
	// maxAge is the message age limit; <= 0 disables it.
	maxAge time.Duration

	mu    sync.Mutex
	cause error
	// mode is the closeMode, written under mu; it is read without mu by
	// the consumer, which checks it before each message.
	mode atomic.Uint32
	// ending is told each time the close mode grows harsher, once per
	// mode, outside mu: a session closes or resets its connection, a
	// client drops its subscriptions.
	ending func(closeMode)

	// name is the client name: a session's is set at logon, before it
	// can publish; an in-process client's at Connect. It is what a
	// filter's CLIENT_NAME() returns for the messages this endpoint
	// publishes.
	name string
	// user is the authenticated user id of a session, set at logon like
	// name; journal entries record it. Empty for an in-process client.
	user string
	// endedReplays counts the endpoint's bookmark subscriptions that
	// reached their end (a range's, top_n) and are still listed.
	endedReplays atomic.Int32
	// lastOrdinal is the place in the cluster's order of this endpoint's
	// last ordered command applied here; its plain publishes carry it
	// (RemotePublish.After).
	lastOrdinal atomic.Uint64

	// The inbound traffic counters are written by the endpoint's own
	// reader for every message; the padding keeps them off the cache line
	// of the fields above, which publishers on other cores read. (The
	// outbound counters live in the queue, under the lock the writer takes
	// anyway.) The broker adds them to its totals when the endpoint ends.
	_                   [64]byte
	messagesIn, bytesIn atomic.Int64
}

// closeMode is how an endpoint ends. A harsher mode overrides a gentler
// one; the first cause stays the one reported.
type closeMode uint8

const (
	modeOpen    closeMode = iota
	modeFlush             // send what is queued, then close
	modeFlushed           // what was queued is sent: close, gracefully
	modeNow               // drop what is queued, close
	modeReset             // drop what is queued, reset the connection
)

// errClosedNow is the cause Close (and a Shutdown whose context ran out)
// gives: still ErrBrokerClosed to errors.Is, but nothing is flushed.
var errClosedNow = &closedNow{}

type closedNow struct{}

func (*closedNow) Error() string        { return ErrBrokerClosed.Error() }
func (*closedNow) Is(target error) bool { return target == ErrBrokerClosed }

// closeModeOf is the rule by which a cause decides how an endpoint ends:
//   - a client cut off for not taking data (slow consumer, write timeout)
//     is reset, since a graceful close would wait behind the very data it
//     is cut off for;
//   - a graceful Shutdown, and a refusal that the client was told about in
//     a failure ack (auth, logon, protocol), flush what is queued first,
//     so the ack arrives before the close;
//   - everything else (timeouts, entitlement reset, a lost connection,
//     Close, the owner's Close) drops what is queued and closes.
func closeModeOf(cause error) closeMode {
	switch {
	case cause == errFlushed:
		return modeFlushed
	case cause == errClosedNow:
		return modeNow
	case errors.Is(cause, ErrSlowConsumer), errors.Is(cause, ErrWriteTimeout):
		return modeReset
	case errors.Is(cause, ErrBrokerClosed), errors.Is(cause, ErrAuthFailure),
		errors.Is(cause, ErrLogonRefused), errors.Is(cause, ErrProtocol):
		return modeFlush
	}
	return modeNow
}

// newEndpoint returns an endpoint with the next id, whose log lines carry
// that id ("conn") and logAttrs.
func (b *Broker) newEndpoint(queueBytes int, maxAge time.Duration, logAttrs ...any) endpoint {
	id := b.nextID.Add(1)
	return endpoint{
		b:      b,
		id:     id,
		log:    b.log.With(append([]any{"conn", id}, logAttrs...)...),
		q:      newOutbound(queueBytes),
		maxAge: maxAge,
	}
}

// close ends the endpoint for cause; see closeModeOf. It reports whether
// cause is the one the endpoint ends with (the first). It is safe from any
// goroutine, any number of times, and never blocks its caller, which may
// be another client's publisher.
func (e *endpoint) close(cause error) (first bool) {
	mode := closeModeOf(cause)
	e.mu.Lock()
	if mode == modeFlushed && closeMode(e.mode.Load()) != modeFlush {
		// errFlushed only completes a flush. The writer also stops when a
		// queue that overflowed closed itself before its publisher's
		// close(ErrSlowConsumer) got here; that cause must be the one
		// reported, and it brings the reset.
		e.mu.Unlock()
		return false
	}
	if e.cause == nil {
		e.cause, first = cause, true
	}
	if mode <= closeMode(e.mode.Load()) {
		e.mu.Unlock()
		return first
	}
	e.mode.Store(uint32(mode))
	e.mu.Unlock()
	e.q.close(mode == modeFlush)
	if e.ending != nil {
		e.ending(mode)
	}
	return first
}

// closing reports whether close was called.
func (e *endpoint) closing() bool { return e.mode.Load() != uint32(modeOpen) }

// ended reports whether the endpoint ends without sending what is queued:
// its consumer then stops at once, even inside a batch.
func (e *endpoint) ended() bool { return e.mode.Load() >= uint32(modeNow) }

// closeState returns the first cause and the current mode.
func (e *endpoint) closeState() (error, closeMode) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cause, closeMode(e.mode.Load())
}

// slowConsumer closes the endpoint as a slow consumer (AMPS disconnect
// reason "slow client"): its queue is over budget or too old.
func (e *endpoint) slowConsumer(cause error, why string) {
	queued := e.q.queued()
	if e.close(cause) {
		e.b.stats.slowConsumers.Add(1)
		e.log.Warn("closing: slow client", "why", why, "queued_bytes", queued, "queued_limit", e.q.limit)
	}
}

// enqueue queues it without blocking. It returns false when the endpoint
// is gone or went over its budget with this item, which closes it.
func (e *endpoint) enqueue(it outItem) bool {
	it.at = e.b.clock.Load()
	switch e.q.push(it) {
	case pushOK:
		return true
	case pushDropped:
		e.b.stats.dropped.Add(1)
		return true
	case pushOverflow:
		e.slowConsumer(ErrSlowConsumer, "outbound queue over its byte budget")
	}
	return false
}

// enqueueReplayed queues a replayed delivery once the queue holds at most
// room bytes, never dropping it: when the queue of a client that drops
// what does not fit has no room for it, it waits until the queue is
// empty and tries again. It reports false when the queue or stop closed.
func (e *endpoint) enqueueReplayed(it outItem, room int, stop <-chan struct{}) bool {
	for {
		if !e.q.waitRoom(room, it.size, stop) {
			return false
		}
		it.at = 0 // exempt from the age limit: see firstStamped
		switch e.q.push(it) {
		case pushOK:
			return true
		case pushDropped:
			room = 0
		case pushOverflow:
			// Live messages for the endpoint's other subscriptions
			// filled the budget meanwhile.
			e.slowConsumer(ErrSlowConsumer, "outbound queue over its byte budget")
			return false
		default:
			return false
		}
	}
}

// tooOld reports whether the oldest queued message is past the age limit
// at now (unix nanoseconds); replayed messages are not counted (see
// firstStamped).
func (e *endpoint) tooOld(now int64) bool {
	at := e.q.oldest()
	return e.maxAge > 0 && at != 0 && now-at > int64(e.maxAge)
}

// serveBatch is one turn of the endpoint's consumer: it takes everything
// queued (reusing *spare, which the consumer owns), hands it to write,
// and returns the items' bytes to the budget along with what write
// delivered. stop reports that the queue is closed and drained (an
// overflow drops what was queued and closes it), and the consumer must
// end; err is write's error.
func (e *endpoint) serveBatch(spare *[]outItem, write func([]outItem) (msgs, bytes int64, err error)) (stop bool, err error) {
	items, closed := e.q.take(*spare)
	if len(items) == 0 {
		*spare = items
		return closed, nil
	}
	msgs, bytes, werr := write(items)
	n := 0
	for i := range items {
		n += items[i].size
	}
	e.q.release(n, msgs, bytes)
	*spare = clearItems(items)
	if werr != nil {
		return true, werr
	}
	return closed, nil
}
