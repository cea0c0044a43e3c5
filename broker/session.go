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
	// when the writer's last run ends.
	ctx    context.Context
	cancel context.CancelFunc
	// stopCtx unties the session from run's context, and logonTimer is
	// the logon timeout; both are set by begin, for release.
	stopCtx    func() bool
	logonTimer *time.Timer
	// admitted is set when the session counts against the connection
	// limits, which removeSession then releases.
	admitted bool

	// connClaimed is set by endConn's first close of c; connClosed is
	// closed when that close has returned.
	connClaimed atomic.Bool
	connClosed  chan struct{}

	// applied and confirmed track the commands this session handed to the
	// cluster's order until they were applied here, and until their
	// persisted acks were sent (see ordertrack.go).
	applied, confirmed orderTrack

	lastBeat atomic.Int64 // unix nanoseconds of the client's last heartbeat command
	// awaiting is set while the reader waits for the session's ordered
	// commands (ordertrack.go) and reads nothing.
	awaiting atomic.Bool
	// connected is when the session began (after the transport's
	// handshake), for statistics.
	connected time.Time
	loggedOn  atomic.Bool

	// writerDone is closed when the writer's last run has ended (see
	// writeLoop); a writer runs only while there is something to write.
	writerDone chan struct{}

	// Owned by the reader goroutine.
	h    protocol.Header
	mt   string
	rt   *router
	subs map[string]*subscription
	hb   *heartbeatTimer // nil until the client starts heartbeats
}

func newSession(ctx context.Context, b *Broker, c transport.Conn) *session {
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
		writerDone: make(chan struct{}),
		connected:  time.Now(),
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.endpoint = b.newEndpoint(queueBytes, maxAge, "transport", info.Transport, "remote", remote)
	s.ending = s.endConn
	s.q.start = s.startWriter
	s.auth, s.ent = b.opts.Authenticator, b.opts.Entitler
	if t.Authenticator != nil {
		s.auth = t.Authenticator
	}
	if t.Entitler != nil {
		s.ent = t.Entitler
	}
	return s
}

