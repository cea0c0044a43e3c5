package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// sowTopicXML is the SOW topic every node of the embedded cluster defines.
const sowTopicXML = `<SOW><Topic><Name>positions</Name><MessageType>json</MessageType><Key>/id</Key><Durability>transient</Durability></Topic></SOW>`

// TestSingleBinaryCluster: three nodes, each running its own embedded NATS
// server routed to the others (one from its file's Embedded element, two
// from -nats-embed flags), are one cluster with no separate nats-server: a
// publish on node 1 reaches a subscriber on node 3, a SOW publish on node 2
// (on a stream with three replicas) is answered by a sow query on node 1,
// and with node 3 stopped the other two still exchange publishes and SOW
// records.
func TestSingleBinaryCluster(t *testing.T) {
	dir := t.TempDir()
	var routePorts []string
	for range 3 {
		routePorts = append(routePorts, ampstest.FreePort(t))
	}
	routes := strings.Join(routePorts, ",")
	file := func(name, extra string) string {
		p := filepath.Join(dir, name+".xml")
		if err := os.WriteFile(p, []byte(`<AMPSConfig><Name>cluster</Name>
<Transports><Transport><Name>tcp</Name><Type>tcp</Type><InetAddr>127.0.0.1:0</InetAddr><Protocol>amps</Protocol></Transport></Transports>
`+sowTopicXML+extra+`
</AMPSConfig>`), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var routeXML string
	for _, r := range routePorts {
		routeXML += "<Route>nats-route://" + r + "</Route>"
	}
	n1 := file("n1", `<NATSCluster><Embedded><Listen>127.0.0.1:0</Listen><ClusterListen>`+routePorts[0]+`</ClusterListen>`+routeXML+
		`<ServerName>n1</ServerName><StoreDirectory>`+filepath.Join(dir, "n1")+`</StoreDirectory></Embedded></NATSCluster>`)
	args := [][]string{{"-config", n1, "-sow-replicas", "3"}}
	for i := 1; i < 3; i++ {
		args = append(args, []string{"-config", file(fmt.Sprintf("n%d", i+1), ""), "-sow-replicas", "3",
			"-nats-embed", "127.0.0.1:0", "-nats-embed-cluster", routePorts[i], "-nats-embed-routes", routes,
			"-nats-embed-name", fmt.Sprintf("n%d", i+1), "-nats-embed-store", filepath.Join(dir, fmt.Sprintf("n%d", i+1))})
	}
	// A node creates its R3 stream once all three servers are up, so the
	// three start together.
	var waits []func() string
	var stops []func()
	for _, a := range args {
		w, s := launchNode(t, a...)
		waits, stops = append(waits, w), append(stops, s)
	}
	var addrs []string
	for _, w := range waits {
		addrs = append(addrs, w())
	}
	dial := func(i int, name string) *ampstest.Client {
		cl := ampstest.Dial(t, "tcp://"+addrs[i]+"/amps/json", &ampstest.DialOptions{Timeout: testWait})
		cl.Logon(name)
		return cl
	}
	pub1, pub2 := dial(0, "pub1"), dial(1, "pub2")
	sub3 := dial(2, "sub3")
	sub3.Subscribe("s", "orders")
	crosses(t, pub1, sub3, "orders", `{"n":1}`)

	sowPublish(t, pub2, "p1", `{"id":1,"qty":5}`)
	q1 := dial(0, "query1")
	awaitSOW(t, q1, `{"id":1,"qty":5}`)

	// Node 3 (and its NATS server) goes away; two of three servers still
	// make a JetStream quorum.
	stops[2]()
	sub2 := dial(1, "sub2")
	sub2.Subscribe("s", "orders")
	crosses(t, pub1, sub2, "orders", `{"n":2}`)
	sowPublish(t, pub1, "p2", `{"id":1,"qty":6}`)
	awaitSOW(t, dial(1, "query2"), `{"id":1,"qty":6}`)
}

// crosses publishes body to topic with pub until sub receives it (the
// subscriber's interest may still be on its way to pub's node).
func crosses(t *testing.T, pub, sub *ampstest.Client, topic, body string) {
	t.Helper()
	deadline := time.Now().Add(testWait)
	for {
		pub.Publish(topic, []byte(body))
		m, err := sub.Conn.ReadWithin(20 * time.Millisecond)
		if err == nil {
			if m.Header.Command != protocol.CmdP || string(m.Body) != body {
				t.Fatalf("subscriber got %s, want %s", m, body)
			}
			// Drain the copies of the retries that crossed too.
			for {
				if _, err := sub.Conn.ReadWithin(50 * time.Millisecond); err != nil {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s on %s did not cross within %v", body, topic, testWait)
		}
	}
}

// sowPublish publishes body to the SOW topic and waits for its persisted
// ack.
func sowPublish(t *testing.T, pub *ampstest.Client, cid, body string) {
	t.Helper()
	pub.Send(&protocol.Header{Command: protocol.CmdPublish, CommandID: cid, Topic: "positions", AckType: protocol.AckPersisted}, []byte(body))
	if a := pub.AwaitAck(cid, protocol.AckPersisted); a.Header.Status != protocol.StatusSuccess {
		t.Fatalf("SOW publish %s: %s", body, a)
	}
}

// awaitSOW queries the SOW topic with q until its one record is want.
func awaitSOW(t *testing.T, q *ampstest.Client, want string) {
	t.Helper()
	deadline := time.Now().Add(testWait)
	for {
		q.SendJSON(map[string]any{"c": "sow", "cid": "q", "t": "positions", "bs": 10}, nil)
		var got []string
		for m := q.Next(); m.Header.Command != "group_end"; m = q.Next() {
			if m.Header.Command == "sow" {
				recs, err := m.Records()
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range recs {
					got = append(got, string(r.Data))
				}
			}
		}
		if len(got) == 1 && got[0] == want {
			return
		}
		if len(got) > 1 || time.Now().After(deadline) {
			t.Fatalf("sow: %q; want the one record %s", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
