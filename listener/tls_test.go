package listener

import (
	"crypto/tls"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/internal/testcert"

	"github.com/ampsbroker/ampsbroker/preflight"
)

// selfSigned returns a server config with a fresh certificate for
// 127.0.0.1 and ::1, and a client config that trusts it.
func selfSigned(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	is := testcert.NewIssuer(t)
	return is.ServerConfig(t), is.ClientConfig()
}

func dialTLS(t testing.TB, addr string, cfg *tls.Config) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatalf("tls.Dial %s: %v", addr, err)
	}
	c.SetDeadline(time.Now().Add(waitLimit))
	t.Cleanup(func() { c.Close() })
	return c
}

func TestTLS(t *testing.T) {
	serverCfg, clientCfg := selfSigned(t)
	l := listenTCP(t, "127.0.0.1:0", &TCPOptions{TLSConfig: serverCfg})
	if l.Name() != "tcps" {
		t.Errorf("Name = %q, want tcps", l.Name())
	}
	results := serveHandshakes(t, l)

	t.Run("plain AMPS", func(t *testing.T) {
		c := dialTLS(t, l.Addr().String(), clientCfg)
		if _, err := c.Write(frame(`{"c":"logon"}`, "")); err != nil {
			t.Fatal(err)
		}
		s := nextConn(t, results)
		defer s.Close()
		expectMessage(t, s, `{"c":"logon"}`, "")
		exchange(t, c, s)
		info := s.Info()
		if info.TLS == nil || !info.TLS.HandshakeComplete || info.Transport != "tcps" || info.Request != nil {
			t.Errorf("Info = %+v", info)
		}
	})

	t.Run("preflight", func(t *testing.T) {
		c := dialTLS(t, l.Addr().String(), clientCfg)
		req := "GET /edge/amps/json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: upgrade\r\nUpgrade: tcps\r\n\r\n"
		if _, err := c.Write(append([]byte(req), frame(`{"c":"logon"}`, "")...)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(preflight.SwitchingProtocols))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != preflight.SwitchingProtocols {
			t.Fatalf("response %q, %v", got, err)
		}
		s := nextConn(t, results)
		defer s.Close()
		expectMessage(t, s, `{"c":"logon"}`, "")
		exchange(t, c, s)
		info := s.Info()
		if info.TLS == nil || info.Request == nil || info.MessageType != "json" {
			t.Errorf("Info = %+v", info)
		}
	})

	t.Run("preflight refused", func(t *testing.T) {
		c := dialTLS(t, l.Addr().String(), clientCfg)
		io.WriteString(c, "GET /amps/json HTTP/1.1\r\nUpgrade: foo\r\n\r\n")
		if got := readAllUntilClose(t, c); got != preflight.BadRequest {
			t.Errorf("client got %q, want %q", got, preflight.BadRequest)
		}
		if r := next(t, results); !errors.Is(r.err, preflight.ErrUpgradeRefused) {
			t.Errorf("Handshake error = %v", r.err)
		}
	})

	t.Run("plain client on TLS port", func(t *testing.T) {
		c := dial(t, "tcp", l.Addr().String())
		c.Write(frame(`{"c":"logon"}`, ""))
		r := next(t, results)
		if r.err == nil {
			r.conn.Close()
			t.Fatal("Handshake of a non-TLS client succeeded")
		}
	})
}

func TestListenTCPNoCertificate(t *testing.T) {
	if l, err := ListenTCP("127.0.0.1:0", &TCPOptions{TLSConfig: &tls.Config{}}); err == nil {
		l.Close()
		t.Error("ListenTCP with a TLSConfig without certificate succeeded")
	}
}
