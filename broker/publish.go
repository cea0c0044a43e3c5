package broker

import (
	"cmp"
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ampsbroker/ampsbroker/filter"
	"github.com/ampsbroker/ampsbroker/internal/jsondelta"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// This file is the publish path: from a publish command read off a
// connection (or an in-process Client.Publish), through the router's
// lookup of the matching subscriptions, to the outbound queue of every
// endpoint that has one. The delivery built here is what each endpoint's
// writer later hands its transport.

// publish handles a publish command (there is no SOW to store into). The
// topic is literal, even with regex characters; it must be non-empty and
// outside /AMPS (see publishTopicReason), and the user entitled to write it.
// The message then goes to every matching subscription. Acks are sent only
// when asked for; a persisted ack echoes the publisher's sequence number.
func (s *session) publish(h *protocol.Header, body []byte) {
	want := parseAcks(h.AckType)
	// Failure acks carry the publish's sequence number, so a publish store
	// can hand the failed message back to the application (wire spec §7.3).
	seq := func(a *protocol.Header) {
		if h.Has(protocol.FieldSequence) {
			a.Set(protocol.FieldSequence, h.Sequence)
		}
	}
	var pos Position
	if h.Has(protocol.FieldSequence) && s.b.seqs.duplicate(s.name, h.Sequence) {
		// A publish store's replay of a message processed before: it is
		// dropped, and acknowledged as any publish (persisted with its
		// sequence), so the store lets go of it [I: AMPS documents the
		// drop; a "duplicate" reason would reach the JavaScript client's
		// failed-write handler for a message that was in fact delivered].
		s.log.Debug("duplicate publish dropped", "topic", h.Topic, "s", h.Sequence)
		if p := s.b.persist; p != nil {
			// With a journal the cumulative persisted ack covers it.
			s.acks(h, want&^ackPersisted, protocol.StatusSuccess, "", nil)
			p.duplicate(s, h.Sequence, want&ackPersisted != 0)
			return
		}
	} else if reason := publishTopicReason(h.Topic); reason != "" {
		if reason != reasonDiscard {
			s.failPersisted(h, reason, seq)
			return
		}
	} else if !s.entitled(h.Topic, Write) {
		// A refused publish is dropped; the failure is visible only in
		// the acks the publisher asked for (semantics §8.2).
		s.failPersisted(h, ReasonNotEntitled, seq)
		return
	} else if st := s.b.orderedStore(s.rt, h.Topic); st != nil {
		s.publishOrdered(st, h, body, want, seq)
		return
	} else if pos, reason = s.b.publish(&s.endpoint, s.rt, h.Topic, h, body); reason != "" {
		s.log.Debug("publish refused", "topic", h.Topic, "reason", reason)
		s.failPersisted(h, reason, seq)
		return
	}
	if h.Has(protocol.FieldSequence) {
		s.b.seqs.processed(s.name, h.Sequence)
	}
	if p := s.b.persist; p != nil {
		// With a journal, persisted means durable (persist.go).
		s.acks(h, want&^ackPersisted, protocol.StatusSuccess, "", nil)
		p.done(s, h, pos, want&ackPersisted != 0)
		return
	}
	if want == 0 {
		return
	}
	s.acks(h, want&^ackPersisted, protocol.StatusSuccess, "", nil)
	if want&ackPersisted != 0 {
		// The publish is as durable as it will get once routed; echo the
		// publisher's sequence so a publish store can discard it.
		s.ack(h, protocol.AckPersisted, protocol.StatusSuccess, "", seq)
	}
}

// publishOrdered is publish for a SOW topic whose publishes the cluster
// orders (see "SOW topics" in backplane.go). received is acked once the
// order took the publish; processed once it was applied here (so a client
// that waits for it then finds the record on this node, as on a single
// broker), failed with the store's reason when the store refused it on
// every node; persisted once the order confirmed it (the cluster holds it
// durably, whether or not this node applied it yet), failed when it did
// not (ReasonOrderFailed). With a journal, persisted means journaled and
// ordered: the publish is journaled where it is applied on this node, and
// its persisted ack is the journal's cumulative one (persist.go), failed
// like a local publish's when the store refused it or the journal failed.
func (s *session) publishOrdered(st *sowStore, h *protocol.Header, body []byte, want ackSet, seq func(*protocol.Header)) {
	s.endpoint.messagesIn.Add(1)
	// h is the session's to reuse once this returns: the acks keep copies
	// of what they echo.
	ah := protocol.Header{Command: h.Command, CommandID: h.CommandID, AckType: h.AckType}
	if h.Has(protocol.FieldSequence) {
		ah.Set(protocol.FieldSequence, h.Sequence)
	}
	echo := func(a *protocol.Header) {
		if ah.Has(protocol.FieldSequence) {
			a.Set(protocol.FieldSequence, ah.Sequence)
		}
	}
	// mu keeps the outcomes' acks after the received ack when they come
	// before it is queued.
	var mu sync.Mutex
	p := s.b.persist
	// failJournaled fails the persisted ack with a journal, after the
	// cumulative success ack of what came before.
	failJournaled := func(reason string) {
		if want&ackPersisted != 0 {
			p.beforeFailure(s)
			s.ack(&ah, protocol.AckPersisted, protocol.StatusFailure, reason, echo)
		}
	}
	onApplied := func(o orderOutcome) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case o.Err != nil:
			s.acks(&ah, want&ackProcessed, protocol.StatusFailure, ReasonOrderFailed, echo)
			if p != nil {
				failJournaled(ReasonOrderFailed)
			}
		case o.Reason != "":
			s.acks(&ah, want&ackProcessed, protocol.StatusFailure, o.Reason, echo)
			if p != nil {
				failJournaled(o.Reason)
			}
		default:
			s.acks(&ah, want&ackProcessed, protocol.StatusSuccess, "", nil)
			switch {
			case p == nil:
			case o.Resent:
				// Journaled (or not) where its first sending was applied:
				// the cumulative ack covers it once the journal shows it,
				// as for a duplicate (never on this node's word alone).
				p.duplicate(s, ah.Sequence, want&ackPersisted != 0 && ah.Has(protocol.FieldSequence))
			case o.JournalReason != "":
				failJournaled(o.JournalReason)
			default:
				p.done(s, &ah, o.Position, want&ackPersisted != 0)
			}
		}
		s.applied.settle()
	}
	onConfirmed := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case p != nil: // acked when applied here (above)
		case want&ackPersisted == 0:
		case err != nil:
			s.ack(&ah, protocol.AckPersisted, protocol.StatusFailure, ReasonOrderFailed, echo)
		default:
			s.ack(&ah, protocol.AckPersisted, protocol.StatusSuccess, "", echo)
		}
		s.confirmed.settle()
	}
	s.applied.start()
	s.confirmed.start()
	mu.Lock()
	defer mu.Unlock()
	// An apply that comes after all once the order failed is journaled
	// (see orderWait): its sequence then counts as durable for the
	// cumulative ack, which covers the publisher's resend.
	onLate := func(o orderOutcome) {
		if p != nil && o.Reason == "" && o.JournalReason == "" {
			p.done(s, &ah, o.Position, false)
		}
	}
	cb := orderCallbacks{confirm: onConfirmed, applied: onApplied, late: onLate}
	if reason := s.b.orderSOW(&s.endpoint, s.rt, st, h.Topic, h, body, cb); reason != "" {
		s.applied.settle() // refused at once: neither is called
		s.confirmed.settle()
		s.log.Debug("publish refused", "topic", h.Topic, "reason", reason)
		s.awaitSettled() // its acks after those of the publishes before it
		s.failPersisted(h, reason, seq)
		return
	}
	// The publisher's sequence counts as processed when the order hands
	// the publish back (applyOrdered), not now: should the order fail, a
	// resend must reach it again (the backplane drops a true duplicate).
	s.acks(h, want&ackReceived, protocol.StatusSuccess, "", nil)
}

