package broker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
//     and anything on a SOW topic stay on this node, unless the backplane
//     orders SOW topics (see SOWOrderer and "SOW topics" below).
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
// SOW topics. A store needs every node to apply one topic's updates in
// one order, or the nodes' records part ways. When the backplane also
// implements SOWOrderer (and the node has no journal, see below), a
// publish or delta_publish to a SOW topic is not applied where it was
// accepted: it is checked there (entitlement, a key it can have) and
// handed to the cluster's order (Order), and every node, its origin
// included, applies it when the order hands it back (StartOrdered's
// apply), through the code a local publish takes: upsert or merge, oof
// and delta subscribers, sow_and_subscribe's no-gap handover. The rules:
//
//   - Acks. received once Order took the publish; processed once it was
//     applied here (failed with the store's reason when the store refused
//     it); persisted once the order confirmed it (Order's done: the
//     cluster holds it, applied here or not yet), with the publisher's
//     sequence, or a failed persisted ack with ReasonOrderFailed (so
//     persisted and processed may come in either order). A publish Order
//     refuses gets failure acks and is applied nowhere. An in-process
//     client's Publish returns once its publish was applied here.
//   - A publish whose order was not confirmed may still be in the order
//     (its confirmation was lost, as when the order's leader changes): its
//     publisher's store resends it, perhaps through another node, and a
//     backplane that deduplicates by publisher identity (client name and
//     sequence; natscluster does, within its stream's duplicate window)
//     orders the resend once and confirms it.
//   - The session's next command that does not enter the order waits
//     until what it ordered before was applied here (ordertrack.go), so a
//     client reads its own writes and its messages keep their order on
//     its node; a plain publish carries the place of its publisher's last
//     ordered one (RemotePublish.After) so that they keep it on the other
//     nodes too.
//   - What only the apply can tell (a delta that does not merge, a key
//     whose values changed) is decided by every node alike, so the nodes
//     stay equal; the refusal is counted (ClusterStats.ApplyRefused),
//     logged at debug level, and told the publisher in its acks.
//   - A publisher's own subscription sees its publish once, when it is
//     applied here, like every other node's subscribers.
//   - sow_delete is ordered too, as its selector (filter, keys or a
//     message), one per SOW topic it reaches: which records it removes is
//     decided where and when it is applied, so every node removes the same
//     ones. Its acks (processed, stats, completed, persisted: each carries
//     the counts) are sent when it was applied on its origin node (the
//     order stored it by then); a failed order fails them with
//     ReasonOrderFailed (with a regex topic, the topics whose delete was
//     already handed over are still removed).
//   - Expiration is in the order too (clusterexpiry.go): a record's
//     lifetime runs from when the order took the publish that wrote it
//     (RemotePublish.OrderTime), and a node's janitor does not remove a
//     record whose deadline passed but hands the order an expire request
//     for the record's version (the Ordinal that wrote it); every node
//     removes the record, with "expired" oof notices, where the request
//     comes in the order, if it still has that version. So an update
//     racing an expiry meets the record on every node or on none, and a
//     node that catches up does not revive records that expired.
//   - With Options.Journal too, a SOW publish is journaled once, by its
//     origin, when the order hands it back there (as merged, for a delta,
//     like a local one), so the journal has what the SOW has; its
//     persisted ack is the journal's cumulative one, sent once it was
//     applied and journaled there. With an AsyncAppender journal the
//     apply does not wait for the append (its outcome settles the command
//     later), and live deliveries carry no journal position (the bookmark
//     option's "bm"); other nodes' never do, as it is known only where it
//     is journaled. The SOW topics come from the order at
//     start (New does not rebuild them from the journal), and removals
//     (sow_delete, expiry) are not journaled, as they serve only that
//     rebuild. Entries of SOW publishes accepted on different nodes are
//     in the journal in the order their origins applied them, which for
//     racing publishers may differ from the SOW's order.
//
// Snapshots. A SOWOrderer that also implements SOWSnapshotter gets the
// means to snapshot the ordered SOW topics and load a snapshot at start,
// so that its log of the order can be cut (clustersnap.go).
//
// Lifetime. New starts the deliveries (Backplane.Start). A graceful
// Shutdown lets this node's ordered commands be applied and confirmed
// first (at most finalDurableWait, routing meanwhile), then fails those
// still out; from then on, and from Close on, remote publishes are
// dropped, and once Shutdown or Close returned no delivery is still being
// routed. The broker never closes the backplane:
// like Options.Journal, the host that made it closes it after Shutdown.

