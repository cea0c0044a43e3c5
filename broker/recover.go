package broker

import (
	"errors"
	"fmt"
	"time"
)

// Start-up recovery of SOW topics from the journal (config spec §6A.5,
// replay spec §7.11). A SOW topic whose messages are journaled starts with
// the records the journal implies, unless its definition says StartEmpty:
// New reads the journal from its first retained entry to the durable tail
// and applies, in log order, each publish (the record as it was stored,
// under the key the topic's rules give it, with its correlation id,
// processing time and expiry instant) and each sow_delete (the keys it
// removed). Then the records whose expiry has passed are expired, as the
// janitor would. Only the durable part counts: what was not durable may
// be lost in a crash, so a rebuild never depends on it.
//
// A journal that cannot be read to its end (a read error, or a bounded
// journal dropping entries under the reader) leaves the topics with what
// was applied up to the failure. New cannot return an error, so it logs
// the failure at Error and RecoveryErr reports it; a host that must not
// serve a partial state checks RecoveryErr before it serves.

// ErrRecovery is what RecoveryErr wraps: rebuilding the SOW topics from
// the journal at New stopped at an entry it could not read.
var ErrRecovery = errors.New("broker: SOW recovery from the journal failed")

// RecoveryErr reports why New could not rebuild the journaled SOW topics
// completely (wrapping ErrRecovery and the journal's error), or nil when
// the rebuild was complete or there was nothing to rebuild.
func (b *Broker) RecoveryErr() error { return b.recoverErr }

// rebuildSOW rebuilds the journaled SOW topics from b.opts.Journal; see
// above. It returns the number of entries applied.
func (b *Broker) rebuildSOW() (applied int, err error) {
	j := b.opts.Journal
	if j == nil || !b.sow.anyRecovered() {
		return 0, nil
	}
	first, _ := j.Bounds()
	cur, err := j.NewCursor(first)
	if err != nil {
		return 0, fmt.Errorf("%w: open a cursor at %d: %w", ErrRecovery, first, err)
	}
	defer cur.Close()
	// The store of each (topic, message type) seen, nil when the journal
	// does not rebuild it.
	stores := make(map[[2]string]*sowStore)
	for {
		e, err := cur.Next()
		if errors.Is(err, ErrCaughtUp) {
			break
		}
		if err != nil {
			return applied, fmt.Errorf("%w: reading at position %d: %w", ErrRecovery, cur.Position(), err)
		}
		id := [2]string{e.Topic, e.MessageType}
		st, seen := stores[id]
		if !seen {
			if d := b.sow.def(e.Topic, e.MessageType); d != nil && !d.StartEmpty && b.journaled(e.MessageType, e.Topic) {
				st = b.sow.store(e.Topic, e.MessageType)
			}
			stores[id] = st
		}
		if st == nil {
			continue
		}
		if err := b.applyEntry(st, &e); err != nil {
			// One entry the store cannot take (its rules changed since it
			// was written) is skipped, not the rest of the log.
			b.log.Warn("SOW recovery: journal entry skipped", "topic", e.Topic, "mt", e.MessageType, "position", e.Position, "err", err)
			continue
		}
		applied++
	}
	b.expireRecords(time.Now().UnixNano())
	return applied, nil
}

// applyEntry applies one journal entry to st, as the publish or sow_delete
// that wrote it did.
func (b *Broker) applyEntry(st *sowStore, e *Entry) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	switch e.Kind {
	case EntrySOWDelete:
		keys, err := deletedKeys(e.Body)
		if err != nil {
			return fmt.Errorf("sow_delete keys: %w", err)
		}
		for _, k := range keys {
			st.remove(k)
		}
		return nil
	case EntryPublish:
	default:
		return fmt.Errorf("unknown entry kind %d", e.Kind)
	}
	var ks *keyScratch
	if st.def.keyEx != nil {
		ks = st.def.scratch()
		defer st.def.keys.Put(ks)
	}
	key, vals, reason := st.key(e.SOWKey, e.Body, ks)
	if reason != "" {
		return errors.New(reason)
	}
	rec := &record{data: e.Body, cid: e.CorrelationID, topic: e.Topic, at: e.Time.UnixNano()}
	if !e.Expiry.IsZero() {
		rec.exp = e.Expiry.UnixNano()
	}
	old, ok := st.upsert(key, vals, rec)
	if !ok {
		return errors.New(ReasonSOWKeyConflict)
	}
	switch {
	case rec.exp != 0:
		b.expiry.set(st, rec.key, rec.exp)
	case old != nil && old.exp != 0:
		b.expiry.unset(st, rec.key)
	}
	return nil
}

// def returns the definition that holds topic for message type mt (the
// first that names or matches it), nil when none does.
func (g *sowRegistry) def(topic, mt string) *sowDef {
	for _, d := range g.defs {
		if d.MessageType == mt && d.matches(topic) {
			return d
		}
	}
	return nil
}

// anyRecovered reports whether some definition may be rebuilt from the
// journal (is not StartEmpty).
func (g *sowRegistry) anyRecovered() bool {
	for _, d := range g.defs {
		if !d.StartEmpty {
			return true
		}
	}
	return false
}
