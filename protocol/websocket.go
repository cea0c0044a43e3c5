package protocol

// This file is the WebSocket encoding of the official AMPS JavaScript client
// (wire spec §3) as a pure codec: it never touches a socket, so it can be
// fuzzed. The listener package feeds it one WebSocket message at a time and
// writes the frames it produces.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Payload-encoding selectors: the first WebSocket message of a session, a text
// frame, tells the broker how to frame payloads it sends (wire spec §3.2).
const (
	// WSSelectorText is sent by the JS client when the URI message type is json.
	WSSelectorText = "text"
	// WSSelectorBinary is sent for every other message type.
	WSSelectorBinary = "binary"
)

const (
	// DefaultWSMaxFrames is the largest frame count N a count frame may
	// announce (wire spec §3.3). Bytes are already bounded by the maximum
	// message size; this only rejects garbage counts early. The JS client
	// sends N = 1 + parts, or 1 + 2×parts for composite types, so 65536
	// leaves room for composites of tens of thousands of parts.
	DefaultWSMaxFrames = 1 << 16

	// wsCountFrameSize is the exact payload size of a count frame (uint32).
	wsCountFrameSize = 4

	// wsSmallFrameLimit bounds selector and count frames as read by
	// FrameLimit: a few bytes more than the longest legal one, so a wrong
	// frame is reported by the decoder with a precise error instead of by the
	// WebSocket library as "message too big".
	wsSmallFrameLimit = 64

	// wsBEFallbackMinLE and wsBEFallbackMaxBE implement the robustness rule of
	// wire spec §3.3: a little-endian count of at least 0x01000000 whose
	// big-endian reading is at most 64 was written by a big-endian host.
	wsBEFallbackMinLE = 0x01000000
	wsBEFallbackMaxBE = 64

	// wsQuoteLimit bounds how many bytes of a bad frame an error message quotes.
	wsQuoteLimit = 32
)

// Errors returned by WSDecoder.Feed. Each is wrapped with the details of the
// offending frame; test with errors.Is. After an error the decoder is unusable.
var (
	// ErrWSNoSelector means the first WebSocket message of the session was not
	// the text frame "text" or "binary" (wire spec §3.2), nor the stream
	// framing of the third-party Go client (wire spec §3.6).
	ErrWSNoSelector = errors.New("protocol: websocket session did not start with a \"text\" or \"binary\" selector frame")

	// ErrWSBadCount means a frame in count position was not a 4-byte binary
	// frame announcing between 1 and the decoder's MaxFrames frames (wire
	// spec §3.3).
	ErrWSBadCount = errors.New("protocol: bad websocket count frame")

	// ErrWSBadHeader means a header frame was not a text frame holding a
	// JSON object, or a stream-variant frame did not start with one.
	ErrWSBadHeader = errors.New("protocol: bad websocket header frame")

	// ErrWSMessageTooLarge means the frames of one message together exceed
	// the decoder's MaxMessageSize. It wraps ErrFrameTooLarge, so callers
	// that handle the stream encoding's limit handle this one too. The
	// listener closes such connections with WebSocket status 1009.
	ErrWSMessageTooLarge = fmt.Errorf("%w: websocket message over the size limit", ErrFrameTooLarge)

	// ErrWSFraming is returned by WSEncoder.Encode when a message cannot be
	// expressed in frames the JS client decodes correctly (wire spec §3.4):
	// a body on a command the client reads without data, or an "l" on "p",
	// "publish" or "oof" that differs from the body's length.
	ErrWSFraming = errors.New("protocol: message cannot be framed for websocket")
)

// WSMode is how a WebSocket session frames payloads, set by its first message.
type WSMode uint8

const (
	// WSModeUnknown: no message received yet.
	WSModeUnknown WSMode = iota
	// WSModeText: the client sent the "text" selector (message type json);
	// payloads go out as text frames when they are valid UTF-8.
	WSModeText
	// WSModeBinary: the client sent the "binary" selector; payloads go out as
	// binary frames.
	WSModeBinary
	// WSModeStream: the third-party Go client variant (wire spec §3.6), which
	// tunnels the stream encoding through binary messages.
	WSModeStream
)

// String returns the mode's name.
func (m WSMode) String() string {
	switch m {
	case WSModeText:
		return "text"
	case WSModeBinary:
		return "binary"
	case WSModeStream:
		return "stream"
	}
	return "unknown"
}

// wsState is where a WSDecoder is inside the official encoding.
type wsState uint8

