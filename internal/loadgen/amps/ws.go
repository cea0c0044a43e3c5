package amps

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync/atomic"
	"time"

	"github.com/ampsbroker/ampsbroker/internal/readbuf"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// wsReadLimit bounds one WebSocket message the broker sends: far above the
// largest body a run uses, so only a broken peer reaches it.
const wsReadLimit = 64 << 20

// wsGUID is the key every server's Sec-WebSocket-Accept hashes with the
// client's key (RFC 6455 §4.2.2).
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// wsCodec is one client connection speaking the official JavaScript
// client's WebSocket encoding with the "text" selector: every message it
// sends is a binary count frame (the little-endian uint32 number of frames
// that follow plus one), the header as a text frame and the body as a text
// frame; every message the broker sends is a text header frame, then for a
// delivery one data frame unless its header says "l":0, and for a SOW
// batch a record header frame and a data frame per record.
//
// It frames by hand (RFC 6455), so that the load generator is not what
// limits the rate it measures: send appends masked frames to a buffer
// that flush writes at once, and next reads the broker's frames through
// the adaptive buffer the broker itself reads with, a frame that arrived
// whole handed on where it lies. Through a WebSocket library, every frame
// cost a write or a read of its own and the library's locking, four times
// the CPU of the stream encoding's client.
type wsCodec struct {
	nc     net.Conn
	rb     *readbuf.Reader
	out    []byte      // frames sent since the last flush
	key    [4]byte     // the masking key of this connection's frames
	closed atomic.Bool // set by close: read errors after it are net.ErrClosed
	hbuf   []byte      // the last header frame read (a copy: the data frame comes next)
	big    []byte      // a frame too large for the read buffer
	pong   []byte      // scratch for a ping's answer
}

// dialWS connects to a ws:// URI, upgrades the connection and sends the
// "text" selector, the first frame of every session, which makes the
// broker send bodies that are valid UTF-8 (all of ours) as text frames.
func dialWS(uri string) (*wsCodec, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", uri, err)
	}
	nc, err := net.DialTimeout("tcp", u.Host, setupTimeout)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", uri, err)
	}
	nc.SetDeadline(time.Now().Add(setupTimeout))
	c := &wsCodec{nc: nc}
	if err := c.upgrade(u); err != nil {
		nc.Close()
		return nil, fmt.Errorf("dial %s: %w", uri, err)
	}
	c.send1(wsOpText, []byte(protocol.WSSelectorText))
	if err := c.flush(); err != nil {
		nc.Close()
		return nil, fmt.Errorf("selector frame to %s: %w", uri, err)
	}
	nc.SetDeadline(time.Time{})
	return c, nil
}

