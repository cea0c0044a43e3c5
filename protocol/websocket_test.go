package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// wsFrame is one WebSocket message as the codec sees it.
type wsFrame struct {
	Text    bool
	Payload string
}

func txt(s string) wsFrame { return wsFrame{true, s} }
func bin(s string) wsFrame { return wsFrame{false, s} }

// count is the little-endian count frame the JS client writes (wire spec §3.3).
func count(n uint32) wsFrame {
	return bin(string(binary.LittleEndian.AppendUint32(nil, n)))
}

// burst is a JS client burst: count, header, data parts.
func burst(header string, parts ...wsFrame) []wsFrame {
	return append([]wsFrame{count(uint32(1 + len(parts))), txt(header)}, parts...)
}

func streamFrame(header, body string) string {
	return string(AppendStreamFrame(nil, []byte(header), []byte(body)))
}

type wsMsg struct{ Header, Body string }

// decodeAll feeds frames and collects messages until the first error.
func decodeAll(d *WSDecoder, frames []wsFrame) ([]wsMsg, error) {
	var got []wsMsg
	for _, f := range frames {
		if err := d.Feed(f.Text, []byte(f.Payload)); err != nil {
			return got, err
		}
		for {
			h, b, ok := d.Next()
			if !ok {
				break
			}
			got = append(got, wsMsg{string(h), string(b)})
		}
	}
	return got, nil
}

func TestWSDecoder(t *testing.T) {
	logon := `{"c":"logon","cid":"auto0","a":"processed","version":"5.3.4.0.378635.60b2fcc:javascript","client_name":"js-probe","user_id":""}`
	pub := `{"c":"publish","t":"orders"}`
	cat := func(fs ...[]wsFrame) []wsFrame {
		var out []wsFrame
		for _, f := range fs {
			out = append(out, f...)
		}
		return out
	}
	tests := []struct {
		name    string
		max     int
		frames  []wsFrame
		want    []wsMsg
		mode    WSMode
		wantErr error
	}{
		{
			name: "spec 14.1 transcript",
			frames: cat([]wsFrame{txt("text")},
				burst(logon),
				burst(`{"c":"heartbeat","a":"received","o":"start,1","cid":"auto1"}`),
				burst(pub, txt(`{"id":1,"qty":10}`))),
			want: []wsMsg{{logon, ""}, {`{"c":"heartbeat","a":"received","o":"start,1","cid":"auto1"}`, ""}, {pub, `{"id":1,"qty":10}`}},
			mode: WSModeText,
		},
		{
			name:   "binary selector, mixed and empty parts concatenate",
			frames: cat([]wsFrame{txt("binary")}, burst(pub, txt(""), bin("\x00\x00\x00\x02"), txt("ab"), bin(""), bin("\xffc"))),
			want:   []wsMsg{{pub, "\x00\x00\x00\x02ab\xffc"}},
			mode:   WSModeBinary,
		},
		{
			name:   "empty publish part",
			frames: cat([]wsFrame{txt("text")}, burst(pub, txt(""))),
			want:   []wsMsg{{pub, ""}},
			mode:   WSModeText,
		},
		{
			name:   "big-endian count fallback",
			frames: []wsFrame{txt("text"), bin("\x00\x00\x00\x02"), txt(pub), txt("x")},
			want:   []wsMsg{{pub, "x"}},
			mode:   WSModeText,
		},
		{
			name:   "stream variant, frames split and joined across messages",
			frames: []wsFrame{bin(streamFrame(logon, "") + streamFrame(pub, `{"a":1}`)[:9]), bin(streamFrame(pub, `{"a":1}`)[9:] + "\x00\x00\x00\x00" + streamFrame(`{"c":"p"}`, "{}"))},
			want:   []wsMsg{{logon, ""}, {pub, `{"a":1}`}, {`{"c":"p"}`, "{}"}},
			mode:   WSModeStream,
		},
		{name: "no selector: header first", frames: []wsFrame{txt(logon)}, wantErr: ErrWSNoSelector},
		{name: "no selector: count first", frames: []wsFrame{count(1)}, wantErr: ErrWSNoSelector},
		{name: "selector wrong case", frames: []wsFrame{txt("TEXT")}, wantErr: ErrWSNoSelector},
		{name: "count as text", frames: []wsFrame{txt("text"), txt("\x01\x00\x00\x00")}, wantErr: ErrWSBadCount},
		{name: "count 3 bytes", frames: []wsFrame{txt("text"), bin("\x01\x00\x00")}, wantErr: ErrWSBadCount},
		{name: "count zero", frames: []wsFrame{txt("text"), count(0)}, wantErr: ErrWSBadCount},
		{name: "count huge", frames: []wsFrame{txt("text"), count(0x47455420)}, wantErr: ErrWSBadCount},
		{name: "binary header", frames: []wsFrame{txt("text"), count(1), bin(logon)}, wantErr: ErrWSBadHeader},
		{name: "header not object", frames: []wsFrame{txt("text"), count(1), txt("hello")}, wantErr: ErrWSBadHeader},
		{name: "empty header", frames: []wsFrame{txt("text"), count(2), txt("")}, wantErr: ErrWSBadHeader},
		{name: "stream then text", frames: []wsFrame{bin(streamFrame(logon, "")), txt("x")}, want: []wsMsg{{logon, ""}}, wantErr: ErrWSBadHeader},
		{name: "stream body without header", frames: []wsFrame{bin(streamFrame(`{"c":"p"}`, "")), bin("\x00\x00\x00\x03abc")}, want: []wsMsg{{`{"c":"p"}`, ""}}, wantErr: ErrWSBadHeader},
		{name: "too large over parts", max: 40, frames: cat([]wsFrame{txt("text")}, burst(pub, txt(strings.Repeat("a", 12)), txt("b"))), wantErr: ErrWSMessageTooLarge},
		{name: "too large header", max: 10, frames: cat([]wsFrame{txt("text")}, burst(pub)), wantErr: ErrWSMessageTooLarge},
		{name: "too large stream", max: 100, frames: []wsFrame{bin(streamFrame(`{"c":"p"}`, "")), bin("\x00\x01\x00\x00")}, want: []wsMsg{{`{"c":"p"}`, ""}}, wantErr: ErrWSMessageTooLarge},
		{name: "exactly at limit", max: len(pub) + 3, frames: cat([]wsFrame{txt("text")}, burst(pub, txt("abc"))), want: []wsMsg{{pub, "abc"}}, mode: WSModeText},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &WSDecoder{MaxMessageSize: tt.max}
			got, err := decodeAll(d, tt.frames)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
			if tt.wantErr != nil {
				if err2 := d.Feed(true, []byte("text")); !errors.Is(err2, tt.wantErr) {
					t.Errorf("Feed after error = %v, want the sticky %v", err2, tt.wantErr)
				}
				return
			}
			if d.Mode() != tt.mode {
				t.Errorf("Mode = %v, want %v", d.Mode(), tt.mode)
			}
		})
	}
}

