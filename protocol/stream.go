package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/ampsbroker/ampsbroker/internal/readbuf"
)

// Stream encoding limits and buffer sizes (spec §2).
const (
	// DefaultMaxFrameSize is the largest inbound stream frame (header plus
	// body, without the 4-byte length prefix) accepted when no limit is
	// configured. Real AMPS rejects messages above 200 MB; we use 200 MiB,
	// the recommendation of wire spec §2.2. It also makes the bytes "GET "
	// (0x47455420, about 1.2 GB) an impossible length, which is how an HTTP
	// preflight is told apart from a frame (§2.1).
	DefaultMaxFrameSize = 200 << 20

	// DefaultReadBufferSize is the size of the large buffer a stream
	// reader moves to while input streams in, so that a read system call
	// takes many small frames, or a few large ones, at once. Only
	// connections with input waiting hold one (see StreamReader).
	DefaultReadBufferSize = readbuf.LargeSize

	// DefaultWriteBufferSize is the size of the buffer WriteMessage fills
	// before Flush (or a full buffer) sends it.
	DefaultWriteBufferSize = 32 << 10

	// frameLengthSize is the size of the big-endian length prefix (§2.1).
	frameLengthSize = 4

	// frameRetainSize is the largest buffer of a frame too large for the
	// large read buffer that a StreamReader keeps between frames. A larger
	// one is dropped at the next ReadFrame so that an idle connection does
	// not pin the memory of one big message.
	frameRetainSize = 1 << 20
)

// ErrFrameTooLarge is wrapped by the error a StreamReader returns when a
// frame's length prefix exceeds the reader's limit. The frame is not read
// and the connection cannot be resynchronised; close it (wire spec §2.2:
// "reject larger with disconnect").
var ErrFrameTooLarge = errors.New("protocol: frame too large")

// ErrMessageTooLarge is returned by WriteMessage when header plus body do
// not fit the 32-bit length prefix of the stream encoding (spec §2.1).
var ErrMessageTooLarge = errors.New("protocol: message does not fit a 32-bit frame length")

// StreamReader reads length-prefixed frames of the stream encoding (wire
// spec §2.1). It is not safe for concurrent use.
//
// It reads through an adaptive buffer (internal/readbuf): small while the
// peer is quiet, which is all the read buffer an idle connection holds,
// and a pooled large one (the ReadBufferSize of StreamOptions) while input
// streams in. A frame that arrived whole is returned as a slice of that
// buffer, so a small frame costs no copy after the read system call; a
// frame larger than the large buffer is read into a buffer of its own.
type StreamReader struct {
	b   *readbuf.Reader
	max int
	// frame is a frame too large for the large buffer, read on its own
	// (dropped at the next call if over frameRetainSize).
	frame []byte
	err   error // sticky: after a framing error the stream is out of sync
}

// DefaultSmallReadBufferSize is the buffer a stream reader reads through
// while its peer is quiet: it holds a logon or a small publish, and is all
// the read buffer an idle connection keeps.
const DefaultSmallReadBufferSize = readbuf.SmallSize

// NewStreamReader returns a reader of frames from r. Frames longer than
// maxFrameSize bytes are refused; maxFrameSize <= 0 means
// DefaultMaxFrameSize. The reader buffers r itself (see StreamReader), so
// r is best a raw connection.
func NewStreamReader(r io.Reader, maxFrameSize int) *StreamReader {
	return newStreamReader(r, maxFrameSize, DefaultSmallReadBufferSize, DefaultReadBufferSize)
}

// newStreamReader is NewStreamReader with the buffer sizes given; tests
// use tiny ones to exercise every path. small must be at least the
// length prefix.
func newStreamReader(r io.Reader, maxFrameSize, small, large int) *StreamReader {
	if maxFrameSize <= 0 {
		maxFrameSize = DefaultMaxFrameSize
	}
	return &StreamReader{b: readbuf.NewSize(r, small, large), max: maxFrameSize}
}

// ReadFrame returns the next non-empty frame, without its length prefix.
// The slice is valid until the next call.
//
// Zero-length frames carry nothing and are skipped. What AMPS does with
// them is undocumented; we ignore them rather than answer them (one test
// server echoes them as heartbeats, which no AMPS source describes).
//
// At a clean end of stream between frames ReadFrame returns io.EOF. A stream
// that ends inside a frame returns an error wrapping io.ErrUnexpectedEOF; a
// length above the limit returns an error wrapping ErrFrameTooLarge without
// reading or allocating the frame. After any error the reader keeps
// returning that error, and has given back its large buffer: a
// connection's reader, which reads until its connection fails or is
// closed under it, so releases it at the connection's end.
func (r *StreamReader) ReadFrame() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	if cap(r.frame) > frameRetainSize {
		r.frame = nil
	}
	b := r.b
	for {
		need := frameLengthSize
		if n := b.Len(); n >= frameLengthSize {
			size, err := frameSize(b.Buffered(), r.max, ErrFrameTooLarge)
			if err != nil {
				return nil, r.fail(err)
			}
			if size == 0 {
				b.Discard(frameLengthSize)
				continue
			}
			need += size
			if n >= need {
				f := b.Buffered()[frameLengthSize:need:need]
				b.Discard(need)
				return f, nil
			}
			if need > b.MaxEnsure() {
				return r.readLarge(size)
			}
		}
		if err := b.Ensure(need); err != nil {
			return nil, r.fail(r.endError(err))
		}
	}
}

