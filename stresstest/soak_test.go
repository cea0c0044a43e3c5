package stresstest

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/listener"
)

var (
	soak         = flag.Bool("soak", false, "run TestSoak (minutes long; see scripts/soak.sh)")
	soakDuration = flag.Duration("soak.duration", 3*time.Minute, "how long TestSoak runs its load")
	soakSample   = flag.Duration("soak.sample", 10*time.Second, "how often TestSoak samples memory, goroutines and Stats")
	soakRate     = flag.Int("soak.rate", 1000, "messages per second of each long-lived TestSoak publisher")
)

// Shape of the soak load.
const (
	soakTopics            = 4 // soak/0 .. soak/3
	soakPublishers        = 4 // long-lived, one per topic
	soakChurnPublishers   = 2 // workers that connect, publish a while, leave
	soakChurnSubscribers  = 4 // workers that connect, subscribe a while, leave
	soakSlowConsumers     = 1 // workers whose subscriber never reads
	soakQueueBytes        = 1 << 20
	soakMaxMessageAge     = 10 * time.Second
	soakTimeouts          = 5 * time.Second
	soakRawConnsPerMinute = 3400 // open-and-drop connections; 10,000 in the default 3 minutes
)

// soakSubscriptions are what subscribers choose from: exact topics and
// regexes over several topics (wire spec §11).
var soakSubscriptions = []string{"soak/0", "soak/1", "soak/2", "soak/3", `^soak/[01]$`, `^soak/[23]$`, `^soak/`}

// soakMsg is a soak message: publisher id, sequence number, or the end
// marker with the count sent.
type soakMsg struct {
	P   string `json:"p"`
	N   *int64 `json:"n,omitempty"`
	End *int64 `json:"end,omitempty"`
}

// seqCheck checks one subscriber's view of every publisher: numbers
// consecutive from the first one seen (from 0 when whole is set: the
// subscriber was there before the publisher started), and an end marker
// that matches the last number.
type seqCheck struct {
	whole bool
	last  map[string]int64 // last number seen per publisher
	ended map[string]bool
	msgs  int64
}

func newSeqCheck(whole bool) *seqCheck {
	return &seqCheck{whole: whole, last: make(map[string]int64), ended: make(map[string]bool)}
}

func (s *seqCheck) check(body []byte) error {
	var m soakMsg
	if err := json.Unmarshal(body, &m); err != nil || m.P == "" || (m.N == nil) == (m.End == nil) {
		return fmt.Errorf("bad soak message %q", body)
	}
	if s.ended[m.P] {
		return fmt.Errorf("%s: message %q after its end marker", m.P, body)
	}
	last, seen := s.last[m.P]
	if m.End != nil {
		s.ended[m.P] = true
		switch {
		case seen && last != *m.End-1:
			return fmt.Errorf("%s: end marker says %d were sent, the last seen was %d", m.P, *m.End, last)
		case !seen && s.whole && *m.End != 0:
			return fmt.Errorf("%s: end marker says %d were sent, none arrived", m.P, *m.End)
		}
		return nil
	}
	n := *m.N
	switch {
	case seen && n != last+1:
		return fmt.Errorf("%s: message %d after %d: lost or reordered", m.P, n, last)
	case !seen && s.whole && n != 0:
		return fmt.Errorf("%s: first message %d, want 0 (subscribed before it started)", m.P, n)
	}
	s.last[m.P] = n
	s.msgs++
	return nil
}

// soakCounters are the soak's running totals.
type soakCounters struct {
	published, received   atomic.Int64
	subLives, pubLives    atomic.Int64
	rawConns, slowLives   atomic.Int64
	heartbeats, beatsSent atomic.Int64
	slowCloseMax          atomic.Int64 // longest wait of a cut-off slow consumer for its close, ns
}

type soakSampleRow struct {
	at         time.Duration
	mem        memSample
	goroutines int
	st         broker.Stats
}

