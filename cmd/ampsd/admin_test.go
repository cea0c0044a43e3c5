package main

// End-to-end tests of the admin server: -admin, -admin-open-actions and
// the XML Admin element, over real sockets.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// get fetches url with client and returns the status and body.
func get(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// adminClients returns the clients of /amps/instance/clients.json.
func adminClients(t *testing.T, client *http.Client, base string) []map[string]string {
	t.Helper()
	code, body := get(t, client, base+"/amps/instance/clients.json")
	if code != http.StatusOK {
		t.Fatalf("clients.json: %d %s", code, body)
	}
	var doc struct {
		AMPS struct {
			Instance struct {
				Clients []map[string]string `json:"clients"`
			} `json:"instance"`
		} `json:"amps"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("clients.json: %v\n%s", err, body)
	}
	return doc.AMPS.Instance.Clients
}

// clientByName finds the client named name, waiting for the broker to
// register it.
func clientByName(t *testing.T, client *http.Client, base, name string) map[string]string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, c := range adminClients(t, client, base) {
			if c["client_name"] == name {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no client %q in clients.json", name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var (
	adminLine = regexp.MustCompile(`msg=listening transport=admin addr=(127\.0\.0\.1:\d+) scheme=(https?)`)
	tcpLine   = regexp.MustCompile(`msg=listening transport=tcp addr=(127\.0\.0\.1:\d+)`)
)

// -admin serves the admin tree next to the transports: the instance, the
// connected clients with their transport; actions are refused by default;
// the server stops with ampsd.
func TestRunAdmin(t *testing.T) {
	log, stop := startRun(t, "-tcp", "127.0.0.1:0", "-ws", "", "-admin", "127.0.0.1:0")
	m := waitFor(t, log, adminLine)
	addr, base := m[1], "http://"+m[1]
	if m[2] != "http" {
		t.Errorf("scheme = %s", m[2])
	}
	tcp := waitFor(t, log, tcpLine)[1]
	dialLogon(t, "tcp", tcp, "watched")

	code, body := get(t, http.DefaultClient, base+"/amps.json")
	if code != http.StatusOK || !strings.Contains(body, `"instance"`) || !strings.Contains(body, `"clients"`) {
		t.Fatalf("amps.json: %d %.300s", code, body)
	}
	c := clientByName(t, http.DefaultClient, base, "watched")
	if c["x_transport"] != "tcp" || c["id"] == "" {
		t.Errorf("client = %v, want x_transport tcp and an id", c)
	}
	// Actions need a decision by the host: refused, and nothing changes.
	if code, body := get(t, http.DefaultClient, base+"/amps/administrator/clients/"+c["id"]+"/disconnect"); code != http.StatusForbidden {
		t.Errorf("disconnect without -admin-open-actions = %d %s, want 403", code, body)
	}
	clientByName(t, http.DefaultClient, base, "watched")

	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Errorf("the admin server %s still accepts connections after ampsd stopped", addr)
	}
}

// -admin-open-actions lets the admin server run actions: a disconnect
// closes the client's connection.
func TestRunAdminOpenActions(t *testing.T) {
	log, _ := startRun(t, "-tcp", "127.0.0.1:0", "-ws", "", "-admin", "127.0.0.1:0", "-admin-open-actions")
	base := "http://" + waitFor(t, log, adminLine)[1]
	conn := dialLogon(t, "tcp", waitFor(t, log, tcpLine)[1], "doomed")
	c := clientByName(t, http.DefaultClient, base, "doomed")
	if code, body := get(t, http.DefaultClient, base+"/amps/administrator/clients/"+c["id"]+"/disconnect"); code != http.StatusOK {
		t.Fatalf("disconnect = %d %s", code, body)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Error("the disconnected client's connection is still open")
	}
}

// The XML Admin element serves the tree over HTTP, and over HTTPS with
// Certificate and PrivateKey.
func TestConfigAdmin(t *testing.T) {
	for _, tc := range []struct{ name, files, scheme string }{
		{"http", "", "http"},
		{"https", "<Certificate>${AMPS_CONFIG_DIRECTORY}/server.crt</Certificate><PrivateKey>${AMPS_CONFIG_DIRECTORY}/server.key</PrivateKey>", "https"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file, root := writeConfig(t, `<AMPSConfig><Name>admin-test</Name>
<Transports><Transport><Name>json-tcp</Name><Type>tcp</Type><InetAddr>127.0.0.1:0</InetAddr><Protocol>amps</Protocol></Transport></Transports>
<Admin><InetAddr>127.0.0.1:0</InetAddr><Interval>1s</Interval>`+tc.files+`</Admin>
</AMPSConfig>`)
			roots := x509.NewCertPool()
			roots.AddCert(root)
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
			log, _ := startRun(t, "-config", file)
			m := waitFor(t, log, adminLine)
			if m[2] != tc.scheme {
				t.Fatalf("scheme = %s, want %s", m[2], tc.scheme)
			}
			tcp := waitFor(t, log, regexp.MustCompile(`msg=listening transport=json-tcp addr=(127\.0\.0\.1:\d+)`))[1]
			dialLogon(t, "tcp", tcp, "xml-client")
			c := clientByName(t, client, tc.scheme+"://"+m[1], "xml-client")
			if c["x_transport"] != "json-tcp" {
				t.Errorf("client = %v, want x_transport json-tcp", c)
			}
			if code, body := get(t, client, tc.scheme+"://"+m[1]+"/"); code != http.StatusOK || !strings.Contains(body, "dashboard/app.js") {
				t.Errorf("the dashboard = %d %.200s", code, body)
			}
		})
	}
}

// The Admin element's Authentication and Entitlement: Basic credentials
// are required (RequireUsername), and a simple-access entitlement lets
// the user disconnect clients but not disable transports.
func TestConfigAdminSecurity(t *testing.T) {
	file, _ := writeConfig(t, `<AMPSConfig><Name>admin-sec</Name>
<Modules><Module><Name>sa</Name><Library>libamps_simple_access_entitlement.so</Library></Module></Modules>
<Transports><Transport><Name>json-tcp</Name><Type>tcp</Type><InetAddr>127.0.0.1:0</InetAddr><Protocol>amps</Protocol></Transport></Transports>
<Admin><InetAddr>127.0.0.1:0</InetAddr>
<Authentication><Module>amps-default-authentication-module</Module><Options><RequireUsername>true</RequireUsername></Options></Authentication>
<Entitlement><Module>sa</Module><Options><DeniedTopics>^/amps/administrator/transports</DeniedTopics></Options></Entitlement>
<Galvanometer>disabled</Galvanometer><AnonymousPaths>^/amps$</AnonymousPaths><Header>X-Admin: yes</Header>
<AccessControlAllowOrigin>^https://ops\.example$</AccessControlAllowOrigin></Admin>
</AMPSConfig>`)
	log, _ := startRun(t, "-config", file)
	base := "http://" + waitFor(t, log, adminLine)[1]
	conn := dialLogon(t, "tcp", waitFor(t, log, regexp.MustCompile(`msg=listening transport=json-tcp addr=(127\.0\.0\.1:\d+)`))[1], "secured")

	if code, body := get(t, http.DefaultClient, base+"/amps/instance.json"); code != http.StatusUnauthorized {
		t.Errorf("without credentials: %d %s, want 401", code, body)
	}
	// AnonymousPaths, Header and AccessControlAllowOrigin.
	req, _ := http.NewRequest("GET", base+"/amps.json", nil)
	req.Header.Set("Origin", "https://ops.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Admin") != "yes" || resp.Header.Get("Access-Control-Allow-Origin") != "https://ops.example" {
		t.Errorf("anonymous /amps.json from ops.example = %d %v", resp.StatusCode, resp.Header)
	}
	ops := &http.Client{Transport: basicAuth{"ops", "any"}}
	c := clientByName(t, ops, base, "secured")
	if code, _ := get(t, ops, base+"/"); code != http.StatusNotFound {
		t.Errorf("the dashboard with Galvanometer disabled = %d, want 404", code)
	}
	if code, body := get(t, ops, base+"/amps/administrator/transports/json-tcp/disable"); code != http.StatusForbidden {
		t.Errorf("disable a transport against the entitlement: %d %s, want 403", code, body)
	}
	if code, body := get(t, ops, base+"/amps/administrator/clients/"+c["id"]+"/disconnect"); code != http.StatusOK {
		t.Fatalf("disconnect = %d %s", code, body)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Error("the disconnected client's connection is still open")
	}
}

// basicAuth is an http.RoundTripper adding Basic credentials.
type basicAuth struct{ user, password string }

func (b basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(b.user, b.password)
	return http.DefaultTransport.RoundTrip(r)
}

// Bad admin settings stop ampsd before it serves, with an error naming
// the setting and the value.
func TestAdminErrors(t *testing.T) {
	noAdmin, _ := writeConfig(t, `<AMPSConfig><Name>x</Name><Transports><Transport><Name>t</Name><Type>tcp</Type><InetAddr>127.0.0.1:0</InetAddr><Protocol>amps</Protocol></Transport></Transports></AMPSConfig>`)
	badKey, _ := writeConfig(t, `<AMPSConfig><Name>x</Name><Transports><Transport><Name>t</Name><Type>tcp</Type><InetAddr>127.0.0.1:0</InetAddr><Protocol>amps</Protocol></Transport></Transports>
<Admin><InetAddr>127.0.0.1:0</InetAddr><Certificate>${AMPS_CONFIG_DIRECTORY}/server.crt</Certificate><PrivateKey>${AMPS_CONFIG_DIRECTORY}/none.key</PrivateKey></Admin></AMPSConfig>`)
	dir := filepath.Dir(badKey)
	cert, missing := filepath.Join(dir, "server.crt"), filepath.Join(dir, "none.key")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-tcp", "127.0.0.1:0", "-ws", "", "-admin", "nonsense:port:9"}, `-admin: listener: invalid InetAddr "nonsense:port:9"`},
		{[]string{"-tcp", "127.0.0.1:0", "-ws", "", "-admin", busy.Addr().String()}, "-admin " + busy.Addr().String() + ":"},
		{[]string{"-tcp", "127.0.0.1:0", "-ws", "", "-admin-open-actions"}, "-admin-open-actions needs -admin"},
		{[]string{"-config", noAdmin, "-admin", "127.0.0.1:0"}, "remove -admin"},
		{[]string{"-config", noAdmin, "-admin-open-actions"}, "-admin-open-actions needs an admin server: " + noAdmin + " has no Admin/InetAddr"},
		{[]string{"-config", badKey}, `cannot load Certificate "` + cert + `" with PrivateKey "` + missing + `": ` + missing + `: no such file or directory`},
	} {
		err := run(context.Background(), func() {}, tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q) = %v, want error containing %q", tc.args, err, tc.want)
		}
	}
}
