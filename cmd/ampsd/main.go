// Command ampsd runs an ampsbroker server on sensible defaults: AMPS over
// TCP on :9007 (raw and HTTP-preflight clients), and the WebSocket
// transport of the official JavaScript client on :9008.
//
//	go run ./cmd/ampsd
//	go run ./cmd/ampsd -tcp 127.0.0.1:9007 -unix /tmp/amps.sock -log-level debug
//	go run ./cmd/ampsd -config amps.xml
//	go run ./cmd/ampsd -check-config amps.xml
//	go run ./cmd/ampsd -sample-config > amps.xml
//	go run ./cmd/ampsd -pprof 127.0.0.1:6060   # runtime profiles under /debug/pprof/
//	go run ./cmd/ampsd -admin 127.0.0.1:8085   # the AMPS admin tree: /amps.json, /amps/instance/clients.json, ...
//
// With -config, a TransactionLog element opens the file journal in its
// JournalDirectory (recovering what is there) before any transport
// listens; the journal is closed after the broker has shut down.
//
// SIGINT or SIGTERM shut it down gracefully: listeners close, queued
// messages are flushed, then connections close. A second signal stops it at
// once.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ampsbroker/ampsbroker/admin"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/config"
	"github.com/ampsbroker/ampsbroker/internal/daemon"
	"github.com/ampsbroker/ampsbroker/listener"
	"github.com/ampsbroker/ampsbroker/transport"
)

// Defaults for the command-line flags.
const (
	// defaultTCPAddr listens on IPv4 and IPv6 (a port alone, as in AMPS).
	defaultTCPAddr = ":9007"
	// defaultWSAddr is the WebSocket transport for the JavaScript client.
	defaultWSAddr = ":9008"
	// shutdownTimeout bounds the graceful drain after a signal.
	shutdownTimeout = 10 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, stop, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "ampsd:", err)
		os.Exit(1)
	}
}

// flags are ampsd's command-line settings.
type flags struct {
	tcp, unix, ws   string
	tlsCert, tlsKey string
	onePort         bool
	logLevel        string
	pprof           string // -pprof: address of the profiling endpoint
	admin           string // -admin: address of the admin HTTP server
	adminOpen       bool   // -admin-open-actions

	configFile   string // -config
	checkConfig  string // -check-config
	sampleConfig bool   // -sample-config
}

// transportFlags are the flags that define what ampsd listens on: the
// transports, and the admin server (the file's Admin/InetAddr). They are
// refused together with -config.
var transportFlags = []string{"tcp", "unix", "ws", "tls-cert", "tls-key", "one-port", "admin"}

