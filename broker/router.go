package broker

import (
	"regexp"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ampsbroker/ampsbroker/protocol"
)

// regexMeta are the characters that make a subscription topic a regular
// expression (wire spec §11).
const regexMeta = `^$.*+?()[]{}|\`

// isRegexTopic reports whether a subscription topic is a regular expression.
func isRegexTopic(topic string) bool { return strings.ContainsAny(topic, regexMeta) }

// subscription is one subscription of one endpoint.
type subscription struct {
	id    string
	topic string
	re    *regexp.Regexp // nil: exact topic
	owner *endpoint

	// handler is set for in-process subscriptions.
	handler func(Message)
	// readable, when set, tells whether the owner may read a concrete
	// topic. A regex subscription's read permission is asked per concrete
	// topic when that topic is first matched; a forbidden topic's messages
	// are withheld without any error to the subscriber.
	readable func(topic string) bool

	// removed is set when the subscription is unsubscribed or replaced,
	// before the ack is queued. A publisher that found the subscription
	// just before may still queue a delivery for it; the endpoint's writer
	// drops it, so nothing for a subscription follows its unsubscribe ack
	// (wire spec §7.7).
	removed atomic.Bool
}

// matchesTopic reports whether a regex subscription takes topic.
func (s *subscription) matchesTopic(topic string) bool {
	return s.re.MatchString(topic) && (s.readable == nil || s.readable(topic))
}

func (s *subscription) matches(topic string) bool {
	if s.re != nil {
		return s.re.MatchString(topic)
	}
	return s.topic == topic
}

// target is everything one endpoint receives for one topic: one delivery
// lists every matching subscription of that endpoint (wire spec §8.2: "sids"
// names all of this connection's subscriptions that matched). Targets are
// immutable once published in a topicEntry, so queued items may point at them.
type target struct {
	ep   *endpoint
	subs []*subscription
	// sids is the comma-separated subscription ids, encoded once so a
	// writer copies them into the delivery header.
	sids protocol.SubIDs
}

// topicEntry caches the targets of one concrete topic. Its targets slice is
// replaced, never modified, so publishers can use it after unlocking.
type topicEntry struct {
	subs    []*subscription
	targets []target
}

func (e *topicEntry) rebuild() {
	e.targets = groupTargets(e.subs)
}

// groupTargets groups subscriptions by endpoint, keeping first-seen order.
func groupTargets(subs []*subscription) []target {
	if len(subs) == 0 {
		return nil
	}
	var ts []target
	for _, s := range subs {
		i := 0
		for i < len(ts) && ts[i].ep != s.owner {
			i++
		}
		if i == len(ts) {
			ts = append(ts, target{ep: s.owner})
		}
		ts[i].subs = append(ts[i].subs, s)
	}
	for i := range ts {
		var ids strings.Builder
		for j, s := range ts[i].subs {
			if j > 0 {
				ids.WriteByte(',')
			}
			ids.WriteString(s.id)
		}
		ts[i].sids = protocol.NewSubIDs(ids.String())
	}
	return ts
}

// router matches published topics to subscriptions for one message type.
//
// Exact subscriptions are found with one map lookup. Regex subscriptions
// are matched once per distinct topic: the result is cached in a topicEntry
// and kept current as subscriptions come and go, so a publish costs a map
// lookup plus its matching targets, never a scan of all subscriptions.
type router struct {
	mu        sync.RWMutex
	exact     map[string][]*subscription
	regex     []*subscription
	cache     map[string]*topicEntry
	cacheSize int
}

func newRouter(cacheSize int) *router {
	if cacheSize <= 0 {
		cacheSize = DefaultTopicCacheSize
	}
	return &router{
		exact:     make(map[string][]*subscription),
		cache:     make(map[string]*topicEntry),
		cacheSize: cacheSize,
	}
}

// targets returns the endpoints that receive a message on topic.
// The returned slice must not be modified.
func (r *router) targets(topic string) []target {
	r.mu.RLock()
	e := r.cache[topic]
	var ts []target
	if e != nil {
		ts = e.targets
	}
	r.mu.RUnlock()
	if e != nil {
		return ts
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e = r.cache[topic]; e != nil {
		return e.targets
	}
	e = &topicEntry{}
	e.subs = append(e.subs, r.exact[topic]...)
	for _, s := range r.regex {
		if s.matchesTopic(topic) {
			e.subs = append(e.subs, s)
		}
	}
	e.rebuild()
	if len(r.cache) >= r.cacheSize {
		for k := range r.cache { // map order is unspecified: evicts an arbitrary entry
			delete(r.cache, k)
			break
		}
	}
	r.cache[topic] = e
	return e.targets
}

// resetCache drops every cached topic; entries are recomputed, asking
// entitlements again, on the next publish.
func (r *router) resetCache() {
	r.mu.Lock()
	r.cache = make(map[string]*topicEntry)
	r.mu.Unlock()
}

// add registers s.
func (r *router) add(s *subscription) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addLocked(s)
}

func (r *router) addLocked(s *subscription) {
	if s.re == nil {
		r.exact[s.topic] = append(r.exact[s.topic], s)
		if e := r.cache[s.topic]; e != nil {
			e.subs = append(e.subs[:len(e.subs):len(e.subs)], s)
			e.rebuild()
		}
		return
	}
	r.regex = append(r.regex, s)
	for topic, e := range r.cache {
		if s.matchesTopic(topic) {
			e.subs = append(e.subs[:len(e.subs):len(e.subs)], s)
			e.rebuild()
		}
	}
}

// remove unregisters s; removing an unknown subscription does nothing.
func (r *router) remove(s *subscription) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removeLocked(s)
}

func (r *router) removeLocked(s *subscription) {
	if s.re == nil {
		if subs := without(r.exact[s.topic], s); len(subs) == 0 {
			delete(r.exact, s.topic)
		} else {
			r.exact[s.topic] = subs
		}
		if e := r.cache[s.topic]; e != nil {
			e.subs = without(e.subs, s)
			e.rebuild()
		}
		return
	}
	r.regex = without(r.regex, s)
	for _, e := range r.cache {
		if subs := without(e.subs, s); len(subs) != len(e.subs) {
			e.subs = subs
			e.rebuild()
		}
	}
}

// replace swaps old for s atomically: no publish sees neither or both.
func (r *router) replace(old, s *subscription) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removeLocked(old)
	r.addLocked(s)
}

// without returns subs minus s, as a new slice when s was present (slices
// reachable from published targets are never modified in place).
func without(subs []*subscription, s *subscription) []*subscription {
	for i, x := range subs {
		if x == s {
			out := make([]*subscription, 0, len(subs)-1)
			out = append(out, subs[:i]...)
			return append(out, subs[i+1:]...)
		}
	}
	return subs
}
