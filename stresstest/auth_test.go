package stresstest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/protocol"

	"github.com/ampsbroker/ampsbroker/broker"
)

// TestAuthAndEntitlementFailuresOverTCP checks what a client sees over a
// real socket when the broker refuses it (semantics §8.1, §8.2, wire spec
// §9.2): a failed logon is a processed failure ack "auth failure" and a
// close; a forbidden literal subscribe and a forbidden publish are
// processed failure acks "not entitled" on a connection that stays open;
// a regex subscription receives only the topics the user may read.
func TestAuthAndEntitlementFailuresOverTCP(t *testing.T) {
	limit := time.Now().Add(40 * time.Second)
	sb := startBroker(t, &broker.Options{
		Authenticator: broker.UserTable{"alice": "alice-pw", "bob": "bob-pw"},
		Entitler: broker.TopicPrefixTable{
			"alice": {Read: []string{"pub/", "alice/"}, Write: []string{"pub/", "alice/"}},
			"bob":   {Read: []string{"pub/"}, Write: []string{"bob/"}},
		},
	}, nil)
	dial := func() *ampstest.Conn {
		t.Helper()
		c, err := dialClient(sb.TCPAddr, limit)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	// An in-process client is not checked by the Entitler: it sees every
	// topic, so it can tell whether a refused publish went anywhere.
	ctx := context.Background()
	watcher, err := sb.Connect(ctx, "watcher", nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan broker.Message, 100)
	if _, err := watcher.Subscribe(ctx, ".*", func(m broker.Message) { seen <- m }, nil); err != nil {
		t.Fatal(err)
	}
	nextSeen := func() broker.Message {
		t.Helper()
		select {
		case m := <-seen:
			return m
		case <-time.After(ampstest.DefaultTimeout):
			t.Fatal("the in-process watcher received nothing")
		}
		return broker.Message{}
	}

	t.Run("bad credentials", func(t *testing.T) {
		for _, cred := range []struct{ user, pw string }{
			{"alice", "wrong"}, {"alice", ""}, {"mallory", "alice-pw"}, {"", ""},
		} {
			c := dial()
			ack, err := c.LogonWith(&protocol.Header{CommandID: "logon", ClientName: "intruder", UserID: cred.user, Password: cred.pw})
			if err != nil {
				t.Fatalf("logon %q/%q: %v", cred.user, cred.pw, err)
			}
			if ack.Field("status") != "failure" || ack.Field("reason") != broker.ReasonAuthFailure {
				t.Errorf("logon %q/%q: got %s, want a failure ack with reason %q", cred.user, cred.pw, ack, broker.ReasonAuthFailure)
			}
			if _, err := c.ExpectClosed(ampstest.DefaultTimeout); err != nil {
				t.Errorf("logon %q/%q: after the failure ack: %v", cred.user, cred.pw, err)
			}
		}
		if got := sb.Stats().AuthFailures; got != 4 {
			t.Errorf("Stats.AuthFailures = %d, want 4", got)
		}
	})

	alice := dial()
	if ack, err := alice.LogonWith(&protocol.Header{CommandID: "logon", ClientName: "alice-app", UserID: "alice", Password: "alice-pw"}); err != nil || ack.Field("status") != "success" {
		t.Fatalf("alice's logon: %v %s", err, ack)
	}

	// Topics use '/' as separator: '.' is a regex metacharacter and would
	// make a subscription a regex (wire spec §11).
	t.Run("forbidden literal subscribe", func(t *testing.T) {
		for i, topic := range []string{"secret/x", "bob/x", "pub"} {
			cid := fmt.Sprint("sub-", i)
			if err := alice.SendJSON(map[string]any{"c": "subscribe", "cid": cid, "sub_id": cid, "t": topic, "a": "processed"}, nil); err != nil {
				t.Fatal(err)
			}
			ack, err := alice.AwaitAck(cid, "processed")
			if err != nil {
				t.Fatal(err)
			}
			if ack.Field("status") != "failure" || ack.Field("reason") != broker.ReasonNotEntitled || ack.Field("sub_id") != cid {
				t.Errorf("subscribe to %q: got %s, want a failure ack with reason %q and sub_id %q",
					topic, ack, broker.ReasonNotEntitled, cid)
			}
		}
		// The connection stays open and permitted commands still work.
		if err := alice.Subscribe("ok", "alice/inbox"); err != nil {
			t.Errorf("permitted subscribe after the refusals: %v", err)
		}
	})

	t.Run("forbidden publish", func(t *testing.T) {
		pubAck := func(cid, topic string) ampstest.Message {
			t.Helper()
			if err := alice.SendJSON(map[string]any{"c": "p", "cid": cid, "t": topic, "a": "processed"}, []byte(cid)); err != nil {
				t.Fatal(err)
			}
			ack, err := alice.AwaitAck(cid, "processed")
			if err != nil {
				t.Fatal(err)
			}
			return ack
		}
		for i, topic := range []string{"secret/x", "bob/x"} {
			cid := fmt.Sprint("forbidden-", i)
			if ack := pubAck(cid, topic); ack.Field("status") != "failure" || ack.Field("reason") != broker.ReasonNotEntitled {
				t.Errorf("publish to %q: got %s, want a failure ack with reason %q", topic, ack, broker.ReasonNotEntitled)
			}
		}
		// Deliveries to the watcher keep alice's publish order, so if a
		// refused publish had been routed it would show up before this.
		if ack := pubAck("allowed", "pub/news"); ack.Field("status") != "success" {
			t.Errorf("permitted publish: %s", ack)
		}
		if m := nextSeen(); m.Topic != "pub/news" || string(m.Data) != "allowed" {
			t.Errorf("the watcher got %q on %q first, want the permitted publish: a refused publish was delivered", m.Data, m.Topic)
		}
	})

	t.Run("regex subscription", func(t *testing.T) {
		if err := alice.Subscribe("rx", `^(pub|secret|alice|bob)/`); err != nil {
			t.Fatal(err)
		}
		// The publisher is in process, so its own publishes are not
		// checked; what alice receives is filtered by her read rights.
		pub, err := sb.Connect(ctx, "publisher", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer pub.Close()
		topics := []string{"secret/a", "pub/a", "bob/a", "alice/b", "secret/b", "pub/a", "bob/b", "pub/end"}
		for i, topic := range topics {
			if err := pub.Publish(ctx, topic, fmt.Appendf(nil, "%d", i)); err != nil {
				t.Fatal(err)
			}
			nextSeen() // drain the watcher
		}
		want := []struct{ topic, sids, body string }{
			{"pub/a", "rx", "1"}, {"alice/b", "rx", "3"}, {"pub/a", "rx", "5"}, {"pub/end", "rx", "7"},
		}
		for _, w := range want {
			f, err := alice.Read()
			if err != nil {
				t.Fatal(err)
			}
			if f.Field("c") != "p" || f.Field("t") != w.topic || f.Field("sids") != w.sids || string(f.Body) != w.body {
				t.Fatalf("alice got %s, want %s %q on %s", f, w.sids, w.body, w.topic)
			}
		}
	})

	t.Run("bob may write where he may not read", func(t *testing.T) {
		bob := dial()
		if ack, err := bob.LogonWith(&protocol.Header{CommandID: "logon", ClientName: "bob-app", UserID: "bob", Password: "bob-pw"}); err != nil || ack.Field("status") != "success" {
			t.Fatalf("bob's logon: %v %s", err, ack)
		}
		if err := bob.SendJSON(map[string]any{"c": "subscribe", "cid": "s", "t": "bob/x", "a": "processed"}, nil); err != nil {
			t.Fatal(err)
		}
		if ack, err := bob.AwaitAck("s", "processed"); err != nil || ack.Field("reason") != broker.ReasonNotEntitled {
			t.Errorf("bob subscribing to bob/x: %v %s, want %q", err, ack, broker.ReasonNotEntitled)
		}
		if err := bob.SendJSON(map[string]any{"c": "p", "cid": "w", "t": "bob/x", "a": "processed"}, []byte("b")); err != nil {
			t.Fatal(err)
		}
		if ack, err := bob.AwaitAck("w", "processed"); err != nil || ack.Field("status") != "success" {
			t.Errorf("bob publishing to bob/x: %v %s, want success", err, ack)
		}
		if m := nextSeen(); m.Topic != "bob/x" {
			t.Errorf("the watcher got %q, want bob/x", m.Topic)
		}
	})

	// Refusals counted: alice's 3 subscribes and 2 publishes, bob's
	// subscribe, and the 5 topics alice's regex matched but may not read
	// (secret/a, bob/a, secret/b, bob/b, bob/x), each asked once because
	// the answer is cached per topic (Entitler doc, semantics §8.2).
	if got := sb.Stats().NotEntitled; got != 11 {
		t.Errorf("Stats.NotEntitled = %d, want 11", got)
	}
	watcher.Close()
}
