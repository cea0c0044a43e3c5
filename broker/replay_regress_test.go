package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// Regression tests of bookmark replay, from reviews.

// A replace of a bookmark subscription whose new options are refused
// leaves the old subscription as it was.
func TestReplayReplaceRefusedKeepsOld(t *testing.T) {
	for _, o := range []string{"replace,rate=2X", "replace,top_n=0", "replace,live,rate=5"} {
		t.Run(o, func(t *testing.T) {
			b, pub, _ := replaySetup(t, 3)
			c := dialTCP(t, b.TCPAddr)
			c.Logon("sub")
			subscribeBM(c, "s", "t", "0", nil)
			readUntil(t, c, untilAck(protocol.AckCompleted))
			before := b.Broker.Stats().Subscriptions
			c.SendJSON(map[string]any{"c": "subscribe", "cid": "r", "sub_id": "s", "t": "t", "bm": "0", "o": o, "a": "processed"}, nil)
			if ack := c.AwaitAck("r", protocol.AckProcessed); ack.Header.Status != protocol.StatusFailure {
				t.Fatalf("replace: %s, want a failure", ack)
			}
			publishN(t, pub, "t", 3, 4)
			m := nextWithin(c, 2*time.Second)
			if m == nil || string(m.Body) != `{"n":3}` {
				t.Errorf("after a refused replace the old subscription got %v, want {\"n\":3}", m)
			}
			if n := b.Broker.Stats().Subscriptions; n != before {
				t.Errorf("%d subscriptions after the refused replace, %d before", n, before)
			}
		})
	}
}

