package interop

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
)

// nginx in front of the broker, as in 60East's reverse-proxy setups: stream
// clients reach the TCP transport through an HTTP "Upgrade: tcp" preflight
// (wire spec §4), browsers and the JS client reach the WebSocket transport.
// nginx forwards any Upgrade value when proxy_http_version is 1.1, the
// Upgrade/Connection headers are passed on and the upstream answers 101; it
// then relays bytes both ways.

// nginxStartTimeout bounds how long nginx may take to accept connections.
const nginxStartTimeout = 15 * time.Second

// nginxConfTemplate is a self-contained config: every path is under the
// test's temp dir, one process (master_process off, so no user switch when
// run as root), in the foreground so the test owns the process.
var nginxConfTemplate = template.Must(template.New("nginx.conf").Parse(`daemon off;
master_process off;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log info;
events {
    worker_connections 256;
}
http {
    access_log {{.Dir}}/access.log;
    client_body_temp_path {{.Dir}}/client_body;
    proxy_temp_path {{.Dir}}/proxy;
    fastcgi_temp_path {{.Dir}}/fastcgi;
    uwsgi_temp_path {{.Dir}}/uwsgi;
    scgi_temp_path {{.Dir}}/scgi;
    server {
        listen {{.Listen}};
        location /client/ {
            proxy_pass http://{{.TCP}};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 1d;
            proxy_buffering off;
        }
        location /ws/ {
            proxy_pass http://{{.WS}};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 1d;
            proxy_buffering off;
        }
{{- if .Admin}}
        # The admin server as 60East's preflight post proxies it: the
        # trailing slash of proxy_pass strips /admin/, so the handler sees
        # its tree at its root and the dashboard's relative URLs stay
        # under /admin/.
        location /admin/ {
            proxy_pass http://{{.Admin}}/;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
        }
{{- end}}
    }
}
`))

// startNginx runs nginx proxying /client/ to tcpAddr and /ws/ to wsAddr and
// returns its address.
func startNginx(t testing.TB, tcpAddr, wsAddr string) string {
	t.Helper()
	return startNginxRoutes(t, nginxRoutes{TCP: tcpAddr, WS: wsAddr})
}

// nginxRoutes are the upstreams of the one-port deployment: /client/ to
// the TCP transport (HTTP preflight), /ws/ to the WebSocket transport and,
// when Admin is set, /admin/ to the admin HTTP server.
type nginxRoutes struct {
	TCP, WS, Admin string
}

// startNginxRoutes runs nginx with routes and returns its address. The
// test's cleanup stops it by its pid (SIGTERM: fast shutdown, which also
// closes upgraded connections) and reaps it.
func startNginxRoutes(t testing.TB, routes nginxRoutes) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, statErr := os.Stat("/usr/sbin/nginx"); statErr != nil {
			t.Fatalf("nginx not found: %s", installHint)
		}
		bin = "/usr/sbin/nginx"
	}
	dir := t.TempDir()
	listen := ampstest.FreePort(t)
	var conf bytes.Buffer
	if err := nginxConfTemplate.Execute(&conf, map[string]string{
		"Dir": dir, "Listen": listen, "TCP": routes.TCP, "WS": routes.WS, "Admin": routes.Admin,
	}); err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, conf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	errorLog := filepath.Join(dir, "error.log")
	// -e sets the log used before the config is read, so nginx never touches
	// /var/log/nginx.
	cmd := exec.Command(bin, "-p", dir, "-c", confPath, "-e", errorLog)
	out := &ampstest.LogBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting nginx: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	logs := func() string {
		b, _ := os.ReadFile(errorLog)
		return out.String() + string(b)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("nginx log:\n%s", logs())
		}
	})

	deadline := time.Now().Add(nginxStartTimeout)
	for {
		c, err := net.DialTimeout("tcp", listen, time.Second)
		if err == nil {
			c.Close()
			return listen
		}
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("nginx exited before listening on %s: %v\n%s", listen, err, logs())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx not listening on %s after %v\n%s", listen, nginxStartTimeout, logs())
		}
	}
}

// TestNginxTCPPreflightAndJSWebSocket: a Go stream client (preflight through
// nginx) and the JS client (WebSocket through nginx) exchange messages both
// ways. The JS client echoes every message from Go back on another topic.
func TestNginxTCPPreflightAndJSWebSocket(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerConfig{})
	proxy := startNginx(t, tb.TCPAddr, tb.WSAddr)
	const toJS, fromJS, count = "nginx/to-js", "nginx/from-js", 5

	// The routing prefix /client/ stays in the path the broker sees; it must
	// ignore everything before /amps/<mt> (wire spec §1).
	goc := logonTCP(t, proxy, "/client/amps/json", "go-behind-nginx")
	if err := goc.Subscribe("sub", fromJS); err != nil {
		t.Fatal(err)
	}
	d := startDriver(t, "ws://"+proxy+"/ws/amps/json", nil, "receive",
		"--topic", toJS, "--count", fmt.Sprint(count), "--echo-topic", fromJS)
	d.waitEvent("ready")
	want := make([]string, count)
	for i := range want {
		want[i] = fmt.Sprintf(`{"seq":%d,"via":"nginx"}`, i)
		if err := goc.Publish(toJS, []byte(want[i])); err != nil {
			t.Fatalf("publish through nginx: %v", err)
		}
	}
	d.result()
	for i := range want {
		m, err := goc.Next()
		if err != nil {
			t.Fatalf("echo %d through nginx: %v", i, err)
		}
		if m.Header.Topic != fromJS || string(m.Body) != want[i] {
			t.Fatalf("echo %d: got %s%s, want topic %s body %s", i, m.RawHeader, m.Body, fromJS, want[i])
		}
	}
	// The stream connection still works after the exchange.
	if err := goc.Flush("flush"); err != nil {
		t.Fatalf("flush through nginx: %v", err)
	}
}

// TestNginxJSLargeMessage sends 1 MiB from JS to JS through nginx, which
// re-frames WebSocket traffic only at the TCP level; fragments must survive.
func TestNginxJSLargeMessage(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, brokerConfig{})
	proxy := startNginx(t, tb.TCPAddr, tb.WSAddr)
	runDriver(t, "ws://"+proxy+"/ws/amps/json", nil, "large", "--topic", "big", "--size", fmt.Sprint(1<<20))
}
