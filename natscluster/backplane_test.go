package natscluster

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/natscluster/internal/natstest"
	"github.com/ampsbroker/ampsbroker/protocol"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// readyWait bounds the wait for every node's subscription to reach the
// other NATS nodes.
const readyWait = 10 * time.Second

// node is one ampsbroker node of a test cluster, on its own NATS node.
type node struct {
	*ampstest.Broker
	bp *Backplane
}

// startNodes starts one broker per NATS node of c, each with a backplane
// on its own connection. The test's cleanup stops each broker, then its
// backplane, then its connection.
func startNodes(t testing.TB, c *natstest.Cluster, opts broker.Options) []node {
	t.Helper()
	urls := make([]string, len(c.Servers))
	for i := range urls {
		urls[i] = c.URL(i)
	}
	return startNodesAt(t, urls, func(int) broker.Options { return opts })
}

// startNodesAt is startNodes with one node per NATS URL, node i with
// options opts(i), connected with extra options besides NoEcho.
func startNodesAt(t testing.TB, urls []string, opts func(i int) broker.Options, extra ...nats.Option) []node {
	t.Helper()
	nodes := make([]node, len(urls))
	for i, url := range urls {
		nc := natstest.Connect(t, url, append([]nats.Option{nats.NoEcho()}, extra...)...)
		bp, err := NewBackplane(nc, BackplaneConfig{NodeID: fmt.Sprintf("node%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := bp.Close(); err != nil {
				t.Errorf("backplane %d: Close: %v", i, err)
			}
		})
		o := opts(i)
		o.Backplane = bp
		nodes[i] = node{ampstest.NewBroker(t, &ampstest.Options{Broker: &o}), bp}
	}
	return nodes
}

// logon connects a raw TCP client to b and logs it on as name.
func logon(b *ampstest.Broker, name string) *ampstest.Client {
	cl := b.Dial(b.TCPURL(), &ampstest.DialOptions{Timeout: readyWait})
	cl.Logon(name)
	return cl
}

// awaitRouted publishes probes from pub (on one node) to topic until each
// of probes (on other nodes, subscribed to topic) got one: the nodes'
// subscriptions have then reached the publisher's NATS node. Each call's
// probes carry a tag of their own, so a probe of an earlier call still
// arriving does not count.
func awaitRouted(t testing.TB, pub *ampstest.Client, topic string, probes ...*ampstest.Client) {
	t.Helper()
	probe := fmt.Appendf(nil, `{"probe":%d}`, probeTag.Add(1))
	deadline := time.Now().Add(readyWait)
	waiting := slices.Clone(probes)
	for len(waiting) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d nodes never got a publish of another node within %v", len(waiting), readyWait)
		}
		pub.Publish(topic, probe)
		waiting = slices.DeleteFunc(waiting, func(c *ampstest.Client) bool {
			m, err := c.Conn.ReadWithin(20 * time.Millisecond)
			return err == nil && m.Header.Command == protocol.CmdP && bytes.Equal(m.Body, probe)
		})
	}
}

// probeTag numbers the calls of awaitRouted.
var probeTag atomic.Int64

// subscribeFiltered subscribes c to topic with a content filter and waits
// for the subscription's processed ack.
func subscribeFiltered(c *ampstest.Client, id, topic, filter string) {
	c.Send(&protocol.Header{Command: protocol.CmdSubscribe, CommandID: id, SubID: id, Topic: topic, Filter: filter, AckType: protocol.AckProcessed}, nil)
	if m := c.AwaitAck(id, protocol.AckProcessed); m.Header.Status != protocol.StatusSuccess {
		panic(fmt.Sprintf("subscribe %s to %s where %s: %s", id, topic, filter, m))
	}
}

// readUntil reads the "n" of every published message c gets until one
// with n = last, and returns them in arrival order.
func readUntil(t *testing.T, c *ampstest.Client, last int) []int {
	t.Helper()
	var got []int
	for {
		m := c.Next()
		if m.Header.Command != protocol.CmdP {
			t.Fatalf("got %s, want a published message", m)
		}
		var v struct{ N int }
		if err := json.Unmarshal(m.Body, &v); err != nil {
			t.Fatalf("body %q: %v", m.Body, err)
		}
		got = append(got, v.N)
		if v.N == last {
			return got
		}
	}
}

