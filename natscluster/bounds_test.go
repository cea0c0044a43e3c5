package natscluster

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/natscluster/internal/natstest"
)

// TestSendQueueBoundedInBytes: the backplane's send queue refuses a
// publish that would take its bytes past SendQueueBytes, whatever the
// count, and takes publishes again once the sender took what was queued.
func TestSendQueueBoundedInBytes(t *testing.T) {
	p := &Backplane{cfg: BackplaneConfig{SendQueueBytes: 1000}, queue: make(chan outgoing, 100)}
	if err := p.enqueue(outgoing{}, 600); err != nil {
		t.Fatal(err)
	}
	if err := p.enqueue(outgoing{}, 600); !errors.Is(err, ErrBackplaneFull) {
		t.Fatalf("a publish past the byte bound: %v; want ErrBackplaneFull", err)
	}
	o := <-p.queue
	p.queuedBytes.Add(-int64(o.size)) // as the sender does
	if err := p.enqueue(outgoing{}, 600); err != nil {
		t.Fatalf("after the sender took the first: %v", err)
	}
}

// TestOrderPendingBoundedInBytes: while JetStream acknowledges nothing
// (the node's link paused), Order refuses once the publishes awaiting
// their acks would pass MaxPendingBytes, and takes publishes again once
// the acks came.
func TestOrderPendingBoundedInBytes(t *testing.T) {
	c := natstest.StartCluster(t, 1)
	proxy := natstest.NewProxy(t, c.Servers[0].Addr().String())
	o := newOrdered(t, proxy.URL(), "bounded", SOWConfig{MaxPendingBytes: 10 << 10, AckTimeout: time.Minute})
	if err := o.StartOrdered(func(*broker.RemotePublish) {}); err != nil {
		t.Fatal(err)
	}
	acked := make(chan error, 100)
	order := func(i int) error {
		rp := broker.RemotePublish{MessageType: "json", Topic: "positions", Body: fmt.Appendf(nil, `{"id":%d,"pad":"%01000d"}`, i, 0)}
		return o.Order(&rp, func(err error) { acked <- err })
	}
	proxy.Pause()
	taken := 0
	for ; taken < 100; taken++ {
		if err := order(taken); errors.Is(err, ErrBackplaneFull) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if taken < 5 || taken > 10 {
		t.Fatalf("%d publishes of about 1 KiB taken with a 10 KiB bound and no acks", taken)
	}
	proxy.Resume()
	for range taken {
		select {
		case err := <-acked:
			if err != nil {
				t.Fatalf("ack after the link resumed: %v", err)
			}
		case <-time.After(testTimeout):
			t.Fatal("no ack after the link resumed")
		}
	}
	if err := order(taken); err != nil {
		t.Fatalf("after the acks: %v", err)
	}
	select {
	case <-acked:
	case <-time.After(testTimeout):
		t.Fatal("no ack for the last publish")
	}
}
