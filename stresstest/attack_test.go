package stresstest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/protocol"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/listener"
)

// Settings of the attacked broker. The timeouts are short so that stalling
// attackers are dealt with quickly; the budgets are small so that limits
// are reached with little traffic.
const (
	// The timeouts are 3 s rather than 1 s: the test machine has two
	// cores, -race and possibly other test processes; a well-behaved
	// client starved for over a second at startup was seen to hit a 1 s
	// logon timeout there.
	attackHandshakeTimeout = 3 * time.Second
	attackLogonTimeout     = 3 * time.Second
	attackQueueBytes       = 256 << 10
	attackMaxFrame         = 1 << 20
	attackMaxHeader        = 64 << 10

	// outcomeWithin is how long an attacker waits for the broker to deal
	// with it. The broker's own timeouts are 3 s; the rest is room for
	// -race on two busy cores. It is a hang guard, not a latency target.
	outcomeWithin = 10 * time.Second

	// attackTestLimit is the hard deadline of the whole test: no socket
	// operation of any client waits past it.
	attackTestLimit = 50 * time.Second

	// burstConns connections are opened and dropped, burstWorkers at a
	// time (issue 5 asks for 10,000; with -race on two cores this takes a
	// few seconds).
	burstConns   = 10000
	burstWorkers = 32

	// neverReaders subscribe to the flood topic and never read.
	neverReaders = 4
	floodBody    = 1 << 10

	// goodMinMessages is the least the well-behaved stream carries.
	goodMinMessages = 2000
)

// Memory bounds. What the attacks may legitimately pin at once: about 100
// connections in flight (burst workers plus attackers) with a goroutine, a
// 4 KiB preflight buffer or 16+32 KiB stream buffers each (~5 MiB); four
// endless headers buffered up to the 1 MiB frame limit (4 MiB); four
// never-readers' queues of at most 256 KiB (1 MiB); the test's own clients
// (32 KiB read buffers). That is under 16 MiB of heap; the bounds leave
// room for garbage not yet collected and, for RSS, for the race
// detector's shadow memory (several times the heap) and thread stacks.
const (
	maxHeapGrowth      = 128 << 20 // peak HeapInuse over the baseline
	maxRSSGrowth       = 256 << 20 // peak VmRSS over the baseline
	maxHeapAfterGrowth = 16 << 20  // HeapInuse after Shutdown and GC over the baseline
)

// arena is what attackers share.
type arena struct {
	addr  string
	limit time.Time
	out   *outcomes
}

func (a *arena) dial() (*ampstest.Conn, error) { return dialClient(a.addr, a.limit) }

// expectClose waits for the broker to close c and records how it did.
func (a *arena) expectClose(c *ampstest.Conn, attack string) error {
	kind, err := c.ExpectClosed(outcomeWithin)
	if err != nil {
		return err
	}
	a.out.add(attack, kind)
	return nil
}

// sendAndExpectClose writes data and expects the broker to close the
// connection. A write that fails because the broker already closed is
// that outcome too.
func (a *arena) sendAndExpectClose(c *ampstest.Conn, attack string, data []byte) error {
	if err := c.WriteRaw(data); err != nil {
		if kind := ampstest.CloseKind(err); kind != "" {
			a.out.add(attack, kind+" during write")
			return nil
		}
		return fmt.Errorf("write: %w", err)
	}
	return a.expectClose(c, attack)
}

// expectFailureAck reads the processed ack of cid, checks it is a failure
// with reason, then expects the close.
func (a *arena) expectFailureAck(c *ampstest.Conn, attack, cid, reason string) error {
	ack, err := c.AwaitAck(cid, "processed")
	if err != nil {
		return err
	}
	if ack.Field("status") != "failure" || ack.Field("reason") != reason {
		return fmt.Errorf("got %s, want a failure ack with reason %q", ack, reason)
	}
	kind, err := c.ExpectClosed(outcomeWithin)
	if err != nil {
		return fmt.Errorf("after the failure ack: %w", err)
	}
	a.out.add(attack, "failure ack "+strconv.Quote(reason)+", then "+kind)
	return nil
}

