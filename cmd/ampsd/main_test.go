package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/internal/testcert"
	"github.com/coder/websocket"
)

// waitFor polls the log until re matches and returns the submatches.
func waitFor(t *testing.T, log *ampstest.LogBuffer, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(log.String()); m != nil {
			return m
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("log never matched %s:\n%s", re, log.String())
	return nil
}

// logonOK logs a client on over network and closes the connection.
func logonOK(t *testing.T, network, addr string) {
	t.Helper()
	dialLogon(t, network, addr, "t").Close()
}

// dialLogon logs a client named name on over network and returns the open
// connection; it is closed when the test ends at the latest.
func dialLogon(t *testing.T, network, addr, name string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	logon := `{"c":"logon","cid":"1","client_name":"` + name + `","mt":"json","a":"processed"}`
	c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(logon))), logon...))
	r := bufio.NewReader(c)
	var n uint32
	if err := binary.Read(r, binary.BigEndian, &n); err != nil {
		t.Fatalf("%s %s: %v", network, addr, err)
	}
	ack := make([]byte, n)
	io.ReadFull(r, ack)
	if !strings.Contains(string(ack), `"status":"success"`) {
		t.Fatalf("logon over %s: %s", network, ack)
	}
	return c
}

func TestRunServesEachTransportAndStopsOnCancel(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "amps.sock")
	log := &ampstest.LogBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, func() {}, []string{"-tcp", "127.0.0.1:0", "-ws", "", "-unix", sock, "-log-level", "debug"}, io.Discard, log)
	}()
	// One log line per transport with the bound address.
	tcp := waitFor(t, log, regexp.MustCompile(`msg=listening transport=tcp addr=(127\.0\.0\.1:\d+)`))
	waitFor(t, log, regexp.MustCompile(`msg=listening transport=unix addr=`+regexp.QuoteMeta(sock)))
	logonOK(t, "tcp", tcp[1])
	logonOK(t, "unix", sock)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if !strings.Contains(log.String(), "msg=stopped") {
		t.Errorf("no stop line in log:\n%s", log)
	}
}

func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-tcp", "", "-ws", ""}, "no transport enabled"},
		{[]string{"-tls-cert", "x.pem"}, "-tls-cert and -tls-key go together"},
		{[]string{"-log-level", "loud"}, `-log-level "loud"`},
		{[]string{"-tcp", "nonsense:port:9", "-ws", ""}, "nonsense:port:9"},
		{[]string{"extra"}, "unexpected arguments: extra"},
	} {
		err := run(context.Background(), func() {}, tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q) = %v, want error containing %q", tc.args, err, tc.want)
		}
	}
}

// With -tls-cert and -tls-key both the TCP and the WebSocket transports
// speak TLS; -one-port lets WebSocket clients use the TCP port as well.
func TestRunTLSAndOnePort(t *testing.T) {
	dir := t.TempDir()
	is := testcert.NewIssuer(t)
	certFile, keyFile := testcert.WritePEM(t, dir, "s.crt", "s.key", is.Server(t))
	log := &ampstest.LogBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, func() {}, []string{"-tcp", "127.0.0.1:0", "-ws", "127.0.0.1:0", "-tls-cert", certFile, "-tls-key", keyFile, "-one-port"}, io.Discard, log)
	}()
	tcp := waitFor(t, log, regexp.MustCompile(`msg=listening transport=tcps addr=(127\.0\.0\.1:\d+)`))
	ws := waitFor(t, log, regexp.MustCompile(`msg=listening transport=websocket addr=(127\.0\.0\.1:\d+)`))

	// AMPS over TLS on the TCP port.
	c, err := tls.Dial("tcp", tcp[1], is.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	// wss on both the WebSocket port and, with -one-port, the TCP port.
	for _, addr := range []string{ws[1], tcp[1]} {
		dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
		conn, _, err := websocket.Dial(dctx, "wss://"+addr+"/amps/json", &websocket.DialOptions{
			HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: is.ClientConfig()}},
		})
		dcancel()
		if err != nil {
			t.Fatalf("wss://%s: %v", addr, err)
		}
		conn.CloseNow()
	}
	// A plain TCP client is not served on the TLS port.
	if plain, err := net.DialTimeout("tcp", tcp[1], 5*time.Second); err == nil {
		plain.SetDeadline(time.Now().Add(10 * time.Second))
		logon := `{"c":"logon","cid":"1","mt":"json","a":"processed"}`
		plain.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(logon))), logon...))
		if b, _ := io.ReadAll(plain); strings.Contains(string(b), "success") {
			t.Error("plain logon succeeded on the TLS port")
		}
		plain.Close()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// -pprof serves the runtime profiles on its own address while the broker
// runs, and stops serving them when ampsd stops.
func TestRunPprof(t *testing.T) {
	log := &ampstest.LogBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, func() {}, []string{"-tcp", "127.0.0.1:0", "-ws", "", "-pprof", "127.0.0.1:0"}, io.Discard, log)
	}()
	addr := waitFor(t, log, regexp.MustCompile(`msg="serving profiles" addr=(127\.0\.0\.1:\d+)`))[1]
	waitFor(t, log, regexp.MustCompile(`msg=listening transport=tcp`))
	resp, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile:") {
		t.Fatalf("GET goroutine profile: %s\n%.300s", resp.Status, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Errorf("the profiling endpoint %s still accepts connections after ampsd stopped", addr)
	}
	if err := run(context.Background(), func() {}, []string{"-pprof", "nonsense:port:9"}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "-pprof nonsense:port:9") {
		t.Errorf("bad -pprof address: %v", err)
	}
}
