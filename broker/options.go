package broker

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/ampsbroker/ampsbroker/protocol"
	"github.com/ampsbroker/ampsbroker/transport"
)

// Defaults for Options. Each applies when the corresponding field is zero.
const (
	// DefaultName is the instance name when Options.Name is empty.
	DefaultName = "ampsbroker"

	// DefaultVersion is the server version reported on logon acks. The
	// official JavaScript client needs four numeric parts and honours
	// flush("persisted") only from 5.3.3.0 on (wire spec §7.1).
	DefaultVersion = "5.3.4.0"

	// DefaultOutboundQueueBytes bounds the bytes queued for one connection
	// but not yet written. A connection that exceeds it is a slow consumer
	// and is disconnected (AMPS reason "slow client"). 64 MiB holds several
	// seconds of a busy feed without letting one reader hold the heap.
	DefaultOutboundQueueBytes = 64 << 20

	// DefaultLogonTimeout is how long a connection may stay without a
	// successful logon before it is closed.
	DefaultLogonTimeout = 30 * time.Second

	// DefaultHeartbeatMisses is how many heartbeat intervals of inbound
	// silence end a connection that started heartbeats. The JS client may
	// legitimately beat only every second interval (wire spec §10.2), so 3
	// leaves one interval of slack.
	DefaultHeartbeatMisses = 3

	// DefaultWriteTimeout bounds the writing of one batch of queued
	// messages (everything queued when the writer woke, and its flush). A
	// client that does not take it in that time is reset with
	// ErrWriteTimeout and counted in Stats.SlowConsumers.
	DefaultWriteTimeout = 30 * time.Second

	// DefaultMaxMessageAge is AMPS's ClientMessageAgeLimit: a connection
	// whose oldest queued message waited longer is a slow consumer
	// (semantics §5.1). It catches readers that make progress, but too
	// little to ever catch up, which neither the byte budget nor the write
	// timeout may notice for a long time.
	DefaultMaxMessageAge = 2 * time.Minute

	// DefaultMaxConnections bounds open connections (including those in
	// their handshake) per broker. Beyond it new connections are closed
	// right after accept, before any TLS or HTTP work.
	DefaultMaxConnections = 10000

	// DefaultMaxSubscriptions bounds the subscriptions of one connection.
	DefaultMaxSubscriptions = 10000

	// DefaultMaxRegexProgram bounds the compiled size (instructions) of a
	// regex subscription topic. Real topic patterns compile to tens of
	// instructions; nested counted repetitions such as (a?){1000} compile
	// to thousands, and matching them holds up routing for everyone.
	DefaultMaxRegexProgram = 2000

	// DefaultMaxHeaderSize bounds the JSON header of one inbound message.
	// Headers are small (a few hundred bytes); filters with long IN lists
	// are the largest legitimate ones.
	DefaultMaxHeaderSize = 1 << 20

	// DefaultTopicCacheSize bounds how many distinct topics of one message
	// type the broker remembers the matching subscriptions for. A topic
	// that falls out of the cache is matched again on its next publish, so
	// the bound trades memory for one regex pass over the subscriptions of
	// an evicted topic. 128 Ki topics keep the cost of a publish flat up
	// to the 100,000 distinct topics the growth benchmark publishes to; a
	// cached topic takes about 250 bytes (no subscriber) to 400 (one), so
	// a full cache is 32 to 50 MB, and only a broker that publishes to
	// that many topics fills it.
	DefaultTopicCacheSize = 128 << 10
)

