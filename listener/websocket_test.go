package listener

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/transport"

	"github.com/ampsbroker/ampsbroker/internal/testcert"

	"github.com/ampsbroker/ampsbroker/protocol"
	"github.com/coder/websocket"
)

// testTimeout bounds every blocking step of a test so a bug fails the test
// instead of hanging it; it is not a timing assertion.
const testTimeout = 10 * time.Second

type msg struct{ header, body string }

// recServer is a transport.ConnServer that records what it reads and hands each transport.Conn
// to the test. Every ServeConn it runs is stopped by the test's cleanup.
type recServer struct {
	ctx   context.Context
	conns chan transport.Conn
	msgs  chan msg
	errs  chan error
	wg    sync.WaitGroup
}

func newRecServer(t *testing.T) *recServer {
	ctx, cancel := context.WithCancel(context.Background())
	s := &recServer{ctx: ctx, conns: make(chan transport.Conn, 16), msgs: make(chan msg, 256), errs: make(chan error, 16)}
	t.Cleanup(func() { cancel(); s.wg.Wait() })
	return s
}

func (s *recServer) ServeConn(_ context.Context, c transport.Conn) error {
	s.wg.Add(1)
	defer s.wg.Done()
	stop := context.AfterFunc(s.ctx, func() { c.Close() })
	defer stop()
	s.conns <- c
	for {
		h, b, err := c.ReadMessage()
		if err != nil {
			s.errs <- err
			return err
		}
		s.msgs <- msg{string(h), string(b)}
	}
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testTimeout):
		t.Fatalf("no %s within %v", what, testTimeout)
		panic("unreachable")
	}
}

// serveListener runs Accept and Handshake on l the way a broker does,
// handing connections to srv. Handshake errors go to the returned channel.
func serveListener(t *testing.T, l transport.Listener, srv *recServer) <-chan error {
	hsErrs := make(chan error, 16)
	acceptLoop(t, l, func(ctx context.Context, conn transport.Conn, err error) {
		if err != nil {
			hsErrs <- err
			return
		}
		srv.ServeConn(ctx, conn)
		conn.Close()
	})
	return hsErrs
}

