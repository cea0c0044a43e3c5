package broker

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/ampsbroker/ampsbroker/filter"
	"github.com/ampsbroker/ampsbroker/internal/jsondelta"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// This file is the State-of-the-World commands: sow (a query),
// sow_and_subscribe (a query and a subscription at one instant) and
// sow_delete.

const (
	// DefaultSOWBatchSize is the records per "sow" message when a query
	// gives no "bs" (AMPS's server default; client libraries send 10).
	DefaultSOWBatchSize = 1
	// MaxSOWBatchSize is the largest "bs" a query may ask for; more is
	// refused, as AMPS refuses it.
	MaxSOWBatchSize = 10000
)

// ReasonBadBatchSize refuses a "bs" above MaxSOWBatchSize.
const ReasonBadBatchSize = "invalid batch size"

// sowOptions are the options of sow; sowAndSubscribeOptions those of
// sow_and_subscribe (the subscribe options plus the query's).
var (
	sowOptions = map[string]optionUse{
		"none": optIgnored, "no_sowkey": optHonoured, "top_n": optHonoured,
		"non_regex_topic": optHonoured,
		// A historical query needs a History, which no topic has here; a
		// bookmark on a sow is ignored as AMPS ignores it then.
		"bookmark":  optIgnored,
		"skip_n":    optHonoured,
		"timestamp": optHonoured, "select": optHonoured,
		"grouping": optLater, "projection": optLater,
	}
	// sow_and_subscribe: the subscribe options, and the query's top_n;
	// skip_n would make it a paginated subscription, not done yet.
	sowAndSubscribeOptions      = withOption(withOption(subscribeOptions, "top_n", optHonoured), "skip_n", optLater)
	sowAndDeltaSubscribeOptions = withOption(sowAndSubscribeOptions, "no_empties", optHonoured)
)

// query is what a sow or sow_and_subscribe asked for.
type query struct {
	queryID string
	flt     *filter.Filter
	keys    map[string]bool // sow_keys; nil: every record
	order   []orderKey
	topN    int // -1: no limit
	// skip is how many records of the ordered result are left out first
	// (skip_n) [I: AMPS's documents disagree on whether it needs top_n and
	// orderby; here it needs neither, since without orderby the order is
	// by topic and key, which is stable].
	skip  int
	bs    int
	noKey bool
	// stamp adds "ts", when each record's publish was processed, to the
	// record headers (the timestamp option).
	stamp bool
	// sel is the select=[…] option: the fields of each record sent.
	sel *jsondelta.Selector
	// prev is the subscription a sow_and_subscribe with "replace"
	// replaces: only records it did not take are sent, and, with oofLeft,
	// the records it took that the new one does not get an oof notice.
	prev    *subscription
	oofLeft bool
}

// orderKey is one "/field [ASC|DESC]" of an orderby.
type orderKey struct {
	path []string
	desc bool
}

