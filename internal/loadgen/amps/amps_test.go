package amps

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/internal/loadgen"
)

// newBroker starts an in-process broker that declares the sow scenario's
// SOW topics.
func newBroker(t *testing.T) *ampstest.Broker {
	return ampstest.NewBroker(t, &ampstest.Options{Broker: &broker.Options{SOWTopics: []broker.SOWTopic{
		{Name: "loadgen-sow", Pattern: loadgen.SOWTopicPattern, Keys: []string{loadgen.SOWKeyField}},
	}}})
}

func driver(t *testing.T, uri string) *Driver {
	d, err := ParseURL(uri)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// runAll runs each scenario at each size with a window small enough that
// flow control engages, and checks that every subscriber received exactly
// what it was owed.
func runAll(t *testing.T, d *Driver, sizes []int) {
	const count = 300
	for _, sc := range loadgen.Scenarios {
		for _, size := range sizes {
			cfg := loadgen.Config{Driver: d, Scenario: sc, Size: size, Count: count, Window: 20, Drain: 20 * time.Second,
				Topic: loadgen.Topic(sc, size)}
			r, err := loadgen.Run(cfg)
			if err != nil {
				t.Fatalf("%s %s/%d: %v", d.Name(), sc.Name, size, err)
			}
			want := r.Expected(sc)
			if r.Published != uint64(count*sc.Pubs) || r.Deliveries != want || r.Violations() != 0 || len(r.Errors) != 0 {
				t.Errorf("%s %s/%d: published %d, delivered %d (want %d), violations %d, errors %q",
					d.Name(), sc.Name, size, r.Published, r.Deliveries, want, r.Violations(), r.Errors)
			}
		}
	}
}

// TestScenarios runs every scenario at each size over the stream encoding.
func TestScenarios(t *testing.T) {
	b := newBroker(t)
	runAll(t, driver(t, b.TCPURL()), []int{64, 1024, 16384})
}

// TestScenariosWS runs every scenario at one size over the JavaScript
// client's WebSocket encoding.
func TestScenariosWS(t *testing.T) {
	b := newBroker(t)
	d := driver(t, b.WSURL())
	if !d.WS {
		t.Fatalf("%s parsed as %+v, not WebSocket", b.WSURL(), d)
	}
	runAll(t, d, []int{1024})
}

// TestFilterDelivers checks that the filter scenario's subscribers really
// are filtered by the broker: each receives a tenth of the messages (the
// checker would count any other as a violation).
func TestFilterDelivers(t *testing.T) {
	b := newBroker(t)
	sc, _ := loadgen.FindScenario("filter")
	r, err := loadgen.Run(loadgen.Config{Driver: driver(t, b.TCPURL()), Scenario: sc, Size: 64, Count: 1000, Window: 100,
		Drain: 20 * time.Second, Topic: loadgen.Topic(sc, 64)})
	if err != nil {
		t.Fatal(err)
	}
	if r.Published != 1000 || r.Deliveries != 1000 || r.Violations() != 0 {
		t.Fatalf("published %d, delivered %d to ten subscribers (want 1000, a tenth each), violations %d, errors %q",
			r.Published, r.Deliveries, r.Violations(), r.Errors)
	}
}

// TestSOWUpserts checks that the sow scenario publishes to a SOW topic
// whose records are replaced: after 2.5 cycles of keys the topic holds
// one record per key.
func TestSOWUpserts(t *testing.T) {
	b := newBroker(t)
	sc, _ := loadgen.FindScenario("sow")
	topic := loadgen.Topic(sc, 128)
	r, err := loadgen.Run(loadgen.Config{Driver: driver(t, b.TCPURL()), Scenario: sc, Size: 128, Count: loadgen.SOWKeys * 5 / 2,
		Window: 100, Drain: 20 * time.Second, Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	if r.Deliveries != loadgen.SOWKeys*5/2 || r.Violations() != 0 {
		t.Fatalf("delivered %d, violations %d, errors %q", r.Deliveries, r.Violations(), r.Errors)
	}
	for _, st := range b.Stats().SOWTopics {
		if st.Topic == topic {
			if st.Records != loadgen.SOWKeys {
				t.Fatalf("SOW topic %s holds %d records, want %d", topic, st.Records, loadgen.SOWKeys)
			}
			return
		}
	}
	t.Fatalf("no SOW topic %s in the broker's stats %+v", topic, b.Stats().SOWTopics)
}

// TestDuration runs by time rather than count: whatever was published must
// have been delivered.
func TestDuration(t *testing.T) {
	b := newBroker(t)
	sc, _ := loadgen.FindScenario("10to1")
	r, err := loadgen.Run(loadgen.Config{Driver: driver(t, b.TCPURL()), Scenario: sc, Size: 1024, Duration: 200 * time.Millisecond,
		Window: 100, Drain: 20 * time.Second, Topic: "dur"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Published == 0 || r.Deliveries != r.Published || r.Violations() != 0 {
		t.Fatalf("published %d, delivered %d, violations %d, errors %q", r.Published, r.Deliveries, r.Violations(), r.Errors)
	}
}

// TestLatency checks that the latency mode paces the publisher and reports
// ordered, positive percentiles.
func TestLatency(t *testing.T) {
	b := newBroker(t)
	sc, _ := loadgen.FindScenario("1to1")
	start := time.Now()
	r, err := loadgen.Run(loadgen.Config{Driver: driver(t, b.TCPURL()), Scenario: sc, Size: 1024, Count: 200, Rate: 1000,
		Window: 1000, Drain: 20 * time.Second, Topic: "lat"})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Errorf("200 messages at 1000/s took %v, want about 200ms", took)
	}
	if r.Deliveries != 200 || r.Violations() != 0 {
		t.Fatalf("delivered %d, violations %d", r.Deliveries, r.Violations())
	}
	if !(r.P50us > 0 && r.P50us <= r.P99us && r.P99us <= r.P999us) {
		t.Fatalf("percentiles p50 %v p99 %v p99.9 %v are not ordered and positive", r.P50us, r.P99us, r.P999us)
	}
}

// TestInjectedFaults makes a publisher drop or repeat a message on the wire
// and checks that the subscribers' checkers catch it in a real run, also
// when the subscribers are filtered.
func TestInjectedFaults(t *testing.T) {
	b := newBroker(t)
	d := driver(t, b.TCPURL())
	for _, tc := range []struct {
		name     string
		scenario string
		seq      uint64
		times    int
		lost     uint64
		dup      uint64
	}{
		{"loss", "1to10", 42, 0, 10, 0}, // each of the 10 subscribers misses one
		{"duplicate", "10to1", 42, 2, 0, 1},
		{"filtered loss", "filter", 42, 0, 1, 0}, // only subscriber 2 is owed 42
		{"filtered duplicate", "filter", 47, 2, 0, 1},
	} {
		sc, _ := loadgen.FindScenario(tc.scenario)
		cfg := loadgen.Config{Driver: d, Scenario: sc, Size: 64, Count: 100, Window: 50, Drain: 2 * time.Second,
			Topic: "fault/" + strconv.Itoa(int(tc.seq)) + tc.name,
			Fault: func(pub int, seq uint64) int {
				if pub == 0 && seq == tc.seq {
					return tc.times
				}
				return 1
			}}
		r, err := loadgen.Run(cfg)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if r.Lost != tc.lost || r.Duplicated != tc.dup || r.Reordered != 0 || r.Malformed != 0 || len(r.Errors) == 0 {
			t.Errorf("%s: lost %d dup %d reordered %d malformed %d errors %q; want lost %d dup %d",
				tc.name, r.Lost, r.Duplicated, r.Reordered, r.Malformed, r.Errors, tc.lost, tc.dup)
		}
	}
}

// TestIdleConnectionsAreLoggedOn checks that OpenIdle logs on its
// connections over both encodings and reports no RSS without a pid.
func TestIdleConnectionsAreLoggedOn(t *testing.T) {
	b := newBroker(t)
	for _, uri := range []string{b.TCPURL(), b.WSURL()} {
		r, closeIdle, err := loadgen.OpenIdle(driver(t, uri), 5, 0, 0)
		if err != nil {
			closeIdle()
			t.Fatalf("%s: %v", uri, err)
		}
		if r.Connections != 5 || r.RSSBeforeKB != 0 || r.KBPerConn != 0 {
			t.Errorf("%s: %+v, want 5 connections and no RSS without a pid", uri, r)
		}
		closeIdle()
	}
	// The broker notices a closed connection when it next reads from it.
	deadline := time.Now().Add(10 * time.Second)
	for len(b.Stats().Conns) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(b.Stats().Conns); n != 0 {
		t.Errorf("%d connections still open 10s after closing the idle ones", n)
	}
}

// notAMPS is a driver without AMPS's features.
type notAMPS struct{ *Driver }

func (notAMPS) Features() loadgen.Feature { return 0 }

// TestNotApplicable checks that a driver without content filters or SOW
// topics is refused the scenarios that need them before anything is
// dialled.
func TestNotApplicable(t *testing.T) {
	for _, name := range []string{"filter", "sow"} {
		sc, _ := loadgen.FindScenario(name)
		_, err := loadgen.Run(loadgen.Config{Driver: notAMPS{&Driver{Addr: "127.0.0.1:1"}}, Scenario: sc, Size: 64, Count: 1, Window: 1})
		if !errors.Is(err, loadgen.ErrNotApplicable) {
			t.Errorf("%s: err %v, want ErrNotApplicable", name, err)
		}
	}
}
