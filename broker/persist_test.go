package broker_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// Stats carries the journal's figures only when there is a journal.
func TestStatsJournal(t *testing.T) {
	if st := broker.New(nil).Stats(); st.Journal != nil || st.ReplayingSubscriptions != 0 {
		t.Errorf("without a journal: Journal %+v, replaying %d", st.Journal, st.ReplayingSubscriptions)
	}
	j := broker.NewMemJournal(0, 7)
	defer j.Close()
	if _, err := j.Append(&broker.Entry{Kind: broker.EntryPublish, Topic: "t", MessageType: "json", Body: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	b := broker.New(&broker.Options{Journal: j})
	defer b.Close()
	st := b.Stats()
	if st.Journal == nil || st.Journal.Entries != 1 || st.Journal.First != 7 || st.Journal.Durable != 8 {
		t.Errorf("Stats().Journal = %+v, want 1 entry at 7, durable 8", st.Journal)
	}
}

// gateJournal is a MemJournal whose durable position advances only when
// the test says so (release), to prove that acks wait for durability.
type gateJournal struct {
	*broker.MemJournal
	mu      sync.Mutex
	gate    broker.Position // durable up to here (exclusive), at most the memory journal's
	changed chan struct{}
}

func newGateJournal() *gateJournal {
	return &gateJournal{MemJournal: broker.NewMemJournal(0, 1), gate: 1, changed: make(chan struct{})}
}

// release makes every entry appended so far durable.
func (g *gateJournal) release() {
	g.releaseTo(g.MemJournal.Durable())
}

// waitAppended waits until n entries were appended.
func (g *gateJournal) waitAppended(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if first, next := g.Bounds(); next-first >= broker.Position(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the journal did not get %d entries", n)
		}
	}
}

// releaseTo makes the entries below pos durable.
func (g *gateJournal) releaseTo(pos broker.Position) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gate = pos
	close(g.changed)
	g.changed = make(chan struct{})
}

func (g *gateJournal) Durable() broker.Position {
	g.mu.Lock()
	defer g.mu.Unlock()
	return min(g.gate, g.MemJournal.Durable())
}

func (g *gateJournal) DurableChanged() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.changed
}

// persistBroker starts a broker whose journal records every topic
// starting with "j".
func persistBroker(t *testing.T, j broker.Journal, opts *broker.Options) *ampstest.Broker {
	t.Helper()
	if opts == nil {
		opts = &broker.Options{}
	}
	opts.Journal = j
	opts.JournalTopics = func(mt, topic string) bool { return strings.HasPrefix(topic, "j") }
	return startBroker(t, opts)
}

// logonConflation logs on as name with the ack_conflation option (none
// when "").
func logonConflation(t *testing.T, c *ampstest.Client, name, interval string) ampstest.Message {
	t.Helper()
	h := &protocol.Header{ClientName: name, UserID: name}
	if interval != "" {
		h.Options = "ack_conflation=" + interval
	}
	ack := c.LogonWith(h)
	if ack.Field("status") != "success" {
		t.Fatalf("logon as %s: %s", name, ack.RawHeader)
	}
	return ack
}

// pub sends a publish to topic with sequence seq (none when 0), asking
// for the acks in a.
func pub(c *ampstest.Client, topic string, seq uint64, a, cid string) {
	h := map[string]any{"c": "publish", "t": topic}
	if seq != 0 {
		h["s"] = strconv.FormatUint(seq, 10)
	}
	if a != "" {
		h["a"] = a
	}
	if cid != "" {
		h["cid"] = cid
	}
	c.SendJSON(h, []byte(`{"v":1}`))
}

// persistedAck reads the next message and checks it is a persisted ack with
// the fields in want.
func persistedAck(t *testing.T, c *ampstest.Client, want map[string]string) {
	t.Helper()
	m := c.Next()
	if m.Field("c") != "ack" {
		t.Fatalf("got %s, want an ack with %v", m.RawHeader, want)
	}
	for k, v := range want {
		if got := m.Field(k); got != v {
			t.Fatalf("ack %s = %q, want %q (ack %s)", k, got, v, m.RawHeader)
		}
	}
}

// quiet is how long a test waits to see that nothing arrives.
const quiet = 150 * time.Millisecond