const (
	wsAwaitSelector wsState = iota // first message of the session
	wsAwaitCount                   // between bursts
	wsAwaitHeader                  // after a count frame
	wsAwaitData                    // after the header, frames left > 0
	wsFailed                       // sticky error
)

// wsSpan locates one decoded message inside a decoder buffer: its header is
// buf[start:headerEnd] and its body buf[headerEnd:end].
type wsSpan struct{ start, headerEnd, end int }

// WSDecoder turns the WebSocket messages of one client session into AMPS
// messages. The zero value is ready to use with default limits.
//
// In the official encoding (wire spec §3.2, §3.3) the first message must be
// the text selector "text" or "binary"; then every AMPS message is a burst of
// a binary count frame (uint32 N, little-endian), a text header frame and
// N-1 data frames, text or binary and possibly empty, whose concatenation is
// the body. Fragmented WebSocket messages must be reassembled by the caller.
//
// The third-party Go client (wire spec §3.6) instead sends its TCP byte
// stream (4-byte big-endian length, header, body) in binary messages. Open
// question settled here: we support it rather than refuse it, because its
// detection is unambiguous (the official client's first frame is always a
// text frame) and the stream framing is simple. A first message that is
// binary, has at least 5 bytes, starts with a big-endian length within the
// size limit and then '{' switches the session to WSModeStream; from then
// on every message must be binary and the bytes are treated as one stream,
// so a stream frame may span WebSocket messages or share one.
type WSDecoder struct {
	// MaxMessageSize is the largest header plus body of one AMPS message, all
	// frames together. Default DefaultMaxFrameSize.
	MaxMessageSize int
	// MaxFrames is the largest count N a count frame may announce. Default
	// DefaultWSMaxFrames.
	MaxFrames int

	mode  WSMode
	state wsState
	err   error

	left   int    // frames still expected in the current burst
	hdrEnd int    // header length of the burst in progress
	buf    []byte // official mode: header then body of the current burst; stream mode: the byte stream
	// streamOff is where the stream's unparsed bytes start in buf.
	streamOff int
	// ready lists complete messages in buf not yet returned by Next; next is
	// the index of the first one.
	ready []wsSpan
	next  int
}

// Mode reports how the session frames payloads; WSModeUnknown until the
// first message was fed.
func (d *WSDecoder) Mode() WSMode { return d.mode }

// Err returns the error that stopped the decoder, or nil.
func (d *WSDecoder) Err() error { return d.err }

func (d *WSDecoder) maxSize() int {
	if d.MaxMessageSize > 0 {
		return d.MaxMessageSize
	}
	return DefaultMaxFrameSize
}

func (d *WSDecoder) maxFrames() int {
	if d.MaxFrames > 0 {
		return d.MaxFrames
	}
	return DefaultWSMaxFrames
}

// FrameLimit returns the largest payload the next WebSocket message may have
// without breaking a limit, for use as the WebSocket library's read limit.
// It is never negative.
func (d *WSDecoder) FrameLimit() int64 {
	max := int64(d.maxSize())
	switch {
	case d.state == wsAwaitSelector:
		// The first message may be the stream variant's first frame.
		return max + frameLengthSize
	case d.mode == WSModeStream:
		return max + frameLengthSize
	case d.state == wsAwaitHeader || d.state == wsAwaitData:
		if left := max - int64(len(d.buf)); left > 0 {
			return left
		}
		return 0
	}
	return wsSmallFrameLimit
}

// Next returns the next complete message decoded by Feed. header and body
// are valid until the next call to Feed. ok is false when none is pending.
func (d *WSDecoder) Next() (header, body []byte, ok bool) {
	if d.next >= len(d.ready) {
		return nil, nil, false
	}
	s := d.ready[d.next]
	d.next++
	return d.buf[s.start:s.headerEnd:s.headerEnd], d.buf[s.headerEnd:s.end:s.end], true
}

// Feed consumes one complete WebSocket message (text reports the text
// opcode). It copies what it keeps, so payload may be reused afterwards.
// Messages it completes are returned by Next; Feed invalidates the header
// and body slices Next returned before. A returned error wraps one of the
// ErrWS* sentinels and is returned again by every later call.
func (d *WSDecoder) Feed(text bool, payload []byte) error {
	if d.err != nil {
		return d.err
	}
	if d.mode != WSModeStream {
		// One message per burst: whatever Next returned, or did not, is
		// superseded by the burst this frame belongs to.
		if len(d.ready) > 0 {
			d.ready, d.next = d.ready[:0], 0
			d.buf = d.buf[:0]
		}
	}
	var err error
	if d.mode == WSModeStream {
		err = d.feedStream(text, payload)
	} else {
		err = d.feedOfficial(text, payload)
	}
	if err != nil {
		d.err, d.state = err, wsFailed
		d.ready, d.next = d.ready[:0], 0
	}
	return err
}

