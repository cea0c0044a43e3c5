package broker

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"
)

// Snapshots of the ordered SOW. A SOWOrderer that keeps the cluster's
// order as a log (natscluster: a JetStream stream) would have a starting
// node replay every ordered publish ever made. With a snapshot of the
// ordered SOW topics at a place S of the order, the log below S can go:
// a node loads the snapshot, then applies the order from S+1. The broker
// gives such a SOWOrderer (one that also implements SOWSnapshotter) the
// means, SOWState; what it stores, where and when is the backplane's.
//
// The rules:
//
//   - A snapshot is taken from the apply goroutine between two applies
//     (SOWState's Records and Sequences), so it is the SOW as it stands
//     after the place the backplane last applied, on every node the same.
//   - Loading it is applying it: each record comes as an ordered publish
//     that recreates it (apply, with the record's version as Ordinal and
//     its time as OrderTime, so that its version, "ts" and deadline are
//     those it had), before the backplane applies the order after S.
//     A record's remaining lifetime crosses as Expiration, in whole
//     seconds rounded up from its time (lifetimes are whole seconds, so
//     the deadline is the one it had).
//   - The publishers' sequence high-water marks go with it (Sequences,
//     RestoreSequence): the publishes that raised them may be gone from
//     the log, and a publisher failing over to a node loaded from a
//     snapshot must still be told where it stands.

// SOWSnapshotter is implemented by a SOWOrderer that snapshots the
// ordered SOW topics (see above). The broker calls SetSOWState once,
// before StartOrdered.
type SOWSnapshotter interface {
	SetSOWState(s SOWState)
}

// SOWState is the broker's ordered SOW, for a SOWSnapshotter's snapshots.
type SOWState interface {
	// Records hands visit every record of every SOW topic as the ordered
	// publish that recreates it (see above), topic by topic in topic and
	// message type order. Call it only from StartOrdered's apply goroutine
	// between applies. visit does not keep p, which is reused.
	Records(visit func(p *RemotePublish))
	// Sequences hands visit the highest publish sequence of every client
	// name this node knows of.
	Sequences(visit func(clientName string, seq uint64))
	// RestoreSequence raises the high-water mark of clientName to seq (a
	// snapshot's, as it loads).
	RestoreSequence(clientName string, seq uint64)
}

// sowState is the broker's SOWState.
type sowState struct{ b *Broker }

func (s sowState) Records(visit func(p *RemotePublish)) {
	g := s.b.sow
	g.mu.Lock()
	stores := slices.Collect(maps.Values(g.stores))
	g.mu.Unlock()
	slices.SortFunc(stores, func(a, b *sowStore) int {
		return cmp.Or(strings.Compare(a.topic, b.topic), strings.Compare(a.def.MessageType, b.def.MessageType))
	})
	var recs []*record
	var p RemotePublish
	for _, st := range stores {
		// Records are never changed once stored (an update stores a new
		// one), so they are read outside the store's lock.
		st.mu.Lock()
		recs = st.snapshot(recs[:0])
		st.mu.Unlock()
		for _, rec := range recs {
			p = RemotePublish{MessageType: st.def.MessageType, Topic: st.topic, SOWKey: rec.key,
				CorrelationID: rec.cid, Ordinal: rec.ver, OrderTime: time.Unix(0, rec.at), Body: rec.data}
			switch {
			case rec.exp != 0:
				life := max(rec.exp-rec.at, 0)
				p.HasExpiration, p.Expiration = true, uint64((life+int64(time.Second)-1)/int64(time.Second))
			case st.def.Expiration > 0:
				// Published to live for ever ("e" 0) on a topic whose
				// records expire: the load must not give it the topic's.
				p.HasExpiration = true
			}
			visit(&p)
		}
		clear(recs)
	}
}

func (s sowState) Sequences(visit func(clientName string, seq uint64)) {
	q := &s.b.seqs
	q.mu.Lock()
	marks := maps.Clone(q.last)
	q.mu.Unlock()
	for name, seq := range marks {
		visit(name, seq)
	}
}

func (s sowState) RestoreSequence(clientName string, seq uint64) {
	s.b.seqs.processed(clientName, seq)
}
