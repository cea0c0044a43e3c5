package listener

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ampsbroker/ampsbroker/transport"

	"github.com/ampsbroker/ampsbroker/protocol"
	"github.com/coder/websocket"
)

// wsConn is the transport.Conn of a WebSocket client: protocol.WSDecoder on the read
// side, protocol.WSEncoder on the write side, over a *websocket.Conn. Data
// frames are framed here and sent in batches through wire (see
// websocket_wire.go), unless permessage-deflate was negotiated; then the
// library writes each one.
type wsConn struct {
	ws   *websocket.Conn
	wire *wsWire // the hijacked connection; the force-close of Close and Abort reach under it
	info transport.ConnInfo

	// Read side, used by the one reading goroutine.
	dec  protocol.WSDecoder
	rbuf []byte
	// mode publishes dec.Mode() to the writer.
	mode atomic.Uint32
	// fallback frames payloads written before the selector arrived, as the
	// JS client would choose for the URL's message type: text for json (or
	// no type), binary for any other.
	fallback protocol.WSMode

	// Write side, under wmu, which also keeps the frames of one message
	// contiguous (wire spec §3.4 rule 5) even if several goroutines write.
	wmu  sync.Mutex
	enc  protocol.WSEncoder
	emit func(text bool, p []byte) error
	// batch holds the frames written since the last Flush, from
	// wsBatchPool; nil when there are none.
	batch *[]byte
	// werr is the first failed write of a batch: after it the stream of
	// frames is broken, so every later write fails with it.
	werr error

	// closed is set when Close begins: no data frame may follow the close
	// frame it sends, and buffered frames are dropped.
	closed       atomic.Bool
	closeOnce    sync.Once
	closeErr     error
	closeTimeout time.Duration
}

// newWSConn returns the connection for ws, whose hijacked connection is
// wire. With batch set wsConn frames and batches data itself; without,
// the library writes every frame (it must when it compresses them).
func newWSConn(ws *websocket.Conn, wire *wsWire, batch bool, info transport.ConnInfo, opts *WebSocketOptions) *wsConn {
	c := &wsConn{ws: ws, wire: wire, info: info, closeTimeout: WebSocketCloseTimeout}
	c.dec.MaxMessageSize = opts.MaxFrameSize // <= 0: the decoder's default
	c.fallback = protocol.WSModeBinary
	if mt := cmp.Or(info.MessageType, info.TransportMessageType); mt == "" || mt == "json" {
		c.fallback = protocol.WSModeText
	}
	c.emit = c.libraryFrame
	if batch {
		c.emit = c.batchFrame
	}
	// Our own limit replaces the library's 32 KiB default; ReadMessage
	// narrows it per frame.
	ws.SetReadLimit(c.dec.FrameLimit())
	return c
}

// Info describes the connection.
func (c *wsConn) Info() *transport.ConnInfo { return &c.info }

// ReadMessage returns the next AMPS message. A client that closed with 1000
// or 1001 ends the stream with io.EOF. A framing error closes the
// connection with 1002, an oversized message with 1009, and returns an
// error wrapping the protocol.ErrWS* sentinel.
func (c *wsConn) ReadMessage() (header, body []byte, err error) {
	for {
		if h, b, ok := c.dec.Next(); ok {
			return h, b, nil
		}
		if err := c.dec.Err(); err != nil {
			return nil, nil, err
		}
		c.ws.SetReadLimit(c.dec.FrameLimit())
		typ, r, err := c.ws.Reader(context.Background())
		if err == nil {
			c.rbuf, err = readAllInto(c.rbuf[:0], r)
		}
		if err != nil {
			return nil, nil, c.readError(err)
		}
		err = c.dec.Feed(typ == websocket.MessageText, c.rbuf)
		c.mode.Store(uint32(c.dec.Mode()))
		if cap(c.rbuf) > wsRetainBufferBytes {
			c.rbuf = nil
		}
		if err != nil {
			c.shutdown(wsCloseCode(err), closeReason(err))
			return nil, nil, fmt.Errorf("listener: websocket from %v: %w", c.info.RemoteAddr, err)
		}
	}
}

func (c *wsConn) readError(err error) error {
	switch websocket.CloseStatus(err) {
	case websocket.StatusNormalClosure, websocket.StatusGoingAway:
		return io.EOF
	}
	if errors.Is(err, websocket.ErrMessageTooBig) {
		// The library has already sent close 1009.
		return fmt.Errorf("listener: websocket from %v: %w: %w", c.info.RemoteAddr, protocol.ErrWSMessageTooLarge, err)
	}
	return fmt.Errorf("listener: websocket read from %v: %w", c.info.RemoteAddr, err)
}

