package config

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/listener"
)

// Listen opens the transport through the listener package: ListenTCP for
// amps on tcp/tcps, ListenWebSocket for websocket, ListenUnix for
// amps-unix. It opens the transport whatever its InitialState, so a host can
// enable a disabled transport later. It does not call Validate.
func (t *Transport) Listen() (listener.Listener, error) {
	tlsConf, err := t.LoadTLS()
	if err != nil {
		return nil, fmt.Errorf("config: transport %q: %w", t.Name, err)
	}
	if t.Type == TypeTCPS && tlsConf == nil {
		return nil, fmt.Errorf("config: transport %q: Type tcps requires Certificate and PrivateKey", t.Name)
	}
	var l listener.Listener
	switch t.Type {
	case TypeTCP, TypeTCPS:
		switch t.protocol() {
		case ProtocolAMPS:
			l, err = listener.ListenTCP(t.InetAddr, &listener.TCPOptions{
				Name:             t.Name,
				TLSConfig:        tlsConf,
				MessageType:      t.MessageType,
				HandshakeTimeout: t.HandshakeTimeout,
				MaxFrameSize:     t.MaxFrameSize,
			})
		case ProtocolWebSocket:
			l, err = listener.ListenWebSocket(t.InetAddr, t.webSocketOptions(tlsConf))
		default:
			return nil, fmt.Errorf("config: transport %q: unsupported Protocol %q", t.Name, t.Protocol)
		}
	case TypeUnix:
		if t.protocol() != ProtocolAMPS {
			return nil, fmt.Errorf("config: transport %q: websocket requires Type tcp or tcps", t.Name)
		}
		l, err = listener.ListenUnix(t.FileName, &listener.UnixOptions{
			Name:             t.Name,
			Mode:             t.FileMask,
			MessageType:      t.MessageType,
			HandshakeTimeout: t.HandshakeTimeout,
			MaxFrameSize:     t.MaxFrameSize,
		})
	default:
		return nil, fmt.Errorf("config: transport %q: unsupported Type %q", t.Name, t.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("config: transport %q: %w", t.Name, err)
	}
	return l, nil
}

// webSocketOptions maps the transport onto listener.WebSocketOptions.
func (t *Transport) webSocketOptions(tlsConf *tls.Config) *listener.WebSocketOptions {
	o := &listener.WebSocketOptions{
		Name:              t.Name,
		TLSConfig:         tlsConf,
		MessageType:       t.MessageType,
		OriginPatterns:    t.OriginPatterns,
		PerMessageDeflate: t.PerMessageDeflate,
		HandshakeTimeout:  t.HandshakeTimeout,
		MaxMessageSize:    int64(t.MaxFrameSize),
	}
	// AMPS checks no Origin (amps-config §3.11), so a file-configured
	// websocket transport accepts every Origin unless the host restricts it.
	if len(t.OriginPatterns) == 0 {
		o.InsecureSkipVerifyOrigin = true
	}
	return o
}

// ListenAll opens every enabled transport in order. If one fails it closes
// those already opened and returns the error. Transports without their own
// MaxFrameSize get Config.MaxFrameSize.
func (c *Config) ListenAll() ([]listener.Listener, error) {
	var ls []listener.Listener
	for i := range c.Transports {
		t := c.Transports[i]
		if !t.enabled() {
			continue
		}
		if t.MaxFrameSize == 0 {
			t.MaxFrameSize = c.MaxFrameSize
		}
		l, err := t.Listen()
		if err != nil {
			var errs []error
			for _, o := range ls {
				if cerr := o.Close(); cerr != nil {
					errs = append(errs, cerr)
				}
			}
			return nil, errors.Join(append([]error{err}, errs...)...)
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// Listen opens the transport named name (enabled or not).
func (c *Config) Listen(name string) (listener.Listener, error) {
	for i := range c.Transports {
		if c.Transports[i].Name == name {
			t := c.Transports[i]
			if t.MaxFrameSize == 0 {
				t.MaxFrameSize = c.MaxFrameSize
			}
			return t.Listen()
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownTransport, name)
}

// BrokerOptions returns the broker options the configuration implies. The
// host adds what a file cannot say (Logger, its own Authenticator).
//
// Mapping (amps-config §3.10 and §7):
//   - OutboundQueueBytes = MessageMemoryLimit × ClientMaxCapacity / 100:
//     the broker bounds each connection's queue, which is the share of the
//     pool one client may hold. The shared pool itself (the largest
//     consumer is disconnected when the sum exceeds MessageMemoryLimit) has
//     no broker option yet.
//   - WriteTimeout = ClientMessageAgeLimit: a write blocked that long means
//     the oldest queued message is at least that old, so the client is
//     disconnected no later than AMPS would. Messages aging in the queue
//     while writes still progress are not measured.
//   - Authenticator: set when the instance or a transport selects a module
//     other than the default (see authenticator).
//
// Per-transport slow-client settings and Entitlement have no broker option
// yet and are not applied.
func (c *Config) BrokerOptions() broker.Options {
	// MaxFrameSize is a listener option (see ListenAll), not a broker one.
	o := broker.Options{Version: c.Version}
	if c.MessageMemoryLimit > 0 {
		capacity := c.ClientMaxCapacity
		if capacity == 0 {
			capacity = DefaultClientMaxCapacity
		}
		o.OutboundQueueBytes = int(float64(c.MessageMemoryLimit) * capacity / 100)
		if o.OutboundQueueBytes < 1 {
			o.OutboundQueueBytes = 1
		}
	}
	if c.ClientMessageAgeLimit > 0 {
		o.WriteTimeout = c.ClientMessageAgeLimit
	}
	o.Authenticator = c.authenticator()
	return o
}

// errNoAuthentication rejects logons on amps-default-no-authentication-module.
var errNoAuthentication = errors.New("config: amps-default-no-authentication-module rejects every logon")

// errUserRequired rejects a logon without user name when RequireUsername is
// true (amps-config §7.2).
var errUserRequired = errors.New("config: RequireUsername is set and the logon has no user_id")

// authenticator builds an Authenticator from the built-in modules chosen per
// transport, falling back to the instance default (amps-config §7.1). It
// returns nil when everyone is accepted everywhere, the broker default.
func (c *Config) authenticator() broker.Authenticator {
	decide := func(m *Module) error {
		if m == nil {
			return nil
		}
		switch m.Module {
		case "amps-default-no-authentication-module":
			return errNoAuthentication
		case "amps-default-authentication-module":
			if v, err := ParseBool(m.Options["RequireUsername"]); err == nil && v {
				return errUserRequired
			}
		}
		return nil
	}
	instance := decide(c.Authentication)
	perTransport := map[string]error{}
	special := instance != nil
	for _, t := range c.Transports {
		if t.Authentication != nil {
			perTransport[t.Name] = decide(t.Authentication)
			special = special || perTransport[t.Name] != nil
		}
	}
	if !special {
		return nil
	}
	return broker.AuthenticatorFunc(func(_ context.Context, req *broker.LogonRequest) error {
		rule := instance
		if req.Conn != nil {
			if r, ok := perTransport[req.Conn.Transport]; ok {
				rule = r
			}
		}
		if rule == errUserRequired {
			if req.Header != nil && req.Header.UserID != "" {
				return nil
			}
		}
		return rule
	})
}
