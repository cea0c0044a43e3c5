package config

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/coder/websocket"
)

// TestBrokerOptionsRegexTopicSupport: RegexTopicSupport false becomes
// broker.Options.NoRegexTopics.
func TestBrokerOptionsRegexTopicSupport(t *testing.T) {
	for _, v := range []string{"true", "false"} {
		cfg, e := parseString(t, doc("<RegexTopicSupport>"+v+"</RegexTopicSupport>"), nil)
		if e != nil {
			t.Fatal(e)
		}
		if got, want := cfg.BrokerOptions().NoRegexTopics, v == "false"; got != want {
			t.Errorf("RegexTopicSupport %s: NoRegexTopics = %v, want %v", v, got, want)
		}
	}
}

// TestOverridesNameDeclaredTransports: every per-transport override
// BrokerOptions makes is keyed by a declared transport's Name, disabled
// ones included, so a configuration cannot name a transport it lacks.
func TestOverridesNameDeclaredTransports(t *testing.T) {
	cfg := &Config{Name: "x", Transports: []Transport{
		{Name: "a", Type: TypeTCP, InetAddr: "0", MaxConnections: 3},
		{Name: "b", Type: TypeTCP, InetAddr: "0", InitialState: StateDisabled,
			Entitlement: &Module{Module: "amps-default-no-entitlement-module"}},
		{Name: "c", Type: TypeTCP, InetAddr: "0"},
	}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	o := cfg.BrokerOptions()
	if _, ok := o.Transports["a"]; !ok {
		t.Errorf("Transports = %v, want an entry for a", o.Transports)
	}
	if _, ok := o.Transports["b"]; !ok {
		t.Errorf("Transports = %v, want an entry for the disabled b", o.Transports)
	}
	for name := range o.Transports {
		if name != "a" && name != "b" {
			t.Errorf("Transports has %q, which is no transport with its own settings", name)
		}
	}
}

// TestMaxFrameSizeReachesEveryTransport: Config.MaxFrameSize is the inbound
// size limit of stream and WebSocket transports alike.
func TestMaxFrameSizeReachesEveryTransport(t *testing.T) {
	cfg := &Config{Name: "x", MaxFrameSize: 1024, Transports: []Transport{
		{Name: "amps", Type: TypeTCP, InetAddr: "127.0.0.1:0"},
		{Name: "ws", Type: TypeTCP, InetAddr: "127.0.0.1:0", Protocol: ProtocolWebSocket},
	}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ls, err := cfg.ListenAll()
	if err != nil {
		t.Fatal(err)
	}
	opts := cfg.BrokerOptions()
	b := broker.New(&opts)
	done := make(chan error, len(ls))
	for _, l := range ls {
		go func() { done <- b.Serve(l) }()
	}
	defer func() {
		b.Close()
		for range ls {
			<-done
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Stream: a frame that claims 2000 bytes ends the connection.
	c, err := net.Dial("tcp", ls[0].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	frame := binary.BigEndian.AppendUint32(nil, 2000)
	frame = append(frame, `{"c":"logon","cid":"1","mt":"json"}`...)
	frame = append(frame, strings.Repeat("x", 2000-35)...)
	c.Write(frame)
	if n, err := io.Copy(io.Discard, c); err != nil || n != 0 {
		t.Errorf("stream: after an oversized frame read %d bytes, %v; want the connection closed", n, err)
	}

	// WebSocket: a 2000-byte message is refused with 1009.
	ws, _, err := websocket.Dial(ctx, "ws://"+ls[1].Addr().String()+"/amps/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.Write(ctx, websocket.MessageText, []byte("text"))
	ws.Write(ctx, websocket.MessageText, []byte(`{"c":"logon","cid":"1"}`+strings.Repeat("x", 2000)))
	_, _, err = ws.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusMessageTooBig {
		t.Errorf("websocket: after an oversized message Read = %v, want close 1009", err)
	}
}
