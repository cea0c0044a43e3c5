package listener

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/protocol"
	"github.com/coder/websocket"
)

// TestWebSocketHandshakeTimeout: the WebSocket listener drops a client that
// stalls in its upgrade request once HandshakeTimeout passes, as the stream
// transports do.
func TestWebSocketHandshakeTimeout(t *testing.T) {
	l, _, hsErrs := listenWS(t, &WebSocketOptions{HandshakeTimeout: 50 * time.Millisecond})
	c := dial(t, "tcp", l.Addr().String())
	if _, err := io.WriteString(c, "GET /amps/json HTTP/1.1\r\nHost: h\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, hsErrs, "handshake error"); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Handshake error = %v, want a deadline error", err)
	}
}

// TestOnePortUsesThePortsSettings: WebSocket clients on a TCP port get the
// port's MaxFrameSize, not the one in TCPOptions.WebSocket: one limit per
// transport, whatever the client speaks.
func TestOnePortUsesThePortsSettings(t *testing.T) {
	l := listenTCP(t, "127.0.0.1:0", &TCPOptions{
		Name:         "edge",
		MaxFrameSize: 1024,
		WebSocket:    &WebSocketOptions{Name: "ignored", MaxFrameSize: 1 << 20},
	})
	srv := newRecServer(t)
	serveListener(t, l, srv)
	c, _ := dialJS(t, fmt.Sprintf("ws://%s/amps/json", l.Addr()), nil)
	conn := recv(t, srv.conns, "connection")
	if got := conn.Info().Transport; got != "edge" {
		t.Errorf("Transport = %q, want the port's name %q", got, "edge")
	}
	c.send(true, "text")
	c.burst(`{"c":"publish","t":"x"}`, strings.Repeat("b", 2000))
	c.expectClose(websocket.StatusMessageTooBig)
	if err := recv(t, srv.errs, "read error"); !errors.Is(err, protocol.ErrWSMessageTooLarge) {
		t.Errorf("ReadMessage error = %v, want ErrWSMessageTooLarge", err)
	}
}
