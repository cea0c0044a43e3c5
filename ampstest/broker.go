// Package ampstest provides what a Go test of an AMPS application needs: a
// broker on loopback ports that stops with the test (NewBroker), and a small
// protocol-level client (Dial, DialConn) that speaks the stream encoding of
// the TCP, TLS and Unix clients and the WebSocket encoding of the official
// JavaScript client, with raw access for tests that send hostile input.
//
// It plays the part net/http/httptest plays for HTTP:
//
//	func TestOrders(t *testing.T) {
//		b := ampstest.NewBroker(t, nil)
//		app := myapp.New(b.TCPURL()) // the code under test, with a real AMPS client
//		c := ampstest.Dial(t, b.TCPURL(), nil)
//		c.Logon("checker")
//		c.Subscribe("s1", "orders")
//		app.PlaceOrder(42)
//		m := c.Next()
//		// check m.Header.Topic, m.Body …
//	}
package ampstest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/internal/testcert"
	"github.com/ampsbroker/ampsbroker/listener"
	"github.com/ampsbroker/ampsbroker/transport"
)

// DefaultShutdownTimeout bounds the graceful Shutdown that stops a Broker at
// the end of its test.
const DefaultShutdownTimeout = 10 * time.Second

// DefaultLeakGrace is how long, after Shutdown returned, the goroutines of
// the broker's packages may take to end before the test fails.
const DefaultLeakGrace = 2 * time.Second

// Options configures NewBroker. A nil *Options, like the zero value, means:
// a broker with broker.Options' defaults (every logon accepted, every topic
// allowed, no logs), one TCP transport named "tcp" (which also answers the
// HTTP preflight) and one WebSocket transport named "websocket", both on
// 127.0.0.1 with a free port, no TLS and no Unix socket.
type Options struct {
	// Broker is passed to broker.New (copied; nil means all defaults).
	Broker *broker.Options

	// Authenticator and Entitler, when set, replace the ones in Broker.
	Authenticator broker.Authenticator
	Entitler      broker.Entitler

	// TCP configures the TCP listener; nil means listener defaults. A
	// TLSConfig set here makes that listener speak TLS.
	TCP *listener.TCPOptions
	// WebSocket configures the WebSocket listener; nil means listener
	// defaults.
	WebSocket *listener.WebSocketOptions

	// TLS adds a TLS transport "tcps" and a WebSocket transport "wss",
	// both with a server certificate issued by a throwaway certificate
	// authority made for this broker (see Broker.CAPEM). Default off.
	TLS bool

	// Unix adds a Unix socket transport "unix" in a directory of
	// t.TempDir(). Default off.
	Unix bool

	// ShutdownTimeout bounds the graceful Shutdown at the end of the test.
	// Default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration

	// NoLeakCheck turns off the goroutine check after Shutdown, for tests
	// that run brokers outside this package in parallel. Default off.
	NoLeakCheck bool
}

// Broker is a running broker whose listeners are on loopback ports. It
// embeds *broker.Broker, so a test publishes and subscribes in process with
// b.Connect(ctx, name, nil), and reads b.Stats(). It stops when the test
// ends; Stop stops it earlier.
type Broker struct {
	*broker.Broker

	// TCPAddr is the host:port of the TCP transport (also serving the
	// HTTP preflight).
	TCPAddr string
	// WSAddr is the host:port of the WebSocket transport.
	WSAddr string
	// TLSAddr and WSSAddr are the host:port of the TLS and secure
	// WebSocket transports; empty unless Options.TLS.
	TLSAddr, WSSAddr string
	// UnixPath is the Unix socket's file; empty unless Options.Unix.
	UnixPath string
	// CAPEM is the PEM-encoded certificate of the authority that issued the
	// TLS transports' certificate; nil unless Options.TLS. Give it to a
	// client under test as its trusted root (e.g. NODE_EXTRA_CA_CERTS).
	CAPEM []byte

	t        testing.TB
	opts     Options
	ca       *testcert.Issuer
	serving  sync.WaitGroup
	stopOnce sync.Once
}

// running counts the Brokers of this package that have not stopped yet. The
// leak check runs only when it is the last: goroutine stacks do not say
// which broker they belong to.
var running atomic.Int32

