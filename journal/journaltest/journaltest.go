// Package journaltest checks that a broker.Journal keeps the interface's
// contracts; each implementation runs Run from its tests.
package journaltest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
)

// Open returns a new, empty journal for one subtest, and a function that
// makes everything appended so far durable (nil when Append alone does).
type Open func(t *testing.T) (j broker.Journal, sync func())

// Entry returns the i-th test entry: sequenced by client "pub<i%3>".
func Entry(i int) *broker.Entry {
	return &broker.Entry{
		Kind: broker.EntryPublish, Topic: fmt.Sprintf("topic%d", i%5), MessageType: "json",
		ClientName: fmt.Sprintf("pub%d", i%3), Sequence: uint64(i + 1),
		CorrelationID: fmt.Sprint("cid", i), SOWKey: fmt.Sprint("k", i), User: "u",
		Expiry: time.Unix(int64(1e9+i), 0), Body: []byte(fmt.Sprintf(`{"i":%d}`, i)),
	}
}

// Same reports how got differs from want (positions and times included).
func Same(got, want *broker.Entry) error {
	if got.Position != want.Position || !got.Time.Equal(want.Time) || got.Kind != want.Kind ||
		got.Topic != want.Topic || got.MessageType != want.MessageType ||
		got.ClientName != want.ClientName || got.Sequence != want.Sequence ||
		got.CorrelationID != want.CorrelationID || got.SOWKey != want.SOWKey ||
		got.User != want.User || !got.Expiry.Equal(want.Expiry) || !bytes.Equal(got.Body, want.Body) {
		return fmt.Errorf("entry differs:\n got %+v\nwant %+v", *got, *want)
	}
	return nil
}

// ReadAll returns every durable entry of j from its first retained
// position, failing t on any error but the caught-up end.
func ReadAll(t testing.TB, j broker.Journal) []broker.Entry {
	t.Helper()
	first, _ := j.Bounds()
	return ReadFrom(t, j, first)
}

// ReadFrom returns every durable entry of j from position from on,
// failing t on any error but the caught-up end.
func ReadFrom(t testing.TB, j broker.Journal, from broker.Position) []broker.Entry {
	t.Helper()
	c, err := j.NewCursor(from)
	if err != nil {
		t.Fatalf("NewCursor(%d): %v", from, err)
	}
	defer c.Close()
	var out []broker.Entry
	for {
		e, err := c.Next()
		if errors.Is(err, broker.ErrCaughtUp) {
			return out
		}
		if err != nil {
			t.Fatalf("Next at %d: %v", c.Position(), err)
		}
		out = append(out, e)
	}
}

