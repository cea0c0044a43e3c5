package natscluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/internal/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// OrderedBackplane is a Backplane that also orders SOW topics across the
// cluster on JetStream (broker.SOWOrderer): a node publishes each SOW-topic
// publish its clients make to one stream, and every node, the publishing
// one included, applies the stream's messages in stream order from a
// consumer of its own (see "Losing a NATS node"). Plain publishes still go
// over core NATS (Backplane).
//
// One stream for every SOW topic, a subject per message type and topic
// ("<prefix>.<message type>.<topic>", see Subjects). The broker needs one
// order per topic; one stream gives a total order, which is one per topic
// and more, and lets a node catch up and apply from one consumer in one
// goroutine, with one stream to create and size whatever SOW topics the
// nodes' configurations name. Its cost: one raft group (one leader) takes
// every SOW write of the cluster; a stream per topic would spread leaders
// over the NATS nodes at the price of a consumer per topic per node.
// Measured (BenchmarkSOWOrdered: about 1 KiB SOW publishes from four TCP
// publishers on node A, a flush every 512, until all three nodes applied
// them; NATS, brokers and clients in one process on two shared cores, so
// ratios only): a single broker applies 294–311k a second, three nodes on
// one stream 40–43k at R1 and 39–40k at R3 (each node applies them all). The cost is
// the JetStream round trip and the stream's one apply goroutine per node,
// not the single stream's leader: at these rates one raft group keeps up
// (BenchmarkJournalAppend stores 20–37k a second at R3 on the same
// machine), so a stream per topic would buy nothing measurable here.
//
// Acks. Order publishes asynchronously (never waiting for JetStream) and a
// goroutine hands JetStream's acks to the broker in the order of the Order
// calls, so a publisher's persisted acks follow its order: JetStream acks
// a message once the stream's replicas (a quorum) stored it.
//
// Resends. A publish whose ack JetStream did not send in time is
// reported failed, yet the stream may hold it; it is not retried (see
// Order) but resent by its publisher's store, perhaps through another
// node. A publish with a publisher sequence carries a Nats-Msg-Id of its
// client name and sequence, so the stream stores a resend within its
// duplicate window (SOWConfig.DuplicateWindow) once and acks it as a
// duplicate, which confirms it (broker.ErrAlreadyOrdered; dedup.go). A resend after the window is
// stored and applied again (a delta then merges twice).
//
// Expiration. The broker's janitors hand the order expire requests (see
// broker.RemotePublish.Expire; the record's version is the stream
// sequence that wrote it, its lifetime runs from that message's stream
// timestamp). Each node asks for each record it finds expired, and every
// request for one record version carries the same Nats-Msg-Id (message
// type, topic, key and version), so the stream stores one of them within
// the duplicate window; a later one is applied as a no-op.
//
// Catching up. StartOrdered loads the newest snapshot (snapshot.go),
// reads the stream's last sequence, then applies the stream from the
// message after the snapshot's; it returns once the node applied up
// to that sequence (or CatchUpTimeout passed), and State reports
// CatchingUp until then. The broker calls StartOrdered from New, so a node
// answers no query before its SOW holds what the cluster ordered before it
// started.
//
// One publisher's order. A publisher's SOW-topic messages travel through
// JetStream and its other messages over core NATS, two paths that do not
// keep each other's order, yet its messages must reach every node's
// subscribers in the order it sent them. The broker keeps that order on
// the publisher's node (a plain publish after SOW publishes waits until
// they were applied there) and stamps each plain publish with the order's
// place of its publisher's last SOW publish (RemotePublish.After). On the
// receiving nodes:
//
//   - A plain publish is routed once this node applied that place
//     (a SOW publish followed by a plain one). Until then it is held
//     aside, with the later ones of its node instance behind it, while
//     the subscription goes on with the rest: so a held publish holds up
//     neither other instances' plain publishes nor, through them, the
//     apply it waits for. Deliveries never overlap (the subscription's
//     goroutine and the one that releases held publishes take turns).
//     Nothing is held while the node catches up: it is applying places
//     far older than the plain publishes it receives.
//   - The sending goroutine hands ordered publishes to JetStream in line
//     with the plain ones and stamps each with the number of plain
//     publishes this node sent before it; another node applies it only
//     once it routed that many of this node's (a plain publish followed
//     by a SOW one). A node waits so only for a node instance it has
//     received plain publishes from, held ones included (NATS then brings
//     the rest in order; a held one of that instance waits for a place
//     before this publish's, which is applied by then), or while its
//     subscription holds some it has not handled yet (one held aside is
//     handled); never while catching up.
//   - Either wait is bounded by orderWaitTimeout (a dropped message never
//     comes, a stalled consumer applies nothing); past it the message goes
//     on, the wait is counted and logged once, and what it waited for is
//     not waited for again: the numbers, or the place, so the publishes
//     held for that place or an earlier one go on at once. At most
//     maxHeldPlain publishes are held; beyond, they all go on.
//
// Losing a NATS node. An acked publish survives (R3), and a node whose
// NATS server stopped reconnects to another and goes on. A node reads the
// stream through one consumer of its own at a time (R1, in memory, on a
// server JetStream picks; sowfollow.go). When that consumer reports any
// trouble (its server announcing its shutdown, a pull nobody answers, two
// missed heartbeats of 500 ms, the consumer deleted) or skips a delivery,
// the node makes another at once, starting after the last sequence it
// applied, and skips whatever it applied already: every message is
// applied once, in stream order, from one goroutine. A create request
// unanswered within 250 ms (as one sent while the JetStream meta leader
// leaves) is sent again, its bound doubled each time up to
// RequestTimeout, with 50 ms to 1 s between tries; a consumer placed on
// the server that just announced its shutdown is refused for 2 s. The
// consumer given up is deleted (best effort; one the server never hears
// of goes after a minute without pulls). Measured
// (TestSOWApplyResumesAfterNATSNodeLoss, the stopped server holding the
// node's consumer and link and being the meta leader): the stream takes
// publishes again 0.06-0.15 s after the stop and the node applies them
// 0.16-0.25 s after that; nats.go's ordered consumer, which made its
// consumer again with a backoff (1 s, 2 s, 4 s, … up to 10 s) and waited
// up to 10 s for each answer, paused for about 11 s there (about 2 s when
// only its heartbeats found the loss). A server that vanishes without a
// word is noticed by the missed heartbeats, within about 1 s. Meanwhile
// the node serves its SOW as it was, with CatchingUp false. State's Lag
// shows it: the stream's last sequence as this node knows it, less the
// last sequence it applied.
//
// Lag. The node learns the stream's last sequence from a stream info
// request every LagPollInterval (on a goroutine of its own, from
// StartOrdered to Close), from JetStream's acks of its own publishes, and
// from each message it applies (its sequence plus the messages the
// consumer says follow it). The poll is what shows a stalled consumer: the
// last sequence rises while nothing is applied. A link that is silent
// (paused, not yet found dead by the NATS client's pings) teaches the node
// nothing, so the lag it reports stays at what it knew. One stream info
// request per node per interval is the cost.
//
// Bounded by snapshots: a per-subject limit cannot bound the stream (a
// delta needs the record it merges into, and a subject is a topic, not a
// key), so the nodes write snapshots of the SOW to an Object Store bucket
// every SnapshotInterval and purge the stream below them, keeping
// SnapshotRetain of messages for nodes that lag; a starting node loads the
// newest snapshot and applies the stream after it. A node that finds
// messages purged before it applied them stops applying and reports
// catching up (snapshot.go has the rules). Measured (BenchmarkSOWCatchUp,
// 20000 ordered publishes of about 220 bytes over 1000 keys, one NATS
// server in the process, two shared cores, one run side by side): a node
// starts in 9-10 ms loading 1000 records and applying no stream message,
// against 143-187 ms applying all 20000 without snapshots; with a
// snapshot of 20000 records (every publish a key of its own) 66-86 ms.
// Without snapshots the start grows with the history, with them with the
// SOW's size.
type OrderedBackplane struct {
	*Backplane
	js       jetstream.JetStream
	cfg      SOWConfig
	subjects Subjects

	// slots and pendingBytes bound the publishes JetStream has not acked;
	// pending holds them, in Order's order, for the settling goroutine,
	// which returns once stop is closed and what was pending is settled
	// (done closed).
	slots        chan struct{}
	pendingBytes atomic.Int64
	pending      chan pendingOrder
	stop         chan struct{}
	done         chan struct{}
	closing      atomic.Bool

	// mu is held for reading while an ordered publish is applied and for
	// writing by Close.
	mu       sync.RWMutex
	closed   bool
	started  bool
	caughtUp chan struct{}
	// caughtUpOnce closes caughtUp: a gap found at start may set
	// catchingUp again after it was closed.
	caughtUpOnce sync.Once
	target       uint64 // the stream's last sequence when StartOrdered began

	// followCtx ends (followStop, by Close) the follow goroutine, which
	// closes followed when it returns, and the consumer deletes it starts
	// (deletes); all set by StartOrdered. serial numbers the consumers
	// (sowfollow.go), the follow goroutine's alone once started.
	followCtx  context.Context
	followStop context.CancelFunc
	followed   chan struct{}
	deletes    sync.WaitGroup
	serial     int

	// pollStop ends the lag poll (pollLast), which closes polled when it
	// returns; both set by StartOrdered.
	pollStop context.CancelFunc
	polled   chan struct{}

	// held are the plain publishes of other nodes held back, per
	// instance in arrival order (heldN of them), for the Backplane's
	// deliver; gaveUpAfter is the last place a wait for it expired. The
	// release goroutine (releaseHeld, kicked through kick) runs from Start
	// until Close closes releaseStop, and closes released.
	heldMu      sync.Mutex
	held        map[string][]heldPlain
	heldN       atomic.Int64
	heldLimit   int64 // maxHeldPlain; tests lower it
	gaveUpAfter uint64
	deliver     func(*broker.RemotePublish)
	kick        chan struct{}
	releaseStop chan struct{}
	released    chan struct{}

	catchingUp                              atomic.Bool
	applied                                 atomic.Uint64 // the last stream sequence applied
	last                                    atomic.Uint64 // the stream's last sequence, as far as known
	orderMalformed, orderErrs, waitsExpired atomic.Int64

	snapshotState // snapshot.go
}