// Options configures a Broker. The zero value works: it accepts every logon
// and logs nothing.
type Options struct {
	// Logger receives the broker's logs. Default: discard.
	Logger *slog.Logger

	// Name is the instance name (AMPS's Name element), which a content
	// filter reads with AMPS_INSTANCE_NAME(). Default DefaultName.
	Name string

	// Version is the server version reported on logon acks. Default
	// DefaultVersion. It must have at least four dot-separated numeric parts.
	Version string

	// Authenticator checks logons. Default: accept everyone, and the logon
	// ack says "authentication disabled" as AMPS does.
	Authenticator Authenticator

	// OutboundQueueBytes bounds each connection's queued outbound bytes.
	// Default DefaultOutboundQueueBytes.
	OutboundQueueBytes int

	// WriteTimeout bounds the writing of one batch of queued messages to
	// a client, flush included. Default DefaultWriteTimeout.
	WriteTimeout time.Duration

	// LogonTimeout closes connections that have not logged on in time.
	// Default DefaultLogonTimeout.
	LogonTimeout time.Duration

	// HeartbeatMisses is how many heartbeat intervals of silence close a
	// heartbeating connection. Default DefaultHeartbeatMisses.
	HeartbeatMisses int

	// MaxMessageAge disconnects a connection whose oldest queued message
	// is older (AMPS ClientMessageAgeLimit). Default DefaultMaxMessageAge;
	// negative disables the check.
	MaxMessageAge time.Duration

	// MaxConnections bounds open network connections. Default
	// DefaultMaxConnections; negative means no limit.
	MaxConnections int

	// MaxSubscriptions bounds the subscriptions of one connection; a
	// subscribe beyond it fails with ReasonTooManySubs. Default
	// DefaultMaxSubscriptions; negative means no limit.
	MaxSubscriptions int

	// MaxHeaderSize bounds an inbound message's header; a larger one closes
	// the connection. Default DefaultMaxHeaderSize.
	MaxHeaderSize int

	// MaxRegexProgram bounds the compiled size of a regex subscription
	// topic; a larger one is refused with "bad regex topic". Default
	// DefaultMaxRegexProgram.
	MaxRegexProgram int

	// TopicCacheSize bounds, per message type, how many distinct topics
	// keep their matching subscriptions cached. Default
	// DefaultTopicCacheSize.
	TopicCacheSize int

	// BookmarkFallback is what a subscription with a bookmark gets, since
	// there is no transaction log to replay from. Default BookmarkLive:
	// it is entered live, without replay.
	BookmarkFallback BookmarkFallback

	// Journal is the transaction log: publishes, delta publishes and
	// sow_deletes of journaled topics are appended to it, "persisted" acks
	// wait until their entry is durable (conflated per client name, see
	// DefaultAckConflation), publishers' sequence numbers survive restarts
	// (duplicates are dropped, the logon ack's "s" is recovered), client
	// names are unique (a second logon with a name in use closes the first
	// connection, or is refused under another user), bookmark subscriptions
	// replay from it, and New rebuilds the journaled SOW topics from it
	// (see RecoveryErr). Default nil: no journal; bookmark subscriptions
	// follow BookmarkFallback and "persisted" means processed. The broker
	// never closes it: the host that opened it closes it after Shutdown (or
	// Close) has returned.
	Journal Journal

	// Backplane makes this broker one node of a cluster (see
	// backplane.go): publishes it accepts to topics without a SOW store
	// are handed to the backplane after they are routed here, and what
	// other nodes accepted is routed to this node's subscriptions. Default
	// nil: a single node. New starts it; the broker never closes it: the
	// host that made it closes it after Shutdown (or Close) has returned.
	Backplane Backplane

	// JournalTopics reports whether messages of messageType published to
	// topic are journaled (AMPS TransactionLog/Topic). It must be a pure
	// function of its arguments. Default nil: with a Journal, every topic
	// outside /AMPS is journaled.
	JournalTopics func(messageType, topic string) bool

	// SOWTopics declares the State-of-the-World topics, in precedence
	// order: a topic is held by the first definition of its message type
	// that names or matches it. Default: none (every topic is a plain
	// publish and subscribe topic). New panics on an invalid list; check
	// it first with Validate.
	SOWTopics []SOWTopic

	// NoRegexTopics takes every subscription topic literally, as if each
	// subscribe carried the "non_regex_topic" option: a topic such as
	// "orders.*" then matches only messages published to "orders.*" (AMPS
	// RegexTopicSupport false). Default false: a topic with regex
	// characters is an unanchored regular expression.
	NoRegexTopics bool

	// Entitler decides what logged-on users may read and write. Default:
	// everything is allowed (AMPS's amps-default-entitlement-module).
	Entitler Entitler

	// Transports overrides settings for the connections of one transport,
	// keyed by the listener's Name (AMPS: a Transport's own Authentication
	// and Entitlement elements take precedence over the instance's).
	//
	// A key that names no transport would leave that transport's
	// connections on the broker-wide settings without a word, so the
	// broker checks the keys when a transport gets its first connection:
	// a key that is neither the Name of a listener being served nor the
	// transport of a connection seen so far is logged once, at Warn level,
	// with the names in service (and a close match when there is one).
	// Serve every listener before clients connect, or the keys of the
	// ones not served yet are reported too.
	Transports map[string]TransportOptions

	// ConnState, when set, is called as connections change state. It is
	// called on the connection's goroutine and must not block, nor call
	// Shutdown or Close (they wait for that goroutine).
	ConnState func(ConnEvent)
}

