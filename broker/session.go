package broker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/ampsbroker/ampsbroker/protocol"
	"github.com/ampsbroker/ampsbroker/transport"
)

// heartbeatMessage is the server heartbeat: the command alone.
var heartbeatMessage = protocol.Message{Header: &protocol.Header{Command: protocol.CmdHeartbeat}}

// session is one network client connection. Its reader runs on the
// goroutine that called ServeConn; its writer is a goroutine of its own
// that the reader starts and waits for.
type session struct {
	endpoint
	c    transport.Conn
	info *transport.ConnInfo

	// auth and ent are the transport's, else the broker's.
	auth Authenticator
	ent  Entitler
	// userID is set at logon (read by ResetEntitlements and Stats).
	userID atomic.Pointer[string]
	nsubs  atomic.Int64

	// ctx is the session's context (for the Authenticator), cancelled
	// when the writer ends.
	ctx    context.Context
	cancel context.CancelFunc

	// connClaimed is set by endConn's first close of c; connClosed is
	// closed when that close has returned.
	connClaimed atomic.Bool
	connClosed  chan struct{}

	lastRead   atomic.Int64 // unix nanoseconds of the last inbound message
	hbInterval atomic.Int64 // heartbeat interval in nanoseconds; 0 = off
	lastBeat   atomic.Int64 // unix nanoseconds of the client's last heartbeat command
	loggedOn   atomic.Bool

	// Owned by the reader goroutine.
	h    protocol.Header
	mt   string
	rt   *router
	subs map[string]*subscription
}

func newSession(b *Broker, c transport.Conn) *session {
	info := c.Info()
	if info == nil {
		info = &transport.ConnInfo{}
	}
	remote := ""
	if info.RemoteAddr != nil {
		remote = info.RemoteAddr.String()
	}
	t := b.opts.Transports[info.Transport]
	queueBytes := cmp.Or(max(t.OutboundQueueBytes, 0), b.opts.OutboundQueueBytes)
	maxAge := b.opts.MaxMessageAge
	if t.MaxMessageAge != 0 {
		maxAge = t.MaxMessageAge
	}
	s := &session{
		c:          c,
		info:       info,
		subs:       make(map[string]*subscription),
		connClosed: make(chan struct{}),
	}
	s.endpoint = b.newEndpoint(queueBytes, maxAge, "transport", info.Transport, "remote", remote)
	s.ending = s.endConn
	s.auth, s.ent = b.opts.Authenticator, b.opts.Entitler
	if t.Authenticator != nil {
		s.auth = t.Authenticator
	}
	if t.Entitler != nil {
		s.ent = t.Entitler
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
		ev.ClientName = s.name
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
	t := s.traffic()
	cs.MessagesIn, cs.MessagesOut, cs.BytesIn, cs.BytesOut = t.messagesIn, t.messagesOut, t.bytesIn, t.bytesOut
	if s.info.RemoteAddr != nil {
		cs.RemoteAddr = s.info.RemoteAddr.String()
	}
	if u := s.userID.Load(); u != nil {
		cs.UserID = *u
		cs.ClientName = s.name
	}
	return cs
}

// errFlushed is what the writer closes the session with once a flush has
// sent everything: the connection is then closed gracefully (a harsher
// cause still cuts that close short), the first cause staying the one
// reported.
var errFlushed = errors.New("broker: queue flushed")

// endConn is the session's part of the close path, and the one place that
// closes the connection. A flush leaves the connection open until the
// writer has sent the queue and closes again with errFlushed. To end
// now, the connection is closed (or, for a reset, aborted) on a goroutine
// of its own that run waits for, since a WebSocket close waits for the
// close handshake and the caller may be another client's publisher. When
// a close is already under way (the writer's graceful one, which may be
// waiting on the client), it is cut short by an abort.
func (s *session) endConn(mode closeMode) {
	if mode == modeFlush {
		return
	}
	a, canAbort := s.c.(transport.Aborter)
	if !s.connClaimed.CompareAndSwap(false, true) {
		if canAbort {
			a.Abort()
		}
		return
	}
	go func() {
		defer close(s.connClosed)
		if canAbort && mode == modeReset {
			a.Abort()
			return
		}
		s.c.Close()
	}()
}

func (s *session) run(ctx context.Context) error {
	s.ctx, s.cancel = context.WithCancel(ctx)
	defer s.cancel()
	stop := context.AfterFunc(ctx, func() {
		s.close(fmt.Errorf("broker: serve context ended: %w", context.Cause(ctx)))
	})
	defer stop()
	logonTimer := time.AfterFunc(s.b.opts.LogonTimeout, func() {
		if !s.loggedOn.Load() {
			s.log.Info("closing connection: no logon", "timeout", s.b.opts.LogonTimeout)
			s.close(ErrLogonTimeout)
		}
	})
	defer logonTimer.Stop()

	s.lastRead.Store(time.Now().UnixNano())
	s.event(StateNew, nil)
	s.status(clientStatus{Event: StatusConnect})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		s.writeLoop()
	}()

	s.close(s.readLoop())
	// Every way the writer ends closes the session for good (a flush
	// completed, a write error, a silent heartbeat, or an overflow, whose
	// publisher closes it), so endConn runs and closes c.
	<-writerDone
	<-s.connClosed
	cause, _ := s.closeState()
	// The status records of a disconnect: one per subscription the client
	// still had, then the disconnect with its reason.
	for _, sub := range s.subs {
		s.status(clientStatus{Event: StatusUnsubscribe, Topic: sub.topic, SubID: sub.id, Reason: "disconnect"})
	}
	s.unsubscribeAll()
	s.status(clientStatus{Event: StatusDisconnect, Reason: disconnectReason(cause)})

	if errors.Is(cause, io.EOF) || errors.Is(cause, net.ErrClosed) {
		cause = nil // the client closed the connection
	}
	s.event(StateClosed, cause)
	if cause != nil {
		s.log.Debug("connection closed", "client_name", s.name, "reason", cause)
	}
	return cause
}

