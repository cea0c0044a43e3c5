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
	"unsafe"

	"github.com/nats-io/nuid"

	"github.com/ampsbroker/ampsbroker/internal/jsondelta"
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
	ReasonBadFilter        = "bad filter"
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

// ackOrder is the order a command's acks are sent in: the stages of the
// command as they happen (received, processed, completed, persisted), then
// stats.
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

// splitOptions splits an "o"/"opts" list on the commas that are outside
// brackets, parentheses and quotes, so "replace,select=[a,b]" is two
// options and "projection=[CONCAT(/a, ',') AS /b]" one (semantics §4.1),
// trimming spaces around each option.
func splitOptions(o string) []string {
	var out []string
	depth, start := 0, 0
	var quote byte // the open quote, or 0
	for i := 0; i < len(o); i++ {
		c := o[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++ // the escaped character cannot close the quote
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '[' || c == '(':
			depth++
		case c == ']' || c == ')':
			if depth > 0 {
				depth--
			}
		case c == ',' && depth == 0:
			if t := strings.TrimSpace(o[start:i]); t != "" {
				out = append(out, t)
			}
			start = i + 1
		}
	}
	if start < len(o) {
		if t := strings.TrimSpace(o[start:]); t != "" {
			out = append(out, t)
		}
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
	m, size := ownMessage(&a, nil)
	s.enqueue(outItem{m: m, size: size})
}

// ownMessage returns a message of its own (an ack, a replayed delivery)
// with a copy of h and body, the header and the message in one
// allocation, and what it costs in an outbound budget: its wire size and
// that allocation, so that a flood of them to a client that does not read
// stays within the byte budget.
func ownMessage(h *protocol.Header, body []byte) (*protocol.Message, int) {
	am := &struct {
		h protocol.Header
		m protocol.Message
	}{h: *h}
	am.m.Header, am.m.Body = &am.h, body
	return &am.m, am.m.Len() + itemOverhead + int(unsafe.Sizeof(*am))
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
		return fmt.Errorf("%w: %q before logon", ErrProtocol, h.Command)
	}
	if s.applied.busy() && !s.entersOrder(h) {
		s.awaitApplied() // see ordertrack.go
	}
	switch h.Command {
	case protocol.CmdHeartbeat:
		s.heartbeat(h)
	case protocol.CmdPublish, protocol.CmdP, protocol.CmdDeltaPublish:
		s.publish(h, body)
	case protocol.CmdSubscribe, protocol.CmdDeltaSubscribe:
		s.subscribe(h)
	case protocol.CmdUnsubscribe:
		s.unsubscribe(h)
	case protocol.CmdFlush:
		s.flush(h)
	case protocol.CmdStartTimer, protocol.CmdStopTimer:
		s.acks(h, parseAcks(h.AckType), protocol.StatusSuccess, "", nil)
	case protocol.CmdSOW:
		s.sow(h)
	case protocol.CmdSOWAndSubscribe, protocol.CmdSOWAndDeltaSub:
		s.sowAndSubscribe(h)
	case protocol.CmdSOWDelete:
		s.sowDelete(h, body)

	default:
		// AMPS closes the connection on an unknown command (wire spec §7.10).
		s.fail(h, ReasonUnknownCommand, nil)
		s.log.Info("closing connection: unknown command", "command", h.Command)
		return fmt.Errorf("%w: unknown command %q", ErrProtocol, h.Command)
	}
	return nil
}

