package broker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"sync"

	"github.com/ampsbroker/ampsbroker/protocol"
	"github.com/nats-io/nuid"
)

// DefaultClientMessageType is the message type of in-process clients. Topics
// are per message type (semantics §2), so in-process clients exchange
// messages with network clients that logged on with "json".
const DefaultClientMessageType = "json"

// Message is a message delivered to an in-process subscription.
type Message struct {
	// Topic is the topic it was published to (the concrete topic, also for
	// regex subscriptions).
	Topic string
	// SubID is the id of the subscription it is delivered for.
	SubID string
	// CorrelationID is the publisher's correlation id ("x"), if any.
	CorrelationID string
	// Key is the record's key on a SOW topic ("k"), else empty.
	Key string
	// Bookmark is the journal's bookmark of a journaled message
	// ("<id>|<position>|"), empty for a message that is not journaled.
	// Store the last one processed and subscribe from it
	// (SubscribeOptions.Bookmark) to resume after a restart.
	Bookmark string
	// SOW is true for a record of a query's result (SOW, or the snapshot
	// SOWAndSubscribe delivers before the live messages), false for a
	// published message.
	SOW bool
	// Data is the payload. It is shared with every other recipient: read
	// it, copy it, but do not modify it.
	Data []byte
}

// Client publishes and subscribes in process, through the same router and
// topic rules as network clients, without a socket. Its handlers run one at
// a time, in delivery order, on a goroutine of the client's own; they must
// not block for long, because the client's queue is bounded like a
// connection's and overflowing it disconnects the client (ErrSlowConsumer).
// A handler must not call Broker.Shutdown or Close, which wait for the
// goroutine it runs on.
// A Client is safe for concurrent use.
type Client struct {
	endpoint
	opts ClientOptions
	rt   *router

	mu   sync.Mutex
	subs map[string]*subscription
	done chan struct{}
}

// ClientOptions configures an in-process client. The zero value works.
type ClientOptions struct {
	// MessageType is the message type of the client's topics. Default
	// DefaultClientMessageType.
	MessageType string
	// QueueBytes bounds the client's queued deliveries. Default the
	// broker's OutboundQueueBytes.
	QueueBytes int
	// DropWhenSlow drops deliveries that do not fit the queue (counted in
	// Stats.Dropped) instead of closing the client with ErrSlowConsumer.
	// Such a client is also exempt from the message age limit.
	DropWhenSlow bool
}

// Connect returns an in-process client named name, configured by opts
// (nil means defaults). In-process clients are part of the host program
// and are not passed to the Authenticator or the Entitler.
func (b *Broker) Connect(ctx context.Context, name string, opts *ClientOptions) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := &Client{
		subs: make(map[string]*subscription),
		done: make(chan struct{}),
	}
	if opts != nil {
		c.opts = *opts
	}
	if c.opts.MessageType == "" {
		c.opts.MessageType = DefaultClientMessageType
	}
	if c.opts.QueueBytes <= 0 {
		c.opts.QueueBytes = b.opts.OutboundQueueBytes
	}
	maxAge := b.opts.MaxMessageAge
	if c.opts.DropWhenSlow {
		maxAge = 0 // it never falls behind: what does not fit is dropped
	}
	c.endpoint = b.newEndpoint(c.opts.QueueBytes, maxAge, "client_name", name, "transport", "in-process")
	c.name = name
	c.q.dropWhenFull = c.opts.DropWhenSlow
	c.ending = c.dropSubscriptions
	c.rt = b.router(c.opts.MessageType)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrBrokerClosed
	}
	b.clients[c] = struct{}{}
	b.wg.Add(1)
	b.startJanitorLocked()
	b.mu.Unlock()
	go c.deliverLoop()
	return c, nil
}

// Name returns the client's name.
func (c *Client) Name() string { return c.name }

// Publish publishes data to topic. It does not wait for subscribers; data
// may be reused by the caller when Publish returns.
func (c *Client) Publish(ctx context.Context, topic string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.closing() {
		return ErrClientClosed
	}
	switch reason := publishTopicReason(topic); reason {
	case "":
		if reason, err := c.publish(ctx, topic, nil, data); err != nil || reason != "" {
			return publishErr("publish", topic, reason, err)
		}
	case reasonDiscard:
	default:
		return fmt.Errorf("broker: publish to %q: %s", topic, reason)
	}
	return nil
}

// publish is Publish and DeltaPublish past their checks (h nil for a
// publish). On a SOW topic the cluster orders it returns once the publish
// was applied on this node, or ctx ended (see orderAndWait).
func (c *Client) publish(ctx context.Context, topic string, h *protocol.Header, data []byte) (reason string, err error) {
	if st := c.b.orderedStore(c.rt, topic); st != nil {
		c.endpoint.messagesIn.Add(1)
		return c.b.orderAndWait(ctx, &c.endpoint, c.rt, st, topic, h, data)
	}
	_, reason = c.b.publish(&c.endpoint, c.rt, topic, h, data)
	return reason, nil
}

