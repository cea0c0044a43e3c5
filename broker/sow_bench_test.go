package broker

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/listener"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// These benchmarks measure State-of-the-World topics (issue 10,
// "Performance"): an upsert into a large SOW topic against a plain
// publish, the same over TCP, a filtered sow query, and how long a
// sow_and_subscribe holds the publishers of its topic.

const (
	sowBenchTopic   = "sow_orders" // a SOW topic keyed by /id
	plainBenchTopic = "orders"     // a topic without SOW
	// sowBenchFilter takes about 30% of the orders appendBenchOrder makes.
	sowBenchFilter = "/qty > 500 AND /side = 'B'"
)

// appendBenchOrder appends an order of about 150 bytes with the given id.
// The side is B for three ids in five and the quantity (id/5) mod 1000, so
// that sowBenchFilter takes 3/5 × 499/1000 ≈ 30% of consecutive ids.
func appendBenchOrder(dst []byte, id int) []byte {
	side := "S"
	if id%5 < 3 {
		side = "B"
	}
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendInt(dst, int64(id), 10)
	dst = append(dst, `,"sym":"ACME","side":"`...)
	dst = append(dst, side...)
	dst = append(dst, `","qty":`...)
	dst = strconv.AppendInt(dst, int64(id/5%1000), 10)
	return append(dst, `,"px":101.25,"venue":"XNYS","account":"ACC-0042","trader":"jdoe","tif":"DAY","ts":"2026-12-01T18:09:46.123Z"}`...)
}

// newSOWBenchBroker returns a broker with the SOW topic sowBenchTopic
// holding the orders of ids 0 to records-1 (published in process), and
// the client that loaded them.
func newSOWBenchBroker(tb testing.TB, records int) (*Broker, *Client) {
	tb.Helper()
	br := New(&Options{
		OutboundQueueBytes: 1 << 30,
		SOWTopics:          []SOWTopic{{Name: sowBenchTopic, Keys: []string{"/id"}}},
	})
	ctx := context.Background()
	c, err := br.Connect(ctx, "loader", nil)
	if err != nil {
		br.Close()
		tb.Fatal(err)
	}
	var buf []byte
	for i := 0; i < records; i++ {
		buf = appendBenchOrder(buf[:0], i)
		if err := c.Publish(ctx, sowBenchTopic, buf); err != nil {
			br.Close()
			tb.Fatalf("loading record %d: %v", i, err)
		}
	}
	if got := sowRecords(br); got != records {
		br.Close()
		tb.Fatalf("the SOW topic holds %d records after loading %d", got, records)
	}
	return br, c
}

// sowRecords is the number of records of sowBenchTopic.
func sowRecords(br *Broker) int {
	for _, st := range br.Stats().SOWTopics {
		if st.Topic == sowBenchTopic {
			return st.Records
		}
	}
	return 0
}

// benchTopics are the variants compared side by side: the same traffic
// to a plain topic and to the SOW topic.
var benchTopics = []struct{ name, topic string }{
	{"plain", plainBenchTopic},
	{"sow", sowBenchTopic},
}

// BenchmarkSOWPublishUpsert publishes in process into a SOW topic that
// holds 1,000,000 records, each publish replacing an existing record
// (the ids cycle through the keys), and the same orders to a plain topic
// of the same broker, with no subscriber and with one in-process
// subscriber (the op then ends when its handler has run). The difference
// is what storing costs: the key's hash, the record and the map update.
func BenchmarkSOWPublishUpsert(b *testing.B) {
	const records = 1_000_000
	br, _ := newSOWBenchBroker(b, records)
	defer br.Close()
	ctx := context.Background()
	for _, subs := range []int{0, 1} {
		for _, tc := range benchTopics {
			b.Run(fmt.Sprintf("subscribers=%d/topic=%s", subs, tc.name), func(b *testing.B) {
				var got atomic.Int64
				if subs > 0 {
					sc, err := br.Connect(ctx, "sub", nil)
					if err != nil {
						b.Fatal(err)
					}
					defer sc.Close()
					if _, err := sc.Subscribe(ctx, tc.topic, func(Message) { got.Add(1) }, nil); err != nil {
						b.Fatal(err)
					}
				}
				pub, err := br.Connect(ctx, "pub", nil)
				if err != nil {
					b.Fatal(err)
				}
				defer pub.Close()
				buf := make([]byte, 0, 256)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					buf = appendBenchOrder(buf[:0], i%records)
					if err := pub.Publish(ctx, tc.topic, buf); err != nil {
						b.Fatal(err)
					}
				}
				for got.Load() < int64(b.N*subs) {
					// spin until the handler has run for every publish
				}
				b.StopTimer()
				if n := sowRecords(br); n != records {
					b.Fatalf("the SOW topic holds %d records, want %d: a publish did not replace its record", n, records)
				}
			})
		}
	}
}

// benchConn is a raw TCP client of the loopback benchmark.
type benchConn struct {
	nc net.Conn
	r  *protocol.StreamReader
	w  *bufio.Writer
}