// Persisted acks wait for durability and are cumulative: "s" never passes
// a sequenced publish whose entry is not durable, even when later
// publishes (to topics that are not journaled) are done.
func TestPersistedAckWaitsForDurability(t *testing.T) {
	j := newGateJournal()
	tb := persistBroker(t, j, nil)
	c := tb.Dial(tb.TCPURL(), nil)
	logonConflation(t, c, "store", "0")
	pub(c, "jA", 1, "persisted", "")
	pub(c, "jA", 2, "persisted", "")
	pub(c, "plain", 3, "persisted", "") // processed at once, not journaled
	pub(c, "jA", 4, "persisted", "")
	j.waitAppended(t, 3) // 1, 2 and 4 at positions 1, 2 and 3
	c.ExpectNothing(quiet)
	j.releaseTo(2) // 1 durable
	persistedAck(t, c, map[string]string{"a": "persisted", "status": "success", "s": "1", "cid": ""})
	j.releaseTo(3) // 2 durable, so 3 is ackable too
	persistedAck(t, c, map[string]string{"a": "persisted", "s": "3"})
	c.ExpectNothing(quiet)
	j.release()
	persistedAck(t, c, map[string]string{"a": "persisted", "s": "4"})
}

// A publish without a sequence gets an ack of its own, with its cid, once
// durable; one to a topic that is not journaled at once.
func TestPersistedAckWithoutSequence(t *testing.T) {
	j := newGateJournal()
	tb := persistBroker(t, j, nil)
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("plainpub")
	pub(c, "jA", 0, "processed,persisted", "p1")
	persistedAck(t, c, map[string]string{"a": "processed", "cid": "p1"})
	pub(c, "other", 0, "persisted", "p2")
	persistedAck(t, c, map[string]string{"a": "persisted", "cid": "p2", "status": "success"})
	c.ExpectNothing(quiet)
	j.release()
	persistedAck(t, c, map[string]string{"a": "persisted", "cid": "p1", "status": "success", "s": ""})
}

// Conflation: the first ack at once, then at most one per ack_conflation
// interval, covering everything durable by then.
func TestPersistedAcksConflated(t *testing.T) {
	tb := persistBroker(t, broker.NewMemJournal(0, 1), nil)
	c := tb.Dial(tb.TCPURL(), nil)
	logonConflation(t, c, "store", "1s")
	pub(c, "jA", 1, "persisted", "")
	persistedAck(t, c, map[string]string{"a": "persisted", "s": "1"})
	for s := uint64(2); s <= 5; s++ {
		pub(c, "jA", s, "persisted", "")
	}
	c.ExpectNothing(300 * time.Millisecond)
	persistedAck(t, c, map[string]string{"a": "persisted", "s": "5"})
	c.ExpectNothing(quiet)
}

// A failure is reported at once: first the success ack that conflation
// held back, then the failure with the publish's sequence.
func TestPersistedFailureFlushesSuccessFirst(t *testing.T) {
	tb := persistBroker(t, broker.NewMemJournal(0, 1), nil)
	c := tb.Dial(tb.TCPURL(), nil)
	logonConflation(t, c, "store", "1h")
	pub(c, "jA", 1, "persisted", "")
	persistedAck(t, c, map[string]string{"s": "1", "status": "success"})
	pub(c, "jA", 2, "persisted", "")
	pub(c, "/AMPS/nope", 3, "persisted", "")
	persistedAck(t, c, map[string]string{"s": "2", "status": "success"})
	persistedAck(t, c, map[string]string{"s": "3", "status": "failure", "reason": "invalid topic"})
}

// A persisted flush waits until everything the connection journaled
// before it is durable, and comes after the conflated ack that covers it.
func TestFlushPersistedWaitsForDurability(t *testing.T) {
	j := newGateJournal()
	tb := persistBroker(t, j, nil)
	c := tb.Dial(tb.TCPURL(), nil)
	logonConflation(t, c, "store", "1h")
	pub(c, "jA", 7, "persisted", "")
	pub(c, "jB", 0, "", "")
	c.SendJSON(map[string]any{"c": "flush", "cid": "f", "a": "processed,persisted"}, nil)
	persistedAck(t, c, map[string]string{"a": "processed", "cid": "f"})
	c.ExpectNothing(quiet)
	j.release()
	persistedAck(t, c, map[string]string{"a": "persisted", "s": "7", "cid": ""})
	persistedAck(t, c, map[string]string{"a": "persisted", "cid": "f", "status": "success"})
	// With nothing pending, a flush is answered at once.
	c.SendJSON(map[string]any{"c": "flush", "cid": "g", "a": "persisted"}, nil)
	persistedAck(t, c, map[string]string{"a": "persisted", "cid": "g"})
}

