package natstest

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy defaults.
const (
	// proxyChunk is the largest piece the proxy reads and forwards at once.
	proxyChunk = 32 << 10
	// proxyQueue is how many read pieces may wait for their delay or for
	// Resume in each direction before the proxy stops reading that side
	// (TCP flow control then holds the sender).
	proxyQueue = 256
)

// Proxy forwards TCP connections from a loopback port to a target address,
// both directions, optionally holding every piece of data for a delay or
// holding all traffic while paused. It stands between a client and its
// NATS node to make that link slow or silent.
type Proxy struct {
	target string
	ln     net.Listener

	mu     sync.Mutex
	delay  time.Duration
	gate   chan struct{} // closed while traffic flows; open while paused
	conns  map[net.Conn]struct{}
	closed bool

	wg sync.WaitGroup
}

// piece is data read from one side, due to be written at due.
type piece struct {
	data []byte
	due  time.Time
}

// NewProxy listens on a free loopback port and forwards each accepted
// connection to target. t.Cleanup closes it.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("natstest: proxy listen: %v", err)
	}
	open := make(chan struct{})
	close(open)
	p := &Proxy{target: target, ln: ln, gate: open, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's listening address (host:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL is the proxy's address as a NATS client URL.
func (p *Proxy) URL() string { return "nats://" + p.Addr() }

// SetDelay makes data read from now on wait d before it is forwarded, in
// both directions (a round trip gains 2d). Order is kept.
func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

// Pause holds all traffic (queued, not dropped) until Resume.
func (p *Proxy) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
		p.gate = make(chan struct{})
	default: // already paused
	}
}

// Resume lets held and new traffic flow again.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
}

// DropConnections closes every connection the proxy carries (both sides),
// as a broken link would; new connections are still accepted.
func (p *Proxy) DropConnections() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// Close stops accepting, closes every connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	// A paused proxy must let its writers see the closed connections.
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			down.Close()
			continue
		}
		if !p.track(down, up) {
			return
		}
		p.wg.Add(4)
		go p.pump(down, up)
		go p.pump(up, down)
	}
}

// track registers a connection pair; false (and both closed) when the
// proxy is closing.
func (p *Proxy) track(a, b net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		a.Close()
		b.Close()
		return false
	}
	p.conns[a] = struct{}{}
	p.conns[b] = struct{}{}
	return true
}

// pump forwards from src to dst through a queue: a reader goroutine stamps
// each piece with its due time, a writer goroutine waits for that time and
// for the gate. Either side failing closes both connections.
func (p *Proxy) pump(src, dst net.Conn) {
	queue := make(chan piece, proxyQueue)
	go func() {
		defer p.wg.Done()
		defer close(queue)
		for {
			buf := make([]byte, proxyChunk)
			n, err := src.Read(buf)
			if n > 0 {
				p.mu.Lock()
				due := time.Now().Add(p.delay)
				p.mu.Unlock()
				queue <- piece{data: buf[:n], due: due}
			}
			if err != nil {
				return
			}
		}
	}()
	defer p.wg.Done()
	defer p.forget(src, dst)
	for pc := range queue {
		if wait := time.Until(pc.due); wait > 0 {
			time.Sleep(wait)
		}
		p.mu.Lock()
		gate := p.gate
		p.mu.Unlock()
		<-gate
		if _, err := dst.Write(pc.data); err != nil {
			if !errors.Is(err, net.ErrClosed) {
				src.Close()
			}
			break
		}
	}
	// Drain so the reader never blocks on a full queue after a failure.
	src.Close()
	for range queue {
	}
}

// forget closes both connections and drops them from the set.
func (p *Proxy) forget(a, b net.Conn) {
	a.Close()
	b.Close()
	p.mu.Lock()
	delete(p.conns, a)
	delete(p.conns, b)
	p.mu.Unlock()
}
