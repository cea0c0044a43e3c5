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

	"github.com/ampsbroker/ampsbroker/preflight"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// DefaultHandshakeTimeout bounds what a transport does before AMPS
// messages flow: the TLS handshake, an HTTP preflight, a WebSocket upgrade.
// It is the default of the HandshakeTimeout option of every transport
// (TCPOptions, UnixOptions, WebSocketOptions), the only handshake timeout
// there is: the broker runs Handshake under a context that ends only when
// it shuts down. Clients do all of it right after connecting, so ten
// seconds only matters for a client that stalls; such a client holds a
// socket and a goroutine until then.
const DefaultHandshakeTimeout = 10 * time.Second

// handshakeTimeout is d, or DefaultHandshakeTimeout when d is not positive.
func handshakeTimeout(d time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return DefaultHandshakeTimeout
}

// Internal tuning of the stream handshake.
const (
	// preflightReadBufferSize is the buffer that Detect and the preflight
	// request are read through. The stream codec has its own buffer, so
	// this one only needs to hold a typical request line plus headers; a
	// longer head is read in pieces, still capped by
	// preflight.DefaultMaxHeaderBytes.
	preflightReadBufferSize = 4 << 10

	// refuseLinger bounds how long a refused connection is drained after
	// its 400 answer, and refuseDrainBytes how much is read. Closing a
	// socket that still has unread input makes the kernel send RST, which
	// can destroy the 400 before the client reads it; reading what the
	// client already sent (after shutting down our side) lets the close
	// end with FIN instead.
	refuseLinger     = 500 * time.Millisecond
	refuseDrainBytes = 64 << 10
)

// aLongTimeAgo is a deadline in the past: setting it makes blocked reads and
// writes return at once.
var aLongTimeAgo = time.Unix(1, 0)

// bounded runs step with c's deadline set to deadline and moved into the
// past when ctx ends, which unblocks whatever read or write step is in.
// It clears the deadline afterwards. If ctx ended while step ran, it
// returns ctx's cause: the deadline may have been set after anything it
// could clear, and ctx says to give up anyway.
func bounded(ctx context.Context, c net.Conn, deadline time.Time, step func() error) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	if err := c.SetDeadline(deadline); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(aLongTimeAgo) })
	err := step()
	if !stop() {
		return context.Cause(ctx)
	}
	if err != nil {
		return err
	}
	return c.SetDeadline(time.Time{})
}

// streamConfig is the part of TCPOptions and UnixOptions that handshakeStream
// needs, with defaults applied.
type streamConfig struct {
	name         string
	tlsConfig    *tls.Config   // nil: no TLS
	timeout      time.Duration // <= 0: DefaultHandshakeTimeout
	messageType  string
	maxFrameSize int               // <= 0: protocol.DefaultMaxFrameSize
	webSocket    *WebSocketOptions // nil: refuse WebSocket upgrades
}

// streamConn is the transport.Conn returned for the stream encoding.
type streamConn struct {
	protocol.Conn
	info *transport.ConnInfo
	raw  net.Conn // the accepted conn, or the *tls.Conn over it
}

// Info describes the connection.
func (c *streamConn) Info() *transport.ConnInfo { return c.info }

// Abort implements transport.Aborter.
func (c *streamConn) Abort() error {
	// Reset the socket first: closing the codec first would close a TLS
	// session, which tries to send close_notify behind the unsent data.
	err := abortNetConn(c.raw)
	c.Conn.Close() // marks the codec closed; the socket is already gone
	return err
}

// hello is the outcome of the steps before AMPS framing.
type hello struct {
	conn      net.Conn      // the accepted conn, or the *tls.Conn over it
	br        *bufio.Reader // holds bytes already read past the handshake
	req       *http.Request // the preflight request; nil without preflight
	webSocket bool          // req asks for WebSocket and cfg allows it
}