// entersOrder reports whether the publish or sow_delete h is one the
// session hands to the cluster's order without waiting for the ordered
// commands before it (see ordertrack.go): a publish or delta_publish, not
// a duplicate, to a SOW topic the cluster orders that the user may write;
// a sow_delete of such a literal topic. Anything else waits.
func (s *session) entersOrder(h *protocol.Header) bool {
	switch h.Command {
	case protocol.CmdPublish, protocol.CmdP, protocol.CmdDeltaPublish:
		if h.Has(protocol.FieldSequence) && s.b.seqs.duplicate(s.name, h.Sequence) {
			return false
		}
	case protocol.CmdSOWDelete:
		if isRegexTopic(h.Topic) {
			return false
		}
	default:
		return false
	}
	return publishTopicReason(h.Topic) == "" && s.b.orderedStore(s.rt, h.Topic) != nil && s.entitled(h.Topic, Write)
}

// failPersisted is fail for a publish or sow_delete: with a journal, a
// persisted failure ack is preceded by the success ack of what is ackable
// before it (replay spec §7.6).
func (s *session) failPersisted(h *protocol.Header, reason string, fill func(*protocol.Header)) {
	if p := s.b.persist; p != nil && parseAcks(h.AckType)&ackPersisted != 0 {
		p.beforeFailure(s)
	}
	s.fail(h, reason, fill)
}

