package stresstest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/listener"
)

// startBroker starts a test broker whose TCP listener has tcpOpts; it
// stops, checking that it drains, when the test ends or at sb.Stop().
func startBroker(t testing.TB, opts *broker.Options, tcpOpts *listener.TCPOptions) *ampstest.Broker {
	t.Helper()
	return ampstest.NewBroker(t, &ampstest.Options{Broker: opts, TCP: tcpOpts})
}

// dialClient connects a test client to the TCP transport at addr; none of
// its operations waits past limit.
func dialClient(addr string, limit time.Time) (*ampstest.Conn, error) {
	return ampstest.DialConn("tcp://"+addr+"/amps/json", &ampstest.DialOptions{Deadline: limit})
}

// logonOK logs c on as name and requires success.
func logonOK(c *ampstest.Conn, name string) error {
	_, err := c.Logon(name)
	return err
}

// preflightStatus sends the HTTP preflight for target and returns the
// answer's status line.
func preflightStatus(c *ampstest.Conn, target string) (string, error) {
	resp, err := c.Preflight(target, nil)
	if err != nil {
		return "", err
	}
	return resp.Proto + " " + resp.Status, nil
}

// waitFor polls cond every 20 ms until it holds or within passes.
func waitFor(within time.Duration, cond func() bool) bool {
	end := time.Now().Add(within)
	for {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// crew runs goroutines and collects their errors. Its owner calls Wait.
type crew struct {
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

// Go runs f on a goroutine; a non-nil error is kept, prefixed by name.
func (c *crew) Go(name string, f func() error) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := f(); err != nil {
			c.fail(fmt.Errorf("%s: %w", name, err))
		}
	}()
}

func (c *crew) fail(err error) {
	c.mu.Lock()
	c.errs = append(c.errs, err)
	c.mu.Unlock()
}

// Wait waits for every goroutine and returns the errors they reported.
func (c *crew) Wait() []error {
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.errs)
}

// outcomes counts what happened to each kind of attacker, for the test log.
type outcomes struct {
	mu sync.Mutex
	m  map[string]map[string]int
}

func (o *outcomes) add(attack, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = make(map[string]map[string]int)
	}
	if o.m[attack] == nil {
		o.m[attack] = make(map[string]int)
	}
	o.m[attack][outcome]++
}

// log writes one line per attack: outcome × count.
func (o *outcomes) log(t testing.TB) {
	o.mu.Lock()
	defer o.mu.Unlock()
	attacks := make([]string, 0, len(o.m))
	for a := range o.m {
		attacks = append(attacks, a)
	}
	slices.Sort(attacks)
	for _, a := range attacks {
		var parts []string
		for out, n := range o.m[a] {
			parts = append(parts, fmt.Sprintf("%s ×%d", out, n))
		}
		slices.Sort(parts)
		t.Logf("  %-34s %s", a, strings.Join(parts, ", "))
	}
}

// memSample is the process's memory at one moment.
type memSample struct {
	rss       uint64 // VmRSS: resident memory of the whole test process
	heapInuse uint64 // runtime.MemStats.HeapInuse
}

// readMem samples the process; runGC first collects garbage so HeapInuse
// shows what is still referenced.
func readMem(runGC bool) memSample {
	if runGC {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{rss: vmRSS(), heapInuse: ms.HeapInuse}
}

// vmRSS returns the VmRSS line of /proc/self/status in bytes, or 0 where
// there is no /proc (the heap figures still apply there).
func vmRSS() uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// memPeak samples memory every interval until stopped and keeps the peak.
type memPeak struct {
	stop chan struct{}
	done chan struct{}
	peak memSample
}

func watchMemory(interval time.Duration) *memPeak {
	p := &memPeak{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			s := readMem(false)
			p.peak.rss = max(p.peak.rss, s.rss)
			p.peak.heapInuse = max(p.peak.heapInuse, s.heapInuse)
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
	return p
}

// Stop stops sampling and returns the peak.
func (p *memPeak) Stop() memSample {
	close(p.stop)
	<-p.done
	return p.peak
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

// growth is after-before, or 0 when memory shrank.
func growth(before, after uint64) uint64 {
	if after < before {
		return 0
	}
	return after - before
}

// checkGoroutines waits up to within for the goroutine count to fall back
// to baseline and fails with a dump of the goroutines otherwise.
func checkGoroutines(t testing.TB, baseline int, within time.Duration) {
	t.Helper()
	if waitFor(within, func() bool { return runtime.NumGoroutine() <= baseline }) {
		t.Logf("goroutines: %d after shutdown, baseline %d", runtime.NumGoroutine(), baseline)
		return
	}
	t.Errorf("%d goroutines %v after shutdown, baseline %d; goroutines:\n%s",
		runtime.NumGoroutine(), within, baseline, goroutineDump())
}

// goroutineDump returns the stacks of all goroutines, grouped.
func goroutineDump() string {
	var buf bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&buf, 1)
	return buf.String()
}