func (d *WSDecoder) feedOfficial(text bool, p []byte) error {
	switch d.state {
	case wsAwaitSelector:
		if text {
			switch string(p) {
			case WSSelectorText:
				d.mode, d.state = WSModeText, wsAwaitCount
				return nil
			case WSSelectorBinary:
				d.mode, d.state = WSModeBinary, wsAwaitCount
				return nil
			}
			return fmt.Errorf("%w: first frame is text %s", ErrWSNoSelector, wsQuote(p))
		}
		if d.looksLikeStream(p) {
			d.mode = WSModeStream
			return d.feedStream(text, p)
		}
		return fmt.Errorf("%w: first frame is binary %s", ErrWSNoSelector, wsQuote(p))

	case wsAwaitCount:
		if text {
			return fmt.Errorf("%w: got a text frame %s where a binary count frame was expected", ErrWSBadCount, wsQuote(p))
		}
		if len(p) != wsCountFrameSize {
			return fmt.Errorf("%w: %d-byte payload %s, want 4 bytes", ErrWSBadCount, len(p), wsQuote(p))
		}
		n := wsCount(p)
		if n == 0 || n > uint64(d.maxFrames()) {
			return fmt.Errorf("%w: count %d (bytes % x) outside 1..%d", ErrWSBadCount, n, p, d.maxFrames())
		}
		d.left, d.state = int(n), wsAwaitHeader
		return nil

	case wsAwaitHeader:
		if !text {
			return fmt.Errorf("%w: header frame is binary %s; the JS client sends text", ErrWSBadHeader, wsQuote(p))
		}
		if len(p) < 2 || p[0] != '{' || p[len(p)-1] != '}' {
			return fmt.Errorf("%w: header frame %s is not a JSON object", ErrWSBadHeader, wsQuote(p))
		}
		if len(p) > d.maxSize() {
			return fmt.Errorf("%w: header frame of %d bytes exceeds %d", ErrWSMessageTooLarge, len(p), d.maxSize())
		}
		d.buf = append(d.buf[:0], p...)
		d.hdrEnd = len(p)
		d.left--
		d.endFrame()
		return nil

	case wsAwaitData:
		if len(d.buf)+len(p) > d.maxSize() {
			return fmt.Errorf("%w: %d bytes so far plus a %d-byte data frame exceed %d", ErrWSMessageTooLarge, len(d.buf), len(p), d.maxSize())
		}
		d.buf = append(d.buf, p...)
		d.left--
		d.endFrame()
		return nil
	}
	return d.err
}

// endFrame completes the burst when no frames are left in it.
func (d *WSDecoder) endFrame() {
	if d.left > 0 {
		d.state = wsAwaitData
		return
	}
	d.ready = append(d.ready, wsSpan{start: 0, headerEnd: d.hdrEnd, end: len(d.buf)})
	d.state = wsAwaitCount
}

// wsCount reads a count frame. The JS client writes the count in its host's
// byte order, little-endian on every realistic host, so it is read as
// little-endian; but a reading of at least 0x01000000 whose big-endian
// reading is at most 64 can only come from a big-endian host, and then the
// big-endian value is used. How real AMPS reads it is unknown; accepting
// both orders costs nothing and misreads no plausible count.
func wsCount(p []byte) uint64 {
	le := binary.LittleEndian.Uint32(p)
	if le >= wsBEFallbackMinLE {
		if be := binary.BigEndian.Uint32(p); be <= wsBEFallbackMaxBE {
			return uint64(be)
		}
	}
	return uint64(le)
}

// looksLikeStream reports whether a binary first message is the start of the
// stream encoding used by the third-party Go client (wire spec §3.6): a
// big-endian length within the size limit, at least "{}", and then '{'. It
// only recognises the encoding (frameSize then reads it), and is kept small
// enough to inline into feedOfficial, whose hot path it sits beside.
func (d *WSDecoder) looksLikeStream(p []byte) bool {
	if len(p) < frameLengthSize+1 || p[frameLengthSize] != '{' {
		return false
	}
	n := binary.BigEndian.Uint32(p)
	return n >= 2 && uint64(n) <= uint64(d.maxSize())
}