// expectHTTPOutcome reads everything the broker sends until it closes and
// checks it against what is allowed: "400" (a 400 answer, then close) or
// "close" (close without any answer).
func (a *arena) expectHTTPOutcome(c *ampstest.Conn, attack string, allowed ...string) error {
	c.SetReadDeadline(outcomeWithin)
	var got bytes.Buffer
	_, err := io.Copy(&got, c.RawReader())
	if err == nil { // io.Copy reports the end of the stream as no error
		err = io.EOF
	}
	kind := ampstest.CloseKind(err)
	if kind == "" {
		return fmt.Errorf("broker did not close the connection within %v (got %q): %v", outcomeWithin, got.Bytes(), err)
	}
	answer := "close"
	switch {
	case got.Len() == 0:
	case strings.HasPrefix(got.String(), "HTTP/1.1 400 "):
		answer = "400"
	default:
		return fmt.Errorf("unexpected answer %q", got.Bytes())
	}
	for _, ok := range allowed {
		if answer == ok {
			if answer == "400" {
				a.out.add(attack, "400 Bad Request, then "+kind)
			} else {
				a.out.add(attack, "no answer, "+kind)
			}
			return nil
		}
	}
	return fmt.Errorf("answer %q (%q), want one of %v", answer, got.Bytes(), allowed)
}

// repeat runs attack n times, par at a time, on the crew.
func repeat(cr *crew, name string, n, par int, attack func(i int) error) {
	var mu sync.Mutex
	next := 0
	for w := 0; w < par; w++ {
		cr.Go(name, func() error {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return nil
				}
				if err := attack(i); err != nil {
					return fmt.Errorf("#%d: %w", i, err)
				}
			}
		})
	}
}

// withClient dials, runs f, and closes the client.
func (a *arena) withClient(f func(c *ampstest.Conn) error) error {
	c, err := a.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	return f(c)
}

// loggedOn dials and logs on, then runs f.
func (a *arena) loggedOn(name string, f func(c *ampstest.Conn) error) error {
	return a.withClient(func(c *ampstest.Conn) error {
		if err := logonOK(c, name); err != nil {
			return err
		}
		return f(c)
	})
}