// logon answers a logon, which must be the client's first command: one
// logon per connection. It settles the connection's message type (see
// resolveMessageType), asks the Authenticator, if any, and on any failure
// sends a failed processed ack and ends the connection. The success ack
// echoes the client name and carries the server version, the last publish
// sequence processed from this client name (with a journal, the highest
// durable one; see persist.go) and the bookmark "<client name hash>|<that
// sequence>|"; with a journal the client name is also made unique
// (persister.logon); its reason is "authentication
// disabled" when there is no Authenticator, as real AMPS says. Every answer
// is a processed ack whatever "a" asked for: the clients always ask for it.
func (s *session) logon(h *protocol.Header) error {
	if s.loggedOn.Load() {
		// A second logon is refused and the connection stays up. AMPS's
		// reason string for this is unknown, so ReasonAlreadyLoggedOn is ours.
		s.ack(h, protocol.AckProcessed, protocol.StatusFailure, ReasonAlreadyLoggedOn, nil)
		return nil
	}
	mt, reason := resolveMessageType(h.MessageType, s.info.MessageType, s.info.TransportMessageType)
	if reason != "" {
		s.ack(h, protocol.AckProcessed, protocol.StatusFailure, reason, nil)
		s.log.Info("closing connection: logon refused", "reason", reason, "mt", h.MessageType)
		s.status(clientStatus{Event: StatusLogonFailure, Reason: reason})
		return fmt.Errorf("%w: %s (logon mt %q, path type %q, transport type %q)",
			ErrLogonRefused, reason, h.MessageType, s.info.MessageType, s.info.TransportMessageType)
	}
	if s.auth != nil {
		err := s.auth.Authenticate(s.ctx, &LogonRequest{Header: h, Conn: s.info})
		if err != nil {
			s.b.stats.authFailures.Add(1)
			s.ack(h, protocol.AckProcessed, protocol.StatusFailure, ReasonAuthFailure, nil)
			s.log.Info("closing connection: auth", "user_id", h.UserID, "client_name", h.ClientName, "err", err)
			s.status(clientStatus{Event: StatusLogonFailure, Reason: ReasonAuthFailure})
			return fmt.Errorf("%w: user %q: %w", ErrAuthFailure, h.UserID, err)
		}
	}
	s.name = h.ClientName
	s.user = h.UserID
	user := h.UserID
	s.userID.Store(&user)
	opts := splitOptions(h.Options)
	if _, err := checkOptions(opts, logonOptions); err != nil {
		// A logon is not refused for an option: the connection would be
		// lost over what may be a newer client's hint. It is not ignored
		// silently either.
		s.log.Warn("logon option not honoured", "client_name", h.ClientName, "err", err)
	}
	// Where the client's publish store stands: the highest sequence
	// processed for its name, or with a journal the highest that is
	// ackable (durable), in "s" and in the bookmark.
	last := s.b.seqs.highest(h.ClientName)
	if p := s.b.persist; p != nil {
		interval, err := ackConflation(opts)
		if err != nil {
			s.log.Warn("logon option not honoured; default used", "client_name", h.ClientName, "default", interval, "err", err)
		}
		var ok bool
		if last, ok = p.logon(s, user, interval); !ok {
			s.ack(h, protocol.AckProcessed, protocol.StatusFailure, ReasonNameInUse, nil)
			s.log.Info("closing connection: logon refused: client name in use by another user", "client_name", h.ClientName, "user_id", user)
			s.status(clientStatus{Event: StatusLogonFailure, Reason: ReasonNameInUse})
			return fmt.Errorf("%w: %w: %q", ErrLogonRefused, ErrNameInUse, h.ClientName)
		}
	}
	s.mt = mt
	s.rt = s.b.router(mt)
	s.loggedOn.Store(true)
	reason = ""
	if s.auth == nil {
		reason = ReasonAuthDisabled
	}
	// Logged before the ack goes out, so the log has the logon by the
	// time the client does.
	s.log.Debug("logon", "client_name", h.ClientName, "user_id", h.UserID, "mt", mt)
	s.ack(h, protocol.AckProcessed, protocol.StatusSuccess, reason, func(a *protocol.Header) {
		a.Set(protocol.FieldSequence, last)
		a.Bookmark = strconv.FormatUint(nameHash(h.ClientName), 10) + "|" + strconv.FormatUint(last, 10) + "|"
		a.ClientName = h.ClientName
		a.Version = s.b.opts.Version
	})
	s.event(StateActive, nil)
	s.status(clientStatus{Event: StatusLogon})
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

// heartbeat handles the client's heartbeat command, whose option is
// "start,N" (send a heartbeat every N seconds and watch the client for
// silence), "beat" (the client is alive; no reply) or "stop" (turn both
// off). On success only the received and processed acks are sent, the only
// ones AMPS supports for heartbeat; a malformed option fails the command.
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
		s.setHeartbeat(iv)
	case "beat":
		// No reply (wire spec §7.2); the writer times its next heartbeat
		// from this beat.
		s.lastBeat.Store(time.Now().UnixNano())
	case "stop":
		s.setHeartbeat(0)
	default:
		s.fail(h, ReasonInvalidOptions, nil)
		return
	}
	s.acks(h, want&(ackReceived|ackProcessed), protocol.StatusSuccess, "", nil)
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

