package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/ampsbroker/ampsbroker/internal/loadgen"
)

// row is one line of the table: a throughput scenario at a size, or a
// latency run at a size (the idle connections' line is apart).
type row struct {
	kind     string // "throughput" or "latency"
	scenario loadgen.Scenario
	size     int
}

func (r row) String() string {
	if r.kind == "latency" {
		return "latency, " + sizeName(r.size)
	}
	return r.scenario.Name + ", " + sizeName(r.size)
}

// label is the row's first cell in the table; rate is the latency runs'.
func (r row) label(rate float64) string {
	if r.kind == "latency" {
		return "p50/p99/p99.9 µs at " + loadgen.Human(rate) + " msg/s, " + sizeName(r.size)
	}
	return r.String()
}

// sizeName writes a size as 64 B, 1 KiB or 16 KiB.
func sizeName(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return fmt.Sprintf("%d KiB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}

// comparison holds every round's results.
type comparison struct {
	rows []row
	// runs[i][server] are row i's results on server, one per round.
	runs []map[string][]*loadgen.Result
	idle map[string][]*loadgen.IdleResult
	// na[i][server]: row i does not apply to server.
	na   []map[string]bool
	bad  []string // runs that failed or broke a delivery guarantee
	pids map[string][]int
}

// failures lists the runs that failed or broke a delivery guarantee.
func (c *comparison) failures() []string { return c.bad }

// rotated returns servers rotated left by k.
func rotated(servers []string, k int) []string {
	k %= len(servers)
	return append(slices.Clone(servers[k:]), servers[:k]...)
}

// compare builds the servers, runs o.repeats rounds and returns the
// results. An error is for a comparison that could not go on (a build or
// a server that failed); what it measured until then is returned too.
func compare(o *options) (*comparison, error) {
	dir := o.benchDir
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		if dir, err = findModule(wd); err != nil {
			return nil, err
		}
	}
	if err := raiseFileLimit(o.idle); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "loadgen-compare-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	bins, err := build(dir, tmp, o.servers)
	if err != nil {
		return nil, err
	}

	c := &comparison{idle: map[string][]*loadgen.IdleResult{}, pids: map[string][]int{}}
	for _, sc := range o.scenarios {
		for _, size := range o.sizes {
			c.rows = append(c.rows, row{kind: "throughput", scenario: sc, size: size})
		}
	}
	one, _ := loadgen.FindScenario("1to1")
	for _, size := range o.latencySizes {
		c.rows = append(c.rows, row{kind: "latency", scenario: one, size: size})
	}
	for range c.rows {
		c.runs = append(c.runs, map[string][]*loadgen.Result{})
		c.na = append(c.na, map[string]bool{})
	}
	for round := range o.repeats {
		if err := c.round(o, round, bins, tmp); err != nil {
			return c, err
		}
	}
	return c, nil
}

// round starts fresh servers, measures idle connections, runs every row on
// every server and stops the servers.
func (c *comparison) round(o *options, round int, bins map[string]string, tmp string) error {
	servers := map[string]*server{}
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	for _, name := range o.servers {
		s, err := start(name, bins[name], tmp)
		if err != nil {
			return err
		}
		servers[name] = s
		c.pids[name] = append(c.pids[name], s.pid())
	}
	step := 0
	if o.idle > 0 {
		for _, name := range rotated(o.servers, round) {
			s := servers[name]
			r, closeIdle, err := loadgen.OpenIdle(s.driver, o.idle, s.pid(), loadgen.IdleSettle)
			closeIdle()
			if err != nil {
				return fmt.Errorf("round %d, %s: idle: %w", round+1, name, err)
			}
			c.idle[name] = append(c.idle[name], r)
			c.progressf(o, "round %d: %-10s idle %d: %.1f KB/connection", round+1, name, r.Connections, r.KBPerConn)
		}
	}
	for i, rw := range c.rows {
		step++
		for _, name := range rotated(o.servers, round+step) {
			s := servers[name]
			cfg := loadgen.Config{Driver: s.driver, Scenario: rw.scenario, Size: rw.size, Duration: o.duration,
				Window: o.window, PID: s.pid(), Drain: o.drain, Topic: loadgen.Topic(rw.scenario, rw.size)}
			if rw.kind == "latency" {
				cfg.Rate = o.rate
			}
			r, err := loadgen.Run(cfg)
			if errors.Is(err, loadgen.ErrNotApplicable) {
				c.na[i][name] = true
				continue
			}
			if err != nil {
				c.bad = append(c.bad, fmt.Sprintf("round %d, %s, %s at %d bytes: %v", round+1, name, rw.scenario.Name, rw.size, err))
				if err := s.alive(); err != nil {
					return err
				}
				continue
			}
			c.runs[i][name] = append(c.runs[i][name], r)
			if r.Violations() > 0 || len(r.Errors) > 0 || r.Deliveries != r.Expected(rw.scenario) {
				c.bad = append(c.bad, fmt.Sprintf("round %d, %s, %s at %d bytes: published %d, delivered %d of %d; %d lost, %d duplicated, %d out of order, %d malformed; %s",
					round+1, name, rw.scenario.Name, rw.size, r.Published, r.Deliveries, r.Expected(rw.scenario),
					r.Lost, r.Duplicated, r.Reordered, r.Malformed, strings.Join(r.Errors, "; ")))
			}
			c.progressf(o, "round %d: %-10s %-8s %6d B: %s deliveries/s, %.2f µs CPU/delivery, p99 %.0f µs",
				round+1, name, rw.scenario.Name, rw.size, loadgen.Human(r.Rate), r.CPUus, r.P99us)
		}
	}
	return nil
}

func (c *comparison) progressf(o *options, format string, args ...any) {
	if o.progress != nil {
		fmt.Fprintf(o.progress, format+"\n", args...)
	}
}

// median returns the median of vs (the mean of the middle two for an even
// count); 0 for none.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(vs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// medianOf returns the median of f over rs.
func medianOf(rs []*loadgen.Result, f func(*loadgen.Result) float64) float64 {
	var vs []float64
	for _, r := range rs {
		vs = append(vs, f(r))
	}
	return median(vs)
}

// display names of the servers in the table.
var display = map[string]string{serverRelay: "relay (ceiling)", serverNATS: "NATS 2.15", serverAMPS: "ampsbroker"}

// ratio formats a/b, or – when either is missing.
func ratio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// writeTable writes the medians as a Markdown table: per server deliveries
// per second and, in brackets, server CPU µs per delivery; for latency
// rows p50/p99/p99.9 in µs; for idle connections server RSS KB per
// connection; then ampsbroker's ratios to NATS and to the relay (rate and
// CPU, p99 latency, KB per connection).
func (c *comparison) writeTable(w io.Writer, o *options) {
	fmt.Fprintf(w, "| scenario |")
	for _, s := range o.servers {
		fmt.Fprintf(w, " %s |", display[s])
	}
	refs := []string{}
	if slices.Contains(o.servers, serverAMPS) {
		for _, s := range []string{serverNATS, serverRelay} {
			if slices.Contains(o.servers, s) {
				refs = append(refs, s)
				fmt.Fprintf(w, " ampsbroker/%s rate | ampsbroker/%s CPU |", s, s)
			}
		}
	}
	fmt.Fprintln(w)
	fmt.Fprint(w, "|---|")
	for range len(o.servers) + 2*len(refs) {
		fmt.Fprint(w, "---|")
	}
	fmt.Fprintln(w)
	for i, rw := range c.rows {
		fmt.Fprintf(w, "| %s |", rw.label(o.rate))
		for _, s := range o.servers {
			rs := c.runs[i][s]
			switch {
			case c.na[i][s]:
				fmt.Fprint(w, " n/a |")
			case len(rs) == 0:
				fmt.Fprint(w, " failed |")
			case rw.kind == "latency":
				fmt.Fprintf(w, " %.0f / %.0f / %.0f |", medianOf(rs, p50), medianOf(rs, p99), medianOf(rs, p999))
			default:
				fmt.Fprintf(w, " %s (%.2f) |", loadgen.Human(medianOf(rs, rate)), medianOf(rs, cpu))
			}
		}
		for _, ref := range refs {
			a, b := c.runs[i][serverAMPS], c.runs[i][ref]
			if rw.kind == "latency" {
				fmt.Fprintf(w, " p99 %s | |", ratio(medianOf(a, p99), medianOf(b, p99)))
				continue
			}
			fmt.Fprintf(w, " %s | %s |", ratio(medianOf(a, rate), medianOf(b, rate)), ratio(medianOf(a, cpu), medianOf(b, cpu)))
		}
		fmt.Fprintln(w)
	}
	if o.idle > 0 {
		fmt.Fprintf(w, "| RSS KB per idle connection (%d) |", o.idle)
		kb := map[string]float64{}
		for _, s := range o.servers {
			var vs []float64
			for _, r := range c.idle[s] {
				vs = append(vs, r.KBPerConn)
			}
			kb[s] = median(vs)
			if len(vs) == 0 {
				fmt.Fprint(w, " failed |")
				continue
			}
			fmt.Fprintf(w, " %.1f |", kb[s])
		}
		for _, ref := range refs {
			fmt.Fprintf(w, " %s | |", ratio(kb[serverAMPS], kb[ref]))
		}
		fmt.Fprintln(w)
	}
}

func rate(r *loadgen.Result) float64 { return r.Rate }
func cpu(r *loadgen.Result) float64  { return r.CPUus }
func p50(r *loadgen.Result) float64  { return r.P50us }
func p99(r *loadgen.Result) float64  { return r.P99us }
func p999(r *loadgen.Result) float64 { return r.P999us }
