package broker_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
)

// connOf returns the ID of the one connection of transport in b's stats.
func connOf(t *testing.T, b *ampstest.Broker, transport string) uint64 {
	t.Helper()
	for _, c := range b.Stats().Conns {
		if c.Transport == transport {
			return c.ID
		}
	}
	t.Fatalf("no %s connection in %+v", transport, b.Stats().Conns)
	return 0
}

func TestDisconnect(t *testing.T) {
	b := ampstest.NewBroker(t, nil)
	c := b.Dial(b.TCPURL(), nil)
	c.Logon("victim")
	other := b.Dial(b.WSURL(), nil)
	other.Logon("bystander")
	if err := b.Disconnect(1 << 60); !errors.Is(err, broker.ErrUnknownConn) {
		t.Fatalf("Disconnect(unknown) = %v, want ErrUnknownConn", err)
	}
	if err := b.Disconnect(connOf(t, b, "tcp")); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	c.ExpectClosed()
	other.Flush("still-here")
}

func TestDisableEnableTransport(t *testing.T) {
	b := ampstest.NewBroker(t, nil)
	tcp := b.Dial(b.TCPURL(), nil)
	tcp.Logon("t1")
	ws := b.Dial(b.WSURL(), nil)
	ws.Logon("w1")

	if err := b.DisableTransport("nope"); !errors.Is(err, broker.ErrUnknownTransport) {
		t.Fatalf("DisableTransport(nope) = %v, want ErrUnknownTransport", err)
	}
	if err := b.EnableTransport("nope"); !errors.Is(err, broker.ErrUnknownTransport) {
		t.Fatalf("EnableTransport(nope) = %v, want ErrUnknownTransport", err)
	}
	states := b.Transports()
	if len(states) != 2 || states[0].Name != "tcp" || !states[0].Enabled || len(states[0].Addrs) != 1 || states[1].Name != "websocket" {
		t.Fatalf("Transports = %+v, want tcp and websocket, enabled, one address each", states)
	}

	if err := b.DisableTransport("tcp"); err != nil {
		t.Fatalf("DisableTransport(tcp): %v", err)
	}
	tcp.ExpectClosed()
	ws.Flush("ws-still-here")
	if s := b.Transports(); s[0].Enabled || !s[1].Enabled {
		t.Fatalf("after disable: %+v", s)
	}
	// A new TCP connection is accepted and closed at once.
	raw, err := net.Dial("tcp", b.TCPAddr)
	if err != nil {
		t.Fatal(err)
	}
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := raw.Read(make([]byte, 1)); err == nil {
		t.Fatalf("disabled transport: read %d bytes, want the connection closed", n)
	}
	raw.Close()

	if err := b.EnableTransport("tcp"); err != nil {
		t.Fatalf("EnableTransport(tcp): %v", err)
	}
	again := b.Dial(b.TCPURL(), nil)
	again.Logon("t2")
	again.Flush("back")
}

func TestSubscriptionsAndResetAll(t *testing.T) {
	b := ampstest.NewBroker(t, nil)
	c := b.Dial(b.TCPURL(), nil)
	c.Logon("subscriber")
	c.Subscribe("s1", "orders")
	c.Subscribe("s2", "^news/")
	c.Flush("f")
	subs := b.Subscriptions()
	if len(subs) != 2 || subs[0].SubID != "s1" || subs[0].Topic != "orders" || subs[0].Regex ||
		subs[1].SubID != "s2" || !subs[1].Regex || subs[0].ClientName != "subscriber" || subs[0].MessageType != "json" ||
		subs[0].ConnID != connOf(t, b, "tcp") {
		t.Fatalf("Subscriptions = %+v", subs)
	}
	ws := b.Dial(b.WSURL(), nil)
	ws.Logon("ws")
	ws.Flush("f")
	if err := b.ResetTransportEntitlements("nope"); !errors.Is(err, broker.ErrUnknownTransport) {
		t.Fatalf("ResetTransportEntitlements(nope) = %v", err)
	}
	if err := b.ResetTransportEntitlements("websocket"); err != nil {
		t.Fatal(err)
	}
	ws.ExpectClosed()
	c.Flush("tcp-stays")
	b.ResetAllEntitlements()
	c.ExpectClosed()
}

func TestConnStatsAges(t *testing.T) {
	b := ampstest.NewBroker(t, nil)
	before := time.Now()
	c := b.Dial(b.TCPURL(), nil)
	c.Logon("stuck")
	c.Subscribe("s", "flood")
	c.Flush("f")
	cs := b.Stats().Conns[0]
	// (OldestQueued may still count the flush ack the writer is
	// finishing with.)
	if cs.ConnectTime.Before(before) || cs.ConnectTime.After(time.Now()) {
		t.Fatalf("ConnectTime %v, test began %v", cs.ConnectTime, before)
	}
	// The client reads nothing: once the socket buffers are full,
	// messages wait in the broker and age.
	pub, err := b.Connect(context.Background(), "pub", nil)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 64<<10)
	const backlog = 16 << 20 // far more than the socket buffers hold
	for i := 0; b.Stats().Conns[0].QueuedBytes < backlog; i++ {
		if i == 700 { // 44 MB, within the default 64 MB budget
			t.Fatalf("%d messages published and only %d bytes queued", i, b.Stats().Conns[0].QueuedBytes)
		}
		if err := pub.Publish(context.Background(), "flood", body); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	if got := b.Stats().Conns[0].OldestQueued; got < 10*time.Millisecond {
		t.Fatalf("OldestQueued = %v with bytes queued for 20ms", got)
	}
}
