package natscluster

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/journal/journaltest"
	"github.com/ampsbroker/ampsbroker/natscluster/internal/natstest"
	"github.com/nats-io/nats-server/v2/server"
)

// benchBody is the size of a benchmark entry's body (1 KiB, the issue's
// figure).
const benchBody = 1024

// BenchmarkJournalAppend measures Append on one NATS node (R1) and on a
// three-node cluster (R1 and R3), with JetStream's default lazy fsync and
// with an fsync per write ("-fsync"), by one appender (each op is a durable
// round trip: the latency) and by 64 concurrent appenders sharing the
// in-flight window (the throughput), and AppendAsync by one caller (a
// publisher that does not wait for each entry). p50/p99 are from the call
// to the entry's acknowledgement.
func BenchmarkJournalAppend(b *testing.B) {
	syncAlways := func(o *server.Options) { o.SyncAlways = true }
	for _, tc := range []struct {
		name            string
		nodes, replicas int
		configure       func(*server.Options)
	}{
		{"node1-R1", 1, 1, nil},
		{"node1-R1-fsync", 1, 1, syncAlways},
		{"nodes3-R1", 3, 1, nil},
		{"nodes3-R3", 3, 3, nil},
		{"nodes3-R3-fsync", 3, 3, syncAlways},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := natstest.StartClusterWith(b, tc.nodes, tc.configure)
			for _, appenders := range []int{1, 64} {
				b.Run(map[int]string{1: "serial", 64: "parallel64"}[appenders], func(b *testing.B) {
					j := openJournal(b, natstest.Connect(b, c.URL(0)), journalConfig(tc.replicas))
					benchAppend(b, j, appenders)
				})
			}
			b.Run("async", func(b *testing.B) {
				j := openJournal(b, natstest.Connect(b, c.URL(0)), journalConfig(tc.replicas))
				benchAppendAsync(b, j)
			})
		})
	}
}

func benchAppend(b *testing.B, j broker.Journal, appenders int) {
	body := make([]byte, benchBody)
	lat := make([][]time.Duration, appenders)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.SetBytes(benchBody)
	b.ResetTimer()
	for a := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				e := journaltest.Entry(int(i))
				e.Body = body
				start := time.Now()
				if _, err := j.Append(e); err != nil {
					b.Error(err)
					return
				}
				lat[a] = append(lat[a], time.Since(start))
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	reportLatency(b, slices.Concat(lat...), "appends/s")
}

func benchAppendAsync(b *testing.B, j *Journal) {
	body := make([]byte, benchBody)
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	b.SetBytes(benchBody)
	b.ResetTimer()
	for i := range b.N {
		e := journaltest.Entry(i)
		e.Body = body
		start := time.Now()
		wg.Add(1)
		err := j.AppendAsync(e, func(_ broker.Position, err error) {
			if err != nil {
				b.Error(err)
			}
			lat[i] = time.Since(start)
			wg.Done()
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	b.StopTimer()
	reportLatency(b, lat, "appends/s")
}

// reportLatency adds the p50 and p99 of lat and their rate, in unit.
func reportLatency(b *testing.B, lat []time.Duration, unit string) {
	slices.Sort(lat)
	if len(lat) == 0 {
		return
	}
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), unit)
}

// BenchmarkJournalReplay measures a cursor reading entries already in the
// stream (a bookmark replay), R1 on one node and R3 on three.
func BenchmarkJournalReplay(b *testing.B) {
	for _, tc := range []struct {
		name            string
		nodes, replicas int
	}{{"node1-R1", 1, 1}, {"nodes3-R3", 3, 3}} {
		b.Run(tc.name, func(b *testing.B) {
			c := natstest.StartCluster(b, tc.nodes)
			j := openJournal(b, natstest.Connect(b, c.URL(0)), journalConfig(tc.replicas))
			body := make([]byte, benchBody)
			var wg sync.WaitGroup
			for i := range b.N {
				e := journaltest.Entry(i)
				e.Body = body
				wg.Add(1)
				if err := j.AppendAsync(e, func(_ broker.Position, err error) {
					if err != nil {
						b.Error(err)
					}
					wg.Done()
				}); err != nil {
					b.Fatal(err)
				}
			}
			wg.Wait()
			first, _ := j.Bounds()
			b.SetBytes(benchBody)
			b.ResetTimer()
			cur, err := j.NewCursor(first)
			if err != nil {
				b.Fatal(err)
			}
			defer cur.Close()
			for i := range b.N {
				if _, err := cur.Next(); err != nil {
					b.Fatalf("entry %d: %v", i, err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}
