// Package transport holds the few interfaces that join a transport to the
// broker: a Listener accepts raw connections and turns each into a Conn
// that carries AMPS messages; a ConnServer (the broker) runs a session on
// a Conn. Package listener implements them for TCP, TLS, Unix sockets and
// WebSocket; package broker drives them. Neither imports the other, so a
// host can bring its own transport, and an Authenticator reads ConnInfo
// without pulling in any transport code.
package transport

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"

	"github.com/ampsbroker/ampsbroker/protocol"
)

// Listener is a transport the broker serves. Package listener has
// TCPListener, UnixListener and WebSocketListener; a host may supply its
// own.
type Listener interface {
	// Accept waits for and returns the next raw connection. After Close it
	// returns an error wrapping net.ErrClosed.
	Accept() (net.Conn, error)

	// Handshake performs what the transport needs before AMPS messages flow
	// (TLS handshake, HTTP preflight, WebSocket upgrade) and returns the
	// message connection. It bounds its own duration (package listener's
	// listeners by their HandshakeTimeout option; the broker sets no
	// deadline) and must return when ctx is done; on error it has closed
	// c.
	Handshake(ctx context.Context, c net.Conn) (Conn, error)

	// Addr is the bound address (with the real port when port 0 was asked for).
	Addr() net.Addr

	// Name names the transport in logs and statistics, e.g. "tcp" or the
	// Name option given by the host.
	Name() string

	// Close stops accepting. Connections already returned stay open.
	Close() error
}

// Conn is one client connection ready to carry AMPS messages.
type Conn interface {
	protocol.Conn
	// Info describes the connection; the returned value must not be modified.
	Info() *ConnInfo
}

// Aborter is implemented by Conns that can drop a connection at once,
// discarding data not yet sent: a TCP reset instead of a FIN queued behind
// megabytes the client is not reading, and no WebSocket close handshake.
// The broker aborts the clients it cuts off as slow consumers: AMPS
// discards what was queued for such a client anyway, so neither the kernel
// nor the client should wait on it.
type Aborter interface {
	// Abort closes the connection at once, dropping unsent data.
	Abort() error
}

// ConnInfo describes an accepted connection to the broker's Authenticator,
// logs and statistics.
type ConnInfo struct {
	// Transport is the Name of the listener that accepted the connection.
	Transport string
	// Protocol is "amps" for the stream encoding or "websocket".
	Protocol string
	// LocalAddr and RemoteAddr are the socket addresses.
	LocalAddr, RemoteAddr net.Addr
	// MessageType is the message type the connection asked for in its URL
	// path (".../amps/<mt>", WebSocket and preflight); empty when it did
	// not.
	MessageType string
	// TransportMessageType is the transport's configured MessageType;
	// empty when clients choose. With it set, a connection that asks for
	// another type is refused at logon.
	TransportMessageType string
	// Request is the HTTP request line and headers of a preflight or a
	// WebSocket upgrade; nil for a plain stream connection.
	Request *http.Request
	// TLS is the TLS state; nil without TLS.
	TLS *tls.ConnectionState
}

// ConnServer runs an AMPS session on a Conn until it ends. *broker.Broker
// implements it; the WebSocket http.Handler hands upgraded connections to it.
type ConnServer interface {
	// ServeConn runs the session on c until it ends or ctx is done, closes
	// c, and returns why the session ended (nil: the client closed it).
	ServeConn(ctx context.Context, c Conn) error
}
