package broker_test

import (
	"bufio"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// loopbackOrder is the message of the loopback benchmarks: a realistic
// order of about 200 bytes.
var loopbackOrder = []byte(`{"id":123456,"sym":"ACME","side":"B","qty":500,"px":101.25,` +
	`"venue":"XNYS","account":"ACC-0042","trader":"jdoe","tif":"DAY","ts":"2026-12-01T18:09:46.123Z",` +
	`"tags":["algo","vwap"],"status":"new"}`)

// loopbackFilters are the filter variants compared: none, and filters that
// take every message, so each variant delivers the same traffic. %d is
// replaced by 100 plus the subscriber's number: "distinct" gives every
// subscriber a filter of its own text, which the broker cannot share.
var loopbackFilters = []struct{ name, filter string }{
	{"none", ""},
	{"1-predicate", "/qty > 100"},
	{"5-predicates", "/sym = 'ACME' AND /qty > 100 AND /px BETWEEN 10 AND 200 AND /side IN ('B', 'S') AND /venue LIKE '^XN'"},
	{"5-predicates-distinct", "/sym = 'ACME' AND /qty > %d AND /px BETWEEN 10 AND 200 AND /side IN ('B', 'S') AND /venue LIKE '^XN'"},
}

// BenchmarkLoopbackFilter measures what content filters cost end to end on
// the wire: one publisher and N subscribers, each on its own TCP
// connection to 127.0.0.1, every subscriber with the same filter (or
// none). One op is one published message, read by all N subscribers.
func BenchmarkLoopbackFilter(b *testing.B) {
	for _, n := range []int{1, 10} {
		for _, fc := range loopbackFilters {
			b.Run(fmt.Sprintf("subscribers=%d/filter=%s", n, fc.name), func(b *testing.B) {
				benchLoopback(b, n, fc.filter)
			})
		}
	}
}

func benchLoopback(b *testing.B, n int, flt string) {
	tb := ampstest.NewBroker(b, &ampstest.Options{Broker: &broker.Options{OutboundQueueBytes: 1 << 30}})
	done := make(chan error, n)
	for i := 0; i < n; i++ {
		c, err := ampstest.DialConn(tb.TCPURL(), &ampstest.DialOptions{Timeout: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Logon(fmt.Sprint("sub", i)); err != nil {
			b.Fatal(err)
		}
		f := flt
		if strings.Contains(f, "%d") {
			f = fmt.Sprintf(f, 100+i)
		}
		if err := c.Send(&protocol.Header{Command: protocol.CmdSubscribe, CommandID: "s", SubID: "s",
			Topic: "orders", Filter: f, AckType: protocol.AckProcessed}, nil); err != nil {
			b.Fatal(err)
		}
		if ack, err := c.AwaitAck("s", protocol.AckProcessed); err != nil || ack.Header.Status != protocol.StatusSuccess {
			b.Fatalf("subscribe: %v %v", ack, err)
		}
		r := protocol.NewStreamReader(c.RawReader(), 0)
		go func() {
			for got := 0; got < b.N; got++ {
				if _, err := r.ReadFrame(); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	p, err := ampstest.DialConn(tb.TCPURL(), &ampstest.DialOptions{Timeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Logon("pub"); err != nil {
		b.Fatal(err)
	}
	frame := protocol.AppendStreamFrame(nil, []byte(`{"c":"p","t":"orders"}`), loopbackOrder)
	w := bufio.NewWriterSize(p.NetConn(), 64<<10)
	b.SetBytes(int64(len(loopbackOrder)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := w.Write(frame); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}
