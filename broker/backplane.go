package broker

import (
	"sync"
	"sync/atomic"

	"github.com/ampsbroker/ampsbroker/protocol"
)

// This file is the broker's side of a cluster: Options.Backplane carries
// the publishes this node accepts to the other nodes of a cluster and
// theirs to it, so that several brokers act as one. The broker never
// learns how (package natscluster does it over NATS); it only hands out
// and takes in RemotePublish values.
//
// Division of labour. Everything that depends on the subscriber stays on
// the subscriber's node: topic matching, regex topics, content filters,
// entitlements, select lists, conflation and acks. Across the cluster
// travels only what a publisher sent, once it was accepted.
//
// The rules this file implements:
//
//   - What crosses. A publish (or a delta_publish, which is a publish
//     there) accepted by this node to a topic without a SOW store, after it
//     was journaled (when its topic is) and routed to this node's
//     subscriptions. A refused publish, a duplicate, a publish to /AMPS,
//     and anything on a SOW topic (publish, delta_publish, sow_delete) stay
//     on this node: SOW topics across nodes need one order per topic, which
//     a later increment gets from the backplane (see Backplane).
//   - Never blocking. Backplane.Publish must not wait for other nodes; a
//     publish it refuses (its buffer full, its link down) is lost to the
//     other nodes and only to them: the publisher still gets its acks, the
//     failure is counted (ClusterStats.PublishFailures) and logged when it
//     starts and when it ends, not per message.
//   - Order. The broker calls Publish from the publisher's own goroutine,
//     in the order it processed the publisher's messages, and while it
//     holds the locks that ordered the publish's local deliveries (the
//     topic's, and a regex subscription's); the backplane keeps the order
//     of the calls, and the receiving node routes what one delivery
//     goroutine hands it in that order. So each publisher's messages reach
//     every node in the order it sent them, and the publishes one node
//     accepted to a topic reach every subscriber of every node in one
//     order. Publishes accepted by different nodes are not ordered against
//     each other.
//   - Never twice. A remote publish is routed here and nothing else: it is
//     not handed back to the backplane, not journaled (the node that
//     accepted it journaled it; with a journal shared by the cluster, as
//     natscluster's JetStream journal is, that is the one entry every node
//     replays), and not counted in Stats.MessagesIn (it is in
//     ClusterStats.Received).
//   - Remote publishes that cannot be routed as the origin meant them are
//     dropped and counted (ClusterStats.ReceivedDropped): one to a topic
//     that is a SOW topic on this node (the nodes' SOW definitions differ,
//     a configuration error), or to /AMPS.
//   - A remote publisher's sequence number raises this node's mark for its
//     client name (as a local publish does), so that a publisher that
//     fails over to this node is told on logon where it stands and its
//     publish store's replay of what the cluster already has is dropped as
//     a duplicate. A replay racing the remote publish it repeats (the
//     publisher moved faster than the backplane) is not caught.
//   - A remote publish that was journaled carries its journal position and
//     the origin's journal id; a subscription here with the bookmark option
//     gets it as its "bm" only when this node has a journal with the same
//     id (nodes that share one journal name the same instance, see
//     JournalID). A bookmark subscription is not routed to at all (it reads
//     the journal, replay and live alike, see replay.go): with a journal
//     the nodes share it gets every node's journaled publishes once, in
//     the journal's order; with a journal of each node's own, only its
//     node's.
//
// Lifetime. New starts the deliveries (Backplane.Start); from Shutdown or
// Close on, remote publishes are dropped, and once they have returned no
// delivery is still being routed. The broker never closes the backplane:
// like Options.Journal, the host that made it closes it after Shutdown.

// Backplane carries a node's accepted publishes to the other nodes of a
// cluster and theirs to it. Implementations are safe for concurrent use.
//
// It holds what the broker drives today: plain publishes (topics without
// a SOW store). SOW topics across nodes will add a method that hands a
// SOW-topic publish to the cluster to be ordered and a second callback
// that applies ordered publishes (natscluster's proposal has them as
// Order and Subscribe's apply), and BackplaneState will say whether the
// node is still catching up.
type Backplane interface {
	// Publish hands a publish accepted by this node to the other nodes. It
	// must not block on them, nor wait for anything a delivery holds (the
	// broker calls it holding the topic's order locks, which a remote
	// delivery may be waiting for): it queues (copying what it keeps of p,
	// whose Body is the publisher's buffer) or fails at once. What it queues
	// reaches each other node at most once, and in the order of the calls
	// for one publisher.
	Publish(p *RemotePublish) error

	// Start begins delivering what other nodes published (never this
	// node's own publishes) to deliver, from one goroutine, in arrival
	// order; deliver routes the publish before it returns and does not
	// keep p. The broker calls it once, from New.
	Start(deliver func(p *RemotePublish)) error

	// State reports the node's link to the cluster, for Stats.
	State() BackplaneState
}

// RemotePublish is one accepted publish as it crosses the cluster: what a
// receiving node needs to route it as if one of its clients had sent it.
type RemotePublish struct {
	MessageType string
	Topic       string
	// ClientName is the publisher's (a filter's CLIENT_NAME() reads it);
	// Sequence its "s", 0 when it had none.
	ClientName string
	Sequence   uint64
	// CorrelationID is the publisher's "x", passed through to subscribers.
	CorrelationID string
	// Position is the message's position in the origin's journal, 0 when
	// it is not journaled; JournalID that journal's id (see JournalID).
	Position  Position
	JournalID uint64
	Body      []byte
}

