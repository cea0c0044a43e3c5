package broker

import (
	"context"
	"sync"
)

// A session's commands take effect on its node in the order it sent them,
// on a node of a cluster as on a single broker. A SOW publish, delta
// publish or sow_delete handed to the cluster's order (see SOWOrderer)
// takes effect here only when the order hands it back to this node, so:
//
//   - A command that is not itself handed to the order waits, before it
//     runs, until every ordered command the session sent before it was
//     applied here or failed (the session reads nothing meanwhile, as
//     when a client's publishes outrun the broker). A sow or
//     sow_and_subscribe after a publish sees it, a plain publish after a
//     SOW publish reaches subscribers after it, and a flush is acked
//     after it. Consecutive ordered commands do not wait for each other:
//     the order keeps one publisher's sequence.
//   - Waiting is never wrong, only slower: a command the session cannot
//     cheaply tell will enter the order (a sow_delete over a regex topic,
//     one that is refused) waits too.
//   - The wait ends when the session ends, and at a Shutdown, which fails
//     what was not applied by then (see stopCluster).
//
// applied holds that barrier; confirmed counts the ordered publishes
// whose persisted ack (the order's confirmation) has not been sent yet,
// for a flush asking for persisted and for a graceful Shutdown.

// orderTrack counts commands in flight and runs what waits for none to be.
type orderTrack struct {
	mu       sync.Mutex
	inFlight int
	waits    []func()
}

// start counts a command handed over.
func (o *orderTrack) start() {
	o.mu.Lock()
	o.inFlight++
	o.mu.Unlock()
}

// settle counts one settled, and runs what waited once none is left.
func (o *orderTrack) settle() {
	o.mu.Lock()
	o.inFlight--
	var ws []func()
	if o.inFlight == 0 {
		ws, o.waits = o.waits, nil
	}
	o.mu.Unlock()
	for _, w := range ws {
		w()
	}
}

// busy reports whether a command is in flight.
func (o *orderTrack) busy() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.inFlight > 0
}

// whenSettled runs f once every command started so far has settled: now,
// when none is in flight.
func (o *orderTrack) whenSettled(f func()) {
	o.mu.Lock()
	if o.inFlight == 0 {
		o.mu.Unlock()
		f()
		return
	}
	o.waits = append(o.waits, f)
	o.mu.Unlock()
}

// wait returns once every command started so far has settled, or stop is
// closed, or ctx ends.
func (o *orderTrack) wait(ctx context.Context, stop <-chan struct{}) {
	if !o.busy() {
		return
	}
	ch := make(chan struct{})
	o.whenSettled(func() { close(ch) })
	select {
	case <-ch:
	case <-stop:
	case <-ctx.Done():
	}
}

// awaitApplied is the barrier above: it returns once the session's ordered
// commands were applied here or failed, or the connection closed. While it
// waits the session reads nothing, so its heartbeat check must not take the
// quiet for a silent client (awaiting).
func (s *session) awaitApplied() {
	s.awaiting.Store(true)
	defer s.awaiting.Store(false)
	s.applied.wait(s.ctx, s.connClosed)
}

// awaitSettled waits, before a command that is refused at once is
// answered, until the session's ordered commands were applied and
// confirmed, so that the refusal's acks come after theirs, in command
// order.
func (s *session) awaitSettled() {
	s.awaitApplied()
	s.awaiting.Store(true)
	defer s.awaiting.Store(false)
	s.confirmed.wait(s.ctx, s.connClosed)
}

// waitOrdersSettled waits until the ordered commands of every session were
// applied here and confirmed, or ctx ends.
func waitOrdersSettled(ctx context.Context, sessions []*session) {
	for _, s := range sessions {
		s.applied.wait(ctx, nil)
		s.confirmed.wait(ctx, nil)
	}
}
