package broker

import (
	"cmp"
	"container/heap"
	"slices"
)

// TopicTraffic is one topic's count of routed messages, for an admin
// interface's "top topics".
type TopicTraffic struct {
	Topic       string
	MessageType string
	// Messages counts the messages routed on the topic (publishes,
	// client status events) since the broker last cached its routes: the
	// count starts over when the topic is evicted from the routing cache
	// (Options.TopicCacheSize) or the cache is reset (an entitlement
	// reset), so a reader computing rates must take a smaller count for a
	// new start. For a SOW topic it counts the records stored and removed
	// (publishes, deletes, expiries) since the broker started.
	Messages int64
}

// BusiestTopics returns up to n of the topics with the most messages
// routed, most first (ties by message type, then topic). Only topics in
// the routing cache are seen. It costs one pass over the cached topics,
// each router read-locked in turn, so it is for periodic sampling, not
// for every publish.
func (b *Broker) BusiestTopics(n int) []TopicTraffic {
	if n <= 0 {
		return nil
	}
	top := &trafficHeap{}
	b.routersMu.RLock()
	for mt, r := range b.routers {
		r.mu.RLock()
		for _, e := range r.ring {
			t := TopicTraffic{Topic: e.topic, MessageType: mt, Messages: e.routed.Load()}
			if e.store != nil {
				t.Messages = e.store.changes.Load()
			}
			if top.Len() < n {
				heap.Push(top, t)
			} else if busier(t, (*top)[0]) {
				(*top)[0] = t
				heap.Fix(top, 0)
			}
		}
		r.mu.RUnlock()
	}
	b.routersMu.RUnlock()
	out := []TopicTraffic(*top)
	slices.SortFunc(out, func(a, b TopicTraffic) int {
		if busier(a, b) {
			return -1
		}
		if busier(b, a) {
			return 1
		}
		return 0
	})
	return out
}

// busier orders topics: more messages first, then by message type and
// topic name.
func busier(a, b TopicTraffic) bool {
	return cmp.Or(cmp.Compare(b.Messages, a.Messages), cmp.Compare(a.MessageType, b.MessageType), cmp.Compare(a.Topic, b.Topic)) < 0
}

// trafficHeap is a min-heap by busier: its root is the least busy of the
// topics kept.
type trafficHeap []TopicTraffic

func (h trafficHeap) Len() int           { return len(h) }
func (h trafficHeap) Less(i, j int) bool { return busier(h[j], h[i]) }
func (h trafficHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *trafficHeap) Push(x any)        { *h = append(*h, x.(TopicTraffic)) }
func (h *trafficHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