// Backplane carries a node's accepted publishes to the other nodes of a
// cluster and theirs to it. Implementations are safe for concurrent use.
//
// It carries plain publishes (topics without a SOW store); a backplane
// that also implements SOWOrderer carries SOW topics too.
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
	// node's own publishes) to deliver, one call at a time (calls never
	// overlap), each node's publishes in the order it sent them; deliver
	// routes the publish before it returns and does not keep p. The broker
	// calls it once, from New.
	Start(deliver func(p *RemotePublish)) error

	// State reports the node's link to the cluster, for Stats.
	State() BackplaneState
}

// SOWOrderer is implemented by a Backplane that orders SOW-topic publishes
// across the cluster: one order per topic, the same on every node.
type SOWOrderer interface {
	// Order hands a publish to a SOW topic, accepted by this node (or an
	// expire request of its janitor, RemotePublish.Expire), to the
	// cluster's order for its topic. Like Publish it must not wait for
	// other nodes; it copies what it keeps of p. It returns an error when
	// it cannot take p (then no node applies it). When it took p it calls
	// done exactly once, never before Order returned, from any goroutine:
	// nil once p has its place in the topic's order (durable as far as the
	// backplane makes it), ErrAlreadyOrdered when p is a resend the order
	// already holds (it is not applied again), else why p's place is not
	// known. For one publisher, done is called in the order of the Order
	// calls.
	Order(p *RemotePublish, done func(err error)) error

	// StartOrdered begins handing the ordered SOW-topic publishes of every
	// node, this node's own included, to apply, from one goroutine, each
	// topic's in its cluster order, with their Ordinal and OrderTime set;
	// apply stores and routes p before it returns and does not keep p. The
	// broker calls it once, from New, after Start.
	StartOrdered(apply func(p *RemotePublish)) error
}

// ErrAlreadyOrdered is what a SOWOrderer's done reports for a publish the
// order already held (a publish store's resend, with the same client name
// and sequence, of a publish whose confirmation was lost): it is confirmed
// and is not applied again.
var ErrAlreadyOrdered = errors.New("broker: publish already in the cluster's order")

// ReasonOrderFailed refuses a publish to a SOW topic that the cluster's
// order did not take (see SOWOrderer), or fails its persisted ack when the
// order did not confirm it.
const ReasonOrderFailed = "cluster order failed"

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
	// For SOW topics (SOWOrderer): Delta marks a delta_publish; SOWKey is
	// the publisher's "k" (the key of a topic without Keys); Expiration
	// its "e" in seconds, when HasExpiration.
	Delta         bool
	SOWKey        string
	Expiration    uint64
	HasExpiration bool
	// Delete marks a sow_delete of Topic's records: those Filter selects,
	// or the keys of the comma list SOWKeys, or the record Body (with
	// SOWKey) would update; exactly one is set. Token is the origin's
	// (it finds the command to ack when the delete is applied there); a
	// backplane carries it as is.
	Delete          bool
	Filter, SOWKeys string
	Token           uint64
	// Ordinal is an ordered publish's place in the cluster's order, set by
	// the SOWOrderer when it hands the publish to apply: the same on every
	// node and increasing along the order (natscluster: the stream
	// sequence). 0 elsewhere.
	Ordinal uint64
	// After, on a plain publish, is the Ordinal of the last ordered
	// publish its publisher made before it (0: none): a receiving node
	// routes the plain publish only once it applied that one, so that one
	// publisher's messages to SOW topics and to other topics keep their
	// order on every node (the backplane sees to it; see Backplane).
	After uint64
	// OrderTime is when the order took an ordered publish (natscluster:
	// the stream's timestamp of the message), set with Ordinal; an
	// applied record's lifetime and "ts" run from it (clusterexpiry.go),
	// from the apply when it is zero.
	OrderTime time.Time
	// Expire marks a request to expire the record SOWKey of Topic if its
	// version is still ExpireVersion (the Ordinal of the ordered publish
	// that last wrote it); a node's janitor hands it to the order
	// (SOWOrderer) instead of removing the record, see clusterexpiry.go.
	Expire        bool
	ExpireVersion uint64
	Body          []byte
}