// A replayed message larger than the queue's free space waits for the
// queue to drain: the subscriber, one message behind, is not cut off as
// a slow consumer.
func TestReplayBigMessageNeverOverflows(t *testing.T) {
	b, _ := journalBroker(t, nil)
	ctx := t.Context()
	pub, err := b.Broker.Connect(ctx, "pub", nil)
	if err != nil {
		t.Fatal(err)
	}
	small := fmt.Sprintf(`{"p":"%s"}`, strings.Repeat("x", 100<<10))
	big := fmt.Sprintf(`{"p":"%s"}`, strings.Repeat("y", 950<<10))
	for _, m := range []string{small, big} {
		if err := pub.Publish(ctx, "t", []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := b.Broker.Connect(ctx, "sub", &broker.ClientOptions{QueueBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	got := make(chan int, 2)
	var once sync.Once
	if _, err := sub.Subscribe(ctx, "t", func(m broker.Message) {
		once.Do(func() { <-release }) // the handler is busy with the first one for a moment
		got <- len(m.Data)
	}, &broker.SubscribeOptions{Bookmark: "0"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	close(release)
	for i := 0; i < 2; i++ {
		select {
		case <-got:
		case <-sub.Done():
			t.Fatalf("subscriber closed after %d replayed messages: %v", i, sub.Err())
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of 2", i)
		}
	}
}

// top_n larger than what the journal held: the replay's messages, its
// completed ack, and the subscription is over (top_n caps a replay, not the
// live messages after it); its id is free again.
func TestReplayTopNLargerThanTheJournal(t *testing.T) {
	b, pub, _ := replaySetup(t, 1)
	c := dialTCP(t, b.TCPAddr)
	c.Logon("sub")
	subscribeBM(c, "s", "t", "0", map[string]any{"o": "top_n=3"})
	if r := readUntil(t, c, untilAck(protocol.AckCompleted)); len(r.bodies) != 1 {
		t.Fatalf("replay with top_n=3 of a one-message journal: %v", r.bodies)
	}
	publishN(t, pub, "t", 1, 3)
	if m := nextWithin(c, 100*time.Millisecond); m != nil {
		t.Errorf("after the capped replay completed: %s", m)
	}
	c.Subscribe("s", "t")
}

// "replace,pause" naming an existing subscription is a replace (new
// filter) entered paused, not a pause alone.
func TestReplayReplacePauseIsAReplace(t *testing.T) {
	b, pub, _ := replaySetup(t, 1)
	c := dialTCP(t, b.TCPAddr)
	c.Logon("sub")
	subscribeBM(c, "s", "t", "0", nil)
	readUntil(t, c, untilAck(protocol.AckCompleted))
	c.SendJSON(map[string]any{"c": "subscribe", "cid": "r", "sub_id": "s", "t": "t", "o": "replace,pause", "filter": "/n > 100", "a": "processed"}, nil)
	ack := c.AwaitAck("r", protocol.AckProcessed)
	c.SendJSON(map[string]any{"c": "subscribe", "cid": "q", "sub_id": "s", "o": "resume", "a": "processed"}, nil)
	c.AwaitAck("q", protocol.AckProcessed)
	publishN(t, pub, "t", 1, 2)
	if m := nextWithin(c, 300*time.Millisecond); ack.Header.Status == protocol.StatusSuccess && m != nil {
		t.Errorf("replace,pause acked %s but the new filter /n > 100 was not applied: got %s", ack.Header.Status, m)
	}
}

// resume with no sub_id is refused.
func TestReplayResumeNeedsSubID(t *testing.T) {
	b, _, _ := replaySetup(t, 1)
	c := dialTCP(t, b.TCPAddr)
	c.Logon("sub")
	c.SendJSON(map[string]any{"c": "subscribe", "cid": "r", "o": "resume", "a": "processed"}, nil)
	if ack := c.AwaitAck("r", protocol.AckProcessed); ack.Header.Status == protocol.StatusSuccess {
		t.Errorf("resume without sub_id: %s", ack)
	}
}

// rate=NaN is refused.
func TestReplayRateNaNRefused(t *testing.T) {
	b, _, _ := replaySetup(t, 1)
	c := dialTCP(t, b.TCPAddr)
	c.Logon("sub")
	subscribeBM(c, "s", "t", "0", map[string]any{"o": "live,rate=NaN", "a": "processed"})
	if ack := c.AwaitAck("s", protocol.AckProcessed); ack.Header.Status == protocol.StatusSuccess {
		t.Errorf("rate=NaN with live accepted: %s", ack)
	}
}

// Shutdown with paused replays (session and in-process) returns.
func TestReplayShutdownWithPausedReplays(t *testing.T) {
	b, _, _ := replaySetup(t, 3)
	c := dialTCP(t, b.TCPAddr)
	c.Logon("sub")
	subscribeBM(c, "s", "t", "0", map[string]any{"o": "pause"})
	c.AwaitAck("s", protocol.AckProcessed)
	ic, err := b.Broker.Connect(t.Context(), "ic", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		go ic.Subscribe(context.Background(), "t", func(broker.Message) {}, &broker.SubscribeOptions{Bookmark: "0"})
	}
	go ic.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Broker.Shutdown(ctx); err != nil && !errors.Is(err, broker.ErrBrokerClosed) {
		t.Fatalf("Shutdown: %v", err)
	}
}

func nextWithin(c *ampstest.Client, d time.Duration) *ampstest.Message {
	end := time.Now().Add(d)
	for {
		m, err := c.Conn.ReadWithin(time.Until(end))
		if err != nil {
			return nil
		}
		if m.Header.Command != protocol.CmdHeartbeat {
			return &m
		}
	}
}

// Ranges and top_n subscriptions that reached their end leave the
// session's table: they do not count against MaxSubscriptions.
func TestReplayEndedSubscriptionsFreeTheirPlace(t *testing.T) {
	b, _ := journalBroker(t, &broker.Options{MaxSubscriptions: 2})
	pub := dialTCP(t, b.TCPAddr)
	pub.Logon("pub")
	publishN(t, pub, "t", 0, 3)
	c := dialTCP(t, b.TCPAddr)
	c.Logon("sub")
	for i := 0; i < 4; i++ {
		id := fmt.Sprint("q", i)
		c.SendJSON(map[string]any{"c": "subscribe", "cid": id, "sub_id": id, "t": "t", "bm": "0", "o": "top_n=1", "a": "processed,completed"}, nil)
		if ack := c.AwaitAck(id, protocol.AckProcessed); ack.Header.Status != protocol.StatusSuccess {
			t.Fatalf("top_n query %d (each over before the next): %s", i, ack)
		}
		c.AwaitAck(id, protocol.AckCompleted)
	}
}

// A paused bookmark subscription (here from NOW, replaying nothing) does
// not exempt the connection's plain live subscriptions from the age
// limit: only replayed messages are.
func TestReplayLeavesLiveMessagesToTheAgeLimit(t *testing.T) {
	b, _ := journalBroker(t, &broker.Options{MaxMessageAge: 50 * time.Millisecond})
	c := dialTCP(t, b.TCPAddr)
	c.Logon("sub")
	c.Subscribe("live", "plain")
	subscribeBM(c, "s", "t", "0|1|", map[string]any{"o": "pause", "a": "processed"})
	c.AwaitAck("s", protocol.AckProcessed)
	pub := dialTCP(t, b.TCPAddr)
	pub.Logon("pub")
	pad := strings.Repeat("x", 4000)
	for i := 0; i < 4000; i++ { // 16 MB: more than socket buffers hold
		pub.Publish("plain", []byte(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, pad)))
	}
	pub.Flush("f")
	time.Sleep(time.Second) // 20 times the age limit, not reading
	if n := b.Broker.Stats().SlowConsumers; n != 1 {
		t.Errorf("%d slow consumers, want 1: a paused replay exempted live traffic from the age limit", n)
	}
}

// A replace without "bm" of a bookmark subscription that is behind goes
// on from its cursor: what it had not reached is still sent.
func TestReplayReplaceWithoutBookmarkGoesOn(t *testing.T) {
	b, pub, _ := replaySetup(t, 3)
	c := dialTCP(t, b.TCPAddr)
	c.Logon("sub")
	subscribeBM(c, "s", "t", "0", map[string]any{"o": "pause", "a": "processed"})
	c.AwaitAck("s", protocol.AckProcessed)
	c.SendJSON(map[string]any{"c": "subscribe", "cid": "r", "sub_id": "s", "t": "t", "o": "replace", "filter": "/n >= 0", "a": "processed"}, nil)
	if ack := c.AwaitAck("r", protocol.AckProcessed); ack.Header.Status != protocol.StatusSuccess {
		t.Fatal(ack)
	}
	publishN(t, pub, "t", 3, 4)
	var got []string
	for m := nextWithin(c, 300*time.Millisecond); m != nil; m = nextWithin(c, 300*time.Millisecond) {
		if m.Header.Command == protocol.CmdP {
			got = append(got, string(m.Body))
		}
	}
	if len(got) != 4 {
		t.Errorf("after replace without bm: %v, want the 3 unreplayed messages and the new one", got)
	}
}
