// Command ampsbench is the project's load generator: it drives an AMPS
// broker over TCP in the AMPS stream encoding, or with -ws over WebSocket in
// the official JavaScript client's encoding, checks every delivery, and
// measures the sustainable delivery rate and, given the server's pid, the
// server's CPU time per delivered message.
//
// Usage:
//
//	ampsbench [flags]
//
//	-url tcp://127.0.0.1:9007/amps/json   the broker (tcp:// or ws://)
//	-ws                                   WebSocket: the JS client's framing (a "text"
//	                                      selector, then per message a count frame, a
//	                                      text header frame and a data frame); the
//	                                      default -url becomes ws://127.0.0.1:9008/amps/json
//	-idle N                               open N idle logged-on connections first; with
//	                                      -pid report the server's RSS (VmRSS) before and
//	                                      after, per connection; they stay open until the
//	                                      end, and the scenarios run only if -scenario is given
//	-scenario 1to1,1to10,10to1            shapes to run, in order (also: filter, sow)
//	-size 64,1024,16384                   message body sizes in bytes (at least 63)
//	-duration 3s | -count N               publish for a time, or N messages per publisher
//	-window 1000                          how many messages a subscriber may have
//	                                      outstanding, shared among the publishers
//	-rate N                               latency mode: publish N msg/s in all, flushing
//	                                      each, and report publish→delivery p50/p99/p99.9
//	-pid N                                the server's pid: report its CPU µs per delivery
//	-drain 10s                            how long to wait for the last deliveries
//
// Scenarios: 1to1 is one publisher and one subscriber on a topic; 1to10 is one
// publisher and ten subscribers, each receiving (and counted for) every
// message; 10to1 is ten publishers and one subscriber; filter is one
// publisher and ten subscribers, each with a content filter that matches a
// tenth of the messages, so each message is delivered once; sow is 1to1 on
// a SOW topic (the broker must declare topics matching loadgen/sow/.+ as
// SOW topics keyed on /k, as ampsd's -sample-config shows for SOW topics),
// where each publish replaces one of 1000 records. Each run uses a fresh
// topic, loadgen/SCENARIO/SIZE/NANOSECONDS.
//
// Every message body is a JSON object padded to the size, carrying the
// publisher id, a per-publisher sequence number, a record key and (in
// latency mode) the publish time. Each subscriber checks that it receives
// every publisher's messages it is owed exactly once and in order; a loss,
// duplicate, reordering, message its filter should have stopped, or
// malformed body is printed and makes the exit status 1.
//
// Flow control is end to end: each of P publishers sends at most -window/P
// messages beyond what the slowest subscriber has received from it, so the
// rate measured is what the broker sustains, not how fast its queues fill.
//
// Output: one JSON line per run on standard output, e.g.
//
//	{"scenario":"1to1","size":1024,"published":…,"deliveries":…,"seconds":…,"rate":…,"cpu_us_per_delivery":…,"lost":0,…}
//
// (the engine is internal/loadgen, the AMPS drivers internal/loadgen/amps;
// bench/ runs the same scenarios against NATS and a relay for comparison)
//
// where rate is deliveries per second from the first publish to the last
// delivery, and a table for people on standard error at the end.
//
// Server CPU is utime+stime from /proc/PID/stat, read after the connections
// are set up and again after the last delivery, in clock ticks of 10 ms
// (USER_HZ 100), so runs should last seconds, not milliseconds.
//
// Example, against a broker started separately:
//
//	go run ./cmd/ampsd &
//	go run ./cmd/ampsbench -pid $(pgrep -n ampsd) -duration 3s
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ampsbroker/ampsbroker/internal/loadgen"
	"github.com/ampsbroker/ampsbroker/internal/loadgen/amps"
)

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the parsed flags.
type options struct {
	driver    *amps.Driver
	idle      int // idle connections to open; 0: none
	scenarios []loadgen.Scenario
	sizes     []int
	base      loadgen.Config
}

