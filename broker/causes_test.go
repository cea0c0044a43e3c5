package broker_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/listener"
	"github.com/coder/websocket"
)

// closedEvents records the StateClosed events of a broker.
type closedEvents chan broker.ConnEvent

func (ch closedEvents) hook(o *broker.Options) *broker.Options {
	if o == nil {
		o = &broker.Options{}
	}
	o.ConnState = func(ev broker.ConnEvent) {
		if ev.State == broker.StateClosed {
			ch <- ev
		}
	}
	return o
}

// next waits for the next connection to close and returns its cause.
func (ch closedEvents) next(t *testing.T) error {
	t.Helper()
	select {
	case ev := <-ch:
		return ev.Err
	case <-time.After(ampstest.DefaultTimeout):
		t.Fatal("no connection closed")
		return nil
	}
}

// TestCloseCauses provokes every way a connection can end over a real
// socket and checks the cause that ConnEvent.Err reports.
func TestCloseCauses(t *testing.T) {
	tests := []struct {
		name    string
		opts    broker.Options
		provoke func(t *testing.T, b *broker.Broker, c *ampstest.Client)
		want    error // nil: the client closed the connection itself
	}{
		{
			name: "client closes",
			provoke: func(t *testing.T, b *broker.Broker, c *ampstest.Client) {
				c.Logon("bye")
				c.Close()
			},
		},
		{
			name: "logon timeout",
			opts: broker.Options{LogonTimeout: 50 * time.Millisecond},
			provoke: func(t *testing.T, b *broker.Broker, c *ampstest.Client) {
				// A zero-length frame ends the handshake (it is no
				// preflight) and carries nothing; no logon follows.
				c.WriteRaw(make([]byte, 4))
				c.ExpectClosed()
			},
			want: broker.ErrLogonTimeout,
		},
		{
			name: "heartbeat timeout",
			opts: broker.Options{HeartbeatMisses: 1},
			provoke: func(t *testing.T, b *broker.Broker, c *ampstest.Client) {
				c.Logon("silent")
				c.SendJSON(map[string]any{"c": "heartbeat", "cid": "h", "opts": "start,1", "a": "processed"}, nil)
				c.ExpectClosed() // heartbeats arrive, the client never answers
			},
			want: broker.ErrHeartbeatTimeout,
		},
		{
			name:    "slow consumer",
			opts:    broker.Options{OutboundQueueBytes: 256 << 10},
			provoke: subscribeThenFlood("slow"),
			want:    broker.ErrSlowConsumer,
		},
		{
			name:    "write timeout",
			opts:    broker.Options{OutboundQueueBytes: 1 << 30, WriteTimeout: 100 * time.Millisecond},
			provoke: subscribeThenFlood("stuck"),
			want:    broker.ErrWriteTimeout,
		},
		{
			name: "entitlement reset",
			provoke: func(t *testing.T, b *broker.Broker, c *ampstest.Client) {
				c.Logon("reset") // as user "reset"
				b.ResetEntitlements("reset")
				c.ExpectClosed()
			},
			want: broker.ErrEntitlementReset,
		},
		{
			name: "auth failure",
			opts: broker.Options{Authenticator: broker.AuthenticatorFunc(func(context.Context, *broker.LogonRequest) error {
				return errors.New("no such user")
			})},
			provoke: refusedLogon("json", broker.ReasonAuthFailure),
			want:    broker.ErrAuthFailure,
		},
		{
			name:    "logon refused",
			provoke: refusedLogon("no-such-type", broker.ReasonUnknownType),
			want:    broker.ErrLogonRefused,
		},
		{
			name: "command before logon",
			provoke: func(t *testing.T, b *broker.Broker, c *ampstest.Client) {
				c.SendJSON(map[string]any{"c": "subscribe", "cid": "1", "t": "x", "a": "processed"}, nil)
				c.ExpectClosed()
			},
			want: broker.ErrProtocol,
		},
		{
			name: "unknown command",
			provoke: func(t *testing.T, b *broker.Broker, c *ampstest.Client) {
				c.Logon("odd")
				c.SendJSON(map[string]any{"c": "frobnicate", "cid": "1", "a": "processed"}, nil)
				c.ExpectClosed()
			},
			want: broker.ErrProtocol,
		},
		{
			name: "malformed header",
			provoke: func(t *testing.T, b *broker.Broker, c *ampstest.Client) {
				c.Logon("garbage")
				c.SendHeader(`{"c":"p","t":`, nil)
				c.ExpectClosed()
			},
			want: broker.ErrProtocol,
		},
		{
			name: "shutdown",
			provoke: func(t *testing.T, b *broker.Broker, c *ampstest.Client) {
				c.Logon("late")
				ctx, cancel := context.WithTimeout(context.Background(), ampstest.DefaultTimeout)
				defer cancel()
				if err := b.Shutdown(ctx); err != nil {
					t.Errorf("Shutdown: %v", err)
				}
				c.ExpectClosed()
			},
			want: broker.ErrBrokerClosed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events := make(closedEvents, 16)
			b := startBroker(t, events.hook(&tt.opts))
			c := ampstest.Dial(t, b.TCPURL(), nil)
			tt.provoke(t, b.Broker, c)
			err := events.next(t)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("ConnEvent.Err = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("ConnEvent.Err = %v, want errors.Is %v", err, tt.want)
			}
		})
	}
}