// SameEntries fails t unless got and want hold the same entries (Same),
// in the same order.
func SameEntries(t testing.TB, got, want []broker.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range got {
		if err := Same(&got[i], &want[i]); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
}

// Run checks j's contracts.
func Run(t *testing.T, open Open) {
	t.Run("AppendRead", func(t *testing.T) { appendRead(t, open) })
	t.Run("FindTime", func(t *testing.T) { findTime(t, open) })
	t.Run("WaitDurable", func(t *testing.T) { waitDurable(t, open) })
	t.Run("Closed", func(t *testing.T) { closed(t, open) })
	t.Run("DurableAtClose", func(t *testing.T) { durableAtClose(t, open) })
	t.Run("SecondClose", func(t *testing.T) { secondClose(t, open) })
	t.Run("Microseconds", func(t *testing.T) { microseconds(t, open) })
}

// microseconds: Append keeps times to the microsecond and never lets them
// go backwards.
func microseconds(t *testing.T, open Open) {
	j, sync := open(t)
	defer j.Close()
	at := time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.UTC)
	e1 := Entry(0)
	e1.Time = at
	e2 := Entry(1)
	e2.Time = at.Add(-time.Second)
	for _, e := range []*broker.Entry{e1, e2} {
		if _, err := j.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	if sync != nil {
		sync()
	}
	want := at.Truncate(time.Microsecond)
	for i, e := range ReadAll(t, j) {
		if !e.Time.Equal(want) {
			t.Errorf("entry %d: time %v, want %v (to the microsecond, not before the previous entry)", i, e.Time, want)
		}
	}
}

func appendAll(t *testing.T, j broker.Journal, n int) []broker.Entry {
	t.Helper()
	var out []broker.Entry
	for i := range n {
		e := Entry(i)
		pos, err := j.Append(e)
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		if pos != e.Position || (i > 0 && pos <= out[i-1].Position) {
			t.Fatalf("Append %d: position %d (entry says %d)", i, pos, e.Position)
		}
		out = append(out, *e)
	}
	return out
}

func appendRead(t *testing.T, open Open) {
	j, sync := open(t)
	defer j.Close()
	want := appendAll(t, j, 50)
	if sync != nil {
		sync()
	}
	first, next := j.Bounds()
	if first != want[0].Position || next <= want[49].Position || j.Durable() != next {
		t.Fatalf("Bounds %d,%d Durable %d; appended %d..%d", first, next, j.Durable(), want[0].Position, want[49].Position)
	}
	c, err := j.NewCursor(want[10].Position)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 10; i < 50; i++ {
		e, err := c.Next()
		if err != nil {
			t.Fatalf("Next at %d: %v", i, err)
		}
		if err := Same(&e, &want[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Next(); !errors.Is(err, broker.ErrCaughtUp) {
		t.Fatalf("Next at the tail: %v, want ErrCaughtUp", err)
	}
	if _, err := j.NewCursor(next + 1); !errors.Is(err, broker.ErrBookmarkNotFound) {
		t.Fatalf("NewCursor beyond the tail: %v", err)
	}
	if _, err := j.NewCursor(first - 1); !errors.Is(err, broker.ErrBookmarkNotFound) {
		t.Fatalf("NewCursor before the head: %v", err)
	}
	if err := j.Err(); err != nil {
		t.Fatalf("Err of a healthy journal: %v", err)
	}
	hw := j.HighWaters()
	if hw["pub0"] != 49 || hw["pub1"] != 50 || hw["pub2"] != 48 || len(hw) != 3 {
		t.Fatalf("HighWaters %v", hw)
	}
}

func findTime(t *testing.T, open Open) {
	j, sync := open(t)
	defer j.Close()
	base := time.Unix(2e9, 0)
	var pos []broker.Position
	for i := range 10 {
		e := Entry(i)
		e.Time = base.Add(time.Duration(i) * time.Second)
		if i == 5 {
			e.Time = base // earlier than its predecessor: raised to it
		}
		p, err := j.Append(e)
		if err != nil {
			t.Fatal(err)
		}
		pos = append(pos, p)
	}
	if sync != nil {
		sync()
	}
	for _, tc := range []struct {
		at   time.Time
		want broker.Position
	}{
		{base.Add(-time.Hour), pos[0]},
		{base, pos[0]},
		{base.Add(3 * time.Second), pos[3]},
		{base.Add(3500 * time.Millisecond), pos[4]},
		{base.Add(4 * time.Second), pos[4]},
		{base.Add(9 * time.Second), pos[9]},
		{base.Add(time.Hour), pos[9] + 1},
	} {
		got, err := j.FindTime(tc.at)
		if err != nil || got != tc.want {
			t.Errorf("FindTime(%v) = %d, %v; want %d", tc.at, got, err, tc.want)
		}
	}
	// Entries not yet durable count too: the answer is the first entry at
	// or after t whatever its state, and Bounds' next only past them all.
	var late []broker.Position
	for i := range 2 {
		e := Entry(10 + i)
		e.Time = base.Add(time.Duration(20+i) * time.Second)
		p, err := j.Append(e)
		if err != nil {
			t.Fatal(err)
		}
		late = append(late, p)
	}
	_, next := j.Bounds()
	for _, tc := range []struct {
		at   time.Time
		want broker.Position
	}{
		{base.Add(10 * time.Second), late[0]},
		{base.Add(21 * time.Second), late[1]},
		{base.Add(time.Hour), next},
	} {
		got, err := j.FindTime(tc.at)
		if err != nil || got != tc.want {
			t.Errorf("FindTime(%v) with entries appended after the last sync = %d, %v; want %d (next %d)", tc.at, got, err, tc.want, next)
		}
	}
}

func waitDurable(t *testing.T, open Open) {
	j, sync := open(t)
	defer j.Close()
	_, next := j.Bounds()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := broker.WaitDurable(ctx, j, next)
		done <- err
	}()
	appendAll(t, j, 2)
	if sync != nil {
		sync()
	}
	if err := <-done; err != nil {
		t.Fatalf("WaitDurable: %v", err)
	}
	if _, n := j.Bounds(); j.Durable() != n || n <= next {
		t.Fatalf("Durable %d after sync, want the next position %d (above %d)", j.Durable(), n, next)
	}
}

func closed(t *testing.T, open Open) {
	j, _ := open(t)
	appendAll(t, j, 3)
	first, _ := j.Bounds()
	c, err := j.NewCursor(first)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(Entry(0)); !errors.Is(err, broker.ErrJournalClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if _, err := c.Next(); !errors.Is(err, broker.ErrJournalClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	if _, err := broker.WaitDurable(context.Background(), j, 1<<62); !errors.Is(err, broker.ErrJournalClosed) {
		t.Fatalf("WaitDurable after Close: %v", err)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// durableAtClose waits for an entry that only Close makes durable: the
// wait must end with the entry durable, not with ErrJournalClosed.
func durableAtClose(t *testing.T, open Open) {
	j, _ := open(t)
	want := appendAll(t, j, 3)
	last := want[2].Position
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d, err := broker.WaitDurable(ctx, j, last)
		if err == nil && d <= last {
			err = fmt.Errorf("WaitDurable returned %d, not above %d", d, last)
		}
		done <- err
	}()
	// Let the waiter block before Close (if it did not, the test still
	// holds, it only checks less).
	time.Sleep(20 * time.Millisecond)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("WaitDurable for an entry Close made durable: %v", err)
	}
	if d := j.Durable(); d <= last {
		t.Fatalf("Durable after Close %d, not above the last entry %d", d, last)
	}
	select {
	case <-j.Done():
	default:
		t.Fatal("Done not closed after Close returned")
	}
}

// secondClose checks that a Close racing the first returns only once the
// first has finished (both return nil), and that closing stays idempotent.
func secondClose(t *testing.T, open Open) {
	j, _ := open(t)
	appendAll(t, j, 3)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			err := j.Close()
			if err == nil {
				select {
				case <-j.Done():
				default:
					err = errors.New("Close returned before Done was closed")
				}
			}
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent Close: %v", err)
		}
	}
}
