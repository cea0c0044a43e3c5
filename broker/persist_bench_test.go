package broker_test

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/journal/filejournal"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// BenchmarkPersistedPublish is a publisher with a publish store on one TCP
// connection: each op is a 1 KiB publish carrying "s" and asking for a
// persisted ack; the run ends when a persisted flush is acked, which is
// when every publish is durable (and acked). The variants compare no
// journal (persisted means processed), a memory journal, and a file
// journal at its default FlushInterval, to a journaled topic and, with the
// file journal, to a topic it does not record.
func BenchmarkPersistedPublish(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1024)
	for _, v := range []struct {
		name    string
		journal func(b *testing.B) broker.Journal
		topic   string
	}{
		{"journal=none", nil, "jorders"},
		{"journal=mem", func(*testing.B) broker.Journal { return broker.NewMemJournal(1<<30, 1) }, "jorders"},
		{"journal=file", fileJournal, "jorders"},
		{"journal=file/topic=not-journaled", fileJournal, "orders"},
	} {
		b.Run(v.name, func(b *testing.B) {
			opts := &broker.Options{OutboundQueueBytes: 1 << 30}
			if v.journal != nil {
				j := v.journal(b)
				b.Cleanup(func() { j.Close() })
				opts.Journal = j
				opts.JournalTopics = func(mt, topic string) bool { return strings.HasPrefix(topic, "j") }
			}
			benchPersistedPublish(b, opts, v.topic, body)
		})
	}
}

func fileJournal(b *testing.B) broker.Journal {
	j, err := filejournal.Open(filejournal.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	return j
}

func benchPersistedPublish(b *testing.B, opts *broker.Options, topic string, body []byte) {
	tb := ampstest.NewBroker(b, &ampstest.Options{Broker: opts})
	c, err := ampstest.DialConn(tb.TCPURL(), &ampstest.DialOptions{Timeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Logon("store"); err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	r := protocol.NewStreamReader(c.RawReader(), 0)
	go func() {
		for {
			f, err := r.ReadFrame()
			if err != nil {
				done <- err
				return
			}
			if bytes.Contains(f, []byte(`"cid":"end"`)) {
				done <- nil
				return
			}
		}
	}()
	w := bufio.NewWriterSize(c.NetConn(), 64<<10)
	var hdr []byte
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		hdr = append(hdr[:0], `{"c":"p","t":"`...)
		hdr = append(hdr, topic...)
		hdr = append(hdr, `","a":"persisted","s":`...)
		hdr = strconv.AppendInt(hdr, int64(i+1), 10)
		hdr = append(hdr, '}')
		if _, err := w.Write(protocol.AppendStreamFrame(nil, hdr, body)); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := w.Write(protocol.AppendStreamFrame(nil, []byte(`{"c":"flush","cid":"end","a":"persisted"}`), nil)); err != nil {
		b.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if j := opts.Journal; j != nil {
		// A file journal's fsyncs per second of the run (group commit:
		// one per batch, at most 1 MiB or FlushInterval apart).
		b.ReportMetric(float64(j.Stats().Syncs)/b.Elapsed().Seconds(), "fsyncs/s")
	}
}
