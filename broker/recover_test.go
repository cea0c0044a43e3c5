package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/journal/filejournal"
)

// sowRecords returns the records of topic as "key=data" in order of /id.
func sowRecords(t *testing.T, b *broker.Broker, topic string) []string {
	t.Helper()
	c, err := b.Connect(context.Background(), "reader", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msgs, err := c.SOW(context.Background(), topic, &broker.SOWQuery{OrderBy: "/id"})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		out = append(out, string(m.Data)+m.CorrelationID)
	}
	return out
}

// A journaled SOW topic comes back at New as the journal left it: upserts,
// merged delta publishes and sow_deletes in log order, expiry restored
// and enforced; a StartEmpty topic and a topic that is not journaled
// start empty.
func TestSOWRebuiltFromJournal(t *testing.T) {
	j := broker.NewMemJournal(0, 1)
	defer j.Close()
	opts := func() *broker.Options {
		return &broker.Options{
			Journal:       j,
			JournalTopics: func(mt, topic string) bool { return strings.HasPrefix(topic, "j") },
			SOWTopics: []broker.SOWTopic{
				{Name: "jsow", Keys: []string{"/id"}, ExpirationEnabled: true},
				{Name: "jempty", Keys: []string{"/id"}, StartEmpty: true},
				{Name: "sow", Keys: []string{"/id"}},
				{Pattern: "jp/.*", Keys: []string{"/id"}},
			},
		}
	}
	b1 := broker.New(opts())
	ctx := context.Background()
	c, err := b1.Connect(ctx, "pub", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct{ topic, data string }{
		{"jsow", `{"id":1,"v":1,"w":1}`},
		{"jsow", `{"id":2,"v":1}`},
		{"jsow", `{"id":3,"v":1}`},
		{"jempty", `{"id":1}`},
		{"sow", `{"id":1}`},
		{"jp/a", `{"id":1,"v":"a"}`},
		{"jp/b", `{"id":1,"v":"b"}`},
	} {
		if err := c.Publish(ctx, p.topic, []byte(p.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.DeltaPublish(ctx, "jsow", []byte(`{"id":1,"v":2}`)); err != nil {
		t.Fatal(err)
	}
	if n, err := c.SOWDelete(ctx, "jsow", "/id = 2"); err != nil || n != 1 {
		t.Fatalf("sow_delete: %d, %v", n, err)
	}
	b1.Close()
	// A record that expired while the broker was down, and one that has
	// not yet, as a publish with "e" would have journaled them.
	for _, e := range []broker.Entry{
		{Kind: broker.EntryPublish, Topic: "jsow", MessageType: "json", Body: []byte(`{"id":4}`), Expiry: time.Now().Add(-time.Second)},
		{Kind: broker.EntryPublish, Topic: "jsow", MessageType: "json", Body: []byte(`{"id":5}`), CorrelationID: "x5", Expiry: time.Now().Add(time.Hour)},
	} {
		if _, err := j.Append(&e); err != nil {
			t.Fatal(err)
		}
	}

	b2 := broker.New(opts())
	defer b2.Close()
	if err := b2.RecoveryErr(); err != nil {
		t.Fatalf("RecoveryErr: %v", err)
	}
	want := map[string][]string{
		"jsow":   {`{"id":1,"v":2,"w":1}`, `{"id":3,"v":1}`, `{"id":5}x5`},
		"jempty": nil,
		"sow":    nil,
		"jp/a":   {`{"id":1,"v":"a"}`},
		"jp/b":   {`{"id":1,"v":"b"}`},
	}
	for topic, w := range want {
		if got := sowRecords(t, b2, topic); fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("%s after restart: %q, want %q", topic, got, w)
		}
	}
}

// failingJournal is a MemJournal whose cursors fail after some entries.
type failingJournal struct {
	*broker.MemJournal
	after int
}

var errDisk = errors.New("disk on fire")

func (f *failingJournal) NewCursor(from broker.Position) (broker.Cursor, error) {
	c, err := f.MemJournal.NewCursor(from)
	return &failingCursor{Cursor: c, left: f.after}, err
}

type failingCursor struct {
	broker.Cursor
	left int
}

func (c *failingCursor) Next() (broker.Entry, error) {
	if c.left == 0 {
		return broker.Entry{}, errDisk
	}
	c.left--
	return c.Cursor.Next()
}

// A journal that cannot be read to its end leaves what was applied, and
// RecoveryErr says why.
func TestSOWRebuildReadError(t *testing.T) {
	j := &failingJournal{MemJournal: broker.NewMemJournal(0, 1), after: 1}
	defer j.Close()
	for _, body := range []string{`{"id":1}`, `{"id":2}`} {
		if _, err := j.Append(&broker.Entry{Kind: broker.EntryPublish, Topic: "jsow", MessageType: "json", Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	b := broker.New(&broker.Options{Journal: j, SOWTopics: []broker.SOWTopic{{Name: "jsow", Keys: []string{"/id"}}}})
	defer b.Close()
	if err := b.RecoveryErr(); !errors.Is(err, broker.ErrRecovery) || !errors.Is(err, errDisk) {
		t.Errorf("RecoveryErr = %v, want ErrRecovery wrapping the read error", err)
	}
	if got := sowRecords(t, b, "jsow"); len(got) != 1 {
		t.Errorf("records after a failed rebuild: %q, want the one read", got)
	}
}

// synthJournal serves n made-up publishes to "jsow" (keys cycling over
// records) from its cursors, so a benchmark measures the rebuild, not
// the journal.
type synthJournal struct {
	*broker.MemJournal
	n      int
	bodies [][]byte
}

func (s *synthJournal) Bounds() (broker.Position, broker.Position) {
	return 1, broker.Position(s.n + 1)
}

func (s *synthJournal) NewCursor(from broker.Position) (broker.Cursor, error) {
	return &synthCursor{j: s, pos: from}, nil
}

type synthCursor struct {
	j   *synthJournal
	pos broker.Position
}

func (c *synthCursor) Next() (broker.Entry, error) {
	if int(c.pos) > c.j.n {
		return broker.Entry{}, broker.ErrCaughtUp
	}
	i := int(c.pos) - 1
	c.pos++
	return broker.Entry{Position: c.pos - 1, Kind: broker.EntryPublish, Topic: "jsow", MessageType: "json",
		Time: time.Unix(1_700_000_000, int64(i)), Body: c.j.bodies[i%len(c.j.bodies)]}, nil
}

func (c *synthCursor) Position() broker.Position { return c.pos }
func (c *synthCursor) Close() error              { return nil }

// BenchmarkSOWRebuild is New rebuilding a SOW topic of 10,000 records from
// 1,000,000 journaled publishes (about 60-byte JSON bodies); ns/op is the
// start-up time that journal adds.
func BenchmarkSOWRebuild(b *testing.B) {
	const entries, records = 1_000_000, 10_000
	j := &synthJournal{MemJournal: broker.NewMemJournal(0, 1), n: entries}
	defer j.Close()
	for i := range records {
		j.bodies = append(j.bodies, fmt.Appendf(nil, `{"id":%d,"px":%d.25,"sym":"SYM%05d","qty":100}`, i, i, i))
	}
	opts := &broker.Options{Journal: j, SOWTopics: []broker.SOWTopic{{Name: "jsow", Keys: []string{"/id"}}}}
	b.ReportAllocs()
	for b.Loop() {
		br := broker.New(opts)
		if st := br.Stats().SOWTopics; len(st) != 1 || st[0].Records != records {
			b.Fatalf("rebuilt %+v, want %d records", st, records)
		}
		br.Close()
	}
	b.ReportMetric(float64(entries)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// End to end with the file journal: what a publisher was told is
// persisted comes back after a restart on the same directory, as the
// logon ack's "s", as the SOW's records, and as duplicates of a resend.
func TestFileJournalRestart(t *testing.T) {
	dir := t.TempDir()
	open := func() *filejournal.Journal {
		j, err := filejournal.Open(filejournal.Options{Dir: dir, FlushInterval: 5 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	opts := func(j broker.Journal) *broker.Options {
		return &broker.Options{Journal: j, SOWTopics: []broker.SOWTopic{{Name: "jsow", Keys: []string{"/id"}}}}
	}
	j1 := open()
	tb := startBroker(t, opts(j1))
	c := tb.Dial(tb.TCPURL(), nil)
	logonConflation(t, c, "store", "1h")
	for id := 1; id <= 3; id++ {
		c.SendJSON(map[string]any{"c": "publish", "t": "jsow", "s": fmt.Sprint(id), "a": "persisted"}, fmt.Appendf(nil, `{"id":%d}`, id))
	}
	c.SendJSON(map[string]any{"c": "sow_delete", "t": "jsow", "s": "4", "a": "persisted", "sow_keys": ""}, []byte(`{"id":2}`))
	c.SendJSON(map[string]any{"c": "flush", "cid": "f", "a": "persisted"}, nil)
	// However the group commits fell, the last conflated ack before the
	// flush's covers all four.
	last := ""
	for {
		m := c.Next()
		if m.Field("cid") == "f" {
			break
		}
		if m.Field("a") != "persisted" || m.Field("status") != "success" {
			t.Fatalf("got %s, want persisted acks", m.RawHeader)
		}
		last = m.Field("s")
	}
	if last != "4" {
		t.Fatalf("last persisted ack before the flush's: s %q, want 4", last)
	}
	tb.Stop()
	if err := j1.Close(); err != nil {
		t.Fatal(err)
	}

	j2 := open()
	defer j2.Close()
	tb2 := startBroker(t, opts(j2))
	if err := tb2.Broker.RecoveryErr(); err != nil {
		t.Fatal(err)
	}
	if got := sowRecords(t, tb2.Broker, "jsow"); fmt.Sprint(got) != `[{"id":1} {"id":3}]` {
		t.Errorf("SOW after restart: %q", got)
	}
	c2 := tb2.Dial(tb2.TCPURL(), nil)
	if ack := logonConflation(t, c2, "store", "0"); ack.Field("s") != "4" {
		t.Fatalf("logon ack after restart: %s, want s 4", ack.RawHeader)
	}
	c2.SendJSON(map[string]any{"c": "publish", "t": "jsow", "s": "3", "a": "persisted"}, []byte(`{"id":3,"resent":true}`))
	persistedAck(t, c2, map[string]string{"a": "persisted", "s": "4"})
	if got := sowRecords(t, tb2.Broker, "jsow"); fmt.Sprint(got) != `[{"id":1} {"id":3}]` {
		t.Errorf("SOW after a resent duplicate: %q", got)
	}
}

// Several publish stores at once on a file journal: each gets persisted
// acks that never go backwards and end at its last sequence, and the
// journal's high-water marks agree.
func TestPersistedAcksManyPublishers(t *testing.T) {
	j, err := filejournal.Open(filejournal.Options{Dir: t.TempDir(), FlushInterval: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	tb := startBroker(t, &broker.Options{Journal: j})
	const publishers, each = 4, 300
	errs := make(chan error, publishers)
	for p := range publishers {
		c := tb.Dial(tb.TCPURL(), nil)
		name := fmt.Sprint("store", p)
		logonConflation(t, c, name, "10ms")
		go func() {
			for s := 1; s <= each; s++ {
				if err := c.Conn.SendJSON(map[string]any{"c": "publish", "t": "orders", "s": fmt.Sprint(s), "a": "persisted"}, []byte(`{"v":1}`)); err != nil {
					errs <- err
					return
				}
			}
			last := 0
			for last < each {
				m, err := c.Conn.Next()
				if err != nil {
					errs <- fmt.Errorf("%s: %w", name, err)
					return
				}
				var s int
				if _, err := fmt.Sscan(m.Field("s"), &s); err != nil || m.Field("status") != "success" || s < last {
					errs <- fmt.Errorf("%s: ack %s after s %d", name, m.RawHeader, last)
					return
				}
				last = s
			}
			errs <- nil
		}()
	}
	for range publishers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	hw := j.HighWaters()
	for p := range publishers {
		if got := hw[fmt.Sprint("store", p)]; got != each {
			t.Errorf("high-water of store%d = %d, want %d", p, got, each)
		}
	}
}
