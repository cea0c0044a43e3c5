package broker_test

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/journal/filejournal"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// Replay from a file journal, over TCP: how fast a subscriber from EPOCH
// gets a large journal, and what a replay running flat out does to the
// latency of live traffic on the same broker.
//
//	go test -run XXX -bench BenchmarkReplayFileJournal -benchtime 1x ./broker/
const (
	replayBenchEntries = 1_000_000
	replayBenchBody    = 128 // bytes per message
	// latencyRate and latencyRun are the live probe: messages per second
	// and for how long.
	latencyRate = 2000
	latencyRun  = 2 * time.Second
)

func BenchmarkReplayFileJournal(b *testing.B) {
	j, err := filejournal.Open(filejournal.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	body := bytes.Repeat([]byte("x"), replayBenchBody)
	var last broker.Position
	fill := time.Now()
	for i := 0; i < replayBenchEntries; i++ {
		if last, err = j.Append(&broker.Entry{Kind: broker.EntryPublish, Topic: "t", MessageType: "json", Body: body}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := broker.WaitDurable(b.Context(), j, last); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d entries appended and durable in %v (%d bytes)", replayBenchEntries, time.Since(fill), j.Stats().Bytes)
	br := startBroker(b, &broker.Options{Journal: j})
	addr := br.TCPAddr

	b.Run("epoch", func(b *testing.B) {
		var total int
		start := time.Now()
		for i := 0; i < b.N; i++ {
			total += replayAll(b, addr, fmt.Sprint("r", i), nil)
		}
		b.ReportMetric(float64(total)/time.Since(start).Seconds(), "msgs/s")
	})
	b.Run("live-latency", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			alone := liveLatencies(b, addr, "alone")
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ; n++ {
					replayAll(b, addr, fmt.Sprint("bg", n), stop)
					select {
					case <-stop:
						return
					default:
					}
				}
			}()
			time.Sleep(100 * time.Millisecond) // the replay is under way
			during := liveLatencies(b, addr, "during")
			close(stop)
			wg.Wait()
			b.ReportMetric(float64(quantile(alone, 0.50).Microseconds()), "p50-alone-µs")
			b.ReportMetric(float64(quantile(alone, 0.99).Microseconds()), "p99-alone-µs")
			b.ReportMetric(float64(quantile(during, 0.50).Microseconds()), "p50-replaying-µs")
			b.ReportMetric(float64(quantile(during, 0.99).Microseconds()), "p99-replaying-µs")
		}
	})
}

// rawConn is a bare stream client for benchmarks: no decoding beyond what
// it needs.
type rawConn struct {
	c net.Conn
	r *protocol.StreamReader
}

func dialRaw(tb testing.TB, addr, name string) *rawConn {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	rc := &rawConn{c: c, r: protocol.NewStreamReader(c, 1<<20)}
	rc.send(tb, `{"c":"logon","cid":"0","client_name":"`+name+`","mt":"json","version":"5.3.4.0:bench","a":"processed"}`, nil)
	rc.until(tb, `"a":"processed"`)
	return rc
}

func (rc *rawConn) send(tb testing.TB, header string, body []byte) {
	if _, err := rc.c.Write(protocol.AppendStreamFrame(nil, []byte(header), body)); err != nil {
		tb.Error(err)
	}
}

// until reads frames until one whose header contains marker, and returns
// how many "p" messages came before it.
func (rc *rawConn) until(tb testing.TB, marker string) int {
	n := 0
	for {
		f, err := rc.r.ReadFrame()
		if err != nil {
			tb.Error(err)
			return n
		}
		hdr := f[:min(len(f), 200)]
		if bytes.HasPrefix(hdr, []byte(`{"c":"p"`)) {
			n++
			continue
		}
		if bytes.Contains(hdr, []byte(marker)) {
			return n
		}
	}
}

// replayAll subscribes from EPOCH and reads until "completed"; it returns
// the messages replayed. A closed stop ends it early (0).
func replayAll(tb testing.TB, addr, name string, stop chan struct{}) int {
	rc := dialRaw(tb, addr, name)
	defer rc.c.Close()
	if stop != nil {
		go func() { <-stop; rc.c.Close() }()
	}
	rc.send(tb, `{"c":"subscribe","cid":"s","sub_id":"s","t":"t","bm":"0","a":"completed"}`, nil)
	if stop != nil {
		f, err := rc.r.ReadFrame()
		for err == nil && !bytes.Contains(f[:min(len(f), 200)], []byte(`"completed"`)) {
			f, err = rc.r.ReadFrame()
		}
		return 0
	}
	return rc.until(tb, `"completed"`)
}

// liveLatencies publishes to topic "live" at latencyRate for latencyRun
// and returns each message's publish-to-delivery time.
func liveLatencies(tb testing.TB, addr, name string) []time.Duration {
	sub := dialRaw(tb, addr, name+"-sub")
	defer sub.c.Close()
	sub.send(tb, `{"c":"subscribe","cid":"l","sub_id":"l","t":"live","a":"processed"}`, nil)
	sub.until(tb, `"a":"processed"`)
	pub := dialRaw(tb, addr, name+"-pub")
	defer pub.c.Close()
	n := int(latencyRate * latencyRun / time.Second)
	out := make([]time.Duration, 0, n)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for len(out) < n {
			f, err := sub.r.ReadFrame()
			if err != nil {
				tb.Error(err)
				return
			}
			if i := bytes.LastIndexByte(f, '}'); i >= 0 && bytes.HasPrefix(f, []byte(`{"c":"p"`)) {
				body := f[i+1:]
				sent, err := strconv.ParseInt(string(body), 10, 64)
				if err != nil {
					tb.Errorf("latency body %q: %v", body, err)
					return
				}
				out = append(out, time.Duration(time.Now().UnixNano()-sent))
			}
		}
	}()
	tick := time.NewTicker(time.Second / latencyRate)
	defer tick.Stop()
	for i := 0; i < n; i++ {
		<-tick.C
		pub.send(tb, `{"c":"p","t":"live"}`, strconv.AppendInt(nil, time.Now().UnixNano(), 10))
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		tb.Errorf("live probe: %d of %d messages arrived", len(out), n)
	}
	return out
}

// quantile returns the q-quantile of ds (sorted in place).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(int(q*float64(len(ds))), len(ds)-1)]
}
