package listener

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/protocol"
	"github.com/coder/websocket"
)

// clientFrame builds one client frame: fin, rsv (bits 0x70), opcode,
// masked unless unmasked is set.
type clientFrame struct {
	fin      bool
	rsv      byte
	op       byte
	payload  string
	unmasked bool
}

func (f clientFrame) append(dst []byte) []byte {
	b0 := f.rsv | f.op
	if f.fin {
		b0 |= 0x80
	}
	var mask byte = 0x80
	if f.unmasked {
		mask = 0
	}
	dst = append(dst, b0)
	n := len(f.payload)
	switch {
	case n < 126:
		dst = append(dst, mask|byte(n))
	case n <= 0xffff:
		dst = binary.BigEndian.AppendUint16(append(dst, mask|126), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint64(append(dst, mask|127), uint64(n))
	}
	if f.unmasked {
		return append(dst, f.payload...)
	}
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	dst = append(dst, key[:]...)
	for i := range n {
		dst = append(dst, f.payload[i]^key[i%4])
	}
	return dst
}

func clientFrames(fs ...clientFrame) []byte {
	var b []byte
	for _, f := range fs {
		b = f.append(b)
	}
	return b
}

// chunkReader returns its input n bytes per Read.
type chunkReader struct {
	p []byte
	n int
}

func (r *chunkReader) Read(b []byte) (int, error) {
	if len(r.p) == 0 {
		return 0, io.EOF
	}
	k := min(len(b), r.n, len(r.p))
	copy(b, r.p[:k])
	r.p = r.p[k:]
	return k, nil
}

type gotFrame struct {
	op      byte
	payload string
}

// readAllFrames reads what next returns until an error, with the given
// buffer sizes and pieces of chunk bytes per read, splitting the input
// into a prefix handed over as already buffered.
func readAllFrames(in []byte, pre, chunk, small, large int, limit int64) ([]gotFrame, error) {
	pre = min(pre, len(in))
	fr := newWSFrameReader(&chunkReader{p: in[pre:], n: chunk}, bytes.Clone(in[:pre]), small, large)
	var out []gotFrame
	for {
		op, p, err := fr.next(limit)
		if err != nil {
			return out, err
		}
		out = append(out, gotFrame{op, string(p)})
	}
}

// Every buffer and read size returns the same frames: whole frames from
// the buffer, frames split over reads, frames larger than the large
// buffer, fragments joined, control frames between fragments.
func TestWSFrameReaderMessages(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 300) // 4800 bytes: 16-bit length
	huge := strings.Repeat("xyz", 30000)           // 90000 bytes: 64-bit length
	in := clientFrames(
		clientFrame{fin: true, op: wsOpText, payload: "text"},
		clientFrame{fin: true, op: wsOpBinary, payload: "\x02\x00\x00\x00"},
		clientFrame{fin: true, op: wsOpText, payload: ""},
		clientFrame{fin: true, op: wsOpBinary, payload: big},
		clientFrame{fin: false, op: wsOpText, payload: "frag1-"},
		clientFrame{fin: true, op: wsOpPing, payload: "in between"},
		clientFrame{fin: false, op: wsOpContinuation, payload: big},
		clientFrame{fin: true, op: wsOpPong, payload: ""},
		clientFrame{fin: true, op: wsOpContinuation, payload: "-end"},
		clientFrame{fin: true, op: wsOpBinary, payload: huge},
		clientFrame{fin: false, op: wsOpBinary, payload: huge},
		clientFrame{fin: true, op: wsOpContinuation, payload: "!"},
		clientFrame{fin: true, op: wsOpClose, payload: "\x03\xe8bye"},
	)
	want := []gotFrame{
		{wsOpText, "text"},
		{wsOpBinary, "\x02\x00\x00\x00"},
		{wsOpText, ""},
		{wsOpBinary, big},
		{wsOpPing, "in between"},
		{wsOpPong, ""},
		{wsOpText, "frag1-" + big + "-end"},
		{wsOpBinary, huge},
		{wsOpBinary, huge + "!"},
		{wsOpClose, "\x03\xe8bye"},
	}
	for _, c := range []struct{ pre, chunk, small, large int }{
		{0, 1 << 20, wsSmallReadSize, wsLargeReadSize},
		{100, 1 << 20, wsSmallReadSize, wsLargeReadSize},
		{0, 1, wsSmallReadSize, wsLargeReadSize},
		{0, 7, 16, wsMaxControlFrame},
		{50, 3, 16, wsMaxControlFrame + 1},
		{0, 1000, 32, 8 << 10},
	} {
		got, err := readAllFrames(in, c.pre, c.chunk, c.small, c.large, 1<<20)
		if err != io.EOF {
			t.Errorf("%+v: ended with %v, want io.EOF", c, err)
		}
		if len(got) != len(want) {
			t.Errorf("%+v: %d frames, want %d", c, len(got), len(want))
			continue
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%+v: frame %d = %#x %.40q (%d bytes), want %#x %.40q (%d bytes)", c, i,
					got[i].op, got[i].payload, len(got[i].payload), want[i].op, want[i].payload, len(want[i].payload))
			}
		}
	}
}

