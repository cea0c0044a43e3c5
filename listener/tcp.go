package listener

import (
	"context"
	"fmt"
	"net"

	"github.com/ampsbroker/ampsbroker/transport"
)

// TCPListener is a TCP transport (AMPS types tcp and tcps): plain TCP, or TLS
// when TCPOptions.TLSConfig is set. Every connection may start with an HTTP
// preflight, an HTTP upgrade request a client sends before any AMPS bytes
// so that HTTP proxies pass the connection (see Handshake). It implements
// Listener.
type TCPListener struct {
	ln  net.Listener
	cfg streamConfig
}

var _ transport.Listener = (*TCPListener)(nil)

// ListenTCP listens on addr, an AMPS InetAddr (see ParseTCPAddr): "9007" or
// ":9007" listens on IPv4 and IPv6, "0.0.0.0:9007" on IPv4 only, "[::]:9007"
// on IPv6 only. Port 0 picks a free port; Addr reports it. A nil opts means
// all defaults.
func ListenTCP(addr string, opts *TCPOptions) (*TCPListener, error) {
	network, address, err := ParseTCPAddr(addr)
	if err != nil {
		return nil, err
	}
	if opts != nil && opts.TLSConfig != nil {
		t := opts.TLSConfig
		if len(t.Certificates) == 0 && t.GetCertificate == nil && t.GetConfigForClient == nil {
			return nil, fmt.Errorf("listener: TLS on %q: TLSConfig has no certificate (set Certificates, GetCertificate or GetConfigForClient)", addr)
		}
	}
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, fmt.Errorf("listener: listening on InetAddr %q (%s %s): %w", addr, network, address, err)
	}
	return NewTCPListener(ln, opts), nil
}

// NewTCPListener serves the TCP transport on a listener the host created, for
// instance one inherited through socket activation. The TLS handshake, if
// any, runs in Handshake, so l must accept plain connections. Close closes l.
// A nil opts means all defaults.
func NewTCPListener(l net.Listener, opts *TCPOptions) *TCPListener {
	var o TCPOptions
	if opts != nil {
		o = *opts
	}
	name := o.Name
	if name == "" {
		name = "tcp"
		if o.TLSConfig != nil {
			name = "tcps"
		}
	}
	return &TCPListener{
		ln: l,
		cfg: streamConfig{
			name:         name,
			tlsConfig:    o.TLSConfig,
			timeout:      o.HandshakeTimeout,
			messageType:  o.MessageType,
			maxFrameSize: o.MaxFrameSize,
			webSocket:    o.WebSocket,
		},
	}
}

// Accept waits for the next connection. After Close it returns an error
// wrapping net.ErrClosed.
func (l *TCPListener) Accept() (net.Conn, error) { return l.ln.Accept() }

// Handshake runs the TLS handshake (when configured), then checks for an
// HTTP preflight: a request asking for "Upgrade: tcp", "tcps" or no upgrade
// is answered with 101 and the connection continues with AMPS framing; one
// asking for "Upgrade: websocket" is handed to the WebSocket transport when
// TCPOptions.WebSocket is set; anything else is answered with 400 and
// closed (wire spec §4.3). All of it is bounded by ctx and
// TCPOptions.HandshakeTimeout. On error c is closed.
func (l *TCPListener) Handshake(ctx context.Context, c net.Conn) (transport.Conn, error) {
	return handshakeStream(ctx, c, &l.cfg)
}

// Addr returns the bound address, with the real port when port 0 was asked.
func (l *TCPListener) Addr() net.Addr { return l.ln.Addr() }

// Name returns TCPOptions.Name, by default "tcp", or "tcps" with TLS.
func (l *TCPListener) Name() string { return l.cfg.name }

// Close stops accepting. Connections already accepted stay open.
func (l *TCPListener) Close() error { return l.ln.Close() }
