package config_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/config"
)

// Example writes the configuration of testdata/edge-broker.xml (without the
// TLS transport, which needs certificate files) as Go values, validates it
// and starts a broker on it.
func Example() {
	dir, err := os.MkdirTemp("", "edge")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

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
			// A tcps transport adds Certificate and PrivateKey:
			// {Name: "json-tls", Type: config.TypeTCPS, InetAddr: "27003", Certificate: "edge.crt", PrivateKey: "edge.key", SecureSocketProtocols: "TLSv1.2 TLSv1.3"},
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
	// per-client queue: 307 MB
}
