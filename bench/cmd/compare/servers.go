package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ampsbroker/ampsbroker/bench/natsdriver"
	"github.com/ampsbroker/ampsbroker/bench/relay"
	"github.com/ampsbroker/ampsbroker/internal/loadgen"
	"github.com/ampsbroker/ampsbroker/internal/loadgen/amps"
)

// Server names, in the table's column order.
const (
	serverRelay = "relay"
	serverNATS  = "nats"
	serverAMPS  = "ampsbroker"
)

// allServers are the servers a comparison can run.
var allServers = []string{serverRelay, serverNATS, serverAMPS}

// packages are the main packages built for each server, from this module
// (go.mod lists the two from elsewhere as tools, so that their versions
// are pinned).
var packages = map[string]string{
	serverAMPS:  "github.com/ampsbroker/ampsbroker/cmd/ampsd",
	serverNATS:  "github.com/nats-io/nats-server/v2",
	serverRelay: "github.com/ampsbroker/ampsbroker/bench/cmd/relay",
}

// benchModule is this module's path, which -benchdir must hold.
const benchModule = "github.com/ampsbroker/ampsbroker/bench"

// startTimeout bounds how long a server may take to accept connections.
const startTimeout = 30 * time.Second

// stopTimeout is how long a server has to exit after SIGTERM before it is
// killed.
const stopTimeout = 10 * time.Second

// findModule returns the directory of the bench module: dir or the
// nearest parent with a go.mod, which must be this module's.
func findModule(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil {
			if !bytes.Contains(b, []byte("module "+benchModule+"\n")) {
				return "", fmt.Errorf("%s/go.mod is not module %s: run from the bench directory (cd bench && go run ./cmd/compare) or give -benchdir", d, benchModule)
			}
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s: run from the bench directory or give -benchdir", dir)
		}
	}
}

// build builds each server's binary into dir and returns their paths.
func build(moduleDir, dir string, servers []string) (map[string]string, error) {
	bins := map[string]string{}
	for _, s := range servers {
		out := filepath.Join(dir, s)
		cmd := exec.Command("go", "build", "-o", out, packages[s])
		cmd.Dir = moduleDir
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %v\n%s", packages[s], err, b)
		}
		bins[s] = out
	}
	return bins, nil
}

// ampsdConfig is ampsd's configuration: one TCP transport and the SOW
// topics of the sow scenario.
const ampsdConfig = `<?xml version="1.0" encoding="UTF-8"?>
<AMPSConfig>
  <Name>loadgen-compare</Name>
  <Transports>
    <Transport>
      <Name>json-tcp</Name>
      <Type>tcp</Type>
      <InetAddr>%s</InetAddr>
      <Protocol>amps</Protocol>
      <MessageType>json</MessageType>
    </Transport>
  </Transports>
  <SOW>
    <Topic>
      <Name>loadgen-sow</Name>
      <Pattern>%s</Pattern>
      <MessageType>json</MessageType>
      <Key>%s</Key>
      <Durability>transient</Durability>
    </Topic>
  </SOW>
</AMPSConfig>
`

// server is one running server process.
type server struct {
	name   string
	cmd    *exec.Cmd
	driver loadgen.Driver
	log    string // file holding its output
	exited chan struct{}
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// start runs server name from bin as a child process, its output in a
// file in dir, and returns once it accepts connections.
func start(name, bin, dir string) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s := &server{name: name, log: filepath.Join(dir, name+".log"), exited: make(chan struct{})}
	var args []string
	switch name {
	case serverAMPS:
		cfg := filepath.Join(dir, "ampsd.xml")
		xml := fmt.Sprintf(ampsdConfig, addr, loadgen.SOWTopicPattern, loadgen.SOWKeyField)
		if err := os.WriteFile(cfg, []byte(xml), 0o644); err != nil {
			return nil, err
		}
		args = []string{"-config", cfg, "-log-level", "warn"}
		s.driver = &amps.Driver{Addr: addr}
	case serverNATS:
		host, port, _ := net.SplitHostPort(addr)
		args = []string{"-a", host, "-p", port}
		s.driver = &natsdriver.Driver{URL: "nats://" + addr}
	case serverRelay:
		args = []string{"-addr", addr}
		s.driver = &relay.Driver{Addr: addr}
	default:
		return nil, fmt.Errorf("unknown server %q", name)
	}
	out, err := os.Create(s.log)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = out, out
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("%s exited at start: %s", name, s.tail())
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s does not accept connections on %s after %v: %s", name, addr, startTimeout, s.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// tail returns the last lines of the server's output, for errors.
func (s *server) tail() string {
	b, _ := os.ReadFile(s.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], " | ")
}

// stop ends the server with SIGTERM, or SIGKILL if it does not exit in
// stopTimeout, and waits for it.
func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// raiseFileLimit raises this process's soft limit on open files to the
// hard limit (children inherit it), and says whether n connections fit.
func raiseFileLimit(n int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("raise the open-file limit to %d: %w", lim.Max, err)
		}
	}
	// The margin is for the scenarios' connections, binaries and logs.
	const margin = 200
	if uint64(n)+margin > lim.Cur {
		return fmt.Errorf("-idle %d needs %d open files, the limit is %d (ulimit -Hn)", n, n+margin, lim.Cur)
	}
	return nil
}

// errStopped is returned when a server exited during the comparison.
var errStopped = errors.New("server exited")

// alive returns errStopped if the server has exited.
func (s *server) alive() error {
	select {
	case <-s.exited:
		return fmt.Errorf("%s (pid %s): %w: %s", s.name, strconv.Itoa(s.pid()), errStopped, s.tail())
	default:
		return nil
	}
}
