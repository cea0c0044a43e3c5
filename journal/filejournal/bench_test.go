package filejournal

import (
	"os"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/journal/journaltest"
)

// BenchmarkAppend appends 1 KiB entries with the default flush policy
// (FlushInterval 100 ms, 1 MiB batches, fdatasync) and waits at the end
// until all are durable. It reports fsyncs per second of the run.
func BenchmarkAppend(b *testing.B) {
	var syncs atomic.Int64
	j := openT(b, Options{Name: "bench", Sync: func(f *os.File) error {
		syncs.Add(1)
		return syscall.Fdatasync(int(f.Fd()))
	}})
	defer j.Close()
	e := journaltest.Entry(0)
	e.Body = make([]byte, 1024)
	b.SetBytes(int64(len(e.Body)))
	b.ReportAllocs()
	syncs.Store(0)
	b.ResetTimer()
	for range b.N {
		if _, err := j.Append(e); err != nil {
			b.Fatal(err)
		}
	}
	if err := j.Sync(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(syncs.Load())/b.Elapsed().Seconds(), "fsyncs/s")
}

// BenchmarkReplay reads 1 KiB entries through a cursor from the start of
// a journal on disk, as a bookmark subscription from EPOCH does.
func BenchmarkReplay(b *testing.B) {
	j := openT(b, Options{Name: "bench", SegmentSize: 64 << 20})
	defer j.Close()
	e := journaltest.Entry(0)
	e.Body = make([]byte, 1024)
	const entries = 100_000
	for range entries {
		if _, err := j.Append(e); err != nil {
			b.Fatal(err)
		}
	}
	if err := j.Sync(); err != nil {
		b.Fatal(err)
	}
	first, _ := j.Bounds()
	b.SetBytes(int64(len(e.Body)))
	b.ReportAllocs()
	b.ResetTimer()
	var c broker.Cursor
	for i := range b.N {
		if i%entries == 0 {
			if c != nil {
				c.Close()
			}
			var err error
			if c, err = j.NewCursor(first); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := c.Next(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	c.Close()
}
