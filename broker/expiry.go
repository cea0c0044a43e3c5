package broker

import (
	"container/heap"
	"sync"
)

// Record expiration. The records with a lifetime are in a min-heap by
// expiry instant, one entry per record key: an update moves its key's
// entry (heap.Fix), a delete removes it, so the heap holds exactly the
// keys that can expire, and the cost of expiration does not grow with
// the records that never expire nor with how often the others are
// updated. The janitor expires what is due.

// expKey names a record: its store and key.
type expKey struct {
	st  *sowStore
	key string
}

// expiring is the heap entry of one key.
type expiring struct {
	expKey
	at  int64 // unix nanoseconds
	idx int   // position in the heap
}

type expiryHeap []*expiring

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*expiring)
	e.idx = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

// expiries is the broker's heap of expiring records.
type expiries struct {
	mu    sync.Mutex
	h     expiryHeap
	byKey map[expKey]*expiring
}

// set schedules the record of key in st to expire at at, replacing what
// was scheduled for the key. The caller holds st.mu.
func (x *expiries) set(st *sowStore, key string, at int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	k := expKey{st, key}
	if e := x.byKey[k]; e != nil {
		e.at = at
		heap.Fix(&x.h, e.idx)
		return
	}
	if x.byKey == nil {
		x.byKey = make(map[expKey]*expiring)
	}
	e := &expiring{expKey: k, at: at}
	x.byKey[k] = e
	heap.Push(&x.h, e)
}

// unset cancels the expiry of key in st, if any. The caller holds st.mu.
func (x *expiries) unset(st *sowStore, key string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	k := expKey{st, key}
	if e := x.byKey[k]; e != nil {
		heap.Remove(&x.h, e.idx)
		delete(x.byKey, k)
	}
}

// due removes and returns the keys due at now.
func (x *expiries) due(now int64) []expKey {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []expKey
	for len(x.h) > 0 && x.h[0].at <= now {
		e := heap.Pop(&x.h).(*expiring)
		delete(x.byKey, e.expKey)
		out = append(out, e.expKey)
	}
	return out
}

// len is the number of keys that can expire.
func (x *expiries) len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.h)
}

// expireRecords deletes the records whose lifetime ended by now, as a
// sow_delete would, with "expired" out-of-focus notices. A record updated
// after its key was found due has a later expiry of its own and stays.
// On a node whose SOW topics are ordered across a cluster the records are
// not removed here: the order expires them (requestExpiries).
func (b *Broker) expireRecords(now int64) {
	if c := b.cluster; c != nil && c.orderer != nil {
		b.requestExpiries(now)
		return
	}
	for _, k := range b.expiry.due(now) {
		st := k.st
		st.mu.Lock()
		if rec := st.recs[k.key]; rec != nil && rec.exp != 0 && rec.exp <= now {
			st.remove(k.key)
			rs := b.router(st.def.MessageType).routes(st.topic)
			b.oofNotices(rs, st.topic, rec, nil, OOFExpired)
		}
		st.mu.Unlock()
	}
}
