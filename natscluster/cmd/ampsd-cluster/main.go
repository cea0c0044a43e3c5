// Command ampsd-cluster runs an ampsbroker node that joins a cluster over
// NATS: publishes its clients make to topics without SOW reach the
// subscribers of every node, and theirs reach its clients (see package
// natscluster). It is ampsd with -nats; it lives in the natscluster module
// because the core module (and so cmd/ampsd) never depends on NATS.
//
//	go run ./cmd/ampsd-cluster -nats nats://127.0.0.1:4222 -tcp :9007 -ws :9008
//	go run ./cmd/ampsd-cluster -nats nats://n1:4222,nats://n2:4222 -config amps.xml
//	go run ./cmd/ampsd-cluster -nats nats://127.0.0.1:4222 -journal -journal-replicas 3
//	go run ./cmd/ampsd-cluster -config node.xml   # with a NATSCluster element
//	go run ./cmd/ampsd-cluster -nats-embed 127.0.0.1:4222 -nats-embed-cluster :6222 \
//	    -nats-embed-routes n2:6222,n3:6222 -nats-embed-store /var/lib/ampsd/nats
//
// The NATS settings come from the flags or, with -config, from the file's
// NATSCluster element (see config.NATSCluster), never from both.
//
// Embedded NATS server. With -nats-embed (or an Embedded child of the
// NATSCluster element) the node runs a nats-server with JetStream itself
// (natscluster.StartServer) and connects to it in-process, instead of
// -nats: three nodes, each with -nats-embed-cluster and the others'
// route listeners in -nats-embed-routes, are a NATS cluster and a broker
// cluster in three processes of one binary. -nats-embed is the address
// of the server's client listener for other NATS clients (port 0: any),
// -nats-embed-cluster its route listener, -nats-embed-name its name in
// the cluster (unique, stable across restarts; default the host name and
// the route port), -nats-embed-store its JetStream store (default
// nats-store/<name> in the working directory). With a transaction log
// or SOW topics, a node waits (at most embedFormTimeout) until the
// cluster has a JetStream leader and as many servers online as the
// streams' replicas, so the nodes of a cluster are started together. The
// -nats-ca, -nats-cert, -nats-key and -nats-creds flags secure a link to
// remote servers and do not go with it; what else the server needs (TLS
// on routes, accounts) is for the Go API (natscluster.ServerConfig).
//
// Every node of one cluster uses the same NATS cluster and -prefix.
//
// Transaction log. With -journal, or a TransactionLog in -config (whose
// Topic entries then say what is journaled; its directory and file
// settings are not used), the nodes share one transaction log on a
// JetStream stream (natscluster.Journal): a bookmark subscription on any
// node replays what every node journaled, and "persisted" acks wait for
// JetStream to hold the entry with -journal-replicas copies. Every node
// of such a cluster must have the same instance name (bookmarks carry
// it).
//
// SOW topics. The SOW topics of -config are ordered across the nodes on a
// JetStream stream (-sow-stream, with -sow-replicas copies; see
// natscluster.OrderedBackplane): publish, delta_publish and sow_delete are
// applied on every node in one order per topic, and a node applies what
// the stream holds before it serves. Every node must define the same SOW
// topics. With a transaction log as well, a SOW publish is journaled once,
// as merged, by the node that accepted it, when it applies it; the SOW
// topics come from the order at start, not from the journal.
//
// Readiness. -admin (or the file's Admin element) also serves
// /amps/instance/x_ready: 200 once the node is connected to NATS and has
// applied what the SOW stream held when it started, 503 with the reason
// otherwise (see broker.Broker.Ready), for a load balancer's or an
// orchestrator's readiness probe. The admin server starts once the node
// caught up or its catch-up timeout passed, so a probe gets no answer
// before that.
//
// SIGINT or SIGTERM shut the node down gracefully; the NATS link is closed
// after the broker.
package main

import (
	"cmp"
	"context"
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
	"github.com/ampsbroker/ampsbroker/natscluster"
	"github.com/ampsbroker/ampsbroker/transport"
	"github.com/nats-io/nats.go"
)

