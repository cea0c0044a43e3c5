package loadgen

import (
	"strings"
	"testing"
)

func TestBodyRoundTrip(t *testing.T) {
	for _, size := range []int{MinBodySize, 64, 1024, 16384} {
		b := newBody(42, size)
		setBody(b, 123456789, 1_234_567_890_123)
		if len(b) != size {
			t.Fatalf("body of size %d has %d bytes", size, len(b))
		}
		pub, seq, ts, err := parseBody(b, size)
		if err != nil || pub != 42 || seq != 123456789 || ts != 1_234_567_890_123 {
			t.Fatalf("parseBody(%q) = %d, %d, %d, %v", b, pub, seq, ts, err)
		}
	}
}

func TestParseBodyRejects(t *testing.T) {
	good := newBody(1, 64)
	bad := append([]byte(nil), good...)
	bad[bodySeqOff+3] = 'x'
	noMarker := append([]byte(nil), good...)
	noMarker[bodyPubOff] = '0'
	wrongKey := append([]byte(nil), good...)
	wrongKey[bodyKeyOff+1] = '5'
	for name, tc := range map[string]struct {
		b    []byte
		size int
	}{
		"wrong size": {good, 65},
		"bad digit":  {bad, 64},
		"wrong key":  {wrongKey, 64},
		"no marker":  {noMarker, 64},
		"not ours":   {[]byte(strings.Repeat("y", 64)), 64},
		"truncated":  {good[:60], 60},
	} {
		if _, _, _, err := parseBody(tc.b, tc.size); err == nil {
			t.Errorf("%s: parseBody accepted %q", name, tc.b)
		}
	}
}

// feed gives the checker the (publisher, sequence) pairs in order.
func feed(c *checker, msgs ...[2]int) {
	for _, m := range msgs {
		c.receive(m[0], uint64(m[1]))
	}
}

func TestCheckerClean(t *testing.T) {
	c := newChecker(2, 1, 0)
	feed(c, [2]int{0, 0}, [2]int{1, 0}, [2]int{0, 1}, [2]int{1, 1}, [2]int{0, 2})
	c.finish([]uint64{3, 2})
	if c.violations() != 0 || c.delivered != 5 || len(c.errs) != 0 {
		t.Fatalf("clean stream: violations %d, delivered %d, errs %q", c.violations(), c.delivered, c.errs)
	}
}

func TestCheckerViolations(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		msgs                      [][2]int
		sent                      []uint64
		lost, dup, reordered, bad uint64
	}{
		{"duplicate", [][2]int{{0, 0}, {0, 1}, {0, 1}, {0, 2}}, []uint64{3}, 0, 1, 0, 0},
		{"old duplicate", [][2]int{{0, 0}, {0, 1}, {0, 2}, {0, 0}}, []uint64{3}, 0, 1, 0, 0},
		{"gap", [][2]int{{0, 0}, {0, 3}}, []uint64{4}, 2, 0, 0, 0},
		{"tail loss", [][2]int{{0, 0}, {0, 1}}, []uint64{5}, 3, 0, 0, 0},
		{"nothing arrived", nil, []uint64{2}, 2, 0, 0, 0},
		{"reordered", [][2]int{{0, 0}, {0, 2}, {0, 1}, {0, 3}}, []uint64{4}, 0, 0, 1, 0},
		{"loss on one publisher only", [][2]int{{0, 0}, {1, 0}, {1, 2}, {0, 1}}, []uint64{2, 3}, 1, 0, 0, 0},
		{"unknown publisher", [][2]int{{0, 0}, {7, 0}}, []uint64{1}, 0, 0, 0, 1},
	} {
		c := newChecker(len(tc.sent), 1, 0)
		feed(c, tc.msgs...)
		c.finish(tc.sent)
		if c.lost != tc.lost || c.dup != tc.dup || c.reordered != tc.reordered || c.bad != tc.bad {
			t.Errorf("%s: lost %d dup %d reordered %d bad %d, want %d %d %d %d",
				tc.name, c.lost, c.dup, c.reordered, c.bad, tc.lost, tc.dup, tc.reordered, tc.bad)
		}
		if c.violations() == 0 || len(c.errs) == 0 {
			t.Errorf("%s: no violation reported", tc.name)
		}
	}
}

// TestCheckerPartition checks a subscriber owed every third message from
// seq 1 on (a filter's share): a clean stream passes, and each kind of
// violation is counted in owed messages.
func TestCheckerPartition(t *testing.T) {
	c := newChecker(1, 3, 1)
	if d := c.done(0); d != 1 {
		t.Fatalf("done before anything = %d, want 1", d)
	}
	feed(c, [2]int{0, 1}, [2]int{0, 4}, [2]int{0, 7})
	if d := c.done(0); d != 10 {
		t.Fatalf("done after seq 7 = %d, want 10", d)
	}
	c.finish([]uint64{10})
	if c.violations() != 0 || c.delivered != 3 {
		t.Fatalf("clean partition: violations %d (%q), delivered %d", c.violations(), c.errs, c.delivered)
	}
	for _, tc := range []struct {
		name                      string
		msgs                      [][2]int
		sent                      uint64
		lost, dup, reordered, bad uint64
	}{
		{"gap of two owed", [][2]int{{0, 1}, {0, 10}}, 11, 2, 0, 0, 0},
		{"tail loss", [][2]int{{0, 1}}, 8, 2, 0, 0, 0},
		{"not owed", [][2]int{{0, 1}, {0, 2}, {0, 4}}, 5, 0, 0, 0, 1},
		{"duplicate", [][2]int{{0, 1}, {0, 4}, {0, 4}}, 5, 0, 1, 0, 0},
		{"reordered", [][2]int{{0, 1}, {0, 7}, {0, 4}}, 8, 0, 0, 1, 0},
	} {
		c := newChecker(1, 3, 1)
		feed(c, tc.msgs...)
		c.finish([]uint64{tc.sent})
		if c.lost != tc.lost || c.dup != tc.dup || c.reordered != tc.reordered || c.bad != tc.bad || len(c.errs) == 0 {
			t.Errorf("%s: lost %d dup %d reordered %d bad %d (errs %q), want %d %d %d %d",
				tc.name, c.lost, c.dup, c.reordered, c.bad, c.errs, tc.lost, tc.dup, tc.reordered, tc.bad)
		}
	}
}

func TestParseStat(t *testing.T) {
	// The command name may hold spaces and parentheses; utime 250 and
	// stime 50 ticks are 3 s.
	line := "1234 (amps d) (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 100 0 0\n"
	d, err := parseStat([]byte(line), "stat")
	if err != nil || d.Seconds() != 3 {
		t.Fatalf("parseStat = %v, %v; want 3s", d, err)
	}
	if _, err := parseStat([]byte("1234 (x) S 1 2"), "stat"); err == nil {
		t.Fatal("parseStat accepted a short line")
	}
}

func TestPercentile(t *testing.T) {
	lat := make([]int64, 1000)
	for i := range lat {
		lat[i] = int64(i+1) * 1000 // 1..1000 µs
	}
	if p := percentile(lat, 0.5); p != 500 {
		t.Errorf("p50 = %v, want 500", p)
	}
	if p := percentile(lat, 0.99); p != 990 {
		t.Errorf("p99 = %v, want 990", p)
	}
	if p := percentile(lat, 0.999); p != 999 {
		t.Errorf("p99.9 = %v, want 999", p)
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
