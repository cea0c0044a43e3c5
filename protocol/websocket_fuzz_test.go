package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"slices"
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

// FuzzStreamVariantMatchesStreamConn checks that the stream encoding and
// the WebSocket stream variant (wire spec §3.6), which share one frame
// splitter, cut the same bytes into the same messages and refuse the same
// bad frames, however the bytes are spread over WebSocket messages.
func FuzzStreamVariantMatchesStreamConn(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x0a{\"c\":\"p\"}x\x00\x00\x00\x00\x00\x00\x00\x03 {}"), uint8(5))
	f.Add([]byte("\x00\x00\x00\x02{}\x00\x00\x01\x00{"), uint8(9))
	f.Add([]byte("\x00\x00\x00\x03{]}"), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		const limit = 256
		c := NewStreamConn(&captureRWC{Reader: bytes.NewReader(data)}, &StreamOptions{MaxFrameSize: limit})
		var want []wsMsg
		var wantErr error
		for {
			h, b, err := c.ReadMessage()
			if err != nil {
				wantErr = err
				break
			}
			want = append(want, wsMsg{string(h), string(b)})
		}
		n := max(int(chunk), 5)
		d := &WSDecoder{MaxMessageSize: limit}
		if !d.looksLikeStream(data[:min(n, len(data))]) {
			return // not recognisable as the variant from its first message
		}
		var got []wsMsg
		var err error
		for rest := data; len(rest) > 0 && err == nil; {
			k := min(n, len(rest))
			if err = d.Feed(false, rest[:k]); err == nil {
				for h, b, ok := d.Next(); ok; h, b, ok = d.Next() {
					got = append(got, wsMsg{string(h), string(b)})
				}
			}
			rest = rest[k:]
		}
		// A Feed that fails drops the messages it completed, so after an
		// error the variant has a prefix of the stream encoding's messages.
		if err == nil && len(got) != len(want) || len(got) > len(want) || !slices.Equal(got, want[:len(got)]) {
			t.Fatalf("WebSocket stream variant gave %q (error %v), stream encoding %q", got, err, want)
		}
		// At the end of the bytes the stream encoding reports EOF (clean or
		// not) while the variant waits for more; any other error is a bad
		// frame both must refuse.
		endOfData := errors.Is(wantErr, io.EOF) || errors.Is(wantErr, io.ErrUnexpectedEOF)
		if endOfData != (err == nil) {
			t.Fatalf("stream encoding ended with %v, WebSocket stream variant with %v", wantErr, err)
		}
		if errors.Is(wantErr, ErrFrameTooLarge) != errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("size limit: stream encoding %v, WebSocket stream variant %v", wantErr, err)
		}
	})
}
