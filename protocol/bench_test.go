package protocol

import (
	"bufio"
	"bytes"
	"io"
	"testing"
)

func BenchmarkDecodeHeader(b *testing.B) {
	cases := []struct{ name, in string }{
		{"logon", `{"c":"logon","cid":"1","client_name":"pub-1","user_id":"alice","pw":"secret","mt":"json","a":"processed","version":"5.3.4.0:cpp"}`},
		{"publish", `{"c":"p","t":"orders"}`},
		{"publish_js_seq", `{"c":"publish","t":"orders","s":"1795369341455000001","a":""}`},
		{"subscribe", `{"c":"subscribe","t":"orders","filter":"/qty > 5 AND /sym = \"IBM\"","cid":"auto2","sub_id":"auto2","a":"processed"}`},
	}
	for _, c := range cases {
		data := []byte(c.in)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			var h Header
			for b.Loop() {
				if err := DecodeHeader(data, &h); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkHeaderEnd(b *testing.B) {
	data := []byte(`{"c":"p","t":"orders","sids":"7","bm":"1457924087319513207|1|","l":16}{"id":1,"qty":5}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := HeaderEnd(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendHeader(b *testing.B) {
	cases := []struct {
		name string
		h    Header
	}{
		{"ack", withNums(Header{Command: CmdAck, CommandID: "1", Bookmark: "1457924087319513207|0|", ClientName: "pub-1",
			AckType: AckProcessed, Status: StatusSuccess, Reason: "authentication disabled", Version: "5.3.4.0"},
			FieldSequence, uint64(0))},
		{"delivery", withNums(Header{Command: CmdP, Topic: "orders", SubIDs: "7", Bookmark: "1457924087319513207|1|"},
			FieldLength, uint64(16))},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 512)
			for b.Loop() {
				buf = AppendHeader(buf[:0], &c.h)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

func BenchmarkStreamConnWriteMessage(b *testing.B) {
	h := withNums(Header{Command: CmdP, Topic: "orders", Bookmark: "1457924087319513207|1|"}, FieldLength, uint64(16))
	var p SharedHeader
	p.Prepare(nil, &h)
	m := &Message{Shared: &p, SubIDs: NewSubIDs("7"), Body: []byte(`{"id":1,"qty":5}`)}
	c := NewStreamConn(discardRWC{}, nil)
	b.ReportAllocs()
	b.SetBytes(int64(4 + m.Len()))
	for b.Loop() {
		if err := c.WriteMessage(m); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.Flush(); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkStreamReaderReadFrame(b *testing.B) {
	const frames = 1024
	one := AppendStreamFrame(nil, []byte(`{"c":"p","t":"orders"}`), []byte(`{"id":1,"qty":5}`))
	stream := bytes.Repeat(one, frames)
	src := bytes.NewReader(stream)
	br := bufio.NewReaderSize(src, DefaultReadBufferSize)
	r := NewStreamReader(br, 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(one)))
	i := 0
	for b.Loop() {
		if i == frames {
			src.Reset(stream)
			br.Reset(src)
			i = 0
		}
		if _, err := r.ReadFrame(); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

type discardRWC struct{}

func (discardRWC) Read([]byte) (int, error)    { return 0, io.EOF }
func (discardRWC) Write(p []byte) (int, error) { return len(p), nil }
func (discardRWC) Close() error                { return nil }
