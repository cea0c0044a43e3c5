package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/journal/filejournal"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// txlogConfig is sowConfig with a TransactionLog in journal that journals
// orders (json), with extra SOW topics.
func txlogConfig(journal, extra string) string {
	return strings.Replace(sowConfig(extra), "  <SOW>", `  <TransactionLog>
    <JournalDirectory>`+journal+`</JournalDirectory>
    <JournalSize>10MB</JournalSize>
    <FlushInterval>5ms</FlushInterval>
    <Topic>
      <Name>orders</Name>
      <MessageType>json</MessageType>
    </Topic>
  </TransactionLog>
  <SOW>`, 1)
}

// TestConfigWithTxLogOpensJournal starts ampsd with a TransactionLog: the
// journal directory gets its lock and first journal file (named after the
// instance) before the transport listens; a second ampsd on the same
// directory fails before listening, with an error naming the lock; once
// the first stops, the journal has been closed (its checkpoint written,
// its lock free).
func TestConfigWithTxLogOpensJournal(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "journal")
	path, _ := writeConfig(t, txlogConfig(journal, ""))
	log, stop := startRun(t, "-config", path)
	boundAddrs(t, log, []string{"json-tcp"})
	for _, f := range []string{"ampsd-sow-test.lock", "ampsd-sow-test.0000000000.journal"} {
		if _, err := os.Stat(filepath.Join(journal, f)); err != nil {
			t.Errorf("journal file of a running ampsd: %v", err)
		}
	}
	if !strings.Contains(log.String(), "journal open") {
		t.Errorf("no journal line in the log:\n%s", log)
	}

	log2 := &ampstest.LogBuffer{}
	err := run(context.Background(), func() {}, []string{"-config", path}, io.Discard, log2)
	lock := filepath.Join(journal, "ampsd-sow-test.lock")
	if !errors.Is(err, filejournal.ErrLocked) || !strings.Contains(err.Error(), lock) {
		t.Errorf("second ampsd on %s: %v; want an error naming %s", journal, err, lock)
	}
	if strings.Contains(log2.String(), "listening") {
		t.Errorf("the refused second ampsd opened a listener:\n%s", log2)
	}

	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(journal, "ampsd-sow-test.clients.ack")); err != nil {
		t.Errorf("no checkpoint after ampsd stopped (the journal was not closed): %v", err)
	}
	j, err := filejournal.Open(filejournal.Options{Dir: journal, Name: "ampsd-sow-test"})
	if err != nil {
		t.Fatalf("the journal after ampsd stopped: %v", err)
	}
	j.Close()
}

// TestConfigWithJournalBackedSOWStarts checks that a persistent SOW topic,
// which the broker rebuilds from the journal, no longer stops ampsd.
func TestConfigWithJournalBackedSOWStarts(t *testing.T) {
	text := txlogConfig(filepath.Join(t.TempDir(), "journal"), `
    <Topic>
      <Name>orders</Name>
      <MessageType>json</MessageType>
      <Key>/id</Key>
      <FileName>./sow/%n.sow</FileName>
    </Topic>`)
	// sowConfig already defines a transient orders: rename that one.
	text = strings.Replace(text, "<Name>orders</Name>\n      <MessageType>json</MessageType>\n      <Key>/id</Key>\n      <Durability>transient</Durability>",
		"<Name>quotes</Name>\n      <MessageType>json</MessageType>\n      <Key>/id</Key>\n      <Durability>transient</Durability>", 1)
	path, _ := writeConfig(t, text)
	log, stop := startRun(t, "-config", path)
	boundAddrs(t, log, []string{"json-tcp"})
	if !strings.Contains(log.String(), "journal-backed") {
		t.Errorf("no journal-backed note in the log:\n%s", log)
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
}

// TestConfigJournalSurvivesRestart publishes to a journaled topic, stops
// ampsd and starts it again on the same journal: a subscription from
// EPOCH replays the messages published before the restart, in order,
// then says completed. This is the journal handed to the broker.
func TestConfigJournalSurvivesRestart(t *testing.T) {
	path, _ := writeConfig(t, txlogConfig(filepath.Join(t.TempDir(), "journal"), ""))
	want := []string{`{"id":1,"n":"a"}`, `{"id":2,"n":"b"}`, `{"id":3,"n":"c"}`}

	log, stop := startRun(t, "-config", path)
	addr := boundAddrs(t, log, []string{"json-tcp"})["json-tcp"]
	c := ampstest.Dial(t, "tcp://"+addr+"/amps/json", &ampstest.DialOptions{Timeout: 10 * time.Second})
	c.Logon("ampsd-txlog-pub")
	for _, body := range want {
		c.Publish("orders", []byte(body))
	}
	c.Flush("f")
	c.Close()
	if err := stop(); err != nil {
		t.Fatalf("first run: %v", err)
	}

	log, stop = startRun(t, "-config", path)
	addr = boundAddrs(t, log, []string{"json-tcp"})["json-tcp"]
	c = ampstest.Dial(t, "tcp://"+addr+"/amps/json", &ampstest.DialOptions{Timeout: 10 * time.Second})
	c.Logon("ampsd-txlog-sub")
	c.SendJSON(map[string]any{"c": "subscribe", "cid": "s", "sub_id": "s", "t": "orders", "bm": "0", "a": "completed"}, nil)
	var got []string
	for len(got) < len(want) { // the completed ack comes after the replay
		m := c.Next()
		if m.Header.Command == protocol.CmdP {
			if m.Header.Bookmark == "" {
				t.Errorf("replayed message without bm: %s", m.RawHeader)
			}
			got = append(got, string(m.Body))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("replayed after the restart:\n%q\nwant\n%q", got, want)
	}
	if m := c.Next(); m.Header.Command != protocol.CmdAck || m.Header.AckType != protocol.AckCompleted {
		t.Errorf("after the replay: %s, want the completed ack", m.RawHeader)
	}
	c.Close()
	if err := stop(); err != nil {
		t.Fatalf("second run: %v", err)
	}
}
