package natstest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A three-node cluster takes a replicated stream: a message published
// through node 1 is read back through node 3.
func TestClusterReplicatedStream(t *testing.T) {
	c := StartCluster(t, 3)
	if len(c.Servers) != 3 {
		t.Fatalf("%d servers", len(c.Servers))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	nc1 := Connect(t, c.URL(0))
	nc3 := Connect(t, c.URL(2))
	js1, _ := jetstream.New(nc1)
	js3, _ := jetstream.New(nc3)
	if _, err := js1.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3}); err != nil {
		t.Fatalf("create R3 stream: %v", err)
	}
	ack, err := js1.Publish(ctx, "t.a", []byte("hello"))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	s3, err := js3.Stream(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := s3.GetMsg(ctx, ack.Sequence)
	if err != nil || string(msg.Data) != "hello" {
		t.Fatalf("read back through node 3: %v %+v", err, msg)
	}
	if info := s3.CachedInfo(); info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream not replicated on 3 nodes: %+v", info.Cluster)
	}
}

// echoServer answers every byte it reads with the same byte.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func roundTrip(t *testing.T, c net.Conn, msg string) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || !bytes.Equal(buf, []byte(msg)) {
		t.Fatalf("echo through proxy: %v %q", err, buf)
	}
	return time.Since(start)
}

// The proxy forwards both ways, adds its delay to each direction, holds
// traffic while paused and delivers it on Resume.
func TestProxyDelayAndPause(t *testing.T) {
	p := NewProxy(t, echoServer(t))
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, "plain")

	const delay = 50 * time.Millisecond
	p.SetDelay(delay)
	if rtt := roundTrip(t, c, "slow"); rtt < 2*delay {
		t.Fatalf("round trip %v with %v each way", rtt, delay)
	}
	p.SetDelay(0)

	p.Pause()
	if _, err := c.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := c.Read(make([]byte, 8)); n != 0 || err == nil {
		t.Fatalf("read %d bytes while paused (%v)", n, err)
	}
	p.Resume()
	buf := make([]byte, 4)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "held" {
		t.Fatalf("after Resume: %v %q", err, buf)
	}

	p.DropConnections()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(buf); err == nil {
		t.Fatal("connection still open after DropConnections")
	}
}

// A NATS client behind a paused proxy gets no answer until Resume.
func TestProxyPausesNATSClient(t *testing.T) {
	c := StartCluster(t, 1)
	p := NewProxy(t, c.Servers[0].Addr().String())
	nc := Connect(t, p.URL())
	direct := Connect(t, c.URL(0))
	sub, err := direct.SubscribeSync("echo")
	if err != nil {
		t.Fatal(err)
	}
	direct.Flush()
	p.Pause()
	for i := range 3 {
		nc.Publish("echo", []byte(fmt.Sprint(i)))
	}
	if m, err := sub.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatalf("message %q crossed a paused proxy", m.Data)
	}
	p.Resume()
	for i := range 3 {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil || string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("message %d after Resume: %v %v", i, err, m)
		}
	}
}

// A route port taken by someone else before the node binds it makes the
// nodes start again on other ports.
func TestClusterRetriesTakenRoutePort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	calls := 0
	pickPort = func(t testing.TB) int {
		calls++
		if calls == 2 {
			return taken.Addr().(*net.TCPAddr).Port
		}
		return freePort(t)
	}
	defer func() { pickPort = freePort }()
	c := StartCluster(t, 3)
	if calls != 6 {
		t.Fatalf("%d ports picked, want 3 for the failed start and 3 for the next", calls)
	}
	for _, s := range c.Servers {
		if s.ClusterAddr() == nil || s.ClusterAddr().Port == taken.Addr().(*net.TCPAddr).Port {
			t.Fatalf("node %s route listener %v", s.Name(), s.ClusterAddr())
		}
	}
}
