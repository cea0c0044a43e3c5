package broker

import (
	"sync"
	"time"
)

// A session's heartbeat timer checks heartbeat timing this many times per interval, and at
// least every minHeartbeatCheck: the finer, the sooner after the client's
// window opens its prompt arrives.
const (
	heartbeatChecksPerInterval = 10
	minHeartbeatCheck          = 10 * time.Millisecond
)

// heartbeater times one session's server heartbeats and its liveness
// watchdog, both started by the client's "heartbeat start,N": the server
// sends a heartbeat about every N seconds and ends a session that has been
// silent for misses intervals. A session's heartbeatTimer owns it.
type heartbeater struct {
	misses   int           // intervals of inbound silence that end the session
	interval time.Duration // the client's N; 0 when heartbeats are off
	every    time.Duration // how often tick runs
	lastSent time.Time     // our last heartbeat
	lastTick time.Time
}

// start (re)starts heartbeats with interval iv (0 stops them) and returns
// how often tick must run, or 0.
func (h *heartbeater) start(iv time.Duration, now time.Time) time.Duration {
	h.interval = iv
	if iv <= 0 {
		h.every = 0
		return 0
	}
	h.every = max(iv/heartbeatChecksPerInterval, minHeartbeatCheck)
	h.lastTick = now
	return h.every
}

// tick decides at now whether the client is dead (silent for misses
// intervals: lastRead is its last message of any kind) and whether to send
// a heartbeat (lastBeat is its last heartbeat command).
//
// A heartbeat goes out every interval (§10.1), and also as soon as the
// client may beat back: the JS client beats on a server message only when
// more than the interval has passed since its own last beat, and gives up
// two intervals after it (§10.2). Its last beat left before we read it, so
// a heartbeat one interval after that read always gets an answer, with
// most of the second interval to spare. A regular heartbeat sent just
// before that moment does not count as the prompt (the client ignores it);
// without an answer the prompt is repeated after half an interval.
func (h *heartbeater) tick(now, lastRead, lastBeat time.Time) (dead, send bool) {
	// A tick far behind schedule means this process was paused (GC, an
	// overloaded machine); the client's beats may be unread in the socket,
	// so silence is judged from the next tick on.
	paused := now.Sub(h.lastTick) > 2*h.every
	h.lastTick = now
	if !paused && now.Sub(lastRead) > time.Duration(h.misses)*h.interval {
		return true, false
	}
	sinceSent := now.Sub(h.lastSent)
	windowOpen := lastBeat.Add(h.interval) // the client may beat from here on
	regular := sinceSent >= h.interval
	prompt := now.After(windowOpen) && (!h.lastSent.After(windowOpen) || sinceSent >= h.interval/2)
	if regular || prompt {
		h.lastSent = now
		return false, true
	}
	return false, false
}

// heartbeatTimer runs a session's heartbeater on a timer of its own, so
// that between ticks heartbeats and the watchdog cost no goroutine. The
// session creates it at the client's first "heartbeat start".
type heartbeatTimer struct {
	s *session

	mu      sync.Mutex
	hb      heartbeater
	t       *time.Timer // nil until the first start
	stopped bool        // the session ended: the timer stays stopped
	// readAt is when a check first saw the client's bytes in (the
	// session's bytesIn) at seenIn: the client's last message arrived
	// between the check before and readAt. Judging silence from readAt
	// rather than the message itself saves the reader a clock read per
	// message, and can only find a client silent later, by at most one
	// check period (a tenth of the interval), never sooner.
	readAt time.Time
	seenIn int64
}

// setHeartbeat (re)starts the session's heartbeats with interval iv, or
// stops them when iv is 0. Only the reader calls it.
func (s *session) setHeartbeat(iv time.Duration) {
	if s.hb == nil {
		if iv <= 0 {
			return
		}
		s.hb = &heartbeatTimer{s: s, hb: heartbeater{misses: s.b.opts.HeartbeatMisses}}
	}
	h := s.hb
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return
	}
	now := time.Now()
	// The heartbeat command itself was just read.
	h.readAt, h.seenIn = now, s.bytesIn.Load()
	every := h.hb.start(iv, now)
	switch {
	case every == 0:
		if h.t != nil {
			h.t.Stop()
		}
	case h.t == nil:
		h.t = time.AfterFunc(every, h.tick)
	default:
		h.t.Reset(every)
	}
}

// stopHeartbeat stops the session's heartbeat timer for good. Only the
// reader calls it, once the session has ended.
func (s *session) stopHeartbeat() {
	h := s.hb
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	if h.t != nil {
		h.t.Stop()
	}
}

// tick is one check of the heartbeater, on the timer's goroutine: it
// closes a silent session, queues a heartbeat when one is due, and sets
// the timer for the next check.
func (h *heartbeatTimer) tick() {
	s := h.s
	now := time.Now()
	in := s.bytesIn.Load()
	h.mu.Lock()
	if h.stopped || h.hb.interval == 0 {
		h.mu.Unlock()
		return
	}
	if in != h.seenIn || s.awaiting.Load() {
		// Reading, or not reading because the session waits for its own
		// ordered commands: either way not a silent client.
		h.readAt, h.seenIn = now, in
	}
	lastRead := h.readAt
	dead, send := h.hb.tick(now, lastRead, time.Unix(0, s.lastBeat.Load()))
	if !dead {
		h.t.Reset(h.hb.every)
	}
	h.mu.Unlock()
	if dead {
		s.log.Info("closing connection: heartbeat", "client_name", s.name, "silence", now.Sub(lastRead))
		s.close(ErrHeartbeatTimeout)
		return
	}
	if send {
		s.enqueue(outItem{m: &heartbeatMessage, size: heartbeatMessage.Len() + itemOverhead})
	}
}
