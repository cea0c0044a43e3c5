// Package amps is the load generator's driver for AMPS brokers: the AMPS
// stream encoding over TCP, and the official JavaScript client's WebSocket
// encoding.
package amps

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/ampsbroker/ampsbroker/internal/loadgen"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// ioBufferSize is the size of each connection's read and write buffers.
const ioBufferSize = 64 << 10

// setupTimeout bounds the dial, logon and subscribe of each connection.
const setupTimeout = 10 * time.Second

// clientVersion is the client version the logon announces.
const clientVersion = "5.3.4.0:loadgen"

// Driver dials AMPS client connections, in the stream encoding or, when
// WS, the JavaScript client's WebSocket encoding. An AMPS broker has
// content filters and, for topics it declares so, SOW topics: the sow
// scenario needs loadgen.SOWTopicPattern declared, keyed on
// loadgen.SOWKeyField.
type Driver struct {
	Addr string // host:port
	WS   bool   // the JavaScript client's WebSocket encoding, not the stream
}

// Name is "amps" for the stream encoding and "amps-ws" for WebSocket.
func (d *Driver) Name() string {
	if d.WS {
		return "amps-ws"
	}
	return "amps"
}

// Features says that an AMPS broker filters content and keeps SOW topics.
func (d *Driver) Features() loadgen.Feature { return loadgen.ContentFilter | loadgen.SOWTopic }

// URL returns the target as an AMPS URI.
func (d *Driver) URL() string {
	if d.WS {
		return "ws://" + d.Addr + "/amps/json"
	}
	return "tcp://" + d.Addr + "/amps/json"
}

// ParseURL reads an AMPS URI, tcp://host:port/amps/json or
// ws://host:port/amps/json.
func ParseURL(s string) (*Driver, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("AMPS URI %q: %w", s, err)
	}
	if u.Scheme != "tcp" && u.Scheme != "ws" {
		return nil, fmt.Errorf("AMPS URI %q: scheme %q is not supported (want tcp://host:port/amps/json or ws://host:port/amps/json)", s, u.Scheme)
	}
	if u.Port() == "" {
		return nil, fmt.Errorf("AMPS URI %q has no port", s)
	}
	return &Driver{Addr: u.Host, WS: u.Scheme == "ws"}, nil
}

// codec is what the two encodings provide to conn.
type codec interface {
	// send queues one message of header and body; it may go out only at
	// the next flush.
	send(header, body []byte) error
	flush() error
	// next reads one message: its header and body, valid until the next
	// call. delivery says the header is a delivery's (recognised by how
	// the broker starts it) and was not decoded; otherwise h holds it.
	next(h *protocol.Header) (header, body []byte, delivery bool, err error)
	// setDeadline bounds the reads and writes of a command.
	setDeadline(t time.Time)
	close() error
}

// conn is one logged-on AMPS client connection in either encoding.
type conn struct {
	codec
	h      protocol.Header // scratch for headers that are not deliveries
	topic  string          // the topic pubHdr publishes to
	pubHdr []byte          // the header of a publish to topic
}

// Dial connects and logs on as client.
func (d *Driver) Dial(client string) (loadgen.Conn, error) {
	var cd codec
	var err error
	if d.WS {
		cd, err = dialWS(d.URL())
	} else {
		cd, err = dialTCP(d.Addr)
	}
	if err != nil {
		return nil, err
	}
	c := &conn{codec: cd}
	h := protocol.Header{Command: protocol.CmdLogon, CommandID: "0", ClientName: client,
		MessageType: "json", AckType: protocol.AckProcessed, Version: clientVersion}
	if err := c.command(&h); err != nil {
		c.close()
		return nil, fmt.Errorf("logon as %s at %s: %w", client, d.URL(), err)
	}
	return c, nil
}

// Subscribe subscribes with command and subscription id "s" (a load
// generator's connection subscribes once).
func (c *conn) Subscribe(topic, filter string) error {
	h := protocol.Header{Command: protocol.CmdSubscribe, CommandID: "s", SubID: "s",
		Topic: topic, Filter: filter, AckType: protocol.AckProcessed}
	if err := c.command(&h); err != nil {
		return fmt.Errorf("subscribe to %s with filter %q: %w", topic, filter, err)
	}
	return nil
}

