package testcert

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
)

// A server certificate verifies against the issuer, and mutual TLS with a
// client certificate completes, over a real loopback connection.
func TestMutualTLSOverLoopback(t *testing.T) {
	is := NewIssuer(t)
	srv := is.ServerConfig(t)
	srv.ClientAuth = tls.RequireAndVerifyClientCert
	srv.ClientCAs = is.Pool
	l, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			got <- err.Error()
			return
		}
		got <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
	}()
	cfg := is.ClientConfig()
	cfg.Certificates = []tls.Certificate{is.Client(t, "alice")}
	c, err := tls.Dial("tcp", l.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if cn := <-got; cn != "alice" {
		t.Fatalf("server saw %q", cn)
	}
}

func TestWritePEMLoads(t *testing.T) {
	is := NewIssuer(t)
	certFile, keyFile := WritePEM(t, t.TempDir(), "s.crt", "s.key", is.Server(t))
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: is.Pool, DNSName: "localhost"}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(keyFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", fi.Mode())
	}
}
