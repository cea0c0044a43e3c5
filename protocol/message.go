package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrBadMessage is wrapped by the error a Conn's WriteMessage returns for a
// Message that no encoding can carry: no header or two of them, records on
// a command other than "sow", or a "sow" message whose "bs" is not its
// number of records.
var ErrBadMessage = errors.New("protocol: malformed outbound message")

// Message is one outbound AMPS message as values; the Conn encodes it for
// its transport (stream frame, spec §2, or WebSocket frames, spec §3.4).
//
// Exactly one of Header and Shared holds the header. A "sow" message
// carries its records in Records and has no Body; every other message
// carries its payload in Body and has no Records.
type Message struct {
	// Header is the header, encoded by AppendHeader.
	Header *Header
	// Shared is a header encoded once for many recipients (see
	// SharedHeader); SubIDs is spliced into it.
	Shared *SharedHeader
	// SubIDs is this recipient's "sids" when Shared is set; it must be
	// empty otherwise (Header.SubIDs serves then).
	SubIDs SubIDs
	// Body is the payload. It must stay unmodified until WriteMessage
	// returns.
	Body []byte
	// Records are the records of a "sow" batch (spec §2.3, §3.4 rule 6).
	// The header's "bs" must equal len(Records).
	Records []Record
}

// Record is one record of a "sow" batch: a record header ("k", "x", "ts",
// "bm") and the record's data. The encoders write the record header's "l"
// as len(Data), whatever Header says, because clients read exactly "l"
// bytes of data after each record header (spec §2.3).
type Record struct {
	// Header is the record header; nil means no keys but "l".
	Header *Header
	// Data is the record's payload.
	Data []byte
}

// SubIDs is the value of a delivery's "sids" key (the comma-separated ids
// of the recipient's matching subscriptions, spec §8.2), JSON-encoded once
// so that splicing it into a SharedHeader is a copy. The zero value means
// no "sids" key.
type SubIDs struct {
	lit []byte // JSON string literal of the ids, quotes included; nil when empty
}

// NewSubIDs encodes ids, a comma-separated list without spaces.
func NewSubIDs(ids string) SubIDs {
	if ids == "" {
		return SubIDs{}
	}
	return SubIDs{lit: AppendString(nil, ids)}
}

// IsZero reports whether s means no "sids" key.
func (s SubIDs) IsZero() bool { return len(s.lit) == 0 }

// String returns the ids as given to NewSubIDs (invalid UTF-8 replaced).
func (s SubIDs) String() string {
	if len(s.lit) == 0 {
		return ""
	}
	return unescape(s.lit[1 : len(s.lit)-1])
}

// keyLen is how many bytes s adds to a header: the "sids" key and value.
func (s SubIDs) keyLen() int {
	if len(s.lit) == 0 {
		return 0
	}
	return len(sidsKey) + len(s.lit)
}

const sidsKey = `,"sids":`

// SharedHeader is a header encoded once and written to many recipients that
// differ only in "sids", as one publish fanned out to N connections is
// (spec §8.2: each connection's delivery names its own matching
// subscriptions). Writing it for one recipient copies the bytes before
// "sids", the recipient's SubIDs and the bytes after; no key is encoded
// again. The keys come out exactly as AppendHeader writes them.
//
// A SharedHeader is immutable once prepared and may be written from many
// goroutines at once.
type SharedHeader struct {
	// enc holds the keys before "sids" (enc[:mid]) and after it
	// (enc[mid:]), each key with a leading comma; on output the first
	// comma becomes '{'.
	enc []byte
	mid int
	f   framing
}

// Prepare encodes h (whose SubIDs is ignored) into p, appending the bytes
// to dst and returning the extended slice, so a caller can keep the header
// and, say, the body in one allocation. p refers to the appended bytes,
// which must not be modified afterwards. The key order is AppendHeader's;
// "s", if present, is placed as if every recipient had a "sids" key.
func (p *SharedHeader) Prepare(dst []byte, h *Header) []byte {
	start := len(dst)
	dst, mid := appendKeys(dst, h, true, false)
	p.enc = dst[start:len(dst):len(dst)]
	p.mid = mid - start
	p.f = h.framing()
	return dst
}

// Len returns the length of the header written for a recipient with
// subscription ids s.
func (p *SharedHeader) Len(s SubIDs) int {
	n := len(p.enc) + s.keyLen()
	if n == 0 {
		return 2 // "{}"
	}
	return n + 1 // the first comma became '{'; add '}'
}

// appendTo writes the header for the recipient with subscription ids s.
func (p *SharedHeader) appendTo(dst []byte, s SubIDs) []byte {
	start := len(dst)
	dst = append(dst, p.enc[:p.mid]...)
	if len(s.lit) > 0 {
		dst = append(dst, sidsKey...)
		dst = append(dst, s.lit...)
	}
	dst = append(dst, p.enc[p.mid:]...)
	return closeObject(dst, start)
}

// framing is what the encoders need to know about a header to frame its
// message (spec §3.4): the command, "l" and "bs".
type framing struct {
	command       string
	present       Field // FieldLength and FieldBatchSize bits only
	length, batch uint64
}

