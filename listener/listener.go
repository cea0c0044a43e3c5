// Package listener provides the transports a Broker serves: TCP (optionally
// TLS, with HTTP preflight), Unix domain sockets and WebSocket. A Listener
// accepts raw connections; its Handshake turns one into a Conn that carries
// AMPS messages. The broker drives both, so the goroutine that runs a
// handshake belongs to the broker and is stopped by Broker.Shutdown.
package listener

import (
	"net"
)

// abortNetConn resets c when it is TCP (directly or under TLS) and closes
// it. Under TLS it closes the TCP connection beneath: a TLS close would
// first try to send close_notify behind the unsent data.
func abortNetConn(c net.Conn) error {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn()
	}
	if tcp, ok := c.(*net.TCPConn); ok {
		tcp.SetLinger(0)
	}
	return c.Close()
}
