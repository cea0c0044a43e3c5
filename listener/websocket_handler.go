package listener

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ampsbroker/ampsbroker/transport"

	"github.com/ampsbroker/ampsbroker/preflight"
	"github.com/ampsbroker/ampsbroker/protocol"
	"github.com/coder/websocket"
)

// NewWebSocketHandler returns an http.Handler that upgrades requests to the
// WebSocket encoding of the official AMPS JavaScript client (wire spec §3)
// and runs srv.ServeConn on each connection until it returns, for hosts that
// mount the broker on their own http.Server (any path works: the message
// type is taken from ".../amps/<mt>"). opts may be nil; its TLSConfig is
// not used, as the http.Server owns TLS. The http.Server reads the request
// under its own timeouts (ReadHeaderTimeout); HandshakeTimeout bounds the
// rest, the writing of the upgrade response.
// The http.Server does not track upgraded connections: Shutdown does not
// close them, the transport.ConnServer does.
func NewWebSocketHandler(srv transport.ConnServer, opts *WebSocketOptions) http.Handler {
	var o WebSocketOptions
	if opts != nil {
		o = *opts
	}
	timeout := handshakeTimeout(o.HandshakeTimeout)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := transport.ConnInfo{Transport: o.name(), TLS: r.TLS}
		// The upgrade response is flushed while the connection is
		// hijacked, under the deadline the server's connection has then.
		// A server without WriteTimeout would wait on a client that reads
		// nothing for ever. Writers that cannot take a deadline (test
		// recorders) go without.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(timeout))
		rec := &wsHijackRecorder{ResponseWriter: w}
		conn, err := wsUpgrade(rec, r, &o, info)
		if err != nil {
			return // the client got an HTTP error response
		}
		defer conn.Close()
		// r.Context stays valid until this handler returns, hijacked or
		// not (net/http.Hijacker).
		_ = srv.ServeConn(r.Context(), conn)
	})
}

// wsHijacker is an http.ResponseWriter whose Hijack hands the WebSocket
// library the connection wrapped in a wsWire, and remembers that wire:
// wsConn writes its batches through it, and force-closes the connection
// under it when the close handshake overruns.
type wsHijacker interface {
	http.ResponseWriter
	http.Hijacker
	hijackedWire() *wsWire
}

// wsUpgrade checks the upgrade request r, answers it on w and returns the
// message connection. info carries Transport and TLS (and, from a stream
// transport, its fixed message type); wsUpgrade fills in the rest. On error
// an HTTP error response has been written to w.
func wsUpgrade(w wsHijacker, r *http.Request, opts *WebSocketOptions, info transport.ConnInfo) (*wsConn, error) {
	info.Protocol = WebSocketProtocol
	info.Request = r
	// Path rule (wire spec §1): the last two segments are "amps" and the
	// message type; any prefix is ignored. A path that does not end that
	// way is accepted too: the message type is then the transport's, or
	// none, and the logon must declare it in "mt" (amps-config §3.5), as the
	// third-party Go client does. A path naming another type than the
	// transport's fixed one is upgraded all the same and refused at logon
	// with a failure ack: AMPS documents only that it refuses such a
	// connection, not at which step, and a failed logon lets the JS client
	// surface a readable error rather than a failed connect.
	info.MessageType = preflight.MessageType(r.URL.Path)
	if opts.MessageType != "" {
		info.TransportMessageType = opts.MessageType
	}

	ws, err := websocket.Accept(w, r, opts.acceptOptions())
	if err != nil {
		return nil, fmt.Errorf("%w: %s %q from %s: %v", ErrWebSocketUpgrade, r.Method, r.URL.Path, r.RemoteAddr, err)
	}
	wire := w.hijackedWire()
	if info.LocalAddr == nil {
		info.LocalAddr = wire.LocalAddr()
	}
	if info.RemoteAddr == nil {
		info.RemoteAddr = wire.RemoteAddr()
	}
	// No goroutine uses the wire yet: reading (and answering pings)
	// starts when wsConn first reads.
	deflate := wsDeflate(w.Header())
	wire.sniffClose = !deflate
	return newWSConn(ws, wire, !deflate, info, opts), nil
}

