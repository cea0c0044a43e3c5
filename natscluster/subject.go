package natscluster

import (
	"errors"
	"fmt"
	"strings"
)

// Topic to subject mapping.
//
// NATS gives meaning to characters an AMPS topic may contain: "." separates
// subject tokens, "*" and ">" are wildcards, whitespace ends a subject, and
// the protocol line that carries a subject is limited in length. A topic is
// therefore never used as it stands: the message type and the topic each
// become one token, so a subject is always
//
//	<prefix>.<message type token>.<topic token>
//
// and a subscription to every topic of a message type is
// "<prefix>.<message type token>.*". A token is the name's bytes with every
// byte outside [A-Za-z0-9], "-", "_", "/", ":" and "@" written as "%" and
// two upper-case hex digits (so "." is "%2E", a space "%20", "%" itself
// "%25", and a UTF-8 letter such as "ü" is "%C3%BC"); the empty name is the
// token "%" alone. Any byte string, valid UTF-8 or not, has exactly one
// token and every token decodes to its name: the mapping is a bijection
// between names and well-formed tokens, so a node can recover the topic from
// a subject it receives. Only printable ASCII is ever emitted, never "*" or
// ">", and no token is empty, so the subject is valid for publishing.
//
// AMPS topics like "orders" or "/desk/1/positions" stay readable
// ("amps.json.orders", "amps.json./desk/1/positions"); a dotted topic such
// as "market.data" becomes the single token "market%2Edata". AMPS regex
// subscriptions cannot be expressed as NATS wildcards; they are matched by
// the receiving node on the decoded topic.

// MaxSubjectBytes is the longest subject the mapping produces: the NATS
// protocol line carrying a publish (subject, reply inbox, sizes) must stay
// below the server's max_control_line (4096 bytes by default), and an
// escaped byte takes three. A topic whose subject would be longer is
// refused with ErrSubjectTooLong.
const MaxSubjectBytes = 2048

// Sentinel errors of the mapping.
var (
	// ErrSubjectTooLong: the subject of a message type and topic would be
	// longer than MaxSubjectBytes.
	ErrSubjectTooLong = errors.New("subject too long")
	// ErrBadPrefix: a subject prefix is not one or more literal tokens of
	// the characters a token may hold unescaped.
	ErrBadPrefix = errors.New("invalid subject prefix")
	// ErrBadSubject: a subject is not "<prefix>.<token>.<token>" with
	// well-formed tokens.
	ErrBadSubject = errors.New("not a mapped subject")
)

// escapeByte is the byte that starts an escape in a token.
const escapeByte = '%'

// emptyToken is the token of the empty name.
const emptyToken = "%"

const upperHex = "0123456789ABCDEF"

// literal reports whether b stands for itself in a token.
func literal(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	switch b {
	case '-', '_', '/', ':', '@':
		return true
	}
	return false
}

// EncodeToken is name's subject token (see the mapping above).
func EncodeToken(name string) string {
	if name == "" {
		return emptyToken
	}
	n := len(name)
	for i := 0; i < len(name); i++ {
		if !literal(name[i]) {
			n += 2
		}
	}
	if n == len(name) {
		return name
	}
	var b strings.Builder
	b.Grow(n)
	for i := 0; i < len(name); i++ {
		c := name[i]
		if literal(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte(escapeByte)
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&0xF])
	}
	return b.String()
}

