// Package preflight implements the HTTP Upgrade preflight that AMPS stream
// transports (tcp, tcps, amps-unix) accept before normal framing, so that a
// client can reach the broker through an HTTP reverse proxy (wire spec §4).
//
// A client that wants a preflight opens the connection with an HTTP/1.1
// request such as
//
//	GET /prefix/amps/json HTTP/1.1
//	Host: example
//	Connection: upgrade
//	Upgrade: tcp
//
// and, once the broker answered with SwitchingProtocols, carries on with the
// 4-byte length framing of wire spec §2. Because "GET " read as a length
// (0x47455420) is far above any frame limit, the preflight needs no setting:
// every stream connection is checked with Detect (wire spec §2.1, §4.3).
//
// The typical sequence on a freshly accepted connection c is:
//
//	br := bufio.NewReader(c)
//	if ok, err := preflight.Detect(br); ok {
//		req, err := preflight.ReadRequest(br, preflight.DefaultMaxHeaderBytes)
//		kind, err := preflight.Classify(req)
//		preflight.WriteSwitchingProtocols(c)
//	}
//	rwc := preflight.NewConn(c, br) // keeps AMPS bytes already buffered in br
//
// Errors are checked at each step; a refused request is answered with
// WriteBadRequest before the connection is closed.
package preflight

import "errors"

// DefaultMaxHeaderBytes caps the request line plus header lines of a
// preflight, blank line included; ReadRequest applies it when its maxBytes
// is zero. Wire spec §4.3 suggests 16 KiB; it leaves room for cookies and
// bearer tokens added by proxies or by the application
// (addHttpPreflightHeader, wire spec §4.1).
//
// The package reads from whatever the caller gives it and sets no
// deadline: how long a client may take over its preflight is the
// transport's handshake timeout (listener.DefaultHandshakeTimeout).
const DefaultMaxHeaderBytes = 16 << 10

// Sentinel errors. The errors returned by this package wrap one of them and
// add the offending input.
var (
	// ErrHeaderTooLarge is returned by ReadRequest when the request line and
	// header lines exceed the limit before the blank line that ends them.
	ErrHeaderTooLarge = errors.New("preflight: request header too large")

	// ErrMalformed is returned by ReadRequest when the bytes are not an
	// HTTP/1.x GET request head.
	ErrMalformed = errors.New("preflight: malformed request")

	// ErrUpgradeRefused is returned by Classify when the request asks to
	// upgrade to a protocol the broker does not speak (wire spec §4.3 step 5).
	ErrUpgradeRefused = errors.New("preflight: upgrade refused")
)
