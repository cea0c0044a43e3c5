package stresstest

// A small AMPS stream client written from the wire spec (§2.1 framing, §4
// preflight, §7 commands, §8 deliveries), independent of package protocol.
// Every method bounds its socket operations with a deadline, and never
// later than the client's hard limit, so a broken broker fails a test
// instead of hanging it. Methods return errors instead of calling t.Fatal,
// because most of them run on goroutines other than the test's.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"
)

// opTimeout bounds one read or write of a client that expects an answer.
// It is a hang guard, not a performance target: the broker answers in
// microseconds, but -race on two busy cores can stretch that a lot.
const opTimeout = 10 * time.Second

// frame is one message received from the broker.
type frame struct {
	raw  string         // the header as sent
	h    map[string]any // the decoded header
	body []byte
}

// str returns a header field as text ("" when absent).
func (f frame) str(key string) string {
	switch v := f.h[key].(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return fmt.Sprint(v)
	}
}

func (f frame) String() string { return f.raw + string(f.body) }

// client is one stream connection to the broker.
type client struct {
	conn  net.Conn
	br    *bufio.Reader
	limit time.Time // no operation waits past it

	wmu sync.Mutex // serialises writes (a reader may answer heartbeats)
}

// dialClient connects to addr over TCP. limit is the latest time any of the
// client's operations may wait until.
func dialClient(addr string, limit time.Time) (*client, error) {
	d := net.Dialer{Deadline: minTime(time.Now().Add(opTimeout), limit)}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return &client{conn: c, br: bufio.NewReaderSize(c, 32<<10), limit: limit}, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// deadline is now+d, capped by the client's limit.
func (c *client) deadline(d time.Duration) time.Time {
	return minTime(time.Now().Add(d), c.limit)
}

// Close closes the connection.
func (c *client) Close() error { return c.conn.Close() }

// abort closes the connection with a reset instead of a FIN (SO_LINGER 0),
// as a crashing client or a dropped network path would look.
func (c *client) abort() {
	if tc, ok := c.conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.conn.Close()
}

// writeRaw writes b as is.
func (c *client) writeRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.SetWriteDeadline(c.deadline(opTimeout))
	_, err := c.conn.Write(b)
	return err
}

// appendFrame appends one stream frame (wire spec §2.1): a big-endian
// uint32 length of header plus body, the header, the body.
func appendFrame(dst []byte, header string, body []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(header)+len(body)))
	dst = append(dst, header...)
	return append(dst, body...)
}

// lengthPrefix returns a bare 4-byte length prefix.
func lengthPrefix(n uint32) []byte {
	return binary.BigEndian.AppendUint32(nil, n)
}

// sendHeader sends a frame whose header is given as JSON text.
func (c *client) sendHeader(header string, body []byte) error {
	return c.writeRaw(appendFrame(nil, header, body))
}

// send sends a frame with header h encoded as JSON.
func (c *client) send(h map[string]any, body []byte) error {
	hb, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return c.sendHeader(string(hb), body)
}

// headerEnd returns the length of the JSON object that starts b: the
// header ends at its matching brace, found by scanning strings and escapes
// (wire spec §2.1), because the body may start with '{' too.
func headerEnd(b []byte) (int, error) {
	if len(b) == 0 || b[0] != '{' {
		return 0, fmt.Errorf("frame does not start with a JSON object: %.40q", b)
	}
	depth, inString, escaped := 0, false, false
	for i, ch := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case ch == '\\':
				escaped = true
			case ch == '"':
				inString = false
			}
			continue
		}
		switch ch {
		case '"':
			inString = true
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1, nil
			}
		}
	}
	return 0, fmt.Errorf("header never ends in a frame of %d bytes: %.40q", len(b), b)
}

