package broker

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ampsbroker/ampsbroker/filter"
	"github.com/ampsbroker/ampsbroker/internal/jsondelta"
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
	// filter is the subscription's content filter, compiled once; nil
	// takes every message of its topics.
	filter *filter.Filter
	// stamp and noKey are the timestamp and no_sowkey options: "ts" on
	// deliveries, no "k".
	stamp, noKey bool
	// sel is the select=[…] option (selText its text): the fields of a
	// JSON message the subscription receives; nil for all.
	sel     *jsondelta.Selector
	selText string
	// delta marks a delta subscription (delta_subscribe,
	// sow_and_delta_subscribe): updates of SOW records come as the key
	// fields and the changed fields; noEmpties drops updates that changed
	// nothing else.
	delta, noEmpties bool
	// oof asks for out-of-focus notices: on a SOW topic, when a record
	// the subscription took is deleted, expires, or is updated so that
	// its filter no longer takes it.
	oof bool

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
//
// The server's own topics (/AMPS/…, such as ClientStatusTopic) are taken
// only by a regular expression that names them ("/AMPS" in its text) [I:
// AMPS documents no rule; a catch-all such as ".*" receiving the server's
// event records would surprise every application that uses one].
func (s *subscription) matchesTopic(topic string) bool {
	if strings.HasPrefix(topic, "/AMPS/") && !strings.Contains(s.topic, "AMPS") {
		return false
	}
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
	// flags say how the connection's deliveries differ from the shared
	// header (the timestamp and no_sowkey options).
	flags headerFlags
	// sel is the select list of the target's subscriptions (all have the
	// same), nil for the whole message.
	sel *jsondelta.Selector
	// delta is set when every subscription of the target is a delta
	// subscription (with a full one among them, the connection gets the
	// full message once); noEmpties when all of them asked for no_empties.
	delta, noEmpties bool
	// match is nil when no subscription of the target has a filter; else
	// match[i] is the index in the routes' matchers of the filter of
	// subs[i], or -1 for an unfiltered subscription.
	match []int32
}

// routes is what a publish to one concrete topic needs: the targets, and
// the extractor that reads, in one scan of a message, every field that the
// targets' filters name. A routes value is immutable once built; the
// router replaces it whole, so publishers use it without holding a lock.
type routes struct {
	targets []target
	// ex is nil when no subscription on the topic has a filter.
	ex *filter.Extractor
	// matchers are the distinct filters of the topic's subscriptions,
	// bound to ex. Subscriptions whose filters have the same text share
	// one, which is evaluated once per message however many of them there
	// are (many clients of one application tend to subscribe alike).
	matchers []*filter.Matcher
	// fields recycles the *filterScratch whose fields ex extracts into.
	fields *sync.Pool
	// store holds the topic's records when it is a SOW topic, else nil.
	store *sowStore
	// order is the topic's lock, which a publish holds while it queues the
	// message for its recipients, so that they all see the topic's
	// messages in one order; regexOrder, set when a regex subscription is
	// among the targets, is the router's order lock, taken after it (see
	// router.order).
	order, regexOrder *sync.Mutex
}

// topicEntry caches the routes of one concrete topic, and the filter state
// they were built from, kept across rebuilds so that a change of the
// topic's subscriptions binds only the filters it adds.
type topicEntry struct {
	subs   []*subscription
	routes *routes
	store  *sowStore // resolved once, when the topic is first cached
	// order is the topic's order lock: one of the router's stripes, so it
	// stays the same when the entry is rebuilt, evicted or made anew.
	order *sync.Mutex

	// ex is the extractor the filters of subs are bound to (nil when none
	// has a filter), fields its scratch pool, and bound each filtered
	// subscription's filter bound to ex.
	ex     *filter.Extractor
	fields *sync.Pool
	bound  map[*subscription]*filter.Matcher
}

