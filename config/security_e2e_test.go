package config_test

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/config"
	"github.com/ampsbroker/ampsbroker/protocol"
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

// command sends h asking for a processed ack and returns the ack's status
// and reason.
func command(c *ampstest.Client, h protocol.Header) (status, reason string) {
	h.AckType = protocol.AckProcessed
	c.Send(&h, nil)
	ack := c.AwaitAck(h.CommandID, protocol.AckProcessed)
	return ack.Header.Status, ack.Header.Reason
}

// logon logs c on as user with password and returns the ack's status and
// reason.
func logon(c *ampstest.Client, user, password string) (status, reason string) {
	ack := c.LogonWith(&protocol.Header{CommandID: "logon", ClientName: "e2e-" + user, UserID: user, Password: password, Version: "5.3.4.0:go"})
	return ack.Header.Status, ack.Header.Reason
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
	b := ampstest.NewBroker(t, &ampstest.Options{Broker: &opts})
	addr := map[string]string{}
	for _, l := range ls {
		addr[l.Name()] = l.Addr().String()
		b.ServeListener(l)
	}

	// A wrong password: "auth failure", then the connection closes.
	bad := ampstest.Dial(t, "tcp://"+addr["readers"]+"/amps/json", nil)
	if status, reason := logon(bad, "alice", "guess"); status != "failure" || reason != "auth failure" {
		t.Errorf("bad password: ack %s %q, want failure \"auth failure\"", status, reason)
	}
	var ne net.Error
	if m, err := bad.Conn.Read(); err == nil {
		t.Errorf("after auth failure the broker sent %s instead of closing", m)
	} else if errors.As(err, &ne) && ne.Timeout() {
		t.Error("broker did not close the connection after auth failure")
	}

	// An unknown user is refused the same way on the other transport: the
	// instance Authentication governs both.
	stranger := ampstest.Dial(t, "tcp://"+addr["writers"]+"/amps/json", nil)
	if status, reason := logon(stranger, "mallory", "alice-pw"); status != "failure" || reason != "auth failure" {
		t.Errorf("unknown user: ack %s %q, want failure \"auth failure\"", status, reason)
	}

	reader := ampstest.Dial(t, "tcp://"+addr["readers"]+"/amps/json", nil)
	if status, reason := logon(reader, "alice", "alice-pw"); status != "success" {
		t.Fatalf("alice logon: %s %q", status, reason)
	}
	for _, topic := range []string{"orders/secret", "fills", "eu/orders/1"} {
		if status, reason := command(reader, protocol.Header{Command: "subscribe", CommandID: "s-" + topic, SubID: topic, Topic: topic}); status != "failure" || reason != "not entitled" {
			t.Errorf("subscribe %q on readers: %s %q, want failure \"not entitled\"", topic, status, reason)
		}
	}
	if status, reason := command(reader, protocol.Header{Command: "subscribe", CommandID: "s-ok", SubID: "ok", Topic: "orders/eu"}); status != "success" {
		t.Fatalf("subscribe orders/eu on readers: %s %q", status, reason)
	}
	// GrantedPermissions read: no publishing from this transport.
	if status, reason := command(reader, protocol.Header{Command: "publish", CommandID: "p-r", Topic: "orders/eu"}); status != "failure" || reason != "not entitled" {
		t.Errorf("publish on readers: %s %q, want failure \"not entitled\"", status, reason)
	}

	// The writers transport has no Entitlement of its own: everything is
	// allowed, and alice's allowed subscription receives the message.
	writer := ampstest.Dial(t, "tcp://"+addr["writers"]+"/amps/json", nil)
	if status, reason := logon(writer, "bob", "bob-pw"); status != "success" {
		t.Fatalf("bob logon: %s %q", status, reason)
	}
	writer.Publish("orders/secret", []byte(`{"id":0}`))
	writer.Publish("orders/eu", []byte(`{"id":1}`))
	if status, reason := command(writer, protocol.Header{Command: "flush", CommandID: "f"}); status != "success" {
		t.Fatalf("flush on writers: %s %q", status, reason)
	}
	m := reader.Next()
	if m.Header.Command != "p" || m.Header.Topic != "orders/eu" || m.Header.SubIDs != "ok" || string(m.Body) != `{"id":1}` {
		t.Errorf("reader got %s, want the orders/eu publish", m)
	}
}
