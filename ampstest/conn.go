package ampstest

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/ampsbroker/ampsbroker/protocol"
)

// DefaultTimeout bounds each dial, read and write of a test client unless
// DialOptions.Timeout says otherwise. It is a hang guard, not a performance
// target: a broker answers in microseconds, but -race on a busy machine
// stretches that a lot.
const DefaultTimeout = 10 * time.Second

// maxFrame is the largest frame a test client accepts from the broker.
const maxFrame = 64 << 20

// DialOptions configures DialConn and Dial. A nil *DialOptions, like the zero
// value, means: DefaultTimeout per operation, no overall deadline, the
// system's roots for TLS, the "text" selector on WebSocket.
type DialOptions struct {
	// Timeout bounds each dial, read and write. Default DefaultTimeout.
	Timeout time.Duration
	// Deadline, when set, is the latest time any operation may wait until,
	// whatever Timeout says.
	Deadline time.Time
	// TLS configures tcps and wss connections.
	TLS *tls.Config
	// Header adds HTTP headers to the preflight request or the WebSocket
	// upgrade request.
	Header http.Header
	// Binary makes a WebSocket client send the "binary" selector instead
	// of "text", as the JavaScript client does for message types other
	// than json: the broker then sends payloads as binary frames.
	Binary bool
}

// Message is one AMPS message received from the broker.
type Message struct {
	// Header is RawHeader decoded by protocol.DecodeHeader.
	Header protocol.Header
	// RawHeader is the header's JSON text as the broker sent it.
	RawHeader string
	// Body is the payload after the header (for a sow batch on WebSocket:
	// the records in the stream form, record header then data).
	Body []byte
}

// Field returns the header key key as text, decoded from RawHeader by
// encoding/json (numbers in their JSON spelling, "" when absent). It reads
// keys protocol.Header has no field for, and checks the broker's encoder
// against an independent decoder.
func (m Message) Field(key string) string {
	dec := json.NewDecoder(strings.NewReader(m.RawHeader))
	dec.UseNumber()
	var h map[string]any
	if dec.Decode(&h) != nil {
		return ""
	}
	switch v := h[key].(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return fmt.Sprint(v)
	}
}

// String returns the header text followed by the body.
func (m Message) String() string { return m.RawHeader + string(m.Body) }

// Record is one record of a "sow" batch: its record header ("k", "x",
// "ts", "l") and its data.
type Record struct {
	Header protocol.Header
	Data   []byte
}

// Records splits the body of a "sow" batch (a stream connection's, or a
// WebSocket one's, which Read delivers in the same form) into its records:
// each a record header followed by exactly "l" bytes of data. It is an
// error when a record header does not decode, its data runs past the body,
// or the count differs from the batch's "bs".
func (m Message) Records() ([]Record, error) {
	var out []Record
	for b := m.Body; len(b) > 0; {
		end, err := protocol.HeaderEnd(b)
		if err != nil {
			return out, fmt.Errorf("ampstest: record header in %s: %w", m, err)
		}
		var r Record
		if err := protocol.DecodeHeader(b[:end], &r.Header); err != nil {
			return out, fmt.Errorf("ampstest: record header %q: %w", b[:end], err)
		}
		b = b[end:]
		if r.Header.Length > uint64(len(b)) {
			return out, fmt.Errorf("ampstest: record l=%d runs past the batch %s", r.Header.Length, m)
		}
		r.Data, b = b[:r.Header.Length], b[r.Header.Length:]
		out = append(out, r)
	}
	if m.Header.Has(protocol.FieldBatchSize) && uint64(len(out)) != m.Header.BatchSize {
		return out, fmt.Errorf("ampstest: sow batch with bs=%d holds %d records", m.Header.BatchSize, len(out))
	}
	return out, nil
}

