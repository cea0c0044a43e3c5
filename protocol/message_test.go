package protocol

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// parseMessage turns the text of a stream frame (header then body) into the
// Message that encodes to it: the header is decoded into values, and a
// "sow" body is split into its records (wire spec §2.3).
func parseMessage(t testing.TB, frame string) *Message {
	t.Helper()
	end, err := HeaderEnd([]byte(frame))
	if err != nil {
		t.Fatalf("parseMessage(%q): %v", frame, err)
	}
	m := &Message{Header: new(Header)}
	if err := DecodeHeader([]byte(frame[:end]), m.Header); err != nil {
		t.Fatalf("parseMessage(%q): %v", frame, err)
	}
	body := frame[end:]
	if m.Header.Command != CmdSOW {
		m.Body = []byte(body)
		return m
	}
	for body != "" {
		end, err := HeaderEnd([]byte(body))
		if err != nil {
			t.Fatalf("parseMessage(%q): record: %v", frame, err)
		}
		r := Record{Header: new(Header)}
		if err := DecodeHeader([]byte(body[:end]), r.Header); err != nil {
			t.Fatalf("parseMessage(%q): record: %v", frame, err)
		}
		n := end + int(r.Header.Length)
		r.Data = []byte(body[end:n])
		m.Records = append(m.Records, r)
		body = body[n:]
	}
	return m
}

func TestAppendStreamMessageSpecExamples(t *testing.T) {
	for _, ex := range spec24Server {
		m := parseMessage(t, ex.frame)
		got, err := AppendStreamMessage([]byte("x"), m)
		if err != nil {
			t.Fatalf("%s: %v", ex.frame, err)
		}
		if p := hex.EncodeToString(got[1:5]); p != ex.prefix {
			t.Errorf("prefix of %s = %s, want %s", ex.frame, p, ex.prefix)
		}
		if string(got[5:]) != ex.frame {
			t.Errorf("frame = %s, want %s", got[5:], ex.frame)
		}
		if m.Len() != len(ex.frame) {
			t.Errorf("Len of %s = %d, want %d", ex.frame, m.Len(), len(ex.frame))
		}
	}
}

// sharedCases are headers a SharedHeader must encode exactly as AppendHeader.
var sharedCases = []Header{
	{},
	{Command: CmdP, Topic: "orders"},
	withNums(Header{Command: CmdP, Topic: "orders", CorrelationID: "corr\"1", Bookmark: "1|2|"}, FieldLength, uint64(17)),
	withNums(Header{Command: CmdOOF, Topic: "o", SubID: "s", SOWKey: "k", Reason: "deleted"}, FieldLength, uint64(0)),
	withNums(Header{Command: CmdP, CommandID: "c", Topic: "t"}, FieldSequence, uint64(5)),
	withNums(Header{Command: CmdSOW, Topic: "t", QueryID: "q"}, FieldBatchSize, uint64(0)),
	{Topic: "no command"},
	{QueryID: "only after sids"},
}

func TestSharedHeaderMatchesAppendHeader(t *testing.T) {
	for _, h := range sharedCases {
		for _, ids := range []string{"", "7", "auto2,auto3", `q"uote`} {
			var p SharedHeader
			shared := p.Prepare([]byte("junk"), &h)
			if string(shared[:4]) != "junk" {
				t.Fatalf("Prepare overwrote dst: %q", shared)
			}
			withIDs := h
			withIDs.SubIDs = ids
			want := string(AppendHeader(nil, &withIDs))
			m := Message{Shared: &p, SubIDs: NewSubIDs(ids)}
			if got := string(m.AppendHeader([]byte("x"))); got != "x"+want {
				t.Errorf("shared %+v sids %q = %s, want %s", h, ids, got[1:], want)
			}
			if m.Len() != len(want) {
				t.Errorf("Len(shared %+v sids %q) = %d, want %d", h, ids, m.Len(), len(want))
			}
			var d Header
			if err := DecodeHeader([]byte(want), &d); err != nil || d.SubIDs != ids {
				t.Errorf("%s decodes to sids %q, %v; want %q", want, d.SubIDs, err, ids)
			}
		}
	}
}

