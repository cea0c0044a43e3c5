package loadgen

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTicks is the unit of the CPU times in /proc/PID/stat, USER_HZ
// (getconf CLK_TCK), which is 100 on every Linux architecture we run on.
const clockTicks = 100

// ReadCPU returns the user plus system CPU time the process pid has used,
// from /proc/PID/stat; 0 when pid is 0.
func ReadCPU(pid int) (time.Duration, error) {
	if pid == 0 {
		return 0, nil
	}
	b, path, err := readProc(pid, "stat")
	if err != nil {
		return 0, err
	}
	return parseStat(b, path)
}

// readProc reads the file name of /proc/PID and returns it with its path;
// its error names the server's pid.
func readProc(pid int, name string) ([]byte, string, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/" + name
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, path, fmt.Errorf("server pid %d: %w", pid, err)
	}
	return b, path, nil
}

// parseStat reads utime and stime, fields 14 and 15 of a /proc/PID/stat
// line. The command name, field 2, is in parentheses and may contain
// spaces and parentheses, so fields are counted after its last ')'.
func parseStat(b []byte, path string) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: no command name in %.80q", path, b)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: %d fields after the command name, want at least 13", path, len(f))
	}
	var ticks uint64
	for _, s := range f[11:13] {
		v, err := strconv.ParseUint(string(s), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: CPU time %q: %w", path, s, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}
