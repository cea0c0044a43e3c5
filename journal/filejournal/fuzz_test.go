package filejournal

import (
	"errors"
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
// ErrCorrupt; when it accepts, every entry it serves equals the one written
// at that position, and every entry that lay wholly before the first
// damage (in file order) is still there.
func FuzzRecovery(f *testing.F) {
	f.Add([]byte{5})
	f.Add([]byte{10, 0, 0, 0, 40})
	f.Add([]byte{20, 1, 255, 0, 30, 0, 1, 2, 3})
	f.Add([]byte{24, 2, 255, 0, 25, 1, 255, 1, 0})
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
		j.Sync()
		type loc struct {
			file int
			end  int64
		}
		where := make([]loc, 0, n) // where each entry ends
		for fi, s := range j.segs {
			for k := range s.offsets {
				end := s.size
				if k+1 < len(s.offsets) {
					end = s.offsets[k+1]
				}
				where = append(where, loc{fi, end})
			}
		}
		j.Close()
		files := segFiles(t, dir)

		// Damage: 4 bytes per op: kind, file, offset (2 bytes).
		first := loc{len(files), 0} // earliest damage
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
			case 1:
				data[off] ^= 1 << (ops[k+3] % 8)
			case 2:
				clear(data[off:min(off+8, int64(len(data)))])
			}
			if err := os.WriteFile(files[fi], data, 0o640); err != nil {
				t.Fatal(err)
			}
			if fi < first.file || fi == first.file && off < first.end {
				first = loc{fi, off}
			}
		}

		j2, err := Open(Options{Dir: dir, Name: "test", SegmentSize: fuzzSegment, Sync: noSync})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open refused with %v, not ErrCorrupt", err)
			}
			return
		}
		defer j2.Close()
		got := readAll(t, j2)
		for i := range got {
			p := int(got[i].Position) - 1
			if p < 0 || p >= n {
				t.Fatalf("served position %d, written 1..%d", got[i].Position, n)
			}
			if err := journaltest.Same(&got[i], &want[p]); err != nil {
				t.Fatalf("served a damaged entry: %v", err)
			}
		}
		kept := 0
		for i, w := range where {
			if w.file < first.file || w.file == first.file && w.end <= first.end {
				kept = i + 1
			}
		}
		if len(got) < kept {
			t.Fatalf("%d entries served, but %d lay before the first damage (file %d, offset %d)", len(got), kept, first.file, first.end)
		}
		for i := range kept {
			if got[i].Position != broker.Position(i+1) {
				t.Fatalf("entry %d served at position %d: an entry before the damage is missing", i+1, got[i].Position)
			}
		}
	})
}
