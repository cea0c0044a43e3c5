package broker

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ampsbroker/ampsbroker/filter"
	"github.com/ampsbroker/ampsbroker/internal/jsondelta"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// Bookmark replay (replay spec §7.3–§7.5). A bookmark subscription to
// journaled topics is not in the router at all: it is a cursor over the
// journal, read by a goroutine of its own at the pace its connection
// takes the messages. Replayed and new messages come out of the same
// loop, so the hand-off from replay to live can neither skip nor repeat
// an entry; the cursor returns only durable entries, so a subscriber never
// sees a message a crash could take back (AMPS's default, without "live").
// Because the loop waits for the connection's queue to drain before it
// queues more, a subscriber that is far behind never grows its queue: it
// is never cut off as a slow consumer for being behind, and it holds
// nobody else up.

// Tuning of replays.
const (
	// replayQueueBytes is how full a connection's outbound queue may be
	// before its replays wait for the writer (or half the queue's budget,
	// when that is less): enough to keep a fast connection busy between
	// wake-ups, far below the budget so that live messages for the
	// connection's other subscriptions still fit.
	replayQueueBytes = 256 << 10
	// replayPersistedInterval is the least time between two "persisted"
	// acks of one bookmark subscription (§7.4: from time to time, and
	// only when the point moved).
	replayPersistedInterval = time.Second
)

// replayPlan is where a bookmark subscription's replay starts and ends.
type replayPlan struct {
	start Position
	// t0 is the journal's tail when the subscription was made: reaching
	// it is when "completed" is sent (for a range, its end is); first was
	// the first entry kept then.
	t0, first Position
	// skipBefore skips entries older than it (skipEqual: not newer), for
	// a timestamp start.
	skipBefore time.Time
	skipEqual  bool
	// A range's end: a position (endIncl: the entry at it included)
	// and/or a time (endTimeIncl: entries at that time included). An
	// entry is past the end when it is past every end point given.
	hasEnd, endIncl         bool
	end                     Position
	hasEndTime, endTimeIncl bool
	endTime                 time.Time
	// fellBack is set when no start point was found and
	// bookmark_not_found chose the start.
	fellBack bool
}

// planReplay resolves spec against j, whose bookmarks carry id. notFound
// is the bookmark_not_found option ("now" when empty). It returns the
// plan, or a failure reason.
func planReplay(j Journal, id uint64, spec bookmarkSpec, notFound string) (replayPlan, string, error) {
	first, next := j.Bounds()
	p := replayPlan{t0: next, first: first}
	found := false
	for _, pt := range spec.start {
		// Without a range, a bookmark names the last message the client
		// has (replay starts after it) and a timestamp the first it
		// wants; a range says which with its bracket.
		excl := pt.kind == bmBookmark || pt.kind == bmNow
		if spec.isRange {
			excl = spec.startExcl
		}
		pos, skip, ok, err := startOf(j, id, pt, excl, first, next)
		if err != nil {
			return p, "", err
		}
		if ok && (!found || pos < p.start || pos == p.start && p.skipBefore.After(skip)) {
			p.start, found = pos, true
			// A time start skips what is older (or, with "(", not
			// newer): entries at the time itself, and, for a time to
			// come, the entries appended before it arrives.
			p.skipBefore, p.skipEqual = skip, !skip.IsZero() && excl
		}
	}
	if !found {
		switch notFound {
		case "fail":
			return p, ReasonBookmarkNotFound, nil
		case "epoch":
			p.start = first
		default: // "now"
			p.start = next
		}
		p.fellBack = true
	}
	if !spec.isRange {
		return p, "", nil
	}
	for _, pt := range spec.end {
		switch pt.kind {
		case bmTimestamp:
			if !p.hasEndTime || pt.t.After(p.endTime) {
				p.hasEndTime, p.endTime, p.endTimeIncl = true, pt.t, spec.endIncl
			}
			continue
		case bmEpoch:
			pt.kind, pt.text = bmBookmark, ""
		}
		var end Position
		incl := spec.endIncl
		switch pt.kind {
		case bmNow:
			end, incl = next, false // the tail when the command came
		case bmBookmark:
			if pt.text == "" { // "0": before every entry
				end, incl = first, false
				break
			}
			pos, err := ParseBookmark(id, pt.text)
			if err != nil || pos < first || pos >= next {
				return p, ReasonBookmarkNotFound, nil
			}
			end = pos
		}
		if !p.hasEnd || end > p.end || end == p.end && incl {
			p.hasEnd, p.end, p.endIncl = true, end, incl
		}
	}
	return p, "", nil
}

