package protocol

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/ampsbroker/ampsbroker/internal/readbuf"
)

// tcpPair returns the two ends of a loopback TCP connection on network
// ("tcp4" on 127.0.0.1 or "tcp6" on [::1]).
func tcpPair(t testing.TB, network string) (client, server net.Conn) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "tcp6" {
		addr = "[::1]:0"
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	defer ln.Close()
	type result struct {
		c   net.Conn
		err error
	}
	accepted := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		accepted <- result{c, err}
	}()
	client, err = net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	r := <-accepted
	if r.err != nil {
		client.Close()
		t.Fatalf("accept: %v", r.err)
	}
	t.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}

// spec24 holds the worked examples of wire spec §2.4: prefix and frame text.
var spec24 = []struct{ prefix, frame string }{
	{"00000081", `{"c":"logon","cid":"1","client_name":"pub-1","user_id":"alice","pw":"secret","mt":"json","a":"processed","version":"5.3.4.0:cpp"}`},
	{"000000a9", `{"c":"ack","cid":"1","s":0,"bm":"1457924087319513207|0|","client_name":"pub-1","a":"processed","status":"success","reason":"authentication disabled","version":"5.3.4.0"}`},
	{"00000026", `{"c":"p","t":"orders"}{"id":1,"qty":5}`},
	{"00000056", `{"c":"p","t":"orders","sids":"7","bm":"1457924087319513207|1|","l":16}{"id":1,"qty":5}`},
	{"00000060", `{"c":"sow","t":"orders","query_id":"9","bs":2}{"k":"101","l":8}{"id":1}{"k":"102","l":8}{"id":2}`},
	{"00000011", `{"c":"heartbeat"}`},
}

// spec24Server are the examples of spec24 a server sends; their keys are in
// AppendHeader's order, so Messages encode to them byte for byte. (The
// logon is a client's, in the client's key order.)
var spec24Server = spec24[1:]

func TestAppendStreamFrameSpecExamples(t *testing.T) {
	for _, ex := range spec24 {
		end, err := HeaderEnd([]byte(ex.frame))
		if err != nil {
			t.Fatal(err)
		}
		got := AppendStreamFrame(nil, []byte(ex.frame[:end]), []byte(ex.frame[end:]))
		if p := hex.EncodeToString(got[:4]); p != ex.prefix {
			t.Errorf("prefix of %s = %s, want %s", ex.frame, p, ex.prefix)
		}
		if string(got[4:]) != ex.frame {
			t.Errorf("frame = %s, want %s", got[4:], ex.frame)
		}
	}
}

func TestStreamConnSpecExamplesOverTCP(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			client, server := tcpPair(t, network)
			w := NewStreamConn(client, nil)
			r := NewStreamConn(server, nil)

			for _, ex := range spec24Server {
				if err := w.WriteMessage(parseMessage(t, ex.frame)); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			for _, ex := range spec24Server {
				h, b, err := r.ReadMessage()
				if err != nil {
					t.Fatalf("ReadMessage: %v", err)
				}
				end, _ := HeaderEnd([]byte(ex.frame))
				if string(h) != ex.frame[:end] || string(b) != ex.frame[end:] {
					t.Errorf("ReadMessage = %s | %s, want %s | %s", h, b, ex.frame[:end], ex.frame[end:])
				}
			}
		})
	}
}

// captureRWC records writes and reads from a fixed input.
type captureRWC struct {
	io.Reader
	bytes.Buffer
}

func (c *captureRWC) Read(p []byte) (int, error)  { return c.Reader.Read(p) }
func (c *captureRWC) Write(p []byte) (int, error) { return c.Buffer.Write(p) }
func (c *captureRWC) Close() error                { return nil }

