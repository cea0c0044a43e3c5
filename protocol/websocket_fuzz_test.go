package protocol

import (
	"encoding/binary"
	"errors"
	"testing"
)

// fuzzMaxMessage keeps the fuzzed size limit small so limit errors are
// reachable.
const fuzzMaxMessage = 4096

// splitFuzzFrames decodes the fuzz input: a sequence of WebSocket messages,
// each a flag byte (bit 0: text), a little-endian uint16 length and the
// payload. A truncated tail is used as it is.
func splitFuzzFrames(data []byte) []wsFrame {
	var out []wsFrame
	for len(data) >= 3 {
		text := data[0]&1 == 1
		n := int(binary.LittleEndian.Uint16(data[1:3]))
		data = data[3:]
		n = min(n, len(data))
		out = append(out, wsFrame{text, string(data[:n])})
		data = data[n:]
	}
	return out
}

// FuzzWSDecoder feeds arbitrary WebSocket message sequences to the decoder.
// Seeds in testdata/fuzz/FuzzWSDecoder are the client bursts of wire spec
// §3.3 and §14.1, a composite publish, the big-endian count fallback and the
// third-party Go client's stream variant (§3.6). Invariants: no panic;
// every message respects the size limit and has a JSON-object header; an
// error is sticky; every decoded message survives re-encoding as a client
// would send it.
func FuzzWSDecoder(f *testing.F) {
	f.Add([]byte("\x01\x04\x00text\x00\x04\x00\x01\x00\x00\x00\x01\x02\x00{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := &WSDecoder{MaxMessageSize: fuzzMaxMessage}
		var got []wsMsg
		var err error
		for _, fr := range splitFuzzFrames(data) {
			if d.FrameLimit() < 0 {
				t.Fatalf("negative FrameLimit %d", d.FrameLimit())
			}
			if err = d.Feed(fr.Text, []byte(fr.Payload)); err != nil {
				break
			}
			for h, b, ok := d.Next(); ok; h, b, ok = d.Next() {
				if len(h)+len(b) > fuzzMaxMessage {
					t.Fatalf("message of %d bytes passed the %d limit", len(h)+len(b), fuzzMaxMessage)
				}
				if len(h) < 2 || h[0] != '{' || h[len(h)-1] != '}' {
					t.Fatalf("header %q is not an object", h)
				}
				got = append(got, wsMsg{string(h), string(b)})
			}
		}
		if err != nil {
			if err2 := d.Feed(true, []byte(WSSelectorText)); !errors.Is(err2, err) {
				t.Fatalf("error not sticky: first %v, then %v", err, err2)
			}
			return
		}
		if d.Mode() == WSModeUnknown {
			return
		}
		// Re-encode as the client would and decode again.
		var again []wsFrame
		switch d.Mode() {
		case WSModeStream:
			for _, m := range got {
				again = append(again, bin(streamFrame(m.Header, m.Body)))
			}
		default:
			sel := WSSelectorText
			if d.Mode() == WSModeBinary {
				sel = WSSelectorBinary
			}
			again = append(again, txt(sel))
			for _, m := range got {
				if m.Body == "" {
					again = append(again, burst(m.Header)...)
				} else {
					again = append(again, burst(m.Header, bin(m.Body))...)
				}
			}
		}
		d2 := &WSDecoder{MaxMessageSize: fuzzMaxMessage}
		got2, err := decodeAll(d2, again)
		if err != nil {
			t.Fatalf("re-encoded messages fail to decode: %v", err)
		}
		if len(got2) != len(got) {
			t.Fatalf("re-decoded %d messages, want %d", len(got2), len(got))
		}
		for i := range got {
			if got[i] != got2[i] {
				t.Fatalf("message %d: %q, re-decoded %q", i, got[i], got2[i])
			}
		}
	})
}
