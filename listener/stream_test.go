package listener

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/transport"

	"github.com/ampsbroker/ampsbroker/preflight"
)

// handshakeResult is the outcome of one server-side Handshake.
type handshakeResult struct {
	conn transport.Conn
	err  error
}

// acceptLoop accepts connections on l and runs Handshake on each, the way
// the broker does, passing each outcome to handle on the connection's own
// goroutine. The goroutines belong to the test: cleanup closes l, cancels
// the handshakes' context and waits for them.
func acceptLoop(t testing.TB, l transport.Listener, handle func(ctx context.Context, c transport.Conn, err error)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				hc, err := l.Handshake(ctx, c)
				handle(ctx, hc, err)
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); cancel(); wg.Wait() })
}

// serveHandshakes runs acceptLoop on l and delivers the outcomes in order
// of completion. After the loop has stopped, cleanup closes the
// connections nobody took.
func serveHandshakes(t testing.TB, l transport.Listener) <-chan handshakeResult {
	t.Helper()
	results := make(chan handshakeResult, 64)
	// Registered first, so it runs after acceptLoop's cleanup.
	t.Cleanup(func() {
		close(results)
		for r := range results {
			if r.conn != nil {
				r.conn.Close()
			}
		}
	})
	acceptLoop(t, l, func(_ context.Context, c transport.Conn, err error) {
		results <- handshakeResult{c, err}
	})
	return results
}

// waitLimit only turns a hang into a readable failure; no test depends on
// how fast anything happens.
const waitLimit = 30 * time.Second

func next(t testing.TB, results <-chan handshakeResult) handshakeResult {
	t.Helper()
	select {
	case r := <-results:
		return r
	case <-time.After(waitLimit):
		t.Fatal("no handshake finished")
		return handshakeResult{}
	}
}

// nextConn waits for a successful handshake.
func nextConn(t testing.TB, results <-chan handshakeResult) transport.Conn {
	t.Helper()
	r := next(t, results)
	if r.err != nil {
		t.Fatalf("Handshake: %v", r.err)
	}
	return r.conn
}

// frame encodes one stream frame by hand (wire spec §2.1): 4-byte big-endian
// length of header plus body, then both.
func frame(header, body string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(header)+len(body)))
	return append(append(b, header...), body...)
}

// readFrame reads one stream frame by hand and returns its content.
func readFrame(t testing.TB, r io.Reader) string {
	t.Helper()
	var pfx [4]byte
	if _, err := io.ReadFull(r, pfx[:]); err != nil {
		t.Fatalf("reading frame length: %v", err)
	}
	b := make([]byte, binary.BigEndian.Uint32(pfx[:]))
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatalf("reading %d-byte frame: %v", len(b), err)
	}
	return string(b)
}

// exchange checks that AMPS messages flow both ways between a client socket
// and the server Conn: the client's frame arrives as header and body, and
// the server's message arrives as a frame.
func exchange(t testing.TB, client io.ReadWriter, server transport.Conn) {
	t.Helper()
	if _, err := client.Write(frame(`{"c":"publish","t":"a"}`, `{"id":1}`)); err != nil {
		t.Fatalf("client write: %v", err)
	}
	expectMessage(t, server, `{"c":"publish","t":"a"}`, `{"id":1}`)
	expectReply(t, client, server)
}

func expectMessage(t testing.TB, server transport.Conn, header, body string) {
	t.Helper()
	// A lost message must fail the test, not hang it: closing the conn
	// unblocks ReadMessage.
	timer := time.AfterFunc(waitLimit, func() { server.Close() })
	defer timer.Stop()
	h, b, err := server.ReadMessage()
	if err != nil {
		t.Fatalf("server ReadMessage: %v", err)
	}
	if string(h) != header || string(b) != body {
		t.Fatalf("server read header %q body %q, want %q %q", h, b, header, body)
	}
}

func expectReply(t testing.TB, client io.Reader, server transport.Conn) {
	t.Helper()
	if err := server.WriteMessage(outMsg(t, `{"c":"ack","s":0}`, "")); err != nil {
		t.Fatalf("server WriteMessage: %v", err)
	}
	if err := server.Flush(); err != nil {
		t.Fatalf("server Flush: %v", err)
	}
	if got := readFrame(t, client); got != `{"c":"ack","s":0}` {
		t.Fatalf("client read frame %q", got)
	}
}

// readAllUntilClose reads what the server sends until it closes.
func readAllUntilClose(t testing.TB, c net.Conn) string {
	t.Helper()
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		// A reset after the full answer still shows the answer.
		t.Logf("read after %q ended with %v", b, err)
	}
	return string(b)
}

