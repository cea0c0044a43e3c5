// Package daemon holds what the server commands (cmd/ampsd, and
// ampsd-cluster in the natscluster module) share: serving a broker on its
// listeners until a context ends, the admin HTTP server beside them (from
// a flag or the file's Admin element), and the rule that flags a
// configuration file replaces are not given with it.
package daemon

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/transport"
)

// Hooks let a command run its own servers beside the broker's listeners.
// Nil hooks are skipped.
type Hooks struct {
	// Started is called once every listener is being served, with their
	// addresses; a server it starts reports a failure on errc (one send),
	// which shuts everything down like a failing listener.
	Started func(addrs []net.Addr, errc chan<- error)
	// Stopping is called when the shutdown begins, before the broker's,
	// with the shutdown's context.
	Stopping func(ctx context.Context)
}

// Serve runs b on ls until ctx is done or a listener (or a Started
// server) fails; then it shuts b down gracefully within timeout and waits
// for every Serve to return. It returns the failure that ended it, nil
// when ctx did.
func Serve(ctx context.Context, log *slog.Logger, b *broker.Broker, ls []transport.Listener, timeout time.Duration, h Hooks) error {
	errc := make(chan error, len(ls)+1)
	var wg sync.WaitGroup
	addrs := make([]net.Addr, 0, len(ls))
	for _, l := range ls {
		log.Info("listening", "transport", l.Name(), "addr", l.Addr().String())
		addrs = append(addrs, l.Addr())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Serve(l); !errors.Is(err, broker.ErrBrokerClosed) {
				errc <- err
			}
		}()
	}
	if h.Started != nil {
		h.Started(addrs, errc)
	}
	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", timeout)
	case runErr = <-errc:
		log.Error("transport failed; shutting down", "err", runErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if h.Stopping != nil {
		h.Stopping(sctx)
	}
	if err := b.Shutdown(sctx); err != nil {
		log.Warn("shutdown was not graceful", "err", err)
	}
	wg.Wait()
	log.Info("stopped")
	return runErr
}

// Given lists, as "-name", the flags of names that were set on fs's
// command line, in the order given.
func Given(fs *flag.FlagSet, names []string) []string {
	var given []string
	fs.Visit(func(fl *flag.Flag) {
		for _, name := range names {
			if fl.Name == name {
				given = append(given, "-"+name)
			}
		}
	})
	return given
}
