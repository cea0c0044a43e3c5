package interop

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// A minimal AMPS client over the stream encoding (wire spec §2), written for
// these tests only: 4-byte big-endian length, then a JSON header, then the
// body. It is deliberately independent of the broker's protocol package so
// that a shared bug cannot hide on both sides.

// tcpIOTimeout bounds every read and write of the test client, so a broker
// that never answers fails the test instead of hanging it.
const tcpIOTimeout = 20 * time.Second

// maxTestFrame is the largest frame the test client accepts.
const maxTestFrame = 64 << 20

// tcpHeader is the subset of header keys the test client sends or reads.
type tcpHeader struct {
	Command    string `json:"c"`
	CommandID  string `json:"cid,omitempty"`
	AckType    string `json:"a,omitempty"`
	Topic      string `json:"t,omitempty"`
	SubID      string `json:"sub_id,omitempty"`
	SubIDs     string `json:"sids,omitempty"`
	Filter     string `json:"filter,omitempty"`
	Options    string `json:"opts,omitempty"`
	ClientName string `json:"client_name,omitempty"`
	UserID     string `json:"user_id,omitempty"`
	Version    string `json:"version,omitempty"`
	MsgType    string `json:"mt,omitempty"`
	Status     string `json:"status,omitempty"`
	Reason     string `json:"reason,omitempty"`
	Length     *int64 `json:"l,omitempty"`
}

// tcpClient is one stream connection, used from one goroutine.
type tcpClient struct {
	conn  net.Conn
	r     *bufio.Reader
	next  int
	name  string
	queue []tcpMessage // deliveries read while waiting for an ack
}

// tcpMessage is one message read from the broker.
type tcpMessage struct {
	Header tcpHeader
	Raw    []byte // the header's JSON text
	Body   []byte
}

