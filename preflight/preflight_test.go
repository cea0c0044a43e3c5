package preflight

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// chunkReader serves its chunks one Read at a time and fails the test if it is
// read past them while fail is set, proving the caller did not wait for more.
type chunkReader struct {
	t      *testing.T
	chunks []string
	fail   bool
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		if r.fail {
			r.t.Errorf("read past the %s", "bytes needed to decide")
		}
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	r.chunks[0] = r.chunks[0][n:]
	if r.chunks[0] == "" {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name    string
		chunks  []string
		want    bool
		wantErr bool
	}{
		{"preflight", []string{"GET /amps/json HTTP/1.1\r\n"}, true, false},
		{"preflight byte by byte", []string{"G", "E", "T", " "}, true, false},
		{"amps frame", []string{"\x00\x00\x00\x0e{\"c\":\"logon\"}"}, false, false},
		{"amps frame first byte only", []string{"\x00"}, false, false},
		{"near miss", []string{"GEX"}, false, false},
		{"lower case", []string{"get /"}, false, false},
		{"POST", []string{"POST / HTTP/1.1\r\n"}, false, false},
		{"prefix then EOF", []string{"GE"}, false, true},
		{"empty", nil, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			all := strings.Join(tt.chunks, "")
			br := bufio.NewReader(&chunkReader{t: t, chunks: append([]string(nil), tt.chunks...), fail: !tt.wantErr})
			got, err := Detect(br)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Fatalf("Detect(%q) = %v, %v; want %v, error %v", all, got, err, tt.want, tt.wantErr)
			}
			if err != nil {
				return
			}
			// Nothing consumed: every byte seen so far is still there.
			rest, _ := br.Peek(br.Buffered())
			if !strings.HasPrefix(all, string(rest)) || (got && string(rest) != all) {
				t.Errorf("after Detect(%q) br holds %q", all, rest)
			}
		})
	}
}

func TestReadRequest(t *testing.T) {
	tests := []struct {
		name, in  string
		path, mt  string
		host      string
		proto     string
		header    http.Header
		remainder string
	}{
		{
			name:      "official client CRLF",
			in:        "GET /user/can/put/path/here/amps/json HTTP/1.1\r\nHost: host\r\nConnection: upgrade\r\nUpgrade: tcp\r\nToken: value\r\nCookie: a=1; b=2\r\n\r\n",
			path:      "/user/can/put/path/here/amps/json",
			mt:        "json",
			host:      "host",
			proto:     "HTTP/1.1",
			header:    http.Header{"Connection": {"upgrade"}, "Upgrade": {"tcp"}, "Token": {"value"}, "Cookie": {"a=1; b=2"}},
			remainder: "",
		},
		{
			name:      "bare LF with AMPS bytes behind",
			in:        "GET /amps/nvfix?http_preflight=true HTTP/1.1\nHost: h:9007\nUpgrade: TCPS\n\n\x00\x00\x00\x02{}",
			path:      "/amps/nvfix",
			mt:        "nvfix",
			host:      "h:9007",
			proto:     "HTTP/1.1",
			header:    http.Header{"Upgrade": {"TCPS"}},
			remainder: "\x00\x00\x00\x02{}",
		},
		{
			name:      "Go client",
			in:        "GET /amps HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Probe: yes\r\n\r\n\x00",
			path:      "/amps",
			mt:        "",
			host:      "127.0.0.1",
			proto:     "HTTP/1.1",
			header:    http.Header{"X-Probe": {"yes"}},
			remainder: "\x00",
		},
		{
			name:      "mixed line ends, HTTP/1.0, no Host",
			in:        "GET /p/amps/xml HTTP/1.0\nUpgrade: tcp\r\n\r\nGET ",
			path:      "/p/amps/xml",
			mt:        "xml",
			host:      "",
			proto:     "HTTP/1.0",
			header:    http.Header{"Upgrade": {"tcp"}},
			remainder: "GET ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tt.in), 16)
			req, err := ReadRequest(br, 0)
			if err != nil {
				t.Fatalf("ReadRequest(%q): %v", tt.in, err)
			}
			if req.Method != "GET" || req.URL.Path != tt.path || req.Host != tt.host || req.Proto != tt.proto {
				t.Errorf("ReadRequest(%q) = %s %q host %q %s; want GET %q host %q %s",
					tt.in, req.Method, req.URL.Path, req.Host, req.Proto, tt.path, tt.host, tt.proto)
			}
			if diff := cmp.Diff(tt.header, req.Header); diff != "" {
				t.Errorf("header mismatch (-want +got):\n%s", diff)
			}
			if got := MessageType(req.URL.Path); got != tt.mt {
				t.Errorf("MessageType(%q) = %q, want %q", req.URL.Path, got, tt.mt)
			}
			if req.Body != http.NoBody {
				t.Errorf("Body = %v, want http.NoBody", req.Body)
			}
			rest, _ := io.ReadAll(br)
			if string(rest) != tt.remainder {
				t.Errorf("left in reader %q, want %q", rest, tt.remainder)
			}
		})
	}
}

