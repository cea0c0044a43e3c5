package broker

import (
	"strings"

	"github.com/ampsbroker/ampsbroker/protocol"
)

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
}

// newDelivery copies body: the publisher's read buffer is reused. The
// encoded header and the body share one allocation.
func newDelivery(topic, correlationID string, body []byte) *delivery {
	d := &delivery{topic: topic, correlationID: correlationID}
	h := protocol.Header{Command: protocol.CmdP, Topic: topic, CorrelationID: correlationID}
	h.Set(protocol.FieldLength, uint64(len(body)))
	// Room for the header without escapes: ,"c":"p" ,"t":"" ,"x":"" ,"l":
	// and 20 digits take 47 bytes besides topic and correlation id.
	buf := make([]byte, 0, len(topic)+len(correlationID)+len(body)+48)
	buf = d.hdr.Prepare(buf, &h)
	s := len(buf)
	d.body = append(buf, body...)[s:]
	return d
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
	m.Shared, m.SubIDs, m.Body = &d.hdr, t.sids, d.body
	if live < len(t.subs) {
		// Rare: an unsubscribe raced this delivery. Spell out the ids
		// still subscribed.
		var ids strings.Builder
		for _, s := range t.subs {
			if !s.removed.Load() {
				if ids.Len() > 0 {
					ids.WriteByte(',')
				}
				ids.WriteString(s.id)
			}
		}
		m.SubIDs = protocol.NewSubIDs(ids.String())
	}
	return true
}

// size is what the delivery costs in a connection's outbound budget.
func (d *delivery) size(t *target) int {
	return d.hdr.Len(t.sids) + len(d.body) + itemOverhead
}