// TestSoak runs a mixed load for -soak.duration and checks that the
// well-behaved clients lose nothing and that memory and goroutines stay
// flat. It runs only with -soak (scripts/soak.sh).
func TestSoak(t *testing.T) {
	if !*soak {
		t.Skip("soak test, not in the default suite: run scripts/soak.sh or `go test -run TestSoak -timeout 30m -v ./stresstest -args -soak`")
	}
	dur := *soakDuration
	limit := time.Now().Add(dur + 3*time.Minute)
	baseGoroutines := runtime.NumGoroutine()

	// Why the broker closed each long-lived client, for failure messages.
	var closeWhy sync.Map
	sb := startBroker(t, &broker.Options{
		ConnState: func(ev broker.ConnEvent) {
			if ev.State == broker.StateClosed && strings.HasPrefix(ev.ClientName, "long-") {
				closeWhy.Store(ev.ClientName, fmt.Sprintf("%v (at %s)", ev.Err, time.Now().Format("15:04:05.000")))
			}
		},
		OutboundQueueBytes: soakQueueBytes,
		MaxMessageAge:      soakMaxMessageAge,
		LogonTimeout:       soakTimeouts,
	}, &listener.TCPOptions{HandshakeTimeout: soakTimeouts})
	var cnt soakCounters
	stop := make(chan struct{})
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}

	// Long-lived subscribers: each checks every publisher whole.
	var longSubs crew
	type longSub struct {
		c      *ampstest.Conn
		topic  string
		check  *seqCheck
		hb     bool
		wantPs map[string]bool // long-lived publishers it must see end
	}
	var subs []*longSub
	for i, topic := range []string{"soak/0", `^soak/[01]$`, `^soak/`, "soak/3"} {
		c, err := dialClient(sb.TCPAddr, limit)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ls := &longSub{c: c, topic: topic, check: newSeqCheck(true), hb: i%2 == 1, wantPs: map[string]bool{}}
		if err := logonOK(c, fmt.Sprint("long-sub-", i)); err != nil {
			t.Fatal(err)
		}
		if ls.hb {
			if err := c.Heartbeat(1); err != nil {
				t.Fatal(err)
			}
			if _, err := c.AwaitAck("hb", "received"); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Subscribe("s", topic); err != nil {
			t.Fatal(err)
		}
		for p := 0; p < soakPublishers; p++ {
			if topicMatches(topic, fmt.Sprint("soak/", p%soakTopics)) {
				ls.wantPs[fmt.Sprint("L", p)] = true
			}
		}
		subs = append(subs, ls)
	}
	for i, ls := range subs {
		longSubs.Go(fmt.Sprint("long-lived subscriber ", i), func() error {
			defer func() { ls.c.NetConn().SetDeadline(time.Now()) }()
			return readSoak(ls.c, ls.check, &cnt, func() bool {
				for p := range ls.wantPs {
					if !ls.check.ended[p] {
						return false
					}
				}
				return true
			})
		})
	}

	var load crew
	// Long-lived publishers.
	for p := 0; p < soakPublishers; p++ {
		load.Go(fmt.Sprint("publisher L", p), func() error {
			c, err := dialClient(sb.TCPAddr, limit)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := logonOK(c, fmt.Sprint("long-pub-", p)); err != nil {
				return err
			}
			perTick := max(*soakRate/100, 1)
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			id, topic := fmt.Sprint("L", p), fmt.Sprint("soak/", p%soakTopics)
			var n int64
			for !stopped() {
				<-tick.C
				for range perTick {
					if err := c.Publish(topic, fmt.Appendf(nil, `{"p":%q,"n":%d}`, id, n)); err != nil {
						return fmt.Errorf("publish %d: %w", n, err)
					}
					n++
				}
				cnt.published.Add(int64(perTick))
			}
			if err := c.Publish(topic, fmt.Appendf(nil, `{"p":%q,"end":%d}`, id, n)); err != nil {
				return err
			}
			return flushAndClose(c)
		})
	}
	// Churning publishers: a new publisher id per life.
	for w := 0; w < soakChurnPublishers; w++ {
		load.Go(fmt.Sprint("churning publisher ", w), func() error {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for life := 0; !stopped(); life++ {
				if err := churnPublisher(sb.TCPAddr, limit, fmt.Sprintf("C%d-%d", w, life), r, &cnt); err != nil {
					return fmt.Errorf("life %d: %w", life, err)
				}
				cnt.pubLives.Add(1)
			}
			return nil
		})
	}
	// Churning subscribers.
	for w := 0; w < soakChurnSubscribers; w++ {
		load.Go(fmt.Sprint("churning subscriber ", w), func() error {
			r := rand.New(rand.NewPCG(uint64(w), 2))
			for life := 0; !stopped(); life++ {
				if err := churnSubscriber(sb.TCPAddr, limit, fmt.Sprintf("churn-sub-%d-%d", w, life), r, &cnt); err != nil {
					return fmt.Errorf("life %d: %w", life, err)
				}
				cnt.subLives.Add(1)
			}
			return nil
		})
	}
	// Slow consumers: subscribe to everything, never read, get cut off.
	for w := 0; w < soakSlowConsumers; w++ {
		load.Go(fmt.Sprint("slow consumer ", w), func() error {
			for life := 0; !stopped(); life++ {
				if err := slowConsumerLife(sb.Broker, sb.TCPAddr, limit, fmt.Sprintf("slow-%d-%d", w, life), stop, &cnt); err != nil {
					return fmt.Errorf("life %d: %w", life, err)
				}
				cnt.slowLives.Add(1)
			}
			return nil
		})
	}
	// Raw connections opened and dropped.
	load.Go("raw connection churn", func() error {
		pace := time.NewTicker(time.Minute / soakRawConnsPerMinute)
		defer pace.Stop()
		for i := 0; !stopped(); i++ {
			<-pace.C
			c, err := dialClient(sb.TCPAddr, limit)
			if err != nil {
				return err
			}
			switch i % 3 {
			case 0:
				c.Close()
			case 1:
				c.Abort()
			case 2:
				err := logonOK(c, fmt.Sprint("raw-", i))
				c.Abort()
				if err != nil {
					return err
				}
			}
			cnt.rawConns.Add(1)
		}
		return nil
	})

	// Sample until the duration is over.
	var rows []soakSampleRow
	start := time.Now()
	sample := func() {
		rows = append(rows, soakSampleRow{at: time.Since(start), mem: readMem(true),
			goroutines: runtime.NumGoroutine(), st: sb.Stats()})
	}
	sample()
	tick := time.NewTicker(*soakSample)
	for time.Since(start) < dur {
		<-tick.C
		sample()
	}
	tick.Stop()
	close(stop)
	for _, err := range load.Wait() {
		t.Error(err)
	}
	for _, err := range longSubs.Wait() {
		t.Error(err)
	}
	closeWhy.Range(func(k, v any) bool {
		t.Logf("broker's reason for closing %s: %s", k, v)
		return true
	})
	final := sb.Stats()

	t.Logf("%8s %9s %9s %6s %6s %6s %11s %11s %5s", "at", "RSS MiB", "heap MiB", "gorout", "conns", "subs", "msgs in", "msgs out", "slow")
	for _, r := range rows {
		t.Logf("%8s %9.1f %9.1f %6d %6d %6d %11d %11d %5d", r.at.Round(time.Second), mib(r.mem.rss), mib(r.mem.heapInuse),
			r.goroutines, r.st.Connections, r.st.Subscriptions, r.st.MessagesIn, r.st.MessagesOut, r.st.SlowConsumers)
	}
	var longMsgs int64
	for _, ls := range subs {
		longMsgs += ls.check.msgs
	}
	t.Logf("published %d (long-lived and churning publishers), broker in %d out %d; long-lived subscribers got %d, all subscribers %d",
		cnt.published.Load(), final.MessagesIn, final.MessagesOut, longMsgs, cnt.received.Load())
	t.Logf("connections churned: %d subscriber lives, %d publisher lives, %d slow-consumer lives, %d raw open/drop; heartbeats received %d, beats sent %d; slow consumers cut %d, longest wait for their close %v",
		cnt.subLives.Load(), cnt.pubLives.Load(), cnt.slowLives.Load(), cnt.rawConns.Load(),
		cnt.heartbeats.Load(), cnt.beatsSent.Load(), final.SlowConsumers, time.Duration(cnt.slowCloseMax.Load()).Round(time.Millisecond))

	if final.SlowConsumers > cnt.slowLives.Load()+soakSlowConsumers {
		t.Errorf("Stats.SlowConsumers = %d, but only %d never-reading subscribers ran: a well-behaved one was cut off",
			final.SlowConsumers, cnt.slowLives.Load()+soakSlowConsumers)
	}
	if cnt.heartbeats.Load() == 0 {
		t.Errorf("no heartbeat received by the heartbeating subscribers")
	}
	checkFlat(t, rows)

	sb.Stop()
	checkGoroutines(t, baseGoroutines, 10*time.Second)
}