// Conn is a protocol-level AMPS client connection for tests, in the stream
// encoding (tcp, tcps, unix, with or without the HTTP preflight) or the
// WebSocket encoding of the official JavaScript client (ws, wss). Its
// methods return errors, so it can be used from any goroutine; Client wraps
// it for the test goroutine. Reads are for one goroutine at a time; writes
// may come from several.
type Conn struct {
	timeout  time.Duration
	deadline time.Time

	nc net.Conn // stream encoding
	br *bufio.Reader
	sr *protocol.StreamReader

	ws     *websocket.Conn // WebSocket encoding
	binary bool
	// The WebSocket is read by a goroutine of the Conn's own (wsRead), so
	// that a read that times out leaves the connection usable: the
	// library closes a WebSocket whose read context ends.
	wsIn      chan wsFrame  // what wsRead read, in order
	wsStop    chan struct{} // closed by Close: wsRead stops
	wsDone    chan struct{} // closed when wsRead has returned
	wsErr     error         // the error that ended wsIn, for every later read
	closeOnce sync.Once

	wmu     sync.Mutex
	pending []Message // messages read while waiting for an ack
	seq     int
}

// DialConn connects to uri and returns the connection. The URI forms are
// those of real AMPS clients: tcp://host:port/amps/json, the same with
// tcps, tcp://host:port/<prefix>/amps/json?http_preflight=true (the client
// first sends GET /<prefix>/amps/json with Upgrade: tcp and requires a 101
// answer), ws://host:port/amps/json and wss://…; and unix://<socket path>.
// On WebSocket the selector frame is sent before DialConn returns.
func DialConn(uri string, opts *DialOptions) (*Conn, error) {
	var o DialOptions
	if opts != nil {
		o = *opts
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("ampstest: bad URI %q: %w", uri, err)
	}
	c := &Conn{timeout: o.Timeout, deadline: o.Deadline, binary: o.Binary}
	switch u.Scheme {
	case "tcp", "tcps", "unix":
		return c, c.dialStream(u, &o)
	case "ws", "wss":
		return c, c.dialWS(u, &o)
	}
	return nil, fmt.Errorf("ampstest: URI %q: scheme %q is none of tcp, tcps, unix, ws, wss", uri, u.Scheme)
}

// opDeadline is now plus the operation timeout, capped by the deadline.
func (c *Conn) opDeadline(d time.Duration) time.Time {
	t := time.Now().Add(d)
	if !c.deadline.IsZero() && c.deadline.Before(t) {
		return c.deadline
	}
	return t
}

func (c *Conn) dialStream(u *url.URL, o *DialOptions) error {
	network, addr := "tcp", u.Host
	if u.Scheme == "unix" {
		network, addr = "unix", u.Path
	}
	d := net.Dialer{Deadline: c.opDeadline(c.timeout)}
	nc, err := d.Dial(network, addr)
	if err != nil {
		return fmt.Errorf("ampstest: dial %s %s: %w", network, addr, err)
	}
	if u.Scheme == "tcps" {
		cfg := &tls.Config{}
		if o.TLS != nil {
			cfg = o.TLS.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		tc := tls.Client(nc, cfg)
		tc.SetDeadline(c.opDeadline(c.timeout))
		if err := tc.Handshake(); err != nil {
			nc.Close()
			return fmt.Errorf("ampstest: TLS handshake with %s: %w", addr, err)
		}
		tc.SetDeadline(time.Time{})
		nc = tc
	}
	c.nc = nc
	c.br = bufio.NewReaderSize(nc, 32<<10)
	c.sr = protocol.NewStreamReader(c.br, maxFrame)
	if u.Query().Get("http_preflight") == "true" {
		resp, err := c.Preflight(u.EscapedPath(), o.Header)
		if err != nil {
			nc.Close()
			return err
		}
		if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != "tcp" {
			nc.Close()
			return fmt.Errorf("ampstest: preflight GET %s answered %s with Upgrade %q, want 101 and \"tcp\"",
				u.EscapedPath(), resp.Status, resp.Header.Get("Upgrade"))
		}
	}
	return nil
}

// Preflight sends the HTTP preflight request of a stream client (GET target
// with Connection: upgrade and Upgrade: tcp, plus header) and returns the
// broker's answer, whatever its status. After a 101 the connection goes on
// in the stream encoding. Stream connections only.
func (c *Conn) Preflight(target string, header http.Header) (*http.Response, error) {
	if c.nc == nil {
		return nil, errors.New("ampstest: Preflight on a WebSocket connection")
	}
	var req strings.Builder
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: upgrade\r\nUpgrade: tcp\r\n", target, c.nc.RemoteAddr())
	header.Write(&req)
	req.WriteString("\r\n")
	if err := c.WriteRaw([]byte(req.String())); err != nil {
		return nil, fmt.Errorf("ampstest: writing the preflight GET %s: %w", target, err)
	}
	c.nc.SetReadDeadline(c.opDeadline(c.timeout))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return nil, fmt.Errorf("ampstest: reading the answer to the preflight GET %s: %w", target, err)
	}
	return resp, nil
}

