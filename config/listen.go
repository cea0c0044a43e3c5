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
// A TransactionLog is not a listener: open it with OpenJournal before
// serving (AMPS recovers the journal, and the SOW topics rebuilt from it,
// before it opens its transports).
func (c *Config) ListenAll() ([]transport.Listener, error) {
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
//     Every topic is kept in memory. A journaled topic (see
//     TransactionLog.Journaled) is rebuilt from the journal at start
//     (RecoveryPoint epoch, the default) or starts empty (RecoveryPoint
//     now: StartEmpty); a topic that is not journaled starts empty
//     whatever its RecoveryPoint. A persistent topic is valid only when
//     journal-backed (see DurabilityPersistent), which is the epoch case;
//     lenient Parse turns other persistent topics into transient ones with
//     a warning. Expiration and ExpirationEnabled are passed on; FileName
//     and ExpectedKeyCountHint are not (no files; the key table grows as
//     needed).
//   - JournalTopics = the TransactionLog's Topic entries
//     (JournalMatcher.Journaled; /AMPS topics never), with a
//     TransactionLog; nil without one. The journal itself, Journal, is a
//     file the host opens: see OpenJournal, which also maps JournalSize
//     and FlushInterval.
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
	var journaled *JournalMatcher // nil without a TransactionLog: nothing is journaled
	if c.TransactionLog != nil {
		// Validate has refused a Name that does not compile; the matcher
		// skips one in a Config that was not validated.
		journaled = newJournalMatcher(c.TransactionLog.Topics)
		o.JournalTopics = func(mt, topic string) bool { return journaled.Journaled(topic, mt) }
	}
	for i := range c.SOW {
		t := c.SOW[i].brokerTopic()
		t.StartEmpty = c.SOW[i].RecoveryPoint == RecoveryNow && journaled.Journaled(c.SOW[i].Name, c.SOW[i].MessageType)
		o.SOWTopics = append(o.SOWTopics, t)
	}
	return o
}