func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	fs := flag.NewFlagSet("ampsd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &flags{}
	fs.StringVar(&f.tcp, "tcp", defaultTCPAddr, "AMPS TCP transport address (AMPS InetAddr rules: a port alone listens on IPv4 and IPv6, 0.0.0.0:p IPv4 only, [::]:p IPv6 only); empty disables")
	fs.StringVar(&f.unix, "unix", "", "AMPS Unix domain socket path; empty disables")
	fs.StringVar(&f.ws, "ws", defaultWSAddr, "WebSocket transport address for the JavaScript client; empty disables")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate file: TLS on the TCP and WebSocket transports (needs -tls-key)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key file for -tls-cert")
	fs.BoolVar(&f.onePort, "one-port", false, "also accept WebSocket clients on the TCP port (raw AMPS, preflight and WebSocket on one port)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.pprof, "pprof", "", "serve Go's runtime profiles (net/http/pprof, under /debug/pprof/) on this address, e.g. 127.0.0.1:6060; empty disables")
	fs.StringVar(&f.admin, "admin", "", "serve the AMPS admin tree over HTTP (/amps.json, /amps/instance/clients.json, ..., actions under /amps/administrator) on this address, e.g. 127.0.0.1:8085 (AMPS InetAddr rules; bind it to loopback or a trusted network: statistics need no credentials); empty disables")
	fs.BoolVar(&f.adminOpen, "admin-open-actions", false, "let everyone who reaches the admin server run its actions (disconnect a client, disable or enable a transport, reset entitlements); by default they are refused with 403. Needs -admin, or Admin/InetAddr in -config")
	fs.StringVar(&f.configFile, "config", "", "AMPS-style XML configuration file; it defines the transports and the admin server, so -tcp, -unix, -ws, -tls-cert, -tls-key, -one-port and -admin given with it are an error (the file is the single source of truth; the flag defaults are not used)")
	fs.StringVar(&f.checkConfig, "check-config", "", "parse and validate this AMPS-style XML configuration file, print a summary and exit (status 1 if invalid)")
	fs.BoolVar(&f.sampleConfig, "sample-config", false, "print a commented sample configuration file and exit")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if f.configFile != "" {
		// Refuse rather than merge: a flag silently overriding or adding to
		// the file's transports would make the effective setup depend on
		// both places.
		if clash := daemon.Given(fs, transportFlags); len(clash) > 0 {
			return nil, fmt.Errorf("-config defines the transports and the admin server; remove %s", strings.Join(clash, ", "))
		}
	} else if f.adminOpen && f.admin == "" {
		return nil, errors.New("-admin-open-actions needs -admin: there is no admin server to open")
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return nil, errors.New("-tls-cert and -tls-key go together")
	}
	return f, nil
}

func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: %w", level, err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// openListeners opens the transports the flags ask for. On error it closes
// the ones already open.
func openListeners(f *flags) ([]transport.Listener, error) {
	var tlsConfig *tls.Config
	if f.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("loading -tls-cert %s and -tls-key %s: %w", f.tlsCert, f.tlsKey, err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	var ls []transport.Listener
	fail := func(err error) ([]transport.Listener, error) {
		closeListeners(ls)
		return nil, err
	}
	if f.tcp != "" {
		opts := &listener.TCPOptions{TLSConfig: tlsConfig}
		if f.onePort {
			opts.WebSocket = &listener.WebSocketOptions{}
		}
		l, err := listener.ListenTCP(f.tcp, opts)
		if err != nil {
			return fail(err)
		}
		ls = append(ls, l)
	}
	if f.ws != "" {
		l, err := listener.ListenWebSocket(f.ws, &listener.WebSocketOptions{TLSConfig: tlsConfig})
		if err != nil {
			return fail(err)
		}
		ls = append(ls, l)
	}
	if f.unix != "" {
		l, err := listener.ListenUnix(f.unix, nil)
		if err != nil {
			return fail(err)
		}
		ls = append(ls, l)
	}
	if len(ls) == 0 {
		return nil, errors.New("no transport enabled: set -tcp, -ws or -unix")
	}
	return ls, nil
}

// run starts the broker and serves until ctx is done. release is called
// when shutdown begins: main passes the signal context's stop, so that a
// second signal terminates the process.
func run(ctx context.Context, release func(), args []string, stdout, stderr io.Writer) error {
	f, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if f.sampleConfig {
		_, err := stdout.Write(config.Sample())
		return err
	}
	if f.checkConfig != "" {
		cfg, err := config.Load(f.checkConfig, nil)
		if err != nil {
			return err
		}
		fmt.Fprint(stdout, cfg.Summary())
		return nil
	}
	log, err := newLogger(f.logLevel, stderr)
	if err != nil {
		return err
	}
	if f.pprof != "" {
		stop, err := servePprof(f.pprof, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	if f.configFile != "" {
		return runConfig(ctx, release, f, log)
	}
	ls, err := openListeners(f)
	if err != nil {
		return err
	}
	var adm *daemon.AdminServer
	if f.admin != "" {
		adm, err = daemon.ListenAdmin("-admin", f.admin, nil, admin.Options{OpenActions: f.adminOpen})
		if err != nil {
			closeListeners(ls)
			return err
		}
	}
	return serve(ctx, release, log, broker.New(&broker.Options{Logger: log}), ls, adm)
}

// runConfig serves the configuration file f.configFile. With a
// TransactionLog the journal is opened (and recovered) first, before any
// transport listens, handed to the broker, and closed once the broker has
// shut down; a failure to close it is run's error.
func runConfig(ctx context.Context, release func(), f *flags, log *slog.Logger) (err error) {
	cfg, err := config.Load(f.configFile, nil)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		log.Warn("config", "problem", w.Error(), "code", string(w.Code))
	}
	if cfg.NATSCluster != nil {
		// Serving it as a single node would leave its clients out of the
		// cluster without a word.
		return fmt.Errorf("%s: NATSCluster makes this a node of a cluster over NATS, which ampsd does not join; run ampsd-cluster (natscluster/cmd/ampsd-cluster) with this file", f.configFile)
	}
	if f.adminOpen && (cfg.Admin == nil || cfg.Admin.InetAddr == "") {
		return fmt.Errorf("-admin-open-actions needs an admin server: %s has no Admin/InetAddr", f.configFile)
	}
	journal, err := cfg.OpenJournal(log)
	if err != nil {
		return err
	}
	if journal != nil {
		defer func() {
			if cerr := journal.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("closing the journal: %w", cerr))
			}
		}()
	}
	opts := cfg.BrokerOptions()
	opts.Logger = log
	opts.Journal = journal
	// ampsd never opens a disabled transport, so its overrides would
	// only make the broker warn that they name no served transport.
	for _, t := range cfg.Transports {
		if t.InitialState == config.StateDisabled {
			delete(opts.Transports, t.Name)
		}
	}
	// The broker rebuilds its journaled SOW topics before any transport
	// listens; a rebuild that could not read the journal to its end
	// would serve partial records, so ampsd refuses to start.
	b := broker.New(&opts)
	if err := b.RecoveryErr(); err != nil {
		b.Close()
		return fmt.Errorf("%s: %w", f.configFile, err)
	}
	ls, err := cfg.ListenAll()
	if err == nil && len(ls) == 0 {
		err = fmt.Errorf("%s: no enabled transport", f.configFile)
	}
	if err != nil {
		b.Close()
		return err
	}
	adm, err := daemon.AdminFromConfig(cfg, f.adminOpen)
	if err != nil {
		closeListeners(ls)
		b.Close()
		return err
	}
	return serve(ctx, release, log, b, ls, adm)
}

// closeListeners closes listeners opened before a later step failed.
func closeListeners(ls []transport.Listener) {
	for _, l := range ls {
		l.Close()
	}
}

// serve runs b on ls, and its admin tree on adm when not nil, until ctx is
// done or one of them fails; then it shuts them down, the admin server
// first.
func serve(ctx context.Context, release func(), log *slog.Logger, b *broker.Broker, ls []transport.Listener, adm *daemon.AdminServer) error {
	return daemon.Serve(ctx, log, b, ls, shutdownTimeout, daemon.Hooks{
		Started: func(_ []net.Addr, errc chan<- error) {
			if adm != nil {
				adm.Start(b, log, errc)
			}
		},
		Stopping: func(ctx context.Context) {
			release()
			if adm != nil {
				adm.Stop(ctx)
			}
		},
	})
}