// BackplaneState is a node's link to its cluster.
type BackplaneState struct {
	// Connected: the link is up (publishes reach the other nodes).
	Connected bool
	// Lost counts the publishes of other nodes the backplane received
	// but dropped before they reached the broker (it fell behind).
	Lost int64
}

// ClusterStats are a node's cluster figures in a Stats snapshot.
type ClusterStats struct {
	BackplaneState
	// StartErr is why Backplane.Start failed in New (the node then
	// receives nothing from the cluster); nil when it started.
	StartErr error
	// Published counts the publishes handed to the backplane,
	// PublishFailures those it refused (never seen by other nodes).
	Published, PublishFailures int64
	// Received counts the remote publishes delivered to this node,
	// ReceivedDropped those it did not route (a SOW topic here, or /AMPS).
	Received, ReceivedDropped int64
}

// cluster is the broker's state of its backplane.
type cluster struct {
	bp       Backplane
	startErr error

	published, publishFailures atomic.Int64
	received, receivedDropped  atomic.Int64
	// failing is set while Publish fails, so that a run of failures is
	// logged once when it starts and once when it ends.
	failing atomic.Bool

	// mu is held for reading while a remote publish is routed and for
	// writing by Shutdown, which sets off: after that no remote publish
	// is routed.
	mu  sync.RWMutex
	off bool
}

// startCluster starts the deliveries of Options.Backplane, if any.
func (b *Broker) startCluster() {
	bp := b.opts.Backplane
	if bp == nil {
		return
	}
	b.cluster = &cluster{bp: bp}
	if err := bp.Start(b.deliverRemote); err != nil {
		b.cluster.startErr = err
		b.log.Error("backplane did not start; this node receives nothing from the cluster", "err", err)
	}
}

// stopCluster stops routing remote publishes, waiting for one being
// routed.
func (b *Broker) stopCluster() {
	if c := b.cluster; c != nil {
		c.mu.Lock()
		c.off = true
		c.mu.Unlock()
	}
}

// clusterStats is the Stats figure of the backplane, nil without one.
func (b *Broker) clusterStats() *ClusterStats {
	c := b.cluster
	if c == nil {
		return nil
	}
	return &ClusterStats{
		BackplaneState:  c.bp.State(),
		StartErr:        c.startErr,
		Published:       c.published.Load(),
		PublishFailures: c.publishFailures.Load(),
		Received:        c.received.Load(),
		ReceivedDropped: c.receivedDropped.Load(),
	}
}

// toBackplane hands a publish of from, accepted and routed here, to the
// other nodes (h its header, nil for an in-process client; pos its
// journal position, 0 when not journaled).
func (b *Broker) toBackplane(from *endpoint, mt, topic string, h *protocol.Header, pos Position, body []byte) {
	c := b.cluster
	if c == nil {
		return
	}
	p := RemotePublish{MessageType: mt, Topic: topic, ClientName: from.name, Body: body}
	if h != nil {
		p.CorrelationID = h.CorrelationID
		if h.Has(protocol.FieldSequence) {
			p.Sequence = h.Sequence
		}
	}
	if pos != 0 {
		p.Position, p.JournalID = pos, b.jid
	}
	c.published.Add(1)
	if err := c.bp.Publish(&p); err != nil {
		c.publishFailures.Add(1)
		if !c.failing.Swap(true) {
			b.log.Warn("backplane refused a publish; other nodes miss it (logged once until one succeeds)", "topic", topic, "mt", mt, "err", err)
		}
		return
	}
	if c.failing.Load() && c.failing.Swap(false) {
		b.log.Info("backplane takes publishes again")
	}
}

// deliverRemote routes a publish another node accepted to this node's
// subscriptions (the rules are at the top of this file).
func (b *Broker) deliverRemote(p *RemotePublish) {
	c := b.cluster
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.off {
		return
	}
	c.received.Add(1)
	if publishTopicReason(p.Topic) != "" {
		c.receivedDropped.Add(1)
		return
	}
	if p.Sequence != 0 {
		b.seqs.processed(p.ClientName, p.Sequence)
	}
	b.routersMu.RLock()
	r := b.routers[p.MessageType]
	b.routersMu.RUnlock()
	if r == nil {
		return // no client of this message type ever came here
	}
	rs := r.routes(p.Topic)
	if rs.store != nil {
		c.receivedDropped.Add(1)
		b.log.Debug("remote publish to a SOW topic dropped: the nodes' SOW topics differ", "topic", p.Topic, "mt", p.MessageType)
		return
	}
	if p.Position == 0 || b.opts.Journal == nil || p.JournalID != b.jid {
		b.route(p.ClientName, rs, p.Topic, nil, p.CorrelationID, p.Body, nil)
		return
	}
	if len(rs.targets) == 0 {
		return
	}
	d := newPooledDelivery(p.Topic, p.CorrelationID, p.Body)
	d.setPosition(b, p.Position)
	b.route(p.ClientName, rs, p.Topic, d, p.CorrelationID, p.Body, nil)
	d.release()
}
