package config_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/config"
	"github.com/ampsbroker/ampsbroker/transport"
)

// securityConfig has a Go-registered authenticator for the whole instance
// and a simple access entitlement on one transport (amps-config §7.4).
const securityConfig = `<AMPSConfig>
  <Name>security-e2e</Name>
  <Modules>
    <Module>
      <Name>topic-acl</Name>
      <Library>libamps_simple_access_entitlement.so</Library>
    </Module>
  </Modules>
  <Authentication><Module>users</Module></Authentication>
  <Transports>
    <Transport>
      <Name>writers</Name>
      <Type>tcp</Type>
      <InetAddr>127.0.0.1:0</InetAddr>
      <Protocol>amps</Protocol>
      <MessageType>json</MessageType>
    </Transport>
    <Transport>
      <Name>readers</Name>
      <Type>tcp</Type>
      <InetAddr>127.0.0.1:0</InetAddr>
      <Protocol>amps</Protocol>
      <MessageType>json</MessageType>
      <Entitlement>
        <Module>topic-acl</Module>
        <Options>
          <AllowedTopics>^orders/</AllowedTopics>
          <DeniedTopics>/secret</DeniedTopics>
          <GrantedPermissions>read</GrantedPermissions>
        </Options>
      </Entitlement>
    </Transport>
  </Transports>
</AMPSConfig>
`

// rawClient speaks the AMPS stream protocol directly (wire §2.1: 4-byte
// big-endian length, JSON header, body), without package protocol.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, conn: c, br: bufio.NewReader(c)}
}

func (c *rawClient) send(h map[string]string, body string) {
	c.t.Helper()
	hb, err := json.Marshal(h)
	if err != nil {
		c.t.Fatal(err)
	}
	frame := make([]byte, 4, 4+len(hb)+len(body))
	binary.BigEndian.PutUint32(frame, uint32(len(hb)+len(body)))
	frame = append(append(frame, hb...), body...)
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.conn.Write(frame); err != nil {
		c.t.Fatalf("write %s: %v", hb, err)
	}
}

// read returns the next non-heartbeat frame's header and body.
func (c *rawClient) read() (map[string]any, string, error) {
	for {
		c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		var n [4]byte
		if _, err := io.ReadFull(c.br, n[:]); err != nil {
			return nil, "", err
		}
		data := make([]byte, binary.BigEndian.Uint32(n[:]))
		if _, err := io.ReadFull(c.br, data); err != nil {
			return nil, "", err
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		var h map[string]any
		if err := dec.Decode(&h); err != nil {
			return nil, "", err
		}
		if h["c"] == "heartbeat" {
			continue
		}
		return h, string(data[dec.InputOffset():]), nil
	}
}

func (c *rawClient) recv() (map[string]any, string) {
	c.t.Helper()
	h, body, err := c.read()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return h, body
}

// command sends h (asking for a processed ack) and returns the ack's
// status and reason.
func (c *rawClient) command(h map[string]string) (status, reason string) {
	c.t.Helper()
	h["a"] = "processed"
	c.send(h, "")
	ack, _ := c.recv()
	if ack["c"] != "ack" || ack["cid"] != h["cid"] {
		c.t.Fatalf("%s: got %v, want its ack", h["c"], ack)
	}
	s, _ := ack["status"].(string)
	r, _ := ack["reason"].(string)
	return s, r
}

func (c *rawClient) logon(user, password string) (status, reason string) {
	c.t.Helper()
	return c.command(map[string]string{"c": "logon", "cid": "logon", "client_name": "e2e-" + user,
		"user_id": user, "pw": password, "mt": "json", "version": "5.3.4.0:go"})
}

// TestSecurityEndToEnd loads a configuration with a Go-registered
// authenticator and a transport-level simple access entitlement, serves it,
// and checks over TCP what clients see (semantics §8.1, §8.2).
func TestSecurityEndToEnd(t *testing.T) {
	cfg, err := config.Parse(strings.NewReader(securityConfig), &config.ParseOptions{
		Authenticators: map[string]broker.Authenticator{
			"users": broker.UserTable{"alice": "alice-pw", "bob": "bob-pw"},
		},
	})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings: %v", cfg.Warnings)
	}
	ls, err := cfg.ListenAll()
	if err != nil {
		t.Fatalf("ListenAll: %v", err)
	}
	opts := cfg.BrokerOptions()
	b := broker.New(&opts)
	var wg sync.WaitGroup
	addr := map[string]string{}
	for _, l := range ls {
		addr[l.Name()] = l.Addr().String()
		wg.Add(1)
		go func(l transport.Listener) {
			defer wg.Done()
			b.Serve(l)
		}(l)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		wg.Wait()
	}()

	// A wrong password: "auth failure", then the connection closes.
	bad := dialRaw(t, addr["readers"])
	if status, reason := bad.logon("alice", "guess"); status != "failure" || reason != "auth failure" {
		t.Errorf("bad password: ack %s %q, want failure \"auth failure\"", status, reason)
	}
	var ne net.Error
	if h, _, err := bad.read(); err == nil {
		t.Errorf("after auth failure the broker sent %v instead of closing", h)
	} else if errors.As(err, &ne) && ne.Timeout() {
		t.Error("broker did not close the connection after auth failure")
	}

	// An unknown user is refused the same way on the other transport: the
	// instance Authentication governs both.
	stranger := dialRaw(t, addr["writers"])
	if status, reason := stranger.logon("mallory", "alice-pw"); status != "failure" || reason != "auth failure" {
		t.Errorf("unknown user: ack %s %q, want failure \"auth failure\"", status, reason)
	}

	reader := dialRaw(t, addr["readers"])
	if status, reason := reader.logon("alice", "alice-pw"); status != "success" {
		t.Fatalf("alice logon: %s %q", status, reason)
	}
	for _, topic := range []string{"orders/secret", "fills", "eu/orders/1"} {
		if status, reason := reader.command(map[string]string{"c": "subscribe", "cid": "s-" + topic, "sub_id": topic, "t": topic}); status != "failure" || reason != "not entitled" {
			t.Errorf("subscribe %q on readers: %s %q, want failure \"not entitled\"", topic, status, reason)
		}
	}
	if status, reason := reader.command(map[string]string{"c": "subscribe", "cid": "s-ok", "sub_id": "ok", "t": "orders/eu"}); status != "success" {
		t.Fatalf("subscribe orders/eu on readers: %s %q", status, reason)
	}
	// GrantedPermissions read: no publishing from this transport.
	if status, reason := reader.command(map[string]string{"c": "publish", "cid": "p-r", "t": "orders/eu"}); status != "failure" || reason != "not entitled" {
		t.Errorf("publish on readers: %s %q, want failure \"not entitled\"", status, reason)
	}

	// The writers transport has no Entitlement of its own: everything is
	// allowed, and alice's allowed subscription receives the message.
	writer := dialRaw(t, addr["writers"])
	if status, reason := writer.logon("bob", "bob-pw"); status != "success" {
		t.Fatalf("bob logon: %s %q", status, reason)
	}
	writer.send(map[string]string{"c": "p", "t": "orders/secret"}, `{"id":0}`)
	writer.send(map[string]string{"c": "p", "t": "orders/eu"}, `{"id":1}`)
	if status, reason := writer.command(map[string]string{"c": "flush", "cid": "f"}); status != "success" {
		t.Fatalf("flush on writers: %s %q", status, reason)
	}
	h, body := reader.recv()
	if h["c"] != "p" || h["t"] != "orders/eu" || h["sids"] != "ok" || body != `{"id":1}` {
		t.Errorf("reader got %v %s, want the orders/eu publish", h, body)
	}
}
