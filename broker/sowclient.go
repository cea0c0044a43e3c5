package broker

import (
	"context"
	"errors"
	"fmt"
	"github.com/ampsbroker/ampsbroker/protocol"
	"strings"

	"github.com/nats-io/nuid"
)

// SOWQuery selects and orders the records of a State-of-the-World query.
// The zero value (or a nil *SOWQuery) returns every record.
type SOWQuery struct {
	// Filter is an AMPS content filter; only records for which it is TRUE
	// are returned. Default: none.
	Filter string
	// Keys, when not empty, are the only records considered (AMPS's
	// sow_keys), by their keys as in Message.Key.
	Keys []string
	// OrderBy orders the records: "/field [ASC|DESC]", comma-separated,
	// e.g. "/px DESC, /id". Default: by topic, then key.
	OrderBy string
	// TopN, when positive, returns at most that many records (after
	// ordering). Default: all.
	TopN int
}

// query validates q for the client's message type.
func (c *Client) query(q *SOWQuery) (*query, error) {
	if q == nil {
		q = &SOWQuery{}
	}
	out := &query{topN: -1, bs: 1}
	if q.TopN > 0 {
		out.topN = q.TopN
	}
	var err error
	if out.flt, err = c.rt.compileFilter(q.Filter); err != nil {
		return nil, fmt.Errorf("broker: %s: %w", ReasonBadFilter, err)
	}
	if out.order, err = parseOrderBy(q.OrderBy); err != nil {
		return nil, fmt.Errorf("broker: %s: %w", ReasonInvalidOrderBy, err)
	}
	if len(q.Keys) > 0 {
		out.keys = make(map[string]bool, len(q.Keys))
		for _, k := range q.Keys {
			out.keys[k] = true
		}
	}
	return out, nil
}

// stores returns the stores topic reaches: a SOW topic, or every SOW
// topic a regular expression topic matches.
func (c *Client) stores(topic string) ([]*sowStore, bool, error) {
	sub, reason := newSubscription("", topic, c.b.opts.NoRegexTopics, c.b.opts.MaxRegexProgram)
	if reason != "" {
		return nil, false, fmt.Errorf("broker: topic %q: %s", topic, reason)
	}
	return c.b.sow.matching(sub.topic, sub.re, c.opts.MessageType), sub.re != nil, nil
}

// SOW returns the records of topic, a SOW topic or a regular expression
// over SOW topics, that q selects, in q's order. A literal topic that is
// not a SOW topic is an error.
func (c *Client) SOW(ctx context.Context, topic string, q *SOWQuery) ([]Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.closing() {
		return nil, ErrClientClosed
	}
	qq, err := c.query(q)
	if err != nil {
		return nil, err
	}
	stores, regex, err := c.stores(topic)
	if err != nil {
		return nil, err
	}
	if !regex && len(stores) == 0 {
		return nil, fmt.Errorf("broker: sow on %q: %s", topic, ReasonNotSOWTopic)
	}
	cands := snapshotAll(stores)
	qr := &queryResult{q: qq, cands: cands, mt: c.opts.MessageType}
	sel, _, _ := qr.evaluate(c.b.opts.Name)
	out := make([]Message, len(sel))
	for i, r := range sel {
		out[i] = Message{Topic: r.topic, CorrelationID: r.cid, Key: r.key, SOW: true, Data: r.data}
	}
	return out, nil
}

