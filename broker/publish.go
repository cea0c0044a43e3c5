package broker

import (
	"strings"

	"github.com/ampsbroker/ampsbroker/protocol"
)

// This file is the publish path: from a publish command read off a
// connection (or an in-process Client.Publish) to the outbound queue of
// every endpoint with a matching subscription.

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
	if reason := publishTopicReason(h.Topic); reason != "" {
		if reason != reasonDiscard {
			s.fail(h, reason, seq)
			return
		}
	} else if !s.entitled(h.Topic, Write) {
		// A refused publish is dropped; the failure is visible only in
		// the acks the publisher asked for (semantics §8.2).
		s.fail(h, ReasonNotEntitled, seq)
		return
	} else {
		s.b.publish(&s.endpoint, s.rt, h.Topic, h.CorrelationID, body)
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
// publisher's message type, to every matching subscription. It never
// blocks on a receiver.
func (b *Broker) publish(from *endpoint, r *router, topic, correlationID string, body []byte) {
	from.messagesIn.Add(1)
	b.stats.messagesIn.Add(1)
	ts := r.targets(topic)
	if len(ts) == 0 {
		return
	}
	d := newDelivery(topic, correlationID, body)
	for i := range ts {
		ts[i].ep.enqueueDelivery(d, &ts[i])
	}
}
