// Package natscluster lets several ampsbroker nodes act as one broker over
// NATS, with JetStream holding what must be durable and ordered. It is a
// module of its own so that the core library never depends on NATS; the
// broker package sees only small interfaces (broker.Journal and
// broker.Backplane) that this package implements.
//
// # Status
//
// Built: the topic to subject mapping (Subjects, EncodeToken), the
// transaction log on JetStream (Journal, a broker.Journal), plain
// publishes across nodes over core NATS (Backplane, a broker.Backplane:
// topics without SOW, broadcast interest, origin filtering, bounded
// queues), a test harness (internal/natstest: an in-process three-node
// JetStream cluster over loopback and a TCP proxy that delays, pauses or
// cuts one node's link), and cmd/ampsd-cluster (ampsd with -nats, TLS
// and credentials for the NATS link, a shared journal, and the
// NATSCluster element of the XML file). An embedded nats-server
// (StartServer, ServerConfig, EmbeddedServer; ampsd-cluster -nats-embed,
// or the Embedded child of NATSCluster) makes a single-binary cluster:
// each node runs its own JetStream server, routed to the others', and
// connects to it in-process. With a Journal shared by the
// nodes and the Backplane, a bookmark subscription on any node replays
// every node's journaled publishes. The SOW across nodes
// (OrderedBackplane, below; ampsd-cluster uses it for the SOW topics of
// its configuration, with or without a transaction log), with each node's
// lag in the order
// (broker.BackplaneState.Lag) and its readiness (broker.Broker.Ready,
// served by the admin handler at /amps/instance/x_ready).
//
// # Shape of a cluster
//
// Every ampsbroker node connects to one NATS node (any NATS URL list; an
// embedded nats-server makes a single-binary cluster). Clients connect to
// any ampsbroker node. What a node accepts it hands to NATS; what other
// nodes accepted reaches it through NATS; each node then routes to its own
// clients exactly as a single broker does (filters, regex topics,
// entitlements and conflation are applied where the subscriber is, so
// nothing about a subscriber crosses the cluster except interest).
//
// Three kinds of traffic, three carriers:
//
//   - Plain publishes (topics that are neither SOW nor journaled) go over
//     core NATS through the backplane: at-most-once between nodes, in
//     per-publisher order (one connection per node, and NATS keeps a
//     connection's order per subject), no disk, lowest latency.
//   - Journaled publishes go to the transaction log stream (Journal) and
//     are delivered on every node from that stream, so the order a node
//     delivers in is the order a bookmark replays in, on every node. (Not
//     yet: today a journaled publish to a topic without SOW is journaled
//     by the node that accepted it and crosses like a plain one, carrying
//     its journal position for "bm", so the live order on other nodes is
//     the publisher's order; bookmark subscriptions read the stream, replay
//     and live alike, so they already get the stream's order everywhere.)
//   - SOW-topic publishes are ordered by JetStream, one stream order per
//     topic (see SOW below).
//
// Subjects are "<prefix>.<message type token>.<topic token>" (see
// Subjects): a topic is always one token, escaped so that ".", "*", ">",
// whitespace and any byte are safe; the mapping is reversible, so a node
// recovers the topic from the subject.
//
// # Interest propagation
//
// Options, for plain publishes:
//
//  1. Broadcast per message type: every node subscribes once to
//     "<prefix>.<type>.*" for each message type it serves and receives every
//     publish of that type; it drops what none of its clients wants. No
//     interest bookkeeping, no race between a subscribe and the first
//     publish after it, regex topics and content filters cost nothing
//     extra (they are evaluated locally, as on one node). The price: every
//     node receives (and NATS routes to it) the whole publish rate of the
//     type, wanted or not.
//  2. Per-topic interest: a node subscribes to the exact subject of each
//     topic its clients subscribe to (reference counted, unsubscribed when
//     the last one goes). NATS then forwards a publish only to nodes that
//     want it. But regex topics cannot be written as NATS wildcards, so a
//     node with any regex subscription of a type falls back to option 1 for
//     that type; every client subscribe becomes a cluster-wide interest
//     change (SUB propagated over the NATS routes); and a subscribe must not
//     be acknowledged to the client before NATS has the interest (a flush
//     round trip), or a publish on another node right after the ack may be
//     missed.
//  3. Per-topic interest with the option-1 fallback per message type, chosen
//     by the node from its own subscriptions (a hybrid of 1 and 2).
//
// Measured (BenchmarkInterest: three NATS nodes and both clients in one
// process on a shared two-core machine; a publisher on node 1 spreads 1 KiB
// messages over 100 topics, the receiver on node 2 wants one): per publish,
// about 1.1–2.0 µs with per-topic interest and 3.6–9 µs with broadcast,
// where the receiver takes in every message and drops 99 in 100 after
// decoding the subject. Unwanted traffic is not free: here it cost each
// publish several microseconds, split between the NATS route and the
// receiving node.
//
// Recommended: option 1 as the default, option 3 as a per message type
// setting for types with sparse interest, both behind the backplane
// interface so the broker does not know which. Reasons for the default: it
// is the one that is obviously correct (exactly once, per-publisher order,
// regex topics and filters for free) and has no subscribe race, which
// options 2 and 3 have and NATS cannot close: a flush confirms that the
// node's own NATS server has the interest, not that the server of a
// publisher on another node has it yet, so a publish there just after the
// client's subscribe ack may miss the new subscription (a window of about
// one route round trip). Clusters here are a few nodes that usually serve
// the same kinds of subscribers, where option 3 saves little; where nodes
// serve disjoint topics of a busy type (sharded clients), the measurement
// above is the reason to switch that type to option 3 and accept the
// window. Under option 1 a regex subscription costs what it costs on one
// node (a match per publish of its type); under option 3 it turns its
// message type back into option 1 on its node.
//
// # SOW across nodes
//
// SOW topics are ordered by JetStream (OrderedBackplane, built: publish,
// delta_publish, sow_delete and expiration, with or without a journal;
// bounded by snapshots): one stream for every SOW topic
// with a subject per topic, whose order is a topic's apply order on every
// node (OrderedBackplane says why one stream rather than one per topic). A node publishes a SOW-topic publish to the stream
// and applies it only when it comes back through the node's consumer of
// the stream, like every other node: every node applies the same records in
// the same order, so sow, sow_and_subscribe (no gap, no duplicate: the
// node's query and its subscription are served from the same applied
// sequence), sow_delete, oof and expiration (ordered too, as expire
// requests, see OrderedBackplane) behave as on one node. A client's
// commands take effect on its node in the order it sent them (the broker
// makes a command wait for the client's SOW publishes before it to be
// applied there), and one publisher's SOW and plain messages keep their
// order on every node (see "One publisher's order" in OrderedBackplane).
// With a journal, a SOW publish is journaled once, by the node that
// accepted it, as it applies it. Delta
// publishes are merged at apply time against the node's record, which is
// the same on every node at that sequence. A node that starts or
// restarts loads the newest snapshot of the SOW (an Object Store object
// the nodes write every SnapshotInterval, after which the stream is
// purged below it, keeping SnapshotRetain of messages for lagging nodes;
// snapshot.go) and applies the stream after it before it reports ready,
// so its catch-up does not grow with the history. (A subject per key with
// MaxMsgsPerSubject 1 would bound the stream for topics without deltas
// only; the snapshot bounds every topic.)
//
// # Transaction log across nodes
//
// All nodes share one journal stream (Journal). Positions are stream
// sequences, the same on every node, so a bookmark taken on one node
// replays on any other (every node must name the same instance, so the
// bookmark's journal id matches). Append returns once JetStream stored the
// entry with the stream's replication, so a persisted ack sent then is
// true cluster-wide; AppendAsync lets a publisher's entries overlap while
// keeping their order. A headers-only follower keeps each node's Durable
// and high-water marks at the stream's tail, so a publisher that moves to
// another node gets the right logon ack sequence. The follower, each
// cursor and the rebuild's scan read through consumers of their own, made
// again at once from the next entry when one reports trouble (follow.go,
// as the SOW order). After the loss of the NATS node holding the
// consumer, the node's link and the JetStream meta leader, a follower knew
// of the first append acknowledged after the loss 0.2-0.25 s after its ack
// (TestJournalFollowerResumesAfterNATSNodeLoss), and a cursor replaying
// delivered its remaining entries 0.35-0.4 s after the loss
// (TestJournalCursorResumesAfterNATSNodeLoss); with nats.go's ordered
// consumer, used before, both paused for about 11 s.
//
// JetStream acknowledges a write once it is in the page cache of the
// stream's replicas (a quorum of them), and fsyncs lazily (every two
// minutes by default). With R3 an acknowledged entry survives the loss of
// a node; with R1 it survives a crash of the process but not of the
// machine, unless the NATS server syncs every write (sync_interval:
// always), which costs a lot at R1 because JetStream does not batch those
// fsyncs (below).
//
// Measured (BenchmarkJournalAppend and BenchmarkJournalReplay, 1 KiB
// entries, the NATS nodes and the client in one process on a shared
// two-core machine, so ratios only; appends a second):
//
//	                       one waiting appender   64 appenders   AppendAsync
//	1 node, R1             18k (p50 41 µs)        38k            36k
//	1 node, R1, fsync      1.4k (p50 392 µs)      1.8k           2.1k
//	3 nodes, R1            15k (p50 47 µs)        32k            29k
//	3 nodes, R3            4–7k (p50 134–147 µs)  20–37k         22–37k
//	3 nodes, R3, fsync     0.9k (p50 924 µs)      6k             17k
//
// A cursor replays about 60k entries a second at R1 and at R3. A broker
// that appends synchronously per publish is limited per publisher by the
// replication round trip (a few thousand a second at R3); it should
// pipeline with AppendAsync (or an equivalent in broker.Journal), which
// keeps the publisher's order.
//
// # Upgrading
//
// Every node of a cluster runs the same version of this package: no
// rolling upgrade. The formats of what the nodes send each other change
// between versions (a plain publish is version 2 since it carries its
// sender's count and its publisher's place in the SOW order, a SOW
// publish version 3 since it carries its sender's count of plain
// publishes), and a node drops what it cannot read: counted in
// BackplaneStats.Malformed for plain publishes, logged once for the SOW
// stream's. So plain publishes would not cross between old and new nodes,
// and an old node would skip the new nodes' SOW publishes, its SOW
// drifting from theirs for good. Upgrade by stopping every node, upgrading
// them, and starting them again. The streams stay: a new node reads the
// SOW stream's older messages (version 2) and the journal's entries.
package natscluster
