package listener

import (
	"errors"
	"io"
	"testing"
)

// wsFuzzMaxInput bounds the fuzzer's inputs, so each run stays fast.
const wsFuzzMaxInput = 1 << 16

// FuzzWSFrameReader reads arbitrary client input twice: through the
// default buffers in large reads, and through tiny buffers a few bytes per
// read with part of it handed over as already buffered (which takes the
// paths for frames split over reads and frames larger than the large
// buffer). Both must return the same frames and end the same way, and
// never panic.
func FuzzWSFrameReader(f *testing.F) {
	f.Add([]byte{0, 3, 1}, clientFrames(
		clientFrame{fin: true, op: wsOpText, payload: "text"},
		clientFrame{fin: true, op: wsOpBinary, payload: "\x02\x00\x00\x00"},
		clientFrame{op: wsOpText, payload: `{"c":"publish"`},
		clientFrame{fin: true, op: wsOpPing, payload: "ping"},
		clientFrame{fin: true, op: wsOpContinuation, payload: `,"t":"x"}`},
		clientFrame{fin: true, op: wsOpClose, payload: "\x03\xe8"},
	))
	f.Add([]byte{200, 1, 7}, clientFrames(clientFrame{fin: true, op: wsOpBinary, payload: string(make([]byte, 300))}))
	f.Add([]byte{10, 2, 0}, clientFrames(clientFrame{fin: true, rsv: 0x40, op: wsOpText, payload: "x"}))
	f.Add([]byte{10, 2, 0}, clientFrames(clientFrame{fin: true, op: wsOpText, payload: "x", unmasked: true}))
	f.Fuzz(func(t *testing.T, knobs, in []byte) {
		if len(in) > wsFuzzMaxInput {
			return
		}
		knobs = append(knobs, 0, 0, 0)
		limit := int64(knobs[0]) * 8
		chunk := 1 + int(knobs[1]%16)
		pre := int(knobs[2])
		want, wantErr := readAllFrames(in, 0, 1<<20, wsSmallReadSize, wsLargeReadSize, limit)
		got, gotErr := readAllFrames(in, pre, chunk, wsMaxFrameHeader, wsMaxControlFrame, limit)
		if len(got) != len(want) {
			t.Fatalf("tiny buffers read %d frames, default ones %d", len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("frame %d: tiny buffers %#x %q, default ones %#x %q", i, got[i].op, got[i].payload, want[i].op, want[i].payload)
			}
			if want[i].op < wsOpClose && int64(len(want[i].payload)) > limit {
				t.Fatalf("frame %d: %d-byte message over the limit of %d", i, len(want[i].payload), limit)
			}
		}
		if a, b := wsErrKind(gotErr), wsErrKind(wantErr); a != b {
			t.Fatalf("tiny buffers end with %v (%s), default ones with %v (%s)", gotErr, a, wantErr, b)
		}
	})
}

// wsErrKind classifies how reading ended.
func wsErrKind(err error) string {
	var re *wsReadError
	switch {
	case errors.As(err, &re):
		return "close " + re.code.String()
	case err == io.EOF:
		return "EOF"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected EOF"
	}
	return "other: " + err.Error()
}