// SOWAndSubscribe queries topic as SOW does and subscribes to it at the
// same instant: handler gets the records of the query (Message.SOW set),
// then every later message that q.Filter takes, and no message twice or
// not at all across that boundary. q.TopN limits the records only. A
// topic that is not a SOW topic gives no records, then live messages.
func (c *Client) SOWAndSubscribe(ctx context.Context, topic string, handler func(Message), q *SOWQuery) (*Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if handler == nil {
		return nil, errors.New("broker: SOWAndSubscribe: nil handler")
	}
	qq, err := c.query(q)
	if err != nil {
		return nil, err
	}
	sub, reason := newSubscription(nuid.Next(), topic, c.b.opts.NoRegexTopics, c.b.opts.MaxRegexProgram)
	if reason != "" {
		return nil, fmt.Errorf("broker: subscribe to %q: %s", topic, reason)
	}
	sub.filter = qq.flt
	sub.owner = &c.endpoint
	sub.handler = handler
	stores := c.b.sow.matching(sub.topic, sub.re, c.opts.MessageType)
	if c.closing() {
		return nil, ErrClientClosed
	}
	// As for a network client: the records are copied and the
	// subscription registered under the topics' locks, and the result is
	// queued before anything a later publish queues. c.mu is taken only
	// inside, briefly: a publisher that holds a topic's lock may close this
	// client (its queue overflowed), and closing takes c.mu.
	var cands []*record
	closed := false
	stores = c.b.lockStores(stores, sub, c.opts.MessageType, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if closed = c.closing(); closed {
			return
		}
		c.subs[sub.id] = sub
		c.rt.add(sub)
	})
	if closed {
		for _, st := range stores {
			st.mu.Unlock()
		}
		return nil, ErrClientClosed
	}
	for _, st := range stores {
		cands = st.snapshot(cands)
	}
	c.enqueue(outItem{qr: &queryResult{q: qq, subID: sub.id, sub: sub, cands: cands, mt: c.opts.MessageType},
		size: itemOverhead + 16*len(cands)})
	for _, st := range stores {
		st.mu.Unlock()
	}
	return &Subscription{c: c, sub: sub}, nil
}

// deliverSnapshot hands a SOWAndSubscribe's records to its handler.
func (c *Client) deliverSnapshot(qr *queryResult) (delivered int64) {
	sel, _, _ := qr.evaluate(c.b.opts.Name)
	for _, r := range sel {
		if qr.sub.removed.Load() || c.ended() {
			break
		}
		qr.sub.handler(Message{Topic: r.topic, SubID: qr.sub.id, CorrelationID: r.cid, Key: r.key, SOW: true, Data: r.data})
		delivered++
	}
	return delivered
}

// SOWDelete deletes the records of topic (a SOW topic, or a regular
// expression over SOW topics) for which filter is TRUE ("1=1": all), and
// returns how many it deleted. Subscriptions with the oof option are told.
func (c *Client) SOWDelete(ctx context.Context, topic, filter string) (int, error) {
	if strings.TrimSpace(filter) == "" {
		return 0, errors.New("broker: SOWDelete: empty filter (use 1=1 to delete every record)")
	}
	flt, err := c.rt.compileFilter(filter)
	if err != nil {
		return 0, fmt.Errorf("broker: %s: %w", ReasonBadFilter, err)
	}
	return c.sowDelete(ctx, topic, deleteSelector{flt: flt}, &protocol.Header{Filter: filter})
}

// SOWDeleteKeys deletes the records of topic with the given keys (as in
// Message.Key; unknown keys are skipped) and returns how many it deleted.
func (c *Client) SOWDeleteKeys(ctx context.Context, topic string, keys ...string) (int, error) {
	return c.sowDelete(ctx, topic, deleteSelector{keys: keys}, &protocol.Header{SOWKeys: strings.Join(keys, ",")})
}

// sowDelete deletes sel's records from the stores of topic; on a node
// whose SOW topics the cluster orders, it hands the delete to the order
// as h's selector, store by store, and waits for each to be applied here.
func (c *Client) sowDelete(ctx context.Context, topic string, sel deleteSelector, h *protocol.Header) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if c.closing() {
		return 0, ErrClientClosed
	}
	stores, regex, err := c.stores(topic)
	if err != nil {
		return 0, err
	}
	if !regex && len(stores) == 0 {
		return 0, fmt.Errorf("broker: sow_delete on %q: %s", topic, ReasonNotSOWTopic)
	}
	total := 0
	for _, st := range stores {
		if c.b.ordersSOW() {
			ch := make(chan orderOutcome, 1) // the outcome may come after ctx ended
			reason := c.b.orderDelete(&c.endpoint, c.rt, st, h, nil, func(o orderOutcome) { ch <- o })
			var err error
			if reason == "" {
				var o orderOutcome
				o, err = awaitOutcome(ctx, ch)
				reason, total = o.reason(), total+o.Deleted
			}
			if err != nil {
				return total, fmt.Errorf("broker: sow_delete on %q: %w", st.topic, err)
			}
			if reason != "" {
				return total, fmt.Errorf("broker: sow_delete on %q: %s", st.topic, reason)
			}
			continue
		}
		_, n, _, reason := c.b.deleteFrom(&c.endpoint, nil, c.rt, st, sel)
		total += n
		if reason != "" {
			return total, fmt.Errorf("broker: sow_delete on %q: %s", st.topic, reason)
		}
	}
	return total, nil
}
