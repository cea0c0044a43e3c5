package loadgen

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"time"
)

// IdleSettle is how long a caller of OpenIdle waits after the last logon
// before reading the server's RSS, so that buffers allocated by the logons
// are in place.
const IdleSettle = time.Second

// IdleResult is the outcome of OpenIdle.
type IdleResult struct {
	Scenario    string  `json:"scenario"` // always "idle"
	Connections int     `json:"connections"`
	RSSBeforeKB int64   `json:"rss_before_kb,omitempty"`
	RSSAfterKB  int64   `json:"rss_after_kb,omitempty"`
	KBPerConn   float64 `json:"kb_per_connection,omitempty"`
}

// OpenIdle opens n connections with d (logged on where the protocol has a
// logon), subscribing to nothing, waits settle, and reports the server's resident memory (when
// pid is not 0) before the first and after the last, per connection. The
// returned func closes the connections; it is never nil.
func OpenIdle(d Driver, n, pid int, settle time.Duration) (*IdleResult, func(), error) {
	var conns []Conn
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
		conns = nil
	}
	r := &IdleResult{Scenario: "idle", Connections: n}
	before, err := ReadRSS(pid)
	if err != nil {
		return nil, closeAll, err
	}
	for i := range n {
		c, err := d.Dial(fmt.Sprintf("loadgen-idle-%d", i))
		if err != nil {
			return nil, closeAll, fmt.Errorf("idle connection %d of %d: %w", i+1, n, err)
		}
		conns = append(conns, c)
	}
	time.Sleep(settle)
	after, err := ReadRSS(pid)
	if err != nil {
		return nil, closeAll, err
	}
	if pid != 0 {
		r.RSSBeforeKB, r.RSSAfterKB = before, after
		r.KBPerConn = float64(after-before) / float64(n)
	}
	return r, closeAll, nil
}

// ReadRSS returns the resident set size of process pid in KB, the VmRSS
// line of /proc/PID/status; 0 when pid is 0.
func ReadRSS(pid int) (int64, error) {
	if pid == 0 {
		return 0, nil
	}
	b, path, err := readProc(pid, "status")
	if err != nil {
		return 0, err
	}
	return parseRSS(b, path)
}

// parseRSS finds "VmRSS:   1234 kB" in the text of /proc/PID/status.
func parseRSS(b []byte, path string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("%s: VmRSS line %q is not \"VmRSS: N kB\"", path, sc.Bytes())
		}
		v, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: VmRSS %q: %w", path, f[0], err)
		}
		return v, nil
	}
	return 0, fmt.Errorf("%s has no VmRSS line", path)
}
