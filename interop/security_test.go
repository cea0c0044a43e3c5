package interop

import (
	"context"
	"fmt"
	"testing"

	"github.com/ampsbroker/ampsbroker/broker"
)

// Authentication and entitlement failures as the official JavaScript client
// surfaces them to an application (wire spec §7.1, §7.3, §9; semantics
// §8.2). The reasons are compared with AMPS's own strings (wire spec §9.2),
// not with the broker's constants, so a renamed constant cannot hide a
// changed wire string.
const (
	wantAuthFailure = "auth failure"
	wantNotEntitled = "not entitled"
)

// Topics of the entitlement tests: alice may read and write allowedTopic
// (under "public/") but neither read nor write deniedTopic.
const (
	allowedTopic = "public/js"
	deniedTopic  = "secret/js"
)

// securedConfig is a broker with two users: alice, limited to "public/",
// and bob, who may write everywhere and read nothing (the publisher of
// forbidden topics in the regex test).
func securedConfig() brokerConfig {
	return brokerConfig{
		authenticator: broker.UserTable{"alice": "secret", "bob": "bob-secret"},
		entitler: broker.TopicPrefixTable{
			"alice": {Read: []string{"public/"}, Write: []string{"public/"}},
			"bob":   {Write: []string{""}},
		},
	}
}

// wsURIAs is the ws URI of tb with credentials; the JS client sends them
// as the logon's user_id and pw.
func (tb *testBroker) wsURIAs(user, password string) string {
	return "ws://" + user + ":" + password + "@" + tb.WSAddr + "/amps/json"
}

func TestJSLogonRefused(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		uri  func(tb *testBroker) string
	}{
		{"bad password", func(tb *testBroker) string { return tb.wsURIAs("alice", "wrong") }},
		{"unknown user", func(tb *testBroker) string { return tb.wsURIAs("mallory", "secret") }},
		{"no credentials", func(tb *testBroker) string { return tb.wsURI() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t, securedConfig())
			res := runDriver(t, tc.uri(tb), nil, "badlogon")
			// connect() rejected with the logon's {commandId, message}, and
			// the driver saw the socket closed without closing it itself.
			if got := res.str("status"); got != "failure" {
				t.Errorf("logon ack status %q, want %q", got, "failure")
			}
			if got := res.str("reason"); got != wantAuthFailure {
				t.Errorf("connect() rejected with reason %q, want %q", got, wantAuthFailure)
			}
			// The broker's side: one refused logon, never active, and the
			// connection closed by the broker (a nil Err would mean the
			// client closed it).
			if got := tb.Stats().AuthFailures; got != 1 {
				t.Errorf("Stats().AuthFailures = %d, want 1", got)
			}
			waitFor(t, "the refused connection to be reported closed", tcpIOTimeout, func() bool {
				return len(closedEvents(tb)) == 1
			})
			for _, ev := range tb.events.snapshot() {
				if ev.State == broker.StateActive {
					t.Errorf("connection %d became active as user %q after a refused logon", ev.ID, ev.UserID)
				}
			}
			if ev := closedEvents(tb)[0]; ev.Err == nil {
				t.Errorf("connection %d closed with no error: the client closed it, want the broker to", ev.ID)
			} else {
				t.Logf("broker closed the connection: %v", ev.Err)
			}
		})
	}
}

// closedEvents returns tb's StateClosed reports.
func closedEvents(tb *testBroker) []broker.ConnEvent {
	var out []broker.ConnEvent
	for _, ev := range tb.events.snapshot() {
		if ev.State == broker.StateClosed {
			out = append(out, ev)
		}
	}
	return out
}

func TestJSLogonCredentialsInURI(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, securedConfig())
	runDriver(t, tb.wsURIAs("alice", "secret"), nil, "logon")
	// The broker reports StateActive just after queueing the logon ack, so
	// the report may trail the client's view by a moment.
	var active []broker.ConnEvent
	waitFor(t, "the logon to be reported active", tcpIOTimeout, func() bool {
		active = active[:0]
		for _, ev := range tb.events.snapshot() {
			if ev.State == broker.StateActive {
				active = append(active, ev)
			}
		}
		return len(active) > 0
	})
	if len(active) != 1 || active[0].UserID != "alice" || active[0].ClientName != "js-logon" {
		t.Errorf("active connections %+v, want one of user %q, client %q", active, "alice", "js-logon")
	}
	if got := tb.Stats().AuthFailures; got != 0 {
		t.Errorf("Stats().AuthFailures = %d, want 0", got)
	}
}

