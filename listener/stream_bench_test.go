package listener

import (
	"crypto/tls"
	"io"
	"net"
	"testing"

	"github.com/ampsbroker/ampsbroker/preflight"
)

// BenchmarkHandshake measures a whole connection set-up over loopback: dial,
// the client's first bytes, the server handshake, the first message read,
// close. Sub-benchmarks: plain AMPS, with preflight, with TLS.
func BenchmarkHandshake(b *testing.B) {
	serverTLS, clientTLS := selfSigned(b)
	logonFrame := frame(`{"c":"logon","mt":"json"}`, "")
	request := []byte("GET /amps/json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: upgrade\r\nUpgrade: tcp\r\n\r\n")
	for _, bc := range []struct {
		name      string
		opts      *TCPOptions
		preflight bool
		tls       bool
	}{
		{"plain", nil, false, false},
		{"preflight", nil, true, false},
		{"tls", &TCPOptions{TLSConfig: serverTLS}, false, true},
		{"tls_preflight", &TCPOptions{TLSConfig: serverTLS}, true, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l := listenTCP(b, "127.0.0.1:0", bc.opts)
			results := serveHandshakes(b, l)
			addr := l.Addr().String()
			first := logonFrame
			if bc.preflight {
				first = append(append([]byte(nil), request...), logonFrame...)
			}
			resp := make([]byte, len(preflight.SwitchingProtocols))
			for b.Loop() {
				var c net.Conn
				var err error
				if bc.tls {
					c, err = tls.Dial("tcp", addr, clientTLS)
				} else {
					c, err = net.Dial("tcp", addr)
				}
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Write(first); err != nil {
					b.Fatal(err)
				}
				if bc.preflight {
					if _, err := io.ReadFull(c, resp); err != nil {
						b.Fatal(err)
					}
				}
				s := nextConn(b, results)
				if _, _, err := s.ReadMessage(); err != nil {
					b.Fatal(err)
				}
				s.Close()
				c.Close()
			}
		})
	}
}
