package natscluster

import (
	"context"
	"time"
)

// This file is a proposal: the interface the broker would drive to act as
// one node of a cluster. The broker side is not wired yet, and nothing here
// implements it yet. When it is accepted the interface moves into the
// broker package (which must not import NATS), and this package provides
// the NATS implementation; the types below are spelled so that the move
// needs no NATS type.
//
// Division of labour. The broker keeps doing everything that depends on
// the subscriber (matching, regex topics, filters, entitlements,
// conflation, acks to its own clients). The backplane only carries
// accepted publishes between nodes and, for SOW topics, decides their
// order. A node never routes a publish twice: a plain publish is routed
// locally when accepted and remotely when it arrives; a SOW-topic publish
// is routed on every node (the origin included) only when it comes back
// in order.

// Publish is one accepted publish as it crosses the cluster: what a
// receiving node needs to route it as if a local client had sent it.
type Publish struct {
	// Origin names the node that accepted the publish (its instance
	// name); a node ignores its own plain publishes coming back.
	Origin      string
	MessageType string
	Topic       string
	// Kind says whether this is a publish, a delta_publish (merged where
	// it is applied) or a sow_delete.
	Kind PublishKind
	// ClientName and Sequence identify the publisher's message (duplicate
	// detection, per-publisher order checks); Sequence 0 when it had none.
	ClientName string
	Sequence   uint64
	// CorrelationID, SOWKey and Expiry are the header fields routing and
	// the SOW need; User is the authenticated publisher (entitlements of
	// the receiving node's subscribers do not depend on it).
	CorrelationID string
	SOWKey        string
	User          string
	Expiry        time.Time
	Body          []byte
}

// PublishKind says what a Publish asks of the receiving node.
type PublishKind uint8

// Kinds of Publish.
const (
	// KindPublish is a publish (routed; stored on a SOW topic).
	KindPublish PublishKind = iota + 1
	// KindDeltaPublish is a delta_publish, merged into the SOW record when
	// applied.
	KindDeltaPublish
	// KindSOWDelete removes the records its SOWKey (or body filter) names.
	KindSOWDelete
)

// Ordered is a SOW-topic publish in its topic's cluster-wide order.
type Ordered struct {
	Publish
	// Seq is the publish's place in its topic's order (the stream
	// sequence): rising per topic, the same on every node.
	Seq uint64
}

// Backplane carries a node's accepted publishes to the other nodes and
// theirs to it. Implementations are safe for concurrent use.
type Backplane interface {
	// Publish hands a plain publish (not on a SOW topic) accepted by this
	// node to the other nodes, after the broker has routed it locally. It
	// must not block on other nodes: at most once across the cluster, in
	// the order of the calls for one publisher.
	Publish(p *Publish) error

	// Order hands a SOW-topic publish accepted by this node to the cluster
	// for ordering; the broker does not apply it now. done is called once
	// the publish has its place in the topic's order and is stored with
	// the configured replication (the moment a persisted ack may be sent),
	// or with the error that kept it out. The publish itself comes back
	// through Subscribe's apply, on this node as on every other.
	Order(p *Publish, done func(seq uint64, err error)) error

	// Subscribe starts delivering what other nodes publish: remote plain
	// publishes to deliver (interest is the backplane's business: it may
	// send a node everything of a message type, see the package doc) and,
	// for every SOW topic, every ordered publish to apply, this node's
	// included, from the sequence after from[topic] (0: from the start
	// retained). Each callback is called from one goroutine per topic, in
	// order; it must not block for long (the broker hands off to its own
	// queues). Subscribe returns once the SOW topics have caught up with
	// the order as it was when Subscribe was called, which is when the
	// node may report itself ready.
	Subscribe(ctx context.Context, from map[string]uint64, deliver func(*Publish), apply func(*Ordered)) error

	// State reports the node's view of the cluster for Stats and readiness.
	State() BackplaneState

	// Close stops the deliveries and releases the connection.
	Close() error
}

// BackplaneState is what a node reports about its cluster link.
type BackplaneState struct {
	Connected  bool // the NATS connection is up
	CatchingUp bool // SOW topics are still being replayed
	// Lag is, over the SOW topics, the most ordered publishes not yet
	// applied by this node.
	Lag uint64
}