func TestJSSubscribeNotEntitled(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, securedConfig())
	res := runDriver(t, tb.wsURIAs("alice", "secret"), nil, "denysub",
		"--topic", allowedTopic, "--denied-topic", deniedTopic)
	if got := res.str("reason"); got != wantNotEntitled {
		t.Errorf("subscribe(%q) rejected with %q, want %q", deniedTopic, got, wantNotEntitled)
	}
	if got := tb.Stats().NotEntitled; got != 1 {
		t.Errorf("Stats().NotEntitled = %d, want 1", got)
	}
}

func TestJSPublishNotEntitled(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, securedConfig())
	// In-process clients are not entitlement-checked, so this one sees
	// whatever reaches the forbidden topic.
	spy := newInbox()
	c := connectInProcess(t, tb, "go-spy")
	ctx, cancel := context.WithTimeout(context.Background(), tcpIOTimeout)
	defer cancel()
	if _, err := c.Subscribe(ctx, deniedTopic, spy.handler, nil); err != nil {
		t.Fatalf("in-process Subscribe(%q): %v", deniedTopic, err)
	}

	res := runDriver(t, tb.wsURIAs("alice", "secret"), nil, "denypub",
		"--topic", allowedTopic, "--denied-topic", deniedTopic)

	// Command API: the processed ack reaches the command's handler.
	denied, _ := res["command_denied"].(map[string]any)
	if denied["status"] != "failure" || denied["reason"] != wantNotEntitled {
		t.Errorf("processed ack of a publish to %q: %v, want status failure, reason %q", deniedTopic, denied, wantNotEntitled)
	}
	allowed, _ := res["command_allowed"].(map[string]any)
	if allowed["status"] != "success" {
		t.Errorf("processed ack of a publish to %q: %v, want status success", allowedTopic, allowed)
	}
	// publish() with a publish store: the failed-write handler gets the reason.
	fw, _ := res["failed_write"].(map[string]any)
	if fw["reason"] != wantNotEntitled {
		t.Errorf("failedWriteHandler got %v, want reason %q", fw, wantNotEntitled)
	}
	t.Logf("failedWriteHandler got %v; persisted acks %v", fw, res["persisted_acks"])
	if got := tb.Stats().NotEntitled; got != 2 {
		t.Errorf("Stats().NotEntitled = %d, want 2 (one per refused publish)", got)
	}

	// Both refused publishes were dropped: a marker published after them is
	// the first thing the forbidden topic delivers.
	const marker = `{"marker":true}`
	if err := c.Publish(ctx, deniedTopic, []byte(marker)); err != nil {
		t.Fatalf("in-process Publish: %v", err)
	}
	if m := spy.next(t); string(m.Data) != marker {
		t.Errorf("%s delivered %s before the marker: a refused publish was routed", deniedTopic, m.Data)
	}
}

func TestJSRegexSubscriptionWithholdsForbiddenTopics(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, securedConfig())
	res := runDriver(t, tb.wsURIAs("alice", "secret"), nil, "denyregex",
		"--topic", allowedTopic, "--denied-topic", deniedTopic,
		"--peer-uri", tb.wsURIAs("bob", "bob-secret"))
	want := []any{}
	for i := 1; i <= 3; i++ {
		want = append(want, fmt.Sprintf("%s/rx/%d", allowedTopic, i))
	}
	want = append(want, allowedTopic+"/rx/end")
	got, _ := res["topics"].([]any)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("regex subscription received topics %v, want %v", got, want)
	}
	// Each forbidden concrete topic is refused once and then cached.
	if n := tb.Stats().NotEntitled; n != 3 {
		t.Errorf("Stats().NotEntitled = %d, want 3 (one per forbidden topic)", n)
	}
}
