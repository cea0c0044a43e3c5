package broker_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
)

// Publishers hammer one SOW topic (each key carries a version that its
// publisher raises by one per update) while clients sow_and_subscribe
// with and without a filter, at different moments. Each client's view,
// the snapshot then the live updates, must see every version of every key
// it follows exactly once, in order, from the version in its snapshot (or
// from 1 for a key not yet in it) to the last: no version missing at the
// boundary and none seen twice.
func TestSOWAndSubscribeNoGapNoDuplicate(t *testing.T) {
	const (
		publishers = 3
		keys       = 150
		versions   = 20
	)
	tb := sowBroker(t)
	type clientView struct {
		name   string
		filter string
		even   bool
	}
	views := []clientView{{"all-early", "", false}, {"even-mid", "/id % 2 = 0", true}, {"all-late", "", false}, {"even-late", "/id % 2 = 0", true}}
	start := make([]chan struct{}, len(views))
	for i := range start {
		start[i] = make(chan struct{})
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(views)+publishers)
	for i, v := range views {
		c := tb.Dial(tb.TCPURL(), &ampstest.DialOptions{Timeout: time.Minute})
		c.Logon(v.name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start[i]
			errs <- followView(c.Conn, v.name, v.filter, v.even, keys, versions)
		}()
	}
	var pubs sync.WaitGroup
	progress := make(chan int, publishers*versions)
	for p := 0; p < publishers; p++ {
		c := tb.Dial(tb.TCPURL(), &ampstest.DialOptions{Timeout: time.Minute})
		c.Logon(fmt.Sprint("pub", p))
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for v := 1; v <= versions; v++ {
				for k := p; k < keys; k += publishers {
					if err := c.Conn.Publish("orders", []byte(fmt.Sprintf(`{"id":%d,"v":%d}`, k, v))); err != nil {
						errs <- err
						return
					}
				}
				progress <- v
			}
		}()
	}
	// Start the clients as the publishers progress: before, during, late.
	seen := 0
	for i := range views {
		for seen < i*publishers*versions/len(views) {
			<-progress
			seen++
		}
		close(start[i])
	}
	pubs.Wait()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// followView runs a sow_and_subscribe and reads until every followed key
// reached the last version, checking each key's versions.
func followView(c *ampstest.Conn, name, flt string, even bool, keys, versions int) error {
	cid := "sas-" + name
	if err := c.SendJSON(map[string]any{"c": "sow_and_subscribe", "cid": cid, "t": "orders", "filter": flt, "bs": 50, "a": "processed"}, nil); err != nil {
		return err
	}
	last := make(map[int]int) // key -> last version seen
	follows := func(k int) bool { return !even || k%2 == 0 }
	want := 0
	for k := 0; k < keys; k++ {
		if follows(k) {
			want++
		}
	}
	done := 0
	snapshot := true
	apply := func(body []byte) error {
		var m struct{ ID, V int }
		if err := json.Unmarshal(body, &m); err != nil {
			return fmt.Errorf("%s: body %q: %v", name, body, err)
		}
		if !follows(m.ID) {
			return fmt.Errorf("%s: key %d is not followed", name, m.ID)
		}
		prev, ok := last[m.ID]
		switch {
		case snapshot && ok:
			return fmt.Errorf("%s: key %d twice in the snapshot", name, m.ID)
		case !snapshot && !ok && m.V != 1:
			return fmt.Errorf("%s: key %d starts live at version %d, not in the snapshot", name, m.ID, m.V)
		case !snapshot && ok && m.V != prev+1:
			return fmt.Errorf("%s: key %d went from version %d to %d", name, m.ID, prev, m.V)
		}
		last[m.ID] = m.V
		if m.V == versions {
			done++
		}
		return nil
	}
	for done < want {
		m, err := c.Read()
		if err != nil {
			return fmt.Errorf("%s: %v (%d of %d keys complete)", name, err, done, want)
		}
		switch m.Header.Command {
		case "ack", "group_begin":
		case "group_end":
			snapshot = false
		case "sow":
			recs, err := m.Records()
			if err != nil {
				return fmt.Errorf("%s: %v", name, err)
			}
			for _, r := range recs {
				if err := apply(r.Data); err != nil {
					return err
				}
			}
		case "p":
			if snapshot {
				return fmt.Errorf("%s: live message before group_end", name)
			}
			if err := apply(m.Body); err != nil {
				return err
			}
		}
	}
	return nil
}

