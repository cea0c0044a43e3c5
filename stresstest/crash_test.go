package stresstest

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/protocol"
)

var (
	crashKills = flag.Int("crash.kills", 5, "how many times TestCrashRecovery kills ampsd with SIGKILL")
	crashSeed  = flag.Int64("crash.seed", 0, "seed of TestCrashRecovery's kill schedule; 0 takes one from the clock")
)

// The crash test's load and schedule.
const (
	// crashPublishers and the subscribers of crashSubscribers share the
	// broker; publisher i logs on as "pub<i>".
	crashPublishers = 3
	// crashBurst messages are published by each publisher every
	// crashPace, while its store holds fewer than crashStoreCap messages
	// (so a broker that is down or acknowledges nothing does not make the
	// store grow without bound).
	crashBurst    = 4
	crashPace     = 4 * time.Millisecond
	crashStoreCap = 2000
	// crashUpMin and crashUpMax bound how long ampsd runs before the next
	// kill (uniformly drawn); crashDownMax bounds how long it stays dead.
	crashUpMin   = 150 * time.Millisecond
	crashUpMax   = 1200 * time.Millisecond
	crashDownMax = 50 * time.Millisecond
	// crashFlushInterval is the journal's FlushInterval, and
	// crashAckConflation the publishers' ack_conflation logon option:
	// both small, so acks come often.
	crashFlushInterval = "10ms"
	crashAckConflation = "10ms"
	// crashSettle bounds each step of the end of the run: publishers
	// getting their last acks, the check replay, subscribers catching up.
	// After 200 kills (some 340,000 messages) catching up took about 25 s
	// with the race detector on the test side.
	crashSettle = 2 * time.Minute
	// crashPoll is how long a client read waits before it looks whether it
	// should stop; crashRedial is the pause between failed dials.
	crashPoll   = 200 * time.Millisecond
	crashRedial = 20 * time.Millisecond
	// crashLogTail is how much of the last ampsd's log a failure shows.
	crashLogTail = 8 << 10
)