// defaultWSURL is where cmd/ampsd listens for WebSocket clients.
const defaultWSURL = "ws://127.0.0.1:9008/amps/json"

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("ampsbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "tcp://127.0.0.1:9007/amps/json", "the broker's AMPS URI, tcp://host:port/amps/json")
	subURL := fs.String("sub-url", "", "comma-separated AMPS URIs the subscribers connect to in turn instead of -url (other nodes of a cluster); empty: -url")
	scen := fs.String("scenario", "1to1,1to10,10to1", "comma-separated scenarios: "+strings.Join(loadgen.ScenarioNames(), ", "))
	sizes := fs.String("size", "64,1024,16384", "comma-separated message body sizes in bytes")
	ws := fs.Bool("ws", false, "use the JavaScript client's WebSocket encoding; the default -url becomes "+defaultWSURL)
	idle := fs.Int("idle", 0, "open this many idle logged-on connections and, with -pid, report the server's RSS per connection; the scenarios then run only if -scenario is given")
	o := &options{}
	fs.DurationVar(&o.base.Duration, "duration", 3*time.Second, "how long each run publishes (unless -count)")
	fs.Uint64Var(&o.base.Count, "count", 0, "messages per publisher in each run; 0 means publish for -duration")
	fs.Uint64Var(&o.base.Window, "window", 1000, "messages a subscriber may have outstanding, shared among the publishers (each may be window/publishers ahead of the slowest subscriber)")
	fs.Float64Var(&o.base.Rate, "rate", 0, "latency mode: total messages per second, with publish→delivery percentiles; 0 means as fast as flow control allows")
	fs.IntVar(&o.base.PID, "pid", 0, "the server's process id, to report its CPU time per delivery; 0 means do not")
	fs.DurationVar(&o.base.Drain, "drain", 10*time.Second, "how long to wait for the last deliveries after publishing ends")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *ws && !set["url"] {
		*url = defaultWSURL
	}
	var err error
	if o.driver, err = amps.ParseURL(*url); err != nil {
		return nil, fmt.Errorf("-url: %w", err)
	}
	if *ws && !o.driver.WS {
		return nil, fmt.Errorf("-ws with -url %q: want a ws:// URI", *url)
	}
	for u := range strings.SplitSeq(*subURL, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		d, err := amps.ParseURL(u)
		if err != nil {
			return nil, fmt.Errorf("-sub-url: %w", err)
		}
		if d.WS != o.driver.WS {
			return nil, fmt.Errorf("-sub-url %q: not the encoding of -url %q", u, *url)
		}
		o.base.SubDrivers = append(o.base.SubDrivers, d)
	}
	if *idle < 0 {
		return nil, fmt.Errorf("-idle %d is negative", *idle)
	}
	o.idle = *idle
	if o.idle > 0 && !set["scenario"] {
		*scen = ""
	}
	for _, name := range strings.Split(*scen, ",") {
		if *scen == "" {
			break
		}
		s, ok := loadgen.FindScenario(strings.TrimSpace(name))
		if !ok {
			return nil, fmt.Errorf("-scenario: unknown scenario %q (want one of %s)", name, strings.Join(loadgen.ScenarioNames(), ", "))
		}
		o.scenarios = append(o.scenarios, s)
	}
	for _, v := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < loadgen.MinBodySize {
			return nil, fmt.Errorf("-size: %q is not a size of at least %d bytes", v, loadgen.MinBodySize)
		}
		o.sizes = append(o.sizes, n)
	}
	if o.base.Window == 0 {
		return nil, errors.New("-window must be at least 1")
	}
	if o.base.Count == 0 && o.base.Duration <= 0 {
		return nil, errors.New("-duration must be positive unless -count is given")
	}
	if o.base.Rate < 0 {
		return nil, fmt.Errorf("-rate %v is negative", o.base.Rate)
	}
	if o.base.PID < 0 {
		return nil, fmt.Errorf("-pid %d is negative", o.base.PID)
	}
	if o.base.PID > 0 {
		if _, err := loadgen.ReadCPU(o.base.PID); err != nil {
			return nil, fmt.Errorf("-pid: %w", err)
		}
	}
	o.base.Driver = o.driver
	return o, nil
}

// runMain runs every scenario at every size and returns the exit status:
// 0, 1 if a run saw a violation or failed, 2 for bad flags.
func runMain(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "ampsbench:", err)
		return 2
	}
	status := 0
	if o.idle > 0 {
		ir, closeIdle, err := loadgen.OpenIdle(o.driver, o.idle, o.base.PID, loadgen.IdleSettle)
		defer closeIdle()
		if err != nil {
			fmt.Fprintln(stderr, "ampsbench:", err)
			return 1
		}
		loadgen.WriteJSON(stdout, ir)
		fmt.Fprintln(stderr)
		loadgen.WriteIdleTable(stderr, ir)
	}
	var results []*loadgen.Result
	for _, sc := range o.scenarios {
		for _, size := range o.sizes {
			cfg := o.base
			cfg.Scenario = sc
			cfg.Size = size
			cfg.Topic = loadgen.Topic(sc, size)
			r, err := loadgen.Run(cfg)
			if err != nil {
				fmt.Fprintf(stderr, "ampsbench: %s at %d bytes: %v\n", sc.Name, size, err)
				status = 1
				continue
			}
			if r.Violations() > 0 {
				status = 1
				fmt.Fprintf(stderr, "ampsbench: %s at %d bytes: %d lost, %d duplicated, %d out of order, %d malformed\n",
					sc.Name, size, r.Lost, r.Duplicated, r.Reordered, r.Malformed)
			}
			if len(r.Errors) > 0 {
				status = 1
			}
			for _, e := range r.Errors {
				fmt.Fprintf(stderr, "ampsbench: %s at %d bytes: %s\n", sc.Name, size, e)
			}
			loadgen.WriteJSON(stdout, r)
			results = append(results, r)
		}
	}
	if len(results) > 0 {
		fmt.Fprintln(stderr)
		loadgen.WriteTable(stderr, results)
	}
	return status
}
