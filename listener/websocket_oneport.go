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
// addresses, TLS, its fixed MessageType). The work is bounded by ctx and by
// deadline, the one the stream handshake started with: a connection has
// one handshake timeout, the port's. The port's MaxFrameSize applies too.
// The connection keeps the stream transport's name, gets Protocol
// "websocket" and takes its message type from cfg.webSocket.MessageType,
// else the stream transport's fixed type, else the URL path. On error c is
// closed.
func serveWebSocketOnStream(ctx context.Context, c net.Conn, br *bufio.Reader, req *http.Request, cfg *streamConfig, info *transport.ConnInfo, deadline time.Time) (transport.Conn, error) {
	var o WebSocketOptions
	if cfg.webSocket != nil {
		o = *cfg.webSocket
	}
	o.MaxFrameSize = cfg.maxFrameSize
	base := *info
	if base.Transport == "" {
		base.Transport = o.name()
	}
	var conn transport.Conn
	if err := bounded(ctx, c, deadline, func() (err error) {
		conn, err = upgradeRaw(c, br, req, &o, base)
		return err
	}); err != nil {
		c.Close()
		return nil, fmt.Errorf("listener %s: websocket upgrade of %v: %w", base.Transport, base.RemoteAddr, err)
	}
	return conn, nil
}
