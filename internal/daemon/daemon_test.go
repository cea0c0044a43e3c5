package daemon

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/listener"
	"github.com/ampsbroker/ampsbroker/transport"
)

func TestGivenListsOnlyFlagsSet(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("tcp", ":1", "")
	fs.String("ws", ":2", "")
	fs.String("config", "", "")
	if err := fs.Parse([]string{"-config", "x", "-ws", ":3"}); err != nil {
		t.Fatal(err)
	}
	if got := Given(fs, []string{"tcp", "ws"}); !slices.Equal(got, []string{"-ws"}) {
		t.Errorf("Given = %v, want [-ws]", got)
	}
}

// TestServeHooksAndShutdown: Started gets the listeners' addresses, a
// failure it reports ends Serve with that error after Stopping ran.
func TestServeHooksAndShutdown(t *testing.T) {
	l, err := listener.ListenTCP("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	b := broker.New(nil)
	failure := io.ErrUnexpectedEOF
	var addrs []net.Addr
	stopped := false
	err = Serve(context.Background(), slog.New(slog.DiscardHandler), b, []transport.Listener{l}, time.Second, Hooks{
		Started: func(a []net.Addr, errc chan<- error) {
			addrs = a
			errc <- failure
		},
		Stopping: func(context.Context) { stopped = true },
	})
	if err != failure || !stopped {
		t.Errorf("Serve = %v (stopping hook ran: %v), want %v after the hook", err, stopped, failure)
	}
	if len(addrs) != 1 || addrs[0].String() != l.Addr().String() {
		t.Errorf("Started got %v, want [%v]", addrs, l.Addr())
	}
	if _, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		t.Errorf("%v still accepts after Serve returned", l.Addr())
	}
}
