package broker

import (
	"container/heap"
	"sync"
)

// Record expiration. Records with a lifetime are kept in a min-heap by
// expiry instant; records without one are not in it at all, so the cost
// of expiration does not grow with the records that never expire. An
// update does not search the heap: it pushes the new record, and the
// entry of the record it replaced is skipped when its time comes (the
// store no longer holds that record). The janitor expires what is due.

// expiring is one record with a lifetime.
type expiring struct {
	at  int64 // unix nanoseconds
	st  *sowStore
	rec *record
}

type expiryHeap []expiring

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiring)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = expiring{}
	*h = old[:len(old)-1]
	return e
}

// expiries is the broker's heap of expiring records.
type expiries struct {
	mu sync.Mutex
	h  expiryHeap
}

// add schedules rec of st to expire at at.
func (x *expiries) add(at int64, st *sowStore, rec *record) {
	x.mu.Lock()
	heap.Push(&x.h, expiring{at: at, st: st, rec: rec})
	x.mu.Unlock()
}

// due removes and returns the entries due at now.
func (x *expiries) due(now int64) []expiring {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []expiring
	for len(x.h) > 0 && x.h[0].at <= now {
		out = append(out, heap.Pop(&x.h).(expiring))
	}
	return out
}

// expireRecords deletes the records whose lifetime ended by now, as a
// sow_delete would, with "expired" out-of-focus notices.
func (b *Broker) expireRecords(now int64) {
	for _, e := range b.expiry.due(now) {
		st := e.st
		st.mu.Lock()
		if st.recs[e.rec.key] == e.rec { // not replaced or deleted since
			st.remove(e.rec.key)
			rs := b.router(st.def.MessageType).routes(st.topic)
			b.oofNotices(rs, st.topic, e.rec, nil, OOFExpired)
		}
		st.mu.Unlock()
	}
}