// trickle writes data one byte every 100 ms until done is closed, the data
// runs out or a write fails, on a goroutine that the returned function
// stops and waits for.
func trickle(c *ampstest.Conn, data []byte) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for _, b := range data {
			if c.WriteRaw([]byte{b}) != nil {
				return
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// flood writes prefix, then chunks of filler until a write fails or limit
// bytes went out, on a goroutine that the returned function waits for. It
// reports an error only when a write failed other than by the broker
// closing the connection.
func flood(c *ampstest.Conn, prefix []byte, filler []byte, limit int) (wait func() error) {
	var wg sync.WaitGroup
	var werr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := c.WriteRaw(prefix)
		for sent := len(prefix); err == nil && sent < limit; sent += len(filler) {
			err = c.WriteRaw(filler)
		}
		// The broker closing (reset, broken pipe) or the attacker's own
		// abort (net.ErrClosed) ends the flood.
		if err != nil && ampstest.CloseKind(err) == "" && !errors.Is(err, net.ErrClosed) {
			werr = fmt.Errorf("flood write: %w", err)
		}
	}()
	return func() error {
		wg.Wait()
		return werr
	}
}

// TestHostileClientsDoNotHurtWellBehavedOnes attacks one broker over TCP
// with every kind of hostile client at once while a well-behaved publisher
// and subscriber exchange a numbered stream. Each attacker must see a
// clear outcome (close, a 400 answer, a failure ack), the stream must
// arrive whole and in order, the never-reading subscribers must be cut off
// as slow consumers, memory must stay bounded, and every goroutine must be
// gone after Shutdown.
func TestHostileClientsDoNotHurtWellBehavedOnes(t *testing.T) {
	limit := time.Now().Add(attackTestLimit)
	baseGoroutines := runtime.NumGoroutine()
	mem0 := readMem(true)

	sb := startBroker(t, &broker.Options{
		OutboundQueueBytes: attackQueueBytes,
		LogonTimeout:       attackLogonTimeout,
		MaxHeaderSize:      attackMaxHeader,
	}, &listener.TCPOptions{
		HandshakeTimeout: attackHandshakeTimeout,
		MaxFrameSize:     attackMaxFrame,
	})
	peak := watchMemory(50 * time.Millisecond)
	var peakOnce sync.Once
	var memPeakSample memSample
	stopPeak := func() { peakOnce.Do(func() { memPeakSample = peak.Stop() }) }
	t.Cleanup(stopPeak)

	good, err := startGoodStream(sb.TCPAddr, limit, goodMinMessages)
	if err != nil {
		t.Fatalf("well-behaved clients: %v", err)
	}
	t.Cleanup(func() { good.pub.Close(); good.sub.Close() })

	// Stats identifies each connection (ConnStats.ID, "as in
	// ConnEvent.ID", unique for the life of the broker): an operator
	// picks the attacker out of Conns by it.
	if st := sb.Stats(); len(st.Conns) != 2 || st.Conns[0].ID == st.Conns[1].ID {
		t.Errorf("Stats.Conns of the well-behaved pair = %+v, want 2 entries with distinct IDs", st.Conns)
	}

	a := &arena{addr: sb.TCPAddr, limit: limit, out: &outcomes{}}
	var atk crew
	started := time.Now()

	// Framing attacks (wire spec §2.1, §2.2).
	repeat(&atk, "garbage before logon", 50, 2, func(i int) error {
		return a.withClient(func(c *ampstest.Conn) error {
			data := randomBytes(uint64(i), 1+i*80)
			if data[0] == 'G' { // "GET " would be a preflight (§2.1)
				data[0] = 'g'
			}
			return a.sendAndExpectClose(c, "garbage before logon", data)
		})
	})
	repeat(&atk, "garbage after logon", 50, 2, func(i int) error {
		return a.loggedOn("garbage", func(c *ampstest.Conn) error {
			data := randomBytes(uint64(1000+i), 4+i*80)
			// A first byte of at least 1 claims 16 MiB or more, over the
			// 1 MiB frame limit, so the frame cannot just wait for bytes.
			data[0] |= 1
			return a.sendAndExpectClose(c, "garbage after logon", data)
		})
	})
	repeat(&atk, "truncated frame, then EOF", 20, 2, func(i int) error {
		return a.loggedOn("trunc", func(c *ampstest.Conn) error {
			data := append(lengthPrefix(100), `{"c":"p","t":"x"}abc`...)
			if err := c.WriteRaw(data); err != nil {
				return err
			}
			c.NetConn().(*net.TCPConn).CloseWrite()
			return a.expectClose(c, "truncated frame, then EOF")
		})
	})
	repeat(&atk, "truncated frame, then stall", 4, 4, func(i int) error {
		return a.withClient(func(c *ampstest.Conn) error {
			// Half a logon that never completes: only the logon timeout
			// can end it.
			return a.sendAndExpectClose(c, "truncated frame, then stall",
				append(lengthPrefix(200), `{"c":"logon","cid":"1"`...))
		})
	})
	repeat(&atk, "4 GiB length before logon", 20, 2, func(i int) error {
		return a.withClient(func(c *ampstest.Conn) error {
			return a.sendAndExpectClose(c, "4 GiB length before logon", lengthPrefix(0xFFFFFFFF))
		})
	})
	repeat(&atk, "4 GiB length after logon", 20, 2, func(i int) error {
		return a.loggedOn("4gib", func(c *ampstest.Conn) error {
			return a.sendAndExpectClose(c, "4 GiB length after logon", append(lengthPrefix(0xFFFFFFFF), `{"c":"p"`...))
		})
	})
	repeat(&atk, "header never ends", 4, 4, func(i int) error {
		return a.loggedOn("endless", func(c *ampstest.Conn) error {
			// The frame claims the largest allowed size and its header
			// never closes; the writer keeps going past the frame.
			wait := flood(c, append(lengthPrefix(attackMaxFrame), `{"c":"p","t":"`...),
				bytes.Repeat([]byte("a"), 16<<10), 2*attackMaxFrame)
			err := a.expectClose(c, "header never ends")
			c.Abort() // unblocks the writer if the broker did not close
			return errors.Join(err, wait())
		})
	})
	repeat(&atk, "header over MaxHeaderSize", 10, 2, func(i int) error {
		return a.loggedOn("bighdr", func(c *ampstest.Conn) error {
			h := `{"c":"p","t":"` + strings.Repeat("a", attackMaxHeader+1) + `"}`
			return a.sendAndExpectClose(c, "header over MaxHeaderSize", protocol.AppendStreamFrame(nil, []byte(h), []byte("x")))
		})
	})
	repeat(&atk, "header is not JSON", 10, 2, func(i int) error {
		return a.loggedOn("notjson", func(c *ampstest.Conn) error {
			hdr := []string{`{"c":"p","t":tt}`, `["c","p"]`, `hello world`, `{"c":"p","t":"x"`}[i%4]
			return a.sendAndExpectClose(c, "header is not JSON", protocol.AppendStreamFrame(nil, []byte(hdr), nil))
		})
	})
	repeat(&atk, "zero-length frames, no logon", 4, 4, func(i int) error {
		return a.withClient(func(c *ampstest.Conn) error {
			// Zero-length frames are skipped (wire spec §2.1); they must
			// not keep a connection alive without a logon.
			return a.sendAndExpectClose(c, "zero-length frames, no logon", make([]byte, 4<<10))
		})
	})

	// Command-level attacks with a failure ack (wire spec §7.1, §7.10).
	repeat(&atk, "command before logon", 10, 2, func(i int) error {
		return a.withClient(func(c *ampstest.Conn) error {
			if err := c.SendJSON(map[string]any{"c": "subscribe", "cid": "s1", "t": "x", "a": "processed"}, nil); err != nil {
				return err
			}
			return a.expectFailureAck(c, "command before logon", "s1", broker.ReasonLogonRequired)
		})
	})
	repeat(&atk, "unknown command", 10, 2, func(i int) error {
		return a.loggedOn("unknown", func(c *ampstest.Conn) error {
			if err := c.SendJSON(map[string]any{"c": "explode", "cid": "u1", "a": "processed"}, nil); err != nil {
				return err
			}
			return a.expectFailureAck(c, "unknown command", "u1", broker.ReasonUnknownCommand)
		})
	})

	// Preflight attacks (wire spec §4.3).
	repeat(&atk, "preflight header flood", 8, 4, func(i int) error {
		return a.withClient(func(c *ampstest.Conn) error {
			line := []byte("X-Flood: " + strings.Repeat("f", 90) + "\r\n")
			wait := flood(c, []byte("GET /amps/json HTTP/1.1\r\nHost: 127.0.0.1\r\n"), line, 1<<20)
			err := a.expectHTTPOutcome(c, "preflight header flood", "400")
			c.Abort()
			return errors.Join(err, wait())
		})
	})
	repeat(&atk, "preflight refused", 12, 2, func(i int) error {
		return a.withClient(func(c *ampstest.Conn) error {
			req := []string{
				"GET /amps/json HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n\r\n",
				"GET /amps/json HTTP/2.0\r\nHost: x\r\n\r\n",
				"GET \x01\x02 nonsense\r\n\r\n",
			}[i%3]
			if err := c.WriteRaw([]byte(req)); err != nil {
				return err
			}
			return a.expectHTTPOutcome(c, "preflight refused", "400")
		})
	})
	repeat(&atk, "slowloris preflight", 6, 6, func(i int) error {
		return a.withClient(func(c *ampstest.Conn) error {
			if err := c.WriteRaw([]byte("GET /amps/json HTTP/1.1\r\n")); err != nil {
				return err
			}
			stop := trickle(c, bytes.Repeat([]byte("X"), 1000))
			defer stop()
			// A head cut short by the handshake timeout is not a
			// malformed request: the broker may just close.
			return a.expectHTTPOutcome(c, "slowloris preflight", "close", "400")
		})
	})

	// Logon slowloris (LogonTimeout, HandshakeTimeout).
	repeat(&atk, "silent after connect", 4, 4, func(i int) error {
		return a.withClient(func(c *ampstest.Conn) error { return a.expectClose(c, "silent after connect") })
	})
	repeat(&atk, "silent after preflight", 4, 4, func(i int) error {
		return a.withClient(func(c *ampstest.Conn) error {
			status, err := preflightStatus(c, "/amps/json")
			if err != nil {
				return err
			}
			if !strings.HasPrefix(status, "HTTP/1.1 101 ") {
				return fmt.Errorf("preflight answered %q", status)
			}
			return a.expectClose(c, "silent after preflight")
		})
	})
	repeat(&atk, "logon trickled", 4, 4, func(i int) error {
		return a.withClient(func(c *ampstest.Conn) error {
			stop := trickle(c, protocol.AppendStreamFrame(nil, []byte(`{"c":"logon","cid":"1","client_name":"slow","mt":"json","a":"processed"}`), nil))
			defer stop()
			return a.expectClose(c, "logon trickled")
		})
	})

	// Connection burst: opened and dropped in four ways.
	repeat(&atk, "connection burst", burstConns, burstWorkers, func(i int) error {
		c, err := a.dial()
		if err != nil {
			return err
		}
		switch i % 4 {
		case 0:
			c.Close()
			a.out.add("connection burst", "closed at once")
		case 1:
			c.Abort()
			a.out.add("connection burst", "reset at once")
		case 2:
			c.WriteRaw([]byte("GET /am"))
			c.Close()
			a.out.add("connection burst", "half a preflight, closed")
		case 3:
			err := logonOK(c, fmt.Sprint("burst-", i))
			c.Abort()
			if err != nil {
				return err
			}
			a.out.add("connection burst", "logged on, reset")
		}
		return nil
	})

	// Subscribers that never read, while a publisher floods their topic
	// (semantics §5.4).
	atk.Go("never-reading subscribers", func() error {
		return neverReadingSubscribers(a, sb.Broker)
	})

	errs := atk.Wait()
	attackTime := time.Since(started)
	for _, err := range errs {
		t.Error(err)
	}
	t.Logf("attacks took %v; outcomes:", attackTime.Round(time.Millisecond))
	a.out.log(t)

	// Only the well-behaved pair is left.
	if !waitFor(outcomeWithin, func() bool {
		st := sb.Stats()
		return st.Connections == 2 && st.Transports["tcp"] == 2
	}) {
		st := sb.Stats()
		t.Errorf("after the attacks: %d sessions, %v open per transport, want 2 (the well-behaved pair); conns %+v",
			st.Connections, st.Transports, st.Conns)
	}
	st := sb.Stats()
	if st.SlowConsumers != neverReaders {
		t.Errorf("Stats.SlowConsumers = %d, want %d (the never-reading subscribers only)", st.SlowConsumers, neverReaders)
	}
	if st.Rejected != 0 || st.AuthFailures != 0 {
		t.Errorf("Stats.Rejected = %d, AuthFailures = %d, want 0", st.Rejected, st.AuthFailures)
	}

	n, err := good.finish()
	if err != nil {
		t.Errorf("well-behaved stream: %v", err)
	}
	t.Logf("well-behaved stream: %d messages in order, none lost", n)
	t.Logf("broker stats: messages in %d, out %d, bytes in %d MiB, slow consumers %d",
		st.MessagesIn, st.MessagesOut, st.BytesIn>>20, st.SlowConsumers)

	stopPeak()
	sb.Stop()
	memAfter := readMem(true)
	t.Logf("memory: baseline RSS %.1f MiB heap %.1f MiB; peak RSS %.1f MiB heap %.1f MiB; after shutdown RSS %.1f MiB heap %.1f MiB",
		mib(mem0.rss), mib(mem0.heapInuse), mib(memPeakSample.rss), mib(memPeakSample.heapInuse),
		mib(memAfter.rss), mib(memAfter.heapInuse))
	if g := growth(mem0.heapInuse, memPeakSample.heapInuse); g > maxHeapGrowth {
		t.Errorf("peak HeapInuse grew by %.1f MiB, bound %d MiB", mib(g), maxHeapGrowth>>20)
	}
	if g := growth(mem0.rss, memPeakSample.rss); g > maxRSSGrowth {
		t.Errorf("peak VmRSS grew by %.1f MiB, bound %d MiB", mib(g), maxRSSGrowth>>20)
	}
	if g := growth(mem0.heapInuse, memAfter.heapInuse); g > maxHeapAfterGrowth {
		t.Errorf("HeapInuse after Shutdown grew by %.1f MiB, bound %d MiB", mib(g), maxHeapAfterGrowth>>20)
	}
	checkGoroutines(t, baseGoroutines, outcomeWithin)
}

// neverReadingSubscribers connects subscribers that never read and floods
// their topic until the broker disconnects them all as slow consumers,
// then checks each sees its connection closed.
func neverReadingSubscribers(a *arena, b *broker.Broker) error {
	const topic = "flood"
	slow0 := b.Stats().SlowConsumers
	var readers []*ampstest.Conn
	defer func() {
		for _, c := range readers {
			c.Close()
		}
	}()
	for i := 0; i < neverReaders; i++ {
		c, err := a.dial()
		if err != nil {
			return err
		}
		readers = append(readers, c)
		// A fixed receive buffer makes the broker's queue fill sooner
		// than an autotuned one (up to several MiB). It must stay above
		// the loopback MSS (64 KiB): a window that can never hold one
		// segment stalls the final drain in sender-side silly window
		// avoidance, which only persist-timer probes get through.
		c.NetConn().(*net.TCPConn).SetReadBuffer(256 << 10)
		if err := logonOK(c, fmt.Sprint("never-reads-", i)); err != nil {
			return err
		}
		if err := c.Subscribe("s", topic); err != nil {
			return err
		}
	}
	pub, err := a.dial()
	if err != nil {
		return err
	}
	defer pub.Close()
	if err := logonOK(pub, "flooder"); err != nil {
		return err
	}
	body := bytes.Repeat([]byte("z"), floodBody)
	sent := 0
	for b.Stats().SlowConsumers-slow0 < neverReaders {
		if time.Now().After(a.limit) {
			return fmt.Errorf("%d of %d never-readers disconnected after %d publishes of %d bytes",
				b.Stats().SlowConsumers-slow0, neverReaders, sent, floodBody)
		}
		for range 64 {
			if err := pub.Publish(topic, body); err != nil {
				return fmt.Errorf("flood publish %d: %w", sent, err)
			}
			sent++
		}
	}
	a.out.add("flood publisher", fmt.Sprintf("published %d KiB until all were cut off", sent*floodBody>>10))
	for i, c := range readers {
		if err := a.expectClose(c, "never-reading subscriber"); err != nil {
			st := b.Stats()
			return fmt.Errorf("never-reader %d (local %v): %w\nslow consumers %d; open conns %+v\n%s",
				i, c.NetConn().LocalAddr(), err, st.SlowConsumers-slow0, st.Conns, goroutineDump())
		}
	}
	return nil
}

// randomBytes returns n bytes from a generator seeded with seed.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// lengthPrefix returns a bare 4-byte big-endian length prefix of the stream
// encoding, for frames that lie about their length.
func lengthPrefix(n uint32) []byte {
	return binary.BigEndian.AppendUint32(nil, n)
}