// parseQuery reads the query fields of h. It returns a failure reason, and
// for the log what exactly is wrong.
func (s *session) parseQuery(h *protocol.Header, opts []string) (*query, string, error) {
	q := &query{queryID: cmp.Or(h.QueryID, h.CommandID), topN: -1, bs: DefaultSOWBatchSize}
	if h.Has(protocol.FieldBatchSize) && h.BatchSize > 0 {
		if h.BatchSize > MaxSOWBatchSize {
			return nil, ReasonBadBatchSize, fmt.Errorf("bs %d is above %d", h.BatchSize, MaxSOWBatchSize)
		}
		q.bs = int(h.BatchSize)
	}
	if h.Has(protocol.FieldTopN) {
		q.topN = int(min(h.TopN, 1<<31))
	}
	if h.Has(protocol.FieldSkipN) {
		q.skip = int(min(h.SkipN, 1<<31))
	}
	for _, o := range opts {
		name, val, _ := strings.Cut(o, "=")
		switch strings.TrimSpace(name) {
		case "no_sowkey":
			q.noKey = true
		case "timestamp":
			q.stamp = true
		case "skip_n":
			n, err := strconv.ParseUint(strings.TrimSpace(val), 10, 31)
			if err != nil {
				return nil, ReasonInvalidOptions, fmt.Errorf("option %q: skip_n takes a count", o)
			}
			q.skip = int(n)
		case "top_n":
			n, err := strconv.ParseUint(strings.TrimSpace(val), 10, 31)
			if err != nil {
				return nil, ReasonInvalidOptions, fmt.Errorf("option %q: top_n takes a count", o)
			}
			q.topN = int(n)
		}
	}
	if h.SOWKeys != "" {
		q.keys = make(map[string]bool)
		for _, k := range strings.Split(h.SOWKeys, ",") {
			if k = strings.TrimSpace(k); k != "" {
				q.keys[k] = true
			}
		}
	}
	var err error
	if q.sel, _, err = s.selectOption(opts); err != nil {
		return nil, ReasonInvalidOptions, err
	}
	if q.flt, err = s.rt.compileFilter(h.Filter); err != nil {
		return nil, ReasonBadFilter, err
	}
	if q.order, err = parseOrderBy(h.OrderBy); err != nil {
		return nil, ReasonInvalidOrderBy, err
	}
	return q, "", nil
}

// ReasonInvalidOrderBy refuses an orderby that is not a list of fields.
const ReasonInvalidOrderBy = "invalid orderby"

// parseOrderBy reads "/a, /b DESC": fields, each optionally ASC or DESC.
func parseOrderBy(s string) ([]orderKey, error) {
	var out []orderKey
	for _, part := range strings.Split(s, ",") {
		f := strings.Fields(part)
		if len(f) == 0 {
			continue
		}
		k := orderKey{}
		if len(f) > 2 {
			return nil, fmt.Errorf("orderby %q: %q is not a field with ASC or DESC", s, part)
		}
		if len(f) == 2 {
			switch strings.ToUpper(f[1]) {
			case "ASC":
			case "DESC":
				k.desc = true
			default:
				return nil, fmt.Errorf("orderby %q: %q is neither ASC nor DESC", s, f[1])
			}
		}
		path, ok := fieldPath(f[0])
		if !ok {
			return nil, fmt.Errorf("orderby %q: %q is not a field such as /id", s, f[0])
		}
		k.path = path
		out = append(out, k)
	}
	return out, nil
}

// queryStores returns the stores a query or delete on topic reaches, with
// whether the topic is a regular expression, or a failure reason.
func (s *session) queryStores(topic string, opts []string) ([]*sowStore, bool, string) {
	// A topic is read as a subscription reads it: literal, or a regular
	// expression under the same rules and limits.
	sub, reason := newSubscription("", topic, s.b.opts.NoRegexTopics || hasOption(opts, "non_regex_topic"), s.b.opts.MaxRegexProgram)
	if reason != "" {
		return nil, isRegexTopic(topic), reason
	}
	if sub.re != nil {
		var out []*sowStore
		for _, st := range s.b.sow.matching(topic, sub.re, s.mt) {
			// A regex reaches only the topics the user may read; the
			// others are left out without an error.
			if s.entitled(st.topic, Read) {
				out = append(out, st)
			}
		}
		return out, true, ""
	}
	if !s.entitled(topic, Read) {
		return nil, false, ReasonNotEntitled
	}
	return s.b.sow.matching(topic, nil, s.mt), false, ""
}