func TestStreamConnExactBytes(t *testing.T) {
	rwc := &captureRWC{Reader: strings.NewReader("")}
	c := NewStreamConn(rwc, &StreamOptions{WriteBufferSize: 16})
	var want strings.Builder
	for _, ex := range spec24Server {
		if err := c.WriteMessage(parseMessage(t, ex.frame)); err != nil {
			t.Fatal(err)
		}
		p, _ := hex.DecodeString(ex.prefix)
		want.Write(p)
		want.WriteString(ex.frame)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := rwc.Buffer.String(); got != want.String() {
		t.Errorf("wire bytes differ:\n got %q\nwant %q", got, want.String())
	}
}

func TestStreamConnLargeFrameAndBurst(t *testing.T) {
	client, server := tcpPair(t, "tcp4")
	w := NewStreamConn(client, nil)
	r := NewStreamConn(server, &StreamOptions{MaxFrameSize: 2 << 20})

	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	big[0] = '{' // a body may begin with '{' (spec §2.1)
	const burst = 10000

	var wg sync.WaitGroup
	var writeErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		writeErr = func() error {
			if err := w.WriteMessage(&Message{Header: &Header{Command: CmdP, Topic: "big"}, Body: big}); err != nil {
				return err
			}
			for i := range burst {
				h := Header{Command: CmdP, Topic: "t"}
				h.Set(FieldSequence, uint64(i))
				if err := w.WriteMessage(&Message{Header: &h, Body: fmt.Appendf(nil, `{"n":%d}`, i)}); err != nil {
					return err
				}
			}
			return w.Flush()
		}()
	}()
	// On failure, closing the writer's end unblocks it before waiting.
	defer func() { w.Close(); wg.Wait() }()

	h, b, err := r.ReadMessage()
	if err != nil {
		t.Fatalf("ReadMessage big: %v", err)
	}
	if string(h) != `{"c":"p","t":"big"}` || !bytes.Equal(b, big) {
		t.Fatalf("1 MiB frame corrupted: header %s, body %d bytes (equal=%v)", h, len(b), bytes.Equal(b, big))
	}
	var hd Header
	for i := range burst {
		h, b, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("ReadMessage %d: %v", i, err)
		}
		if err := DecodeHeader(h, &hd); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if hd.Sequence != uint64(i) || string(b) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("frame %d: s=%d body=%s", i, hd.Sequence, b)
		}
	}
	wg.Wait()
	if writeErr != nil {
		t.Fatalf("writer: %v", writeErr)
	}
}

func frame(size uint32, data string) []byte {
	return append(binary.BigEndian.AppendUint32(nil, size), data...)
}

func TestStreamReaderErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		max     int
		wantIs  error
		wantMsg string
	}{
		{"truncated body", frame(100, `{"c":"p"}x`), 0, io.ErrUnexpectedEOF, "stream ended after 10 of 100 frame bytes"},
		{"truncated prefix", []byte{0, 0}, 0, io.ErrUnexpectedEOF, "inside a frame length prefix (2 of 4 bytes)"},
		{"4 GiB prefix", frame(0xFFFFFFFF, "x"), 0, ErrFrameTooLarge, "frame length 4294967295 (prefix ffffffff) exceeds the limit of 209715200 bytes"},
		{"HTTP GET as length", []byte("GET / HTTP/1.1\r\n"), 0, ErrFrameTooLarge, "frame length 1195725856"},
		{"over custom limit", frame(101, ""), 100, ErrFrameTooLarge, "exceeds the limit of 100 bytes"},
		{"clean EOF", nil, 0, io.EOF, "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewStreamReader(bytes.NewReader(tt.in), tt.max)
			_, err := r.ReadFrame()
			if !errors.Is(err, tt.wantIs) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("ReadFrame error = %v, want %v containing %q", err, tt.wantIs, tt.wantMsg)
			}
			if _, err2 := r.ReadFrame(); err2 != err {
				t.Errorf("second ReadFrame = %v, want the sticky %v", err2, err)
			}
		})
	}
}

func TestStreamReaderExactLimitAndZeroFrames(t *testing.T) {
	var in []byte
	in = append(in, frame(0, "")...)
	in = append(in, frame(0, "")...)
	in = append(in, frame(100, strings.Repeat("a", 100))...)
	in = append(in, frame(0, "")...)
	in = append(in, frame(3, "xyz")...)
	in = append(in, frame(0, "")...)
	r := NewStreamReader(iotest.OneByteReader(bytes.NewReader(in)), 100)
	for _, want := range []string{strings.Repeat("a", 100), "xyz"} {
		got, err := r.ReadFrame()
		if err != nil || string(got) != want {
			t.Fatalf("ReadFrame = %q, %v; want %q", got, err, want)
		}
	}
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("ReadFrame at end = %v, want io.EOF", err)
	}
}