// upgrade runs the opening handshake (RFC 6455 §4.1) and sets up the
// frame reader, which starts with whatever followed the 101 response.
func (c *wsCodec) upgrade(u *url.URL) error {
	var nonce [16]byte
	rand.Read(nonce[:])
	rand.Read(c.key[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(c.nc, req); err != nil {
		return err
	}
	br := bufio.NewReader(c.nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("upgrade response: %w", err)
	}
	resp.Body.Close()
	sum := sha1.Sum([]byte(key + wsGUID))
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("upgrade refused: %s", resp.Status)
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), base64.StdEncoding.EncodeToString(sum[:]); got != want {
		return fmt.Errorf("upgrade answered Sec-WebSocket-Accept %q, want %q", got, want)
	}
	var r io.Reader = c.nc
	if n := br.Buffered(); n > 0 {
		rest, _ := br.Peek(n)
		r = io.MultiReader(bytes.NewReader(bytes.Clone(rest)), c.nc)
	}
	c.rb = readbuf.New(r)
	return nil
}

func (c *wsCodec) close() error {
	c.closed.Store(true)
	return c.nc.Close()
}

func (c *wsCodec) setDeadline(t time.Time) { c.nc.SetDeadline(t) }

// flush sends the frames that send wrote since the last flush.
func (c *wsCodec) flush() error {
	if len(c.out) == 0 {
		return nil
	}
	_, err := c.nc.Write(c.out)
	c.out = c.out[:0]
	if cap(c.out) > wsRetainOut {
		c.out = nil
	}
	return c.closedErr(err)
}

// wsRetainOut is the largest send buffer kept between flushes.
const wsRetainOut = 1 << 20

// WebSocket opcodes (RFC 6455 §5.2).
const (
	wsOpText   = 0x1
	wsOpBinary = 0x2
	wsOpClose  = 0x8
	wsOpPing   = 0x9
	wsOpPong   = 0xA
)

// send1 appends one frame of p, masked as a client's must be (RFC 6455
// §5.3).
func (c *wsCodec) send1(op byte, p []byte) {
	start := len(c.out)
	c.out = protocol.AppendWSFrameHeader(c.out, op == wsOpText, len(p))
	c.out[start] = 0x80 | op // FIN and the opcode (AppendWSFrameHeader knows text and binary only)
	c.out[start+1] |= 0x80   // the MASK bit
	c.out = append(c.out, c.key[:]...)
	body := len(c.out)
	c.out = append(c.out, p...)
	protocol.MaskWS(c.out[body:], c.key)
}

// countTwo is the count frame of a message with a header and one data frame.
var countTwo = []byte{2, 0, 0, 0}

// countOne is the count frame of a message that is a header only.
var countOne = []byte{1, 0, 0, 0}

func (c *wsCodec) send(header, body []byte) error {
	count := countTwo
	if len(body) == 0 {
		count = countOne
	}
	c.send1(wsOpBinary, count)
	c.send1(wsOpText, header)
	if len(body) > 0 {
		// Our bodies are ASCII JSON, so a text frame, as the JS client
		// sends for valid UTF-8 under the "text" selector.
		c.send1(wsOpText, body)
	}
	if len(c.out) >= ioBufferSize {
		return c.flush()
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
	text, p, err := c.readFrame()
	if err != nil {
		return nil, nil, false, err
	}
	if !text {
		return nil, nil, false, fmt.Errorf("header frame is binary: %.80q", p)
	}
	// The header is copied: reading the data frame may move the buffer.
	c.hbuf = append(c.hbuf[:0], p...)
	if bytes.HasPrefix(c.hbuf, deliveryPrefix) {
		if bytes.Contains(c.hbuf, zeroLengthComma) || bytes.Contains(c.hbuf, zeroLengthEnd) {
			return c.hbuf, nil, true, nil
		}
		_, body, err := c.readFrame()
		if err != nil {
			return nil, nil, false, fmt.Errorf("data frame after %.200s: %w", c.hbuf, err)
		}
		return c.hbuf, body, true, nil
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
		_, body, err := c.readFrame()
		if err != nil {
			return nil, nil, false, fmt.Errorf("data frame after %.200s: %w", c.hbuf, err)
		}
		return c.hbuf, body, false, nil
	}
	for i := uint64(0); i < frames; i++ {
		if _, _, err := c.readFrame(); err != nil {
			return nil, nil, false, fmt.Errorf("frame %d of %d after %.200s: %w", i+1, frames, c.hbuf, err)
		}
	}
	return c.hbuf, nil, false, nil
}

// readFrame returns the next data frame's payload, valid until the next
// call, and whether it is text. A ping is answered (at the next flush),
// a pong skipped, a close frame ends the connection with an error. The
// broker sends whole, unmasked frames.
func (c *wsCodec) readFrame() (text bool, payload []byte, err error) {
	for {
		if err := c.rb.Ensure(2); err != nil {
			return false, nil, c.closedErr(err)
		}
		b := c.rb.Buffered()
		op, size, hl := b[0]&0x0f, int64(b[1]&0x7f), 2
		if b[0]&0x80 == 0 || b[1]&0x80 != 0 {
			return false, nil, fmt.Errorf("websocket frame % x: fragmented or masked, which the broker does not send", b[:2])
		}
		switch size {
		case 126:
			hl += 2
		case 127:
			hl += 8
		}
		if err := c.rb.Ensure(hl); err != nil {
			return false, nil, c.closedErr(err)
		}
		b = c.rb.Buffered()
		switch hl {
		case 4:
			size = int64(binary.BigEndian.Uint16(b[2:]))
		case 10:
			size = int64(binary.BigEndian.Uint64(b[2:]))
		}
		if size < 0 || size > wsReadLimit {
			return false, nil, fmt.Errorf("websocket frame of %d bytes, over the limit of %d", size, wsReadLimit)
		}
		n := hl + int(size)
		if n > c.rb.MaxEnsure() {
			c.rb.Discard(hl)
			c.big = slices.Grow(c.big[:0], int(size))[:size]
			if _, err := io.ReadFull(c.rb, c.big); err != nil {
				return false, nil, c.closedErr(err)
			}
			payload = c.big
		} else {
			if err := c.rb.Ensure(n); err != nil {
				return false, nil, c.closedErr(err)
			}
			payload = c.rb.Buffered()[hl:n:n]
			c.rb.Discard(n)
		}
		switch op {
		case wsOpText, wsOpBinary:
			return op == wsOpText, payload, nil
		case wsOpPing:
			c.pong = append(c.pong[:0], payload...)
			c.send1(wsOpPong, c.pong)
		case wsOpClose:
			return false, nil, c.closedErr(fmt.Errorf("websocket closed by the broker: % x", payload))
		case wsOpPong:
		default:
			return false, nil, fmt.Errorf("websocket frame with opcode %#x", op)
		}
	}
}

// closedErr makes an error after close wrap net.ErrClosed, as the stream
// connection's do, so that the reader knows the runner ended it.
func (c *wsCodec) closedErr(err error) error {
	if err != nil && c.closed.Load() {
		return fmt.Errorf("%w: %w", net.ErrClosed, err)
	}
	return err
}