// pendingOrder is an Order JetStream has not acked yet (fut), or one it
// refused at once (err).
type pendingOrder struct {
	fut  jetstream.PubAckFuture
	err  error
	done func(error)
	size int64 // counted in pendingBytes
}

// SOWConfig configures the SOW order. Zero fields take the defaults below.
type SOWConfig struct {
	// Stream is the JetStream stream's name; Prefix its subjects' prefix.
	// Every node of a cluster uses the same.
	Stream, Prefix string
	// Replicas is the stream's replication factor (3 on a three-node NATS
	// cluster, so that an acked publish survives the loss of a node).
	Replicas int
	// Storage is where the stream keeps its messages.
	Storage jetstream.StorageType
	// MaxPendingBytes bounds their bytes likewise (nats.go keeps each
	// until its ack).
	MaxPendingBytes int
	// MaxPending bounds the publishes waiting for JetStream's ack; Order
	// refuses beyond (ErrBackplaneFull).
	MaxPending int
	// AckTimeout bounds the wait for JetStream's ack of a publish; a
	// publish not acked by then gets a failed persisted ack.
	AckTimeout time.Duration
	// RequestTimeout bounds stream lookups and creation.
	RequestTimeout time.Duration
	// CatchUpTimeout bounds StartOrdered's wait for the node to apply what
	// the stream held when it started.
	CatchUpTimeout time.Duration
	// LagPollInterval is how often the node asks for the stream's last
	// sequence, for State's Lag.
	LagPollInterval time.Duration
	// SnapshotInterval is how often a node considers writing a snapshot
	// of the SOW (snapshot.go; default DefaultSnapshotInterval, negative:
	// never; the node still loads one at start). SnapshotRetain is how
	// long the stream keeps a message after a snapshot covers it (default
	// DefaultSnapshotRetain): a node lagging by more stops applying (see
	// "A gap" in snapshot.go); at least SnapshotInterval (a shorter one is
	// raised to it). Every node of a cluster should use the same.
	// SnapshotBucket is the Object
	// Store bucket of the snapshots (default the stream's name and
	// "_SNAP").
	SnapshotInterval, SnapshotRetain time.Duration
	SnapshotBucket                   string
	// DuplicateWindow is the stream's duplicate window (default
	// DefaultDuplicateWindow): a publish with a publisher sequence resent
	// within it, after its ack was lost, is stored once, and the nodes'
	// expire requests for one record are stored once (see dedup.go). An
	// existing stream with another window is updated to this one.
	DuplicateWindow time.Duration
}

