// Package config reads AMPS-style XML configuration files (the AMPSConfig
// documents real AMPS servers run with) into plain Go values, validates
// them, and turns them into broker options and listeners.
//
// A host either loads a file:
//
//	cfg, err := config.Load("amps.xml", nil)
//
// or writes the same configuration as Go values (config.Config{...}) and
// calls Validate. Either way, Config.BrokerOptions gives the broker.Options
// and Config.ListenAll opens the enabled transports.
//
// The SOW section's topics become broker.Options.SOWTopics, in file order:
// a Topic with Name (and MessageType, Key, KeyDomain) declares one
// State-of-the-World topic; one with a Pattern as well holds every topic
// whose name matches it. Validation hands each definition to the broker's
// own checks, so a definition the broker would refuse is reported with its
// element path and line rather than failing when the broker starts.
//
// The TransactionLog element becomes Config.TransactionLog: the journal's
// directory, file size, flush interval and the Topic entries that select
// what is recorded (TransactionLog.Journaled gives the matching rule). A
// persistent SOW topic is accepted only when it is journaled, as it is
// rebuilt from the journal at start. OpenJournal opens the file journal
// it describes; BrokerOptions says which topics are journaled.
//
// Where AMPS's documentation is silent or contradicts itself, the comment
// at the code says what this package decided and why. Section numbers such
// as "amps-config §3.3" point into the project's configuration spec, which
// is not part of this repository; they are pointers only.
package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
)

// Transport types (amps-config §3.2).
const (
	// TypeTCP is plain TCP; it becomes TLS when Certificate and PrivateKey
	// are both set.
	TypeTCP = "tcp"
	// TypeTCPS is TLS over TCP; Certificate and PrivateKey are required.
	TypeTCPS = "tcps"
	// TypeUnix is a Unix domain socket at FileName.
	TypeUnix = "amps-unix"
)

// Header protocols (amps-config §3.4).
const (
	// ProtocolAMPS is the length-framed AMPS stream protocol, with HTTP
	// preflight. "json" is accepted as a synonym.
	ProtocolAMPS = "amps"
	// ProtocolWebSocket carries AMPS commands in WebSocket frames.
	ProtocolWebSocket = "websocket"
)

// Transport initial states (amps-config §3.1 InitialState), also the
// values of Admin Galvanometer.
const (
	// StateEnabled: the transport listens at startup (the default).
	StateEnabled = "enabled"
	// StateDisabled: the transport is configured but not opened by
	// ListenAll; the host may open it later with Transport.Listen.
	StateDisabled = "disabled"
)

// SOW durabilities (amps-config §6.2).
const (
	// DurabilityTransient keeps the topic in memory only.
	DurabilityTransient = "transient"
	// DurabilityPersistent keeps it across restarts. This broker writes no
	// SOW file: a persistent topic must be journaled and recover from
	// epoch, and is rebuilt from the transaction log at start
	// ("journal-backed", amps-config-txlog §6A.5).
	DurabilityPersistent = "persistent"
)

// SOW recovery points (amps-config-txlog §6A.5): where a journaled topic's
// rebuild at start begins.
const (
	// RecoveryEpoch rebuilds from the start of the journal (the default).
	RecoveryEpoch = "epoch"
	// RecoveryNow starts the topic empty; the journal serves replay only.
	RecoveryNow = "now"
)

// Defaults and limits applied by this package.
const (
	// DefaultClientMaxCapacity is the share of MessageMemoryLimit one client
	// may hold when ClientMaxCapacity is not set (AMPS 5.3.4 default,
	// amps-config §2).
	DefaultClientMaxCapacity = 50.0

	// DefaultCycleDetectionThreshold caps the size of a document after
	// includes and variable expansion (AMPS ConfigCycleDetectionThreshold
	// default, amps-config §1 step 5).
	DefaultCycleDetectionThreshold = 5 << 20

	// MaxIncludeDepth bounds Include nesting, a second guard next to cycle
	// detection.
	MaxIncludeDepth = 32

	// maxUnixPath is the longest socket path Linux accepts (sun_path holds
	// 108 bytes including the terminating NUL; amps-config §3.7).
	maxUnixPath = 107
)

