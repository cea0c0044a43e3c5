package stresstest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
)

// goodStream is a well-behaved publisher and subscriber exchanging a
// numbered stream on one topic. The publisher keeps at most goodWindow
// messages ahead of what the subscriber has read, so the stream alone never
// comes near the broker's outbound budget: if the subscriber is cut off or
// loses a message, hostile clients did it.
type goodStream struct {
	pub, sub *ampstest.Conn
	stopCh   chan struct{}
	subDone  chan struct{}
	received atomic.Int64
	sent     int64 // set by the publisher before it returns
	crew     crew
}

const (
	goodTopic = "good"
	// goodWindow is how many messages the publisher may be ahead of the
	// subscriber: 64 messages of about 30 bytes, far below any outbound
	// budget used here.
	goodWindow = 64
)

// startGoodStream connects both clients (the publisher through an HTTP
// preflight, wire spec §4, the subscriber with plain framing) and starts
// the stream. It runs until stop; at least minMessages are sent.
func startGoodStream(addr string, limit time.Time, minMessages int64) (*goodStream, error) {
	g := &goodStream{stopCh: make(chan struct{}), subDone: make(chan struct{})}
	var err error
	if g.sub, err = dialClient(addr, limit); err != nil {
		return nil, err
	}
	if err := logonOK(g.sub, "good-sub"); err != nil {
		g.sub.Close()
		return nil, err
	}
	if err := g.sub.Subscribe(goodTopic, goodTopic); err != nil {
		g.sub.Close()
		return nil, err
	}
	if g.pub, err = dialClient(addr, limit); err != nil {
		g.sub.Close()
		return nil, err
	}
	status, err := preflightStatus(g.pub, "/amps/json")
	if err == nil && !strings.HasPrefix(status, "HTTP/1.1 101 ") {
		err = fmt.Errorf("preflight answered %q, want 101", status)
	}
	if err == nil {
		err = logonOK(g.pub, "good-pub")
	}
	if err != nil {
		g.sub.Close()
		g.pub.Close()
		return nil, err
	}
	g.crew.Go("good subscriber", g.subscribe)
	g.crew.Go("good publisher", func() error { return g.publish(limit, minMessages) })
	return g, nil
}

func (g *goodStream) publish(limit time.Time, minMessages int64) error {
	var n int64
	stopped := false
	for {
		if !stopped {
			select {
			case <-g.stopCh:
				stopped = true
			default:
			}
		}
		if stopped && n >= minMessages {
			break
		}
		for n-g.received.Load() >= goodWindow {
			select {
			case <-g.subDone:
				return fmt.Errorf("subscriber ended after %d messages; %d sent", g.received.Load(), n)
			case <-time.After(time.Millisecond):
			}
			if time.Now().After(limit) {
				return fmt.Errorf("subscriber stuck at %d of %d messages at the test's deadline", g.received.Load(), n)
			}
		}
		if err := g.pub.Publish(goodTopic, fmt.Appendf(nil, `{"n":%d}`, n)); err != nil {
			return fmt.Errorf("publish %d: %w", n, err)
		}
		n++
	}
	g.sent = n
	return g.pub.Publish(goodTopic, fmt.Appendf(nil, `{"end":%d}`, n))
}

// subscribe checks every delivery: right topic and subscription, numbers
// consecutive from 0, then the end marker naming how many were sent.
func (g *goodStream) subscribe() error {
	defer close(g.subDone)
	var next int64
	for {
		f, err := g.sub.Read()
		if err != nil {
			return fmt.Errorf("after %d messages: %w", next, err)
		}
		if f.Field("c") == "heartbeat" {
			continue
		}
		if f.Field("c") != "p" || f.Field("t") != goodTopic || f.Field("sids") != goodTopic {
			return fmt.Errorf("after %d messages: unexpected %s", next, f)
		}
		var m struct{ N, End *int64 }
		if err := json.Unmarshal(f.Body, &m); err != nil || (m.N == nil) == (m.End == nil) {
			return fmt.Errorf("after %d messages: bad body %q", next, f.Body)
		}
		if m.End != nil {
			if *m.End != next {
				return fmt.Errorf("end marker says %d messages were sent, %d arrived", *m.End, next)
			}
			return nil
		}
		if *m.N != next {
			return fmt.Errorf("message %d arrived when %d was expected: lost or reordered", *m.N, next)
		}
		next++
		g.received.Store(next)
	}
}

// finish stops the publisher, waits for the subscriber to see the end
// marker, and returns how many messages went through in order.
func (g *goodStream) finish() (int64, error) {
	close(g.stopCh)
	errs := g.crew.Wait()
	g.pub.Close()
	g.sub.Close()
	return g.received.Load(), errors.Join(errs...)
}