// DecodeToken is the name whose token tok is. Only the form EncodeToken
// writes is accepted (upper-case hex, no escaped literal byte), so every
// name has one token.
func DecodeToken(tok string) (string, error) {
	if tok == emptyToken {
		return "", nil
	}
	if tok == "" {
		return "", fmt.Errorf("%w: empty token", ErrBadSubject)
	}
	if strings.IndexByte(tok, escapeByte) < 0 {
		for i := 0; i < len(tok); i++ {
			if !literal(tok[i]) {
				return "", fmt.Errorf("%w: token %q has byte %q unescaped", ErrBadSubject, tok, tok[i])
			}
		}
		return tok, nil
	}
	out := make([]byte, 0, len(tok))
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if literal(c) {
			out = append(out, c)
			continue
		}
		if c != escapeByte || i+2 >= len(tok) {
			return "", fmt.Errorf("%w: token %q has byte %q at %d unescaped or a short escape", ErrBadSubject, tok, c, i)
		}
		hi, ok1 := unhex(tok[i+1])
		lo, ok2 := unhex(tok[i+2])
		v := hi<<4 | lo
		if !ok1 || !ok2 || literal(v) {
			return "", fmt.Errorf("%w: token %q has a malformed escape %q at %d", ErrBadSubject, tok, tok[i:i+3], i)
		}
		out = append(out, v)
		i += 2
	}
	return string(out), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// Subjects maps message types and topics to subjects under one prefix.
// The zero value is not usable; see NewSubjects.
type Subjects struct {
	prefix string
}

// NewSubjects validates prefix: one or more dot-separated tokens of the
// bytes a token holds unescaped (for example "amps" or "amps.prod").
func NewSubjects(prefix string) (Subjects, error) {
	if prefix == "" {
		return Subjects{}, fmt.Errorf("%w: empty", ErrBadPrefix)
	}
	for tok := range strings.SplitSeq(prefix, ".") {
		if tok == "" {
			return Subjects{}, fmt.Errorf("%w %q: empty token", ErrBadPrefix, prefix)
		}
		for i := 0; i < len(tok); i++ {
			if !literal(tok[i]) {
				return Subjects{}, fmt.Errorf("%w %q: byte %q", ErrBadPrefix, prefix, tok[i])
			}
		}
	}
	if len(prefix)+4 > MaxSubjectBytes {
		return Subjects{}, fmt.Errorf("%w %q: longer than a subject may be", ErrBadPrefix, prefix)
	}
	return Subjects{prefix: prefix}, nil
}

// Prefix is the prefix every subject starts with.
func (s Subjects) Prefix() string { return s.prefix }

// Subject is "<prefix>.<message type token>.<topic token>".
func (s Subjects) Subject(messageType, topic string) (string, error) {
	mt, tp := EncodeToken(messageType), EncodeToken(topic)
	n := len(s.prefix) + 1 + len(mt) + 1 + len(tp)
	if n > MaxSubjectBytes {
		return "", fmt.Errorf("%w: message type %q, topic %q: %d bytes, at most %d", ErrSubjectTooLong, messageType, topic, n, MaxSubjectBytes)
	}
	return s.prefix + "." + mt + "." + tp, nil
}

// MessageType is the subject filter of every topic of a message type:
// "<prefix>.<message type token>.*".
func (s Subjects) MessageType(messageType string) string {
	return s.prefix + "." + EncodeToken(messageType) + ".*"
}

// All is the subject filter of every mapped subject: "<prefix>.*.*".
func (s Subjects) All() string { return s.prefix + ".*.*" }

// Parse is the message type and topic of a subject Subject made.
func (s Subjects) Parse(subject string) (messageType, topic string, err error) {
	rest, ok := strings.CutPrefix(subject, s.prefix+".")
	if !ok {
		return "", "", fmt.Errorf("%w: %q is not under prefix %q", ErrBadSubject, subject, s.prefix)
	}
	mt, tp, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(tp, '.') >= 0 {
		return "", "", fmt.Errorf("%w: %q is not <prefix>.<type>.<topic>", ErrBadSubject, subject)
	}
	if messageType, err = DecodeToken(mt); err != nil {
		return "", "", err
	}
	if topic, err = DecodeToken(tp); err != nil {
		return "", "", err
	}
	return messageType, topic, nil
}

// covers reports whether the subjects of filter (a stream's subject, with
// NATS wildcards) include every subject of pattern ("*" tokens too).
func covers(filter, pattern string) bool {
	f, p := strings.Split(filter, "."), strings.Split(pattern, ".")
	for i, tok := range f {
		switch {
		case tok == ">":
			return true
		case i >= len(p):
			return false
		case tok != "*" && tok != p[i]:
			return false
		}
	}
	return len(f) == len(p)
}