// sow answers a query: processed ack, then, as one unit on the
// connection's queue, group_begin, the matching records in "sow" batches,
// group_end, and the completed and stats acks.
func (s *session) sow(h *protocol.Header) {
	q, ok := s.startQuery(h, sowOptions)
	if !ok {
		return
	}
	opts := splitOptions(h.Options)
	stores, regex, reason := s.queryStores(h.Topic, opts)
	if reason == "" && !regex && len(stores) == 0 {
		reason = ReasonNotSOWTopic // a literal topic must be a SOW topic
	}
	fill := func(a *protocol.Header) { a.QueryID = q.queryID }
	if reason != "" {
		s.fail(h, reason, fill)
		return
	}
	want := parseAcks(h.AckType)
	s.acks(h, want&(ackReceived|ackProcessed), protocol.StatusSuccess, "", fill)
	cands := snapshotAll(stores)
	s.enqueueQuery(h, q, "", cands, want)
	s.status(clientStatus{Event: h.Command, Topic: h.Topic, Filter: h.Filter, Options: h.Options, QueryID: q.queryID})
}

// startQuery checks a query's options and fields, sending the failure ack
// when they do not hold.
func (s *session) startQuery(h *protocol.Header, table map[string]optionUse) (*query, bool) {
	opts := splitOptions(h.Options)
	fill := func(a *protocol.Header) { a.QueryID = cmp.Or(h.QueryID, h.CommandID) }
	if reason, err := checkOptions(opts, table); reason != "" {
		s.log.Info(h.Command+" refused", "topic", h.Topic, "err", err)
		s.fail(h, reason, fill)
		return nil, false
	}
	q, reason, err := s.parseQuery(h, opts)
	if reason != "" {
		s.log.Info(h.Command+" refused", "topic", h.Topic, "filter", logText(h.Filter), "err", err)
		s.fail(h, reason, fill)
		return nil, false
	}
	return q, true
}

// sowAndSubscribe runs a query and registers a subscription at one
// instant: under the locks of every store the topic reaches, the records
// are copied (references only: the lock is held for a copy of pointers,
// not for the result's evaluation or sending), the subscription is
// registered, and the result is queued on the connection. A publish to
// those topics takes the same lock to store and route, so it is either in
// the copy or delivered after the result, never both, never neither; and
// the connection's queue sends the whole result before any delivery
// queued after it. A topic without SOW gives an empty result, then live
// messages.
func (s *session) sowAndSubscribe(h *protocol.Header) {
	table := sowAndSubscribeOptions
	if h.Command == protocol.CmdSOWAndDeltaSub {
		table = sowAndDeltaSubscribeOptions
	}
	q, ok := s.startQuery(h, table)
	if !ok {
		return
	}
	sub, old, subFill, ok := s.prepareSubscription(h, table)
	if !ok {
		return
	}
	fill := func(a *protocol.Header) {
		subFill(a)
		a.QueryID = q.queryID
	}
	if old != nil {
		q.prev, q.oofLeft = old, sub.oof
	}
	stores := s.b.sow.matching(sub.topic, sub.re, s.mt)
	want := parseAcks(h.AckType)
	s.acks(h, want&(ackReceived|ackProcessed), protocol.StatusSuccess, "", fill)
	var cands []*record
	stores = s.b.lockStores(stores, sub, s.mt, func() { s.register(sub, old) })
	for _, st := range stores {
		if sub.re == nil || sub.readable == nil || sub.readable(st.topic) {
			cands = st.snapshot(cands)
		}
	}
	s.enqueueQuery(h, q, sub.id, cands, want)
	for _, st := range stores {
		st.mu.Unlock()
	}
	s.status(clientStatus{Event: h.Command, Topic: h.Topic, Filter: h.Filter, Options: h.Options, SubID: sub.id, QueryID: q.queryID})
}

// lockStores locks the stores a sow_and_subscribe reaches, in topic order
// (so no two commands lock in different orders), and runs register while
// the set of stores cannot change. mt is the subscriber's message type.
// It returns the stores, locked.
//
// For a regular expression, a store that appears after the stores were
// listed (the first publish to a new topic of a Pattern definition) would
// be in neither the snapshot nor, for a publish routed before the
// registration, the live messages. So the registry, which creates stores,
// is held from a last check that the locked stores are all the matching
// ones until the subscription is registered; if one appeared, it starts
// over with it.
func (b *Broker) lockStores(stores []*sowStore, sub *subscription, mt string, register func()) []*sowStore {
	for {
		for _, st := range stores {
			st.mu.Lock()
		}
		if sub.re == nil {
			register() // a literal topic's store, if any, exists already
			return stores
		}
		g := b.sow
		g.mu.Lock()
		now := g.matchingLocked(sub.re, mt)
		if slices.Equal(now, stores) {
			register()
			g.mu.Unlock()
			return stores
		}
		g.mu.Unlock()
		for _, st := range stores {
			st.mu.Unlock()
		}
		stores = now
	}
}