func (c *conn) Publish(topic string, body []byte) error {
	if topic != c.topic || c.pubHdr == nil {
		c.topic = topic
		c.pubHdr = protocol.AppendHeader(nil, &protocol.Header{Command: protocol.CmdP, Topic: topic})
	}
	return c.send(c.pubHdr, body)
}

func (c *conn) Flush() error { return c.flush() }

func (c *conn) Close() error { return c.close() }

// command sends h, which asks for a processed ack, and waits for that ack;
// it is an error unless the ack says success.
func (c *conn) command(h *protocol.Header) error {
	c.setDeadline(time.Now().Add(setupTimeout))
	defer c.setDeadline(time.Time{})
	if err := c.send(protocol.AppendHeader(nil, h), nil); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}
	for {
		c.h = protocol.Header{}
		hdr, _, delivery, err := c.next(&c.h)
		if err != nil {
			return fmt.Errorf("waiting for the ack of %s %q: %w", h.Command, h.CommandID, err)
		}
		if !delivery && c.h.Command == protocol.CmdAck && c.h.CommandID == h.CommandID && c.h.AckType == protocol.AckProcessed {
			if c.h.Status != protocol.StatusSuccess {
				return fmt.Errorf("%s %q answered %s", h.Command, h.CommandID, hdr)
			}
			return nil
		}
	}
}

// errNotDelivery is wrapped by the error Next returns for a message that
// is not a delivery and not to be ignored.
var errNotDelivery = errors.New("unexpected message")

// Next skips heartbeats and successful acks.
func (c *conn) Next() ([]byte, error) {
	for {
		c.h = protocol.Header{}
		hdr, body, delivery, err := c.next(&c.h)
		if err != nil {
			return nil, err
		}
		if delivery {
			return body, nil
		}
		switch c.h.Command {
		case protocol.CmdP, protocol.CmdPublish:
			return body, nil
		case protocol.CmdHeartbeat:
		case protocol.CmdAck:
			if c.h.Status == protocol.StatusFailure {
				return nil, fmt.Errorf("%w: %s", errNotDelivery, hdr)
			}
		default:
			return nil, fmt.Errorf("%w: %s", errNotDelivery, hdr)
		}
	}
}

// deliveryPrefix starts the header of every delivery the broker sends.
var deliveryPrefix = []byte(`{"c":"p",`)

// tcpCodec is the AMPS stream encoding: each message a 4-byte big-endian
// length and then the header and body.
type tcpCodec struct {
	nc net.Conn
	w  *bufio.Writer
	r  *protocol.StreamReader
}

// dialTCP connects to addr in the stream encoding.
func dialTCP(addr string) (*tcpCodec, error) {
	nc, err := net.DialTimeout("tcp", addr, setupTimeout)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return &tcpCodec{
		nc: nc,
		w:  bufio.NewWriterSize(nc, ioBufferSize),
		r:  protocol.NewStreamReader(nc, 0), // it buffers its reads itself
	}, nil
}

func (c *tcpCodec) flush() error { return c.w.Flush() }

func (c *tcpCodec) close() error { return c.nc.Close() }

func (c *tcpCodec) setDeadline(t time.Time) { c.nc.SetDeadline(t) }

func (c *tcpCodec) send(header, body []byte) error {
	var pfx [4]byte
	n := len(header) + len(body)
	pfx[0], pfx[1], pfx[2], pfx[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	c.w.Write(pfx[:])
	c.w.Write(header)
	_, err := c.w.Write(body)
	return err
}

func (c *tcpCodec) next(h *protocol.Header) (header, body []byte, delivery bool, err error) {
	f, err := c.r.ReadFrame()
	if err != nil {
		return nil, nil, false, err
	}
	end, err := protocol.HeaderEnd(f)
	if err != nil {
		return nil, nil, false, fmt.Errorf("frame %.80q has no header: %w", f, err)
	}
	if bytes.HasPrefix(f, deliveryPrefix) {
		return f[:end], f[end:], true, nil
	}
	if err := protocol.DecodeHeader(f[:end], h); err != nil {
		return nil, nil, false, fmt.Errorf("bad header %q: %w", f[:end], err)
	}
	return f[:end], f[end:], false, nil
}
