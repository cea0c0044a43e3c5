// Package natsdriver drives a NATS server for the load generator through
// the official Go client, nats.go: a subscriber is a connection with one
// synchronous subscription to the topic as subject, a publisher a
// connection that publishes to it.
package natsdriver

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ampsbroker/ampsbroker/internal/loadgen"
)

// setupTimeout bounds a connect and a subscribe's round trip.
const setupTimeout = 10 * time.Second

// nextWait is how long one wait of Next for a message lasts before it
// waits again; only Close ends Next.
const nextWait = time.Hour

// Driver dials NATS connections. NATS has neither AMPS content filters nor
// SOW topics.
type Driver struct {
	URL string // nats://host:port
}

func (d *Driver) Name() string { return "nats" }

func (d *Driver) Features() loadgen.Feature { return 0 }

// Dial connects as client, without reconnecting: a run that loses its
// connection must fail, not resume.
func (d *Driver) Dial(client string) (loadgen.Conn, error) {
	nc, err := nats.Connect(d.URL, nats.Name(client), nats.NoReconnect(), nats.Timeout(setupTimeout))
	if err != nil {
		return nil, fmt.Errorf("nats: connect to %s as %s: %w", d.URL, client, err)
	}
	return &conn{nc: nc}, nil
}

// conn is one NATS connection.
type conn struct {
	nc     *nats.Conn
	sub    *nats.Subscription
	closed atomic.Bool
}

// Subscribe subscribes to topic as a subject, lifts the client's limits on
// messages waiting to be read (flow control bounds them), and makes a
// round trip so that the server has the subscription before it returns.
func (c *conn) Subscribe(topic, filter string) error {
	if filter != "" {
		return fmt.Errorf("nats: subscribe to %s with filter %q: %w", topic, filter, loadgen.ErrNotApplicable)
	}
	sub, err := c.nc.SubscribeSync(topic)
	if err != nil {
		return fmt.Errorf("nats: subscribe to %s: %w", topic, err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return fmt.Errorf("nats: pending limits of %s: %w", topic, err)
	}
	if err := c.nc.FlushTimeout(setupTimeout); err != nil {
		return fmt.Errorf("nats: subscribe to %s: %w", topic, err)
	}
	c.sub = sub
	return nil
}

// Publish hands the message to nats.go, which copies it into its buffer
// and wakes its own flusher goroutine.
func (c *conn) Publish(topic string, body []byte) error {
	return c.closedErr(c.nc.Publish(topic, body))
}

// Flush does nothing: nats.go's flusher goroutine sends what Publish
// buffered as soon as it runs (its Flush is a round trip to the server,
// which the other drivers do not make).
func (c *conn) Flush() error { return nil }

func (c *conn) Next() ([]byte, error) {
	if c.sub == nil {
		return nil, errors.New("nats: Next without a subscription")
	}
	for {
		m, err := c.sub.NextMsg(nextWait)
		if errors.Is(err, nats.ErrTimeout) {
			continue
		}
		if err != nil {
			return nil, c.closedErr(err)
		}
		return m.Data, nil
	}
}

func (c *conn) Close() error {
	c.closed.Store(true)
	c.nc.Close()
	return nil
}

// closedErr makes an error after Close wrap net.ErrClosed, so that the
// runner knows it ended the connection.
func (c *conn) closedErr(err error) error {
	if err != nil && c.closed.Load() {
		return fmt.Errorf("%w: %w", net.ErrClosed, err)
	}
	return err
}