// queryResult is a query's result queued on a connection: the records
// copied at the query's instant and what the query asked. The connection's
// writer evaluates the filter, orders, limits and sends it (group_begin,
// "sow" batches, group_end, then the completed and stats acks) as one
// unit, so nothing queued after it overtakes it, and the command's reader
// never waits for it.
type queryResult struct {
	q     *query
	subID string // for sow_and_subscribe: on the "sow" messages
	// sub is an in-process SOWAndSubscribe's subscription, whose handler
	// gets the records.
	sub   *subscription
	cid   string
	want  ackSet // completed and stats
	cands []*record
	mt    string
}

// enqueueQuery queues the result of q over cands.
func (s *session) enqueueQuery(h *protocol.Header, q *query, subID string, cands []*record, want ackSet) {
	qr := &queryResult{q: q, subID: subID, cid: h.CommandID, want: want & (ackCompleted | ackStats), cands: cands, mt: s.mt}
	// The records are the store's, shared: the queue is charged for the
	// references, not for data it does not hold alone.
	s.enqueue(outItem{qr: qr, size: itemOverhead + 16*len(cands)})
}

// evaluate selects, orders and limits the candidates. It returns the
// records to send and how many matched before top_n.
func (qr *queryResult) evaluate(instance string) (sel, left []*record, matches int) {
	q := qr.q
	var paths [][]string
	for _, f := range []*filter.Filter{q.flt, q.prevFilter()} {
		if f != nil {
			paths = append(paths, f.Paths()...)
		}
	}
	for _, k := range q.order {
		paths = append(paths, k.path)
	}
	var (
		ex      *filter.Extractor
		fs      *filter.Fields
		m, prev *filter.Matcher
	)
	if len(paths) > 0 {
		ex, _ = filter.NewExtractor(qr.mt, paths) // the paths compiled for this message type
		fs = ex.NewFields()
		if q.flt != nil {
			m, _ = q.flt.Bind(ex)
		}
		if pf := q.prevFilter(); pf != nil {
			prev, _ = pf.Bind(ex)
		}
	}
	type sorted struct {
		rec  *record
		vals []filter.Value
	}
	var rows []sorted
	env := &filter.Env{InstanceName: instance}
	for _, rec := range qr.cands {
		if q.keys != nil && !q.keys[rec.key] {
			continue
		}
		if ex != nil {
			ex.Extract(rec.data, fs)
		}
		env.Topic, env.Size = rec.topic, len(rec.data)
		in := m == nil || m.Match(fs, env)
		if q.prev != nil {
			// A replaced sow_and_subscribe sends only the records newly in
			// its scope; those that left it get an out-of-focus notice.
			wasIn := q.prev.matches(rec.topic) && (prev == nil || prev.Match(fs, env))
			if wasIn && !in && q.oofLeft {
				left = append(left, rec)
			}
			if wasIn {
				continue
			}
		}
		if !in {
			continue
		}
		row := sorted{rec: rec}
		for _, k := range q.order {
			slot, _ := ex.Slot(k.path)
			v := fs.Field(slot).First()
			v.Raw = slices.Clone(v.Raw) // fs is reused for the next record
			row.vals = append(row.vals, v)
		}
		rows = append(rows, row)
	}
	matches = len(rows)
	// Topic and key together are unique, so the order is total and an
	// unstable sort gives the same result as a stable one.
	slices.SortFunc(rows, func(a, b sorted) int {
		for i, k := range q.order {
			if c := compareOrder(a.vals[i], b.vals[i], k.desc); c != 0 {
				return c
			}
		}
		// Without orderby (or on ties) records come by topic, then key, so
		// a result is reproducible.
		return cmp.Or(strings.Compare(a.rec.topic, b.rec.topic), strings.Compare(a.rec.key, b.rec.key))
	})
	// The notices for records that left come in the result's default
	// order, by topic and key, so that a replace is reproducible.
	slices.SortFunc(left, func(a, b *record) int {
		return cmp.Or(strings.Compare(a.topic, b.topic), strings.Compare(a.key, b.key))
	})
	rows = rows[min(q.skip, len(rows)):]
	if q.topN >= 0 && len(rows) > q.topN {
		rows = rows[:q.topN]
	}
	sel = make([]*record, len(rows))
	for i, r := range rows {
		sel[i] = r.rec
	}
	return sel, left, matches
}

