package listener

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/ampsbroker/ampsbroker/transport"

	"github.com/coder/websocket"
)

// WebSocket transport defaults (wire spec §3).
const (
	// DefaultWebSocketName names a WebSocket transport in logs and
	// statistics when WebSocketOptions.Name is empty.
	DefaultWebSocketName = "websocket"

	// WebSocketProtocol is transport.ConnInfo.Protocol for WebSocket connections.
	WebSocketProtocol = "websocket"

	// WebSocketCloseTimeout bounds the close handshake Conn.Close performs
	// (status 1000, wire spec §3.5). A peer that has not answered by then is
	// disconnected without it. Official clients answer at once; two seconds
	// lets a slow network finish without making shutdown wait long.
	WebSocketCloseTimeout = 2 * time.Second

	// MaxWebSocketRequestBytes bounds the HTTP upgrade request (request line
	// and headers) ListenWebSocket reads. Browsers send well under 8 KiB even
	// with cookies; 64 KiB leaves room for large Authorization tokens.
	MaxWebSocketRequestBytes = 64 << 10

	// wsWriteBufferSize is the buffer the WebSocket library assembles
	// frames in when it writes data frames itself (with permessage-deflate,
	// see websocket_wire.go); it flushes after every frame.
	wsWriteBufferSize = 16 << 10

	// wsRequestBufferSize is the buffered reader the upgrade request is read
	// through.
	wsRequestBufferSize = 4 << 10

	// wsRetainBufferBytes is the largest read buffer a connection keeps
	// between messages, so an idle connection does not pin the memory of
	// one big message.
	wsRetainBufferBytes = 1 << 20

	// wsMaxCloseReason is the longest close reason a close frame can carry
	// (125-byte control payload minus the 2-byte status code, RFC 6455 §5.5).
	wsMaxCloseReason = 123
)

// Errors of the WebSocket handshake. Each is wrapped with the details of the
// request; the client got an HTTP error response.
var (
	// ErrWebSocketRequest means the upgrade request could not be read: it was
	// not HTTP, or its head exceeded MaxWebSocketRequestBytes. The client got
	// 400 or 431.
	ErrWebSocketRequest = errors.New("listener: bad websocket upgrade request")

	// ErrWebSocketUpgrade means the WebSocket library refused the upgrade
	// (not a WebSocket request, wrong version or key, forbidden Origin). The
	// client got the library's error response (426, 400, 403, ...).
	ErrWebSocketUpgrade = errors.New("listener: websocket upgrade refused")
)

// WebSocketListener serves the WebSocket encoding of the official AMPS
// JavaScript client (wire spec §3) on its own TCP port, plain (ws) or TLS
// (wss). It implements Listener: Accept returns raw connections and
// Handshake runs TLS, reads the HTTP upgrade request and answers it.
type WebSocketListener struct {
	ln   net.Listener
	opts WebSocketOptions
}

// ListenWebSocket listens on addr, an AMPS InetAddr (see ParseTCPAddr), for
// WebSocket clients. opts may be nil.
func ListenWebSocket(addr string, opts *WebSocketOptions) (*WebSocketListener, error) {
	network, address, err := ParseTCPAddr(addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, fmt.Errorf("listener: websocket listen on %q: %w", addr, err)
	}
	l := &WebSocketListener{ln: ln}
	if opts != nil {
		l.opts = *opts
	}
	return l, nil
}

// Accept waits for the next raw connection.
func (l *WebSocketListener) Accept() (net.Conn, error) { return l.ln.Accept() }

// Addr is the bound address.
func (l *WebSocketListener) Addr() net.Addr { return l.ln.Addr() }

// Name is the transport's name, DefaultWebSocketName unless configured.
func (l *WebSocketListener) Name() string { return l.opts.name() }

// Close stops accepting; connections already returned stay open.
func (l *WebSocketListener) Close() error { return l.ln.Close() }