func listenWS(t *testing.T, opts *WebSocketOptions) (*WebSocketListener, *recServer, <-chan error) {
	t.Helper()
	l, err := ListenWebSocket("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := newRecServer(t)
	return l, srv, serveListener(t, l, srv)
}

// jsClient speaks the official JavaScript client's encoding (wire spec §3.2, §3.3).
type jsClient struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialJS(t *testing.T, url string, opts *websocket.DialOptions) (*jsClient, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	ws.SetReadLimit(-1)
	t.Cleanup(func() { ws.CloseNow() })
	return &jsClient{t, ws}, resp
}

func (c *jsClient) send(text bool, p string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	typ := websocket.MessageBinary
	if text {
		typ = websocket.MessageText
	}
	if err := c.ws.Write(ctx, typ, []byte(p)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// burst sends a count frame (N little-endian), the header and data parts;
// a part is text unless it starts with "bin:".
func (c *jsClient) burst(header string, parts ...string) {
	c.t.Helper()
	c.send(false, string(binary.LittleEndian.AppendUint32(nil, uint32(1+len(parts)))))
	c.send(true, header)
	for _, p := range parts {
		if rest, ok := strings.CutPrefix(p, "bin:"); ok {
			c.send(false, rest)
		} else {
			c.send(true, p)
		}
	}
}

type wsTestFrame struct {
	text    bool
	payload string
}

func (f wsTestFrame) String() string {
	if f.text {
		return "text " + strconv.Quote(f.payload)
	}
	return "bin " + strconv.Quote(f.payload)
}

func (c *jsClient) read() (wsTestFrame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	typ, p, err := c.ws.Read(ctx)
	return wsTestFrame{typ == websocket.MessageText, string(p)}, err
}

func (c *jsClient) readN(n int) []wsTestFrame {
	c.t.Helper()
	var out []wsTestFrame
	for range n {
		f, err := c.read()
		if err != nil {
			c.t.Fatalf("read frame %d: %v", len(out)+1, err)
		}
		out = append(out, f)
	}
	return out
}

// expectClose reads until the server's close frame and checks its status.
func (c *jsClient) expectClose(code websocket.StatusCode) {
	c.t.Helper()
	for {
		_, err := c.read()
		if err == nil {
			continue
		}
		if got := websocket.CloseStatus(err); got != code {
			c.t.Fatalf("connection ended with %v (status %d), want status %d", err, got, code)
		}
		return
	}
}

func wsURL(l *WebSocketListener, scheme, path string) string {
	return scheme + "://" + l.Addr().String() + path
}

func TestWebSocketJSClientBursts(t *testing.T) {
	l, srv, _ := listenWS(t, nil)
	c, _ := dialJS(t, wsURL(l, "ws", "/amps-prod/amps/json"), &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Basic dTE6cCU0MHNz"}},
	})
	conn := recv(t, srv.conns, "connection")
	info := conn.Info()
	if info.Transport != DefaultWebSocketName || info.Protocol != WebSocketProtocol || info.MessageType != "json" || info.TransportMessageType != "" {
		t.Errorf("Info = transport %q protocol %q type %q transport type %q", info.Transport, info.Protocol, info.MessageType, info.TransportMessageType)
	}
	if info.Request == nil || info.Request.Header.Get("Authorization") != "Basic dTE6cCU0MHNz" || info.Request.URL.Path != "/amps-prod/amps/json" {
		t.Errorf("Info.Request = %+v, want the upgrade request with its Authorization header", info.Request)
	}
	if info.TLS != nil || info.RemoteAddr == nil || info.LocalAddr == nil {
		t.Errorf("Info TLS %v, remote %v, local %v", info.TLS, info.RemoteAddr, info.LocalAddr)
	}

	logon := `{"c":"logon","cid":"auto0","a":"processed","version":"5.3.4.0.378635.60b2fcc:javascript","client_name":"js-probe","user_id":""}`
	pub := `{"c":"publish","t":"orders"}`
	big := strings.Repeat("0123456789abcdef", 10<<10) // 160 KiB

	c.send(true, "text")
	c.burst(logon)
	c.burst(pub, `{"id":1,"qty":10}`)
	c.burst(pub, "")
	c.burst(pub, "bin:\x00\x00\x00\x02", `{}`, "bin:", "x")
	// A data part larger than 16 KiB sent fragmented, as the Node library does.
	c.send(false, string(binary.LittleEndian.AppendUint32(nil, 2)))
	c.send(true, pub)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	w, err := c.ws.Writer(ctx, websocket.MessageText)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(big); i += 16 << 10 {
		if _, err := w.Write([]byte(big[i:min(i+16<<10, len(big))])); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	want := []msg{{logon, ""}, {pub, `{"id":1,"qty":10}`}, {pub, ""}, {pub, "\x00\x00\x00\x02{}x"}, {pub, big}}
	for i, m := range want {
		if got := recv(t, srv.msgs, "message"); got != m {
			t.Errorf("message %d = %.80q, want %.80q", i, got, m)
		}
	}
}

func TestWebSocketOutboundTextMode(t *testing.T) {
	l, srv, _ := listenWS(t, nil)
	c, _ := dialJS(t, wsURL(l, "ws", "/amps/json"), nil)
	conn := recv(t, srv.conns, "connection")
	c.send(true, "text")
	c.burst(`{"c":"logon","cid":"auto0"}`)
	recv(t, srv.msgs, "logon")

	sow := `{"c":"sow","t":"orders","query_id":"auto4","bs":2}`
	r1, r2 := `{"ts":"20240101T000000.000000Z","k":"1","l":17}`, `{"k":"2","l":33}`
	writes := []msg{
		{`{"c":"ack","cid":"auto0","status":"success"}`, ""},
		{`{"c":"p","t":"orders","sids":"auto2","l":17}`, `{"id":1,"qty":10}`},
		{`{"c":"p","t":"orders","l":0}`, ""},
		{`{"c":"p","t":"orders","l":2}`, "\xff\xfe"},
		{sow, r1 + `{"id":1,"qty":10}` + r2 + `{"id":2,"qty":20,"note":"héllo"}`},
		{`{"c":"group_end","query_id":"auto4"}`, ""},
	}
	for _, m := range writes {
		if err := conn.WriteMessage(outMsg(t, m.header, m.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
	want := []wsTestFrame{
		{true, writes[0].header},
		{true, writes[1].header}, {true, `{"id":1,"qty":10}`},
		{true, writes[2].header},                      // l:0, no data frame
		{true, writes[3].header}, {false, "\xff\xfe"}, // non-UTF-8 falls back to binary
		{true, sow}, {true, r1}, {true, `{"id":1,"qty":10}`}, {true, r2}, {true, `{"id":2,"qty":20,"note":"héllo"}`},
		{true, writes[5].header},
	}
	if got := c.readN(len(want)); !equalFrames(got, want) {
		t.Errorf("frames:\n got %v\nwant %v", got, want)
	}
	// A message the JS client cannot decode is refused, not sent.
	if err := conn.WriteMessage(outMsg(t, `{"c":"p","l":0}`, "x")); !errors.Is(err, protocol.ErrWSFraming) {
		t.Errorf("WriteMessage with l:0 and a body = %v, want ErrWSFraming", err)
	}
}

// writeFlush writes one message and sends it.
func writeFlush(t testing.TB, c transport.Conn, header, body string) {
	t.Helper()
	if err := c.WriteMessage(outMsg(t, header, body)); err != nil {
		t.Fatalf("WriteMessage(%.60q): %v", header, err)
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("Flush after %.60q: %v", header, err)
	}
}

func equalFrames(a, b []wsTestFrame) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestWebSocketOutboundBinaryMode(t *testing.T) {
	l, srv, _ := listenWS(t, nil)
	c, _ := dialJS(t, wsURL(l, "ws", "/amps/nvfix"), nil)
	conn := recv(t, srv.conns, "connection")
	if conn.Info().MessageType != "nvfix" {
		t.Errorf("MessageType = %q, want nvfix", conn.Info().MessageType)
	}
	// Before the selector arrives the URL's type decides: nvfix is binary.
	if err := conn.WriteMessage(outMsg(t, `{"c":"p","l":3}`, "a=1")); err != nil {
		t.Fatal(err)
	}
	c.send(true, "binary")
	c.burst(`{"c":"logon"}`)
	recv(t, srv.msgs, "logon")
	sow := `{"c":"sow","bs":2}`
	if err := conn.WriteMessage(outMsg(t, sow, `{"k":"1","l":3}b=2{"k":"2","l":0}`)); err != nil {
		t.Fatal(err)
	}
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
	want := []wsTestFrame{
		{true, `{"c":"p","l":3}`}, {false, "a=1"},
		{true, sow}, {true, `{"k":"1","l":3}`}, {false, "b=2"}, {true, `{"k":"2","l":0}`}, {false, ""},
	}
	if got := c.readN(len(want)); !equalFrames(got, want) {
		t.Errorf("frames:\n got %v\nwant %v", got, want)
	}
}

func TestWebSocketMaxFrameSize(t *testing.T) {
	l, srv, _ := listenWS(t, &WebSocketOptions{MaxFrameSize: 1024})
	t.Run("over several frames", func(t *testing.T) {
		c, _ := dialJS(t, wsURL(l, "ws", "/amps/json"), nil)
		recv(t, srv.conns, "connection")
		c.send(true, "text")
		part := strings.Repeat("a", 400)
		c.burst(`{"c":"publish","t":"x"}`, part, part, part)
		c.expectClose(websocket.StatusMessageTooBig)
		if err := recv(t, srv.errs, "read error"); !errors.Is(err, protocol.ErrWSMessageTooLarge) || !errors.Is(err, protocol.ErrFrameTooLarge) {
			t.Errorf("ReadMessage error = %v, want ErrWSMessageTooLarge", err)
		}
	})
	t.Run("one frame", func(t *testing.T) {
		c, _ := dialJS(t, wsURL(l, "ws", "/amps/json"), nil)
		recv(t, srv.conns, "connection")
		c.send(true, "text")
		c.burst(`{"c":"publish","t":"x"}`, strings.Repeat("b", 2000))
		c.expectClose(websocket.StatusMessageTooBig)
		if err := recv(t, srv.errs, "read error"); !errors.Is(err, protocol.ErrWSMessageTooLarge) {
			t.Errorf("ReadMessage error = %v, want ErrWSMessageTooLarge", err)
		}
	})
}

func TestWebSocketProtocolErrorCloses1002(t *testing.T) {
	l, srv, _ := listenWS(t, nil)
	c, _ := dialJS(t, wsURL(l, "ws", "/amps/json"), nil)
	recv(t, srv.conns, "connection")
	c.send(true, "text")
	c.send(true, `{"c":"logon"}`) // header without its count frame
	c.expectClose(websocket.StatusProtocolError)
	if err := recv(t, srv.errs, "read error"); !errors.Is(err, protocol.ErrWSBadCount) {
		t.Errorf("ReadMessage error = %v, want ErrWSBadCount", err)
	}
}

func TestWebSocketCloseHandshake(t *testing.T) {
	l, srv, _ := listenWS(t, nil)
	t.Run("server closes", func(t *testing.T) {
		c, _ := dialJS(t, wsURL(l, "ws", "/amps/json"), nil)
		conn := recv(t, srv.conns, "connection")
		done := make(chan error, 1)
		go func() { done <- conn.Close() }()
		c.expectClose(websocket.StatusNormalClosure)
		if err := recv(t, done, "Close"); err != nil {
			t.Errorf("Close = %v", err)
		}
		// Close is idempotent and safe from several goroutines.
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				if err := conn.Close(); err != nil {
					t.Errorf("second Close = %v", err)
				}
			})
		}
		wg.Wait()
		if err := conn.WriteMessage(outMsg(t, `{"c":"heartbeat"}`, "")); err == nil {
			t.Error("WriteMessage after Close succeeded")
		}
		if err := recv(t, srv.errs, "read error"); err == nil {
			t.Error("ReadMessage after Close returned no error")
		}
	})
	t.Run("client closes", func(t *testing.T) {
		c, _ := dialJS(t, wsURL(l, "ws", "/amps/json"), nil)
		recv(t, srv.conns, "connection")
		c.send(true, "text")
		if err := c.ws.Close(websocket.StatusNormalClosure, "Disconnect from the client"); err != nil {
			t.Errorf("client Close = %v", err)
		}
		if err := recv(t, srv.errs, "read error"); err != io.EOF {
			t.Errorf("ReadMessage after client close 1000 = %v, want io.EOF", err)
		}
	})
	t.Run("silent peer", func(t *testing.T) {
		// A peer that never answers the close frame is dropped after
		// WebSocketCloseTimeout; Close must not hang.
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if _, err := nc.Write([]byte(wsUpgradeRequest)); err != nil {
			t.Fatal(err)
		}
		conn := recv(t, srv.conns, "connection")
		done := make(chan error, 1)
		go func() { done <- conn.Close() }()
		if err := recv(t, done, "Close of a silent peer"); err != nil {
			t.Errorf("Close = %v", err)
		}
		recv(t, srv.errs, "read error")
	})
}

func TestWebSocketTLS(t *testing.T) {
	cert, pool := testCert(t)
	l, srv, _ := listenWS(t, &WebSocketOptions{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	c, _ := dialJS(t, wsURL(l, "wss", "/amps/json"), &websocket.DialOptions{HTTPClient: client})
	conn := recv(t, srv.conns, "connection")
	if conn.Info().TLS == nil || !conn.Info().TLS.HandshakeComplete {
		t.Errorf("Info().TLS = %+v, want the completed handshake", conn.Info().TLS)
	}
	c.send(true, "text")
	c.burst(`{"c":"logon"}`)
	if got := recv(t, srv.msgs, "logon"); got.header != `{"c":"logon"}` {
		t.Errorf("got %q", got)
	}
	writeFlush(t, conn, `{"c":"ack","status":"success"}`, "")
	if got := c.readN(1); got[0] != (wsTestFrame{true, `{"c":"ack","status":"success"}`}) {
		t.Errorf("got %v", got)
	}
}

// testCert makes a certificate for 127.0.0.1 and the pool that trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	is := testcert.NewIssuer(t)
	return is.Server(t), is.Pool
}

func TestWebSocketOriginPolicy(t *testing.T) {
	tests := []struct {
		name   string
		opts   *WebSocketOptions
		origin string
		ok     bool
	}{
		{"default accepts any origin", nil, "http://evil.example", true},
		{"default accepts no origin (Node)", nil, "", true},
		{"pattern allows", &WebSocketOptions{OriginPatterns: []string{"*.good.example"}}, "https://app.good.example", true},
		{"pattern refuses", &WebSocketOptions{OriginPatterns: []string{"*.good.example"}}, "http://evil.example", false},
		{"pattern keeps same origin", &WebSocketOptions{OriginPatterns: []string{"*.good.example"}}, "http://SAME", true},
		{"skip verify overrides patterns", &WebSocketOptions{OriginPatterns: []string{"good.example"}, InsecureSkipVerifyOrigin: true}, "http://evil.example", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, _, hsErrs := listenWS(t, tt.opts)
			h := http.Header{}
			if tt.origin != "" {
				h.Set("Origin", strings.Replace(tt.origin, "SAME", l.Addr().String(), 1))
			}
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			ws, resp, err := websocket.Dial(ctx, wsURL(l, "ws", "/amps/json"), &websocket.DialOptions{HTTPHeader: h})
			if tt.ok {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				ws.CloseNow()
				return
			}
			if err == nil {
				ws.CloseNow()
				t.Fatal("dial succeeded, want 403")
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Errorf("response %v, want 403", resp)
			}
			if err := recv(t, hsErrs, "handshake error"); !errors.Is(err, ErrWebSocketUpgrade) {
				t.Errorf("Handshake error = %v, want ErrWebSocketUpgrade", err)
			}
		})
	}
}

func TestWebSocketPaths(t *testing.T) {
	// A path type other than the transport's is upgraded; the broker
	// refuses it at logon (amps-config §3.5).
	for _, tt := range []struct {
		name, fixed, path, wantType string
	}{
		{"fixed type, path without amps", "json", "/ws", ""},
		{"fixed type, same path type", "json", "/p/amps/json/", "json"},
		{"fixed type, other path type", "json", "/amps/nvfix", "nvfix"},
		{"free type, path without amps", "", "/amps", ""},
		{"free type, prefixed path", "", "/a/b/amps/xml", "xml"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, srv, _ := listenWS(t, &WebSocketOptions{MessageType: tt.fixed, Name: "portal"})
			dialJS(t, wsURL(l, "ws", tt.path), nil)
			info := recv(t, srv.conns, "connection").Info()
			if info.MessageType != tt.wantType || info.TransportMessageType != tt.fixed || info.Transport != "portal" {
				t.Errorf("Info = type %q transport type %q transport %q, want %q %q portal", info.MessageType, info.TransportMessageType, info.Transport, tt.wantType, tt.fixed)
			}
		})
	}
}

func TestWebSocketBadRequests(t *testing.T) {
	l, _, hsErrs := listenWS(t, nil)
	tests := []struct {
		name, request string
		status        int
		err           error
	}{
		{"plain GET", "GET /amps/json HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusUpgradeRequired, ErrWebSocketUpgrade},
		{"not HTTP", "hello\r\n\r\n", http.StatusBadRequest, ErrWebSocketRequest},
		{"huge head", "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", MaxWebSocketRequestBytes) + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge, ErrWebSocketRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(testTimeout))
			go nc.Write([]byte(tt.request)) // may fail once the server gives up reading
			resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if err := recv(t, hsErrs, "handshake error"); !errors.Is(err, tt.err) {
				t.Errorf("Handshake error = %v, want %v", err, tt.err)
			}
		})
	}
}

