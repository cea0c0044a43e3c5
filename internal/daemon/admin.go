package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/ampsbroker/ampsbroker/admin"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/config"
	"github.com/ampsbroker/ampsbroker/listener"
)

// Limits of the admin HTTP server, so that a slow or idle client cannot
// hold a connection (and its goroutine) forever.
const (
	// adminReadHeaderTimeout bounds the wait for a request's header.
	adminReadHeaderTimeout = 10 * time.Second
	// adminReadTimeout bounds reading a whole request (admin requests
	// have no body worth waiting for).
	adminReadTimeout = 30 * time.Second
	// adminWriteTimeout bounds writing one response; the largest, the
	// client list of a busy broker, is written well within it.
	adminWriteTimeout = 60 * time.Second
	// adminIdleTimeout closes a keep-alive connection idle this long.
	adminIdleTimeout = 2 * time.Minute
)

// AdminServer is the admin tree (package admin) served over HTTP or HTTPS
// next to the broker's transports. ListenAdmin opens its socket before the
// broker exists, so that a bad address fails before anything runs; Start
// attaches the broker.
type AdminServer struct {
	l     net.Listener // TLS-wrapped when https
	https bool
	opts  admin.Options

	h    *admin.Handler
	srv  *http.Server
	done chan struct{} // closed when Serve has returned
}

// ListenAdmin listens on addr (AMPS InetAddr syntax, as the transports);
// tlsConfig, when not nil, makes the server HTTPS. what names the setting
// in errors ("-admin", "Admin/InetAddr").
func ListenAdmin(what, addr string, tlsConfig *tls.Config, opts admin.Options) (*AdminServer, error) {
	network, address, err := listener.ParseTCPAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	l, err := net.Listen(network, address)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, addr, err)
	}
	if tlsConfig != nil {
		l = tls.NewListener(l, tlsConfig)
	}
	return &AdminServer{l: l, https: tlsConfig != nil, opts: opts}, nil
}

// scheme is "https" or "http".
func (a *AdminServer) scheme() string {
	if a.https {
		return "https"
	}
	return "http"
}

// Start serves the admin tree of b until Stop; a failure of the server
// (not its closing) is sent on errc.
func (a *AdminServer) Start(b *broker.Broker, log *slog.Logger, errc chan<- error) {
	a.opts.Logger = log
	a.h = admin.NewHandler(b, &a.opts)
	a.srv = &http.Server{
		Handler:           a.h,
		ReadHeaderTimeout: adminReadHeaderTimeout,
		ReadTimeout:       adminReadTimeout,
		WriteTimeout:      adminWriteTimeout,
		IdleTimeout:       adminIdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	a.done = make(chan struct{})
	log.Info("listening", "transport", "admin", "addr", a.l.Addr().String(), "scheme", a.scheme())
	go func() {
		defer close(a.done)
		if err := a.srv.Serve(a.l); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("admin server: %w", err)
		}
	}()
}

// Stop ends the server Start started: requests in progress get until ctx
// is done, then their connections are closed; the handler's sampling
// stops last.
func (a *AdminServer) Stop(ctx context.Context) {
	if err := a.srv.Shutdown(ctx); err != nil {
		a.srv.Close()
	}
	<-a.done
	a.h.Close()
}

// adminHTTPOptions sets o's Headers, AnonymousPaths and AllowOrigin from
// the Admin element's Header, AnonymousPaths and AccessControlAllowOrigin
// (which Validate has checked).
func adminHTTPOptions(a *config.Admin, o *admin.Options) error {
	for _, h := range a.Headers {
		name, value, _ := strings.Cut(h, ":")
		if o.Headers == nil {
			o.Headers = http.Header{}
		}
		o.Headers.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	for _, re := range []struct {
		name, expr string
		dst        **regexp.Regexp
	}{
		{"AnonymousPaths", a.AnonymousPaths, &o.AnonymousPaths},
		{"AccessControlAllowOrigin", a.AccessControlAllowOrigin, &o.AllowOrigin},
	} {
		if re.expr == "" {
			continue
		}
		compiled, err := regexp.Compile(re.expr)
		if err != nil {
			return fmt.Errorf("Admin %s %q: %w", re.name, re.expr, err)
		}
		*re.dst = compiled
	}
	return nil
}

// AdminFromConfig opens the admin server of the file's Admin element, or
// returns nil when it has no InetAddr.
func AdminFromConfig(cfg *config.Config, open bool) (*AdminServer, error) {
	a := cfg.Admin
	if a == nil || a.InetAddr == "" {
		return nil, nil
	}
	tlsConfig, err := a.LoadTLS()
	if err != nil {
		return nil, err
	}
	opts := admin.Options{
		Interval:    a.Interval,
		Description: cfg.Description,
		OpenActions: open,
		NoDashboard: a.Galvanometer == config.StateDisabled,
	}
	if err := adminHTTPOptions(a, &opts); err != nil {
		return nil, err
	}
	// The Admin element's own Authentication or Entitlement is the
	// decision that turns the actions on: the modules say who may run
	// them (without an Entitlement, every authenticated user may).
	if auth, ent, set := cfg.AdminSecurity(); set {
		opts.Authenticate = admin.BasicAuthenticator(auth)
		opts.Entitler = ent
		opts.OpenActions = opts.OpenActions || ent == nil
	}
	return ListenAdmin("Admin/InetAddr", a.InetAddr, tlsConfig, opts)
}
