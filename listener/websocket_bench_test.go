package listener

import (
	"io"
	"strconv"
	"testing"

	"github.com/ampsbroker/ampsbroker/protocol"
	"github.com/ampsbroker/ampsbroker/transport"
)

// BenchmarkWebSocketWrite measures the server's write path for deliveries
// in the JS client's text encoding (a header frame and a data frame each)
// over loopback to a client that discards what it reads: WriteMessage per
// delivery and one Flush per batch of the given number of deliveries, as
// the broker's writer flushes once per batch of queued deliveries.
func BenchmarkWebSocketWrite(b *testing.B) {
	for _, size := range []int{64, 1024, 16 << 10} {
		for _, batch := range []int{1, 32} {
			b.Run("size="+strconv.Itoa(size)+"/batch="+strconv.Itoa(batch), func(b *testing.B) {
				conn := wsBenchConn(b)
				oh := protocol.Header{Command: protocol.CmdP, Topic: "orders", Bookmark: "1457924087319513207|1|"}
				oh.Set(protocol.FieldLength, uint64(size))
				var shared protocol.SharedHeader
				shared.Prepare(nil, &oh)
				body := make([]byte, size)
				for i := range body {
					body[i] = 'a' + byte(i%26)
				}
				out := &protocol.Message{Shared: &shared, SubIDs: protocol.NewSubIDs("auto2"), Body: body}
				b.SetBytes(int64(out.Len()))
				b.ReportAllocs()
				n := 0
				for b.Loop() {
					if err := conn.WriteMessage(out); err != nil {
						b.Fatal(err)
					}
					if n++; n%batch == 0 {
						if err := conn.Flush(); err != nil {
							b.Fatal(err)
						}
					}
				}
				if err := conn.Flush(); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// wsBenchConn returns the server side of a WebSocket connection over
// loopback whose client reads and discards everything. The client never
// sends a selector, so the server frames for the URL's type, json: text.
func wsBenchConn(b *testing.B) transport.Conn {
	l, err := ListenWebSocket("127.0.0.1:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	results := serveHandshakes(b, l)
	nc, br := dialRawWS(b, l.Addr().String())
	conn := nextConn(b, results)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		io.Copy(io.Discard, br)
	}()
	b.Cleanup(func() {
		conn.(transport.Aborter).Abort()
		nc.Close()
		<-drained
	})
	return conn
}
