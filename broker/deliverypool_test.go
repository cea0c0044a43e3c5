package broker

import (
	"bytes"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/protocol"
)

func TestPoolClass(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want uint8
	}{
		{0, 1},
		{poolHeaderRoom + 256, 1},
		{poolHeaderRoom + 257, 2},
		{poolHeaderRoom + 1024, 3},
		{poolHeaderRoom + 16384, 7},
		{poolHeaderRoom + 16385, 8},
		{poolHeaderRoom + 1<<poolMaxShift, poolMaxShift - poolMinShift + 1},
		{poolHeaderRoom + 1<<poolMaxShift + 1, 0},
	} {
		if got := poolClass(tc.n); got != tc.want {
			t.Errorf("poolClass(%d) = %d, want %d", tc.n, got, tc.want)
		}
		if c := poolClass(tc.n); c != 0 && poolHeaderRoom+1<<(int(c)-1+poolMinShift) < tc.n {
			t.Errorf("poolClass(%d) = %d, whose buffers are too small", tc.n, c)
		}
	}
}

// A pooled delivery stays intact until its last reference is dropped, and
// only then is it reset for reuse.
func TestDeliveryReleasedByLastReference(t *testing.T) {
	body := []byte(`{"a":1}`)
	d := newPooledDelivery("orders", "x1", body)
	if d.pool == 0 {
		t.Fatal("a small delivery is not pooled")
	}
	d.hold()
	d.hold()
	d.release()
	d.release()
	if d.topic != "orders" || !bytes.Equal(d.body, body) || d.correlationID != "x1" {
		t.Fatalf("delivery changed while a reference remains: topic %q body %q", d.topic, d.body)
	}
	var m protocol.Message
	m.Shared, m.Body = &d.hdr, d.body
	if got := string(m.AppendHeader(nil)); got != `{"c":"p","t":"orders","x":"x1","l":7}` {
		t.Fatalf("header %s", got)
	}
	d.release()
	if d.topic != "" || d.body != nil || cap(d.mem) == 0 {
		t.Fatalf("the last release did not reset the delivery for reuse: %+v", d)
	}
	// A message too large for any class is not pooled; releasing it does
	// nothing to it.
	big := newPooledDelivery("t", "", make([]byte, poolHeaderRoom+1<<poolMaxShift))
	big.release()
	if big.pool != 0 || big.topic != "t" {
		t.Fatalf("large delivery: pool %d topic %q", big.pool, big.topic)
	}
}

// recordingConn is a subscriber that keeps a copy of every delivery's body
// and writes slowly now and then, so that deliveries queue up behind it
// while the publisher goes on.
type recordingConn struct {
	discardConn
	mu     sync.Mutex
	bodies [][]byte
}

func (c *recordingConn) WriteMessage(m *protocol.Message) error {
	if m.Shared != nil || m.Header != nil && m.Header.Command == protocol.CmdP {
		c.mu.Lock()
		c.bodies = append(c.bodies, bytes.Clone(m.Body))
		n := len(c.bodies)
		c.mu.Unlock()
		if n%97 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	return c.discardConn.WriteMessage(m)
}

// Every subscriber gets every body exactly as published, however the
// deliveries are recycled among publishes: a delivery reused before one
// of its writers had written it would show up here as a body changed
// under that writer.
func TestRecycledDeliveriesArriveIntact(t *testing.T) {
	br := New(&Options{OutboundQueueBytes: 1 << 30})
	defer br.Close()
	subs := []*recordingConn{
		{discardConn: *newSubscribingConn(0, "orders")},
		{discardConn: *newSubscribingConn(1, "orders")},
	}
	for _, c := range subs {
		go br.ServeConn(t.Context(), c)
	}
	for _, c := range subs {
		for c.written.Load() < 2 {
			time.Sleep(time.Millisecond)
		}
	}
	pub := br.newEndpoint(0, 0)
	r := br.router("json")
	const n = 5000
	body := make([]byte, 0, 4096)
	want := make([][]byte, n)
	for i := range n {
		// Sizes cross several pool classes; each body is distinct.
		body = fmt.Appendf(body[:0], `{"i":%d,"pad":"%s"}`, i, bytes.Repeat([]byte{'a' + byte(i%26)}, i%3000))
		want[i] = bytes.Clone(body)
		br.publish(&pub, r, "orders", nil, body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, c := range subs {
		for c.written.Load() < n+2 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		c.mu.Lock()
		got := c.bodies
		c.mu.Unlock()
		if len(got) != n {
			t.Fatalf("subscriber got %d of %d messages", len(got), n)
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("message %d arrived as %.60q, published as %.60q", i, got[i], want[i])
			}
		}
	}
}

// A plain publish to a subscriber allocates nothing once the pool is
// warm: the delivery and its buffer are recycled.
func TestPublishDoesNotAllocate(t *testing.T) {
	br := New(&Options{OutboundQueueBytes: 1 << 30})
	defer br.Close()
	c := newSubscribingConn(0, "orders")
	growthSessions(br, []*discardConn{c})
	pub := br.newEndpoint(0, 0)
	r := br.router("json")
	body := bytes.Repeat([]byte("x"), 1024)
	want := c.written.Load()
	allocs := testing.AllocsPerRun(2000, func() {
		br.publish(&pub, r, "orders", nil, body)
		want++
		for c.written.Load() < want {
			runtime.Gosched() // the writer may be queued on this P
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per published and delivered message, want 0", allocs)
	}
}
