package broker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ampsbroker/ampsbroker/transport"
)

// Broker routes AMPS messages between the clients of its listeners and its
// in-process clients. Create one with New; it has no package-level state.
type Broker struct {
	opts Options
	log  *slog.Logger

	routersMu sync.RWMutex
	routers   map[string]*router // by message type (semantics §2: (name, type) is a topic's identity)

	mu             sync.Mutex
	closed         bool
	conns          int             // pending + sessions, for MaxConnections
	transportConns map[string]int  // the same per transport name
	disabled       map[string]bool // transport names DisableTransport turned off
	overrides      overrideCheck   // Options.Transports keys seen in use
	janitorOn      bool
	listeners      map[transport.Listener]struct{}
	pending        map[net.Conn]struct{} // raw connections in handshake
	sessions       map[*session]struct{} // network sessions
	clients        map[*Client]struct{}  // in-process clients
	wg             sync.WaitGroup        // every goroutine the broker runs or waits for
	doneCh         chan struct{}         // closed by Shutdown/Close
	ctx            context.Context       // cancelled by Shutdown/Close
	cancel         context.CancelFunc

	// sow holds the State-of-the-World topics; expiry their records with
	// a lifetime.
	sow    *sowRegistry
	expiry expiries
	// seqs is the highest publish sequence per client name.
	seqs sequences
	// persist tracks persisted acks and client names; nil without a
	// journal.
	persist *persister
	// recoverErr is why New could not rebuild the SOW topics from the
	// journal completely (RecoveryErr); nil when it could.
	recoverErr error
	// replaying counts the bookmark subscriptions that have not caught up
	// yet; bookmarkSubs all of them (their readers running).
	replaying, bookmarkSubs atomic.Int64
	// jid is the id in this instance's bookmarks (JournalID of its name).
	jid uint64
	// cluster is Options.Backplane's state; nil without one.
	cluster *cluster

	stats counters
	// retired is the traffic of the endpoints that have ended; guarded by mu.
	retired traffic
	nextID  atomic.Uint64
	// clock is a coarse "now" in unix nanoseconds, advanced by the janitor,
	// for stamping queued messages without a clock read per delivery.
	clock atomic.Int64
}

// counters are the broker's running totals.
type counters struct {
	slowConsumers atomic.Int64
	authFailures  atomic.Int64
	rejected      atomic.Int64
	dropped       atomic.Int64
	notEntitled   atomic.Int64
}

// traffic is what endpoints received and sent. Each endpoint counts its
// own, so that publishers and writers on different cores never contend
// for one counter; the broker keeps the totals of the endpoints that have
// ended (retired, under b.mu), and Stats adds the live ones.
type traffic struct {
	messagesIn, messagesOut, bytesIn, bytesOut int64
}

// traffic returns what e has received and sent so far.
func (e *endpoint) traffic() traffic {
	t := traffic{messagesIn: e.messagesIn.Load(), bytesIn: e.bytesIn.Load()}
	t.messagesOut, t.bytesOut = e.q.sent()
	return t
}

func (t *traffic) add(o traffic) {
	t.messagesIn += o.messagesIn
	t.messagesOut += o.messagesOut
	t.bytesIn += o.bytesIn
	t.bytesOut += o.bytesOut
}

// retire adds the traffic of an endpoint leaving the broker to its totals;
// b.mu is held.
func (b *Broker) retire(e *endpoint) { b.retired.add(e.traffic()) }