// Defaults of the flags and of the node's run.
const (
	// defaultTCPAddr and defaultWSAddr are ampsd's: AMPS over TCP, and
	// the WebSocket transport of the JavaScript client.
	defaultTCPAddr = ":9007"
	defaultWSAddr  = ":9008"
	// shutdownTimeout bounds the graceful drain after a signal.
	shutdownTimeout = 10 * time.Second
	// reconnectWait is the pause between tries to reach NATS again after
	// the link was lost; the node tries for as long as it runs.
	reconnectWait = 500 * time.Millisecond
	// defaultSOWReplicas is one copy, which works on any NATS cluster;
	// three on a three-node cluster survive the loss of a node.
	defaultSOWReplicas = 1
	// embedFormTimeout bounds the wait of a node with an embedded NATS
	// server for the JetStream cluster to form (the other nodes to start)
	// before it creates its streams.
	embedFormTimeout = 2 * time.Minute
	// streamOpenTimeout bounds the opening of the journal or the SOW
	// stream (natscluster tries again in short attempts meanwhile: nodes
	// started together race to create them while the cluster forms).
	streamOpenTimeout = 15 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "ampsd-cluster:", err)
		os.Exit(1)
	}
}

// flags are the command-line settings.
type flags struct {
	nats, prefix, nodeID string
	// The NATS link's security: trusted CA file, client certificate and
	// key files, credentials file (JWT and seed).
	natsCA, natsCert, natsKey, natsCreds string
	journal                              bool
	journalStream                        string
	journalReplicas                      int
	sowStream                            string
	sowReplicas                          int
	tcp, ws                              string
	name, logLevel                       string
	configFile                           string
	admin                                string // -admin: the admin server's address
	// cfg is the -config file, once loaded.
	cfg *config.Config
	// natsGiven lists the NATS flags given on the command line, which a
	// NATSCluster element in -config must not meet.
	natsGiven []string
	// embed is the node's own NATS server, when embedded is set (by
	// -nats-embed or the file's Embedded element).
	embedded bool
	embed    natscluster.ServerConfig
}

// fileFlags are the flags -config replaces (the file defines the
// transports and the instance name).
var fileFlags = []string{"tcp", "ws", "name", "admin"}

// natsFlags are the flags a NATSCluster element in -config replaces.
var natsFlags = append([]string{"nats", "prefix", "node-id", "journal-stream", "journal-replicas", "nats-ca", "nats-cert", "nats-key", "nats-creds"}, embedFlags...)

// embedFlags are the flags of the embedded NATS server; all but
// -nats-embed itself need it.
var embedFlags = []string{"nats-embed", "nats-embed-cluster", "nats-embed-routes", "nats-embed-cluster-name", "nats-embed-name", "nats-embed-store"}

// remoteFlags are the flags of a link to remote NATS servers, which an
// embedded server replaces.
var remoteFlags = []string{"nats", "nats-ca", "nats-cert", "nats-key", "nats-creds"}

