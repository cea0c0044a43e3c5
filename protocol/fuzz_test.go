package protocol

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/: the worked examples of
// wire spec §2.4 and the transcripts of §14, plus tricky cases.

func FuzzDecodeHeader(f *testing.F) {
	f.Add([]byte(`{"c":"p","t":"orders"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var h Header
		if err := DecodeHeader(data, &h); err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(data) {
				t.Fatalf("DecodeHeader(%q) error %v: want *SyntaxError with offset in [0,%d]", data, err, len(data))
			}
			return
		}
		// What decodes must have the boundary HeaderEnd finds.
		end, err := HeaderEnd(data)
		if err != nil {
			t.Fatalf("DecodeHeader(%q) ok but HeaderEnd: %v", data, err)
		}
		if want := len(bytes.TrimRight(data, " \t\r\n")); end != want {
			t.Fatalf("HeaderEnd(%q) = %d, want %d", data, end, want)
		}
		// Encoding what was decoded gives valid JSON that decodes back to
		// the same header.
		enc := AppendHeader(nil, &h)
		if !json.Valid(enc) {
			t.Fatalf("AppendHeader gave invalid JSON %q (from %q)", enc, data)
		}
		var back Header
		if err := DecodeHeader(enc, &back); err != nil {
			t.Fatalf("DecodeHeader(AppendHeader(...)) = %v; encoded %q from %q", err, enc, data)
		}
		if h != back {
			t.Fatalf("round trip of %q via %q (-first +second):\n%s", data, enc, cmp.Diff(h, back))
		}
	})
}

func FuzzHeaderEnd(f *testing.F) {
	f.Add([]byte(`{"c":"p","t":"orders"}{"id":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		end, err := HeaderEnd(data)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(data) {
				t.Fatalf("HeaderEnd(%q) error %v: want *SyntaxError with offset in [0,%d]", data, err, len(data))
			}
			return
		}
		if end < 2 || end > len(data) || data[end-1] != '}' {
			t.Fatalf("HeaderEnd(%q) = %d: not just past a '}'", data, end)
		}
		// The boundary depends only on the bytes before it.
		if end2, err := HeaderEnd(data[:end]); err != nil || end2 != end {
			t.Fatalf("HeaderEnd(%q) = %d, %v; want %d", data[:end], end2, err, end)
		}
		// A header that decodes on its own keeps decoding when a body is
		// appended behind the boundary.
		var h Header
		if DecodeHeader(data[:end], &h) == nil {
			if _, err := decodeObject(data, &h, ""); err != nil {
				t.Fatalf("decodeObject(%q) with body: %v", data, err)
			}
		}
	})
}

func FuzzStreamReader(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x02{}"), uint16(16))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		max := int(limit%256) + 1
		// Reference framing of the same bytes.
		var want [][]byte
		var wantErr error
		for rest := data; ; {
			if len(rest) == 0 {
				wantErr = io.EOF
				break
			}
			if len(rest) < 4 {
				wantErr = io.ErrUnexpectedEOF
				break
			}
			n := binary.BigEndian.Uint32(rest)
			rest = rest[4:]
			if n == 0 {
				continue
			}
			if uint64(n) > uint64(max) {
				wantErr = ErrFrameTooLarge
				break
			}
			if uint64(len(rest)) < uint64(n) {
				wantErr = io.ErrUnexpectedEOF
				break
			}
			want = append(want, rest[:n])
			rest = rest[n:]
		}

		// The default buffers, and tiny ones (whose sizes come from the
		// limit) so that frames cross from the small buffer to the large
		// one and past both.
		small := frameLengthSize + int(limit>>8)%16
		large := small + int(limit>>12)%32
		for _, src := range []*StreamReader{
			NewStreamReader(bytes.NewReader(data), max),
			NewStreamReader(&chunkReader{data: data}, max),
			newStreamReader(bytes.NewReader(data), max, small, large),
			newStreamReader(&chunkReader{data: data}, max, small, large),
		} {
			r := src
			for i := 0; ; i++ {
				frame, err := r.ReadFrame()
				if err != nil {
					if i != len(want) || !errors.Is(err, wantErr) {
						t.Fatalf("after %d frames: %v; want %d frames then %v", i, err, len(want), wantErr)
					}
					break
				}
				if len(frame) == 0 || len(frame) > max {
					t.Fatalf("frame %d has %d bytes, limit %d", i, len(frame), max)
				}
				if i >= len(want) || !bytes.Equal(frame, want[i]) {
					t.Fatalf("frame %d = %q, want per reference %q", i, frame, want)
				}
			}
		}
	})
}

// chunkReader returns its data in pieces of 1, 2, 3, ... bytes.
type chunkReader struct {
	data []byte
	n    int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	c.n = c.n%7 + 1
	k := min(c.n, len(p), len(c.data))
	copy(p, c.data[:k])
	c.data = c.data[k:]
	return k, nil
}

func TestFuzzCorporaPresent(t *testing.T) {
	for _, name := range []string{"FuzzDecodeHeader", "FuzzHeaderEnd", "FuzzStreamReader"} {
		entries, err := os.ReadDir("testdata/fuzz/" + name)
		if err != nil || len(entries) < 10 {
			t.Errorf("testdata/fuzz/%s: %d seed files, err %v; want at least 10", name, len(entries), err)
		}
	}
}
