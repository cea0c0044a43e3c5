package listener

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/ampsbroker/ampsbroker/transport"
)

// Abort resets a stream connection instead of closing it behind unsent
// data: the client sees a reset at once, not an orderly end of the stream
// after everything queued.
func TestStreamAbortResets(t *testing.T) {
	for _, name := range []string{"tcp", "tls"} {
		t.Run(name, func(t *testing.T) {
			var opts *TCPOptions
			server, client := selfSigned(t)
			if name == "tls" {
				opts = &TCPOptions{TLSConfig: server}
			}
			l := listenTCP(t, "127.0.0.1:0", opts)
			results := serveHandshakes(t, l)
			var c net.Conn
			if name == "tls" {
				c = dialTLS(t, l.Addr().String(), client)
			} else {
				c = dial(t, "tcp", l.Addr().String())
			}
			if _, err := c.Write(frame(`{"c":"logon","mt":"json"}`, "")); err != nil {
				t.Fatal(err)
			}
			s := nextConn(t, results)
			expectMessage(t, s, `{"c":"logon","mt":"json"}`, "")
			a, ok := s.(transport.Aborter)
			if !ok {
				t.Fatalf("%T does not implement transport.Aborter", s)
			}
			// Queue data the client never reads, then abort.
			for i := 0; i < 64; i++ {
				s.WriteMessage(outMsg(t, `{"c":"p","t":"x","l":1024}`, string(make([]byte, 1024))))
			}
			s.Flush()
			if err := a.Abort(); err != nil {
				t.Fatalf("Abort: %v", err)
			}
			_, err := io.ReadAll(c)
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("client read ended with %v, want a connection reset", err)
			}
		})
	}
}