func TestSharedHeaderAppendAllocatesNothing(t *testing.T) {
	h := withNums(Header{Command: CmdP, Topic: "orders"}, FieldLength, uint64(16))
	var p SharedHeader
	p.Prepare(nil, &h)
	m := Message{Shared: &p, SubIDs: NewSubIDs("sub-1"), Body: []byte(`{"id":1,"qty":5}`)}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = m.AppendHeader(buf[:0]) }); n != 0 {
		t.Errorf("AppendHeader with a SharedHeader: %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = m.Len() }); n != 0 {
		t.Errorf("Len: %v allocs, want 0", n)
	}
}

func TestMessageRules(t *testing.T) {
	var p SharedHeader
	p.Prepare(nil, &Header{Command: CmdP})
	sow := withNums(Header{Command: CmdSOW}, FieldBatchSize, uint64(1))
	bad := map[string]*Message{
		"no header":       {},
		"two headers":     {Header: &Header{Command: CmdP}, Shared: &p},
		"sids w/o shared": {Header: &Header{Command: CmdP}, SubIDs: NewSubIDs("1")},
		"records on p":    {Header: &Header{Command: CmdP}, Records: []Record{{Data: []byte("x")}}},
		"sow without bs":  {Header: &Header{Command: CmdSOW}, Records: []Record{{Data: []byte("x")}}},
		"sow bs mismatch": {Header: &sow, Records: []Record{{}, {}}},
		"sow with body":   {Header: &sow, Records: []Record{{}}, Body: []byte("x")},
	}
	for name, m := range bad {
		if _, err := AppendStreamMessage(nil, m); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: AppendStreamMessage error = %v, want ErrBadMessage", name, err)
		}
		rwc := &captureRWC{Reader: strings.NewReader("")}
		c := NewStreamConn(rwc, nil)
		if err := c.WriteMessage(m); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: stream WriteMessage error = %v, want ErrBadMessage", name, err)
		}
		if c.Flush(); rwc.Len() != 0 {
			t.Errorf("%s: stream wrote %q", name, rwc.String())
		}
		for _, mode := range []WSMode{WSModeText, WSModeBinary, WSModeStream} {
			got, err := encodeFrames(m, mode)
			if !errors.Is(err, ErrBadMessage) || len(got) != 0 {
				t.Errorf("%s: Encode in %v mode = %d frames, %v; want none and ErrBadMessage", name, mode, len(got), err)
			}
		}
	}
}

// sowBatch is the query result sequence of wire spec §3.4 and §8.4:
// group_begin, a sow message with bs records, group_end.
func sowBatch() []*Message {
	rec := func(k string, data string) Record {
		return Record{Header: &Header{SOWKey: k, Timestamp: "20240101T000000.000000Z"}, Data: []byte(data)}
	}
	sow := withNums(Header{Command: CmdSOW, Topic: "orders", QueryID: "auto4"}, FieldBatchSize, uint64(3))
	return []*Message{
		{Header: &Header{Command: CmdGroupBegin, QueryID: "auto4"}},
		{Header: &sow, Records: []Record{
			rec("1", `{"id":1,"qty":10}`),
			rec("2", `{"id":2,"qty":20,"note":"héllo"}`),
			{Header: &Header{SOWKey: "3", SOWKeys: "ignored", Length: 99, Present: FieldLength}}, // empty record; "l" is recomputed
		}},
		{Header: &Header{Command: CmdGroupEnd, QueryID: "auto4"}},
	}
}

const (
	sowBatchHeader = `{"c":"sow","t":"orders","query_id":"auto4","bs":3}`
	sowRec1        = `{"ts":"20240101T000000.000000Z","k":"1","l":17}`
	sowRec2        = `{"ts":"20240101T000000.000000Z","k":"2","l":33}`
	sowRec3        = `{"k":"3","sow_keys":"ignored","l":0}`
)