func TestWSDecoderErrorsNameInput(t *testing.T) {
	d := &WSDecoder{}
	err := d.Feed(true, []byte("hello there"))
	if err == nil || !strings.Contains(err.Error(), `"hello there"`) {
		t.Fatalf("error %v does not quote the bad frame", err)
	}
	if !errors.Is(ErrWSMessageTooLarge, ErrFrameTooLarge) {
		t.Fatal("ErrWSMessageTooLarge does not wrap ErrFrameTooLarge")
	}
}

func TestWSDecoderFrameLimit(t *testing.T) {
	d := &WSDecoder{MaxMessageSize: 100}
	if got := d.FrameLimit(); got != 104 {
		t.Errorf("before selector: %d, want 104 (a stream-variant frame)", got)
	}
	steps := []struct {
		f    wsFrame
		want int64
	}{
		{txt("text"), wsSmallFrameLimit},
		{count(3), 100},
		{txt(`{"c":"p"}`), 91},
		{txt("0123456789"), 81},
		{txt("x"), wsSmallFrameLimit},
	}
	for i, s := range steps {
		if err := d.Feed(s.f.Text, []byte(s.f.Payload)); err != nil {
			t.Fatal(err)
		}
		if got := d.FrameLimit(); got != s.want {
			t.Errorf("after step %d: FrameLimit = %d, want %d", i, got, s.want)
		}
	}
}