// NewBroker starts a broker with the listeners opts asks for and returns it
// once every listener accepts connections. It fails t if a listener cannot
// be opened. The test's cleanup stops the broker (see Stop).
func NewBroker(t testing.TB, opts *Options) *Broker {
	t.Helper()
	b := &Broker{t: t}
	if opts != nil {
		b.opts = *opts
	}
	var bo broker.Options
	if b.opts.Broker != nil {
		bo = *b.opts.Broker
	}
	if b.opts.Authenticator != nil {
		bo.Authenticator = b.opts.Authenticator
	}
	if b.opts.Entitler != nil {
		bo.Entitler = b.opts.Entitler
	}
	b.Broker = broker.New(&bo)
	running.Add(1)
	t.Cleanup(b.Stop)

	tcp, err := listener.ListenTCP("127.0.0.1:0", b.opts.TCP)
	if err != nil {
		t.Fatalf("ampstest: TCP listener on 127.0.0.1:0: %v", err)
	}
	b.TCPAddr = tcp.Addr().String()
	b.ServeListener(tcp)

	ws, err := listener.ListenWebSocket("127.0.0.1:0", b.opts.WebSocket)
	if err != nil {
		t.Fatalf("ampstest: WebSocket listener on 127.0.0.1:0: %v", err)
	}
	b.WSAddr = ws.Addr().String()
	b.ServeListener(ws)

	if b.opts.TLS {
		b.ca = testcert.NewIssuer(t)
		b.CAPEM = b.ca.PEM()
		tl, err := listener.ListenTCP("127.0.0.1:0", &listener.TCPOptions{Name: "tcps", TLSConfig: b.ca.ServerConfig(t)})
		if err != nil {
			t.Fatalf("ampstest: TLS listener on 127.0.0.1:0: %v", err)
		}
		b.TLSAddr = tl.Addr().String()
		b.ServeListener(tl)
		wss, err := listener.ListenWebSocket("127.0.0.1:0", &listener.WebSocketOptions{Name: "wss", TLSConfig: b.ca.ServerConfig(t)})
		if err != nil {
			t.Fatalf("ampstest: wss listener on 127.0.0.1:0: %v", err)
		}
		b.WSSAddr = wss.Addr().String()
		b.ServeListener(wss)
	}
	if b.opts.Unix {
		path := filepath.Join(t.TempDir(), "amps.sock")
		u, err := listener.ListenUnix(path, nil)
		if err != nil {
			t.Fatalf("ampstest: Unix listener at %s: %v", path, err)
		}
		b.UnixPath = path
		b.ServeListener(u)
	}
	return b
}

// ServeListener has the broker serve l on a goroutine that Stop waits for.
// Serve must end with broker.ErrBrokerClosed, or the test fails.
func (b *Broker) ServeListener(l transport.Listener) {
	b.serving.Add(1)
	go func() {
		defer b.serving.Done()
		if err := b.Serve(l); !errors.Is(err, broker.ErrBrokerClosed) {
			b.t.Errorf("ampstest: Serve(%s) returned %v, want broker.ErrBrokerClosed", l.Name(), err)
		}
	}()
}

// TCPURL returns the URI a TCP client connects with:
// tcp://127.0.0.1:P/amps/json.
func (b *Broker) TCPURL() string { return "tcp://" + b.TCPAddr + "/amps/json" }

// WSURL returns the URI the JavaScript client connects with:
// ws://127.0.0.1:P/amps/json.
func (b *Broker) WSURL() string { return "ws://" + b.WSAddr + "/amps/json" }

// PreflightURL returns the URI of a TCP client that sends the HTTP preflight
// first, as clients behind a reverse proxy do:
// tcp://127.0.0.1:P<prefix>/amps/json?http_preflight=true. prefix is a
// routing path such as "/edge" (or empty); the broker ignores it.
func (b *Broker) PreflightURL(prefix string) string {
	return "tcp://" + b.TCPAddr + prefix + "/amps/json?http_preflight=true"
}

// TLSURL returns tcps://127.0.0.1:P/amps/json for the TLS transport; it
// fails the test unless Options.TLS was set.
func (b *Broker) TLSURL() string {
	b.needTLS("TLSURL")
	return "tcps://" + b.TLSAddr + "/amps/json"
}

// WSSURL returns wss://127.0.0.1:P/amps/json for the secure WebSocket
// transport; it fails the test unless Options.TLS was set.
func (b *Broker) WSSURL() string {
	b.needTLS("WSSURL")
	return "wss://" + b.WSSAddr + "/amps/json"
}

