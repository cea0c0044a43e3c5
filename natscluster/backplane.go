package natscluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/internal/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// Backplane is a broker.Backplane over core NATS: the publishes a node
// accepts to topics without SOW go to the other nodes at most once, in
// per-publisher order, with no disk on the way.
//
// Subjects. A publish goes to "<prefix>.<message type>.<topic>" (see
// Subjects: the topic is one escaped token, so any topic is safe).
//
// Interest: broadcast (option 1 of the package doc). Every node
// subscribes once to "<prefix>.*.*" and receives every plain publish of
// the cluster, then routes what its clients want and drops the rest; a
// regex subscription or a content filter costs what it costs on one node.
// A node receives its own publishes too (NATS echoes them unless the
// connection was made with nats.NoEcho, which saves that traffic) and
// drops them by their origin id. A node that just started may miss what
// other nodes publish while its subscription propagates over the NATS
// routes (about one route round trip).
//
// Order. One queue and one sending goroutine per node keep the order of
// Publish calls (the broker makes them in the order it routed the
// publishes locally, per topic); NATS delivers what one connection
// publishes to one subscription in that order (every publish of a node
// shares the connection, and every node has one subscription); and the
// receiving node is handed its messages by one goroutine in arrival
// order (an OrderedBackplane holds some back, keeping each sending
// instance's order: see sow.go). So a publisher's messages reach every
// node in the order it sent them, and one node's publishes to a topic
// reach every node in one order.
//
// Bounds. Publish never waits: it queues for the sending goroutine, up to
// SendQueue messages and SendQueueBytes bytes, and refuses beyond with
// ErrBackplaneFull (the broker
// counts and logs that; the message still reached this node's clients).
// A publish larger than the NATS server's max_payload (raise it for
// larger messages) is refused with ErrPublishTooLarge in the same way.
// Received messages wait for the broker in the subscription's pending
// buffer, up to PendingMsgs and PendingBytes; NATS drops beyond (a slow
// consumer, counted in Stats.Dropped). While the connection is down, NATS
// buffers publishes up to its reconnect buffer and sends them on
// reconnect.
//
// Wire format. What routing needs travels in the message's data, not in
// NATS headers: header values cannot hold every byte a client name or a
// correlation id may hold, and a binary prefix costs no header parsing per
// message. Little-endian, varints:
//
//	version byte (remoteVersion)
//	8 bytes: the message's number among those this backplane sent (1, 2, …)
//	uvarint sequence, uvarint journal position, uvarint journal id,
//	    uvarint after (RemotePublish.After)
//	4 × (uvarint length, bytes): origin node id, origin instance id,
//	    client name, correlation id
//	body: the rest
//
// The number and the instance (a fresh id per Backplane, so a restarted
// node with the same NodeID is a new instance) let an OrderedBackplane
// keep one publisher's plain and SOW-topic messages in order on the
// receiving nodes (see sow.go).
//
// SOW topics across nodes: OrderedBackplane (sow.go) adds the order of
// SOW-topic publishes on JetStream to a Backplane.
type Backplane struct {
	nc       *nats.Conn
	cfg      BackplaneConfig
	subjects Subjects
	node     string
	log      *slog.Logger

	// queue holds the publishes for the sender, which returns once stop
	// is closed and it has sent what was queued; done is closed then.
	// Publish takes no lock (the broker calls it holding locks a delivery
	// may wait for): it checks closing and sends without blocking, so a
	// Publish racing Close may queue a message nobody sends, as a publish
	// after Close would be lost anyway.
	queue   chan outgoing
	stop    chan struct{}
	done    chan struct{}
	closing atomic.Bool
	// instance identifies this Backplane among every node's, restarts
	// included; sentCount is the number of messages the sender handed to
	// NATS (the sender's alone).
	instance  string
	sentCount uint64
	// queuedBytes is the size of what is queued (SendQueueBytes bounds it).
	queuedBytes atomic.Int64

	// peers holds, per instance of another node, what this node got of
	// its plain publishes (see peer); swept is when peers last lost the
	// instances not heard from for forgetPeerAfter. finished counts the
	// subscription's messages whose handling ended (routed, dropped, or
	// held by an OrderedBackplane).
	peersMu  sync.Mutex
	peers    map[string]*peer
	swept    time.Time
	finished atomic.Uint64

	// mu is held for reading by a delivery in progress and for writing by
	// Close, which sets closed: after Close returns no delivery runs.
	mu      sync.RWMutex
	closed  bool
	started bool
	sub     *nats.Subscription

	sent, sendErrors, received, malformed atomic.Int64
}