// TestWSDecoderKeepsUnreadStreamMessages checks that feeding before Next
// drained a stream-variant message keeps that message intact.
func TestWSDecoderKeepsUnreadStreamMessages(t *testing.T) {
	d := &WSDecoder{}
	if err := d.Feed(false, []byte(streamFrame(`{"c":"a"}`, "1")+streamFrame(`{"c":"b"}`, "2"))); err != nil {
		t.Fatal(err)
	}
	if h, _, _ := d.Next(); string(h) != `{"c":"a"}` {
		t.Fatalf("first = %q", h)
	}
	if err := d.Feed(false, []byte(streamFrame(`{"c":"c"}`, "3"))); err != nil {
		t.Fatal(err)
	}
	var got []string
	for h, b, ok := d.Next(); ok; h, b, ok = d.Next() {
		got = append(got, string(h)+string(b))
	}
	if want := []string{`{"c":"b"}2`, `{"c":"c"}3`}; !cmp.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestWSEncoder(t *testing.T) {
	sowHdr := `{"c":"sow","t":"orders","query_id":"auto4","bs":2}`
	rec1, rec2 := `{"ts":"20240101T000000.000000Z","k":"1","l":17}`, `{"k":"2","l":33}`
	sowBody := rec1 + `{"id":1,"qty":10}` + rec2 + `{"id":2,"qty":20,"note":"héllo"}`
	tests := []struct {
		name    string
		frame   string // header and body, parsed into a Message
		binary  bool
		want    []wsFrame
		wantErr error
	}{
		{name: "ack", frame: `{"c":"ack","cid":"1","status":"success"}`, want: []wsFrame{txt(`{"c":"ack","cid":"1","status":"success"}`)}},
		{name: "heartbeat", frame: `{"c":"heartbeat"}`, binary: true, want: []wsFrame{txt(`{"c":"heartbeat"}`)}},
		{name: "p text", frame: `{"c":"p","t":"o","l":17}{"id":1,"qty":10}`, want: []wsFrame{txt(`{"c":"p","t":"o","l":17}`), txt(`{"id":1,"qty":10}`)}},
		{name: "p binary mode", frame: `{"c":"p","l":3}a=1`, binary: true, want: []wsFrame{txt(`{"c":"p","l":3}`), bin("a=1")}},
		{name: "p non-UTF-8 in text mode", frame: "{\"c\":\"p\",\"l\":2}\xff\xfe", want: []wsFrame{txt(`{"c":"p","l":2}`), bin("\xff\xfe")}},
		{name: "publish l 0", frame: `{"c":"publish","t":"o","l":0}`, want: []wsFrame{txt(`{"c":"publish","t":"o","l":0}`)}},
		{name: "oof l 0 binary", frame: `{"c":"oof","l":0}`, binary: true, want: []wsFrame{txt(`{"c":"oof","l":0}`)}},
		{name: "p empty without l", frame: `{"c":"p"}`, want: []wsFrame{txt(`{"c":"p"}`), bin("")}},
		{name: "header value with brace", frame: `{"c":"p","t":"a}b","l":1}x`, want: []wsFrame{txt(`{"c":"p","t":"a}b","l":1}`), txt("x")}},
		{name: "sow text", frame: sowHdr + sowBody, want: []wsFrame{txt(sowHdr), txt(rec1), txt(`{"id":1,"qty":10}`), txt(rec2), txt(`{"id":2,"qty":20,"note":"héllo"}`)}},
		{name: "sow binary", frame: sowHdr + sowBody, binary: true, want: []wsFrame{txt(sowHdr), txt(rec1), bin(`{"id":1,"qty":10}`), txt(rec2), bin(`{"id":2,"qty":20,"note":"héllo"}`)}},
		{name: "sow empty record", frame: `{"c":"sow","bs":1}{"k":"1","l":0}`, want: []wsFrame{txt(`{"c":"sow","bs":1}`), txt(`{"k":"1","l":0}`), bin("")}},
		{name: "sow zero records", frame: `{"c":"sow","bs":0}`, want: []wsFrame{txt(`{"c":"sow","bs":0}`)}},
		{name: "sow record data starting with brace", frame: `{"c":"sow","bs":1}{"l":2}{}`, want: []wsFrame{txt(`{"c":"sow","bs":1}`), txt(`{"l":2}`), txt(`{}`)}},
		{name: "l 0 with body", frame: `{"c":"p","l":0}x`, wantErr: ErrWSFraming},
		{name: "l without its body", frame: `{"c":"p","l":5}`, wantErr: ErrWSFraming},
		{name: "l shorter than the body", frame: `{"c":"p","l":1}xy`, wantErr: ErrWSFraming},
		{name: "ack with body", frame: `{"c":"ack"}x`, wantErr: ErrWSFraming},
		{name: "sow without bs", frame: `{"c":"sow"}{"l":1}x`, wantErr: ErrBadMessage},
		{name: "sow bs mismatch", frame: `{"c":"sow","bs":2}{"l":1}x`, wantErr: ErrBadMessage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mode := WSModeText
			if tt.binary {
				mode = WSModeBinary
			}
			got, err := encodeFrames(parseMessage(t, tt.frame), mode)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error = %v, want %v", err, tt.wantErr)
				}
				if len(got) != 0 {
					t.Errorf("emitted %d frames before failing", len(got))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("frames (-want +got):\n%s", diff)
			}
			for _, f := range got {
				if f.Text && f.Payload == "" {
					t.Errorf("empty text frame emitted (wire spec §3.4 rule 3)")
				}
			}
			// The stream variant carries the same message as one stream frame.
			sf, err := encodeFrames(parseMessage(t, tt.frame), WSModeStream)
			if err != nil {
				t.Fatal(err)
			}
			if want := []wsFrame{bin(streamFrame(tt.frame, ""))}; !cmp.Equal(sf, want) {
				t.Errorf("stream variant = %+v, want %+v", sf, want)
			}
		})
	}
}