func TestReadRequestErrors(t *testing.T) {
	tests := []struct {
		name, in string
		max      int
		want     error
	}{
		{"no protocol", "GET /amps/json\r\n\r\n", 0, ErrMalformed},
		{"HTTP/2", "GET / HTTP/2.0\r\n\r\n", 0, ErrMalformed},
		{"header without colon", "GET / HTTP/1.1\r\nBad Header\r\n\r\n", 0, ErrMalformed},
		{"not GET", "PUT / HTTP/1.1\r\n\r\n", 0, ErrMalformed},
		{"empty first line", "\r\nGET / HTTP/1.1\r\n\r\n", 0, ErrMalformed},
		{"ends early", "GET / HTTP/1.1\r\nHost: x\r\n", 0, io.ErrUnexpectedEOF},
		{"one over the limit", "GET / HTTP/1.1\r\nX: 12345\r\n\r\n", 27, ErrHeaderTooLarge},
		{"long line over the limit", "GET /" + strings.Repeat("a", 100) + " HTTP/1.1\r\n\r\n", 64, ErrHeaderTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadRequest(bufio.NewReaderSize(strings.NewReader(tt.in), 16), tt.max)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ReadRequest(%q, %d) error = %v, want %v", tt.in, tt.max, err, tt.want)
			}
		})
	}
	// The same head fits exactly at its own length.
	in := "GET / HTTP/1.1\r\nX: 12345\r\n\r\n"
	if _, err := ReadRequest(bufio.NewReader(strings.NewReader(in)), len(in)); err != nil {
		t.Errorf("ReadRequest(%q, %d) = %v, want success at exactly the limit", in, len(in), err)
	}
}

// endlessHeader is an io.Reader producing a request head that never ends,
// counting the bytes handed out.
type endlessHeader struct {
	n    int
	line string
}

func (r *endlessHeader) Read(p []byte) (int, error) {
	if r.n == 0 {
		n := copy(p, "GET /amps/json HTTP/1.1\r\n")
		r.n += n
		return n, nil
	}
	i := 0
	for i < len(p) {
		i += copy(p[i:], r.line)
	}
	r.n += len(p)
	return len(p), nil
}

// TestReadRequestBounded checks that an endless header block is refused after
// at most the limit plus one buffer of reading, not buffered without end.
func TestReadRequestBounded(t *testing.T) {
	const bufSize = 4096
	for _, limit := range []int{1024, DefaultMaxHeaderBytes} {
		src := &endlessHeader{line: "X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"}
		br := bufio.NewReaderSize(src, bufSize)
		_, err := ReadRequest(br, limit)
		if !errors.Is(err, ErrHeaderTooLarge) {
			t.Fatalf("limit %d: error = %v, want ErrHeaderTooLarge", limit, err)
		}
		if src.n > limit+bufSize {
			t.Errorf("limit %d: read %d bytes from the source, want at most %d", limit, src.n, limit+bufSize)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		upgrade []string // nil: no header
		want    Kind
		wantErr bool
	}{
		{nil, AMPS, false},
		{[]string{"tcp"}, AMPS, false},
		{[]string{"TCP"}, AMPS, false},
		{[]string{"tcps"}, AMPS, false},
		{[]string{"Tcps"}, AMPS, false},
		{[]string{"h2c, tcp"}, AMPS, false},
		{[]string{"foo", "tcp/1"}, AMPS, false},
		{[]string{""}, AMPS, false},
		{[]string{" , "}, AMPS, false},
		{[]string{"websocket"}, WebSocket, false},
		{[]string{"WebSocket"}, WebSocket, false},
		{[]string{"websocket, tcp"}, WebSocket, false},
		{[]string{"foo"}, 0, true},
		{[]string{"h2c"}, 0, true},
		{[]string{"tcpx, ws"}, 0, true},
	}
	for _, tt := range tests {
		req := &http.Request{Header: http.Header{}}
		for _, v := range tt.upgrade {
			req.Header.Add("Upgrade", v)
		}
		got, err := Classify(req)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("Classify(Upgrade %q) = %v, %v; want %v, error %v", tt.upgrade, got, err, tt.want, tt.wantErr)
		}
		if err != nil && (!errors.Is(err, ErrUpgradeRefused) || !strings.Contains(err.Error(), tt.upgrade[0])) {
			t.Errorf("Classify(Upgrade %q) error %q does not wrap ErrUpgradeRefused or name the value", tt.upgrade, err)
		}
	}
	if AMPS.String() != "amps" || WebSocket.String() != "websocket" {
		t.Errorf("Kind strings = %q, %q", AMPS, WebSocket)
	}
}