// readFrameWithin reads the next frame, waiting at most d.
func (c *client) readFrameWithin(d time.Duration) (frame, error) {
	c.conn.SetReadDeadline(c.deadline(d))
	var pfx [4]byte
	if _, err := io.ReadFull(c.br, pfx[:]); err != nil {
		return frame{}, err
	}
	n := binary.BigEndian.Uint32(pfx[:])
	if n > 64<<20 {
		return frame{}, fmt.Errorf("broker sent a frame length of %d", n)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(c.br, data); err != nil {
		return frame{}, err
	}
	end, err := headerEnd(data)
	if err != nil {
		return frame{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(data[:end]))
	dec.UseNumber()
	f := frame{raw: string(data[:end]), body: data[end:]}
	if err := dec.Decode(&f.h); err != nil {
		return frame{}, fmt.Errorf("broker sent a bad header %q: %w", data[:end], err)
	}
	return f, nil
}

// readFrame reads the next frame, waiting at most opTimeout.
func (c *client) readFrame() (frame, error) { return c.readFrameWithin(opTimeout) }

// awaitAck reads until the ack of command id cid of type ackType arrives,
// skipping heartbeats. Any other frame is an error: callers use it only
// where no delivery can arrive.
func (c *client) awaitAck(cid, ackType string) (frame, error) {
	for {
		f, err := c.readFrame()
		if err != nil {
			return frame{}, fmt.Errorf("waiting for the %s ack of %q: %w", ackType, cid, err)
		}
		if f.str("c") == "heartbeat" {
			continue
		}
		if f.str("c") != "ack" || f.str("cid") != cid || f.str("a") != ackType {
			return frame{}, fmt.Errorf("waiting for the %s ack of %q, got %s", ackType, cid, f)
		}
		return f, nil
	}
}

// preflight sends an HTTP upgrade request (wire spec §4.1) and reads the
// answer's head; it returns the status line.
func (c *client) preflight(path string) (string, error) {
	req := "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: upgrade\r\nUpgrade: tcp\r\n\r\n"
	if err := c.writeRaw([]byte(req)); err != nil {
		return "", err
	}
	return c.readHTTPHead()
}

// readHTTPHead reads an HTTP response head and returns its status line.
func (c *client) readHTTPHead() (string, error) {
	c.conn.SetReadDeadline(c.deadline(opTimeout))
	status := ""
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			return status, fmt.Errorf("reading the HTTP answer (status %q so far): %w", status, err)
		}
		line = strings.TrimRight(line, "\r\n")
		if status == "" {
			status = line
			continue
		}
		if line == "" {
			return status, nil
		}
	}
}

// logon sends a logon asking for a processed ack (wire spec §7.1) and
// returns the ack, whatever its status.
func (c *client) logon(name, user, password string) (frame, error) {
	err := c.send(map[string]any{"c": "logon", "cid": "logon", "a": "processed", "client_name": name,
		"user_id": user, "pw": password, "mt": "json", "version": "5.3.4.0:stresstest"}, nil)
	if err != nil {
		return frame{}, err
	}
	return c.awaitAck("logon", "processed")
}

// logonOK logs on and requires success.
func (c *client) logonOK(name string) error {
	ack, err := c.logon(name, name, "")
	if err != nil {
		return fmt.Errorf("logon %s: %w", name, err)
	}
	if ack.str("status") != "success" {
		return fmt.Errorf("logon %s: %s", name, ack)
	}
	return nil
}

// subscribe subscribes with id as command and subscription id and waits
// for a successful processed ack.
func (c *client) subscribe(id, topic string) error {
	if err := c.send(map[string]any{"c": "subscribe", "cid": id, "sub_id": id, "t": topic, "a": "processed"}, nil); err != nil {
		return err
	}
	ack, err := c.awaitAck(id, "processed")
	if err != nil {
		return fmt.Errorf("subscribe %s to %q: %w", id, topic, err)
	}
	if ack.str("status") != "success" {
		return fmt.Errorf("subscribe %s to %q: %s", id, topic, ack)
	}
	return nil
}

// startHeartbeat asks the broker for heartbeats every interval seconds
// (wire spec §7.2); the caller answers them with beat.
func (c *client) startHeartbeat(seconds int) error {
	return c.send(map[string]any{"c": "heartbeat", "cid": "hb", "o": fmt.Sprintf("start,%d", seconds), "a": "received"}, nil)
}

// beat answers a server heartbeat (wire spec §7.2: no ack requested).
func (c *client) beat() error {
	return c.sendHeader(`{"c":"heartbeat","o":"beat"}`, nil)
}

// publish sends a publish without acks.
func (c *client) publish(topic string, body []byte) error {
	return c.sendHeader(`{"c":"p","t":`+jsonString(topic)+`}`, body)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// closeKind names how a connection ended, for outcome tables.
func closeKind(err error) string {
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return "closed (EOF)"
	case errors.Is(err, syscall.ECONNRESET):
		return "closed (reset)"
	case errors.Is(err, syscall.EPIPE):
		return "closed (broken pipe)"
	}
	return ""
}

// expectClosed discards whatever the broker still sends until it closes
// the connection, waiting at most within. It returns how the connection
// ended, or an error when it did not end in time.
func (c *client) expectClosed(within time.Duration) (string, error) {
	c.conn.SetReadDeadline(c.deadline(within))
	n, err := io.Copy(io.Discard, c.br)
	if kind := closeKind(err); kind != "" {
		return kind, nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "", fmt.Errorf("broker did not close the connection within %v (%d bytes read)", within, n)
	}
	return "", fmt.Errorf("connection failed in an unexpected way after %d bytes: %w", n, err)
}
