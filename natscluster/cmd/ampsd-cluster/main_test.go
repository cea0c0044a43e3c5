package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/internal/testcert"
	"github.com/ampsbroker/ampsbroker/natscluster/internal/natstest"
	"github.com/ampsbroker/ampsbroker/protocol"
	"github.com/nats-io/nats-server/v2/server"
)

// testWait bounds each wait of these tests.
const testWait = 10 * time.Second

// embedWait bounds a node's start with an embedded NATS server, which
// waits for the other nodes' servers to form a JetStream cluster.
const embedWait = 60 * time.Second

// startNode runs a node with args and returns its TCP address; the test's
// cleanup stops it and checks that it ended without error.
func startNode(t *testing.T, args ...string) string {
	t.Helper()
	addr, _ := launchNode(t, args...)
	return addr()
}

// launchNode runs a node with args; addr waits until it listens and
// returns its TCP address, stop stops it (at once, or by the test's
// cleanup) and checks that it ended without error.
func launchNode(t *testing.T, args ...string) (addr func() string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan []net.Addr, 1)
	done := make(chan error, 1)
	log := &ampstest.LogBuffer{}
	go func() { done <- run(ctx, args, log, func(a []net.Addr) { addrs <- a }) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("node %v ended with %v; log:\n%s", args, err, log)
				}
			case <-time.After(testWait):
				t.Errorf("node %v did not stop within %v", args, testWait)
			}
		})
	}
	t.Cleanup(stop)
	addr = func() string {
		t.Helper()
		select {
		case a := <-addrs:
			return a[0].String()
		case err := <-done:
			done <- err // for stop
			t.Fatalf("node %v: %v; log:\n%s", args, err, log)
		case <-time.After(embedWait):
			t.Fatalf("node %v did not listen within %v", args, embedWait)
		}
		return ""
	}
	return addr, stop
}