func TestWebSocketHandshakeContext(t *testing.T) {
	l, err := ListenWebSocket("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := l.Handshake(ctx, sc) // the client never sends a request
		done <- err
	}()
	cancel()
	if err := recv(t, done, "Handshake return after cancel"); !errors.Is(err, context.Canceled) {
		t.Errorf("Handshake = %v, want context.Canceled", err)
	}
}

func TestWebSocketHandler(t *testing.T) {
	srv := newRecServer(t)
	for _, tc := range []struct {
		name         string
		tls, deflate bool
	}{{"ws", false, true}, {"wss", true, true}, {"ws_uncompressed", false, false}} {
		useTLS := tc.tls
		t.Run(tc.name, func(t *testing.T) {
			h := NewWebSocketHandler(srv, &WebSocketOptions{PerMessageDeflate: tc.deflate})
			var hs *httptest.Server
			if useTLS {
				hs = httptest.NewTLSServer(h)
			} else {
				hs = httptest.NewServer(h)
			}
			defer hs.Close()
			url := strings.Replace(hs.URL, "http", "ws", 1) + "/amps-prod/amps/json"
			c, resp := dialJS(t, url, &websocket.DialOptions{HTTPClient: hs.Client(), CompressionMode: websocket.CompressionContextTakeover})
			if ext := resp.Header.Get("Sec-WebSocket-Extensions"); strings.Contains(ext, "permessage-deflate") != tc.deflate {
				t.Errorf("Sec-WebSocket-Extensions = %q with PerMessageDeflate %v", ext, tc.deflate)
			}
			if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != "" {
				t.Errorf("server chose subprotocol %q, want none", p)
			}
			conn := recv(t, srv.conns, "connection")
			if info := conn.Info(); info.MessageType != "json" || (info.TLS != nil) != useTLS || info.Request == nil || info.RemoteAddr == nil {
				t.Errorf("Info = %+v", info)
			}
			c.send(true, "text")
			body := strings.Repeat(`{"id":1,"qty":10}`, 100)
			c.burst(`{"c":"publish","t":"orders"}`, body)
			if got := recv(t, srv.msgs, "publish"); got != (msg{`{"c":"publish","t":"orders"}`, body}) {
				t.Errorf("got %.60q", got)
			}
			writeFlush(t, conn, `{"c":"p","t":"orders","l":1700}`, body)
			if got := c.readN(2); got[1] != (wsTestFrame{true, body}) {
				t.Errorf("delivery data frame %.60s", got[1])
			}
			c.ws.Close(websocket.StatusNormalClosure, "Disconnect from the client")
			if err := recv(t, srv.errs, "read error"); err != io.EOF {
				t.Errorf("ReadMessage = %v, want io.EOF", err)
			}
		})
	}
}

