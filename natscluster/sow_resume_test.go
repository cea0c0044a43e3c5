package natscluster

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/natscluster/internal/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// consumerHost is the index in c of the NATS server that holds the SOW
// stream's only consumer (the one node of the test that applies).
func consumerHost(t *testing.T, c *natstest.Cluster, stream string) int {
	t.Helper()
	js, err := jetstream.New(natstest.Connect(t, c.URLs()))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(readyWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), readyWait)
		var hosts []string
		s, err := js.Stream(ctx, stream)
		if err == nil {
			lister := s.ListConsumers(ctx)
			for ci := range lister.Info() {
				if ci.Cluster != nil {
					hosts = append(hosts, ci.Cluster.Leader)
				}
			}
			err = lister.Err()
		}
		cancel()
		if err == nil && len(hosts) == 1 {
			for i, srv := range c.Servers {
				if srv.Name() == hosts[0] {
					return i
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s: consumers on %v (err %v); want one on a server of the cluster", stream, hosts, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// resumeBound is how long after the stream takes publishes again a
// node must have applied them, in TestSOWApplyResumesAfterNATSNodeLoss:
// generous for a loaded machine (the node resumes within about 0.3 s of
// the loss), yet below the about 11 s nats.go's ordered consumer paused
// for when its server was the JetStream meta leader.
const resumeBound = 4 * time.Second

// TestSOWApplyResumesAfterNATSNodeLoss: a node applies the SOW stream
// (R3), which another node (that never applies) fills; the NATS server
// that the applying node is connected to, that holds its consumer and is
// the JetStream meta leader stops (the worst case: the node, reconnected,
// finds its consumer gone at once and asks for another while the meta
// leader is still leaving, a request nobody answers). The other node then
// orders publishes until JetStream acks one: the applying node applies it
// within resumeBound of that ack, and every stream sequence once and in
// order.
func TestSOWApplyResumesAfterNATSNodeLoss(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	reconnect := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}
	var last atomic.Uint64 // the last stream sequence the node applied
	var disorder atomic.Int64
	apply := func(rp *broker.RemotePublish) {
		if last.Swap(rp.Ordinal) >= rp.Ordinal {
			disorder.Add(1)
		}
	}
	// The meta leader gets the consumer of one stream in three (a
	// consumer's server is picked at random): a fresh stream per try.
	const tries = 30
	var cfg SOWConfig
	host := -1
	for try := 0; host < 0; try++ {
		if try == tries {
			t.Fatalf("no consumer of %d streams placed on the JetStream meta leader", tries)
		}
		cfg = SOWConfig{Stream: fmt.Sprintf("RESUME%d", try), Prefix: fmt.Sprintf("resume%d", try), Replicas: 3, AckTimeout: time.Second}
		leader := metaLeader(t, c)
		node := newOrdered(t, urlsFrom(c, leader), "node", cfg, append(reconnect, nats.DontRandomize())...)
		if err := node.StartOrdered(apply); err != nil {
			t.Fatal(err)
		}
		if consumerHost(t, c, cfg.Stream) == leader && c.Servers[leader].JetStreamIsLeader() {
			host = leader
			break
		}
		if err := node.Close(); err != nil {
			t.Fatal(err)
		}
	}
	pub := newOrdered(t, c.URLs(), "pub", cfg, reconnect...)
	orderN(t, pub, 0, 10)
	awaitSeq(t, &last, pub.last.Load())
	stopped := time.Now()
	c.Stop(host)
	acked := make(chan error, 1)
	for i := 10; ; i++ {
		rp := broker.RemotePublish{MessageType: "json", Topic: "positions", ClientName: "pub", Body: fmt.Appendf(nil, `{"id":%d,"n":%d}`, i%10, i)}
		if err := pub.Order(&rp, func(err error) { acked <- err }); err != nil {
			t.Fatal(err)
		}
		if err := <-acked; err == nil {
			break
		}
		if time.Since(stopped) > testTimeout {
			t.Fatalf("no ordered publish acked within %v of the NATS node's stop", testTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	published := time.Since(stopped)
	awaitSeq(t, &last, pub.last.Load())
	applied := time.Since(stopped) - published
	t.Logf("the stream took publishes again %v after the stop, the node applied them %v later", published, applied)
	if applied > resumeBound {
		t.Errorf("the node applied %v after the stream took publishes again; want within %v", applied, resumeBound)
	}
	if n := disorder.Load(); n != 0 {
		t.Errorf("%d stream sequences applied out of order or twice", n)
	}
}

// metaLeader is the index in c of the JetStream meta leader.
func metaLeader(t *testing.T, c *natstest.Cluster) int {
	t.Helper()
	deadline := time.Now().Add(readyWait)
	for {
		for i, s := range c.Servers {
			if s.Running() && s.JetStreamIsLeader() {
				return i
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no JetStream meta leader within %v", readyWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// urlsFrom is the client URLs of c's servers, server i's first.
func urlsFrom(c *natstest.Cluster, i int) string {
	urls := c.URL(i)
	for j := range c.Servers {
		if j != i {
			urls += "," + c.URL(j)
		}
	}
	return urls
}

// awaitSeq waits until last reaches seq, failing after testTimeout.
func awaitSeq(t *testing.T, last *atomic.Uint64, seq uint64) {
	t.Helper()
	awaitReach(t, last.Load, seq)
}

// awaitReach waits until get returns at least want, failing after
// testTimeout.
func awaitReach(t *testing.T, get func() uint64, want uint64) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for get() < want {
		if time.Now().After(deadline) {
			t.Fatalf("reached %d after %v; want %d", get(), testTimeout, want)
		}
		time.Sleep(time.Millisecond)
	}
}
