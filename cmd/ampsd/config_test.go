package main

// End-to-end tests of the configuration flags: -config, -check-config and
// -sample-config (amps-config §3 and §10), over real sockets.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/internal/testcert"

	"github.com/ampsbroker/ampsbroker/config"
	"github.com/coder/websocket"
)

// testFileMask is the FileMask of the amps-unix transport. It differs from
// listener.DefaultUnixMode (0660) so the test sees that the mask was applied
// rather than the default (amps-config §3.7).
const testFileMask os.FileMode = 0o600

// fourTransports is an AMPS-style configuration with one transport of each
// kind. Every path is relative to the file's own directory through the
// built-in ${AMPS_CONFIG_DIRECTORY} (amps-config §1.1), so the text is fixed
// and the test only has to put the certificate next to it.
const fourTransports = `<?xml version="1.0" encoding="UTF-8"?>
<AMPSConfig>
  <Name>ampsd-config-test</Name>
  <Transports>
    <Transport>
      <Name>json-tcp</Name>
      <Type>tcp</Type>
      <InetAddr>127.0.0.1:0</InetAddr>
      <Protocol>amps</Protocol>
      <MessageType>json</MessageType>
    </Transport>
    <Transport>
      <Name>json-ws</Name>
      <Type>tcp</Type>
      <InetAddr>127.0.0.1:0</InetAddr>
      <Protocol>websocket</Protocol>
      <MessageType>json</MessageType>
    </Transport>
    <Transport>
      <Name>json-tls</Name>
      <Type>tcps</Type>
      <InetAddr>127.0.0.1:0</InetAddr>
      <Protocol>amps</Protocol>
      <MessageType>json</MessageType>
      <Certificate>${AMPS_CONFIG_DIRECTORY}/server.crt</Certificate>
      <PrivateKey>${AMPS_CONFIG_DIRECTORY}/server.key</PrivateKey>
      <SecureSocketProtocols>TLSv1.2 TLSv1.3</SecureSocketProtocols>
    </Transport>
    <Transport>
      <Name>json-local</Name>
      <Type>amps-unix</Type>
      <FileName>${AMPS_CONFIG_DIRECTORY}/amps.sock</FileName>
      <FileMask>0600</FileMask>
      <Protocol>amps</Protocol>
      <MessageType>json</MessageType>
    </Transport>
  </Transports>
</AMPSConfig>
`

// transportNames are the Names in fourTransports, in order.
var transportNames = []string{"json-tcp", "json-ws", "json-tls", "json-local"}

// writeCert generates a certificate for 127.0.0.1 and writes it and its
// key as PEM files crtName and keyName in dir. It returns the issuing
// authority's certificate, the client's only trusted root.
func writeCert(t *testing.T, dir, crtName, keyName string) *x509.Certificate {
	t.Helper()
	is := testcert.NewIssuer(t)
	testcert.WritePEM(t, dir, crtName, keyName, is.Server(t))
	return is.Cert
}

// writeConfig writes text as amps.xml in a new temporary directory, next to
// server.crt and server.key, and returns the file's path and the
// certificate.
func writeConfig(t *testing.T, text string) (string, *x509.Certificate) {
	t.Helper()
	dir := t.TempDir()
	cert := writeCert(t, dir, "server.crt", "server.key")
	path := filepath.Join(dir, "amps.xml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, cert
}

// startRun runs ampsd with args in a goroutine. The returned stop cancels
// it and returns run's result; a cleanup does the same if the test ends
// early, so the goroutine never outlives the test.
func startRun(t *testing.T, args ...string) (log *syncBuffer, stop func() error) {
	t.Helper()
	log = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, func() {}, args, io.Discard, log) }()
	var stopped bool
	var result error
	stop = func() error {
		if stopped {
			return result
		}
		stopped = true
		cancel()
		select {
		case result = <-done:
		case <-time.After(20 * time.Second):
			result = errors.New("run did not return within 20s of cancel")
		}
		return result
	}
	t.Cleanup(func() { stop() })
	return log, stop
}

// captureStdout runs fn with a buffer for run's stdout, where
// -check-config and -sample-config print, and returns what was written.
func captureStdout(t *testing.T, fn func(stdout io.Writer)) string {
	t.Helper()
	var out bytes.Buffer
	fn(&out)
	return out.String()
}