// Each frame against RFC 6455 is refused with the close status its rule
// names, after the good frames before it.
func TestWSFrameReaderRules(t *testing.T) {
	ok := clientFrame{fin: true, op: wsOpText, payload: "ok"}
	for _, c := range []struct {
		name string
		in   []byte
		code websocket.StatusCode
	}{
		{"unmasked", clientFrames(ok, clientFrame{fin: true, op: wsOpText, payload: "x", unmasked: true}), websocket.StatusProtocolError},
		{"RSV1", clientFrames(ok, clientFrame{fin: true, rsv: 0x40, op: wsOpText, payload: "x"}), websocket.StatusProtocolError},
		{"RSV3", clientFrames(ok, clientFrame{fin: true, rsv: 0x10, op: wsOpBinary, payload: "x"}), websocket.StatusProtocolError},
		{"reserved data opcode", clientFrames(ok, clientFrame{fin: true, op: 0x3}), websocket.StatusProtocolError},
		{"reserved control opcode", clientFrames(ok, clientFrame{fin: true, op: 0xB}), websocket.StatusProtocolError},
		{"fragmented ping", clientFrames(ok, clientFrame{op: wsOpPing, payload: "p"}), websocket.StatusProtocolError},
		{"long ping", clientFrames(ok, clientFrame{fin: true, op: wsOpPing, payload: strings.Repeat("p", 126)}), websocket.StatusProtocolError},
		{"stray continuation", clientFrames(ok, clientFrame{fin: true, op: wsOpContinuation, payload: "c"}), websocket.StatusProtocolError},
		{"message inside a message", clientFrames(ok, clientFrame{op: wsOpText, payload: "a"}, clientFrame{fin: true, op: wsOpText, payload: "b"}), websocket.StatusProtocolError},
		{"64-bit length with the top bit", append(clientFrames(ok), 0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4), websocket.StatusProtocolError},
		{"frame over the limit", clientFrames(ok, clientFrame{fin: true, op: wsOpBinary, payload: strings.Repeat("b", 101)}), websocket.StatusMessageTooBig},
		{"fragments over the limit", clientFrames(ok, clientFrame{op: wsOpText, payload: strings.Repeat("a", 60)}, clientFrame{fin: true, op: wsOpContinuation, payload: strings.Repeat("a", 41)}), websocket.StatusMessageTooBig},
	} {
		got, err := readAllFrames(c.in, 0, 1<<20, wsSmallReadSize, wsLargeReadSize, 100)
		if len(got) != 1 || got[0] != (gotFrame{wsOpText, "ok"}) {
			t.Errorf("%s: read %v before the error, want the one good frame", c.name, got)
		}
		var re *wsReadError
		if !errors.As(err, &re) || re.code != c.code {
			t.Errorf("%s: error %v, want a wsReadError with status %d", c.name, err, c.code)
			continue
		}
		if c.code == websocket.StatusMessageTooBig && !errors.Is(err, protocol.ErrWSMessageTooLarge) {
			t.Errorf("%s: error %v does not wrap ErrWSMessageTooLarge", c.name, err)
		}
	}
}

// A connection that ends inside a frame is an unexpected EOF, between
// frames a plain io.EOF.
func TestWSFrameReaderEnd(t *testing.T) {
	in := clientFrames(clientFrame{fin: true, op: wsOpText, payload: "hello"})
	for cut := 1; cut < len(in); cut++ {
		if _, err := readAllFrames(in[:cut], 0, 1<<20, wsSmallReadSize, wsLargeReadSize, 100); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("input cut after %d of %d bytes: %v, want io.ErrUnexpectedEOF", cut, len(in), err)
		}
	}
}

// The close frame's payload: a status the peer may send, a UTF-8 reason.
func TestWSCloseFrame(t *testing.T) {
	for _, c := range []struct {
		p    string
		code websocket.StatusCode // 0: refused
		fail websocket.StatusCode
	}{
		{"", websocket.StatusNoStatusRcvd, 0},
		{"\x03\xe8", websocket.StatusNormalClosure, 0},
		{"\x03\xe9going", websocket.StatusGoingAway, 0},
		{"\x0f\xa0app", 4000, 0},
		{"\x03", 0, websocket.StatusProtocolError},
		{"\x03\xed", 0, websocket.StatusProtocolError}, // 1005 is never sent
		{"\x03\xe8\xff", 0, websocket.StatusInvalidFramePayloadData},
	} {
		code, _, err := wsCloseFrame([]byte(c.p))
		var re *wsReadError
		switch {
		case c.fail != 0 && (!errors.As(err, &re) || re.code != c.fail):
			t.Errorf("close payload %q: %v, want status %d", c.p, err, c.fail)
		case c.fail == 0 && (err != nil || code != c.code):
			t.Errorf("close payload %q: status %d, %v; want %d", c.p, code, err, c.code)
		}
	}
}

