package listener

import (
	"bufio"
	"bytes"
	"io"
	"net"
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
	conn, nc, br := wsBenchPair(b)
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

// wsBenchPair opens a WebSocket connection over loopback and returns its
// server side and its client side, upgraded by hand, with the reader the
// client's frames are to be read through.
func wsBenchPair(b *testing.B) (transport.Conn, net.Conn, *bufio.Reader) {
	l, err := ListenWebSocket("127.0.0.1:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	results := serveHandshakes(b, l)
	nc, br := dialRawWS(b, l.Addr().String())
	return nextConn(b, results), nc, br
}

// BenchmarkWebSocketRead measures the server's read path for publishes in
// the JS client's encoding (count, header and data frames, masked as a
// client sends them) arriving back to back, many per system call, as from
// a client that batches its writes.
func BenchmarkWebSocketRead(b *testing.B) {
	for _, size := range []int{64, 1024, 16 << 10} {
		b.Run("size="+strconv.Itoa(size), func(b *testing.B) {
			conn, nc, _ := wsBenchPair(b)
			b.Cleanup(func() { conn.Close() })
			header := `{"c":"publish","t":"orders"}`
			var publish []byte
			publish = append(publish, maskedFrame(0x2, "\x02\x00\x00\x00")...)
			publish = append(publish, maskedFrame(0x1, header)...)
			publish = appendMaskedFrame(publish, 0x1, testBody(0, size))
			// A chunk of whole publishes per client write.
			const perWrite = 32
			chunk := append(maskedFrame(0x1, "text"), bytes.Repeat(publish, perWrite)...)
			rest := bytes.Repeat(publish, perWrite)
			writes := make(chan int, 1)
			wrote := make(chan error, 1)
			go func() { // ends when writes is closed or a write fails
				first := true
				for range writes {
					p := rest
					if first {
						p, first = chunk, false
					}
					if _, err := nc.Write(p); err != nil {
						wrote <- err
						return
					}
				}
				wrote <- nil
			}()
			b.SetBytes(int64(len(header) + size))
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if n%perWrite == 0 {
					writes <- 1
				}
				n++
				h, body, err := conn.ReadMessage()
				if err != nil {
					b.Fatal(err)
				}
				if len(h) != len(header) || len(body) != size {
					b.Fatalf("read %d-byte header and %d-byte body, want %d and %d", len(h), len(body), len(header), size)
				}
			}
			close(writes)
			if err := <-wrote; err != nil {
				b.Fatal(err)
			}
		})
	}
}
