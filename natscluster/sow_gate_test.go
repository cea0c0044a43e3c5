package natscluster

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/natscluster/internal/natstest"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// gatedOrder is an OrderedBackplane whose applies on this node wait while
// its gate is held, as during a consumer stall.
type gatedOrder struct {
	*OrderedBackplane
	gate atomic.Pointer[chan struct{}] // applies wait until it is closed
}

func (g *gatedOrder) StartOrdered(apply func(*broker.RemotePublish)) error {
	return g.OrderedBackplane.StartOrdered(func(p *broker.RemotePublish) {
		<-*g.gate.Load()
		apply(p)
	})
}

// startGatedNode starts a broker with sowTopics whose applies wait for
// g.gate; the gate is open until the test holds it (hold) and is opened
// again at cleanup.
func startGatedNode(t *testing.T, url, id string) (*ampstest.Broker, *gatedOrder) {
	t.Helper()
	g := &gatedOrder{OrderedBackplane: newOrdered(t, url, id, SOWConfig{Replicas: 1})}
	open := make(chan struct{})
	close(open)
	g.gate.Store(&open)
	b := ampstest.NewBroker(t, &ampstest.Options{Broker: &broker.Options{Backplane: g, SOWTopics: sowTopics}})
	return b, g
}

// hold makes the node's applies wait until the returned release is called
// (before the node starts, or while nothing is being applied).
func (g *gatedOrder) hold(t *testing.T) (release func()) {
	held := make(chan struct{})
	g.gate.Store(&held)
	released := false
	release = func() {
		if !released {
			released = true
			close(held)
		}
	}
	t.Cleanup(release)
	return release
}

// TestOrderedWaitsAreBounded: while a node's applies stall, a session
// waiting for its own ordered publish keeps its heartbeating client (the
// wait is not silence); an in-process Publish returns when its context
// ends; and a publish refused at once is acked after the publish before it.
func TestOrderedWaitsAreBounded(t *testing.T) {
	c := natstest.StartCluster(t, 1)

	t.Run("heartbeat", func(t *testing.T) {
		n, g := startGatedNode(t, c.URL(0), "hb")
		release := g.hold(t)
		cl := logon(n, "beating")
		cl.Heartbeat(1)
		cl.SendJSON(map[string]any{"c": "publish", "t": "positions"}, []byte(`{"id":1,"n":1}`))
		cl.Send(&protocol.Header{Command: protocol.CmdFlush, CommandID: "f", AckType: protocol.AckProcessed}, nil)
		// Beat for four heartbeat intervals while the flush waits.
		for range 8 {
			time.Sleep(500 * time.Millisecond)
			if err := cl.Conn.Beat(); err != nil {
				t.Fatalf("the connection ended while its flush waited: %v", err)
			}
		}
		release()
		if a := cl.AwaitAck("f", protocol.AckProcessed); a.Header.Status != protocol.StatusSuccess {
			t.Fatalf("flush: %s", a)
		}
	})

	t.Run("in-process context", func(t *testing.T) {
		n, g := startGatedNode(t, c.URL(0), "ctx")
		g.hold(t)
		pub, err := n.Connect(context.Background(), "inproc", nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- pub.Publish(ctx, "positions", []byte(`{"id":2,"n":1}`)) }()
		select {
		case err := <-done:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Publish while applies stall: %v; want the context's deadline", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Publish still waits 5 s after its context ended") // the cleanup's release ends it
		}
	})

	t.Run("refusal after the publish before it", func(t *testing.T) {
		n, g := startGatedNode(t, c.URL(0), "refuse")
		release := g.hold(t)
		cl := logon(n, "refused")
		cl.SendJSON(map[string]any{"c": "publish", "cid": "p1", "t": "positions", "a": "processed"}, []byte(`{"id":3,"n":1}`))
		cl.SendJSON(map[string]any{"c": "publish", "cid": "p2", "t": "positions", "a": "processed"}, []byte(`{"no_key":1}`))
		time.Sleep(200 * time.Millisecond)
		release()
		var got []string
		for len(got) < 2 {
			if m := cl.Next(); m.Header.Command == protocol.CmdAck {
				got = append(got, m.Header.CommandID+" "+m.Header.Status)
			}
		}
		if fmt.Sprint(got) != "[p1 success p2 failure]" {
			t.Errorf("acks %v; want p1's success, then p2's failure", got)
		}
	})
}

// TestInProcessSOWDeleteOrdered: an in-process client's SOWDelete on a
// node whose SOW topics the cluster orders goes through the order, so
// every node removes the record.
func TestInProcessSOWDeleteOrdered(t *testing.T) {
	c := natstest.StartCluster(t, 1)
	a, _ := startSOWNode(t, c.URL(0), "a", 1)
	b, _ := startSOWNode(t, c.URL(0), "b", 1)
	cl, err := a.Connect(context.Background(), "inproc", nil)
	if err != nil {
		t.Fatal(err)
	}
	for id := range 3 {
		if err := cl.Publish(context.Background(), "positions", fmt.Appendf(nil, `{"id":%d,"n":1}`, id)); err != nil {
			t.Fatal(err)
		}
	}
	n, err := cl.SOWDelete(context.Background(), "positions", "/id = 1")
	if err != nil || n != 1 {
		t.Fatalf("SOWDelete: %d, %v; want 1 record deleted", n, err)
	}
	if n, err := cl.SOWDeleteKeys(context.Background(), "positions", "no-such-key"); err != nil || n != 0 {
		t.Fatalf("SOWDeleteKeys of an unknown key: %d, %v", n, err)
	}
	awaitApplied(t, a, b)
	want := map[int]int{0: 1, 2: 1}
	for i, node := range []*ampstest.Broker{a, b} {
		if got := sowView(t, node); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("SOW on node %d %v, want %v", i, got, want)
		}
	}
}
