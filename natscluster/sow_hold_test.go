package natscluster

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/natscluster/internal/natstest"
)

// holdNode is an OrderedBackplane whose deliveries and applies are
// recorded, in the order they happened, as "plain:<client>" and
// "apply:<client>".
type holdNode struct {
	o      *OrderedBackplane
	mu     sync.Mutex
	events []string
}

// startHoldNode starts a recording node on url; gate, when not nil, is
// called at the start of each apply (it may block).
func startHoldNode(t *testing.T, url, id string, cfg SOWConfig, gate func()) *holdNode {
	t.Helper()
	return startHoldNodeWith(t, url, id, cfg, gate, maxHeldPlain)
}

// startHoldNodeWith is startHoldNode holding at most heldLimit plain
// publishes.
func startHoldNodeWith(t *testing.T, url, id string, cfg SOWConfig, gate func(), heldLimit int64) *holdNode {
	t.Helper()
	n := &holdNode{o: newOrdered(t, url, id, cfg)}
	n.o.heldLimit = heldLimit
	record := func(what string) func(*broker.RemotePublish) {
		return func(rp *broker.RemotePublish) {
			if what == "apply" && gate != nil {
				gate()
			}
			n.mu.Lock()
			n.events = append(n.events, what+":"+rp.ClientName)
			n.mu.Unlock()
		}
	}
	if err := n.o.Start(record("plain")); err != nil {
		t.Fatal(err)
	}
	if err := n.o.StartOrdered(record("apply")); err != nil {
		t.Fatal(err)
	}
	return n
}

// await waits until the node recorded want events, and returns them.
func (n *holdNode) await(t *testing.T, want int) []string {
	t.Helper()
	deadline := time.Now().Add(readyWait)
	for {
		n.mu.Lock()
		got := slices.Clone(n.events)
		n.mu.Unlock()
		if len(got) >= want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events within %v: %v", len(got), want, readyWait, got)
		}
		time.Sleep(time.Millisecond)
	}
}

// awaitReceived waits until the node's subscription took in n messages
// (handled, held or being handled).
func (n *holdNode) awaitReceived(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(readyWait)
	for {
		n.o.Backplane.mu.RLock()
		sub := n.o.sub
		n.o.Backplane.mu.RUnlock()
		got, err := sub.Delivered()
		if err != nil {
			t.Fatal(err)
		}
		if got >= int64(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the subscription took in %d of %d messages within %v", got, want, readyWait)
		}
		time.Sleep(time.Millisecond)
	}
}