func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	fs := flag.NewFlagSet("ampsd-cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &flags{}
	fs.StringVar(&f.nats, "nats", "", "NATS server URL(s) of the cluster, comma separated, tried in this order (nearest first), e.g. nats://127.0.0.1:4222; required unless -nats-embed is given or -config has a NATSCluster element")
	var embedListen, embedRoutes string
	fs.StringVar(&embedListen, "nats-embed", "", "run a NATS server with JetStream inside the node, its client listener on this host:port (port 0: any), instead of -nats; the node connects to it in-process")
	fs.StringVar(&f.embed.ClusterListen, "nats-embed-cluster", "", "route listener host:port of the embedded NATS server, which the other nodes' servers connect to; empty: a stand-alone server")
	fs.StringVar(&embedRoutes, "nats-embed-routes", "", "route listeners of the other nodes' embedded servers, comma separated, nats-route://host:port or host:port (this node's own may be listed)")
	fs.StringVar(&f.embed.ClusterName, "nats-embed-cluster-name", natscluster.DefaultServerClusterName, "NATS cluster name of the embedded servers, the same on every node")
	fs.StringVar(&f.embed.ServerName, "nats-embed-name", "", "name of the embedded server in the cluster, unique and stable across restarts; default: host name and route port")
	fs.StringVar(&f.embed.StoreDir, "nats-embed-store", "", "JetStream store directory of the embedded server; default: "+natscluster.DefaultServerStoreRoot+"/<name>")
	fs.StringVar(&f.prefix, "prefix", natscluster.DefaultBackplanePrefix, "subject prefix of the cluster's publishes; every node of a cluster uses the same")
	fs.StringVar(&f.nodeID, "node-id", "", "id of this node's publishes on NATS; default: a fresh unique id")
	fs.StringVar(&f.natsCA, "nats-ca", "", "PEM file of the authorities that issued the NATS servers' certificates (TLS to NATS)")
	fs.StringVar(&f.natsCert, "nats-cert", "", "PEM client certificate file for NATS servers that verify clients (needs -nats-key)")
	fs.StringVar(&f.natsKey, "nats-key", "", "PEM private key file of -nats-cert")
	fs.StringVar(&f.natsCreds, "nats-creds", "", "NATS credentials file (user JWT and seed)")
	fs.BoolVar(&f.journal, "journal", false, "keep a transaction log on JetStream, shared by the nodes (every topic outside /AMPS is journaled; with -config, a TransactionLog does the same for its topics); every node must have the same -name")
	fs.StringVar(&f.journalStream, "journal-stream", natscluster.DefaultJournalStream, "JetStream stream of the shared transaction log")
	fs.IntVar(&f.journalReplicas, "journal-replicas", natscluster.DefaultJournalReplicas, "copies JetStream keeps of each journal entry before a persisted ack (at most the NATS cluster's size)")
	fs.StringVar(&f.sowStream, "sow-stream", natscluster.DefaultSOWStream, "JetStream stream that orders the SOW topics' publishes across the nodes (SOW topics without a transaction log)")
	fs.IntVar(&f.sowReplicas, "sow-replicas", defaultSOWReplicas, "copies JetStream keeps of each SOW publish before a persisted ack (at most the NATS cluster's size)")
	fs.StringVar(&f.tcp, "tcp", defaultTCPAddr, "AMPS TCP transport address; empty disables")
	fs.StringVar(&f.ws, "ws", defaultWSAddr, "WebSocket transport address for the JavaScript client; empty disables")
	fs.StringVar(&f.name, "name", broker.DefaultName, "instance name (AMPS_INSTANCE_NAME())")
	fs.StringVar(&f.admin, "admin", "", "serve the AMPS admin tree over HTTP on this address (its actions are refused), e.g. 127.0.0.1:8085; empty disables")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.configFile, "config", "", "AMPS-style XML configuration file (transports, name, SOW topics, security, TransactionLog, and the NATSCluster element of our own); -tcp, -ws, -name and -admin given with it are an error, and so are the NATS flags when it has a NATSCluster element")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if (f.natsCert == "") != (f.natsKey == "") {
		return nil, errors.New("-nats-cert and -nats-key go together")
	}
	f.natsGiven = daemon.Given(fs, natsFlags)
	if embedGiven := daemon.Given(fs, embedFlags); len(embedGiven) > 0 {
		if embedListen == "" {
			return nil, fmt.Errorf("%s given without -nats-embed, the embedded server's client listener", strings.Join(embedGiven, ", "))
		}
		if clash := daemon.Given(fs, remoteFlags); len(clash) > 0 {
			return nil, fmt.Errorf("-nats-embed runs the node's own NATS server; remove %s", strings.Join(clash, ", "))
		}
		f.embedded, f.embed.Listen = true, embedListen
		if embedRoutes != "" {
			f.embed.Routes = strings.Split(embedRoutes, ",")
		}
	}
	if f.nats == "" && !f.embedded && f.configFile == "" {
		return nil, errors.New("-nats is required: the NATS URL(s) of the cluster (or -nats-embed)")
	}
	if f.configFile != "" {
		if clash := daemon.Given(fs, fileFlags); len(clash) > 0 {
			return nil, fmt.Errorf("-config defines the transports and the name; remove %s", strings.Join(clash, ", "))
		}
	}
	return f, nil
}