// TestBackplaneThreeNodes: three NATS nodes, three brokers each on its own
// NATS node; a publisher on A and subscribers on A, B and C (exact topic,
// regex topic, content filter): every subscriber gets every message it
// wants exactly once, in the order published.
func TestBackplaneThreeNodes(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	nodes := startNodes(t, c, broker.Options{})
	a, b, cc := nodes[0], nodes[1], nodes[2]

	subs := map[string]*ampstest.Client{
		"A exact":    logon(a.Broker, "a-exact"),
		"B exact":    logon(b.Broker, "b-exact"),
		"B regex":    logon(b.Broker, "b-regex"),
		"C filtered": logon(cc.Broker, "c-filtered"),
		"C exact":    logon(cc.Broker, "c-exact"),
	}
	subs["A exact"].Subscribe("s", "orders")
	subs["B exact"].Subscribe("s", "orders")
	subs["B regex"].Subscribe("s", "^ord")
	subscribeFiltered(subs["C filtered"], "s", "orders", "/n > 150")
	subs["C exact"].Subscribe("s", "orders")
	probeB, probeC := logon(b.Broker, "probe-b"), logon(cc.Broker, "probe-c")
	probeB.Subscribe("p", "probe")
	probeC.Subscribe("p", "probe")

	pub := logon(a.Broker, "pub")
	awaitRouted(t, pub, "probe", probeB, probeC)

	const n, last = 200, 1000
	var all, above []int
	for i := 1; i <= n; i++ {
		pub.Publish("orders", fmt.Appendf(nil, `{"n":%d}`, i))
		pub.Publish("trades", fmt.Appendf(nil, `{"n":%d}`, i)) // nobody's
		all = append(all, i)
		if i > 150 {
			above = append(above, i)
		}
	}
	pub.Publish("orders", fmt.Appendf(nil, `{"n":%d}`, last))
	all, above = append(all, last), append(above, last)
	for name, s := range subs {
		want := all
		if name == "C filtered" {
			want = above
		}
		if got := readUntil(t, s, last); !slices.Equal(got, want) {
			t.Errorf("%s got %v, want %v", name, got, want)
		}
		// A duplicate would follow the last message from the same path.
		s.ExpectNothing(50 * time.Millisecond)
	}
	sa, sb := a.Broker.Stats().Cluster, b.Broker.Stats().Cluster
	if !sa.Connected || !sb.Connected || sb.Published != 0 || sa.PublishFailures != 0 || sb.ReceivedDropped != 0 {
		t.Errorf("cluster stats: A %+v, B %+v", *sa, *sb)
	}
	if st := a.bp.Stats(); st.Received != 0 || st.Malformed != 0 || st.Dropped != 0 {
		t.Errorf("A's backplane got another node's publish, or dropped some: %+v", st)
	}
}

// TestRemotePublishCodec: what a node encodes decodes to the same publish
// whatever bytes its fields hold, and a truncated or foreign message is
// refused.
func TestRemotePublishCodec(t *testing.T) {
	p := &Backplane{node: "node\x00a", instance: "i\xff"}
	in := broker.RemotePublish{ClientName: "pub\r\nX: y", CorrelationID: "c|ü", Sequence: 1 << 40, Position: 7, JournalID: 1<<64 - 1, After: 1<<63 + 5, Body: []byte("{\"a\":1}\n")}
	data := p.encode(&in)
	binary.LittleEndian.PutUint64(data[numberAt:], 1<<50+3) // as the sender stamps it
	var out broker.RemotePublish
	from, err := decode(data, &out)
	if want := (origin{p.node, p.instance, 1<<50 + 3}); err != nil || from != want {
		t.Fatalf("decode: origin %+v, err %v; want %+v", from, err, want)
	}
	out.Body = append([]byte(nil), out.Body...)
	if fmt.Sprint(out) != fmt.Sprint(in) {
		t.Errorf("decoded %+v, want %+v", out, in)
	}
	for _, bad := range [][]byte{nil, data[:5], append([]byte{remoteVersion + 1}, data[1:]...)} {
		if _, err := decode(bad, &out); err == nil {
			t.Errorf("decode(%q) took it", bad)
		}
	}
}

