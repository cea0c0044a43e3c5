package admin

import (
	"sync"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
)

// Sample is one reading of the broker-wide counters.
type Sample struct {
	Time          time.Time
	Connections   int64
	Subscriptions int64
	MessagesIn    int64
	MessagesOut   int64
	BytesIn       int64
	BytesOut      int64
}

// topicSampleLimit is how many of the busiest topics (by messages
// routed) each sample reads from the broker.
const topicSampleLimit = 100

// topicTraffic is one topic's messages routed at the last sample and its
// rate over the last interval.
type topicTraffic struct {
	messages int64
	perSec   float64
}

// connTraffic is one connection's counters at a sample.
type connTraffic struct {
	messagesIn, messagesOut, bytesIn, bytesOut int64
}

// rates are per-second rates over the last finished interval.
type rates struct {
	messagesIn, messagesOut, bytesIn, bytesOut float64
}

// history is a ring of the last samples, and the per-connection rates of
// the last finished interval (AMPS "_per_sec" fields are interval
// averages, spec §2).
type history struct {
	mu    sync.Mutex
	ring  []Sample // capacity = size; next is the slot written next
	next  int
	full  bool
	conns map[uint64]connTraffic // each connection's counters at the last sample
	crate map[uint64]rates       // each connection's rates over the last interval
	// topics holds the busiest topics of the last sample by
	// "<topic>!<type>". A topic's rate needs it in two samples in a row:
	// one that just became busy has rate 0 for an interval.
	topics map[string]topicTraffic
}

func newHistory(size int) *history {
	return &history{ring: make([]Sample, size), conns: map[uint64]connTraffic{}, crate: map[uint64]rates{}, topics: map[string]topicTraffic{}}
}

// sample reads b's counters at now into the ring and computes the
// connections' and the busiest topics' rates against the previous sample.
func (h *history) sample(b *broker.Broker, now time.Time) {
	st := b.Stats()
	busy := b.BusiestTopics(topicSampleLimit)
	s := Sample{
		Time: now, Connections: st.Connections, Subscriptions: st.Subscriptions,
		MessagesIn: st.MessagesIn, MessagesOut: st.MessagesOut, BytesIn: st.BytesIn, BytesOut: st.BytesOut,
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	prevTime := time.Time{}
	if last, ok := h.lastLocked(); ok {
		prevTime = last.Time
	}
	conns := make(map[uint64]connTraffic, len(st.Conns))
	crate := make(map[uint64]rates, len(st.Conns))
	secs := now.Sub(prevTime).Seconds()
	for _, c := range st.Conns {
		cur := connTraffic{c.MessagesIn, c.MessagesOut, c.BytesIn, c.BytesOut}
		conns[c.ID] = cur
		// A connection that was not in the last sample began within the
		// interval: its rate counts from zero over the whole interval.
		prev := h.conns[c.ID]
		if !prevTime.IsZero() && secs > 0 {
			crate[c.ID] = rates{
				float64(cur.messagesIn-prev.messagesIn) / secs, float64(cur.messagesOut-prev.messagesOut) / secs,
				float64(cur.bytesIn-prev.bytesIn) / secs, float64(cur.bytesOut-prev.bytesOut) / secs,
			}
		}
	}
	topics := make(map[string]topicTraffic, len(busy))
	for _, t := range busy {
		id := t.Topic + "!" + t.MessageType
		cur := topicTraffic{messages: t.Messages}
		// A smaller count is a new start (the broker's routing cache
		// dropped the topic): no rate for this interval.
		if prev, ok := h.topics[id]; ok && !prevTime.IsZero() && secs > 0 && cur.messages >= prev.messages {
			cur.perSec = float64(cur.messages-prev.messages) / secs
		}
		topics[id] = cur
	}
	h.conns, h.crate, h.topics = conns, crate, topics
	h.ring[h.next] = s
	h.next = (h.next + 1) % len(h.ring)
	h.full = h.full || h.next == 0
}

// lastLocked returns the newest sample.
func (h *history) lastLocked() (Sample, bool) {
	if !h.full && h.next == 0 {
		return Sample{}, false
	}
	return h.ring[(h.next-1+len(h.ring))%len(h.ring)], true
}

// samples returns the samples, oldest first.
func (h *history) samples() []Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.full {
		return append([]Sample(nil), h.ring[:h.next]...)
	}
	return append(append([]Sample(nil), h.ring[h.next:]...), h.ring[:h.next]...)
}

// lastRates returns the broker-wide rates over the last finished interval
// and the time of the newest sample (zero rates before two samples).
func (h *history) lastRates() (rates, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.ring)
	cur, ok := h.lastLocked()
	if !ok {
		return rates{}, time.Time{}
	}
	if !h.full && h.next < 2 {
		return rates{}, cur.Time
	}
	prev := h.ring[(h.next-2+n)%n]
	secs := cur.Time.Sub(prev.Time).Seconds()
	if secs <= 0 {
		return rates{}, cur.Time
	}
	return rates{
		float64(cur.MessagesIn-prev.MessagesIn) / secs, float64(cur.MessagesOut-prev.MessagesOut) / secs,
		float64(cur.BytesIn-prev.BytesIn) / secs, float64(cur.BytesOut-prev.BytesOut) / secs,
	}, cur.Time
}

// topicTraffic returns the busiest topics of the last sample. The map is
// never written after a sample made it, so it is shared, not copied.
func (h *history) topicTraffic() map[string]topicTraffic {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.topics
}

// connRates returns a connection's rates over the last finished interval.
func (h *history) connRates(id uint64) rates {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.crate[id]
}
