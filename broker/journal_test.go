package broker_test

import (
	"errors"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/journal/journaltest"
)

func TestMemJournalContracts(t *testing.T) {
	journaltest.Run(t, func(t *testing.T) (broker.Journal, func()) {
		return broker.NewMemJournal(0, 0), nil
	})
}

func TestMemJournalBoundDropsOldest(t *testing.T) {
	j := broker.NewMemJournal(2000, 100)
	defer j.Close()
	c, err := j.NewCursor(100)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := j.Append(journaltest.Entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	st := j.Stats()
	if st.Bytes > 2000 || st.Next != 200 || st.First <= 100 || st.Entries != int64(st.Next-st.First) {
		t.Fatalf("stats after overflow: %+v", st)
	}
	if _, err := c.Next(); !errors.Is(err, broker.ErrCursorOverrun) {
		t.Fatalf("cursor under dropped entries: %v, want ErrCursorOverrun", err)
	}
}

func TestMemJournalTruncateKeepsCursor(t *testing.T) {
	j := broker.NewMemJournal(0, 1)
	defer j.Close()
	for i := range 10 {
		j.Append(journaltest.Entry(i))
	}
	c, _ := j.NewCursor(4)
	first, err := j.Truncate(8)
	if err != nil || first != 4 {
		t.Fatalf("Truncate(8) with a cursor at 4: first %d, %v", first, err)
	}
	c.Close()
	if first, _ = j.Truncate(8); first != 8 {
		t.Fatalf("Truncate(8) without cursors: first %d", first)
	}
	if j.HighWaters()["pub0"] != 10 {
		t.Fatalf("high-water marks lost by Truncate: %v", j.HighWaters())
	}
}

func TestBookmarkRoundTrip(t *testing.T) {
	id := broker.JournalID("inst")
	bm := broker.FormatBookmark(id, 1764626846000000007)
	pos, err := broker.ParseBookmark(id, bm)
	if err != nil || pos != 1764626846000000007 {
		t.Fatalf("ParseBookmark(%q) = %d, %v", bm, pos, err)
	}
	for _, bad := range []string{"", "1|2", "x|2|", "1|2|3|", broker.FormatBookmark(id+1, 5)} {
		if _, err := broker.ParseBookmark(id, bad); !errors.Is(err, broker.ErrBookmarkNotFound) {
			t.Errorf("ParseBookmark(%q): %v, want ErrBookmarkNotFound", bad, err)
		}
	}
	if broker.FirstPositionSeed(time.Unix(5, 0)) != 5_000_000_000 {
		t.Fatal("FirstPositionSeed")
	}
}