// prevFilter is the filter of the subscription a replacing
// sow_and_subscribe replaces, if any.
func (q *query) prevFilter() *filter.Filter {
	if q.prev == nil {
		return nil
	}
	return q.prev.filter
}

// compareOrder orders two field values for orderby [I: AMPS does not
// document ties, types or NULLs]: numbers (and booleans, as 1/0) by value
// before text, text by its bytes, and a missing or NULL value after every
// other in ascending order (before them in descending order).
func compareOrder(a, b filter.Value, desc bool) int {
	rank := func(v filter.Value) int {
		switch v.Kind {
		case filter.Int, filter.Float, filter.Bool:
			return 0
		case filter.String:
			return 1
		}
		return 2
	}
	ra, rb := rank(a), rank(b)
	var c int
	switch {
	case ra != rb:
		c = cmp.Compare(ra, rb)
	case ra == 0:
		c = cmp.Compare(number(a), number(b))
	case ra == 1:
		c = strings.Compare(string(a.Raw), string(b.Raw))
	}
	if desc {
		return -c
	}
	return c
}

func number(v filter.Value) float64 {
	if v.Kind == filter.Bool {
		if string(v.Raw) == "true" {
			return 1
		}
		return 0
	}
	f, _ := strconv.ParseFloat(string(v.Raw), 64)
	return f
}

// writeQuery writes a queued query result. It returns the messages and
// bytes written.
func (s *session) writeQuery(qr *queryResult) (msgs, wire int64, err error) {
	sel, left, matches := qr.evaluate(s.b.opts.Name)
	q := qr.q
	write := func(m *protocol.Message) bool {
		if err = s.c.WriteMessage(m); err != nil {
			return false
		}
		msgs++
		wire += int64(m.Len())
		return true
	}
	// A replacing sow_and_subscribe first tells which records left the
	// subscription's view, then sends those newly in it.
	for _, rec := range left {
		if !write(oofMessage(rec.topic, qr.subID, rec, OOFMatch, rec.data)) {
			return
		}
	}
	if !write(&protocol.Message{Header: &protocol.Header{Command: protocol.CmdGroupBegin, QueryID: q.queryID}}) {
		return
	}
	recs := make([]protocol.Record, 0, min(q.bs, len(sel)))
	rh := make([]protocol.Header, 0, cap(recs))
	for i := 0; i < len(sel); {
		// One batch: up to bs records of one topic (a batch has one "t").
		topic := sel[i].topic
		recs, rh = recs[:0], rh[:0]
		for ; i < len(sel) && len(recs) < q.bs && sel[i].topic == topic; i++ {
			h := protocol.Header{CorrelationID: sel[i].cid}
			if !q.noKey {
				h.SOWKey = sel[i].key
			}
			if q.stamp {
				h.Timestamp = timestamp(sel[i].at)
			}
			rh = append(rh, h)
			data := sel[i].data
			if q.sel != nil {
				// Only the fields the select list keeps (applied after the
				// filter, which saw the whole record).
				if b, err := jsondelta.Select(data, q.sel); err == nil {
					data = b
				}
			}
			recs = append(recs, protocol.Record{Data: data})
		}
		for j := range recs {
			recs[j].Header = &rh[j]
		}
		bh := &protocol.Header{Command: protocol.CmdSOW, Topic: topic, QueryID: q.queryID, SubID: qr.subID}
		bh.Set(protocol.FieldBatchSize, uint64(len(recs)))
		if !write(&protocol.Message{Header: bh, Records: recs}) {
			return
		}
	}
	if !write(&protocol.Message{Header: &protocol.Header{Command: protocol.CmdGroupEnd, QueryID: q.queryID}}) {
		return
	}
	// The completed ack comes after group_end: the JavaScript client drops
	// its handler once it has both processed and completed.
	for _, t := range ackOrder {
		if qr.want&t.bit == 0 {
			continue
		}
		a := &protocol.Header{Command: protocol.CmdAck, CommandID: qr.cid, QueryID: q.queryID, SubID: qr.subID,
			AckType: t.name, Status: protocol.StatusSuccess}
		a.Set(protocol.FieldRecordsReturned, uint64(len(sel)))
		if t.bit == ackStats {
			a.Set(protocol.FieldTopicMatches, uint64(len(qr.cands)))
			a.Set(protocol.FieldMatches, uint64(matches))
		}
		if !write(&protocol.Message{Header: a}) {
			return
		}
	}
	return msgs, wire, nil
}