// A sow_delete takes part in the sequence numbering and the conflation.
func TestSOWDeletePersistedAck(t *testing.T) {
	j := newGateJournal()
	tb := persistBroker(t, j, &broker.Options{SOWTopics: []broker.SOWTopic{{Name: "jsow", Keys: []string{"/id"}}}})
	c := tb.Dial(tb.TCPURL(), nil)
	logonConflation(t, c, "store", "0")
	c.SendJSON(map[string]any{"c": "publish", "t": "jsow", "s": "1", "a": "persisted"}, []byte(`{"id":1}`))
	c.SendJSON(map[string]any{"c": "sow_delete", "t": "jsow", "cid": "d", "s": "2", "a": "processed,persisted", "filter": "/id = 1"}, nil)
	persistedAck(t, c, map[string]string{"a": "processed", "cid": "d", "records_deleted": "1"})
	c.ExpectNothing(quiet)
	j.release()
	persistedAck(t, c, map[string]string{"a": "persisted", "s": "2"})
	// A resend of the sow_delete after the record came back is a
	// duplicate: dropped (the record stays), covered by the ack.
	c.SendJSON(map[string]any{"c": "publish", "t": "jsow", "s": "3", "a": "persisted"}, []byte(`{"id":1}`))
	c.SendJSON(map[string]any{"c": "sow_delete", "t": "jsow", "cid": "d2", "s": "2", "a": "processed,persisted", "filter": "/id = 1"}, nil)
	persistedAck(t, c, map[string]string{"a": "processed", "cid": "d2", "records_deleted": "0"})
	persistedAck(t, c, map[string]string{"a": "persisted", "s": "2"}) // what is ackable, again
	j.release()
	persistedAck(t, c, map[string]string{"a": "persisted", "s": "3"})
	if st := tb.Broker.Stats().SOWTopics; len(st) != 1 || st[0].Records != 1 {
		t.Errorf("SOW after the duplicate sow_delete: %+v, want the record", st)
	}
}

