package preflight

import (
	"bufio"
	"net"
)

// NewConn returns c with its reads starting from the bytes br already holds.
// br must be a reader over c. Use it once the preflight (or Detect alone) is
// done: a client may send its first AMPS frames in the same packet as the
// request, and those bytes sit in br, not in the socket.
//
// When br holds nothing, NewConn returns c itself. Otherwise Read drains br
// first and then reads c directly; the returned conn must not be used
// together with br. Writes, deadlines and Close go straight to c.
func NewConn(c net.Conn, br *bufio.Reader) net.Conn {
	if br == nil || br.Buffered() == 0 {
		return c
	}
	return &bufferedConn{Conn: c, br: br}
}

// bufferedConn is the net.Conn returned by NewConn.
type bufferedConn struct {
	net.Conn
	br *bufio.Reader // nil once drained
}

// Read returns buffered bytes first, then reads the connection.
func (c *bufferedConn) Read(p []byte) (int, error) {
	if c.br != nil {
		if c.br.Buffered() > 0 {
			// bufio.Reader.Read copies from its buffer without touching
			// the connection while the buffer is not empty.
			return c.br.Read(p)
		}
		c.br = nil
	}
	return c.Conn.Read(p)
}

// NetConn returns the wrapped connection, as tls.Conn.NetConn does.
func (c *bufferedConn) NetConn() net.Conn {
	return c.Conn
}
