package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
)

func testAddr(t *testing.T) target {
	b := ampstest.NewBroker(t, nil)
	addr, err := parseURL(b.TCPURL())
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// TestScenarios runs every scenario at each size against an in-process
// broker, with a window small enough that flow control engages, and
// checks that every message was delivered to every subscriber once.
func TestScenarios(t *testing.T) {
	addr := testAddr(t)
	const count = 300
	for _, sc := range scenarios {
		for _, size := range []int{64, 1024, 16384} {
			cfg := config{target: addr, sc: sc, size: size, count: count, window: 20, drain: 20 * time.Second,
				topic: "t/" + sc.name + "/" + itoa(size)}
			r, err := run(cfg)
			if err != nil {
				t.Fatalf("%s/%d: %v", sc.name, size, err)
			}
			want := uint64(count * sc.pubs * sc.subs)
			if r.Published != uint64(count*sc.pubs) || r.Deliveries != want || r.violations() != 0 || len(r.Errors) != 0 {
				t.Errorf("%s/%d: published %d, delivered %d (want %d), violations %d, errors %q",
					sc.name, size, r.Published, r.Deliveries, want, r.violations(), r.Errors)
			}
		}
	}
}

// TestDuration runs by time rather than count: whatever was published must
// have been delivered.
func TestDuration(t *testing.T) {
	addr := testAddr(t)
	sc, _ := findScenario("10to1")
	r, err := run(config{target: addr, sc: sc, size: 1024, duration: 200 * time.Millisecond, window: 100, drain: 20 * time.Second, topic: "dur"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Published == 0 || r.Deliveries != r.Published || r.violations() != 0 {
		t.Fatalf("published %d, delivered %d, violations %d, errors %q", r.Published, r.Deliveries, r.violations(), r.Errors)
	}
}

// TestLatency checks that the latency mode paces the publisher and reports
// ordered, positive percentiles.
func TestLatency(t *testing.T) {
	addr := testAddr(t)
	sc, _ := findScenario("1to1")
	start := time.Now()
	r, err := run(config{target: addr, sc: sc, size: 1024, count: 200, rate: 1000, window: 1000, drain: 20 * time.Second, topic: "lat"})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Errorf("200 messages at 1000/s took %v, want about 200ms", took)
	}
	if r.Deliveries != 200 || r.violations() != 0 {
		t.Fatalf("delivered %d, violations %d", r.Deliveries, r.violations())
	}
	if !(r.P50us > 0 && r.P50us <= r.P99us && r.P99us <= r.P999us) {
		t.Fatalf("percentiles p50 %v p99 %v p99.9 %v are not ordered and positive", r.P50us, r.P99us, r.P999us)
	}
}

// TestMain runs the command end to end: JSON lines on stdout, a table on
// stderr, exit status 0.
func TestRunMain(t *testing.T) {
	b := ampstest.NewBroker(t, nil)
	var out, errOut bytes.Buffer
	status := runMain([]string{"-url", b.TCPURL(), "-scenario", "1to1,10to1", "-size", "64,1024", "-count", "100"}, &out, &errOut)
	if status != 0 {
		t.Fatalf("status %d, stderr:\n%s", status, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("want 4 JSON lines, got:\n%s", out.String())
	}
	for _, l := range lines {
		var r result
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if r.Deliveries == 0 || r.Rate <= 0 {
			t.Errorf("line %q has no deliveries or rate", l)
		}
	}
	if !strings.Contains(errOut.String(), "deliveries/s") {
		t.Errorf("no table on stderr:\n%s", errOut.String())
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-url", "http://127.0.0.1:1/amps/json"},
		{"-ws", "-url", "tcp://127.0.0.1:1/amps/json"},
		{"-idle", "-1"},
		{"-url", "tcp://127.0.0.1/amps/json"},
		{"-scenario", "2to2"},
		{"-size", "10"},
		{"-window", "0"},
		{"-pid", "-1"},
		{"extra"},
	} {
		var errOut bytes.Buffer
		if status := runMain(args, &bytes.Buffer{}, &errOut); status != 2 {
			t.Errorf("%q: status %d, want 2", args, status)
		}
	}
}

// TestInjectedFaults makes a publisher drop or repeat a message on the wire
// and checks that the subscribers' checkers catch it in a real run.
func TestInjectedFaults(t *testing.T) {
	addr := testAddr(t)
	for _, tc := range []struct {
		name     string
		scenario string
		times    int
		lost     uint64
		dup      uint64
	}{
		{"loss", "1to10", 0, 10, 0}, // each of the 10 subscribers misses one
		{"duplicate", "10to1", 2, 0, 1},
	} {
		sc, _ := findScenario(tc.scenario)
		cfg := config{target: addr, sc: sc, size: 64, count: 100, window: 50, drain: 2 * time.Second, topic: "fault/" + tc.name,
			fault: func(pub int, seq uint64) int {
				if pub == 0 && seq == 42 {
					return tc.times
				}
				return 1
			}}
		r, err := run(cfg)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if r.Lost != tc.lost || r.Duplicated != tc.dup || r.Reordered != 0 || r.Malformed != 0 || len(r.Errors) == 0 {
			t.Errorf("%s: lost %d dup %d reordered %d malformed %d errors %q; want lost %d dup %d",
				tc.name, r.Lost, r.Duplicated, r.Reordered, r.Malformed, r.Errors, tc.lost, tc.dup)
		}
	}
}

// TestScenariosWS runs every scenario at one size over the JavaScript
// client's WebSocket encoding, with flow control engaged, and checks that
// every message was delivered to every subscriber once.
func TestScenariosWS(t *testing.T) {
	b := ampstest.NewBroker(t, nil)
	tg, err := parseURL(b.WSURL())
	if err != nil {
		t.Fatal(err)
	}
	if !tg.ws {
		t.Fatalf("%s parsed as %+v, not WebSocket", b.WSURL(), tg)
	}
	const count = 300
	for _, sc := range scenarios {
		cfg := config{target: tg, sc: sc, size: 1024, count: count, window: 20, drain: 20 * time.Second, topic: "ws/" + sc.name}
		r, err := run(cfg)
		if err != nil {
			t.Fatalf("%s: %v", sc.name, err)
		}
		want := uint64(count * sc.pubs * sc.subs)
		if r.Published != uint64(count*sc.pubs) || r.Deliveries != want || r.violations() != 0 || len(r.Errors) != 0 {
			t.Errorf("%s: published %d, delivered %d (want %d), violations %d, errors %q",
				sc.name, r.Published, r.Deliveries, want, r.violations(), r.Errors)
		}
	}
}

// TestRunMainWS runs the command with -ws: the URI must be ws://, and a
// run over it reports its deliveries.
func TestRunMainWS(t *testing.T) {
	b := ampstest.NewBroker(t, nil)
	var out, errOut bytes.Buffer
	status := runMain([]string{"-ws", "-url", b.WSURL(), "-scenario", "1to10", "-size", "64", "-count", "50"}, &out, &errOut)
	if status != 0 {
		t.Fatalf("status %d, stderr:\n%s", status, errOut.String())
	}
	var r result
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &r); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	if r.Deliveries != 500 || r.violations() != 0 {
		t.Fatalf("delivered %d (want 500), violations %d", r.Deliveries, r.violations())
	}
}

// TestIdle opens 50 idle connections with -idle and this process as the
// "server" for RSS: one JSON line with both RSS readings and a table row;
// every logon was acknowledged, or dial would have failed the run.
func TestIdle(t *testing.T) {
	b := ampstest.NewBroker(t, nil)
	var out, errOut bytes.Buffer
	status := runMain([]string{"-url", b.TCPURL(), "-idle", "50", "-pid", strconv.Itoa(os.Getpid())}, &out, &errOut)
	if status != 0 {
		t.Fatalf("status %d, stderr:\n%s", status, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one JSON line (no scenarios without -scenario), got:\n%s", out.String())
	}
	var r idleResult
	if err := json.Unmarshal([]byte(lines[0]), &r); err != nil {
		t.Fatalf("line %q: %v", lines[0], err)
	}
	if r.Scenario != "idle" || r.Connections != 50 || r.RSSBeforeKB <= 0 || r.RSSAfterKB <= 0 {
		t.Fatalf("line %q: want scenario idle, 50 connections, positive RSS before and after", lines[0])
	}
	if want := float64(r.RSSAfterKB-r.RSSBeforeKB) / 50; r.KBPerConn != want {
		t.Errorf("kb_per_connection %v, want (after-before)/50 = %v", r.KBPerConn, want)
	}
	if !strings.Contains(errOut.String(), "KB/connection") {
		t.Errorf("no table on stderr:\n%s", errOut.String())
	}
}

// TestIdleConnectionsAreLoggedOn checks that openIdle logs on its
// connections over both encodings and reports no RSS without a pid.
func TestIdleConnectionsAreLoggedOn(t *testing.T) {
	b := ampstest.NewBroker(t, nil)
	for _, uri := range []string{b.TCPURL(), b.WSURL()} {
		tg, err := parseURL(uri)
		if err != nil {
			t.Fatal(err)
		}
		r, closeIdle, err := openIdle(tg, 5, 0, 0)
		if err != nil {
			closeIdle()
			t.Fatalf("%s: %v", uri, err)
		}
		if r.Connections != 5 || r.RSSBeforeKB != 0 || r.KBPerConn != 0 {
			t.Errorf("%s: %+v, want 5 connections and no RSS without a pid", uri, r)
		}
		closeIdle()
	}
}

func TestParseRSS(t *testing.T) {
	kb, err := parseRSS([]byte("Name:\tx\nVmPeak:\t  900 kB\nVmRSS:\t   12345 kB\nThreads: 4\n"), "status")
	if err != nil || kb != 12345 {
		t.Fatalf("got %d, %v; want 12345", kb, err)
	}
	for _, bad := range []string{"Name: x\n", "VmRSS: 12 MB\n", "VmRSS: x kB\n"} {
		if _, err := parseRSS([]byte(bad), "status"); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
