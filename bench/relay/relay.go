// Package relay is a message relay with no logic, written to measure the
// ceiling of this machine: it reads a length-prefixed frame and copies it
// to each subscriber of the frame's topic, and does nothing else (no
// logon, no acks beyond the subscribe's, no filtering, no queue limits).
//
// Its protocol, in both directions a stream of frames, each a 4-byte
// big-endian length n and n bytes:
//
//	client → relay:  'S' topic-length(1 byte) topic          subscribe
//	                 'P' topic-length(1 byte) topic body     publish
//	relay → client:  body                                    a delivery
//	                 (empty)                                 the subscribe is in place
package relay

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
)

// bufferSize is the size of each connection's read and write buffers.
const bufferSize = 64 << 10

// maxFrame bounds a frame's length, so that a corrupt length cannot make
// the reader allocate without limit.
const maxFrame = 16 << 20

// Operations, the first byte of a client's frame.
const (
	opSubscribe = 'S'
	opPublish   = 'P'
)

// Server relays frames between the connections it accepts.
type Server struct {
	mu     sync.RWMutex
	topics map[string][]*peer
}

// peer is one client connection's sending side.
type peer struct {
	mu sync.Mutex // serialises the writers, one per publishing connection
	w  *bufio.Writer
}

// NewServer returns a relay with no connections.
func NewServer() *Server { return &Server{topics: map[string][]*peer{}} }

// Serve accepts connections on l and relays their frames until l is
// closed; each connection's goroutine ends when its connection does.
func (s *Server) Serve(l net.Listener) error {
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		nc, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			s.serveConn(nc)
		}()
	}
}

// serveConn reads nc's frames and acts on each; it flushes the
// subscribers it wrote to whenever it has nothing more buffered to read,
// so a burst of publishes goes out in few writes.
func (s *Server) serveConn(nc net.Conn) {
	defer nc.Close()
	me := &peer{w: bufio.NewWriterSize(nc, bufferSize)}
	var subscribed []string
	defer func() {
		s.mu.Lock()
		for _, t := range subscribed {
			s.topics[t] = slices.DeleteFunc(s.topics[t], func(p *peer) bool { return p == me })
		}
		s.mu.Unlock()
	}()
	r := bufio.NewReaderSize(nc, bufferSize)
	var dirty []*peer
	var frame []byte
	for {
		if r.Buffered() == 0 {
			for _, p := range dirty {
				p.flush()
			}
			dirty = dirty[:0]
		}
		var err error
		frame, err = readFrame(r, frame)
		if err != nil {
			return
		}
		op, topic, body, err := parseClientFrame(frame)
		if err != nil {
			return
		}
		switch op {
		case opSubscribe:
			s.mu.Lock()
			s.topics[topic] = append(s.topics[topic], me)
			s.mu.Unlock()
			subscribed = append(subscribed, topic)
			me.send(nil)
			me.flush()
		case opPublish:
			s.mu.RLock()
			subs := s.topics[topic]
			s.mu.RUnlock()
			for _, p := range subs {
				p.send(body)
				if !slices.Contains(dirty, p) {
					dirty = append(dirty, p)
				}
			}
		}
	}
}

func (p *peer) send(body []byte) {
	p.mu.Lock()
	writeFrame(p.w, body)
	p.mu.Unlock()
}

func (p *peer) flush() {
	p.mu.Lock()
	p.w.Flush()
	p.mu.Unlock()
}

// readFrame reads one frame into buf's memory and returns it.
func readFrame(r *bufio.Reader, buf []byte) ([]byte, error) {
	var pfx [4]byte
	if _, err := io.ReadFull(r, pfx[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(pfx[:])
	if n > maxFrame {
		return nil, fmt.Errorf("relay frame of %d bytes, at most %d", n, maxFrame)
	}
	buf = slices.Grow(buf[:0], int(n))[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// writeFrame writes the parts as one frame.
func writeFrame(w *bufio.Writer, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	var pfx [4]byte
	binary.BigEndian.PutUint32(pfx[:], uint32(n))
	w.Write(pfx[:])
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// parseClientFrame splits a client's frame into its operation, topic and
// body.
func parseClientFrame(f []byte) (op byte, topic string, body []byte, err error) {
	if len(f) < 2 || len(f) < 2+int(f[1]) {
		return 0, "", nil, fmt.Errorf("relay frame %.40q is too short for its topic", f)
	}
	op, n := f[0], int(f[1])
	if op != opSubscribe && op != opPublish {
		return 0, "", nil, fmt.Errorf("relay frame %.40q: unknown operation %q", f, op)
	}
	return op, string(f[2 : 2+n]), f[2+n:], nil
}