// publishErr is the error of a publish (what: "publish" or "delta
// publish") refused for reason, or ended by err.
func publishErr(what, topic, reason string, err error) error {
	if err != nil {
		return fmt.Errorf("broker: %s to %q: %w", what, topic, err)
	}
	return fmt.Errorf("broker: %s to %q: %s", what, topic, reason)
}

// DeltaPublish publishes a delta to topic: on a SOW topic of JSON
// messages it is merged into the stored record with the same key (fields
// it has replace the stored ones, null and "" keep them, new fields are
// added, nested objects merge), and the merged record is stored and
// delivered; elsewhere it is a plain Publish.
func (c *Client) DeltaPublish(ctx context.Context, topic string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.closing() {
		return ErrClientClosed
	}
	if reason := publishTopicReason(topic); reason != "" {
		if reason == reasonDiscard {
			return nil
		}
		return fmt.Errorf("broker: delta publish to %q: %s", topic, reason)
	}
	if reason, err := c.publish(ctx, topic, &protocol.Header{Command: protocol.CmdDeltaPublish}, data); err != nil || reason != "" {
		return publishErr("delta publish", topic, reason, err)
	}
	return nil
}

// Subscription is an in-process subscription.
type Subscription struct {
	c   *Client
	sub *subscription
}

// ID returns the subscription id that deliveries carry in Message.SubID.
func (s *Subscription) ID() string { return s.sub.id }

// SubscribeOptions configure an in-process subscription. The zero value
// (or a nil *SubscribeOptions) takes every message of the topic.
type SubscribeOptions struct {
	// Filter is an AMPS content filter, e.g. `/symbol = 'IBM' AND
	// /qty > 100`: only messages for which it is TRUE reach the handler.
	// Default: none, every message. Subscribe returns the compile error
	// (a *filter.Error with the position and the problem) of a filter
	// that does not compile, and an error for a message type the filter
	// engine cannot read (it reads json, fix and nvfix).
	Filter string
	// Delta makes it a delta subscription: an update of a SOW record is
	// delivered as its key fields and the fields that changed (a new
	// record in full); elsewhere every message is delivered in full.
	// Default: full messages.
	Delta bool
	// Bookmark, with a journal (Options.Journal), replays the journal
	// before the live messages: "0" (everything kept), "0|1|" (nothing),
	// a message's Bookmark (what follows it), a comma list, a UTC
	// timestamp YYYYMMDDThhmmss[.ffffff], or a range such as "[a:b]"
	// (then the subscription ends at b). It reads at the handler's pace
	// and hands over to live messages with no gap and no duplicate; only
	// durable entries are delivered. Default "": live messages only. A
	// topic the journal does not record is subscribed live, or refused
	// under BookmarkFail. Not with Delta.
	Bookmark string
	// BookmarkNotFound is where a replay starts when no point of
	// Bookmark is in the journal: "now" (the default), "epoch", or
	// "fail" (Subscribe returns an error).
	BookmarkNotFound string
}