// TransportOptions are the settings of one transport that override the
// broker's. Nil or zero fields fall back to the broker's Options.
type TransportOptions struct {
	// Authenticator checks logons on this transport.
	Authenticator Authenticator
	// Entitler decides what users of this transport may read and write.
	Entitler Entitler
	// MaxConnections bounds open connections of this transport, within the
	// broker-wide MaxConnections. Zero means only the broker-wide limit.
	MaxConnections int
	// OutboundQueueBytes bounds each connection's queued outbound bytes on
	// this transport (AMPS: a transport's own slow-client settings). Zero
	// means the broker's OutboundQueueBytes.
	OutboundQueueBytes int
	// MaxMessageAge is this transport's ClientMessageAgeLimit. Zero means
	// the broker's MaxMessageAge; negative disables the check.
	MaxMessageAge time.Duration
}

// ConnState is the state of a network connection, reported to
// Options.ConnState.
type ConnState int

// Connection states.
const (
	// StateNew: the transport handshake is done; the session starts.
	StateNew ConnState = iota
	// StateActive: the logon succeeded.
	StateActive
	// StateClosed: the connection is closed; ConnEvent.Err says why.
	StateClosed
)

// String names the state: "new", "active" or "closed".
func (s ConnState) String() string {
	switch s {
	case StateNew:
		return "new"
	case StateActive:
		return "active"
	case StateClosed:
		return "closed"
	}
	return "unknown"
}

// ConnEvent is one state change of a connection.
type ConnEvent struct {
	// State is the state the connection entered.
	State ConnState
	// ID identifies the connection for the life of the broker; it matches
	// ConnStats.ID.
	ID uint64
	// Conn describes the connection.
	Conn *transport.ConnInfo
	// ClientName and UserID are known from StateActive on.
	ClientName, UserID string
	// Err is why the connection closed (StateClosed): one of the close
	// causes (ErrSlowConsumer, ErrWriteTimeout, ErrLogonTimeout,
	// ErrHeartbeatTimeout, ErrEntitlementReset, ErrAuthFailure,
	// ErrLogonRefused, ErrProtocol, ErrBrokerClosed), possibly wrapped with
	// details; otherwise the read or write error of a lost connection, or
	// the error of a ServeConn context that ended; nil when the client
	// closed it.
	Err error
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
	Conn *transport.ConnInfo
}

// overrideCheck remembers, for the check of Options.Transports keys, which
// transports had connections and which keys were reported. Guarded by
// Broker.mu.
type overrideCheck struct {
	seen     map[string]bool // transports that had a connection
	reported map[string]bool // keys already logged
}

// checkOverrides is called by admit, with b.mu held, for every admitted
// connection of transport. On a transport's first connection it logs each
// Options.Transports key that names no listener being served and no
// transport seen so far; each key is logged once.
func (b *Broker) checkOverrides(transport string) {
	c := &b.overrides
	if len(b.opts.Transports) == 0 || c.seen[transport] {
		return
	}
	if c.seen == nil {
		c.seen, c.reported = map[string]bool{}, map[string]bool{}
	}
	c.seen[transport] = true
	known := make(map[string]bool, len(c.seen)+len(b.listeners))
	for name := range c.seen {
		known[name] = true
	}
	for l := range b.listeners {
		known[l.Name()] = true
	}
	var missing []string
	for key := range b.opts.Transports {
		if !known[key] && !c.reported[key] {
			missing = append(missing, key)
		}
	}
	if len(missing) == 0 {
		return
	}
	slices.Sort(missing)
	serving := make([]string, 0, len(known))
	for name := range known {
		serving = append(serving, name)
	}
	slices.Sort(serving)
	for _, key := range missing {
		c.reported[key] = true
		args := []any{"key", key, "transports", serving}
		if m := closeName(key, serving); m != "" {
			args = append(args, "did_you_mean", m)
		}
		b.log.Warn("Options.Transports names no transport this broker serves; its settings apply to no connection", args...)
	}
}

// closeName returns the name in names that equals key once case and the
// separators '-', '_', '.' and ' ' are ignored, or "".
func closeName(key string, names []string) string {
	norm := func(s string) string {
		return strings.Map(func(r rune) rune {
			switch r {
			case '-', '_', '.', ' ':
				return -1
			}
			return r
		}, strings.ToLower(s))
	}
	k := norm(key)
	for _, n := range names {
		if norm(n) == k {
			return n
		}
	}
	return ""
}

// Validate reports what is wrong with o, or nil: the checks New would
// otherwise panic on (SOW topic definitions).
func (o *Options) Validate() error {
	_, err := sowDefs(o.SOWTopics)
	return err
}