// startOf is where replay starts for one start point: at the entry it
// names (after it, with excl). skip is a timestamp point's time.
func startOf(j Journal, id uint64, pt bmPoint, excl bool, first, next Position) (pos Position, skip time.Time, ok bool, err error) {
	switch pt.kind {
	case bmEpoch:
		return first, time.Time{}, true, nil
	case bmNow:
		if !excl && next > first {
			return next - 1, time.Time{}, true, nil // the last entry
		}
		return next, time.Time{}, true, nil
	case bmTimestamp:
		pos, err := j.FindTime(pt.t)
		if err != nil {
			return 0, time.Time{}, false, fmt.Errorf("find time %s: %w", pt.t.Format(time.RFC3339Nano), err)
		}
		return pos, pt.t, true, nil
	}
	pos, perr := ParseBookmark(id, pt.text)
	if perr != nil || pos < first || pos >= next {
		return 0, time.Time{}, false, nil // not in the retained journal
	}
	if excl {
		pos++
	}
	return pos, time.Time{}, true, nil
}

// ReasonBookmarkNotFound is the failure reason of a bookmark subscription
// whose start is not in the journal when it asked for
// bookmark_not_found=fail, or whose range end is not in the journal.
const ReasonBookmarkNotFound = "bookmark not found"

// replay is one bookmark subscription's reader.
type replay struct {
	ep   *endpoint // the subscriber
	mt   string    // its message type
	j    Journal
	id   uint64 // the journal's bookmark id
	sub  *subscription
	cur  Cursor
	plan replayPlan
	// cid is the subscribe command's id, for its later acks.
	cid                     string
	wantCompleted, wantPers bool

	// target addresses the subscription's deliveries.
	target *target
	// matcher evaluates sub's filter on an entry's fields.
	ex       *filter.Extractor
	matcher  *filter.Matcher
	fields   *filter.Fields
	readable map[string]bool // regex topics' read entitlement, asked once

	// passed is the position of the last entry the cursor went past
	// (delivered or not), acked the one the last "persisted" ack named.
	passed, acked Position
	lastAck       time.Time
	completed     bool
	// uncounted is set once the replay has left the replaying count.
	uncounted bool

	stop     chan struct{} // closed to stop the reader
	stopOnce sync.Once
	done     chan struct{} // closed when it has stopped
	// paused stops the reading (pause/resume options); wake tells the
	// reader it changed.
	paused atomic.Bool
	wake   chan struct{}
	// rateMsgs or rateBytes is the rate option (per second; 0: none), and
	// nextAt when the next message may go.
	rateMsgs, rateBytes float64
	nextAt              time.Time
	// topN caps the messages delivered (0: no cap); sent counts them.
	topN, sent uint64
	// ended is set when a range has been replayed to its end: the
	// subscription is over (what it queued is still delivered), and its
	// id free for another.
	ended atomic.Bool
}

// replayReadableCache bounds the regex topics whose read entitlement a
// replay remembers; beyond it the cache starts over.
const replayReadableCache = 4096

// newReplay makes the reader of a bookmark subscription sub of ep, whose
// messages are of type mt, from bm (the bookmark_not_found option is
// notFound). It returns the failure reason of a bookmark that cannot be
// resolved, after logging why. The reader is not started.
func (b *Broker) newReplay(ep *endpoint, mt string, sub *subscription, bm, notFound string) (*replay, string) {
	j := b.opts.Journal
	spec, err := parseBookmarkSpec(bm)
	if err != nil {
		ep.log.Info("subscribe refused: malformed bookmark", "sub_id", sub.id, "bookmark", logText(bm), "err", err)
		return nil, ReasonInvalidBookmark
	}
	plan, reason, err := planReplay(j, b.jid, spec, notFound)
	if err != nil {
		ep.log.Error("subscribe refused: journal lookup failed", "sub_id", sub.id, "bookmark", logText(bm), "err", err)
		return nil, ReasonJournalFailed
	}
	if reason != "" {
		ep.log.Info("subscribe refused", "sub_id", sub.id, "bookmark", logText(bm), "reason", reason)
		return nil, reason
	}
	cur, err := j.NewCursor(plan.start)
	if err != nil {
		// Retention removed the start since it was resolved, or the
		// journal closed.
		ep.log.Info("subscribe refused: cannot read the journal from the bookmark", "sub_id", sub.id, "position", plan.start, "err", err)
		return nil, ReasonBookmarkNotFound
	}
	if plan.fellBack {
		ep.log.Info("bookmark not found; replay starts where bookmark_not_found says", "sub_id", sub.id, "client_name", ep.name,
			"bookmark", logText(bm), "bookmark_not_found", cmp.Or(notFound, "now"))
	}
	r := b.makeReplay(ep, mt, sub, cur, plan)
	r.passed, r.acked = plan.start-1, plan.start-1
	return r, ""
}

