package main

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ampsbroker/ampsbroker/protocol"
)

// scenario is a shape of load: how many publishers and subscribers share
// one topic. Every subscriber receives every publisher's messages.
type scenario struct {
	name       string
	pubs, subs int
}

// scenarios are the shapes -scenario names.
var scenarios = []scenario{
	{"1to1", 1, 1},
	{"1to10", 1, 10},
	{"10to1", 10, 1},
}

func findScenario(name string) (scenario, bool) {
	for _, s := range scenarios {
		if s.name == name {
			return s, true
		}
	}
	return scenario{}, false
}

// config is one run's parameters.
type config struct {
	target   target
	sc       scenario
	size     int
	duration time.Duration // publish for this long, or
	count    uint64        // publish this many messages per publisher when > 0
	window   uint64        // how many messages a subscriber may have outstanding, over all publishers
	rate     float64       // messages per second over all publishers; 0: as fast as flow control allows
	pid      int           // the server's pid, for CPU time; 0: none
	drain    time.Duration // how long to wait, after publishing, for the last deliveries
	topic    string
	// fault, when set (by tests), says how many times publisher pub sends
	// sequence number seq: 1 normally, 0 to drop it, 2 to duplicate it.
	fault func(pub int, seq uint64) int
}

// result is one run's outcome.
type result struct {
	Scenario   string   `json:"scenario"`
	Size       int      `json:"size"`
	Published  uint64   `json:"published"`
	Deliveries uint64   `json:"deliveries"`
	Seconds    float64  `json:"seconds"`
	Rate       float64  `json:"rate"`
	CPUus      float64  `json:"cpu_us_per_delivery,omitempty"`
	Lost       uint64   `json:"lost"`
	Duplicated uint64   `json:"duplicated"`
	Reordered  uint64   `json:"reordered"`
	Malformed  uint64   `json:"malformed"`
	TargetRate float64  `json:"target_rate,omitempty"`
	P50us      float64  `json:"p50_us,omitempty"`
	P99us      float64  `json:"p99_us,omitempty"`
	P999us     float64  `json:"p999_us,omitempty"`
	Errors     []string `json:"errors,omitempty"`
}

// violations is the number of messages that broke the delivery guarantees.
func (r *result) violations() uint64 { return r.Lost + r.Duplicated + r.Reordered + r.Malformed }

// publisher state shared with the subscribers for flow control.
type pubState struct {
	// waiting is set while the publisher waits for the slowest subscriber
	// to reach target; the subscriber that gets there wakes it.
	waiting atomic.Bool
	target  atomic.Uint64
	wake    chan struct{}
}

// subscriber is one subscribing connection and its checker.
type subscriber struct {
	c   conn
	chk *checker
	lat []int64 // publish→delivery latencies in ns, when measured
	err error   // why reading stopped, other than the runner closing it
	// stopped is set when the reading goroutine has ended.
	stopped atomic.Bool
}

// run runs one scenario and returns its result. Errors are for runs that
// could not be carried out; delivery violations are in the result.
func run(cfg config) (*result, error) {
	if cfg.size < minBodySize {
		return nil, fmt.Errorf("-size %d is below the smallest message, %d bytes", cfg.size, minBodySize)
	}
	if cfg.sc.pubs > maxPublishers {
		return nil, fmt.Errorf("%d publishers, at most %d", cfg.sc.pubs, maxPublishers)
	}
	if cfg.window == 0 {
		return nil, errors.New("-window must be at least 1")
	}
	latency := cfg.rate > 0

	var conns []conn
	defer func() {
		for _, c := range conns {
			c.close()
		}
	}()
	subs := make([]*subscriber, cfg.sc.subs)
	for i := range subs {
		c, err := dial(cfg.target, fmt.Sprintf("ampsbench-sub-%d", i))
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
		if err := subscribe(c, "s"+itoa(i), cfg.topic); err != nil {
			return nil, err
		}
		subs[i] = &subscriber{c: c, chk: newChecker(cfg.sc.pubs)}
	}
	pubConns := make([]conn, cfg.sc.pubs)
	states := make([]*pubState, cfg.sc.pubs)
	for i := range pubConns {
		c, err := dial(cfg.target, fmt.Sprintf("ampsbench-pub-%d", i))
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
		pubConns[i] = c
		states[i] = &pubState{wake: make(chan struct{}, 1)}
	}

	cpu0, err := readCPU(cfg.pid)
	if err != nil {
		return nil, err
	}
	var readers sync.WaitGroup
	for _, s := range subs {
		readers.Add(1)
		go func() {
			defer readers.Done()
			s.read(cfg.size, states, latency)
		}()
	}

	var stop atomic.Bool
	sent := make([]uint64, cfg.sc.pubs)
	pubErrs := make([]error, cfg.sc.pubs)
	var pubWG sync.WaitGroup
	start := time.Now()
	for i := range pubConns {
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			sent[i], pubErrs[i] = publish(cfg, i, pubConns[i], states[i], subs, &stop, start)
		}()
	}
	if cfg.count == 0 {
		t := time.NewTimer(cfg.duration)
		done := make(chan struct{})
		go func() { pubWG.Wait(); close(done) }()
		select {
		case <-t.C:
		case <-done: // every publisher failed
		}
		t.Stop()
		stop.Store(true)
	}
	pubWG.Wait()
	for _, err := range pubErrs {
		if err != nil {
			return nil, err
		}
	}

	// Wait until every subscriber has seen the last message of every
	// publisher, or the drain time is over.
	deadline := time.Now().Add(cfg.drain)
	for !drained(subs, sent) && time.Now().Before(deadline) {
		if allStopped(subs) {
			break
		}
		time.Sleep(200 * time.Microsecond)
	}
	elapsed := time.Since(start)
	cpu1, err := readCPU(cfg.pid)
	if err != nil {
		return nil, err
	}
	for _, c := range conns {
		c.close()
	}
	readers.Wait()

	r := &result{Scenario: cfg.sc.name, Size: cfg.size, Seconds: elapsed.Seconds(), TargetRate: cfg.rate}
	var lat []int64
	for i, s := range subs {
		s.chk.finish(sent)
		r.Deliveries += s.chk.delivered
		r.Lost += s.chk.lost
		r.Duplicated += s.chk.dup
		r.Reordered += s.chk.reordered
		r.Malformed += s.chk.bad
		for _, e := range s.chk.errs {
			r.Errors = append(r.Errors, fmt.Sprintf("subscriber %d: %s", i, e))
		}
		if s.err != nil {
			r.Errors = append(r.Errors, fmt.Sprintf("subscriber %d: %v", i, s.err))
		}
		lat = append(lat, s.lat...)
	}
	for _, n := range sent {
		r.Published += n
	}
	r.Rate = float64(r.Deliveries) / elapsed.Seconds()
	if cfg.pid > 0 && r.Deliveries > 0 {
		r.CPUus = float64((cpu1 - cpu0).Microseconds()) / float64(r.Deliveries)
	}
	if latency && len(lat) > 0 {
		slices.Sort(lat)
		r.P50us = percentile(lat, 0.50)
		r.P99us = percentile(lat, 0.99)
		r.P999us = percentile(lat, 0.999)
	}
	return r, nil
}

