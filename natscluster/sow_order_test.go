package natscluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/natscluster/internal/natstest"
	"github.com/ampsbroker/ampsbroker/protocol"
	"github.com/nats-io/nats.go/jetstream"
)

// TestOrderNeverReordersAPublisher: a SOW publish the stream could not take
// (no stream, standing for one without a leader during an election) is
// reported failed, never retried behind its publisher's later publishes:
// what is confirmed is in the stream in the publisher's order.
func TestOrderNeverReordersAPublisher(t *testing.T) {
	c := natstest.StartCluster(t, 1)
	nc := natstest.Connect(t, c.URL(0))
	bp, err := NewBackplane(nc, BackplaneConfig{NodeID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	o, err := NewOrderedBackplane(ctx, bp, SOWConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	js, _ := jetstream.New(nc)
	if err := js.DeleteStream(ctx, DefaultSOWStream); err != nil { // stands for a stream without a leader
		t.Fatal(err)
	}
	type result struct {
		seq uint64
		err error
	}
	errs := make(chan result, 2)
	order := func(seq uint64) {
		if err := o.Order(&broker.RemotePublish{MessageType: "json", Topic: "positions", ClientName: "p", Sequence: seq, Body: []byte("{}")},
			func(err error) { errs <- result{seq, err} }); err != nil {
			t.Fatal(err)
		}
	}
	order(1)
	time.Sleep(50 * time.Millisecond)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: DefaultSOWStream, Subjects: []string{o.subjects.All()}}); err != nil {
		t.Fatal(err)
	}
	order(2)
	confirmed := map[uint64]bool{}
	for range 2 {
		r := <-errs
		confirmed[r.seq] = r.err == nil
	}
	if !confirmed[2] {
		t.Fatal("the publish after the stream came back was not confirmed")
	}
	s, err := js.Stream(ctx, DefaultSOWStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for i := info.State.FirstSeq; i <= info.State.LastSeq && info.State.Msgs > 0; i++ {
		m, err := s.GetMsg(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		var rp broker.RemotePublish
		if _, err := decodeOrdered(m.Data, &rp); err != nil {
			t.Fatal(err)
		}
		got = append(got, rp.Sequence)
	}
	want := []uint64{2}
	if confirmed[1] {
		want = []uint64{1, 2}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("stream holds publisher sequences %v, confirmed %v: want %v", got, confirmed, want)
	}
}

// TestFlushPersistedAfterOrderedPublishes: a flush asking for "persisted"
// is acked after the persisted acks of the SOW publishes before it, which
// the cluster's order confirms.
func TestFlushPersistedAfterOrderedPublishes(t *testing.T) {
	c := natstest.StartCluster(t, 1)
	a, _ := startSOWNode(t, c.URL(0), "a", 1)
	pub := logon(a, "pub")
	pub.Send(&protocol.Header{Command: protocol.CmdPublish, CommandID: "p", Topic: "positions", AckType: protocol.AckPersisted}, []byte(`{"id":1,"n":1}`))
	pub.Send(&protocol.Header{Command: protocol.CmdFlush, CommandID: "f", AckType: protocol.AckPersisted}, nil)
	if first := pub.Next(); first.Header.CommandID != "p" {
		t.Fatalf("first ack %s; want the publish's persisted ack before the flush's", first)
	}
	if second := pub.Next(); second.Header.CommandID != "f" || second.Header.AckType != protocol.AckPersisted {
		t.Fatalf("second ack %s; want the flush's persisted ack", second)
	}
}

// TestShutdownSendsOrderedPersistedAcks: a graceful Shutdown lets the SOW
// publishes in the cluster's order settle, and their persisted acks go out
// before the connection closes.
func TestShutdownSendsOrderedPersistedAcks(t *testing.T) {
	c := natstest.StartCluster(t, 1)
	a, _ := startSOWNode(t, c.URL(0), "a", 1)
	pub := logon(a, "pub")
	pub.Send(&protocol.Header{Command: protocol.CmdPublish, CommandID: "p", Topic: "positions", AckType: protocol.AckProcessed + "," + protocol.AckPersisted}, []byte(`{"id":1,"n":1}`))
	pub.AwaitAck("p", protocol.AckProcessed)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := pub.Conn.ReadWithin(2 * time.Second)
		if err != nil {
			t.Fatalf("connection ended (%v) without the persisted ack of an ordered publish", err)
		}
		if m.Header.AckType == protocol.AckPersisted {
			return
		}
	}
}