// logon dials addr, sends a logon frame at once (AMPS clients speak first;
// the handshake waits for their first bytes), waits for the server side and
// checks the logon arrived.
func logon(t testing.TB, results <-chan handshakeResult, network, addr string) (net.Conn, transport.Conn) {
	t.Helper()
	c := dial(t, network, addr)
	if _, err := c.Write(frame(`{"c":"logon","mt":"json"}`, "")); err != nil {
		t.Fatalf("client write: %v", err)
	}
	s := nextConn(t, results)
	t.Cleanup(func() { s.Close() })
	expectMessage(t, s, `{"c":"logon","mt":"json"}`, "")
	return c, s
}

func dial(t testing.TB, network, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	c.SetDeadline(time.Now().Add(waitLimit)) // turns a hang into a failure
	t.Cleanup(func() { c.Close() })
	return c
}

func listenTCP(t testing.TB, addr string, opts *TCPOptions) *TCPListener {
	t.Helper()
	l, err := ListenTCP(addr, opts)
	if err != nil {
		t.Fatalf("ListenTCP(%q): %v", addr, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestPlainAMPS(t *testing.T) {
	l := listenTCP(t, "127.0.0.1:0", nil)
	results := serveHandshakes(t, l)
	c := dial(t, "tcp", l.Addr().String())
	// The logon goes out at once; Detect must not swallow it.
	if _, err := c.Write(frame(`{"c":"logon","mt":"json"}`, "")); err != nil {
		t.Fatal(err)
	}
	s := nextConn(t, results)
	expectMessage(t, s, `{"c":"logon","mt":"json"}`, "")
	exchange(t, c, s)
	info := s.Info()
	if info.Transport != "tcp" || info.Protocol != "amps" || info.Request != nil || info.TLS != nil ||
		info.MessageType != "" || info.TransportMessageType != "" ||
		info.RemoteAddr.String() != c.LocalAddr().String() || info.LocalAddr.String() != c.RemoteAddr().String() {
		t.Errorf("Info = %+v", info)
	}
}

func TestPreflight(t *testing.T) {
	tests := []struct {
		name    string
		request string
		opts    *TCPOptions
		mt      string
		fixed   bool
		header  string // a header name that must be visible in Info().Request
	}{
		{
			name:    "official client CRLF",
			request: "GET /prefix/amps/json HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: tcp\r\nToken: secret\r\n\r\n",
			mt:      "json",
			header:  "Token",
		},
		{
			name:    "bare LF",
			request: "GET /amps/nvfix HTTP/1.1\nHost: h\nUpgrade: TCP\nCookie: a=1\n\n",
			mt:      "nvfix",
			header:  "Cookie",
		},
		{
			name:    "Go client without Upgrade",
			request: "GET /amps HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Probe: yes\r\n\r\n",
			opts:    &TCPOptions{MessageType: "json"},
			mt:      "", // "/amps" names no type: the transport's applies
			fixed:   true,
			header:  "X-Probe",
		},
		{
			name:    "path type with fixed type",
			request: "GET /amps/xml HTTP/1.1\r\nUpgrade: tcps\r\n\r\n",
			opts:    &TCPOptions{MessageType: "json"},
			mt:      "xml",
			fixed:   true,
			header:  "Upgrade",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := listenTCP(t, "127.0.0.1:0", tt.opts)
			results := serveHandshakes(t, l)
			c := dial(t, "tcp", l.Addr().String())
			// Request and first AMPS frame in one write: the frame must
			// survive the preflight.
			if _, err := c.Write(append([]byte(tt.request), frame(`{"c":"logon"}`, "x")...)); err != nil {
				t.Fatal(err)
			}
			want := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\n"
			got := make([]byte, len(want))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
				t.Fatalf("response %q, %v; want %q", got, err, want)
			}
			s := nextConn(t, results)
			expectMessage(t, s, `{"c":"logon"}`, "x")
			exchange(t, c, s)
			info := s.Info()
			if info.MessageType != tt.mt || (info.TransportMessageType != "") != tt.fixed || info.Protocol != "amps" {
				t.Errorf("Info MessageType %q transport type %q protocol %q; want %q fixed %v amps", info.MessageType, info.TransportMessageType, info.Protocol, tt.mt, tt.fixed)
			}
			if info.Request == nil || info.Request.Header.Get(tt.header) == "" {
				t.Errorf("Info().Request = %+v; want header %s", info.Request, tt.header)
			}
		})
	}
}

func TestPreflightRefused(t *testing.T) {
	tests := []struct {
		name    string
		request string
		want    error
	}{
		{"unknown upgrade", "GET /amps/json HTTP/1.1\r\nHost: h\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\n", preflight.ErrUpgradeRefused},
		{"websocket not served", "GET /amps/json HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", preflight.ErrUpgradeRefused},
		{"malformed", "GET /amps/json\r\n\r\n", preflight.ErrMalformed},
		{"HTTP/2", "GET /amps/json HTTP/2.0\r\n\r\n", preflight.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := listenTCP(t, "127.0.0.1:0", nil)
			results := serveHandshakes(t, l)
			c := dial(t, "tcp", l.Addr().String())
			if _, err := io.WriteString(c, tt.request); err != nil {
				t.Fatal(err)
			}
			if got := readAllUntilClose(t, c); got != preflight.BadRequest {
				t.Errorf("client got %q, want exactly %q then close", got, preflight.BadRequest)
			}
			if r := next(t, results); !errors.Is(r.err, tt.want) {
				t.Errorf("Handshake error = %v, want %v", r.err, tt.want)
			}
		})
	}
}

