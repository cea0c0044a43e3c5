package interop

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/journal/filejournal"
	"github.com/ampsbroker/ampsbroker/listener"
)

// Tests of the JavaScript client's bookmark subscriptions on a broker with
// a transaction log (replay spec §7.3, §7.4, §7.11), across a restart.

// replayFlushInterval is the file journal's FlushInterval in these tests:
// short, so messages are durable (and so delivered to bookmark
// subscribers) soon after they are published.
const replayFlushInterval = 5 * time.Millisecond

// journaledBroker is an in-process broker on a file journal that the test
// can stop and start again on the same directory, with its WebSocket
// transport on the same address each time, so a client that reconnects by
// itself finds it again.
type journaledBroker struct {
	t      *testing.T
	dir    string
	topic  string // the only journaled topic
	wsAddr string // fixed after the first start
	logs   *ampstest.LogBuffer

	b *ampstest.Broker
	j *filejournal.Journal
}

// startJournaled starts a broker whose journal in a directory of the test's
// records topic.
func startJournaled(t *testing.T, topic string) *journaledBroker {
	jb := &journaledBroker{t: t, dir: t.TempDir(), topic: topic, wsAddr: "127.0.0.1:0", logs: &ampstest.LogBuffer{}}
	t.Cleanup(func() {
		jb.stop()
		if t.Failed() {
			t.Logf("broker log:\n%s", jb.logs)
		}
	})
	jb.start()
	return jb
}