// builtinMessageTypes are the message types AMPS loads without configuration
// (amps-config §3.5, wire §12).
var builtinMessageTypes = []string{"fix", "nvfix", "xml", "json", "msgpack", "bson", "bflat", "binary"}

// Config is a broker configuration. Every field's zero value works; only
// Name is required. Fields marked "Go only" have no AMPS element (AMPS has
// no such knob, amps-config §3.11) and are set by the host.
type Config struct {
	// Name is the instance name used in logs and returned by a filter's
	// AMPS_INSTANCE_NAME(). Required; no spaces, '/',
	// '\', '$' or '~' (AMPS "AMPS Process Options").
	Name string

	// Description is informational.
	Description string

	// RequiredMinimumVersion, when set, makes Validate fail if the broker
	// reports an older version.
	RequiredMinimumVersion string

	// SuggestedMinimumVersion, when set, makes Parse and Load warn if the
	// broker reports an older version.
	SuggestedMinimumVersion string

	// Version is the server version the broker reports (Go only). Default
	// broker.DefaultVersion.
	Version string

	// MessageMemoryLimit is the instance pool of queued outbound bytes
	// (amps-config §3.10). Zero means the broker default. See BrokerOptions
	// for how it maps onto the broker.
	MessageMemoryLimit int64

	// ClientMessageAgeLimit disconnects a client whose oldest unsent message
	// is older than this (broker.Options.MaxMessageAge). Zero: no limit,
	// the AMPS default (amps-config §2).
	ClientMessageAgeLimit time.Duration

	// ClientMaxCapacity is the percentage of MessageMemoryLimit one client
	// may hold, in (0,100]. Zero means DefaultClientMaxCapacity.
	ClientMaxCapacity float64

	// NoRegexTopics makes regular-expression characters in subscription
	// topics literal (AMPS RegexTopicSupport false).
	NoRegexTopics bool

	// MaxFrameSize is the largest inbound message (Go only), given by
	// ListenAll to transports without their own. Zero means the listener
	// default.
	MaxFrameSize int

	// Authentication is the instance's authentication module (amps-config
	// §7.1); nil means the AMPS default (accept everyone). See
	// BrokerOptions for what each module becomes.
	Authentication *Module

	// Entitlement is the instance's entitlement module; nil means the AMPS
	// default (allow everything).
	Entitlement *Module

	// Authenticators are the Go-side authentication modules (amps-config
	// §7.3), by the name a Module element uses (Go only). A Module value
	// resolves to a built-in module first, then to these, then to a
	// Modules/Module declaration; anything else is CFG-MODULE-UNKNOWN.
	// Parse and Load copy them from ParseOptions.
	Authenticators map[string]broker.Authenticator

	// Entitlers are the Go-side entitlement modules, resolved as
	// Authenticators are.
	Entitlers map[string]broker.Entitler

	// Modules declares loadable modules (amps-config §8).
	Modules []ModuleDef

	// MessageTypes declares message types beyond the built-ins
	// (amps-config §5).
	MessageTypes []MessageType

	// Transports are the listeners (amps-config §3).
	Transports []Transport

	// SOW defines the State-of-the-World topics (amps-config §6), in
	// precedence order: a topic is held by the first definition of its
	// message type that names it or whose Pattern matches it.
	// BrokerOptions passes them on as broker.Options.SOWTopics.
	SOW []SOWTopic

	// TransactionLog is the journal (amps-config-txlog §6A); nil means
	// none. See OpenJournal and BrokerOptions.
	TransactionLog *TransactionLog

	// NATSCluster makes the broker a node of a cluster over NATS (an
	// element of our own, read by natscluster's ampsd-cluster); nil for a
	// single node.
	NATSCluster *NATSCluster

	// Admin is the admin HTTP server (amps-config §9.1); nil when the file
	// has no Admin element.
	Admin *Admin

	// Logging holds the Logging targets (amps-config §9.2).
	Logging []LogTarget

	// Warnings are the non-fatal problems Parse or Load found (ignored and
	// approximated elements). Validate does not read or set it.
	Warnings []Diagnostic

	// positions maps element paths to where Parse found them, so Validate
	// can name lines.
	positions map[string]pos
}

