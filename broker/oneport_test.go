package broker_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/listener"
)

// jsClient speaks the official JavaScript client's WebSocket encoding (wire
// spec §3): a "text" selector frame, then per command a little-endian count
// frame, a header text frame and data frames.
type jsClient struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialJS(t *testing.T, url string) *jsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	ws.SetReadLimit(-1)
	t.Cleanup(func() { ws.CloseNow() })
	c := &jsClient{t: t, ws: ws}
	c.write(websocket.MessageText, []byte("text"))
	return c
}

func (c *jsClient) write(typ websocket.MessageType, p []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, typ, p); err != nil {
		c.t.Fatal(err)
	}
}

func (c *jsClient) send(header string, body string) {
	c.t.Helper()
	n := uint32(1)
	if body != "" {
		n = 2
	}
	c.write(websocket.MessageBinary, binary.LittleEndian.AppendUint32(nil, n))
	c.write(websocket.MessageText, []byte(header))
	if body != "" {
		c.write(websocket.MessageText, []byte(body))
	}
}

// recv returns the next header frame as a map, and the data frame that
// follows a "p" with a non-zero "l".
func (c *jsClient) recv() (map[string]any, string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	read := func() []byte {
		typ, p, err := c.ws.Read(ctx)
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if typ != websocket.MessageText {
			c.t.Fatalf("got a binary frame %q in text mode", p)
		}
		return p
	}
	var h map[string]any
	if err := json.Unmarshal(read(), &h); err != nil {
		c.t.Fatal(err)
	}
	if h["c"] == "p" && h["l"] != float64(0) {
		return h, string(read())
	}
	return h, ""
}

func (c *jsClient) logonAndSubscribe(topic string) {
	c.t.Helper()
	c.send(`{"c":"logon","cid":"auto0","a":"processed","version":"5.3.4.0:javascript","client_name":"js","user_id":""}`, "")
	if h, _ := c.recv(); h["status"] != "success" {
		c.t.Fatalf("logon: %v", h)
	}
	c.send(`{"c":"subscribe","t":"`+topic+`","filter":"","cid":"auto1","sub_id":"auto1","a":"processed"}`, "")
	if h, _ := c.recv(); h["status"] != "success" {
		c.t.Fatalf("subscribe: %v", h)
	}
}

// One TCP port serves raw AMPS, AMPS after an HTTP preflight, and
// WebSocket clients, all on one broker.
func TestOnePortServesRawPreflightAndWebSocket(t *testing.T) {
	b, _ := startBroker(t, nil)
	l, err := listener.ListenTCP("127.0.0.1:0", &listener.TCPOptions{Name: "one", WebSocket: &listener.WebSocketOptions{}})
	if err != nil {
		t.Fatal(err)
	}
	go b.Serve(l)
	addr := l.Addr().String()

	js := dialJS(t, "ws://"+addr+"/edge/amps/json")
	js.logonAndSubscribe("orders")

	// A client behind a proxy sends the preflight first (wire spec §4.1).
	conn, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(ioTimeout))
	conn.Write([]byte("GET /client/amps/json HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: tcp\r\n\r\n"))
	br := bufio.NewReader(conn)
	resp, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(resp, "HTTP/1.1 101 ") {
		t.Fatalf("preflight answer %q, %v", resp, err)
	}
	for line := ""; line != "\r\n"; {
		if line, err = br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	pre := &wireClient{t: t, conn: conn, br: br}
	pre.logon("behind-proxy")
	pre.subscribe("p", "orders")

	raw := dialWire(t, "tcp", addr)
	raw.logon("raw")
	raw.publish("orders", []byte(`{"id":7}`))

	if h, body := js.recv(); h["t"] != "orders" || h["sids"] != "auto1" || body != `{"id":7}` {
		t.Fatalf("WebSocket client got %v %q", h, body)
	}
	if f := pre.recvSkipping(); f.str("t") != "orders" || string(f.body) != `{"id":7}` {
		t.Fatalf("preflight client got %s%s", f.raw, f.body)
	}
	js.send(`{"c":"publish","t":"orders"}`, `{"id":8}`)
	if f := pre.recvSkipping(); string(f.body) != `{"id":8}` {
		t.Fatalf("preflight client got %s%s", f.raw, f.body)
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
	a := dialJS(t, url)
	a.logonAndSubscribe("t")
	c := dialJS(t, url)
	c.logonAndSubscribe("other")
	c.send(`{"c":"publish","t":"t"}`, `hello`)
	if h, body := a.recv(); body != "hello" || h["l"] != float64(5) {
		t.Fatalf("got %v %q", h, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.ws.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("after Shutdown: %v, want close 1000", err)
	}
}

// A transport with a configured message type refuses, at logon, a
// WebSocket client whose path asks for another (amps-config §3.5).
func TestWebSocketMessageTypeMismatchFailsLogon(t *testing.T) {
	b, _ := startBroker(t, nil)
	l, err := listener.ListenWebSocket("127.0.0.1:0", &listener.WebSocketOptions{MessageType: "json"})
	if err != nil {
		t.Fatal(err)
	}
	go b.Serve(l)
	c := dialJS(t, "ws://"+l.Addr().String()+"/amps/nvfix")
	c.send(`{"c":"logon","cid":"auto0","a":"processed","client_name":"x","user_id":""}`, "")
	if h, _ := c.recv(); h["status"] != "failure" || h["reason"] != "message type mismatch" {
		t.Fatalf("logon ack %v", h)
	}
	ok := dialJS(t, "ws://"+l.Addr().String()+"/amps/json")
	ok.logonAndSubscribe("t")
}