// percentile returns the q-quantile of sorted latencies (ns) in µs, by the
// nearest-rank method.
func percentile(sorted []int64, q float64) float64 {
	i := int(q*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i]) / 1e3
}

func drained(subs []*subscriber, sent []uint64) bool {
	for _, s := range subs {
		for p, n := range sent {
			if s.chk.next[p].Load() < n {
				return false
			}
		}
	}
	return true
}

func allStopped(subs []*subscriber) bool {
	for _, s := range subs {
		if !s.stopped.Load() {
			return false
		}
	}
	return true
}

// read receives deliveries until the connection closes, checks each, and
// wakes a publisher waiting for this subscriber.
func (s *subscriber) read(size int, states []*pubState, latency bool) {
	defer s.stopped.Store(true)
	for {
		body, err := s.c.nextBody()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.err = err
			}
			return
		}
		pub, seq, ts, err := parseBody(body, size)
		if err != nil {
			s.chk.badBody(err)
			continue
		}
		if latency {
			s.lat = append(s.lat, time.Now().UnixNano()-ts)
		}
		s.chk.receive(pub, seq)
		if pub < len(states) {
			st := states[pub]
			if st.waiting.Load() && s.chk.next[pub].Load() >= st.target.Load() {
				select {
				case st.wake <- struct{}{}:
				default:
				}
			}
		}
	}
}

// slowest returns the least next sequence number of publisher pub over all
// subscribers.
func slowest(subs []*subscriber, pub int) uint64 {
	m := ^uint64(0)
	for _, s := range subs {
		m = min(m, s.chk.next[pub].Load())
	}
	return m
}

// publish sends publisher id's messages until cfg.count or stop, never more
// than its share of cfg.window ahead of the slowest subscriber, and returns
// how many it sent.
func publish(cfg config, id int, c conn, st *pubState, subs []*subscriber, stop *atomic.Bool, start time.Time) (uint64, error) {
	header := protocol.AppendHeader(nil, &protocol.Header{Command: protocol.CmdP, Topic: cfg.topic})
	// The window bounds what one subscriber may have outstanding, so the
	// publishers share it: ten publishers with a window each would queue
	// ten windows for one subscriber (at 16 KiB, past the broker's
	// per-connection budget of 64 MiB).
	window := max(1, cfg.window/uint64(cfg.sc.pubs))
	body := newBody(id, cfg.size)
	var interval time.Duration
	if cfg.rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(cfg.sc.pubs) / cfg.rate)
	}
	allowed := window
	var seq uint64
	for ; cfg.count == 0 || seq < cfg.count; seq++ {
		if seq&63 == 0 && stop.Load() {
			break
		}
		if interval > 0 {
			due := start.Add(time.Duration(seq) * interval)
			if d := time.Until(due); d > 0 {
				if err := c.flush(); err != nil {
					return seq, fmt.Errorf("publisher %d: %w", id, err)
				}
				time.Sleep(d)
			}
		}
		for seq >= allowed {
			// Flow control: the slowest subscriber has not caught up.
			// Send what is buffered and wait until it is half a window
			// behind, so that the next burst is half a window long.
			if err := c.flush(); err != nil {
				return seq, fmt.Errorf("publisher %d: %w", id, err)
			}
			want := seq - window/2
			if window < 2 {
				want = seq
			}
			st.target.Store(want)
			st.waiting.Store(true)
			if slowest(subs, id) < want {
				t := time.NewTimer(10 * time.Millisecond)
				select {
				case <-st.wake:
				case <-t.C:
				}
				t.Stop()
			}
			st.waiting.Store(false)
			allowed = slowest(subs, id) + window
			if stop.Load() || allStopped(subs) {
				return seq, c.flush()
			}
		}
		var ts int64
		if interval > 0 {
			ts = time.Now().UnixNano()
		}
		setBody(body, seq, ts)
		times := 1
		if cfg.fault != nil {
			times = cfg.fault(id, seq)
		}
		for range times {
			if err := c.send(header, body); err != nil {
				return seq, fmt.Errorf("publisher %d: %w", id, err)
			}
		}
		if interval > 0 {
			if err := c.flush(); err != nil {
				return seq, fmt.Errorf("publisher %d: %w", id, err)
			}
		}
	}
	return seq, c.flush()
}
