package listener

import (
	"crypto/tls"
	"os"
	"time"
)

// TCPOptions configures ListenTCP. The zero value (or nil) is a plain TCP
// transport named "tcp" that accepts HTTP preflight.
type TCPOptions struct {
	// Name names the transport in logs and statistics. Default "tcp", or
	// "tcps" when TLSConfig is set.
	Name string
	// TLSConfig, when non-nil, makes the transport speak TLS (AMPS: a tcp
	// transport given a certificate and key, or a tcps transport). The host's
	// config is used as is, so GetCertificate-based reload works.
	TLSConfig *tls.Config
	// MessageType fixes the connection's message type (e.g. "json"); empty
	// lets the client choose.
	MessageType string
	// HandshakeTimeout bounds everything before AMPS messages flow: the
	// TLS handshake, the preflight request and, on a shared port, the
	// WebSocket upgrade. Default DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// MaxFrameSize is the largest inbound AMPS message (header plus body)
	// in bytes; a larger one ends the connection. Default
	// protocol.DefaultMaxFrameSize.
	MaxFrameSize int
	// WebSocket, when non-nil, lets WebSocket clients share this port: a
	// request with "Upgrade: websocket" is handed to the WebSocket transport
	// with these options. The port's own Name, TLSConfig, HandshakeTimeout
	// and MaxFrameSize apply to those connections too; the ones in
	// WebSocket are not used.
	WebSocket *WebSocketOptions
}

// UnixOptions configures ListenUnix. The zero value (or nil) works.
type UnixOptions struct {
	// Name names the transport. Default "unix".
	Name string
	// Mode is the socket file's permission bits. Default DefaultUnixMode.
	Mode os.FileMode
	// MessageType fixes the connection's message type; empty lets the client choose.
	MessageType string
	// HandshakeTimeout bounds the preflight request. Default
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// MaxFrameSize is the largest inbound AMPS message (header plus body)
	// in bytes; a larger one ends the connection. Default
	// protocol.DefaultMaxFrameSize.
	MaxFrameSize int
}

// WebSocketOptions configures ListenWebSocket and NewWebSocketHandler. The
// zero value (or nil) works.
type WebSocketOptions struct {
	// Name names the transport. Default "websocket".
	Name string
	// TLSConfig, when non-nil, serves wss.
	TLSConfig *tls.Config
	// MessageType fixes the connection's message type; empty takes it from
	// the URL path ".../amps/<mt>".
	MessageType string
	// OriginPatterns lists allowed Origin host patterns for browser clients.
	// See the WebSocket listener for the default.
	OriginPatterns []string
	// InsecureSkipVerifyOrigin accepts every Origin.
	InsecureSkipVerifyOrigin bool
	// MaxFrameSize is the largest inbound AMPS message (header plus body,
	// however many WebSocket frames carry it) in bytes; a larger one closes
	// the connection with status 1009. Default protocol.DefaultMaxFrameSize.
	// It has the name and type of the stream transports' option because it
	// is the same limit.
	MaxFrameSize int
	// PerMessageDeflate offers permessage-deflate compression.
	PerMessageDeflate bool
	// HandshakeTimeout bounds the TLS handshake and the HTTP upgrade
	// (ListenWebSocket), or the writing of the upgrade response
	// (NewWebSocketHandler: the host's http.Server reads the request under
	// its own timeouts). Default DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
}
