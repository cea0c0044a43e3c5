package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Limits of one driver run.
const (
	// driverTimeout is the hard limit driver.js applies to itself (its
	// --timeout flag). The slowest scenario holds heartbeats for a few
	// seconds; the rest take well under a second on a 2-core machine.
	driverTimeout = 60 * time.Second

	// driverKillGrace is how long past driverTimeout the Go side waits before
	// it kills the node process itself, in case the driver's own timer is
	// stuck.
	driverKillGrace = 15 * time.Second

	// maxDriverLine bounds one JSON line of driver output.
	maxDriverLine = 16 << 20
)

// installHint is the remedy printed whenever a tool or the npm packages are
// missing. The tests fail rather than skip: a skipped interop test would
// report a green run that proved nothing.
const installHint = "run the README test command (scripts/test.sh) which runs npm ci"

// nodePath returns the node binary, failing the test when there is none.
func nodePath(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"node", "nodejs"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("node not found on PATH: %s", installHint)
	return ""
}

// requireNodeModules fails the test unless npm ci has installed the pinned
// amps client next to driver.js.
func requireNodeModules(t testing.TB) {
	t.Helper()
	p := filepath.Join("node_modules", "amps", "package.json")
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("interop/node_modules is missing the amps client (%v): %s", err, installHint)
	}
	var pkg struct{ Version string }
	if err := json.Unmarshal(raw, &pkg); err != nil {
		t.Fatalf("reading %s: %v", p, err)
	}
	if pkg.Version != pinnedAMPSVersion {
		t.Fatalf("interop/node_modules has amps %q, want %q: %s", pkg.Version, pinnedAMPSVersion, installHint)
	}
}

// pinnedAMPSVersion is the official JavaScript client the tests drive; the
// wire spec's [verified] facts were checked against this exact build.
const pinnedAMPSVersion = "5.3.4-0.378635.60b2fcc"

// event is one JSON line printed by driver.js.
type event map[string]any

// name is the line's "event" field.
func (e event) name() string { s, _ := e["event"].(string); return s }

// str returns field k as a string ("" when absent or not a string).
func (e event) str(k string) string { s, _ := e[k].(string); return s }

// num returns field k as a float64 (JSON numbers decode so).
func (e event) num(k string) float64 { f, _ := e[k].(float64); return f }

// driver is one running node driver.js process. Its stdout is parsed into
// events by a goroutine that ends when the process closes stdout; Wait (or
// the test's cleanup) reaps the process.
type driver struct {
	t        testing.TB
	scenario string
	cmd      *exec.Cmd
	cancel   context.CancelFunc
	events   chan event // every parsed line, closed at EOF
	stderr   bytes.Buffer

	mu   sync.Mutex
	seen []event // lines consumed so far, for failure messages

	waitOnce sync.Once
	waitErr  error
	readDone chan struct{}
}

// startDriver starts driver.js with scenario and flags against uri. env adds
// environment variables (KEY=VALUE). The process is killed at test end if it
// is still running.
func startDriver(t testing.TB, uri string, env []string, scenario string, flags ...string) *driver {
	t.Helper()
	node := nodePath(t)
	requireNodeModules(t)
	args := []string{"driver.js", scenario, "--uri", uri,
		"--timeout", strconv.Itoa(int(driverTimeout / time.Second))}
	args = append(args, flags...)
	ctx, cancel := context.WithTimeout(context.Background(), driverTimeout+driverKillGrace)
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	d := &driver{t: t, scenario: scenario, cmd: cmd, cancel: cancel,
		events: make(chan event, 1024), readDone: make(chan struct{})}
	cmd.Stderr = &d.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatalf("driver %s: stdout pipe: %v", scenario, err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("driver %s: starting %s: %v", scenario, node, err)
	}
	go d.read(stdout)
	// By cleanup time the test no longer needs the process: a passing test
	// has already reaped it, a failed one may have left it waiting.
	t.Cleanup(func() {
		d.cancel()
		d.wait()
	})
	return d
}

// read parses stdout lines until EOF. Unparseable lines become
// {"event":"raw","line":...} so nothing the driver says is lost.
func (d *driver) read(r io.Reader) {
	defer close(d.readDone)
	defer close(d.events)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxDriverLine)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.name() == "" {
			e = event{"event": "raw", "line": sc.Text()}
		}
		d.events <- e
	}
	if err := sc.Err(); err != nil {
		d.events <- event{"event": "raw", "line": "reading driver output: " + err.Error()}
	}
}

// wait reaps the process once; it kills it first if it is still running
// past its deadline (CommandContext does that).
func (d *driver) wait() error {
	d.waitOnce.Do(func() {
		// Consume whatever the reader still has so it can reach EOF.
		go func() {
			for e := range d.events {
				d.record(e)
			}
		}()
		<-d.readDone
		d.waitErr = d.cmd.Wait()
		d.cancel()
	})
	return d.waitErr
}

func (d *driver) record(e event) {
	d.mu.Lock()
	d.seen = append(d.seen, e)
	d.mu.Unlock()
}

// transcript renders what the driver printed, for failure messages.
func (d *driver) transcript() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b strings.Builder
	for _, e := range d.seen {
		line, _ := json.Marshal(e)
		if len(line) > 2000 {
			line = append(line[:2000], "..."...)
		}
		fmt.Fprintf(&b, "  %s\n", line)
	}
	if s := strings.TrimSpace(d.stderr.String()); s != "" && d.cmd.ProcessState != nil {
		fmt.Fprintf(&b, "  stderr: %s\n", s)
	}
	return b.String()
}

// next returns the next event, or fails the test when the driver's output
// ended first.
func (d *driver) next() event {
	d.t.Helper()
	e, ok := <-d.events
	if !ok {
		d.wait()
		d.t.Fatalf("driver %s ended before the expected event; exit %v; output:\n%s", d.scenario, d.waitErr, d.transcript())
	}
	d.record(e)
	return e
}

// waitEvent returns the first event named name, failing the test when the
// driver ends first or reports its result instead.
func (d *driver) waitEvent(name string) event {
	d.t.Helper()
	for {
		e := d.next()
		if e.name() == name {
			return e
		}
		if e.name() == "result" {
			d.wait()
			d.t.Fatalf("driver %s finished while the test waited for %q; exit %v; output:\n%s", d.scenario, name, d.waitErr, d.transcript())
		}
	}
}

// result waits for the driver to exit and returns its result line and all
// events. It fails the test unless the driver exited 0 with "ok":true.
func (d *driver) result() (event, []event) {
	d.t.Helper()
	var res event
	for e := range d.events {
		d.record(e)
		if e.name() == "result" {
			res = e
		}
	}
	err := d.wait()
	d.mu.Lock()
	all := append([]event(nil), d.seen...)
	d.mu.Unlock()
	if res == nil {
		d.t.Fatalf("driver %s printed no result line; exit %v; output:\n%s", d.scenario, err, d.transcript())
	}
	if ok, _ := res["ok"].(bool); !ok || err != nil {
		var exit *exec.ExitError
		code := ""
		if errors.As(err, &exit) {
			code = fmt.Sprintf(" (exit code %d)", exit.ExitCode())
		}
		d.t.Fatalf("driver %s failed%s: %s\noutput:\n%s", d.scenario, code, res.str("error"), d.transcript())
	}
	return res, all
}

// runDriver runs a scenario to completion and returns its result line.
func runDriver(t testing.TB, uri string, env []string, scenario string, flags ...string) event {
	t.Helper()
	res, _ := startDriver(t, uri, env, scenario, flags...).result()
	return res
}
