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
// side, protocol.WSEncoder on the write side, over a *websocket.Conn.
type wsConn struct {
	ws   *websocket.Conn
	raw  net.Conn // the hijacked connection, force-closed when Close overruns
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

	// Write side. wmu keeps the frames of one message contiguous (wire spec
	// §3.4 rule 5) even if several goroutines write.
	wmu  sync.Mutex
	enc  protocol.WSEncoder
	emit func(text bool, p []byte) error

	closeOnce    sync.Once
	closeErr     error
	closeTimeout time.Duration
}

func newWSConn(ws *websocket.Conn, raw net.Conn, info transport.ConnInfo, opts *WebSocketOptions) *wsConn {
	c := &wsConn{ws: ws, raw: raw, info: info, closeTimeout: WebSocketCloseTimeout}
	c.dec.MaxMessageSize = opts.MaxFrameSize // <= 0: the decoder's default
	c.fallback = protocol.WSModeBinary
	if mt := cmp.Or(info.MessageType, info.TransportMessageType); mt == "" || mt == "json" {
		c.fallback = protocol.WSModeText
	}
	c.emit = c.writeFrame
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
func (c *wsConn) WriteMessage(m *protocol.Message) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	mode := protocol.WSMode(c.mode.Load())
	if mode == protocol.WSModeUnknown {
		mode = c.fallback
	}
	if err := c.enc.Encode(m, mode, c.emit); err != nil {
		return fmt.Errorf("listener: websocket write to %v: %w", c.info.RemoteAddr, err)
	}
	return nil
}

func (c *wsConn) writeFrame(text bool, p []byte) error {
	typ := websocket.MessageBinary
	if text {
		typ = websocket.MessageText
	}
	return c.ws.Write(context.Background(), typ, p)
}

// Flush does nothing: the WebSocket library sends every frame as written.
func (c *wsConn) Flush() error { return nil }

// Abort implements transport.Aborter: it drops the connection without a close
// handshake, resetting it.
func (c *wsConn) Abort() error {
	err := abortNetConn(c.raw)
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
		var forced atomic.Bool
		t := time.AfterFunc(c.closeTimeout, func() {
			forced.Store(true)
			c.raw.Close()
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