// subscribe registers a live subscription under sub_id (else the command
// id, else a generated id). A sub_id already in use fails unless the
// "replace" option swaps the old subscription (its topic, filter and
// options) for the new one. A content filter that does not compile fails
// the command with "bad filter", and the log says where and why. Bookmark
// replay is not supported and fails the command; there is no SOW.
func (s *session) subscribe(h *protocol.Header) {
	table := subscribeOptions
	if h.Command == protocol.CmdDeltaSubscribe {
		table = deltaSubscribeOptions
	}
	if s.pauseOrResume(h) {
		return
	}
	sub, old, fill, ok := s.prepareSubscription(h, table)
	if !ok {
		return
	}
	if s.replays(h) || old != nil && old.replay != nil && s.replayable(h) {
		s.startReplay(h, sub, old, fill, splitOptions(h.Options))
		return
	}
	if opts := splitOptions(h.Options); hasOption(opts, "pause") || optionValue(opts, "rate") != "" ||
		optionValue(opts, "top_n") != "" || h.Has(protocol.FieldTopN) {
		s.log.Info("subscribe refused: pause, rate and top_n need a bookmark subscription to journaled topics", "sub_id", sub.id, "topic", h.Topic)
		s.fail(h, ReasonReplayOnly, fill)
		return
	}
	s.register(sub, old)
	s.status(clientStatus{Event: h.Command, Topic: h.Topic, Filter: h.Filter, Options: h.Options, SubID: sub.id, CorrelationID: h.CorrelationID})
	// No journal: a bookmark subscription's "completed" (replay caught
	// up) comes at once, and "persisted" (the last bookmark persisted)
	// never.
	s.acks(h, parseAcks(h.AckType)&^ackPersisted, protocol.StatusSuccess, "", fill)
}

// prepareSubscription checks a subscribing command (its options against
// table, bookmark, topic, filter, limits, entitlement) and builds its
// subscription, or sends the failure ack and reports false. old is the
// subscription "replace" swaps out; fill adds "sub_id" to the command's
// acks.
func (s *session) prepareSubscription(h *protocol.Header, table map[string]optionUse) (sub, old *subscription, fill func(*protocol.Header), ok bool) {
	id := h.SubID
	if id == "" {
		id = h.CommandID
	}
	if id == "" {
		id = nuid.Next()
	}
	fill = func(a *protocol.Header) { a.SubID = id }
	opts := splitOptions(h.Options)
	if reason, err := checkOptions(opts, table); reason != "" {
		s.log.Info(h.Command+" refused", "sub_id", id, "topic", h.Topic, "err", err)
		s.fail(h, reason, fill)
		return nil, nil, nil, false
	}
	if v := optionValue(opts, "bookmark_not_found"); v != "" && v != "epoch" && v != "now" && v != "fail" {
		s.log.Info(h.Command+" refused", "sub_id", id, "err", "bookmark_not_found takes epoch, now or fail, not "+logText(v))
		s.fail(h, ReasonInvalidOptions, fill)
		return nil, nil, nil, false
	}
	if reason := s.b.bookmarkReason(h, opts, s.replays(h)); reason != "" {
		s.log.Info(h.Command+" refused", "sub_id", id, "topic", h.Topic, "bookmark", logText(h.Bookmark), "reason", reason)
		s.fail(h, reason, fill)
		return nil, nil, nil, false
	}
	sub, reason := newSubscription(id, h.Topic, s.b.opts.NoRegexTopics || hasOption(opts, "non_regex_topic"), s.b.opts.MaxRegexProgram)
	if reason != "" {
		s.fail(h, reason, fill)
		return nil, nil, nil, false
	}
	var err error
	if sub.filter, err = s.rt.compileFilter(h.Filter); err != nil {
		s.log.Info(h.Command+" refused: bad filter", "sub_id", id, "topic", h.Topic, "filter", logText(h.Filter), "err", err)
		s.fail(h, ReasonBadFilter, fill)
		return nil, nil, nil, false
	}
	sub.owner = &s.endpoint
	// The legacy header switch send_oof is the oof option.
	sub.oof = hasOption(opts, "oof") || h.SendOOF
	sub.stamp, sub.noKey = hasOption(opts, "timestamp"), hasOption(opts, "no_sowkey")
	sub.bookmark = hasOption(opts, "bookmark")
	sub.delta = h.Command == protocol.CmdDeltaSubscribe || h.Command == protocol.CmdSOWAndDeltaSub
	if sub.sel, sub.selText, err = s.selectOption(opts); err != nil {
		s.log.Info(h.Command+" refused", "sub_id", id, "err", err)
		s.fail(h, ReasonInvalidOptions, fill)
		return nil, nil, nil, false
	}
	// The legacy header switch send_empty:false is no_empties.
	sub.noEmpties = hasOption(opts, "no_empties") || h.Has(protocol.FieldSendEmpty) && !h.SendEmpty
	s.sweepEnded()
	old = s.subs[id]
	if old != nil && !hasOption(opts, "replace") {
		s.fail(h, ReasonSubIDInUse, fill)
		return nil, nil, nil, false
	}
	if old == nil && s.b.opts.MaxSubscriptions > 0 && len(s.subs) >= s.b.opts.MaxSubscriptions {
		s.fail(h, ReasonTooManySubs, fill)
		return nil, nil, nil, false
	}
	if s.ent != nil {
		if sub.re == nil {
			// A literal topic is checked once, now (semantics §8.2).
			if !s.entitled(sub.topic, Read) {
				s.fail(h, ReasonNotEntitled, fill)
				return nil, nil, nil, false
			}
		} else {
			// A regex is checked per concrete topic as it is first matched;
			// forbidden topics are withheld silently.
			sub.readable = func(topic string) bool { return s.entitled(topic, Read) }
		}
	}
	return sub, old, fill, true
}