// streamClient is an AMPS client on a stream transport (tcp, tcps,
// amps-unix): 4-byte big-endian length, then header and body (wire §2.1).
type streamClient struct {
	t    *testing.T
	what string
	c    net.Conn
	r    *bufio.Reader
}

func newStreamClient(t *testing.T, what string, c net.Conn) *streamClient {
	t.Helper()
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(15 * time.Second))
	return &streamClient{t: t, what: what, c: c, r: bufio.NewReader(c)}
}

func (s *streamClient) send(headerAndBody string) {
	s.t.Helper()
	frame := append(binary.BigEndian.AppendUint32(nil, uint32(len(headerAndBody))), headerAndBody...)
	if _, err := s.c.Write(frame); err != nil {
		s.t.Fatalf("%s: write: %v", s.what, err)
	}
}

func (s *streamClient) recv() string {
	s.t.Helper()
	var n uint32
	if err := binary.Read(s.r, binary.BigEndian, &n); err != nil {
		s.t.Fatalf("%s: reading frame length: %v", s.what, err)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(s.r, b); err != nil {
		s.t.Fatalf("%s: reading %d-byte frame: %v", s.what, n, err)
	}
	return string(b)
}

// logon sends the raw AMPS logon of the brief and checks the ack.
func (s *streamClient) logon() {
	s.t.Helper()
	s.send(`{"c":"logon","cid":"1","client_name":"t","mt":"json","a":"processed"}`)
	ack := s.recv()
	if !strings.Contains(ack, `"c":"ack"`) || !strings.Contains(ack, `"status":"success"`) {
		s.t.Fatalf("%s: logon answered with %s", s.what, ack)
	}
}

// wsClient speaks the WebSocket encoding of the official JavaScript client
// (wire §3).
type wsClient struct {
	t   *testing.T
	c   *websocket.Conn
	ctx context.Context
}

func dialWS(t *testing.T, addr string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/amps/json", nil)
	if err != nil {
		t.Fatalf("websocket dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	w := &wsClient{t: t, c: c, ctx: ctx}
	// The payload-encoding selector, sent once before logon (wire §3.2).
	w.write(websocket.MessageText, "text")
	return w
}

func (w *wsClient) write(typ websocket.MessageType, p string) {
	w.t.Helper()
	if err := w.c.Write(w.ctx, typ, []byte(p)); err != nil {
		w.t.Fatalf("websocket write %q: %v", p, err)
	}
}

// command sends a header-only command: count frame 01 00 00 00 (little
// endian, wire §3.3), then the header as a text frame.
func (w *wsClient) command(header string) {
	w.t.Helper()
	w.write(websocket.MessageBinary, "\x01\x00\x00\x00")
	w.write(websocket.MessageText, header)
}

// readText reads one frame and requires it to be text: every server
// header, and JSON bodies in text mode, are text frames (wire §3.4).
func (w *wsClient) readText() string {
	w.t.Helper()
	typ, p, err := w.c.Read(w.ctx)
	if err != nil {
		w.t.Fatalf("websocket read: %v", err)
	}
	if typ != websocket.MessageText {
		w.t.Fatalf("websocket frame %q is %v, want text", p, typ)
	}
	return string(p)
}

// header decodes an AMPS JSON header.
func header(t *testing.T, s string) map[string]any {
	t.Helper()
	var h map[string]any
	if err := json.Unmarshal([]byte(s), &h); err != nil {
		t.Fatalf("header %q: %v", s, err)
	}
	return h
}

var listeningRE = regexp.MustCompile(`msg=listening transport=(\S+) addr=(\S+)`)

// boundAddrs waits until the log names every transport in names and returns
// each one's bound address.
func boundAddrs(t *testing.T, log *syncBuffer, names []string) map[string]string {
	t.Helper()
	for _, name := range names {
		waitFor(t, log, regexp.MustCompile(`msg=listening transport=`+regexp.QuoteMeta(name)+` addr=`))
	}
	addrs := map[string]string{}
	for _, m := range listeningRE.FindAllStringSubmatch(log.String(), -1) {
		addrs[m[1]] = m[2]
	}
	return addrs
}

func TestConfigServesEveryTransportOnOneBroker(t *testing.T) {
	path, cert := writeConfig(t, fourTransports)
	sock := filepath.Join(filepath.Dir(path), "amps.sock")

	log, stop := startRun(t, "-config", path)
	addrs := boundAddrs(t, log, transportNames)
	if len(addrs) != len(transportNames) {
		t.Fatalf("listening lines for %v, want exactly %v:\n%s", addrs, transportNames, log)
	}
	loopback := regexp.MustCompile(`^127\.0\.0\.1:[1-9]\d*$`)
	for _, name := range []string{"json-tcp", "json-ws", "json-tls"} {
		if !loopback.MatchString(addrs[name]) {
			t.Fatalf("transport %s bound to %q, want 127.0.0.1:<port>", name, addrs[name])
		}
	}
	if addrs["json-local"] != sock {
		t.Fatalf("transport json-local bound to %q, want %q", addrs["json-local"], sock)
	}

	// The socket file carries FileMask, not the listener default.
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != testFileMask {
		t.Errorf("socket file mode %v, want socket with %v", fi.Mode(), testFileMask)
	}

	// Plain TCP.
	nc, err := net.DialTimeout("tcp", addrs["json-tcp"], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tcpc := newStreamClient(t, "tcp", nc)
	tcpc.logon()

	// TLS, verifying the server certificate against the generated CA
	// (InsecureSkipVerify stays false).
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}}
	tc, err := dialer.DialContext(context.Background(), "tcp", addrs["json-tls"])
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addrs["json-tls"], err)
	}
	state := tc.(*tls.Conn).ConnectionState()
	if len(state.PeerCertificates) == 0 || state.PeerCertificates[0].CheckSignatureFrom(cert) != nil {
		t.Fatalf("TLS transport did not present the configured certificate (one issued by the test CA)")
	}
	if state.Version < tls.VersionTLS12 {
		t.Errorf("TLS version %x, below the configured TLSv1.2", state.Version)
	}
	tlsc := newStreamClient(t, "tls", tc)
	tlsc.logon()

	// Unix domain socket.
	uc, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	unixc := newStreamClient(t, "unix", uc)
	unixc.logon()

	// WebSocket, as the JavaScript client does it.
	ws := dialWS(t, addrs["json-ws"])
	ws.command(`{"c":"logon","cid":"1","client_name":"t","mt":"json","a":"processed"}`)
	if ack := ws.readText(); !strings.Contains(ack, `"status":"success"`) {
		t.Fatalf("websocket logon answered with %s", ack)
	}
	ws.command(`{"c":"subscribe","t":"orders","cid":"2","sub_id":"2","a":"processed"}`)
	ack := header(t, ws.readText())
	if ack["c"] != "ack" || ack["cid"] != "2" || ack["status"] != "success" {
		t.Fatalf("websocket subscribe answered with %v", ack)
	}

	// A publish from each stream transport reaches the WebSocket
	// subscriber: one broker behind all four listeners.
	bodies := map[string]string{
		"tcp":  `{"id":1,"via":"tcp"}`,
		"tls":  `{"id":2,"via":"tls"}`,
		"unix": `{"id":3,"via":"unix"}`,
	}
	tcpc.send(`{"c":"p","t":"orders"}` + bodies["tcp"])
	tlsc.send(`{"c":"p","t":"orders"}` + bodies["tls"])
	unixc.send(`{"c":"p","t":"orders"}` + bodies["unix"])
	want := map[string]bool{bodies["tcp"]: true, bodies["tls"]: true, bodies["unix"]: true}
	for range len(want) {
		h := header(t, ws.readText())
		if h["c"] != "p" || h["t"] != "orders" || h["sids"] != "2" {
			t.Fatalf("websocket got %v, want a delivery on orders for sids 2", h)
		}
		body := ws.readText()
		if l, ok := h["l"].(float64); !ok || int(l) != len(body) {
			t.Errorf("delivery header l=%v, body is %d bytes", h["l"], len(body))
		}
		if !want[body] {
			t.Fatalf("websocket delivery body %s, want one of %v", body, want)
		}
		delete(want, body)
	}

	if strings.Contains(log.String(), "level=WARN") || strings.Contains(log.String(), "level=ERROR") {
		t.Errorf("a clean configuration logged problems:\n%s", log)
	}

	// Shutdown closes every client: the WebSocket one with a close
	// handshake (its reader answers the server's close frame), the stream
	// ones with EOF.
	wsClosed := make(chan error, 1)
	go func() {
		_, _, err := ws.c.Read(ws.ctx)
		wsClosed <- err
	}()
	if err := stop(); err != nil {
		t.Fatalf("run returned %v after cancel, want nil:\n%s", err, log)
	}
	if err := <-wsClosed; websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("websocket client after shutdown: %v, want close status %v", err, websocket.StatusNormalClosure)
	}
	for _, c := range []*streamClient{tcpc, tlsc, unixc} {
		if _, err := c.r.ReadByte(); err != io.EOF {
			t.Errorf("%s client after shutdown: read error %v, want EOF", c.what, err)
		}
	}
	if !strings.Contains(log.String(), "msg=stopped") {
		t.Errorf("no stop line in log:\n%s", log)
	}
	// Shutdown released every listener.
	if c, err := net.DialTimeout("tcp", addrs["json-tcp"], 5*time.Second); err == nil {
		c.Close()
		t.Errorf("tcp transport %s still accepts after run returned", addrs["json-tcp"])
	}
	if c, err := net.DialTimeout("unix", sock, 5*time.Second); err == nil {
		c.Close()
		t.Errorf("unix transport %s still accepts after run returned", sock)
	}
	// The socket file is removed on clean shutdown (amps-config §3.7).
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file %s still there after shutdown (stat: %v)", sock, err)
	}
}