// Defaults of SOWConfig.
const (
	DefaultSOWStream     = "AMPS_SOW"
	DefaultSOWPrefix     = "amps.sow"
	DefaultSOWMaxPending = 16 << 10
	// DefaultSOWMaxPendingBytes bounds the bytes of those publishes.
	DefaultSOWMaxPendingBytes = 64 << 20
	// DefaultSOWAckTimeout is generous: a raft leader election takes a
	// few seconds.
	DefaultSOWAckTimeout     = 10 * time.Second
	DefaultSOWRequestTimeout = 10 * time.Second
	// DefaultCatchUpTimeout bounds a node's start; past it the node serves
	// and reports CatchingUp until it caught up.
	DefaultCatchUpTimeout = time.Minute
	// DefaultLagPollInterval: a stalled consumer shows in the lag within
	// about a second, for one small request per node per second.
	DefaultLagPollInterval = time.Second
	// orderedVersion is the first byte of an encoded ordered publish;
	// version 3 added the origin's instance and count of plain publishes
	// (see "One publisher's order") and the expire request's version
	// (flagExpire). A stream may still hold version 2 messages, which are
	// read without them.
	orderedVersion   = 3
	orderedVersionV2 = 2
	// orderWaitTimeout bounds how long a node holds a message back for the
	// order of one publisher's plain and SOW-topic messages (see "One
	// publisher's order"); past it the message goes on, and the wait is
	// logged once.
	orderWaitTimeout = 2 * time.Second
	// orderWaitPoll is how often a held message checks whether it may go
	// on (holding is rare: see "One publisher's order").
	orderWaitPoll = time.Millisecond
	// maxHeldPlain bounds the plain publishes held back at once (they wait
	// outside NATS's pending limits); beyond it every held one goes on
	// (its wait counted as expired).
	maxHeldPlain = 64 << 10
	// flagDelta, flagExpiration, flagDelete (a sow_delete) and flagExpire
	// (an expire request) are the bits of an ordered publish's flags.
	flagDelta      = 1
	flagExpiration = 2
	flagDelete     = 4
	flagExpire     = 8
)

