package broker

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nuid"

	"github.com/ampsbroker/ampsbroker/protocol"
)

// Reason strings sent in failure acks. AMPS's own strings (wire spec §9.2)
// are used where one exists; the others are ours and say what is missing.
const (
	ReasonAuthFailure      = "auth failure"
	ReasonAuthDisabled     = "authentication disabled"
	ReasonNotEntitled      = "not entitled"
	ReasonNoTopic          = "no topic"
	ReasonInvalidTopic     = "invalid topic"
	ReasonBadRegexTopic    = "bad regex topic"
	ReasonSubIDInUse       = "subid in use"
	ReasonUnknownCommand   = "unknown command"
	ReasonLogonRequired    = "logon required"
	ReasonAlreadyLoggedOn  = "already logged on"
	ReasonInvalidOptions   = "invalid options"
	ReasonMessageType      = "message type required"
	ReasonUnknownType      = "unknown message type"
	ReasonTypeMismatch     = "message type mismatch"
	ReasonFilterNotSupp    = "filters are not supported yet"
	ReasonBookmarkNotSupp  = "bookmark replay is not supported: no transaction log"
	ReasonTooManySubs      = "too many subscriptions"
	reasonNotSupportedTail = " is not supported yet"
)

// builtinMessageTypes are the message types AMPS loads without configuration
// (wire spec §12, config §3.5). Payloads are opaque bytes to the broker.
var builtinMessageTypes = map[string]bool{
	"fix": true, "nvfix": true, "xml": true, "json": true,
	"msgpack": true, "bson": true, "bflat": true, "binary": true,
}

// ackSet is the set of ack types a command requested in "a".
type ackSet uint8

const (
	ackReceived ackSet = 1 << iota
	ackProcessed
	ackCompleted
	ackPersisted
	ackStats
)

// ackOrder is the order acks are sent in (wire spec §7).
var ackOrder = []struct {
	bit  ackSet
	name string
}{
	{ackReceived, protocol.AckReceived},
	{ackProcessed, protocol.AckProcessed},
	{ackCompleted, protocol.AckCompleted},
	{ackPersisted, protocol.AckPersisted},
	{ackStats, protocol.AckStats},
}

// parseAcks reads the comma list in "a". Unknown tokens are ignored and
// "parsed" counts as "received" (wire spec §7).
func parseAcks(a string) ackSet {
	var set ackSet
	for a != "" {
		var tok string
		tok, a, _ = strings.Cut(a, ",")
		switch strings.TrimSpace(tok) {
		case protocol.AckReceived, protocol.AckParsed:
			set |= ackReceived
		case protocol.AckProcessed:
			set |= ackProcessed
		case protocol.AckCompleted:
			set |= ackCompleted
		case protocol.AckPersisted:
			set |= ackPersisted
		case protocol.AckStats:
			set |= ackStats
		}
	}
	return set
}

// splitOptions splits an "o"/"opts" list on commas outside brackets, so
// "replace,select=[a,b]" is two options (semantics §4.1).
func splitOptions(o string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(o); i++ {
		switch o[i] {
		case '[', '(':
			depth++
		case ']', ')':
			if depth > 0 {
				depth--
			}
		case ',':
			if depth == 0 {
				if t := strings.TrimSpace(o[start:i]); t != "" {
					out = append(out, t)
				}
				start = i + 1
			}
		}
	}
	if t := strings.TrimSpace(o[start:]); t != "" {
		out = append(out, t)
	}
	return out
}

func hasOption(opts []string, name string) bool {
	for _, o := range opts {
		if o == name {
			return true
		}
	}
	return false
}

// ack queues one ack for h. fill, when non-nil, adds command-specific fields.
func (s *session) ack(h *protocol.Header, ackType, status, reason string, fill func(*protocol.Header)) {
	a := protocol.Header{
		Command:   protocol.CmdAck,
		CommandID: h.CommandID,
		AckType:   ackType,
		Status:    status,
		Reason:    reason,
	}
	if fill != nil {
		fill(&a)
	}
	m := &protocol.Message{Header: &a}
	s.enqueue(outItem{m: m, size: m.Len() + itemOverhead})
}

// acks sends every requested ack type with the same status and reason.
func (s *session) acks(h *protocol.Header, want ackSet, status, reason string, fill func(*protocol.Header)) {
	for _, t := range ackOrder {
		if want&t.bit != 0 {
			s.ack(h, t.name, status, reason, fill)
		}
	}
}

