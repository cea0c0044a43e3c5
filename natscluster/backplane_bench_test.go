package natscluster

import (
	"bytes"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/natscluster/internal/natstest"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// benchQuiet is how long the throughput benchmark's subscriber waits for
// a message before it counts the rest as lost.
const benchQuiet = 2 * time.Second

// BenchmarkBackplane measures one publisher and one subscriber, 1 KiB
// messages over raw TCP: on a broker without a backplane ("single"), on
// one node of a three-node cluster ("same-node": the publish is also
// handed to NATS), and from node A to node B, each on its own NATS node
// ("cross-node"). "latency" has one message in flight (p50/p99 from the
// publish to its delivery); "throughput" publishes b.N without waiting
// (msgs/s delivered; lost/op counts what the backplane or NATS dropped).
func BenchmarkBackplane(b *testing.B) {
	c := natstest.StartCluster(b, 3)
	nodes := startNodes(b, c, broker.Options{})
	single := ampstest.NewBroker(b, nil)
	for _, tc := range []struct {
		name     string
		pub, sub *ampstest.Broker
	}{
		{"single", single, single},
		{"same-node", nodes[0].Broker, nodes[0].Broker},
		{"cross-node", nodes[0].Broker, nodes[1].Broker},
	} {
		pub, sub := logon(tc.pub, "pub-"+tc.name), logon(tc.sub, "sub-"+tc.name)
		topic := "bench-" + tc.name
		sub.Subscribe("s", topic)
		if tc.pub != tc.sub {
			probe := logon(tc.sub, "probe-"+tc.name)
			probe.Subscribe("p", "probe")
			awaitRouted(b, pub, "probe", probe)
		}
		body := bytes.Repeat([]byte("x"), benchBody)
		b.Run(tc.name+"/latency", func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				start := time.Now()
				pub.Publish(topic, body)
				sub.Next()
				lat = append(lat, time.Since(start))
			}
			reportLatency(b, lat, "msgs/s")
		})
		b.Run(tc.name+"/throughput", func(b *testing.B) {
			got := make(chan int, 1)
			n := b.N
			go func() {
				i := 0
				for ; i < n; i++ {
					m, err := sub.Conn.ReadWithin(benchQuiet)
					if err != nil || m.Header.Command != protocol.CmdP {
						break
					}
				}
				got <- i
			}()
			b.ResetTimer()
			for range n {
				pub.Publish(topic, body)
			}
			delivered := <-got
			b.StopTimer()
			b.ReportMetric(float64(delivered)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(n-delivered)/float64(n), "lost/op")
		})
	}
}
