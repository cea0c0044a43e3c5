package ampstest

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/protocol"
)

// Client is a Conn for the test goroutine: its methods fail the test (with
// t.Fatal) instead of returning errors, and it is closed when the test
// ends. The error-returning methods stay reachable through the embedded
// Conn, e.g. c.Conn.Read() to expect an error.
type Client struct {
	*Conn
	t testing.TB
}

// Dial connects to uri (see DialConn for the forms) and fails the test if
// it cannot. The connection is closed when the test ends.
func Dial(t testing.TB, uri string, opts *DialOptions) *Client {
	t.Helper()
	c, err := DialConn(uri, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &Client{Conn: c, t: t}
}

// NewClient wraps an open Conn for the test goroutine.
func NewClient(t testing.TB, c *Conn) *Client { return &Client{Conn: c, t: t} }

func (c *Client) check(err error) {
	c.t.Helper()
	if err != nil {
		c.t.Fatal(err)
	}
}

// WriteRaw writes b as it is (see Conn.WriteRaw).
func (c *Client) WriteRaw(b []byte) { c.t.Helper(); c.check(c.Conn.WriteRaw(b)) }

// SendHeader sends a message whose header is JSON text (see Conn.SendHeader).
func (c *Client) SendHeader(header string, body []byte) {
	c.t.Helper()
	c.check(c.Conn.SendHeader(header, body))
}

// Send sends a message with header h (see Conn.Send).
func (c *Client) Send(h *protocol.Header, body []byte) { c.t.Helper(); c.check(c.Conn.Send(h, body)) }

// SendJSON sends a message whose header is v encoded as JSON.
func (c *Client) SendJSON(v any, body []byte) { c.t.Helper(); c.check(c.Conn.SendJSON(v, body)) }

// Read returns the next message, heartbeats included.
func (c *Client) Read() Message {
	c.t.Helper()
	m, err := c.Conn.Read()
	c.check(err)
	return m
}

// Next returns the next message that is not a heartbeat.
func (c *Client) Next() Message {
	c.t.Helper()
	m, err := c.Conn.Next()
	c.check(err)
	return m
}

// AwaitAck returns the ack of type ackType for cid (see Conn.AwaitAck).
func (c *Client) AwaitAck(cid, ackType string) Message {
	c.t.Helper()
	m, err := c.Conn.AwaitAck(cid, ackType)
	c.check(err)
	return m
}

// LogonWith logs on with h and returns the ack whatever its status.
func (c *Client) LogonWith(h *protocol.Header) Message {
	c.t.Helper()
	m, err := c.Conn.LogonWith(h)
	c.check(err)
	return m
}

// Logon logs on as name and returns the ack; the logon must succeed.
func (c *Client) Logon(name string) Message {
	c.t.Helper()
	m, err := c.Conn.Logon(name)
	c.check(err)
	return m
}

// Subscribe subscribes id to topic; the broker must accept it.
func (c *Client) Subscribe(id, topic string) { c.t.Helper(); c.check(c.Conn.Subscribe(id, topic)) }

// Publish publishes body to topic.
func (c *Client) Publish(topic string, body []byte) {
	c.t.Helper()
	c.check(c.Conn.Publish(topic, body))
}

// Flush waits until the broker has handled everything sent before.
func (c *Client) Flush(cid string) { c.t.Helper(); c.check(c.Conn.Flush(cid)) }

// Heartbeat asks for a heartbeat every seconds seconds.
func (c *Client) Heartbeat(seconds int) { c.t.Helper(); c.check(c.Conn.Heartbeat(seconds)) }

// Beat answers a server heartbeat.
func (c *Client) Beat() { c.t.Helper(); c.check(c.Conn.Beat()) }

// ExpectClosed reads until the broker closes the connection and fails the
// test unless it does within the connection's timeout.
func (c *Client) ExpectClosed() string {
	c.t.Helper()
	how, err := c.Conn.ExpectClosed(c.timeout)
	c.check(err)
	return how
}

// ExpectNothing fails the test if a message other than a heartbeat arrives
// within d.
func (c *Client) ExpectNothing(d time.Duration) {
	c.t.Helper()
	end := time.Now().Add(d)
	for {
		m, err := c.Conn.ReadWithin(time.Until(end))
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return // quiet for d, as expected
		}
		if err != nil {
			c.t.Fatalf("ampstest: expected no message within %v, but the read failed: %v", d, err)
		}
		if m.Header.Command != protocol.CmdHeartbeat {
			c.t.Fatalf("ampstest: expected no message within %v, got %s", d, m)
		}
	}
}
