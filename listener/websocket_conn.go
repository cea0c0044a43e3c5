package listener

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ampsbroker/ampsbroker/transport"

	"github.com/ampsbroker/ampsbroker/protocol"
	"github.com/coder/websocket"
)

// wsConn is the transport.Conn of a WebSocket client: protocol.WSDecoder on the read
// side, protocol.WSEncoder on the write side. Frames are read here
// (wsFrameReader, see websocket_read.go), data frames framed here and sent
// in batches through wire (see websocket_wire.go), and the close handshake
// done here, unless permessage-deflate was negotiated; then the
// *websocket.Conn reads and writes each frame and closes.
type wsConn struct {
	ws   *websocket.Conn
	wire *wsWire // the hijacked connection; the force-close of Close and Abort reach under it
	info transport.ConnInfo

	// Read side. fr reads the client's frames, unless permessage-deflate
	// was negotiated: then fr is nil and the library reads (into rbuf).
	// readMu makes sure one goroutine reads at a time: ReadMessage's, or
	// Close's waiting for the client's close frame.
	readMu sync.Mutex
	fr     *wsFrameReader
	dec    protocol.WSDecoder
	rbuf   []byte
	// peerClosed is closed once the client's close frame has been read,
	// or reading failed: the close handshake is over.
	peerClosed     chan struct{}
	peerClosedOnce sync.Once
	// closeReadLimit is the largest data message read while waiting for
	// the client's close frame: the largest any state of dec allows.
	closeReadLimit int64
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
// wire. With own set wsConn reads frames and frames and batches data
// itself; without, the library reads and writes every frame (it must when
// it compresses them).
func newWSConn(ws *websocket.Conn, wire *wsWire, own bool, info transport.ConnInfo, opts *WebSocketOptions) *wsConn {
	c := &wsConn{ws: ws, wire: wire, info: info, closeTimeout: WebSocketCloseTimeout, peerClosed: make(chan struct{})}
	c.dec.MaxMessageSize = opts.MaxFrameSize // <= 0: the decoder's default
	c.fallback = protocol.WSModeBinary
	if mt := cmp.Or(info.MessageType, info.TransportMessageType); mt == "" || mt == "json" {
		c.fallback = protocol.WSModeText
	}
	c.emit = c.libraryFrame
	if own {
		c.emit = c.batchFrame
		// The bytes the client sent right after its upgrade request are
		// its first frames.
		c.fr = newWSFrameReader(wire.Conn, wire.pre, wsSmallReadSize, wsLargeReadSize)
	}
	// Our own limit replaces the library's 32 KiB default; ReadMessage
	// narrows it per frame.
	ws.SetReadLimit(c.dec.FrameLimit())
	c.closeReadLimit = c.dec.FrameLimit() // before the selector, the largest
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
		var err error // the decoder's verdict on the message read
		if c.fr != nil {
			var rerr error
			if err, rerr = c.readData(); rerr != nil {
				return nil, nil, rerr
			}
		} else {
			c.ws.SetReadLimit(c.dec.FrameLimit())
			typ, r, rerr := c.ws.Reader(context.Background())
			if rerr == nil {
				c.rbuf, rerr = readAllInto(c.rbuf[:0], r)
			}
			if rerr != nil {
				return nil, nil, c.readError(rerr)
			}
			err = c.dec.Feed(typ == websocket.MessageText, c.rbuf)
		}
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

// readData reads frames until a data message, answering the control
// frames before it: a ping with a pong, a close frame with the close
// handshake, and feeds the message to the decoder, returning the
// decoder's error as feedErr. A client that closed with 1000 or 1001 ends
// with io.EOF; a frame against the rules closes the connection with the
// status the rule names.
//
// The message is fed while readMu is held: its payload lies in the read
// buffer, which a Close on another goroutine reads into, and gives back
// to the pool, as soon as readMu is free. The decoder copies what it
// keeps.
func (c *wsConn) readData() (feedErr, err error) {
	c.readMu.Lock()
	op, p, err := c.readFrames(true)
	if err == nil {
		feedErr = c.dec.Feed(op == wsOpText, p)
	}
	c.readMu.Unlock()
	if err == nil {
		return feedErr, nil
	}
	if err == io.EOF {
		return nil, io.EOF
	}
	var re *wsReadError
	if errors.As(err, &re) {
		c.shutdown(re.code, closeReason(err))
		return nil, fmt.Errorf("listener: websocket from %v: %w", c.info.RemoteAddr, err)
	}
	c.endPeer()
	return nil, fmt.Errorf("listener: websocket read from %v: %w", c.info.RemoteAddr, err)
}

// readFrames reads frames, under readMu, until a data message (when data
// is set) or the client's close frame. Pings are answered and pongs
// ignored. The client's close frame is answered with a close frame of
// the same status unless ours went first; then the handshake is over,
// peerClosed is closed and readFrames returns io.EOF for status 1000 or
// 1001, an error naming the status otherwise.
func (c *wsConn) readFrames(data bool) (byte, []byte, error) {
	for {
		// Close reads without the decoder, which the reading goroutine
		// may be using: any message the limit allows is skipped.
		limit := c.closeReadLimit
		if data {
			limit = c.dec.FrameLimit()
		}
		op, p, err := c.fr.next(limit)
		if err == io.EOF {
			// Still an end of the stream to the caller, as the library
			// reported it, but not the clean end of a close handshake.
			err = fmt.Errorf("connection closed without a close frame: %w", io.EOF)
		}
		if err != nil {
			return 0, nil, err
		}
		switch op {
		case wsOpText, wsOpBinary:
			if data {
				return op, p, nil
			}
		case wsOpPing:
			if _, err := c.wire.writeControl(wsOpPong, p); err != nil {
				return 0, nil, err
			}
		case wsOpClose:
			code, reason, err := wsCloseFrame(p)
			if err != nil {
				return 0, nil, err
			}
			echo := code
			if echo == websocket.StatusNoStatusRcvd {
				echo = websocket.StatusNormalClosure
			}
			_, werr := c.wire.writeClose(echo, "")
			c.fr.stop(errWSPeerClosed)
			c.endPeer()
			switch {
			case code == websocket.StatusNormalClosure || code == websocket.StatusGoingAway:
				return 0, nil, io.EOF
			case werr != nil:
				return 0, nil, werr
			}
			return 0, nil, fmt.Errorf("websocket: client closed with status %d %q", code, reason)
		}
	}
}

// endPeer records that nothing more is to be read from the client.
func (c *wsConn) endPeer() {
	c.peerClosedOnce.Do(func() { close(c.peerClosed) })
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

// Close closes the connection with status 1000 (wire spec §3.5): it sends
// the close frame, waits at most WebSocketCloseTimeout for the client's
// (read by the goroutine in ReadMessage if there is one, else by Close
// itself, so one goroutine reads at a time), then closes the connection. It is safe to call from any goroutine and more than once;
// calls after the first return the first one's result.
func (c *wsConn) Close() error {
	return c.shutdown(websocket.StatusNormalClosure, "")
}

func (c *wsConn) shutdown(code websocket.StatusCode, reason string) error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		if c.fr == nil {
			c.closeErr = c.libraryClose(code, reason)
			return
		}
		// A data write blocked on a client that reads nothing holds the
		// wire: the deadline ends it, and bounds the close frame's own
		// write, so Close returns within the close timeout whatever the
		// client does.
		c.wire.Conn.SetWriteDeadline(time.Now().Add(c.closeTimeout))
		sent, err := c.wire.writeClose(code, reason)
		if sent && err == nil {
			c.awaitPeerClose()
		}
		c.ws.CloseNow() // closes the connection
		// A client gone, or too slow to take the close frame within the
		// close timeout, is not an error of ours.
		if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, os.ErrDeadlineExceeded) {
			c.closeErr = fmt.Errorf("listener: websocket close of %v: %w", c.info.RemoteAddr, err)
		}
	})
	return c.closeErr
}