// Unmasking eight bytes at a time matches the byte-wise rule at every
// length.
func TestWSUnmask(t *testing.T) {
	key := [4]byte{0xa1, 0x02, 0x7f, 0xe4}
	for n := range 40 {
		p := []byte(strings.Repeat("abcdefghij", 4)[:n])
		want := bytes.Clone(p)
		for i := range want {
			want[i] ^= key[i%4]
		}
		protocol.MaskWS(p, key)
		if !bytes.Equal(p, want) {
			t.Errorf("length %d: % x, want % x", n, p, want)
		}
	}
}

// Over a real connection: client frames that break a rule close it with
// 1002, a fragmented publish with pings between its fragments is
// reassembled and the pings answered, a close with another status than
// 1000 or 1001 is an error naming it.
func TestWebSocketOwnReader(t *testing.T) {
	l, srv, _ := listenWS(t, nil)
	publish := func() []byte {
		return clientFrames(
			clientFrame{fin: true, op: wsOpText, payload: "text"},
			clientFrame{fin: true, op: wsOpBinary, payload: "\x02\x00\x00\x00"},
			clientFrame{op: wsOpText, payload: `{"c":"publish",`},
			clientFrame{fin: true, op: wsOpPing, payload: "p1"},
			clientFrame{fin: true, op: wsOpContinuation, payload: `"t":"x"}`},
			clientFrame{op: wsOpBinary, payload: "bo"},
			clientFrame{fin: true, op: wsOpPing, payload: "p2"},
			clientFrame{fin: true, op: wsOpPong, payload: "ignored"},
			clientFrame{fin: true, op: wsOpContinuation, payload: "dy"},
		)
	}
	for _, c := range []struct {
		name string
		bad  clientFrame
		code websocket.StatusCode
	}{
		{"unmasked", clientFrame{fin: true, op: wsOpBinary, payload: "\x02\x00\x00\x00", unmasked: true}, websocket.StatusProtocolError},
		{"RSV", clientFrame{fin: true, rsv: 0x20, op: wsOpBinary, payload: "\x02\x00\x00\x00"}, websocket.StatusProtocolError},
		{"status 4001", clientFrame{fin: true, op: wsOpClose, payload: "\x0f\xa1bye"}, 4001},
		{"status 1000", clientFrame{fin: true, op: wsOpClose, payload: "\x03\xe8"}, websocket.StatusNormalClosure},
	} {
		t.Run(c.name, func(t *testing.T) {
			nc, br := dialRawWS(t, l.Addr().String())
			recv(t, srv.conns, "connection")
			nc.SetDeadline(time.Now().Add(testTimeout))
			if _, err := nc.Write(append(publish(), c.bad.append(nil)...)); err != nil {
				t.Fatal(err)
			}
			if m := recv(t, srv.msgs, "message"); m != (msg{`{"c":"publish","t":"x"}`, "body"}) {
				t.Errorf("message %+v, want the reassembled publish", m)
			}
			var frames []string
			for {
				f, err := readServerFrame(br)
				if err != nil {
					t.Fatalf("after frames %q: %v", frames, err)
				}
				frames = append(frames, fmt.Sprintf("%#x %q", f.opcode, f.payload))
				if f.opcode == wsOpClose {
					if len(f.payload) < 2 || websocket.StatusCode(binary.BigEndian.Uint16([]byte(f.payload))) != c.code {
						t.Errorf("close frame %q, want status %d", f.payload, c.code)
					}
					break
				}
			}
			if want := []string{`0xa "p1"`, `0xa "p2"`}; len(frames) != 3 || frames[0] != want[0] || frames[1] != want[1] {
				t.Errorf("server frames %q, want the pongs %q then the close", frames, want)
			}
			// The server ends the connection after the close handshake.
			if _, err := nc.Write(clientFrames(clientFrame{fin: true, op: wsOpClose, payload: "\x03\xe8"})); err != nil {
				t.Logf("client's close answer: %v", err) // the server may have closed already
			}
			if n, err := br.Read(make([]byte, 1)); err == nil {
				t.Errorf("read %d bytes after the close frame, want the end of the connection", n)
			}
			err := recv(t, srv.errs, "read error")
			switch c.code {
			case websocket.StatusNormalClosure:
				if err != io.EOF {
					t.Errorf("ReadMessage = %v, want io.EOF", err)
				}
			case 4001:
				if err == nil || !strings.Contains(err.Error(), "4001") {
					t.Errorf("ReadMessage = %v, want an error naming status 4001", err)
				}
			default:
				var re *wsReadError
				if !errors.As(err, &re) || re.code != c.code {
					t.Errorf("ReadMessage = %v, want a wsReadError with status %d", err, c.code)
				}
			}
		})
	}
}
