package amps

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/ampsbroker/ampsbroker/protocol"
)

// batchLimit is how much a batchConn collects before it writes without
// waiting for flush, like a bufio.Writer's size: big enough that a burst
// of small publishes is one write, small enough to bound the memory.
const batchLimit = 256 << 10

// wsReadLimit bounds one WebSocket message the broker sends: far above the
// largest body a run uses, so only a broken peer reaches it.
const wsReadLimit = 64 << 20

// wsCodec is one client connection speaking the official JavaScript
// client's WebSocket encoding with the "text" selector: every message it
// sends is a binary count frame (the little-endian uint32 number of frames
// that follow plus one), the header as a text frame and the body as a text
// frame; every message the broker sends is a text header frame, then for a
// delivery one data frame unless its header says "l":0, and for a SOW
// batch a record header frame and a data frame per record.
//
// The WebSocket library writes each frame to the network as soon as it is
// complete; here its network connection is a batchConn, which holds what
// send writes until flush, so a burst of publishes costs one write system
// call, as on the stream encoding, and the load generator does not limit
// the rate it measures.
type wsCodec struct {
	ws     *websocket.Conn
	bc     *batchConn
	closed atomic.Bool // set by close: read errors after it are net.ErrClosed
	hbuf   []byte      // the last header frame read
	bbuf   []byte      // the last data frame read
	skip   []byte      // frames read and ignored
	// deadline bounds a command's reads and writes; zero: none.
	deadline time.Time
}

// dialWS connects to a ws:// URI and sends the "text" selector, the first
// frame of every session, which makes the broker send bodies that are valid
// UTF-8 (all of ours) as text frames.
func dialWS(uri string) (*wsCodec, error) {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	c := &wsCodec{}
	// Each dial gets its own transport, so that the one connection it
	// makes is ours (the 101 response hands that connection to the
	// WebSocket library).
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		c.bc = &batchConn{Conn: nc}
		return c.bc, nil
	}}
	ws, _, err := websocket.Dial(ctx, uri, &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", uri, err)
	}
	ws.SetReadLimit(wsReadLimit)
	c.ws = ws
	if err := ws.Write(ctx, websocket.MessageText, []byte(protocol.WSSelectorText)); err != nil {
		ws.CloseNow()
		return nil, fmt.Errorf("selector frame to %s: %w", uri, err)
	}
	return c, nil
}

func (c *wsCodec) close() error {
	c.closed.Store(true)
	return c.ws.CloseNow()
}

func (c *wsCodec) setDeadline(t time.Time) { c.deadline = t }

// ctx returns the context of one read or write: bounded by the deadline
// when one is set.
func (c *wsCodec) ctx() (context.Context, context.CancelFunc) {
	if c.deadline.IsZero() {
		return context.Background(), func() {}
	}
	return context.WithDeadline(context.Background(), c.deadline)
}

// flush sends the frames that send wrote since the last flush.
func (c *wsCodec) flush() error { return c.closedErr(c.bc.flush()) }

// countTwo is the count frame of a message with a header and one data frame.
var countTwo = []byte{2, 0, 0, 0}

// countOne is the count frame of a message that is a header only.
var countOne = []byte{1, 0, 0, 0}

func (c *wsCodec) send(header, body []byte) error {
	ctx, cancel := c.ctx()
	defer cancel()
	c.bc.hold()
	count := countTwo
	if len(body) == 0 {
		count = countOne
	}
	if err := c.ws.Write(ctx, websocket.MessageBinary, count); err != nil {
		return c.closedErr(err)
	}
	if err := c.ws.Write(ctx, websocket.MessageText, header); err != nil {
		return c.closedErr(err)
	}
	if len(body) == 0 {
		return nil
	}
	// Our bodies are ASCII JSON, so a text frame, as the JS client sends
	// for valid UTF-8 under the "text" selector.
	if err := c.ws.Write(ctx, websocket.MessageText, body); err != nil {
		return c.closedErr(err)
	}
	return nil
}

// zeroLength is how a header says that no data frame follows it.
var (
	zeroLengthComma = []byte(`"l":0,`)
	zeroLengthEnd   = []byte(`"l":0}`)
)