// dialTCP connects to addr. When preflightPath is not empty it first sends
// the HTTP Upgrade: tcp preflight of wire spec §4.1 with that request target
// and requires a 101 answer (which may come through a proxy, so extra
// headers are allowed).
func dialTCP(addr, preflightPath string) (*tcpClient, error) {
	conn, err := net.DialTimeout("tcp", addr, tcpIOTimeout)
	if err != nil {
		return nil, err
	}
	c := &tcpClient{conn: conn, r: bufio.NewReader(conn)}
	if preflightPath != "" {
		if err := c.preflight(addr, preflightPath); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return c, nil
}

func (c *tcpClient) preflight(host, path string) error {
	c.conn.SetDeadline(time.Now().Add(tcpIOTimeout))
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: upgrade\r\nUpgrade: tcp\r\n\r\n"
	if _, err := io.WriteString(c.conn, req); err != nil {
		return fmt.Errorf("writing preflight: %w", err)
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return fmt.Errorf("reading preflight response to GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("preflight GET %s answered %s: %q", path, resp.Status, body)
	}
	if got := resp.Header.Get("Upgrade"); got != "tcp" {
		return fmt.Errorf("preflight GET %s: 101 with Upgrade %q, want \"tcp\"", path, got)
	}
	return nil
}

// Close closes the connection.
func (c *tcpClient) Close() error { return c.conn.Close() }

func (c *tcpClient) cid() string {
	c.next++
	return strconv.Itoa(c.next)
}

// send writes one frame.
func (c *tcpClient) send(h tcpHeader, body []byte) error {
	hdr, err := json.Marshal(h)
	if err != nil {
		return err
	}
	frame := make([]byte, 4, 4+len(hdr)+len(body))
	binary.BigEndian.PutUint32(frame, uint32(len(hdr)+len(body)))
	frame = append(append(frame, hdr...), body...)
	c.conn.SetWriteDeadline(time.Now().Add(tcpIOTimeout))
	_, err = c.conn.Write(frame)
	return err
}

// read returns the next frame, split into header and body by decoding the
// leading JSON object (wire spec §2.1: the body starts right after the
// header's closing brace).
func (c *tcpClient) read() (tcpMessage, error) {
	c.conn.SetReadDeadline(time.Now().Add(tcpIOTimeout))
	var prefix [4]byte
	if _, err := io.ReadFull(c.r, prefix[:]); err != nil {
		return tcpMessage{}, fmt.Errorf("reading frame length: %w", err)
	}
	n := binary.BigEndian.Uint32(prefix[:])
	if n > maxTestFrame {
		return tcpMessage{}, fmt.Errorf("frame length %d exceeds %d", n, maxTestFrame)
	}
	frame := make([]byte, n)
	if _, err := io.ReadFull(c.r, frame); err != nil {
		return tcpMessage{}, fmt.Errorf("reading %d-byte frame: %w", n, err)
	}
	dec := json.NewDecoder(bytes.NewReader(frame))
	var m tcpMessage
	if err := dec.Decode(&m.Header); err != nil {
		return tcpMessage{}, fmt.Errorf("decoding header of frame %q: %w", frame, err)
	}
	off := dec.InputOffset()
	m.Raw, m.Body = frame[:off], frame[off:]
	if m.Header.Length != nil && *m.Header.Length != int64(len(m.Body)) {
		return tcpMessage{}, fmt.Errorf("frame %q: header l=%d but body has %d bytes", m.Raw, *m.Header.Length, len(m.Body))
	}
	return m, nil
}

// awaitAck reads until the ack of type ackType for cid arrives and returns
// it. Deliveries read meanwhile are kept for nextDelivery; heartbeats are
// dropped.
func (c *tcpClient) awaitAck(cid, ackType string) (tcpMessage, error) {
	for {
		m, err := c.read()
		if err != nil {
			return m, fmt.Errorf("waiting for %s ack of cid %s: %w", ackType, cid, err)
		}
		switch m.Header.Command {
		case "ack":
			if m.Header.CommandID == cid && m.Header.AckType == ackType {
				return m, nil
			}
		case "p", "publish":
			c.queue = append(c.queue, m)
		}
	}
}

// logon logs on with message type json and requires a success ack.
func (c *tcpClient) logon(name string) error {
	c.name = name
	cid := c.cid()
	err := c.send(tcpHeader{Command: "logon", CommandID: cid, AckType: "processed", ClientName: name,
		UserID: "interop", Version: "0.0.1:go-interop", MsgType: "json"}, nil)
	if err != nil {
		return err
	}
	ack, err := c.awaitAck(cid, "processed")
	if err != nil {
		return err
	}
	if ack.Header.Status != "success" {
		return fmt.Errorf("logon as %s: ack %s", name, ack.Raw)
	}
	return nil
}

// subscribe subscribes to topic and returns the sub id after a success ack.
func (c *tcpClient) subscribe(topic string) (string, error) {
	cid := c.cid()
	err := c.send(tcpHeader{Command: "subscribe", CommandID: cid, SubID: cid, Topic: topic, AckType: "processed"}, nil)
	if err != nil {
		return "", err
	}
	ack, err := c.awaitAck(cid, "processed")
	if err != nil {
		return "", err
	}
	if ack.Header.Status != "success" {
		return "", fmt.Errorf("subscribe %q: ack %s", topic, ack.Raw)
	}
	return cid, nil
}

// publish publishes body to topic without asking for an ack, as the TCP
// clients do (wire spec §7.3).
func (c *tcpClient) publish(topic string, body []byte) error {
	return c.send(tcpHeader{Command: "p", CommandID: c.cid(), Topic: topic}, body)
}

// flush waits until the broker has processed everything sent before it
// (wire spec §7.9).
func (c *tcpClient) flush() error {
	cid := c.cid()
	if err := c.send(tcpHeader{Command: "flush", CommandID: cid, AckType: "processed"}, nil); err != nil {
		return err
	}
	ack, err := c.awaitAck(cid, "processed")
	if err != nil {
		return err
	}
	if ack.Header.Status != "success" {
		return fmt.Errorf("flush: ack %s", ack.Raw)
	}
	return nil
}

// nextDelivery returns the next "p" message.
func (c *tcpClient) nextDelivery() (tcpMessage, error) {
	if len(c.queue) > 0 {
		m := c.queue[0]
		c.queue = c.queue[1:]
		return m, nil
	}
	for {
		m, err := c.read()
		if err != nil {
			return m, fmt.Errorf("waiting for a delivery: %w", err)
		}
		if m.Header.Command == "p" || m.Header.Command == "publish" {
			return m, nil
		}
	}
}