// rebuild recomputes the routes after e.subs changed. The filters of the
// subscriptions are bound to one extractor over the union of their paths,
// so a message is scanned once however many filters meet it.
func (e *topicEntry) rebuild(r *router) {
	mt := r.mt
	rs := &routes{targets: groupTargets(e.subs), store: e.store, order: e.order}
	for _, s := range e.subs {
		if s.re != nil {
			rs.regexOrder = &r.order
			break
		}
	}
	// Publishers see the routes once complete (they are published under
	// the router's lock, which publishers take to find them).
	defer func() { e.routes = rs }()
	filtered, npaths := 0, 0
	texts := make(map[string]bool)
	for _, s := range e.subs {
		if s.filter != nil {
			filtered++
			if t := s.filter.String(); !texts[t] {
				texts[t] = true
				npaths += len(s.filter.Paths())
			}
		}
	}
	if filtered == 0 {
		e.ex, e.fields, e.bound = nil, nil, nil
		return
	}
	e.bindAll(mt, filtered, npaths)
	rs.ex, rs.fields = e.ex, e.fields
	index := make(map[*filter.Matcher]int32)
	for i := range rs.targets {
		t := &rs.targets[i]
		if !hasFilter(t.subs) {
			continue
		}
		t.match = make([]int32, len(t.subs))
		for j, s := range t.subs {
			m := e.bound[s]
			if m == nil {
				t.match[j] = -1 // unfiltered
				continue
			}
			k, ok := index[m]
			if !ok {
				k = int32(len(rs.matchers))
				index[m] = k
				rs.matchers = append(rs.matchers, m)
			}
			t.match[j] = k
		}
	}
}

// bindAll binds the filter of every filtered subscription of e.subs to one
// extractor: the current one when it has every path the filters name and
// is not much larger than they need (so only new filters are bound), else
// a new one over the union of their paths (so a topic that loses most of
// its filters does not keep scanning for their fields). filtered is the
// number of filtered subscriptions, npaths the sum of the paths of their
// distinct filter texts.
func (e *topicEntry) bindAll(mt filter.MessageType, filtered, npaths int) {
	if e.ex != nil && e.ex.Len() <= 2*npaths+8 {
		// Filters with the same text share one matcher.
		byText := make(map[string]*filter.Matcher, len(e.bound))
		for s, m := range e.bound {
			byText[s.filter.String()] = m
		}
		bound := make(map[*subscription]*filter.Matcher, filtered)
		for _, s := range e.subs {
			if s.filter == nil {
				continue
			}
			m := e.bound[s]
			if m == nil {
				m = byText[s.filter.String()]
			}
			if m == nil {
				var err error
				if m, err = s.filter.Bind(e.ex); err != nil {
					break // a path the extractor lacks: build a new one
				}
				byText[s.filter.String()] = m
			}
			bound[s] = m
		}
		if len(bound) == filtered {
			e.bound = bound
			return
		}
	}
	paths := make([][]string, 0, npaths)
	for _, s := range e.subs {
		if s.filter != nil {
			paths = append(paths, s.filter.Paths()...)
		}
	}
	// compileFilter checked that mt can be filtered and that an extractor
	// takes each filter's paths, so neither NewExtractor nor Bind can fail.
	ex, err := filter.NewExtractor(mt.String(), paths)
	if err != nil {
		panic("broker: extractor for subscribed filters: " + err.Error())
	}
	bound := make(map[*subscription]*filter.Matcher, filtered)
	byText := make(map[string]*filter.Matcher)
	for _, s := range e.subs {
		if s.filter == nil {
			continue
		}
		m := byText[s.filter.String()]
		if m == nil {
			var err error
			if m, err = s.filter.Bind(ex); err != nil {
				panic("broker: binding a subscribed filter: " + err.Error())
			}
			byText[s.filter.String()] = m
		}
		bound[s] = m
	}
	e.ex, e.bound = ex, bound
	e.fields = &sync.Pool{New: func() any { return &filterScratch{fields: ex.NewFields()} }}
}

func hasFilter(subs []*subscription) bool {
	for _, s := range subs {
		if s.filter != nil {
			return true
		}
	}
	return false
}