// awaitPeerClose waits, at most closeTimeout, for the client to answer
// the close frame just sent. If no goroutine is reading, it reads itself;
// otherwise the reading goroutine sees the answer and closes peerClosed.
// A client whose frames can no longer be parsed (after a framing error)
// is read until it closes the connection.
func (c *wsConn) awaitPeerClose() {
	if !c.readMu.TryLock() {
		t := time.NewTimer(c.closeTimeout)
		defer t.Stop()
		select {
		case <-c.peerClosed:
		case <-t.C:
		}
		return
	}
	defer c.readMu.Unlock()
	select {
	case <-c.peerClosed:
		return
	default:
	}
	if err := c.wire.Conn.SetReadDeadline(time.Now().Add(c.closeTimeout)); err != nil {
		return
	}
	_, _, err := c.readFrames(false)
	var re *wsReadError
	if errors.As(err, &re) {
		var discard [wsSmallReadSize]byte
		for {
			if _, err := c.wire.Conn.Read(discard[:]); err != nil {
				break
			}
		}
	}
	c.fr.stop(err)
	c.endPeer()
}

// libraryClose is Close when the library reads: its close handshake.
func (c *wsConn) libraryClose(code websocket.StatusCode, reason string) error {
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
		return fmt.Errorf("listener: websocket close of %v: %w", c.info.RemoteAddr, err)
	}
	return nil
}
