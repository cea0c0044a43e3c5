package broker

import (
	"github.com/ampsbroker/ampsbroker/filter"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// Out-of-focus notices. A subscription with the oof option is told when a
// record it took leaves its view: the record was deleted (reason
// "deleted", the body is the record as it was), expired ("expired",
// likewise), or was updated so that the subscription's filter no longer
// takes it ("match", the body is the new record). The notice is made
// while the change is made, under the topic's lock, so it is ordered with
// the topic's other messages. A record that comes back into focus is an
// ordinary delivery.

// The reasons of an oof notice.
const (
	OOFDeleted = "deleted"
	OOFExpired = "expired"
	OOFMatch   = "match"
)

// oofNotices sends the notices for one change of a record on topic: old
// is the record before (nil when new), now the record after (nil when
// removed). The caller holds the store's lock and has routed now, if any,
// as an ordinary delivery through rs.
func (b *Broker) oofNotices(rs *routes, topic string, old, now *record, reason string) {
	if old == nil || len(rs.targets) == 0 {
		return
	}
	var oldFields, nowFields *filterScratch
	defer func() {
		for _, sc := range []*filterScratch{oldFields, nowFields} {
			if sc != nil {
				sc.env = filter.Env{}
				rs.fields.Put(sc)
			}
		}
	}()
	// takes evaluates matcher k of the routes over rec, extracting rec's
	// fields once.
	takes := func(sc **filterScratch, rec *record, k int32) bool {
		if k < 0 {
			return true
		}
		if *sc == nil {
			*sc = rs.scratch(rec.data, filter.Env{Topic: topic, Size: len(rec.data), InstanceName: b.opts.Name})
		}
		return (*sc).match(rs.matchers, k)
	}
	body := old.data
	if now != nil {
		body = now.data // "match": the subscriber is shown the new record
	}
	for i := range rs.targets {
		t := &rs.targets[i]
		var sids []*subscription
		for j, sub := range t.subs {
			if !sub.oof || sub.removed.Load() {
				continue
			}
			k := int32(-1)
			if t.match != nil {
				k = t.match[j]
			}
			if !takes(&oldFields, old, k) {
				continue // it never had the record
			}
			if now != nil && takes(&nowFields, now, k) {
				continue // still in focus: the update was delivered
			}
			sids = append(sids, sub)
		}
		if len(sids) == 0 {
			continue
		}
		m := oofMessage(topic, joinIDs(sids), old, reason, body)
		t.ep.enqueue(outItem{m: m, size: m.Len() + itemOverhead})
	}
}

// oofMessage is the notice to the subscriptions sids that the record rec
// of topic left their focus for reason, with body ("oof", wire spec §8.6).
func oofMessage(topic, sids string, rec *record, reason string, body []byte) *protocol.Message {
	h := &protocol.Header{Command: protocol.CmdOOF, Topic: topic, SubIDs: sids,
		SOWKey: rec.key, Reason: reason, CorrelationID: rec.cid}
	h.Set(protocol.FieldLength, uint64(len(body)))
	return &protocol.Message{Header: h, Body: body}
}