func (h *Header) framing() framing {
	return framing{
		command: h.Command,
		present: h.Present & (FieldLength | FieldBatchSize),
		length:  h.Length,
		batch:   h.BatchSize,
	}
}

func (m *Message) framing() framing {
	if m.Shared != nil {
		return m.Shared.f
	}
	if m.Header != nil {
		return m.Header.framing()
	}
	return framing{}
}

// AppendHeader appends m's header, with the recipient's "sids" when it has
// a SharedHeader, and returns the extended slice. A message without a
// header yields "{}".
func (m *Message) AppendHeader(dst []byte) []byte {
	if m.Shared != nil {
		return m.Shared.appendTo(dst, m.SubIDs)
	}
	if m.Header != nil {
		return AppendHeader(dst, m.Header)
	}
	return append(dst, '{', '}')
}

// Len returns the number of bytes m takes in the stream encoding without
// the 4-byte length prefix: header, body, and each record's header and
// data. For a delivery with a SharedHeader it is arithmetic; otherwise the
// headers are encoded (into a stack buffer when they fit) to measure them.
func (m *Message) Len() int {
	n := len(m.Body)
	if m.Shared != nil {
		n += m.Shared.Len(m.SubIDs)
	} else {
		var buf [256]byte
		n += len(m.AppendHeader(buf[:0]))
	}
	for i := range m.Records {
		var buf [128]byte
		n += len(appendRecordHeader(buf[:0], &m.Records[i])) + len(m.Records[i].Data)
	}
	return n
}

// appendRecordHeader appends r's header with "l" set to len(r.Data).
func appendRecordHeader(dst []byte, r *Record) []byte {
	var h Header
	if r.Header != nil {
		h = *r.Header
	}
	h.Set(FieldLength, uint64(len(r.Data)))
	return AppendHeader(dst, &h)
}

// check reports why m cannot be encoded, as an error wrapping
// ErrBadMessage, or nil.
func (m *Message) check() error {
	// Fast path for what the broker writes most: a delivery with a shared
	// header, or a header of its own, without records and not "sow".
	if len(m.Records) == 0 {
		if m.Shared != nil && m.Header == nil && m.Shared.f.command != CmdSOW {
			return nil
		}
		if m.Header != nil && m.Shared == nil && len(m.SubIDs.lit) == 0 && m.Header.Command != CmdSOW {
			return nil
		}
	}
	return m.checkAll()
}

// checkAll is check without its fast path.
func (m *Message) checkAll() error {
	switch {
	case m.Header == nil && m.Shared == nil:
		return fmt.Errorf("%w: no header", ErrBadMessage)
	case m.Header != nil && m.Shared != nil:
		return fmt.Errorf("%w: both Header and Shared are set", ErrBadMessage)
	case m.Header != nil && !m.SubIDs.IsZero():
		return fmt.Errorf("%w: SubIDs %s without a SharedHeader (set Header.SubIDs)", ErrBadMessage, m.SubIDs.lit)
	}
	f := m.framing()
	if f.command != CmdSOW {
		if len(m.Records) > 0 {
			return fmt.Errorf("%w: command %q carries %d records; only \"sow\" has records", ErrBadMessage, f.command, len(m.Records))
		}
		return nil
	}
	// A sow batch announces its record count in "bs"; the JS client reads
	// exactly that many record frame pairs (spec §3.4 rule 6).
	if len(m.Body) > 0 {
		return fmt.Errorf("%w: sow message with a %d-byte Body; a sow batch carries Records", ErrBadMessage, len(m.Body))
	}
	if f.present&FieldBatchSize == 0 {
		return fmt.Errorf("%w: sow header without \"bs\" (%d records)", ErrBadMessage, len(m.Records))
	}
	if f.batch != uint64(len(m.Records)) {
		return fmt.Errorf("%w: sow header says \"bs\":%d but the message has %d records", ErrBadMessage, f.batch, len(m.Records))
	}
	return nil
}

// AppendStreamMessage appends m to dst as one frame of the stream encoding
// (spec §2.1): the big-endian length, the header, then the body, or for a
// "sow" batch each record's header and data (spec §2.3). On error dst is
// returned unchanged with an error wrapping ErrBadMessage or
// ErrMessageTooLarge.
func AppendStreamMessage(dst []byte, m *Message) ([]byte, error) {
	dst, err := appendStreamStart(dst, m)
	if err != nil {
		return dst, err
	}
	return append(dst, m.Body...), nil
}

// appendStreamStart appends the stream frame of m without m.Body, which the
// caller writes next (the length prefix counts it).
func appendStreamStart(dst []byte, m *Message) ([]byte, error) {
	if err := m.check(); err != nil {
		return dst, err
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = m.AppendHeader(dst)
	for i := range m.Records {
		dst = appendRecordHeader(dst, &m.Records[i])
		dst = append(dst, m.Records[i].Data...)
	}
	n := uint64(len(dst)-start-frameLengthSize) + uint64(len(m.Body))
	if n > math.MaxUint32 {
		return dst[:start], fmt.Errorf("protocol: message of %d bytes: %w", n, ErrMessageTooLarge)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(n))
	return dst, nil
}
