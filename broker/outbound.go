package broker

import (
	"sync"
	"sync/atomic"

	"github.com/ampsbroker/ampsbroker/protocol"
)

// itemOverhead is what one queued message costs beyond its wire bytes: its
// outItem in the queue and in the writer's batch, and its share of the
// delivery it points at. Counting it keeps a flood of tiny messages
// within the byte budget too.
const itemOverhead = 192

// retainItems is the largest batch slice the queue keeps for reuse once
// traffic falls off; a larger one is let go so a burst does not pin its
// peak for the life of the connection.
const retainItems = 1024

// outItem is one queued outbound message: a shared delivery for a target,
// a message of its own (acks, heartbeats), which the writer does not
// modify, or a query result, which the writer expands.
type outItem struct {
	d *delivery
	t *target
	m *protocol.Message
	// qr is a SOW query's result, which the writer sends as one unit.
	qr   *queryResult
	size int
	// at is when it was queued, in unix nanoseconds of the broker's
	// coarse clock.
	at int64
}

// outbound is a bounded queue of messages for one endpoint, drained by that
// endpoint's own goroutine. Producers never block: when the queued bytes
// would exceed the limit the queue drops what it holds and closes, and the
// endpoint is closed as a slow consumer (AMPS disconnect reason "slow
// client", semantics §5), so no publisher ever waits for another client's
// reader.
type outbound struct {
	mu    sync.Mutex
	items []outItem
	bytes int
	limit int
	// dropWhenFull drops items that do not fit instead of closing.
	dropWhenFull bool
	// inflightAt is the queue time of the oldest item taken but not yet
	// released; 0 when nothing is in flight.
	inflightAt int64
	closed     bool
	// sentMessages and sentBytes count what the consumer delivered.
	sentMessages, sentBytes int64
	// notify has room for one token: set when items were added or the
	// state changed.
	notify chan struct{}
	// room, when not nil, is closed (and cleared) by the next release or
	// close: what waitRoom waits on.
	room chan struct{}

	// start, when set, makes the consumer run on demand: wake calls it to
	// start a consumer when none is running, and the consumer stops with
	// park once it has nothing to do. consumer is that consumer's state.
	start    func()
	consumer atomic.Uint32
}

// The states of an on-demand consumer. Only wake moves it from idle to
// running; only the consumer moves it from running to idle or finished.
const (
	consumerIdle     = iota // no consumer runs; the next wake starts one
	consumerRunning         // a consumer runs and will see the next token
	consumerFinished        // the queue is closed and drained: never again
)

func newOutbound(limit int) *outbound {
	return &outbound{limit: limit, notify: make(chan struct{}, 1)}
}

// pushResult says what push did.
type pushResult int

const (
	pushOK       pushResult = iota // queued
	pushClosed                     // the queue was already closed
	pushOverflow                   // this push overflowed the budget; the queue is now closed
	pushDropped                    // the item did not fit and was dropped (dropWhenFull)
)

// push queues it without blocking.
func (q *outbound) push(it outItem) pushResult {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return pushClosed
	}
	if q.bytes+it.size > q.limit && q.bytes > 0 {
		// A single message larger than the whole budget is still accepted
		// into an empty queue: the frame-size limit bounds it.
		if q.dropWhenFull {
			q.mu.Unlock()
			return pushDropped
		}
		q.closed = true
		q.items = nil
		q.bytes = 0
		q.signalRoom()
		q.mu.Unlock()
		q.wake()
		return pushOverflow
	}
	// Only the first item of a batch needs to wake the consumer: while
	// items are queued, the wake-up sent for the first is still pending,
	// or the consumer holds it and has yet to take them.
	first := len(q.items) == 0
	q.items = append(q.items, it)
	q.bytes += it.size
	q.mu.Unlock()
	if first {
		q.wake()
	}
	return pushOK
}

// wake leaves a token for the consumer and, if the consumer runs on
// demand and none is running, starts one. The token goes first: a
// consumer that parks re-checks for it after marking itself idle, so
// either it sees the token or this wake sees it idle and starts another.
func (q *outbound) wake() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
	if q.start != nil && q.consumer.CompareAndSwap(consumerIdle, consumerRunning) {
		q.start()
	}
}

