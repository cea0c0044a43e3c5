package main

import (
	"strings"
	"testing"
)

func TestBodyRoundTrip(t *testing.T) {
	for _, size := range []int{minBodySize, 64, 1024, 16384} {
		b := newBody(42, size)
		setBody(b, 123456789, 1_700_000_000_123_456_789)
		if len(b) != size {
			t.Fatalf("body of size %d has %d bytes", size, len(b))
		}
		pub, seq, ts, err := parseBody(b, size)
		if err != nil || pub != 42 || seq != 123456789 || ts != 1_700_000_000_123_456_789 {
			t.Fatalf("parseBody(%q) = %d, %d, %d, %v", b, pub, seq, ts, err)
		}
	}
}

func TestParseBodyRejects(t *testing.T) {
	good := newBody(1, 64)
	bad := append([]byte(nil), good...)
	bad[bodySeqOff+3] = 'x'
	for name, tc := range map[string]struct {
		b    []byte
		size int
	}{
		"wrong size": {good, 65},
		"bad digit":  {bad, 64},
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
	c := newChecker(2)
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
		c := newChecker(len(tc.sent))
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
