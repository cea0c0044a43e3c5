package config

import (
	"os"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary documents to Parse: it must never panic, and a
// failure must always be an *Error listing at least one error.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("testdata/edge-broker.xml"); err == nil {
		f.Add(string(b))
	}
	f.Add(string(Sample()))
	f.Add(doc("<Transports><Transport><Name>a</Name><Type>tcp</Type><InetAddr>0</InetAddr></Transport></Transports>"))
	// A journal, a journal-backed persistent topic and the lenient cases
	// of persistent topics the journal cannot keep.
	f.Add(doc(`<TransactionLog><JournalDirectory>j</JournalDirectory><MinJournalSize>10M</MinJournalSize>
<FlushInterval>1us</FlushInterval><O_DIRECT>false</O_DIRECT><BatchSize>1</BatchSize><Replication/>
<Topic><Name>^fills/</Name><MessageType>json</MessageType></Topic><Topic><Name>orders</Name><MessageType>json</MessageType></Topic></TransactionLog>
<SOW><Topic><Name>orders</Name><MessageType>json</MessageType><Key>/id</Key><FileName>%n.sow</FileName><RecoveryPoint>epoch</RecoveryPoint></Topic>
<Topic><Name>fills/x</Name><MessageType>json</MessageType><FileName>%n.sow</FileName><RecoveryPoint>now</RecoveryPoint></Topic></SOW>`))
	// An empty directory, so Includes resolve to nothing real.
	base := f.TempDir()
	f.Fuzz(func(t *testing.T, s string) {
		env := func(string) (string, bool) { return "x", true }
		for _, lenient := range []bool{false, true} {
			cfg, err := Parse(strings.NewReader(s), &ParseOptions{Lenient: lenient, LookupEnv: env, BaseDir: base})
			if err != nil {
				e, ok := err.(*Error)
				if !ok || len(e.Errors) == 0 {
					t.Fatalf("error %T %v", err, err)
				}
				continue
			}
			_ = cfg.Summary()
			_ = cfg.BrokerOptions()
		}
	})
}

// BenchmarkParseSampleConfig measures Parse on the sample configuration
// (four transports, one SOW topic).
func BenchmarkParseSampleConfig(b *testing.B) {
	data := string(Sample())
	// Certificate loading is left out: the TLS transport points at missing
	// files, so validation reports it; we measure parsing and decoding.
	opts := &ParseOptions{Vars: map[string]string{"TLS_DIR": "/nonexistent", "RUN_DIR": "/nonexistent"}}
	b.ReportAllocs()
	for b.Loop() {
		Parse(strings.NewReader(data), opts)
	}
}
