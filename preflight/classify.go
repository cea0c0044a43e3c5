package preflight

import (
	"fmt"
	"net/http"
	"strings"
)

// Kind is what a preflight request asks the connection to become.
type Kind int

const (
	// AMPS is the AMPS stream framing (each message a 4-byte big-endian
	// length, then its header and body), asked for by "Upgrade: tcp",
	// "Upgrade: tcps", or no Upgrade header at all.
	AMPS Kind = iota + 1
	// WebSocket is "Upgrade: websocket": the WebSocket encoding of wire spec
	// §3, served on the stream port when the listener allows it.
	WebSocket
)

// String returns "amps" or "websocket".
func (k Kind) String() string {
	switch k {
	case AMPS:
		return "amps"
	case WebSocket:
		return "websocket"
	}
	return fmt.Sprintf("preflight.Kind(%d)", int(k))
}

// Classify decides what the request asks for (wire spec §4.3 steps 3 to 5).
// Header names and values are compared without regard to case, and every
// Upgrade header line is read as a comma-separated list of protocols, each
// possibly with a "/version" suffix; the first protocol the broker speaks
// wins, as the client lists them in order of preference.
//
//   - "tcp" or "tcps" gives AMPS.
//   - "websocket" gives WebSocket.
//   - No Upgrade header gives AMPS: the Go client sends its preflight without
//     one (wire spec §4.4). An Upgrade header that names nothing (empty or
//     only commas) is treated the same way; the spec asks for leniency and
//     such a header names no protocol we would have to refuse.
//   - Anything else returns an error wrapping ErrUpgradeRefused; the caller
//     answers with WriteBadRequest and closes.
//
// The Connection header is not checked: the sources do not agree on its case
// or presence (wire spec §4.1), and nothing depends on it for AMPS.
func Classify(req *http.Request) (Kind, error) {
	values := req.Header.Values("Upgrade")
	named := false
	for _, v := range values {
		for tok := range strings.SplitSeq(v, ",") {
			tok = strings.Trim(tok, " \t")
			if name, _, ok := strings.Cut(tok, "/"); ok {
				tok = name
			}
			switch {
			case tok == "":
				continue
			case strings.EqualFold(tok, "tcp"), strings.EqualFold(tok, "tcps"):
				return AMPS, nil
			case strings.EqualFold(tok, "websocket"):
				return WebSocket, nil
			}
			named = true
		}
	}
	if !named {
		return AMPS, nil
	}
	return 0, fmt.Errorf("%w: Upgrade %q names no protocol this broker speaks (tcp, tcps or websocket)",
		ErrUpgradeRefused, strings.Join(values, ", "))
}

// MessageType returns the message type named by a request path that ends in
// "/amps/<mt>", e.g. "json" for "/proxy/prefix/amps/json?x=1". Everything
// before "/amps" is a routing prefix and is ignored, a query or fragment is
// stripped (wire spec §1, path rules), and so is one trailing slash. It returns
// "" when the path does not end that way, e.g. "/amps" as sent by the Go
// client (wire spec §4.4).
func MessageType(path string) string {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	path = strings.TrimSuffix(path, "/")
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return ""
	}
	mt, rest := path[i+1:], path[:i]
	if mt == "" || (rest != "amps" && !strings.HasSuffix(rest, "/amps")) {
		return ""
	}
	return mt
}