// Stats is a snapshot of a broker's counters.
type Stats struct {
	Connections   int64 // open network connections
	Clients       int64 // open in-process clients
	MessagesIn    int64 // publishes received
	MessagesOut   int64 // deliveries written or handed to in-process handlers
	BytesIn       int64 // inbound frame bytes
	BytesOut      int64 // outbound message bytes
	SlowConsumers int64 // endpoints disconnected as slow consumers (budget or age)
	AuthFailures  int64 // rejected logons
	Subscriptions int64 // active subscriptions
	Rejected      int64 // connections closed at accept by a connection limit
	Dropped       int64 // deliveries dropped for in-process clients that drop when slow
	NotEntitled   int64 // commands and regex topics refused by an Entitler

	// Transports counts open connections per transport name.
	Transports map[string]int64
	// Conns describes each open network connection, in ID order.
	Conns []ConnStats
	// SOWTopics describes each SOW topic that holds or held records, in
	// topic order.
	SOWTopics []SOWTopicStats

	// Journal is the transaction log's figures (size, segments, durable
	// position); nil without Options.Journal.
	Journal *JournalStats
	// ReplayingSubscriptions counts the bookmark subscriptions reading
	// the journal (replaying, not yet live).
	ReplayingSubscriptions int64

	// Cluster is the node's link to its cluster and what crossed it; nil
	// without Options.Backplane.
	Cluster *ClusterStats
}

// SOWTopicStats describes one SOW topic in a Stats snapshot.
type SOWTopicStats struct {
	Topic       string
	MessageType string
	Records     int   // records held
	Bytes       int64 // message bytes held (each record costs about 260 bytes more: see the README)
}

// ConnStats describes one network connection in a Stats snapshot.
type ConnStats struct {
	ID            uint64 // as in ConnEvent.ID
	Transport     string // the Name of the listener that accepted it
	RemoteAddr    string // the client's address
	ClientName    string // known after logon
	UserID        string // known after logon
	Subscriptions int    // open subscriptions
	QueuedBytes   int    // outbound bytes queued or being written
	MessagesIn    int64  // publishes received from this connection
	MessagesOut   int64  // deliveries written to it
	BytesIn       int64  // inbound frame bytes
	BytesOut      int64  // outbound message bytes
	// ConnectTime is when the session began, after the transport's
	// handshake.
	ConnectTime time.Time
	// OldestQueued is the age of the oldest message queued for the
	// connection or being written to it; 0 when none is (AMPS
	// queue_max_latency).
	OldestQueued time.Duration
}