// continueReplay makes the reader of sub, which replaces the bookmark
// subscription whose reader was prev (stopped), going on from where prev
// got to, with prev's plan: its range end and its completed ack, if sent.
func (b *Broker) continueReplay(ep *endpoint, mt string, sub *subscription, prev *replay) (*replay, string) {
	plan := prev.plan
	plan.start = prev.passed + 1
	cur, err := b.opts.Journal.NewCursor(plan.start)
	if err != nil {
		ep.log.Info("replace refused: cannot read the journal where the replay was", "sub_id", sub.id, "position", plan.start, "err", err)
		return nil, ReasonBookmarkNotFound
	}
	r := b.makeReplay(ep, mt, sub, cur, plan)
	r.passed, r.acked, r.completed = prev.passed, prev.acked, prev.completed
	return r, ""
}

// makeReplay returns the reader of sub over cur, following plan.
func (b *Broker) makeReplay(ep *endpoint, mt string, sub *subscription, cur Cursor, plan replayPlan) *replay {
	r := &replay{
		ep: ep, mt: mt, j: b.opts.Journal, id: b.jid, sub: sub, cur: cur, plan: plan,
		target: &target{ep: ep, subs: []*subscription{sub}, sids: subIDs([]*subscription{sub})},
		stop:   make(chan struct{}), done: make(chan struct{}), wake: make(chan struct{}, 1),
	}
	if sub.filter != nil {
		// compileFilter has checked that this message type's extractor
		// takes the filter's paths.
		r.ex, _ = filter.NewExtractor(mt, sub.filter.Paths())
		r.matcher, _ = sub.filter.Bind(r.ex)
		r.fields = r.ex.NewFields()
	}
	sub.replay = r
	return r
}

// start runs the reader. The broker waits for it at Shutdown; its owner
// stops it with halt or stopNow.
func (r *replay) start() {
	b := r.ep.b
	b.replaying.Add(1)
	if r.completed {
		r.caughtUp() // a replaced subscription that had caught up
	}
	b.bookmarkSubs.Add(1)
	b.wg.Add(1) // the owner (a session or client) is counted too, so Wait has not returned
	go r.run()
}

