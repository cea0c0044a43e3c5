// Package readbuf is the read buffer that the broker's connections read
// their clients through, the stream encoding's frames and WebSocket frames
// alike.
//
// It adapts to the traffic. While the peer is quiet, the connection reads
// through a small buffer of its own (SmallSize): it holds a logon or a
// small publish, and is all the read buffer an idle connection keeps. Once
// a read fills the space it was given, input is streaming, and the reader
// moves to a large buffer (LargeSize) taken from a pool, so that one read
// system call takes many frames; it gives the large buffer back when a
// read finds the socket drained, before the read that may wait. A frame
// that arrived whole can be handed on as a slice of the buffer, without a
// copy.
package readbuf

import (
	"fmt"
	"io"
	"sync"
)

const (
	// SmallSize is the size of a reader's own buffer.
	SmallSize = 2 << 10
	// LargeSize is the size of the pooled buffer a reader uses while input
	// streams in: 64 KiB take dozens of 1 KiB messages, or four of 16
	// KiB, per read system call.
	LargeSize = 64 << 10
	// GrowChunk is the first allocation Append makes for a payload
	// beyond dst's capacity; dst then doubles as bytes arrive.
	GrowChunk = 32 << 10
)

// larges recycles the large buffers of LargeSize among connections, each
// of which holds one only while its input streams in.
var larges = sync.Pool{New: func() any { return new([LargeSize]byte) }}

// sizedLarges recycles large buffers of other sizes (a transport's
// ReadBufferSize option): one pool per size, of *[]byte, so a reader of a
// non-default size does not allocate its large buffer at every move from
// the small one. The sizes are few (one per configured transport).
var sizedLarges sync.Map // int → *sync.Pool

// sizedPool returns the pool of large buffers of size bytes.
func sizedPool(size int) *sync.Pool {
	if p, ok := sizedLarges.Load(size); ok {
		return p.(*sync.Pool)
	}
	p, _ := sizedLarges.LoadOrStore(size, &sync.Pool{New: func() any {
		b := make([]byte, size)
		return &b
	}})
	return p.(*sync.Pool)
}

// Reader buffers reads from an io.Reader. It is not safe for concurrent
// use.
type Reader struct {
	r io.Reader
	// buf holds unread input in buf[rd:wr]; it is small or large.
	buf    []byte
	rd, wr int
	small  []byte
	// largeSize is the size of the large buffer; large is non-nil while
	// buf is it.
	largeSize int
	large     []byte
	// sized is the pool of a non-default largeSize, and box the pointer
	// large came in from it (put back as it is, without an allocation).
	sized *sync.Pool
	box   *[]byte
	// filled records that the last read filled the space it was given:
	// more input is probably waiting.
	filled bool
	// err is the underlying reader's error, returned once the input read
	// before it has been used, and from then on.
	err error
}

// New returns a Reader of r with buffers of the default sizes.
func New(r io.Reader) *Reader { return NewSize(r, SmallSize, LargeSize) }

// NewSize returns a Reader of r with a small buffer of small bytes and a
// large one of large bytes; tests use tiny ones to exercise every path.
// Ensure takes at most large bytes; large must be at least small.
func NewSize(r io.Reader, small, large int) *Reader {
	b := &Reader{r: r, small: make([]byte, small), largeSize: max(large, small)}
	b.buf = b.small
	if b.largeSize != LargeSize {
		b.sized = sizedPool(b.largeSize)
	}
	return b
}

// Buffered returns the unread input, valid until the next call of Ensure,
// Read or Release.
func (b *Reader) Buffered() []byte { return b.buf[b.rd:b.wr] }

// Len returns how many bytes of input are buffered.
func (b *Reader) Len() int { return b.wr - b.rd }

// Discard drops the first n bytes of the buffered input; n is at most
// Len.
func (b *Reader) Discard(n int) { b.rd += n }

// MaxEnsure is the most input Ensure can buffer: the large buffer's size.
func (b *Reader) MaxEnsure() int { return b.largeSize }

// Large reports whether the reader holds a large buffer.
func (b *Reader) Large() bool { return b.large != nil }

