package broker_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/journal/journaltest"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// entrySummary is what TestJournaledPublishes compares of an entry.
type entrySummary struct {
	Kind        broker.EntryKind
	Topic, Type string
	Client, Key string
	Body        string
}

func TestJournaledPublishes(t *testing.T) {
	j := broker.NewMemJournal(1<<20, 1)
	b := broker.New(&broker.Options{
		Journal: j,
		// Only topics starting with "j" are journaled.
		JournalTopics: func(mt, topic string) bool { return mt == "json" && topic[0] == 'j' },
		SOWTopics:     []broker.SOWTopic{{Name: "jsow", Keys: []string{"/id"}}, {Name: "sow", Keys: []string{"/id"}}},
	})
	defer b.Close()
	ctx := context.Background()
	c, err := b.Connect(ctx, "pub", nil)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Publish(ctx, "jplain", []byte(`{"a":1}`)))
	must(c.Publish(ctx, "plain", []byte(`{"a":2}`)))             // not journaled
	must(c.Publish(ctx, "/AMPS/devnull", []byte(`{"a":3}`)))     // discarded
	must(c.Publish(ctx, "jsow", []byte(`{"id":1,"v":1,"w":1}`))) // SOW
	must(c.DeltaPublish(ctx, "jsow", []byte(`{"id":1,"v":2}`)))  // merged
	must(c.Publish(ctx, "sow", []byte(`{"id":1}`)))              // SOW, not journaled
	must(c.Publish(ctx, "jsow", []byte(`{"id":2}`)))
	if n, err := c.SOWDelete(ctx, "jsow", "/id = 2"); err != nil || n != 1 {
		t.Fatalf("sow_delete: %d, %v", n, err)
	}
	if n, err := c.SOWDelete(ctx, "jsow", "/id = 99"); err != nil || n != 0 {
		t.Fatalf("sow_delete of nothing: %d, %v", n, err) // journals nothing
	}
	if n, err := c.SOWDeleteKeys(ctx, "sow", "x"); err != nil || n != 0 {
		t.Fatalf("sow_delete by key: %d, %v", n, err)
	}
	var got []entrySummary
	var last broker.Entry
	for _, e := range journaltest.ReadAll(t, j) {
		if e.Position <= last.Position || e.Time.Before(last.Time) {
			t.Errorf("entry %d at %v after %d at %v", e.Position, e.Time, last.Position, last.Time)
		}
		last = e
		got = append(got, entrySummary{e.Kind, e.Topic, e.MessageType, e.ClientName, e.SOWKey, string(e.Body)})
	}
	key := got[1].Key // the computed key of record 1
	key2 := got[3].Key
	want := []entrySummary{
		{broker.EntryPublish, "jplain", "json", "pub", "", `{"a":1}`},
		{broker.EntryPublish, "jsow", "json", "pub", key, `{"id":1,"v":1,"w":1}`},
		{broker.EntryPublish, "jsow", "json", "pub", key, `{"id":1,"v":2,"w":1}`},
		{broker.EntryPublish, "jsow", "json", "pub", key2, `{"id":2}`},
		{broker.EntrySOWDelete, "jsow", "json", "pub", "", `["` + key2 + `"]`},
	}
	if key == "" || key2 == "" || key == key2 {
		t.Errorf("SOW keys %q, %q", key, key2)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("journal (-want +got):\n%s", diff)
	}
}

func TestJournalFailureRefusesPublish(t *testing.T) {
	j := broker.NewMemJournal(1<<20, 1)
	b := broker.New(&broker.Options{Journal: j, SOWTopics: []broker.SOWTopic{{Name: "s", Keys: []string{"/id"}}}})
	defer b.Close()
	ctx := context.Background()
	c, err := b.Connect(ctx, "pub", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan broker.Message, 4)
	if _, err := c.Subscribe(ctx, "t", func(m broker.Message) { got <- m }, nil); err != nil {
		t.Fatal(err)
	}
	j.Close()
	if err := c.Publish(ctx, "t", []byte(`{}`)); err == nil {
		t.Fatal("publish with a closed journal succeeded")
	}
	if err := c.Publish(ctx, "s", []byte(`{"id":1}`)); err == nil {
		t.Fatal("SOW publish with a closed journal succeeded")
	}
	if recs, err := c.SOW(ctx, "s", nil); err != nil || len(recs) != 0 {
		t.Fatalf("SOW after a refused publish: %d records, %v", len(recs), err)
	}
	select {
	case m := <-got:
		t.Fatalf("a message the journal refused was delivered: %s", m.Data)
	case <-time.After(50 * time.Millisecond):
	}
}

// TestRegexDeliveryOrderIsJournalOrder: a regex subscriber takes two
// topics that two publishers publish to at once; it gets their messages in
// the journal's order (replay spec §7.1: the journal order is the
// delivery order), which its bookmarks show.
func TestRegexDeliveryOrderIsJournalOrder(t *testing.T) {
	j := broker.NewMemJournal(0, 1)
	b := broker.New(&broker.Options{Journal: j})
	defer b.Close()
	ctx := context.Background()
	sc, err := b.Connect(ctx, "sub", nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 5000
	var got []uint64 // the handler runs on one goroutine
	done := make(chan struct{})
	_, err = sc.Subscribe(ctx, "a.*", func(m broker.Message) {
		_, seq, _ := strings.Cut(strings.TrimSuffix(m.Bookmark, "|"), "|")
		v, err := strconv.ParseUint(seq, 10, 64)
		if err != nil {
			t.Errorf("bookmark %q: %v", m.Bookmark, err)
		}
		if got = append(got, v); len(got) == 2*n {
			close(done)
		}
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, topic := range []string{"a1", "a2"} {
		c, err := b.Connect(ctx, "p"+topic, nil)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				if err := c.Publish(ctx, topic, []byte(`{}`)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%d of %d deliveries", len(got), 2*n)
	}
	back := 0
	for i := 1; i < len(got); i++ {
		if got[i] < got[i-1] {
			back++
		}
	}
	if back > 0 {
		t.Errorf("%d of %d deliveries to a regex subscriber came before an earlier journal entry", back, len(got))
	}
}

func TestJournalEntryRecordsPublisher(t *testing.T) {
	j := broker.NewMemJournal(1<<20, 1)
	b := startBroker(t, &broker.Options{Journal: j})
	c := dialTCP(t, b.TCPAddr)
	c.LogonWith(&protocol.Header{ClientName: "app", UserID: "alice"})
	c.SendJSON(map[string]any{"c": "p", "t": "t", "s": 3, "x": "corr"}, []byte(`{}`))
	c.Flush("f")
	got := journaltest.ReadAll(t, j)
	if len(got) != 1 || got[0].ClientName != "app" || got[0].User != "alice" || got[0].Sequence != 3 || got[0].CorrelationID != "corr" {
		t.Errorf("journal %+v, want one entry by app (user alice), s 3, x corr", got)
	}
}
