package listener

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Close returns within the close timeout even while a data write is
// blocked on a client that reads nothing: the write holds the wire, and
// the close frame cannot go out behind it until the write ends.
func TestWebSocketCloseDuringBlockedWrite(t *testing.T) {
	l, srv, _ := listenWS(t, nil)
	nc, _ := dialRawWS(t, l.Addr().String())
	defer nc.Close()
	conn := recv(t, srv.conns, "connection")
	body := testBody(0, 16<<10)
	m := outMsg(t, fmt.Sprintf(`{"c":"p","l":%d}`, len(body)), body)
	go func() {
		for {
			if err := conn.WriteMessage(m); err != nil {
				return
			}
			if err := conn.Flush(); err != nil {
				return
			}
		}
	}()
	time.Sleep(500 * time.Millisecond) // the writer is now blocked
	done := make(chan error, 1)
	go func() { done <- conn.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close = %v; a client too slow to take the close frame is not an error of ours", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("Close still blocked after 5s (close timeout %v) behind a blocked write", WebSocketCloseTimeout)
	}
}

// A Close while the reading goroutine hands a message to the decoder
// must not read into, or give back, the read buffer that message lies in
// (the race detector reports it if it does): Close reads the client's
// answer itself only when no reader holds the frame reader.
func TestWebSocketCloseWhileReaderFeeds(t *testing.T) {
	for round := 0; round < 40; round++ {
		l, srv, _ := listenWS(t, nil)
		nc, _ := dialRawWS(t, l.Addr().String())
		conn := recv(t, srv.conns, "connection")
		// The client never answers the close frame: a short wait keeps
		// the rounds quick.
		conn.(*wsConn).closeTimeout = 50 * time.Millisecond
		var burst []byte
		body := strings.Repeat("x", 20<<10)
		for i := 0; i < 4; i++ {
			burst = appendMaskedFrame(burst, wsOpBinary, string(binary.LittleEndian.AppendUint32(nil, 2)))
			burst = appendMaskedFrame(burst, wsOpText, fmt.Sprintf(`{"c":"p","t":"t","l":%d}`, len(body)))
			burst = appendMaskedFrame(burst, wsOpText, body)
		}
		stop := make(chan struct{})
		go func() {
			nc.Write(appendMaskedFrame(nil, wsOpText, "text"))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := nc.Write(burst); err != nil {
					return
				}
			}
		}()
		go func() {
			for {
				select {
				case <-srv.msgs:
				case <-stop:
					return
				}
			}
		}()
		time.Sleep(20 * time.Millisecond)
		conn.Close()
		close(stop)
		nc.Close()
	}
}