// feedStream appends p to the stream and cuts every complete frame out of it
// (wire spec §2.1). Bytes before the first message Next has not returned
// yet (or before the unparsed rest, when none is pending) are discarded
// first, so buf holds only messages not yet returned, at most one partial
// frame, and p.
func (d *WSDecoder) feedStream(text bool, p []byte) error {
	if text {
		return fmt.Errorf("%w: text frame %s in a session that began with stream frames in binary messages, which must keep sending binary frames", ErrWSBadHeader, wsQuote(p))
	}
	drop := d.streamOff
	if d.next < len(d.ready) {
		drop = d.ready[d.next].start
	}
	d.ready, d.next = append(d.ready[:0], d.ready[d.next:]...), 0
	if drop > 0 {
		n := copy(d.buf, d.buf[drop:])
		d.buf, d.streamOff = d.buf[:n], d.streamOff-drop
		for i := range d.ready {
			d.ready[i].start -= drop
			d.ready[i].headerEnd -= drop
			d.ready[i].end -= drop
		}
	}
	d.buf = append(d.buf, p...)
	for {
		rest := d.buf[d.streamOff:]
		if len(rest) < frameLengthSize {
			return nil
		}
		n, err := frameSize(rest, d.maxSize(), ErrWSMessageTooLarge)
		if err != nil {
			return err
		}
		if len(rest) < frameLengthSize+n {
			return nil
		}
		start := d.streamOff + frameLengthSize
		end := start + n
		d.streamOff = end
		if n == 0 {
			continue // a zero-length frame carries nothing (see frameSize)
		}
		header, body, err := splitFrame(d.buf[start:end])
		if err != nil {
			return fmt.Errorf("%w: stream frame of %d bytes does not start with a JSON object %s: %w", ErrWSBadHeader, n, wsQuote(d.buf[start:end]), err)
		}
		hEnd := end - len(body)
		d.ready = append(d.ready, wsSpan{start: hEnd - len(header), headerEnd: hEnd, end: end})
	}
}

// wsQuote renders the start of a frame for an error message.
func wsQuote(p []byte) string {
	if len(p) > wsQuoteLimit {
		return strconv.Quote(string(p[:wsQuoteLimit])) + "..."
	}
	return strconv.Quote(string(p))
}

// wsRetainSize is the largest encoding buffer a WSEncoder keeps between
// messages, so that one big message does not pin its memory.
const wsRetainSize = 1 << 20

// WSEncoder writes outbound Messages as the WebSocket frames of one session.
// The zero value is ready to use. It is not safe for concurrent use: the
// frames of one message must go out contiguously anyway (wire spec §3.4
// rule 5), so a connection encodes under the lock that keeps them together.
type WSEncoder struct {
	buf []byte
}

// Encode frames m for a session in the given mode and passes each frame to
// emit, in order; emit's text reports the text opcode, and payload is valid
// only until emit returns. Every frame must be sent as one unfragmented
// WebSocket message (the Node client refuses fragmented messages over 8 MiB)
// and the frames of one call contiguously (the client pairs each header
// with the frames that follow it). The frames are chosen from m's values; no
// header is parsed.
//
// In WSModeStream (the third-party Go client, wire spec §3.6) the message
// is one binary frame holding its stream encoding (AppendStreamMessage).
// Otherwise the frames are those the official JS client expects (wire spec
// §3.4); WSModeBinary is the "binary" selector, any other mode means text:
//
//   - The header is always one text frame: the client parses every header
//     from a text frame, and a binary one breaks the session.
//   - "p", "publish" and "oof": with a non-empty body, one data frame: binary
//     in binary mode; in text mode text, or binary when the body is not
//     valid UTF-8 (the client closes the connection on a text frame that is
//     not UTF-8). With an empty body and "l" in the header, no data frame:
//     the client reads "l":0 as "no data follows". If "l" is missing the
//     client waits for a data frame, so an empty binary frame is sent
//     (which it decodes as ""). "l", when present, must equal the body's
//     length, else it is an error: with "l":0 and a body, for one, the
//     client would read the body as the next message's header.
//   - "sow": after its header, per record a text record-header frame
//     (carrying "l", see Record) and a data frame, framed as above except
//     that an empty record is an empty binary frame (the client reads one
//     data frame per record). Message requires "bs" to equal the number of
//     records, because the client reads exactly "bs" records.
//   - Any other command is sent as its header alone and must have no body.
//
// No empty text frame is ever produced: the Node client drops empty text
// messages silently, and its reading falls out of step. A message that breaks
// these rules yields an error wrapping ErrBadMessage or ErrWSFraming and no
// frames; an error from emit is returned as is.
func (e *WSEncoder) Encode(m *Message, mode WSMode, emit func(text bool, payload []byte) error) error {
	defer e.trim()
	if mode == WSModeStream {
		var err error
		if e.buf, err = AppendStreamMessage(e.buf[:0], m); err != nil {
			return err
		}
		return emit(false, e.buf)
	}
	if err := m.check(); err != nil {
		return err
	}
	binaryMode := mode == WSModeBinary
	f := m.framing()
	switch f.command {
	case CmdP, CmdPublish, CmdOOF:
		// The JS client decides from "l" whether a data frame follows, so
		// "l" must be the body's length.
		hasLength := f.present&FieldLength != 0
		if hasLength && f.length != uint64(len(m.Body)) {
			return fmt.Errorf("%w: %q header says \"l\":%d but the body has %d bytes", ErrWSFraming, f.command, f.length, len(m.Body))
		}
		if err := e.emitHeader(m, emit); err != nil {
			return err
		}
		if len(m.Body) == 0 && hasLength {
			return nil
		}
		return emit(wsTextData(m.Body, binaryMode), m.Body)

	case CmdSOW:
		if err := e.emitHeader(m, emit); err != nil {
			return err
		}
		for i := range m.Records {
			r := &m.Records[i]
			e.buf = appendRecordHeader(e.buf[:0], r)
			if err := emit(true, e.buf); err != nil {
				return err
			}
			if err := emit(wsTextData(r.Data, binaryMode), r.Data); err != nil {
				return err
			}
		}
		return nil
	}
	if len(m.Body) > 0 {
		return fmt.Errorf("%w: command %q carries a %d-byte body but the JS client reads it as header only", ErrWSFraming, f.command, len(m.Body))
	}
	return e.emitHeader(m, emit)
}