// sowDeleteOptions are the options of sow_delete.
var sowDeleteOptions = map[string]optionUse{"none": optIgnored, "non_regex_topic": optHonoured}

// sowDelete removes records by exactly one selector: a filter (1=1
// removes all), a comma list of keys ("sow_keys"), or a message in the
// body (the record that message would update). The acks carry
// records_deleted, matches and topic_matches; the stats ack is what the
// JavaScript client's sowDelete functions wait for.
func (s *session) sowDelete(h *protocol.Header, body []byte) {
	queryID := cmp.Or(h.QueryID, h.CommandID)
	fill := func(a *protocol.Header) { a.QueryID = queryID }
	opts := splitOptions(h.Options)
	if reason, err := checkOptions(opts, sowDeleteOptions); reason != "" {
		s.log.Info("sow_delete refused", "topic", h.Topic, "err", err)
		s.failPersisted(h, reason, fill)
		return
	}
	selectors := 0
	for _, set := range []bool{strings.TrimSpace(h.Filter) != "", h.SOWKeys != "", len(body) > 0} {
		if set {
			selectors++
		}
	}
	if selectors != 1 {
		s.failPersisted(h, ReasonSOWDeleteMixed, fill)
		return
	}
	flt, err := s.rt.compileFilter(h.Filter)
	if err != nil {
		s.log.Info("sow_delete refused: bad filter", "topic", h.Topic, "filter", logText(h.Filter), "err", err)
		s.failPersisted(h, ReasonBadFilter, fill)
		return
	}
	stores, regex, reason := s.queryStores(h.Topic, opts)
	if reason == "" && !regex && len(stores) == 0 {
		reason = ReasonNotSOWTopic
	}
	for _, st := range stores {
		if reason == "" && !s.entitled(st.topic, Write) {
			reason = ReasonNotEntitled
		}
	}
	if reason != "" {
		s.failPersisted(h, reason, fill)
		return
	}
	want := parseAcks(h.AckType)
	if flt == nil {
		// Only a delete by filter has a query part whose end "completed"
		// reports; by keys or by data there is none (semantics §3.5).
		want &^= ackCompleted
	}
	var examined, deleted int
	// counts fills the success acks: what was examined and deleted.
	counts := func(a *protocol.Header) {
		fill(a)
		a.Set(protocol.FieldRecordsDeleted, uint64(deleted))
		a.Set(protocol.FieldMatches, uint64(deleted))
		a.Set(protocol.FieldTopicMatches, uint64(examined))
	}
	p := s.b.persist
	if p != nil && h.Has(protocol.FieldSequence) && s.b.seqs.duplicate(s.name, h.Sequence) {
		// With a journal a sow_delete is numbered with the publishes: a
		// publish store's resend of one processed before is dropped like
		// a duplicate publish (persist.go).
		s.log.Debug("duplicate sow_delete dropped", "topic", h.Topic, "s", h.Sequence)
		s.acks(h, want&^ackPersisted, protocol.StatusSuccess, "", counts)
		p.duplicate(s, h.Sequence, want&ackPersisted != 0)
		return
	}
	if c := s.b.cluster; c != nil && c.orderer != nil {
		s.sowDeleteOrdered(h, body, stores, want, fill)
		return
	}
	sel := deleteSelector{flt: flt, body: body, explicitKey: h.SOWKey}
	if h.SOWKeys != "" {
		sel.keys = strings.Split(h.SOWKeys, ",")
	}
	var last Position // the last entry journaled, for a persisted ack
	for _, st := range stores {
		e, d, pos, reason := s.b.deleteFrom(&s.endpoint, h, s.rt, st, sel)
		examined, deleted, last = examined+e, deleted+d, max(last, pos)
		if reason != "" {
			s.failPersisted(h, reason, fill)
			return
		}
	}
	s.status(clientStatus{Event: h.Command, Topic: h.Topic, Filter: h.Filter, Options: h.Options, QueryID: queryID})
	if p != nil {
		// With a journal a sow_delete takes part in the publisher's
		// sequence numbering, and persisted means durable (persist.go).
		if h.Has(protocol.FieldSequence) {
			s.b.seqs.processed(s.name, h.Sequence)
		}
		defer p.done(s, h, last, want&ackPersisted != 0)
		want &^= ackPersisted
	}
	s.acks(h, want, protocol.StatusSuccess, "", counts)
}