// startReplay makes sub, a subscribe with a bookmark on journaled topics,
// a replay of the journal (old is the subscription "replace" swaps out),
// and acks the command. A bookmark that cannot be resolved fails it.
func (s *session) startReplay(h *protocol.Header, sub, old *subscription, fill func(*protocol.Header), opts []string) {
	// The options first: a command refused for them leaves the
	// subscription it would replace as it was.
	ro, err := parseReplayOptions(h, opts)
	if err != nil {
		s.log.Info("subscribe refused", "sub_id", sub.id, "err", err)
		s.fail(h, ReasonInvalidOptions, fill)
		return
	}
	var r *replay
	var reason string
	if old != nil && old.replay != nil {
		// "replace" of a bookmark subscription swaps its topic, filter
		// and options where its replay has got to: no replay again, and
		// the new command's bookmark is not used (replay spec §7.5).
		prev := old.replay
		s.dropSubs(old) // its reader has stopped: where it got to is final
		old = nil
		if prev.ended.Load() {
			// It reached its end meanwhile: the id is free, and this is a
			// subscription of its own.
			r, reason = s.b.newReplay(&s.endpoint, s.mt, sub, h.Bookmark, optionValue(opts, "bookmark_not_found"))
		} else {
			r, reason = s.b.continueReplay(&s.endpoint, s.mt, sub, prev)
		}
		if reason != "" {
			delete(s.subs, sub.id)
			s.nsubs.Store(int64(len(s.subs)))
		}
	} else {
		r, reason = s.b.newReplay(&s.endpoint, s.mt, sub, h.Bookmark, optionValue(opts, "bookmark_not_found"))
	}
	if reason != "" {
		s.fail(h, reason, fill)
		return
	}
	want := parseAcks(h.AckType)
	r.cid, r.wantCompleted, r.wantPers = h.CommandID, want&ackCompleted != 0, want&ackPersisted != 0
	r.rateMsgs, r.rateBytes, r.topN = ro.rateMsgs, ro.rateBytes, ro.topN
	r.paused.Store(ro.pause)
	if old != nil {
		s.dropSubs(old)
	}
	s.subs[sub.id] = sub
	s.nsubs.Store(int64(len(s.subs)))
	s.status(clientStatus{Event: h.Command, Topic: h.Topic, Filter: h.Filter, Options: h.Options, SubID: sub.id, CorrelationID: h.CorrelationID})
	// "processed" now, before any replayed message; "completed" and
	// "persisted" come from the reader as the replay gets there.
	s.acks(h, want&^(ackCompleted|ackPersisted), protocol.StatusSuccess, "", fill)
	r.start()
}

// replayOptions are a bookmark subscription's pause, rate and top_n.
type replayOptions struct {
	pause               bool
	rateMsgs, rateBytes float64
	topN                uint64
}

// parseReplayOptions reads the options that shape a replay: pause enters
// it paused, rate limits it for its whole life (neither goes with live,
// replay spec §7.10), top_n caps it (not with NOW).
func parseReplayOptions(h *protocol.Header, opts []string) (replayOptions, error) {
	var ro replayOptions
	var err error
	ro.pause = hasOption(opts, "pause")
	if v := optionValue(opts, "rate"); v != "" {
		if ro.rateMsgs, ro.rateBytes, err = parseRate(v); err != nil {
			return ro, err
		}
	}
	if hasOption(opts, "live") && (ro.pause || ro.rateMsgs+ro.rateBytes > 0) {
		return ro, errors.New("pause and rate do not go with live")
	}
	if ro.topN, err = topN(h, opts); err != nil {
		return ro, err
	}
	if ro.topN > 0 && strings.TrimSpace(h.Bookmark) == "0|1|" {
		return ro, errors.New("top_n caps a replay, and NOW replays nothing")
	}
	return ro, nil
}

// halt stops the reader and waits until it has, so that nothing of the
// subscription is queued after the caller's next message.
func (r *replay) halt() {
	r.stopNow()
	<-r.done
}

// stopNow tells the reader to stop, without waiting: for a caller that
// may be on the reader's own goroutine (a close path).
func (r *replay) stopNow() {
	r.stopOnce.Do(func() { close(r.stop) })
}