// Handshake runs the TLS handshake when configured, reads the upgrade
// request and upgrades c. It is bounded by ctx and by the HandshakeTimeout
// option (default DefaultHandshakeTimeout). A request that is not a valid
// WebSocket upgrade gets an HTTP error response. On error c is closed.
func (l *WebSocketListener) Handshake(ctx context.Context, c net.Conn) (transport.Conn, error) {
	info := transport.ConnInfo{
		Transport:  l.opts.name(),
		LocalAddr:  c.LocalAddr(),
		RemoteAddr: c.RemoteAddr(),
	}
	fail := func(err error) (transport.Conn, error) {
		c.Close()
		return nil, fmt.Errorf("listener %s: websocket handshake with %v: %w", info.Transport, info.RemoteAddr, err)
	}
	var conn transport.Conn
	if err := bounded(ctx, c, time.Now().Add(handshakeTimeout(l.opts.HandshakeTimeout)), func() (err error) {
		conn, err = l.handshake(c, &info)
		return err
	}); err != nil {
		return fail(err)
	}
	return conn, nil
}

// handshake is Handshake's work on c, whose deadline is set.
func (l *WebSocketListener) handshake(c net.Conn, info *transport.ConnInfo) (*wsConn, error) {
	nc := c
	if l.opts.TLSConfig != nil {
		tc := tls.Server(c, l.opts.TLSConfig)
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		st := tc.ConnectionState()
		info.TLS = &st
		nc = tc
	}
	// The request head is read through a limit; bytes the client sent after
	// it (its first frames) stay in br and are handed to the WebSocket
	// library with the hijacked connection.
	lr := &io.LimitedReader{R: nc, N: MaxWebSocketRequestBytes}
	br := bufio.NewReaderSize(lr, wsRequestBufferSize)
	req, err := http.ReadRequest(br)
	if err != nil {
		rw := newWSRawResponse(nc, br)
		if lr.N == 0 {
			http.Error(rw, "request header too large", http.StatusRequestHeaderFieldsTooLarge)
			rw.finish()
			return nil, fmt.Errorf("%w: head exceeds %d bytes", ErrWebSocketRequest, MaxWebSocketRequestBytes)
		}
		http.Error(rw, "malformed HTTP request", http.StatusBadRequest)
		rw.finish()
		return nil, fmt.Errorf("%w: %w", ErrWebSocketRequest, err)
	}
	lr.N = 1<<63 - 1 // the head is read; the limit no longer applies
	return upgradeRaw(nc, br, req, &l.opts, *info)
}

// upgradeRaw answers the upgrade request req, read from nc through br, on
// nc itself.
func upgradeRaw(nc net.Conn, br *bufio.Reader, req *http.Request, opts *WebSocketOptions, info transport.ConnInfo) (*wsConn, error) {
	req.RemoteAddr = nc.RemoteAddr().String()
	req.TLS = info.TLS
	rw := newWSRawResponse(nc, br)
	conn, err := wsUpgrade(rw, req, opts, info)
	if err != nil {
		rw.finish()
		return nil, err
	}
	return conn, nil
}

func (o *WebSocketOptions) name() string {
	if o.Name != "" {
		return o.Name
	}
	return DefaultWebSocketName
}

// acceptOptions maps the options to the WebSocket library's.
//
// Origin policy: with no OriginPatterns every Origin is accepted. The
// library's own default (same origin only) would lock out every browser
// page not served by the broker itself, while Node clients send no Origin
// at all; wire spec §3.1 says not to reject by default and AMPS has no
// origin check (amps-config §3.11). Credentials travel in the AMPS logon,
// not in cookies, which limits cross-site abuse. A host that wants the
// check lists allowed origin hosts in OriginPatterns; then the request's
// own host and those patterns are accepted and other origins get 403,
// unless InsecureSkipVerifyOrigin is also set.
func (o *WebSocketOptions) acceptOptions() *websocket.AcceptOptions {
	ao := &websocket.AcceptOptions{
		// No subprotocol is offered: the JS client asks for none and the
		// broker should send none (wire spec §3.1).
		OriginPatterns:     o.OriginPatterns,
		InsecureSkipVerify: o.InsecureSkipVerifyOrigin || len(o.OriginPatterns) == 0,
	}
	if o.PerMessageDeflate {
		// Context takeover: AMPS traffic is many small, similar JSON
		// messages, which compress only against earlier ones. It costs a
		// 32 KiB window per direction per connection.
		ao.CompressionMode = websocket.CompressionContextTakeover
	}
	return ao
}
