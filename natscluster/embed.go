package natscluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Defaults of an embedded NATS server (ServerConfig's zero values).
const (
	// DefaultServerListen is the client listener of an embedded server:
	// NATS's usual port, on loopback only, so that nothing outside the
	// machine reaches it unless the configuration says so.
	DefaultServerListen = "127.0.0.1:4222"
	// DefaultServerClusterName is the NATS cluster name the embedded
	// servers of one ampsbroker cluster share.
	DefaultServerClusterName = "ampsbroker"
	// DefaultServerStoreRoot is the directory, relative to the working
	// directory, under which an embedded server keeps its JetStream store
	// in a directory named after the server.
	DefaultServerStoreRoot = "nats-store"
	// DefaultServerReadyTimeout bounds the wait for an embedded server's
	// listeners to open.
	DefaultServerReadyTimeout = 10 * time.Second
	// serverPoll is how often a wait looks at the embedded server again.
	serverPoll = 25 * time.Millisecond
	// jetStreamProbeTimeout bounds one JetStream API request of
	// WaitJetStream; a request lost while the routes come up is simply
	// asked again.
	jetStreamProbeTimeout = 500 * time.Millisecond
	// jetStreamInfoSubject is the JetStream API's account information
	// request, which a clustered server forwards to the meta leader.
	jetStreamInfoSubject = "$JS.API.INFO"
)

// ErrServerConfig is wrapped by every error StartServer returns for a
// setting it cannot use (the error names the setting and its value).
var ErrServerConfig = errors.New("natscluster: embedded NATS server configuration")

// ErrServerNotReady is wrapped by the errors of StartServer and
// WaitJetStream when the server did not get ready in time or failed to
// start (the error says what it was waiting for, or the server's reason).
var ErrServerNotReady = errors.New("natscluster: embedded NATS server not ready")

// ServerConfig is an embedded nats-server with JetStream, one per
// ampsbroker node, so that the nodes need no NATS servers of their own
// (a single-binary cluster). Its zero value is a stand-alone JetStream
// server on DefaultServerListen.
type ServerConfig struct {
	// Listen is the client listener, host:port ("" for
	// DefaultServerListen; port 0 for one the kernel picks). The node
	// itself connects in-process, so this listener serves other NATS
	// clients (tools, other programs).
	Listen string
	// ClusterListen is the route listener the other servers of the
	// cluster connect to, host:port; "" for a stand-alone server.
	ClusterListen string
	// Routes are the other servers' route listeners,
	// nats-route://host:port (or host:port); listing this server's own
	// too is harmless, so every node can be given the same list. Routes
	// need a ClusterListen.
	Routes []string
	// ClusterName is the NATS cluster's name, the same on every server
	// ("" for DefaultServerClusterName).
	ClusterName string
	// ServerName names the server in the cluster; JetStream knows its
	// peers by name, so it must be unique in the cluster and stay the same
	// across restarts. "" for the host name and the cluster (or client)
	// listener's port, e.g. "host1-6222".
	ServerName string
	// StoreDir is the JetStream store's directory ("" for
	// DefaultServerStoreRoot/<ServerName>). It must survive restarts:
	// what a stream with one replica holds is only there.
	StoreDir string
	// ReadyTimeout bounds the wait for the listeners to open (0 for
	// DefaultServerReadyTimeout).
	ReadyTimeout time.Duration
	// Logger receives the server's notices (as Debug), warnings and errors
	// (nil: nothing is logged).
	Logger *slog.Logger
	// Configure, when not nil, adjusts the server's options last, for
	// what ServerConfig does not cover (TLS, accounts, limits).
	Configure func(*server.Options)
}

// EmbeddedServer is a running embedded NATS server; Shutdown stops it.
type EmbeddedServer struct {
	srv  *server.Server
	name string
}

// StartServer starts an embedded nats-server with JetStream as cfg says
// and waits until its listeners are open (at most cfg.ReadyTimeout, or
// until ctx is done). A clustered server is then running but JetStream
// may still wait for its peers: see WaitJetStream. Errors wrap
// ErrServerConfig or ErrServerNotReady.
func StartServer(ctx context.Context, cfg ServerConfig) (*EmbeddedServer, error) {
	opts, err := serverOptions(cfg)
	if err != nil {
		return nil, err
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrServerConfig, err)
	}
	logs := &serverLog{log: cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)).With("nats-server", opts.ServerName)}
	s.SetLoggerV2(logs, false, false, false)
	s.Start()
	es := &EmbeddedServer{srv: s, name: opts.ServerName}
	ready := cmp.Or(cfg.ReadyTimeout, DefaultServerReadyTimeout)
	rctx, cancel := context.WithTimeout(ctx, ready)
	defer cancel()
	for !s.ReadyForConnections(serverPoll) {
		// The server reports a listener it cannot open, or a store it
		// cannot use, as fatal and stops starting.
		if msg := logs.fatal(); msg != "" {
			es.Shutdown()
			return nil, fmt.Errorf("%w: server %s: %s", ErrServerNotReady, opts.ServerName, msg)
		}
		if rctx.Err() != nil {
			es.Shutdown()
			return nil, fmt.Errorf("%w: server %s: listeners %s and %q not open within %v: %w",
				ErrServerNotReady, opts.ServerName, cmp.Or(cfg.Listen, DefaultServerListen), cfg.ClusterListen, ready, context.Cause(rctx))
		}
	}
	return es, nil
}

