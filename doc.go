// Package ampsbroker is an embeddable message broker that speaks the wire
// protocol of AMPS (60East's Advanced Message Processing System), so that
// unmodified AMPS clients, including the official JavaScript client in
// browsers and Node, can connect to a Go program.
//
// The data path is visible in the package layout:
//
//   - [github.com/ampsbroker/ampsbroker/listener] accepts connections: TCP
//     (optionally TLS), Unix domain sockets and WebSocket, with AMPS's
//     address rules (a port alone listens on IPv4 and IPv6).
//   - [github.com/ampsbroker/ampsbroker/preflight] decides what a stream
//     connection is: plain AMPS, or an HTTP Upgrade preflight as sent
//     through reverse proxies such as nginx.
//   - [github.com/ampsbroker/ampsbroker/protocol] frames AMPS messages: the
//     stream encoding (4-byte big-endian length, JSON header, body) and the
//     WebSocket encoding of the JavaScript client.
//   - [github.com/ampsbroker/ampsbroker/broker] routes: sessions, logon,
//     acks, heartbeats, publish and subscribe with exact and regex topics
//     and content filters, and an in-process client for Go code.
//   - [github.com/ampsbroker/ampsbroker/filter] is the AMPS content filter
//     language: compiled once, evaluated over fields read in one scan.
//   - [github.com/ampsbroker/ampsbroker/config] builds transports from Go
//     values or from AMPS-style XML configuration files.
//
// A host creates a [broker.Broker], hands it listeners with Serve, and
// stops it with Shutdown. The command cmd/ampsd runs one on sensible
// defaults. See the examples for the common shapes.
package ampsbroker