// start opens the journal and serves it.
func (jb *journaledBroker) start() {
	jb.t.Helper()
	j, err := filejournal.Open(filejournal.Options{Dir: jb.dir, Name: "interop", FlushInterval: replayFlushInterval})
	if err != nil {
		jb.t.Fatalf("opening the journal in %s: %v", jb.dir, err)
	}
	jb.j = j
	jb.b = ampstest.NewBroker(jb.t, &ampstest.Options{
		Broker: &broker.Options{
			Logger:        slog.New(slog.NewTextHandler(jb.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			Journal:       j,
			JournalTopics: func(_, topic string) bool { return topic == jb.topic },
		},
	})
	ws, err := listener.ListenWebSocket(jb.wsAddr, nil)
	if err != nil {
		jb.t.Fatalf("WebSocket listener on %s: %v", jb.wsAddr, err)
	}
	jb.wsAddr = ws.Addr().String()
	jb.b.ServeListener(ws)
}

// stop shuts the broker down and closes its journal; a second call does
// nothing.
func (jb *journaledBroker) stop() {
	if jb.b == nil {
		return
	}
	jb.b.Stop()
	if err := jb.j.Close(); err != nil {
		jb.t.Errorf("closing the journal: %v", err)
	}
	jb.b, jb.j = nil, nil
}

// wsURI is the JS client's URI, the same across restarts.
func (jb *journaledBroker) wsURI() string { return "ws://" + jb.wsAddr + "/amps/json" }

// publish sends {"n":from} … {"n":to} to the journaled topic over TCP and
// waits until the broker has handled them.
func (jb *journaledBroker) publish(from, to int) {
	jb.t.Helper()
	c := logonTCP(jb.t, jb.b.TCPAddr, "", fmt.Sprintf("go-replay-pub-%d", from))
	for n := from; n <= to; n++ {
		body, _ := json.Marshal(map[string]int{"n": n})
		if err := c.Publish(jb.topic, body); err != nil {
			jb.t.Fatalf("publishing %s: %v", body, err)
		}
	}
	if err := c.Flush(c.NextCommandID()); err != nil {
		jb.t.Fatal(err)
	}
	c.Close()
}

// rawBookmarks returns the bookmarks of client's raw deliveries in phase
// ("before" or "after" the restart) from the replay scenario's "raw".
func rawBookmarks(raw map[string]any, client, phase string) []string {
	byPhase, _ := raw[client].(map[string]any)
	list, _ := byPhase[phase].([]any)
	out := []string{}
	for _, b := range list {
		s, _ := b.(string)
		out = append(out, s)
	}
	return out
}

// distinct says whether no string of list appears twice.
func distinct(list []string) bool {
	seen := map[string]bool{}
	for _, s := range list {
		if seen[s] {
			return false
		}
		seen[s] = true
	}
	return true
}

// ints converts a JSON array of numbers from the driver.
func ints(v any) []int {
	list, _ := v.([]any)
	out := []int{}
	for _, x := range list {
		f, _ := x.(float64)
		out = append(out, int(f))
	}
	return out
}

// seq returns from … to.
func seq(from, to int) []int {
	out := []int{}
	for n := from; n <= to; n++ {
		out = append(out, n)
	}
	return out
}

// TestJSBookmarkAcrossRestart: the JS client subscribes with a bookmark
// (EPOCH, then the bookmark of the last message it got) and through its
// bookmark store (MOST_RECENT), the broker restarts on the same journal,
// and each client sees exactly the messages after its point, once each.
func TestJSBookmarkAcrossRestart(t *testing.T) {
	t.Parallel()
	const topic, before, after = "replay", 5, 6
	const whileDown = after / 2 // published before the clients are back
	jb := startJournaled(t, topic)
	jb.publish(1, before)

	d := startDriver(t, jb.wsURI(), nil, "replay", "--topic", topic,
		"--count", fmt.Sprint(before), "--after", fmt.Sprint(after))
	restart := d.waitEvent("restart_me")
	jb.stop()
	jb.start()
	// These are in the journal before any client resubscribes: they come
	// by replay; the rest come live.
	jb.publish(before+1, before+whileDown)
	d.waitEvent("resumed")
	jb.publish(before+whileDown+1, before+after)
	res, _ := d.result()

	if got, want := ints(res["before"]), seq(1, before); !slices.Equal(got, want) {
		t.Errorf("subscription from EPOCH got %v, want %v", got, want)
	}
	if got, want := ints(res["after"]), seq(before+1, before+after); !slices.Equal(got, want) {
		t.Errorf("subscription from bookmark %s after the restart got %v, want %v (only the newer messages, each once)", restart.str("bookmark"), got, want)
	}
	if got, want := ints(res["ha"]), seq(1, before+after); !slices.Equal(got, want) {
		t.Errorf("memory-backed client (bookmark store, MOST_RECENT) got %v across the restart, want %v", got, want)
	}
	// The raw deliveries, which show what the broker sent before the
	// client's own duplicate filter. The classic client: each message once.
	// The memory-backed client resubscribed from a point its store chose
	// (the older of the last message it discarded and the last persisted
	// ack of the subscription, which the broker sends at most once a
	// second): after the restart it gets every message after that point,
	// once each, and drops those it already had.
	raw, _ := res["raw"].(map[string]any)
	classicBefore, classicAfter := rawBookmarks(raw, "js-replay", "before"), rawBookmarks(raw, "js-replay", "after")
	if len(classicBefore) != before || len(classicAfter) != after || !distinct(append(classicBefore, classicAfter...)) {
		t.Errorf("classic client: raw deliveries carried bookmarks %v before and %v after the restart, want %d and %d, all distinct", classicBefore, classicAfter, before, after)
	}
	haBefore, haAfter := rawBookmarks(raw, "js-replay-ha", "before"), rawBookmarks(raw, "js-replay-ha", "after")
	var resubscribes []string
	for _, s := range res["subscribes"].([]any) {
		m, _ := s.(map[string]any)
		if m["client"] == "js-replay-ha" {
			bm, _ := m["bm"].(string)
			resubscribes = append(resubscribes, bm)
		}
	}
	if len(resubscribes) != 2 || resubscribes[1] == "recent" {
		t.Fatalf("memory-backed client subscribed with bookmarks %v, want two: before and after the restart, the latter resolved by its store", resubscribes)
	}
	from := slices.Index(haBefore, resubscribes[1]) + 1 // 0 when it resubscribed from EPOCH
	if resubscribes[1] != "0" && from == 0 {
		t.Fatalf("memory-backed client resubscribed from %q, none of the bookmarks it received %v", resubscribes[1], haBefore)
	}
	if want := len(haBefore) - from + after; len(haAfter) != want || !distinct(haAfter) ||
		!slices.Equal(haAfter[:len(haBefore)-from], haBefore[from:]) {
		t.Errorf("memory-backed client resubscribed from %q after getting %v: after the restart the broker sent %v, want the %d after that point, then %d new ones, all distinct",
			resubscribes[1], haBefore, haAfter, len(haBefore)-from, after)
	}
	t.Logf("subscribes %v; memory-backed client's errors %v and states %v; classic reconnect attempts %v", res["subscribes"], res["ha_errors"], res["states"], res["attempts"])
}
