// Command compare runs the same load against ampsbroker (cmd/ampsd), a
// NATS server (driven by nats.go) and a relay with no logic (package
// relay, the ceiling), each a child process whose CPU time is read from
// /proc, and prints one table of medians with ratios.
//
// Usage (from the bench directory, whose go.mod pins the NATS versions):
//
//	go run ./cmd/compare [flags]
//
//	-repeats 2                       rounds; each starts fresh servers
//	-duration 2s                     how long each throughput run publishes
//	-scenario 1to1,1to10,10to1       throughput scenarios (filter and sow run
//	                                 on ampsbroker only; the others show n/a)
//	-size 64,1024,16384              body sizes of the throughput runs
//	-latency-size 1024,16384         body sizes of the latency runs (1to1 at
//	                                 -rate); empty for none
//	-rate 10000                      messages per second of the latency runs
//	-idle 10000                      idle connections whose RSS is measured; 0 for none
//	-servers relay,nats,ampsbroker   which servers to run
//	-window 1000                     flow-control window, as ampsbench's
//
// Each round starts the three servers, measures idle connections first (on
// fresh processes, so that RSS grows only by the connections), then runs
// every scenario and size and then the latency runs, each on all servers
// in turn before the next (interleaved, the order rotating, so that a
// change in the machine's load touches every server alike), each run on a
// fresh topic; the servers are reused within the round, as a broker in
// service is, and stopped at its end. A run with a lost, duplicated,
// reordered or malformed message, or that fails, is reported and makes the
// exit status 1.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ampsbroker/ampsbroker/internal/loadgen"
)

// Defaults of the flags.
const (
	defaultRepeats  = 2
	defaultDuration = 2 * time.Second
	defaultRate     = 10000 // messages per second of a latency run, as issue 12 measures
	defaultIdle     = 10000
	defaultWindow   = 1000
	defaultDrain    = 20 * time.Second
)

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the parsed flags.
type options struct {
	benchDir     string
	repeats      int
	duration     time.Duration
	scenarios    []loadgen.Scenario
	sizes        []int
	latencySizes []int
	rate         float64
	idle         int
	servers      []string
	window       uint64
	drain        time.Duration
	progress     io.Writer // a line per run; nil: none
}

func parseSizes(flagName, s string) ([]int, error) {
	var sizes []int
	for _, v := range strings.Split(s, ",") {
		if strings.TrimSpace(v) == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < loadgen.MinBodySize {
			return nil, fmt.Errorf("-%s: %q is not a size of at least %d bytes", flagName, v, loadgen.MinBodySize)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{progress: stderr}
	fs.StringVar(&o.benchDir, "benchdir", "", "the bench module's directory; default: the nearest go.mod above the working directory")
	fs.IntVar(&o.repeats, "repeats", defaultRepeats, "rounds; each starts fresh servers and runs everything once")
	fs.DurationVar(&o.duration, "duration", defaultDuration, "how long each run publishes")
	scen := fs.String("scenario", "1to1,1to10,10to1", "throughput scenarios: "+strings.Join(loadgen.ScenarioNames(), ", "))
	sizes := fs.String("size", "64,1024,16384", "body sizes of the throughput runs, bytes")
	lat := fs.String("latency-size", "1024,16384", "body sizes of the latency runs (1to1 at -rate); empty for none")
	fs.Float64Var(&o.rate, "rate", defaultRate, "messages per second of a latency run")
	fs.IntVar(&o.idle, "idle", defaultIdle, "idle connections whose server RSS is measured; 0 for none")
	srv := fs.String("servers", strings.Join(allServers, ","), "servers to run: "+strings.Join(allServers, ", "))
	fs.Uint64Var(&o.window, "window", defaultWindow, "messages a subscriber may have outstanding (flow control)")
	fs.DurationVar(&o.drain, "drain", defaultDrain, "how long to wait for the last deliveries of a run")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if o.repeats < 1 || o.duration <= 0 || o.rate <= 0 || o.idle < 0 || o.window == 0 {
		return nil, fmt.Errorf("-repeats %d, -duration %v, -rate %v, -window %d must be positive and -idle %d not negative",
			o.repeats, o.duration, o.rate, o.window, o.idle)
	}
	for _, name := range strings.Split(*scen, ",") {
		if strings.TrimSpace(name) == "" {
			continue
		}
		s, ok := loadgen.FindScenario(strings.TrimSpace(name))
		if !ok {
			return nil, fmt.Errorf("-scenario: unknown scenario %q (want one of %s)", name, strings.Join(loadgen.ScenarioNames(), ", "))
		}
		o.scenarios = append(o.scenarios, s)
	}
	var err error
	if o.sizes, err = parseSizes("size", *sizes); err != nil {
		return nil, err
	}
	if o.latencySizes, err = parseSizes("latency-size", *lat); err != nil {
		return nil, err
	}
	for _, s := range strings.Split(*srv, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(allServers, s) {
			return nil, fmt.Errorf("-servers: unknown server %q (want %s)", s, strings.Join(allServers, ", "))
		}
		o.servers = append(o.servers, s)
	}
	return o, nil
}

func runMain(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "compare:", err)
		return 2
	}
	c, err := compare(o)
	if c != nil {
		c.writeTable(stdout, o)
	}
	if err != nil {
		fmt.Fprintln(stderr, "compare:", err)
		return 1
	}
	if bad := c.failures(); len(bad) > 0 {
		for _, f := range bad {
			fmt.Fprintln(stderr, "compare:", f)
		}
		return 1
	}
	return 0
}