// reservePort returns a loopback TCP port that was free a moment ago.
func reservePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestCheckConfigPrintsSummaryWithoutListening(t *testing.T) {
	addr := reservePort(t)
	text := strings.Replace(fourTransports, "<InetAddr>127.0.0.1:0</InetAddr>", "<InetAddr>"+addr+"</InetAddr>", 1)
	path, _ := writeConfig(t, text)
	sock := filepath.Join(filepath.Dir(path), "amps.sock")

	log := &syncBuffer{}
	var err error
	out := captureStdout(t, func(stdout io.Writer) {
		err = run(context.Background(), func() {}, []string{"-check-config", path}, stdout, log)
	})
	if err != nil {
		t.Fatalf("-check-config %s: %v", path, err)
	}
	for _, name := range transportNames {
		if !strings.Contains(out, name) {
			t.Errorf("summary does not name transport %s:\n%s", name, out)
		}
	}
	for _, want := range []string{"ampsd-config-test", "4 transport(s)", addr, "tcps", "amps-unix", "websocket", sock + " mode 0600"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(log.String(), "listening") {
		t.Errorf("-check-config logged a listener:\n%s", log)
	}
	// Nothing was opened: the socket file was never created and the fixed
	// port is still free.
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("-check-config left %s behind (stat: %v)", sock, err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Errorf("port %s of the checked file is taken after -check-config: %v", addr, err)
	} else {
		l.Close()
	}
}

// lineOf returns the 1-based line of the first line of text containing s.
func lineOf(t *testing.T, text, s string) int {
	t.Helper()
	for i, line := range strings.Split(text, "\n") {
		if strings.Contains(line, s) {
			return i + 1
		}
	}
	t.Fatalf("%q not in the configuration", s)
	return 0
}

// badSecondInetAddr is fourTransports with a port out of range on the
// second transport.
func badSecondInetAddr(t *testing.T) (text string, line int) {
	t.Helper()
	first := strings.Index(fourTransports, "<InetAddr>127.0.0.1:0</InetAddr>")
	second := first + 1 + strings.Index(fourTransports[first+1:], "<InetAddr>127.0.0.1:0</InetAddr>")
	text = fourTransports[:second] + "<InetAddr>127.0.0.1:70000</InetAddr>" + fourTransports[second+len("<InetAddr>127.0.0.1:0</InetAddr>"):]
	return text, lineOf(t, text, "127.0.0.1:70000")
}

func TestCheckConfigReportsElementPathAndLine(t *testing.T) {
	text, line := badSecondInetAddr(t)
	path, _ := writeConfig(t, text)

	var err error
	out := captureStdout(t, func(stdout io.Writer) {
		err = run(context.Background(), func() {}, []string{"-check-config", path}, stdout, io.Discard)
	})
	if err == nil {
		t.Fatalf("-check-config accepted InetAddr 127.0.0.1:70000; printed:\n%s", out)
	}
	for _, want := range []string{"Transports/Transport[2]/InetAddr", fmt.Sprintf("line %d", line), "70000"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	var cerr *config.Error
	if !errors.As(err, &cerr) || !cerr.Has(config.CodeInetAddr) {
		t.Errorf("error %v is not a *config.Error with %s", err, config.CodeInetAddr)
	}
	if out != "" {
		t.Errorf("-check-config printed a summary for an invalid file:\n%s", out)
	}
}

func TestConfigWithErrorsDoesNotStart(t *testing.T) {
	text, line := badSecondInetAddr(t)
	path, _ := writeConfig(t, text)
	sock := filepath.Join(filepath.Dir(path), "amps.sock")

	log := &syncBuffer{}
	err := run(context.Background(), func() {}, []string{"-config", path}, io.Discard, log)
	if err == nil || !strings.Contains(err.Error(), "Transports/Transport[2]/InetAddr") || !strings.Contains(err.Error(), fmt.Sprintf("line %d", line)) {
		t.Fatalf("-config with a bad InetAddr: %v, want the element path and line %d", err, line)
	}
	if strings.Contains(log.String(), "listening") {
		t.Errorf("invalid -config opened a listener:\n%s", log)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("invalid -config left %s behind (stat: %v)", sock, err)
	}
}

func TestSampleConfigParses(t *testing.T) {
	var err error
	out := captureStdout(t, func(stdout io.Writer) {
		err = run(context.Background(), func() {}, []string{"-sample-config"}, stdout, io.Discard)
	})
	if err != nil {
		t.Fatalf("-sample-config: %v", err)
	}
	for _, want := range []string{"<AMPSConfig>", ">tcp<", ">websocket<", ">tcps<", ">amps-unix<"} {
		if !strings.Contains(out, want) {
			t.Errorf("sample lacks %q:\n%s", want, out)
		}
	}
	if !bytes.Equal([]byte(out), config.Sample()) {
		t.Errorf("-sample-config printed something other than config.Sample()")
	}

	// The sample names TLS_DIR/server.crt, server.key and RUN_DIR
	// (config.Sample); Parse validates, so the files must exist.
	tlsDir := t.TempDir()
	writeCert(t, tlsDir, "server.crt", "server.key")
	cfg, err := config.Parse(strings.NewReader(out), &config.ParseOptions{
		Vars:      map[string]string{"TLS_DIR": tlsDir, "RUN_DIR": t.TempDir()},
		LookupEnv: func(string) (string, bool) { return "", false },
	})
	if err != nil {
		t.Fatalf("config.Parse(sample): %v", err)
	}
	if len(cfg.Warnings) > 0 {
		t.Errorf("sample has warnings: %v", cfg.Warnings)
	}
	kinds := map[string]bool{}
	for _, tr := range cfg.Transports {
		kind := tr.Type
		if tr.Protocol == config.ProtocolWebSocket {
			kind = "websocket"
		}
		kinds[kind] = true
	}
	for _, want := range []string{config.TypeTCP, "websocket", config.TypeTCPS, config.TypeUnix} {
		if !kinds[want] {
			t.Errorf("sample has no %s transport; it has %v", want, kinds)
		}
	}
}

func TestConfigRefusesTransportFlags(t *testing.T) {
	path, _ := writeConfig(t, fourTransports)
	sock := filepath.Join(filepath.Dir(path), "amps.sock")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-config", path, "-tcp", "127.0.0.1:0"}, "-config defines the transports; remove -tcp"},
		{[]string{"-tcp", "127.0.0.1:0", "-config", path}, "-config defines the transports; remove -tcp"},
		{[]string{"-config", path, "-ws", "", "-one-port"}, "-config defines the transports; remove -one-port, -ws"},
		{[]string{"-config", path, "-unix", sock}, "remove -unix"},
	} {
		log := &syncBuffer{}
		err := run(context.Background(), func() {}, tc.args, io.Discard, log)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q) = %v, want error containing %q", tc.args, err, tc.want)
		}
		if strings.Contains(log.String(), "listening") {
			t.Errorf("run(%q) opened a listener:\n%s", tc.args, log)
		}
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused -config left %s behind (stat: %v)", sock, err)
	}
}
