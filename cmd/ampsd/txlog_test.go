package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/journal/filejournal"
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