// refusedLogon logs on with message type mt, expects a failure ack with
// reason, then the close.
func refusedLogon(mt, reason string) func(t *testing.T, b *broker.Broker, c *ampstest.Client) {
	return func(t *testing.T, b *broker.Broker, c *ampstest.Client) {
		c.SendJSON(map[string]any{"c": "logon", "cid": "0", "user_id": "eve", "mt": mt, "a": "processed"}, nil)
		if f := c.Read(); f.Field("reason") != reason {
			t.Fatalf("logon ack: %s, want reason %q", f.RawHeader, reason)
		}
		c.ExpectClosed()
	}
}

// subscribeThenFlood logs on as name, subscribes to "feed" and, never
// reading, has the feed flooded until the connection closes.
func subscribeThenFlood(name string) func(t *testing.T, b *broker.Broker, c *ampstest.Client) {
	return func(t *testing.T, b *broker.Broker, c *ampstest.Client) {
		c.Logon(name)
		c.Subscribe("s", "feed")
		floodUntilClosed(t, b, "feed")
	}
}

// floodUntilClosed publishes 16 KiB messages to topic from an in-process
// client until a connection closes (at most 64 MiB).
func floodUntilClosed(t *testing.T, b *broker.Broker, topic string) {
	t.Helper()
	ctx := context.Background()
	pub, err := b.Connect(ctx, "flood", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	body := bytes.Repeat([]byte("x"), 16<<10)
	start := b.Stats().Connections
	for i := 0; i < 4096 && b.Stats().Connections == start; i++ {
		if err := pub.Publish(ctx, topic, body); err != nil {
			t.Fatal(err)
		}
		if i%64 == 63 {
			time.Sleep(5 * time.Millisecond) // let the writer meet the full socket
		}
	}
}

// TestServeConnReturnsCause checks that ServeConn returns the same cause
// for a connection the host serves itself.
func TestServeConnReturnsCause(t *testing.T) {
	b := broker.New(&broker.Options{LogonTimeout: 50 * time.Millisecond})
	defer b.Close()
	l, err := listener.ListenTCP("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	client.Write(make([]byte, 4)) // an empty frame, then silence
	raw, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c, err := l.Handshake(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.ServeConn(context.Background(), c); !errors.Is(err, broker.ErrLogonTimeout) {
		t.Fatalf("ServeConn = %v, want ErrLogonTimeout", err)
	}
}

// TestInProcessClientCauses checks Client.Err for each way an in-process
// client ends.
func TestInProcessClientCauses(t *testing.T) {
	ctx := context.Background()
	t.Run("close", func(t *testing.T) {
		b := broker.New(nil)
		defer b.Close()
		c, _ := b.Connect(ctx, "c", nil)
		c.Close()
		<-c.Done()
		if !errors.Is(c.Err(), broker.ErrClientClosed) {
			t.Fatalf("Err = %v, want ErrClientClosed", c.Err())
		}
	})
	t.Run("slow consumer", func(t *testing.T) {
		b := broker.New(nil)
		defer b.Close()
		release := make(chan struct{})
		defer close(release)
		c, _ := b.Connect(ctx, "slow", &broker.ClientOptions{QueueBytes: 64 << 10})
		c.Subscribe(ctx, "t", func(broker.Message) { <-release }, nil)
		pub, _ := b.Connect(ctx, "pub", nil)
		body := make([]byte, 1024)
		for i := 0; i < 1000 && c.Err() == nil; i++ {
			pub.Publish(ctx, "t", body)
		}
		if !errors.Is(c.Err(), broker.ErrSlowConsumer) {
			t.Fatalf("Err = %v, want ErrSlowConsumer", c.Err())
		}
	})
	t.Run("shutdown", func(t *testing.T) {
		b := broker.New(nil)
		c, _ := b.Connect(ctx, "c", nil)
		if err := b.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		<-c.Done()
		if !errors.Is(c.Err(), broker.ErrBrokerClosed) {
			t.Fatalf("Err = %v, want ErrBrokerClosed", c.Err())
		}
	})
}

// TestWebSocketFramingErrorIsProtocolError checks that a WebSocket client
// that breaks the JavaScript client's framing ends with ErrProtocol.
func TestWebSocketFramingErrorIsProtocolError(t *testing.T) {
	events := make(closedEvents, 4)
	b := startBroker(t, events.hook(nil))
	c := ampstest.Dial(t, b.WSURL(), nil)                            // sends the "text" selector
	if err := c.WriteWS(true, []byte(`{"c":"logon"}`)); err != nil { // a header where a count frame belongs
		t.Fatal(err)
	}
	if err := events.next(t); !errors.Is(err, broker.ErrProtocol) {
		t.Fatalf("ConnEvent.Err = %v, want errors.Is ErrProtocol", err)
	}
}

// TestCloseDuringGracefulShutdownStopsHandlers checks that Client.Close
// ends a client that a graceful Shutdown is still draining: no handler
// call starts after Close returns, even inside the batch being delivered.
func TestCloseDuringGracefulShutdownStopsHandlers(t *testing.T) {
	ctx := context.Background()
	b := broker.New(nil)
	c, _ := b.Connect(ctx, "drained", nil)
	var calls atomic.Int32
	started, release := make(chan struct{}), make(chan struct{})
	c.Subscribe(ctx, "t", func(broker.Message) {
		if calls.Add(1) == 1 {
			close(started)
			<-release
		}
	}, nil)

	pub, _ := b.Connect(ctx, "pub", nil)
	for range 10 {
		pub.Publish(ctx, "t", []byte("x"))
	}
	<-started // the first handler call holds the batch
	shut := make(chan error, 1)
	go func() { shut <- b.Shutdown(ctx) }()
	// Shutdown has begun draining when pub is closed by it.
	<-pub.Done()
	c.Close()
	after := calls.Load()
	close(release)
	<-c.Done()
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if got := calls.Load(); got != after {
		t.Fatalf("%d handler calls started after Close returned", got-after)
	}
}

// TestShutdownDeadlineCutsWebSocketCloseShort checks that when Shutdown's
// context ends, a graceful WebSocket close still waiting for a client that
// does not answer is aborted rather than waited out.
func TestShutdownDeadlineCutsWebSocketCloseShort(t *testing.T) {
	b := startBroker(t, nil)
	// A raw WebSocket client (ampstest's would answer the close): it
	// selects text framing, logs on, and never reads.
	ws, _, err := websocket.Dial(context.Background(), b.WSURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	logon := `{"c":"logon","cid":"0","client_name":"mute","mt":"json","a":"processed"}`
	for _, f := range []struct {
		typ websocket.MessageType
		p   []byte
	}{
		{websocket.MessageText, []byte("text")},
		{websocket.MessageBinary, binary.LittleEndian.AppendUint32(nil, 1)}, // one frame follows
		{websocket.MessageText, []byte(logon)},
	} {
		if err := ws.Write(context.Background(), f.typ, f.p); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(ampstest.DefaultTimeout); ; time.Sleep(time.Millisecond) {
		if conns := b.Stats().Conns; len(conns) == 1 && conns[0].ClientName == "mute" {
			break // the logon is processed
		}
		if time.Now().After(deadline) {
			t.Fatal("the logon was not processed")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := b.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want the context's deadline", err)
	}
	// Without the abort it returns only when the close handshake gives up.
	if took := time.Since(start); took >= listener.WebSocketCloseTimeout {
		t.Fatalf("Shutdown took %v, as long as the WebSocket close timeout", took)
	}
}