// TestPreflightTooLarge sends a header block that never ends. The server must
// refuse once it has read the cap, without waiting for the blank line that
// never comes.
func TestPreflightTooLarge(t *testing.T) {
	l := listenTCP(t, "127.0.0.1:0", nil)
	results := serveHandshakes(t, l)
	c := dial(t, "tcp", l.Addr().String())
	var b strings.Builder
	b.WriteString("GET /amps/json HTTP/1.1\r\n")
	for b.Len() < preflight.DefaultMaxHeaderBytes+8<<10 {
		b.WriteString("X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n")
	}
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	r := next(t, results)
	if !errors.Is(r.err, preflight.ErrHeaderTooLarge) {
		t.Errorf("Handshake error = %v, want ErrHeaderTooLarge", r.err)
	}
	if got := readAllUntilClose(t, c); got != preflight.BadRequest {
		t.Errorf("client got %q, want exactly %q then close", got, preflight.BadRequest)
	}
}

// TestHandshakeTimeout: a client that sends half a request and stalls is
// dropped when HandshakeTimeout passes.
func TestHandshakeTimeout(t *testing.T) {
	for _, half := range []string{"GE", "GET /amps/json HTTP/1.1\r\nHost: h\r\n"} {
		l := listenTCP(t, "127.0.0.1:0", &TCPOptions{HandshakeTimeout: 50 * time.Millisecond})
		results := serveHandshakes(t, l)
		c := dial(t, "tcp", l.Addr().String())
		if _, err := io.WriteString(c, half); err != nil {
			t.Fatal(err)
		}
		r := next(t, results)
		if !errors.Is(r.err, os.ErrDeadlineExceeded) {
			t.Errorf("after %q: Handshake error = %v, want a deadline error", half, r.err)
		}
		// The server closed its end: the client sees EOF, no answer.
		if got := readAllUntilClose(t, c); got != "" {
			t.Errorf("after %q: client got %q, want nothing", half, got)
		}
	}
}

// TestHandshakeContext: cancelling ctx ends a handshake blocked on a stalled
// client, however long HandshakeTimeout is.
func TestHandshakeContext(t *testing.T) {
	l := listenTCP(t, "127.0.0.1:0", &TCPOptions{HandshakeTimeout: time.Hour})
	c := dial(t, "tcp", l.Addr().String())
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /amps")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := l.Handshake(ctx, sc)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Handshake error = %v, want context.Canceled", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Handshake did not return after cancel")
	}
	if got := readAllUntilClose(t, c); got != "" {
		t.Errorf("client got %q, want the connection closed", got)
	}

	// An already cancelled ctx closes the connection without reading.
	c2 := dial(t, "tcp", l.Addr().String())
	sc2, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Handshake(ctx, sc2); !errors.Is(err, context.Canceled) {
		t.Errorf("Handshake with a done ctx: error = %v", err)
	}
	if got := readAllUntilClose(t, c2); got != "" {
		t.Errorf("client got %q, want the connection closed", got)
	}
}

// TestPreflightFromBufio checks reads through a bufio.Reader on the client
// side do not matter: 101 and a server frame sent right after it arrive in
// order even when read together.
func TestPreflightThenServerFrame(t *testing.T) {
	l := listenTCP(t, "127.0.0.1:0", nil)
	results := serveHandshakes(t, l)
	c := dial(t, "tcp", l.Addr().String())
	io.WriteString(c, "GET /amps/json HTTP/1.1\r\nUpgrade: tcp\r\n\r\n")
	s := nextConn(t, results)
	// Server speaks first here, so the 101 and this frame may share a read.
	if err := s.WriteMessage(outMsg(t, `{"c":"heartbeat"}`, "")); err != nil {
		t.Fatal(err)
	}
	s.Flush()
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 101 Switching Protocols\r\n" {
		t.Fatalf("status line %q, %v", line, err)
	}
	for {
		line, _ = br.ReadString('\n')
		if line == "\r\n" || line == "" {
			break
		}
	}
	if got := readFrame(t, br); got != `{"c":"heartbeat"}` {
		t.Errorf("frame after 101 = %q", got)
	}
}