// Transport is one listener (amps-config §3.1).
type Transport struct {
	// Name identifies the transport in logs; required and unique.
	Name string

	// Type is TypeTCP, TypeTCPS or TypeUnix. Required.
	Type string

	// InetAddr is the listen address for tcp and tcps: "port", "host:port",
	// "0.0.0.0:port" (IPv4 only), "[::]:port" (IPv6 only), "[addr]:port"
	// (amps-config §3.3). Port 0 picks a free port.
	InetAddr string

	// Protocol is ProtocolAMPS or ProtocolWebSocket; empty means amps.
	Protocol string

	// MessageType fixes the message type of the transport's connections;
	// empty lets each client choose at logon (amps-config §3.5).
	MessageType string

	// InitialState is StateEnabled (or empty) or StateDisabled.
	InitialState string

	// Certificate is the PEM certificate (chain) file. Certificate and
	// PrivateKey are both required for tcps; on tcp, setting both turns
	// TLS on (amps-config §3.6).
	Certificate string

	// PrivateKey is the PEM file of Certificate's private key.
	PrivateKey string

	// SecureSocketProtocols is the space-separated list of TLS versions
	// allowed ("TLSv1.2 TLSv1.3"). Empty means Go's defaults (TLS 1.2 and
	// 1.3) rather than AMPS's "TLSv1.1 TLSv1.2 TLSv1.3": TLS 1.1 is off in
	// Go servers unless asked for by name.
	SecureSocketProtocols string

	// Ciphers is an OpenSSL cipher list. Explicit suite names are
	// translated; keyword expressions keep Go's defaults (with a warning).
	Ciphers string

	// VerifyClient requires a client certificate signed by CAFile or a
	// .pem file in CAPath (mutual TLS).
	VerifyClient bool

	// CAFile is a PEM file of the authorities client certificates are
	// checked against.
	CAFile string

	// CAPath is a directory whose .pem files are such authorities.
	CAPath string

	// TLSConfig, when non-nil, is used as is instead of one built from the
	// fields above (Go only), e.g. for certificate reload.
	TLSConfig *tls.Config

	// FileName is the socket path for amps-unix.
	FileName string

	// FileMask is the socket file's permission bits for amps-unix. Zero
	// leaves the listener's default.
	FileMask os.FileMode

	// PerMessageDeflate offers WebSocket permessage-deflate. AMPS enables
	// it unless the element says "disabled"; Parse follows that, while the
	// Go zero value is off.
	PerMessageDeflate bool

	// HTTPHeaders are extra "Name: value" headers for the WebSocket upgrade
	// response. Kept for the listener; not applied yet.
	HTTPHeaders []string

	// OriginPatterns restricts browser Origins on websocket transports (Go
	// only). Empty accepts every Origin, because AMPS does no origin check
	// (amps-config §3.11).
	OriginPatterns []string

	// MaxFrameSize is the largest inbound message on this transport (Go
	// only). Zero means Config.MaxFrameSize in ListenAll, else the listener
	// default.
	MaxFrameSize int

	// HandshakeTimeout bounds TLS, preflight and WebSocket handshakes (Go
	// only): the listener's HandshakeTimeout, the only handshake timeout.
	// Zero means listener.DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	// MessageMemoryLimit is this transport's pool of queued outbound bytes
	// (amps-config §3.10). Zero means the instance value. BrokerOptions
	// puts this transport's per-client share of it (see ClientMaxCapacity)
	// in broker.TransportOptions.OutboundQueueBytes.
	MessageMemoryLimit int64

	// ClientMessageAgeLimit is this transport's ClientMessageAgeLimit; zero
	// means the instance value (broker.TransportOptions.MaxMessageAge).
	ClientMessageAgeLimit time.Duration

	// ClientMaxCapacity is the percentage of this transport's pool one
	// client may hold; zero means the instance value.
	ClientMaxCapacity float64

	// MaxConnections bounds the open connections of this transport, within
	// the broker-wide limit (Go only: AMPS has no such knob, amps-config
	// §3.11). Zero means only the broker-wide limit. BrokerOptions puts it
	// in broker.TransportOptions.
	MaxConnections int

	// Authentication overrides the instance's authentication module for
	// connections on this transport.
	Authentication *Module

	// Entitlement overrides the instance's entitlement module for
	// connections on this transport.
	Entitlement *Module
}