func TestStreamReaderGrowsInChunks(t *testing.T) {
	// A frame larger than every buffer, delivered a few bytes at a time,
	// exercises the geometric growth path.
	body := make([]byte, 5*readbuf.GrowChunk+123)
	for i := range body {
		body[i] = byte(i)
	}
	in := append(frame(uint32(len(body)), ""), body...)
	in = append(in, frame(2, "ok")...)
	r := NewStreamReader(iotest.HalfReader(bytes.NewReader(in)), 0)
	got, err := r.ReadFrame()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("ReadFrame: %v, %d bytes, equal=%v", err, len(got), bytes.Equal(got, body))
	}
	got, err = r.ReadFrame()
	if err != nil || string(got) != "ok" {
		t.Fatalf("ReadFrame = %q, %v", got, err)
	}
}

func TestStreamReaderReleasesBigBuffer(t *testing.T) {
	big := strings.Repeat("b", 2*frameRetainSize)
	in := append(frame(uint32(len(big)), big), frame(1, "s")...)
	r := NewStreamReader(bytes.NewReader(in), 0)
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if cap(r.frame) < len(big) {
		t.Fatalf("buffer cap %d after a %d byte frame", cap(r.frame), len(big))
	}
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if cap(r.frame) > frameRetainSize {
		t.Errorf("frame buffer cap %d retained after the big frame, want <= %d", cap(r.frame), frameRetainSize)
	}
}

// TestStreamReaderHugeClaimCostsLittle checks that a peer claiming a frame
// of 150 MB but sending 10 bytes does not make the reader allocate the
// claim (spec §2.2 limit is 200 MiB, so the claim itself is accepted).
func TestStreamReaderHugeClaimCostsLittle(t *testing.T) {
	const claim = 150 << 20
	in := frame(claim, `{"c":"p"}x`)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := NewStreamReader(bytes.NewReader(in), 0)
	_, err := r.ReadFrame()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ReadFrame = %v, want io.ErrUnexpectedEOF", err)
	}
	t.Logf("claim %d bytes, sent 10: allocated %d bytes", claim, after.TotalAlloc-before.TotalAlloc)
	if got := after.TotalAlloc - before.TotalAlloc; got > 256<<10 {
		t.Errorf("allocated %d bytes for a %d byte claim with 10 bytes sent; want < 256 KiB", got, claim)
	}
}

func TestStreamConnHugeClaimOverTCP(t *testing.T) {
	client, server := tcpPair(t, "tcp4")
	r := NewStreamConn(server, nil)
	if _, err := client.Write(frame(150<<20, `{"c":"p"}x`)); err != nil {
		t.Fatal(err)
	}
	client.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err := r.ReadMessage()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ReadMessage = %v, want io.ErrUnexpectedEOF", err)
	}
	t.Logf("claim 150 MB over TCP, sent 10: allocated %d bytes", after.TotalAlloc-before.TotalAlloc)
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("allocated %d bytes for a 150 MB claim with 10 bytes sent; want < 1 MiB", got)
	}
}

func TestStreamConnMalformedHeader(t *testing.T) {
	for _, in := range []string{`["c"]`, `hello`, `{"c":"p"`, `   `} {
		rwc := &captureRWC{Reader: bytes.NewReader(append(frame(uint32(len(in)), in), frame(9, `{"c":"p"}`)...))}
		c := NewStreamConn(rwc, nil)
		_, _, err := c.ReadMessage()
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("ReadMessage(%q) error = %v, want *SyntaxError", in, err)
			continue
		}
		if _, _, err2 := c.ReadMessage(); err2 != err {
			t.Errorf("ReadMessage after a malformed header = %v, want the same error", err2)
		}
	}
}

func TestStreamConnCloseUnblocksAndIsIdempotent(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	c := NewStreamConn(server, nil)

	readErr := make(chan error, 1)
	go func() {
		_, _, err := c.ReadMessage()
		readErr <- err
	}()

	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Close()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Close #%d = %v", i, err)
		}
	}
	if err := <-readErr; !errors.Is(err, io.ErrClosedPipe) && !errors.Is(err, net.ErrClosed) {
		t.Errorf("blocked ReadMessage after Close = %v, want a closed-connection error", err)
	}
	if err := c.WriteMessage(&Message{Header: &Header{}}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("WriteMessage after Close = %v, want net.ErrClosed", err)
	}
	if err := c.Flush(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Flush after Close = %v, want net.ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close again = %v", err)
	}
}

