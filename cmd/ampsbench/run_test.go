package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/internal/loadgen"
)

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
		var r loadgen.Result
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

// TestSubURL: -sub-url puts the subscribers on another broker: on the
// publishers' broker the run is clean; on a broker the publishers' does
// not reach, nothing arrives and the run fails.
func TestSubURL(t *testing.T) {
	a, b := ampstest.NewBroker(t, nil), ampstest.NewBroker(t, nil)
	for _, tc := range []struct {
		sub  string
		want int
	}{{a.TCPURL(), 0}, {b.TCPURL(), 1}} {
		var errOut bytes.Buffer
		status := runMain([]string{"-url", a.TCPURL(), "-sub-url", tc.sub, "-scenario", "1to1", "-size", "64", "-count", "10", "-drain", "200ms"}, &bytes.Buffer{}, &errOut)
		if status != tc.want {
			t.Errorf("-sub-url %s: status %d, want %d; stderr:\n%s", tc.sub, status, tc.want, errOut.String())
		}
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
		{"-sub-url", "http://127.0.0.1:1/amps/json"},
		{"-sub-url", "ws://127.0.0.1:1/amps/json"},
		{"extra"},
	} {
		var errOut bytes.Buffer
		if status := runMain(args, &bytes.Buffer{}, &errOut); status != 2 {
			t.Errorf("%q: status %d, want 2", args, status)
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
	var r loadgen.Result
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &r); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	if r.Deliveries != 500 || r.Violations() != 0 {
		t.Fatalf("delivered %d (want 500), violations %d", r.Deliveries, r.Violations())
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
	var r loadgen.IdleResult
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

// TestRunMainFilterSOW runs the filter and sow scenarios through the
// command against a broker that declares the SOW topics: every message is
// delivered once (to the one filtered subscriber owed it).
func TestRunMainFilterSOW(t *testing.T) {
	b := ampstest.NewBroker(t, &ampstest.Options{Broker: &broker.Options{SOWTopics: []broker.SOWTopic{
		{Name: "loadgen-sow", Pattern: loadgen.SOWTopicPattern, Keys: []string{loadgen.SOWKeyField}},
	}}})
	var out, errOut bytes.Buffer
	status := runMain([]string{"-url", b.TCPURL(), "-scenario", "filter,sow", "-size", "64", "-count", "200"}, &out, &errOut)
	if status != 0 {
		t.Fatalf("status %d, stderr:\n%s", status, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 JSON lines, got:\n%s", out.String())
	}
	for _, l := range lines {
		var r loadgen.Result
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if r.Published != 200 || r.Deliveries != 200 || r.Violations() != 0 {
			t.Errorf("line %q: want 200 published and delivered, no violation", l)
		}
	}
}