// reasonDiscard marks a publish that is accepted and dropped.
const reasonDiscard = "\x00discard"

// publishTopicReason checks a publish topic (semantics §2: /AMPS/ is
// reserved for the server, but /AMPS/devnull is accepted and discarded).
func publishTopicReason(topic string) string {
	switch {
	case topic == "":
		return ReasonNoTopic
	case topic == "/AMPS/devnull":
		return reasonDiscard
	case strings.HasPrefix(topic, "/AMPS"):
		return ReasonInvalidTopic
	}
	return ""
}

// publish routes one message of from through r, the router of the
// publisher's message type, to every matching subscription, storing it
// first when the topic is a SOW topic. h is the publish's header (nil for
// an in-process client): its "x" passes through and its "k" is the key of
// a record on a SOW topic without Keys. It returns the message's journal
// position (0 when it is not journaled) and a failure reason when the
// message is refused (a SOW key that cannot be had, a journal that cannot
// record it), else "". It never blocks on a receiver. A message accepted
// to a topic without SOW is then handed to Options.Backplane, if any (see
// backplane.go).
func (b *Broker) publish(from *endpoint, r *router, topic string, h *protocol.Header, body []byte) (Position, string) {
	from.messagesIn.Add(1)
	var cid, key string
	if h != nil {
		cid, key = h.CorrelationID, h.SOWKey
	}
	rs := r.routes(topic)
	if rs.store != nil {
		if c := b.cluster; c != nil && c.orderer != nil {
			// Applied when the cluster's order hands it back (backplane.go).
			// (Client.Publish waits with its context; this is for
			// whatever else publishes in process.)
			reason, _ := b.orderAndWait(context.Background(), from, r, rs.store, topic, h, body)
			return 0, reason
		}
		return b.publishSOW(from, r, rs.store, topic, h, cid, key, body, nil)
	}
	// A delta_publish to a topic without SOW is a publish: there is no
	// record to merge into.
	if b.journaled(r.mtName, topic) {
		return b.publishJournaled(from, r, rs, topic, h, cid, body)
	}
	if b.cluster == nil {
		b.route(from.name, rs, topic, nil, cid, body, nil)
		return 0, ""
	}
	// On a node of a cluster the publish is handed to the backplane under
	// the locks that ordered its local deliveries, so that every node gets
	// this node's publishes to a topic in the order its own subscribers did.
	unlock := lockOrder(rs)
	b.routeOrdered(from.name, rs, topic, nil, cid, body, nil)
	b.toBackplane(from, r.mtName, topic, h, 0, body)
	unlock()
	return 0, ""
}

// publishJournaled appends a publish to a topic without SOW to the journal
// and routes it, holding the topic's order lock across both (and the
// router's regex order lock, when a regex subscription takes the topic),
// so that live subscribers get messages in the journal's order: those of
// one topic, and those of several topics a regex subscription takes. On a
// node of a cluster it then hands the publish to the backplane, still
// under those locks (see publish).
func (b *Broker) publishJournaled(from *endpoint, r *router, rs *routes, topic string, h *protocol.Header, cid string, body []byte) (Position, string) {
	unlock := lockOrder(rs)
	defer unlock()
	pos, reason := b.appendPublish(from, r.mtName, topic, h, "", time.Time{}, body)
	if reason != "" {
		return 0, reason
	}
	if len(rs.targets) > 0 {
		// The delivery is built here rather than by route, to carry the
		// journal position for subscriptions with the bookmark option.
		d := newPooledDelivery(topic, cid, body)
		d.setPosition(b, pos)
		b.routeOrdered(from.name, rs, topic, d, cid, body, nil)
		d.release()
	}
	b.toBackplane(from, r.mtName, topic, h, pos, body)
	return pos, ""
}