// Ensure reads until at least n bytes are buffered; n is at most
// MaxEnsure. It returns the underlying reader's error when that ends the
// input first (io.EOF at the end of the stream), with what arrived before
// it still buffered.
func (b *Reader) Ensure(n int) error {
	if n > b.largeSize {
		// No read could make room: refuse rather than spin.
		return fmt.Errorf("readbuf: Ensure(%d) over the largest buffer, %d bytes", n, b.largeSize)
	}
	for b.wr-b.rd < n {
		b.makeRoom(n)
		if err := b.fill(); err != nil {
			return err
		}
	}
	return nil
}

// Read reads buffered input first, then the underlying reader directly:
// for a payload too large for the buffer, which the caller reads into a
// buffer of its own. An error that came with data is returned at the next
// call.
func (b *Reader) Read(p []byte) (int, error) {
	if b.rd < b.wr {
		n := copy(p, b.buf[b.rd:b.wr])
		b.rd += n
		return n, nil
	}
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.r.Read(p)
	// A read sized to a payload says nothing of what else is waiting.
	b.filled = false
	if err != nil {
		b.err = err
		if n > 0 {
			err = nil
		}
	}
	return n, err
}

// Append appends the next n bytes of input to dst, the buffered ones
// first and then straight from the underlying reader, for a payload too
// large for the buffer. dst grows geometrically as bytes arrive (from
// GrowChunk), never to n at once, so a peer that announces a huge payload
// and sends little costs little memory; nothing past the n bytes is read.
// On error the returned slice holds what arrived.
func (b *Reader) Append(dst []byte, n int) ([]byte, error) {
	start := len(dst)
	take := min(b.Len(), n)
	dst = append(dst, b.Buffered()[:take]...)
	b.Discard(take)
	for len(dst)-start < n {
		if len(dst) == cap(dst) {
			grown := make([]byte, len(dst), min(max(2*cap(dst), GrowChunk), start+n))
			copy(grown, dst)
			dst = grown
		}
		got, err := b.Read(dst[len(dst):min(cap(dst), start+n)])
		dst = dst[:len(dst)+got]
		if err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// Release gives the large buffer back to its pool and drops the buffered
// input: at the end of the connection.
func (b *Reader) Release() {
	b.useSmall()
	b.rd, b.wr = 0, 0
}

// makeRoom arranges for buf to have room for need bytes from rd, choosing
// the buffer: the small one when nothing is buffered and the last read
// drained the socket (the next read may wait), the large one while the
// input streams or need calls for it. Unread input moves to the front
// when the room is short.
func (b *Reader) makeRoom(need int) {
	if b.rd == b.wr {
		b.rd, b.wr = 0, 0
		if b.large != nil && !b.filled && need <= len(b.small) {
			b.useSmall()
		}
	}
	if b.large == nil && (need > len(b.small) || b.filled) {
		b.useLarge()
		return
	}
	if len(b.buf)-b.rd < need {
		b.wr = copy(b.buf, b.buf[b.rd:b.wr])
		b.rd = 0
	}
}

// useLarge moves the unread input to a large buffer.
func (b *Reader) useLarge() {
	if b.sized == nil {
		b.large = larges.Get().(*[LargeSize]byte)[:]
	} else {
		b.box = b.sized.Get().(*[]byte)
		b.large = *b.box
	}
	b.wr = copy(b.large, b.buf[b.rd:b.wr])
	b.rd = 0
	b.buf = b.large
}

// useSmall gives the large buffer back, whose input must have been used.
func (b *Reader) useSmall() {
	switch {
	case b.large == nil:
	case b.sized == nil:
		larges.Put((*[LargeSize]byte)(b.large))
	default:
		b.sized.Put(b.box)
		b.box = nil
	}
	b.large = nil
	b.buf = b.small
}

// fill reads once into the free end of buf. An error that comes with data
// is kept, so that the data is used first.
func (b *Reader) fill() error {
	if b.err != nil {
		return b.err
	}
	free := b.buf[b.wr:]
	n, err := b.r.Read(free)
	if n < 0 || n > len(free) {
		n, err = 0, fmt.Errorf("readbuf: the reader returned %d bytes for a buffer of %d", n, len(free))
	}
	b.wr += n
	b.filled = n == len(free)
	if err != nil {
		b.err = err
		if n == 0 {
			return err
		}
	}
	return nil
}
