package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ampsbroker/ampsbroker/protocol"
	"github.com/ampsbroker/ampsbroker/transport"
)

// Reasons a session ends; they are logged, never sent (AMPS sends no
// farewell, semantics §5.3).
var (
	errLogonTimeout     = errors.New("broker: no logon before the logon timeout")
	errHeartbeat        = errors.New("broker: heartbeat: no message from the client for the allowed heartbeat intervals")
	errWriteTimeout     = errors.New("write timeout: the client took no data")
	errAuth             = errors.New("broker: auth: logon rejected")
	errLogonRequired    = errors.New("broker: command before logon")
	errUnknownCommand   = errors.New("broker: unknown command")
	errEntitlementReset = errors.New("broker: entitlement reset")
)

// heartbeatMessage is the server heartbeat (wire spec §8.5): the command
// alone.
var heartbeatMessage = protocol.Message{Header: &protocol.Header{Command: protocol.CmdHeartbeat}}

// session is one network client connection. Its reader runs on the
// goroutine that called ServeConn; its writer is a goroutine of its own
// that the reader starts and waits for.
type session struct {
	b    *Broker
	id   uint64
	c    transport.Conn
	info *transport.ConnInfo
	log  *slog.Logger
	q    *outbound

	// auth and ent are the transport's, else the broker's (config §7.1).
	auth Authenticator
	ent  Entitler
	// maxAge is the message age limit of the session's transport; <= 0
	// disables it.
	maxAge time.Duration
	// userID is set at logon (read by ResetEntitlements and Stats).
	userID atomic.Pointer[string]
	nsubs  atomic.Int64

	ctx    context.Context // cancelled when the session ends
	cancel context.CancelFunc

	causeMu sync.Mutex
	cause   error

	// closeOnce starts the goroutine that closes c for abort; closed is
	// closed when that close has returned.
	closeOnce sync.Once
	closed    chan struct{}

	lastRead   atomic.Int64 // unix nanoseconds of the last inbound message
	hbInterval atomic.Int64 // heartbeat interval in nanoseconds; 0 = off
	lastBeat   atomic.Int64 // unix nanoseconds of the client's last heartbeat command
	loggedOn   atomic.Bool

	// Owned by the reader goroutine.
	h          protocol.Header
	clientName string
	mt         string
	rt         *router
	subs       map[string]*subscription
}

func newSession(b *Broker, c transport.Conn) *session {
	s := &session{
		b:      b,
		id:     b.nextID.Add(1),
		c:      c,
		info:   c.Info(),
		q:      newOutbound(b.opts.OutboundQueueBytes),
		maxAge: b.opts.MaxMessageAge,
		subs:   make(map[string]*subscription),
		closed: make(chan struct{}),
	}
	if s.info == nil {
		s.info = &transport.ConnInfo{}
	}
	remote := ""
	if s.info.RemoteAddr != nil {
		remote = s.info.RemoteAddr.String()
	}
	s.log = b.log.With("conn", s.id, "transport", s.info.Transport, "remote", remote)
	t := b.opts.Transports[s.info.Transport]
	s.auth, s.ent = b.opts.Authenticator, b.opts.Entitler
	if t.Authenticator != nil {
		s.auth = t.Authenticator
	}
	if t.Entitler != nil {
		s.ent = t.Entitler
	}
	if t.OutboundQueueBytes > 0 {
		s.q.limit = t.OutboundQueueBytes
	}
	if t.MaxMessageAge != 0 {
		s.maxAge = t.MaxMessageAge
	}
	return s
}

// event reports a state change to Options.ConnState.
func (s *session) event(state ConnState, err error) {
	f := s.b.opts.ConnState
	if f == nil {
		return
	}
	ev := ConnEvent{State: state, ID: s.id, Conn: s.info, Err: err}
	if u := s.userID.Load(); u != nil {
		ev.UserID = *u
		ev.ClientName = s.clientName
	}
	f(ev)
}

// stats describes the session for Broker.Stats.
func (s *session) stats() ConnStats {
	cs := ConnStats{
		ID:            s.id,
		Transport:     s.info.Transport,
		Subscriptions: int(s.nsubs.Load()),
		QueuedBytes:   s.q.queued(),
	}
	if s.info.RemoteAddr != nil {
		cs.RemoteAddr = s.info.RemoteAddr.String()
	}
	if u := s.userID.Load(); u != nil {
		cs.UserID = *u
		cs.ClientName = s.clientName
	}
	return cs
}