func (e *WSEncoder) emitHeader(m *Message, emit func(bool, []byte) error) error {
	e.buf = m.AppendHeader(e.buf[:0])
	return emit(true, e.buf)
}

func (e *WSEncoder) trim() {
	if cap(e.buf) > wsRetainSize {
		e.buf = nil
	}
}

// wsTextData reports whether a data frame goes out as text: only in text
// mode, only when non-empty (the Node client drops empty text messages) and
// valid UTF-8 (it closes the connection on invalid text).
func wsTextData(data []byte, binaryMode bool) bool {
	return !binaryMode && len(data) > 0 && utf8.Valid(data)
}

// Server-to-client WebSocket frame header layout (RFC 6455 §5.2).
const (
	// WSMaxFrameHeaderSize is the longest header AppendWSFrameHeader
	// writes: two bytes, then an 8-byte extended length.
	WSMaxFrameHeaderSize = 2 + 8

	wsFin      = 0x80   // final fragment: every frame we write is a whole message
	wsOpText   = 0x1    // opcode of a text frame
	wsOpBinary = 0x2    // opcode of a binary frame
	wsLen16    = 126    // length byte announcing a 16-bit extended length
	wsLen64    = 127    // length byte announcing a 64-bit extended length
	wsMaxLen7  = 125    // longest payload whose length fits the length byte
	wsMaxLen16 = 0xFFFF // longest payload with a 16-bit extended length
)

// AppendWSFrameHeader appends the header of one unfragmented, unmasked
// WebSocket data frame carrying an n-byte payload, as a server sends it: FIN
// set, no extension bits, opcode text or binary, then the length in its
// shortest form (7 bits, or 126 and 16 bits, or 127 and 64 bits, network
// byte order). The payload itself follows the header on the wire unchanged;
// only clients mask their frames. n must not be negative.
func AppendWSFrameHeader(dst []byte, text bool, n int) []byte {
	op := byte(wsOpBinary)
	if text {
		op = wsOpText
	}
	switch {
	case n <= wsMaxLen7:
		return append(dst, wsFin|op, byte(n))
	case n <= wsMaxLen16:
		return binary.BigEndian.AppendUint16(append(dst, wsFin|op, wsLen16), uint16(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, wsFin|op, wsLen64), uint64(n))
}

// MaskWS masks or unmasks a WebSocket frame's payload p with key (RFC 6455
// §5.3: byte i is XORed with key[i mod 4]; doing it twice gives p back),
// eight bytes at a time. A client masks every frame it sends; a server
// unmasks them.
func MaskWS(p []byte, key [4]byte) {
	k := uint64(binary.LittleEndian.Uint32(key[:]))
	k |= k << 32
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, binary.LittleEndian.Uint64(p)^k)
		p = p[8:]
	}
	for i := range p {
		p[i] ^= key[i&3]
	}
}