// sowDeleteOrdered is sowDelete on a node whose SOW topics the cluster
// orders (see "SOW topics" in backplane.go): one ordered delete per store,
// acked with the counts once every one was applied here (the session's
// next commands wait for that, see ordertrack.go). With a journal it takes
// part in the publisher's numbering and its persisted ack is the
// cumulative one (persist.go), as on one node; the removal itself is not
// journaled (see deleteFrom).
func (s *session) sowDeleteOrdered(h *protocol.Header, body []byte, stores []*sowStore, want ackSet, fill func(*protocol.Header)) {
	// h is the session's to reuse: the acks keep what they echo.
	ah := protocol.Header{Command: h.Command, CommandID: h.CommandID, AckType: h.AckType}
	if h.Has(protocol.FieldSequence) {
		ah.Set(protocol.FieldSequence, h.Sequence)
	}
	p := s.b.persist
	var mu sync.Mutex
	left, examined, deleted, settled := len(stores), 0, 0, false
	counts := func(a *protocol.Header) {
		fill(a)
		a.Set(protocol.FieldRecordsDeleted, uint64(deleted))
		a.Set(protocol.FieldMatches, uint64(deleted))
		a.Set(protocol.FieldTopicMatches, uint64(examined))
	}
	// succeed and failWith end the command, under mu.
	succeed := func() {
		settled = true
		if p != nil && ah.Has(protocol.FieldSequence) {
			// Numbered once applied, not when handed to the order (as a
			// publish, see publishOrdered).
			s.b.seqs.processed(s.name, ah.Sequence)
		}
		if p == nil {
			s.acks(&ah, want, protocol.StatusSuccess, "", counts)
			return
		}
		s.acks(&ah, want&^ackPersisted, protocol.StatusSuccess, "", counts)
		p.done(s, &ah, 0, want&ackPersisted != 0)
	}
	failWith := func(reason string) {
		settled = true
		if p != nil && want&ackPersisted != 0 {
			p.beforeFailure(s)
		}
		s.fail(&ah, reason, fill)
	}
	// finish takes the outcome of one store's delete; the first failure
	// fails the command, and the last success acks it.
	finish := func(o orderOutcome) {
		mu.Lock()
		defer mu.Unlock()
		defer s.applied.settle()
		if settled {
			return
		}
		switch {
		case o.Err != nil:
			failWith(ReasonOrderFailed)
			return
		case o.Reason != "":
			failWith(o.Reason)
			return
		}
		examined, deleted, left = examined+o.Examined, deleted+o.Deleted, left-1
		if left == 0 {
			succeed()
		}
	}
	s.status(clientStatus{Event: h.Command, Topic: h.Topic, Filter: h.Filter, Options: h.Options, QueryID: cmp.Or(h.QueryID, h.CommandID)})
	mu.Lock()
	defer mu.Unlock()
	if len(stores) == 0 { // a regex topic that reaches no store
		succeed()
		return
	}
	for _, st := range stores {
		s.applied.start()
		// finish, should a delete be applied already, waits for mu.
		if reason := s.b.orderDelete(&s.endpoint, s.rt, st, h, body, finish); reason != "" {
			s.applied.settle() // refused at once: finish is never called
			if !settled {
				failWith(reason)
			}
			return
		}
	}
}