// groupTargets groups subscriptions by endpoint, keeping first-seen order.
func groupTargets(subs []*subscription) []target {
	if len(subs) == 0 {
		return nil
	}
	var ts []target
	// One target per connection, and per select list on it: subscriptions
	// that see different fields of a message get deliveries of their own.
	type group struct {
		ep  *endpoint
		sel string
	}
	index := make(map[group]int) // linear search would make a topic's rebuild quadratic
	for _, s := range subs {
		g := group{s.owner, s.selText}
		i, ok := index[g]
		if !ok {
			i = len(ts)
			index[g] = i
			ts = append(ts, target{ep: s.owner, sel: s.sel})
		}
		ts[i].subs = append(ts[i].subs, s)
	}
	for i := range ts {
		t := &ts[i]
		t.sids = subIDs(t.subs)
		// One delivery per connection: "ts" when any subscription asked
		// for it, no "k" only when all did.
		noKey := true
		t.delta, t.noEmpties = true, true
		for _, s := range t.subs {
			if s.stamp {
				t.flags |= withTimestamp
			}
			noKey = noKey && s.noKey
			t.delta = t.delta && s.delta
			t.noEmpties = t.noEmpties && s.noEmpties
		}
		if noKey {
			t.flags |= withoutKey
		}
	}
	return ts
}

// subIDs encodes the ids of subs as a delivery's "sids": comma-separated,
// in order.
func subIDs(subs []*subscription) protocol.SubIDs {
	return protocol.NewSubIDs(joinIDs(subs))
}

// joinIDs is the ids of subs, comma-separated, in order.
func joinIDs(subs []*subscription) string {
	var ids strings.Builder
	for j, s := range subs {
		if j > 0 {
			ids.WriteByte(',')
		}
		ids.WriteString(s.id)
	}
	return ids.String()
}

// router matches published topics to subscriptions for one message type.
//
// Exact subscriptions are found with one map lookup. Regex subscriptions
// are matched once per distinct topic: the result is cached in a topicEntry
// and kept current as subscriptions come and go, so a publish costs a map
// lookup plus its matching targets, never a scan of all subscriptions.
type router struct {
	// mt is how the filter engine reads this router's messages; 0 when it
	// cannot (such a router takes no filtered subscription). mtName is the
	// message type's name.
	mt     filter.MessageType
	mtName string
	// sow resolves the SOW store of a topic of this message type (nil:
	// none), once per cached topic.
	sow func(topic string) *sowStore
	// order is held while a publish is queued for its recipients when a
	// regex subscription is among them, so that every regex subscriber
	// sees the messages of different topics in one order, the order in
	// which publishes took this lock (semantics §3.2: AMPS keeps one
	// order per instance across the topics of a regex subscription).
	// Publishes to topics that only exact subscriptions take never touch
	// it, so they scale across cores; they are ordered per topic by a
	// stripe of stripes (a topic's stripe is fixed by its name, so its
	// publishes always meet on the same lock).
	order     sync.Mutex
	stripes   [orderStripes]sync.Mutex
	mu        sync.RWMutex
	exact     map[string][]*subscription
	regex     []*subscription
	cache     map[string]*topicEntry
	cacheSize int
}

func newRouter(mt string, cacheSize int) *router {
	if cacheSize <= 0 {
		cacheSize = DefaultTopicCacheSize
	}
	ft, _ := filter.ParseMessageType(mt)
	return &router{
		mt:        ft,
		mtName:    mt,
		exact:     make(map[string][]*subscription),
		cache:     make(map[string]*topicEntry),
		cacheSize: cacheSize,
	}
}

// compileFilter compiles a subscription's content filter for this
// router's messages: nil for an empty (or all-blank) filter, which takes
// every message. A filter is refused when it does not compile (the error
// names the position and the problem) or when the filter engine cannot
// read the message type, so that it is never matched by accident.
func (r *router) compileFilter(src string) (*filter.Filter, error) {
	if strings.TrimSpace(src) == "" {
		return nil, nil
	}
	if r.mt == 0 {
		return nil, fmt.Errorf("message type %q cannot be filtered: the filter engine reads json, fix and nvfix", r.mtName)
	}
	f, err := filter.Compile(src)
	if err != nil {
		return nil, err
	}
	if r.mt != filter.JSON {
		// A FIX or NVFIX message is a flat list of fields: a nested path
		// could never match, which is worth saying at once.
		for _, p := range f.Paths() {
			if len(p) > 1 {
				return nil, fmt.Errorf("field /%s: %s messages have no nested fields", strings.Join(p, "/"), r.mtName)
			}
		}
	}
	// The union extractor of a topic's filters is built from every
	// filter's paths; a path the extractor refuses must fail here.
	if _, err := filter.NewExtractor(r.mtName, f.Paths()); err != nil {
		return nil, err
	}
	return f, nil
}