// serverOptions turns cfg into nats-server options, checking each
// setting.
func serverOptions(cfg ServerConfig) (*server.Options, error) {
	listen := cmp.Or(cfg.Listen, DefaultServerListen)
	host, port, err := splitListen(listen)
	if err != nil {
		return nil, fmt.Errorf("%w: Listen %q: %v", ErrServerConfig, listen, err)
	}
	opts := &server.Options{
		Host:      host,
		Port:      port,
		NoSigs:    true,
		JetStream: true,
	}
	_, namePort, _ := net.SplitHostPort(listen)
	if cfg.ClusterListen != "" {
		ch, cp, err := splitListen(cfg.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("%w: ClusterListen %q: %v", ErrServerConfig, cfg.ClusterListen, err)
		}
		opts.Cluster = server.ClusterOpts{Name: cmp.Or(cfg.ClusterName, DefaultServerClusterName), Host: ch, Port: cp}
		_, namePort, _ = net.SplitHostPort(cfg.ClusterListen)
	} else if len(cfg.Routes) > 0 {
		return nil, fmt.Errorf("%w: Routes %v need a ClusterListen", ErrServerConfig, cfg.Routes)
	}
	for _, r := range cfg.Routes {
		u, err := RouteURL(r)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrServerConfig, err)
		}
		opts.Routes = append(opts.Routes, u)
	}
	opts.ServerName = cfg.ServerName
	if opts.ServerName == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("%w: no ServerName and no host name to make one: %v", ErrServerConfig, err)
		}
		opts.ServerName = h + "-" + namePort
	}
	opts.StoreDir = cmp.Or(cfg.StoreDir, filepath.Join(DefaultServerStoreRoot, opts.ServerName))
	if cfg.Configure != nil {
		cfg.Configure(opts)
	}
	return opts, nil
}

