package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/ampsbroker/ampsbroker/protocol"
)

// ioBufferSize is the size of each connection's read and write buffers.
const ioBufferSize = 64 << 10

// setupTimeout bounds the dial, logon and subscribe of each connection.
const setupTimeout = 10 * time.Second

// conn is one logged-on client connection, in whichever encoding: the
// scenario code sees only this.
type conn interface {
	// command sends h, which asks for a processed ack, and waits for that
	// ack; it is an error unless the ack says success.
	command(h *protocol.Header) error
	// send queues one message of header and body; it may go out only at
	// the next flush.
	send(header, body []byte) error
	// flush sends what send queued.
	flush() error
	// nextBody reads until a delivery arrives and returns its body, valid
	// until the next call. Heartbeats and successful acks are skipped.
	// After close it returns an error wrapping net.ErrClosed.
	nextBody() ([]byte, error)
	// close closes the connection, ending a nextBody in progress.
	close() error
}

// tcpConn is one client connection speaking the AMPS stream encoding.
type tcpConn struct {
	nc net.Conn
	w  *bufio.Writer
	r  *protocol.StreamReader
	h  protocol.Header // scratch for decoding headers that are not deliveries
}

// target is where and how to connect.
type target struct {
	addr string // host:port
	ws   bool   // the JavaScript client's WebSocket encoding, not the stream
}

// url returns the target as an AMPS URI.
func (t target) url() string {
	if t.ws {
		return "ws://" + t.addr + "/amps/json"
	}
	return "tcp://" + t.addr + "/amps/json"
}

// parseURL reads an AMPS URI, tcp://host:port/amps/json or
// ws://host:port/amps/json.
func parseURL(s string) (target, error) {
	u, err := url.Parse(s)
	if err != nil {
		return target{}, fmt.Errorf("-url %q: %w", s, err)
	}
	if u.Scheme != "tcp" && u.Scheme != "ws" {
		return target{}, fmt.Errorf("-url %q: scheme %q is not supported (want tcp://host:port/amps/json or ws://host:port/amps/json)", s, u.Scheme)
	}
	if u.Port() == "" {
		return target{}, fmt.Errorf("-url %q has no port", s)
	}
	return target{addr: u.Host, ws: u.Scheme == "ws"}, nil
}

// dial connects to t and logs on as name.
func dial(t target, name string) (conn, error) {
	var c conn
	var err error
	if t.ws {
		c, err = dialWS(t.url())
	} else {
		c, err = dialTCP(t.addr)
	}
	if err != nil {
		return nil, err
	}
	h := protocol.Header{Command: protocol.CmdLogon, CommandID: "0", ClientName: name,
		MessageType: "json", AckType: protocol.AckProcessed, Version: "5.3.4.0:ampsbench"}
	if err := c.command(&h); err != nil {
		c.close()
		return nil, fmt.Errorf("logon as %s at %s: %w", name, t.url(), err)
	}
	return c, nil
}

// dialTCP connects to addr in the stream encoding.
func dialTCP(addr string) (*tcpConn, error) {
	nc, err := net.DialTimeout("tcp", addr, setupTimeout)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return &tcpConn{
		nc: nc,
		w:  bufio.NewWriterSize(nc, ioBufferSize),
		r:  protocol.NewStreamReader(bufio.NewReaderSize(nc, ioBufferSize), 0),
	}, nil
}

func (c *tcpConn) flush() error { return c.w.Flush() }

func (c *tcpConn) close() error { return c.nc.Close() }

func (c *tcpConn) command(h *protocol.Header) error {
	c.nc.SetDeadline(time.Now().Add(setupTimeout))
	defer c.nc.SetDeadline(time.Time{})
	if err := c.send(protocol.AppendHeader(nil, h), nil); err != nil {
		return err
	}
	if err := c.w.Flush(); err != nil {
		return err
	}
	for {
		f, err := c.r.ReadFrame()
		if err != nil {
			return fmt.Errorf("waiting for the ack of %s %q: %w", h.Command, h.CommandID, err)
		}
		end, err := protocol.HeaderEnd(f)
		if err != nil {
			return fmt.Errorf("frame %.80q has no header: %w", f, err)
		}
		c.h = protocol.Header{}
		if err := protocol.DecodeHeader(f[:end], &c.h); err != nil {
			return fmt.Errorf("bad header %q: %w", f[:end], err)
		}
		if c.h.Command == protocol.CmdAck && c.h.CommandID == h.CommandID && c.h.AckType == protocol.AckProcessed {
			if c.h.Status != protocol.StatusSuccess {
				return fmt.Errorf("%s %q answered %s", h.Command, h.CommandID, f[:end])
			}
			return nil
		}
	}
}

// subscribe subscribes c to topic with id as command and subscription id.
func subscribe(c conn, id, topic string) error {
	h := protocol.Header{Command: protocol.CmdSubscribe, CommandID: id, SubID: id, Topic: topic, AckType: protocol.AckProcessed}
	if err := c.command(&h); err != nil {
		return fmt.Errorf("subscribe %s to %s: %w", id, topic, err)
	}
	return nil
}

// send writes one frame of header and body to the write buffer.
func (c *tcpConn) send(header, body []byte) error {
	var pfx [4]byte
	n := len(header) + len(body)
	pfx[0], pfx[1], pfx[2], pfx[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	c.w.Write(pfx[:])
	c.w.Write(header)
	_, err := c.w.Write(body)
	return err
}

// deliveryPrefix starts the header of every delivery the broker sends.
var deliveryPrefix = []byte(`{"c":"p",`)

// errNotDelivery is wrapped by the error nextBody returns for a frame that is not a delivery and
// not to be ignored.
var errNotDelivery = errors.New("unexpected message")

func (c *tcpConn) nextBody() ([]byte, error) {
	for {
		f, err := c.r.ReadFrame()
		if err != nil {
			return nil, err
		}
		end, err := protocol.HeaderEnd(f)
		if err != nil {
			return nil, fmt.Errorf("frame %.80q has no header: %w", f, err)
		}
		if bytes.HasPrefix(f, deliveryPrefix) {
			return f[end:], nil
		}
		c.h = protocol.Header{}
		if err := protocol.DecodeHeader(f[:end], &c.h); err != nil {
			return nil, fmt.Errorf("bad header %q: %w", f[:end], err)
		}
		switch c.h.Command {
		case protocol.CmdP, protocol.CmdPublish:
			return f[end:], nil
		case protocol.CmdHeartbeat:
		case protocol.CmdAck:
			if c.h.Status == protocol.StatusFailure {
				return nil, fmt.Errorf("%w: %s", errNotDelivery, f[:end])
			}
		default:
			return nil, fmt.Errorf("%w: %s", errNotDelivery, f[:end])
		}
	}
}

// itoa is strconv.Itoa, short.
func itoa(i int) string { return strconv.Itoa(i) }
