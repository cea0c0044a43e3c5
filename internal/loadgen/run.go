package loadgen

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Scenario is a shape of load: how many publishers and subscribers share
// one topic, and what else the broker must do.
type Scenario struct {
	Name       string
	Pubs, Subs int
	// Needs is what the driver must support; Run refuses a driver that
	// lacks it with ErrNotApplicable.
	Needs Feature
	// Partitioned: subscriber i subscribes with a content filter that lets
	// through the messages whose sequence number is i modulo Subs (Subs
	// divides SOWKeys), so that each message reaches exactly one
	// subscriber.
	Partitioned bool
}

// Scenarios are the shapes a load tool may name. Every subscriber
// receives every publisher's messages unless the scenario is Partitioned.
var Scenarios = []Scenario{
	{Name: "1to1", Pubs: 1, Subs: 1},
	{Name: "1to10", Pubs: 1, Subs: 10},
	{Name: "10to1", Pubs: 10, Subs: 1},
	// filter: one publisher, ten subscribers each with a content filter
	// that matches a tenth of the messages (the key modulo 10), so the
	// broker evaluates ten filters per message and delivers it once.
	{Name: "filter", Pubs: 1, Subs: 10, Needs: ContentFilter, Partitioned: true},
	// sow: one publisher and one subscriber on a SOW topic; the
	// messages cycle through SOWKeys keys, so after the first SOWKeys
	// each publish replaces a stored record.
	{Name: "sow", Pubs: 1, Subs: 1, Needs: SOWTopic},
}