// readLoop reads and dispatches commands in order until the connection
// fails or a command ends the session, and returns why.
func (s *session) readLoop() error {
	for {
		hdr, body, err := s.c.ReadMessage()
		if err != nil {
			if cause, _ := s.closeState(); cause != nil {
				return cause // the read failed because the session is ending
			}
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return io.EOF
			}
			if brokeProtocol(err) {
				s.log.Info("closing connection: bad frame", "err", err)
				return fmt.Errorf("%w: %w", ErrProtocol, err)
			}
			s.log.Info("closing connection: read failed", "err", err)
			return fmt.Errorf("broker: read: %w", err)
		}
		n := int64(len(hdr) + len(body))
		s.lastRead.Store(time.Now().UnixNano())
		s.bytesIn.Add(n)
		if len(hdr) > s.b.opts.MaxHeaderSize {
			s.log.Info("closing connection: header too large", "size", len(hdr), "max", s.b.opts.MaxHeaderSize)
			return fmt.Errorf("%w: header of %d bytes is over the limit of %d", ErrProtocol, len(hdr), s.b.opts.MaxHeaderSize)
		}
		if err := protocol.DecodeHeader(hdr, &s.h); err != nil {
			s.log.Info("closing connection: malformed header", "err", err)
			return fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		if err := s.dispatch(&s.h, body); err != nil {
			return err
		}
	}
}

// brokeProtocol reports whether a read failed because the client sent
// something the encoding does not allow (rather than the connection
// failing): an oversized frame, a malformed header, or WebSocket frames
// out of the JavaScript client's order.
func brokeProtocol(err error) bool {
	var se *protocol.SyntaxError
	return errors.As(err, &se) || errors.Is(err, protocol.ErrFrameTooLarge) ||
		errors.Is(err, protocol.ErrWSNoSelector) || errors.Is(err, protocol.ErrWSBadCount) ||
		errors.Is(err, protocol.ErrWSBadHeader)
}

// writeLoop writes queued messages, coalescing everything queued into one
// flush, and runs the heartbeat timer and watchdog.
func (s *session) writeLoop() {
	defer s.cancel()
	var (
		// dm holds each delivery as it is written; reusing it keeps
		// writing allocation-free.
		dm     = new(protocol.Message)
		spare  []outItem
		hb     = heartbeater{misses: s.b.opts.HeartbeatMisses}
		ticker *time.Ticker
		tickC  <-chan time.Time
	)
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	// A client that takes no data for WriteTimeout is cut off like a slow
	// consumer.
	wt := time.AfterFunc(time.Hour, func() {
		s.slowConsumer(ErrWriteTimeout, "a write took longer than the write timeout")
	})
	wt.Stop()
	defer wt.Stop()
	write := func(items []outItem) (int64, int64, error) {
		wt.Reset(s.b.opts.WriteTimeout)
		defer wt.Stop()
		msgs, bytes, err := s.writeItems(items, dm)
		if err == nil {
			err = s.c.Flush()
		}
		return msgs, bytes, err
	}

	for {
		select {
		case <-s.q.notify:
		case now := <-tickC:
			dead, send := hb.tick(now, time.Unix(0, s.lastRead.Load()), time.Unix(0, s.lastBeat.Load()))
			if dead {
				s.log.Info("closing connection: heartbeat", "client_name", s.name,
					"silence", now.Sub(time.Unix(0, s.lastRead.Load())))
				s.close(ErrHeartbeatTimeout)
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
		stop, err := s.serveBatch(&spare, write)
		if err != nil {
			s.close(fmt.Errorf("broker: write: %w", err))
			return
		}
		if stop {
			s.close(errFlushed) // a flush is done; any other end already closes c
			return
		}
	}
}

// writeItems writes a batch, each delivery through dm; it counts the
// deliveries among it and the bytes written.
func (s *session) writeItems(items []outItem, dm *protocol.Message) (deliveries, wire int64, err error) {
	for i := range items {
		it := &items[i]
		if it.qr != nil {
			n, w, err := s.writeQuery(it.qr)
			deliveries, wire = deliveries+n, wire+w
			if err != nil {
				return deliveries, wire, err
			}
			continue
		}
		m := it.m
		if it.d != nil {
			if !it.d.message(it.t, dm) {
				it.d.release()
				continue
			}
			m = dm
			deliveries++
		}
		if err := s.c.WriteMessage(m); err != nil {
			return deliveries, wire, err
		}
		wire += int64(m.Len())
		if it.d != nil {
			// The connection keeps nothing of a written message.
			dm.Body = nil
			it.d.release()
		}
	}
	return deliveries, wire, nil
}

// unsubscribeAll removes every subscription of the session (wire spec §7.7:
// a disconnect drops them implicitly).
func (s *session) unsubscribeAll() {
	if s.rt == nil {
		return
	}
	gone := make([]*subscription, 0, len(s.subs))
	for _, sub := range s.subs {
		sub.removed.Store(true)
		gone = append(gone, sub)
	}
	s.rt.remove(gone...)
	clear(s.subs)
	s.nsubs.Store(0)
}

// entitled asks the session's Entitler, counting refusals.
func (s *session) entitled(topic string, p Permission) bool {
	if s.ent == nil {
		return true
	}
	id := &Identity{UserID: *s.userID.Load(), ClientName: s.name, Conn: s.info}
	if s.ent.Entitled(id, topic, p) {
		return true
	}
	s.b.stats.notEntitled.Add(1)
	return false
}
