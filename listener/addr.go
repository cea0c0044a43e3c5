package listener

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// ErrInvalidAddr is wrapped by the error ParseTCPAddr (and so ListenTCP)
// returns for an address that does not follow the AMPS InetAddr grammar.
var ErrInvalidAddr = errors.New("listener: invalid InetAddr")

// ParseTCPAddr maps an AMPS InetAddr (amps-config §3.3) to the network and
// address to give net.Listen:
//
//	9007, :9007      "tcp"  ":9007"      every address, IPv4 and IPv6 (Go's dual-stack socket)
//	0.0.0.0:9007     "tcp4" "0.0.0.0:9007" every IPv4 address only
//	[::]:9007        "tcp6" "[::]:9007"  every IPv6 address only (Go sets IPV6_V6ONLY)
//	10.1.2.3:9007    "tcp4"              that address only
//	[fd00::5]:9007   "tcp6"              that address only
//	host:9007        "tcp"               the host name as net.Listen resolves it
//
// The port is decimal, 0 to 65535; 0 asks for an ephemeral port (allowed for
// embedding, amps-config §3.3). An unbracketed IPv6 literal such as
// "::1:9007" is ambiguous and refused. Errors wrap ErrInvalidAddr and quote
// the input.
//
// A host name is passed to net.Listen as is, which listens on the first
// address the name resolves to. amps-config §3.3 suggests one listener per
// resolved address; a host that needs that resolves the name itself and calls
// ListenTCP once per address.
func ParseTCPAddr(addr string) (network, address string, err error) {
	if addr == "" {
		return "", "", fmt.Errorf("%w %q: empty", ErrInvalidAddr, addr)
	}
	host, port := "", strings.TrimPrefix(addr, ":")
	if !isDecimal(port) {
		// Not "port" nor ":port": must be host:port.
		host, port, err = net.SplitHostPort(addr)
		if err != nil {
			return "", "", fmt.Errorf("%w %q: want port, :port, ipv4:port, [ipv6]:port or host:port: %v", ErrInvalidAddr, addr, err)
		}
	}
	p, err := parsePort(port)
	if err != nil {
		return "", "", fmt.Errorf("%w %q: %v", ErrInvalidAddr, addr, err)
	}
	ps := strconv.Itoa(p)
	if host == "" {
		if strings.Contains(addr, "[") {
			// "[]:9007": brackets around nothing.
			return "", "", fmt.Errorf("%w %q: empty IPv6 literal", ErrInvalidAddr, addr)
		}
		return "tcp", ":" + ps, nil
	}
	bracketed := strings.HasPrefix(addr, "[")
	if ip, perr := netip.ParseAddr(host); perr == nil {
		switch {
		case ip.Is4() && !bracketed:
			return "tcp4", net.JoinHostPort(host, ps), nil
		case ip.Is6() && bracketed:
			return "tcp6", net.JoinHostPort(host, ps), nil
		}
		return "", "", fmt.Errorf("%w %q: IPv4 literals are written bare, IPv6 literals in brackets", ErrInvalidAddr, addr)
	}
	if bracketed || strings.ContainsAny(host, ":%/ ") {
		return "", "", fmt.Errorf("%w %q: %q is neither an IP literal nor a host name", ErrInvalidAddr, addr, host)
	}
	return "tcp", net.JoinHostPort(host, ps), nil
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
