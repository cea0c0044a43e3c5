package broker

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ampsbroker/ampsbroker/protocol"
)

// This file is the publisher's side of the journal (replay spec §7.6,
// §7.7): with Options.Journal, a "persisted" ack means durable.
//
// Sequenced commands (a publish, delta_publish or sow_delete carrying "s")
// are tracked per client name, not per connection. The name's ackable
// sequence is the highest one such that every sequenced command of the
// name up to it is durable (journaled topic) or processed (any other
// topic, or a command that journaled nothing). Successful persisted acks
// for them are conflated and cumulative: one ack without "cid", whose "s"
// is the ackable sequence and means "this one and everything before". A
// client's publish store drops everything up to "s", so an ack never runs
// ahead of an undurable message. The acks go to the name's current
// connection: the first as soon as something is ackable, then at most one
// per the connection's ack_conflation interval (a logon option, default
// DefaultAckConflation; 0 sends one per durable advance). Only a connection
// that asked for "persisted" on a sequenced command (or a flush) gets them.
//
// A command without "s" that asks for "persisted" gets an ack of its own,
// with its "cid", once its entry is durable (at once when it journaled
// nothing). A failure is reported at once: first the success ack up to the
// ackable sequence, when that is news to the client, then the failure.
// A flush asking for "persisted" is acked once every entry the connection
// appended before it is durable, after the conflated ack those entries
// allow.
//
// Duplicates (a sequence at or below the name's highest processed one,
// across restarts too: the high-water marks are seeded from the journal)
// are dropped and journal nothing; they are covered by the cumulative ack
// once what they duplicate is durable (no "duplicate" reason is sent: the
// JavaScript client would report a failed write).
//
// Without a journal nothing here runs: persisted acks are sent one per
// command right after processing (semantics §7.3).
//
// One goroutine per broker, started with the first logon and stopped by
// Shutdown, waits on the journal's durable advances and on conflation
// deadlines; a reader that finds its command durable already sends the
// ack itself.

// DefaultAckConflation is the interval of conflated persisted acks to a
// connection whose logon does not set ack_conflation (AMPS's default).
const DefaultAckConflation = time.Second

// nameEvictWait bounds how long a logon waits for the connection it evicts
// (same client name, §7.7) to end before it is acked.
const nameEvictWait = 2 * time.Second

// ReasonNameInUse is the failure reason of a logon whose client name is
// connected under another user while a journal exists.
const ReasonNameInUse = "name in use"

// persister tracks persisted acks and client names when a journal exists;
// see above. Its fields are guarded by mu.
type persister struct {
	b *Broker
	j Journal

	mu sync.Mutex
	// names holds every client name seen (or recovered from the journal).
	names map[string]*pubState
	// conns is each logged-on connection's state; byName the connection
	// that holds a client name.
	conns  map[*session]*connAcks
	byName map[string]*connAcks
	// leaving are the connections a logon evicted, until they end;
	// taking the names a logon is taking over, closed when it is done.
	leaving map[*session]*connAcks
	taking  map[string]chan struct{}
	// active are the connections with acks waiting for durability or a
	// conflation deadline: what the goroutine looks at.
	active  map[*connAcks]struct{}
	started bool
	kick    chan struct{}
}

// pubState is the sequence tracker of one client name.
type pubState struct {
	hi      uint64       // highest sequence processed
	pending []pendingSeq // journaled sequenced commands not known durable, in order
	want    uint64       // highest sequence whose command asked for persisted
	acked   uint64       // highest sequence the current connection was told
	reack   bool         // a duplicate at or below acked asked for persisted
	lastAck time.Time    // when the current connection got its last conflated ack
	conn    *connAcks    // the name's current connection, nil when none
}

// pendingSeq is a journaled sequenced command: its sequence, its entry's
// position, and the name's highest processed sequence before it.
type pendingSeq struct {
	seq    uint64
	pos    Position
	before uint64
}

// settle drops the pending commands durable below d.
func (n *pubState) settle(d Position) {
	i := 0
	for i < len(n.pending) && n.pending[i].pos < d {
		i++
	}
	if i > 0 {
		n.pending = slices.Delete(n.pending, 0, i)
	}
}

// ackable is the name's ackable sequence (see the file comment).
func (n *pubState) ackable() uint64 {
	if len(n.pending) > 0 {
		return n.pending[0].before
	}
	return n.hi
}

// connAcks is the ack state of one logged-on connection.
type connAcks struct {
	s        *session
	pub      *pubState
	interval time.Duration
	// waits are the per-command persisted acks (and flushes) waiting for
	// their position to be durable, in position order.
	waits []posWait
	// last is the highest position the connection appended.
	last Position
	// gone is closed when an evicted connection has ended.
	gone chan struct{}
}