// dialBench connects to addr and logs on as name.
func dialBench(tb testing.TB, addr, name string) *benchConn {
	tb.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	c := &benchConn{nc: nc, r: protocol.NewStreamReader(bufio.NewReaderSize(nc, 64<<10), 0), w: bufio.NewWriterSize(nc, 64<<10)}
	c.command(tb, fmt.Sprintf(`{"c":"logon","cid":"0","client_name":%q,"user_id":%q,"mt":"json","v":"5.3.4.0:bench","a":"processed"}`, name, name))
	return c
}

// command sends hdr, which asks for a processed ack with cid, and waits
// for that ack, which must be a success.
func (c *benchConn) command(tb testing.TB, hdr string) {
	tb.Helper()
	if _, err := c.w.Write(protocol.AppendStreamFrame(nil, []byte(hdr), nil)); err != nil {
		tb.Fatal(err)
	}
	if err := c.w.Flush(); err != nil {
		tb.Fatal(err)
	}
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.nc.SetReadDeadline(time.Time{})
	for {
		f, err := c.r.ReadFrame()
		if err != nil {
			tb.Fatalf("awaiting the ack of %s: %v", hdr, err)
		}
		var h protocol.Header
		if err := protocol.DecodeHeader(f, &h); err != nil {
			tb.Fatalf("reading %q: %v", f, err)
		}
		if h.Command == protocol.CmdAck && h.AckType == protocol.AckProcessed {
			if h.Status != protocol.StatusSuccess {
				tb.Fatalf("%s answered %q", hdr, f)
			}
			return
		}
	}
}