// FindScenario returns the scenario of this name.
func FindScenario(name string) (Scenario, bool) {
	for _, s := range Scenarios {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

// ScenarioNames lists the names of Scenarios, for messages.
func ScenarioNames() []string {
	var names []string
	for _, s := range Scenarios {
		names = append(names, s.Name)
	}
	return names
}

// SOWTopicPattern is the regular expression (whole topic) that a broker
// must declare as a SOW topic keyed on SOWKeyField for the sow scenario:
// Topic names that scenario's runs under it.
const SOWTopicPattern = "loadgen/sow/.+"

// Topic returns a fresh topic name for a run of sc at size: unique by the
// clock, and under SOWTopicPattern for the sow scenario.
func Topic(sc Scenario, size int) string {
	return "loadgen/" + sc.Name + "/" + strconv.Itoa(size) + "/" + strconv.FormatInt(time.Now().UnixNano(), 10)
}

// filterFor is the content filter of subscriber i of a Partitioned
// scenario of n subscribers: the key modulo n, which is the sequence
// number's (SOWKeys is a multiple of 10, and k is 1000 plus the key).
func filterFor(i, n int) string {
	return "/k % " + strconv.Itoa(n) + " = " + strconv.Itoa(i)
}

// Config is one run's parameters.
type Config struct {
	Driver Driver
	// SubDrivers, when not empty, are what subscribers dial instead of
	// Driver, in turn (subscriber i the one at i mod their number): the
	// nodes of a cluster other than the publishers'.
	SubDrivers []Driver
	Scenario   Scenario
	Size       int
	Duration   time.Duration // publish for this long, or
	Count      uint64        // publish this many messages per publisher when > 0
	Window     uint64        // how many messages a subscriber may have outstanding, over all publishers
	Rate       float64       // messages per second over all publishers; 0: as fast as flow control allows
	PID        int           // the server's pid, for CPU time; 0: none
	Drain      time.Duration // how long to wait, after publishing, for the last deliveries
	Topic      string
	// Fault, when set (by tests), says how many times publisher pub sends
	// sequence number seq: 1 normally, 0 to drop it, 2 to duplicate it.
	Fault func(pub int, seq uint64) int
}

// Result is one run's outcome.
type Result struct {
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

// Violations is the number of messages that broke the delivery guarantees.
func (r *Result) Violations() uint64 { return r.Lost + r.Duplicated + r.Reordered + r.Malformed }

// Expected is how many deliveries a run that published r.Published
// messages owes, with no violation.
func (r *Result) Expected(sc Scenario) uint64 {
	if sc.Partitioned {
		return r.Published
	}
	return r.Published * uint64(sc.Subs)
}

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
	c   Conn
	chk *checker
	lat []int64 // publish→delivery latencies in ns, when measured
	err error   // why reading stopped, other than the runner closing it
	// stopped is set when the reading goroutine has ended.
	stopped atomic.Bool
}

// flowWait bounds one wait of a publisher for the slowest subscriber, so
// that a wake-up lost to a race costs at most this.
const flowWait = 10 * time.Millisecond

// drainPoll is how often the runner looks whether the last deliveries
// have arrived.
const drainPoll = 200 * time.Microsecond

// Run runs one scenario and returns its result. Errors are for runs that
// could not be carried out (ErrNotApplicable if the driver lacks what the
// scenario needs); delivery violations are in the result.
func Run(cfg Config) (*Result, error) {
	sc := cfg.Scenario
	if need := sc.Needs; cfg.Driver.Features()&need != need {
		return nil, fmt.Errorf("%s on %s: %w", sc.Name, cfg.Driver.Name(), ErrNotApplicable)
	}
	if cfg.Size < MinBodySize {
		return nil, fmt.Errorf("size %d is below the smallest message, %d bytes", cfg.Size, MinBodySize)
	}
	if sc.Pubs < 1 || sc.Subs < 1 || sc.Pubs > MaxPublishers {
		return nil, fmt.Errorf("scenario %s: %d publishers and %d subscribers; want 1 to %d publishers and at least one subscriber",
			sc.Name, sc.Pubs, sc.Subs, MaxPublishers)
	}
	if sc.Partitioned && SOWKeys%sc.Subs != 0 {
		return nil, fmt.Errorf("scenario %s: %d partitioned subscribers do not divide the %d keys", sc.Name, sc.Subs, SOWKeys)
	}
	if cfg.Window == 0 {
		return nil, errors.New("window must be at least 1")
	}
	latency := cfg.Rate > 0

	var conns []Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	subs := make([]*subscriber, sc.Subs)
	for i := range subs {
		d := cfg.Driver
		if n := len(cfg.SubDrivers); n > 0 {
			d = cfg.SubDrivers[i%n]
		}
		c, err := d.Dial("loadgen-sub-" + strconv.Itoa(i))
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
		every, filter := uint64(1), ""
		if sc.Partitioned {
			every, filter = uint64(sc.Subs), filterFor(i, sc.Subs)
		}
		if err := c.Subscribe(cfg.Topic, filter); err != nil {
			return nil, fmt.Errorf("subscriber %d: %w", i, err)
		}
		subs[i] = &subscriber{c: c, chk: newChecker(sc.Pubs, every, uint64(i))}
	}
	pubConns := make([]Conn, sc.Pubs)
	states := make([]*pubState, sc.Pubs)
	for i := range pubConns {
		c, err := cfg.Driver.Dial("loadgen-pub-" + strconv.Itoa(i))
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
		pubConns[i] = c
		states[i] = &pubState{wake: make(chan struct{}, 1)}
	}

	cpu0, err := ReadCPU(cfg.PID)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	var readers sync.WaitGroup
	for _, s := range subs {
		readers.Add(1)
		go func() {
			defer readers.Done()
			s.read(cfg.Size, states, latency, start)
		}()
	}

	var stop atomic.Bool
	sent := make([]uint64, sc.Pubs)
	pubErrs := make([]error, sc.Pubs)
	var pubWG sync.WaitGroup
	for i := range pubConns {
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			sent[i], pubErrs[i] = publish(cfg, i, pubConns[i], states[i], subs, &stop, start)
		}()
	}
	if cfg.Count == 0 {
		t := time.NewTimer(cfg.Duration)
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

	// Wait until every subscriber has seen the last message it is owed of
	// every publisher, or the drain time is over.
	deadline := time.Now().Add(cfg.Drain)
	for !drained(subs, sent) && time.Now().Before(deadline) {
		if allStopped(subs) {
			break
		}
		time.Sleep(drainPoll)
	}
	elapsed := time.Since(start)
	cpu1, err := ReadCPU(cfg.PID)
	if err != nil {
		return nil, err
	}
	for _, c := range conns {
		c.Close()
	}
	readers.Wait()

	r := &Result{Scenario: sc.Name, Size: cfg.Size, Seconds: elapsed.Seconds(), TargetRate: cfg.Rate}
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
	if cfg.PID > 0 && r.Deliveries > 0 {
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
			if s.chk.done(p) < n {
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
func (s *subscriber) read(size int, states []*pubState, latency bool, start time.Time) {
	defer s.stopped.Store(true)
	for {
		body, err := s.c.Next()
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
			s.lat = append(s.lat, int64(time.Since(start))-ts)
		}
		s.chk.receive(pub, seq)
		if pub >= 0 && pub < len(states) {
			st := states[pub]
			if st.waiting.Load() && s.chk.done(pub) >= st.target.Load() {
				select {
				case st.wake <- struct{}{}:
				default:
				}
			}
		}
	}
}

// slowest returns the least progress (see checker.done) of publisher pub
// over all subscribers.
func slowest(subs []*subscriber, pub int) uint64 {
	m := ^uint64(0)
	for _, s := range subs {
		m = min(m, s.chk.done(pub))
	}
	return m
}

// publish sends publisher id's messages until cfg.Count or stop, never more
// than its share of cfg.Window ahead of the slowest subscriber, and returns
// how many it sent.
func publish(cfg Config, id int, c Conn, st *pubState, subs []*subscriber, stop *atomic.Bool, start time.Time) (uint64, error) {
	// The window bounds what one subscriber may have outstanding, so the
	// publishers share it: ten publishers with a window each would queue
	// ten windows for one subscriber (at 16 KiB, past the broker's
	// per-connection budget of 64 MiB).
	window := max(1, cfg.Window/uint64(cfg.Scenario.Pubs))
	body := newBody(id, cfg.Size)
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(cfg.Scenario.Pubs) / cfg.Rate)
	}
	fail := func(err error) error { return fmt.Errorf("publisher %d: %w", id, err) }
	allowed := window
	var seq uint64
	for ; cfg.Count == 0 || seq < cfg.Count; seq++ {
		if seq&63 == 0 && stop.Load() {
			break
		}
		if interval > 0 {
			due := start.Add(time.Duration(seq) * interval)
			if d := time.Until(due); d > 0 {
				if err := c.Flush(); err != nil {
					return seq, fail(err)
				}
				time.Sleep(d)
			}
		}
		for seq >= allowed {
			// Flow control: the slowest subscriber has not caught up.
			// Send what is buffered and wait until it is half a window
			// behind, so that the next burst is half a window long.
			if err := c.Flush(); err != nil {
				return seq, fail(err)
			}
			want := seq - window/2
			if window < 2 {
				want = seq
			}
			st.target.Store(want)
			st.waiting.Store(true)
			if slowest(subs, id) < want {
				t := time.NewTimer(flowWait)
				select {
				case <-st.wake:
				case <-t.C:
				}
				t.Stop()
			}
			st.waiting.Store(false)
			allowed = slowest(subs, id) + window
			if stop.Load() || allStopped(subs) {
				return seq, c.Flush()
			}
		}
		var ts int64
		if interval > 0 {
			ts = int64(time.Since(start))
		}
		setBody(body, seq, ts)
		times := 1
		if cfg.Fault != nil {
			times = cfg.Fault(id, seq)
		}
		for range times {
			if err := c.Publish(cfg.Topic, body); err != nil {
				return seq, fail(err)
			}
		}
		if interval > 0 {
			if err := c.Flush(); err != nil {
				return seq, fail(err)
			}
		}
	}
	return seq, c.Flush()
}