// splitListen is a listener's host and port; port 0 (any free port) is
// nats-server's RANDOM_PORT, as its own 0 means its default port.
func splitListen(hostPort string) (string, int, error) {
	host, p, err := net.SplitHostPort(hostPort)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number in 0..65535", p)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// RouteURL is a route as nats-server takes it: nats-route://host:port,
// also written nats://host:port or host:port. Its error names the route.
func RouteURL(route string) (*url.URL, error) {
	raw := route
	if !hasScheme(raw) {
		raw = "nats-route://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" || u.Port() == "" || (u.Scheme != "nats-route" && u.Scheme != "nats") {
		return nil, fmt.Errorf("route %q is not nats-route://host:port", route)
	}
	return u, nil
}

// hasScheme says whether s starts with "scheme://".
func hasScheme(s string) bool {
	for i := range len(s) {
		if s[i] == ':' {
			return len(s) > i+2 && s[i+1] == '/' && s[i+2] == '/'
		}
		if s[i] == '/' {
			return false
		}
	}
	return false
}

// Name is the server's name in the cluster.
func (e *EmbeddedServer) Name() string { return e.name }

// ClientURL is the client listener's URL, nats://host:port, with the port
// it got.
func (e *EmbeddedServer) ClientURL() string { return e.srv.ClientURL() }

// ClusterAddr is the route listener's address, nil for a stand-alone
// server.
func (e *EmbeddedServer) ClusterAddr() net.Addr {
	if a := e.srv.ClusterAddr(); a != nil {
		return a
	}
	return nil
}

// InProcessConn is a connection to the server inside the process, no
// socket involved; with it EmbeddedServer is a nats.InProcessConnProvider
// (nats.InProcessServer), which is how a node reaches its own server.
func (e *EmbeddedServer) InProcessConn() (net.Conn, error) { return e.srv.InProcessConn() }

// WaitJetStream waits until JetStream can place a stream with replicas
// copies: the server is stand-alone (replicas 1), or it knows the
// cluster's meta leader and at least replicas servers of the cluster are
// online (this one included; a server that is not the meta leader counts
// those it has not seen go away, so JetStream may still refuse a stream
// for a moment, which its opener tries again); and then until a JetStream API request made
// through the server is answered (a request sent before the routes are up
// is lost, and its client would wait for its whole timeout). It returns
// ctx's error, wrapped in
// ErrServerNotReady with what was missing, when ctx ends first, and
// ErrServerConfig at once when a stand-alone server is asked for more
// than one replica.
func (e *EmbeddedServer) WaitJetStream(ctx context.Context, replicas int) error {
	t := time.NewTicker(serverPoll)
	defer t.Stop()
	var nc *nats.Conn
	defer func() {
		if nc != nil {
			nc.Close()
		}
	}()
	for {
		if e.srv.JetStreamEnabled() && !e.srv.JetStreamIsClustered() && replicas > 1 {
			return fmt.Errorf("%w: server %s is stand-alone (no ClusterListen) and cannot hold %d replicas", ErrServerConfig, e.name, replicas)
		}
		missing := e.jetStreamMissing(replicas)
		if missing == "" {
			if nc == nil {
				c, err := nats.Connect(e.ClientURL(), nats.InProcessServer(e), nats.Name("natscluster WaitJetStream"))
				if err != nil {
					return fmt.Errorf("%w: server %s: in-process connection: %w", ErrServerNotReady, e.name, err)
				}
				nc = c
			}
			if missing = jetStreamAnswers(ctx, nc); missing == "" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: server %s: %s: %w", ErrServerNotReady, e.name, missing, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// jetStreamMissing says what JetStream still lacks for a stream with
// replicas copies, "" when nothing.
func (e *EmbeddedServer) jetStreamMissing(replicas int) string {
	s := e.srv
	if !s.JetStreamEnabled() {
		return "JetStream is not enabled"
	}
	if !s.JetStreamIsClustered() {
		return ""
	}
	if !s.JetStreamIsCurrent() {
		return "no JetStream meta leader yet"
	}
	info, err := s.Jsz(nil)
	if err != nil || info.Meta == nil {
		return "no JetStream cluster state yet"
	}
	// The other servers the cluster knows, less those it saw go away
	// (only the meta leader tracks whether each is current).
	online := 1 // this server
	for _, p := range info.Meta.Replicas {
		if !p.Offline {
			online++
		}
	}
	if online < replicas {
		return fmt.Sprintf("%d of the %d servers JetStream needs are online", online, replicas)
	}
	return ""
}

// jetStreamAnswers asks JetStream for the account's information and says
// what went wrong, "" when it answered.
func jetStreamAnswers(ctx context.Context, nc *nats.Conn) string {
	rctx, cancel := context.WithTimeout(ctx, jetStreamProbeTimeout)
	defer cancel()
	m, err := nc.RequestWithContext(rctx, jetStreamInfoSubject, nil)
	if err != nil {
		return "the JetStream API does not answer yet (" + err.Error() + ")"
	}
	var resp struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return "the JetStream API answered " + strconv.Quote(string(m.Data))
	}
	if resp.Error != nil {
		return "the JetStream API answered " + resp.Error.Description
	}
	return ""
}

// Shutdown stops the server and waits until every goroutine of it ended.
// It may be called more than once.
func (e *EmbeddedServer) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// serverLog hands nats-server's log lines to a slog.Logger and keeps its
// first fatal one, which StartServer reports.
type serverLog struct {
	log        *slog.Logger
	mu         sync.Mutex
	firstFatal string
}

func (l *serverLog) fatal() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.firstFatal
}

// Noticef: the server's notices (startup, routes) are chatty, so Debug.
func (l *serverLog) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLog) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *serverLog) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *serverLog) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLog) Tracef(format string, v ...any)  {}

// Fatalf: the server stops starting after a fatal error; the process is
// not ended here, StartServer reports it.
func (l *serverLog) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg)
	l.mu.Lock()
	if l.firstFatal == "" {
		l.firstFatal = msg
	}
	l.mu.Unlock()
}