func (c *SOWConfig) defaults() {
	if c.Stream == "" {
		c.Stream = DefaultSOWStream
	}
	if c.Prefix == "" {
		c.Prefix = DefaultSOWPrefix
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultSOWMaxPending
	}
	if c.MaxPendingBytes <= 0 {
		c.MaxPendingBytes = DefaultSOWMaxPendingBytes
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = DefaultSOWAckTimeout
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultSOWRequestTimeout
	}
	if c.CatchUpTimeout <= 0 {
		c.CatchUpTimeout = DefaultCatchUpTimeout
	}
	if c.LagPollInterval <= 0 {
		c.LagPollInterval = DefaultLagPollInterval
	}
	if c.DuplicateWindow <= 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = DefaultSnapshotInterval
	}
	if c.SnapshotRetain <= 0 {
		c.SnapshotRetain = DefaultSnapshotRetain
	}
	if c.SnapshotInterval > 0 && c.SnapshotRetain < c.SnapshotInterval {
		// Kept messages must outlast the time between snapshots, or a
		// node a little behind finds a gap after every snapshot.
		c.SnapshotRetain = c.SnapshotInterval
	}
	if c.SnapshotBucket == "" {
		c.SnapshotBucket = c.Stream + snapshotBucketSuffix
	}
}

var _ broker.SOWOrderer = (*OrderedBackplane)(nil)

// NewOrderedBackplane adds the SOW order to bp, on bp's connection,
// creating the stream if it does not exist. Close the result instead of
// bp (it closes bp).
func NewOrderedBackplane(ctx context.Context, bp *Backplane, cfg SOWConfig) (*OrderedBackplane, error) {
	cfg.defaults()
	subjects, err := NewSubjects(cfg.Prefix)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(bp.nc,
		jetstream.WithPublishAsyncMaxPending(cfg.MaxPending+1),
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout),
		jetstream.WithDefaultTimeout(cfg.RequestTimeout))
	if err != nil {
		return nil, fmt.Errorf("natscluster: SOW stream %s: %w", cfg.Stream, err)
	}
	sc := jetstream.StreamConfig{Name: cfg.Stream, Subjects: []string{subjects.All()}, Replicas: cfg.Replicas, Storage: cfg.Storage,
		Duplicates: cfg.DuplicateWindow}
	s, err := ensure(ctx, func(ctx context.Context) (jetstream.Stream, error) { return js.Stream(ctx, cfg.Stream) },
		func(ctx context.Context) (jetstream.Stream, error) { return js.CreateStream(ctx, sc) }, jetstream.ErrStreamNotFound)
	if err != nil {
		return nil, fmt.Errorf("natscluster: SOW stream %s: %w", cfg.Stream, err)
	}
	if subj := s.CachedInfo().Config.Subjects; !slices.ContainsFunc(subj, func(sub string) bool { return covers(sub, subjects.All()) }) {
		return nil, fmt.Errorf("natscluster: SOW stream %s takes subjects %q, not the configured prefix's %q (another stream's name?)",
			cfg.Stream, subj, subjects.All())
	}
	ensureDuplicateWindow(ctx, js, s, cfg.DuplicateWindow, bp.log)
	oc := jetstream.ObjectStoreConfig{Bucket: cfg.SnapshotBucket, Replicas: cfg.Replicas, Storage: cfg.Storage,
		Description: "SOW snapshots of stream " + cfg.Stream}
	snaps, err := ensure(ctx, func(ctx context.Context) (jetstream.ObjectStore, error) {
		return js.ObjectStore(ctx, cfg.SnapshotBucket)
	},
		func(ctx context.Context) (jetstream.ObjectStore, error) { return js.CreateObjectStore(ctx, oc) }, jetstream.ErrBucketNotFound)
	if err != nil {
		return nil, fmt.Errorf("natscluster: SOW snapshot bucket %s: %w", cfg.SnapshotBucket, err)
	}
	snapStream, err := ensure(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		return js.Stream(ctx, snapshotStreamPrefix+cfg.SnapshotBucket)
	}, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("natscluster: SOW snapshot bucket %s: %w", cfg.SnapshotBucket, err)
	}
	o := &OrderedBackplane{
		snapshotState: snapshotState{snaps: snaps, snapStream: snapStream, snapWake: make(chan struct{}), snapOut: make(chan snapshotData, 1)},
		Backplane:     bp, js: js, cfg: cfg, subjects: subjects,
		slots: make(chan struct{}, cfg.MaxPending), pending: make(chan pendingOrder, cfg.MaxPending),
		stop: make(chan struct{}), done: make(chan struct{}), caughtUp: make(chan struct{}),
		held: make(map[string][]heldPlain), heldLimit: maxHeldPlain, kick: make(chan struct{}, 1),
	}
	o.catchingUp.Store(true)
	go o.settle()
	return o, nil
}

