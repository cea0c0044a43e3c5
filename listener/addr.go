package listener

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// ErrInvalidAddr is wrapped by the error ParseInetAddr and ParseTCPAddr
// (and so ListenTCP and ListenWebSocket) return for an address that does not
// follow the AMPS InetAddr grammar.
var ErrInvalidAddr = errors.New("listener: invalid InetAddr")

// InetAddr is a parsed AMPS InetAddr (amps-config §3.3), the listen address
// of a TCP or WebSocket transport.
type InetAddr struct {
	// Network is what to give net.Listen: "tcp" for a port alone (every
	// address, IPv4 and IPv6 through Go's dual-stack socket) or a host
	// name, "tcp4" for an IPv4 literal, "tcp6" for a bracketed IPv6
	// literal (Go sets IPV6_V6ONLY, so "[::]" is every IPv6 address only).
	Network string
	// Host is empty for a port alone, else the IP literal (without
	// brackets, zone kept) or the host name.
	Host string
	// Port is 0 to 65535; 0 asks for an ephemeral port.
	Port int
}

// Address is the address to give net.Listen with Network: ":port" for a
// port alone, else host:port with IPv6 literals bracketed.
func (a InetAddr) Address() string {
	return net.JoinHostPort(a.Host, strconv.Itoa(a.Port))
}

// String is Address.
func (a InetAddr) String() string { return a.Address() }

// ParseInetAddr parses an AMPS InetAddr:
//
//	9007, :9007      "tcp"  ":9007"      every address, IPv4 and IPv6 (Go's dual-stack socket)
//	0.0.0.0:9007     "tcp4" "0.0.0.0:9007" every IPv4 address only
//	[::]:9007        "tcp6" "[::]:9007"  every IPv6 address only (Go sets IPV6_V6ONLY)
//	10.1.2.3:9007    "tcp4"              that address only
//	[fd00::5]:9007   "tcp6"              that address only
//	host:9007        "tcp"               the host name as net.Listen resolves it
//
// The port is decimal, 0 to 65535; 0 asks for an ephemeral port (allowed for
// embedding, amps-config §3.3). An IPv4 literal is written bare and an IPv6
// literal in brackets, so an unbracketed IPv6 literal such as "::1:9007",
// which could end anywhere, is refused. A host name is labels of letters,
// digits, '-' and '_' separated by dots (RFC 1123, with the underscore some
// internal names use). Errors wrap ErrInvalidAddr, quote the input and say
// which part is wrong.
//
// A host name is passed to net.Listen as is, which listens on the first
// address the name resolves to. AMPS documents host names only for the
// admin server, so whether it listens on every resolved address is not
// known; a host that needs that resolves the name itself and calls
// ListenTCP once per address.
func ParseInetAddr(addr string) (InetAddr, error) {
	if addr == "" {
		return InetAddr{}, fmt.Errorf("%w %q: empty", ErrInvalidAddr, addr)
	}
	host, port := "", strings.TrimPrefix(addr, ":")
	if !isDecimal(port) {
		// Not "port" nor ":port": must be host:port.
		var err error
		host, port, err = net.SplitHostPort(addr)
		if err != nil {
			return InetAddr{}, fmt.Errorf("%w %q: want port, :port, ipv4:port, [ipv6]:port or host:port: %v", ErrInvalidAddr, addr, err)
		}
	}
	p, err := parsePort(port)
	if err != nil {
		return InetAddr{}, fmt.Errorf("%w %q: %v", ErrInvalidAddr, addr, err)
	}
	if host == "" {
		if strings.Contains(addr, "[") {
			// "[]:9007": brackets around nothing.
			return InetAddr{}, fmt.Errorf("%w %q: empty IPv6 literal", ErrInvalidAddr, addr)
		}
		return InetAddr{Network: "tcp", Port: p}, nil
	}
	bracketed := strings.HasPrefix(addr, "[")
	if ip, perr := netip.ParseAddr(host); perr == nil {
		switch {
		case ip.Is4() && !bracketed:
			return InetAddr{Network: "tcp4", Host: host, Port: p}, nil
		case ip.Is6() && bracketed:
			return InetAddr{Network: "tcp6", Host: host, Port: p}, nil
		}
		return InetAddr{}, fmt.Errorf("%w %q: IPv4 literals are written bare, IPv6 literals in brackets", ErrInvalidAddr, addr)
	}
	if bracketed || !isHostName(host) {
		return InetAddr{}, fmt.Errorf("%w %q: %q is neither an IP literal nor a host name", ErrInvalidAddr, addr, host)
	}
	return InetAddr{Network: "tcp", Host: host, Port: p}, nil
}

// ParseTCPAddr is ParseInetAddr returning the network and address to give
// net.Listen.
func ParseTCPAddr(addr string) (network, address string, err error) {
	a, err := ParseInetAddr(addr)
	if err != nil {
		return "", "", err
	}
	return a.Network, a.Address(), nil
}

// isHostName reports whether h is a host name: at most 253 bytes of
// dot-separated labels, each 1 to 63 letters, digits, '-' or '_', with an
// optional final dot (a fully qualified name).
func isHostName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// isDecimal reports whether s is a non-empty run of ASCII digits.
func isDecimal(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parsePort parses a decimal port from 0 to 65535. Service names ("http") are
// not accepted: the InetAddr grammar has only numbers (amps-config §3.3).
func parsePort(s string) (int, error) {
	if !isDecimal(s) {
		return 0, fmt.Errorf("port %q is not a decimal number", s)
	}
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("port %q is above 65535", s)
	}
	return int(p), nil
}