// peer is what a node got of one instance of another node: the number of
// the last of its messages taken from the subscription (seen), and of the
// last handed to the broker or given up on (routed; see giveUp), and when
// it was last heard of (a plain publish, or an ordered one waiting for
// them).
type peer struct {
	seen, routed uint64
	heard        time.Time
}

// outgoing is one queued publish: a plain one (data, whose number the
// sender stamps), or an ordered one (order, which the sender runs with the
// number of plain publishes sent before it).
type outgoing struct {
	subject string
	data    []byte
	order   func(sentBefore uint64)
	size    int // counted in queuedBytes
}

// Defaults of BackplaneConfig.
const (
	// DefaultBackplanePrefix is the subject prefix of plain publishes:
	// "amps.bus.<message type>.<topic>".
	DefaultBackplanePrefix = "amps.bus"
	// DefaultSendQueue bounds the publishes a node has queued for NATS;
	// beyond it Publish refuses. 64 Ki messages ride out a pause of the
	// sending goroutine of tens of milliseconds at a high rate.
	DefaultSendQueue = 64 << 10
	// DefaultSendQueueBytes bounds the bytes a node has queued for NATS
	// (publishes may be up to max_payload each, 1 MiB by default).
	DefaultSendQueueBytes = 64 << 20
	// DefaultPendingMsgs and DefaultPendingBytes bound what the node has
	// received and not yet routed; NATS drops beyond them.
	DefaultPendingMsgs  = 256 << 10
	DefaultPendingBytes = 256 << 20
	// forgetPeerAfter is how long a node keeps what it got of an instance
	// of another node it no longer hears from (peer): instances change at
	// every node restart, so the dead ones go. An instance forgotten while
	// alive only makes its next ordered publish wait as for one never heard
	// of (routedUpTo), bounded by orderWaitTimeout.
	forgetPeerAfter = 10 * time.Minute
	// closeFlushTimeout bounds Close's wait for NATS to take what was
	// queued.
	closeFlushTimeout = 5 * time.Second
	// remoteVersion is the first byte of every encoded publish.
	remoteVersion = 2
	// numberAt and numberLen place the message's number in its data.
	numberAt, numberLen = 1, 8
)

// Sentinel errors of the backplane.
var (
	// ErrBackplaneFull: Publish found the send queue full (NATS is slower
	// than the node's publishers, or its link is stalled).
	ErrBackplaneFull = errors.New("natscluster: backplane send queue full")
	// ErrBackplaneClosed: Publish or Start after Close.
	ErrBackplaneClosed = errors.New("natscluster: backplane closed")
	// ErrPublishTooLarge: an encoded publish is larger than the NATS
	// server's max_payload (1 MiB by default), so it cannot cross.
	ErrPublishTooLarge = errors.New("natscluster: publish larger than the NATS server's max_payload")
	// errBadRemote: a message under the prefix is not one this backplane
	// wrote.
	errBadRemote = errors.New("malformed remote publish")
)

// BackplaneConfig configures a Backplane. Zero fields take the defaults
// above.
type BackplaneConfig struct {
	// Prefix is the subject prefix; every node of a cluster uses the same.
	Prefix string
	// NodeID identifies this node's publishes, so that it drops them when
	// NATS echoes them back. Default: a fresh unique id (nuid).
	NodeID string
	// SendQueue and SendQueueBytes bound the publishes queued for NATS, in
	// number and in bytes.
	SendQueue, SendQueueBytes int
	// PendingMsgs and PendingBytes bound the received publishes waiting
	// for the broker.
	PendingMsgs, PendingBytes int
	// Logger gets the backplane's notices (discarded when nil).
	Logger *slog.Logger
}

