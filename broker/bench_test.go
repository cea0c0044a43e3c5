package broker_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ampsbroker/ampsbroker/broker"
)

// BenchmarkPublishInProcess publishes through the router to N in-process
// subscribers and waits until every delivery was handled. allocs/op should
// not grow with N: a delivery is encoded once and shared.
func BenchmarkPublishInProcess(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			br := broker.New(&broker.Options{OutboundQueueBytes: 1 << 30})
			defer func() {
				b.StopTimer() // the teardown is not what is measured
				br.Close()
			}()
			ctx := context.Background()
			var got atomic.Int64
			for i := 0; i < n; i++ {
				c, _ := br.Connect(ctx, fmt.Sprint("s", i), nil)
				c.Subscribe(ctx, "orders", func(broker.Message) { got.Add(1) }, nil)
			}
			pub, _ := br.Connect(ctx, "pub", nil)
			body := []byte(`{"id":1,"qty":5,"px":101.25}`)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pub.Publish(ctx, "orders", body)
			}
			for got.Load() < int64(b.N*n) {
				// spin until all handlers ran, so the cost is measured whole
			}
		})
	}
}

// BenchmarkPublishFilteredSubscriptions publishes a 1 KiB message to one
// topic that N filtered subscriptions share (`/id = i`, exactly one of
// which matches). The message is scanned once, for the union of the
// filters' fields, so the cost per publish grows with the predicates
// evaluated (one comparison per filter), not with a re-parse per filter.
func BenchmarkPublishFilteredSubscriptions(b *testing.B) {
	body := []byte(`{"id":0,"pad":"` + strings.Repeat("x", 1000) + `"}`)
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("filters=%d", n), func(b *testing.B) {
			br := broker.New(&broker.Options{OutboundQueueBytes: 1 << 30})
			defer func() {
				b.StopTimer() // the teardown is not what is measured
				br.Close()
			}()
			ctx := context.Background()
			var got atomic.Int64
			c, _ := br.Connect(ctx, "sub", nil)
			for i := 0; i < n; i++ {
				if _, err := c.Subscribe(ctx, "orders", func(broker.Message) { got.Add(1) },
					&broker.SubscribeOptions{Filter: fmt.Sprintf("/id = %d", i)}); err != nil {
					b.Fatal(err)
				}
			}
			pub, _ := br.Connect(ctx, "pub", nil)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pub.Publish(ctx, "orders", body)
			}
			for got.Load() < int64(b.N) {
				// spin until all handlers ran, so the cost is measured whole
			}
		})
	}
}