// deleteSelector is what a sow_delete removes: the records a filter takes,
// the records of some keys, or the record a message would update (body,
// with its explicit key on a topic without Keys).
type deleteSelector struct {
	flt         *filter.Filter
	keys        []string
	body        []byte
	explicitKey string
}

// deleteFrom removes the records of st that sel selects, under the store's
// lock, with "deleted" out-of-focus notices through r, the router of the
// store's message type. On a journaled topic the removal is journaled
// first, as the list of the keys removed (nothing when no record is), by
// from (h its command, nil for an in-process client). It returns the
// records examined and deleted, the journal position (0 when nothing was
// journaled), and a failure reason when the journal could not record the
// removal (then nothing is removed).
func (b *Broker) deleteFrom(from *endpoint, h *protocol.Header, r *router, st *sowStore, sel deleteSelector) (examined, deleted int, pos Position, reason string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	var keys []string // the records to remove, each once
	var listed map[string]bool
	remove := func(key string) {
		if st.recs[key] != nil && !listed[key] {
			if listed == nil {
				listed = make(map[string]bool)
			}
			listed[key] = true
			keys = append(keys, key)
		}
	}
	switch {
	case len(sel.body) > 0:
		var ks *keyScratch
		if st.def.keyEx != nil {
			ks = st.def.scratch()
			defer st.def.keys.Put(ks)
		}
		key, _, reason := st.key(sel.explicitKey, sel.body, ks)
		examined = 1
		if reason == "" {
			remove(key)
		}
	case sel.flt == nil:
		for _, k := range sel.keys {
			examined++
			remove(strings.TrimSpace(k)) // unknown keys are skipped
		}
	default:
		ex, _ := filter.NewExtractor(st.def.MessageType, sel.flt.Paths())
		m, _ := sel.flt.Bind(ex)
		fs := ex.NewFields()
		for key, rec := range st.recs {
			examined++
			ex.Extract(rec.data, fs)
			if m.Match(fs, &filter.Env{Topic: rec.topic, Size: len(rec.data), InstanceName: b.opts.Name}) {
				keys = append(keys, key)
			}
		}
	}
	// A removal is journaled for the rebuild of the SOW topic at start
	// (it is never replayed); a node whose SOW topics the cluster orders
	// rebuilds them from the order instead, and journals none.
	if len(keys) > 0 && b.journaled(r.mtName, st.topic) && !b.ordersSOW() {
		if pos, reason = b.appendDelete(from, r.mtName, st.topic, h, keys); reason != "" {
			return examined, 0, 0, reason
		}
	}
	rs := r.routes(st.topic)
	for _, key := range keys {
		if rec := st.remove(key); rec != nil {
			deleted++
			b.oofNotices(rs, st.topic, rec, nil, OOFDeleted)
		}
	}
	return examined, deleted, pos, ""
}
