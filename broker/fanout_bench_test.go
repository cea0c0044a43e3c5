package broker

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ampsbroker/ampsbroker/protocol"
	"github.com/ampsbroker/ampsbroker/transport"
)

// discardConn is a transport.Conn that logs on, subscribes to "orders",
// then counts the messages written to it until it is closed. It measures
// the broker's delivery path without a socket.
type discardConn struct {
	script  [][2]string
	buf     []byte // the writer's header scratch
	written atomic.Int64
	closed  chan struct{}
	once    sync.Once
}

func newDiscardConn(id int) *discardConn {
	return &discardConn{
		script: [][2]string{
			{`{"c":"logon","cid":"0","client_name":"b","mt":"json","a":"processed"}`, ""},
			{fmt.Sprintf(`{"c":"subscribe","cid":"1","sub_id":"sub-%d","t":"orders","a":"processed"}`, id), ""},
		},
		closed: make(chan struct{}),
	}
}

func (c *discardConn) ReadMessage() ([]byte, []byte, error) {
	if len(c.script) > 0 {
		m := c.script[0]
		c.script = c.script[1:]
		return []byte(m[0]), []byte(m[1]), nil
	}
	<-c.closed
	return nil, nil, io.EOF
}

// WriteMessage encodes the header as a transport would (the per-recipient
// splice of "sids" into a shared delivery header) and drops it.
func (c *discardConn) WriteMessage(m *protocol.Message) error {
	c.buf = m.AppendHeader(c.buf[:0])
	c.written.Add(1)
	return nil
}
func (c *discardConn) Flush() error { return nil }
func (c *discardConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}
func (c *discardConn) Info() *transport.ConnInfo {
	return &transport.ConnInfo{Transport: "bench", Protocol: "amps"}
}

// BenchmarkFanOutToSessions publishes to N network sessions (without
// sockets) and waits until every session's writer has written the
// delivery. allocs/op counts the shared delivery only: assembling each
// session's header ("sids" differs per connection) reuses the writer's
// scratch buffer.
func BenchmarkFanOutToSessions(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			br := New(&Options{OutboundQueueBytes: 1 << 30})
			defer func() {
				b.StopTimer() // the teardown is not what is measured
				br.Close()
			}()
			conns := make([]*discardConn, n)
			for i := range conns {
				conns[i] = newDiscardConn(i)
				go br.ServeConn(context.Background(), conns[i])
			}
			// Wait for logon and subscribe acks.
			for _, c := range conns {
				for c.written.Load() < 2 {
				}
			}
			body := []byte(`{"id":1,"qty":5,"px":101.25}`)
			pub := br.newEndpoint(0, 0)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				br.publish(&pub, br.router("json"), "orders", nil, body)
			}
			for _, c := range conns {
				for c.written.Load() < int64(b.N+2) {
				}
			}
		})
	}
}