func (c *BackplaneConfig) defaults() {
	if c.Prefix == "" {
		c.Prefix = DefaultBackplanePrefix
	}
	if c.NodeID == "" {
		c.NodeID = nuid.Next()
	}
	if c.SendQueue <= 0 {
		c.SendQueue = DefaultSendQueue
	}
	if c.SendQueueBytes <= 0 {
		c.SendQueueBytes = DefaultSendQueueBytes
	}
	if c.PendingMsgs <= 0 {
		c.PendingMsgs = DefaultPendingMsgs
	}
	if c.PendingBytes <= 0 {
		c.PendingBytes = DefaultPendingBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

var _ broker.Backplane = (*Backplane)(nil)

// NewBackplane returns a backplane on nc and starts its sending goroutine.
// The connection stays the caller's: close the backplane (after the
// broker's Shutdown) before the connection.
func NewBackplane(nc *nats.Conn, cfg BackplaneConfig) (*Backplane, error) {
	cfg.defaults()
	subjects, err := NewSubjects(cfg.Prefix)
	if err != nil {
		return nil, err
	}
	p := &Backplane{
		nc: nc, cfg: cfg, subjects: subjects, node: cfg.NodeID, log: cfg.Logger, instance: nuid.Next(),
		queue: make(chan outgoing, cfg.SendQueue), stop: make(chan struct{}), done: make(chan struct{}),
		peers: make(map[string]*peer),
	}
	go p.send()
	return p, nil
}

// Publish queues p for the other nodes (see Backplane).
func (p *Backplane) Publish(rp *broker.RemotePublish) error {
	subject, err := p.subjects.Subject(rp.MessageType, rp.Topic)
	if err != nil {
		return err
	}
	data := p.encode(rp)
	if limit := p.nc.MaxPayload(); limit > 0 && int64(len(data)) > limit {
		return fmt.Errorf("%w: %d bytes on topic %q, at most %d", ErrPublishTooLarge, len(data), rp.Topic, limit)
	}
	return p.enqueue(outgoing{subject: subject, data: data}, len(data))
}

// enqueue queues o (size bytes) for the sender, without waiting.
func (p *Backplane) enqueue(o outgoing, size int) error {
	if p.closing.Load() {
		return ErrBackplaneClosed
	}
	if p.queuedBytes.Add(int64(size)) > int64(p.cfg.SendQueueBytes) {
		p.queuedBytes.Add(-int64(size))
		return ErrBackplaneFull
	}
	o.size = size
	select {
	case p.queue <- o:
		return nil
	default:
		p.queuedBytes.Add(-int64(size))
		return ErrBackplaneFull
	}
}

// send hands the queue to NATS, in order, until Close; then it sends what
// is left queued and returns.
func (p *Backplane) send() {
	defer close(p.done)
	for {
		select {
		case o := <-p.queue:
			p.publish(o)
		case <-p.stop:
			for {
				select {
				case o := <-p.queue:
					p.publish(o)
				default:
					return
				}
			}
		}
	}
}

// publish hands one queued publish to NATS, numbering plain ones.
func (p *Backplane) publish(o outgoing) {
	p.queuedBytes.Add(-int64(o.size))
	if o.order != nil {
		o.order(p.sentCount)
		return
	}
	binary.LittleEndian.PutUint64(o.data[numberAt:], p.sentCount+1)
	if err := p.nc.Publish(o.subject, o.data); err != nil {
		if p.sendErrors.Add(1) == 1 {
			p.log.Warn("backplane publish to NATS failed (logged once)", "subject", o.subject, "err", err)
		}
		return
	}
	p.sentCount++
	p.sent.Add(1)
}

// encode is rp's data (see the wire format above).
func (p *Backplane) encode(rp *broker.RemotePublish) []byte {
	strs := [...]string{p.node, p.instance, rp.ClientName, rp.CorrelationID}
	n := 1 + numberLen + 4*binary.MaxVarintLen64 + len(rp.Body)
	for _, s := range strs {
		n += binary.MaxVarintLen32 + len(s)
	}
	b := make([]byte, 1+numberLen, n) // the number is the sender's to stamp
	b[0] = remoteVersion
	b = binary.AppendUvarint(b, rp.Sequence)
	b = binary.AppendUvarint(b, uint64(rp.Position))
	b = binary.AppendUvarint(b, rp.JournalID)
	b = binary.AppendUvarint(b, rp.After)
	for _, s := range strs {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return append(b, rp.Body...)
}

// origin is where a remote publish comes from: its node, the Backplane
// instance that sent it, and its number among that instance's.
type origin struct {
	node, instance string
	number         uint64
}

// decode reads a remote publish's data into rp and returns its origin.
// rp.Body shares data.
func decode(data []byte, rp *broker.RemotePublish) (from origin, err error) {
	d := wire.Decoder{B: data, Bad: errBadEntry}
	if v := d.Byte(); d.Err == nil && v != remoteVersion {
		return from, fmt.Errorf("%w: version %d, want %d", errBadRemote, v, remoteVersion)
	}
	from.number = d.Uint64()
	rp.Sequence = d.Uvarint()
	rp.Position = broker.Position(d.Uvarint())
	rp.JournalID = d.Uvarint()
	rp.After = d.Uvarint()
	from.node = d.String()
	from.instance = d.String()
	rp.ClientName = d.String()
	rp.CorrelationID = d.String()
	if d.Err != nil {
		return from, fmt.Errorf("%w: %v", errBadRemote, d.Err)
	}
	rp.Body = d.B
	return from, nil
}

// Start subscribes to every plain publish of the cluster and hands those
// of other nodes to deliver, one at a time, in arrival order. It returns
// once this node's NATS server has the subscription.
func (p *Backplane) Start(deliver func(*broker.RemotePublish)) error {
	return p.start(func(rp *broker.RemotePublish, from origin) { p.route(deliver, rp, from) })
}

// start subscribes, handing each publish of another node to handle, from
// the subscription's goroutine, under mu's read lock while not closed.
func (p *Backplane) start(handle func(*broker.RemotePublish, origin)) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return ErrBackplaneClosed
	case p.started:
		return errors.New("natscluster: backplane started twice")
	}
	sub, err := p.nc.Subscribe(p.subjects.All(), func(m *nats.Msg) { p.receive(m, handle) })
	if err != nil {
		return fmt.Errorf("natscluster: backplane subscribe %s: %w", p.subjects.All(), err)
	}
	if err := sub.SetPendingLimits(p.cfg.PendingMsgs, p.cfg.PendingBytes); err != nil {
		sub.Unsubscribe()
		return fmt.Errorf("natscluster: backplane pending limits: %w", err)
	}
	if err := p.nc.Flush(); err != nil {
		sub.Unsubscribe()
		return fmt.Errorf("natscluster: backplane subscribe %s: %w", p.subjects.All(), err)
	}
	p.sub, p.started = sub, true
	return nil
}

// receive hands a message of another node to handle, once it noted it
// seen (so seen is set before finished counts the message).
func (p *Backplane) receive(m *nats.Msg, handle func(*broker.RemotePublish, origin)) {
	defer p.finished.Add(1)
	var rp broker.RemotePublish
	from, err := decode(m.Data, &rp)
	if err == nil && from.node == p.node {
		return
	}
	if err == nil {
		rp.MessageType, rp.Topic, err = p.subjects.Parse(m.Subject)
	}
	if err != nil {
		if p.malformed.Add(1) == 1 {
			p.log.Warn("malformed message under the backplane's prefix dropped (logged once)", "subject", m.Subject, "err", err)
		}
		return
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return
	}
	p.noteSeen(from, time.Now())
	handle(&rp, from)
}

// route hands rp, of from, to deliver and records it routed. Its callers
// hold mu for reading and checked closed.
func (p *Backplane) route(deliver func(*broker.RemotePublish), rp *broker.RemotePublish, from origin) {
	p.received.Add(1)
	deliver(rp)
	p.giveUp(from.instance, from.number)
}

// noteSeen records that from was taken from the subscription at now, and
// forgets the instances not heard from for forgetPeerAfter (a sweep at
// most every forgetPeerAfter).
func (p *Backplane) noteSeen(from origin, now time.Time) {
	p.peersMu.Lock()
	defer p.peersMu.Unlock()
	if now.Sub(p.swept) >= forgetPeerAfter {
		for id, e := range p.peers {
			if now.Sub(e.heard) >= forgetPeerAfter {
				delete(p.peers, id)
			}
		}
		p.swept = now
	}
	e := p.peers[from.instance]
	if e == nil {
		e = &peer{}
		p.peers[from.instance] = e
	}
	e.seen, e.heard = max(e.seen, from.number), now
}

// peerCounts returns what this node got of instance (see peer), and
// records it heard of now when it knows it.
func (p *Backplane) peerCounts(instance string) (seen, routed uint64) {
	p.peersMu.Lock()
	defer p.peersMu.Unlock()
	e := p.peers[instance]
	if e == nil {
		return 0, 0
	}
	e.heard = time.Now()
	return e.seen, e.routed
}

// routedUpTo reports whether the broker was handed instance's messages up
// to the one numbered n, or need not wait for them. Once this node got a
// message of instance (routed, or taken from the subscription and held by
// an OrderedBackplane), the later ones come in their order (NATS keeps one
// connection's order to one subscription), so it waits for them (bounded
// by the caller, see giveUp: a message NATS dropped never comes). Of an
// instance it got nothing from yet, what is not here may have been sent
// before this node subscribed: it waits only while the subscription holds
// a message not yet handled (one held counts as handled: it is seen).
func (p *Backplane) routedUpTo(instance string, n uint64) bool {
	if seen, got := p.peerCounts(instance); got >= n || seen > 0 || got > 0 {
		return got >= n
	}
	p.mu.RLock()
	sub := p.sub
	p.mu.RUnlock()
	if sub == nil {
		return true
	}
	pending, _, err := sub.Pending()
	if err != nil {
		return true
	}
	delivered, err := sub.Delivered() // counted before the handler runs
	if err == nil && (pending != 0 || uint64(delivered) != p.finished.Load()) {
		return false
	}
	// A message of instance handled meanwhile was seen before it counted
	// as finished.
	seen, got := p.peerCounts(instance)
	return got >= n || seen == 0 && got == 0
}

// giveUp records instance's messages up to n routed: handed to the broker,
// or a wait for them expired (they were dropped), so later ones do not
// wait for them again.
func (p *Backplane) giveUp(instance string, n uint64) {
	p.peersMu.Lock()
	defer p.peersMu.Unlock()
	e := p.peers[instance]
	if e == nil {
		e = &peer{heard: time.Now()}
		p.peers[instance] = e
	}
	e.routed = max(e.routed, n)
}

// State reports whether the NATS connection is up, and how many received
// publishes NATS dropped because the broker fell behind.
func (p *Backplane) State() broker.BackplaneState {
	p.mu.RLock()
	closed := p.closed
	p.mu.RUnlock()
	return broker.BackplaneState{Connected: !closed && p.nc.IsConnected(), Lost: p.Stats().Dropped}
}

// BackplaneStats are a backplane's own figures (the broker's are in
// broker.Stats.Cluster).
type BackplaneStats struct {
	Sent       int64 // publishes handed to NATS
	SendErrors int64 // publishes NATS refused
	Received   int64 // publishes of other nodes handed to the broker
	Malformed  int64 // messages under the prefix that did not decode
	Dropped    int64 // received publishes NATS dropped: the broker fell behind
}

// Stats returns the backplane's figures.
func (p *Backplane) Stats() BackplaneStats {
	s := BackplaneStats{Sent: p.sent.Load(), SendErrors: p.sendErrors.Load(), Received: p.received.Load(), Malformed: p.malformed.Load()}
	p.mu.RLock()
	sub := p.sub
	p.mu.RUnlock()
	if sub != nil {
		if n, err := sub.Dropped(); err == nil {
			s.Dropped = int64(n)
		}
	}
	return s
}

// Close stops the deliveries (waiting for one in progress), sends what is
// queued and waits, at most closeFlushTimeout, for NATS to take it. It
// leaves the connection open.
func (p *Backplane) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.closing.Store(true)
	close(p.stop)
	sub := p.sub
	p.mu.Unlock()
	var err error
	if sub != nil {
		err = sub.Unsubscribe()
	}
	<-p.done
	if ferr := p.nc.FlushTimeout(closeFlushTimeout); ferr != nil && !errors.Is(ferr, nats.ErrConnectionClosed) {
		err = errors.Join(err, ferr)
	}
	if errors.Is(err, nats.ErrConnectionClosed) {
		err = nil
	}
	return err
}