// Module selects an authentication or entitlement module (amps-config §7).
type Module struct {
	// Module is a built-in module name or the Name of a ModuleDef.
	Module string
	// Options are the module's option elements, by element name.
	Options map[string]string
}

// ModuleDef declares a module in the Modules block (amps-config §8).
type ModuleDef struct {
	// Name is how Authentication and Entitlement elements refer to it.
	Name string
	// Library is the shared object AMPS would load; only the simple
	// access entitlement library is emulated.
	Library string
	// Options are the module's option elements, by element name.
	Options map[string]string
}

// MessageType declares a message type (amps-config §5).
type MessageType struct {
	// Name is how transports and topics refer to the type.
	Name string
	// Module is the implementation; only "json" is supported.
	Module string
}

// SOWTopic is a State-of-the-World topic definition (amps-config §6.2).
type SOWTopic struct {
	// Name is the exact topic name. Required, with or without Pattern: AMPS
	// requires it, and with Pattern it names the physical topic (the
	// container of the matching topics) rather than a topic clients use.
	Name string
	// Pattern, when set, is a regular expression: the definition then
	// holds every topic whose name it matches, each a topic of its own
	// with its own records (AMPS's "multiple logical topics in one physical
	// topic"). The broker matches it against the whole topic name.
	Pattern string
	// MessageType is the type of stored messages. Required.
	MessageType string
	// Keys are the XPath-like fields forming the record identity ("/id").
	// Empty means publishers supply explicit SOW keys.
	Keys []string
	// KeyDomain seeds key hashing; only with Keys. Default: Name (for a
	// Pattern topic, the physical topic's Name).
	KeyDomain string
	// Durability is DurabilityTransient (or empty) or DurabilityPersistent.
	// The Go zero value is transient; in XML an absent Durability means
	// persistent, as in AMPS.
	Durability string
	// FileName is the backing file of a persistent topic ("%n" is the
	// topic name and message type). Required for persistent topics and
	// checked to be unique, but never written: persistent topics are
	// rebuilt from the journal.
	FileName string
	// RecoveryPoint is RecoveryEpoch (or empty, the default) or
	// RecoveryNow. It matters only for a journaled topic.
	RecoveryPoint string
	// Expiration is the default record lifetime; zero means none. Not
	// passed to the broker yet.
	Expiration time.Duration
	// ExpirationEnabled honours per-message lifetimes ("e" header). It is
	// implied by a non-zero Expiration (amps-config §6.4).
	ExpirationEnabled bool
	// ExpectedKeyCountHint pre-sizes the key table; not a limit.
	ExpectedKeyCountHint int64
}

// LogTarget is one Logging/Target (amps-config §9.2).
type LogTarget struct {
	// Protocol is stdout, stderr, file, gzip or syslog.
	Protocol string
	// Level is the lowest level logged (AMPS level names).
	Level string
	// Levels lists extra individual levels.
	Levels string
	// FileName is the log file of file and gzip targets.
	FileName string
	// RotationThreshold is the file size that triggers rotation.
	RotationThreshold int64
}

// enabled reports whether ListenAll opens the transport.
func (t *Transport) enabled() bool {
	return t.InitialState == "" || t.InitialState == StateEnabled
}