func TestSOWBatchStream(t *testing.T) {
	want := []string{
		`{"c":"group_begin","query_id":"auto4"}`,
		sowBatchHeader + sowRec1 + `{"id":1,"qty":10}` + sowRec2 + `{"id":2,"qty":20,"note":"héllo"}` + sowRec3,
		`{"c":"group_end","query_id":"auto4"}`,
	}
	rwc := &captureRWC{Reader: strings.NewReader("")}
	c := NewStreamConn(rwc, &StreamOptions{WriteBufferSize: 16})
	for _, m := range sowBatch() {
		if err := c.WriteMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	r := NewStreamConn(&captureRWC{Reader: bytes.NewReader(rwc.Bytes())}, nil)
	for i, w := range want {
		h, b, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if got := string(h) + string(b); got != w {
			t.Errorf("message %d = %s\nwant %s", i, got, w)
		}
	}
	// The records decode as the JS and Go clients read them: a record
	// header, then exactly "l" bytes (wire spec §2.3).
	if got := parseMessage(t, want[1]); len(got.Records) != 3 || string(got.Records[1].Data) != `{"id":2,"qty":20,"note":"héllo"}` {
		t.Errorf("sow body splits into %+v", got.Records)
	}
}

func encodeFrames(m *Message, mode WSMode) ([]wsFrame, error) {
	var got []wsFrame
	var e WSEncoder
	err := e.Encode(m, mode, func(text bool, p []byte) error {
		got = append(got, wsFrame{text, string(p)})
		return nil
	})
	return got, err
}

func TestSOWBatchWebSocket(t *testing.T) {
	begin, end := txt(`{"c":"group_begin","query_id":"auto4"}`), txt(`{"c":"group_end","query_id":"auto4"}`)
	tests := []struct {
		mode WSMode
		want []wsFrame
	}{
		{WSModeText, []wsFrame{begin, txt(sowBatchHeader), txt(sowRec1), txt(`{"id":1,"qty":10}`), txt(sowRec2), txt(`{"id":2,"qty":20,"note":"héllo"}`), txt(sowRec3), bin(""), end}},
		{WSModeBinary, []wsFrame{begin, txt(sowBatchHeader), txt(sowRec1), bin(`{"id":1,"qty":10}`), txt(sowRec2), bin(`{"id":2,"qty":20,"note":"héllo"}`), txt(sowRec3), bin(""), end}},
		{WSModeStream, []wsFrame{
			bin(streamFrame(`{"c":"group_begin","query_id":"auto4"}`, "")),
			bin(streamFrame(sowBatchHeader, sowRec1+`{"id":1,"qty":10}`+sowRec2+`{"id":2,"qty":20,"note":"héllo"}`+sowRec3)),
			bin(streamFrame(`{"c":"group_end","query_id":"auto4"}`, "")),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			var got []wsFrame
			for _, m := range sowBatch() {
				f, err := encodeFrames(m, tt.mode)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, f...)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("frames (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStreamConnSharedHeaderFanOut(t *testing.T) {
	h := withNums(Header{Command: CmdP, Topic: "orders", CorrelationID: "x1"}, FieldLength, uint64(8))
	var p SharedHeader
	p.Prepare(nil, &h)
	body := []byte(`{"id":1}`)
	rwc := &captureRWC{Reader: strings.NewReader("")}
	c := NewStreamConn(rwc, nil)
	for _, ids := range []string{"a", "b,c"} {
		if err := c.WriteMessage(&Message{Shared: &p, SubIDs: NewSubIDs(ids), Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	c.Flush()
	want := streamFrame(`{"c":"p","t":"orders","sids":"a","x":"x1","l":8}`, `{"id":1}`) +
		streamFrame(`{"c":"p","t":"orders","sids":"b,c","x":"x1","l":8}`, `{"id":1}`)
	if rwc.String() != want {
		t.Errorf("wire = %q\nwant %q", rwc.String(), want)
	}
}

// FuzzWSEncode checks the WebSocket framing of Messages built from fuzzed
// values: it never panics, never emits an empty or invalid-UTF-8 text
// frame, starts with the header as text, and carries every data byte; a
// sow batch comes out as bs pairs of record header (with "l" equal to the
// data length) and data.
func FuzzWSEncode(f *testing.F) {
	f.Add([]byte(`{"c":"p","l":3}`), []byte("abc"), uint8(0), false)
	f.Add([]byte(`{"c":"sow","bs":2}`), []byte(`{}x`), uint8(2), true)
	f.Add([]byte(`{"c":"oof","l":0}`), []byte{}, uint8(0), false)
	f.Add([]byte(`{"c":"ack","cid":"1"}`), []byte{}, uint8(0), false)
	f.Fuzz(func(t *testing.T, header, body []byte, records uint8, binaryMode bool) {
		var h Header
		if DecodeHeader(header, &h) != nil {
			return
		}
		m := &Message{Header: &h, Body: body}
		if h.Command == CmdSOW {
			// Split the body into records of growing sizes.
			m.Body = nil
			for i, rest := 0, body; i < int(records%8); i++ {
				n := min(i, len(rest))
				m.Records = append(m.Records, Record{Header: &Header{SOWKey: string(rune('a' + i))}, Data: rest[:n]})
				rest = rest[n:]
			}
		}
		mode := WSModeText
		if binaryMode {
			mode = WSModeBinary
		}
		frames, err := encodeFrames(m, mode)
		if err != nil {
			if len(frames) != 0 {
				t.Fatalf("%d frames emitted before error %v", len(frames), err)
			}
			return
		}
		if len(frames) == 0 || !frames[0].Text || frames[0].Payload != string(m.AppendHeader(nil)) {
			t.Fatalf("first frame %+v is not the text header", frames)
		}
		for i, fr := range frames {
			if fr.Text && (fr.Payload == "" || !utf8.ValidString(fr.Payload)) {
				t.Fatalf("frame %d is an empty or invalid text frame: %q", i, fr.Payload)
			}
		}
		var data []byte
		switch h.Command {
		case CmdSOW:
			if len(frames) != 1+2*int(h.BatchSize) {
				t.Fatalf("sow with bs %d: %d frames", h.BatchSize, len(frames))
			}
			for i := 1; i < len(frames); i += 2 {
				var rh Header
				if err := DecodeHeader([]byte(frames[i].Payload), &rh); err != nil || !frames[i].Text ||
					!rh.Has(FieldLength) || rh.Length != uint64(len(frames[i+1].Payload)) {
					t.Fatalf("record frame %d %+v: l does not match the data frame %q (%v)", i, frames[i], frames[i+1].Payload, err)
				}
				data = append(data, frames[i+1].Payload...)
			}
			var want []byte
			for _, r := range m.Records {
				want = append(want, r.Data...)
			}
			if !bytes.Equal(data, want) {
				t.Fatalf("record data %q, want %q", data, want)
			}
		default:
			for _, fr := range frames[1:] {
				data = append(data, fr.Payload...)
			}
			if !bytes.Equal(data, body) {
				t.Fatalf("frames after the header carry %q, body is %q", data, body)
			}
		}
	})
}

// TestStreamReaderReadsAppendStreamMessage checks the stream reader and
// writer agree on a batch written in one buffer.
func TestStreamReaderReadsAppendStreamMessage(t *testing.T) {
	var wire []byte
	for _, m := range sowBatch() {
		var err error
		if wire, err = AppendStreamMessage(wire, m); err != nil {
			t.Fatal(err)
		}
	}
	r := NewStreamReader(bufio.NewReader(bytes.NewReader(wire)), 0)
	for i := range 3 {
		frame, err := r.ReadFrame()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if _, _, err := splitFrame(frame); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
}
