package natscluster

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/journal/journaltest"
	"github.com/ampsbroker/ampsbroker/natscluster/internal/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// streamMsgs is the number of messages stream holds.
func streamMsgs(t *testing.T, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Msgs
}

// TestOrderedResendStoredOnce: a SOW publish resent by its publisher (same
// client name and sequence) through another node, as after a lost ack, is
// stored and applied once, and both are confirmed; a publish of another
// client with the same sequence is not taken for it. A stream made with
// another duplicate window gets the configured one.
func TestOrderedResendStoredOnce(t *testing.T) {
	c := natstest.StartCluster(t, 1)
	ctx := context.Background()
	nc := natstest.Connect(t, c.URL(0))
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: DefaultSOWStream, Subjects: []string{DefaultSOWPrefix + ".>"}, Duplicates: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	const window = 30 * time.Second
	var nodes []*OrderedBackplane
	for _, id := range []string{"a", "b"} {
		bp, err := NewBackplane(natstest.Connect(t, c.URL(0)), BackplaneConfig{NodeID: id})
		if err != nil {
			t.Fatal(err)
		}
		o, err := NewOrderedBackplane(ctx, bp, SOWConfig{DuplicateWindow: window})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { o.Close() })
		nodes = append(nodes, o)
	}
	s, err := js.Stream(ctx, DefaultSOWStream)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.Duplicates; got != window {
		t.Fatalf("stream's duplicate window %v, want the configured %v", got, window)
	}
	var applied atomic.Int64
	if err := nodes[0].StartOrdered(func(*broker.RemotePublish) { applied.Add(1) }); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 3)
	name := "pub \r\n|ü" // any client name fits the header
	for i, rp := range []broker.RemotePublish{
		{MessageType: "json", Topic: "positions", ClientName: name, Sequence: 7, Delta: true, Body: []byte(`{"id":1,"n":1}`)},
		{MessageType: "json", Topic: "positions", ClientName: name, Sequence: 7, Delta: true, Body: []byte(`{"id":1,"n":1}`)},
		{MessageType: "json", Topic: "positions", ClientName: name + "2", Sequence: 7, Body: []byte(`{"id":1,"n":2}`)},
	} {
		if err := nodes[i%2].Order(&rp, func(err error) { done <- err }); err != nil {
			t.Fatal(err)
		}
		err := <-done
		if i == 1 && !errors.Is(err, broker.ErrAlreadyOrdered) || i != 1 && err != nil {
			t.Fatalf("publish %d confirmed with %v; want ErrAlreadyOrdered for the resend, else nil", i, err)
		}
	}
	if n := streamMsgs(t, js, DefaultSOWStream); n != 2 {
		t.Fatalf("stream holds %d messages after a publish, its resend and another client's; want 2", n)
	}
	deadline := time.Now().Add(readyWait)
	for applied.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // a third apply would show by now
	if n := applied.Load(); n != 2 {
		t.Fatalf("%d publishes applied, want 2", n)
	}
}

// TestJournalResendStoredOnce: a sequenced entry appended again (its
// publisher resent it through another node) is stored once and both
// appends get its position; another client's entry with the same
// sequence is an entry of its own, and so are removals sharing one.
func TestJournalResendStoredOnce(t *testing.T) {
	c := natstest.StartCluster(t, 1)
	cfg := journalConfig(1)
	a := openJournal(t, natstest.Connect(t, c.URL(0)), cfg)
	b := openJournal(t, natstest.Connect(t, c.URL(0)), cfg)
	e := journaltest.Entry(0)
	e.ClientName = "pub \r\n|ü"
	first, err := a.Append(e)
	if err != nil {
		t.Fatal(err)
	}
	again := *e
	again.Time = time.Time{}
	pos, err := b.Append(&again)
	if err != nil {
		t.Fatal(err)
	}
	if pos != first {
		t.Fatalf("a resent entry got position %d, the first append %d", pos, first)
	}
	other := *e
	other.ClientName += "2"
	other.Time = time.Time{}
	if pos, err = b.Append(&other); err != nil || pos == first {
		t.Fatalf("another client's entry with the same sequence: position %d (first %d), %v", pos, first, err)
	}
	// A sow_delete over two topics journals a removal per topic, both with
	// the command's sequence: both are stored.
	for _, topic := range []string{"a", "b"} {
		del := broker.Entry{Kind: broker.EntrySOWDelete, Topic: topic, MessageType: "json", ClientName: e.ClientName, Sequence: 9, Body: []byte(`["k"]`)}
		if _, err := a.Append(&del); err != nil {
			t.Fatal(err)
		}
	}
	js, _ := jetstream.New(natstest.Connect(t, c.URL(0)))
	if n := streamMsgs(t, js, cfg.Stream); n != 4 {
		t.Fatalf("journal stream holds %d messages, want 4 (a publish, another client's, two removals)", n)
	}
	if s, _ := js.Stream(context.Background(), cfg.Stream); s.CachedInfo().Config.Duplicates != DefaultDuplicateWindow {
		t.Fatalf("journal stream's duplicate window %v, want %v", s.CachedInfo().Config.Duplicates, DefaultDuplicateWindow)
	}
}
