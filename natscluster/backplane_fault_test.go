package natscluster

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/natscluster/internal/natstest"
	"github.com/ampsbroker/ampsbroker/protocol"
	"github.com/nats-io/nats.go"
)

// faultReconnectWait is how soon a node's connection tries NATS again in
// the fault tests.
const faultReconnectWait = 20 * time.Millisecond

// readPublishers reads k published messages off c and returns the "n" of
// each, per publisher ("p"), in arrival order.
func readPublishers(t *testing.T, c *ampstest.Client, k int) map[string][]int {
	t.Helper()
	got := map[string][]int{}
	for range k {
		m := c.Next()
		var v struct {
			P string
			N int
		}
		if m.Header.Command != protocol.CmdP || json.Unmarshal(m.Body, &v) != nil {
			t.Fatalf("got %s, want a published message", m)
		}
		got[v.P] = append(got[v.P], v.N)
	}
	return got
}

func seq(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// TestBackplaneLinkFaults: node B reaches its NATS node through a proxy.
// While the link is silent, both nodes keep serving their own clients, and
// what crossed neither way arrives once the link is back, in each
// publisher's order. When the link breaks, B reconnects and publishes
// cross again in both directions.
func TestBackplaneLinkFaults(t *testing.T) {
	c := natstest.StartCluster(t, 2)
	u, err := url.Parse(c.URL(1))
	if err != nil {
		t.Fatal(err)
	}
	proxy := natstest.NewProxy(t, u.Host)
	nodes := startNodesAt(t, []string{c.URL(0), proxy.URL()}, func(int) broker.Options { return broker.Options{} },
		nats.ReconnectWait(faultReconnectWait), nats.MaxReconnects(-1))
	a, b := nodes[0], nodes[1]
	subA, subB := logon(a.Broker, "sub-a"), logon(b.Broker, "sub-b")
	subA.Subscribe("s", "orders")
	subB.Subscribe("s", "orders")
	pubA, pubB := logon(a.Broker, "pub-a"), logon(b.Broker, "pub-b")
	probeA, probeB := logon(a.Broker, "probe-a"), logon(b.Broker, "probe-b")
	probeA.Subscribe("p", "probe")
	probeB.Subscribe("p", "probe")
	awaitRouted(t, pubA, "probe", probeB)
	awaitRouted(t, pubB, "probe", probeA)

	const n = 50
	publish := func(pub *ampstest.Client, who string, from, to int) {
		for i := from; i <= to; i++ {
			pub.Publish("orders", fmt.Appendf(nil, `{"p":%q,"n":%d}`, who, i))
		}
	}

	// A silent link: each node still serves its own clients at once.
	proxy.Pause()
	publish(pubA, "a", 1, n)
	publish(pubB, "b", 1, n)
	if got := readPublishers(t, subA, n); !slices.Equal(got["a"], seq(1, n)) {
		t.Errorf("during the pause A's subscriber got %v, want A's %d messages", got, n)
	}
	if got := readPublishers(t, subB, n); !slices.Equal(got["b"], seq(1, n)) {
		t.Errorf("during the pause B's subscriber got %v, want B's %d messages", got, n)
	}
	// Back: what was held crosses, once, in order.
	proxy.Resume()
	if got := readPublishers(t, subA, n); !slices.Equal(got["b"], seq(1, n)) {
		t.Errorf("after the pause A's subscriber got %v, want B's %d messages", got, n)
	}
	if got := readPublishers(t, subB, n); !slices.Equal(got["a"], seq(1, n)) {
		t.Errorf("after the pause B's subscriber got %v, want A's %d messages", got, n)
	}
	subA.ExpectNothing(50 * time.Millisecond)
	subB.ExpectNothing(0)

	// A broken link: B reconnects (nats.go subscribes again) and both
	// directions work again. What was published while it was down may be
	// lost to the other node (at most once), so the check publishes until
	// a message crosses each way.
	proxy.DropConnections()
	awaitRouted(t, pubA, "probe", probeB)
	awaitRouted(t, pubB, "probe", probeA)
	if st := b.Broker.Stats().Cluster; !st.Connected {
		t.Errorf("B's cluster stats after reconnecting: %+v", *st)
	}
	subA.ExpectNothing(0)
	subB.ExpectNothing(0)
}

// TestBackplaneNodesStop: three NATS nodes and three brokers, each broker
// given every NATS URL with its own first. When broker C stops, A and B
// go on; when B's NATS node stops, B moves to another NATS node and
// publishes cross between A and B again, both ways.
func TestBackplaneNodesStop(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	urls := make([]string, 3)
	for i := range urls {
		order := []string{c.URL(i)}
		for j := range 3 {
			if j != i {
				order = append(order, c.URL(j))
			}
		}
		urls[i] = strings.Join(order, ",")
	}
	nodes := startNodesAt(t, urls, func(int) broker.Options { return broker.Options{} },
		nats.DontRandomize(), nats.ReconnectWait(faultReconnectWait), nats.MaxReconnects(-1))
	a, b, cc := nodes[0], nodes[1], nodes[2]
	pubA, pubB := logon(a.Broker, "pub-a"), logon(b.Broker, "pub-b")
	probeA, probeB, probeC := logon(a.Broker, "probe-a"), logon(b.Broker, "probe-b"), logon(cc.Broker, "probe-c")
	for _, p := range []*ampstest.Client{probeA, probeB, probeC} {
		p.Subscribe("p", "probe")
	}
	awaitRouted(t, pubA, "probe", probeB, probeC)

	cc.Broker.Stop()
	awaitRouted(t, pubA, "probe", probeB)
	awaitRouted(t, pubB, "probe", probeA)

	c.Stop(1)
	awaitRouted(t, pubA, "probe", probeB)
	awaitRouted(t, pubB, "probe", probeA)
	if st := b.Broker.Stats().Cluster; !st.Connected {
		t.Errorf("B's cluster stats after moving to another NATS node: %+v", *st)
	}
	if got := b.bp.nc.ConnectedUrl(); got == c.URL(1) || got == "" {
		t.Errorf("B is connected to %q, want another NATS node than the stopped %s", got, c.URL(1))
	}
}
