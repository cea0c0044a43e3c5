package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// pprofReadHeaderTimeout bounds how long the profiling endpoint waits for a
// request's header, so an idle connection cannot hold it forever.
const pprofReadHeaderTimeout = 10 * time.Second

// servePprof serves the runtime profiles on addr until the returned stop
// is called; stop closes the listener and every open connection (a CPU
// profile being taken is cut short). The handlers are registered on a mux
// of their own, so importing net/http/pprof adds nothing to any other
// server.
func servePprof(addr string, log *slog.Logger) (stop func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-pprof %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: pprofReadHeaderTimeout}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			log.Warn("pprof endpoint failed", "addr", addr, "err", err)
		}
	}()
	log.Info("serving profiles", "addr", l.Addr().String(), "path", "/debug/pprof/")
	return func() {
		srv.Close()
		<-done
	}, nil
}
