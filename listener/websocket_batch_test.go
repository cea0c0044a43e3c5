package listener

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/transport"
)

// wsUpgradeRequest is a WebSocket upgrade request for /amps/json with the
// sample key of RFC 6455 §1.3.
const wsUpgradeRequest = "GET /amps/json HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"

// dialRawWS upgrades a plain TCP connection to addr by hand and returns it
// with the reader its frames are to be read through.
func dialRawWS(t testing.TB, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc := dial(t, "tcp", addr)
	if _, err := nc.Write([]byte(wsUpgradeRequest)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("upgrade response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade answered %s", resp.Status)
	}
	return nc, br
}

// serverFrame is one frame as a server sent it.
type serverFrame struct {
	opcode  byte
	payload string
}

// readServerFrame reads one frame and checks what every frame from the
// server must be (RFC 6455 §5.2): final (the broker never fragments),
// no extension bits, not masked.
func readServerFrame(br *bufio.Reader) (serverFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return serverFrame{}, err
	}
	if h[0]&0xf0 != 0x80 || h[1]&0x80 != 0 {
		return serverFrame{}, fmt.Errorf("frame header % x: want FIN, no RSV bits, no mask", h)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(br, ext[:]); err != nil {
			return serverFrame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(br, ext[:]); err != nil {
			return serverFrame{}, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(br, p); err != nil {
		return serverFrame{}, err
	}
	return serverFrame{h[0] & 0x0f, string(p)}, nil
}

// testBody is the body of delivery i: n bytes that differ between
// deliveries, so a frame out of place shows.
func testBody(i, n int) string {
	s := strings.Repeat(fmt.Sprintf("<%d>", i), n/3+1)
	return s[:n]
}

// Deliveries written between flushes arrive whole and in order, across
// every frame length form (7-bit, 16-bit, 64-bit) and frames larger than
// a batch, as read by an independent WebSocket implementation.
func TestWebSocketBatchedDeliveries(t *testing.T) {
	l, srv, _ := listenWS(t, nil)
	c, _ := dialJS(t, wsURL(l, "ws", "/amps/json"), nil)
	conn := recv(t, srv.conns, "connection")
	sizes := []int{0, 1, 125, 126, 1024, 65535, 65536, wsBatchSize - 40, wsBatchSize + 1, 200 << 10, 3}
	const deliveries = 60
	var wg sync.WaitGroup
	defer wg.Wait()
	defer conn.(transport.Aborter).Abort() // first: unblocks the writer when a read failed
	wg.Go(func() {
		for i := range deliveries {
			n := sizes[i%len(sizes)]
			if err := conn.WriteMessage(outMsg(t, fmt.Sprintf(`{"c":"p","s":%d,"l":%d}`, i, n), testBody(i, n))); err != nil {
				t.Errorf("WriteMessage %d: %v", i, err)
				return
			}
			if i%7 == 6 || i == deliveries-1 {
				if err := conn.Flush(); err != nil {
					t.Errorf("Flush after %d: %v", i, err)
					return
				}
			}
		}
	})
	for i := range deliveries {
		n := sizes[i%len(sizes)]
		want := []wsTestFrame{{true, fmt.Sprintf(`{"c":"p","s":%d,"l":%d}`, i, n)}}
		if n > 0 {
			want = append(want, wsTestFrame{true, testBody(i, n)})
		}
		if got := c.readN(len(want)); !equalFrames(got, want) {
			t.Fatalf("delivery %d: got %.80v, want %.80v", i, got, want)
		}
	}
}

// A ping that arrives while batches are being written gets its pong, and
// the pong never lands inside a batch's frames.
func TestWebSocketPingDuringBatches(t *testing.T) {
	l, srv, _ := listenWS(t, nil)
	nc, br := dialRawWS(t, l.Addr().String())
	conn := recv(t, srv.conns, "connection")
	const (
		deliveries = 120
		size       = 20 << 10 // a batch holds one delivery, the next one goes out by vectored write
		pings      = 40
	)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer conn.(transport.Aborter).Abort() // first: unblocks the writer when a read failed
	wg.Go(func() {
		for i := range deliveries {
			if err := conn.WriteMessage(outMsg(t, fmt.Sprintf(`{"c":"p","s":%d,"l":%d}`, i, size), testBody(i, size))); err != nil {
				t.Errorf("WriteMessage %d: %v", i, err)
				return
			}
			if i%3 == 2 {
				if err := conn.Flush(); err != nil {
					t.Errorf("Flush after %d: %v", i, err)
					return
				}
			}
		}
		if err := conn.Flush(); err != nil {
			t.Errorf("last Flush: %v", err)
		}
	})
	nc.SetDeadline(time.Now().Add(testTimeout))
	sent, pongs, frames := 0, 0, 0
	for frames < 2*deliveries || pongs < pings {
		// Ping after every other data frame read, while the writer is
		// still busy.
		if sent < pings && (frames%2 == 0 || frames >= 2*deliveries) {
			if _, err := nc.Write(maskedFrame(0x9, fmt.Sprintf("ping-%d", sent))); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		f, err := readServerFrame(br)
		if err != nil {
			t.Fatalf("after %d data frames and %d pongs: %v", frames, pongs, err)
		}
		switch f.opcode {
		case 0xA:
			if want := fmt.Sprintf("ping-%d", pongs); f.payload != want {
				t.Fatalf("pong %q, want %q", f.payload, want)
			}
			pongs++
		case 0x1:
			i := frames / 2
			want := fmt.Sprintf(`{"c":"p","s":%d,"l":%d}`, i, size)
			if frames%2 == 1 {
				want = testBody(i, size)
			}
			if f.payload != want {
				t.Fatalf("data frame %d = %.60q, want %.60q", frames, f.payload, want)
			}
			frames++
		default:
			t.Fatalf("frame with opcode %#x after %d data frames", f.opcode, frames)
		}
	}
}

// A write that blocks because the client reads nothing is ended by Abort
// from another goroutine, the way the broker's write timeout watchdog cuts
// off a stuck client.
func TestWebSocketBlockedWriteAborted(t *testing.T) {
	l, srv, _ := listenWS(t, nil)
	nc, _ := dialRawWS(t, l.Addr().String()) // reads nothing from here on
	conn := recv(t, srv.conns, "connection")
	const stuck = 100 * time.Millisecond // the watchdog's write timeout
	var fired atomic.Bool
	watchdog := time.AfterFunc(time.Hour, func() {
		fired.Store(true)
		conn.(transport.Aborter).Abort()
	})
	watchdog.Stop()
	defer watchdog.Stop()
	body := testBody(0, 16<<10)
	m := outMsg(t, fmt.Sprintf(`{"c":"p","l":%d}`, len(body)), body)
	start := time.Now()
	var err error
	for err == nil {
		if time.Since(start) > testTimeout {
			t.Fatalf("writes to a client that reads nothing still succeed after %v", testTimeout)
		}
		watchdog.Reset(stuck)
		if err = conn.WriteMessage(m); err == nil {
			err = conn.Flush()
		}
		watchdog.Stop()
	}
	if !fired.Load() {
		t.Fatalf("writes failed with %v before the watchdog fired", err)
	}
	// The client sees the reset once it reads.
	if _, rerr := io.Copy(io.Discard, nc); rerr == nil {
		t.Error("client read the whole stream to a clean end; want a reset")
	}
}

// Once the library has sent a close frame, no data frame follows it.
func TestWSWireNoDataAfterClose(t *testing.T) {
	for _, sniff := range []bool{true, false} {
		server, client := net.Pipe()
		go io.Copy(io.Discard, client) // ends when server closes
		w := &wsWire{Conn: server, sniffClose: sniff}
		if err := w.writeFrames([]byte{0x81, 0}, nil); err != nil {
			t.Fatalf("sniff %v: data frame before close: %v", sniff, err)
		}
		if _, err := w.Write([]byte{wsCloseFrameStart, 2, 0x03, 0xe8}); err != nil {
			t.Fatalf("sniff %v: close frame: %v", sniff, err)
		}
		err := w.writeFrames([]byte{0x81, 0}, nil)
		if sniff && !errors.Is(err, errWSCloseSent) {
			t.Errorf("data frame after the close frame: %v, want errWSCloseSent", err)
		}
		if !sniff && err != nil {
			t.Errorf("without sniffing (the library writes data itself) writeFrames = %v", err)
		}
		server.Close()
	}
}
