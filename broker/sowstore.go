package broker

import (
	"cmp"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ampsbroker/ampsbroker/filter"
)

// Reasons of failed publishes and queries on SOW topics. AMPS documents no
// wording for these; they are ours and say what is wrong.
const (
	ReasonInvalidSOWKey  = "invalid sow key"
	ReasonSOWKeyConflict = "sow key collision"
	ReasonNotSOWTopic    = "not a sow topic"
	ReasonSOWDeleteMixed = "sow_delete takes one of filter, sow_keys or message data"
	// ReasonInvalidDelta refuses a delta_publish that cannot be merged
	// into the stored JSON record (it is not a JSON object).
	ReasonInvalidDelta = "invalid delta"
)

// Lock order, outermost first: the SOW stores' mu (several in topic
// order), the SOW registry's mu, an in-process client's mu, the router's
// mu, the routes' order locks (the topic's stripe, then the router's regex
// order), the expiry heap's and the outbound queues' locks. No code takes
// an outer lock while it holds an inner one.

// sowStore holds the records of one concrete SOW topic. Its lock orders
// everything that changes the records or reads them for a subscription:
// a publish upserts and routes its delivery under it, and
// sow_and_subscribe copies the records and registers its subscription
// under it, so every publish is either in the snapshot or delivered
// after it, never both, never neither.
type sowStore struct {
	def   *sowDef
	topic string
	// expiry is the broker's schedule of expiring records.
	expiry *expiries

	mu    sync.Mutex
	recs  map[string]*record // by key ("k")
	bytes int64              // data bytes held

	// changes counts the records stored and removed (publishes, deletes,
	// expiries), the topic's messages for BusiestTopics; written under
	// mu, read without it.
	changes atomic.Int64
}

// record is one stored message. It is immutable: an update replaces the
// pointer, so a snapshot of pointers stays a consistent view after the
// lock is released.
type record struct {
	key string // "k" as sent to clients
	// vals are the key values of a computed key, to tell an update of the
	// record from a different record whose values hash alike.
	vals  string
	data  []byte
	cid   string // the publisher's correlation id ("x")
	topic string
	at    int64 // when the publish was processed, unix nanoseconds
	exp   int64 // when the record expires, unix nanoseconds; 0: never
	// ver is the Ordinal of the ordered publish that wrote the record on a
	// node whose SOW topics are ordered (clusterexpiry.go); 0 otherwise.
	ver uint64
}

// timestamp formats t as AMPS's "ts": YYYYMMDDThhmmss.ffffffZ, UTC, to
// the microsecond.
func timestamp(t int64) string {
	return time.Unix(0, t).UTC().Format("20060102T150405.000000Z")
}

// key computes the key of a message published to st: a hash of the key
// domain and the key fields' values when the topic has Keys, else the
// publisher's "k". vals are the key values (empty for an explicit key);
// they live in ks, which the caller takes from st.def.scratch and gives
// back when done with them. It returns a failure reason when there is no
// key.
func (st *sowStore) key(explicit string, body []byte, ks *keyScratch) (key string, vals []byte, reason string) {
	d := st.def
	if d.keyEx == nil {
		if explicit == "" {
			return "", nil, ReasonInvalidSOWKey
		}
		return explicit, nil, ""
	}
	d.keyEx.Extract(body, ks.fs)
	// The domain seeds the hash: the topic's KeyDomain, else the
	// definition's Name (a Pattern definition's physical topic), else the
	// topic itself.
	b := append(ks.vals[:0], cmp.Or(d.KeyDomain, cmp.Or(d.Name, st.topic))...)
	for i := range d.keyPaths {
		v := ks.fs.Field(i).First()
		if v.Kind == filter.Missing || v.Kind == filter.Null {
			// Nothing is ever stored under an empty key.
			return "", nil, ReasonInvalidSOWKey
		}
		b = append(b, 0x1f) // unit separator: no key value can fake a boundary
		b = append(b, v.Raw...)
	}
	ks.vals = b
	return strconv.FormatUint(fnv1a(b), 10), b, ""
}

