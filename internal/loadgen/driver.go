// Package loadgen is the engine of the project's load tools: scenarios of
// publishers and subscribers sharing a topic, end-to-end flow control, a
// checker of every delivery (loss, duplication, order), latency
// percentiles, idle connections, the server's CPU time and resident memory
// from /proc, and reporting as JSON lines and tables.
//
// It drives a broker through a [Driver], which dials [Conn]s: a Conn can
// subscribe to a topic, queue a publish, flush, and return the next
// delivered body. The drivers for AMPS (stream and the JavaScript client's
// WebSocket encoding) are in the amps subpackage; cmd/ampsbench runs them,
// and the comparison module under bench/ adds drivers for other brokers so
// that they run exactly the same scenarios.
package loadgen

import "errors"

// Feature is a capability a scenario may need beyond topic
// publish/subscribe; a Driver says which it has.
type Feature uint

const (
	// ContentFilter: Subscribe accepts an AMPS content filter.
	ContentFilter Feature = 1 << iota
	// SOWTopic: a topic named by SOWTopicPattern is a State-of-the-World
	// topic keyed on SOWKeyField.
	SOWTopic
)

// Driver dials client connections to one broker.
type Driver interface {
	// Name names the broker and encoding, e.g. "amps" or "nats".
	Name() string
	// Features is the set of capabilities beyond publish/subscribe.
	Features() Feature
	// Dial opens a connection for the client of this name, ready to
	// subscribe and publish (logged on where the protocol has a logon).
	Dial(client string) (Conn, error)
}

// Conn is one client connection. Subscribe, Publish, Flush and Close may
// be called from one goroutine while another calls Next.
type Conn interface {
	// Subscribe subscribes to topic and returns once the broker has set
	// the subscription up, so that a publish made afterwards reaches it.
	// filter is an AMPS content filter, "" for every message; a driver
	// without ContentFilter is never given one.
	Subscribe(topic, filter string) error
	// Publish queues a message of body to topic; it may go out only at the
	// next Flush. body may be reused once Publish returns.
	Publish(topic string, body []byte) error
	// Flush sends what Publish queued.
	Flush() error
	// Next waits for the next delivery and returns its body, valid until
	// the next call. After Close it returns an error wrapping
	// net.ErrClosed.
	Next() ([]byte, error)
	// Close closes the connection, ending a Next in progress.
	Close() error
}

// ErrNotApplicable is returned by Run for a scenario that needs a Feature
// the driver does not have.
var ErrNotApplicable = errors.New("scenario not applicable to this broker")
