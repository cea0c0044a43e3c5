package filejournal

import (
	"errors"
	"math"
	"os"
	"testing"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/journal/journaltest"
)

// Bounds of FuzzRecovery's inputs, so one run takes milliseconds and a
// 10 s fuzzing run tries thousands of damages.
const (
	fuzzMaxEntries = 24  // entries written before the damage
	fuzzMaxOps     = 4   // damages applied
	fuzzSegment    = 300 // segment size: several segments of a few entries
)

// FuzzRecovery writes a small journal (every entry durable), damages its
// segment files as the input says (cut a file, flip a byte, zero a run of
// bytes), and opens it again. Open must not panic; it may refuse with
// ErrCorrupt. When it accepts, it never serves a corrupt entry (every
// entry served equals the one written at that position) and never loses
// one acknowledged as durable that the damage left intact: a damaged
// region is cut off as a torn tail only when nothing intact follows it,
// so every intact entry is served, those before the first damage
// included.
func FuzzRecovery(f *testing.F) {
	f.Add([]byte{5})
	f.Add([]byte{10, 0, 0, 0, 40})
	f.Add([]byte{20, 1, 255, 0, 30, 0, 1, 2, 3})
	f.Add([]byte{24, 2, 255, 0, 25, 1, 255, 1, 0})
	f.Add([]byte("11000")) // a flip in the first of two entries of the only segment
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		dir := t.TempDir()
		j := openT(t, Options{Dir: dir, SegmentSize: fuzzSegment, Sync: noSync, FirstPosition: 1})
		n := 1 + int(in[0])%fuzzMaxEntries
		var want []broker.Entry
		for i := range n {
			e := journaltest.Entry(i)
			e.Body = e.Body[:len(e.Body)%(1+i%7)+1]
			if _, err := j.Append(e); err != nil {
				t.Fatal(err)
			}
			want = append(want, *e)
			if i%3 == 0 {
				j.Sync()
			}
		}
		if err := j.Sync(); err != nil {
			t.Fatal(err)
		}
		type span struct {
			file       int
			start, end int64
		}
		where := make([]span, 0, n) // where each entry's frame lies
		for fi, s := range j.segs {
			for k, off := range s.offsets {
				end := s.size
				if k+1 < len(s.offsets) {
					end = s.offsets[k+1]
				}
				where = append(where, span{fi, off, end})
			}
		}
		j.Close()
		files := segFiles(t, dir)

		// Damage: 4 bytes per op: kind, file, offset (2 bytes). A cut
		// damages everything from its offset on.
		var damaged []span
		ops := in[1:]
		for k := 0; k+4 <= len(ops) && k/4 < fuzzMaxOps; k += 4 {
			fi := int(ops[k+1]) % len(files)
			data, err := os.ReadFile(files[fi])
			if err != nil {
				t.Fatal(err)
			}
			if len(data) == 0 {
				continue
			}
			off := int64(int(ops[k+2])<<8|int(ops[k+3])) % int64(len(data))
			switch ops[k] % 3 {
			case 0:
				data = data[:off]
				damaged = append(damaged, span{fi, off, math.MaxInt64})
			case 1:
				data[off] ^= 1 << (ops[k+3] % 8)
				damaged = append(damaged, span{fi, off, off + 1})
			case 2:
				end := min(off+8, int64(len(data)))
				clear(data[off:end])
				damaged = append(damaged, span{fi, off, end})
			}
			if err := os.WriteFile(files[fi], data, 0o640); err != nil {
				t.Fatal(err)
			}
		}
		intact := func(e span) bool {
			for _, d := range damaged {
				if d.file == e.file && d.start < e.end && e.start < d.end {
					return false
				}
			}
			return true
		}

		j2, err := Open(Options{Dir: dir, Name: "test", SegmentSize: fuzzSegment, Sync: noSync})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open refused with %v, not ErrCorrupt", err)
			}
			return
		}
		defer j2.Close()
		got := journaltest.ReadAll(t, j2)
		served := map[broker.Position]bool{}
		for i := range got {
			p := int(got[i].Position) - 1
			if p < 0 || p >= n {
				t.Fatalf("served position %d, written 1..%d", got[i].Position, n)
			}
			if err := journaltest.Same(&got[i], &want[p]); err != nil {
				t.Fatalf("served a damaged entry: %v", err)
			}
			served[got[i].Position] = true
		}
		for i, w := range where {
			if intact(w) && !served[broker.Position(i+1)] {
				t.Fatalf("entry at position %d (file %d, bytes %d..%d) was durable and left intact by the damage %v, but is not served",
					i+1, w.file, w.start, w.end, damaged)
			}
		}
	})
}