// A sow_and_subscribe over a regular expression while publishers create
// new topics of a Pattern definition: each topic's versions are seen once
// each, in order, whether the topic existed at the snapshot or not.
func TestSOWAndSubscribeRegexOverNewTopics(t *testing.T) {
	const topics, versions = 120, 4
	tb := sowBroker(t) // book/.* is a Pattern definition keyed by /sym
	c := tb.Dial(tb.TCPURL(), &ampstest.DialOptions{Timeout: time.Minute})
	c.Logon("rx")
	p := tb.Dial(tb.TCPURL(), &ampstest.DialOptions{Timeout: time.Minute})
	p.Logon("pub")
	done := make(chan error, 1)
	go func() {
		for i := 0; i < topics; i++ {
			for v := 1; v <= versions; v++ {
				if err := p.Conn.Publish(fmt.Sprintf("book/%d", i), []byte(fmt.Sprintf(`{"sym":"S","v":%d}`, v))); err != nil {
					done <- err
					return
				}
			}
		}
		done <- nil
	}()
	time.Sleep(time.Millisecond) // let some topics exist before the snapshot
	c.SendJSON(map[string]any{"c": "sow_and_subscribe", "cid": "rx", "t": "^book/", "bs": 100, "a": "processed"}, nil)
	last := map[string]int{}
	complete, snapshot := 0, true
	see := func(topic string, body []byte) {
		var m struct{ V int }
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		prev, ok := last[topic]
		switch {
		case snapshot && ok:
			t.Fatalf("%s twice in the snapshot", topic)
		case !snapshot && !ok && m.V != 1:
			t.Fatalf("%s starts live at version %d", topic, m.V)
		case !snapshot && ok && m.V != prev+1:
			t.Fatalf("%s went from version %d to %d", topic, prev, m.V)
		}
		last[topic] = m.V
		if m.V == versions {
			complete++
		}
	}
	for complete < topics {
		m := c.Next()
		switch m.Header.Command {
		case "group_end":
			snapshot = false
		case "sow":
			for _, r := range records(t, m) {
				see(r.topic, []byte(r.data))
			}
		case "p":
			see(m.Header.Topic, m.Body)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Publishers racing on one topic, and on two topics that regex
// subscriptions take together: every subscriber sees the messages in the
// same order (AMPS keeps one order per instance).
func TestOneOrderForEverySubscriber(t *testing.T) {
	const perPublisher = 400
	tb := startBroker(t, nil)
	type sub struct {
		c     *ampstest.Client
		topic string
	}
	var subs []sub
	// Many subscribers make each publish's queueing long enough for
	// racing publishers to interleave, were they not ordered.
	var topics []string
	for i := 0; i < 12; i++ {
		topics = append(topics, "t/a", "^t/")
	}
	for i, topic := range topics {
		c := tb.Dial(tb.TCPURL(), &ampstest.DialOptions{Timeout: time.Minute})
		c.Logon(fmt.Sprint("sub", i))
		c.Subscribe("s", topic)
		subs = append(subs, sub{c, topic})
	}
	var wg sync.WaitGroup
	for p, topic := range []string{"t/a", "t/a", "t/b"} {
		c := tb.Dial(tb.TCPURL(), &ampstest.DialOptions{Timeout: time.Minute})
		c.Logon(fmt.Sprint("pub", p))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perPublisher; i++ {
				c.Conn.Publish(topic, []byte(fmt.Sprintf(`{"p":%d,"i":%d}`, p, i)))
			}
		}()
	}
	wg.Wait()
	seqs := make([][]string, len(subs))
	for i, s := range subs {
		n := 2 * perPublisher // t/a only
		if s.topic == "^t/" {
			n = 3 * perPublisher
		}
		for len(seqs[i]) < n {
			seqs[i] = append(seqs[i], string(s.c.Next().Body))
		}
	}
	for i := 2; i < len(seqs); i++ {
		if !slices.Equal(seqs[i], seqs[i%2]) {
			t.Fatalf("subscribers %d and %d (%s) saw the messages in different orders", i%2, i, subs[i].topic)
		}
	}
}
