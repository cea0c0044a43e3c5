package natscluster

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/natscluster/internal/natstest"
	"github.com/nats-io/nats.go"
)

// interestTopics is how many topics the benchmark publisher spreads its
// messages over; the receiving node wants one of them.
const interestTopics = 100

// BenchmarkInterest compares the two ways a node can take interest in
// plain publishes (see the package doc): broadcast (one subscription to
// the message type's wildcard, unwanted topics dropped by the node after
// decoding the subject) and per-topic (one subscription to the wanted
// topic's subject; NATS forwards nothing else). A publisher on node 1
// spreads 1 KiB messages over 100 topics; the receiver on node 2 wants one.
// ns/op is per publish; recv/op is what the receiving node had to take in.
func BenchmarkInterest(b *testing.B) {
	c := natstest.StartCluster(b, 3)
	subjects, err := NewSubjects("amps.bench")
	if err != nil {
		b.Fatal(err)
	}
	topics := make([]string, interestTopics)
	for i := range topics {
		if topics[i], err = subjects.Subject("json", fmt.Sprintf("orders.desk%d", i)); err != nil {
			b.Fatal(err)
		}
	}
	wanted := topics[0]
	for _, mode := range []string{"broadcast", "per-topic"} {
		b.Run(mode, func(b *testing.B) {
			pub := natstest.Connect(b, c.URL(0))
			recv := natstest.Connect(b, c.URL(1))
			var got, taken, want atomic.Int64
			done := make(chan struct{}, 1)
			handler := func(m *nats.Msg) {
				taken.Add(1)
				_, topic, err := subjects.Parse(m.Subject)
				if err != nil || topic != "orders.desk0" {
					return // not wanted here
				}
				if got.Add(1) == want.Load() {
					done <- struct{}{}
				}
			}
			filter := wanted
			if mode == "broadcast" {
				filter = subjects.MessageType("json")
			}
			sub, err := recv.Subscribe(filter, handler)
			if err != nil {
				b.Fatal(err)
			}
			defer sub.Unsubscribe()
			sub.SetPendingLimits(-1, -1)
			recv.Flush()
			// The subscription crosses the NATS routes asynchronously:
			// probe until one wanted message arrived.
			want.Store(1)
			for i := 0; ; i++ {
				pub.Publish(wanted, nil)
				pub.Flush()
				select {
				case <-done:
				case <-time.After(10 * time.Millisecond):
					if i < 1000 {
						continue
					}
					b.Fatal("the receiver's interest never reached the publisher's node")
				}
				break
			}
			body := make([]byte, 1024)
			// Wait for the probes still on their way, then count afresh.
			time.Sleep(20 * time.Millisecond)
			got.Store(0)
			taken.Store(0)
			// One wanted message in every interestTopics, plus a final one.
			want.Store(int64((b.N+interestTopics-1)/interestTopics) + 1)
			b.SetBytes(1024)
			b.ResetTimer()
			for i := range b.N {
				pub.Publish(topics[i%interestTopics], body)
			}
			pub.Publish(wanted, body)
			pub.Flush()
			select {
			case <-done:
			case <-time.After(time.Minute):
				b.Fatalf("receiver got %d of %d wanted messages", got.Load(), want.Load())
			}
			b.StopTimer()
			b.ReportMetric(float64(taken.Load())/float64(b.N), "recv/op")
		})
	}
}