// lockOrder takes the locks that order rs's deliveries (the topic's, then
// the router's regex order lock when a regex subscription is among the
// targets) and returns their release.
func lockOrder(rs *routes) (unlock func()) {
	rs.order.Lock()
	if rs.regexOrder == nil {
		return rs.order.Unlock
	}
	rs.regexOrder.Lock()
	return func() {
		rs.regexOrder.Unlock()
		rs.order.Unlock()
	}
}

// publishSOW stores a message into a SOW topic and routes it, both under
// the store's lock, so that a sow_and_subscribe, which takes the lock to
// copy the records and register its subscription, sees each publish
// either in its snapshot or as a delivery after it. The delivery carries
// the record's key in "k"; the record shares the delivery's copy of the
// body. ord is an ordered apply's stamp (nil for a local publish).
func (b *Broker) publishSOW(from *endpoint, r *router, st *sowStore, topic string, h *protocol.Header, cid, explicitKey string, body []byte, ord *orderStamp) (Position, string) {
	var ks *keyScratch
	if st.def.keyEx != nil {
		ks = st.def.scratch()
		defer st.def.keys.Put(ks)
	}
	key, vals, reason := st.key(explicitKey, body, ks)
	if reason != "" {
		return 0, reason
	}
	delta := h != nil && h.Command == protocol.CmdDeltaPublish
	var d *delivery
	if !delta {
		d = newDelivery(topic, cid, key, body)
	}
	life := st.def.lifetime(h)
	st.mu.Lock()
	defer st.mu.Unlock()
	if delta {
		// A delta merges into the stored record (JSON); the merged record
		// is what is stored, delivered, filtered and used for oof. Other
		// message types store the delta as it is, as AMPS does for types
		// it cannot merge.
		if prev := st.recs[key]; prev != nil {
			if st.def.MessageType == DefaultSOWMessageType {
				merged, err := jsondelta.Merge(prev.data, body)
				if err != nil {
					return 0, ReasonInvalidDelta
				}
				body = merged
			}
			cid = cmp.Or(cid, prev.cid) // the stored correlation id unless the delta has one
		}
		d = newDelivery(topic, cid, key, body)
	}
	rec := &record{data: d.body, cid: cid, topic: topic, at: time.Now().UnixNano()}
	ord.stamp(rec) // an ordered apply's version and time (clusterexpiry.go)
	if life > 0 {
		rec.exp = rec.at + int64(life)
	}
	var pos Position
	var rs *routes // read under the store's lock, before the journal's order is taken
	// An ordered publish is journaled where it was accepted only (see
	// orderStamp).
	if b.journaled(r.mtName, topic) && (ord == nil || ord.origin) {
		// Journaled before it is stored, under the store's lock: the
		// journal then holds the topic's updates in the order the store
		// applied them, which is what a rebuild replays. A message the
		// store would refuse is not journaled. The append also holds the
		// locks that order the deliveries (see publishJournaled).
		if prev := st.recs[key]; prev != nil && prev.vals != string(vals) {
			return 0, ReasonSOWKeyConflict
		}
		rs = r.routes(topic)
		unlock := lockOrder(rs)
		defer unlock()
		var exp time.Time
		if rec.exp != 0 {
			exp = time.Unix(0, rec.exp)
		}
		if aj, ok := b.opts.Journal.(AsyncAppender); ok && ord != nil && ord.journaled != nil {
			// An ordered apply does not wait for the journal: the entry
			// goes out in the order of the applies, the outcome to
			// ord.journaled (the live deliveries here then carry no "bm").
			ord.handedOff = b.appendPublishAsync(aj, from, r.mtName, topic, h, key, exp, d.body, ord.journaled)
			if !ord.handedOff {
				ord.journalErr = ReasonJournalFailed
			}
		} else if pos, reason = b.appendPublish(from, r.mtName, topic, h, key, exp, d.body); reason != "" {
			if ord == nil {
				return 0, reason
			}
			// Every node applies what the order decided; only the
			// journal misses it (its publisher is told).
			ord.journalErr, reason = reason, ""
		}
	}
	old, ok := st.upsert(key, vals, rec)
	if !ok {
		return 0, ReasonSOWKeyConflict
	}
	d.key = rec.key // the stored string: the computed one is garbage on an update
	d.at = rec.at   // a "ts" on deliveries is the record's
	if pos != 0 {
		d.setPosition(b, pos)
	}
	switch {
	case life > 0:
		// Each update restarts the record's clock.
		b.expiry.set(st, rec.key, rec.exp)
	case old != nil && old.exp != 0:
		b.expiry.unset(st, rec.key) // this update never expires
	}
	var ch *change
	if old != nil {
		ch = &change{old: old, now: rec, keys: st.def.keyPaths}
	}
	if rs != nil {
		b.routeOrdered(from.name, rs, topic, d, cid, d.body, ch)
		return pos, ""
	}
	// The routes are read again under the store's lock: a subscription
	// registered by a sow_and_subscribe before this point must get it.
	b.route(from.name, r.routes(topic), topic, d, cid, d.body, ch)
	return pos, ""
}