// BackplaneState is a node's link to its cluster.
type BackplaneState struct {
	// Connected: the link is up (publishes reach the other nodes).
	Connected bool
	// Lost counts the publishes of other nodes the backplane received
	// but dropped before they reached the broker (it fell behind).
	Lost int64
	// CatchingUp: the node is still applying the SOW updates the cluster
	// ordered before it started; its SOW topics are not yet the cluster's.
	CatchingUp bool
	// Lag counts the SOW updates the cluster has ordered that this node
	// has not applied yet, as far as the node knows (natscluster: the SOW
	// stream's last sequence, polled about once a second and raised by
	// acks and by what the node receives, minus the last sequence
	// applied). It grows while the node's consumer stalls, and falls to 0
	// once it has applied everything. A silent link teaches the node
	// nothing, so there Lag stays at what it knew. 0 without an order.
	Lag uint64
}

// Readiness (Ready): the reasons a node is not ready for new clients.
var (
	// ErrCatchingUp: the node is still applying what the cluster ordered
	// before it started (BackplaneState.CatchingUp); its SOW topics would
	// answer queries with an older state.
	ErrCatchingUp = errors.New("broker: catching up with the cluster's SOW order")
	// ErrClusterDown: the node's link to the cluster is down, or its
	// backplane (or the SOW order) did not start; its publishes do not
	// reach the other nodes, nor theirs it.
	ErrClusterDown = errors.New("broker: not connected to the cluster")
)

// Ready reports whether this node should be given new clients, as a
// readiness probe asks: nil when it should, else why not: ErrBrokerClosed
// once Shutdown or Close began; with a backplane, ErrClusterDown while its
// link is down or when it (or the SOW order) did not start, and
// ErrCatchingUp while the node applies what its cluster ordered before it
// started. A single node is ready until it closes.
//
// The lag is not a reason: it is normal under load, and when a NATS node
// stops every node stalls at once (see natscluster), so a probe failing
// on lag would take the whole cluster out of service together. A host that
// wants a bound reads Stats().Cluster.Lag (the admin handler's x_ready
// takes one as max_lag). Link down is one: it is usually one node's (its
// NATS server went away; it reconnects in seconds), and meanwhile a
// client is better served by a node whose SOW publishes are ordered.
func (b *Broker) Ready() error {
	if b.isClosed() {
		return ErrBrokerClosed
	}
	c := b.cluster
	if c == nil {
		return nil
	}
	if c.startErr != nil {
		return fmt.Errorf("%w: %v", ErrClusterDown, c.startErr)
	}
	s := c.bp.State()
	switch {
	case !s.Connected:
		return ErrClusterDown
	case s.CatchingUp && c.orderer != nil:
		return fmt.Errorf("%w: %d ordered SOW updates not applied yet", ErrCatchingUp, s.Lag)
	}
	return nil
}

// ClusterStats are a node's cluster figures in a Stats snapshot.
type ClusterStats struct {
	BackplaneState
	// StartErr is why Backplane.Start failed in New (the node then
	// receives nothing from the cluster), or why SOWOrderer.StartOrdered
	// did (its SOW topics then stay local); nil when they started.
	StartErr error
	// Published counts the publishes handed to the backplane,
	// PublishFailures those it refused (never seen by other nodes).
	Published, PublishFailures int64
	// Received counts the remote publishes delivered to this node,
	// ReceivedDropped those it did not route (a SOW topic here, or /AMPS).
	Received, ReceivedDropped int64
	// SOWOrdered: this node hands SOW-topic publishes to the cluster's
	// order (the backplane is a SOWOrderer, the node has no journal, and
	// StartOrdered succeeded).
	SOWOrdered bool
	// Ordered counts the SOW-topic publishes handed to the order,
	// OrderFailures those it refused or did not confirm; Applied the
	// ordered publishes applied here (every node's, and the records of a
	// snapshot loaded at start, see SOWSnapshotter), ApplyRefused those
	// the store refused (a delta that does not merge, a key conflict) or
	// that are for a topic without a SOW store here.
	Ordered, OrderFailures, Applied, ApplyRefused int64
	// The figures of expiration in the cluster's order.
	ClusterExpiryStats
}