func TestWebSocketNoDeflateByDefault(t *testing.T) {
	l, srv, _ := listenWS(t, nil)
	_, resp := dialJS(t, wsURL(l, "ws", "/amps/json"), &websocket.DialOptions{CompressionMode: websocket.CompressionContextTakeover})
	recv(t, srv.conns, "connection")
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		t.Errorf("Sec-WebSocket-Extensions = %q without PerMessageDeflate", ext)
	}
}

func TestWebSocketGoClientStreamVariant(t *testing.T) {
	l, srv, _ := listenWS(t, nil)
	c, _ := dialJS(t, wsURL(l, "ws", "/amps/json"), nil)
	conn := recv(t, srv.conns, "connection")
	logon := `{"c":"logon","cid":"0","a":"processed","client_name":"go-probe","version":"0.8.18","mt":"json"}`
	c.send(false, string(protocol.AppendStreamFrame(nil, []byte(logon), nil)))
	if got := recv(t, srv.msgs, "logon"); got.header != logon {
		t.Fatalf("got %q", got)
	}
	writeFlush(t, conn, `{"c":"p","t":"orders","l":8}`, `{"id":1}`)
	want := wsTestFrame{false, string(protocol.AppendStreamFrame(nil, []byte(`{"c":"p","t":"orders","l":8}`), []byte(`{"id":1}`)))}
	if got := c.readN(1); got[0] != want {
		t.Errorf("got %v, want %v", got[0], want)
	}
}