// route queues a message for every target of rs whose filters take it.
// d is the delivery when already built; else it is built for the first
// recipient, so a message no filter takes costs no copy.
//
// When subscriptions on the topic have content filters, the message is
// scanned once, for the union of the fields those filters name, and each
// filter then only evaluates its predicates over the extracted values. A
// topic without filtered subscriptions costs no scan at all.
// change is what a delta subscriber's message is computed from: the
// record a SOW publish replaced, and the topic's key fields, which a delta
// always carries.
type change struct {
	old, now *record
	keys     [][]string
	// diffed is set once the delta is computed: delta is its delivery, nil
	// when it cannot be computed (then delta subscribers get the full
	// message), and empty tells that only the keys changed.
	diffed bool
	delta  *delivery
	empty  bool
	// oldFields are the old record's fields, for the filters of delta
	// subscriptions (extracted on first need).
	oldFields *filterScratch
	// projected are the deltas for select lists.
	projected []selDelta
}

// hadOld reports whether every subscription of t (narrowed from orig by
// the new record) took the record before the change, so that a delta
// against it makes sense to them: a filtered subscription the old record
// was out of the focus of gets the new record in full. The old record's
// fields are extracted once per change.
func (ch *change) hadOld(b *Broker, rs *routes, orig, t *target) bool {
	if orig.match == nil {
		return true
	}
	for _, sub := range t.subs {
		k := int32(-1)
		for j, s := range orig.subs {
			if s == sub {
				k = orig.match[j]
				break
			}
		}
		if k < 0 {
			continue // unfiltered: it had every record
		}
		if ch.oldFields == nil {
			ch.oldFields = rs.scratch(ch.old.data, filter.Env{Topic: ch.old.topic, Size: len(ch.old.data), InstanceName: b.opts.Name})
		}
		if !ch.oldFields.match(rs.matchers, k) {
			return false
		}
	}
	return true
}

// release gives back the scratch of the old record's fields.
func (ch *change) release(rs *routes) {
	if ch.oldFields != nil {
		ch.oldFields.env = filter.Env{}
		rs.fields.Put(ch.oldFields)
		ch.oldFields = nil
	}
}

// deltaFor returns the delivery of the change for the delta subscribers of
// a message d that see the fields sel keeps (nil: all), computing it once
// per select list; nil means send d itself. With a select list, the delta
// is the diff of the old and new records as projected, so only changes to
// selected fields count, for no_empties too.
func (ch *change) deltaFor(d *delivery, sel *jsondelta.Selector) (*delivery, bool) {
	if sel == nil {
		if !ch.diffed {
			ch.diffed = true
			ch.delta, ch.empty = diffDelivery(ch.old.data, d, ch.keys)
		}
		return ch.delta, ch.empty
	}
	for _, p := range ch.projected {
		if p.sel == sel {
			return p.delta, p.empty
		}
	}
	var dd *delivery
	var empty bool
	oldP, err1 := jsondelta.Select(ch.old.data, sel)
	newP, err2 := jsondelta.Select(d.body, sel)
	if err1 == nil && err2 == nil {
		nd := newDelivery(d.topic, d.correlationID, d.key, newP)
		dd, empty = diffDelivery(oldP, nd, ch.keys)
	}
	ch.projected = append(ch.projected, selDelta{sel, dd, empty})
	return dd, empty
}

// selDelta is a change's delta as a select list sees it.
type selDelta struct {
	sel   *jsondelta.Selector
	delta *delivery
	empty bool
}

