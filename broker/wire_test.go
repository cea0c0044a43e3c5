package broker_test

// A minimal AMPS stream client written from the wire spec alone (§2, §7,
// §14.2): 4-byte big-endian length, JSON header, body. It deliberately does
// not use package protocol, so the broker's codec is checked against an
// independent reading of the spec.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// ioTimeout bounds every read of a test client so a broken broker fails
// the test instead of hanging it.
const ioTimeout = 10 * time.Second

type wireClient struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
}

// frame is one received message.
type frame struct {
	raw    string         // the header text as sent
	h      map[string]any // the decoded header
	body   []byte
	length int
}

func (f frame) str(key string) string {
	switch v := f.h[key].(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

func dialWire(t testing.TB, network, addr string) *wireClient {
	t.Helper()
	c, err := net.DialTimeout(network, addr, ioTimeout)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return wrapWire(t, c)
}

// wrapWire makes a wireClient of an open connection.
func wrapWire(t testing.TB, c net.Conn) *wireClient {
	return &wireClient{t: t, conn: c, br: bufio.NewReaderSize(c, 64<<10)}
}

// sendRaw writes one frame: length prefix, header, body.
func (c *wireClient) sendRaw(header string, body []byte) {
	c.t.Helper()
	buf := make([]byte, 4, 4+len(header)+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(header)+len(body)))
	buf = append(buf, header...)
	buf = append(buf, body...)
	c.conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := c.conn.Write(buf); err != nil {
		c.t.Fatalf("write %s: %v", header, err)
	}
}

func (c *wireClient) send(header map[string]any, body []byte) {
	c.t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(string(h), body)
}

// read returns the next frame or an error (io.EOF when the broker closed).
func (c *wireClient) read() (frame, error) {
	c.conn.SetReadDeadline(time.Now().Add(ioTimeout))
	var lb [4]byte
	if _, err := io.ReadFull(c.br, lb[:]); err != nil {
		return frame{}, err
	}
	n := binary.BigEndian.Uint32(lb[:])
	data := make([]byte, n)
	if _, err := io.ReadFull(c.br, data); err != nil {
		return frame{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var h map[string]any
	if err := dec.Decode(&h); err != nil {
		return frame{}, fmt.Errorf("bad header in %q: %v", data, err)
	}
	end := int(dec.InputOffset())
	return frame{raw: string(data[:end]), h: h, body: data[end:], length: int(n)}, nil
}

func (c *wireClient) recv() frame {
	c.t.Helper()
	f, err := c.read()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

// recvSkipping returns the next frame that is not a heartbeat.
func (c *wireClient) recvSkipping() frame {
	c.t.Helper()
	for {
		f := c.recv()
		if f.str("c") != "heartbeat" {
			return f
		}
	}
}

// expectClosed reads until the broker closes the connection, failing on
// anything but the frames it allows first.
func (c *wireClient) expectClosed() {
	c.t.Helper()
	for i := 0; i < 100000; i++ {
		_, err := c.read()
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatalf("broker did not close the connection within %v", ioTimeout)
		}
		return
	}
	c.t.Fatal("broker kept sending instead of closing")
}

func (c *wireClient) logon(name string) frame {
	c.t.Helper()
	c.send(map[string]any{"c": "logon", "cid": "0", "client_name": name, "user_id": "u", "pw": "p",
		"mt": "json", "a": "processed", "version": "5.3.4.0:test"}, nil)
	f := c.recv()
	if f.str("c") != "ack" || f.str("status") != "success" {
		c.t.Fatalf("logon %s: %s", name, f.raw)
	}
	return f
}

func (c *wireClient) subscribe(id, topic string) {
	c.t.Helper()
	c.send(map[string]any{"c": "subscribe", "cid": id, "sub_id": id, "t": topic, "a": "processed"}, nil)
	f := c.recvSkipping()
	if f.str("c") != "ack" || f.str("status") != "success" || f.str("cid") != id {
		c.t.Fatalf("subscribe %s to %q: %s", id, topic, f.raw)
	}
}

func (c *wireClient) publish(topic string, body []byte) {
	c.t.Helper()
	c.send(map[string]any{"c": "p", "t": topic}, body)
}

// flush sends a flush and waits for its ack: everything the broker did for
// this client's earlier commands has been queued when it arrives.
func (c *wireClient) flush(cid string) {
	c.t.Helper()
	c.send(map[string]any{"c": "flush", "cid": cid, "a": "processed"}, nil)
	f := c.recvSkipping()
	if f.str("c") != "ack" || f.str("cid") != cid || f.str("status") != "success" {
		c.t.Fatalf("flush: %s", f.raw)
	}
}
