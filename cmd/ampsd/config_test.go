package main

// End-to-end tests of the configuration flags: -config, -check-config and
// -sample-config (amps-config §3 and §10), over real sockets.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
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

	"github.com/ampsbroker/ampsbroker/ampstest"
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
func startRun(t *testing.T, args ...string) (log *ampstest.LogBuffer, stop func() error) {
	t.Helper()
	log = &ampstest.LogBuffer{}
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

var listeningRE = regexp.MustCompile(`msg=listening transport=(\S+) addr=(\S+)`)

// boundAddrs waits until the log names every transport in names and returns
// each one's bound address.
func boundAddrs(t *testing.T, log *ampstest.LogBuffer, names []string) map[string]string {
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
	tcpc := ampstest.Dial(t, "tcp://"+addrs["json-tcp"]+"/amps/json", nil)
	tcpc.Logon("t")

	// TLS, verifying the server certificate against the generated CA
	// (InsecureSkipVerify stays false).
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	tlsc := ampstest.Dial(t, "tcps://"+addrs["json-tls"]+"/amps/json",
		&ampstest.DialOptions{TLS: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}})
	state := tlsc.NetConn().(*tls.Conn).ConnectionState()
	if len(state.PeerCertificates) == 0 || state.PeerCertificates[0].CheckSignatureFrom(cert) != nil {
		t.Fatalf("TLS transport did not present the configured certificate (one issued by the test CA)")
	}
	if state.Version < tls.VersionTLS12 {
		t.Errorf("TLS version %x, below the configured TLSv1.2", state.Version)
	}
	tlsc.Logon("t")

	// Unix domain socket.
	unixc := ampstest.Dial(t, "unix://"+sock, nil)
	unixc.Logon("t")

	// WebSocket, as the JavaScript client does it.
	ws := ampstest.Dial(t, "ws://"+addrs["json-ws"]+"/amps/json", nil)
	ws.Logon("t")
	ws.Subscribe("2", "orders")

	// A publish from each stream transport reaches the WebSocket
	// subscriber: one broker behind all four listeners.
	bodies := map[string]string{
		"tcp":  `{"id":1,"via":"tcp"}`,
		"tls":  `{"id":2,"via":"tls"}`,
		"unix": `{"id":3,"via":"unix"}`,
	}
	tcpc.Publish("orders", []byte(bodies["tcp"]))
	tlsc.Publish("orders", []byte(bodies["tls"]))
	unixc.Publish("orders", []byte(bodies["unix"]))
	want := map[string]bool{bodies["tcp"]: true, bodies["tls"]: true, bodies["unix"]: true}
	for range len(want) {
		m := ws.Next()
		if m.Header.Command != "p" || m.Header.Topic != "orders" || m.Header.SubIDs != "2" {
			t.Fatalf("websocket got %s, want a delivery on orders for sids 2", m)
		}
		if m.Field("l") != fmt.Sprint(len(m.Body)) {
			t.Errorf("delivery header l=%s, body is %d bytes", m.Field("l"), len(m.Body))
		}
		if !want[string(m.Body)] {
			t.Fatalf("websocket delivery body %s, want one of %v", m.Body, want)
		}
		delete(want, string(m.Body))
	}

	if strings.Contains(log.String(), "level=WARN") || strings.Contains(log.String(), "level=ERROR") {
		t.Errorf("a clean configuration logged problems:\n%s", log)
	}

	// Shutdown closes every client: the WebSocket one with a close
	// handshake (its reader answers the server's close frame), the stream
	// ones with EOF.
	wsClosed := make(chan error, 1)
	go func() {
		_, err := ws.Conn.ReadWithin(15 * time.Second)
		wsClosed <- err
	}()
	if err := stop(); err != nil {
		t.Fatalf("run returned %v after cancel, want nil:\n%s", err, log)
	}
	if err := <-wsClosed; websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("websocket client after shutdown: %v, want close status %v", err, websocket.StatusNormalClosure)
	}
	for what, c := range map[string]*ampstest.Client{"tcp": tcpc, "tls": tlsc, "unix": unixc} {
		if _, err := c.Conn.Read(); err != io.EOF {
			t.Errorf("%s client after shutdown: read error %v, want EOF", what, err)
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

func TestCheckConfigPrintsSummaryWithoutListening(t *testing.T) {
	addr := ampstest.FreePort(t)
	text := strings.Replace(fourTransports, "<InetAddr>127.0.0.1:0</InetAddr>", "<InetAddr>"+addr+"</InetAddr>", 1)
	path, _ := writeConfig(t, text)
	sock := filepath.Join(filepath.Dir(path), "amps.sock")

	log := &ampstest.LogBuffer{}
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

	log := &ampstest.LogBuffer{}
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

func TestConfigOfAClusterNodeIsRefused(t *testing.T) {
	path, _ := writeConfig(t, `<AMPSConfig><Name>n</Name>
<Transports><Transport><Name>tcp</Name><Type>tcp</Type><InetAddr>127.0.0.1:0</InetAddr><Protocol>amps</Protocol></Transport></Transports>
<NATSCluster><URL>nats://127.0.0.1:4222</URL></NATSCluster>
</AMPSConfig>`)
	log := &ampstest.LogBuffer{}
	err := run(context.Background(), func() {}, []string{"-config", path}, io.Discard, log)
	if err == nil || !strings.Contains(err.Error(), "ampsd-cluster") {
		t.Fatalf("-config with NATSCluster: %v, want a refusal naming ampsd-cluster", err)
	}
	if strings.Contains(log.String(), "listening") {
		t.Errorf("a cluster node's -config opened a listener:\n%s", log)
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
	for _, want := range []string{"<AMPSConfig>", ">tcp<", ">websocket<", ">tcps<", ">amps-unix<", "<SOW>", "<Pattern>"} {
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
		{[]string{"-config", path, "-tcp", "127.0.0.1:0"}, "-config defines the transports and the admin server; remove -tcp"},
		{[]string{"-tcp", "127.0.0.1:0", "-config", path}, "-config defines the transports and the admin server; remove -tcp"},
		{[]string{"-config", path, "-ws", "", "-one-port"}, "-config defines the transports and the admin server; remove -one-port, -ws"},
		{[]string{"-config", path, "-unix", sock}, "remove -unix"},
	} {
		log := &ampstest.LogBuffer{}
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

// sowConfig is a configuration with one transport and two SOW topics, a
// named one and a Pattern one, followed by extra (more SOW topics).
func sowConfig(extra string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<AMPSConfig>
  <Name>ampsd-sow-test</Name>
  <Transports>
    <Transport>
      <Name>json-tcp</Name>
      <Type>tcp</Type>
      <InetAddr>127.0.0.1:0</InetAddr>
      <Protocol>amps</Protocol>
    </Transport>
  </Transports>
  <SOW>
    <Topic>
      <Name>orders</Name>
      <MessageType>json</MessageType>
      <Key>/id</Key>
      <Durability>transient</Durability>
    </Topic>
    <Topic>
      <Name>per-user</Name>
      <Pattern>user/[a-z]+</Pattern>
      <MessageType>json</MessageType>
      <Key>/id</Key>
      <Durability>transient</Durability>
    </Topic>` + extra + `
  </SOW>
</AMPSConfig>
`
}

func TestCheckConfigSOWTopics(t *testing.T) {
	path, _ := writeConfig(t, sowConfig(""))
	var err error
	out := captureStdout(t, func(stdout io.Writer) {
		err = run(context.Background(), func() {}, []string{"-check-config", path}, stdout, io.Discard)
	})
	if err != nil {
		t.Fatalf("-check-config with SOW topics: %v", err)
	}
	for _, want := range []string{"2 SOW topic(s)", "orders (json) key /id", `per-user (json) holding topics matching "user/[a-z]+"`} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}

	// A bad Pattern, and a Key the broker cannot read as a field: each is
	// reported with its element path and line, and nothing is printed.
	text := sowConfig(`
    <Topic>
      <Name>bad-pattern</Name>
      <Pattern>user/(</Pattern>
      <MessageType>json</MessageType>
      <Durability>transient</Durability>
    </Topic>
    <Topic>
      <Name>bad-key</Name>
      <MessageType>json</MessageType>
      <Key>/a b</Key>
      <Durability>transient</Durability>
    </Topic>`)
	path, _ = writeConfig(t, text)
	out = captureStdout(t, func(stdout io.Writer) {
		err = run(context.Background(), func() {}, []string{"-check-config", path}, stdout, io.Discard)
	})
	if err == nil {
		t.Fatalf("-check-config accepted a bad Pattern and Key; printed:\n%s", out)
	}
	var cerr *config.Error
	if !errors.As(err, &cerr) || len(cerr.Errors) != 2 {
		t.Fatalf("error %v: want a *config.Error with two errors", err)
	}
	wants := []string{
		fmt.Sprintf("SOW/Topic[3]/Pattern: SOW Topic \"bad-pattern\": Pattern \"user/(\" is not a valid regular expression: error parsing regexp: missing closing ): `user/(` (%s line %d)", path, lineOf(t, text, "user/(")),
		fmt.Sprintf(`SOW/Topic[4]: SOW topic "bad-key": Key "/a b" is not a field such as /id (%s line %d)`, path, lineOf(t, text, "bad-key")-1),
	}
	for i, d := range cerr.Errors {
		if d.Code != config.CodeSOWTopic || d.Error() != wants[i] {
			t.Errorf("error %d: %s %q\nwant %s %q", i+1, d.Code, d.Error(), config.CodeSOWTopic, wants[i])
		}
	}
	if out != "" {
		t.Errorf("-check-config printed a summary for an invalid file:\n%s", out)
	}
}

// TestConfigServesSOWTopics checks that a configuration with SOW topics
// starts a broker (the topics reach broker.New, which would panic on a
// definition it refuses) and stops cleanly.
func TestConfigServesSOWTopics(t *testing.T) {
	path, _ := writeConfig(t, sowConfig(""))
	log, stop := startRun(t, "-config", path)
	boundAddrs(t, log, []string{"json-tcp"})
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
}
