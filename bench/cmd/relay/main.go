// Command relay runs the zero-logic relay of package relay, the ceiling
// that the comparison measures brokers against.
//
// Usage:
//
//	relay -addr 127.0.0.1:9100
package main

import (
	"flag"
	"fmt"
	"net"
	"os"

	"github.com/ampsbroker/ampsbroker/bench/relay"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9100", "address to listen on, host:port")
	flag.Parse()
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
	if err := relay.NewServer().Serve(l); err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
}
