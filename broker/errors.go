package broker

import "errors"

// Errors returned by the broker's methods.
var (
	// ErrBrokerClosed is returned by Serve, ServeConn and Connect after
	// Shutdown or Close, and is the close cause of every connection and
	// in-process client that the broker's Shutdown or Close ended.
	ErrBrokerClosed = errors.New("broker: closed")

	// ErrTooManyConnections is returned by ServeConn when a connection
	// limit (Options.MaxConnections, TransportOptions.MaxConnections) is
	// reached; the connection was closed.
	ErrTooManyConnections = errors.New("broker: too many connections")

	// ErrClientClosed is returned by a Client's methods after it closed;
	// it is the close cause of a Client its owner closed.
	ErrClientClosed = errors.New("broker: client closed")

	// ErrTransportDisabled is returned by ServeConn for a connection whose
	// transport DisableTransport turned off (the connection was closed),
	// and is the close cause of the connections DisableTransport dropped.
	ErrTransportDisabled = errors.New("broker: transport disabled")

	// ErrUnknownTransport is returned by DisableTransport and
	// EnableTransport for a name the broker does not know.
	ErrUnknownTransport = errors.New("broker: unknown transport")

	// ErrUnknownConn is returned by Disconnect for an ID that names no
	// open network connection.
	ErrUnknownConn = errors.New("broker: no such connection")
)

// Why a connection or in-process client ended: ServeConn returns the
// cause, ConnEvent.Err carries it, and Client.Err reports it. Each is a
// sentinel to match with errors.Is; the error returned may wrap it with
// details (the user, the command, the limit). A client that closed its
// connection itself ends with a nil cause. AMPS sends no farewell, so none
// of these reaches the client: they are for the host's logs and metrics.
var (
	// ErrSlowConsumer: the endpoint's outbound queue went over its byte
	// budget, or its oldest queued message over the age limit (AMPS
	// disconnect reason "slow client"). The connection is reset, not
	// closed behind the unsent data.
	ErrSlowConsumer = errors.New("broker: slow consumer")

	// ErrWriteTimeout: writing one batch of queued messages to the client
	// took longer than Options.WriteTimeout; the client stopped taking
	// data. Like a slow
	// consumer, the connection is reset.
	ErrWriteTimeout = errors.New("broker: write timeout: the client took no data")

	// ErrLogonTimeout: no logon arrived within Options.LogonTimeout.
	ErrLogonTimeout = errors.New("broker: no logon before the logon timeout")

	// ErrHeartbeatTimeout: a client that asked for heartbeats sent nothing
	// for Options.HeartbeatMisses heartbeat intervals.
	ErrHeartbeatTimeout = errors.New("broker: heartbeat timeout: the client went silent")

	// ErrEntitlementReset: Broker.ResetEntitlements disconnected the
	// user's connections so that they log on and are checked again.
	ErrEntitlementReset = errors.New("broker: entitlement reset")

	// ErrAdminDisconnect: Broker.Disconnect closed the connection, on an
	// administrator's request.
	ErrAdminDisconnect = errors.New("broker: disconnected by the administrator")

	// ErrAuthFailure: the Authenticator refused the logon; the client got
	// a failure ack with reason "auth failure" before the close.
	ErrAuthFailure = errors.New("broker: auth failure")

	// ErrLogonRefused: the logon was refused for another reason than
	// authentication (no or an unknown message type, or one the transport
	// does not serve); the failure ack names the reason.
	ErrLogonRefused = errors.New("broker: logon refused")

	// ErrNameInUse: with a journal, client names are unique (replay
	// spec §7.7). As a close cause: a new logon with the same client name
	// and user took the name over (AMPS disconnect reason "name in use").
	// Wrapped with ErrLogonRefused: the logon was refused because the name
	// is connected under another user; the client got a failure ack with
	// reason "name in use".
	ErrNameInUse = errors.New("broker: client name in use")

	// ErrProtocol: the client broke the protocol: a malformed or oversized
	// frame or header, a command before logon, or an unknown command. For
	// the last two the client got a failure ack before the close.
	ErrProtocol = errors.New("broker: protocol error")
)