// BenchmarkSOWLoopback is the 1→1 loopback scenario of benchLoopback
// (one publisher and one subscriber, each on its own TCP connection to
// 127.0.0.1) for a plain topic and for a SOW topic holding 100,000
// records, the publisher cycling through their ids so that every publish
// replaces a record. One op is one message published and read by the
// subscriber. Compare the two variants of one run for the ratio.
func BenchmarkSOWLoopback(b *testing.B) {
	const records = 100_000
	br, _ := newSOWBenchBroker(b, records)
	defer br.Close()
	l, err := listener.ListenTCP("127.0.0.1:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- br.Serve(l) }()
	defer func() {
		br.Close()
		<-served
	}()
	addr := l.Addr().String()
	for _, tc := range benchTopics {
		b.Run("topic="+tc.name, func(b *testing.B) {
			sub := dialBench(b, addr, "sub")
			defer sub.nc.Close()
			sub.command(b, fmt.Sprintf(`{"c":"subscribe","cid":"s","sub_id":"s","t":%q,"a":"processed"}`, tc.topic))
			done := make(chan error, 1)
			go func() {
				for got := 0; got < b.N; got++ {
					if _, err := sub.r.ReadFrame(); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			pub := dialBench(b, addr, "pub")
			defer pub.nc.Close()
			hdr := []byte(fmt.Sprintf(`{"c":"p","t":%q}`, tc.topic))
			var body, frame []byte
			b.SetBytes(int64(len(appendBenchOrder(nil, records-1))))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				body = appendBenchOrder(body[:0], i%records)
				frame = protocol.AppendStreamFrame(frame[:0], hdr, body)
				if _, err := pub.w.Write(frame); err != nil {
					b.Fatal(err)
				}
			}
			if err := pub.w.Flush(); err != nil {
				b.Fatal(err)
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if n := sowRecords(br); n != records {
				b.Fatalf("the SOW topic holds %d records, want %d", n, records)
			}
		})
	}
}

// BenchmarkSOWQuery runs a sow with a 2-predicate filter that takes about
// 30% of 100,000 records: "evaluate" is the query's evaluation alone (the
// connection writer's part: scan, filter, order by key), "Client.SOW" the
// whole in-process query (snapshot under the lock, evaluation, result).
// records/s counts the records examined. Run with -cpu 1 for one core.
func BenchmarkSOWQuery(b *testing.B) {
	const records = 100_000
	br, c := newSOWBenchBroker(b, records)
	defer br.Close()
	ctx := context.Background()
	want := 0
	for i := 0; i < records; i++ {
		if i%5 < 3 && i/5%1000 > 500 {
			want++
		}
	}
	check := func(b *testing.B, got int) {
		if got != want {
			b.Fatalf("the query returned %d records, want %d", got, want)
		}
	}
	b.Run("evaluate", func(b *testing.B) {
		q, err := c.query(&SOWQuery{Filter: sowBenchFilter})
		if err != nil {
			b.Fatal(err)
		}
		st := br.sow.store(sowBenchTopic, DefaultSOWMessageType)
		st.mu.Lock()
		cands := st.snapshot(nil)
		st.mu.Unlock()
		qr := &queryResult{q: q, cands: cands, mt: DefaultSOWMessageType}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			sel, _, _ := qr.evaluate("")
			if i == 0 {
				check(b, len(sel))
			}
		}
		b.ReportMetric(float64(records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("Client.SOW", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			ms, err := c.SOW(ctx, sowBenchTopic, &SOWQuery{Filter: sowBenchFilter})
			if err != nil {
				b.Fatal(err)
			}
			if i == 0 {
				check(b, len(ms))
			}
		}
		b.ReportMetric(float64(records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
}

// BenchmarkSOWSnapshotUnderLock is the part of a sow_and_subscribe that
// holds the store's lock and grows with the topic: copying the records'
// references. It is measured directly, for comparison with the window
// BenchmarkSOWAndSubscribeLockWindow observes from a publisher.
func BenchmarkSOWSnapshotUnderLock(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			br, _ := newSOWBenchBroker(b, n)
			defer br.Close()
			st := br.sow.store(sowBenchTopic, DefaultSOWMessageType)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				st.mu.Lock()
				cands := st.snapshot(nil)
				st.mu.Unlock()
				if len(cands) != n {
					b.Fatalf("snapshot of %d records, want %d", len(cands), n)
				}
			}
		})
	}
}

// BenchmarkSOWAndSubscribeLockWindow measures, from outside, how long a
// sow_and_subscribe holds the publishers of its topic. A publisher
// goroutine publishes to the SOW topic without pause, timing each
// publish; each op is one in-process SOWAndSubscribe, waiting until its
// handler has had every record of the result, then Unsubscribe. The
// result is either every record (result=all) or one (result=one, a filter
// on a sentinel record): both copy every reference under the lock, but
// only the first evaluates and delivers the whole topic, which happens
// after the lock is released. Metrics, medians over the ops:
//
//   - held-max-µs: the longest publish that overlapped the
//     SOWAndSubscribe call (it waited for the lock);
//   - free-max-µs: the longest publish that did not (the baseline, in the
//     same op: it includes the delivery of the result competing for CPU);
//   - call-µs: the SOWAndSubscribe call itself (lock window plus the
//     query's compilation, outside the lock).
func BenchmarkSOWAndSubscribeLockWindow(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		// ids 0 to n-1 are published to during the op; id n is the
		// sentinel only result=one selects.
		br, c := newSOWBenchBroker(b, n+1)
		for _, rc := range []struct {
			name   string
			filter string
			want   int64
		}{
			{"all", "", int64(n + 1)},
			{"one", fmt.Sprintf("/id = %d", n), 1},
		} {
			b.Run(fmt.Sprintf("records=%d/result=%s", n, rc.name), func(b *testing.B) {
				lockWindow(b, br, c, n, rc.filter, rc.want)
			})
		}
		br.Close()
	}
}

func lockWindow(b *testing.B, br *Broker, c *Client, n int, flt string, want int64) {
	ctx := context.Background()
	pub, err := br.Connect(ctx, "pub", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	// epoch is odd while a SOWAndSubscribe call runs: a publish that
	// starts in an odd epoch, or ends in another epoch than it started
	// in, overlapped a call.
	var epoch, heldMax, freeMax atomic.Int64
	var stop atomic.Bool
	stopped := make(chan error, 1)
	raise := func(m *atomic.Int64, d int64) {
		for {
			old := m.Load()
			if d <= old || m.CompareAndSwap(old, d) {
				return
			}
		}
	}
	go func() {
		var buf []byte
		for i := 0; !stop.Load(); i++ {
			buf = appendBenchOrder(buf[:0], i%n)
			e0 := epoch.Load()
			t := time.Now()
			err := pub.Publish(ctx, sowBenchTopic, buf)
			d := int64(time.Since(t))
			if err != nil {
				stopped <- err
				return
			}
			if e1 := epoch.Load(); e0&1 == 1 || e0 != e1 {
				raise(&heldMax, d)
			} else {
				raise(&freeMax, d)
			}
		}
		stopped <- nil
	}()
	var held, free, call []float64
	var got atomic.Int64
	var done chan struct{}
	handler := func(m Message) {
		if m.SOW && got.Add(1) == want {
			close(done)
		}
	}
	q := &SOWQuery{Filter: flt}
	time.Sleep(10 * time.Millisecond) // the publisher is running
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got.Store(0)
		done = make(chan struct{})
		heldMax.Store(0)
		freeMax.Store(0)
		epoch.Add(1)
		t := time.Now()
		sub, err := c.SOWAndSubscribe(ctx, sowBenchTopic, handler, q)
		d := time.Since(t)
		epoch.Add(1)
		if err != nil {
			b.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(time.Minute):
			b.Fatalf("the result had %d of %d records after a minute", got.Load(), want)
		}
		sub.Unsubscribe()
		call = append(call, float64(d.Microseconds()))
		held = append(held, float64(heldMax.Load())/1e3)
		free = append(free, float64(freeMax.Load())/1e3)
	}
	b.StopTimer()
	stop.Store(true)
	if err := <-stopped; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(median(held), "held-max-µs")
	b.ReportMetric(median(free), "free-max-µs")
	b.ReportMetric(median(call), "call-µs")
}

func median(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}
