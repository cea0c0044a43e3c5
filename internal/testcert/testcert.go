// Package testcert makes throwaway TLS certificates for tests: an issuing
// authority, server certificates for the loopback addresses, and client
// certificates for mutual TLS, all generated in memory when a test runs.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// validity is how long generated certificates are valid around now.
const validity = 24 * time.Hour

// Issuer is a certificate authority for one test.
type Issuer struct {
	// Cert is the authority's certificate.
	Cert *x509.Certificate
	// Pool holds Cert, for RootCAs or ClientCAs.
	Pool *x509.CertPool
	key  *ecdsa.PrivateKey
}

// NewIssuer makes a new authority.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "ampsbroker test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &Issuer{Cert: cert, Pool: pool, key: key}
}

// Server returns a server certificate for 127.0.0.1, ::1 and localhost.
func (is *Issuer) Server(t testing.TB) tls.Certificate {
	t.Helper()
	return is.leaf(t, "ampsbroker test server", x509.ExtKeyUsageServerAuth)
}

// Client returns a client certificate with the given common name.
func (is *Issuer) Client(t testing.TB, commonName string) tls.Certificate {
	t.Helper()
	return is.leaf(t, commonName, x509.ExtKeyUsageClientAuth)
}

// ServerConfig returns a server TLS config with a fresh server certificate.
func (is *Issuer) ServerConfig(t testing.TB) *tls.Config {
	t.Helper()
	return &tls.Config{Certificates: []tls.Certificate{is.Server(t)}}
}

// ClientConfig returns a client TLS config that trusts the issuer and
// expects the server at 127.0.0.1.
func (is *Issuer) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: is.Pool, ServerName: "127.0.0.1"}
}

// PEM returns the issuer's certificate in PEM, e.g. for Node's
// NODE_EXTRA_CA_CERTS.
func (is *Issuer) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: is.Cert.Raw})
}

func (is *Issuer) leaf(t testing.TB, cn string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, is.Cert, &key.PublicKey, is.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// WritePEM writes c's certificate and its key as PEM files certName and
// keyName in dir (the key readable by the owner only) and returns their
// paths.
func WritePEM(t testing.TB, dir, certName, keyName string, c tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	var certPEM []byte
	for _, der := range c.Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	certFile, keyFile = filepath.Join(dir, certName), filepath.Join(dir, keyName)
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}
