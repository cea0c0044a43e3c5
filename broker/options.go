package broker

import (
	"context"
	"log/slog"
	"time"

	"github.com/ampsbroker/ampsbroker/listener"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// Defaults for Options. Each applies when the corresponding field is zero.
const (
	// DefaultVersion is the server version reported on logon acks. The
	// official JavaScript client needs four numeric parts and honours
	// flush("persisted") only from 5.3.3.0 on (wire spec §7.1).
	DefaultVersion = "5.3.4.0"

	// DefaultOutboundQueueBytes bounds the bytes queued for one connection
	// but not yet written. A connection that exceeds it is a slow consumer
	// and is disconnected (AMPS reason "slow client"). 64 MiB holds several
	// seconds of a busy feed without letting one reader hold the heap.
	DefaultOutboundQueueBytes = 64 << 20

	// DefaultHandshakeTimeout bounds TLS, preflight and WebSocket handshakes
	// run by Serve.
	DefaultHandshakeTimeout = 10 * time.Second

	// DefaultLogonTimeout is how long a connection may stay without a
	// successful logon before it is closed.
	DefaultLogonTimeout = 30 * time.Second

	// DefaultHeartbeatMisses is how many heartbeat intervals of inbound
	// silence end a connection that started heartbeats. The JS client may
	// legitimately beat only every second interval (wire spec §10.2), so 3
	// leaves one interval of slack.
	DefaultHeartbeatMisses = 3

	// HeartbeatTicksPerInterval is how many server heartbeats are sent per
	// client interval N. The JS client beats back only when more than N has
	// passed since its previous beat, and gives up 2N after it (wire spec
	// §10.2). With a tick every N exactly, a tick that arrives a hair early
	// is skipped and the next one races the 2N deadline (seen under load).
	// With a tick every N/2 the client beats at most 1.5N apart.
	HeartbeatTicksPerInterval = 2

	// DefaultWriteTimeout bounds one socket write of queued messages. A
	// reader that takes no bytes for this long is a slow consumer.
	DefaultWriteTimeout = 30 * time.Second
)

// Options configures a Broker. The zero value works: it accepts every logon
// and logs nothing.
type Options struct {
	// Logger receives the broker's logs. Default: discard.
	Logger *slog.Logger

	// Version is the server version reported on logon acks. Default
	// DefaultVersion. It must have at least four dot-separated numeric parts.
	Version string

	// Authenticator checks logons. Default: accept everyone, and the logon
	// ack says "authentication disabled" as AMPS does.
	Authenticator Authenticator

	// OutboundQueueBytes bounds each connection's queued outbound bytes.
	// Default DefaultOutboundQueueBytes.
	OutboundQueueBytes int

	// WriteTimeout bounds one write to a client. Default DefaultWriteTimeout.
	WriteTimeout time.Duration

	// HandshakeTimeout bounds listener handshakes in Serve. Default
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	// LogonTimeout closes connections that have not logged on in time.
	// Default DefaultLogonTimeout.
	LogonTimeout time.Duration

	// HeartbeatMisses is how many heartbeat intervals of silence close a
	// heartbeating connection. Default DefaultHeartbeatMisses.
	HeartbeatMisses int
}

// Authenticator decides whether a logon is accepted. It is called once per
// logon, from the connection's own goroutine; it may block (ctx is cancelled
// when the connection or the broker closes).
type Authenticator interface {
	// Authenticate returns nil to accept the logon. Any error rejects it with
	// the AMPS reason "auth failure"; the error is logged, not sent.
	Authenticate(ctx context.Context, req *LogonRequest) error
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context, req *LogonRequest) error

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, req *LogonRequest) error {
	return f(ctx, req)
}

// LogonRequest is what an Authenticator sees.
type LogonRequest struct {
	// Header is the logon command's header: UserID, Password, ClientName,
	// Version, MessageType, Options.
	Header *protocol.Header
	// Conn describes the connection: transport, addresses, preflight or
	// WebSocket request headers, TLS state. Nil for in-process clients.
	Conn *listener.ConnInfo
}
