package broker

import (
	"math/bits"
	"sync"

	"github.com/ampsbroker/ampsbroker/protocol"
)

// Deliveries of plain publishes (no SOW record keeps them) are recycled:
// a publish takes a delivery whose buffer fits its header and body from a
// pool, and the delivery goes back once every writer it was queued for has
// written it. Before, each publish allocated its header and a copy of its
// body afresh; a CPU profile of ampsd under a 1 KiB one-to-one load spent
// a quarter of its time there, mostly touching memory the allocator had
// just handed out (cold in the cache) and in the collector, which a
// recycled, recently written buffer avoids.
//
// The rule that keeps this safe: a delivery goes back to its pool only
// when its reference count falls to zero, and only writers that are done
// with it, and the publisher that made it, drop references. Every other
// holder (an in-process client's handler, a queue dropped on overflow)
// simply never drops its reference, so the delivery is left to the
// garbage collector and never reused while something can still read it.

const (
	// poolHeaderRoom is how much of a pooled buffer is set aside for the
	// encoded header in front of the body: ,"c":"p" ,"t":"" ,"x":"" and
	// ,"l": with 20 digits take 47 bytes besides topic and correlation id,
	// so topics and ids up to about 460 bytes together fit.
	poolHeaderRoom = 512
	// poolMinShift and poolMaxShift bound the pooled body sizes: a class
	// holds buffers of poolHeaderRoom + 1<<shift bytes, from 256 B to
	// 64 KiB of body. A larger message is allocated and collected as
	// before: it is rare, and pooling it would pin much memory.
	poolMinShift = 8
	poolMaxShift = 16
)

// deliveryPools holds recycled deliveries by size class.
var deliveryPools [poolMaxShift - poolMinShift + 1]sync.Pool

// poolClass returns the class of a message of n header and body bytes:
// 1 + the index into deliveryPools, or 0 when it is too large to pool.
func poolClass(n int) uint8 {
	body := max(n-poolHeaderRoom, 1)
	shift := max(bits.Len(uint(body-1)), poolMinShift)
	if shift > poolMaxShift {
		return 0
	}
	return uint8(shift-poolMinShift) + 1
}

// newPooledDelivery is newDelivery with a recycled buffer when one of
// the right size is free. The caller holds the one reference it starts
// with and drops it with release when done routing.
func newPooledDelivery(topic, correlationID string, body []byte) *delivery {
	need := len(topic) + len(correlationID) + len(body) + deliveryHeaderRoom
	d := pooledDelivery(need)
	d.mem = d.fill(d.mem[:0], topic, correlationID, "", body)
	return d
}

// newPooledMessage is a pooled delivery whose header is h with "l" set
// (a replayed journal entry: "bm", "k" and "ts" are its own). The caller
// holds its one reference.
func newPooledMessage(h *protocol.Header, body []byte) *delivery {
	need := len(h.Topic) + len(h.CorrelationID) + len(h.SOWKey) + len(h.Bookmark) + len(h.Timestamp) +
		len(body) + deliveryHeaderRoom + extraHeaderRoom
	d := pooledDelivery(need)
	h.Set(protocol.FieldLength, uint64(len(body)))
	d.mem = d.fillHeader(d.mem[:0], h, body)
	return d
}

// extraHeaderRoom is what a header's "bm" and "ts" keys take besides
// their values: ,"bm":"" and ,"ts":"".
const extraHeaderRoom = 16

// pooledDelivery returns an empty delivery with one reference and a buffer
// of at least need bytes: recycled from its size class, or allocated
// (and left to the collector) when need is too large to pool.
func pooledDelivery(need int) *delivery {
	class := poolClass(need)
	if class == 0 {
		d := &delivery{mem: make([]byte, 0, need)}
		d.refs.Store(1)
		return d
	}
	d, _ := deliveryPools[class-1].Get().(*delivery)
	if d == nil {
		d = &delivery{pool: class, mem: make([]byte, 0, poolHeaderRoom+1<<(int(class)-1+poolMinShift))}
	}
	d.refs.Store(1)
	return d
}

// hold adds a reference to a pooled delivery, for a writer it is queued
// for.
func (d *delivery) hold() {
	if d.pool != 0 {
		d.refs.Add(1)
	}
}

// release drops a reference; the last one returns a pooled delivery to its
// pool. It must be called once per reference and never after, by a holder
// that no longer reads the delivery.
func (d *delivery) release() {
	if d.pool == 0 || d.refs.Add(-1) != 0 {
		return
	}
	mem, class := d.mem, d.pool
	*d = delivery{pool: class, mem: mem[:0]}
	deliveryPools[class-1].Put(d)
}