// New returns a Broker configured by opts; nil means all defaults. With
// Options.Journal it first rebuilds the journaled SOW topics from the
// journal (see RecoveryErr for a journal it could not read to its end);
// with Options.Backplane it then starts taking remote publishes.
func New(opts *Options) *Broker {
	b := &Broker{
		routers:   make(map[string]*router),
		listeners: make(map[transport.Listener]struct{}),
		pending:   make(map[net.Conn]struct{}),
		sessions:  make(map[*session]struct{}),
		clients:   make(map[*Client]struct{}),
		doneCh:    make(chan struct{}),

		transportConns: make(map[string]int),
		disabled:       make(map[string]bool),
	}
	b.clock.Store(time.Now().UnixNano())
	if opts != nil {
		b.opts = *opts
	}
	o := &b.opts
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	defs, err := sowDefs(o.SOWTopics)
	if err != nil {
		panic(err.Error() + " (check Options with Validate before New)")
	}
	b.sow = newSOWRegistry(defs, &b.expiry)
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.Version == "" {
		o.Version = DefaultVersion
	}
	if o.OutboundQueueBytes <= 0 {
		o.OutboundQueueBytes = DefaultOutboundQueueBytes
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.LogonTimeout <= 0 {
		o.LogonTimeout = DefaultLogonTimeout
	}
	if o.HeartbeatMisses <= 0 {
		o.HeartbeatMisses = DefaultHeartbeatMisses
	}
	if o.MaxMessageAge == 0 {
		o.MaxMessageAge = DefaultMaxMessageAge
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if o.MaxSubscriptions == 0 {
		o.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if o.MaxHeaderSize <= 0 {
		o.MaxHeaderSize = DefaultMaxHeaderSize
	}
	if o.MaxRegexProgram <= 0 {
		o.MaxRegexProgram = DefaultMaxRegexProgram
	}
	b.log = o.Logger
	b.jid = JournalID(o.Name)
	b.ctx, b.cancel = context.WithCancel(context.Background())
	if o.Journal != nil {
		b.persist = newPersister(b, o.Journal)
		b.seqs.seed(o.Journal.HighWaters())
		if _, ordered := o.Backplane.(SOWOrderer); ordered {
			// The cluster's order holds the SOW topics, and StartOrdered
			// applies it from its start (backplane.go; should it fail,
			// startCluster rebuilds them from the journal after all).
			b.log.Info("SOW topics come from the cluster's order, not from the journal")
		} else {
			b.rebuildFromJournal()
		}
	}
	b.startCluster()
	return b
}

// rebuildFromJournal rebuilds the journaled SOW topics (rebuildSOW),
// logging the outcome and keeping a failure for RecoveryErr.
func (b *Broker) rebuildFromJournal() {
	start := time.Now()
	n, err := b.rebuildSOW()
	if err != nil {
		b.recoverErr = err
		b.log.Error("SOW topics only partly rebuilt from the journal", "entries_applied", n, "err", err)
	} else if n > 0 {
		b.log.Info("SOW topics rebuilt from the journal", "entries_applied", n, "took", time.Since(start))
	}
}

// router returns the router of a message type.
func (b *Broker) router(mt string) *router {
	b.routersMu.RLock()
	r := b.routers[mt]
	b.routersMu.RUnlock()
	if r != nil {
		return r
	}
	b.routersMu.Lock()
	defer b.routersMu.Unlock()
	r = b.routers[mt]
	if r == nil {
		r = newRouter(mt, b.opts.TopicCacheSize)
		r.sow = func(topic string) *sowStore { return b.sow.store(topic, mt) }
		b.routers[mt] = r
	}
	return r
}

// Serve accepts connections on l until Shutdown or Close, running each
// connection's handshake and session in its own goroutine. The handshake
// is bounded by l itself (the listeners of package listener by their
// HandshakeTimeout option); Shutdown and Close end it early. It always
// returns a non-nil error; after Shutdown or Close it is ErrBrokerClosed.
// Serve closes l when it returns.
func (b *Broker) Serve(l transport.Listener) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		l.Close()
		return ErrBrokerClosed
	}
	b.listeners[l] = struct{}{}
	b.wg.Add(1)
	b.mu.Unlock()
	defer b.wg.Done()
	defer func() {
		b.mu.Lock()
		delete(b.listeners, l)
		b.mu.Unlock()
		l.Close()
	}()

	b.log.Debug("serving", "transport", l.Name(), "addr", l.Addr().String())
	var backoff time.Duration
	for {
		raw, err := l.Accept()
		if err != nil {
			if b.isClosed() {
				return ErrBrokerClosed
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() || isTemporary(err) {
				// Back off on temporary errors (such as running out of file
				// descriptors) like net/http.Server does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				b.log.Warn("accept error; retrying", "transport", l.Name(), "err", err, "delay", backoff)
				select {
				case <-time.After(backoff):
				case <-b.doneCh:
					return ErrBrokerClosed
				}
				continue
			}
			return fmt.Errorf("broker: accept on %s %s: %w", l.Name(), l.Addr(), err)
		}
		backoff = 0
		switch b.admit(l.Name(), raw) {
		case admitClosed:
			raw.Close()
			return ErrBrokerClosed
		case admitFull, admitDisabled:
			raw.Close()
			continue
		}
		go b.handshakeAndServe(l, raw)
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// admission results.
const (
	admitOK = iota
	admitClosed
	admitFull
	admitDisabled
)

// admit counts a new connection of transport against the connection
// limits and, when raw is not nil, registers it as pending with one
// goroutine for it. Each admitOK must be matched by release.
func (b *Broker) admit(transport string, raw net.Conn) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return admitClosed
	}
	if b.disabled[transport] {
		return admitDisabled
	}
	tmax := b.opts.Transports[transport].MaxConnections
	if (b.opts.MaxConnections > 0 && b.conns >= b.opts.MaxConnections) ||
		(tmax > 0 && b.transportConns[transport] >= tmax) {
		b.stats.rejected.Add(1)
		b.log.Warn("connection refused: too many connections", "transport", transport,
			"open", b.conns, "max", b.opts.MaxConnections, "transport_open", b.transportConns[transport], "transport_max", tmax)
		return admitFull
	}
	b.conns++
	b.transportConns[transport]++
	b.checkOverrides(transport)
	if raw != nil {
		b.pending[raw] = struct{}{}
		b.wg.Add(1)
	}
	return admitOK
}

// release undoes admit's count.
func (b *Broker) release(transport string) {
	b.mu.Lock()
	b.conns--
	if b.transportConns[transport]--; b.transportConns[transport] <= 0 {
		delete(b.transportConns, transport)
	}
	b.mu.Unlock()
}

// handshakeAndServe runs one accepted connection. Its frame stays under
// the session's for the session's life, so the logging is in functions of
// their own (see session.run).
func (b *Broker) handshakeAndServe(l transport.Listener, raw net.Conn) {
	defer b.acceptedDone(l)
	c := b.handshake(l, raw)
	if c == nil {
		return
	}
	// serveConn without its frame: Serve admitted the connection.
	s, err := b.addSession(b.ctx, c, false)
	if err == nil {
		err = s.run(b.ctx)
	}
	if err != nil && !errors.Is(err, ErrBrokerClosed) {
		b.logConnEnd(l, raw, "session ended", err)
	}
}

// acceptedDone releases what Serve took for a connection it accepted on l.
func (b *Broker) acceptedDone(l transport.Listener) {
	b.release(l.Name())
	b.wg.Done()
}

// handshake runs the listener's handshake on raw and returns the
// connection, or nil when it failed (raw is then closed). The listener
// bounds its handshake (listener.DefaultHandshakeTimeout and each
// transport's HandshakeTimeout option); b.ctx ends it early when the
// broker shuts down.
func (b *Broker) handshake(l transport.Listener, raw net.Conn) transport.Conn {
	c, err := l.Handshake(b.ctx, raw)
	b.mu.Lock()
	delete(b.pending, raw)
	b.mu.Unlock()
	if err != nil {
		raw.Close()
		b.logConnEnd(l, raw, "handshake failed", err)
		return nil
	}
	return c
}

// logConnEnd logs at debug level why a connection of l ended.
func (b *Broker) logConnEnd(l transport.Listener, raw net.Conn, msg string, err error) {
	b.log.Debug(msg, "transport", l.Name(), "remote", raw.RemoteAddr().String(), "err", err)
}

// ServeConn runs an AMPS session on c until the client disconnects, the
// session fails, ctx is done, or the broker shuts down; it closes c before
// it returns. Transports that own their goroutines (such as an
// http.Handler for WebSocket) call it directly. The returned error says why
// the session ended; nil means the client closed the connection.
func (b *Broker) ServeConn(ctx context.Context, c transport.Conn) error {
	return b.serveConn(ctx, c, true)
}

// serveConn runs a session; admit says whether the connection still has to
// pass the connection limits (Serve admitted its connections at accept).
// Its frame stays under the session's reader, so the work around run is
// in addSession and in removeSession, which run calls (see session.run).
func (b *Broker) serveConn(ctx context.Context, c transport.Conn, admit bool) error {
	s, err := b.addSession(ctx, c, admit)
	if err != nil {
		return err
	}
	return s.run(ctx)
}

// addSession admits c (when admit is set) and registers its session, or
// closes c and says why not.
func (b *Broker) addSession(ctx context.Context, c transport.Conn, admit bool) (*session, error) {
	s := newSession(ctx, b, c)
	s.admitted = admit
	if admit {
		switch b.admit(s.info.Transport, nil) {
		case admitClosed:
			s.refuse()
			return nil, ErrBrokerClosed
		case admitFull:
			s.refuse()
			return nil, ErrTooManyConnections
		case admitDisabled:
			s.refuse()
			return nil, ErrTransportDisabled
		}
	}
	b.mu.Lock()
	if b.closed || b.disabled[s.info.Transport] {
		// A connection accepted before its transport was disabled (or
		// the broker closed) is refused after its handshake.
		err := ErrBrokerClosed
		if !b.closed {
			err = ErrTransportDisabled
		}
		b.mu.Unlock()
		s.refuse()
		if admit {
			b.release(s.info.Transport)
		}
		return nil, err
	}
	b.sessions[s] = struct{}{}
	b.wg.Add(1)
	b.startJanitorLocked()
	b.mu.Unlock()
	return s, nil
}

// removeSession undoes addSession once s has ended.
func (b *Broker) removeSession(s *session) {
	b.mu.Lock()
	delete(b.sessions, s)
	b.retire(&s.endpoint)
	b.mu.Unlock()
	if b.persist != nil {
		b.persist.detach(s)
	}
	b.wg.Done()
	if s.admitted {
		b.release(s.info.Transport)
	}
}

// Shutdown gracefully stops the broker: it closes every listener, stops
// accepting, lets each session's writer flush what is already queued, then
// closes the connections and in-process clients, and waits for every
// goroutine the broker started or serves. If ctx ends first it closes
// everything at once, still waits for the goroutines to return, and returns
// ctx's error.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	already := b.closed
	b.closed = true
	ls := slices.Collect(maps.Keys(b.listeners))
	pending := slices.Collect(maps.Keys(b.pending))
	sessions := slices.Collect(maps.Keys(b.sessions))
	clients := slices.Collect(maps.Keys(b.clients))
	b.mu.Unlock()
	if !already {
		close(b.doneCh)
	}
	for _, l := range ls {
		l.Close()
	}
	for _, c := range pending {
		c.Close()
	}
	if ctx.Err() != nil {
		b.stopCluster()
		b.forceClose() // Close, or a context already done: nothing is flushed
	} else {
		// A graceful end: each endpoint sends what is queued first, and
		// with a journal, the persisted acks of what it accepted.
		if b.persist != nil {
			b.persist.final(ctx)
		}
		if b.cluster != nil {
			// And the acks of commands in the cluster's order, once it
			// applied and confirmed them (at most finalDurableWait); what
			// is still out then fails (stopCluster).
			wctx, cancel := context.WithTimeout(ctx, finalDurableWait)
			waitOrdersSettled(wctx, sessions)
			cancel()
			b.stopCluster()
		}
		for _, e := range endpointsOf(sessions, clients) {
			e.close(ErrBrokerClosed)
		}
	}

	done := make(chan struct{})
	go func() {
		b.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		b.cancel()
		return nil
	case <-ctx.Done():
		b.cancel()
		b.forceClose()
		<-done
		return ctx.Err()
	}
}

// Close stops the broker at once: listeners, connections and in-process
// clients are closed without flushing. It waits for the broker's goroutines.
func (b *Broker) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := b.Shutdown(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func (b *Broker) forceClose() {
	b.mu.Lock()
	sessions := slices.Collect(maps.Keys(b.sessions))
	clients := slices.Collect(maps.Keys(b.clients))
	pending := slices.Collect(maps.Keys(b.pending))
	b.mu.Unlock()
	for _, c := range pending {
		c.Close()
	}
	for _, e := range endpointsOf(sessions, clients) {
		e.close(errClosedNow)
	}
}

// endpointsOf lists the endpoints of sessions and clients.
func endpointsOf(sessions []*session, clients []*Client) []*endpoint {
	eps := make([]*endpoint, 0, len(sessions)+len(clients))
	for _, s := range sessions {
		eps = append(eps, &s.endpoint)
	}
	for _, c := range clients {
		eps = append(eps, &c.endpoint)
	}
	return eps
}

// Stats returns a snapshot of the broker's counters.
func (b *Broker) Stats() Stats {
	b.mu.Lock()
	nclients := int64(len(b.clients))
	transports := make(map[string]int64, len(b.transportConns))
	for name, n := range b.transportConns {
		transports[name] = int64(n)
	}
	sessions := slices.Collect(maps.Keys(b.sessions))
	clients := slices.Collect(maps.Keys(b.clients))
	// The totals of ended endpoints, and the live ones, at one moment.
	total := b.retired
	for _, e := range endpointsOf(sessions, clients) {
		total.add(e.traffic())
	}
	b.mu.Unlock()
	conns := make([]ConnStats, 0, len(sessions))
	for _, s := range sessions {
		conns = append(conns, s.stats())
	}
	slices.SortFunc(conns, func(a, b ConnStats) int { return cmp.Compare(a.ID, b.ID) })
	subs := b.bookmarkSubs.Load() // replays are not in the routers
	b.routersMu.RLock()
	for _, r := range b.routers {
		r.mu.RLock()
		subs += int64(len(r.regex))
		for _, ss := range r.exact {
			subs += int64(len(ss))
		}
		r.mu.RUnlock()
	}
	b.routersMu.RUnlock()
	var js *JournalStats
	if b.opts.Journal != nil {
		st := b.opts.Journal.Stats()
		js = &st
	}
	return Stats{
		Connections:   int64(len(sessions)),
		Clients:       nclients,
		MessagesIn:    total.messagesIn,
		MessagesOut:   total.messagesOut,
		BytesIn:       total.bytesIn,
		BytesOut:      total.bytesOut,
		SlowConsumers: b.stats.slowConsumers.Load(),
		AuthFailures:  b.stats.authFailures.Load(),
		Subscriptions: subs,
		Rejected:      b.stats.rejected.Load(),
		Dropped:       b.stats.dropped.Load(),
		NotEntitled:   b.stats.notEntitled.Load(),
		Transports:    transports,
		Conns:         conns,
		SOWTopics:     b.sow.stats(),

		Journal:                js,
		ReplayingSubscriptions: b.replaying.Load(),
		Cluster:                b.clusterStats(),
	}
}

// janitorTick is how often the janitor advances the coarse clock, checks
// the age of queued messages and expires SOW records (so a record lives at
// most this much beyond its lifetime).
const janitorTick = 250 * time.Millisecond

// startJanitorLocked starts the janitor on first use; b.mu is held. It
// stops when the broker shuts down.
func (b *Broker) startJanitorLocked() {
	if b.janitorOn {
		return
	}
	b.janitorOn = true
	b.wg.Add(1)
	go b.janitor()
}

// janitor advances the coarse clock, disconnects endpoints whose oldest
// queued message is older than MaxMessageAge (AMPS ClientMessageAgeLimit,
// semantics §5.4 step 3), and expires SOW records whose lifetime ended.
func (b *Broker) janitor() {
	defer b.wg.Done()
	t := time.NewTicker(janitorTick)
	defer t.Stop()
	for {
		select {
		case <-b.doneCh:
			return
		case now := <-t.C:
			b.clock.Store(now.UnixNano())
			b.checkAges(now.UnixNano())
			b.expireRecords(now.UnixNano())
		}
	}
}

func (b *Broker) checkAges(now int64) {
	b.mu.Lock()
	sessions := slices.Collect(maps.Keys(b.sessions))
	clients := slices.Collect(maps.Keys(b.clients))
	b.mu.Unlock()
	for _, e := range endpointsOf(sessions, clients) {
		if e.tooOld(now) {
			e.slowConsumer(ErrSlowConsumer, "oldest queued message is older than the age limit")
		}
	}
}

// ResetEntitlements forgets cached entitlement answers and disconnects the
// connections of userID, which must log on again to be checked anew (AMPS
// disconnect reason "entitlement reset", semantics §8.2).
func (b *Broker) ResetEntitlements(userID string) {
	b.resetEntitlementsOf(func(s *session, user string) bool { return user == userID })
}

// resetEntitlementsOf disconnects the logged-on sessions that match takes
// (with their user id) with ErrEntitlementReset, then forgets every cached
// entitlement answer.
func (b *Broker) resetEntitlementsOf(match func(s *session, userID string) bool) {
	b.mu.Lock()
	var victims []*session
	for s := range b.sessions {
		if u := s.userID.Load(); u != nil && match(s, *u) {
			victims = append(victims, s)
		}
	}
	b.mu.Unlock()
	for _, s := range victims {
		s.log.Info("closing connection: entitlement reset", "user_id", *s.userID.Load())
		s.close(ErrEntitlementReset)
	}
	b.resetEntitlementCaches()
}

// resetEntitlementCaches forgets every cached entitlement answer.
func (b *Broker) resetEntitlementCaches() {
	b.routersMu.RLock()
	for _, r := range b.routers {
		r.resetCache()
	}
	b.routersMu.RUnlock()
}
