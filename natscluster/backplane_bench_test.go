package natscluster

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/natscluster/internal/natstest"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// benchQuiet is how long the throughput benchmark's subscribers wait for
// a message before they count the rest as lost.
const benchQuiet = 2 * time.Second

// BenchmarkBackplane measures one publisher and its subscribers, 1 KiB
// messages over raw TCP, three NATS servers and three brokers in the test
// process:
//
//   - 1to1/single: both clients on a broker without a backplane;
//   - 1to1/same-node: both on one node of the cluster (the publish is
//     also handed to NATS, which forwards it to the other nodes);
//   - 1to1/cross-node: publisher on node A, subscriber on node B;
//   - 1to10/single: ten subscribers on the single broker;
//   - 1to10/spread: publisher on A, ten subscribers spread over A, B, C.
//
// "latency" has one message in flight (p50/p99 from the publish to its
// delivery to every subscriber); "throughput" publishes b.N without
// waiting (deliveries/s over all subscribers; lost/op counts what the
// backplane or NATS dropped, per subscriber).
func BenchmarkBackplane(b *testing.B) {
	c := natstest.StartCluster(b, 3)
	nodes := startNodes(b, c, broker.Options{})
	single := ampstest.NewBroker(b, nil)
	spread := func(k int) []*ampstest.Broker {
		out := make([]*ampstest.Broker, k)
		for i := range out {
			out[i] = nodes[i%len(nodes)].Broker
		}
		return out
	}
	repeat := func(at *ampstest.Broker, k int) []*ampstest.Broker {
		out := make([]*ampstest.Broker, k)
		for i := range out {
			out[i] = at
		}
		return out
	}
	body := bytes.Repeat([]byte("x"), benchBody)
	for _, tc := range []struct {
		name string
		pub  *ampstest.Broker
		subs []*ampstest.Broker
	}{
		{"1to1/single", single, repeat(single, 1)},
		{"1to1/same-node", nodes[0].Broker, repeat(nodes[0].Broker, 1)},
		{"1to1/cross-node", nodes[0].Broker, []*ampstest.Broker{nodes[1].Broker}},
		{"1to10/single", single, repeat(single, 10)},
		{"1to10/spread", nodes[0].Broker, spread(10)},
	} {
		topic := "bench-" + tc.name
		pub := logon(tc.pub, "pub-"+tc.name)
		subs := make([]*ampstest.Client, len(tc.subs))
		for i, at := range tc.subs {
			subs[i] = logon(at, "sub-"+tc.name)
			subs[i].Subscribe("s", topic)
			if at != tc.pub {
				probe := logon(at, "probe-"+tc.name)
				probe.Subscribe("p", "probe")
				awaitRouted(b, pub, "probe", probe)
			}
		}
		b.Run(tc.name+"/latency", func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				start := time.Now()
				pub.Publish(topic, body)
				for _, s := range subs {
					s.Next()
				}
				lat = append(lat, time.Since(start))
			}
			reportLatency(b, lat, "msgs/s")
		})
		b.Run(tc.name+"/throughput", func(b *testing.B) {
			n := b.N
			got := make([]int, len(subs))
			var wg sync.WaitGroup
			for i, s := range subs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ; got[i] < n; got[i]++ {
						m, err := s.Conn.ReadWithin(benchQuiet)
						if err != nil || m.Header.Command != protocol.CmdP {
							return
						}
					}
				}()
			}
			b.ResetTimer()
			for range n {
				pub.Publish(topic, body)
			}
			wg.Wait()
			b.StopTimer()
			delivered := 0
			for _, g := range got {
				delivered += g
			}
			b.ReportMetric(float64(delivered)/b.Elapsed().Seconds(), "deliveries/s")
			b.ReportMetric(float64(n*len(subs)-delivered)/float64(n*len(subs)), "lost/op")
		})
	}
}