// crashConfig is ampsd's configuration: one TCP transport on a port of the
// system's choosing, and a transaction log in dir that journals the topics
// orders and fills.
func crashConfig(dir string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<AMPSConfig>
  <Name>crash-test</Name>
  <Transports>
    <Transport>
      <Name>json-tcp</Name>
      <Type>tcp</Type>
      <InetAddr>127.0.0.1:0</InetAddr>
      <Protocol>amps</Protocol>
      <MessageType>json</MessageType>
    </Transport>
  </Transports>
  <TransactionLog>
    <JournalDirectory>` + dir + `</JournalDirectory>
    <FlushInterval>` + crashFlushInterval + `</FlushInterval>
    <Topic><Name>orders</Name><MessageType>json</MessageType></Topic>
    <Topic><Name>fills</Name><MessageType>json</MessageType></Topic>
  </TransactionLog>
  <Logging>
    <Target><Protocol>stderr</Protocol><Level>info</Level></Target>
  </Logging>
</AMPSConfig>
`
}

// crashBody is a published message: its publisher and sequence number.
type crashBody struct {
	Pub string `json:"pub"`
	N   uint64 `json:"n"`
}

// crashTopic is the topic of a publisher's message n: every third one goes
// to fills, the others to orders.
func crashTopic(n uint64) string {
	if n%3 == 0 {
		return "fills"
	}
	return "orders"
}

// entry is a journaled message as a bookmark subscription delivers it.
type entry struct {
	BM, Topic string
	Body      crashBody
}

// TestCrashRecovery runs ampsd with a file journal as a child process and
// kills it with SIGKILL at random moments (-crash.kills times, 5 by
// default; the seed is logged and -crash.seed replays a schedule),
// restarting it on the same journal directory each time; each restart must
// recover and take the directory's lock (while one runs, a second ampsd on
// the directory is refused). Meanwhile:
//
//   - publishers behave as clients with a publish store: each numbers its
//     messages s=1,2,… and asks for persisted acks, keeps every message no
//     ack has covered yet (an ack's s covers every sequence up to it), and
//     after reconnecting drops what the logon ack's s covers and resends
//     the rest in order before going on; no ack (logon ack included) may
//     go below what was already acknowledged, which would mean the broker
//     forgot a durable message, nor above what was published, and the
//     logon ack's bm is <publisher id>|<s>| with the same id every time;
//   - bookmark subscribers (a topic, a regex over both topics, a topic
//     with a content filter) keep the bookmark of the last message they
//     processed and resubscribe from it after a reconnect (from EPOCH at
//     first).
//
// At the end the publishers stop and wait until everything they sent is
// acknowledged, and an EPOCH replay of the journal must hold each
// publisher's messages 1…n exactly once and in order, on their topics,
// with distinct bookmarks that increase in journal order; each subscriber's
// deliveries (topic, bookmark and body), across all its resumptions, must
// be exactly the journal's messages that match its subscription: no gap,
// no duplicate, same order.
//
// The default run takes a few seconds. The long loop:
//
//	go test -run TestCrashRecovery -timeout 60m -v ./stresstest -args -crash.kills=200
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("TestCrashRecovery builds ampsd and kills it repeatedly; not in -short")
	}
	seed := *crashSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("kills %d, seed %d (-crash.seed=%d replays this schedule)", *crashKills, seed, seed)
	rng := rand.New(rand.NewSource(seed))

	dir := t.TempDir()
	cfg := filepath.Join(dir, "ampsd.xml")
	if err := os.WriteFile(cfg, []byte(crashConfig(filepath.Join(dir, "journal"))), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := newAmpsd(t, buildAmpsd(t), cfg)
	began := time.Now()
	srv.start()
	srv.expectLocked()

	stopPub := make(chan struct{}) // publishers: publish nothing new, drain the store
	stopSub := make(chan struct{}) // every client: stop now
	var pubs []*crashPublisher
	var subs []*crashSubscriber
	var wg sync.WaitGroup
	for i := range crashPublishers {
		p := &crashPublisher{srv: srv, name: fmt.Sprintf("pub%d", i), next: 1}
		pubs = append(pubs, p)
		wg.Add(1)
		go func() { defer wg.Done(); p.run(stopPub, stopSub) }()
	}
	subs = []*crashSubscriber{
		{srv: srv, name: "sub-orders", topic: "orders", bm: "0",
			match: func(e entry) bool { return e.Topic == "orders" }},
		{srv: srv, name: "sub-regex", topic: "orders|fills", bm: "0",
			match: func(e entry) bool { return true }},
		{srv: srv, name: "sub-filter", topic: "fills", filter: "/pub = 'pub1'", bm: "0",
			match: func(e entry) bool { return e.Topic == "fills" && e.Body.Pub == "pub1" }},
	}
	for _, s := range subs {
		wg.Add(1)
		go func() { defer wg.Done(); s.run(stopSub) }()
	}
	var stopPubOnce, stopSubOnce sync.Once
	stopAll := func() {
		stopPubOnce.Do(func() { close(stopPub) })
		stopSubOnce.Do(func() { close(stopSub) })
		wg.Wait()
	}
	defer stopAll()
	defer func() {
		if t.Failed() {
			for _, c := range clientErrs(pubs, subs) {
				t.Log(c)
			}
			srv.dumpGoroutines()
			t.Logf("log of the last ampsd:\n%s", srv.logTail(crashLogTail))
		}
	}()

	for i := 0; i < *crashKills && !t.Failed(); i++ {
		time.Sleep(crashUpMin + time.Duration(rng.Int63n(int64(crashUpMax-crashUpMin))))
		srv.kill()
		time.Sleep(time.Duration(rng.Int63n(int64(crashDownMax))))
		srv.start()
	}
	killed := time.Now()

	// Publishers: everything sent gets acknowledged.
	stopPubOnce.Do(func() { close(stopPub) })
	deadline := time.Now().Add(crashSettle)
	if !waitFor(time.Until(deadline), func() bool {
		for _, p := range pubs {
			if !p.drained() {
				return false
			}
		}
		return true
	}) {
		for _, p := range pubs {
			p.mu.Lock()
			t.Errorf("%s: %d messages never acknowledged persisted (sent up to s=%d, acked up to %d)", p.name, len(p.store), p.next-1, p.acked)
			p.mu.Unlock()
		}
	}

	drained := time.Now()
	journal := epochReplay(t, srv.Addr(), time.Now().Add(crashSettle))
	replayed := time.Now()
	checkPublishers(t, pubs, journal)

	// Subscribers: each reaches the last journaled message it matches.
	deadline = time.Now().Add(crashSettle)
	for _, s := range subs {
		want := s.expected(journal)
		if !waitFor(time.Until(deadline), func() bool { return s.count() >= len(want) }) {
			t.Errorf("%s: received %d messages, the journal has %d for it", s.name, s.count(), len(want))
		}
	}
	stopAll()
	for _, s := range subs {
		s.check(t, journal)
	}
	if errs := clientErrs(pubs, subs); len(errs) > 0 {
		t.Errorf("%d client errors", len(errs))
	}

	resent, resumes := 0, 0
	for _, p := range pubs {
		resent += p.resent
	}
	for _, s := range subs {
		resumes += s.subscribes - 1
	}
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	t.Logf("%d kills in %v (%d starts), %d messages journaled, %d resent by publishers after reconnects, %d subscriber resumptions; then last acks in %v, EPOCH replay in %v, subscribers caught up in %v",
		*crashKills, ms(killed.Sub(began)), srv.starts, len(journal), resent, resumes,
		ms(drained.Sub(killed)), ms(replayed.Sub(drained)), ms(time.Since(replayed)))
}

// crashPublisher is a publisher with a publish store.
type crashPublisher struct {
	srv  *ampsdProc
	name string

	mu     sync.Mutex
	store  []uint64 // sequences sent and not yet covered by an ack, ascending
	next   uint64   // the next sequence to publish
	acked  uint64   // the highest sequence acknowledged persisted
	pubID  string   // publisher id of the logon acks' bookmarks
	resent int      // messages sent again after a reconnect
	errs   []string
}

func (p *crashPublisher) errorf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.errs = append(p.errs, p.name+": "+fmt.Sprintf(format, args...))
}

// drained says whether every message sent so far is acknowledged.
func (p *crashPublisher) drained() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.store) == 0
}

// covered records that the broker holds every sequence up to s durably.
// Caller holds p.mu.
func (p *crashPublisher) covered(s uint64, what string) {
	if s < p.acked {
		p.errs = append(p.errs, fmt.Sprintf("%s: %s s=%d, below the %d already acknowledged persisted", p.name, what, s, p.acked))
		return
	}
	if s >= p.next {
		p.errs = append(p.errs, fmt.Sprintf("%s: %s s=%d, but only up to %d was published", p.name, what, s, p.next-1))
		return
	}
	p.acked = s
	i := 0
	for i < len(p.store) && p.store[i] <= s {
		i++
	}
	p.store = p.store[i:]
}

// run connects, resends and publishes until stop is closed and the store
// is empty, or until quit is closed, reconnecting whenever the connection
// ends.
func (p *crashPublisher) run(stop, quit <-chan struct{}) {
	for {
		c := dialAmpsd(p.srv, quit)
		if c == nil {
			return
		}
		if p.session(c, stop, quit) {
			c.Close()
			return
		}
		c.Close()
	}
}

// session logs c on, resends the store and publishes; it returns true when
// stop is closed and everything is acknowledged, or quit is closed, and
// false when the connection failed.
func (p *crashPublisher) session(c *ampstest.Conn, stop, quit <-chan struct{}) bool {
	ack, err := c.LogonWith(&protocol.Header{ClientName: p.name, UserID: p.name, Options: "ack_conflation=" + crashAckConflation})
	if err != nil {
		return false
	}
	if ack.Header.Status != protocol.StatusSuccess {
		p.errorf("logon answered %s", ack)
		return false
	}
	id, seq, ok := splitBookmark(ack.Header.Bookmark)
	p.mu.Lock()
	switch {
	case !ok || seq != ack.Header.Sequence || !ack.Header.Has(protocol.FieldSequence):
		p.errs = append(p.errs, fmt.Sprintf("%s: logon ack %s: bm is not <publisher id>|<s>|", p.name, ack))
	case p.pubID != "" && id != p.pubID:
		p.errs = append(p.errs, fmt.Sprintf("%s: logon ack %s: publisher id changed from %s", p.name, ack, p.pubID))
	default:
		p.pubID = id
	}
	p.covered(ack.Header.Sequence, "logon ack")
	resend := append([]uint64(nil), p.store...)
	p.resent += len(resend)
	p.mu.Unlock()

	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		p.readAcks(c)
	}()
	defer func() { c.Abort(); <-readerDone }()

	for _, n := range resend {
		if p.send(c, n) != nil {
			return false
		}
	}
	tick := time.NewTicker(crashPace)
	defer tick.Stop()
	for {
		select {
		case <-readerDone:
			return false
		case <-quit:
			return true
		case <-tick.C:
		}
		select {
		case <-stop:
			if p.drained() {
				return true
			}
			continue
		default:
		}
		for range crashBurst {
			p.mu.Lock()
			full := len(p.store) >= crashStoreCap
			n := p.next
			if !full {
				p.next++
				p.store = append(p.store, n)
			}
			p.mu.Unlock()
			if full {
				break
			}
			if p.send(c, n) != nil {
				return false
			}
		}
	}
}

// send publishes message n as a client with a publish store does: with
// its sequence and a request for the persisted ack, and no command id.
func (p *crashPublisher) send(c *ampstest.Conn, n uint64) error {
	body, _ := json.Marshal(crashBody{Pub: p.name, N: n})
	h := &protocol.Header{Command: protocol.CmdP, Topic: crashTopic(n), AckType: protocol.AckPersisted}
	h.Set(protocol.FieldSequence, n)
	return c.Send(h, body)
}

// readAcks applies the persisted acks read from c until it fails.
func (p *crashPublisher) readAcks(c *ampstest.Conn) {
	for {
		m, err := c.ReadWithin(crashPoll)
		if err != nil {
			if isTimeout(err) {
				continue
			}
			return
		}
		h := &m.Header
		if h.Command != protocol.CmdAck {
			continue
		}
		if h.Status != protocol.StatusSuccess || h.AckType != protocol.AckPersisted || !h.Has(protocol.FieldSequence) {
			p.errorf("unexpected ack %s", m)
			continue
		}
		p.mu.Lock()
		p.covered(h.Sequence, "persisted ack")
		p.mu.Unlock()
	}
}

// crashSubscriber is a bookmark subscriber that stores the bookmark of the
// last message it processed.
type crashSubscriber struct {
	srv                 *ampsdProc
	name, topic, filter string
	match               func(entry) bool // whether a journaled message is for it

	mu         sync.Mutex
	bm         string  // where to resubscribe from
	got        []entry // every delivery, across resumptions
	subscribes int
	errs       []string
}

func (s *crashSubscriber) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// run subscribes and reads until stop is closed, resubscribing from the
// stored bookmark after every reconnect.
func (s *crashSubscriber) run(stop <-chan struct{}) {
	for {
		c := dialAmpsd(s.srv, stop)
		if c == nil {
			return
		}
		done := s.session(c, stop)
		c.Close()
		if done {
			return
		}
	}
}

// session subscribes on c and reads; it returns true when stop is closed,
// false when the connection failed.
func (s *crashSubscriber) session(c *ampstest.Conn, stop <-chan struct{}) bool {
	if _, err := c.Logon(s.name); err != nil {
		return false
	}
	s.mu.Lock()
	bm := s.bm
	s.subscribes++
	s.mu.Unlock()
	h := &protocol.Header{Command: protocol.CmdSubscribe, CommandID: "sub", SubID: "sub", Topic: s.topic,
		Filter: s.filter, Bookmark: bm, AckType: protocol.AckProcessed}
	if c.Send(h, nil) != nil {
		return false
	}
	for {
		select {
		case <-stop:
			return true
		default:
		}
		m, err := c.ReadWithin(crashPoll)
		if err != nil {
			if isTimeout(err) {
				continue
			}
			return false
		}
		switch m.Header.Command {
		case protocol.CmdAck:
			if m.Header.Status != protocol.StatusSuccess {
				s.errorf("subscribe from %q answered %s", bm, m)
			}
		case protocol.CmdP:
			var b crashBody
			if err := json.Unmarshal(m.Body, &b); err != nil || m.Header.Bookmark == "" {
				s.errorf("delivery without a bookmark or with an unreadable body: %s", m)
				continue
			}
			s.mu.Lock()
			s.got = append(s.got, entry{BM: m.Header.Bookmark, Topic: m.Header.Topic, Body: b})
			s.bm = m.Header.Bookmark
			s.mu.Unlock()
		}
	}
}

func (s *crashSubscriber) errorf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = append(s.errs, s.name+": "+fmt.Sprintf(format, args...))
}

// expected is the part of the journal s subscribed to: every message it
// matches (it started from EPOCH).
func (s *crashSubscriber) expected(journal []entry) []entry {
	var out []entry
	for _, e := range journal {
		if s.match(e) {
			out = append(out, e)
		}
	}
	return out
}

// check compares what s received with the journal: the same messages, in
// the same order, each once.
func (s *crashSubscriber) check(t *testing.T, journal []entry) {
	t.Helper()
	want := s.expected(journal)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range max(len(want), len(s.got)) {
		switch {
		case i >= len(s.got):
			t.Errorf("%s: missing %d messages from %+v on (%d subscribes)", s.name, len(want)-i, want[i], s.subscribes)
			return
		case i >= len(want):
			t.Errorf("%s: %d messages more than the journal holds, from %+v on", s.name, len(s.got)-i, s.got[i])
			return
		case s.got[i] != want[i]:
			t.Errorf("%s: delivery %d is %+v, the journal has %+v there (%d subscribes; a gap or a duplicate)", s.name, i, s.got[i], want[i], s.subscribes)
			return
		}
	}
}

// dialAmpsd connects to the server, waiting while it is down; it returns
// nil once stop is closed.
func dialAmpsd(srv *ampsdProc, stop <-chan struct{}) *ampstest.Conn {
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		if addr := srv.Addr(); addr != "" {
			c, err := ampstest.DialConn("tcp://"+addr+"/amps/json", &ampstest.DialOptions{Timeout: 2 * time.Second})
			if err == nil {
				return c
			}
		}
		time.Sleep(crashRedial)
	}
}

// epochReplay reads the whole journal with a bookmark subscription from
// EPOCH to both topics, up to its completed ack.
func epochReplay(t *testing.T, addr string, deadline time.Time) []entry {
	t.Helper()
	c, err := ampstest.DialConn("tcp://"+addr+"/amps/json", &ampstest.DialOptions{Deadline: deadline})
	if err != nil {
		t.Fatalf("dialing ampsd for the EPOCH replay: %v", err)
	}
	defer c.Close()
	if _, err := c.Logon("checker"); err != nil {
		t.Fatal(err)
	}
	err = c.Send(&protocol.Header{Command: protocol.CmdSubscribe, CommandID: "epoch", SubID: "epoch", Topic: "orders|fills",
		Bookmark: "0", AckType: protocol.AckProcessed + "," + protocol.AckCompleted}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []entry
	for {
		m, err := c.Next()
		if err != nil {
			t.Fatalf("EPOCH replay after %d messages: %v", len(out), err)
		}
		switch m.Header.Command {
		case protocol.CmdP:
			var b crashBody
			if err := json.Unmarshal(m.Body, &b); err != nil {
				t.Fatalf("EPOCH replay: message %s: %v", m, err)
			}
			out = append(out, entry{BM: m.Header.Bookmark, Topic: m.Header.Topic, Body: b})
		case protocol.CmdAck:
			if m.Header.Status != protocol.StatusSuccess {
				t.Fatalf("EPOCH replay: %s", m)
			}
			if m.Header.AckType == protocol.AckCompleted {
				return out
			}
		}
	}
}

// checkPublishers checks that the journal holds each publisher's messages
// 1…n (n the last it published) exactly once, in order, on the right
// topic, and that the journal's bookmarks are distinct and, within one
// journal id, increasing.
func checkPublishers(t *testing.T, pubs []*crashPublisher, journal []entry) {
	t.Helper()
	seen := map[string]uint64{}    // publisher → last sequence found
	lastPos := map[string]uint64{} // bookmark id → last position
	for i, e := range journal {
		last := seen[e.Body.Pub]
		if e.Body.N != last+1 {
			t.Errorf("journal entry %d is %s's message %d after its message %d: a gap, duplicate or reordering", i, e.Body.Pub, e.Body.N, last)
		}
		seen[e.Body.Pub] = e.Body.N
		if e.Topic != crashTopic(e.Body.N) {
			t.Errorf("journal entry %d (%+v) has the wrong topic", i, e)
		}
		id, pos, ok := splitBookmark(e.BM)
		if prev, seenID := lastPos[id]; !ok || seenID && pos <= prev {
			t.Errorf("journal entry %d (%+v): bookmark not of the form <id>|<n>| or not after the previous one of its id (%d)", i, e, prev)
		}
		lastPos[id] = pos
	}
	for _, p := range pubs {
		p.mu.Lock()
		if seen[p.name] != p.next-1 {
			t.Errorf("%s published 1…%d (acknowledged up to %d), the journal holds up to %d", p.name, p.next-1, p.acked, seen[p.name])
		}
		p.mu.Unlock()
	}
}

// isTimeout says whether a read ended because nothing came in time (the
// connection stays usable) rather than because the connection failed.
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// splitBookmark splits "<id>|<seq>|".
func splitBookmark(bm string) (id string, seq uint64, ok bool) {
	f := strings.Split(bm, "|")
	if len(f) != 3 || f[2] != "" {
		return "", 0, false
	}
	n, err := strconv.ParseUint(f[1], 10, 64)
	return f[0], n, err == nil
}

// clientErrs gathers the errors every client recorded.
func clientErrs(pubs []*crashPublisher, subs []*crashSubscriber) []string {
	var out []string
	for _, p := range pubs {
		p.mu.Lock()
		out = append(out, p.errs...)
		p.mu.Unlock()
	}
	for _, s := range subs {
		s.mu.Lock()
		out = append(out, s.errs...)
		s.mu.Unlock()
	}
	return out
}
