package listener

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/ampsbroker/ampsbroker/internal/readbuf"
	"github.com/ampsbroker/ampsbroker/protocol"
	"github.com/coder/websocket"
)

// Why the broker reads its clients' WebSocket frames itself.
//
// The JavaScript client sends three WebSocket messages per publish (count,
// header, data). Read through the WebSocket library, each costs a read
// system call of its own (the library asks for one frame at a time) and
// the library's per-frame locking and state checks: about 2.3 µs per
// 1 KiB publish, most of what the server spends on one. wsFrameReader
// reads the connection through a buffer of its own, so one system call
// takes as many frames as have arrived, and a frame that arrived whole is
// unmasked where it lies and handed on without a copy. The library still
// does the upgrade; with permessage-deflate negotiated it also keeps
// reading, as it decompresses.
//
// The rules it enforces (RFC 6455 §5): every client frame is masked; no
// RSV bit is set, as no extension was negotiated; the opcode is one of the
// six defined; a control frame (close, ping, pong) is final and carries at
// most 125 bytes, and may come between the fragments of a data message; a
// continuation frame continues a fragmented message, and a new data
// message does not start inside one; a message's payload, all fragments
// together, is at most the caller's limit. A frame that breaks a rule is a
// wsReadError carrying the close status to answer with.

const (
	// wsSmallReadSize is the buffer a connection reads through while its
	// client is quiet, and wsLargeReadSize the pooled one it moves to
	// while frames stream in (see internal/readbuf). A frame too large
	// for the large one is read into a buffer of its own.
	wsSmallReadSize = readbuf.SmallSize
	wsLargeReadSize = readbuf.LargeSize

	// wsMaxControlPayload is the largest payload of a control frame (RFC
	// 6455 §5.5).
	wsMaxControlPayload = 125

	// wsMaxFrameHeader is the longest client frame header: 2 bytes, an
	// 8-byte extended length and the 4-byte masking key.
	wsMaxFrameHeader = 14

	// wsMaxControlFrame is the longest client control frame: 2 header
	// bytes, the masking key and the payload.
	wsMaxControlFrame = 2 + 4 + wsMaxControlPayload
)

// Frame opcodes (RFC 6455 §5.2).
const (
	wsOpContinuation = 0x0
	wsOpText         = 0x1
	wsOpBinary       = 0x2
	wsOpClose        = 0x8
	wsOpPing         = 0x9
	wsOpPong         = 0xA
)

// wsReadError is a frame the client must not send. code is the close
// status the connection is closed with; err, when set, is a sentinel the
// error wraps (protocol.ErrWSMessageTooLarge for 1009).
type wsReadError struct {
	code websocket.StatusCode
	msg  string
	err  error
}

func (e *wsReadError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("%s: %v", e.msg, e.err)
	}
	return e.msg
}

func (e *wsReadError) Unwrap() error { return e.err }

func wsProtocolErrorf(format string, args ...any) error {
	return &wsReadError{code: websocket.StatusProtocolError, msg: fmt.Sprintf("websocket: "+format, args...)}
}

// wsRule names a framing rule a client broke, for wsFrameError.
type wsRule uint8

const (
	wsRuleRSV wsRule = iota
	wsRuleMask
	wsRuleLength
	wsRuleControlFin
	wsRuleControlSize
	wsRuleContinuation
	wsRuleInterleaved
	wsRuleOpcode
)

// wsFrameError describes the frame starting with b0 that broke rule (size
// is its length, ext its extended length bytes, where the rule needs
// them). It is apart from the reading code so that the formatting's
// arguments do not enlarge the reading goroutine's stack frames: an idle
// connection's stack is part of its memory.
func wsFrameError(rule wsRule, b0 byte, size uint64, ext []byte) error {
	op := b0 & 0x0f
	switch rule {
	case wsRuleRSV:
		return wsProtocolErrorf("frame with RSV bits %#x set, but no extension was negotiated", b0&0x70)
	case wsRuleMask:
		return wsProtocolErrorf("unmasked frame (opcode %#x) from a client", op)
	case wsRuleLength:
		return wsProtocolErrorf("frame length % x has its most significant bit set", ext)
	case wsRuleControlFin:
		return wsProtocolErrorf("fragmented control frame (opcode %#x)", op)
	case wsRuleControlSize:
		return wsProtocolErrorf("control frame (opcode %#x) of %d bytes, over %d", op, size, wsMaxControlPayload)
	case wsRuleContinuation:
		return wsProtocolErrorf("continuation frame without a fragmented message to continue")
	case wsRuleInterleaved:
		return wsProtocolErrorf("new data frame (opcode %#x) inside a fragmented message", op)
	}
	return wsProtocolErrorf("frame with reserved opcode %#x", op)
}