// run reads the journal until the subscription ends: unsubscribed, its
// connection gone, its range done, or the journal closed.
func (r *replay) run() {
	// Deferred calls run last first: done is closed after the counters
	// are, so a halt's caller reads them settled.
	defer r.ep.b.wg.Done()
	defer close(r.done)
	defer r.ep.b.bookmarkSubs.Add(-1)
	defer r.caughtUp()
	defer func() { r.cur.Close() }() // the cursor of the moment: an overrun replaces it
	var ackTimer, endTimer *time.Timer
	defer func() {
		for _, t := range []*time.Timer{ackTimer, endTimer} {
			if t != nil {
				t.Stop()
			}
		}
	}()
	room := r.room()
	for {
		if r.sub.removed.Load() {
			return
		}
		if !r.waitResumed() {
			return
		}
		if r.pastEndAt(r.cur.Position()) {
			r.finish()
			return
		}
		r.completeAt(r.cur.Position())
		if r.cappedDone() {
			return
		}
		changed := r.j.DurableChanged()
		e, err := r.cur.Next()
		switch {
		case err == nil:
			r.completeAt(e.Position) // positions may skip: t0 itself need not exist
			if r.cappedDone() {
				return
			}
			if r.pastEnd(&e) {
				r.finish()
				return
			}
			if !r.deliver(&e, room) {
				return
			}
			r.passed = e.Position
			if r.topN > 0 && r.sent >= r.topN {
				// top_n messages delivered: the subscription is done.
				r.finish()
				return
			}
			if r.plan.hasEnd && r.plan.endIncl && !r.plan.hasEndTime && e.Position >= r.plan.end {
				// The end entry is delivered, and no end time reaches
				// further.
				r.finish()
				return
			}
			r.persistedAck(false)
			continue
		case errors.Is(err, ErrCaughtUp):
		case errors.Is(err, ErrCursorOverrun):
			// A bounded journal dropped entries before this reader got
			// to them: they are gone, as a bookmark in a removed file
			// is (§7.8); go on from the oldest entry still there.
			first, _ := r.j.Bounds()
			r.ep.log.Warn("bookmark replay overrun: the journal dropped entries it had not read", "sub_id", r.sub.id, "at", r.cur.Position(), "resume", first)
			r.cur.Close()
			if r.cur, err = r.j.NewCursor(first); err != nil {
				r.ep.log.Warn("bookmark replay ends: journal unreadable", "sub_id", r.sub.id, "err", err)
				return
			}
			continue
		default:
			if !errors.Is(err, ErrJournalClosed) {
				r.ep.log.Error("bookmark replay ends: journal read failed", "sub_id", r.sub.id, "at", r.cur.Position(), "err", err)
			}
			return
		}
		// Caught up with the durable tail: everything before it has been
		// delivered or passed.
		r.completeAt(r.j.Durable())
		if r.cappedDone() {
			return
		}
		if r.timeEndPassed() {
			r.finish()
			return
		}
		var ackC, endC <-chan time.Time
		if r.persistedAck(false) {
			// A move of the point waits for the interval to pass.
			ackTimer = resetTimer(ackTimer, time.Until(r.lastAck.Add(replayPersistedInterval)))
			ackC = ackTimer.C
		}
		if r.plan.hasEndTime {
			endTimer = resetTimer(endTimer, time.Until(r.plan.endTime)+time.Millisecond)
			endC = endTimer.C
		}
		select {
		case <-changed:
		case <-ackC:
			r.persistedAck(true)
		case <-endC:
		case <-r.j.Done():
			return
		case <-r.stop:
			return
		}
	}
}

// room is how full the connection's queue may be before the replay waits.
func (r *replay) room() int { return min(replayQueueBytes, max(r.ep.q.limit/2, 1)) }

// resetTimer returns t (made when nil) set to fire after d.
func resetTimer(t *time.Timer, d time.Duration) *time.Timer {
	if t == nil {
		return time.NewTimer(d)
	}
	t.Reset(d)
	return t
}

// pastEndAt reports whether a range whose end is a position is done once
// the cursor is at pos.
func (r *replay) pastEndAt(pos Position) bool {
	p := &r.plan
	if !p.hasEnd || p.hasEndTime {
		return false // a time end is judged per entry
	}
	return pos > p.end || pos == p.end && !p.endIncl
}

// pastEnd reports whether e is beyond the range's end: beyond every end
// point the range gave.
func (r *replay) pastEnd(e *Entry) bool {
	p := &r.plan
	if !p.hasEnd && !p.hasEndTime {
		return false
	}
	if p.hasEnd && (e.Position < p.end || e.Position == p.end && p.endIncl) {
		return false
	}
	if p.hasEndTime && (e.Time.Before(p.endTime) || e.Time.Equal(p.endTime) && p.endTimeIncl) {
		return false
	}
	return true
}

// timeEndPassed reports, for a range that ends at a time, whether that
// time has passed with every entry appended by then read: no later entry
// can be inside the range.
func (r *replay) timeEndPassed() bool {
	p := &r.plan
	if !p.hasEndTime {
		return false
	}
	now := time.Now()
	if now.Before(p.endTime) || now.Equal(p.endTime) && p.endTimeIncl {
		return false
	}
	_, next := r.j.Bounds() // entries from here on are stamped after now
	if p.hasEnd && r.cur.Position() <= p.end {
		return false // the position end is still ahead
	}
	return r.cur.Position() >= next
}