// maskedFrame builds a client frame by hand (RFC 6455 §5.2).
func maskedFrame(opcode byte, p string) []byte { return appendMaskedFrame(nil, opcode, p) }

// appendMaskedFrame appends a final client frame of any length, masked.
func appendMaskedFrame(dst []byte, opcode byte, p string) []byte {
	key := [4]byte{1, 2, 3, 4}
	dst = append(dst, 0x80|opcode)
	switch {
	case len(p) < 126:
		dst = append(dst, 0x80|byte(len(p)))
	case len(p) <= 0xffff:
		dst = binary.BigEndian.AppendUint16(append(dst, 0x80|126), uint16(len(p)))
	default:
		dst = binary.BigEndian.AppendUint64(append(dst, 0x80|127), uint64(len(p)))
	}
	dst = append(dst, key[:]...)
	for i := range len(p) {
		dst = append(dst, p[i]^key[i%4])
	}
	return dst
}

func TestServeWebSocketOnStream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		conn transport.Conn
		err  error
	}
	res := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			res <- result{nil, err}
			return
		}
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			c.Close()
			res <- result{nil, err}
			return
		}
		info := &transport.ConnInfo{Transport: "tcp", Protocol: "amps", LocalAddr: c.LocalAddr(), RemoteAddr: c.RemoteAddr(), Request: req}
		conn, err := serveWebSocketOnStream(context.Background(), c, br, req, &streamConfig{webSocket: &WebSocketOptions{}}, info, time.Now().Add(testTimeout))
		res <- result{conn, err}
	}()

	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(testTimeout))
	// The request and the first frames in one write: the frames end up in
	// the stream transport's buffered reader and must not be lost.
	out := []byte("GET /prefix/amps/json HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	out = append(out, maskedFrame(1, "text")...)
	out = append(out, maskedFrame(2, "\x01\x00\x00\x00")...)
	out = append(out, maskedFrame(1, `{"c":"logon","cid":"auto0"}`)...)
	if _, err := nc.Write(out); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("response %d %v", resp.StatusCode, resp.Header)
	}
	r := recv(t, res, "upgrade")
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.conn.Close()
	info := r.conn.Info()
	if info.Transport != "tcp" || info.Protocol != WebSocketProtocol || info.MessageType != "json" {
		t.Errorf("Info = %+v", info)
	}
	h, _, err := r.conn.ReadMessage()
	if err != nil || string(h) != `{"c":"logon","cid":"auto0"}` {
		t.Fatalf("ReadMessage = %q, %v", h, err)
	}
	writeFlush(t, r.conn, `{"c":"ack","cid":"auto0"}`, "")
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(br, hdr); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, hdr[1])
	if _, err := io.ReadFull(br, p); err != nil {
		t.Fatal(err)
	}
	if hdr[0] != 0x81 || string(p) != `{"c":"ack","cid":"auto0"}` {
		t.Errorf("server frame % x %q, want a final text frame with the ack", hdr, p)
	}
}

