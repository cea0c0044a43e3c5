package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ampsbroker/ampsbroker/internal/loadgen"
)

// TestCompareEndToEnd builds the three servers, runs every scenario at two
// sizes, a latency run and idle connections on each with tiny durations,
// and checks that every server delivered everything it was owed with no
// violation, that filter and sow ran on ampsbroker only, and that the
// table has a line per row.
func TestCompareEndToEnd(t *testing.T) {
	var progress bytes.Buffer
	o, err := parseFlags([]string{"-repeats", "1", "-duration", "200ms", "-scenario", strings.Join(loadgen.ScenarioNames(), ","),
		"-size", "64,1024", "-latency-size", "1024", "-rate", "2000", "-idle", "20"}, &progress)
	if err != nil {
		t.Fatal(err)
	}
	o.progress = &progress
	c, err := compare(o)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	if bad := c.failures(); len(bad) > 0 {
		t.Fatalf("failed runs:\n%s", strings.Join(bad, "\n"))
	}
	for i, rw := range c.rows {
		for _, s := range allServers {
			needsAMPS := rw.scenario.Needs != 0
			if needsAMPS && s != serverAMPS {
				if !c.na[i][s] || len(c.runs[i][s]) != 0 {
					t.Errorf("%s on %s: ran, want not applicable", rw, s)
				}
				continue
			}
			rs := c.runs[i][s]
			if len(rs) != 1 {
				t.Errorf("%s on %s: %d results, want 1", rw, s, len(rs))
				continue
			}
			r := rs[0]
			if r.Published == 0 || r.Deliveries != r.Expected(rw.scenario) || r.Violations() != 0 || len(r.Errors) != 0 {
				t.Errorf("%s on %s: published %d, delivered %d of %d, violations %d, errors %q",
					rw, s, r.Published, r.Deliveries, r.Expected(rw.scenario), r.Violations(), r.Errors)
			}
			if rw.kind == "latency" && !(r.P50us > 0 && r.P99us >= r.P50us) {
				t.Errorf("%s on %s: p50 %v p99 %v", rw, s, r.P50us, r.P99us)
			}
		}
	}
	for _, s := range allServers {
		if len(c.idle[s]) != 1 || c.idle[s][0].Connections != 20 || c.idle[s][0].RSSAfterKB <= 0 {
			t.Errorf("%s: idle results %+v, want one of 20 connections with the server's RSS", s, c.idle[s])
		}
	}
	var table bytes.Buffer
	c.writeTable(&table, o)
	if got, want := strings.Count(table.String(), "\n"), 2+len(c.rows)+1; got != want {
		t.Errorf("table has %d lines, want %d:\n%s", got, want, table.String())
	}
}

// TestFlags checks that bad flags are refused with status 2.
func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-repeats", "0"},
		{"-scenario", "2to2"},
		{"-size", "10"},
		{"-latency-size", "x"},
		{"-servers", "kafka"},
		{"-idle", "-1"},
		{"extra"},
	} {
		if status := runMain(args, &bytes.Buffer{}, &bytes.Buffer{}); status != 2 {
			t.Errorf("%q: status %d, want 2", args, status)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		vs   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1}, 3}, {[]float64{9, 1, 4}, 4}} {
		if got := median(tc.vs); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.vs, got, tc.want)
		}
	}
}