// TestBackplaneBoundedReceive: a node whose broker does not keep up holds
// at most PendingMsgs publishes of other nodes; NATS drops the rest, and
// State reports them lost.
func TestBackplaneBoundedReceive(t *testing.T) {
	c := natstest.StartCluster(t, 1)
	sender, err := NewBackplane(natstest.Connect(t, c.URL(0), nats.NoEcho()), BackplaneConfig{NodeID: "sender"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sender.Close() })
	const pending = 4
	slow, err := NewBackplane(natstest.Connect(t, c.URL(0), nats.NoEcho()), BackplaneConfig{NodeID: "slow", PendingMsgs: pending})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slow.Close() })
	release := make(chan struct{})
	var got atomic.Int64
	if err := slow.Start(func(*broker.RemotePublish) {
		<-release
		got.Add(1)
	}); err != nil {
		t.Fatal(err)
	}
	const n = 100
	for i := range n {
		if err := sender.Publish(&broker.RemotePublish{MessageType: "json", Topic: "t", Body: fmt.Appendf(nil, `{"n":%d}`, i)}); err != nil {
			t.Fatal(err)
		}
	}
	// Released once the subscription took in or dropped all n (it counts
	// the one in the handler as pending): a message still on its way
	// when the handler runs again would be delivered, not dropped.
	deadline := time.Now().Add(readyWait)
	for {
		queued, _, err := slow.sub.Pending()
		if err != nil {
			t.Fatal(err)
		}
		if slow.State().Lost+int64(queued) >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d queued within %v: %+v", queued, readyWait, slow.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if slow.State().Lost == 0 {
		t.Fatalf("nothing reported lost: %+v", slow.Stats())
	}
	close(release)
	for slow.State().Lost+got.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("delivered %d, lost %d of %d", got.Load(), slow.State().Lost, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// One is in the handler, pending more wait: the rest were dropped.
	if d := got.Load(); d > pending+1 {
		t.Errorf("delivered %d with a pending limit of %d", d, pending)
	}
}

// TestBackplaneRefusesWhatNATSCannotCarry: a publish larger than the
// server's max_payload is refused by Publish (so the broker counts it),
// not lost on the way.
func TestBackplaneRefusesWhatNATSCannotCarry(t *testing.T) {
	const maxPayload = 4 << 10
	c := natstest.StartClusterWith(t, 1, func(o *server.Options) { o.MaxPayload = maxPayload })
	bp, err := NewBackplane(natstest.Connect(t, c.URL(0)), BackplaneConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bp.Close() })
	small := &broker.RemotePublish{MessageType: "json", Topic: "t", Body: make([]byte, maxPayload/2)}
	large := &broker.RemotePublish{MessageType: "json", Topic: "t", Body: make([]byte, maxPayload)}
	if err := bp.Publish(small); err != nil {
		t.Errorf("a publish within max_payload: %v", err)
	}
	if err := bp.Publish(large); !errors.Is(err, ErrPublishTooLarge) {
		t.Errorf("a publish beyond max_payload: %v, want ErrPublishTooLarge", err)
	}
}

// TestBackplaneForgetsQuietInstances: what a node keeps per instance of
// another node (one per node restart) goes once the instance was not
// heard of for forgetPeerAfter; an instance heard of meanwhile stays.
func TestBackplaneForgetsQuietInstances(t *testing.T) {
	c := natstest.StartCluster(t, 1)
	p, err := NewBackplane(natstest.Connect(t, c.URL(0)), BackplaneConfig{NodeID: "n"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	t0 := time.Now()
	const restarts = 100
	for i := range restarts {
		p.noteSeen(origin{node: "other", instance: fmt.Sprint("dead", i), number: 1}, t0)
	}
	p.noteSeen(origin{node: "other", instance: "alive", number: 1}, t0.Add(forgetPeerAfter/2))
	p.noteSeen(origin{node: "other", instance: "new", number: 1}, t0.Add(forgetPeerAfter+time.Second))
	p.peersMu.Lock()
	var kept []string
	for id := range p.peers {
		kept = append(kept, id)
	}
	p.peersMu.Unlock()
	slices.Sort(kept)
	if want := []string{"alive", "new"}; !slices.Equal(kept, want) {
		t.Errorf("instances kept %d (%.40v…); want %v", len(kept), kept, want)
	}
}