func TestMessageType(t *testing.T) {
	tests := map[string]string{
		"/amps/json":                     "json",
		"/amps/json/":                    "json",
		"/user/can/put/path/amps/nvfix":  "nvfix",
		"/amps/json?http_preflight=true": "json",
		"/amps-prod/amps/bflat#frag":     "bflat",
		"amps/xml":                       "xml",
		"http://h:1/x/amps/msgpack":      "msgpack",
		"/amps":                          "",
		"/amps/":                         "",
		"/":                              "",
		"":                               "",
		"/xamps/json":                    "",
		"/amps/json/extra":               "",
		"/json":                          "",
		"?/amps/json":                    "",
	}
	for in, want := range tests {
		if got := MessageType(in); got != want {
			t.Errorf("MessageType(%q) = %q, want %q", in, got, want)
		}
	}
}

// countingWriter records each Write call.
type countingWriter struct {
	writes []string
	limit  int // accept at most this many bytes per call when > 0
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, string(p))
	if w.limit > 0 && len(p) > w.limit {
		return w.limit, nil
	}
	return len(p), nil
}

func TestResponses(t *testing.T) {
	var w countingWriter
	if err := WriteSwitchingProtocols(&w); err != nil {
		t.Fatal(err)
	}
	want := []string{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\n"}
	if diff := cmp.Diff(want, w.writes); diff != "" {
		t.Errorf("101 writes (-want +got):\n%s", diff)
	}

	w = countingWriter{}
	if err := WriteBadRequest(&w); err != nil {
		t.Fatal(err)
	}
	want = []string{"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"}
	if diff := cmp.Diff(want, w.writes); diff != "" {
		t.Errorf("400 writes (-want +got):\n%s", diff)
	}

	w = countingWriter{limit: 10}
	if err := WriteSwitchingProtocols(&w); !errors.Is(err, io.ErrShortWrite) {
		t.Errorf("short write: error = %v, want io.ErrShortWrite", err)
	}
}

func TestNewConn(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()

	// Nothing buffered: the connection itself comes back.
	if got := NewConn(server, bufio.NewReader(server)); got != server {
		t.Errorf("NewConn with an empty reader = %T, want the conn itself", got)
	}

	go func() {
		// net.Pipe is unbuffered: each Write waits for a Read.
		client.Write([]byte("GET /amps/json HTTP/1.1\r\n\r\n\x00\x00\x00\x02{}"))
		client.Write([]byte("\x00\x00\x00\x03{} "))
	}()
	br := bufio.NewReader(server)
	if ok, err := Detect(br); !ok || err != nil {
		t.Fatalf("Detect = %v, %v", ok, err)
	}
	if _, err := ReadRequest(br, 0); err != nil {
		t.Fatal(err)
	}
	c := NewConn(server, br)
	if nc, ok := c.(interface{ NetConn() net.Conn }); !ok || nc.NetConn() != server {
		t.Errorf("NewConn result does not expose the wrapped conn")
	}
	got := make([]byte, 0, 64)
	buf := make([]byte, 3)
	for len(got) < 13 {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("Read after %q: %v", got, err)
		}
		got = append(got, buf[:n]...)
	}
	if want := "\x00\x00\x00\x02{}\x00\x00\x00\x03{} "; string(got) != want {
		t.Errorf("read %q, want %q", got, want)
	}
}

// FuzzReadRequest checks that ReadRequest never panics, never reads a head
// longer than its limit, and never consumes a byte after the blank line.
func FuzzReadRequest(f *testing.F) {
	f.Add([]byte("GET /amps/json HTTP/1.1\r\nHost: h\r\nUpgrade: tcp\r\n\r\n\x00\x00\x00\x02{}"))
	f.Add([]byte("GET /amps HTTP/1.1\nHost: 127.0.0.1\nX-Probe: yes\n\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"))
	const limit = 512
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(data), 16)
		req, err := ReadRequest(br, limit)
		rest, _ := io.ReadAll(br)
		consumed := len(data) - len(rest)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrHeaderTooLarge) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		head := data[:consumed]
		if consumed > limit {
			t.Fatalf("accepted a %d-byte head with limit %d", consumed, limit)
		}
		if !bytes.HasSuffix(head, []byte("\n\n")) && !bytes.HasSuffix(head, []byte("\n\r\n")) {
			t.Fatalf("head %q does not end with a blank line", head)
		}
		if req.Method != http.MethodGet || req.ProtoMajor != 1 || req.URL == nil {
			t.Fatalf("accepted %s %v %s", req.Method, req.URL, req.Proto)
		}
		_, _ = Classify(req)
		_ = MessageType(req.URL.Path)
	})
}