// handshakeStream runs the handshake of a stream transport (TCP, TLS, Unix)
// on c and returns the message connection: optional TLS handshake, then the
// preflight check, then the stream codec. Every stream connection may start
// with an HTTP upgrade request (a preflight) before its AMPS frames; AMPS
// accepts one on any stream transport, with no setting to turn it on.
//
// Everything is bounded by ctx and cfg.timeout through c's deadline, which is
// cleared again on success. On error c is closed.
func handshakeStream(ctx context.Context, c net.Conn, cfg *streamConfig) (transport.Conn, error) {
	info := &transport.ConnInfo{
		Transport:            cfg.name,
		Protocol:             "amps",
		LocalAddr:            c.LocalAddr(),
		RemoteAddr:           c.RemoteAddr(),
		TransportMessageType: cfg.messageType,
	}
	fail := func(err error) (transport.Conn, error) {
		c.Close()
		return nil, fmt.Errorf("listener %s: handshake with %v: %w", cfg.name, info.RemoteAddr, err)
	}
	deadline := time.Now().Add(handshakeTimeout(cfg.timeout))
	var h hello
	if err := bounded(ctx, c, deadline, func() (err error) {
		h, err = cfg.hello(c, deadline, info)
		return err
	}); err != nil {
		return fail(err)
	}
	info.Request = h.req
	if h.webSocket {
		// The upgrade finishes within the same deadline: one handshake
		// timeout per connection, whatever it turns out to speak.
		return serveWebSocketOnStream(ctx, h.conn, h.br, h.req, cfg, info, deadline)
	}
	if h.req != nil {
		// The path's type is what the client asked for; with a fixed
		// type the broker refuses a different one at logon (amps-config
		// §3.5).
		info.MessageType = preflight.MessageType(h.req.URL.Path)
	}
	pc := protocol.NewStreamConn(preflight.NewConn(h.conn, h.br), &protocol.StreamOptions{MaxFrameSize: cfg.maxFrameSize})
	return &streamConn{Conn: pc, info: info, raw: h.conn}, nil
}

// hello runs TLS and the preflight on c, whose deadline is already set.
func (cfg *streamConfig) hello(c net.Conn, deadline time.Time, info *transport.ConnInfo) (hello, error) {
	if cfg.tlsConfig != nil {
		tc := tls.Server(c, cfg.tlsConfig)
		if err := tc.Handshake(); err != nil {
			return hello{}, fmt.Errorf("TLS handshake: %w", err)
		}
		st := tc.ConnectionState()
		info.TLS = &st
		c = tc
	}
	br := bufio.NewReaderSize(c, preflightReadBufferSize)
	isHTTP, err := preflight.Detect(br)
	if err != nil {
		return hello{}, err
	}
	if !isHTTP {
		return hello{conn: c, br: br}, nil
	}
	req, err := preflight.ReadRequest(br, preflight.DefaultMaxHeaderBytes)
	if err != nil {
		if errors.Is(err, preflight.ErrMalformed) || errors.Is(err, preflight.ErrHeaderTooLarge) {
			refuse(c, deadline)
		}
		return hello{}, err
	}
	kind, err := preflight.Classify(req)
	if err != nil {
		refuse(c, deadline)
		return hello{}, err
	}
	if kind == preflight.WebSocket {
		if cfg.webSocket == nil {
			// A WebSocket upgrade is served only by a transport that
			// also serves WebSocket; anywhere else it gets 400 like any
			// other request the transport cannot serve.
			refuse(c, deadline)
			return hello{}, fmt.Errorf("%w: WebSocket upgrade to %q on a transport that does not serve WebSocket",
				preflight.ErrUpgradeRefused, req.RequestURI)
		}
		return hello{conn: c, br: br, req: req, webSocket: true}, nil
	}
	if err := preflight.WriteSwitchingProtocols(c); err != nil {
		return hello{}, err
	}
	return hello{conn: c, br: br, req: req}, nil
}

// refuse answers a preflight with 400 (wire spec §4.3 step 5) and lets the
// answer reach the client before the caller closes c: it shuts down the
// sending side, then discards what the client still sends, for at most
// refuseLinger and refuseDrainBytes.
func refuse(c net.Conn, deadline time.Time) {
	if preflight.WriteBadRequest(c) != nil {
		return
	}
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	if linger := time.Now().Add(refuseLinger); linger.Before(deadline) {
		c.SetReadDeadline(linger)
	}
	io.CopyN(io.Discard, c, refuseDrainBytes)
}