// cluster is the broker's state of its backplane.
type cluster struct {
	bp       Backplane
	startErr error

	published, publishFailures atomic.Int64
	received, receivedDropped  atomic.Int64
	// orderer is the backplane as a SOWOrderer when SOW topics are
	// ordered across the cluster; nil when they stay local.
	orderer                                  SOWOrderer
	ordered, orderFailures, applied, refused atomic.Int64
	clusterExpiry
	// waits are the ordered commands of this node not yet applied here,
	// by token: a random high half (so that another node's tokens are not
	// taken for this node's) and a count. The apply here, a failed order,
	// or stopCluster takes each once.
	waitMu sync.Mutex
	waits  map[uint64]orderWait
	swept  time.Time // the last look for old orphans
	nonce  uint64
	tokens atomic.Uint64
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
	defer func() {
		// New left the SOW topics of a journaled node to the order (see
		// New); if it did not start, they stay local and come from the
		// journal after all.
		if _, ok := b.opts.Backplane.(SOWOrderer); ok && b.persist != nil && (b.cluster == nil || b.cluster.orderer == nil) {
			b.rebuildFromJournal()
		}
	}()
	bp := b.opts.Backplane
	if bp == nil {
		return
	}
	b.cluster = &cluster{bp: bp}
	if err := bp.Start(b.deliverRemote); err != nil {
		b.cluster.startErr = err
		b.log.Error("backplane did not start; this node receives nothing from the cluster", "err", err)
		return
	}
	o, ok := bp.(SOWOrderer)
	if !ok {
		return
	}
	if sn, ok := o.(SOWSnapshotter); ok {
		sn.SetSOWState(sowState{b}) // clustersnap.go
	}
	if err := o.StartOrdered(b.applyOrdered); err != nil {
		b.cluster.startErr = fmt.Errorf("SOW order: %w", err)
		b.log.Error("backplane did not start the SOW order; SOW topics stay local to this node", "err", err)
		return
	}
	b.cluster.orderer = o
	b.cluster.waits = make(map[uint64]orderWait)
	b.cluster.nonce = rand.Uint64() << 32
}

