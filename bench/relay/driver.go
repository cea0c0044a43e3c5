package relay

import (
	"bufio"
	"fmt"
	"net"
	"time"

	"github.com/ampsbroker/ampsbroker/internal/loadgen"
)

// setupTimeout bounds a dial and a subscribe.
const setupTimeout = 10 * time.Second

// Driver dials relay connections for the load generator. The relay has
// neither content filters nor SOW topics.
type Driver struct {
	Addr string // host:port
}

func (d *Driver) Name() string { return "relay" }

func (d *Driver) Features() loadgen.Feature { return 0 }

// Dial connects; the relay has no logon, so client is not sent.
func (d *Driver) Dial(client string) (loadgen.Conn, error) {
	nc, err := net.DialTimeout("tcp", d.Addr, setupTimeout)
	if err != nil {
		return nil, fmt.Errorf("relay: dial %s for %s: %w", d.Addr, client, err)
	}
	return &conn{nc: nc, r: bufio.NewReaderSize(nc, bufferSize), w: bufio.NewWriterSize(nc, bufferSize)}, nil
}

// conn is one client connection to the relay.
type conn struct {
	nc    net.Conn
	r     *bufio.Reader
	w     *bufio.Writer
	frame []byte
	// topic and op are the start of a publish to topic.
	topic string
	op    []byte
}

// opFor returns the operation and topic part of a frame.
func opFor(op byte, topic string) ([]byte, error) {
	if len(topic) > 255 {
		return nil, fmt.Errorf("relay: topic %.40q is longer than 255 bytes", topic)
	}
	return append([]byte{op, byte(len(topic))}, topic...), nil
}

// Subscribe sends the subscription and waits for the relay's empty frame
// that says it is in place; the relay filters nothing, so filter must be
// empty.
func (c *conn) Subscribe(topic, filter string) error {
	if filter != "" {
		return fmt.Errorf("relay: subscribe to %s with filter %q: %w", topic, filter, loadgen.ErrNotApplicable)
	}
	op, err := opFor(opSubscribe, topic)
	if err != nil {
		return err
	}
	c.nc.SetDeadline(time.Now().Add(setupTimeout))
	defer c.nc.SetDeadline(time.Time{})
	writeFrame(c.w, op)
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("relay: subscribe to %s: %w", topic, err)
	}
	f, err := readFrame(c.r, c.frame)
	if err != nil {
		return fmt.Errorf("relay: waiting for the subscribe to %s: %w", topic, err)
	}
	if len(f) != 0 {
		return fmt.Errorf("relay: a delivery %.40q came before the subscribe to %s was confirmed", f, topic)
	}
	return nil
}

func (c *conn) Publish(topic string, body []byte) error {
	if topic != c.topic || c.op == nil {
		op, err := opFor(opPublish, topic)
		if err != nil {
			return err
		}
		c.topic, c.op = topic, op
	}
	return writeFrame(c.w, c.op, body)
}

func (c *conn) Flush() error { return c.w.Flush() }

// Next returns the next delivery, skipping subscribe confirmations.
func (c *conn) Next() ([]byte, error) {
	for {
		f, err := readFrame(c.r, c.frame)
		if err != nil {
			return nil, err
		}
		c.frame = f
		if len(f) > 0 {
			return f, nil
		}
	}
}

func (c *conn) Close() error { return c.nc.Close() }
