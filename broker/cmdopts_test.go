package broker_test

import (
	"strings"
	"testing"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// Options with nothing to do in this broker are accepted (the refused ones
// are in TestCommandFailures); spaces around them do not matter.
func TestSubscribeOptionsAccepted(t *testing.T) {
	tb := startBroker(t, nil)
	c := tb.Dial(tb.TCPURL(), nil)
	c.Logon("opts")
	for _, o := range []string{"none", "replace", " non_regex_topic , oof", "send_keys,bookmark,live,fully_durable", "max_backlog=10, send_empties"} {
		topic := "a"
		if strings.Contains(o, "non_regex_topic") {
			topic = "a(b" // a bad regex, unless taken literally
		}
		if ack := subscribeFiltered(t, c, "s", topic, "", o); ack.Header.Status != protocol.StatusSuccess {
			t.Errorf("options %q: %s", o, ack)
		}
		c.SendJSON(map[string]any{"c": "unsubscribe", "cid": "u", "sub_id": "s", "a": "processed"}, nil)
		c.AwaitAck("u", protocol.AckProcessed)
	}
}

// A logon is not refused for an option it does not know, but the option
// is logged, not ignored silently.
func TestLogonOptionNotHonouredIsLogged(t *testing.T) {
	var logs ampstest.LogBuffer
	tb := startBroker(t, &broker.Options{Logger: logs.Logger()})
	c := tb.Dial(tb.TCPURL(), nil)
	if ack := c.LogonWith(&protocol.Header{ClientName: "o", Options: "pretty,frobnicate"}); ack.Header.Status != protocol.StatusSuccess {
		t.Fatalf("logon: %s", ack)
	}
	if !strings.Contains(logs.String(), `logon option not honoured`) || !strings.Contains(logs.String(), `frobnicate`) {
		t.Fatalf("log does not name the option:\n%s", logs.String())
	}
}