// diffDelivery is the delivery of the diff from old to d's body, or nil
// when they cannot be diffed (not JSON objects).
func diffDelivery(old []byte, d *delivery, keys [][]string) (*delivery, bool) {
	diff, empty, err := jsondelta.Diff(old, d.body, keys)
	if err != nil {
		return nil, false
	}
	return newDelivery(d.topic, d.correlationID, d.key, diff), empty
}

func (b *Broker) route(publisher string, rs *routes, topic string, d *delivery, cid string, body []byte, ch *change) {
	if len(rs.targets) == 0 {
		return
	}
	// Publishers to one topic queue one message at a time, so every
	// subscriber sees them in the same order (a SOW topic's publishes
	// are ordered by its store's lock already, but a regex subscriber's
	// order spans topics).
	rs.order.Lock()
	defer rs.order.Unlock()
	b.routeLocked(publisher, rs, topic, d, cid, body, ch)
}

// routeLocked is route with the topic's order lock held.
func (b *Broker) routeLocked(publisher string, rs *routes, topic string, d *delivery, cid string, body []byte, ch *change) {
	if len(rs.targets) == 0 {
		return
	}
	if rs.regexOrder != nil {
		rs.regexOrder.Lock()
		defer rs.regexOrder.Unlock()
	}
	b.routeOrdered(publisher, rs, topic, d, cid, body, ch)
}

// routeOrdered is route with the topic's order lock held, and the
// router's regex order lock too when a regex subscription is among the
// targets. publisher is the publisher's client name, what a filter's
// CLIENT_NAME() reads (a remote publisher's too, see backplane.go).
func (b *Broker) routeOrdered(publisher string, rs *routes, topic string, d *delivery, cid string, body []byte, ch *change) {
	if len(rs.targets) == 0 {
		return
	}
	var sc *filterScratch
	if rs.ex != nil {
		sc = rs.scratch(body, filter.Env{Topic: topic, Size: len(body), ClientName: publisher, InstanceName: b.opts.Name})
	}
	var proj []projection // the select lists' projections of this message
	var made *delivery    // the delivery route built, if it did
	if ch != nil {
		defer ch.release(rs)
	}
	for i := range rs.targets {
		t := &rs.targets[i]
		orig := t
		if t.match != nil {
			if t = t.filtered(rs.matchers, sc); t == nil {
				continue
			}
		}
		if d == nil {
			// A plain publish: nothing but the writers keeps the
			// delivery, so it can be recycled once they have written it.
			// route's own reference is dropped once the loop is done
			// (not deferred: a defer in a loop is allocated).
			d = newPooledDelivery(topic, cid, body)
			made = d
		}
		out, projectedDelta := d, false
		if t.delta && ch != nil && ch.hadOld(b, rs, orig, t) {
			// A delta subscription gets the keys and the changed fields
			// of an update of a record it had (a new record, or one coming
			// back into its focus, goes in full); an update that changed
			// nothing else is sent unless it asked for no_empties. With a
			// select list, only changes to the selected fields count.
			dd, empty := ch.deltaFor(d, t.sel)
			if dd != nil {
				if empty && t.noEmpties {
					continue
				}
				out, projectedDelta = dd, t.sel != nil
			}
		}
		if t.sel != nil && !projectedDelta {
			// A select list: the fields the subscriptions asked for, one
			// projection per select list and message.
			out = projected(&proj, t.sel, out)
		}
		out.variant(t.flags)
		out.hold() // the writer's reference, dropped when it has written it
		t.ep.enqueueDelivery(out, t)
	}
	if made != nil {
		made.release()
	}
	if sc != nil {
		sc.env = filter.Env{}
		rs.fields.Put(sc)
	}
	if ch != nil {
		// Out-of-focus notices of the update, under the same locks, so
		// they are ordered with the other messages as the deliveries are.
		b.oofNotices(rs, topic, ch.old, ch.now, OOFMatch)
	}
}

// scratch takes a filterScratch of the routes' pool, with body's fields
// extracted, env set and no verdict yet. Give it back with rs.fields.Put
// (after clearing env, which holds strings of the message).
func (rs *routes) scratch(body []byte, env filter.Env) *filterScratch {
	sc := rs.fields.Get().(*filterScratch)
	rs.ex.Extract(body, sc.fields)
	sc.env = env
	if cap(sc.verdicts) < len(rs.matchers) {
		sc.verdicts = make([]verdict, len(rs.matchers))
	}
	sc.verdicts = sc.verdicts[:len(rs.matchers)]
	clear(sc.verdicts)
	return sc
}

