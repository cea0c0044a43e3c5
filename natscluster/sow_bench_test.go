package natscluster

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/natscluster/internal/natstest"
)

// sowBenchPublishers and sowBenchKeys shape BenchmarkSOWOrdered's load:
// TCP publishers on node A, updating this many keys in turn.
const (
	sowBenchPublishers = 4
	sowBenchKeys       = 1000
	// sowBenchWindow is how many publishes a publisher sends between
	// flushes; sowBenchSettle bounds the wait for every node to apply
	// everything.
	sowBenchWindow = 512
	sowBenchSettle = time.Minute
)

// sowBenchRuns numbers BenchmarkSOWOrdered's runs, which name their
// streams.
var sowBenchRuns atomic.Int64

// BenchmarkSOWOrdered measures SOW-topic publishes (about 1 KiB) ordered
// across three brokers on three NATS servers (one stream, R1 and R3),
// next to a single broker: b.N publishes from sowBenchPublishers TCP
// clients on node A, each sending a flush every sowBenchWindow publishes
// and waiting for its ack (which comes once its publishes were applied on
// A), timed until every node applied all of them; applies/s is per node.
func BenchmarkSOWOrdered(b *testing.B) {
	c := natstest.StartCluster(b, 3)
	body := func(i int) []byte {
		return fmt.Appendf(nil, `{"id":%d,"pad":"%0980d"}`, i%sowBenchKeys, i)
	}
	run := func(b *testing.B, nodes []*ampstest.Broker, settled func() bool) {
		var wg sync.WaitGroup
		b.ResetTimer()
		start := time.Now()
		for p := range sowBenchPublishers {
			pub := logon(nodes[0], fmt.Sprintf("pub%d", p))
			wg.Add(1)
			go func() {
				defer wg.Done()
				n := 0
				for i := p; i < b.N; i += sowBenchPublishers {
					if err := pub.Conn.Publish("positions", body(i)); err != nil {
						b.Error(err)
						return
					}
					if n++; n%sowBenchWindow == 0 || i+sowBenchPublishers >= b.N {
						cid := fmt.Sprint("f", n)
						if err := pub.Conn.Flush(cid); err != nil { // waits for its ack
							b.Error(err)
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		deadline := time.Now().Add(sowBenchSettle)
		for !settled() {
			if time.Now().After(deadline) {
				b.Fatalf("the nodes did not apply %d publishes within %v", b.N, sowBenchSettle)
			}
			time.Sleep(time.Millisecond)
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "applies/s")
		if st := nodes[0].Stats().Cluster; st != nil {
			b.ReportMetric(float64(st.OrderFailures)/float64(b.N), "refused/op")
		}
	}
	b.Run("single", func(b *testing.B) {
		one := ampstest.NewBroker(b, &ampstest.Options{Broker: &broker.Options{SOWTopics: sowTopics}})
		run(b, []*ampstest.Broker{one}, func() bool { return true })
	})
	for _, tc := range []struct {
		replicas int
		journal  bool
	}{{1, false}, {3, false}, {3, true}} {
		name := fmt.Sprintf("3nodes/R%d", tc.replicas)
		if tc.journal {
			name += "+journal" // a shared journal (R3) that the publishes also go to
		}
		b.Run(name, func(b *testing.B) {
			var nodes []*ampstest.Broker
			runID := sowBenchRuns.Add(1)
			jcfg := journalConfig(3)
			for i := range 3 {
				// A stream of its own per run: the nodes start empty.
				obp := newOrdered(b, c.URL(i), fmt.Sprintf("node%d", i),
					SOWConfig{Stream: fmt.Sprintf("SOW_RUN%d", runID), Prefix: fmt.Sprintf("sow.run%d", runID), Replicas: tc.replicas})
				opts := broker.Options{Backplane: obp, SOWTopics: sowTopics}
				if tc.journal {
					opts.Journal = openJournal(b, natstest.Connect(b, c.URL(i)), jcfg)
				}
				nodes = append(nodes, ampstest.NewBroker(b, &ampstest.Options{Broker: &opts}))
			}
			run(b, nodes, func() bool {
				for _, n := range nodes {
					if n.Stats().Cluster.Applied < int64(b.N) {
						return false
					}
				}
				return true
			})
		})
	}
}
