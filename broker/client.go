package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nuid"
)

// ErrClientClosed is returned by a Client's methods after Close, after the
// broker shut down, or after the client was disconnected as a slow consumer
// (see Client.Err).
var ErrClientClosed = errors.New("broker: client closed")

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
	b    *Broker
	name string
	opts ClientOptions
	rt   *router
	q    *outbound

	mu     sync.Mutex
	subs   map[string]*subscription
	closed bool
	err    error
	done   chan struct{}
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
		b:    b,
		name: name,
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
	c.rt = b.router(c.opts.MessageType)
	c.q = newOutbound(c.opts.QueueBytes)
	c.q.dropWhenFull = c.opts.DropWhenSlow
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
	if c.isClosed() {
		return ErrClientClosed
	}
	switch reason := publishTopicReason(topic); reason {
	case "":
		c.b.publish(c.rt, topic, "", data)
	case reasonDiscard:
	default:
		return fmt.Errorf("broker: publish to %q: %s", topic, reason)
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

// Subscribe calls handler for every message published to topic from now
// on. A topic with regex characters is an unanchored regular expression
// (wire spec §11).
func (c *Client) Subscribe(ctx context.Context, topic string, handler func(Message)) (*Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if handler == nil {
		return nil, errors.New("broker: Subscribe: nil handler")
	}
	sub, reason := newSubscription(nuid.Next(), topic, c.b.opts.NoRegexTopics, c.b.opts.MaxRegexProgram)
	if reason != "" {
		return nil, fmt.Errorf("broker: subscribe to %q: %s", topic, reason)
	}
	s := &Subscription{c: c, sub: sub}
	sub.owner = c
	sub.handler = handler
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClientClosed
	}
	c.subs[sub.id] = sub
	c.rt.add(sub)
	return s, nil
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
		c.rt.remove(s.sub)
	}
	return nil
}

// Close removes the client's subscriptions and stops its deliveries: no
// handler call starts after Close returns. Close does not wait for a
// running handler, so a handler may call it.
func (c *Client) Close() error {
	c.closeWith(ErrClientClosed, false)
	return nil
}

// Done is closed when the client has closed, for whatever reason.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the client closed: nil while open, ErrClientClosed after
// Close, ErrSlowConsumer when its queue overflowed, ErrBrokerClosed after
// the broker shut down.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// shutdown closes the client because the broker shuts down; drain lets
// queued deliveries run first, otherwise they are dropped.
func (c *Client) shutdown(drain bool) { c.closeWith(ErrBrokerClosed, drain) }

func (c *Client) closeWith(cause error, drain bool) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.err = cause
	for id, sub := range c.subs {
		// Draining (broker Shutdown) still hands queued messages over;
		// otherwise no handler call starts after this.
		sub.removed.Store(!drain)
		c.rt.remove(sub)
		delete(c.subs, id)
	}
	c.mu.Unlock()
	c.q.close(drain)
}

// enqueueDelivery implements endpoint.
func (c *Client) enqueueDelivery(d *delivery, t *target) bool {
	switch c.q.push(outItem{d: d, t: t, size: d.size(t), at: c.b.clock.Load()}) {
	case pushOK:
		return true
	case pushDropped:
		c.b.stats.dropped.Add(1)
		return true
	case pushOverflow:
		c.slowConsumer("queue over its byte budget")
	}
	return false
}

// slowConsumer closes the client as a slow consumer.
func (c *Client) slowConsumer(why string) {
	c.b.stats.slowConsumers.Add(1)
	c.b.log.Warn("closing in-process client: slow consumer", "client_name", c.name, "why", why,
		"queued_limit", c.opts.QueueBytes)
	c.closeWith(ErrSlowConsumer, false)
}

func (c *Client) deliverLoop() {
	defer c.b.wg.Done()
	defer func() {
		c.b.mu.Lock()
		delete(c.b.clients, c)
		c.b.mu.Unlock()
		close(c.done)
	}()
	var spare []outItem
	for range c.q.notify {
		items, closed, overflowed := c.q.take(spare)
		if overflowed {
			return
		}
		n, delivered := 0, 0
		for i := range items {
			it := &items[i]
			handled := false
			for _, sub := range it.t.subs {
				// Unsubscribe and Close mark subscriptions removed: no
				// handler call for them starts afterwards.
				if !sub.removed.Load() {
					sub.handler(Message{Topic: it.d.topic, SubID: sub.id, CorrelationID: it.d.correlationID, Data: it.d.body})
					handled = true
				}
			}
			if handled {
				delivered++
			}
			n += it.size
		}
		c.b.stats.messagesOut.Add(int64(delivered))
		c.q.release(n)
		spare = clearItems(items)
		if closed {
			return
		}
	}
}
