package listener

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/ampsbroker/ampsbroker/transport"
)

// serveWebSocketOnStream completes a WebSocket upgrade that arrived on a
// stream port as a preflight-style request with "Upgrade: websocket" (one
// port for all clients; wire spec §4.3 step 4) and returns the WebSocket
// message connection.
//
// c is the accepted connection (a *tls.Conn under TLS) with no deadline; br
// holds the bytes read past req's head, which may already be the client's
// first frames; info was filled by the stream transport (Transport,
// addresses, TLS, its fixed MessageType). The work is bounded by ctx and
// opts.HandshakeTimeout (default DefaultHandshakeTimeout). The connection
// keeps the stream transport's name, gets Protocol "websocket" and takes its
// message type from opts.MessageType, else the stream transport's fixed
// type, else the URL path. On error c is closed.
func serveWebSocketOnStream(ctx context.Context, c net.Conn, br *bufio.Reader, req *http.Request, opts *WebSocketOptions, info *transport.ConnInfo) (transport.Conn, error) {
	var o WebSocketOptions
	if opts != nil {
		o = *opts
	}
	base := *info
	if base.Transport == "" {
		base.Transport = o.name()
	}
	fail := func(err error) (transport.Conn, error) {
		c.Close()
		return nil, fmt.Errorf("listener %s: websocket upgrade of %v: %w", base.Transport, base.RemoteAddr, err)
	}
	if err := context.Cause(ctx); err != nil {
		return fail(err)
	}
	if err := c.SetDeadline(time.Now().Add(o.handshakeTimeout())); err != nil {
		return fail(err)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(aLongTimeAgo) })
	conn, err := upgradeRaw(c, br, req, &o, base)
	if !stop() {
		return fail(context.Cause(ctx))
	}
	if err != nil {
		return fail(err)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return fail(err)
	}
	return conn, nil
}