// fail makes err the reader's sticky error and lets its buffers go: the
// pooled large one back to its pool, the own one of a big frame to the
// collector. The connection has ended (or is out of sync), so this is
// where a reader gives them back; the frame the previous call returned
// is no longer valid, as after any call.
func (r *StreamReader) fail(err error) error {
	r.err = err
	r.b.Release()
	r.frame = nil
	return err
}

// Buffered returns how many bytes of input the reader holds that ReadFrame
// has not returned yet: when it is not zero, the next frame may be had
// without reading the underlying reader.
func (r *StreamReader) Buffered() int { return r.b.Len() }

// endError is the error of a stream that failed with err while some bytes
// of a frame were buffered: io.EOF between frames stays io.EOF.
func (r *StreamReader) endError(err error) error {
	n := r.b.Len()
	switch {
	case err != io.EOF && err != io.ErrUnexpectedEOF:
		return err
	case n == 0:
		return err
	case n < frameLengthSize:
		return fmt.Errorf("protocol: stream ended inside a frame length prefix (%d of %d bytes): %w",
			n, frameLengthSize, io.ErrUnexpectedEOF)
	}
	size, _ := frameSize(r.b.Buffered(), r.max, ErrFrameTooLarge)
	return r.bodyError(n-frameLengthSize, size, err)
}

// readLarge reads a frame of size bytes that does not fit the large
// buffer into a buffer of its own (see readbuf.Reader.Append, which grows
// it as bytes arrive).
func (r *StreamReader) readLarge(size int) ([]byte, error) {
	r.b.Discard(frameLengthSize)
	buf, err := r.b.Append(r.frame[:0], size)
	if err != nil {
		return nil, r.fail(r.bodyError(len(buf), size, err))
	}
	r.frame = buf
	return buf, nil
}

func (r *StreamReader) bodyError(got, n int, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("protocol: stream ended after %d of %d frame bytes: %w", got, n, io.ErrUnexpectedEOF)
	}
	return err
}

// frameSize reads the length prefix at the start of p (4 bytes, big-endian,
// counting the header and body that follow; spec §2.1) and checks it against
// max. A zero length is returned as such: the frame carries nothing and the
// caller skips it (see ReadFrame). A length above max is an error wrapping
// tooLarge, which is or wraps ErrFrameTooLarge. The stream encoding and its
// WebSocket variant (the third-party Go client's stream frames carried in
// binary WebSocket messages) both read frames through frameSize and
// splitFrame.
func frameSize(p []byte, max int, tooLarge error) (int, error) {
	size := int64(binary.BigEndian.Uint32(p))
	if size > int64(max) {
		return 0, frameSizeError(p, max, tooLarge)
	}
	return int(size), nil
}

// frameSizeError is frameSize's error, apart so frameSize stays inlinable.
func frameSizeError(p []byte, max int, tooLarge error) error {
	return fmt.Errorf("protocol: frame length %d (prefix %x) exceeds the limit of %d bytes: %w",
		binary.BigEndian.Uint32(p), p[:frameLengthSize], max, tooLarge)
}

// splitFrame splits a non-empty frame into its header object and body. The
// header ends at the brace closing the JSON object the frame starts with
// (whitespace before the object is dropped); the body, which may itself
// start with '{', is the rest (spec §2.1).
func splitFrame(frame []byte) (header, body []byte, err error) {
	end, err := HeaderEnd(frame)
	if err != nil {
		return nil, nil, err
	}
	return frame[skipSpace(frame, 0):end:end], frame[end:], nil
}

// AppendStreamFrame appends one stream frame (spec §2.1) to dst: the
// big-endian length of header plus body, then header, then body. The caller
// keeps header plus body under 4 GiB. It is for clients and tests that
// hold an encoded header; the broker writes Messages.
func AppendStreamFrame(dst, header, body []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(header)+len(body)))
	dst = append(dst, header...)
	return append(dst, body...)
}