// checkFlat compares the last third of the samples with the first third
// (the first sample, taken before any load, is left out).
func checkFlat(t *testing.T, rows []soakSampleRow) {
	t.Helper()
	if len(rows) < 7 {
		t.Errorf("only %d samples: run longer or sample more often to judge growth", len(rows))
		return
	}
	rows = rows[1:]
	third := len(rows) / 3
	first, last := rows[:third], rows[len(rows)-third:]
	maxOf := func(rs []soakSampleRow, f func(soakSampleRow) float64) float64 {
		m := 0.0
		for _, r := range rs {
			m = max(m, f(r))
		}
		return m
	}
	for _, m := range []struct {
		name  string
		f     func(soakSampleRow) float64
		slack float64
	}{
		{"RSS MiB", func(r soakSampleRow) float64 { return mib(r.mem.rss) }, 16},
		{"heap MiB", func(r soakSampleRow) float64 { return mib(r.mem.heapInuse) }, 16},
		{"goroutines", func(r soakSampleRow) float64 { return float64(r.goroutines) }, 20},
	} {
		a, b := maxOf(first, m.f), maxOf(last, m.f)
		if b > a*1.5+m.slack {
			t.Errorf("%s grew: max %.1f in the first third, %.1f in the last (bound ×1.5 + %.0f)", m.name, a, b, m.slack)
		} else {
			t.Logf("%s flat: max %.1f in the first third, %.1f in the last (bound ×1.5 + %.0f)", m.name, a, b, m.slack)
		}
	}
}