type posWait struct {
	pos   Position
	cid   string
	flush bool
}

func newPersister(b *Broker, j Journal) *persister {
	p := &persister{
		b: b, j: j,
		names:   make(map[string]*pubState),
		conns:   make(map[*session]*connAcks),
		byName:  make(map[string]*connAcks),
		leaving: make(map[*session]*connAcks),
		taking:  make(map[string]chan struct{}),
		active:  make(map[*connAcks]struct{}),
		kick:    make(chan struct{}, 1),
	}
	for name, hw := range j.HighWaters() {
		p.names[name] = &pubState{hi: hw}
	}
	return p
}

// logon makes s the connection of its client name (§7.7) and returns the
// name's ackable sequence for the logon ack. When the name is connected
// under the same user (any user without an Authenticator), that
// connection is closed first, with ErrNameInUse, and waited for until it
// has ended, its reader included (at most nameEvictWait), so that no
// command of the old connection runs after the new one is acked; under
// another user the logon is refused (ok false). A logon without a client
// name is not checked.
func (p *persister) logon(s *session, user string, interval time.Duration) (ackable uint64, ok bool) {
	// A name is taken over by one logon at a time: a logon that finds
	// another evicting the name's connection waits for it to finish, then
	// takes the name from it in turn (the last logon wins).
	var mine chan struct{}
	defer func() {
		if mine != nil {
			p.mu.Lock()
			delete(p.taking, s.name)
			p.mu.Unlock()
			close(mine)
		}
	}()
	for {
		p.mu.Lock()
		if ch := p.taking[s.name]; ch != nil && ch != mine && s.name != "" {
			p.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-s.ctx.Done():
				return 0, false
			}
		}
		old := p.byName[s.name]
		if s.name == "" || old == nil || old.s == s {
			ackable = p.attachLocked(s, interval)
			p.mu.Unlock()
			return ackable, true
		}
		oldUser := ""
		if u := old.s.userID.Load(); u != nil {
			oldUser = *u
		}
		if s.auth != nil && oldUser != user {
			p.mu.Unlock()
			return 0, false
		}
		if mine == nil {
			mine = make(chan struct{})
			p.taking[s.name] = mine
		}
		p.detachLocked(old)
		old.gone = make(chan struct{})
		p.leaving[old.s] = old
		p.mu.Unlock()
		// AMPS logs this as 02-0025.
		old.s.log.Warn("closing connection: client name in use by a new connection", "client_name", s.name, "new_conn", s.id)
		old.s.close(ErrNameInUse)
		t := time.NewTimer(nameEvictWait)
		select {
		case <-old.gone:
		case <-t.C:
		case <-s.ctx.Done():
		}
		t.Stop()
	}
}

// attachLocked registers s and returns its name's ackable sequence, which
// the logon ack tells the client.
func (p *persister) attachLocked(s *session, interval time.Duration) uint64 {
	if !p.started {
		p.start()
	}
	c := &connAcks{s: s, interval: interval}
	if s.name == "" {
		c.pub = &pubState{} // no name, no tracking across connections
	} else {
		c.pub = p.names[s.name]
		if c.pub == nil {
			c.pub = &pubState{}
			p.names[s.name] = c.pub
		}
		p.byName[s.name] = c
	}
	p.conns[s] = c
	n := c.pub
	n.settle(p.j.Durable())
	n.conn, n.acked, n.want, n.reack, n.lastAck = c, n.ackable(), 0, false, time.Time{}
	return n.acked
}

// detach forgets s (its session ended), and tells a logon that evicted
// it.
func (p *persister) detach(s *session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.conns[s]; c != nil {
		p.detachLocked(c)
	}
	if c := p.leaving[s]; c != nil {
		delete(p.leaving, s)
		close(c.gone)
	}
}

func (p *persister) detachLocked(c *connAcks) {
	delete(p.conns, c.s)
	delete(p.active, c)
	if p.byName[c.s.name] == c {
		delete(p.byName, c.s.name)
	}
	if c.pub.conn == c {
		c.pub.conn = nil
	}
}

// start runs the goroutine; p.mu is held. It is not started once the
// broker is closed (nothing more is acked then).
func (p *persister) start() {
	b := p.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	p.started = true
	b.wg.Add(1)
	go p.run()
}