// protocol returns the normalised protocol.
func (t *Transport) protocol() string {
	if t.Protocol == "" || t.Protocol == "json" {
		return ProtocolAMPS
	}
	return t.Protocol
}

// usesTLS reports whether the transport speaks TLS.
func (t *Transport) usesTLS() bool {
	return t.TLSConfig != nil || t.Type == TypeTCPS || (t.Certificate != "" && t.PrivateKey != "")
}

// DefaultAdminInterval is the Admin Interval when the element is absent
// (AMPS default), and MinAdminInterval the smallest one AMPS takes.
const (
	DefaultAdminInterval = 10 * time.Second
	MinAdminInterval     = time.Second
)

// Admin is the Admin element: the HTTP server of the statistics tree and
// the administrative actions (amps-config §9.1, amps-admin §4.1). Only the
// fields below are served; the element's other children are accepted and
// ignored with a warning each.
type Admin struct {
	// InetAddr is the server's listen address, with the transport InetAddr
	// syntax (amps-config §3.3). Empty: no admin server, as in AMPS.
	InetAddr string

	// Interval is the statistics sampling period, at least
	// MinAdminInterval; zero means DefaultAdminInterval (Parse fills it in
	// when the element is absent).
	Interval time.Duration

	// Certificate and PrivateKey are PEM files; both set turns the server
	// to HTTPS, one without the other is an error.
	Certificate, PrivateKey string

	// Headers are "Name: value" lines added to every response (Header,
	// repeatable).
	Headers []string
	// AnonymousPaths is a regular expression of the paths served without
	// authentication or entitlement ("^/amps$"); empty: none.
	AnonymousPaths string
	// AccessControlAllowOrigin is a regular expression of the origins
	// whose pages may read the tree from a browser (their Origin is
	// echoed in Access-Control-Allow-Origin) and run actions; empty: no
	// CORS header (AMPS sends "*"; see admin.Options.AllowOrigin).
	AccessControlAllowOrigin string

	// Galvanometer is StateEnabled (or empty) or StateDisabled: whether
	// the admin server's root serves the dashboard page, AMPS's
	// Galvanometer (admin.Options.NoDashboard when disabled).
	Galvanometer string

	// Authentication and Entitlement are the admin server's own modules
	// (amps-admin §3), resolved as the instance's are; nil: none. The
	// instance's modules do not apply to the admin server. Either one
	// present, even naming a default module, is the decision that turns
	// the admin actions on (see AdminSecurity).
	Authentication, Entitlement *Module
}

// AdminSecurity resolves the Admin element's Authentication and
// Entitlement: auth checks the admin server's Basic credentials (nil:
// AMPS's default module, every request accepted), ent decides each path
// (nil: everything allowed). set reports whether either element is
// present, which turns the admin actions on. The Config must pass
// Validate; a module that cannot be resolved refuses everyone.
func (c *Config) AdminSecurity() (auth broker.Authenticator, ent broker.Entitler, set bool) {
	a := c.Admin
	if a == nil || (a.Authentication == nil && a.Entitlement == nil) {
		return nil, nil, false
	}
	auth = c.authenticator(a.Authentication)
	ent, _ = c.entitler(a.Entitlement)
	return auth, ent, true
}

// LoadTLS returns the HTTPS configuration from Certificate and PrivateKey,
// or nil, nil when neither is set. The files are read once, here.
func (a *Admin) LoadTLS() (*tls.Config, error) {
	switch {
	case a.Certificate == "" && a.PrivateKey == "":
		return nil, nil
	case a.Certificate == "" || a.PrivateKey == "":
		return nil, errors.New("Admin Certificate and PrivateKey go together: HTTPS needs both")
	}
	cert, err := tls.LoadX509KeyPair(a.Certificate, a.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("Admin: cannot load Certificate %q with PrivateKey %q: %v", a.Certificate, a.PrivateKey, tlsLoadReason(err))
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