// wsTooLarge is the error for a data frame of size bytes, after have
// bytes of its message, over limit (see wsFrameError for why apart).
func wsTooLarge(size uint64, have int, limit int64) error {
	return &wsReadError{code: websocket.StatusMessageTooBig, err: protocol.ErrWSMessageTooLarge,
		msg: fmt.Sprintf("websocket: %d-byte frame after %d bytes of its message exceeds the limit of %d", size, have, limit)}
}

// wsFrameReader reads the frames of a client's WebSocket connection and
// returns whole data messages (fragments joined) and control frames, in
// the order they come. It is not safe for concurrent use.
//
// It reads through the adaptive buffer protocol.StreamReader uses
// (internal/readbuf): small while the client is quiet, a large pooled one
// while frames stream in.
type wsFrameReader struct {
	b   *readbuf.Reader
	err error // sticky: after an error the stream is out of sync

	// The fragmented data message in progress: inMsg is set from its first
	// fragment to its last, msgOp is its opcode and msg its payload so far.
	// msg also holds a single frame too large for the large buffer.
	inMsg bool
	msgOp byte
	msg   []byte
}

// newWSFrameReader returns a reader of client frames from r, which
// starts with the bytes pre (input buffered before the reader took over).
// small and large are the buffer sizes; tests use tiny ones. small must
// be at least wsMaxFrameHeader, and large must hold a whole control frame
// (wsMaxControlFrame) and be at least small.
func newWSFrameReader(r io.Reader, pre []byte, small, large int) *wsFrameReader {
	if len(pre) > 0 {
		r = io.MultiReader(bytes.NewReader(pre), r)
	}
	return &wsFrameReader{b: readbuf.NewSize(r, small, large)}
}

// next returns the next whole data message (opcode wsOpText or
// wsOpBinary, fragments joined, at most limit bytes) or control frame.
// The payload is unmasked and valid until the next call. A clean end of
// the connection between frames is io.EOF, an end inside one wraps
// io.ErrUnexpectedEOF; a frame against the rules is a *wsReadError. After
// an error next keeps returning it.
func (r *wsFrameReader) next(limit int64) (op byte, payload []byte, err error) {
	if r.err != nil {
		return 0, nil, r.err
	}
	if !r.inMsg && cap(r.msg) > wsRetainBufferBytes {
		r.msg = nil // do not pin one big message's memory
	}
	for {
		op, payload, err = r.frame(limit)
		if err != nil {
			r.stop(err)
			return 0, nil, err
		}
		if op != wsOpContinuation {
			return op, payload, nil
		}
	}
}

// frame reads one frame. It returns a control frame or a finished data
// message; wsOpContinuation means a fragment was added to msg.
func (r *wsFrameReader) frame(limit int64) (byte, []byte, error) {
	if err := r.ensure(2); err != nil {
		return 0, nil, err
	}
	b0, b1 := r.b.Buffered()[0], r.b.Buffered()[1]
	fin, op := b0&0x80 != 0, b0&0x0f
	if b0&0x70 != 0 {
		return 0, nil, wsFrameError(wsRuleRSV, b0, 0, nil)
	}
	if b1&0x80 == 0 {
		return 0, nil, wsFrameError(wsRuleMask, b0, 0, nil)
	}
	hl := 2 + 4
	switch b1 & 0x7f {
	case 126:
		hl += 2
	case 127:
		hl += 8
	}
	if err := r.ensure(hl); err != nil {
		return 0, nil, err
	}
	h := r.b.Buffered()[:hl]
	size := uint64(b1 & 0x7f)
	switch size {
	case 126:
		size = uint64(binary.BigEndian.Uint16(h[2:]))
	case 127:
		size = binary.BigEndian.Uint64(h[2:])
		if size>>63 != 0 {
			return 0, nil, wsFrameError(wsRuleLength, b0, 0, h[2:10])
		}
	}
	key := [4]byte(h[hl-4:])
	switch op {
	case wsOpClose, wsOpPing, wsOpPong:
		if !fin {
			return 0, nil, wsFrameError(wsRuleControlFin, b0, 0, nil)
		}
		if size > wsMaxControlPayload {
			return 0, nil, wsFrameError(wsRuleControlSize, b0, size, nil)
		}
	case wsOpContinuation:
		if !r.inMsg {
			return 0, nil, wsFrameError(wsRuleContinuation, b0, 0, nil)
		}
	case wsOpText, wsOpBinary:
		if r.inMsg {
			return 0, nil, wsFrameError(wsRuleInterleaved, b0, 0, nil)
		}
	default:
		return 0, nil, wsFrameError(wsRuleOpcode, b0, 0, nil)
	}
	if op < wsOpClose {
		have := 0
		if r.inMsg {
			have = len(r.msg)
		}
		if size > uint64(limit) || int64(size)+int64(have) > limit {
			return 0, nil, wsTooLarge(size, have, limit)
		}
	}
	if uint64(hl)+size > uint64(r.b.MaxEnsure()) {
		// Only a data frame can be this long.
		if !r.inMsg {
			r.inMsg, r.msgOp, r.msg = true, op, r.msg[:0]
		}
		if err := r.readLong(hl, int(size), key); err != nil {
			return 0, nil, err
		}
		return r.endFragment(fin)
	}
	n := hl + int(size)
	if err := r.ensure(n); err != nil {
		return 0, nil, err
	}
	p := r.b.Buffered()[hl:n:n]
	r.b.Discard(n)
	protocol.MaskWS(p, key)
	if op >= wsOpClose || (fin && !r.inMsg) {
		return op, p, nil // a whole frame, straight from the buffer
	}
	if !r.inMsg {
		r.inMsg, r.msgOp, r.msg = true, op, r.msg[:0]
	}
	r.msg = append(r.msg, p...)
	return r.endFragment(fin)
}