// register puts sub in the router, atomically in place of old when old is
// not nil.
func (s *session) register(sub, old *subscription) {
	if old != nil && old.replay != nil {
		s.dropSubs(old) // a replay is not in the router
		old = nil
	}
	if old != nil {
		old.removed.Store(true)
		s.rt.replace(old, sub)
	} else {
		s.rt.add(sub)
	}
	s.subs[sub.id] = sub
	s.nsubs.Store(int64(len(s.subs)))
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
		var gone []*subscription
		for _, id := range strings.Split(ids, ",") {
			id = strings.TrimSpace(id)
			if sub := s.subs[id]; sub != nil {
				gone = append(gone, sub)
				delete(s.subs, id)
				s.status(clientStatus{Event: StatusUnsubscribe, Topic: sub.topic, SubID: id})
			}
		}
		s.dropSubs(gone...)
		s.nsubs.Store(int64(len(s.subs)))
	}
	s.acks(h, parseAcks(h.AckType), protocol.StatusSuccess, "", nil)
}

// maxLogText bounds client-supplied text quoted in a log line: a header
// may be a megabyte, and a client repeating a refused command must not be
// able to fill the log with it. The error logged beside it says where the
// problem is.
const maxLogText = 256

// logText returns s, or its first maxLogText bytes and its length.
func logText(s string) string {
	if len(s) <= maxLogText {
		return s
	}
	return s[:maxLogText] + "… (" + strconv.Itoa(len(s)) + " bytes)"
}

// selectOption compiles the select=[…] option of opts, if any: a select
// list needs JSON messages.
func (s *session) selectOption(opts []string) (*jsondelta.Selector, string, error) {
	v := optionValue(opts, "select")
	if v == "" {
		return nil, "", nil
	}
	if s.mt != DefaultClientMessageType {
		return nil, "", fmt.Errorf("option select: %s messages cannot be projected (json can)", s.mt)
	}
	if !strings.HasPrefix(v, "[") || !strings.HasSuffix(v, "]") {
		return nil, "", fmt.Errorf("option select=%s: the list goes in brackets, e.g. select=[-/,+/id]", v)
	}
	sel, err := jsondelta.ParseSelect(v[1 : len(v)-1])
	return sel, v, err
}
