package broker

import (
	"strconv"

	"github.com/ampsbroker/ampsbroker/protocol"
)

// delivery is one published message encoded once for every recipient. The
// per-connection part of a delivery header, "sids", comes from the target;
// the writer assembles prefix + sids + suffix into its own scratch buffer, so
// fanning out to N connections allocates nothing beyond this value.
//
// Header layout (wire spec §8.2):
//
//	{"c":"p","t":<topic>,"sids":<ids>[,"x":<correlation id>],"l":<len>}<body>
type delivery struct {
	topic string
	// prefix is `{"c":"p","t":"<topic>","sids":`.
	prefix []byte
	// suffix is `[,"x":"<cid>"],"l":<len>}`.
	suffix []byte
	body   []byte
	// correlationID is the publisher's "x", passed through (wire spec §8.2).
	correlationID string
}

// newDelivery copies body: the publisher's read buffer is reused.
// prefix, suffix and body share one allocation.
func newDelivery(topic, correlationID string, body []byte) *delivery {
	n := len(topic) + len(correlationID) + len(body) + 64
	buf := make([]byte, 0, n)
	buf = append(buf, `{"c":"p","t":`...)
	buf = protocol.AppendString(buf, topic)
	buf = append(buf, `,"sids":`...)
	p := len(buf)
	if correlationID != "" {
		buf = append(buf, `,"x":`...)
		buf = protocol.AppendString(buf, correlationID)
	}
	buf = append(buf, `,"l":`...)
	buf = strconv.AppendInt(buf, int64(len(body)), 10)
	buf = append(buf, '}')
	s := len(buf)
	buf = append(buf, body...)
	return &delivery{
		topic:         topic,
		prefix:        buf[:p:p],
		suffix:        buf[p:s:s],
		body:          buf[s:],
		correlationID: correlationID,
	}
}

// appendHeader appends the delivery header for t to dst. It leaves out
// subscriptions removed since t was built, and reports false when none is
// left (the delivery is then dropped).
func (d *delivery) appendHeader(dst []byte, t *target) ([]byte, bool) {
	live := 0
	for _, s := range t.subs {
		if !s.removed.Load() {
			live++
		}
	}
	if live == 0 {
		return dst, false
	}
	dst = append(dst, d.prefix...)
	if live == len(t.subs) {
		dst = append(dst, t.sids...)
	} else {
		// Rare: an unsubscribe raced this delivery. Spell out the ids
		// still subscribed.
		var ids []byte
		for _, s := range t.subs {
			if !s.removed.Load() {
				if len(ids) > 0 {
					ids = append(ids, ',')
				}
				ids = append(ids, s.id...)
			}
		}
		dst = protocol.AppendString(dst, string(ids))
	}
	return append(dst, d.suffix...), true
}

// size is what the delivery costs in a connection's outbound budget.
func (d *delivery) size(t *target) int {
	return len(d.prefix) + len(t.sids) + len(d.suffix) + len(d.body) + itemOverhead
}
