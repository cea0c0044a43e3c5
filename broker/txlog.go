package broker

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/ampsbroker/ampsbroker/protocol"
)

// This file connects the publish path to Options.Journal: which messages
// are journaled, and how one becomes an Entry. What is journaled (replay
// spec §7.1): a publish to a journaled (topic, message type), a
// delta_publish as the record it merged into (or as sent, on a topic
// without SOW), and a sow_delete that removed records of a journaled SOW
// topic. Nothing under /AMPS is ever journaled, nor a duplicate publish,
// an out-of-focus notice or an ack.
//
// Order. The journal's order is the order in which messages were
// processed, and replay reproduces it; so an entry is appended while the
// publish holds the lock that orders its topic's deliveries (the topic's
// order lock, or a SOW topic's store lock), and the live subscribers of a
// topic see its messages in the journal's order.

// journaled reports whether messages of message type mt published to
// topic go into the journal.
func (b *Broker) journaled(mt, topic string) bool {
	if b.opts.Journal == nil || strings.HasPrefix(topic, "/AMPS") {
		return false
	}
	return b.opts.JournalTopics == nil || b.opts.JournalTopics(mt, topic)
}

// ReasonJournalFailed is the failure reason of a publish or sow_delete the
// journal could not record (closed, or a write error): the message was
// not delivered.
const ReasonJournalFailed = "transaction log write failed"

// appendPublish journals a publish of from on topic (mt its message type)
// whose body is what subscribers get; key is the SOW record's key and exp
// its expiry instant (zero: never), both empty off SOW topics. h is the
// command's header, nil for an in-process client. It returns the entry's
// position, or 0 and the failure reason.
func (b *Broker) appendPublish(from *endpoint, mt, topic string, h *protocol.Header, key string, exp time.Time, body []byte) (Position, string) {
	e := publishEntry(from, mt, topic, h, key, exp, body)
	return b.appendEntry(&e)
}

// appendPublishAsync is appendPublish with an AsyncAppender: done gets the
// position, or the failure reason. It reports whether done will be called
// (false: the journal refused the entry at once, logged).
func (b *Broker) appendPublishAsync(j AsyncAppender, from *endpoint, mt, topic string, h *protocol.Header, key string, exp time.Time, body []byte, done func(Position, string)) bool {
	e := publishEntry(from, mt, topic, h, key, exp, body)
	err := j.AppendAsync(&e, func(pos Position, err error) {
		if err != nil {
			b.log.Error("transaction log append failed", "topic", topic, "mt", mt, "client_name", from.name, "err", err)
			done(0, ReasonJournalFailed)
			return
		}
		done(pos, "")
	})
	if err != nil {
		b.log.Error("transaction log append failed", "topic", topic, "mt", mt, "client_name", from.name, "err", err)
		return false
	}
	return true
}

// publishEntry is the journal entry of a publish (see appendPublish).
func publishEntry(from *endpoint, mt, topic string, h *protocol.Header, key string, exp time.Time, body []byte) Entry {
	e := Entry{Kind: EntryPublish, Topic: topic, MessageType: mt, ClientName: from.name, User: from.user, SOWKey: key, Expiry: exp, Body: body}
	if h != nil {
		e.CorrelationID = h.CorrelationID
		if h.Has(protocol.FieldSequence) {
			e.Sequence = h.Sequence
		}
	}
	return e
}

// appendDelete journals the removal of the records keys from a SOW topic
// by a sow_delete of from (h its header, nil for an in-process client).
// The entry's body is the keys as a JSON array of strings, which a
// rebuild removes again; it is never replayed to subscribers.
func (b *Broker) appendDelete(from *endpoint, mt, topic string, h *protocol.Header, keys []string) (Position, string) {
	body, err := json.Marshal(keys)
	if err != nil {
		return 0, ReasonJournalFailed // strings always marshal
	}
	e := Entry{Kind: EntrySOWDelete, Topic: topic, MessageType: mt, ClientName: from.name, User: from.user, Body: body}
	if h != nil {
		e.CorrelationID = h.CorrelationID
		if h.Has(protocol.FieldSequence) {
			e.Sequence = h.Sequence
		}
	}
	return b.appendEntry(&e)
}

// appendEntry appends e to the journal, logging a failure.
func (b *Broker) appendEntry(e *Entry) (Position, string) {
	pos, err := b.opts.Journal.Append(e)
	if err != nil {
		b.log.Error("transaction log append failed; message refused", "topic", e.Topic, "mt", e.MessageType, "client_name", e.ClientName, "err", err)
		return 0, ReasonJournalFailed
	}
	return pos, ""
}

// deletedKeys decodes the body of an EntrySOWDelete.
func deletedKeys(body []byte) ([]string, error) {
	var keys []string
	err := json.Unmarshal(body, &keys)
	return keys, err
}

// setPosition records that d is the journal entry at pos of b's journal,
// for the bookmark option's "bm".
func (d *delivery) setPosition(b *Broker, pos Position) {
	d.pos, d.jid = pos, b.jid
}