// Subscribe calls handler for every message published to topic from now
// on that passes opts.Filter (nil opts: every message). A topic
// containing any of ^$.*+?()[]{}|\ is a regular expression that matches
// anywhere in a topic ("ord.r" matches "new_orders"; anchor with ^ and $);
// any other topic matches only itself.
func (c *Client) Subscribe(ctx context.Context, topic string, handler func(Message), opts *SubscribeOptions) (*Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if handler == nil {
		return nil, errors.New("broker: Subscribe: nil handler")
	}
	if opts == nil {
		opts = &SubscribeOptions{}
	}
	sub, reason := newSubscription(nuid.Next(), topic, c.b.opts.NoRegexTopics, c.b.opts.MaxRegexProgram)
	if reason != "" {
		return nil, fmt.Errorf("broker: subscribe to %q: %s", topic, reason)
	}
	var err error
	if sub.filter, err = c.rt.compileFilter(opts.Filter); err != nil {
		return nil, fmt.Errorf("broker: subscribe to %q: %s: %w", topic, ReasonBadFilter, err)
	}
	sub.delta = opts.Delta
	s := &Subscription{c: c, sub: sub}
	sub.owner = &c.endpoint
	sub.handler = handler
	var r *replay
	if opts.Bookmark != "" {
		if r, err = c.bookmarked(sub, topic, opts); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing() {
		if r != nil {
			r.cur.Close()
		}
		return nil, ErrClientClosed
	}
	c.sweepEnded()
	c.subs[sub.id] = sub
	if r != nil {
		r.start()
	} else {
		c.rt.add(sub)
	}
	return s, nil
}

// sweepEnded lets go of the bookmark subscriptions that reached their end
// (a range's, top_n); c.mu is held.
func (c *Client) sweepEnded() {
	if c.endedReplays.Load() == 0 {
		return
	}
	// Set to 0 first: a replay that ends during the sweep counts again
	// and is swept next time.
	c.endedReplays.Store(0)
	for id, sub := range c.subs {
		if sub.replay != nil && sub.replay.ended.Load() {
			delete(c.subs, id)
		}
	}
}

// bookmarked returns the replay of a subscription with opts.Bookmark (not
// started), or nil when the subscription is live (the topic is not
// journaled and the fallback is live), or the error that refuses it.
func (c *Client) bookmarked(sub *subscription, topic string, opts *SubscribeOptions) (*replay, error) {
	fail := func(reason string) error {
		return fmt.Errorf("broker: subscribe to %q from %q: %s", topic, opts.Bookmark, reason)
	}
	if opts.Delta {
		return nil, fail(ReasonDeltaBookmark)
	}
	if c.b.opts.Journal == nil || sub.re == nil && !c.b.journaled(c.opts.MessageType, topic) {
		if c.b.opts.BookmarkFallback == BookmarkFail {
			return nil, fail(ReasonInvalidBookmark)
		}
		return nil, nil
	}
	if nf := opts.BookmarkNotFound; nf != "" && nf != "now" && nf != "epoch" && nf != "fail" {
		return nil, fail("BookmarkNotFound takes now, epoch or fail, not " + strconv.Quote(nf))
	}
	r, reason := c.b.newReplay(&c.endpoint, c.opts.MessageType, sub, opts.Bookmark, opts.BookmarkNotFound)
	if reason != "" {
		return nil, fail(reason)
	}
	return r, nil
}

// Unsubscribe removes the subscription. No handler call for it starts
// after Unsubscribe returns (one already running may still finish).
func (s *Subscription) Unsubscribe() error {
	s.sub.removed.Store(true)
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subs[s.sub.id] == s.sub {
		delete(c.subs, s.sub.id)
		if r := s.sub.replay; r != nil {
			r.stopNow() // removed: no handler call for it starts
		} else {
			c.rt.remove(s.sub)
		}
	}
	return nil
}

// Close removes the client's subscriptions and stops its deliveries: no
// handler call starts after Close returns. Close does not wait for a
// running handler, so a handler may call it.
func (c *Client) Close() error {
	c.close(ErrClientClosed)
	return nil
}

// Done is closed when the client has closed, for whatever reason.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the client closed: nil while open, ErrClientClosed after
// Close, ErrSlowConsumer when its queue overflowed or grew too old,
// ErrBrokerClosed after the broker shut down.
func (c *Client) Err() error {
	cause, _ := c.closeState()
	return cause
}

// dropSubscriptions is the client's part of the close path: its
// subscriptions leave the router. Whether queued messages are still handed
// over is the consumer's check of the close mode (see deliver): a flush
// (the broker's graceful Shutdown) delivers them, any harsher end stops.
func (c *Client) dropSubscriptions(closeMode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// A replay is told to stop, not waited for: this may run on its own
	// goroutine (its queue overflowed), and the broker waits for it.
	// What a replay queued is handed over as a live message is, when the
	// close flushes.
	routed := slices.DeleteFunc(slices.Collect(maps.Values(c.subs)), func(s *subscription) bool {
		if s.replay != nil {
			s.replay.stopNow()
		}
		return s.replay != nil
	})
	c.rt.remove(routed...)
	clear(c.subs)
}

func (c *Client) deliverLoop() {
	defer c.b.wg.Done()
	defer func() {
		c.b.mu.Lock()
		delete(c.b.clients, c)
		c.b.retire(&c.endpoint)
		c.b.mu.Unlock()
		close(c.done)
	}()
	var spare []outItem
	for range c.q.notify {
		if stop, _ := c.serveBatch(&spare, c.deliver); stop {
			return
		}
		// Yield once before waiting for the next wake-up: a publisher
		// fanning out to many clients has likely queued more by then,
		// and one batch costs less than a park and a wake-up per message.
		runtime.Gosched()
	}
}

// deliver runs the handlers of a batch, in order.
func (c *Client) deliver(items []outItem) (delivered, bytes int64, err error) {
	for i := range items {
		it := &items[i]
		if it.qr != nil {
			delivered += c.deliverSnapshot(it.qr)
			continue
		}
		handled := false
		for _, sub := range it.t.subs {
			// Unsubscribe marks a subscription removed, and Close (or a
			// Shutdown that stopped waiting) ends the client: no handler
			// call starts after either returns.
			if !sub.removed.Load() && !c.ended() {
				m := Message{Topic: it.d.topic, SubID: sub.id, CorrelationID: it.d.correlationID, Key: it.d.key, Data: it.d.body}
				if it.d.pos != 0 {
					m.Bookmark = FormatBookmark(it.d.jid, it.d.pos)
				}
				sub.handler(m)
				handled = true
			}
		}
		if handled {
			delivered++
		}
	}
	// In-process deliveries are not serialised: no bytes go out.
	return delivered, 0, nil
}
