package broker

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

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
	// deliveries, no "k"; bookmark is the bookmark option: "bm" on the
	// deliveries of journaled messages.
	stamp, noKey, bookmark bool
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
	// replay is set for a bookmark subscription that reads the journal
	// (see replay.go); such a subscription is never in the router.
	replay *replay
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

	// The router's bookkeeping of a regex subscription, kept under its
	// lock: seq is its place in the order regex subscriptions were added,
	// bounds the literal text every topic it matches starts and ends with,
	// cachedIn the cached topics it was found in (so that removing it
	// visits those, not the whole cache), stale how many of them have
	// since left the cache.
	seq      uint64
	bounds   literalBounds
	cachedIn []*topicEntry
	stale    int
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
	// routes and slot come first: a publish that finds the entry reads
	// both, from one cache line.
	routes *routes
	slot   int32
	topic  string
	subs   []*subscription
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

	// groups is the set of the keys of the routes' targets, kept by add
	// once there are many (see hasTarget), nil otherwise.
	groups map[targetKey]struct{}
	// slot (above) is the entry's place in the router's ring; evicted is
	// set when the entry leaves the cache (both under the router's lock).
	evicted bool

	// routed counts the lookups of the routes of a topic without a SOW
	// store, one per message routed on it (a publish, a client status
	// event), for BusiestTopics; a SOW topic's publish looks its routes up
	// twice, so its store counts instead (sowStore.changes). It is last,
	// away from the line a publish reads, and starts over when the entry
	// is made anew.
	routed atomic.Int64
}

// add appends s to the entry's subscriptions. When s has no filter and
// brings a connection (or a select list on it) the topic has no target
// for yet, the routes are extended rather than rebuilt: the new target
// goes last, where a rebuild would put it, and a target slice with room
// to spare is appended to in place (a publisher holding the previous
// routes reads only the elements it had). N subscribers joining one
// topic then cost O(N) in all, not a regrouping of all N subscriptions
// each.
func (e *topicEntry) add(r *router, s *subscription) {
	e.subs = append(e.subs, s) // e.subs is the router's own, never published
	old := e.routes
	if s.filter != nil || old == nil || e.hasTarget(s) {
		e.rebuild(r)
		return
	}
	rs := *old
	rs.targets = append(old.targets, groupTargets(e.subs[len(e.subs)-1:])...)
	if s.re != nil {
		rs.regexOrder = &r.order
	}
	e.routes = &rs
	if e.groups != nil {
		e.groups[targetKey{s.owner, s.selText}] = struct{}{}
	}
}

// targetKey is what makes a target: one per connection and select list.
type targetKey struct {
	ep  *endpoint
	sel string
}

// hasTarget reports whether the routes have a target that s would join.
// Past linearGroups targets the entry keeps the set of their keys, built
// on the first join that needs it and dropped by a rebuild.
func (e *topicEntry) hasTarget(s *subscription) bool {
	ts := e.routes.targets
	if len(ts) <= linearGroups {
		for i := range ts {
			if ts[i].ep == s.owner && ts[i].subs[0].selText == s.selText {
				return true
			}
		}
		return false
	}
	if e.groups == nil {
		e.groups = make(map[targetKey]struct{}, len(ts))
		for i := range ts {
			e.groups[targetKey{ts[i].ep, ts[i].subs[0].selText}] = struct{}{}
		}
	}
	_, ok := e.groups[targetKey{s.owner, s.selText}]
	return ok
}