// routes returns the routes of a message on topic. The result must not
// be modified.
func (r *router) routes(topic string) *routes {
	r.mu.RLock()
	e := r.cache[topic]
	var rs *routes
	if e != nil {
		rs = e.routes
	}
	r.mu.RUnlock()
	if e != nil {
		return rs
	}
	// The topic's SOW store is resolved before the router is locked: the
	// SOW registry's lock comes before the router's (a sow_and_subscribe
	// over a regular expression holds the registry while it registers).
	var st *sowStore
	if r.sow != nil {
		st = r.sow(topic)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e = r.cache[topic]; e != nil {
		return e.routes
	}
	e = &topicEntry{store: st, order: &r.stripes[fnv1a([]byte(topic))%orderStripes]}
	e.subs = append(e.subs, r.exact[topic]...)
	for _, s := range r.regex {
		if s.matchesTopic(topic) {
			e.subs = append(e.subs, s)
		}
	}
	e.rebuild(r)
	if len(r.cache) >= r.cacheSize {
		for k := range r.cache { // map order is unspecified: evicts an arbitrary entry
			delete(r.cache, k)
			break
		}
	}
	r.cache[topic] = e
	return e.routes
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
			e.rebuild(r)
		}
		return
	}
	r.regex = append(r.regex, s)
	for topic, e := range r.cache {
		if s.matchesTopic(topic) {
			e.subs = append(e.subs[:len(e.subs):len(e.subs)], s)
			e.rebuild(r)
		}
	}
}

// remove unregisters subs; removing an unknown subscription does nothing.
// Each cached topic they leave is rebuilt once, however many of them leave
// it, so a connection closing with many subscriptions costs one rebuild
// per topic.
func (r *router) remove(subs ...*subscription) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removeLocked(subs)
}

func (r *router) removeLocked(subs []*subscription) {
	if len(subs) == 0 {
		return
	}
	gone := make(map[*subscription]bool, len(subs))
	topics := make(map[string]bool) // exact topics left
	regex := false
	for _, s := range subs {
		gone[s] = true
		if s.re == nil {
			topics[s.topic] = true
		} else {
			regex = true
		}
	}
	for topic := range topics {
		if kept := without(r.exact[topic], gone); len(kept) == 0 {
			delete(r.exact, topic)
		} else {
			r.exact[topic] = kept
		}
	}
	if regex {
		r.regex = without(r.regex, gone)
	}
	leave := func(e *topicEntry) {
		if kept := without(e.subs, gone); len(kept) != len(e.subs) {
			e.subs = kept
			e.rebuild(r)
		}
	}
	if regex {
		for _, e := range r.cache {
			leave(e)
		}
		return
	}
	for topic := range topics {
		if e := r.cache[topic]; e != nil {
			leave(e)
		}
	}
}

// replace swaps old for s atomically: no publish sees neither or both.
func (r *router) replace(old, s *subscription) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removeLocked([]*subscription{old})
	r.addLocked(s)
}

// without returns subs minus those in gone: subs itself when none of them
// is there, else a new slice (slices reachable from published targets are
// never modified in place).
func without(subs []*subscription, gone map[*subscription]bool) []*subscription {
	for i, x := range subs {
		if gone[x] {
			out := make([]*subscription, 0, len(subs)-1)
			out = append(out, subs[:i]...)
			for _, y := range subs[i+1:] {
				if !gone[y] {
					out = append(out, y)
				}
			}
			return out
		}
	}
	return subs
}

// orderStripes is how many per-topic order locks a router has. Topics
// that share one are ordered together, which costs nothing but a little
// contention between publishers to them.
const orderStripes = 256