func TestWSEncoderEmitError(t *testing.T) {
	boom := errors.New("boom")
	var e WSEncoder
	m := parseMessage(t, `{"c":"p","l":1}x`)
	for _, mode := range []WSMode{WSModeText, WSModeStream} {
		if err := e.Encode(m, mode, func(bool, []byte) error { return boom }); !errors.Is(err, boom) {
			t.Fatalf("%v mode: error = %v, want boom", mode, err)
		}
	}
}

func BenchmarkWSDecoder(b *testing.B) {
	header := []byte(`{"c":"publish","t":"orders","cid":"auto9"}`)
	for _, size := range []int{64, 1024, 64 << 10} {
		body := bytes.Repeat([]byte("x"), size)
		cnt := binary.LittleEndian.AppendUint32(nil, 2)
		b.Run(fmt.Sprintf("publish_body_%dB", size), func(b *testing.B) {
			d := &WSDecoder{}
			if err := d.Feed(true, []byte("text")); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(header) + size))
			b.ReportAllocs()
			for b.Loop() {
				d.Feed(false, cnt)
				d.Feed(true, header)
				d.Feed(true, body)
				if _, _, ok := d.Next(); !ok {
					b.Fatal("no message")
				}
			}
		})
	}
}

func BenchmarkWSEncode(b *testing.B) {
	var sow []byte
	sow = append(sow, `{"c":"sow","t":"orders","query_id":"auto4","bs":10}`...)
	for i := range 10 {
		rec := fmt.Sprintf(`{"id":%d,"qty":%d,"note":"some text"}`, i, i*10)
		sow = fmt.Appendf(sow, `{"k":"%d","l":%d}%s`, i, len(rec), rec)
	}
	// A delivery as the broker writes it: a shared header with this
	// connection's "sids" spliced in.
	var shared SharedHeader
	dh := withNums(Header{Command: CmdP, Topic: "orders", Bookmark: "1|2|"}, FieldLength, uint64(128))
	shared.Prepare(nil, &dh)
	delivery := &Message{Shared: &shared, SubIDs: NewSubIDs("auto2"), Body: bytes.Repeat([]byte("y"), 128)}
	cases := []struct {
		name string
		m    *Message
	}{
		{"p_text_128B", delivery},
		{"sow_10_records", parseMessage(b, string(sow))},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			emit := func(bool, []byte) error { return nil }
			var e WSEncoder
			b.SetBytes(int64(c.m.Len()))
			b.ReportAllocs()
			for b.Loop() {
				if err := e.Encode(c.m, WSModeText, emit); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestAppendWSFrameHeader(t *testing.T) {
	for _, c := range []struct {
		text bool
		n    int
		want []byte
	}{
		{true, 0, []byte{0x81, 0}},
		{false, 0, []byte{0x82, 0}},
		{true, 125, []byte{0x81, 125}},
		{false, 126, []byte{0x82, 126, 0, 126}},
		{true, 1024, []byte{0x81, 126, 0x04, 0x00}},
		{true, 65535, []byte{0x81, 126, 0xff, 0xff}},
		{false, 65536, []byte{0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
		{true, 1<<32 + 5, []byte{0x81, 127, 0, 0, 0, 1, 0, 0, 0, 5}},
	} {
		got := AppendWSFrameHeader([]byte("x"), c.text, c.n)
		if !bytes.Equal(got, append([]byte("x"), c.want...)) {
			t.Errorf("AppendWSFrameHeader(text=%v, %d) = % x, want x then % x", c.text, c.n, got, c.want)
		}
		if len(got)-1 > WSMaxFrameHeaderSize {
			t.Errorf("AppendWSFrameHeader(text=%v, %d) wrote %d bytes, more than WSMaxFrameHeaderSize", c.text, c.n, len(got)-1)
		}
	}
}

// MaskWS XORs byte i with key[i mod 4] at every length and offset of the
// eight-byte steps, and masking twice gives the payload back.
func TestMaskWS(t *testing.T) {
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	for n := 0; n <= 40; n++ {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(i * 7)
		}
		orig := bytes.Clone(p)
		MaskWS(p, key)
		for i := range p {
			if p[i] != orig[i]^key[i%4] {
				t.Fatalf("length %d: byte %d = %#x, want %#x", n, i, p[i], orig[i]^key[i%4])
			}
		}
		MaskWS(p, key)
		if !bytes.Equal(p, orig) {
			t.Fatalf("length %d: masking twice gave % x, want % x", n, p, orig)
		}
	}
}