// fnv1a is the 64-bit FNV-1a hash of b: stable across runs and versions,
// which record keys must be.
func fnv1a(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// keyScratch is what computing a key needs: the key fields read from the
// message and the key values joined. sowDef.scratch recycles them, so
// computing a key allocates only the key.
type keyScratch struct {
	fs   *filter.Fields
	vals []byte
}

// scratch takes a keyScratch; put it back with d.keys.Put.
func (d *sowDef) scratch() *keyScratch {
	if ks, ok := d.keys.Get().(*keyScratch); ok {
		return ks
	}
	return &keyScratch{fs: d.keyEx.NewFields()}
}

// sowRegistry finds the store of a topic: the first definition of the
// message type that names or matches it, one store per concrete topic.
type sowRegistry struct {
	defs   []*sowDef
	expiry *expiries // given to every store
	mu     sync.Mutex
	stores map[[2]string]*sowStore // by topic and message type
}

func newSOWRegistry(defs []*sowDef, expiry *expiries) *sowRegistry {
	return &sowRegistry{defs: defs, stores: make(map[[2]string]*sowStore), expiry: expiry}
}

// store returns the store of topic for message type mt, creating it on
// first use, or nil when no definition holds the topic.
func (g *sowRegistry) store(topic, mt string) *sowStore {
	if len(g.defs) == 0 {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	id := [2]string{topic, mt}
	if st := g.stores[id]; st != nil {
		return st
	}
	if d := g.def(topic, mt); d != nil {
		st := &sowStore{def: d, topic: topic, recs: make(map[string]*record), expiry: g.expiry}
		g.stores[id] = st
		return st
	}
	return nil
}

// matching returns the existing stores of message type mt whose topic
// matches (or, without re, equals) topic, in topic order.
func (g *sowRegistry) matching(topic string, re *regexp.Regexp, mt string) []*sowStore {
	if re == nil {
		if st := g.store(topic, mt); st != nil {
			return []*sowStore{st}
		}
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.matchingLocked(re, mt)
}

// matchingLocked is matching for a regular expression; g.mu is held.
func (g *sowRegistry) matchingLocked(re *regexp.Regexp, mt string) []*sowStore {
	var out []*sowStore
	for id, st := range g.stores {
		if id[1] == mt && re.MatchString(id[0]) {
			out = append(out, st)
		}
	}
	// A regex query also reaches defined topics that have no store yet:
	// they are empty, so there is nothing to add for them.
	slices.SortFunc(out, func(a, b *sowStore) int { return strings.Compare(a.topic, b.topic) })
	return out
}

// upsert stores a record for key with vals (the key values of a computed
// key), replacing the record of the key, which it returns (nil for a new
// key). It reports false, storing nothing, when a different record's
// values hash to the same key. An update reuses the stored key and values
// strings. The caller holds st.mu.
func (st *sowStore) upsert(key string, vals []byte, rec *record) (*record, bool) {
	old := st.recs[key]
	if old != nil {
		if old.vals != string(vals) {
			return nil, false
		}
		st.bytes -= int64(len(old.data))
		rec.key, rec.vals = old.key, old.vals
	} else {
		rec.key, rec.vals = key, string(vals)
	}
	st.recs[rec.key] = rec
	st.bytes += int64(len(rec.data))
	st.changes.Add(1)
	return old, true
}

// remove deletes the record of key, and its expiry; the caller holds
// st.mu.
func (st *sowStore) remove(key string) *record {
	rec := st.recs[key]
	if rec != nil {
		delete(st.recs, key)
		st.bytes -= int64(len(rec.data))
		st.changes.Add(1)
		if rec.exp != 0 {
			st.expiry.unset(st, key)
		}
	}
	return rec
}

// snapshotAll returns the records of stores, each store locked while it
// is copied (a query's view: each topic at one instant).
func snapshotAll(stores []*sowStore) []*record {
	var out []*record
	for _, st := range stores {
		st.mu.Lock()
		out = st.snapshot(out)
		st.mu.Unlock()
	}
	return out
}

// snapshot appends the store's records to dst; the caller holds st.mu.
// It grows dst once, so that a snapshot under the lock is a walk of the
// map and no more.
func (st *sowStore) snapshot(dst []*record) []*record {
	dst = slices.Grow(dst, len(st.recs))
	for _, r := range st.recs {
		dst = append(dst, r)
	}
	return dst
}

// stats describes every store, in topic order.
func (g *sowRegistry) stats() []SOWTopicStats {
	g.mu.Lock()
	stores := slices.Collect(maps.Values(g.stores))
	g.mu.Unlock()
	out := make([]SOWTopicStats, 0, len(stores))
	for _, st := range stores {
		st.mu.Lock()
		out = append(out, SOWTopicStats{Topic: st.topic, MessageType: st.def.MessageType, Records: len(st.recs), Bytes: st.bytes})
		st.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b SOWTopicStats) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), strings.Compare(a.MessageType, b.MessageType))
	})
	return out
}