// filterScratch is what evaluating filters on one message needs: the
// fields extracted from it and the message's environment. The routes of a
// topic recycle them, so a filtered publish allocates nothing for them.
type filterScratch struct {
	fields *filter.Fields
	env    filter.Env
	// verdicts holds, per matcher of the routes, what it said of the
	// current message, so a filter shared by several subscriptions is
	// evaluated once.
	verdicts []verdict
}

// verdict is a filter's result on the current message.
type verdict uint8

const (
	unevaluated verdict = iota
	matched
	rejected
)

// match reports whether matcher k of ms takes the message in sc,
// evaluating it on first use.
func (sc *filterScratch) match(ms []*filter.Matcher, k int32) bool {
	v := sc.verdicts[k]
	if v == unevaluated {
		v = rejected
		if ms[k].Match(sc.fields, &sc.env) {
			v = matched
		}
		sc.verdicts[k] = v
	}
	return v == matched
}

// filtered returns t narrowed to its subscriptions whose filters (matchers
// ms, by index) take the message in sc: t itself when all do, nil when none does, else a new
// target listing exactly the subscriptions that matched, so the delivery's
// "sids" names those and no other (a connection still gets the message
// once, however many of its subscriptions match).
func (t *target) filtered(ms []*filter.Matcher, sc *filterScratch) *target {
	var keep []*subscription // nil until a filter does not match
	for i, k := range t.match {
		ok := k < 0 || sc.match(ms, k)
		switch {
		case ok && keep != nil:
			keep = append(keep, t.subs[i])
		case !ok && keep == nil:
			// Non-nil even when empty; the first append copies, so
			// t.subs is never written.
			keep = t.subs[:i:i]
		}
	}
	switch {
	case keep == nil:
		return t
	case len(keep) == 0:
		return nil
	}
	return &target{ep: t.ep, subs: keep, sids: subIDs(keep)}
}

// enqueueDelivery queues a published message for the subscriptions of
// this endpoint that t lists.
func (e *endpoint) enqueueDelivery(d *delivery, t *target) bool {
	return e.enqueue(outItem{d: d, t: t, size: d.size(t)})
}

// delivery is one published message encoded once for every recipient. Its
// header is a protocol.SharedHeader: recipients differ only in "sids",
// which comes from the target and is spliced in by the connection's
// writer, so fanning out to N connections allocates nothing beyond this
// value.
//
// Header (wire spec §8.2):
//
//	{"c":"p","t":<topic>,"sids":<ids>[,"x":<correlation id>],"l":<len>}<body>
type delivery struct {
	topic string
	hdr   protocol.SharedHeader
	body  []byte
	// correlationID is the publisher's "x", passed through (wire spec §8.2).
	correlationID string
	// key is the record's SOW key, for in-process handlers.
	key string
	// variants are the header as some connections' subscriptions asked
	// for it, by headerFlags: with "ts" (the timestamp option) or without
	// "k" (no_sowkey). The publisher builds each before it queues the
	// delivery for a target that needs it (see variant); writers only
	// read them.
	variants [8]*protocol.SharedHeader
	at       int64 // when the first variant was built, for "ts"
	// pos is the message's journal position, 0 when it is not journaled,
	// and jid the journal's bookmark id: the variant with "bm" needs them.
	pos Position
	jid uint64

	// pool is the size class of a recycled delivery (see deliverypool.go),
	// 0 for one left to the garbage collector; mem is then the whole
	// buffer that hdr and body are carved from, and refs counts the
	// publisher and the writers that still read it.
	pool uint8
	refs atomic.Int32
	mem  []byte
}

// headerFlags say how a connection's deliveries differ from the shared
// header, because of its subscriptions' options.
type headerFlags uint8

const (
	withTimestamp headerFlags = 1 << iota // a subscription asked for "ts"
	withoutKey                            // every subscription asked for no "k"
	withBookmark                          // a subscription asked for "bm" (the bookmark option)
)

