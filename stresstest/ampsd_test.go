package stresstest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
)

// ampsdPackage is the import path of the server the crash test runs as a
// child process.
const ampsdPackage = "github.com/ampsbroker/ampsbroker/cmd/ampsd"

// ampsdStartTimeout bounds how long a started ampsd may take to recover its
// journal and log that its transport listens.
const ampsdStartTimeout = 20 * time.Second

// ampsdListening is the log line of ampsd's TCP transport (named json-tcp
// in crashConfig) with the address it bound.
var ampsdListening = regexp.MustCompile(`msg=listening transport=json-tcp addr=(127\.0\.0\.1:\d+)`)

// buildAmpsd compiles cmd/ampsd into a directory of the test's and returns
// the binary's path.
func buildAmpsd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ampsd")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		if gobin, err = exec.LookPath("go"); err != nil {
			t.Fatalf("no go command to build %s: %v", ampsdPackage, err)
		}
	}
	out, err := exec.Command(gobin, "build", "-o", bin, ampsdPackage).CombinedOutput()
	if err != nil {
		t.Fatalf("go build %s: %v\n%s", ampsdPackage, err, out)
	}
	return bin
}

// ampsdProc is an ampsd child process that the test starts, kills and
// restarts on the same configuration (and so the same journal directory).
// Clients ask it for the current address; it is empty while the server is
// down.
type ampsdProc struct {
	t          *testing.T
	bin, confg string

	mu     sync.Mutex
	cmd    *exec.Cmd
	log    *ampstest.LogBuffer // stdout and stderr of the current process
	exited chan struct{}       // closed when the current process has been reaped
	addr   string
	starts int
}

// newAmpsd returns a stopped ampsd for the configuration file config; the
// process it runs is killed when the test ends.
func newAmpsd(t *testing.T, bin, config string) *ampsdProc {
	p := &ampsdProc{t: t, bin: bin, confg: config}
	t.Cleanup(p.kill)
	return p
}

// Addr is the address of the running server's TCP transport, or "".
func (p *ampsdProc) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// spawn starts a process on p's configuration and returns it, its log and
// a channel closed once it has exited (its Wait error is then in *werr).
func (p *ampsdProc) spawn() (*exec.Cmd, *ampstest.LogBuffer, chan struct{}, *error, error) {
	log := &ampstest.LogBuffer{}
	cmd := exec.Command(p.bin, "-config", p.confg)
	cmd.Stdout, cmd.Stderr = log, log
	dieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("starting %s -config %s: %w", p.bin, p.confg, err)
	}
	exited := make(chan struct{})
	var werr error
	go func() {
		werr = cmd.Wait()
		close(exited)
	}()
	return cmd, log, exited, &werr, nil
}

// start runs ampsd and waits until it listens; the test fails if it exits
// or stays silent instead, which after a kill means it could not recover
// its journal or take the directory's lock.
func (p *ampsdProc) start() {
	p.t.Helper()
	cmd, log, exited, werr, err := p.spawn()
	if err != nil {
		p.t.Fatal(err)
	}
	end := time.Now().Add(ampsdStartTimeout)
	for {
		if m := ampsdListening.FindStringSubmatch(log.String()); m != nil {
			p.mu.Lock()
			p.cmd, p.log, p.exited, p.addr = cmd, log, exited, m[1]
			p.starts++
			p.mu.Unlock()
			return
		}
		select {
		case <-exited:
			p.t.Fatalf("ampsd start %d exited before listening: %v\n%s", p.starts+1, *werr, log)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(end) {
			cmd.Process.Kill()
			<-exited
			p.t.Fatalf("ampsd start %d did not listen within %v:\n%s", p.starts+1, ampsdStartTimeout, log)
		}
	}
}

// logTail is the end of the current (or last) process's log, at most n
// bytes.
func (p *ampsdProc) logTail(n int) string {
	p.mu.Lock()
	log := p.log
	p.mu.Unlock()
	if log == nil {
		return ""
	}
	s := log.String()
	return s[max(0, len(s)-n):]
}

// dumpGoroutines stops the running ampsd with SIGQUIT, which makes the Go
// runtime write every goroutine's stack to its log, for a failure report.
func (p *ampsdProc) dumpGoroutines() { p.signalAndReap(syscall.SIGQUIT) }

// kill sends SIGKILL to the running ampsd and reaps it.
func (p *ampsdProc) kill() { p.signalAndReap(syscall.SIGKILL) }

// signalAndReap sends sig to the running ampsd, if any, and waits for it
// to exit; if it has not within ampsdStartTimeout, it is killed.
func (p *ampsdProc) signalAndReap(sig os.Signal) {
	p.t.Helper()
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.cmd, p.addr = nil, ""
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	if err := cmd.Process.Signal(sig); err != nil {
		p.t.Errorf("%v to ampsd: %v", sig, err)
	}
	select {
	case <-exited:
	case <-time.After(ampsdStartTimeout):
		cmd.Process.Kill()
		<-exited
	}
}

// expectLocked starts a second ampsd on the running one's configuration
// and checks that it exits with an error naming the held journal lock.
func (p *ampsdProc) expectLocked() {
	p.t.Helper()
	cmd, log, exited, werr, err := p.spawn()
	if err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(ampsdStartTimeout):
		cmd.Process.Kill()
		<-exited
		p.t.Fatalf("a second ampsd on a journal directory in use did not exit:\n%s", log)
	}
	var ee *exec.ExitError
	if !errors.As(*werr, &ee) || !strings.Contains(log.String(), "journal directory in use") {
		p.t.Errorf("a second ampsd on a journal directory in use: exit %v, want a failure naming the lock:\n%s", *werr, log)
	}
	if ampsdListening.MatchString(log.String()) {
		p.t.Errorf("a second ampsd on a journal directory in use listened:\n%s", log)
	}
}
