package listener

import (
	"errors"
	"strings"
	"testing"
)

func TestParseTCPAddr(t *testing.T) {
	tests := []struct {
		in, network, address string
	}{
		{"9007", "tcp", ":9007"},
		{":9007", "tcp", ":9007"},
		{"0", "tcp", ":0"},
		{":0", "tcp", ":0"},
		{"09007", "tcp", ":9007"},
		{"65535", "tcp", ":65535"},
		{"0.0.0.0:9007", "tcp4", "0.0.0.0:9007"},
		{"[::]:9007", "tcp6", "[::]:9007"},
		{"127.0.0.1:0", "tcp4", "127.0.0.1:0"},
		{"10.1.2.3:9007", "tcp4", "10.1.2.3:9007"},
		{"[::1]:9007", "tcp6", "[::1]:9007"},
		{"[fd00::5]:9007", "tcp6", "[fd00::5]:9007"},
		{"[fe80::1%lo]:9007", "tcp6", "[fe80::1%lo]:9007"},
		{"localhost:9007", "tcp", "localhost:9007"},
		{"amps.example.com:0", "tcp", "amps.example.com:0"},
	}
	for _, tt := range tests {
		network, address, err := ParseTCPAddr(tt.in)
		if err != nil || network != tt.network || address != tt.address {
			t.Errorf("ParseTCPAddr(%q) = %q, %q, %v; want %q, %q", tt.in, network, address, err, tt.network, tt.address)
		}
	}
}

func TestParseTCPAddrErrors(t *testing.T) {
	for _, in := range []string{
		"",
		":",
		"65536",
		"99999999999999999999",
		"-1",
		"+9007",
		"http",
		"localhost",
		"localhost:",
		"localhost:http",
		"::1:9007",
		"[]:9007",
		"[127.0.0.1]:9007",
		"[localhost]:9007",
		"1.2.3.4:9007:1",
		"bad host:9007",
		"a..b:9007",
		"host!:9007",
		"caf\u00e9.example:9007",
		" 9007",
	} {
		network, address, err := ParseTCPAddr(in)
		if !errors.Is(err, ErrInvalidAddr) {
			t.Errorf("ParseTCPAddr(%q) = %q, %q, %v; want ErrInvalidAddr", in, network, address, err)
			continue
		}
		if !strings.Contains(err.Error(), `"`+in+`"`) {
			t.Errorf("ParseTCPAddr(%q) error %q does not quote the input", in, err)
		}
	}
}

// TestParseInetAddrParts: the parsed form keeps the host apart, so config
// can tell which transports would bind the same address.
func TestParseInetAddrParts(t *testing.T) {
	tests := []struct {
		in   string
		want InetAddr
	}{
		{"9007", InetAddr{Network: "tcp", Port: 9007}},
		{"0.0.0.0:1", InetAddr{Network: "tcp4", Host: "0.0.0.0", Port: 1}},
		{"[::]:2", InetAddr{Network: "tcp6", Host: "::", Port: 2}},
		{"[fe80::1%lo]:3", InetAddr{Network: "tcp6", Host: "fe80::1%lo", Port: 3}},
		{"amps_1.example.com.:4", InetAddr{Network: "tcp", Host: "amps_1.example.com.", Port: 4}},
	}
	for _, tt := range tests {
		got, err := ParseInetAddr(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseInetAddr(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}