// wsHijackRecorder wraps the ResponseWriter of an http.Server.
type wsHijackRecorder struct {
	http.ResponseWriter
	wire *wsWire
}

// Hijack takes the connection over from the http.Server and clears the
// deadlines its ReadTimeout or WriteTimeout (or the handshake timeout) may
// have left on it. The library gets a writer of its own over the wire in
// place of the server's (empty: the server flushed the 101 before).
func (h *wsHijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		c.Close()
		return nil, nil, err
	}
	h.wire, brw.Reader = newWSWire(c, brw.Reader, h.Header())
	brw.Writer = bufio.NewWriterSize(h.wire, wsLibraryWriterSize(h.Header()))
	return h.wire, brw, nil
}

func (h *wsHijackRecorder) hijackedWire() *wsWire { return h.wire }

// Unwrap gives http.ResponseController access to the server's writer.
func (h *wsHijackRecorder) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// wsRawResponse is the http.ResponseWriter of an upgrade request read
// straight from a connection (ListenWebSocket, and WebSocket on a stream
// port). A 101 answer is written by Hijack; any other answer is collected
// and written by finish with "Connection: close".
type wsRawResponse struct {
	conn     net.Conn
	wire     *wsWire // set by Hijack
	br       *bufio.Reader
	header   http.Header
	status   int
	body     bytes.Buffer
	hijacked bool
}

func newWSRawResponse(c net.Conn, br *bufio.Reader) *wsRawResponse {
	return &wsRawResponse{conn: c, br: br, header: make(http.Header)}
}

func (w *wsRawResponse) Header() http.Header { return w.header }

func (w *wsRawResponse) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *wsRawResponse) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

// Hijack writes the response head (the 101 the WebSocket library set up)
// and hands the connection over, with br holding any bytes the client sent
// after its request.
func (w *wsRawResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, errors.New("listener: connection already hijacked")
	}
	w.hijacked = true
	var br *bufio.Reader
	w.wire, br = newWSWire(w.conn, w.br, w.header)
	bw := bufio.NewWriterSize(w.wire, wsLibraryWriterSize(w.header))
	w.writeHead(bw)
	if err := bw.Flush(); err != nil {
		return nil, nil, err
	}
	return w.wire, bufio.NewReadWriter(br, bw), nil
}

func (w *wsRawResponse) hijackedWire() *wsWire { return w.wire }

func (w *wsRawResponse) writeHead(bw *bufio.Writer) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	fmt.Fprintf(bw, "HTTP/1.1 %03d %s\r\n", w.status, http.StatusText(w.status))
	w.header.Write(bw)
	bw.WriteString("\r\n")
}

// finish writes a response that was not a successful upgrade. Errors are
// ignored: the connection is closed next anyway.
func (w *wsRawResponse) finish() {
	if w.hijacked {
		return
	}
	w.header.Set("Connection", "close")
	w.header.Set("Content-Length", strconv.Itoa(w.body.Len()))
	bw := bufio.NewWriterSize(w.conn, wsRequestBufferSize)
	w.writeHead(bw)
	bw.Write(w.body.Bytes())
	bw.Flush()
}

// closeReason turns an error into a close frame reason of at most
// wsMaxCloseReason bytes of valid UTF-8.
func closeReason(err error) string {
	s := err.Error()
	if len(s) > wsMaxCloseReason {
		s = strings.ToValidUTF8(s[:wsMaxCloseReason], "")
	}
	return s
}

// wsCloseCode is the close status for a decoder error: 1009 for a message
// over the limit (RFC 6455 §7.4.1), 1002 for broken framing.
func wsCloseCode(err error) websocket.StatusCode {
	if errors.Is(err, protocol.ErrWSMessageTooLarge) {
		return websocket.StatusMessageTooBig
	}
	return websocket.StatusProtocolError
}