// next reads one message the broker sent: its header frame and its data
// frame, if any. A delivery ("p", recognised by how the broker starts its
// header) is not decoded; any other header is decoded into h, and a SOW
// batch's record frames are skipped.
func (c *wsCodec) next(h *protocol.Header) (header, body []byte, delivery bool, err error) {
	ctx, cancel := c.ctx()
	defer cancel()
	text, err := c.readFrame(ctx, &c.hbuf)
	if err != nil {
		return nil, nil, false, err
	}
	if !text {
		return nil, nil, false, fmt.Errorf("header frame is binary: %.80q", c.hbuf)
	}
	c.bbuf = c.bbuf[:0]
	if bytes.HasPrefix(c.hbuf, deliveryPrefix) {
		if bytes.Contains(c.hbuf, zeroLengthComma) || bytes.Contains(c.hbuf, zeroLengthEnd) {
			return c.hbuf, c.bbuf, true, nil
		}
		if _, err := c.readFrame(ctx, &c.bbuf); err != nil {
			return nil, nil, false, fmt.Errorf("data frame after %.200s: %w", c.hbuf, err)
		}
		return c.hbuf, c.bbuf, true, nil
	}
	if err := protocol.DecodeHeader(c.hbuf, h); err != nil {
		return nil, nil, false, fmt.Errorf("bad header %q: %w", c.hbuf, err)
	}
	frames := uint64(0)
	switch h.Command {
	case protocol.CmdP, protocol.CmdPublish, protocol.CmdOOF:
		if !h.Has(protocol.FieldLength) || h.Length > 0 {
			frames = 1
		}
	case protocol.CmdSOW:
		frames = 2 * h.BatchSize // a record header and its data per record
	}
	if frames == 1 {
		if _, err := c.readFrame(ctx, &c.bbuf); err != nil {
			return nil, nil, false, fmt.Errorf("data frame after %.200s: %w", c.hbuf, err)
		}
		return c.hbuf, c.bbuf, false, nil
	}
	for i := uint64(0); i < frames; i++ {
		if _, err := c.readFrame(ctx, &c.skip); err != nil {
			return nil, nil, false, fmt.Errorf("frame %d of %d after %.200s: %w", i+1, frames, c.hbuf, err)
		}
	}
	return c.hbuf, c.bbuf, false, nil
}

// readFrame reads one WebSocket message into *buf, reusing its memory, and
// reports whether it was text.
func (c *wsCodec) readFrame(ctx context.Context, buf *[]byte) (bool, error) {
	typ, r, err := c.ws.Reader(ctx)
	if err != nil {
		return false, c.closedErr(err)
	}
	b := (*buf)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			*buf = b
			return false, c.closedErr(err)
		}
	}
	*buf = b
	return typ == websocket.MessageText, nil
}

// closedErr makes an error after close wrap net.ErrClosed, as the stream
// connection's do, so that the reader knows the runner ended it.
func (c *wsCodec) closedErr(err error) error {
	if err != nil && c.closed.Load() {
		return fmt.Errorf("%w: %w", net.ErrClosed, err)
	}
	return err
}

// batchConn is a network connection whose writes, between hold and flush,
// collect in a buffer and go out in one write at flush. Outside such a
// batch (the HTTP upgrade, and whatever the WebSocket library writes on
// its own, such as a pong or a close frame, on a connection that is not
// publishing) writes go straight through.
type batchConn struct {
	net.Conn
	mu      sync.Mutex // guards buf and holding: the library's reader may write pongs
	buf     []byte
	holding bool
}

// hold starts a batch: writes collect until flush.
func (b *batchConn) hold() {
	b.mu.Lock()
	b.holding = true
	b.mu.Unlock()
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.holding {
		return b.Conn.Write(p)
	}
	b.buf = append(b.buf, p...)
	if len(b.buf) >= batchLimit {
		_, err := b.Conn.Write(b.buf)
		b.buf = b.buf[:0]
		if err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// flush writes what the batch collected and ends it.
func (b *batchConn) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.holding = false
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.Conn.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}
