package protocol

import (
	"fmt"
	"unicode/utf8"
	"unsafe"

	"github.com/ampsbroker/ampsbroker/internal/jsonstr"
)

// maxHeaderNesting bounds how deeply the value of an unknown header key may
// nest objects and arrays. Headers are flat (wire spec §5); unknown keys are
// skipped whatever their type, but a hostile header must not make the
// decoder recurse without limit.
const maxHeaderNesting = 512

// SyntaxError describes a malformed message header.
type SyntaxError struct {
	// Offset is the byte index in the decoded data where the problem was
	// found. For a header that ends early it is the length of the data.
	Offset int
	// Msg says what was wrong.
	Msg string
}

// Error says where the header broke and how.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("protocol: malformed header at byte %d: %s", e.Offset, e.Msg)
}

func syntaxErr(off int, format string, args ...any) *SyntaxError {
	return &SyntaxError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

func endErr(data []byte, what string) *SyntaxError {
	return &SyntaxError{Offset: len(data), Msg: "header ends " + what}
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

func skipSpace(data []byte, i int) int {
	// Every JSON space is <= ' ', so one comparison settles most bytes.
	for i < len(data) && data[i] <= ' ' && isSpace(data[i]) {
		i++
	}
	return i
}

// HeaderEnd returns the index just past the closing brace of the JSON object
// at the start of data, the header of a stream frame (wire spec §2.1). The
// bytes after it are the message body, which may itself begin with '{'.
//
// The end of the header is found by parsing the object's JSON syntax, with
// the same code DecodeHeader uses to skip the values of unknown keys:
// strings honour backslash escapes, so a '}' inside a string value does not
// end the header, and nested objects and arrays must close properly. Key
// names and value types are not checked; DecodeHeader does that. Leading
// whitespace is skipped. Data that does not start with a complete, well-formed
// object yields a *SyntaxError.
func HeaderEnd(data []byte) (int, error) {
	i := skipSpace(data, 0)
	if i == len(data) {
		return 0, endErr(data, "before it starts: expected '{'")
	}
	if data[i] != '{' {
		return 0, syntaxErr(i, "expected '{' at start of header, found %q", data[i])
	}
	return skipContainer(data, i, 1)
}

// DecodeHeader resets *h and decodes into it the JSON header object that is
// data (wire spec §5, §6). Whitespace around the object and between tokens
// is allowed; any other byte after the object is an error, so pass the header
// alone (Conn.ReadMessage and HeaderEnd split it from the body).
//
// Decoding follows wire spec §5:
//   - numeric keys accept a JSON number or a string of decimal digits (the JS
//     client sends "s":"1795369341455000001"); the value must fit uint64, and
//     a negative or fractional number is an error naming the key;
//   - the boolean keys accept true/false or the strings "true"/"false";
//   - an empty string, like null, means the key is absent (a numeric key's
//     Present bit is cleared, a string field stays empty);
//   - abbreviations f (filter), o and opts (options), v and version,
//     max_msgs and maximum_messages fill the same field;
//   - unknown keys are ignored whatever their value, nested values included;
//   - strings are fully unescaped, surrogate pairs included; invalid UTF-8
//     and lone surrogates become U+FFFD, as encoding/json does.
//
// Decisions where the spec is silent: a duplicate key overwrites the earlier
// value (last wins); string fields also accept a bare number and keep its
// text ("cid":5 reads as "5"); raw control characters inside strings are
// tolerated.
//
// Errors are *SyntaxError. On error *h holds the keys decoded before the
// malformed byte, which lets a caller still echo, say, the cid in a failure
// ack. DecodeHeader allocates only the strings it stores, and none for
// well-known command, ack type, status and message type values; a topic
// equal to the one *h held before the call keeps that string, so a
// connection that decodes each header into the same Header allocates
// nothing for a publisher's repeated topic.
func DecodeHeader(data []byte, h *Header) error {
	prevTopic := h.Topic
	*h = Header{}
	end, err := decodeObject(data, h, prevTopic)
	if err != nil {
		return err
	}
	if i := skipSpace(data, end); i < len(data) {
		return syntaxErr(i, "unexpected %q after the header object", data[i])
	}
	return nil
}

// fieldKind says how a known key's value is decoded.
type fieldKind uint8

const (
	kindUnknown fieldKind = iota
	kindString
	kindInternedString // string field whose common values are constants
	kindNumber
	kindBool
)

// lookupKey maps a header key to its field (wire spec §6).
func lookupKey(h *Header, key []byte) (fieldKind, *string, Field, *bool) {
	switch string(key) {
	case "c":
		return kindInternedString, &h.Command, 0, nil
	case "cid":
		return kindString, &h.CommandID, 0, nil
	case "a":
		return kindInternedString, &h.AckType, 0, nil
	case "t":
		return kindString, &h.Topic, 0, nil
	case "sub_id":
		return kindString, &h.SubID, 0, nil
	case "sids":
		return kindString, &h.SubIDs, 0, nil
	case "query_id":
		return kindString, &h.QueryID, 0, nil
	case "filter", "f":
		return kindString, &h.Filter, 0, nil
	case "o", "opts":
		return kindString, &h.Options, 0, nil
	case "bm":
		return kindString, &h.Bookmark, 0, nil
	case "orderby":
		return kindString, &h.OrderBy, 0, nil
	case "sow_keys":
		return kindString, &h.SOWKeys, 0, nil
	case "k":
		return kindString, &h.SOWKey, 0, nil
	case "x":
		return kindString, &h.CorrelationID, 0, nil
	case "ts":
		return kindString, &h.Timestamp, 0, nil
	case "lp":
		return kindString, &h.LeasePeriod, 0, nil
	case "status":
		return kindInternedString, &h.Status, 0, nil
	case "reason":
		return kindString, &h.Reason, 0, nil
	case "client_name":
		return kindString, &h.ClientName, 0, nil
	case "user_id":
		return kindString, &h.UserID, 0, nil
	case "pw":
		return kindString, &h.Password, 0, nil
	case "version", "v":
		return kindString, &h.Version, 0, nil
	case "mt":
		return kindInternedString, &h.MessageType, 0, nil

	case "bs":
		return kindNumber, nil, FieldBatchSize, nil
	case "top_n":
		return kindNumber, nil, FieldTopN, nil
	case "e":
		return kindNumber, nil, FieldExpiration, nil
	case "s":
		return kindNumber, nil, FieldSequence, nil
	case "l":
		return kindNumber, nil, FieldLength, nil
	case "records_returned":
		return kindNumber, nil, FieldRecordsReturned, nil
	case "records_inserted":
		return kindNumber, nil, FieldRecordsInserted, nil
	case "records_updated":
		return kindNumber, nil, FieldRecordsUpdated, nil
	case "records_deleted":
		return kindNumber, nil, FieldRecordsDeleted, nil
	case "topic_matches":
		return kindNumber, nil, FieldTopicMatches, nil
	case "matches":
		return kindNumber, nil, FieldMatches, nil
	case "gseq":
		return kindNumber, nil, FieldGroupSeq, nil
	case "skip_n":
		return kindNumber, nil, FieldSkipN, nil
	case "max_msgs", "maximum_messages":
		return kindNumber, nil, FieldMaxMessages, nil
	case "timeout_interval":
		return kindNumber, nil, FieldTimeoutInterval, nil
	case "grace_period":
		return kindNumber, nil, FieldGracePeriod, nil

	case "send_empty":
		return kindBool, nil, FieldSendEmpty, &h.SendEmpty
	case "send_keys":
		return kindBool, nil, 0, &h.SendKeys
	case "send_oof":
		return kindBool, nil, 0, &h.SendOOF
	case "data_only":
		return kindBool, nil, 0, &h.DataOnly
	case "send_subscription_ids":
		return kindBool, nil, 0, &h.SendSubscriptionIDs
	}
	return kindUnknown, nil, 0, nil
}

// intern returns a constant for the common values of c, a, status and mt,
// so decoding them allocates nothing.
func intern(b []byte) string {
	switch string(b) {
	case CmdLogon:
		return CmdLogon
	case CmdHeartbeat:
		return CmdHeartbeat
	case CmdPublish:
		return CmdPublish
	case CmdP:
		return CmdP
	case CmdDeltaPublish:
		return CmdDeltaPublish
	case CmdSubscribe:
		return CmdSubscribe
	case CmdDeltaSubscribe:
		return CmdDeltaSubscribe
	case CmdUnsubscribe:
		return CmdUnsubscribe
	case CmdSOW:
		return CmdSOW
	case CmdSOWAndSubscribe:
		return CmdSOWAndSubscribe
	case CmdSOWAndDeltaSub:
		return CmdSOWAndDeltaSub
	case CmdSOWDelete:
		return CmdSOWDelete
	case CmdFlush:
		return CmdFlush
	case CmdAck:
		return CmdAck
	case CmdOOF:
		return CmdOOF
	case AckReceived:
		return AckReceived
	case AckParsed:
		return AckParsed
	case AckProcessed:
		return AckProcessed
	case AckPersisted:
		return AckPersisted
	case AckCompleted:
		return AckCompleted
	case AckStats:
		return AckStats
	case "processed,completed":
		return "processed,completed"
	case "none":
		return "none"
	case StatusSuccess:
		return StatusSuccess
	case StatusFailure:
		return StatusFailure
	case "json":
		return "json"
	}
	return string(b)
}

// decodeObject decodes the header object at the start of data into h and
// returns the index just past its closing brace.
func decodeObject(data []byte, h *Header, prevTopic string) (int, error) {
	i := skipSpace(data, 0)
	if i == len(data) {
		return 0, endErr(data, "before it starts: expected '{'")
	}
	if data[i] != '{' {
		return 0, syntaxErr(i, "expected '{' at start of header, found %q", data[i])
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return i + 1, nil
	}
	for {
		if i == len(data) {
			return 0, endErr(data, "where a key was expected")
		}
		if data[i] != '"' {
			return 0, syntaxErr(i, "expected '\"' to start a key, found %q", data[i])
		}
		raw, esc, next, err := scanString(data, i)
		if err != nil {
			return 0, err
		}
		key := raw
		if esc {
			key = []byte(unescape(raw))
		}
		i = skipSpace(data, next)
		if i == len(data) {
			return 0, endErr(data, fmt.Sprintf("after key %q", key))
		}
		if data[i] != ':' {
			return 0, syntaxErr(i, "expected ':' after key %q", key)
		}
		i = skipSpace(data, i+1)
		if i == len(data) {
			return 0, endErr(data, fmt.Sprintf("where the value of key %q was expected", key))
		}

		kind, sp, f, bp := lookupKey(h, key)
		switch kind {
		case kindString, kindInternedString:
			reuse := ""
			if sp == &h.Topic {
				reuse = prevTopic
			}
			i, err = decodeStringValue(data, i, key, sp, kind == kindInternedString, reuse)
		case kindNumber:
			i, err = decodeNumberValue(data, i, key, h, f)
		case kindBool:
			i, err = decodeBoolValue(data, i, key, bp)
			h.Present |= f // presence, for the switches that record it
		default:
			i, err = skipValue(data, i, 1)
		}
		if err != nil {
			return 0, err
		}

		i = skipSpace(data, i)
		if i == len(data) {
			return 0, endErr(data, fmt.Sprintf("after the value of key %q", key))
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return i + 1, nil
		default:
			return 0, syntaxErr(i, "expected ',' or '}' after the value of key %q, found %q", key, data[i])
		}
	}
}

// scanString validates the string whose opening quote is at data[start]. It
// returns the raw bytes between the quotes, whether they hold an escape or
// bytes that are not valid UTF-8 (so that unescape must run), and the index
// just past the closing quote.
func scanString(data []byte, start int) (raw []byte, slow bool, next int, err error) {
	i := start + 1
	// Fast path: plain ASCII up to the closing quote.
	for ; i < len(data); i++ {
		c := data[i]
		if c == '"' {
			return data[start+1 : i], false, i + 1, nil
		}
		if c == '\\' || c >= utf8.RuneSelf {
			break
		}
	}
	esc := false
	for i < len(data) {
		switch data[i] {
		case '"':
			raw = data[start+1 : i]
			return raw, esc || !utf8.Valid(raw), i + 1, nil
		case '\\':
			esc = true
			if i+1 == len(data) {
				return nil, false, 0, endErr(data, "inside an escape sequence")
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(data) {
					return nil, false, 0, endErr(data, "inside a \\u escape")
				}
				if _, ok := jsonstr.Hex4(data, i+2); !ok {
					return nil, false, 0, syntaxErr(i, "invalid escape %q: want four hex digits after \\u", data[i:i+6])
				}
				i += 6
			default:
				return nil, false, 0, syntaxErr(i, "invalid escape %q in string", data[i:i+2])
			}
		default:
			i++
		}
	}
	return nil, false, 0, endErr(data, fmt.Sprintf("inside the string starting at byte %d", start))
}

// unescape returns the text of a string already validated by scanString.
// Invalid UTF-8 and lone surrogates become U+FFFD.
func unescape(raw []byte) string {
	b, _ := jsonstr.AppendUnescaped(make([]byte, 0, len(raw)), raw, true)
	// b is referenced nowhere else, so the string may share its bytes (as
	// strings.Builder's String does), saving a copy.
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// decodeStringValue decodes the value of a string key at data[i].
func decodeStringValue(data []byte, i int, key []byte, dst *string, interned bool, reuse string) (int, error) {
	switch c := data[i]; {
	case c == '"':
		raw, slow, next, err := scanString(data, i)
		if err != nil {
			return 0, err
		}
		switch {
		case slow:
			*dst = unescape(raw)
		case len(raw) == 0:
			*dst = "" // wire spec §5: empty means absent
		case interned:
			*dst = intern(raw)
		case string(raw) == reuse:
			*dst = reuse // the comparison allocates nothing
		default:
			*dst = string(raw)
		}
		return next, nil
	case c == '-' || '0' <= c && c <= '9':
		// Leniency: a bare number where a string is expected keeps its
		// text, e.g. a client sending "cid":5.
		next, err := skipNumber(data, i)
		if err != nil {
			return 0, err
		}
		*dst = string(data[i:next])
		return next, nil
	case c == 'n':
		next, err := skipLiteral(data, i, "null")
		if err != nil {
			return 0, err
		}
		*dst = ""
		return next, nil
	default:
		return 0, syntaxErr(i, "expected a string value for key %q, found %q", key, c)
	}
}

// decodeNumberValue decodes the value of a numeric key at data[i]: a bare
// unsigned integer or a string of decimal digits (wire spec §5).
func decodeNumberValue(data []byte, i int, key []byte, h *Header, f Field) (int, error) {
	var digits []byte
	var next int
	switch c := data[i]; {
	case '0' <= c && c <= '9':
		j := i
		for j < len(data) && '0' <= data[j] && data[j] <= '9' {
			j++
		}
		if j < len(data) && (data[j] == '.' || data[j] == 'e' || data[j] == 'E') {
			return 0, syntaxErr(j, "value of key %q is not an unsigned integer: it has a fraction or exponent", key)
		}
		digits, next = data[i:j], j
	case c == '-':
		return 0, syntaxErr(i, "value of key %q is negative; want an unsigned integer", key)
	case c == '"':
		raw, slow, n, err := scanString(data, i)
		if err != nil {
			return 0, err
		}
		digits, next = raw, n
		if slow {
			digits = []byte(unescape(raw))
		}
	case c == 'n':
		n, err := skipLiteral(data, i, "null")
		if err != nil {
			return 0, err
		}
		digits, next = nil, n
	default:
		return 0, syntaxErr(i, "expected a number or a string of digits for key %q, found %q", key, c)
	}
	if len(digits) == 0 {
		// Empty string or null: absent (wire spec §5); last one wins.
		*h.num(f) = 0
		h.Present &^= f
		return next, nil
	}
	var v uint64
	for k, d := range digits {
		if d < '0' || d > '9' {
			return 0, syntaxErr(i, "value %q of key %q is not an unsigned decimal integer (byte %d is %q)",
				digits, key, k, d)
		}
		if v > (1<<64-1-uint64(d-'0'))/10 {
			return 0, syntaxErr(i, "value %q of key %q overflows uint64", digits, key)
		}
		v = v*10 + uint64(d-'0')
	}
	h.Set(f, v)
	return next, nil
}

// decodeBoolValue decodes one of the legacy switches: true/false, the
// strings "true"/"false", or an empty string or null meaning false.
func decodeBoolValue(data []byte, i int, key []byte, dst *bool) (int, error) {
	switch data[i] {
	case 't':
		*dst = true
		return skipLiteral(data, i, "true")
	case 'f':
		*dst = false
		return skipLiteral(data, i, "false")
	case 'n':
		*dst = false
		return skipLiteral(data, i, "null")
	case '"':
		raw, slow, next, err := scanString(data, i)
		if err != nil {
			return 0, err
		}
		if !slow {
			switch string(raw) {
			case "true":
				*dst = true
				return next, nil
			case "false", "":
				*dst = false
				return next, nil
			}
		}
		return 0, syntaxErr(i, "value %q of key %q is not true or false", raw, key)
	}
	return 0, syntaxErr(i, "expected true or false for key %q, found %q", key, data[i])
}

func skipLiteral(data []byte, i int, lit string) (int, error) {
	if len(data)-i < len(lit) {
		if string(data[i:]) == lit[:len(data)-i] {
			return 0, endErr(data, fmt.Sprintf("inside %s", lit))
		}
	} else if string(data[i:i+len(lit)]) == lit {
		return i + len(lit), nil
	}
	return 0, syntaxErr(i, "invalid literal: expected %s", lit)
}

// skipNumber skips a JSON number: -?digits(.digits)?([eE][+-]?digits)?
func skipNumber(data []byte, i int) (int, error) {
	start := i
	if data[i] == '-' {
		i++
	}
	var err error
	if i, err = skipDigits(data, i, start, "first"); err != nil {
		return 0, err
	}
	if i < len(data) && data[i] == '.' {
		if i, err = skipDigits(data, i+1, start, "after '.'"); err != nil {
			return 0, err
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i, err = skipDigits(data, i, start, "in the exponent"); err != nil {
			return 0, err
		}
	}
	return i, nil
}

// skipDigits skips one or more decimal digits of the number starting at
// data[start]; what says where in the number they are, for the error.
func skipDigits(data []byte, i, start int, what string) (int, error) {
	j := i
	for j < len(data) && '0' <= data[j] && data[j] <= '9' {
		j++
	}
	if j == i {
		if j == len(data) {
			return 0, endErr(data, "inside a number")
		}
		return 0, syntaxErr(j, "invalid number starting at byte %d: expected a digit %s, found %q", start, what, data[j])
	}
	return j, nil
}

// skipValue skips any JSON value at data[i] (the value of an unknown key)
// and returns the index just past it. depth counts enclosing containers.
func skipValue(data []byte, i, depth int) (int, error) {
	if c := data[i]; c == '{' || c == '[' {
		if depth >= maxHeaderNesting {
			return 0, syntaxErr(i, "values nested deeper than %d levels", maxHeaderNesting)
		}
		return skipContainer(data, i, depth+1)
	}
	return skipScalar(data, i)
}

// skipScalar skips the string, number, true, false or null at data[i].
func skipScalar(data []byte, i int) (int, error) {
	switch c := data[i]; {
	case c == '"':
		return skipString(data, i)
	case c == '-' || '0' <= c && c <= '9':
		return skipNumber(data, i)
	case c == 't':
		return skipLiteral(data, i, "true")
	case c == 'f':
		return skipLiteral(data, i, "false")
	case c == 'n':
		return skipLiteral(data, i, "null")
	}
	return 0, syntaxErr(i, "expected a value, found %q", data[i])
}

// skipContainer skips the object or array opening at data[i], whose
// nesting depth (itself included) is depth, and returns the index just past
// its closing bracket. It is the one place that knows where a JSON object
// ends: HeaderEnd uses it for the header, DecodeHeader for the values of
// unknown keys. It checks the JSON syntax (keys are strings followed by
// ':', values are separated by ',', brackets match; string escapes are
// checked by scanString) in one pass without allocating. Nested containers
// are tracked in a word of bits, one per level saying whether it is an
// object; containers nested deeper than a word holds are skipped by a
// nested call.
func skipContainer(data []byte, i, depth int) (int, error) {
	var (
		objects uint64 // bit n: the container at level n is an object
		level   = -1   // the innermost open container; 0 is the one at data[i]
		isObj   bool
		closer  byte
		c       byte
		j       int
		err     error
	)
open: // data[i] opens a container
	level++
	isObj = data[i] == '{'
	closer = ']'
	if isObj {
		closer = '}'
		objects |= 1 << level
	} else {
		objects &^= 1 << level
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == closer {
		i++
		goto closed
	}
member: // a member (object) or element (array) starts at i
	if isObj {
		if i == len(data) {
			return 0, endErr(data, "where a key was expected")
		}
		if data[i] != '"' {
			return 0, syntaxErr(i, "expected '\"' to start a key, found %q", data[i])
		}
		// Plain strings and integers, most of a header, are skipped
		// here; the rest is left to skipString and skipScalar.
		if j = stringStop(data, i+1); j < len(data) && data[j] == '"' {
			i = j + 1
		} else if i, err = skipString(data, i); err != nil {
			return 0, err
		}
		if i < len(data) && data[i] == ':' {
			i++ // compact "key":value, the usual case
		} else {
			i = skipSpace(data, i)
			if i == len(data) {
				return 0, endErr(data, "where ':' was expected")
			}
			if data[i] != ':' {
				return 0, syntaxErr(i, "expected ':' after a key, found %q", data[i])
			}
			i++
		}
		i = skipSpace(data, i)
	}
	if i == len(data) {
		return 0, endErr(data, "where a value was expected")
	}
	if c = data[i]; c == '"' {
		if j = stringStop(data, i+1); j < len(data) && data[j] == '"' {
			i = j + 1
		} else if i, err = skipString(data, i); err != nil {
			return 0, err
		}
	} else if '0' <= c && c <= '9' {
		for j = i + 1; j < len(data) && '0' <= data[j] && data[j] <= '9'; j++ {
		}
		if j == len(data) || data[j] != '.' && data[j] != 'e' && data[j] != 'E' {
			i = j
		} else if i, err = skipNumber(data, i); err != nil {
			return 0, err
		}
	} else if c == '{' || c == '[' {
		if depth+level >= maxHeaderNesting {
			return 0, syntaxErr(i, "values nested deeper than %d levels", maxHeaderNesting)
		}
		if level < 63 {
			goto open
		}
		if i, err = skipContainer(data, i, depth+level+1); err != nil {
			return 0, err
		}
	} else if i, err = skipScalar(data, i); err != nil {
		return 0, err
	}
next: // a value ended just before i
	i = skipSpace(data, i)
	if i == len(data) {
		return 0, endErr(data, fmt.Sprintf("with an unclosed %q", closer))
	}
	switch data[i] {
	case ',':
		i = skipSpace(data, i+1)
		goto member
	case closer:
		i++
		goto closed
	}
	return 0, syntaxErr(i, "expected ',' or %q, found %q", closer, data[i])
closed: // the container at level ended just before i
	if level == 0 {
		return i, nil
	}
	level--
	isObj = objects&(1<<level) != 0
	closer = ']'
	if isObj {
		closer = '}'
	}
	goto next
}

// skipString returns the index just past the closing quote of the string
// whose opening quote is at data[start]. Only escapes can make a string
// malformed (scanString tolerates invalid UTF-8 and control characters), so
// a string without a backslash is skipped in one tight loop and others are
// validated by scanString.
func skipString(data []byte, start int) (int, error) {
	if i := stringStop(data, start+1); i < len(data) && data[i] == '"' {
		return i + 1, nil
	}
	_, _, next, err := scanString(data, start)
	return next, err
}

// stringStop returns the index of the first '"' or '\\' in data at or after
// i, or len(data): where the plain run of a string ends. Header strings are
// short, so a plain loop the compiler inlines beats bytes.IndexByte.
func stringStop(data []byte, i int) int {
	for i < len(data) && data[i] != '"' && data[i] != '\\' {
		i++
	}
	return i
}