// refuse lets go of a session that is not run: it closes the connection
// and cancels the context newSession derived.
func (s *session) refuse() {
	s.c.Close()
	s.cancel()
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
		ConnectTime:   s.connected,
	}
	if at := s.q.oldest(); at != 0 {
		// Queue times come from the broker's coarse clock: the age is
		// as exact as its tick.
		cs.OldestQueued = max(0, time.Duration(time.Now().UnixNano()-at))
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

// run serves the session until it ends and returns why. The reader
// spends the session's life blocked in readLoop under run's frame, so the
// work before and after is kept in begin and end, whose frames are gone by
// then: a small idle stack stays small (the runtime halves a goroutine's
// stack while it uses under a quarter of it).
func (s *session) run(ctx context.Context) error {
	defer s.release()
	s.begin(ctx)
	s.close(s.readLoop())
	return s.end()
}

// release lets go of what begin tied the session to, and removes the
// session from the broker.
func (s *session) release() {
	defer s.b.removeSession(s)
	s.cancel()
	if s.stopCtx != nil {
		s.stopCtx()
	}
	if s.logonTimer != nil {
		s.logonTimer.Stop()
	}
}

// begin starts the session: it ties it to ctx and to the logon timeout,
// and reports it.
func (s *session) begin(ctx context.Context) {
	s.stopCtx = context.AfterFunc(ctx, func() {
		s.close(fmt.Errorf("broker: serve context ended: %w", context.Cause(ctx)))
	})
	s.logonTimer = time.AfterFunc(s.b.opts.LogonTimeout, func() {
		if !s.loggedOn.Load() {
			s.log.Info("closing connection: no logon", "timeout", s.b.opts.LogonTimeout)
			s.close(ErrLogonTimeout)
		}
	})
	s.event(StateNew, nil)
	s.status(clientStatus{Event: StatusConnect})
}

// end finishes a closed session and returns why it ended (nil when the
// client closed the connection).
func (s *session) end() error {
	// The close wakes the queue, which starts a writer if none runs; its
	// last run ends with the session closed for good (a flush completed,
	// a write error, or a harsher close), so endConn runs and closes c.
	<-s.writerDone
	<-s.connClosed
	s.stopHeartbeat()
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
// fails or a command ends the session, and returns why. What is not the
// loop itself is in functions of their own, to keep its frame small (see
// run).
func (s *session) readLoop() error {
	for {
		hdr, body, err := s.c.ReadMessage()
		if err != nil {
			return s.readFailed(err)
		}
		// bytesIn also tells the heartbeat watchdog that the client is
		// alive (every message has a header of at least "{}"), so the
		// reader reads no clock per message.
		s.bytesIn.Add(int64(len(hdr) + len(body)))
		if err := s.decodeHeader(hdr); err != nil {
			return err
		}
		if err := s.dispatch(&s.h, body); err != nil {
			return err
		}
	}
}

// readFailed returns why the session ends after a read failed with err.
func (s *session) readFailed(err error) error {
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

// decodeHeader decodes hdr into s.h, or returns why it ends the session:
// it is over the header size limit or malformed.
func (s *session) decodeHeader(hdr []byte) error {
	if len(hdr) > s.b.opts.MaxHeaderSize {
		s.log.Info("closing connection: header too large", "size", len(hdr), "max", s.b.opts.MaxHeaderSize)
		return fmt.Errorf("%w: header of %d bytes is over the limit of %d", ErrProtocol, len(hdr), s.b.opts.MaxHeaderSize)
	}
	if err := protocol.DecodeHeader(hdr, &s.h); err != nil {
		s.log.Info("closing connection: malformed header", "err", err)
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	return nil
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

// writerLinger is how long a session's writer waits for more to write
// before it exits: it exits once its queue stayed empty through a whole
// linger period, so one to two periods after its last write. An idle
// connection then has no writer (and no writer stack), while a connection
// that receives more often than that keeps one writer however many
// messages it gets.
const writerLinger = 100 * time.Millisecond

// startWriter is the queue's start: it runs a writer, which exits when it
// has nothing left to do and is started again by the next wake.
func (s *session) startWriter() { go s.writeLoop() }

// writeLoop writes queued messages, coalescing everything queued into one
// flush, until the queue stayed empty for writerLinger. Its last run (the
// queue closed and drained, or a write failed) closes the session and
// closes writerDone.
func (s *session) writeLoop() {
	var (
		// dm holds each delivery as it is written; reusing it keeps
		// writing allocation-free.
		dm    = new(protocol.Message)
		spare []outItem
	)
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
	lc := &lingerClock{q: s.q}
	lc.woken.Store(true)
	// Set before it can fire: fire reads lc.t.
	lc.t = time.AfterFunc(time.Hour, lc.fire)
	lc.t.Reset(writerLinger)
	defer lc.t.Stop()
	for {
		stop, err := s.serveBatch(&spare, write)
		if err != nil || stop {
			// Mark the writer finished before closing, so the close's
			// wake starts no other.
			s.q.finish()
			if err != nil {
				s.close(fmt.Errorf("broker: write: %w", err))
			} else {
				s.close(errFlushed) // a flush is done; any other end already closes c
			}
			s.cancel()
			close(s.writerDone)
			return
		}
		if lc.expired.Load() {
			lc.expired.Store(false)
			// park takes a wake that raced with it; the writer then goes on.
			if !s.q.park() {
				return
			}
			lc.woken.Store(true)
			lc.t.Reset(writerLinger)
			continue
		}
		<-s.q.notify
		if !lc.woken.Load() {
			lc.woken.Store(true)
		}
	}
}

// lingerClock tells a writer when to park: it fires every writerLinger
// while the writer runs, and a firing that finds no wake since the one
// before marks the writer expired and wakes it. A timer callback rather
// than a timer channel keeps the writer's wait a receive on one channel,
// as cheap as it was before writers parked.
type lingerClock struct {
	q *outbound
	t *time.Timer
	// woken is set by the writer on each wake and cleared by fire.
	woken atomic.Bool
	// expired is set by fire and cleared by the writer, which then parks.
	expired atomic.Bool
}

func (l *lingerClock) fire() {
	if l.woken.Swap(false) {
		l.t.Reset(writerLinger)
		return
	}
	l.expired.Store(true)
	l.q.wake()
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
		gone = append(gone, sub)
	}
	s.dropSubs(gone...)
	clear(s.subs)
	s.nsubs.Store(0)
}

// dropSubs ends subscriptions: those in the router are removed from it,
// replays are stopped (and waited for, so nothing of theirs is queued
// after the caller's next message). It leaves s.subs to the caller.
func (s *session) dropSubs(subs ...*subscription) {
	routed := subs[:0:0]
	for _, sub := range subs {
		sub.removed.Store(true)
		if sub.replay != nil {
			sub.replay.halt()
			if sub.replay.ended.Load() {
				s.endedReplays.Add(-1) // counted by its finish, which halt waited for
			}
		} else {
			routed = append(routed, sub)
		}
	}
	s.rt.remove(routed...)
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
