package broker_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/listener"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// logonAndSubscribe logs c on and subscribes it to topic with the ids the
// JavaScript client uses.
func logonAndSubscribe(c *ampstest.Client, topic string) {
	c.LogonWith(&protocol.Header{CommandID: "auto0", ClientName: "js", Version: "5.3.4.0:javascript"})
	c.Subscribe("auto1", topic)
}

// One TCP port serves raw AMPS, AMPS after an HTTP preflight, and
// WebSocket clients, all on one broker.
func TestOnePortServesRawPreflightAndWebSocket(t *testing.T) {
	b := startBroker(t, nil)
	l, err := listener.ListenTCP("127.0.0.1:0", &listener.TCPOptions{Name: "one", WebSocket: &listener.WebSocketOptions{}})
	if err != nil {
		t.Fatal(err)
	}
	b.ServeListener(l)
	addr := l.Addr().String()

	js := ampstest.Dial(t, "ws://"+addr+"/edge/amps/json", nil)
	logonAndSubscribe(js, "orders")

	// A client behind a proxy sends the preflight first (wire spec §4.1):
	// GET /client/amps/json with Upgrade: tcp, answered 101.
	pre := ampstest.Dial(t, "tcp://"+addr+"/client/amps/json?http_preflight=true", nil)
	pre.Logon("behind-proxy")
	pre.Subscribe("p", "orders")

	raw := dialTCP(t, addr)
	raw.Logon("raw")
	raw.Publish("orders", []byte(`{"id":7}`))

	if m := js.Next(); m.Header.Topic != "orders" || m.Header.SubIDs != "auto1" || string(m.Body) != `{"id":7}` {
		t.Fatalf("WebSocket client got %s", m)
	}
	if f := pre.Next(); f.Field("t") != "orders" || string(f.Body) != `{"id":7}` {
		t.Fatalf("preflight client got %s%s", f.RawHeader, f.Body)
	}
	js.SendHeader(`{"c":"publish","t":"orders"}`, []byte(`{"id":8}`))
	if f := pre.Next(); string(f.Body) != `{"id":8}` {
		t.Fatalf("preflight client got %s%s", f.RawHeader, f.Body)
	}
	if got := b.Stats().Transports["one"]; got != 3 {
		t.Errorf("Transports[one] = %d, want 3", got)
	}
}

// A host mounts the WebSocket transport on its own HTTP server; the
// broker's Shutdown closes those sessions too.
func TestWebSocketHandlerOnHostServer(t *testing.T) {
	b := broker.New(nil)
	srv := httptest.NewServer(listener.NewWebSocketHandler(b, &listener.WebSocketOptions{Name: "host-ws"}))
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/amps/json"
	a := ampstest.Dial(t, url, nil)
	logonAndSubscribe(a, "t")
	c := ampstest.Dial(t, url, nil)
	logonAndSubscribe(c, "other")
	c.SendHeader(`{"c":"publish","t":"t"}`, []byte(`hello`))
	if m := a.Next(); string(m.Body) != "hello" || m.Field("l") != "5" {
		t.Fatalf("got %s", m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ampstest.DefaultTimeout)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Conn.Read(); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("after Shutdown: %v, want close 1000", err)
	}
}

// A transport with a configured message type refuses, at logon, a
// WebSocket client whose path asks for another (amps-config §3.5).
func TestWebSocketMessageTypeMismatchFailsLogon(t *testing.T) {
	b := startBroker(t, nil)
	l, err := listener.ListenWebSocket("127.0.0.1:0", &listener.WebSocketOptions{MessageType: "json"})
	if err != nil {
		t.Fatal(err)
	}
	b.ServeListener(l)
	c := ampstest.Dial(t, "ws://"+l.Addr().String()+"/amps/nvfix", nil)
	c.SendHeader(`{"c":"logon","cid":"auto0","a":"processed","client_name":"x","user_id":""}`, nil)
	if m := c.Read(); m.Header.Status != "failure" || m.Header.Reason != "message type mismatch" {
		t.Fatalf("logon ack %s", m)
	}
	ok := ampstest.Dial(t, "ws://"+l.Addr().String()+"/amps/json", nil)
	logonAndSubscribe(ok, "t")
}