func TestStreamConnCloseDuringWrite(t *testing.T) {
	client, server := net.Pipe() // unbuffered: a write blocks until read
	defer client.Close()
	c := NewStreamConn(server, &StreamOptions{WriteBufferSize: 64})
	writeErr := make(chan error, 1)
	go func() {
		var err error
		for err == nil {
			err = c.WriteMessage(&Message{Header: &Header{Command: CmdP}, Body: bytes.Repeat([]byte("x"), 100)})
		}
		writeErr <- err
	}()
	// Let the writer block on the pipe by reading one byte, then close.
	if _, err := io.ReadFull(client, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-writeErr; err == nil {
		t.Fatal("WriteMessage kept succeeding after Close")
	}
}

// countingReader serves data in reads of at most chunk bytes and counts
// the reads.
type countingReader struct {
	data  []byte
	chunk int
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	c.reads++
	n := copy(p[:min(len(p), c.chunk)], c.data)
	c.data = c.data[n:]
	return n, nil
}

// Streaming input is read through the large buffer, many frames a read;
// once a read finds the socket drained the reader holds only its small
// buffer, which is all an idle connection keeps.
func TestStreamReaderBufferFollowsTraffic(t *testing.T) {
	body := strings.Repeat("x", 1000)
	var in []byte
	for range 1000 {
		in = append(in, frame(uint32(len(body)), body)...)
	}
	src := &countingReader{data: in, chunk: 1 << 30}
	r := NewStreamReader(src, 0)
	for i := range 1000 {
		f, err := r.ReadFrame()
		if err != nil || string(f) != body {
			t.Fatalf("frame %d: %v, %d bytes", i, err, len(f))
		}
		if i == 500 && !r.b.Large() {
			t.Fatal("streaming input is read through the small buffer")
		}
	}
	if want := len(in)/DefaultReadBufferSize + 3; src.reads > want {
		t.Errorf("%d reads for %d bytes of streaming input, want at most %d", src.reads, len(in), want)
	}

	// A peer that sends one small frame at a time: each read comes back
	// short, so the reader stays on (or returns to) its small buffer.
	src = &countingReader{chunk: 1 << 30}
	r = NewStreamReader(src, 0)
	for i := range 5 {
		src.data = frame(5, "hello")
		if f, err := r.ReadFrame(); err != nil || string(f) != "hello" {
			t.Fatalf("frame %d: %q, %v", i, f, err)
		}
		if r.b.Large() {
			t.Fatalf("frame %d: reading through the large buffer, want the small one", i)
		}
	}
	// A frame larger than the small buffer moves to the large one, and a
	// drained socket moves back before the next blocking read.
	src.data = frame(5000, strings.Repeat("y", 5000))
	if f, err := r.ReadFrame(); err != nil || len(f) != 5000 {
		t.Fatalf("5000 byte frame: %d bytes, %v", len(f), err)
	}
	src.data = frame(2, "ok")
	if f, err := r.ReadFrame(); err != nil || string(f) != "ok" {
		t.Fatalf("after the large frame: %q, %v", f, err)
	}
	if r.b.Large() {
		t.Error("the large buffer is kept after the socket drained")
	}
}

// A reader that fails (here the stream ends inside a frame, as when the
// connection is closed under it) gives its pooled large buffer back and
// keeps returning the error.
func TestStreamReaderReleasesAtTheEnd(t *testing.T) {
	body := strings.Repeat("x", 1000)
	var in []byte
	for range 100 {
		in = append(in, frame(uint32(len(body)), body)...)
	}
	in = append(in, frame(uint32(len(body)), body)[:500]...)
	for _, sizes := range []struct{ small, large int }{
		{DefaultSmallReadBufferSize, DefaultReadBufferSize},
		{DefaultSmallReadBufferSize, 3 * DefaultReadBufferSize}, // a ReadBufferSize option
	} {
		src := &countingReader{data: in, chunk: 1 << 30}
		r := newStreamReader(src, 0, sizes.small, sizes.large)
		for i := range 100 {
			if _, err := r.ReadFrame(); err != nil {
				t.Fatalf("frame %d: %v", i, err)
			}
		}
		if !r.b.Large() {
			t.Fatalf("%v: streaming input read through the small buffer", sizes)
		}
		_, err := r.ReadFrame()
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%v: a frame cut short: %v", sizes, err)
		}
		if r.b.Large() || r.b.Len() != 0 {
			t.Fatalf("%v: after the stream ended the reader holds its large buffer (%v) or %d bytes", sizes, r.b.Large(), r.b.Len())
		}
		if _, again := r.ReadFrame(); again != err {
			t.Fatalf("%v: the next call returned %v, want the same %v", sizes, again, err)
		}
	}
}
