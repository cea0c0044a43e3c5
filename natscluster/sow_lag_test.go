package natscluster

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/admin"
	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/natscluster/internal/natstest"
)

// lagPoll is the lag poll's interval in these tests.
const lagPoll = 10 * time.Millisecond

// awaitState polls o's state until ok says yes, failing after readyWait.
func awaitState(t *testing.T, o *OrderedBackplane, what string, ok func(broker.BackplaneState) bool) broker.BackplaneState {
	t.Helper()
	deadline := time.Now().Add(readyWait)
	for {
		s := o.State()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %+v after %v; want %s", s, readyWait, what)
		}
		time.Sleep(lagPoll)
	}
}

// orderN hands n publishes to topic "positions" to o's order and waits
// until JetStream acked each.
func orderN(t *testing.T, o *OrderedBackplane, from, n int) {
	t.Helper()
	acks := make(chan error, n)
	for i := from; i < from+n; i++ {
		rp := broker.RemotePublish{MessageType: "json", Topic: "positions", ClientName: "pub", Body: fmt.Appendf(nil, `{"id":%d,"n":%d}`, i%10, i)}
		if err := o.Order(&rp, func(err error) { acks <- err }); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		if err := <-acks; err != nil {
			t.Fatal(err)
		}
	}
}

// TestLagShowsAStalledConsumer: a node whose applying is stuck (its apply
// blocks on the first update) while another node orders more shows a lag
// that grows to what the stream holds beyond what it applied, though the
// node receives nothing it can apply, and is not catching up; once the
// apply goes on, the lag falls to 0.
func TestLagShowsAStalledConsumer(t *testing.T) {
	c := natstest.StartCluster(t, 1)
	pub := newOrdered(t, c.URL(0), "pub", SOWConfig{})
	stalled := newOrdered(t, c.URL(0), "stalled", SOWConfig{LagPollInterval: lagPoll})
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	var release sync.Once
	// Registered after newOrdered's cleanup, so it runs before it: Close
	// waits for an apply in progress.
	t.Cleanup(func() { release.Do(func() { close(gate) }) })
	var mu sync.Mutex
	applied := 0
	if err := stalled.StartOrdered(func(*broker.RemotePublish) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-gate
		mu.Lock()
		applied++
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if s := stalled.State(); s.CatchingUp || s.Lag != 0 {
		t.Fatalf("on an empty stream: %+v; want caught up, no lag", s)
	}
	orderN(t, pub, 0, 1)
	select {
	case <-entered:
	case <-time.After(readyWait):
		t.Fatalf("the first update was not applied within %v", readyWait)
	}
	const more = 9
	orderN(t, pub, 1, more)
	s := awaitState(t, stalled, fmt.Sprintf("a lag of %d", 1+more), func(s broker.BackplaneState) bool { return s.Lag == 1+more })
	mu.Lock()
	n := applied
	mu.Unlock()
	if s.CatchingUp || n != 0 {
		t.Errorf("stalled: %+v with %d applied; want not catching up, none applied", s, n)
	}
	release.Do(func() { close(gate) })
	awaitState(t, stalled, "no lag", func(s broker.BackplaneState) bool { return s.Lag == 0 })
	mu.Lock()
	defer mu.Unlock()
	if applied != 1+more {
		t.Errorf("applied %d once the lag is 0; want %d", applied, 1+more)
	}
}

// TestReadyWhileCatchingUp: a node started against a stream of 50 updates
// with a tiny CatchUpTimeout, its NATS link slow and then paused before
// the updates arrive, serves while it catches up: Ready says
// ErrCatchingUp, the admin x_ready answers 503, and Lag counts the 50
// while the link is paused; once the link flows the node catches up, is
// ready (200), has no lag, and answers sow with the records of the node
// that published them.
func TestReadyWhileCatchingUp(t *testing.T) {
	c := natstest.StartCluster(t, 1)
	a, _ := startSOWNode(t, c.URL(0), "a", 1)
	cl, err := a.Connect(context.Background(), "pub", nil)
	if err != nil {
		t.Fatal(err)
	}
	const total = 50
	for i := range total {
		if err := cl.Publish(context.Background(), "positions", fmt.Appendf(nil, `{"id":%d,"n":%d}`, i%10, i)); err != nil {
			t.Fatal(err)
		}
	}
	awaitApplied(t, a)
	want := sowView(t, a)

	proxy := natstest.NewProxy(t, c.Servers[0].Addr().String())
	obp := newOrdered(t, proxy.URL(), "late", SOWConfig{CatchUpTimeout: time.Millisecond, LagPollInterval: lagPoll})
	// The updates need a round trip after StartOrdered asked for them
	// (2 × 400 ms), by which time the link is paused.
	proxy.SetDelay(400 * time.Millisecond)
	late := ampstest.NewBroker(t, &ampstest.Options{Broker: &broker.Options{Backplane: obp, SOWTopics: sowTopics}})
	proxy.Pause()
	h := admin.NewHandler(late.Broker, nil)
	defer h.Close()
	probe := func() (int, string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/amps/instance/x_ready", nil))
		return w.Code, w.Body.String()
	}

	if err := late.Ready(); !errors.Is(err, broker.ErrCatchingUp) {
		t.Errorf("paused while catching up: Ready %v; want ErrCatchingUp", err)
	}
	if code, body := probe(); code != 503 || !strings.Contains(body, "catching up") {
		t.Errorf("paused while catching up: x_ready %d %q; want 503 catching up", code, body)
	}
	// Polls fail on the paused link; the lag stays what StartOrdered read.
	time.Sleep(5 * lagPoll)
	if st := late.Stats().Cluster; !st.CatchingUp || st.Lag != total || st.Applied != 0 {
		t.Errorf("paused while catching up: %+v; want catching up, lag %d, nothing applied", *st, total)
	}

	proxy.SetDelay(0)
	proxy.Resume()
	awaitState(t, obp, "caught up without lag", func(s broker.BackplaneState) bool { return !s.CatchingUp && s.Lag == 0 })
	if err := late.Ready(); err != nil {
		t.Errorf("caught up: Ready %v; want nil", err)
	}
	if code, body := probe(); code != 200 || body != "ready\n" {
		t.Errorf("caught up: x_ready %d %q; want 200 ready", code, body)
	}
	if got := sowView(t, late); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("SOW on the late node %v, on A %v", got, want)
	}
}