// UnixURL returns unix://<socket path> (this package's spelling; AMPS has
// no documented one); it fails the test unless Options.Unix was set.
func (b *Broker) UnixURL() string {
	if b.UnixPath == "" {
		b.t.Fatal("ampstest: UnixURL needs Options.Unix")
	}
	return "unix://" + b.UnixPath
}

// CertPool returns a pool holding the throwaway authority, for a client's
// RootCAs; it fails the test unless Options.TLS was set.
func (b *Broker) CertPool() *x509.CertPool {
	b.needTLS("CertPool")
	return b.ca.Pool
}

// ClientTLSConfig returns a client configuration that trusts the throwaway
// authority and expects the server at 127.0.0.1; it fails the test unless
// Options.TLS was set.
func (b *Broker) ClientTLSConfig() *tls.Config {
	b.needTLS("ClientTLSConfig")
	return b.ca.ClientConfig()
}

func (b *Broker) needTLS(what string) {
	if b.ca == nil {
		b.t.Fatalf("ampstest: %s needs Options.TLS", what)
	}
}

// Dial connects a test client to uri (see DialConn for the forms) and fails
// the test if it cannot. TLS URIs trust the broker's authority unless
// opts.TLS says otherwise.
func (b *Broker) Dial(uri string, opts *DialOptions) *Client {
	b.t.Helper()
	var o DialOptions
	if opts != nil {
		o = *opts
	}
	if o.TLS == nil && b.ca != nil {
		o.TLS = b.ca.ClientConfig()
	}
	return Dial(b.t, uri, &o)
}

// Stop shuts the broker down gracefully (bounded by Options.ShutdownTimeout),
// waits for every Serve to return, and then fails the test if a goroutine
// of the broker's packages is still running after DefaultLeakGrace. The
// test's cleanup calls it; calling it again does nothing.
func (b *Broker) Stop() {
	b.stopOnce.Do(func() {
		defer running.Add(-1)
		timeout := b.opts.ShutdownTimeout
		if timeout <= 0 {
			timeout = DefaultShutdownTimeout
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			b.t.Errorf("ampstest: Shutdown: %v", err)
			b.Close()
		}
		b.serving.Wait()
		if b.opts.NoLeakCheck || running.Load() > 1 {
			return
		}
		if left := leftGoroutines(DefaultLeakGrace); left != "" {
			b.t.Errorf("ampstest: goroutines of the broker still run after Shutdown:\n%s", left)
		}
	})
}

// brokerPackages are the packages whose goroutines must all end when a
// broker has shut down.
var brokerPackages = []string{
	"github.com/ampsbroker/ampsbroker/broker.",
	"github.com/ampsbroker/ampsbroker/listener.",
	"github.com/ampsbroker/ampsbroker/protocol.",
	"github.com/ampsbroker/ampsbroker/preflight.",
}

// leftGoroutines polls the stacks of all goroutines until none but the
// caller's has a frame in brokerPackages, for at most grace, and returns
// the stacks of those still left ("" when none).
func leftGoroutines(grace time.Duration) string {
	end := time.Now().Add(grace)
	for {
		left := brokerGoroutines()
		if len(left) == 0 {
			return ""
		}
		if time.Now().After(end) {
			return strings.Join(left, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// brokerGoroutines returns the stacks, other than the caller's, that have a
// frame in one of brokerPackages.
func brokerGoroutines() []string {
	var left []string
	for _, g := range OtherGoroutines() {
		for _, p := range brokerPackages {
			if strings.Contains(g, p) {
				left = append(left, g)
				break
			}
		}
	}
	return left
}

// OtherGoroutines returns the stack of every goroutine but the caller's.
func OtherGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	// The first stack is always the caller's own goroutine.
	stacks := strings.Split(string(buf), "\n\n")
	return stacks[1:]
}

// String describes the broker's listeners, for test logs.
func (b *Broker) String() string {
	s := fmt.Sprintf("ampstest broker tcp=%s ws=%s", b.TCPAddr, b.WSAddr)
	if b.TLSAddr != "" {
		s += fmt.Sprintf(" tcps=%s wss=%s", b.TLSAddr, b.WSSAddr)
	}
	if b.UnixPath != "" {
		s += " unix=" + b.UnixPath
	}
	return s
}

// FreePort returns 127.0.0.1:P for a TCP port that was free a moment ago,
// for a program that must be given an address rather than a listener (a
// proxy, a child process). Another process may take the port before it is
// used; prefer a listener on 127.0.0.1:0 where the program accepts one.
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("ampstest: reserving a loopback port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
