package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
)

// fakeHub connects the fake backplanes of brokers in one process: what one
// node publishes is queued for every other node and delivered there by
// that node's own goroutine, in order, as a real backplane does.
type fakeHub struct {
	mu    sync.Mutex
	nodes []*fakeBackplane
}

// fakeQueue bounds what a fake node holds undelivered: above what any
// test here publishes, so that the fake never drops (a real backplane
// may, and the broker counts it).
const fakeQueue = 16 << 10

type fakeBackplane struct {
	hub     *fakeHub
	in      chan *broker.RemotePublish
	stop    chan struct{}
	done    chan struct{}
	started bool
	// fail, when set, is returned by every Publish.
	fail error
}

func (h *fakeHub) node(t *testing.T) *fakeBackplane {
	f := &fakeBackplane{hub: h, in: make(chan *broker.RemotePublish, fakeQueue), stop: make(chan struct{}), done: make(chan struct{})}
	h.mu.Lock()
	h.nodes = append(h.nodes, f)
	h.mu.Unlock()
	// Registered before the broker's cleanup, so it runs after it: the
	// host closes the backplane after Shutdown.
	t.Cleanup(f.close)
	return f
}

func (f *fakeBackplane) Publish(p *broker.RemotePublish) error {
	if f.fail != nil {
		return f.fail
	}
	f.hub.mu.Lock()
	defer f.hub.mu.Unlock()
	for _, n := range f.hub.nodes {
		if n == f {
			continue
		}
		cp := *p
		cp.Body = append([]byte(nil), p.Body...)
		select {
		case n.in <- &cp:
		default:
			return errors.New("fake backplane: queue full")
		}
	}
	return nil
}

func (f *fakeBackplane) Start(deliver func(*broker.RemotePublish)) error {
	f.started = true
	go func() {
		defer close(f.done)
		for {
			select {
			case <-f.stop:
				return
			case p := <-f.in:
				deliver(p)
			}
		}
	}()
	return nil
}

func (f *fakeBackplane) State() broker.BackplaneState { return broker.BackplaneState{Connected: true} }

func (f *fakeBackplane) close() {
	close(f.stop)
	if f.started {
		<-f.done
	}
}

// collector gathers the bodies an in-process subscription receives.
type collector struct {
	mu   sync.Mutex
	msgs []broker.Message
	got  chan struct{} // signalled on every message
}

func newCollector() *collector { return &collector{got: make(chan struct{}, 1)} }

func (c *collector) handle(m broker.Message) {
	c.mu.Lock()
	m.Data = append([]byte(nil), m.Data...)
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
	select {
	case c.got <- struct{}{}:
	default:
	}
}

// await waits until a message with body last arrived and returns every
// message received so far.
func (c *collector) await(t *testing.T, last string) []broker.Message {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		for _, m := range c.msgs {
			if string(m.Data) == last {
				out := append([]broker.Message(nil), c.msgs...)
				c.mu.Unlock()
				return out
			}
		}
		n := len(c.msgs)
		c.mu.Unlock()
		select {
		case <-c.got:
		case <-deadline:
			t.Fatalf("%q never arrived; %d messages did", last, n)
		}
	}
}

func body(n int) string { return fmt.Sprintf(`{"n":%d}`, n) }

// bpBodies lists the bodies of ms.
func bpBodies(ms []broker.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Data)
	}
	return out
}

func newNode(t *testing.T, hub *fakeHub, o broker.Options) (*broker.Broker, *fakeBackplane) {
	bp := hub.node(t)
	o.Backplane = bp
	b := broker.New(&o)
	t.Cleanup(func() { b.Close() })
	return b, bp
}