// StreamOptions configures NewStreamConn. A nil *StreamOptions, like the
// zero value, means all defaults.
type StreamOptions struct {
	// MaxFrameSize is the largest inbound frame in bytes; a longer one ends
	// the connection with ErrFrameTooLarge. Default DefaultMaxFrameSize.
	MaxFrameSize int
	// WriteBufferSize is the size of the outbound buffer. Default
	// DefaultWriteBufferSize.
	WriteBufferSize int
	// ReadBufferSize is the size of the large inbound buffer that frames
	// are read through while input streams in (see StreamReader). Default
	// DefaultReadBufferSize.
	ReadBufferSize int
}

// NewStreamConn returns a Conn speaking the stream encoding (spec §2) over
// rwc: TCP, TLS, Unix sockets and connections after an HTTP preflight.
// Close closes rwc; rwc.Close must be safe to call while another goroutine is
// blocked in Read or Write (net.Conn's is), which is how Close unblocks them.
//
// Close does not flush: call Flush first for a graceful end. This keeps Close
// free of the writer's buffer, so it is safe from any goroutine.
func NewStreamConn(rwc io.ReadWriteCloser, opts *StreamOptions) Conn {
	var o StreamOptions
	if opts != nil {
		o = *opts
	}
	if o.WriteBufferSize <= 0 {
		o.WriteBufferSize = DefaultWriteBufferSize
	}
	if o.ReadBufferSize <= 0 {
		o.ReadBufferSize = DefaultReadBufferSize
	}
	c := &streamConn{rwc: rwc}
	c.r = newStreamReader(rwc, o.MaxFrameSize, DefaultSmallReadBufferSize, max(o.ReadBufferSize, DefaultSmallReadBufferSize))
	c.size = o.WriteBufferSize
	return c
}

type streamConn struct {
	rwc io.ReadWriteCloser
	r   *StreamReader
	// buf holds whole frames not yet sent. Frames are encoded straight
	// into it; Flush, or a frame that does not fit in size bytes, sends it.
	buf  []byte
	size int
	werr error // sticky: after a failed write the stream is out of sync

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

var errWriteClosed = fmt.Errorf("protocol: write on closed stream connection: %w", net.ErrClosed)

func (c *streamConn) ReadMessage() (header, body []byte, err error) {
	frame, err := c.r.ReadFrame()
	if err != nil {
		return nil, nil, err
	}
	header, body, err = splitFrame(frame)
	if err != nil {
		// The frame was consumed whole, but a peer that sends a frame
		// without a header is broken; keep the documented contract that
		// the connection is unusable after an error.
		return nil, nil, c.r.fail(err)
	}
	return header, body, nil
}

func (c *streamConn) WriteMessage(m *Message) error {
	if c.closed.Load() {
		return errWriteClosed
	}
	if c.werr != nil {
		return c.werr
	}
	if c.buf == nil && c.size == DefaultWriteBufferSize {
		c.buf = writeBuffers.Get().(*[DefaultWriteBufferSize]byte)[:0]
	}
	buf, err := appendStreamStart(c.buf, m)
	if err != nil {
		return err
	}
	if len(buf)+len(m.Body) <= c.size {
		c.buf = append(buf, m.Body...)
		return nil
	}
	// The frame does not fit: send what is buffered with the frame's start,
	// then its body as it is.
	c.buf = buf
	if err := c.send(c.buf); err != nil {
		return err
	}
	return c.send(m.Body)
}

// send writes p to the connection and empties the buffer, which it lets go
// when a big frame grew it.
func (c *streamConn) send(p []byte) error {
	if len(p) > 0 {
		n, err := c.rwc.Write(p)
		if err == nil && n < len(p) {
			err = io.ErrShortWrite
		}
		if err != nil {
			c.werr = err
			return err
		}
	}
	switch {
	case cap(c.buf) == DefaultWriteBufferSize && c.size == DefaultWriteBufferSize:
		// Back to the pool between batches: an idle connection holds no
		// write buffer.
		writeBuffers.Put((*[DefaultWriteBufferSize]byte)(c.buf[:DefaultWriteBufferSize]))
		c.buf = nil
	case cap(c.buf) > max(c.size, frameRetainSize):
		c.buf = nil
	default:
		c.buf = c.buf[:0]
	}
	return nil
}

// writeBuffers recycles the write buffers of stream connections of the
// default size, which hold one only from their first write of a batch to
// its flush.
var writeBuffers = sync.Pool{New: func() any { return new([DefaultWriteBufferSize]byte) }}

func (c *streamConn) Flush() error {
	if c.closed.Load() {
		return errWriteClosed
	}
	if c.werr != nil {
		return c.werr
	}
	return c.send(c.buf)
}

func (c *streamConn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.closeErr = c.rwc.Close()
	})
	return c.closeErr
}
