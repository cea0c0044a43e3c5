package natscluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/natscluster/internal/natstest"
)

// The official JavaScript client is driven by interop/driver.js, with the
// client that interop's npm ci installs (scripts/test.sh runs it).
const (
	// jsDriver is the driver script, from this package's directory.
	jsDriver = "../interop/driver.js"
	// jsTimeout bounds one run of the driver (its own --timeout), and
	// jsKillGrace how much longer the test waits before it kills it.
	jsTimeout   = 30 * time.Second
	jsKillGrace = 10 * time.Second
)

// nodeBinary is the node executable; the test fails without it, as the
// interop tests do: a skipped test would prove nothing.
func nodeBinary(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"node", "nodejs"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("node not found on PATH: run scripts/test.sh, which installs it and the AMPS JavaScript client")
	return ""
}

// TestBackplaneJSClientOnAnotherNode: the official JavaScript client
// subscribed on node B over WebSocket gets every message a raw TCP
// publisher sends on node A, once, in order.
func TestBackplaneJSClientOnAnotherNode(t *testing.T) {
	node := nodeBinary(t)
	if _, err := os.Stat(filepath.Join(filepath.Dir(jsDriver), "node_modules", "amps")); err != nil {
		t.Fatalf("the AMPS JavaScript client is not installed next to %s (%v): run scripts/test.sh", jsDriver, err)
	}
	c := natstest.StartCluster(t, 3)
	nodes := startNodes(t, c, broker.Options{})
	a, b := nodes[0], nodes[1]
	pub := logon(a.Broker, "pub")
	probe := logon(b.Broker, "probe")
	probe.Subscribe("p", "probe")
	awaitRouted(t, pub, "probe", probe)

	const n = 50
	ctx, cancel := context.WithTimeout(context.Background(), jsTimeout+jsKillGrace)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, jsDriver, "receive", "--uri", b.WSURL(), "--topic", "orders",
		"--count", fmt.Sprint(n), "--timeout", fmt.Sprint(int(jsTimeout/time.Second)))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = jsKillGrace
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s %s: %v", node, jsDriver, err)
	}
	events := make(chan map[string]any, 2*n)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var e map[string]any
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				events <- e
			}
		}
	}()
	ready := false
	for e := range events {
		if e["event"] == "ready" {
			ready = true
			break
		}
	}
	if !ready {
		cmd.Wait()
		t.Fatalf("the JavaScript client never subscribed; stderr:\n%s", stderr.String())
	}
	for i := 1; i <= n; i++ {
		pub.Publish("orders", fmt.Appendf(nil, `{"n":%d}`, i))
	}
	var got []float64
	var result map[string]any
	for e := range events {
		switch e["event"] {
		case "message":
			data, _ := e["data"].(map[string]any)
			v, _ := data["n"].(float64)
			got = append(got, v)
		case "result":
			result = e
		}
	}
	if err := cmd.Wait(); err != nil || result["ok"] != true {
		t.Fatalf("driver: %v, result %v; stderr:\n%s", err, result, stderr.String())
	}
	if len(got) != n {
		t.Fatalf("the JavaScript client got %d messages, want %d: %v", len(got), n, got)
	}
	for i, v := range got {
		if v != float64(i+1) {
			t.Fatalf("message %d is n=%v, want %d (got %v)", i, v, i+1, got)
		}
	}
}
