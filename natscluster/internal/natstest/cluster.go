// Package natstest starts NATS servers inside a test process: a JetStream
// cluster over loopback (or a single JetStream node), each node with its
// own store under the test's temporary directory, and a TCP proxy that can
// delay or pause one client's link for fault tests. Everything it starts is
// stopped by the test's cleanup.
package natstest

import (
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Defaults of the harness.
const (
	// ClusterName is the NATS cluster name of every test cluster.
	ClusterName = "ampsbroker-test"
	// ReadyTimeout bounds how long a node may take to accept clients.
	ReadyTimeout = 10 * time.Second
	// FormTimeout bounds how long the nodes may take to route to each
	// other and elect a JetStream meta leader.
	FormTimeout = 30 * time.Second
	// bindAttempts is how many times the nodes are started on fresh route
	// ports when one of them finds its port taken.
	bindAttempts = 3
	// bindTimeout bounds the wait for every node's route listener (it
	// listens a few milliseconds after Start when its port is free).
	bindTimeout = 2 * time.Second
	// pollInterval is how often the harness looks at the cluster's state
	// while waiting for it to form.
	pollInterval = 20 * time.Millisecond
)

// Cluster is a set of in-process nats-server nodes with JetStream.
type Cluster struct {
	Servers []*server.Server
	opts    []*server.Options // each node's options, its ports fixed once bound
	stores  string            // the directory of the nodes' stores
}

// StartCluster starts n nodes (n >= 1) on loopback with JetStream (each
// with its own store under the test's temporary directory), routes
// them into one cluster (for n > 1), waits until a JetStream meta leader is
// elected and registers their shutdown with t.Cleanup. Client ports are
// chosen by the kernel; route ports are picked free beforehand, since a
// clustered JetStream node must be configured with its routes.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartClusterWith(t, n, nil)
}

// StartClusterWith is StartCluster with configure applied to each node's
// options before it starts (nil for none), for example to make JetStream
// sync every write (SyncAlways).
func StartClusterWith(t testing.TB, n int, configure func(*server.Options)) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("natstest: a cluster of %d nodes", n)
	}
	// The stores' directory is made before the shutdown is registered, so
	// that its removal (registered with it) runs after the nodes stopped
	// writing into it: cleanups run last registered first.
	c := &Cluster{stores: t.TempDir()}
	t.Cleanup(c.Shutdown)
	// A route port picked free can be taken by another process before the
	// node binds it; the node then has no route listener, and the nodes
	// start again on other ports.
	for attempt := 1; !c.start(t, n, configure); attempt++ {
		if attempt == bindAttempts {
			t.Fatalf("natstest: %d tries to bind the route ports of %d nodes failed", attempt, n)
		}
	}
	// A clustered node reports ready only once JetStream has its peers, so
	// readiness is awaited after all have started.
	for _, s := range c.Servers {
		if !s.ReadyForConnections(ReadyTimeout) {
			t.Fatalf("natstest: server %s not ready within %v", s.Name(), ReadyTimeout)
		}
	}
	for i, s := range c.Servers {
		// A restarted node comes back on the same client port, where its
		// clients reconnect.
		c.opts[i].Port = s.Addr().(*net.TCPAddr).Port
	}
	c.waitFormed(t)
	return c
}