// rebuild recomputes the routes after e.subs changed. The filters of the
// subscriptions are bound to one extractor over the union of their paths,
// so a message is scanned once however many filters meet it.
func (e *topicEntry) rebuild(r *router) {
	mt := r.mt
	rs := &routes{targets: groupTargets(e.subs), store: e.store, order: e.order}
	e.groups = nil
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

// linearGroups is how many targets groupTargets finds by comparing with
// each before it indexes them in a map: for the few targets most topics
// have, a scan is cheaper than hashing.
const linearGroups = 8

// groupTargets groups subscriptions by endpoint, keeping first-seen order.
// The targets' subscription lists are cut from one array, so a rebuild
// allocates the same few times however many targets there are.
func groupTargets(subs []*subscription) []target {
	if len(subs) == 0 {
		return nil
	}
	// One target per connection, and per select list on it: subscriptions
	// that see different fields of a message get deliveries of their own.
	type group = targetKey
	var keysBuf [linearGroups]group
	var ofBuf [2 * linearGroups]int32
	keys := keysBuf[:0]           // the group of each target
	of := ofBuf[:0]               // the target of each subscription
	var index map[group]int32     // past linearGroups targets: a scan would make a topic's rebuild quadratic
	counts := make([]int32, 0, 4) // subscriptions per target
	for _, s := range subs {
		g := group{s.owner, s.selText}
		i, ok := int32(-1), false
		if index != nil {
			i, ok = index[g]
		} else if k := slices.Index(keys, g); k >= 0 {
			i, ok = int32(k), true
		}
		if !ok {
			i = int32(len(keys))
			keys = append(keys, g)
			counts = append(counts, 0)
			if index != nil {
				index[g] = i
			} else if len(keys) > linearGroups {
				index = make(map[group]int32, 2*len(keys))
				for k, g := range keys {
					index[g] = int32(k)
				}
			}
		}
		counts[i]++
		of = append(of, i)
	}
	ts := make([]target, len(keys))
	all := make([]*subscription, len(subs))
	off := 0
	for i := range ts {
		n := int(counts[i])
		ts[i] = target{ep: keys[i].ep, subs: all[off : off : off+n]}
		off += n
	}
	for j, s := range subs {
		t := &ts[of[j]]
		if t.subs = append(t.subs, s); len(t.subs) == 1 {
			t.sel = s.sel
		}
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
			if s.bookmark {
				t.flags |= withBookmark
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
	if len(subs) == 1 {
		return subs[0].id
	}
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
// When a topic is not cached, only the regex subscriptions whose literal
// bounds the topic has are run (see regexIndex).
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
	order   sync.Mutex
	stripes [orderStripes]sync.Mutex
	mu      sync.RWMutex
	exact   map[string][]*subscription
	// regex is the set of regex subscriptions, and index the same
	// subscriptions by the literal text a topic must start with; seq
	// numbers them in the order they were added, which is the order in
	// which they appear among a topic's subscriptions.
	regex map[*subscription]struct{}
	index regexIndex
	seq   uint64
	// cache holds the routes of up to cacheSize topics; ring holds the
	// same entries in a slice, from which evictOne samples, and refs[i]
	// is the reference bit of ring[i], set by a publish that finds it
	// cached. The bits are apart from the entries so that sampling reads
	// a small dense array, not an entry per sample.
	cache     map[string]*topicEntry
	ring      []*topicEntry
	refs      []atomic.Bool
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
		regex:     make(map[*subscription]struct{}),
		index:     regexIndex{byPrefix: make(map[string][]*subscription)},
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
		// The reference bit is written only when clear, so that hot
		// topics do not write a shared cache line on every publish.
		if ref := &r.refs[e.slot]; !ref.Load() {
			ref.Store(true)
		}
	}
	r.mu.RUnlock()
	if e != nil {
		if e.store == nil {
			e.routed.Add(1)
		}
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
		if e.store == nil {
			e.routed.Add(1)
		}
		return e.routes
	}
	e = &topicEntry{topic: topic, store: st, order: &r.stripes[fnv1a([]byte(topic))%orderStripes]}
	e.subs = append(e.subs, r.exact[topic]...)
	e.subs = r.index.match(topic, e.subs)
	e.rebuild(r)
	r.insert(e)
	if e.store == nil {
		e.routed.Add(1)
	}
	return e.routes
}

// insert caches e, evicting another topic when the cache is full, and
// records e in the reverse index of each regex subscription it has.
func (r *router) insert(e *topicEntry) {
	if len(r.ring) < r.cacheSize {
		e.slot = int32(len(r.ring))
		r.ring = append(r.ring, e)
		r.refs = append(r.refs, atomic.Bool{})
	} else {
		e.slot = r.evictOne()
		r.ring[e.slot] = e
		r.refs[e.slot].Store(false)
	}
	r.cache[e.topic] = e
	for _, s := range e.subs {
		if s.re != nil {
			s.cachedIn = append(s.cachedIn, e)
		}
	}
}

// evictSamples is how many cached topics an eviction looks at, at most,
// for one that has not been read since it was last looked at.
const evictSamples = 3

// evictOne drops one cached topic and returns its ring slot: a second
// chance over random samples. A sampled entry that was read since it was
// last sampled (its reference bit set) is spared and its bit cleared; the
// first one not read, or the last sample, is evicted. New entries start
// unread. Measured miss rates with a cache of 65,536 topics over topics
// published with Zipf frequencies (1,000,000 topics, s=1.1 and s=1.01) and
// in a cyclic sweep of 100,000 topics (BenchmarkRouterRoutes' worst case):
//
//	policy                      zipf 1.1  zipf 1.01  cyclic
//	random (the old policy)       15.7%     27.4%    60%
//	CLOCK (sweeping hand)         13.2%     23.6%   100%
//	second chance, 3 samples      13.7%     24.7%    61%
//
// CLOCK, like LRU, evicts each topic of a sweep larger than the cache
// just before it comes round again; sampling keeps nearly all of CLOCK's
// gain on skewed traffic and random's behaviour on sweeps. Sampling a
// ring slot is O(1), unlike the old "first key of a map range", whose cost
// grows as deletions leave empty slots at the start of the map.
func (r *router) evictOne() int32 {
	slot := rand.Int32N(int32(len(r.ring)))
	for k := 1; k < evictSamples && r.refs[slot].Load(); k++ {
		r.refs[slot].Store(false)
		slot = rand.Int32N(int32(len(r.ring)))
	}
	v := r.ring[slot]
	delete(r.cache, v.topic)
	r.forget(v)
	return slot
}

// forget marks e, which left the cache, as gone from the reverse index of
// each of its regex subscriptions. The index entries are dropped lazily:
// a subscription's list is compacted once more than half of it is gone,
// so it holds at most twice its live entries, and compacting costs one
// step per entry forgotten.
func (r *router) forget(e *topicEntry) {
	e.evicted = true
	for _, s := range e.subs {
		if s.re == nil {
			continue
		}
		s.stale++
		if s.stale > len(s.cachedIn)/2 {
			kept := s.cachedIn[:0]
			for _, x := range s.cachedIn {
				if !x.evicted {
					kept = append(kept, x)
				}
			}
			clear(s.cachedIn[len(kept):])
			s.cachedIn, s.stale = kept, 0
		}
	}
}

// resetCache drops every cached topic; entries are recomputed, asking
// entitlements again, on the next publish.
func (r *router) resetCache() {
	r.mu.Lock()
	for _, e := range r.ring {
		e.evicted = true
	}
	r.cache = make(map[string]*topicEntry)
	r.ring, r.refs = nil, nil
	for s := range r.regex {
		s.cachedIn, s.stale = nil, 0
	}
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
			e.add(r, s)
		}
		return
	}
	r.seq++
	s.seq = r.seq
	r.regex[s] = struct{}{}
	s.bounds = regexBounds(s.topic)
	r.index.add(s)
	// Every cached topic must be tried: the bounds test rejects most of
	// them without running the regex.
	for _, e := range r.ring {
		if s.bounds.admit(e.topic) && s.matchesTopic(e.topic) {
			e.add(r, s)
			s.cachedIn = append(s.cachedIn, e)
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
	var left []*topicEntry          // cached topics a regex subscription leaves
	for _, s := range subs {
		if s.re == nil {
			gone[s] = true
			topics[s.topic] = true
			continue
		}
		if _, ok := r.regex[s]; !ok {
			continue // not registered (or already removed)
		}
		gone[s] = true
		delete(r.regex, s)
		r.index.remove(s)
		// Only the topics the subscription was found in are visited: its
		// reverse index, not the whole cache.
		for _, e := range s.cachedIn {
			if !e.evicted {
				left = append(left, e)
			}
		}
		s.cachedIn, s.stale = nil, 0
	}
	for topic := range topics {
		if kept := without(r.exact[topic], gone); len(kept) == 0 {
			delete(r.exact, topic)
		} else {
			r.exact[topic] = kept
		}
		if e := r.cache[topic]; e != nil {
			left = append(left, e)
		}
	}
	// An entry listed twice is rebuilt once: the second time nothing of
	// gone is left in it.
	for _, e := range left {
		if kept := without(e.subs, gone); len(kept) != len(e.subs) {
			e.subs = kept
			e.rebuild(r)
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

// literalBounds is literal text that every topic a regular expression
// matches starts with (prefix) and ends with (suffix); either is "" when
// the expression requires none.
type literalBounds struct{ prefix, suffix string }

// admit reports whether topic has the bounds: a topic that does not is
// not matched by the expression, so the expression need not be run.
func (b literalBounds) admit(topic string) bool {
	return strings.HasPrefix(topic, b.prefix) && strings.HasSuffix(topic, b.suffix)
}

// regexBounds returns the literal bounds of a regex subscription topic:
// the literals that directly follow a start-of-text anchor (^ or \A) and
// directly precede an end-of-text anchor ($ or \z), e.g. "orders." and
// ".eu" for ^orders\.[a-z]+\.eu$. It is conservative: any construct other
// than a plain literal ends a bound (a group, a class, case folding, a
// multi-line ^ or $), an unanchored end has none, and so a topic outside
// the bounds is never one the expression matches. regexp's LiteralPrefix
// does not serve: for an unanchored expression its prefix may occur
// anywhere in the topic, and it gives none for an anchored expression
// that is not one-pass.
func regexBounds(expr string) literalBounds {
	re, err := syntax.Parse(expr, syntax.Perl) // the flags regexp.Compile uses
	if err != nil {
		return literalBounds{}
	}
	parts := []*syntax.Regexp{re}
	if re.Op == syntax.OpConcat {
		parts = re.Sub
	}
	var b literalBounds
	if n := len(parts); n > 1 && parts[0].Op == syntax.OpBeginText {
		i := 1
		for i < n && plainLiteral(parts[i]) {
			i++
		}
		b.prefix = literalText(parts[1:i])
	}
	if n := len(parts); n > 1 && parts[n-1].Op == syntax.OpEndText {
		i := n - 1
		for i > 0 && plainLiteral(parts[i-1]) {
			i--
		}
		b.suffix = literalText(parts[i : n-1])
	}
	return b
}

// plainLiteral reports whether re matches exactly its own text: a literal
// without case folding and without U+FFFD, which the matcher also takes
// for a byte that is not UTF-8 (so the text could not be compared
// bytewise).
func plainLiteral(re *syntax.Regexp) bool {
	return re.Op == syntax.OpLiteral && re.Flags&syntax.FoldCase == 0 && !slices.Contains(re.Rune, utf8.RuneError)
}

func literalText(lits []*syntax.Regexp) string {
	var b strings.Builder
	for _, l := range lits {
		for _, c := range l.Rune {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// regexIndex files regex subscriptions by the literal prefix of their
// bounds, so that matching a topic that is not cached runs only the
// expressions whose prefix the topic starts with (and whose suffix it
// ends with), not every regex subscription: a topic makes one map lookup
// per distinct prefix length filed. Subscriptions without a prefix are
// filed under "" and tried for every topic.
type regexIndex struct {
	byPrefix map[string][]*subscription // each in the order added
	// lengths are the distinct lengths of the filed prefixes, ascending;
	// perLength counts the prefixes of each.
	lengths   []int
	perLength map[int]int
}

func (x *regexIndex) add(s *subscription) {
	p := s.bounds.prefix
	if _, ok := x.byPrefix[p]; !ok {
		if x.perLength == nil {
			x.perLength = make(map[int]int)
		}
		if x.perLength[len(p)]++; x.perLength[len(p)] == 1 {
			i, _ := slices.BinarySearch(x.lengths, len(p))
			x.lengths = slices.Insert(x.lengths, i, len(p))
		}
	}
	x.byPrefix[p] = append(x.byPrefix[p], s)
}

func (x *regexIndex) remove(s *subscription) {
	p := s.bounds.prefix
	subs := x.byPrefix[p]
	i := slices.Index(subs, s)
	if i < 0 {
		return
	}
	// The lists are the index's own (match copies from them), so they
	// are changed in place.
	if subs = slices.Delete(subs, i, i+1); len(subs) > 0 {
		x.byPrefix[p] = subs
		return
	}
	delete(x.byPrefix, p)
	if x.perLength[len(p)]--; x.perLength[len(p)] == 0 {
		delete(x.perLength, len(p))
		i, _ := slices.BinarySearch(x.lengths, len(p))
		x.lengths = slices.Delete(x.lengths, i, i+1)
	}
}

// match appends to dst the regex subscriptions that take topic, in the
// order they were added.
func (x *regexIndex) match(topic string, dst []*subscription) []*subscription {
	first, lists := len(dst), 0
	for _, l := range x.lengths {
		if l > len(topic) {
			break
		}
		subs := x.byPrefix[topic[:l]]
		if len(subs) > 0 {
			lists++
		}
		for _, s := range subs {
			if strings.HasSuffix(topic, s.bounds.suffix) && s.matchesTopic(topic) {
				dst = append(dst, s)
			}
		}
	}
	if lists > 1 {
		slices.SortFunc(dst[first:], func(a, b *subscription) int { return cmp.Compare(a.seq, b.seq) })
	}
	return dst
}
