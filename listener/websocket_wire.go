package listener

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"sync"

	"github.com/ampsbroker/ampsbroker/protocol"
	"github.com/coder/websocket"
)

// Why the broker frames its own outbound WebSocket messages.
//
// The WebSocket library's Conn.Write sends every message with its own
// write system call, and the JavaScript client's encoding needs two
// messages per delivery (header, then data). A CPU profile of ampsd
// serving 1 KiB deliveries over WebSocket showed two thirds of its time in
// those system calls, and the library's per-message bookkeeping (its
// message and frame locks, close-state checks) costing about as much again
// as the broker's own work per delivery. Corking the library's writes (let
// it flush into a buffer, send the buffer at Flush) would remove the
// system calls but keep the bookkeeping and copy every frame twice. A frame
// a server sends is not masked and its header is 2 to 10 bytes
// (protocol.AppendWSFrameHeader), so wsConn writes data frames itself: each
// frame is copied once, into a batch buffer, and a batch goes out with one
// write at Flush. Reading, pongs and the close handshake are wsConn's too
// (see websocket_read.go); the library does the upgrade. With
// permessage-deflate negotiated, the library reads and writes every frame,
// as it compresses them.
//
// Every frame goes to the connection through a wsWire, whose lock makes
// every write whole: a pong sent while a batch is being written goes out
// before or after the batch, never inside one of its frames.

const (
	// wsBatchSize is how many bytes of frames wsConn collects before
	// sending them, when Flush has not come first. Deliveries of 1 KiB then
	// go out about thirty per system call; a frame that does not fit is
	// sent with the batch in one vectored write, without being copied.
	wsBatchSize = 32 << 10

	// wsControlBufferSize is the buffered writer the WebSocket library
	// writes its control frames through when wsConn frames data itself: a
	// control frame is at most 2+125 bytes, and the 101 response head
	// fits too. It is allocated for the connection's whole life, so it is
	// kept small for idle connections.
	wsControlBufferSize = 512

	// wsCloseFrameStart is the first byte of a close frame (FIN and opcode
	// 8, RFC 6455 §5.5.1).
	wsCloseFrameStart = 0x88
)

// errWSCloseSent is what writing a data frame returns after the close
// frame has gone out: no data frame may follow it (RFC 6455 §5.5.1).
var errWSCloseSent = errors.New("listener: websocket close frame already sent")

// wsBatchPool holds batch buffers between batches, so that an idle
// connection holds none and a busy one does not allocate per batch. The
// capacity leaves room for one frame header past wsBatchSize, so a buffer
// never grows.
var wsBatchPool = sync.Pool{New: func() any {
	b := make([]byte, 0, wsBatchSize+protocol.WSMaxFrameHeaderSize)
	return &b
}}

// wsWire is the hijacked connection, shared by the WebSocket library (its
// Write) and wsConn (writeFrames). Reads and everything else go straight
// to the embedded connection.
type wsWire struct {
	net.Conn

	mu sync.Mutex
	// sniffClose is set when wsConn frames data itself: the library then
	// writes only control frames, each from an empty buffer in one Write,
	// so a Write that starts with wsCloseFrameStart is a close frame.
	sniffClose bool
	closeSent  bool
	// vec is reused for vectored writes, so they do not allocate.
	vec [2][]byte
	// pre is what the reader the upgrade request was read through held
	// past the request when the connection was hijacked: the client's
	// first frames.
	pre []byte
}

// wsLibraryReaderSize is the buffered reader handed to the library when
// it does not read (no permessage-deflate): the smallest bufio allows, so
// the connection does not keep the request's reader for its whole life.
const wsLibraryReaderSize = 16

// newWSWire returns the wire over the hijacked connection c, whose
// upgrade request was read through br, and the reader to hand the library
// with it: br itself when the library reads (permessage-deflate was
// negotiated, which h, the response header, tells), otherwise a tiny one
// it never uses, as wsConn reads from pre and the connection.
func newWSWire(c net.Conn, br *bufio.Reader, h http.Header) (*wsWire, *bufio.Reader) {
	w := &wsWire{Conn: c}
	if wsDeflate(h) {
		return w, br
	}
	if n := br.Buffered(); n > 0 {
		p, _ := br.Peek(n)
		w.pre = bytes.Clone(p)
	}
	return w, bufio.NewReaderSize(w, wsLibraryReaderSize)
}

// writeControl writes one control frame of ours (server frames are not
// masked): a pong, or a close frame. Nothing is written after a close
// frame, and a second close frame is not written either: then it returns
// false. A close frame's payload is status and reason, truncated to the
// 125 bytes a control frame may carry.
func (w *wsWire) writeControl(op byte, payload []byte) (bool, error) {
	var f [2 + wsMaxControlPayload]byte
	payload = payload[:min(len(payload), wsMaxControlPayload)]
	f[0], f[1] = 0x80|op, byte(len(payload))
	n := 2 + copy(f[2:], payload)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closeSent {
		return false, nil
	}
	if op == wsOpClose {
		w.closeSent = true
	}
	_, err := w.Conn.Write(f[:n])
	return true, err
}

// writeClose writes a close frame with status code and reason (see
// writeControl).
func (w *wsWire) writeClose(code websocket.StatusCode, reason string) (bool, error) {
	var p [wsMaxControlPayload]byte
	binary.BigEndian.PutUint16(p[:], uint16(code))
	n := 2 + copy(p[2:], reason)
	return w.writeControl(wsOpClose, p[:n])
}

// Write is how the library writes.
func (w *wsWire) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sniffClose && len(p) > 0 && p[0] == wsCloseFrameStart {
		w.closeSent = true
	}
	return w.Conn.Write(p)
}

// writeFrames writes batch, whole frames, then payload, the payload of
// the frame whose header ends batch (nil if none), in one system call
// where the connection supports vectored writes.
func (w *wsWire) writeFrames(batch, payload []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closeSent {
		return errWSCloseSent
	}
	if len(payload) == 0 {
		_, err := w.Conn.Write(batch)
		return err
	}
	w.vec = [2][]byte{batch, payload}
	bufs := net.Buffers(w.vec[:])
	_, err := bufs.WriteTo(w.Conn)
	w.vec = [2][]byte{} // do not keep the caller's payload reachable
	return err
}

// wsDeflate reports whether the upgrade response h negotiated
// permessage-deflate; the library sets the extensions header only then.
func wsDeflate(h http.Header) bool {
	return h.Get("Sec-WebSocket-Extensions") != ""
}

// wsLibraryWriterSize is the size of the buffered writer the library
// writes through: small when it writes control frames only, large when it
// writes compressed data frames.
func wsLibraryWriterSize(h http.Header) int {
	if wsDeflate(h) {
		return wsWriteBufferSize
	}
	return wsControlBufferSize
}