// start starts n nodes on fresh ports; false (all stopped again) when a
// node could not bind its route port.
func (c *Cluster) start(t testing.TB, n int, configure func(*server.Options)) bool {
	t.Helper()
	c.Shutdown()
	c.Servers, c.opts = nil, nil
	var routes string
	ports := make([]int, n)
	if n > 1 {
		for i := range ports {
			ports[i] = pickPort(t)
			if i > 0 {
				routes += ","
			}
			routes += fmt.Sprintf("nats-route://127.0.0.1:%d", ports[i])
		}
	}
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			NoLog:      true,
			NoSigs:     true,
			JetStream:  true,
			StoreDir:   storeDir(t, c.stores),
		}
		if n > 1 {
			opts.Cluster = server.ClusterOpts{Name: ClusterName, Host: "127.0.0.1", Port: ports[i]}
			opts.Routes = server.RoutesFromStr(routes)
		}
		if configure != nil {
			configure(opts)
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("natstest: new server %s: %v", opts.ServerName, err)
		}
		s.Start()
		c.Servers = append(c.Servers, s)
		c.opts = append(c.opts, opts)
	}
	if n == 1 {
		return true
	}
	deadline := time.Now().Add(bindTimeout)
	for _, s := range c.Servers {
		for s.ClusterAddr() == nil {
			if time.Now().After(deadline) {
				c.Shutdown()
				return false
			}
			time.Sleep(pollInterval)
		}
	}
	return true
}

// Stop shuts node i down (its store stays) and waits until it has.
func (c *Cluster) Stop(i int) {
	c.Servers[i].Shutdown()
	c.Servers[i].WaitForShutdown()
}

// Restart starts node i again, a stopped one, with its options and store,
// and waits until the cluster has formed again with it.
func (c *Cluster) Restart(t testing.TB, i int) {
	t.Helper()
	if c.Servers[i].Running() {
		t.Fatalf("natstest: restart of node %s, which runs", c.Servers[i].Name())
	}
	s, err := server.NewServer(c.opts[i])
	if err != nil {
		t.Fatalf("natstest: new server %s: %v", c.opts[i].ServerName, err)
	}
	s.Start()
	c.Servers[i] = s
	if !s.ReadyForConnections(ReadyTimeout) {
		t.Fatalf("natstest: server %s not ready within %v after restart", s.Name(), ReadyTimeout)
	}
	c.waitFormed(t)
}

// storeDir makes a new directory for one node's store under dir.
func storeDir(t testing.TB, dir string) string {
	t.Helper()
	d, err := os.MkdirTemp(dir, "node")
	if err != nil {
		t.Fatalf("natstest: store directory: %v", err)
	}
	return d
}

// pickPort picks a route port; a test replaces it to hand out a taken one.
var pickPort = freePort

// freePort is a loopback TCP port no one listens on at the moment.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("natstest: listen: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitFormed waits until every node routes to every other, one of them is
// the JetStream meta leader that every node follows, and the leader counts
// every node as an online peer (before that it refuses to place a stream
// on all of them).
func (c *Cluster) waitFormed(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(FormTimeout)
	for {
		if c.formed() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("natstest: %d-node cluster did not form (routes and a JetStream meta leader) within %v", len(c.Servers), FormTimeout)
		}
		time.Sleep(pollInterval)
	}
}

func (c *Cluster) formed() bool {
	if len(c.Servers) == 1 {
		return c.Servers[0].JetStreamEnabled()
	}
	var leader *server.Server
	for _, s := range c.Servers {
		if !s.Running() || s.NumRoutes() < len(c.Servers)-1 || !s.JetStreamIsCurrent() {
			return false
		}
		if s.JetStreamIsLeader() {
			leader = s
		}
	}
	// The leader places streams only on peers it knows online.
	return leader != nil && len(leader.JetStreamClusterPeers()) == len(c.Servers)
}

// URL is the client URL of node i.
func (c *Cluster) URL(i int) string { return c.Servers[i].ClientURL() }

// URLs is every node's client URL, comma separated (nats.Connect's form).
func (c *Cluster) URLs() string {
	var s string
	for i := range c.Servers {
		if i > 0 {
			s += ","
		}
		s += c.URL(i)
	}
	return s
}

// Connect connects a client to url and closes it at the test's end.
func Connect(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("natstest: connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Shutdown stops every node and waits for each to finish.
func (c *Cluster) Shutdown() {
	for _, s := range c.Servers {
		s.Shutdown()
	}
	for _, s := range c.Servers {
		s.WaitForShutdown()
	}
}