// fail reports a failed command in every requested ack other than
// "received", which only confirms receipt (wire spec §7: errors go in the
// processed ack).
func (s *session) fail(h *protocol.Header, reason string, fill func(*protocol.Header)) {
	want := parseAcks(h.AckType)
	if want&ackReceived != 0 {
		s.ack(h, protocol.AckReceived, protocol.StatusSuccess, "", fill)
	}
	s.acks(h, want&^ackReceived, protocol.StatusFailure, reason, fill)
	s.log.Debug("command failed", "command", h.Command, "cid", h.CommandID, "topic", h.Topic, "reason", reason)
}

// dispatch runs one command. A non-nil error ends the session after the
// queued acks are flushed.
func (s *session) dispatch(h *protocol.Header, body []byte) error {
	if h.Command == protocol.CmdLogon {
		return s.logon(h)
	}
	if !s.loggedOn.Load() {
		// Default AMPS authentication disallows implicit logon (wire spec
		// §7.1): answer with a failure and close.
		s.ack(h, protocol.AckProcessed, protocol.StatusFailure, ReasonLogonRequired, nil)
		s.log.Info("closing connection: command before logon", "command", h.Command)
		return errLogonRequired
	}
	switch h.Command {
	case protocol.CmdHeartbeat:
		s.heartbeat(h)
	case protocol.CmdPublish, protocol.CmdP:
		s.publish(h, body)
	case protocol.CmdSubscribe:
		s.subscribe(h)
	case protocol.CmdUnsubscribe:
		s.unsubscribe(h)
	case protocol.CmdFlush:
		// Commands run in order, so everything before the flush is done
		// (wire spec §7.9).
		s.acks(h, parseAcks(h.AckType), protocol.StatusSuccess, "", nil)
	case protocol.CmdStartTimer, protocol.CmdStopTimer:
		s.acks(h, parseAcks(h.AckType), protocol.StatusSuccess, "", nil)
	case protocol.CmdSOW, protocol.CmdSOWAndSubscribe, protocol.CmdSOWAndDeltaSub,
		protocol.CmdSOWDelete, protocol.CmdDeltaPublish, protocol.CmdDeltaSubscribe:
		s.fail(h, h.Command+reasonNotSupportedTail, func(a *protocol.Header) {
			a.QueryID = h.QueryID
			a.SubID = h.SubID
		})
	default:
		// AMPS closes the connection on an unknown command (wire spec §7.10).
		s.fail(h, ReasonUnknownCommand, nil)
		s.log.Info("closing connection: unknown command", "command", h.Command)
		return fmt.Errorf("%w %q", errUnknownCommand, h.Command)
	}
	return nil
}

// logon implements wire spec §7.1.
func (s *session) logon(h *protocol.Header) error {
	if s.loggedOn.Load() {
		// Only one logon per connection; the reason string is ours (§15.5).
		s.ack(h, protocol.AckProcessed, protocol.StatusFailure, ReasonAlreadyLoggedOn, nil)
		return nil
	}
	mt, reason := resolveMessageType(h.MessageType, s.info.MessageType, s.info.TransportMessageType)
	if reason != "" {
		s.ack(h, protocol.AckProcessed, protocol.StatusFailure, reason, nil)
		s.log.Info("closing connection: logon refused", "reason", reason, "mt", h.MessageType)
		return fmt.Errorf("broker: logon refused: %s (logon mt %q, path type %q, transport type %q)",
			reason, h.MessageType, s.info.MessageType, s.info.TransportMessageType)
	}
	if s.auth != nil {
		err := s.auth.Authenticate(s.ctx, &LogonRequest{Header: h, Conn: s.info})
		if err != nil {
			s.b.stats.authFailures.Add(1)
			s.ack(h, protocol.AckProcessed, protocol.StatusFailure, ReasonAuthFailure, nil)
			s.log.Info("closing connection: auth", "user_id", h.UserID, "client_name", h.ClientName, "err", err)
			return fmt.Errorf("%w: user %q: %v", errAuth, h.UserID, err)
		}
	}
	s.clientName = h.ClientName
	s.mt = mt
	s.rt = s.b.router(mt)
	user := h.UserID
	s.userID.Store(&user)
	s.loggedOn.Store(true)
	reason = ""
	if s.auth == nil {
		reason = ReasonAuthDisabled
	}
	s.ack(h, protocol.AckProcessed, protocol.StatusSuccess, reason, func(a *protocol.Header) {
		a.Set(protocol.FieldSequence, 0) // no transaction log: no publish seen before
		a.Bookmark = strconv.FormatUint(nameHash(h.ClientName), 10) + "|0|"
		a.ClientName = h.ClientName
		a.Version = s.b.opts.Version
	})
	s.log.Debug("logon", "client_name", h.ClientName, "user_id", h.UserID, "mt", mt)
	s.event(StateActive, nil)
	return nil
}