// deliver queues e for the subscription when it takes it, first waiting
// until the connection's queue holds at most room bytes. It reports false
// when the subscription or its connection has ended.
func (r *replay) deliver(e *Entry, room int) bool {
	if !r.takes(e) {
		return true
	}
	// A pause that came while the message waited for its turn holds it.
	if !r.pace(len(e.Body)) || !r.waitResumed() {
		return false
	}
	sub := r.sub
	body := e.Body
	if sub.sel != nil {
		if p, err := jsondelta.Select(body, sub.sel); err == nil {
			body = p
		}
	}
	h := protocol.Header{
		Command:       protocol.CmdP,
		Topic:         e.Topic,
		Bookmark:      FormatBookmark(r.id, e.Position),
		CorrelationID: e.CorrelationID,
	}
	if !sub.noKey {
		h.SOWKey = e.SOWKey
	}
	if sub.stamp {
		h.Timestamp = timestamp(e.Time.UnixNano())
	}
	// A recycled delivery, like a live one: the writer splices in the
	// subscription's id and gives the buffer back once written, so a
	// replay running flat out leaves the collector little to do.
	d := newPooledMessage(&h, body)
	d.setPosition(r.ep.b, e.Position) // for an in-process handler's Message.Bookmark
	if !r.ep.enqueueReplayed(outItem{d: d, t: r.target, size: d.size(r.target)}, room, r.stop) {
		return false
	}
	r.sent++
	return true
}

// takes reports whether the subscription gets e: a publish of its
// message type, on its topic (or one its regex matches and its user may
// read), that its filter takes, and not before a timestamp start.
func (r *replay) takes(e *Entry) bool {
	sub, p := r.sub, &r.plan
	if e.Kind != EntryPublish || e.MessageType != r.mt {
		return false
	}
	if !p.skipBefore.IsZero() {
		if e.Time.Before(p.skipBefore) || p.skipEqual && e.Time.Equal(p.skipBefore) {
			return false
		}
		p.skipBefore = time.Time{} // times never go back: the rest is later
	}
	if sub.re == nil {
		if e.Topic != sub.topic {
			return false
		}
	} else {
		if !sub.re.MatchString(e.Topic) {
			return false
		}
		if sub.readable != nil {
			ok, seen := r.readable[e.Topic]
			if !seen {
				if r.readable == nil || len(r.readable) >= replayReadableCache {
					r.readable = make(map[string]bool)
				}
				ok = sub.readable(e.Topic)
				r.readable[e.Topic] = ok
			}
			if !ok {
				return false
			}
		}
	}
	if r.matcher != nil {
		r.ex.Extract(e.Body, r.fields)
		env := filter.Env{Topic: e.Topic, Size: len(e.Body), ClientName: e.ClientName, InstanceName: r.ep.b.opts.Name}
		if !r.matcher.Match(r.fields, &env) {
			return false
		}
	}
	return true
}

// subAck queues an ack of the subscription (completed or persisted),
// with its sub_id, the command's cid and a bookmark.
func (r *replay) subAck(ackType, bm string) {
	m, size := ownMessage(&protocol.Header{
		Command:   protocol.CmdAck,
		CommandID: r.cid,
		SubID:     r.sub.id,
		AckType:   ackType,
		Status:    protocol.StatusSuccess,
		Bookmark:  bm,
	}, nil)
	r.ep.enqueueReplayed(outItem{m: m, size: size}, r.room(), r.stop)
}

// complete sends "completed", once, when asked for: the replay has
// reached the journal's tail as it was when the subscription was made.
// Its bookmark is the last entry before that tail.
func (r *replay) complete() {
	if r.completed {
		return
	}
	r.completed = true
	r.caughtUp()
	if !r.wantCompleted {
		return
	}
	if r.plan.t0 > r.plan.first {
		r.subAck(protocol.AckCompleted, FormatBookmark(r.id, r.plan.t0-1))
	} else {
		// The journal was empty: no entry names that point, and EPOCH
		// is where a client resuming from it must start.
		r.subAck(protocol.AckCompleted, "0")
	}
}

// completeAt sends "completed" (complete) once a replay without a range
// end has got to pos, at or past the journal's tail when it was made; a
// range's end decides its own.
func (r *replay) completeAt(pos Position) {
	if !r.plan.hasEnd && !r.plan.hasEndTime && pos >= r.plan.t0 {
		r.complete()
	}
}