func (c *Conn) dialWS(u *url.URL, o *DialOptions) error {
	ctx, cancel := context.WithDeadline(context.Background(), c.opDeadline(c.timeout))
	defer cancel()
	dopts := &websocket.DialOptions{HTTPHeader: o.Header}
	if o.TLS != nil {
		dopts.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: o.TLS}}
	}
	ws, _, err := websocket.Dial(ctx, u.String(), dopts)
	if err != nil {
		return fmt.Errorf("ampstest: WebSocket dial %s: %w", u, err)
	}
	ws.SetReadLimit(maxFrame)
	c.ws = ws
	c.wsIn = make(chan wsFrame, 16)
	c.wsStop, c.wsDone = make(chan struct{}), make(chan struct{})
	go c.wsRead()
	// The first message of a session is the text frame "text" or "binary":
	// it tells the broker how to frame the payloads it sends back.
	sel := protocol.WSSelectorText
	if c.binary {
		sel = protocol.WSSelectorBinary
	}
	if err := c.WriteWS(true, []byte(sel)); err != nil {
		c.Close()
		return err
	}
	return nil
}

// wsFrame is one WebSocket message read by wsRead, or the error that ended
// the reading.
type wsFrame struct {
	p    []byte
	text bool
	err  error
}

// wsRead reads WebSocket messages into c.wsIn until the connection fails
// or Close stops it.
func (c *Conn) wsRead() {
	defer close(c.wsDone)
	for {
		typ, p, err := c.ws.Read(context.Background())
		select {
		case c.wsIn <- wsFrame{p: p, text: typ == websocket.MessageText, err: err}:
		case <-c.wsStop:
			return
		}
		if err != nil {
			return
		}
	}
}

// NetConn returns the socket of a stream connection (nil on WebSocket), for
// tests that need it: to half-close it, set deadlines or read raw bytes.
func (c *Conn) NetConn() net.Conn { return c.nc }

// RawReader returns the buffered reader of a stream connection (nil on
// WebSocket), for tests that read the broker's bytes undecoded, such as an
// HTTP answer. Bytes read from it are gone for Read.
func (c *Conn) RawReader() io.Reader {
	if c.br == nil {
		return nil
	}
	return c.br
}

// SetReadDeadline sets the deadline of the next raw read from NetConn or
// RawReader to now plus d, no later than DialOptions.Deadline.
func (c *Conn) SetReadDeadline(d time.Duration) error {
	if c.nc == nil {
		return errors.New("ampstest: SetReadDeadline on a WebSocket connection")
	}
	return c.nc.SetReadDeadline(c.opDeadline(d))
}

// WebSocket returns the WebSocket of a ws or wss connection (nil otherwise),
// for tests that inspect or write to it; reading from it races with the
// Conn's own reader, so read through Read, ReadFrame or ReadWithin.
func (c *Conn) WebSocket() *websocket.Conn { return c.ws }

// Close closes the connection (and, on WebSocket, waits for its reader to
// stop). It may be called more than once.
func (c *Conn) Close() error {
	if c.ws == nil {
		return c.nc.Close()
	}
	var err error
	c.closeOnce.Do(func() {
		close(c.wsStop)
		err = c.ws.CloseNow()
		<-c.wsDone
	})
	return err
}