// done records a processed publish or sow_delete of s (h its command, pos
// its entry's position, 0 when it journaled nothing) and sends or
// schedules its persisted ack when wantAck.
func (p *persister) done(s *session, h *protocol.Header, pos Position, wantAck bool) {
	d := p.j.Durable()
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.conns[s]
	if c == nil {
		// A logon took the name over while this command ran (it waits
		// for this connection to end before it is acked): the command
		// still counts for the name, so the new connection's logon ack
		// and cumulative acks cover it.
		if n := p.names[s.name]; n != nil && s.name != "" && h.Has(protocol.FieldSequence) {
			if pos != 0 {
				n.pending = append(n.pending, pendingSeq{seq: h.Sequence, pos: pos, before: n.hi})
			}
			n.hi = max(n.hi, h.Sequence)
		}
		return
	}
	c.last = max(c.last, pos)
	if h.Has(protocol.FieldSequence) {
		n := c.pub
		if pos != 0 {
			n.pending = append(n.pending, pendingSeq{seq: h.Sequence, pos: pos, before: n.hi})
		}
		n.hi = max(n.hi, h.Sequence)
		if wantAck {
			n.want = max(n.want, h.Sequence)
		}
	} else if wantAck {
		if pos == 0 || pos < d {
			ackOne(s, h.CommandID)
		} else {
			c.waits = append(c.waits, posWait{pos: pos, cid: h.CommandID})
		}
	}
	p.serviceLocked(c, d, time.Now())
}

// duplicate records a dropped duplicate of sequence seq from s: covered by
// the cumulative ack, which is sent again if the client was told already.
func (p *persister) duplicate(s *session, seq uint64, wantAck bool) {
	if !wantAck {
		return
	}
	d := p.j.Durable()
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.conns[s]
	if c == nil {
		return
	}
	n := c.pub
	n.want = max(n.want, seq)
	if seq <= n.acked {
		n.reack = true
	}
	p.serviceLocked(c, d, time.Now())
}

// beforeFailure sends the success ack up to the ackable sequence, when it
// tells the client something new, ahead of a failure ack of s.
func (p *persister) beforeFailure(s *session) {
	d := p.j.Durable()
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.conns[s]; c != nil {
		c.pub.settle(d)
		if c.pub.ackable() > c.pub.acked {
			c.sendConflated(time.Now())
		}
	}
}

// flush answers a flush of s asking for persisted: at once when every
// entry s appended is durable, else once they are.
func (p *persister) flush(s *session, cid string) {
	d := p.j.Durable()
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.conns[s]
	if c == nil {
		ackFlush(s, cid)
		return
	}
	c.waits = append(c.waits, posWait{pos: c.last, cid: cid, flush: true})
	p.serviceLocked(c, d, time.Now())
}