// slowConsumer disconnects the session as a slow client (semantics §5.4).
func (s *session) slowConsumer(why string) {
	s.b.stats.slowConsumers.Add(1)
	s.log.Warn("closing connection: slow client", "client_name", s.clientName, "why", why,
		"queued_bytes", s.q.queued(), "queued_limit", s.q.limit)
	s.abort(ErrSlowConsumer)
}

// setCause records why the session ends; the first cause wins.
func (s *session) setCause(err error) {
	s.causeMu.Lock()
	if s.cause == nil {
		s.cause = err
	}
	s.causeMu.Unlock()
}

func (s *session) getCause() error {
	s.causeMu.Lock()
	defer s.causeMu.Unlock()
	return s.cause
}

// abort ends the session at once: queued messages are dropped and the
// connection is closed. Safe from any goroutine, any number of times, and
// it never blocks its caller, which may be another client's publisher: a
// WebSocket close waits for the close handshake, so the close runs on a
// goroutine of its own that run waits for.
func (s *session) abort(err error) {
	s.setCause(err)
	s.q.close(false)
	s.closeOnce.Do(func() {
		go func() {
			defer close(s.closed)
			// A slow consumer is reset, not closed: a graceful close would
			// wait behind the unsent data it is cut off for.
			if a, ok := s.c.(transport.Aborter); ok && errors.Is(err, ErrSlowConsumer) {
				a.Abort()
				return
			}
			s.c.Close()
		}()
	})
}

// closeConn closes c on the calling goroutine unless abort already did,
// and waits for the close.
func (s *session) closeConn() {
	s.closeOnce.Do(func() {
		s.c.Close()
		close(s.closed)
	})
	<-s.closed
}

// finish ends the session after the writer has flushed what is queued.
func (s *session) finish(err error) {
	s.setCause(err)
	s.q.close(true)
}

// drain is Shutdown's graceful close.
func (s *session) drain() { s.finish(errShutdown) }

func (s *session) run(ctx context.Context) error {
	s.ctx, s.cancel = context.WithCancel(ctx)
	defer s.cancel()
	stop := context.AfterFunc(s.ctx, func() {
		if ctx.Err() != nil {
			s.abort(ctx.Err())
		}
	})
	defer stop()
	logonTimer := time.AfterFunc(s.b.opts.LogonTimeout, func() {
		if !s.loggedOn.Load() {
			s.abort(errLogonTimeout)
		}
	})
	defer logonTimer.Stop()

	s.lastRead.Store(time.Now().UnixNano())
	s.event(StateNew, nil)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		s.writeLoop()
	}()

	graceful, err := s.readLoop()
	if graceful {
		// A failure ack is queued ahead of the close: let the writer
		// flush it, bounded by the write timeout, then close.
		s.finish(err)
	} else {
		s.abort(err)
	}
	<-writerDone
	s.closeConn()
	s.unsubscribeAll()

	cause := s.getCause()
	if errors.Is(cause, io.EOF) || errors.Is(cause, net.ErrClosed) {
		cause = nil
	}
	s.event(StateClosed, cause)
	if cause != nil {
		s.log.Debug("connection closed", "client_name", s.clientName, "reason", cause)
	}
	return cause
}

// readLoop reads and dispatches commands in order until the connection
// fails or a command ends the session. graceful reports that queued
// messages (a failure ack) must be flushed before closing.
func (s *session) readLoop() (graceful bool, err error) {
	for {
		hdr, body, err := s.c.ReadMessage()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return false, io.EOF
			}
			s.log.Info("closing connection: read failed", "err", err)
			return false, fmt.Errorf("broker: read: %w", err)
		}
		s.lastRead.Store(time.Now().UnixNano())
		s.b.stats.bytesIn.Add(int64(len(hdr) + len(body)))
		if len(hdr) > s.b.opts.MaxHeaderSize {
			s.log.Info("closing connection: header too large", "size", len(hdr), "max", s.b.opts.MaxHeaderSize)
			return false, fmt.Errorf("broker: header of %d bytes is over the limit of %d", len(hdr), s.b.opts.MaxHeaderSize)
		}
		if err := protocol.DecodeHeader(hdr, &s.h); err != nil {
			s.log.Info("closing connection: malformed header", "err", err)
			return false, fmt.Errorf("broker: %w", err)
		}
		if err := s.dispatch(&s.h, body); err != nil {
			return true, err
		}
	}
}

