package config_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/config"
)

// Example writes the configuration of testdata/edge-broker.xml as Go values,
// validates it and starts a broker on it: tcp, websocket, tcps and
// amps-unix transports. (The certificate of the tcps transport is made on
// the spot by writeSelfSigned; a real deployment points at its own files.)
func Example() {
	dir, err := os.MkdirTemp("", "edge")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	certFile, keyFile := writeSelfSigned(dir)

	cfg := config.Config{
		Name:                  "edge-broker-example",
		MessageMemoryLimit:    768 << 20, // <MessageMemoryLimit>768MB</MessageMemoryLimit>
		ClientMessageAgeLimit: 45 * time.Second,
		ClientMaxCapacity:     40,
		Authentication: &config.Module{
			Module:  "amps-default-authentication-module",
			Options: map[string]string{"AllowSpoofing": "true"},
		},
		Transports: []config.Transport{
			{Name: "json-tcp", Type: config.TypeTCP, InetAddr: "127.0.0.1:0", Protocol: config.ProtocolAMPS, MessageType: "json"},
			{Name: "json-ws", Type: config.TypeTCP, InetAddr: "127.0.0.1:0", Protocol: config.ProtocolWebSocket, MessageType: "json"},
			{Name: "json-local", Type: config.TypeUnix, FileName: filepath.Join(dir, "amps.sock"), FileMask: 0o660, MessageType: "json"},
			{Name: "json-tls", Type: config.TypeTCPS, InetAddr: "127.0.0.1:0", Protocol: config.ProtocolAMPS, MessageType: "json",
				Certificate: certFile, PrivateKey: keyFile, SecureSocketProtocols: "TLSv1.2 TLSv1.3"},
		},
		SOW: []config.SOWTopic{
			{Name: "positions", MessageType: "json", Keys: []string{"/id"}, Durability: config.DurabilityTransient},
		},
	}
	if err := cfg.Validate(); err != nil {
		log.Fatal(err)
	}

	listeners, err := cfg.ListenAll()
	if err != nil {
		log.Fatal(err)
	}
	opts := cfg.BrokerOptions()
	b := broker.New(&opts)
	done := make(chan struct{}, len(listeners))
	for _, l := range listeners {
		fmt.Println("serving", l.Name())
		go func() {
			b.Serve(l)
			done <- struct{}{}
		}()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	for range listeners {
		<-done
	}
	fmt.Println("per-client queue:", opts.OutboundQueueBytes>>20, "MB")
	// Output:
	// serving json-tcp
	// serving json-ws
	// serving json-local
	// serving json-tls
	// per-client queue: 307 MB
}

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 and its
// key as PEM files in dir.
func writeSelfSigned(dir string) (certFile, keyFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "edge-broker example"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		log.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "edge.crt"), filepath.Join(dir, "edge.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		log.Fatal(err)
	}
	return certFile, keyFile
}