// Order publishes rp to the SOW stream without waiting for the ack, which
// reaches done later (see OrderedBackplane). The publish goes through the
// Backplane's sending goroutine, after the plain publishes queued before
// it, stamped with their count (see "One publisher's order").
func (o *OrderedBackplane) Order(rp *broker.RemotePublish, done func(error)) error {
	subject, err := o.subjects.Subject(rp.MessageType, rp.Topic)
	if err != nil {
		return err
	}
	if o.closing.Load() {
		return ErrBackplaneClosed
	}
	data := o.encodeOrdered(rp)
	if limit := o.nc.MaxPayload(); limit > 0 && int64(len(data)) > limit {
		return fmt.Errorf("%w: %d bytes on SOW topic %q, at most %d", ErrPublishTooLarge, len(data), rp.Topic, limit)
	}
	size := int64(len(data))
	if o.pendingBytes.Add(size) > int64(o.cfg.MaxPendingBytes) {
		o.pendingBytes.Add(-size)
		return ErrBackplaneFull
	}
	select {
	case o.slots <- struct{}{}:
	default:
		o.pendingBytes.Add(-size)
		return ErrBackplaneFull
	}
	msg := &nats.Msg{Subject: subject, Data: data}
	if id := orderedMsgID(rp); id != "" {
		msg.Header = nats.Header{jetstream.MsgIDHeader: []string{id}}
	}
	send := func(sentBefore uint64) {
		binary.LittleEndian.PutUint64(data[numberAt:], sentBefore)
		// No retries: nats.go retries a "no responders" answer (a stream
		// without a leader, as during an election) after a wait, by which
		// time later publishes of the same connection may be stored, so a
		// retried update would land after newer ones of its publisher and
		// the order every node applies would be wrong. A failed publish is
		// reported instead, and its publisher resends; the stream stores a
		// resend within its duplicate window once (see dedup.go),
		// whichever node it comes through, and acks it as a duplicate,
		// which settles it.
		fut, err := o.js.PublishMsgAsync(msg, jetstream.WithExpectStream(o.cfg.Stream), jetstream.WithRetryAttempts(0))
		if err != nil {
			err = fmt.Errorf("natscluster: SOW publish to %s: %w", subject, err)
		}
		// Never blocks: pending has a place for every slot.
		o.pending <- pendingOrder{fut: fut, err: err, done: done, size: size}
	}
	if err := o.enqueue(outgoing{subject: subject, order: send}, len(data)); err != nil {
		<-o.slots
		o.pendingBytes.Add(-size)
		return err
	}
	return nil
}

// settle hands JetStream's acks to the broker in Order's order, until
// Close; then it settles what is pending and returns.
func (o *OrderedBackplane) settle() {
	defer close(o.done)
	one := func(p pendingOrder) {
		switch {
		case p.err != nil:
			o.orderErrs.Add(1)
			p.done(p.err)
		default:
			select {
			case ack := <-p.fut.Ok():
				o.raiseLast(ack.Sequence)
				if ack.Duplicate {
					p.done(broker.ErrAlreadyOrdered) // a resend: not applied again
				} else {
					p.done(nil)
				}
			case err := <-p.fut.Err():
				o.orderErrs.Add(1)
				p.done(err)
			}
		}
		o.pendingBytes.Add(-p.size)
		<-o.slots
	}
	for {
		select {
		case p := <-o.pending:
			one(p)
		case <-o.stop:
			for {
				select {
				case p := <-o.pending:
					one(p)
				default:
					return
				}
			}
		}
	}
}