// topicMatches applies the subscription rule of wire spec §11 for the
// patterns the soak uses.
func topicMatches(sub, topic string) bool {
	switch sub {
	case `^soak/[01]$`:
		return topic == "soak/0" || topic == "soak/1"
	case `^soak/[23]$`:
		return topic == "soak/2" || topic == "soak/3"
	case `^soak/`:
		return strings.HasPrefix(topic, "soak/")
	}
	return sub == topic
}

// readSoak reads deliveries, answers heartbeats, and checks sequences
// until done says so or the connection fails.
func readSoak(c *ampstest.Conn, chk *seqCheck, cnt *soakCounters, done func() bool) error {
	for !done() {
		f, err := c.Read()
		if err != nil {
			return fmt.Errorf("after %d messages: %w", chk.msgs, err)
		}
		if err := handleSoakFrame(c, f, chk, cnt); err != nil {
			return err
		}
	}
	return nil
}

func handleSoakFrame(c *ampstest.Conn, f ampstest.Message, chk *seqCheck, cnt *soakCounters) error {
	switch f.Field("c") {
	case "heartbeat":
		cnt.heartbeats.Add(1)
		cnt.beatsSent.Add(1)
		return c.Beat()
	case "p":
		cnt.received.Add(1)
		return chk.check(f.Body)
	}
	return fmt.Errorf("unexpected %s", f)
}

// flushAndClose waits for a flush ack, so everything sent before it has
// been routed, then closes.
func flushAndClose(c *ampstest.Conn) error {
	defer c.Close()
	if err := c.SendJSON(map[string]any{"c": "flush", "cid": "f", "a": "processed"}, nil); err != nil {
		return err
	}
	_, err := c.AwaitAck("f", "processed")
	return err
}