// park is how an on-demand consumer with nothing to do stops: it marks
// itself idle, then takes a token that arrived meanwhile, if any. It
// reports whether the consumer must go on: a token was there and no wake
// has started another consumer in the meantime.
func (q *outbound) park() (goOn bool) {
	q.consumer.Store(consumerIdle)
	select {
	case <-q.notify:
		// The token's wake may already have started a consumer, which
		// takes what is queued anyway; otherwise this one goes on.
		return q.consumer.CompareAndSwap(consumerIdle, consumerRunning)
	default:
		return false
	}
}

// finish marks an on-demand consumer done for good: the queue is closed
// and drained, so no later wake starts another.
func (q *outbound) finish() { q.consumer.Store(consumerFinished) }

// take moves all queued items into buf (reusing its storage) and returns
// them, with whether the queue is closed. The items' bytes stay counted
// until release.
func (q *outbound) take(buf []outItem) (items []outItem, closed bool) {
	q.mu.Lock()
	items = q.items
	if oversized(buf, len(items)) {
		buf = nil // traffic fell off: let the burst's slice go
	}
	q.items = buf[:0]
	closed = q.closed
	q.inflightAt = firstStamped(items)
	q.mu.Unlock()
	return items, closed
}

// release returns n bytes of a taken batch to the budget and counts the
// messages and bytes the consumer delivered of it.
func (q *outbound) release(n int, msgs, bytes int64) {
	q.mu.Lock()
	q.bytes = max(q.bytes-n, 0)
	q.inflightAt = 0
	q.sentMessages += msgs
	q.sentBytes += bytes
	q.signalRoom()
	q.mu.Unlock()
}

// signalRoom wakes the waitRoom callers; q.mu is held.
func (q *outbound) signalRoom() {
	if q.room != nil {
		close(q.room)
		q.room = nil
	}
}

// waitRoom blocks until the queue holds at most limit bytes and has room
// for size more within its budget (or is empty) (true), or the queue is
// closed or stop is closed (false). A producer that must not overflow the
// budget, such as a replay, waits here instead of pushing.
func (q *outbound) waitRoom(limit, size int, stop <-chan struct{}) bool {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return false
		}
		if q.bytes <= limit && (q.bytes == 0 || q.bytes+size <= q.limit) {
			q.mu.Unlock()
			return true
		}
		if q.room == nil {
			q.room = make(chan struct{})
		}
		ch := q.room
		q.mu.Unlock()
		select {
		case <-ch:
		case <-stop:
			return false
		}
	}
}

// sent returns the messages and bytes the consumer delivered.
func (q *outbound) sent() (msgs, bytes int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.sentMessages, q.sentBytes
}

// close stops the queue; items still queued are drained by the consumer
// (take keeps returning them) only when drain is true.
func (q *outbound) close(drain bool) {
	q.mu.Lock()
	q.closed = true
	if !drain {
		q.items = nil
		q.bytes = 0
	}
	q.signalRoom()
	q.mu.Unlock()
	q.wake()
}

// oldest returns the queue time of the oldest message queued or in
// flight, or 0 when there is none.
func (q *outbound) oldest() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.inflightAt != 0 {
		return q.inflightAt
	}
	return firstStamped(q.items)
}

// firstStamped is the queue time of the first of items that has one, 0
// when none has. Replayed messages have none: they are queued only as
// fast as the connection takes them, so their age says nothing about a
// slow consumer (replay spec §7.4), and they are not counted for the age
// limit. Only they are, so the scan stops within a replay's window.
func firstStamped(items []outItem) int64 {
	for i := range items {
		if items[i].at != 0 {
			return items[i].at
		}
	}
	return 0
}

// queued returns the number of queued bytes.
func (q *outbound) queued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}

// clearItems drops references held by a drained batch so the slice can be
// reused without pinning deliveries. A large slice that the batch used
// only a quarter of is let go.
func clearItems(items []outItem) []outItem {
	if oversized(items, len(items)) {
		return nil
	}
	clear(items)
	return items[:0]
}

// oversized reports whether a batch slice is too large to keep for a
// batch of n items: larger than retainItems and four times what is used.
func oversized(s []outItem, n int) bool {
	return cap(s) > retainItems && n < cap(s)/4
}