// StartOrdered applies the stream from its start, this node's publishes
// included, and returns once the node caught up (see OrderedBackplane).
func (o *OrderedBackplane) StartOrdered(apply func(*broker.RemotePublish)) error {
	o.mu.Lock()
	switch {
	case o.closed:
		o.mu.Unlock()
		return ErrBackplaneClosed
	case o.started:
		o.mu.Unlock()
		return errors.New("natscluster: SOW order started twice")
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.cfg.RequestTimeout)
	defer cancel()
	s, err := ensure(ctx, func(ctx context.Context) (jetstream.Stream, error) { return o.js.Stream(ctx, o.cfg.Stream) }, nil, nil)
	if err != nil {
		o.mu.Unlock()
		return fmt.Errorf("natscluster: SOW stream %s: %w", o.cfg.Stream, err)
	}
	// Loading a large snapshot may take longer than a request.
	lctx, lcancel := context.WithTimeout(context.Background(), o.cfg.RequestTimeout+o.cfg.CatchUpTimeout)
	defer lcancel()
	info, err := o.loadNewest(lctx, s, apply)
	if err != nil {
		o.mu.Unlock()
		return err
	}
	o.target = info.State.LastSeq
	o.checkGap(info.State) // then target is past what was applied
	if o.target <= o.applied.Load() {
		o.caughtUpNow()
	}
	o.followCtx, o.followStop = context.WithCancel(context.Background())
	// A request of its own: the snapshot's load may have taken ctx's time.
	cctx, ccancel := context.WithTimeout(context.Background(), o.cfg.RequestTimeout)
	defer ccancel()
	first, err := o.newSOWConsumer(cctx, o.cfg.RequestTimeout)
	if err != nil {
		o.followStop()
		o.deletes.Wait()
		o.followStop = nil
		o.mu.Unlock()
		return err
	}
	o.started = true
	o.raiseLast(o.target)
	o.followed = make(chan struct{})
	go o.follow(first, apply)
	pctx, pstop := context.WithCancel(context.Background())
	o.pollStop, o.polled = pstop, make(chan struct{})
	go o.pollLast(pctx, s)
	if o.cfg.SnapshotInterval > 0 && o.state != nil {
		sctx, sstop := context.WithCancel(context.Background())
		o.snapStop, o.snapDone = sstop, make(chan struct{})
		go o.snapshotLoop(sctx, s)
	}
	o.mu.Unlock()
	select {
	case <-o.caughtUp:
	case <-time.After(o.cfg.CatchUpTimeout):
		o.log.Warn("SOW catch-up takes longer than its timeout; serving while catching up",
			"timeout", o.cfg.CatchUpTimeout, "applied", o.applied.Load(), "target", o.target)
	}
	return nil
}

// pollLast asks for the stream's last sequence every LagPollInterval
// until ctx ends (Close), and closes polled then. A failed request is
// retried at the next tick (a stream electing its leader answers nothing
// for a few seconds).
func (o *OrderedBackplane) pollLast(ctx context.Context, s jetstream.Stream) {
	defer close(o.polled)
	every(ctx, o.cfg.LagPollInterval, func() {
		rctx, cancel := context.WithTimeout(ctx, o.cfg.RequestTimeout)
		info, err := s.Info(rctx)
		cancel()
		if err != nil {
			o.log.Debug("SOW stream info for the lag", "stream", o.cfg.Stream, "err", err)
			return
		}
		o.raiseLast(info.State.LastSeq)
		o.idleGap(info.State)
	})
}

// every calls f every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f()
	}
}