// run serves a node until ctx is done. ready, when not nil, is told the
// addresses the node listens on once it serves them.
func run(ctx context.Context, args []string, stderr io.Writer, ready func([]net.Addr)) (err error) {
	f, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("-log-level %q: %w", f.logLevel, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	opts, ls, err := setup(f, log)
	if err != nil {
		return err
	}
	nopts := natsOptions(f, opts.Name, log)
	if f.embedded {
		es, err := startEmbedded(ctx, f, len(opts.SOWTopics) > 0, log)
		if err != nil {
			closeListeners(ls)
			return err
		}
		// Deferred first, so it stops after everything that uses it.
		defer es.Shutdown()
		f.nats, nopts = es.ClientURL(), append(nopts, nats.InProcessServer(es))
	}
	nc, err := nats.Connect(f.nats, nopts...)
	if err != nil {
		closeListeners(ls)
		return fmt.Errorf("-nats %s: %w", f.nats, err)
	}
	defer nc.Close()
	bp, err := natscluster.NewBackplane(nc, natscluster.BackplaneConfig{Prefix: f.prefix, NodeID: f.nodeID, Logger: log})
	if err != nil {
		closeListeners(ls)
		return fmt.Errorf("-prefix %q: %w", f.prefix, err)
	}
	defer func() {
		if cerr := bp.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing the backplane: %w", cerr))
		}
	}()
	if f.journal {
		octx, cancel := context.WithTimeout(ctx, streamOpenTimeout)
		j, jerr := natscluster.OpenJournal(octx, nc, natscluster.JournalConfig{Stream: f.journalStream, Replicas: f.journalReplicas, Logger: log})
		cancel()
		if jerr != nil {
			closeListeners(ls)
			return jerr
		}
		defer func() {
			if cerr := j.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("closing the journal: %w", cerr))
			}
		}()
		opts.Journal = j
	}
	opts.Logger, opts.Backplane = log, bp
	if len(opts.SOWTopics) > 0 {
		octx, cancel := context.WithTimeout(ctx, streamOpenTimeout)
		obp, serr := natscluster.NewOrderedBackplane(octx, bp, natscluster.SOWConfig{Stream: f.sowStream, Replicas: f.sowReplicas})
		cancel()
		if serr != nil {
			closeListeners(ls)
			return serr
		}
		defer func() {
			if cerr := obp.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("closing the SOW order: %w", cerr))
			}
		}()
		opts.Backplane = obp
	}
	b := broker.New(&opts)
	if st := b.Stats().Cluster; st.StartErr != nil || (len(opts.SOWTopics) > 0 && !st.SOWOrdered) {
		closeListeners(ls)
		b.Close()
		return cmp.Or(st.StartErr, errors.New("the SOW topics' order across the nodes did not start (see the log)"))
	}
	if err := b.RecoveryErr(); err != nil {
		closeListeners(ls)
		b.Close()
		return err
	}
	adm, err := openAdmin(f)
	if err != nil {
		closeListeners(ls)
		b.Close()
		return err
	}
	log.Info("joined the cluster", "nats", nc.ConnectedUrl(), "prefix", f.prefix, "journal", f.journal)
	return daemon.Serve(ctx, log, b, ls, shutdownTimeout, daemon.Hooks{
		Started: func(addrs []net.Addr, errc chan<- error) {
			if adm != nil {
				adm.Start(b, log, errc)
			}
			if ready != nil {
				ready(addrs)
			}
		},
		Stopping: func(ctx context.Context) {
			if adm != nil {
				adm.Stop(ctx)
			}
		},
	})
}

// startEmbedded starts the node's own NATS server and, when the node
// keeps streams (a transaction log, or SOW topics when withSOW), waits
// until JetStream can place them with their replicas.
func startEmbedded(ctx context.Context, f *flags, withSOW bool, log *slog.Logger) (*natscluster.EmbeddedServer, error) {
	cfg := f.embed
	cfg.Logger = log
	es, err := natscluster.StartServer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	replicas := 0
	if f.journal {
		replicas = f.journalReplicas
	}
	if withSOW {
		replicas = max(replicas, f.sowReplicas)
	}
	if replicas > 0 {
		log.Info("embedded NATS server: waiting for the JetStream cluster", "server", es.Name(), "replicas", replicas, "timeout", embedFormTimeout)
		wctx, cancel := context.WithTimeout(ctx, embedFormTimeout)
		err = es.WaitJetStream(wctx, replicas)
		cancel()
		if err != nil {
			es.Shutdown()
			return nil, err
		}
	}
	log.Info("embedded NATS server running", "server", es.Name(), "clients", es.ClientURL(), "routes", es.ClusterAddr())
	return es, nil
}

// openAdmin opens the admin server of the file's Admin element, or of
// -admin; nil when neither asks for one. Its actions stay refused unless
// the Admin element's own modules allow them.
func openAdmin(f *flags) (*daemon.AdminServer, error) {
	if f.cfg != nil {
		return daemon.AdminFromConfig(f.cfg, false)
	}
	if f.admin == "" {
		return nil, nil
	}
	return daemon.ListenAdmin("-admin", f.admin, nil, admin.Options{})
}