// plain publishes a plain message of client on o, stamped after, and
// waits until o handed it to NATS.
func plain(t *testing.T, o *OrderedBackplane, client string, after uint64) {
	t.Helper()
	before := o.Stats().Sent
	if err := o.Publish(&broker.RemotePublish{MessageType: "json", Topic: "ticks", ClientName: client, After: after, Body: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(readyWait)
	for o.Stats().Sent == before {
		if time.Now().After(deadline) {
			t.Fatalf("plain publish of %s not sent within %v", client, readyWait)
		}
		time.Sleep(time.Millisecond)
	}
	if err := o.nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// order hands a SOW publish of client to o's order and waits for its ack.
func order(t *testing.T, o *OrderedBackplane, client string) {
	t.Helper()
	acked := make(chan error, 1)
	if err := o.Order(&broker.RemotePublish{MessageType: "json", Topic: "positions", ClientName: client, Body: []byte(`{"id":1}`)},
		func(err error) { acked <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
}

// TestHeldPlainGivesUpOnce: plain messages waiting for an ordered publish
// this node never applies (the stream has no such sequence, standing for
// a stalled consumer) wait for it once: after the first gives up, the
// ones stamped with the same place go on at once, in order.
func TestHeldPlainGivesUpOnce(t *testing.T) {
	c := natstest.StartCluster(t, 1)
	recv := startHoldNode(t, c.URL(0), "recv", SOWConfig{}, nil)
	a := newOrdered(t, c.URL(0), "a", SOWConfig{})
	for i := range 3 {
		plain(t, a, fmt.Sprintf("p%d", i), 1000)
	}
	got := recv.await(t, 3)
	if want := []string{"plain:p0", "plain:p1", "plain:p2"}; !slices.Equal(got, want) {
		t.Errorf("deliveries %v; want %v", got, want)
	}
	if n := recv.o.waitsExpired.Load(); n != 1 {
		t.Errorf("%d waits expired; want 1 (the later messages wait for no place given up on)", n)
	}
}

// TestHeldPlainBounded: past the bound on held plain publishes, they
// all go on at once (from the subscription's goroutine, before it takes
// the next message), in order, their wait counted as expired.
func TestHeldPlainBounded(t *testing.T) {
	c := natstest.StartCluster(t, 1)
	recv := startHoldNodeWith(t, c.URL(0), "recv", SOWConfig{}, nil, 2)
	a := newOrdered(t, c.URL(0), "a", SOWConfig{})
	for i := range 3 {
		plain(t, a, fmt.Sprintf("p%d", i), 1000)
	}
	deadline := time.Now().Add(readyWait)
	for recv.o.finished.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the subscription handled %d of 3 messages within %v", recv.o.finished.Load(), readyWait)
		}
		time.Sleep(time.Millisecond)
	}
	recv.mu.Lock()
	got := slices.Clone(recv.events)
	recv.mu.Unlock()
	if want := []string{"plain:p0", "plain:p1", "plain:p2"}; !slices.Equal(got, want) {
		t.Errorf("deliveries once the third message was handled: %v; want %v", got, want)
	}
	if n := recv.o.waitsExpired.Load(); n != 1 {
		t.Errorf("%d waits expired; want 1", n)
	}
}

// TestPlainNotHeldWhileCatchingUp: a node that is still catching up (its
// apply of the stream's first message blocks past CatchUpTimeout) routes
// a plain message stamped with that message's place at once: holding it
// would hold it for the whole catch-up.
func TestPlainNotHeldWhileCatchingUp(t *testing.T) {
	c := natstest.StartCluster(t, 1)
	a := newOrdered(t, c.URL(0), "a", SOWConfig{})
	order(t, a, "sow")
	gate := make(chan struct{})
	var release sync.Once
	recv := startHoldNode(t, c.URL(0), "recv", SOWConfig{CatchUpTimeout: 50 * time.Millisecond}, func() { <-gate })
	// Registered after the node's cleanup, so it runs before it: Close
	// waits for an apply in progress.
	t.Cleanup(func() { release.Do(func() { close(gate) }) })
	if !recv.o.State().CatchingUp {
		t.Fatal("the node is not catching up though its first apply blocks")
	}
	plain(t, a, "p", 1)
	got := recv.await(t, 1)
	if !slices.Equal(got, []string{"plain:p"}) {
		t.Errorf("events %v; want the plain message alone", got)
	}
	if n := recv.o.waitsExpired.Load(); n != 0 {
		t.Errorf("%d waits expired; want 0 (no hold while catching up)", n)
	}
	release.Do(func() { close(gate) })
	recv.await(t, 2)
}

// TestOrderedAndHeldPlainDoNotWaitForEachOther: a plain message of node
// b held for an ordered publish of node a (b's publisher published after
// it) does not keep that ordered publish, nor a's plain messages behind
// it, waiting: each node's messages keep their order, and no wait
// expires.
func TestOrderedAndHeldPlainDoNotWaitForEachOther(t *testing.T) {
	t.Run("nothing received from the ordered publish's node", func(t *testing.T) {
		c := natstest.StartCluster(t, 1)
		a := newOrdered(t, c.URL(0), "a", SOWConfig{})
		b := newOrdered(t, c.URL(0), "b", SOWConfig{})
		plain(t, a, "a0", 0) // before recv subscribes: never arrives
		recv := startHoldNode(t, c.URL(0), "recv", SOWConfig{}, nil)
		plain(t, b, "b-held", 1) // after a's ordered publish, the stream's first
		recv.awaitReceived(t, 1)
		order(t, a, "a-sow") // after a0: waits for what recv holds
		got := recv.await(t, 2)
		if want := []string{"apply:a-sow", "plain:b-held"}; !slices.Equal(got, want) {
			t.Errorf("events %v; want %v", got, want)
		}
		if n := recv.o.waitsExpired.Load(); n != 0 {
			t.Errorf("%d waits expired; want 0", n)
		}
	})
	t.Run("the ordered publish's node's plain message behind a held one", func(t *testing.T) {
		c := natstest.StartCluster(t, 1)
		a := newOrdered(t, c.URL(0), "a", SOWConfig{})
		b := newOrdered(t, c.URL(0), "b", SOWConfig{})
		recv := startHoldNode(t, c.URL(0), "recv", SOWConfig{}, nil)
		plain(t, a, "a0", 0)
		recv.await(t, 1)
		plain(t, b, "b-held", 1)
		recv.awaitReceived(t, 2)
		plain(t, a, "a1", 0)
		order(t, a, "a-sow") // after a1: waits for it
		got := recv.await(t, 4)
		if want := []string{"plain:a0", "plain:a1", "apply:a-sow", "plain:b-held"}; !slices.Equal(got, want) {
			t.Errorf("events %v; want %v", got, want)
		}
		if n := recv.o.waitsExpired.Load(); n != 0 {
			t.Errorf("%d waits expired; want 0", n)
		}
	})
}