// endFragment returns the message in msg when its last fragment (fin) has
// been added.
func (r *wsFrameReader) endFragment(fin bool) (byte, []byte, error) {
	if !fin {
		return wsOpContinuation, nil, nil
	}
	r.inMsg = false
	return r.msgOp, r.msg, nil
}

// readLong appends the payload of the frame whose hl-byte header starts
// the buffered input, size bytes too many for the large buffer, to msg
// (readbuf.Reader.Append grows it as bytes arrive), and unmasks it with
// key.
func (r *wsFrameReader) readLong(hl, size int, key [4]byte) error {
	start := len(r.msg)
	r.b.Discard(hl)
	var err error
	if r.msg, err = r.b.Append(r.msg, size); err != nil {
		return wsEndError(hl+len(r.msg)-start, hl+size, err)
	}
	protocol.MaskWS(r.msg[start:], key)
	return nil
}

// ensure reads until n bytes are buffered; n is at most the large
// buffer's size.
func (r *wsFrameReader) ensure(n int) error {
	if err := r.b.Ensure(n); err != nil {
		return wsEndError(r.b.Len(), n, err)
	}
	return nil
}

// stop makes err the answer to every later call (when none was set
// before) and lets the buffers go.
func (r *wsFrameReader) stop(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b.Release()
	r.msg, r.inMsg = nil, false
}

// wsEndError is the error of a connection whose read failed with err
// when got of the need bytes of a frame had arrived: io.EOF between
// frames stays io.EOF.
func wsEndError(got, need int, err error) error {
	if err != io.EOF || got == 0 {
		return err
	}
	return fmt.Errorf("websocket: connection ended after %d of %d bytes of a frame: %w", got, need, io.ErrUnexpectedEOF)
}

// wsCloseFrame is what a close frame's payload says (RFC 6455 §5.5.1): no
// payload means no status (1005); otherwise a 2-byte status and a UTF-8
// reason.
func wsCloseFrame(p []byte) (websocket.StatusCode, string, error) {
	switch {
	case len(p) == 0:
		return websocket.StatusNoStatusRcvd, "", nil
	case len(p) == 1:
		return 0, "", wsProtocolErrorf("close frame with a 1-byte payload %#x", p[0])
	}
	code := websocket.StatusCode(binary.BigEndian.Uint16(p))
	if !wsValidCloseCode(code) {
		return 0, "", wsProtocolErrorf("close frame with status %d, which a peer may not send", code)
	}
	if !utf8.Valid(p[2:]) {
		return 0, "", &wsReadError{code: websocket.StatusInvalidFramePayloadData, msg: fmt.Sprintf("websocket: close reason %q is not UTF-8", p[2:])}
	}
	return code, string(p[2:]), nil
}

// wsValidCloseCode reports whether a peer may send status c in a close
// frame (RFC 6455 §7.4): the defined ones meant for the wire, and the
// ranges for libraries (3000-3999) and applications (4000-4999).
func wsValidCloseCode(c websocket.StatusCode) bool {
	switch {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= 1011:
		return true
	case c >= 3000 && c <= 4999:
		return true
	}
	return false
}

// errWSPeerClosed is what reading returns after the close handshake.
var errWSPeerClosed = errors.New("websocket: connection closed by the close handshake")