// natsOptions are the NATS connection's options: no echo of its own
// publishes, the servers tried in the order given (a node lists its
// nearest first), reconnecting for as long as the node runs, and the
// link's security from the flags.
func natsOptions(f *flags, name string, log *slog.Logger) []nats.Option {
	o := []nats.Option{nats.NoEcho(), nats.Name("ampsd-cluster " + name), nats.DontRandomize(),
		nats.MaxReconnects(-1), nats.ReconnectWait(reconnectWait),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("NATS link lost; reconnecting", "err", err) }),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("NATS link back", "server", c.ConnectedUrl()) })}
	if f.natsCA != "" {
		o = append(o, nats.RootCAs(f.natsCA))
	}
	if f.natsCert != "" {
		o = append(o, nats.ClientCert(f.natsCert, f.natsKey))
	}
	if f.natsCreds != "" {
		o = append(o, nats.UserCredentials(f.natsCreds))
	}
	return o
}

// setup is the broker's options and listeners, from -config or from the
// flags.
func setup(f *flags, log *slog.Logger) (broker.Options, []transport.Listener, error) {
	if f.configFile == "" {
		ls, err := openListeners(f)
		return broker.Options{Name: f.name}, ls, err
	}
	cfg, err := config.Load(f.configFile, nil)
	if err != nil {
		return broker.Options{}, nil, err
	}
	if n := cfg.NATSCluster; n != nil {
		if len(f.natsGiven) > 0 {
			return broker.Options{}, nil, fmt.Errorf("%s has a NATSCluster element; remove %s", f.configFile, strings.Join(f.natsGiven, ", "))
		}
		f.nats = strings.Join(n.URLs, ",")
		f.prefix = cmp.Or(n.Prefix, f.prefix)
		f.nodeID = n.NodeID
		f.natsCA, f.natsCert, f.natsKey, f.natsCreds = n.CAFile, n.Certificate, n.PrivateKey, n.Credentials
		f.journalStream = cmp.Or(n.JournalStream, f.journalStream)
		f.journalReplicas = cmp.Or(n.JournalReplicas, f.journalReplicas)
		if e := n.Embedded; e != nil {
			f.embedded = true
			f.embed = natscluster.ServerConfig{Listen: e.Listen, ClusterListen: e.ClusterListen, Routes: e.Routes,
				ClusterName: e.ClusterName, ServerName: e.ServerName, StoreDir: e.StoreDirectory}
		}
	} else if f.nats == "" && !f.embedded {
		return broker.Options{}, nil, fmt.Errorf("-nats is required: %s has no NATSCluster element", f.configFile)
	}
	if cfg.TransactionLog != nil {
		// The shared journal replaces the file journal; the file's Topic
		// entries still say what is journaled (BrokerOptions).
		f.journal = true
		log.Info("TransactionLog: the nodes share a transaction log on JetStream; its directory and file settings are not used", "stream", f.journalStream)
	}
	for _, w := range cfg.Warnings {
		log.Warn("config", "problem", w.Error(), "code", string(w.Code))
	}
	f.cfg = cfg
	opts := cfg.BrokerOptions()
	for _, t := range cfg.Transports {
		if t.InitialState == config.StateDisabled {
			delete(opts.Transports, t.Name)
		}
	}
	ls, err := cfg.ListenAll()
	if err == nil && len(ls) == 0 {
		err = fmt.Errorf("%s: no enabled transport", f.configFile)
	}
	return opts, ls, err
}

// openListeners opens the transports of -tcp and -ws.
func openListeners(f *flags) ([]transport.Listener, error) {
	var ls []transport.Listener
	if f.tcp != "" {
		l, err := listener.ListenTCP(f.tcp, nil)
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
	}
	if f.ws != "" {
		l, err := listener.ListenWebSocket(f.ws, nil)
		if err != nil {
			closeListeners(ls)
			return nil, err
		}
		ls = append(ls, l)
	}
	if len(ls) == 0 {
		return nil, errors.New("no transport enabled: set -tcp or -ws")
	}
	return ls, nil
}

func closeListeners(ls []transport.Listener) {
	for _, l := range ls {
		l.Close()
	}
}
