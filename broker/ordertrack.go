package broker

import (
	"context"
	"sync"
)

// orderTrack counts a session's SOW publishes handed to the cluster's
// order (see SOWOrderer) that have not settled yet (confirmed stored, or
// failed), and holds what waits for them: a flush asking for "persisted"
// is acked only once every publish before it has settled, after their own
// persisted acks, and a graceful Shutdown lets them settle before it closes
// the connection.
type orderTrack struct {
	mu       sync.Mutex
	inFlight int
	waits    []func()
}

// start counts a publish handed to the order.
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

// whenSettled runs f once every publish started so far has settled: now,
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

// waitOrdersSettled waits until the ordered publishes of every session
// have settled, or ctx ends.
func waitOrdersSettled(ctx context.Context, sessions []*session) {
	for _, s := range sessions {
		ch := make(chan struct{})
		s.orders.whenSettled(func() { close(ch) })
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}