// resolveMessageType applies config spec §3.5 and wire spec §12: the
// client declares a type in its logon "mt" or, failing that, in its URL
// path; a transport with a configured type serves only that type; without
// one the client must declare a built-in type. It returns the type, or a
// failure reason.
func resolveMessageType(logon, path, transport string) (string, string) {
	declared := cmp.Or(logon, path)
	switch {
	case transport != "" && declared != "" && declared != transport:
		return "", ReasonTypeMismatch
	case transport != "":
		return transport, ""
	case declared == "":
		return "", ReasonMessageType
	case !builtinMessageTypes[declared]:
		return "", ReasonUnknownType
	}
	return declared, ""
}

// nameHash is the publisher id of a client name used in bookmarks (wire
// spec §8.7): a 64-bit hash, shown in decimal.
func nameHash(name string) uint64 {
	f := fnv.New64a()
	f.Write([]byte(name))
	return f.Sum64()
}

// maxHeartbeatInterval bounds "start,N" so the ticker arithmetic cannot
// overflow; a day is far beyond any sensible interval.
const maxHeartbeatInterval = 24 * time.Hour

// heartbeat implements wire spec §7.2 and §10.
func (s *session) heartbeat(h *protocol.Header) {
	opts := splitOptions(h.Options)
	want := parseAcks(h.AckType)
	if len(opts) == 0 {
		s.fail(h, ReasonInvalidOptions, nil)
		return
	}
	switch opts[0] {
	case "start":
		if len(opts) != 2 {
			s.fail(h, ReasonInvalidOptions, nil)
			return
		}
		n, err := strconv.ParseUint(opts[1], 10, 32)
		iv := time.Duration(n) * time.Second
		if err != nil || n == 0 || iv > maxHeartbeatInterval {
			s.fail(h, ReasonInvalidOptions, nil)
			return
		}
		s.lastBeat.Store(time.Now().UnixNano())
		s.hbInterval.Store(int64(iv))
		s.q.wake()
	case "beat":
		// No reply (wire spec §7.2); the writer times its next heartbeat
		// from this beat.
		s.lastBeat.Store(time.Now().UnixNano())
	case "stop":
		s.hbInterval.Store(0)
		s.q.wake()
	default:
		s.fail(h, ReasonInvalidOptions, nil)
		return
	}
	s.acks(h, want&(ackReceived|ackProcessed), protocol.StatusSuccess, "", nil)
}

// publish implements wire spec §7.3 for topics without a SOW.
func (s *session) publish(h *protocol.Header, body []byte) {
	want := parseAcks(h.AckType)
	// Failure acks carry the publish's sequence number, so a publish store
	// can hand the failed message back to the application (wire spec §7.3).
	seq := func(a *protocol.Header) {
		if h.Has(protocol.FieldSequence) {
			a.Set(protocol.FieldSequence, h.Sequence)
		}
	}
	if reason := publishTopicReason(h.Topic); reason != "" {
		if reason != reasonDiscard {
			s.fail(h, reason, seq)
			return
		}
	} else if !s.entitled(h.Topic, Write) {
		// A refused publish is dropped; the failure is visible only in
		// the acks the publisher asked for (semantics §8.2).
		s.fail(h, ReasonNotEntitled, seq)
		return
	} else {
		s.b.publish(s.rt, h.Topic, h.CorrelationID, body)
	}
	if want == 0 {
		return
	}
	s.acks(h, want&^ackPersisted, protocol.StatusSuccess, "", nil)
	if want&ackPersisted != 0 {
		// The publish is as durable as it will get once routed; echo the
		// publisher's sequence so a publish store can discard it.
		s.ack(h, protocol.AckPersisted, protocol.StatusSuccess, "", seq)
	}
}

// reasonDiscard marks a publish that is accepted and dropped.
const reasonDiscard = "\x00discard"