// TestTwoNodesOnNATS: a publish to a node started with -nats reaches a
// subscriber of another node on another NATS server.
func TestTwoNodesOnNATS(t *testing.T) {
	c := natstest.StartCluster(t, 2)
	adminAddr := ampstest.FreePort(t)
	a := startNode(t, "-nats", c.URL(0), "-tcp", "127.0.0.1:0", "-ws", "", "-name", "a", "-admin", adminAddr)
	// Node b takes its NATS settings from the file's NATSCluster element.
	file := filepath.Join(t.TempDir(), "b.xml")
	if err := os.WriteFile(file, []byte(`<AMPSConfig><Name>b</Name>
<Transports><Transport><Name>tcp</Name><Type>tcp</Type><InetAddr>127.0.0.1:0</InetAddr><Protocol>amps</Protocol></Transport></Transports>
<NATSCluster><URL>`+c.URL(1)+`</URL></NATSCluster>
</AMPSConfig>`), 0o600); err != nil {
		t.Fatal(err)
	}
	b := startNode(t, "-config", file)
	dial := func(addr, name string) *ampstest.Client {
		cl := ampstest.Dial(t, "tcp://"+addr+"/amps/json", &ampstest.DialOptions{Timeout: testWait})
		cl.Logon(name)
		return cl
	}
	sub := dial(b, "sub")
	sub.Subscribe("s", "orders")
	pub := dial(a, "pub")
	// The node on b subscribed to NATS before it listened, but the
	// interest may still be on its way to a's NATS server: publish until
	// one arrives.
	deadline := time.Now().Add(testWait)
	for {
		pub.Publish("orders", []byte(`{"n":1}`))
		m, err := sub.Conn.ReadWithin(20 * time.Millisecond)
		if err == nil {
			if m.Header.Command != protocol.CmdP || string(m.Body) != `{"n":1}` {
				t.Fatalf("subscriber got %s", m)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing crossed from node a to node b within %v", testWait)
		}
	}
	// Node a's admin server shows its cluster link.
	resp, err := http.Get("http://" + adminAddr + "/amps/instance/x_cluster.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The node comes wrapped in its ancestors.
	var tree struct {
		AMPS struct {
			Instance struct {
				Cluster map[string]string `json:"x_cluster"`
			} `json:"instance"`
		} `json:"amps"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tree); err != nil {
		t.Fatalf("x_cluster.json: %v", err)
	}
	cl := tree.AMPS.Instance.Cluster
	if cl["x_connected"] != "true" || cl["x_published"] == "" || cl["x_published"] == "0" {
		t.Errorf("node a's x_cluster = %v, want connected with publishes sent", cl)
	}
	// And its readiness: connected, nothing to catch up.
	ready, err := http.Get("http://" + adminAddr + "/amps/instance/x_ready")
	if err != nil {
		t.Fatal(err)
	}
	defer ready.Body.Close()
	if body, _ := io.ReadAll(ready.Body); ready.StatusCode != http.StatusOK || string(body) != "ready\n" {
		t.Errorf("node a's x_ready: %d %q; want 200 ready", ready.StatusCode, body)
	}
}

// TestFlagsAndConfigRefusals: what the command refuses before it starts.
func TestFlagsAndConfigRefusals(t *testing.T) {
	dir := t.TempDir()
	withLog := filepath.Join(dir, "txlog.xml")
	if err := os.WriteFile(withLog, []byte(`<AMPSConfig><Name>n</Name>
<Transports><Transport><Name>tcp</Name><Type>tcp</Type><InetAddr>127.0.0.1:0</InetAddr><Protocol>amps</Protocol></Transport></Transports>
<TransactionLog><JournalDirectory>`+dir+`</JournalDirectory><Topic><Name>.*</Name><MessageType>json</MessageType></Topic></TransactionLog>
</AMPSConfig>`), 0o600); err != nil {
		t.Fatal(err)
	}
	withSOW := filepath.Join(dir, "sow.xml")
	if err := os.WriteFile(withSOW, []byte(`<AMPSConfig><Name>n</Name>
<Transports><Transport><Name>tcp</Name><Type>tcp</Type><InetAddr>127.0.0.1:0</InetAddr><Protocol>amps</Protocol></Transport></Transports>
<TransactionLog><JournalDirectory>`+dir+`</JournalDirectory><Topic><Name>.*</Name><MessageType>json</MessageType></Topic></TransactionLog>
<SOW><Topic><Name>positions</Name><MessageType>json</MessageType><Key>/id</Key><Durability>transient</Durability></Topic></SOW>
</AMPSConfig>`), 0o600); err != nil {
		t.Fatal(err)
	}
	withCluster := filepath.Join(dir, "cluster.xml")
	if err := os.WriteFile(withCluster, []byte(`<AMPSConfig><Name>n</Name>
<Transports><Transport><Name>tcp</Name><Type>tcp</Type><InetAddr>127.0.0.1:0</InetAddr><Protocol>amps</Protocol></Transport></Transports>
<NATSCluster><URL>nats://127.0.0.1:1</URL></NATSCluster>
</AMPSConfig>`), 0o600); err != nil {
		t.Fatal(err)
	}
	c := natstest.StartCluster(t, 1)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-tcp", "127.0.0.1:0"}, "-nats is required"},
		{[]string{"-nats", "nats://127.0.0.1:1", "-config", withLog, "-tcp", ":1"}, "remove -tcp"},
		{[]string{"-config", withLog}, "-nats is required"},
		{[]string{"-nats", c.URL(0), "-nats-cert", "c.pem"}, "-nats-cert and -nats-key go together"},
		{[]string{"-nats", c.URL(0), "-nats-creds", filepath.Join(dir, "none.creds"), "-tcp", "127.0.0.1:0", "-ws", ""}, "none.creds"},
		{[]string{"-config", withCluster, "-nats", c.URL(0), "-prefix", "x"}, "remove -nats, -prefix"},
		{[]string{"-nats", "nats://127.0.0.1:1", "-prefix", "a b", "-tcp", "127.0.0.1:0", "-ws", ""}, "-nats"},
		{[]string{"-nats-embed-cluster", "127.0.0.1:0"}, "-nats-embed-cluster given without -nats-embed"},
		{[]string{"-nats-embed", "127.0.0.1:0", "-nats", c.URL(0), "-nats-creds", "x"}, "remove -nats, -nats-creds"},
		{[]string{"-config", withCluster, "-nats-embed", "127.0.0.1:0"}, "remove -nats-embed"},
		{[]string{"-nats-embed", "127.0.0.1:0", "-nats-embed-routes", "127.0.0.1:1", "-tcp", "127.0.0.1:0", "-ws", ""}, "need a ClusterListen"},
		{[]string{"-nats-embed", "127.0.0.1:0", "-nats-embed-store", filepath.Join(dir, "store"), "-journal", "-journal-replicas", "3", "-tcp", "127.0.0.1:0", "-ws", ""}, "stand-alone"},
	} {
		var log bytes.Buffer
		err := run(context.Background(), tc.args, &log, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run %v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

// TestSharedJournal: nodes started with -journal share one transaction
// log: what is published on node a is acknowledged persisted there and
// replayed by a bookmark subscription on node b.
func TestSharedJournal(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	a := startNode(t, "-nats", c.URL(0), "-tcp", "127.0.0.1:0", "-ws", "", "-journal", "-journal-replicas", "3")
	b := startNode(t, "-nats", c.URL(1), "-tcp", "127.0.0.1:0", "-ws", "", "-journal", "-journal-replicas", "3")
	pub := ampstest.Dial(t, "tcp://"+a+"/amps/json", &ampstest.DialOptions{Timeout: testWait})
	pub.Logon("pub")
	pub.Send(&protocol.Header{Command: protocol.CmdP, CommandID: "p1", Topic: "orders", AckType: protocol.AckPersisted, Sequence: 1}, []byte(`{"n":1}`))
	if m := pub.AwaitAck("p1", protocol.AckPersisted); m.Header.Status != protocol.StatusSuccess {
		t.Fatalf("persisted ack on node a: %s", m)
	}
	sub := ampstest.Dial(t, "tcp://"+b+"/amps/json", &ampstest.DialOptions{Timeout: testWait})
	sub.Logon("sub")
	sub.Send(&protocol.Header{Command: protocol.CmdSubscribe, CommandID: "r", SubID: "r", Topic: "orders", Bookmark: "0"}, nil)
	for {
		m := sub.Next()
		if m.Header.Command != protocol.CmdP {
			continue
		}
		if string(m.Body) != `{"n":1}` || m.Header.Bookmark == "" {
			t.Fatalf("node b replayed %s, want node a's publish with its bookmark", m)
		}
		return
	}
}

// TestTLSToNATS: a node reaches a NATS server that requires TLS with
// client certificates given -nats-ca, -nats-cert and -nats-key, and is
// refused without its certificate.
func TestTLSToNATS(t *testing.T) {
	is := testcert.NewIssuer(t)
	c := natstest.StartClusterWith(t, 1, func(o *server.Options) {
		cfg := is.ServerConfig(t)
		cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, is.Pool
		o.TLSConfig, o.TLS, o.TLSVerify = cfg, true, true
	})
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, is.PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, key := testcert.WritePEM(t, dir, "node.pem", "node.key", is.Client(t, "node"))
	url := strings.Replace(c.URL(0), "nats://", "tls://", 1)
	startNode(t, "-nats", url, "-nats-ca", ca, "-nats-cert", cert, "-nats-key", key, "-tcp", "127.0.0.1:0", "-ws", "")
	err := run(context.Background(), []string{"-nats", url, "-nats-ca", ca, "-tcp", "127.0.0.1:0", "-ws", ""}, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "-nats") {
		t.Errorf("without a client certificate: %v, want a refused connection", err)
	}
}

// TestSOWAcrossNodes: two nodes with one SOW topic from their files share
// its records: a publish on a is answered by a sow query on b.
func TestSOWAcrossNodes(t *testing.T) {
	c := natstest.StartCluster(t, 2)
	var addrs []string
	for i, name := range []string{"a", "b"} {
		file := filepath.Join(t.TempDir(), name+".xml")
		if err := os.WriteFile(file, []byte(`<AMPSConfig><Name>`+name+`</Name>
<Transports><Transport><Name>tcp</Name><Type>tcp</Type><InetAddr>127.0.0.1:0</InetAddr><Protocol>amps</Protocol></Transport></Transports>
<SOW><Topic><Name>positions</Name><MessageType>json</MessageType><Key>/id</Key><Durability>transient</Durability></Topic></SOW>
</AMPSConfig>`), 0o600); err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, startNode(t, "-nats", c.URL(i), "-config", file))
	}
	dial := func(addr, name string) *ampstest.Client {
		cl := ampstest.Dial(t, "tcp://"+addr+"/amps/json", &ampstest.DialOptions{Timeout: testWait})
		cl.Logon(name)
		return cl
	}
	pub := dial(addrs[0], "pub")
	pub.Send(&protocol.Header{Command: protocol.CmdPublish, CommandID: "p", Topic: "positions", AckType: protocol.AckPersisted}, []byte(`{"id":1,"qty":5}`))
	if a := pub.AwaitAck("p", protocol.AckPersisted); a.Header.Status != protocol.StatusSuccess {
		t.Fatalf("publish on a: %s", a)
	}
	awaitSOW(t, dial(addrs[1], "query"), `{"id":1,"qty":5}`)
}