// cappedDone ends a replay with top_n once it has replayed what the
// journal held when it was made: top_n caps a replay, not the live
// messages after it (replay spec §7.5 [I]). It reports whether it ended.
func (r *replay) cappedDone() bool {
	if r.topN == 0 || !r.completed {
		return false
	}
	r.finish()
	return true
}

// caughtUp takes the replay out of Stats.ReplayingSubscriptions, once:
// it has replayed what the journal held when it was made (or it ended).
func (r *replay) caughtUp() {
	if !r.uncounted {
		r.uncounted = true
		r.ep.b.replaying.Add(-1)
	}
}

// finish ends a range whose end was reached: "completed" (with the last
// point passed), and the subscription is over; its id is free again.
func (r *replay) finish() {
	r.persistedAck(true)
	if !r.completed && r.wantCompleted {
		r.completed = true
		r.subAck(protocol.AckCompleted, FormatBookmark(r.id, r.passed))
	}
	r.caughtUp()
	r.ended.Store(true)
	r.ep.endedReplays.Add(1)
}

// persistedAck sends a "persisted" ack naming the last entry passed, when
// asked for and the point moved, at most once per
// replayPersistedInterval; with force, whatever the interval. It reports
// whether an ack is still due (the point moved, the interval has not
// passed).
func (r *replay) persistedAck(force bool) (due bool) {
	if !r.wantPers || r.passed <= r.acked {
		return false
	}
	if !force && time.Since(r.lastAck) < replayPersistedInterval {
		return true
	}
	r.subAck(protocol.AckPersisted, FormatBookmark(r.id, r.passed))
	r.acked, r.lastAck = r.passed, time.Now()
	return false
}

// replays reports whether the subscribing command h is a bookmark
// subscription that replays the journal: a subscribe with a bookmark, on
// a broker with a journal, to a regex topic (which only ever takes
// journaled topics from the journal) or a journaled literal topic. A
// bookmark subscription to a literal topic that is not journaled follows
// Options.BookmarkFallback, as on a broker without a journal (§7.5).
func (s *session) replays(h *protocol.Header) bool {
	return h.Bookmark != "" && s.replayable(h)
}

// replayable reports whether the subscribe h names topics a replay can
// serve: a regex, or a journaled literal topic, on a broker with a
// journal. A replace of a bookmark subscription by such a command goes on
// with the replay, even without a bookmark.
func (s *session) replayable(h *protocol.Header) bool {
	if s.b.opts.Journal == nil || h.Command != protocol.CmdSubscribe {
		return false
	}
	opts := splitOptions(h.Options)
	if !s.b.opts.NoRegexTopics && !hasOption(opts, "non_regex_topic") && isRegexTopic(h.Topic) {
		return true
	}
	return s.b.journaled(s.mt, h.Topic)
}

// ReasonReplayOnly refuses pause, resume, rate or top_n on a subscription
// that is not a bookmark replay (replay spec §7.5, §7.10).
const ReasonReplayOnly = "pause, resume, rate and top_n need a bookmark subscription to journaled topics"

// pauseOrResume handles a subscribe whose "pause" or "resume" option names
// existing subscriptions (sub_id, a comma list): it pauses or resumes
// their replays, acks, and reports true. A "pause" naming no existing
// subscription is a new subscription entered paused (false: the caller
// goes on); any other mix fails.
func (s *session) pauseOrResume(h *protocol.Header) bool {
	opts := splitOptions(h.Options)
	pause, resume := hasOption(opts, "pause"), hasOption(opts, "resume")
	if !pause && !resume || hasOption(opts, "replace") {
		// A replace with pause is a new subscription in place of the
		// old, entered paused.
		return false
	}
	if strings.TrimSpace(h.SubID) == "" {
		if pause {
			return false // a new subscription (its id the cid), entered paused
		}
		s.log.Info("subscribe refused: resume without sub_id")
		s.fail(h, ReasonInvalidOptions, nil)
		return true
	}
	var replays []*replay
	missing := ""
	for _, id := range strings.Split(h.SubID, ",") {
		id = strings.TrimSpace(id)
		switch sub := s.subs[id]; {
		case sub == nil:
			missing = id
		case sub.replay == nil:
			s.log.Info("subscribe refused: pause and resume apply to bookmark subscriptions", "sub_id", id)
			s.fail(h, ReasonReplayOnly, nil)
			return true
		default:
			replays = append(replays, sub.replay)
		}
	}
	switch {
	case pause && resume:
		s.log.Info("subscribe refused: both pause and resume", "sub_id", h.SubID)
	case pause && len(replays) == 0:
		return false // a new subscription, entered paused
	case missing != "":
		s.log.Info("subscribe refused: no bookmark subscription to "+map[bool]string{true: "pause", false: "resume"}[pause], "sub_id", missing)
	default:
		for _, r := range replays {
			r.setPaused(pause)
		}
		s.acks(h, parseAcks(h.AckType)&(ackReceived|ackProcessed), protocol.StatusSuccess, "", func(a *protocol.Header) { a.SubID = h.SubID })
		return true
	}
	s.fail(h, ReasonInvalidOptions, nil)
	return true
}