// churnPublisher is one life of a churning publisher: it publishes a
// random number of messages to a random topic, then its end marker,
// flushes and leaves.
func churnPublisher(addr string, limit time.Time, id string, r *rand.Rand, cnt *soakCounters) error {
	c, err := dialClient(addr, limit)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := logonOK(c, id); err != nil {
		return err
	}
	topic := fmt.Sprint("soak/", r.IntN(soakTopics))
	total := int64(50 + r.IntN(500))
	for n := int64(0); n < total; n++ {
		if err := c.Publish(topic, fmt.Appendf(nil, `{"p":%q,"n":%d}`, id, n)); err != nil {
			return err
		}
		if n%10 == 9 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	cnt.published.Add(total)
	if err := c.Publish(topic, fmt.Appendf(nil, `{"p":%q,"end":%d}`, id, total)); err != nil {
		return err
	}
	return flushAndClose(c)
}

// churnSubscriber is one life of a churning subscriber: logon, maybe
// heartbeats, one subscription, reading for a random while, then one of
// three ways to leave.
func churnSubscriber(addr string, limit time.Time, name string, r *rand.Rand, cnt *soakCounters) error {
	c, err := dialClient(addr, limit)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := logonOK(c, name); err != nil {
		return err
	}
	hb := r.IntN(2) == 0
	if hb {
		if err := c.Heartbeat(1); err != nil {
			return err
		}
	}
	topic := soakSubscriptions[r.IntN(len(soakSubscriptions))]
	if err := c.SendJSON(map[string]any{"c": "subscribe", "cid": "s", "sub_id": "s", "t": topic, "a": "processed"}, nil); err != nil {
		return err
	}
	chk := newSeqCheck(false)
	acked := false
	end := time.Now().Add(time.Duration(500+r.IntN(2500)) * time.Millisecond)
	for time.Now().Before(end) || !acked {
		wait := ampstest.DefaultTimeout
		if acked {
			// Once subscribed, read until the life ends; traffic may
			// stop meanwhile (the soak's end), which is no error.
			wait = time.Until(end)
		}
		f, err := c.ReadWithin(wait)
		var ne net.Error
		if acked && errors.As(err, &ne) && ne.Timeout() && !time.Now().Before(end) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s on %q after %d messages: %w", name, topic, chk.msgs, err)
		}
		if f.Field("c") == "ack" {
			if f.Field("status") != "success" {
				return fmt.Errorf("%s: %s", name, f)
			}
			acked = acked || f.Field("cid") == "s"
			continue
		}
		if err := handleSoakFrame(c, f, chk, cnt); err != nil {
			return fmt.Errorf("%s on %q: %w", name, topic, err)
		}
	}
	switch r.IntN(3) {
	case 0:
		return c.SendJSON(map[string]any{"c": "unsubscribe", "sub_id": "all"}, nil)
	case 1:
		c.Abort()
	}
	return nil
}

// slowConsumerLife subscribes to everything and never reads until the
// broker cuts the connection (byte budget or message age, semantics §5.4).
func slowConsumerLife(b *broker.Broker, addr string, limit time.Time, name string, stop <-chan struct{}, cnt *soakCounters) error {
	c, err := dialClient(addr, limit)
	if err != nil {
		return err
	}
	defer c.Close()
	c.NetConn().(*net.TCPConn).SetReadBuffer(256 << 10)
	if err := logonOK(c, name); err != nil {
		return err
	}
	if err := c.Subscribe("s", `^soak/`); err != nil {
		return err
	}
	before := b.Stats().SlowConsumers
	for b.Stats().SlowConsumers == before {
		select {
		case <-stop:
			return nil
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(limit) {
			return errors.New("never cut off")
		}
	}
	// The broker closes the socket gracefully: its FIN waits behind the
	// megabytes the kernel still holds for this reader, retransmitted
	// with exponential backoff (up to TCP_RTO_MAX, 120 s) because the
	// reader's window was shut for long. Seen: 14 s from the cut to EOF.
	// So this wait is bounded by 2 minutes, and the time is reported.
	cut := time.Now()
	_, err = c.ExpectClosed(slowCloseWithin)
	if err == nil {
		d := time.Since(cut)
		for {
			old := cnt.slowCloseMax.Load()
			if int64(d) <= old || cnt.slowCloseMax.CompareAndSwap(old, int64(d)) {
				break
			}
		}
	}
	return err
}

// slowCloseWithin bounds how long a cut-off slow consumer may wait to see
// its connection end (see slowConsumerLife).
const slowCloseWithin = 2 * time.Minute
