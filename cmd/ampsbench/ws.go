package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sync/atomic"

	"github.com/coder/websocket"

	"github.com/ampsbroker/ampsbroker/protocol"
)

// wsReadLimit bounds one WebSocket message the broker sends: far above the
// largest body a run uses, so only a broken peer reaches it.
const wsReadLimit = 64 << 20

// wsConn is one client connection speaking the official JavaScript client's
// WebSocket encoding with the "text" selector: every message it sends is a
// binary count frame (the little-endian uint32 number of frames that follow
// plus one), the header as a text frame and the body as a text frame; every
// message the broker sends is a text header frame, then for a delivery one
// data frame unless its header says "l":0, and for a SOW batch a record
// header frame and a data frame per record.
type wsConn struct {
	ws     *websocket.Conn
	closed atomic.Bool // set by close: read errors after it are net.ErrClosed
	hbuf   []byte      // the last header frame read
	bbuf   []byte      // the last data frame read
	h      protocol.Header
}

// dialWS connects to a ws:// URI and sends the "text" selector, the first
// frame of every session, which makes the broker send bodies that are valid
// UTF-8 (all of ours) as text frames.
func dialWS(uri string) (*wsConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, uri, nil)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", uri, err)
	}
	ws.SetReadLimit(wsReadLimit)
	c := &wsConn{ws: ws}
	if err := ws.Write(ctx, websocket.MessageText, []byte(protocol.WSSelectorText)); err != nil {
		ws.CloseNow()
		return nil, fmt.Errorf("selector frame to %s: %w", uri, err)
	}
	return c, nil
}

func (c *wsConn) close() error {
	c.closed.Store(true)
	return c.ws.CloseNow()
}

// flush does nothing: every frame goes out when written, because the
// WebSocket library flushes each message.
func (c *wsConn) flush() error { return nil }

// countTwo is the count frame of a message with a header and one data frame.
var countTwo = []byte{2, 0, 0, 0}

// countOne is the count frame of a message that is a header only.
var countOne = []byte{1, 0, 0, 0}

func (c *wsConn) send(header, body []byte) error {
	return c.sendCtx(context.Background(), header, body)
}

func (c *wsConn) sendCtx(ctx context.Context, header, body []byte) error {
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

func (c *wsConn) command(h *protocol.Header) error {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if err := c.sendCtx(ctx, protocol.AppendHeader(nil, h), nil); err != nil {
		return err
	}
	for {
		delivery, err := c.readMsg(ctx)
		if err != nil {
			return fmt.Errorf("waiting for the ack of %s %q: %w", h.Command, h.CommandID, err)
		}
		if delivery {
			continue
		}
		if c.h.Command == protocol.CmdAck && c.h.CommandID == h.CommandID && c.h.AckType == protocol.AckProcessed {
			if c.h.Status != protocol.StatusSuccess {
				return fmt.Errorf("%s %q answered %s", h.Command, h.CommandID, c.hbuf)
			}
			return nil
		}
	}
}

func (c *wsConn) nextBody() ([]byte, error) {
	for {
		delivery, err := c.readMsg(context.Background())
		if err != nil {
			return nil, err
		}
		if delivery {
			return c.bbuf, nil
		}
		switch c.h.Command {
		case protocol.CmdP, protocol.CmdPublish:
			return c.bbuf, nil
		case protocol.CmdHeartbeat:
		case protocol.CmdAck:
			if c.h.Status == protocol.StatusFailure {
				return nil, fmt.Errorf("%w: %s", errNotDelivery, c.hbuf)
			}
		default:
			return nil, fmt.Errorf("%w: %s", errNotDelivery, c.hbuf)
		}
	}
}

// zeroLength is how a header says that no data frame follows it.
var (
	zeroLengthComma = []byte(`"l":0,`)
	zeroLengthEnd   = []byte(`"l":0}`)
)

// readMsg reads one message the broker sent: its header into c.hbuf and its
// body, if any, into c.bbuf. A delivery ("p", recognised by how the broker
// starts its header) is not decoded and delivery is true; any other header
// is decoded into c.h.
func (c *wsConn) readMsg(ctx context.Context) (delivery bool, err error) {
	text, err := c.readFrame(ctx, &c.hbuf)
	if err != nil {
		return false, err
	}
	if !text {
		return false, fmt.Errorf("header frame is binary: %.80q", c.hbuf)
	}
	c.bbuf = c.bbuf[:0]
	if bytes.HasPrefix(c.hbuf, deliveryPrefix) {
		if bytes.Contains(c.hbuf, zeroLengthComma) || bytes.Contains(c.hbuf, zeroLengthEnd) {
			return true, nil
		}
		if _, err := c.readFrame(ctx, &c.bbuf); err != nil {
			return false, fmt.Errorf("data frame after %.200s: %w", c.hbuf, err)
		}
		return true, nil
	}
	c.h = protocol.Header{}
	if err := protocol.DecodeHeader(c.hbuf, &c.h); err != nil {
		return false, fmt.Errorf("bad header %q: %w", c.hbuf, err)
	}
	frames := uint64(0)
	switch c.h.Command {
	case protocol.CmdP, protocol.CmdPublish, protocol.CmdOOF:
		if !c.h.Has(protocol.FieldLength) || c.h.Length > 0 {
			frames = 1
		}
	case protocol.CmdSOW:
		frames = 2 * c.h.BatchSize // a record header and its data per record
	}
	if frames == 1 {
		if _, err := c.readFrame(ctx, &c.bbuf); err != nil {
			return false, fmt.Errorf("data frame after %.200s: %w", c.hbuf, err)
		}
		return false, nil
	}
	var skip []byte
	for i := uint64(0); i < frames; i++ {
		if _, err := c.readFrame(ctx, &skip); err != nil {
			return false, fmt.Errorf("frame %d of %d after %.200s: %w", i+1, frames, c.hbuf, err)
		}
	}
	return false, nil
}

// readFrame reads one WebSocket message into *buf, reusing its memory, and
// reports whether it was text.
func (c *wsConn) readFrame(ctx context.Context, buf *[]byte) (bool, error) {
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
func (c *wsConn) closedErr(err error) error {
	if c.closed.Load() {
		return fmt.Errorf("%w: %w", net.ErrClosed, err)
	}
	return err
}