// waitResumed waits while the replay is paused; false when it was
// stopped (or the journal closed) meanwhile.
func (r *replay) waitResumed() bool {
	for r.paused.Load() {
		select {
		case <-r.wake:
		case <-r.stop:
			return false
		case <-r.j.Done():
			return false
		}
	}
	return true
}

// setPaused stops or restarts the replay's reading; what it queued is
// still delivered.
func (r *replay) setPaused(p bool) {
	r.paused.Store(p)
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// minReplayRate is the smallest rate a replay takes: one message (or
// byte) per 1000 seconds; below it a message's turn would be further
// than a time.Duration reaches.
const minReplayRate = 1e-3

// parseRate reads a rate option: "N" messages per second, or "NKB" /
// "NMB" bytes per second (powers of 1024, as the configuration's sizes).
// A multiple of the original pace ("2X") is not supported.
func parseRate(v string) (msgs, bytes float64, err error) {
	unit := 1.0
	num := v
	switch u := strings.ToUpper(v); {
	case strings.HasSuffix(u, "KB"):
		unit, num = 1<<10, v[:len(v)-2]
	case strings.HasSuffix(u, "MB"):
		unit, num = 1<<20, v[:len(v)-2]
	case strings.HasSuffix(u, "X"):
		return 0, 0, fmt.Errorf("rate %q: a multiple of the original pace is not supported", v)
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || !(n*unit >= minReplayRate) || math.IsInf(n, 0) {
		return 0, 0, fmt.Errorf("rate %q: want a number of messages, KB or MB per second of at least %g", v, minReplayRate)
	}
	if unit == 1 {
		return n, 0, nil
	}
	return 0, n * unit, nil
}

// pace waits, when the subscription has a rate, until a message of size
// bytes may go; false when the replay was stopped meanwhile.
func (r *replay) pace(size int) bool {
	var cost time.Duration
	switch {
	case r.rateMsgs > 0:
		cost = time.Duration(float64(time.Second) / r.rateMsgs)
	case r.rateBytes > 0:
		cost = time.Duration(float64(time.Second) * float64(size) / r.rateBytes)
	default:
		return true
	}
	// nextAt is when the next message may go. It never lags behind now:
	// a quiet stretch (waiting for the journal) is no licence for a burst.
	now := time.Now()
	if r.nextAt.Before(now) {
		r.nextAt = now
	}
	wait := r.nextAt.Sub(now)
	r.nextAt = r.nextAt.Add(cost)
	if wait <= 0 {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.stop:
		return false
	}
}

// topN is a subscribe's top_n, from its option or its header; 0 when it
// has none.
func topN(h *protocol.Header, opts []string) (uint64, error) {
	if v := optionValue(opts, "top_n"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("top_n=%s: want a positive count", v)
		}
		return n, nil
	}
	if h.Has(protocol.FieldTopN) {
		if h.TopN == 0 {
			return 0, errors.New("top_n 0: want a positive count")
		}
		return h.TopN, nil
	}
	return 0, nil
}

// sweepEnded lets go of the bookmark subscriptions that reached their end
// (a range's, top_n): their ids are free, and they no longer count
// against MaxSubscriptions.
func (s *session) sweepEnded() {
	if s.endedReplays.Load() == 0 {
		return
	}
	for id, sub := range s.subs {
		if sub.replay != nil && sub.replay.ended.Load() {
			s.dropSubs(sub) // its reader has returned: this does not wait
			delete(s.subs, id)
		}
	}
	s.nsubs.Store(int64(len(s.subs)))
}