func BenchmarkWebSocketConn(b *testing.B) {
	for _, size := range []int{64, 1024} {
		b.Run("publish_then_delivery_"+map[int]string{64: "64B", 1024: "1KiB"}[size], func(b *testing.B) {
			l, err := ListenWebSocket("127.0.0.1:0", nil)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			ready := make(chan transport.Conn, 1)
			go func() {
				c, err := l.Accept()
				if err != nil {
					close(ready)
					return
				}
				conn, err := l.Handshake(context.Background(), c)
				if err != nil {
					close(ready)
					return
				}
				ready <- conn
			}()
			ctx := context.Background()
			ws, _, err := websocket.Dial(ctx, "ws://"+l.Addr().String()+"/amps/json", nil)
			if err != nil {
				b.Fatal(err)
			}
			ws.SetReadLimit(-1)
			defer ws.CloseNow()
			conn := <-ready
			if conn == nil {
				b.Fatal("handshake failed")
			}
			defer conn.Close()
			body := []byte(strings.Repeat("x", size))
			header := []byte(`{"c":"publish","t":"orders"}`)
			// A delivery as the broker writes it: a header shared by every
			// recipient, with this connection's "sids" spliced in.
			oh := protocol.Header{Command: protocol.CmdP, Topic: "orders"}
			oh.Set(protocol.FieldLength, uint64(size))
			var shared protocol.SharedHeader
			shared.Prepare(nil, &oh)
			out := &protocol.Message{Shared: &shared, SubIDs: protocol.NewSubIDs("auto2"), Body: body}
			count := binary.LittleEndian.AppendUint32(nil, 2)
			ws.Write(ctx, websocket.MessageText, []byte("text"))
			b.SetBytes(int64(2 * (len(header) + size)))
			b.ReportAllocs()
			for b.Loop() {
				ws.Write(ctx, websocket.MessageBinary, count)
				ws.Write(ctx, websocket.MessageText, header)
				ws.Write(ctx, websocket.MessageText, body)
				if _, _, err := conn.ReadMessage(); err != nil {
					b.Fatal(err)
				}
				if err := conn.WriteMessage(out); err != nil {
					b.Fatal(err)
				}
				if err := conn.Flush(); err != nil {
					b.Fatal(err)
				}
				ws.Read(ctx)
				ws.Read(ctx)
			}
		})
	}
}
