package config

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/listener"
	"github.com/ampsbroker/ampsbroker/transport"
)

// Listen opens the transport through the listener package: ListenTCP for
// amps on tcp/tcps, ListenWebSocket for websocket, ListenUnix for
// amps-unix. It opens the transport whatever its InitialState, so a host can
// enable a disabled transport later. It does not call Validate.
func (t *Transport) Listen() (transport.Listener, error) {
	tlsConf, err := t.LoadTLS()
	if err != nil {
		return nil, fmt.Errorf("config: transport %q: %w", t.Name, err)
	}
	if t.Type == TypeTCPS && tlsConf == nil {
		return nil, fmt.Errorf("config: transport %q: Type tcps requires Certificate and PrivateKey", t.Name)
	}
	var l transport.Listener
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
		MaxFrameSize:      t.MaxFrameSize,
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
//
// The broker does not serve the transaction log yet. A configuration that
// declares one still listens (Parse warned that there is no journal:
// bookmark subscriptions cannot replay and no ack means persisted), unless
// it has a persistent SOW topic, which would be rebuilt from the journal:
// running it empty would silently drop its records at every restart, so
// ListenAll then opens nothing and returns an error wrapping ErrNoJournal.
func (c *Config) ListenAll() ([]transport.Listener, error) {
	if err := c.checkJournalServed(); err != nil {
		return nil, err
	}
	var ls []transport.Listener
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
func (c *Config) Listen(name string) (transport.Listener, error) {
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

// clientBudget is one client's share of a MessageMemoryLimit pool: the
// broker has no shared pool, so each connection gets ClientMaxCapacity
// percent of it (amps-config §3.10). Zero when no pool is set.
func clientBudget(pool int64, capacity float64) int {
	if pool <= 0 {
		return 0
	}
	if capacity == 0 {
		capacity = DefaultClientMaxCapacity
	}
	return max(int(float64(pool)*capacity/100), 1)
}

// BrokerOptions returns the broker options the configuration implies. The
// host adds what a file cannot say (Logger, ConnState, and the limits AMPS
// has no element for). Call it on a Config that passes Validate (Parse
// and Load validate): a module that cannot be resolved makes its
// transport refuse every logon (ErrModuleUnusable) rather than run open.
//
// Mapping:
//   - OutboundQueueBytes = MessageMemoryLimit × ClientMaxCapacity / 100:
//     the broker bounds each connection's queue, which is the share of the
//     pool one client may hold. The shared pool itself (the largest
//     consumer is disconnected when the sum exceeds MessageMemoryLimit) has
//     no broker option; without MessageMemoryLimit the broker default
//     applies.
//   - MaxMessageAge = ClientMessageAgeLimit. Without it, MaxMessageAge is
//     negative (no age limit): the AMPS default is none (amps-config §2),
//     and queues stay bounded by OutboundQueueBytes.
//   - NoRegexTopics = NoRegexTopics (AMPS RegexTopicSupport false).
//   - SOWTopics: one broker.SOWTopic per SOW topic, in configuration order
//     (the first definition that holds a topic wins), with Name,
//     Pattern, MessageType, Keys and KeyDomain (a Pattern topic's Name is
//     its physical topic, which seeds its keys when KeyDomain is absent).
//     Durability and RecoveryPoint are not passed: every topic is kept in
//     memory. A persistent topic is valid only when journal-backed (see
//     DurabilityPersistent), and ListenAll refuses such a configuration
//     until the journal is served; lenient Parse turns other persistent
//     topics into transient ones with a warning. Expiration and
//     ExpirationEnabled are passed on; FileName and ExpectedKeyCountHint
//     are not (no files; the key table grows as needed).
//   - TransactionLog: not mapped yet (the broker has no journal option).
//   - WriteTimeout, LogonTimeout, MaxConnections, MaxSubscriptions,
//     MaxHeaderSize, TopicCacheSize keep the broker defaults: no AMPS
//     element means them (amps-config §3.11). The handshake timeout and
//     MaxFrameSize are listener options (see Listen).
//   - Authenticator and Entitler: the instance Authentication and
//     Entitlement modules. amps-default-authentication-module is nil
//     (accept everyone; the ack says "authentication disabled"), or a
//     check for a non-empty user_id with RequireUsername;
//     amps-default-no-authentication-module refuses every logon;
//     amps-default-entitlement-module is nil (allow all);
//     amps-default-no-entitlement-module denies every topic and refuses
//     logons; a simple access module is a *SimpleAccess; a Go-registered
//     name is the registered value.
//   - Transports[name]: for each transport with its own Authentication,
//     Entitlement, slow-client settings (MessageMemoryLimit,
//     ClientMaxCapacity, ClientMessageAgeLimit: OutboundQueueBytes and
//     MaxMessageAge, what it leaves out taken from the instance) or
//     MaxConnections, the settings that govern its connections. The keys are
//     the Names of declared transports, disabled ones included (a host may
//     open them later with Listen), so none can name a transport the
//     configuration does not have; a host that never opens a disabled
//     transport may delete its key, or the broker warns that it names no
//     served transport.
//
// Not mapped: AllowSpoofing (the broker always records the supplied
// user_id) and module Options for Go-registered modules.
func (c *Config) BrokerOptions() broker.Options {
	// MaxFrameSize and HandshakeTimeout are listener options (see Listen),
	// not broker ones.
	o := broker.Options{Name: c.Name, Version: c.Version, NoRegexTopics: c.NoRegexTopics}
	o.OutboundQueueBytes = clientBudget(c.MessageMemoryLimit, c.ClientMaxCapacity)
	o.MaxMessageAge = c.ClientMessageAgeLimit
	if o.MaxMessageAge <= 0 {
		o.MaxMessageAge = -1
	}
	c.security(&o)
	for i := range c.SOW {
		o.SOWTopics = append(o.SOWTopics, c.SOW[i].brokerTopic())
	}
	return o
}
