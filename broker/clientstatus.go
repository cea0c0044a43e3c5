package broker

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"strconv"
	"time"
)

// ClientStatusTopic is where the broker publishes a status record when a
// client connects, logs on (or fails to), disconnects, enters or removes
// a subscription, queries the State of the World or deletes from it (AMPS's
// /AMPS/ClientStatus event topic). Clients subscribe to it, with filters,
// like any topic; they cannot publish to it. Records are JSON, for json
// connections: {"ClientStatus":{"event":…,"client_name":…,…}}. A record is
// built only when someone subscribes.
const ClientStatusTopic = "/AMPS/ClientStatus"

// The events of ClientStatusTopic [I: AMPS does not list its event names;
// these are the commands' names and the connection's transitions].
const (
	StatusConnect      = "connect"
	StatusLogon        = "logon"
	StatusLogonFailure = "logon_failure"
	StatusDisconnect   = "disconnect"
	StatusUnsubscribe  = "unsubscribe"
)

// clientStatus is one record of ClientStatusTopic.
type clientStatus struct {
	Event          string `json:"event"`
	ClientName     string `json:"client_name,omitempty"`
	ConnectionName string `json:"connection_name"`
	ClientAddress  string `json:"client_address,omitempty"`
	AuthID         string `json:"auth_id,omitempty"`
	Timestamp      string `json:"timestamp"`
	Topic          string `json:"topic,omitempty"`
	Filter         string `json:"filter,omitempty"`
	Options        string `json:"options,omitempty"`
	SubID          string `json:"sub_id,omitempty"`
	QueryID        string `json:"query_id,omitempty"`
	CorrelationID  string `json:"correlation_id,omitempty"`
	Reason         string `json:"reason,omitempty"`
}

// status publishes ev about this session to ClientStatusTopic, filling in
// who the session is.
func (s *session) status(ev clientStatus) {
	r := s.b.router(DefaultClientMessageType)
	rs := r.routes(ClientStatusTopic)
	if len(rs.targets) == 0 {
		return // nobody listens: build nothing
	}
	ev.ClientName = s.name
	ev.ConnectionName = s.connectionName()
	if s.info.RemoteAddr != nil {
		ev.ClientAddress = s.info.RemoteAddr.String()
	}
	if u := s.userID.Load(); u != nil {
		ev.AuthID = *u
	}
	ev.Timestamp = timestamp(time.Now().UnixNano())
	body, err := json.Marshal(struct {
		ClientStatus clientStatus `json:"ClientStatus"`
	}{ev})
	if err != nil {
		return // a struct of strings always marshals
	}
	s.b.route(s.name, rs, ClientStatusTopic, nil, "", body, nil)
}

// connectionName names the connection as AMPS logs do: the transport and
// the connection's id.
func (s *session) connectionName() string {
	return s.info.Transport + "-" + strconv.FormatUint(s.id, 10)
}

// disconnectReason names why a connection ended, in AMPS's words for its
// disconnect reasons (semantics §5.3) where there is one.
func disconnectReason(cause error) string {
	switch {
	case cause == nil, errors.Is(cause, io.EOF), errors.Is(cause, net.ErrClosed):
		return "connection closed"
	case errors.Is(cause, ErrSlowConsumer), errors.Is(cause, ErrWriteTimeout):
		return "slow client"
	case errors.Is(cause, ErrHeartbeatTimeout):
		return "heartbeat"
	case errors.Is(cause, ErrNameInUse):
		return ReasonNameInUse
	case errors.Is(cause, ErrAuthFailure), errors.Is(cause, ErrLogonRefused):
		return "auth"
	case errors.Is(cause, ErrEntitlementReset):
		return "entitlement reset"
	case errors.Is(cause, ErrAdminDisconnect):
		return "admin"
	case errors.Is(cause, ErrTransportDisabled):
		return "transport disabled"
	case errors.Is(cause, ErrProtocol):
		return "unknown command"
	}
	return cause.Error()
}