func connect(t *testing.T, b *broker.Broker, name string) *broker.Client {
	c, err := b.Connect(context.Background(), name, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func subscribe(t *testing.T, c *broker.Client, topic, filter string) *collector {
	col := newCollector()
	var o *broker.SubscribeOptions
	if filter != "" {
		o = &broker.SubscribeOptions{Filter: filter}
	}
	if _, err := c.Subscribe(context.Background(), topic, col.handle, o); err != nil {
		t.Fatal(err)
	}
	return col
}

// TestBackplaneRoutesAcrossNodes: a publish on node A reaches the exact,
// regex and filtered subscriptions of node B once each, in the order it
// was published, with the publisher's client name for CLIENT_NAME(); A's
// own subscribers get it once (B never hands it back).
func TestBackplaneRoutesAcrossNodes(t *testing.T) {
	hub := &fakeHub{}
	a, _ := newNode(t, hub, broker.Options{})
	b, _ := newNode(t, hub, broker.Options{})
	ctx := context.Background()
	sub := connect(t, b, "sub")
	exact := subscribe(t, sub, "orders", "")
	regex := subscribe(t, sub, "^ord", "")
	filtered := subscribe(t, sub, "orders", "/n > 10 OR /n = 0")
	byName := subscribe(t, sub, "orders", "CLIENT_NAME() = 'pub' OR /n = 0")
	local := subscribe(t, connect(t, a, "local"), "orders", "")

	const n = 50
	pub := connect(t, a, "pub")
	other := connect(t, a, "other")
	var want, wantFiltered []string
	for i := 1; i <= n; i++ {
		if err := pub.Publish(ctx, "orders", []byte(body(i))); err != nil {
			t.Fatal(err)
		}
		want = append(want, body(i))
		if i > 10 {
			wantFiltered = append(wantFiltered, body(i))
		}
		// Not for the exact subscriptions, nor the regex one.
		if err := pub.Publish(ctx, "trades", []byte(body(i))); err != nil {
			t.Fatal(err)
		}
	}
	// The end mark comes from another publisher, after pub's: each
	// collector has everything of pub's once it has the mark, since one
	// node's publishes cross in the order they were accepted.
	if err := other.Publish(ctx, "orders", []byte(body(0))); err != nil {
		t.Fatal(err)
	}
	want = append(want, body(0))
	wantFiltered = append(wantFiltered, body(0))
	wantByName := want
	for name, c := range map[string]*collector{"exact": exact, "regex": regex, "local": local} {
		if got := bpBodies(c.await(t, body(0))); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s subscription got %v, want %v", name, got, want)
		}
	}
	if got := bpBodies(filtered.await(t, body(0))); strings.Join(got, " ") != strings.Join(wantFiltered, " ") {
		t.Errorf("filtered subscription got %v, want %v", got, wantFiltered)
	}
	if got := bpBodies(byName.await(t, body(0))); strings.Join(got, " ") != strings.Join(wantByName, " ") {
		t.Errorf("CLIENT_NAME() subscription got %v, want %v", got, wantByName)
	}
	sa, sb := a.Stats().Cluster, b.Stats().Cluster
	if sa == nil || sb == nil {
		t.Fatalf("Stats().Cluster is nil with a backplane: %v %v", sa, sb)
	}
	if sa.Published != 2*n+1 || sa.Received != 0 || sb.Published != 0 || sb.Received != 2*n+1 || !sb.Connected {
		t.Errorf("cluster stats: A %+v, B %+v; want A published %d, B received as many and published none", *sa, *sb, 2*n+1)
	}
	if sb.ReceivedDropped != 0 || sa.PublishFailures != 0 {
		t.Errorf("cluster stats: A %+v, B %+v; want nothing dropped or failed", *sa, *sb)
	}
	if got := b.Stats().MessagesIn; got != 0 {
		t.Errorf("B counts %d MessagesIn; remote publishes are counted in Cluster.Received only", got)
	}
}

// TestBackplaneKeepsSOWTopicsLocal: publishes to a SOW topic do not cross
// (not yet: they need one order per topic across nodes), and a remote
// publish to a topic that is a SOW topic on the receiving node is dropped
// and counted.
func TestBackplaneKeepsSOWTopicsLocal(t *testing.T) {
	hub := &fakeHub{}
	sow := []broker.SOWTopic{{Name: "positions", Keys: []string{"/id"}}}
	a, _ := newNode(t, hub, broker.Options{SOWTopics: sow})
	b, _ := newNode(t, hub, broker.Options{})
	c, _ := newNode(t, hub, broker.Options{SOWTopics: []broker.SOWTopic{{Name: "plain", Keys: []string{"/id"}}}})
	ctx := context.Background()
	atB := subscribe(t, connect(t, b, "sub"), "positions|plain", "")
	atC := subscribe(t, connect(t, c, "sub"), "positions|plain", "")
	pub := connect(t, a, "pub")
	if err := pub.Publish(ctx, "positions", []byte(`{"id":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, "plain", []byte(`{"id":2}`)); err != nil {
		t.Fatal(err)
	}
	if got := bpBodies(atB.await(t, `{"id":2}`)); len(got) != 1 {
		t.Errorf("B got %v; want only the plain topic's message", got)
	}
	if st := a.Stats().Cluster; st.Published != 1 {
		t.Errorf("A handed %d publishes to the backplane, want 1 (the SOW topic's stays local)", st.Published)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().Cluster.ReceivedDropped != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("C's cluster stats %+v: the remote publish to its SOW topic was not counted as dropped", *c.Stats().Cluster)
		}
		time.Sleep(5 * time.Millisecond)
	}
	atC.mu.Lock()
	defer atC.mu.Unlock()
	if len(atC.msgs) != 0 {
		t.Errorf("C routed %v to its SOW topic's subscription", bpBodies(atC.msgs))
	}
}

// TestBackplaneJournaledOnceAtTheOrigin: a publish to a journaled topic is
// journaled by the node that accepted it only, and reaches the other
// node's subscribers with the origin's bookmark when the nodes share the
// journal's id.
func TestBackplaneJournaledOnceAtTheOrigin(t *testing.T) {
	hub := &fakeHub{}
	ja, jb := broker.NewMemJournal(0, 0), broker.NewMemJournal(0, 0)
	t.Cleanup(func() { ja.Close(); jb.Close() })
	a, _ := newNode(t, hub, broker.Options{Journal: ja})
	b, _ := newNode(t, hub, broker.Options{Journal: jb})
	atB := subscribe(t, connect(t, b, "sub"), "orders", "")
	atA := subscribe(t, connect(t, a, "sub"), "orders", "")
	pub := connect(t, a, "pub")
	if err := pub.Publish(context.Background(), "orders", []byte(body(1))); err != nil {
		t.Fatal(err)
	}
	mb := atB.await(t, body(1))[0]
	ma := atA.await(t, body(1))[0]
	if ea, eb := a.Stats().Journal.Entries, b.Stats().Journal.Entries; ea != 1 || eb != 0 {
		t.Errorf("journal entries: %d at the origin, %d at the receiver; want 1 and 0", ea, eb)
	}
	if ma.Bookmark == "" || mb.Bookmark != ma.Bookmark {
		t.Errorf("bookmarks: %q at the origin, %q at the receiver; want the origin's on both", ma.Bookmark, mb.Bookmark)
	}
}

// TestBackplaneFailureDoesNotRefuseThePublish: a publish the backplane
// refuses is still accepted and routed locally; the failure is counted.
func TestBackplaneFailureDoesNotRefuseThePublish(t *testing.T) {
	hub := &fakeHub{}
	bp := hub.node(t)
	bp.fail = errors.New("link down")
	a := broker.New(&broker.Options{Backplane: bp})
	t.Cleanup(func() { a.Close() })
	local := subscribe(t, connect(t, a, "sub"), "orders", "")
	pub := connect(t, a, "pub")
	for i := 1; i <= 3; i++ {
		if err := pub.Publish(context.Background(), "orders", []byte(body(i))); err != nil {
			t.Fatalf("publish %d refused: %v", i, err)
		}
	}
	if got := bpBodies(local.await(t, body(3))); len(got) != 3 {
		t.Errorf("local subscriber got %v, want 3 messages", got)
	}
	if st := a.Stats().Cluster; st.Published != 3 || st.PublishFailures != 3 {
		t.Errorf("cluster stats %+v; want 3 published, 3 failed", *st)
	}
}

// TestBackplaneEntitlementsWhereTheSubscriberIs: a regex subscription on
// node B gets only the remote publishes its user may read there.
func TestBackplaneEntitlementsWhereTheSubscriberIs(t *testing.T) {
	hub := &fakeHub{}
	ent := broker.EntitlerFunc(func(id *broker.Identity, topic string, p broker.Permission) bool {
		return id.ClientName != "bob" || !strings.Contains(topic, "secret")
	})
	b := ampstest.NewBroker(t, &ampstest.Options{Broker: &broker.Options{Backplane: hub.node(t)}, Entitler: ent})
	// A stops first (cleanups run last registered first), so B's leak
	// check sees no goroutine of A.
	a, _ := newNode(t, hub, broker.Options{})
	bob := b.Dial(b.TCPURL(), nil)
	bob.Logon("bob")
	bob.Subscribe("s1", "^desk/")
	pub := connect(t, a, "pub")
	for _, topic := range []string{"desk/secret", "desk/public"} {
		if err := pub.Publish(context.Background(), topic, []byte(`{"t":"`+topic+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	m := bob.Next()
	if m.Header.Topic != "desk/public" {
		t.Errorf("bob got %s first; want only desk/public", m)
	}
	var v map[string]string
	if err := json.Unmarshal(m.Body, &v); err != nil || v["t"] != "desk/public" {
		t.Errorf("bob got body %q", m.Body)
	}
	bob.ExpectNothing(100 * time.Millisecond)
}

// TestBackplanePerPublisherOrder: publishers on node A publish at once,
// each to a topic of its own; a regex subscription on node B gets every
// message of each publisher once, in that publisher's order.
func TestBackplanePerPublisherOrder(t *testing.T) {
	hub := &fakeHub{}
	a, _ := newNode(t, hub, broker.Options{})
	b, _ := newNode(t, hub, broker.Options{})
	all := subscribe(t, connect(t, b, "sub"), "^feed/", "")
	const publishers, each = 4, 200
	publishAtOnce(t, a, publishers, each, func(p, i int) (string, []byte) {
		return fmt.Sprintf("feed/%d", p), []byte(body(i))
	})
	deadline := time.After(10 * time.Second)
	for {
		all.mu.Lock()
		n := len(all.msgs)
		all.mu.Unlock()
		if n >= publishers*each {
			break
		}
		select {
		case <-all.got:
		case <-deadline:
			t.Fatalf("B got %d of %d messages", n, publishers*each)
		}
	}
	next := map[string]int{}
	all.mu.Lock()
	defer all.mu.Unlock()
	for _, m := range all.msgs {
		next[m.Topic]++
		if want := body(next[m.Topic]); string(m.Data) != want {
			t.Fatalf("on %s B got %s, want %s next", m.Topic, m.Data, want)
		}
	}
	if len(all.msgs) != publishers*each {
		t.Errorf("B got %d messages, want %d", len(all.msgs), publishers*each)
	}
}

// TestBackplaneOneOrderPerTopic: publishers on node A publish to one topic
// at once; the subscribers of A and of B get A's publishes in one order.
func TestBackplaneOneOrderPerTopic(t *testing.T) {
	hub := &fakeHub{}
	a, _ := newNode(t, hub, broker.Options{})
	b, _ := newNode(t, hub, broker.Options{})
	atA := subscribe(t, connect(t, a, "sub"), "orders", "")
	atB := subscribe(t, connect(t, b, "sub"), "orders", "")
	const publishers, each = 16, 100
	publishAtOnce(t, a, publishers, each, func(p, i int) (string, []byte) {
		return "orders", fmt.Appendf(nil, `{"p":%d,"n":%d}`, p, i)
	})
	last := fmt.Sprintf(`{"p":%d,"n":%d}`, publishers, 0)
	if err := connect(t, a, "last").Publish(context.Background(), "orders", []byte(last)); err != nil {
		t.Fatal(err)
	}
	gotA, gotB := bpBodies(atA.await(t, last)), bpBodies(atB.await(t, last))
	if len(gotA) != publishers*each+1 || strings.Join(gotA, " ") != strings.Join(gotB, " ") {
		t.Errorf("A's subscriber got %d messages, B's %d, in another order (first difference at %d)", len(gotA), len(gotB), firstDifference(gotA, gotB))
	}
}

// firstDifference is the first index where a and b differ.
func firstDifference(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// publishAtOnce has publishers in-process clients of b publish each
// messages at once, message i (from 1) of publisher p being msg(p, i),
// and returns when all are published.
func publishAtOnce(t *testing.T, b *broker.Broker, publishers, each int, msg func(p, i int) (topic string, body []byte)) {
	var wg sync.WaitGroup
	for p := range publishers {
		pub := connect(t, b, fmt.Sprintf("pub%d", p))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= each; i++ {
				topic, body := msg(p, i)
				if err := pub.Publish(context.Background(), topic, body); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}
