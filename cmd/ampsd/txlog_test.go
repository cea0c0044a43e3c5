package main

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/config"
)

// txlogConfig is sowConfig with a TransactionLog that journals orders
// (json) and extra SOW topics.
func txlogConfig(t *testing.T, extra string) string {
	t.Helper()
	journal := filepath.Join(t.TempDir(), "journal")
	return strings.Replace(sowConfig(extra), "  <SOW>", `  <TransactionLog>
    <JournalDirectory>`+journal+`</JournalDirectory>
    <Topic>
      <Name>orders</Name>
      <MessageType>json</MessageType>
    </Topic>
  </TransactionLog>
  <SOW>`, 1)
}

// TestConfigWithTxLogStartsWithWarning checks that a configuration with a
// TransactionLog and only transient topics starts, and that the log says
// the journal is not served.
func TestConfigWithTxLogStartsWithWarning(t *testing.T) {
	path, _ := writeConfig(t, txlogConfig(t, ""))
	log, stop := startRun(t, "-config", path)
	boundAddrs(t, log, []string{"json-tcp"})
	if !strings.Contains(log.String(), "transaction log configured but not yet served: no journal") {
		t.Errorf("no not-served warning in the log:\n%s", log)
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
}

// TestConfigWithJournalBackedSOWRefused checks that a persistent SOW topic,
// which would be rebuilt from the journal, stops ampsd before it listens,
// with an error that says why.
func TestConfigWithJournalBackedSOWRefused(t *testing.T) {
	text := txlogConfig(t, `
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

	log := &ampstest.LogBuffer{}
	err := run(context.Background(), func() {}, []string{"-config", path}, io.Discard, log)
	want := `config: transaction log configured but not yet served: no journal: SOW Topic "orders" (json) is persistent and would be rebuilt from it; set Durability transient to run it in memory`
	if !errors.Is(err, config.ErrNoJournal) || err.Error() != want {
		t.Fatalf("-config with a journal-backed SOW topic: %v\nwant %s", err, want)
	}
	if strings.Contains(log.String(), "listening") {
		t.Errorf("refused -config opened a listener:\n%s", log)
	}
}