// readAllInto appends everything r yields to dst.
func readAllInto(dst []byte, r io.Reader) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// WriteMessage writes the frames of one message (those the official JS
// client expects, or one stream frame for the third-party Go client's
// stream variant; see protocol.WSEncoder), each as one unfragmented WebSocket
// message, without letting another message's frames in between. Until the
// client's selector arrived it frames payloads for the URL's message type.
// The frames are held until Flush, or until a batch of wsBatchSize bytes
// has gathered.
func (c *wsConn) WriteMessage(m *protocol.Message) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed.Load() {
		return fmt.Errorf("listener: websocket write to %v after Close: %w", c.info.RemoteAddr, net.ErrClosed)
	}
	mode := protocol.WSMode(c.mode.Load())
	if mode == protocol.WSModeUnknown {
		mode = c.fallback
	}
	if err := c.enc.Encode(m, mode, c.emit); err != nil {
		return fmt.Errorf("listener: websocket write to %v: %w", c.info.RemoteAddr, err)
	}
	return nil
}

// libraryFrame has the library write one frame as a message of its own.
func (c *wsConn) libraryFrame(text bool, p []byte) error {
	typ := websocket.MessageBinary
	if text {
		typ = websocket.MessageText
	}
	return c.ws.Write(context.Background(), typ, p)
}

// batchFrame adds one frame to the batch. A frame that would take the
// batch past wsBatchSize is sent at once with the batch before it: its
// header is the batch's last bytes, its payload goes out as it is.
func (c *wsConn) batchFrame(text bool, p []byte) error {
	if c.werr != nil {
		return c.werr
	}
	if c.batch == nil {
		c.batch = wsBatchPool.Get().(*[]byte)
	}
	// The batch is at most wsBatchSize long, so the header fits its capacity.
	b := protocol.AppendWSFrameHeader(*c.batch, text, len(p))
	if len(b)+len(p) <= wsBatchSize {
		*c.batch = append(b, p...)
		return nil
	}
	*c.batch = b
	return c.send(p)
}

// send writes the batch and then payload, and empties the batch.
func (c *wsConn) send(payload []byte) error {
	err := c.wire.writeFrames(*c.batch, payload)
	*c.batch = (*c.batch)[:0]
	if err != nil {
		c.werr = err
	}
	return err
}

// Flush sends the frames written since the last Flush, in one write, and
// gives the batch buffer back so an idle connection holds none.
func (c *wsConn) Flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.batch == nil {
		return nil
	}
	err := c.werr
	if err == nil && c.closed.Load() {
		err = net.ErrClosed
	}
	if err == nil && len(*c.batch) > 0 {
		err = c.send(nil)
	}
	*c.batch = (*c.batch)[:0]
	wsBatchPool.Put(c.batch)
	c.batch = nil
	if err != nil {
		return fmt.Errorf("listener: websocket write to %v: %w", c.info.RemoteAddr, err)
	}
	return nil
}

// Abort implements transport.Aborter: it drops the connection without a close
// handshake, resetting it.
func (c *wsConn) Abort() error {
	err := abortNetConn(c.wire.Conn)
	c.ws.CloseNow()
	return err
}

// Close closes the connection with status 1000 (wire spec §3.5). It waits
// at most WebSocketCloseTimeout for the client's answer, then drops the
// connection. It is safe to call from any goroutine and more than once;
// calls after the first return the first one's result.
func (c *wsConn) Close() error {
	return c.shutdown(websocket.StatusNormalClosure, "")
}

func (c *wsConn) shutdown(code websocket.StatusCode, reason string) error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		var forced atomic.Bool
		t := time.AfterFunc(c.closeTimeout, func() {
			forced.Store(true)
			c.wire.Conn.Close()
		})
		err := c.ws.Close(code, reason)
		t.Stop()
		// A peer that closed first, answered with its own status, or was
		// too slow is not an error of ours.
		if err != nil && !forced.Load() && !errors.Is(err, net.ErrClosed) && websocket.CloseStatus(err) == -1 {
			c.closeErr = fmt.Errorf("listener: websocket close of %v: %w", c.info.RemoteAddr, err)
		}
	})
	return c.closeErr
}