// stopCluster stops routing remote publishes and applying ordered ones,
// waiting for one in progress; then it fails, with ErrBrokerClosed, this
// node's ordered commands the order has not handed back yet: their
// publishers are told, and sessions waiting for them go on to close.
func (b *Broker) stopCluster() {
	c := b.cluster
	if c == nil {
		return
	}
	c.mu.Lock()
	c.off = true
	c.mu.Unlock()
	c.waitMu.Lock()
	waits := c.waits
	c.waits = nil
	c.waitMu.Unlock()
	for _, w := range waits {
		w.settle(orderOutcome{Err: ErrBrokerClosed})
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
		SOWOrdered:      c.orderer != nil,
		Ordered:         c.ordered.Load(),
		OrderFailures:   c.orderFailures.Load(),
		Applied:         c.applied.Load(),
		ApplyRefused:    c.refused.Load(),

		ClusterExpiryStats: c.expiryStats(),
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
	p.After = from.lastOrdinal.Load()
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

// ordersSOW reports whether this node's SOW topics are in the cluster's
// order.
func (b *Broker) ordersSOW() bool { return b.cluster != nil && b.cluster.orderer != nil }

// orderedStore returns the SOW store of topic when publishes to it go
// through the cluster's order, else nil.
func (b *Broker) orderedStore(r *router, topic string) *sowStore {
	if c := b.cluster; c == nil || c.orderer == nil {
		return nil
	}
	return r.routes(topic).store
}

// orderOutcome is how an ordered command of this node ended here: applied
// (Ordinal its place in the order; for a publish, Reason why the store
// refused it on every node, "" when it took it, and Position its journal
// entry, 0 when not journaled; for a sow_delete, the records Examined and
// Deleted here), or not (Err: the order did not take or confirm it, or the
// broker stopped first).
type orderOutcome struct {
	Ordinal           uint64
	Reason            string
	Position          Position
	JournalReason     string // why the journal did not take an applied publish
	Examined, Deleted int
	Err               error
	// Resent: the order already held the publish (a resend, see
	// ErrAlreadyOrdered); it was or will be applied under its first
	// sending, perhaps on another node, and is not applied here for it.
	Resent bool
}

// orderWait is an ordered command of this node waiting for its apply:
// who sent it (its endpoint journals it when it is applied here) and what
// to tell. An orphan (applied nil, since when) is a publish whose order
// failed unconfirmed: its sender was told, yet the order may hold it, and
// if it is applied here after all it is journaled here still (the journal
// then has what the SOW has; its publisher's resend is a duplicate).
type orderWait struct {
	from          *endpoint
	applied, late func(orderOutcome)
	since         time.Time
}

// orderCallbacks are what an ordered command of this node is told:
// confirm, if not nil, gets the order's confirmation (Order's done);
// applied its outcome here, exactly once; late, if not nil, the outcome of
// an apply that came after all once the order failed (an orphan's).
type orderCallbacks struct {
	confirm       func(error)
	applied, late func(orderOutcome)
}

// Orphans are forgotten orphanTTL after their order failed (an order that
// held the publish applies it well before), looked for at most every
// orphanSweep.
const (
	orphanTTL   = 10 * time.Minute
	orphanSweep = time.Minute
)

// settle tells the command's sender how it ended.
func (w orderWait) settle(o orderOutcome) {
	if w.applied == nil { // an orphan: its sender was told it failed
		if w.late != nil && o.Err == nil {
			w.late(o)
		}
		return
	}
	if o.Err == nil && o.Ordinal != 0 {
		// The highest: applies come in the order, but a journaled one may
		// be settled after a later one that was not.
		for last := w.from.lastOrdinal.Load(); o.Ordinal > last && !w.from.lastOrdinal.CompareAndSwap(last, o.Ordinal); last = w.from.lastOrdinal.Load() {
		}
	}
	w.applied(o)
}

// await registers cb under a new token, for the apply of the command
// carrying it; from's lastOrdinal follows what was applied.
func (c *cluster) await(from *endpoint, cb orderCallbacks) uint64 {
	token := c.nonce | c.tokens.Add(1)&(1<<32-1)
	c.waitMu.Lock()
	defer c.waitMu.Unlock()
	if c.waits == nil { // stopped: the command fails at once
		return 0
	}
	c.waits[token] = orderWait{from: from, applied: cb.applied, late: cb.late}
	if now := time.Now(); now.Sub(c.swept) > orphanSweep {
		c.swept = now
		for t, w := range c.waits {
			if w.applied == nil && now.Sub(w.since) > orphanTTL {
				delete(c.waits, t)
			}
		}
	}
	return token
}

// failWait takes the command waiting under token, whose order failed,
// and when orphan is set leaves an orphan in its place (see orderWait) in
// the same step, so that an apply racing the failure finds one or the
// other. ok is false when there is none.
func (c *cluster) failWait(token uint64, orphan bool) (w orderWait, ok bool) {
	c.waitMu.Lock()
	defer c.waitMu.Unlock()
	if w, ok = c.waits[token]; !ok {
		return w, false
	}
	if orphan {
		c.waits[token] = orderWait{from: w.from, late: w.late, since: time.Now()}
	} else {
		delete(c.waits, token)
	}
	return w, true
}

// waiting returns the endpoint of this node's command waiting under token,
// nil when there is none (another node's, or settled already).
func (c *cluster) waiting(token uint64) *endpoint {
	c.waitMu.Lock()
	defer c.waitMu.Unlock()
	return c.waits[token].from
}

// takeWait removes and returns the command waiting under token, ok false
// when there is none (another node's, or settled already).
func (c *cluster) takeWait(token uint64) (w orderWait, ok bool) {
	c.waitMu.Lock()
	defer c.waitMu.Unlock()
	w, ok = c.waits[token]
	delete(c.waits, token)
	return w, ok
}

// order hands p, a command of from, to the cluster's order. applied gets
// its outcome here exactly once (see orderOutcome); confirm, if not nil,
// gets the order's confirmation (Order's done). It returns a failure
// reason when the order refused p at once (then neither is called).
func (b *Broker) order(from *endpoint, p *RemotePublish, cb orderCallbacks) string {
	c := b.cluster
	token := c.await(from, cb)
	if token == 0 {
		return ReasonOrderFailed
	}
	p.Token = token
	c.ordered.Add(1)
	err := c.orderer.Order(p, func(err error) {
		if errors.Is(err, ErrAlreadyOrdered) {
			// Applied (or to be) under its first sending: the resend is
			// done here, and confirmed.
			if w, ok := c.takeWait(token); ok {
				w.settle(orderOutcome{Resent: true})
			}
			err = nil
		}
		if err != nil {
			c.orderFailures.Add(1)
			b.log.Warn("the cluster did not confirm the order of a SOW command", "topic", p.Topic, "err", err)
			if w, ok := c.failWait(token, b.persist != nil && !p.Delete); ok {
				w.settle(orderOutcome{Err: err})
			}
		}
		if cb.confirm != nil {
			cb.confirm(err)
		}
	})
	if err != nil {
		c.takeWait(token)
		c.orderFailures.Add(1)
		b.log.Warn("the cluster's order refused a SOW command", "topic", p.Topic, "err", err)
		return ReasonOrderFailed
	}
	return ""
}

// orderSOW hands a publish (or delta_publish) of from to st's topic to the
// cluster's order instead of applying it (see "SOW topics" above). It
// refuses at once what every node would refuse: a message its topic can
// get no key for. confirm and applied are order's. It returns a failure
// reason, or "" once the order took the publish.
func (b *Broker) orderSOW(from *endpoint, r *router, st *sowStore, topic string, h *protocol.Header, body []byte, cb orderCallbacks) string {
	p := RemotePublish{MessageType: r.mtName, Topic: topic, ClientName: from.name, Body: body}
	if h != nil {
		p.CorrelationID, p.SOWKey = h.CorrelationID, h.SOWKey
		p.Delta = h.Command == protocol.CmdDeltaPublish
		if h.Has(protocol.FieldSequence) {
			p.Sequence = h.Sequence
		}
		if h.Has(protocol.FieldExpiration) {
			p.Expiration, p.HasExpiration = h.Expiration, true
		}
	}
	var ks *keyScratch
	if st.def.keyEx != nil {
		ks = st.def.scratch()
		defer st.def.keys.Put(ks)
	}
	if _, _, reason := st.key(p.SOWKey, body, ks); reason != "" {
		return reason
	}
	return b.order(from, &p, cb)
}

// orderAndWait is orderSOW for an in-process client: it returns once the
// publish was applied here (a publish then reads as on a single broker),
// with the store's reason when it refused it, or once the order failed.
// When ctx ends first it returns ctx's error; the publish goes on (the
// order has it).
func (b *Broker) orderAndWait(ctx context.Context, from *endpoint, r *router, st *sowStore, topic string, h *protocol.Header, body []byte) (reason string, err error) {
	ch := make(chan orderOutcome, 1) // the outcome may come after ctx ended
	if reason := b.orderSOW(from, r, st, topic, h, body, orderCallbacks{applied: func(o orderOutcome) { ch <- o }}); reason != "" {
		return reason, nil
	}
	o, err := awaitOutcome(ctx, ch)
	return o.reason(), err
}

// reason is why the command failed, "" when it was applied (and, with a
// journal, journaled).
func (o orderOutcome) reason() string {
	if o.Err != nil {
		return ReasonOrderFailed
	}
	return cmp.Or(o.Reason, o.JournalReason)
}

// awaitOutcome waits for an in-process client's ordered command's outcome,
// or for ctx to end.
func awaitOutcome(ctx context.Context, ch <-chan orderOutcome) (orderOutcome, error) {
	select {
	case o := <-ch:
		return o, nil
	case <-ctx.Done():
		return orderOutcome{}, ctx.Err()
	}
}

// applyOrdered applies a SOW-topic publish in the cluster's order, as a
// local publish is applied (publishSOW), whichever node accepted it; on
// its origin it then settles the command waiting for it.
func (b *Broker) applyOrdered(p *RemotePublish) {
	c := b.cluster
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.off {
		return
	}
	if !p.Expire {
		c.applied.Add(1) // expire requests are not in Ordered, which Applied follows
	}
	var out orderOutcome
	var ord orderStamp
	defer func() {
		if ord.handedOff {
			return // settled when the journal has it (below)
		}
		if w, ok := c.takeWait(p.Token); ok {
			out.Ordinal = p.Ordinal
			w.settle(out)
		}
	}()
	// The router is made if no client of the type came here yet: the
	// store must have every record whoever reads it later.
	r := b.router(p.MessageType)
	st := r.routes(p.Topic).store
	if st == nil || publishTopicReason(p.Topic) != "" {
		c.refused.Add(1)
		out.Reason = ReasonNotSOWTopic
		b.log.Debug("ordered publish to a topic without a SOW store here dropped: the nodes' SOW topics differ", "topic", p.Topic, "mt", p.MessageType)
		return
	}
	if p.Expire {
		b.applyExpire(r, st, p)
		return
	}
	if p.Delete {
		out = b.applyDelete(r, st, p)
		return
	}
	if p.Sequence != 0 {
		b.seqs.processed(p.ClientName, p.Sequence)
	}
	h := protocol.Header{Command: protocol.CmdPublish, CorrelationID: p.CorrelationID, SOWKey: p.SOWKey}
	if p.Delta {
		h.Command = protocol.CmdDeltaPublish
	}
	if p.HasExpiration {
		h.Set(protocol.FieldExpiration, p.Expiration)
	}
	if p.Sequence != 0 {
		h.Set(protocol.FieldSequence, p.Sequence) // for the journal
	}
	// The record's version is the publish's place in the order, and its
	// lifetime runs from when the order took it.
	ord.ver = p.Ordinal
	if !p.OrderTime.IsZero() {
		ord.at = p.OrderTime.UnixNano()
	}
	// The publisher's name is what filters read; on the publish's own node
	// its endpoint journals it (see orderStamp), and when the journal can
	// append without waiting, the command is settled once it has.
	from := &endpoint{name: p.ClientName}
	if e := c.waiting(p.Token); e != nil {
		from, ord.origin = e, true
		token, ordinal := p.Token, p.Ordinal
		ord.journaled = func(pos Position, reason string) {
			if w, ok := c.takeWait(token); ok {
				w.settle(orderOutcome{Ordinal: ordinal, Position: pos, JournalReason: reason})
			}
		}
	}
	out.Position, out.Reason = b.publishSOW(from, r, st, p.Topic, &h, p.CorrelationID, p.SOWKey, p.Body, &ord)
	out.JournalReason = ord.journalErr
	if out.Reason != "" {
		c.refused.Add(1)
		b.log.Debug("ordered SOW publish refused by the store on every node", "topic", p.Topic, "reason", out.Reason)
	}
}

// orderDelete hands a sow_delete of from, reaching st with selector h
// (its filter, sow_keys, or body data with "k"), to the cluster's order;
// applied gets the counts once it was applied here, or why not. It returns
// a failure reason, or "" once handed over.
func (b *Broker) orderDelete(from *endpoint, r *router, st *sowStore, h *protocol.Header, body []byte, applied func(orderOutcome)) string {
	p := RemotePublish{MessageType: r.mtName, Topic: st.topic, ClientName: from.name, CorrelationID: h.CorrelationID,
		Delete: true, Filter: h.Filter, SOWKeys: h.SOWKeys, SOWKey: h.SOWKey, Body: body}
	return b.order(from, &p, orderCallbacks{applied: applied})
}

// applyDelete applies an ordered sow_delete to st, as deleteFrom does a
// local one.
func (b *Broker) applyDelete(r *router, st *sowStore, p *RemotePublish) orderOutcome {
	sel := deleteSelector{body: p.Body, explicitKey: p.SOWKey}
	if p.SOWKeys != "" {
		sel.keys = strings.Split(p.SOWKeys, ",")
	}
	var err error
	// The origin compiled the same filter, with the same router rules.
	if sel.flt, err = r.compileFilter(p.Filter); err != nil {
		b.cluster.refused.Add(1)
		b.log.Debug("ordered sow_delete with a filter that does not compile dropped", "topic", p.Topic, "err", err)
		return orderOutcome{Reason: ReasonBadFilter}
	}
	from := endpoint{name: p.ClientName}
	examined, deleted, _, _ := b.deleteFrom(&from, nil, r, st, sel)
	return orderOutcome{Examined: examined, Deleted: deleted}
}
