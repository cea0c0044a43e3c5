package natscluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// embedWait bounds each wait of the embedded-server tests.
const embedWait = 30 * time.Second

// TestStartServerStandalone: a zero-port stand-alone server serves JetStream
// to an in-process client, and Shutdown leaves no goroutine behind.
func TestStartServerStandalone(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), embedWait)
	defer cancel()
	es, err := StartServer(ctx, ServerConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(es.ClientURL(), "nats://127.0.0.1:") || strings.HasSuffix(es.ClientURL(), ":0") || es.ClusterAddr() != nil {
		t.Errorf("ClientURL %q, ClusterAddr %v; want a chosen loopback port and no route listener", es.ClientURL(), es.ClusterAddr())
	}
	if err := es.WaitJetStream(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := es.WaitJetStream(ctx, 3); err == nil || !strings.Contains(err.Error(), "stand-alone") {
		t.Errorf("WaitJetStream(3) on a stand-alone server: %v", err)
	}
	nc, err := nats.Connect(es.ClientURL(), nats.InProcessServer(es))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "s", []byte("x")); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	es.Shutdown()
	es.Shutdown() // a second call is harmless
	deadline := time.Now().Add(embedWait)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d before, %d after Shutdown\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStartServerCluster: three embedded servers routed to each other form
// one JetStream cluster that places a stream with three replicas.
func TestStartServerCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), embedWait)
	defer cancel()
	ports := make([]string, 3)
	for i := range ports {
		ports[i] = freeLoopback(t)
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, "nats-route://"+p)
	}
	var servers []*EmbeddedServer
	for i := range ports {
		es, err := StartServer(ctx, ServerConfig{
			Listen: "127.0.0.1:0", ClusterListen: ports[i], Routes: routes,
			ServerName: fmt.Sprintf("e%d", i+1), StoreDir: filepath.Join(t.TempDir(), "store"),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(es.Shutdown)
		servers = append(servers, es)
	}
	for _, es := range servers {
		if err := es.WaitJetStream(ctx, 3); err != nil {
			t.Fatal(err)
		}
	}
	nc, err := nats.Connect(servers[1].ClientURL(), nats.InProcessServer(servers[1]))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3"}, Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.CachedInfo().Cluster.Replicas) + 1; n != 3 {
		t.Errorf("stream on %d servers, want 3", n)
	}
}

// TestStartServerRefusals: the settings StartServer refuses, and a
// listener it cannot open, each named in the error.
func TestStartServerRefusals(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	ctx, cancel := context.WithTimeout(context.Background(), embedWait)
	defer cancel()
	dir := t.TempDir()
	for _, tc := range []struct {
		cfg  ServerConfig
		is   error
		want string
	}{
		{ServerConfig{Listen: "nohost"}, ErrServerConfig, `Listen "nohost"`},
		{ServerConfig{Listen: "127.0.0.1:99999"}, ErrServerConfig, `port "99999"`},
		{ServerConfig{ClusterListen: "x:y"}, ErrServerConfig, `ClusterListen "x:y"`},
		{ServerConfig{Routes: []string{"h:1"}}, ErrServerConfig, "need a ClusterListen"},
		{ServerConfig{ClusterListen: "127.0.0.1:0", Routes: []string{"http://h:1"}}, ErrServerConfig, `route "http://h:1"`},
		{ServerConfig{Listen: taken.Addr().String(), StoreDir: dir, ServerName: "t"}, ErrServerNotReady, taken.Addr().String()},
	} {
		es, err := StartServer(ctx, tc.cfg)
		if es != nil {
			es.Shutdown()
		}
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("StartServer(%+v): %v; want %v naming %q", tc.cfg, err, tc.is, tc.want)
		}
	}
}

// TestRouteURL: the forms of a route.
func TestRouteURL(t *testing.T) {
	for in, want := range map[string]string{
		"h:6222":               "nats-route://h:6222",
		"nats-route://h:6222":  "nats-route://h:6222",
		"nats://10.0.0.1:6222": "nats://10.0.0.1:6222",
	} {
		u, err := RouteURL(in)
		if err != nil || u.String() != want {
			t.Errorf("RouteURL(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	for _, bad := range []string{"", "h", "tls://h:1", "nats-route://:1", "h:"} {
		if _, err := RouteURL(bad); err == nil {
			t.Errorf("RouteURL(%q) accepted", bad)
		}
	}
}

// freeLoopback is a loopback host:port no one listens on at the moment.
func freeLoopback(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestServerOptionsDefaults: what a zero ServerConfig, and one with only
// a route listener, become.
func TestServerOptionsDefaults(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	o, err := serverOptions(ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if o.Host != "127.0.0.1" || o.Port != 4222 || o.ServerName != host+"-4222" || o.StoreDir != filepath.Join(DefaultServerStoreRoot, host+"-4222") ||
		!o.JetStream || o.Cluster.Port != 0 || len(o.Routes) != 0 {
		t.Errorf("zero ServerConfig: host %s port %d name %s store %s JetStream %v cluster %+v routes %v",
			o.Host, o.Port, o.ServerName, o.StoreDir, o.JetStream, o.Cluster, o.Routes)
	}
	o, err = serverOptions(ServerConfig{ClusterListen: ":6222", Routes: []string{"n2:6222"}})
	if err != nil {
		t.Fatal(err)
	}
	if o.Cluster.Name != DefaultServerClusterName || o.Cluster.Host != "0.0.0.0" || o.Cluster.Port != 6222 ||
		o.ServerName != host+"-6222" || len(o.Routes) != 1 || o.Routes[0].String() != "nats-route://n2:6222" {
		t.Errorf("clustered: cluster %+v name %s routes %v", o.Cluster, o.ServerName, o.Routes)
	}
}