// Abort closes the connection abruptly: a TCP reset instead of a FIN, as
// from a crashing client or a dropped network path.
func (c *Conn) Abort() {
	if tc, ok := c.nc.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// WriteRaw writes b as it is: on a stream connection, bytes on the socket;
// on WebSocket, one binary message.
func (c *Conn) WriteRaw(b []byte) error {
	if c.ws != nil {
		return c.WriteWS(false, b)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(c.opDeadline(c.timeout))
	if _, err := c.nc.Write(b); err != nil {
		return fmt.Errorf("ampstest: write of %d bytes: %w", len(b), err)
	}
	return nil
}

// WriteWS writes one WebSocket message, text or binary, with payload p.
// WebSocket connections only.
func (c *Conn) WriteWS(text bool, p []byte) error {
	if c.ws == nil {
		return errors.New("ampstest: WriteWS on a stream connection")
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeWSLocked(text, p)
}

func (c *Conn) writeWSLocked(text bool, p []byte) error {
	ctx, cancel := context.WithDeadline(context.Background(), c.opDeadline(c.timeout))
	defer cancel()
	typ := websocket.MessageBinary
	if text {
		typ = websocket.MessageText
	}
	if err := c.ws.Write(ctx, typ, p); err != nil {
		return fmt.Errorf("ampstest: WebSocket write of %d bytes: %w", len(p), err)
	}
	return nil
}

// SendHeader sends one message whose header is the JSON text header, with
// body. On a stream connection that is one frame: the big-endian uint32
// length of header plus body, then both. On WebSocket it is what the
// JavaScript client sends: a binary frame holding the little-endian uint32
// count of frames that follow plus one, the header as a text frame, and the
// body, when not empty, as one data frame (text after the "text" selector
// when it is valid UTF-8, else binary).
func (c *Conn) SendHeader(header string, body []byte) error {
	if c.ws == nil {
		return c.WriteRaw(protocol.AppendStreamFrame(nil, []byte(header), body))
	}
	n := uint32(1)
	if len(body) > 0 {
		n = 2
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	count := []byte{byte(n), byte(n >> 8), byte(n >> 16), byte(n >> 24)}
	if err := c.writeWSLocked(false, count); err != nil {
		return err
	}
	if err := c.writeWSLocked(true, []byte(header)); err != nil {
		return err
	}
	if len(body) > 0 {
		return c.writeWSLocked(!c.binary && utf8.Valid(body), body)
	}
	return nil
}

// Send sends a message with header h, encoded by protocol.AppendHeader.
func (c *Conn) Send(h *protocol.Header, body []byte) error {
	return c.SendHeader(string(protocol.AppendHeader(nil, h)), body)
}

// SendJSON sends a message whose header is v encoded by encoding/json, for
// headers protocol.Header cannot express (unknown keys, odd types).
func (c *Conn) SendJSON(v any, body []byte) error {
	h, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("ampstest: encoding header %v: %w", v, err)
	}
	return c.SendHeader(string(h), body)
}

// ReadFrame returns the next frame as received, without decoding it: on a
// stream connection the bytes after the length prefix (header and body);
// on WebSocket the payload of the next message and whether it was text.
func (c *Conn) ReadFrame() (p []byte, text bool, err error) {
	return c.readFrameWithin(c.timeout)
}

func (c *Conn) readFrameWithin(d time.Duration) ([]byte, bool, error) {
	if c.ws != nil {
		if c.wsErr != nil {
			return nil, false, c.wsErr
		}
		t := time.NewTimer(time.Until(c.opDeadline(d)))
		defer t.Stop()
		select {
		case f := <-c.wsIn:
			if f.err != nil {
				c.wsErr = f.err
				return nil, false, f.err
			}
			return f.p, f.text, nil
		case <-t.C:
			// The connection stays usable: the frame, if one comes, waits
			// in wsIn for the next read.
			return nil, false, fmt.Errorf("ampstest: no WebSocket message within %v: %w", d, os.ErrDeadlineExceeded)
		}
	}
	// Wait for the first bytes of a frame under the caller's deadline
	// without consuming them, so that a timeout leaves the stream in step;
	// a frame that has begun gets the connection's whole timeout to
	// arrive, and a failure inside it ends the stream (the reader's error
	// is sticky).
	if c.sr.Buffered() == 0 {
		c.nc.SetReadDeadline(c.opDeadline(d))
		if _, err := c.br.Peek(1); err != nil {
			return nil, false, err
		}
	}
	c.nc.SetReadDeadline(c.opDeadline(c.timeout))
	p, err := c.sr.ReadFrame()
	if err != nil {
		return nil, false, err
	}
	return append([]byte(nil), p...), false, nil
}

// Read returns the next message, heartbeats included, waiting at most the
// connection's timeout. Messages set aside while waiting for an ack come
// first. It returns io.EOF when the broker closed the connection.
func (c *Conn) Read() (Message, error) { return c.ReadWithin(c.timeout) }

// ReadWithin is Read waiting at most d.
func (c *Conn) ReadWithin(d time.Duration) (Message, error) {
	if len(c.pending) > 0 {
		m := c.pending[0]
		c.pending = c.pending[1:]
		return m, nil
	}
	m, err := c.readMessage(d)
	if err != nil {
		return Message{}, err
	}
	// A message that carries a payload and states its length in "l" must
	// have exactly that many bytes after the header.
	switch m.Header.Command {
	case protocol.CmdP, protocol.CmdPublish, protocol.CmdOOF:
		if m.Header.Has(protocol.FieldLength) && m.Header.Length != uint64(len(m.Body)) {
			return Message{}, fmt.Errorf("ampstest: header %s says l=%d, but the body has %d bytes", m.RawHeader, m.Header.Length, len(m.Body))
		}
	}
	return m, nil
}

func (c *Conn) readMessage(d time.Duration) (Message, error) {
	if c.ws != nil {
		return c.readWS(d)
	}
	p, _, err := c.readFrameWithin(d)
	if err != nil {
		return Message{}, err
	}
	end, err := protocol.HeaderEnd(p)
	if err != nil {
		return Message{}, fmt.Errorf("ampstest: frame %.80q has no header: %w", p, err)
	}
	return decoded(p[:end], p[end:])
}

func decoded(header, body []byte) (Message, error) {
	m := Message{RawHeader: string(header), Body: body}
	if err := protocol.DecodeHeader(header, &m.Header); err != nil {
		return Message{}, fmt.Errorf("ampstest: bad header %q: %w", header, err)
	}
	return m, nil
}

// readWS reads one message the broker sent in the JavaScript client's
// encoding: a text header frame, then for "p", "publish" and "oof" one data
// frame unless the header says "l":0, and for "sow" a record header frame
// and a data frame per record ("bs" records); other commands have no data.
func (c *Conn) readWS(d time.Duration) (Message, error) {
	p, text, err := c.readFrameWithin(d)
	if err != nil {
		return Message{}, err
	}
	if !text {
		return Message{}, fmt.Errorf("ampstest: WebSocket header frame is binary: %.80q", p)
	}
	m, err := decoded(p, nil)
	if err != nil {
		return Message{}, err
	}
	switch m.Header.Command {
	case protocol.CmdP, protocol.CmdPublish, protocol.CmdOOF:
		if m.Header.Has(protocol.FieldLength) && m.Header.Length == 0 {
			return m, nil
		}
		if m.Body, _, err = c.readFrameWithin(d); err != nil {
			return Message{}, fmt.Errorf("ampstest: data frame after %s: %w", p, err)
		}
	case protocol.CmdSOW:
		for i := uint64(0); i < m.Header.BatchSize; i++ {
			for range 2 { // record header, then record data
				f, _, err := c.readFrameWithin(d)
				if err != nil {
					return Message{}, fmt.Errorf("ampstest: record %d of %s: %w", i, p, err)
				}
				m.Body = append(m.Body, f...)
			}
		}
	}
	return m, nil
}

// Next returns the next message that is not a heartbeat.
func (c *Conn) Next() (Message, error) {
	for {
		m, err := c.Read()
		if err != nil || m.Header.Command != protocol.CmdHeartbeat {
			return m, err
		}
	}
}

// AwaitAck reads until the ack of type ackType for command id cid arrives
// and returns it, whatever its status. Heartbeats read meanwhile are
// dropped; other messages are set aside for Read.
func (c *Conn) AwaitAck(cid, ackType string) (Message, error) {
	var kept []Message
	defer func() { c.pending = append(kept, c.pending...) }()
	for {
		m, err := c.Read()
		if err != nil {
			return Message{}, fmt.Errorf("ampstest: waiting for the %s ack of cid %q: %w", ackType, cid, err)
		}
		h := &m.Header
		switch {
		case h.Command == protocol.CmdAck && h.CommandID == cid && h.AckType == ackType:
			return m, nil
		case h.Command != protocol.CmdHeartbeat:
			kept = append(kept, m)
		}
	}
}

// command sends h asking for a processed ack, and returns the ack; it is
// an error unless the ack's status is success.
func (c *Conn) command(h *protocol.Header, body []byte) (Message, error) {
	h.AckType = protocol.AckProcessed
	if err := c.Send(h, body); err != nil {
		return Message{}, err
	}
	ack, err := c.AwaitAck(h.CommandID, protocol.AckProcessed)
	if err == nil && ack.Header.Status != protocol.StatusSuccess {
		err = fmt.Errorf("ampstest: %s %q answered %s", h.Command, h.CommandID, ack)
	}
	return ack, err
}

// LogonWith sends a logon with the fields of h that are set, completed with
// command id "0", message type json and a client version, asks for a
// processed ack, and returns it whatever its status.
func (c *Conn) LogonWith(h *protocol.Header) (Message, error) {
	l := *h
	l.Command = protocol.CmdLogon
	l.AckType = protocol.AckProcessed
	if l.CommandID == "" {
		l.CommandID = "0"
	}
	if l.MessageType == "" {
		l.MessageType = "json"
	}
	if l.Version == "" {
		l.Version = "5.3.4.0:ampstest"
	}
	if err := c.Send(&l, nil); err != nil {
		return Message{}, err
	}
	return c.AwaitAck(l.CommandID, protocol.AckProcessed)
}

// Logon logs on as client name with user name and no password, and returns
// the ack; it is an error unless the logon succeeded.
func (c *Conn) Logon(name string) (Message, error) {
	ack, err := c.LogonWith(&protocol.Header{ClientName: name, UserID: name})
	if err == nil && ack.Header.Status != protocol.StatusSuccess {
		err = fmt.Errorf("ampstest: logon as %s answered %s", name, ack)
	}
	return ack, err
}

// Subscribe subscribes to topic with id as command id and subscription id,
// and waits for a successful processed ack.
func (c *Conn) Subscribe(id, topic string) error {
	_, err := c.command(&protocol.Header{Command: protocol.CmdSubscribe, CommandID: id, SubID: id, Topic: topic}, nil)
	return err
}

// Publish publishes body to topic without asking for an ack, as the TCP
// clients do.
func (c *Conn) Publish(topic string, body []byte) error {
	return c.Send(&protocol.Header{Command: protocol.CmdP, Topic: topic}, body)
}

// Flush sends a flush with command id cid and waits for its successful ack:
// when it arrives, the broker has handled every command sent before it.
func (c *Conn) Flush(cid string) error {
	_, err := c.command(&protocol.Header{Command: protocol.CmdFlush, CommandID: cid}, nil)
	return err
}

// Heartbeat asks the broker for a heartbeat every seconds seconds; the
// client answers each with Beat, or the broker closes the connection after
// a few silent intervals.
func (c *Conn) Heartbeat(seconds int) error {
	return c.Send(&protocol.Header{Command: protocol.CmdHeartbeat, CommandID: "hb",
		Options: fmt.Sprintf("start,%d", seconds), AckType: protocol.AckReceived}, nil)
}

// Beat sends a heartbeat beat, which asks for no ack.
func (c *Conn) Beat() error {
	return c.Send(&protocol.Header{Command: protocol.CmdHeartbeat, Options: "beat"}, nil)
}

// NextCommandID returns a fresh command id, "1", "2", …, unique on this
// connection.
func (c *Conn) NextCommandID() string {
	c.seq++
	return fmt.Sprint(c.seq)
}

// ExpectClosed discards whatever the broker still sends until it closes
// the connection, waiting at most within. It says how the connection ended
// ("EOF", "reset", "broken pipe", "websocket close <code>"), or returns an
// error when it did not end in time or failed otherwise.
func (c *Conn) ExpectClosed(within time.Duration) (string, error) {
	end := c.opDeadline(within)
	n := 0
	for {
		_, _, err := c.readFrameWithin(time.Until(end))
		if err == nil {
			n++
			continue
		}
		if how := CloseKind(err); how != "" {
			return how, nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
			return "", fmt.Errorf("ampstest: broker did not close the connection within %v (%d frames read)", within, n)
		}
		return "", fmt.Errorf("ampstest: connection failed in an unexpected way after %d frames: %w", n, err)
	}
}

// CloseKind names how a connection ended, judging by the error of a read or
// write: "EOF", "reset", "broken pipe" or "websocket close <code>"; "" when
// err says no such thing.
func CloseKind(err error) string {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	}
	if code := websocket.CloseStatus(err); code != -1 {
		return fmt.Sprintf("websocket close %d", code)
	}
	return ""
}