// writeLoop writes queued messages, coalescing everything queued into one
// flush, and runs the heartbeat timer and watchdog (wire spec §10).
func (s *session) writeLoop() {
	defer s.cancel()
	var (
		spare []outItem
		// dm holds each delivery as it is written; reusing it keeps
		// writing allocation-free.
		dm     = new(protocol.Message)
		hb     = heartbeater{misses: s.b.opts.HeartbeatMisses}
		ticker *time.Ticker
		tickC  <-chan time.Time
	)
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	// A client that takes no data for WriteTimeout is a slow client too.
	wt := time.AfterFunc(time.Hour, func() { s.slowConsumer(errWriteTimeout.Error()) })
	wt.Stop()
	defer wt.Stop()

	for {
		select {
		case <-s.q.notify:
		case now := <-tickC:
			dead, send := hb.tick(now, time.Unix(0, s.lastRead.Load()), time.Unix(0, s.lastBeat.Load()))
			if dead {
				s.log.Info("closing connection: heartbeat", "client_name", s.clientName,
					"silence", now.Sub(time.Unix(0, s.lastRead.Load())))
				s.abort(errHeartbeat)
				return
			}
			if send {
				s.enqueue(outItem{m: &heartbeatMessage, size: heartbeatMessage.Len() + itemOverhead})
			}
			continue
		}
		if iv := time.Duration(s.hbInterval.Load()); iv != hb.interval {
			if ticker != nil {
				ticker.Stop()
				ticker, tickC = nil, nil
			}
			if every := hb.start(iv, time.Now()); every > 0 {
				ticker = time.NewTicker(every)
				tickC = ticker.C
			}
		}
		items, closed, overflowed := s.q.take(spare)
		if overflowed {
			return
		}
		if len(items) > 0 {
			wt.Reset(s.b.opts.WriteTimeout)
			n, err := s.writeItems(items, dm)
			if err == nil {
				err = s.c.Flush()
			}
			wt.Stop()
			s.q.release(n)
			spare = clearItems(items)
			if err != nil {
				s.abort(fmt.Errorf("broker: write: %w", err))
				return
			}
		} else {
			spare = items
		}
		if closed {
			s.closeConn()
			return
		}
	}
}

func (s *session) writeItems(items []outItem, dm *protocol.Message) (int, error) {
	n, wire := 0, 0
	var deliveries int64
	for i := range items {
		it := &items[i]
		m := it.m
		if it.d != nil {
			if !it.d.message(it.t, dm) {
				n += it.size
				continue
			}
			m = dm
			deliveries++
		}
		if err := s.c.WriteMessage(m); err != nil {
			return n, err
		}
		n += it.size
		wire += m.Len()
	}
	s.b.stats.messagesOut.Add(deliveries)
	s.b.stats.bytesOut.Add(int64(wire))
	return n, nil
}

// enqueueDelivery implements endpoint.
func (s *session) enqueueDelivery(d *delivery, t *target) bool {
	return s.enqueue(outItem{d: d, t: t, size: d.size(t)})
}

func (s *session) enqueue(it outItem) bool {
	it.at = s.b.clock.Load()
	switch s.q.push(it) {
	case pushOK:
		return true
	case pushOverflow:
		s.slowConsumer("outbound queue over its byte budget")
	}
	return false
}

// unsubscribeAll removes every subscription of the session (wire spec §7.7:
// a disconnect drops them implicitly).
func (s *session) unsubscribeAll() {
	if s.rt == nil {
		return
	}
	for id, sub := range s.subs {
		sub.removed.Store(true)
		s.rt.remove(sub)
		delete(s.subs, id)
	}
	s.nsubs.Store(0)
}

// entitled asks the session's Entitler, counting refusals.
func (s *session) entitled(topic string, p Permission) bool {
	if s.ent == nil {
		return true
	}
	id := &Identity{UserID: *s.userID.Load(), ClientName: s.clientName, Conn: s.info}
	if s.ent.Entitled(id, topic, p) {
		return true
	}
	s.b.stats.notEntitled.Add(1)
	return false
}
