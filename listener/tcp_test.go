package listener

import (
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/ampsbroker/ampsbroker/transport"
)

func port(t testing.TB, a net.Addr) string {
	t.Helper()
	_, p, err := net.SplitHostPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// dialRefused asserts nothing listens at addr.
func dialRefused(t testing.TB, network, addr string) {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err == nil {
		c.Close()
		t.Fatalf("dial %s %s succeeded, want connection refused", network, addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s %s: %v, want connection refused", network, addr, err)
	}
}

// TestListenTCPFamilies checks the InetAddr forms listen on the address
// families amps-config §3.3 says, over real sockets.
func TestListenTCPFamilies(t *testing.T) {
	tests := []struct {
		addr    string
		reach   []string // hosts that must connect
		refused []string // hosts that must be refused
	}{
		{"0", []string{"127.0.0.1", "::1"}, nil},
		{":0", []string{"127.0.0.1", "::1"}, nil},
		{"0.0.0.0:0", []string{"127.0.0.1"}, []string{"::1"}},
		// IPV6_V6ONLY on a tcp6 wildcard: no IPv4-mapped connections.
		{"[::]:0", []string{"::1"}, []string{"127.0.0.1"}},
		{"[::1]:0", []string{"::1"}, []string{"127.0.0.1"}},
		{"127.0.0.1:0", []string{"127.0.0.1"}, []string{"::1"}},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			l := listenTCP(t, tt.addr, nil)
			results := serveHandshakes(t, l)
			p := port(t, l.Addr())
			if p == "0" {
				t.Fatalf("Addr %v still has port 0", l.Addr())
			}
			for _, h := range tt.reach {
				c, s := logon(t, results, "tcp", net.JoinHostPort(h, p))
				exchange(t, c, s)
				s.Close()
			}
			for _, h := range tt.refused {
				dialRefused(t, "tcp", net.JoinHostPort(h, p))
			}
		})
	}
}

func TestListenTCPErrors(t *testing.T) {
	if _, err := ListenTCP("::1:9007", nil); !errors.Is(err, ErrInvalidAddr) {
		t.Errorf("ListenTCP(unbracketed IPv6) error = %v", err)
	}
	l := listenTCP(t, "127.0.0.1:0", nil)
	addr := "127.0.0.1:" + port(t, l.Addr())
	if l2, err := ListenTCP(addr, nil); err == nil {
		l2.Close()
		t.Errorf("ListenTCP(%q) twice succeeded", addr)
	} else if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("ListenTCP(%q) twice: %v, want address in use", addr, err)
	}
}

func TestTCPClose(t *testing.T) {
	l, err := ListenTCP("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Name() != "tcp" {
		t.Errorf("Name = %q, want tcp", l.Name())
	}
	closeUnblocksAccept(t, l)
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Accept after Close = %v, want net.ErrClosed", err)
	}
}

// closeUnblocksAccept closes l while an Accept waits, and checks that the
// Accept returns net.ErrClosed.
func closeUnblocksAccept(t *testing.T, l transport.Listener) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		errc <- err
	}()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
	}
}

// TestNewTCPListener wraps a listener the host made.
func TestNewTCPListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewTCPListener(ln, &TCPOptions{Name: "edge", MessageType: "json", MaxFrameSize: 64})
	if l.Addr() != ln.Addr() || l.Name() != "edge" {
		t.Errorf("Addr %v Name %q", l.Addr(), l.Name())
	}
	results := serveHandshakes(t, l)
	c, s := logon(t, results, "tcp", l.Addr().String())
	if info := s.Info(); info.Transport != "edge" || info.MessageType != "" || info.TransportMessageType != "json" {
		t.Errorf("Info = %+v", info)
	}
	exchange(t, c, s)
	// MaxFrameSize reached the codec: a 65-byte frame is refused.
	big := make([]byte, 65-len(`{"c":"p"}`))
	c.Write(frame(`{"c":"p"}`, string(big)))
	if _, _, err := s.ReadMessage(); err == nil {
		t.Errorf("ReadMessage of a frame over MaxFrameSize succeeded")
	}
}