// publishTopicReason checks a publish topic (semantics §2: /AMPS/ is
// reserved for the server, but /AMPS/devnull is accepted and discarded).
func publishTopicReason(topic string) string {
	switch {
	case topic == "":
		return ReasonNoTopic
	case topic == "/AMPS/devnull":
		return reasonDiscard
	case strings.HasPrefix(topic, "/AMPS"):
		return ReasonInvalidTopic
	}
	return ""
}

// newSubscription validates a subscription topic and compiles a regex topic
// once (wire spec §11). It returns a failure reason on error.
func newSubscription(id, topic string, nonRegex bool, maxProgram int) (*subscription, string) {
	if topic == "" {
		return nil, ReasonNoTopic
	}
	sub := &subscription{id: id, topic: topic}
	if !nonRegex && isRegexTopic(topic) {
		// AMPS uses PCRE; Go's RE2 lacks backreferences and lookaround, and
		// such patterns are refused (wire spec §11).
		re, err := regexp.Compile(topic)
		if err != nil || regexProgramSize(topic) > maxProgram {
			return nil, ReasonBadRegexTopic
		}
		sub.re = re
	}
	return sub, ""
}

// regexProgramSize is the number of instructions topic compiles to. RE2
// matches in time linear in the topic, but the factor is the program size,
// and a regex is matched while the router is locked: a short pattern with
// nested counted repetitions can compile to a program that takes a second
// per topic.
func regexProgramSize(topic string) int {
	re, err := syntax.Parse(topic, syntax.Perl)
	if err != nil {
		return 0
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return 0
	}
	return len(prog.Inst)
}

// subscribe implements wire spec §7.4 without filters, SOW or bookmarks.
func (s *session) subscribe(h *protocol.Header) {
	id := h.SubID
	if id == "" {
		id = h.CommandID
	}
	if id == "" {
		id = nuid.Next()
	}
	fill := func(a *protocol.Header) { a.SubID = id }
	if h.Filter != "" {
		s.fail(h, ReasonFilterNotSupp, fill)
		return
	}
	// "0|1|" (NOW) asks for live messages only, which is what a broker
	// without a transaction log delivers; any other bookmark needs replay.
	if h.Bookmark != "" && h.Bookmark != "0|1|" {
		s.fail(h, ReasonBookmarkNotSupp, fill)
		return
	}
	opts := splitOptions(h.Options)
	sub, reason := newSubscription(id, h.Topic, hasOption(opts, "non_regex_topic"), s.b.opts.MaxRegexProgram)
	if reason != "" {
		s.fail(h, reason, fill)
		return
	}
	sub.owner = s
	old := s.subs[id]
	if old != nil && !hasOption(opts, "replace") {
		s.fail(h, ReasonSubIDInUse, fill)
		return
	}
	if old == nil && s.b.opts.MaxSubscriptions > 0 && len(s.subs) >= s.b.opts.MaxSubscriptions {
		s.fail(h, ReasonTooManySubs, fill)
		return
	}
	if s.ent != nil {
		if sub.re == nil {
			// A literal topic is checked once, now (semantics §8.2).
			if !s.entitled(sub.topic, Read) {
				s.fail(h, ReasonNotEntitled, fill)
				return
			}
		} else {
			// A regex is checked per concrete topic as it is first matched;
			// forbidden topics are withheld silently.
			sub.readable = func(topic string) bool { return s.entitled(topic, Read) }
		}
	}
	if old != nil {
		old.removed.Store(true)
		s.rt.replace(old, sub)
	} else {
		s.rt.add(sub)
	}
	s.subs[id] = sub
	s.nsubs.Store(int64(len(s.subs)))
	s.acks(h, parseAcks(h.AckType), protocol.StatusSuccess, "", fill)
}

// unsubscribe implements wire spec §7.7: one id, a comma list, or "all"
// (also the default when no id is given). Unknown ids are not an error.
func (s *session) unsubscribe(h *protocol.Header) {
	switch ids := strings.TrimSpace(h.SubID); {
	case ids == "" && h.QueryID != "":
		// Only a query to cancel (semantics §9), and no query here runs
		// longer than its command: nothing to do.
	case ids == "" || ids == "all":
		s.unsubscribeAll()
	default:
		for _, id := range strings.Split(ids, ",") {
			id = strings.TrimSpace(id)
			if sub := s.subs[id]; sub != nil {
				sub.removed.Store(true)
				s.rt.remove(sub)
				delete(s.subs, id)
			}
		}
		s.nsubs.Store(int64(len(s.subs)))
	}
	s.acks(h, parseAcks(h.AckType), protocol.StatusSuccess, "", nil)
}