// serviceLocked sends what c may be sent with d durable at now, and keeps
// c in the active set while something waits.
func (p *persister) serviceLocked(c *connAcks, d Position, now time.Time) {
	deadline, needDurable := c.service(d, now)
	if !needDurable && deadline.IsZero() {
		delete(p.active, c)
		return
	}
	p.active[c] = struct{}{}
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// service sends c's due acks with d durable at now. It returns the
// conflation deadline of an ack held back (zero when none) and whether
// something waits for durability.
func (c *connAcks) service(d Position, now time.Time) (deadline time.Time, needDurable bool) {
	n := c.pub
	n.settle(d)
	i := 0
	for ; i < len(c.waits) && c.waits[i].pos < d; i++ {
		w := c.waits[i]
		if !w.flush {
			ackOne(c.s, w.cid)
			continue
		}
		// A flush first hands over the conflated ack it would otherwise
		// wait for, so its own ack follows the news it promises.
		if n.conn == c && n.ackable() > n.acked {
			c.sendConflated(now)
		}
		ackFlush(c.s, w.cid)
	}
	if i > 0 {
		c.waits = slices.Delete(c.waits, 0, i)
	}
	if n.conn == c && (n.ackable() > n.acked && n.want > n.acked || n.reack) {
		due := n.lastAck.Add(c.interval)
		if c.interval <= 0 || n.lastAck.IsZero() || !now.Before(due) {
			c.sendConflated(now)
		} else {
			deadline = due
		}
	}
	needDurable = len(c.waits) > 0 || n.conn == c && len(n.pending) > 0 && n.want > n.acked
	return deadline, needDurable
}

// sendConflated sends the cumulative success ack of c's name.
func (c *connAcks) sendConflated(now time.Time) {
	n := c.pub
	n.acked = max(n.acked, n.ackable())
	n.reack = false
	n.lastAck = now
	seq := n.acked
	c.s.ack(&protocol.Header{}, protocol.AckPersisted, protocol.StatusSuccess, "", func(a *protocol.Header) {
		a.Set(protocol.FieldSequence, seq)
	})
}

// flush answers a flush command: everything before it was processed, as
// commands run in order (wire spec §7.9); with a journal, its persisted
// ack waits until what the connection journaled before it is durable.
func (s *session) flush(h *protocol.Header) {
	want := parseAcks(h.AckType)
	if p := s.b.persist; p != nil && want&ackPersisted != 0 {
		s.acks(h, want&^ackPersisted, protocol.StatusSuccess, "", nil)
		p.flush(s, h.CommandID)
		return
	}
	if want&ackPersisted != 0 {
		// SOW publishes in the cluster's order are persisted once it
		// confirms them: the flush's ack follows theirs.
		s.acks(h, want&^ackPersisted, protocol.StatusSuccess, "", nil)
		cid := h.CommandID
		s.confirmed.whenSettled(func() { ackFlush(s, cid) })
		return
	}
	s.acks(h, want, protocol.StatusSuccess, "", nil)
}

// ackOne sends the persisted ack of a command without a sequence.
func ackOne(s *session, cid string) {
	s.ack(&protocol.Header{CommandID: cid}, protocol.AckPersisted, protocol.StatusSuccess, "", nil)
}

// ackFlush sends the persisted ack of a flush.
func ackFlush(s *session, cid string) { ackOne(s, cid) }

// run is the goroutine: it services the active connections at each
// durable advance, conflation deadline and kick, until the broker closes.
func (p *persister) run() {
	defer p.b.wg.Done()
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	jdone := p.j.Done()
	for {
		changed := p.j.DurableChanged()
		deadline, needDurable := p.serviceAll(p.j.Durable(), time.Now())
		var durC <-chan struct{}
		if needDurable && jdone != nil {
			durC = changed
		}
		var timerC <-chan time.Time
		if !deadline.IsZero() {
			t.Reset(time.Until(deadline))
			timerC = t.C
		}
		select {
		case <-durC:
		case <-timerC:
		case <-p.kick:
		case <-jdone:
			jdone = nil // closed: nothing more becomes durable
		case <-p.b.doneCh:
			return
		}
		t.Stop()
	}
}

// finalDurableWait bounds how long a graceful Shutdown waits for what the
// connections journaled to become durable, so that their persisted acks go
// out before they close: a file journal's group commit takes at most its
// FlushInterval (100 ms by default, 1 s at most).
const finalDurableWait = 2 * time.Second

// final is a graceful Shutdown's last pass: it waits (at most
// finalDurableWait, or until ctx ends) until every entry appended so far
// is durable, then sends every persisted ack that is due, conflation
// intervals notwithstanding. The clients' publish stores then hold only
// what was never durable.
func (p *persister) final(ctx context.Context) {
	_, next := p.j.Bounds()
	if next > 0 && p.j.Durable() < next {
		wctx, cancel := context.WithTimeout(ctx, finalDurableWait)
		WaitDurable(wctx, p.j, next-1)
		cancel()
	}
	// A moment past every conflation deadline.
	p.serviceAll(p.j.Durable(), time.Now().Add(24*time.Hour))
}

// serviceAll services every active connection; it returns the earliest
// conflation deadline and whether any waits for durability.
func (p *persister) serviceAll(d Position, now time.Time) (earliest time.Time, needDurable bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.active {
		dl, nd := c.service(d, now)
		if !nd && dl.IsZero() {
			delete(p.active, c)
			continue
		}
		needDurable = needDurable || nd
		if !dl.IsZero() && (earliest.IsZero() || dl.Before(earliest)) {
			earliest = dl
		}
	}
	return earliest, needDurable
}

// ackConflation reads the logon option ack_conflation=<interval> from
// opts: a number with a unit (ns, us, ms, s, m, h, d), a bare number being
// seconds. It returns DefaultAckConflation when the option is absent, and
// also, with an error for the log, when it is malformed.
func ackConflation(opts []string) (time.Duration, error) {
	for _, o := range opts {
		name, val, ok := strings.Cut(o, "=")
		if !ok || strings.TrimSpace(name) != "ack_conflation" {
			continue
		}
		d, err := parseInterval(strings.ToLower(strings.TrimSpace(val)))
		if err != nil || d < 0 {
			return DefaultAckConflation, fmt.Errorf("ack_conflation %q is not an interval such as 500ms or 1s", val)
		}
		return d, nil
	}
	return DefaultAckConflation, nil
}

// parseInterval parses a lower-case interval for ackConflation.
func parseInterval(v string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Duration(f * float64(time.Second)), nil
	}
	if num, ok := strings.CutSuffix(v, "d"); ok {
		f, err := strconv.ParseFloat(num, 64)
		return time.Duration(f * float64(24*time.Hour)), err
	}
	return time.ParseDuration(v)
}
