package broker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
)

// sessionGoroutines counts the goroutines running a session's reader and
// a session's writer.
func sessionGoroutines() (readers, writers int) {
	for _, g := range ampstest.OtherGoroutines() {
		if strings.Contains(g, "broker.(*session).readLoop(") {
			readers++
		}
		if strings.Contains(g, "broker.(*session).writeLoop(") {
			writers++
		}
	}
	return readers, writers
}

// awaitNoWriters waits until no session has a writer running, and checks
// that at least want readers (one per session) still run. The count is
// of the whole process: a session of an earlier test may still be
// closing, so more readers than want are not an error.
func awaitNoWriters(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		readers, writers := sessionGoroutines()
		if writers == 0 {
			if readers < want {
				t.Fatalf("%d session readers, want %d", readers, want)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d idle sessions still have %d writers", readers, writers)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An idle logged-on session has a reader but no writer; a writer is
// started for what is queued to it (a delivery, a heartbeat) and the
// heartbeat watchdog still cuts off a silent client.
func TestIdleSessionHasNoWriter(t *testing.T) {
	tb := startBroker(t, nil)
	const idle = 20
	for i := 0; i < idle; i++ {
		c := tb.Dial(tb.TCPURL(), nil)
		c.Logon(fmt.Sprint("idle", i))
	}
	sub := tb.Dial(tb.TCPURL(), nil)
	sub.Logon("sub")
	sub.Subscribe("s", "t")
	pub := tb.Dial(tb.TCPURL(), nil)
	pub.Logon("pub")
	awaitNoWriters(t, idle+2)

	pub.Publish("t", []byte("to an idle session"))
	if f := sub.Next(); string(f.Body) != "to an idle session" {
		t.Fatalf("subscriber got %s %s", f.RawHeader, f.Body)
	}
	awaitNoWriters(t, idle+2)

	hb := tb.Dial(tb.TCPURL(), nil)
	hb.Logon("hb")
	hb.Heartbeat(1)
	if f := hb.Read(); f.Field("a") != "received" {
		t.Fatalf("heartbeat ack: %s", f.RawHeader)
	}
	for i := 0; i < 2; i++ {
		if f := hb.Read(); f.RawHeader != `{"c":"heartbeat"}` {
			t.Fatalf("beat %d: got %s", i, f.RawHeader)
		}
		hb.Beat()
	}
	// Between heartbeats the session is idle too.
	awaitNoWriters(t, idle+3)
	hb.ExpectClosed() // stops beating back
	awaitNoWriters(t, idle+2)
}
