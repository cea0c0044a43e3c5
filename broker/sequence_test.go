package broker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/protocol"
)

// A publish store's replay after a reconnect (same client name, sequences
// 1..5, then 3..7 again) delivers each message once; the logon ack says
// where the store stands; every publish gets its persisted ack.
func TestPublishStoreReplay(t *testing.T) {
	tb := startBroker(t, nil)
	sub := tb.Dial(tb.TCPURL(), nil)
	sub.Logon("sub")
	sub.Subscribe("s", "orders")
	publish := func(from, to int) {
		t.Helper()
		p := tb.Dial(tb.TCPURL(), nil)
		ack := p.Logon("store")
		if from == 1 && (ack.Header.Sequence != 0 || !strings.HasSuffix(ack.Header.Bookmark, "|0|")) {
			t.Fatalf("first logon: %s", ack)
		}
		if from > 1 && (ack.Header.Sequence != 5 || !strings.HasSuffix(ack.Header.Bookmark, "|5|")) {
			t.Fatalf("logon after 5 publishes: %s, want s 5 and bm ending |5|", ack)
		}
		for i := from; i <= to; i++ {
			h := &protocol.Header{Command: protocol.CmdP, Topic: "orders", AckType: protocol.AckPersisted}
			h.Set(protocol.FieldSequence, uint64(i))
			p.Send(h, []byte(fmt.Sprintf(`{"n":%d}`, i)))
		}
		for i := from; i <= to; i++ {
			if a := p.Read(); a.Header.AckType != "persisted" || a.Header.Status != "success" || a.Header.Sequence != uint64(i) {
				t.Fatalf("persisted ack %d: %s", i, a)
			}
		}
		p.Close()
	}
	publish(1, 5)
	publish(3, 7)
	for i := 1; i <= 7; i++ {
		if m := sub.Next(); string(m.Body) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("delivery %d: %s", i, m)
		}
	}
	sub.ExpectNothing(50 * time.Millisecond)
}

// A refused publish does not use up its sequence number: its replay (the
// failure ack may have been lost) is processed.
func TestRefusedPublishKeepsItsSequence(t *testing.T) {
	tb := sowBroker(t)
	sub := tb.Dial(tb.TCPURL(), nil)
	sub.Logon("sub")
	sub.Subscribe("s", "orders")
	p := tb.Dial(tb.TCPURL(), nil)
	p.Logon("store")
	for _, body := range []string{`{"no":"key"}`, `{"id":1}`} {
		h := &protocol.Header{Command: protocol.CmdP, Topic: "orders", AckType: protocol.AckPersisted}
		h.Set(protocol.FieldSequence, 1)
		p.Send(h, []byte(body))
		p.Read()
	}
	if m := sub.Next(); string(m.Body) != `{"id":1}` {
		t.Fatalf("the replay of a refused publish: %s", m)
	}
}