// Across a restart the journal's high-water marks make the logon ack's
// "s" and "bm", and a publish store's resend of what was durable a
// duplicate: dropped, not journaled, covered by the cumulative ack.
func TestHighWaterSurvivesRestart(t *testing.T) {
	j := broker.NewMemJournal(0, 1)
	if _, err := j.Append(&broker.Entry{Kind: broker.EntryPublish, Topic: "jA", MessageType: "json", ClientName: "store", Sequence: 5, Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	tb := persistBroker(t, j, nil)
	sub := tb.Dial(tb.TCPURL(), nil)
	sub.Logon("sub")
	sub.Subscribe("s1", "jA")
	c := tb.Dial(tb.TCPURL(), nil)
	ack := logonConflation(t, c, "store", "0")
	if ack.Field("s") != "5" || !strings.HasSuffix(ack.Field("bm"), "|5|") {
		t.Fatalf("logon ack %s: want s 5 and bm <hash>|5|", ack.RawHeader)
	}
	pub(c, "jA", 5, "persisted", "") // a duplicate
	persistedAck(t, c, map[string]string{"a": "persisted", "s": "5"})
	pub(c, "jA", 6, "persisted", "")
	persistedAck(t, c, map[string]string{"a": "persisted", "s": "6"})
	if m := sub.Next(); m.Header.Command != "p" {
		t.Fatalf("subscriber got %s", m.RawHeader)
	}
	sub.ExpectNothing(quiet) // the duplicate was not delivered
	if _, next := j.Bounds(); next != 3 {
		t.Errorf("journal next position %d, want 3: the duplicate must not be journaled", next)
	}
}

// The logon ack tells a reconnecting publisher what is durable, not what
// was merely processed.
func TestLogonAckSequenceIsDurable(t *testing.T) {
	j := newGateJournal()
	tb := persistBroker(t, j, nil)
	c := tb.Dial(tb.TCPURL(), nil)
	logonConflation(t, c, "store", "0")
	pub(c, "jA", 1, "", "")
	pub(c, "plain", 2, "", "")
	c.Flush("f") // processed
	c.Close()
	c2 := tb.Dial(tb.TCPURL(), nil)
	if ack := logonConflation(t, c2, "store", "0"); ack.Field("s") != "0" {
		t.Fatalf("logon ack before durability: %s, want s 0", ack.RawHeader)
	}
	pub(c2, "jA", 2, "persisted", "") // a duplicate of the processed 2
	c2.ExpectNothing(quiet)
	j.release()
	persistedAck(t, c2, map[string]string{"a": "persisted", "s": "2"})
}

// With a journal a client name is unique (replay spec §7.7): a second
// logon of the same user takes the name over and the first connection is
// closed; another user's is refused with "name in use"; connections
// without a client name are not checked.
func TestClientNameUniqueness(t *testing.T) {
	auth := broker.AuthenticatorFunc(func(context.Context, *broker.LogonRequest) error { return nil })
	var mu sync.Mutex
	var causes []error
	tb := persistBroker(t, broker.NewMemJournal(0, 1), &broker.Options{
		Authenticator: auth,
		ConnState: func(ev broker.ConnEvent) {
			if ev.State == broker.StateClosed {
				mu.Lock()
				causes = append(causes, ev.Err)
				mu.Unlock()
			}
		},
	})
	logon := func(c *ampstest.Client, name, user string) ampstest.Message {
		return c.LogonWith(&protocol.Header{ClientName: name, UserID: user})
	}
	first := tb.Dial(tb.TCPURL(), nil)
	if a := logon(first, "app", "alice"); a.Field("status") != "success" {
		t.Fatalf("first logon: %s", a.RawHeader)
	}
	other := tb.Dial(tb.TCPURL(), nil)
	if a := logon(other, "app", "bob"); a.Field("status") != "failure" || a.Field("reason") != "name in use" {
		t.Fatalf("another user's logon: %s, want failure, name in use", a.RawHeader)
	}
	other.ExpectClosed()
	pub(first, "x", 0, "processed", "still") // the first connection is untouched
	persistedAck(t, first, map[string]string{"cid": "still", "status": "success"})

	second := tb.Dial(tb.TCPURL(), nil)
	if a := logon(second, "app", "alice"); a.Field("status") != "success" {
		t.Fatalf("same user's logon: %s", a.RawHeader)
	}
	// The first connection ended before the new logon was acked.
	n := 0
	for _, cs := range tb.Broker.Stats().Conns {
		if cs.ClientName == "app" && cs.UserID == "alice" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d connections of app/alice when the new logon is acked, want 1", n)
	}
	first.ExpectClosed()
	pub(second, "x", 0, "processed", "new")
	persistedAck(t, second, map[string]string{"cid": "new", "status": "success"})

	for range 2 {
		c := tb.Dial(tb.TCPURL(), nil)
		if a := logon(c, "", "alice"); a.Field("status") != "success" {
			t.Fatalf("logon without a client name: %s", a.RawHeader)
		}
	}
	var inUse, refused int
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		inUse, refused = 0, 0
		for _, err := range causes {
			switch {
			case errors.Is(err, broker.ErrLogonRefused) && errors.Is(err, broker.ErrNameInUse):
				refused++
			case errors.Is(err, broker.ErrNameInUse):
				inUse++
			}
		}
		mu.Unlock()
		if inUse == 1 && refused == 1 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("close causes: %d taken over, %d refused; want 1 and 1 (%v)", inUse, refused, causes)
}

// Without a journal names are not unique: both connections stay.
func TestClientNamesNotUniqueWithoutJournal(t *testing.T) {
	tb := startBroker(t, nil)
	a, b := tb.Dial(tb.TCPURL(), nil), tb.Dial(tb.TCPURL(), nil)
	a.Logon("app")
	b.Logon("app")
	pub(a, "x", 0, "processed", "a")
	persistedAck(t, a, map[string]string{"cid": "a", "status": "success"})
}

// TestTakeoverDuringPublish: a logon takes a client name over while the
// old connection is in the middle of a journaled publish. That publish
// still counts for the name: the new logon ack's "s" covers it, and its
// resend by the publish store is acked.
func TestTakeoverDuringPublish(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	j := broker.NewMemJournal(0, 1)
	tb := startBroker(t, &broker.Options{Journal: j, JournalTopics: func(mt, topic string) bool {
		if topic == "jblock" { // hold the old connection's publish here
			once.Do(func() { close(entered) })
			<-release
		}
		return strings.HasPrefix(topic, "j")
	}})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer unblock() // a failing test must not leave the old reader held
	old := tb.Dial(tb.TCPURL(), nil)
	logonConflation(t, old, "app", "0")
	pub(old, "jblock", 7, "persisted", "")
	<-entered
	acked := make(chan ampstest.Message)
	nc := tb.Dial(tb.TCPURL(), nil)
	go func() {
		m, err := nc.Conn.LogonWith(&protocol.Header{ClientName: "app", UserID: "app", Options: "ack_conflation=0"})
		if err != nil {
			t.Error(err)
		}
		acked <- m
	}()
	time.Sleep(100 * time.Millisecond) // the new logon has closed the old connection and waits for it
	unblock()
	if ack := <-acked; ack.Field("s") != "7" {
		t.Fatalf("logon ack after the takeover: %s, want s 7 (journal high waters %v)", ack.RawHeader, j.HighWaters())
	}
	pub(nc, "jblock", 7, "persisted", "")
	if m := nc.Next(); m.Field("a") != "persisted" || m.Field("s") != "7" {
		t.Errorf("resend of 7 after the takeover: %s, want its persisted ack", m.RawHeader)
	}
}

// TestTakeoversOneAtATime: while a logon waits for the connection it
// evicts to end, a third logon with the same name waits its turn (it is
// not acked while the second's takeover is under way), then takes the name
// from the second.
func TestTakeoversOneAtATime(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	tb := startBroker(t, &broker.Options{Journal: broker.NewMemJournal(0, 1), JournalTopics: func(mt, topic string) bool {
		if topic == "jblock" { // hold the first connection's publish here
			once.Do(func() { close(entered) })
			<-release
		}
		return true
	}})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer unblock() // a failing test must not leave the first reader held
	first := tb.Dial(tb.TCPURL(), nil)
	first.Logon("app")
	pub(first, "jblock", 1, "", "")
	<-entered
	second, third := tb.Dial(tb.TCPURL(), nil), tb.Dial(tb.TCPURL(), nil)
	secondDone := make(chan struct{})
	go func() {
		defer close(secondDone)
		second.Conn.LogonWith(&protocol.Header{ClientName: "app", UserID: "app"}) // evicted in turn: its ack may never come
	}()
	time.Sleep(50 * time.Millisecond) // the second is evicting the first, which is held
	thirdAck := make(chan ampstest.Message, 1)
	go func() {
		m, err := third.Conn.LogonWith(&protocol.Header{ClientName: "app", UserID: "app"})
		if err != nil {
			t.Error(err)
		}
		thirdAck <- m
	}()
	select {
	case m := <-thirdAck:
		t.Fatalf("the third logon was acked while the second's takeover was under way: %s", m)
	case <-time.After(100 * time.Millisecond):
	}
	unblock()
	if m := <-thirdAck; m.Header.Status != protocol.StatusSuccess {
		t.Fatalf("third logon: %s", m)
	}
	<-secondDone // its reads are over: the connection's end is read here
	if how := second.ExpectClosed(); how == "" {
		t.Error("the second connection was not closed")
	}
	third.Publish("t", []byte(`{}`))
	third.Flush("f") // the name's holder is served
}

// TestShutdownSendsDuePersistedAcks: a graceful Shutdown sends the
// persisted ack that conflation was holding back before it closes the
// connection, so the publish store lets go of everything durable.
func TestShutdownSendsDuePersistedAcks(t *testing.T) {
	tb := startBroker(t, &broker.Options{Journal: broker.NewMemJournal(0, 1)})
	c := tb.Dial(tb.TCPURL(), nil)
	logonConflation(t, c, "app", "10s")
	pub(c, "t", 1, "persisted", "")
	if m := c.Next(); m.Field("a") != "persisted" || m.Field("s") != "1" {
		t.Fatalf("first persisted ack: %s", m.RawHeader)
	}
	pub(c, "t", 2, "persisted", "") // its ack waits for the conflation interval
	c.Flush("f")
	done := make(chan error, 1)
	go func() { done <- tb.Broker.Shutdown(t.Context()) }()
	if m := c.Next(); m.Field("a") != "persisted" || m.Field("s") != "2" {
		t.Errorf("at Shutdown: %s, want the persisted ack of 2", m.RawHeader)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