// raiseLast records that the stream holds at least seq messages.
func (o *OrderedBackplane) raiseLast(seq uint64) {
	for {
		cur := o.last.Load()
		if seq <= cur || o.last.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// caughtUpNow records that the node applied what the stream held at start.
func (o *OrderedBackplane) caughtUpNow() {
	if o.gapped.Load() {
		return // catching up for good (snapshot.go)
	}
	if o.catchingUp.Swap(false) {
		o.caughtUpOnce.Do(func() { close(o.caughtUp) })
	}
}

// heldPlain is a plain publish of another node held back (see "One
// publisher's order"): until this node applied rp.After, or behind an
// earlier held one of its instance; until is when its wait expires.
type heldPlain struct {
	rp    broker.RemotePublish
	from  origin
	until time.Time
}

// Start is Backplane's, holding a plain publish back until this node
// applied the ordered publish it follows, without holding up those of
// other instances (see "One publisher's order"). Deliveries never
// overlap; those of one instance keep their arrival order.
func (o *OrderedBackplane) Start(deliver func(*broker.RemotePublish)) error {
	o.heldMu.Lock()
	if o.deliver != nil {
		o.heldMu.Unlock()
		return errors.New("natscluster: backplane started twice")
	}
	o.deliver = deliver
	o.heldMu.Unlock()
	stop, released := make(chan struct{}), make(chan struct{})
	go o.releaseHeld(stop, released)
	if err := o.Backplane.start(o.arrive); err != nil {
		close(stop)
		<-released
		return err
	}
	o.releaseStop, o.released = stop, released
	return nil
}

// arrive routes a plain publish of another node, or holds it back when
// its instance has one held or it follows an ordered publish this node
// has not applied (not while catching up, nor for a place a wait gave up
// on). It runs on the subscription's goroutine (under mu's read lock).
func (o *OrderedBackplane) arrive(rp *broker.RemotePublish, from origin) {
	o.heldMu.Lock()
	defer o.heldMu.Unlock()
	q := o.held[from.instance]
	if len(q) == 0 && (rp.After <= o.gaveUpAfter || rp.After <= o.applied.Load() || o.catchingUp.Load()) {
		o.route(o.deliver, rp, from)
		return
	}
	// rp.Body is the NATS message's own copy, which nobody reuses.
	o.held[from.instance] = append(q, heldPlain{rp: *rp, from: from, until: time.Now().Add(orderWaitTimeout)})
	// heldN grows before the kick, and an apply reads it after it stored
	// applied: so the release goroutine, which reads applied after the
	// kick, sees that apply, or the apply kicks it again.
	if o.heldN.Add(1) > o.heldLimit {
		o.releaseLocked(time.Now(), true)
	}
	o.kickRelease()
}

// kickRelease has the release goroutine look at the held publishes.
func (o *OrderedBackplane) kickRelease() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// releaseHeld routes held publishes when their wait ends (an apply kicks
// it; a timer runs to the first expiry), until stop is closed; it closes
// done then.
func (o *OrderedBackplane) releaseHeld(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	timer := time.NewTimer(orderWaitTimeout)
	timer.Stop()
	for {
		select {
		case <-stop:
			timer.Stop()
			return
		case <-o.kick:
		case <-timer.C:
		}
		bp := o.Backplane // its lock: no delivery once it closed
		bp.mu.RLock()
		if bp.closed {
			bp.mu.RUnlock()
			continue
		}
		o.heldMu.Lock()
		next, waiting := o.releaseLocked(time.Now(), false)
		o.heldMu.Unlock()
		bp.mu.RUnlock()
		if waiting {
			timer.Reset(time.Until(next))
		}
	}
}

// releaseLocked routes, per instance, the held publishes at the head of
// its queue whose wait ended: this node applied their place, or gave up
// on it, or is catching up, or their wait expired (or force: too many are
// held), which gives up on their place, so the publishes that follow it
// no longer wait for it. It returns the first expiry of those still held.
// heldMu and the Backplane's mu (for reading) are held.
func (o *OrderedBackplane) releaseLocked(now time.Time, force bool) (next time.Time, waiting bool) {
	for id, q := range o.held {
		for len(q) > 0 {
			h := &q[0]
			if h.rp.After > o.gaveUpAfter && h.rp.After > o.applied.Load() && !o.catchingUp.Load() {
				if !force && now.Before(h.until) {
					break
				}
				o.gaveUpAfter = h.rp.After
				o.waitExpired()
			}
			o.route(o.deliver, &h.rp, h.from)
			*h = heldPlain{}
			q = q[1:]
			o.heldN.Add(-1)
		}
		if len(q) == 0 {
			delete(o.held, id)
			continue
		}
		o.held[id] = q
		if !waiting || q[0].until.Before(next) {
			next, waiting = q[0].until, true
		}
	}
	return next, waiting
}

// hold waits until ready, polling, at most orderWaitTimeout or until
// Close; it reports whether ready came true.
func (o *OrderedBackplane) hold(ready func() bool) bool {
	deadline := time.Now().Add(orderWaitTimeout)
	for !ready() {
		if o.closing.Load() {
			return false
		}
		if time.Now().After(deadline) {
			o.waitExpired()
			return false
		}
		time.Sleep(orderWaitPoll)
	}
	return true
}

// waitExpired counts a wait for one publisher's order that expired, and
// logs the first.
func (o *OrderedBackplane) waitExpired() {
	if o.waitsExpired.Add(1) == 1 {
		o.log.Warn("a message held for one publisher's order went on unordered after the wait's bound (logged once)", "bound", orderWaitTimeout)
	}
}

// receiveOrdered applies one message of the stream (meta its metadata).
func (o *OrderedBackplane) receiveOrdered(m jetstream.Msg, meta *jetstream.MsgMetadata, apply func(*broker.RemotePublish)) {
	var rp broker.RemotePublish
	from, err := decodeOrdered(m.Data(), &rp)
	if err == nil && from.instance != o.instance && !o.catchingUp.Load() {
		if !o.hold(func() bool { return o.routedUpTo(from.instance, from.number) }) {
			o.giveUp(from.instance, from.number)
		}
	}
	if err == nil {
		rp.MessageType, rp.Topic, err = o.subjects.Parse(m.Subject())
	}
	rp.Ordinal, rp.OrderTime = meta.Sequence.Stream, meta.Timestamp
	o.raiseLast(meta.Sequence.Stream + meta.NumPending)
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.closed {
		return
	}
	if err != nil {
		if o.orderMalformed.Add(1) == 1 {
			o.log.Warn("malformed message in the SOW stream skipped (logged once)", "subject", m.Subject(), "err", err)
		}
	} else {
		apply(&rp)
	}
	o.applied.Store(meta.Sequence.Stream)
	o.streamApplied.Add(1)
	o.sample(meta.Sequence.Stream, meta.Timestamp)
	if meta.Sequence.Stream >= o.target {
		o.caughtUpNow()
	}
	if o.heldN.Load() > 0 { // after the store: see arrive
		o.kickRelease()
	}
}

// State is Backplane's, with CatchingUp and Lag.
func (o *OrderedBackplane) State() broker.BackplaneState {
	s := o.Backplane.State()
	s.CatchingUp = o.catchingUp.Load()
	// applied is read first: it never passes last, which only grows.
	applied := o.applied.Load()
	if last := o.last.Load(); last > applied {
		s.Lag = last - applied
	}
	return s
}

// Close stops applying (waiting for an apply in progress), closes the
// Backplane (whose sender sends what is queued, ordered publishes
// included), then settles what waits for JetStream's ack.
func (o *OrderedBackplane) Close() error {
	o.closing.Store(true)
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	fstop, followed, pstop, polled := o.followStop, o.followed, o.pollStop, o.polled
	sstop, snapDone := o.snapStop, o.snapDone
	o.mu.Unlock()
	if sstop != nil { // first: it may wait for the follow goroutine
		sstop()
		<-snapDone
	}
	if fstop != nil {
		fstop()
		<-followed
		o.deletes.Wait()
	}
	if pstop != nil {
		pstop()
		<-polled
	}
	err := o.Backplane.Close()
	if o.releaseStop != nil {
		close(o.releaseStop)
		<-o.released
	}
	close(o.stop)
	<-o.done
	return err
}

// encodeOrdered is rp's data in the SOW stream: little-endian, varints
//
//	version byte (orderedVersion)
//	8 bytes: the number of plain publishes the origin sent before it
//	uvarint flags (flagDelta, flagExpiration, flagDelete, flagExpire)
//	uvarint sequence, uvarint expiration (seconds), uvarint token,
//	    uvarint expire version
//	7 × (uvarint length, bytes): origin node id, origin instance id,
//	    client name, correlation id, SOW key, filter, SOW keys (the last
//	    two: a sow_delete's selector)
//
// Version 2 lacked the 8 bytes, the expire version and the instance id.
//
//	body: the rest
func (o *OrderedBackplane) encodeOrdered(rp *broker.RemotePublish) []byte {
	var flags uint64
	if rp.Delta {
		flags |= flagDelta
	}
	if rp.HasExpiration {
		flags |= flagExpiration
	}
	if rp.Delete {
		flags |= flagDelete
	}
	if rp.Expire {
		flags |= flagExpire
	}
	strs := [...]string{o.node, o.instance, rp.ClientName, rp.CorrelationID, rp.SOWKey, rp.Filter, rp.SOWKeys}
	n := 1 + numberLen + 5*binary.MaxVarintLen64 + len(rp.Body)
	for _, s := range strs {
		n += binary.MaxVarintLen32 + len(s)
	}
	b := make([]byte, 1+numberLen, n) // the count is the sender's to stamp
	b[0] = orderedVersion
	b = binary.AppendUvarint(b, flags)
	b = binary.AppendUvarint(b, rp.Sequence)
	b = binary.AppendUvarint(b, rp.Expiration)
	b = binary.AppendUvarint(b, rp.Token)
	b = binary.AppendUvarint(b, rp.ExpireVersion)
	for _, s := range strs {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return append(b, rp.Body...)
}

// decodeOrdered reads an ordered publish's data into rp and returns its
// origin, whose number is the count of plain publishes sent before it;
// rp.Body shares data.
func decodeOrdered(data []byte, rp *broker.RemotePublish) (from origin, err error) {
	d := wire.Decoder{B: data, Bad: errBadEntry}
	v := d.Byte()
	if d.Err == nil && v != orderedVersion && v != orderedVersionV2 {
		return from, fmt.Errorf("%w: version %d, want %d or %d", errBadRemote, v, orderedVersionV2, orderedVersion)
	}
	if v != orderedVersionV2 {
		from.number = d.Uint64()
	}
	flags := d.Uvarint()
	rp.Delta, rp.HasExpiration, rp.Delete = flags&flagDelta != 0, flags&flagExpiration != 0, flags&flagDelete != 0
	rp.Expire = flags&flagExpire != 0
	rp.Sequence = d.Uvarint()
	rp.Expiration = d.Uvarint()
	rp.Token = d.Uvarint()
	if v != orderedVersionV2 {
		rp.ExpireVersion = d.Uvarint()
	}
	from.node = d.String()
	if v != orderedVersionV2 {
		from.instance = d.String()
	}
	rp.ClientName = d.String()
	rp.CorrelationID = d.String()
	rp.SOWKey = d.String()
	rp.Filter = d.String()
	rp.SOWKeys = d.String()
	if d.Err != nil {
		return from, fmt.Errorf("%w: %v", errBadRemote, d.Err)
	}
	rp.Body = d.B
	return from, nil
}