// variant builds, once, the header for targets with flags f. It runs on
// the publisher's goroutine, before the delivery is queued for such a
// target.
func (d *delivery) variant(f headerFlags) {
	if f == 0 || d.variants[f] != nil {
		return
	}
	if d.at == 0 {
		d.at = time.Now().UnixNano()
	}
	h := protocol.Header{Command: protocol.CmdP, Topic: d.topic, CorrelationID: d.correlationID}
	if f&withoutKey == 0 {
		h.SOWKey = d.key
	}
	if f&withTimestamp != 0 {
		h.Timestamp = timestamp(d.at)
	}
	if f&withBookmark != 0 && d.pos != 0 {
		h.Bookmark = FormatBookmark(d.jid, d.pos)
	}
	h.Set(protocol.FieldLength, uint64(len(d.body)))
	sh := new(protocol.SharedHeader)
	sh.Prepare(nil, &h)
	d.variants[f] = sh
}

// header is the header t's connection gets.
func (d *delivery) header(t *target) *protocol.SharedHeader {
	if t.flags != 0 {
		return d.variants[t.flags]
	}
	return &d.hdr
}

// newDelivery copies body: the publisher's read buffer is reused. The
// encoded header and the body share one allocation. key is the record's
// SOW key ("k"), empty on a topic without SOW.
func newDelivery(topic, correlationID, key string, body []byte) *delivery {
	d := new(delivery)
	d.fill(make([]byte, 0, len(topic)+len(correlationID)+len(key)+len(body)+deliveryHeaderRoom), topic, correlationID, key, body)
	return d
}

// deliveryHeaderRoom is what a delivery's header takes besides its topic,
// correlation id and key when nothing needs escaping: ,"c":"p" ,"t":""
// ,"x":"" ,"l": and 20 digits take 47 bytes, and ,"k":"" 7 more.
const deliveryHeaderRoom = 56

// fill sets d to a message on topic of body, encoding the header and
// copying the body into buf, and returns buf extended (d.hdr and d.body
// refer into it).
func (d *delivery) fill(buf []byte, topic, correlationID, key string, body []byte) []byte {
	h := protocol.Header{Command: protocol.CmdP, Topic: topic, CorrelationID: correlationID, SOWKey: key}
	h.Set(protocol.FieldLength, uint64(len(body)))
	return d.fillHeader(buf, &h, body)
}

// fillHeader is fill with the header given in full.
func (d *delivery) fillHeader(buf []byte, h *protocol.Header, body []byte) []byte {
	d.topic, d.correlationID, d.key = h.Topic, h.CorrelationID, h.SOWKey
	buf = d.hdr.Prepare(buf, h)
	s := len(buf)
	buf = append(buf, body...)
	d.body = buf[s:]
	return buf
}

// message sets m to the delivery as written to t's connection (m is the
// writer's, reused for every delivery, so writing one allocates nothing).
// It leaves out subscriptions removed since t was built, and reports false
// when none is left (the delivery is then dropped).
func (d *delivery) message(t *target, m *protocol.Message) bool {
	live := 0
	for _, s := range t.subs {
		if !s.removed.Load() {
			live++
		}
	}
	if live == 0 {
		return false
	}
	m.Shared, m.SubIDs, m.Body = d.header(t), t.sids, d.body
	if live < len(t.subs) {
		// Rare: an unsubscribe raced this delivery. Spell out the ids
		// still subscribed.
		subs := make([]*subscription, 0, live)
		for _, s := range t.subs {
			if !s.removed.Load() {
				subs = append(subs, s)
			}
		}
		m.SubIDs = subIDs(subs)
	}
	return true
}

// size is what the delivery costs in a connection's outbound budget.
func (d *delivery) size(t *target) int {
	return d.header(t).Len(t.sids) + len(d.body) + itemOverhead
}

// projection is a delivery of a message with only the fields of a select
// list.
type projection struct {
	sel  *jsondelta.Selector
	from *delivery
	to   *delivery
}

// projected returns d with only the fields sel keeps, computed once per
// select list and delivery (a cache in *cache). A message that is not a
// JSON object is delivered whole.
func projected(cache *[]projection, sel *jsondelta.Selector, d *delivery) *delivery {
	for _, p := range *cache {
		if p.sel == sel && p.from == d {
			return p.to
		}
	}
	to := d
	if body, err := jsondelta.Select(d.body, sel); err == nil {
		to = newDelivery(d.topic, d.correlationID, d.key, body)
		to.at = d.at
	}
	*cache = append(*cache, projection{sel, d, to})
	return to
}
