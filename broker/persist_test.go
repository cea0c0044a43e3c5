package broker_test

import (
	"testing"

	"github.com/ampsbroker/ampsbroker/broker"
)

// Stats carries the journal's figures only when there is a journal.
func TestStatsJournal(t *testing.T) {
	if st := broker.New(nil).Stats(); st.Journal != nil || st.ReplayingSubscriptions != 0 {
		t.Errorf("without a journal: Journal %+v, replaying %d", st.Journal, st.ReplayingSubscriptions)
	}
	j := broker.NewMemJournal(0, 7)
	defer j.Close()
	if _, err := j.Append(&broker.Entry{Kind: broker.EntryPublish, Topic: "t", MessageType: "json", Body: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	b := broker.New(&broker.Options{Journal: j})
	defer b.Close()
	st := b.Stats()
	if st.Journal == nil || st.Journal.Entries != 1 || st.Journal.First != 7 || st.Journal.Durable != 8 {
		t.Errorf("Stats().Journal = %+v, want 1 entry at 7, durable 8", st.Journal)
	}
}
