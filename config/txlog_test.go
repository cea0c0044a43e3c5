package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/journal/filejournal"
)

// txDoc wraps TransactionLog children, which start on line 4, in a
// document; extra follows the TransactionLog element.
func txDoc(children, extra string) string {
	return doc("<TransactionLog>\n" + children + "\n</TransactionLog>" + extra)
}

// jsonTopic is a TransactionLog Topic entry for a json topic.
func jsonTopic(name string) string {
	return "<Topic><Name>" + name + "</Name><MessageType>json</MessageType></Topic>"
}

// warningLines renders warnings as "CODE diagnostic" lines.
func warningLines(ws []Diagnostic) []string {
	var got []string
	for _, w := range ws {
		got = append(got, string(w.Code)+" "+w.Error())
	}
	return got
}

// TestTxLogDefaults checks that a minimal TransactionLog parses into zero
// fields that WithDefaults turns into the AMPS defaults.
func TestTxLogDefaults(t *testing.T) {
	cfg, e := parseString(t, txDoc("<JournalDirectory>./journal</JournalDirectory>\n"+jsonTopic("orders"), ""), nil)
	if e != nil {
		t.Fatalf("Parse: %v", e)
	}
	want := &TransactionLog{JournalDirectory: "./journal", Topics: []JournalTopic{{Name: "orders", MessageType: "json"}}}
	if !reflect.DeepEqual(cfg.TransactionLog, want) {
		t.Errorf("TransactionLog = %+v, want %+v", cfg.TransactionLog, want)
	}
	eff := cfg.TransactionLog.WithDefaults()
	if eff.JournalSize != 1<<30 || eff.PreallocatedJournalFiles != 2 || eff.FlushInterval != 100*time.Millisecond || eff.InactiveClientAckExpiration != 0 {
		t.Errorf("WithDefaults = %+v, want 1GB, 2 files, 100ms, keep forever", eff)
	}
	if cfg.TransactionLog.JournalSize != 0 {
		t.Error("WithDefaults changed the receiver's copy")
	}
	// Without a TransactionLog there is none.
	cfg, e = parseString(t, doc(""), nil)
	if e != nil || cfg.TransactionLog != nil {
		t.Errorf("no TransactionLog element: %+v, %v", cfg.TransactionLog, e)
	}
}

// TestTxLogValues checks every child with units, the MinJournalSize
// synonym and the limits that are just allowed.
func TestTxLogValues(t *testing.T) {
	cfg, e := parseString(t, txDoc(`<JournalDirectory>/data/j</JournalDirectory>
<JournalArchiveDirectory>/bulk/j</JournalArchiveDirectory>
<JournalSize>256MB</JournalSize>
<PreallocatedJournalFiles>3</PreallocatedJournalFiles>
<FlushInterval>250us</FlushInterval>
<O_DIRECT>disabled</O_DIRECT>
<InactiveClientAckExpiration>30d</InactiveClientAckExpiration>
<CompressedJournalCacheMemoryLimit>2GB</CompressedJournalCacheMemoryLimit>
`+jsonTopic("^fills/")+"\n"+jsonTopic("positions"), ""), nil)
	if e != nil {
		t.Fatalf("Parse: %v", e)
	}
	want := &TransactionLog{
		JournalDirectory: "/data/j", JournalArchiveDirectory: "/bulk/j",
		JournalSize: 256 << 20, PreallocatedJournalFiles: 3, FlushInterval: 250 * time.Microsecond,
		InactiveClientAckExpiration: 30 * 24 * time.Hour,
		Topics:                      []JournalTopic{{"^fills/", "json"}, {"positions", "json"}},
	}
	if !reflect.DeepEqual(cfg.TransactionLog, want) {
		t.Errorf("TransactionLog = %+v\nwant %+v", cfg.TransactionLog, want)
	}

	for _, tc := range []struct {
		xml   string
		size  int64
		flush time.Duration
	}{
		{"<MinJournalSize>10M</MinJournalSize><FlushInterval>1us</FlushInterval>", 10 << 20, time.Microsecond},
		{"<JournalSize>1.5gb</JournalSize><FlushInterval>1000ms</FlushInterval>", 3 << 29, time.Second},
		{"<JournalSize>10485760</JournalSize><FlushInterval>0.5S</FlushInterval>", 10 << 20, 500 * time.Millisecond},
	} {
		cfg, e := parseString(t, txDoc("<JournalDirectory>j</JournalDirectory>"+tc.xml+jsonTopic("a"), ""), nil)
		if e != nil {
			t.Errorf("%s: %v", tc.xml, e)
			continue
		}
		if l := cfg.TransactionLog; l.JournalSize != tc.size || l.FlushInterval != tc.flush {
			t.Errorf("%s: JournalSize %d FlushInterval %v, want %d %v", tc.xml, l.JournalSize, l.FlushInterval, tc.size, tc.flush)
		}
	}
}

// TestTxLogErrors checks each error of the transaction log and of the
// amended SOW storage rules: code, path, message and line.
func TestTxLogErrors(t *testing.T) {
	const dir = "<JournalDirectory>j</JournalDirectory>"
	orders := jsonTopic("orders")
	persistent := func(rest string) string {
		return "\n<SOW>\n<Topic><Name>orders</Name><MessageType>json</MessageType><Key>/id</Key>" + rest + "</Topic>\n</SOW>"
	}
	tests := []struct {
		name string
		xml  string
		code Code
		msg  string
	}{
		{"dir missing", txDoc(orders, ""), CodeTxLogDir,
			"TransactionLog/JournalDirectory: JournalDirectory is required (the directory journal files are written to) (line 3)"},
		{"dir empty", txDoc("<JournalDirectory> </JournalDirectory>\n"+orders, ""), CodeTxLogDir,
			"TransactionLog/JournalDirectory: JournalDirectory is required (the directory journal files are written to) (line 4)"},
		{"archive same", txDoc("<JournalDirectory>./j</JournalDirectory>\n<JournalArchiveDirectory>j/</JournalArchiveDirectory>\n"+orders, ""), CodeTxLogArchive,
			`TransactionLog/JournalArchiveDirectory: JournalArchiveDirectory "j/" is the JournalDirectory; archived journals need a directory of their own (line 5)`},
		{"size small", txDoc(dir+"\n<JournalSize>4MB</JournalSize>\n"+orders, ""), CodeTxLogSize,
			"TransactionLog/JournalSize: JournalSize 4MB is below the minimum 10MB (line 5)"},
		{"size small synonym", txDoc(dir+"\n<MinJournalSize>9.5M</MinJournalSize>\n"+orders, ""), CodeTxLogSize,
			"TransactionLog/MinJournalSize: MinJournalSize 9728KB is below the minimum 10MB (line 5)"},
		{"size both names", txDoc(dir+"\n<JournalSize>20MB</JournalSize>\n<MinJournalSize>20MB</MinJournalSize>\n"+orders, ""), CodeTxLogSize,
			"TransactionLog/MinJournalSize: JournalSize and MinJournalSize are synonyms; give only one (line 6)"},
		{"preallocated zero", txDoc(dir+"\n<PreallocatedJournalFiles>0</PreallocatedJournalFiles>\n"+orders, ""), CodeTxLogSize,
			"TransactionLog/PreallocatedJournalFiles: PreallocatedJournalFiles 0 is below the minimum 1 (line 5)"},
		{"flush long", txDoc(dir+"\n<FlushInterval>2s</FlushInterval>\n"+orders, ""), CodeTxLogFlush,
			"TransactionLog/FlushInterval: FlushInterval 2s exceeds the maximum 1000ms (line 5)"},
		{"flush zero", txDoc(dir+"\n<FlushInterval>0ms</FlushInterval>\n"+orders, ""), CodeTxLogFlush,
			"TransactionLog/FlushInterval: FlushInterval 0s is below the minimum 1us (line 5)"},
		{"flush unit", txDoc(dir+"\n<FlushInterval>5 parsecs</FlushInterval>\n"+orders, ""), CodeValue,
			`TransactionLog/FlushInterval: FlushInterval interval "5 parsecs": unknown unit "parsecs" (use ns, us, ms, s, m, h, d or w) (line 5)`},
		{"o_direct value", txDoc(dir+"\n<O_DIRECT>maybe</O_DIRECT>\n"+orders, ""), CodeValue,
			`TransactionLog/O_DIRECT: O_DIRECT "maybe" is not a boolean (use true/false or enabled/disabled) (line 5)`},
		{"topic no name", txDoc(dir+"\n<Topic><MessageType>json</MessageType></Topic>", ""), CodeTxLogTopic,
			"TransactionLog/Topic[1]/Name: Topic needs a Name (a topic or a regular expression) (line 5)"},
		{"topic no type", txDoc(dir+"\n"+orders+"\n<Topic><Name>fills</Name></Topic>", ""), CodeTxLogTopic,
			`TransactionLog/Topic[2]/MessageType: Topic "fills" needs a MessageType (line 6)`},
		{"topic regex", txDoc(dir+"\n"+orders+"\n"+jsonTopic(`(a)\1`), ""), CodeTxLogTopic,
			"TransactionLog/Topic[2]/Name: Name \"(a)\\\\1\" is not a supported regular expression: error parsing regexp: invalid escape sequence: `\\1` (line 6)"},
		{"topic message type", txDoc(dir+"\n<Topic><Name>a</Name><MessageType>jsno</MessageType></Topic>", ""), CodeMessageType,
			`TransactionLog/Topic[1]/MessageType: unknown MessageType "jsno" (line 5)`},
		{"twice", txDoc(dir+"\n"+orders, "\n<TransactionLog>"+dir+"</TransactionLog>"), CodeDuplicate,
			"TransactionLog: TransactionLog given twice (line 7)"},
		{"child twice", txDoc(dir+"\n<FlushInterval>1ms</FlushInterval>\n<FlushInterval>2ms</FlushInterval>\n"+orders, ""), CodeDuplicate,
			"TransactionLog/FlushInterval: FlushInterval given twice (line 6)"},
		{"replication inside", txDoc(dir+"\n"+orders+"\n<Replication><Destination/></Replication>", ""), CodeTransportReplication,
			"TransactionLog/Replication[1]: replication is configured in AMPSConfig/Replication and is not supported (line 6)"},
		{"batch size", txDoc(dir+"\n"+orders+"\n<BatchSize>100</BatchSize>", ""), CodeUnknownElement,
			"TransactionLog/BatchSize: unknown element (line 6)"},
		{"client specific options", txDoc(dir+"\n"+orders+"\n<ClientSpecificOptions/>", ""), CodeUnknownElement,
			"TransactionLog/ClientSpecificOptions: unknown element (line 6)"},
		// SOW storage, amended for the journal.
		{"persistent no txlog", doc(strings.TrimPrefix(persistent("<FileName>./sow/%n.sow</FileName>"), "\n")), CodeSOWStorage,
			`SOW/Topic[1]: SOW Topic "orders": persistent storage needs the topic to be journaled with RecoveryPoint epoch, and there is no TransactionLog (or set Durability transient) (line 4)`},
		{"persistent not journaled", txDoc(dir+"\n"+jsonTopic("fills"), persistent("<FileName>./sow/%n.sow</FileName>")), CodeSOWStorage,
			`SOW/Topic[1]: SOW Topic "orders": persistent storage needs the topic to be journaled with RecoveryPoint epoch, and no TransactionLog Topic matches (orders, json) (or set Durability transient) (line 8)`},
		{"persistent now", txDoc(dir+"\n"+orders, persistent("<FileName>./sow/%n.sow</FileName><RecoveryPoint>Now</RecoveryPoint>")), CodeSOWStorage,
			`SOW/Topic[1]: SOW Topic "orders": persistent storage needs RecoveryPoint epoch: it is rebuilt from the journal, so with now it would lose its records (or set Durability transient) (line 8)`},
		{"persistent no file", txDoc(dir+"\n"+orders, persistent("")), CodeSOWStorage,
			`SOW/Topic[1]: SOW Topic "orders": Durability persistent needs FileName (or set transient) (line 8)`},
		{"persistent shared file", txDoc(dir+"\n"+jsonTopic(".*"), "\n<SOW>\n"+
			"<Topic><Name>a</Name><MessageType>json</MessageType><FileName>./sow/all.sow</FileName></Topic>\n"+
			"<Topic><Name>b</Name><MessageType>json</MessageType><FileName>sow/all.sow</FileName></Topic>\n</SOW>"), CodeSOWStorage,
			`SOW/Topic[2]/FileName: SOW Topic "b": FileName sow/all.sow is also Topic[1]'s; two topics must not share a file (line 9)`},
		{"recovery value", txDoc(dir+"\n"+orders, persistent("<Durability>transient</Durability><RecoveryPoint>yesterday</RecoveryPoint>")), CodeValue,
			`SOW/Topic[1]/RecoveryPoint: SOW Topic "orders": RecoveryPoint "yesterday" must be epoch or now (line 8)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantOnlyError(t, tc.xml, tc.code, tc.msg)
		})
	}
}

// TestTxLogWarnings checks the W-level diagnostics: a log without topics,
// an event topic entry, accepted elements without effect, a RecoveryPoint
// on a topic that is not journaled, and the journal-backed note.
func TestTxLogWarnings(t *testing.T) {
	cfg, e := parseString(t, txDoc(`<JournalDirectory>j</JournalDirectory>
<O_DIRECT>enabled</O_DIRECT>
<CompressedJournalCacheMemoryLimit>1GB</CompressedJournalCacheMemoryLimit>
`+jsonTopic("/AMPS/ClientStatus")+"\n"+jsonTopic("positions"), `
<SOW>
<Topic><Name>quotes</Name><MessageType>json</MessageType><Durability>transient</Durability><RecoveryPoint>epoch</RecoveryPoint></Topic>
<Topic><Name>positions</Name><MessageType>json</MessageType><Key>/id</Key><FileName>./sow/%n.sow</FileName><RecoveryPoint>epoch</RecoveryPoint></Topic>
<Topic><Name>positions</Name><MessageType>fix</MessageType><Durability>transient</Durability><RecoveryPoint>now</RecoveryPoint></Topic>
</SOW>`), nil)
	if e != nil {
		t.Fatalf("Parse: %v", e)
	}
	want := []string{
		"CFG-ACCEPTED TransactionLog/O_DIRECT: O_DIRECT accepted but has no effect: every journal write is synced (fdatasync) before it counts as persisted (line 5)",
		"CFG-ACCEPTED TransactionLog/CompressedJournalCacheMemoryLimit: CompressedJournalCacheMemoryLimit accepted but has no effect: journals are never compressed (line 6)",
		"CFG-TXLOG-TOPIC-EVENT TransactionLog/Topic[1]/Name: /AMPS/ClientStatus is never journaled (event topics are not recorded) (line 7)",
		`CFG-SOW-RECOVERY SOW/Topic[1]/RecoveryPoint: SOW Topic "quotes": RecoveryPoint ignored, topic is not journaled (line 11)`,
		`CFG-SOW-STORAGE SOW/Topic[2]: SOW Topic "positions": journal-backed: rebuilt from the transaction log at start; ./sow/positions.json.sow is not written (line 12)`,
		// The entry journals positions for json only.
		`CFG-SOW-RECOVERY SOW/Topic[3]/RecoveryPoint: SOW Topic "positions": RecoveryPoint ignored, topic is not journaled (line 13)`,
	}
	if got := warningLines(cfg.Warnings); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The journal-backed topic stays persistent, with its RecoveryPoint.
	if s := cfg.SOW[1]; s.Durability != DurabilityPersistent || s.RecoveryPoint != RecoveryEpoch {
		t.Errorf("journal-backed topic = %+v", s)
	}

	cfg, e = parseString(t, txDoc("<JournalDirectory>j</JournalDirectory>", ""), nil)
	if e != nil {
		t.Fatalf("Parse: %v", e)
	}
	notopic := "CFG-TXLOG-NOTOPIC TransactionLog: TransactionLog records no topics; only client-name uniqueness is enforced (line 3)"
	if got := warningLines(cfg.Warnings); len(got) != 1 || got[0] != notopic {
		t.Errorf("warnings without Topic:\n%s\nwant\n%s", strings.Join(got, "\n"), notopic)
	}
}

// TestTxLogLenient checks lenient mode: persistent topics the journal
// cannot keep run as transient, a journal-backed one stays persistent,
// and replication and unknown elements inside TransactionLog are skipped
// with a warning.
func TestTxLogLenient(t *testing.T) {
	xml := txDoc("<JournalDirectory>j</JournalDirectory>\n"+jsonTopic("kept")+"\n"+jsonTopic("^now")+"\n<BatchSize>10</BatchSize>\n<Replication/>", `
<SOW>
<Topic><Name>kept</Name><MessageType>json</MessageType><FileName>%n.sow</FileName></Topic>
<Topic><Name>nowhere</Name><MessageType>json</MessageType><FileName>%n.sow</FileName><RecoveryPoint>now</RecoveryPoint></Topic>
<Topic><Name>plain</Name><MessageType>json</MessageType><FileName>%n.sow</FileName></Topic>
<Topic><Name>nowfile</Name><MessageType>json</MessageType><Pattern>^nowfile/.*</Pattern></Topic>
</SOW>`)
	_, e := parseString(t, xml, nil)
	if e == nil || !e.Has(CodeSOWStorage) || !e.Has(CodeTransportReplication) || !e.Has(CodeUnknownElement) {
		t.Fatalf("strict Parse: %v, want CFG-SOW-STORAGE, CFG-TRANSPORT-REPLICATION and CFG-UNKNOWN-ELEMENT", e)
	}
	cfg, e := parseString(t, xml, &ParseOptions{Lenient: true})
	if e != nil {
		t.Fatalf("lenient Parse: %v", e)
	}
	var durability []string
	for _, s := range cfg.SOW {
		durability = append(durability, s.Durability)
	}
	want := []string{DurabilityPersistent, DurabilityTransient, DurabilityTransient, DurabilityTransient}
	if !reflect.DeepEqual(durability, want) {
		t.Errorf("lenient durabilities = %v, want %v", durability, want)
	}
	var codes []string
	for _, w := range cfg.Warnings {
		codes = append(codes, string(w.Code))
	}
	for _, c := range []Code{CodeUnknownElement, CodeTransportReplication} {
		if !strings.Contains(strings.Join(codes, " "), string(c)) {
			t.Errorf("lenient warnings %v lack %s", codes, c)
		}
	}
	got := warningLines(cfg.Warnings)
	for _, w := range []string{
		`CFG-SOW-STORAGE SOW/Topic[2]: SOW Topic "nowhere": persistent storage with RecoveryPoint now cannot keep records; running it as transient, empty at start (line 12)`,
		`CFG-SOW-STORAGE SOW/Topic[3]: SOW Topic "plain": persistent storage needs the topic to be journaled; running it as transient (line 13)`,
		`CFG-SOW-STORAGE SOW/Topic[4]: SOW Topic "nowfile": Durability persistent needs FileName; running it as transient, rebuilt from the journal (line 14)`,
	} {
		if !strings.Contains(strings.Join(got, "\n"), w) {
			t.Errorf("lenient warnings lack\n\t%s\ngot:\n%s", w, strings.Join(got, "\n"))
		}
	}
}

// TestJournaled checks the matching rule: equality for a Name without
// metacharacters, an unanchored regular expression otherwise, the message
// type must match, several entries may match, and /AMPS/ topics never do.
func TestJournaled(t *testing.T) {
	l := &TransactionLog{JournalDirectory: "j", Topics: []JournalTopic{
		{"orders", "json"},
		{"LOGGED_.*", "json"},
		{"^fills/", "json"},
		{"fills/eu", "json"},
		{"ticks", "fix"},
		{".*", "nvfix"},
	}}
	m, err := l.Matcher()
	if err != nil {
		t.Fatalf("Matcher: %v", err)
	}
	for _, tc := range []struct {
		topic, mt string
		want      bool
	}{
		{"orders", "json", true},
		{"orders2", "json", false},      // a literal is not a prefix
		{"my/orders", "json", false},    // nor a substring
		{"orders", "fix", false},        // message type differs
		{"LOGGED_trades", "json", true}, // regex
		{"x/LOGGED_y", "json", true},    // unanchored: found anywhere
		{"LOGGED", "json", false},
		{"fills/eu", "json", true}, // matched by two entries
		{"fills/us", "json", true}, // anchored by the pattern itself
		{"old/fills/", "json", false},
		{"ticks", "fix", true},
		{"anything", "nvfix", true},
		{"/AMPS/ClientStatus", "nvfix", false}, // event topics never
		{"/AMPS/SOWStats", "json", false},
		{"", "json", false},
	} {
		if got := l.Journaled(tc.topic, tc.mt); got != tc.want {
			t.Errorf("Journaled(%q, %q) = %v, want %v", tc.topic, tc.mt, got, tc.want)
		}
		if got := m.Journaled(tc.topic, tc.mt); got != tc.want {
			t.Errorf("Matcher().Journaled(%q, %q) = %v, want %v", tc.topic, tc.mt, got, tc.want)
		}
	}
	// A literal /AMPS/ entry journals nothing either.
	if (&TransactionLog{Topics: []JournalTopic{{"/AMPS/ClientStatus", "json"}}}).Journaled("/AMPS/ClientStatus", "json") {
		t.Error("an /AMPS/ topic is journaled")
	}
	var none *TransactionLog
	if none.Journaled("orders", "json") {
		t.Error("a nil TransactionLog journals")
	}
	if m, err := none.Matcher(); err != nil || m.Journaled("orders", "json") {
		t.Errorf("nil TransactionLog Matcher = %v, %v", m, err)
	}
	bad := &TransactionLog{Topics: []JournalTopic{{"ok", "json"}, {"a(", "json"}}}
	if _, err := bad.Matcher(); err == nil || !strings.Contains(err.Error(), `TransactionLog/Topic[2]: Name "a(" is not a supported regular expression`) {
		t.Errorf("Matcher of a bad pattern: %v", err)
	}
	if !bad.Journaled("ok", "json") || bad.Journaled("a(", "json") {
		t.Error("Journaled with a bad entry: the good entries must still match and the bad one never")
	}
}

// TestTxLogValidateGoValues checks Validate on a hand-written
// TransactionLog, where zero fields mean the defaults.
func TestTxLogValidateGoValues(t *testing.T) {
	c := &Config{Name: "x", TransactionLog: &TransactionLog{
		JournalDirectory:            "/j",
		JournalArchiveDirectory:     "/j/",
		JournalSize:                 4 << 20,
		PreallocatedJournalFiles:    -1,
		FlushInterval:               2 * time.Second,
		InactiveClientAckExpiration: -time.Second,
		Topics:                      []JournalTopic{{"a[", "json"}, {"b", "bogus"}},
	}}
	err := c.Validate()
	want := "config: 7 errors:\n" +
		"\tTransactionLog/JournalArchiveDirectory: JournalArchiveDirectory \"/j/\" is the JournalDirectory; archived journals need a directory of their own\n" +
		"\tTransactionLog/JournalSize: JournalSize 4MB is below the minimum 10MB\n" +
		"\tTransactionLog/PreallocatedJournalFiles: PreallocatedJournalFiles -1 is below the minimum 1\n" +
		"\tTransactionLog/FlushInterval: FlushInterval 2s exceeds the maximum 1000ms\n" +
		"\tTransactionLog/InactiveClientAckExpiration: InactiveClientAckExpiration -1s must not be negative\n" +
		"\tTransactionLog/Topic[1]/Name: Name \"a[\" is not a supported regular expression: error parsing regexp: missing closing ]: `[`\n" +
		"\tTransactionLog/Topic[2]/MessageType: unknown MessageType \"bogus\""
	if err == nil || err.Error() != want {
		t.Errorf("Validate:\n%v\nwant:\n%s", err, want)
	}
	c.TransactionLog = &TransactionLog{JournalDirectory: "/j", Topics: []JournalTopic{{"a", "json"}}}
	c.SOW = []SOWTopic{{Name: "a", MessageType: "json", Durability: DurabilityPersistent, FileName: "a.sow"}}
	if err := c.Validate(); err != nil {
		t.Errorf("journal-backed Go values: %v", err)
	}
	c.SOW[0].Name = "b"
	var e *Error
	if err := c.Validate(); !errors.As(err, &e) || !e.Has(CodeSOWStorage) {
		t.Errorf("persistent topic not journaled: %v, want CFG-SOW-STORAGE", err)
	}
}

// TestTxLogSummary checks that Summary shows the journal with its
// effective values and its topics.
func TestTxLogSummary(t *testing.T) {
	cfg, e := parseString(t, txDoc("<JournalDirectory>/data/j</JournalDirectory><JournalArchiveDirectory>/bulk</JournalArchiveDirectory>"+
		"<InactiveClientAckExpiration>1d</InactiveClientAckExpiration>"+jsonTopic("orders")+jsonTopic("^fills/"), ""), nil)
	if e != nil {
		t.Fatalf("Parse: %v", e)
	}
	sum := cfg.Summary()
	want := "  transaction log in /data/j (archive /bulk): files of 1GB, flush within 100ms, idle publishers forgotten after 24h0m0s\n" +
		"    2 journaled topic(s)\n" +
		"      orders (json) literal\n" +
		"      ^fills/ (json) regex\n"
	if !strings.Contains(sum, want) {
		t.Errorf("Summary lacks\n%s\ngot:\n%s", want, sum)
	}
	if !strings.Contains(sum, "JournalArchiveDirectory accepted but not used") {
		t.Errorf("Summary does not list the archive directory's warning:\n%s", sum)
	}
}

// TestJournalBackedSOWListens checks that a persistent SOW topic, which
// the broker rebuilds from the journal, no longer keeps ListenAll from
// opening the transports.
func TestJournalBackedSOWListens(t *testing.T) {
	c := &Config{Name: "x",
		Transports:     []Transport{{Name: "a", Type: TypeTCP, InetAddr: "127.0.0.1:0"}},
		TransactionLog: &TransactionLog{JournalDirectory: t.TempDir(), Topics: []JournalTopic{{"orders", "json"}}},
		SOW:            []SOWTopic{{Name: "orders", MessageType: "json", Keys: []string{"/id"}, Durability: DurabilityPersistent, FileName: "orders.sow"}},
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate journal-backed: %v", err)
	}
	ls, err := c.ListenAll()
	if err != nil || len(ls) != 1 {
		t.Fatalf("ListenAll with a journal-backed SOW topic: %v, %v", ls, err)
	}
	for _, l := range ls {
		l.Close()
	}
}

// TestBrokerOptionsJournal checks what a TransactionLog maps to: the
// journaled topics (its Topic entries, never /AMPS), and StartEmpty for a
// journaled SOW topic with RecoveryPoint now only.
func TestBrokerOptionsJournal(t *testing.T) {
	c := &Config{Name: "x",
		TransactionLog: &TransactionLog{JournalDirectory: "j", Topics: []JournalTopic{{"orders", "json"}, {"^fills/", "json"}, {".*", "xml"}}},
		SOW: []SOWTopic{
			{Name: "orders", MessageType: "json", Keys: []string{"/id"}, RecoveryPoint: RecoveryNow},
			{Name: "fills/a", MessageType: "json", Keys: []string{"/id"}},
			{Name: "quotes", MessageType: "json", Keys: []string{"/id"}, RecoveryPoint: RecoveryNow},
		},
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	o := c.BrokerOptions()
	if o.JournalTopics == nil {
		t.Fatal("BrokerOptions with a TransactionLog: no JournalTopics")
	}
	for _, tc := range []struct {
		mt, topic string
		want      bool
	}{
		{"json", "orders", true}, {"json", "orders2", false}, {"json", "x/fills/1", false},
		{"json", "fills/1", true}, {"fix", "orders", false}, {"xml", "anything", true},
		{"xml", "/AMPS/ClientStatus", false},
	} {
		if got := o.JournalTopics(tc.mt, tc.topic); got != tc.want {
			t.Errorf("JournalTopics(%q, %q) = %v, want %v", tc.mt, tc.topic, got, tc.want)
		}
	}
	var empty []bool
	for _, st := range o.SOWTopics {
		empty = append(empty, st.StartEmpty)
	}
	// orders: journaled, now; fills/a: journaled, epoch; quotes: not
	// journaled, so its RecoveryPoint has no effect.
	if want := []bool{true, false, false}; !reflect.DeepEqual(empty, want) {
		t.Errorf("StartEmpty per SOW topic %v, want %v", empty, want)
	}
	c.TransactionLog = nil
	if o := c.BrokerOptions(); o.JournalTopics != nil {
		t.Error("BrokerOptions without a TransactionLog sets JournalTopics")
	}
}

// TestOpenJournal opens the journal a TransactionLog describes: nothing
// without one; with one, its files (named after the instance) and lock
// in JournalDirectory, created if missing; the file size rounded up to
// 4 KiB and the flush interval passed on; a second open of the same
// directory refused with an error naming the lock; a reopen after Close
// keeps what was appended.
func TestOpenJournal(t *testing.T) {
	c := &Config{Name: "edge"}
	if j, err := c.OpenJournal(nil); j != nil || err != nil {
		t.Fatalf("OpenJournal without a TransactionLog = %v, %v; want nil, nil", j, err)
	}
	dir := filepath.Join(t.TempDir(), "journal")
	c.TransactionLog = &TransactionLog{JournalDirectory: dir, JournalSize: MinJournalSize + 1, FlushInterval: 5 * time.Millisecond, InactiveClientAckExpiration: time.Hour}
	o := c.TransactionLog.FileJournalOptions("edge", nil)
	if o.SegmentSize != MinJournalSize+4096 || o.FlushInterval != 5*time.Millisecond || o.Dir != dir || o.Name != "edge" || o.ForgetPublishersAfter != time.Hour {
		t.Errorf("FileJournalOptions = %+v; want a size of %d (rounded up to 4 KiB), 5ms, publishers forgotten after 1h", o, MinJournalSize+4096)
	}
	if got := (TransactionLog{}).EffectiveJournalSize(); got != DefaultJournalSize {
		t.Errorf("default effective size %d, want %d", got, DefaultJournalSize)
	}
	log := &ampstest.LogBuffer{}
	j, err := c.OpenJournal(log.Logger())
	if err != nil {
		t.Fatalf("OpenJournal: %v", err)
	}
	for _, f := range []string{"edge.lock", "edge.0000000000.journal"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("after OpenJournal: %v", err)
		}
	}
	if !strings.Contains(log.String(), "journal open") {
		t.Errorf("OpenJournal logged nothing:\n%s", log)
	}
	pos, err := j.Append(&broker.Entry{Kind: broker.EntryPublish, Topic: "orders", MessageType: "json", Body: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := broker.WaitDurable(context.Background(), j, pos); err != nil {
		t.Fatalf("WaitDurable within the flush interval: %v", err)
	}
	_, err = c.OpenJournal(nil)
	if !errors.Is(err, filejournal.ErrLocked) || !strings.Contains(err.Error(), filepath.Join(dir, "edge.lock")) {
		t.Errorf("second OpenJournal on %s: %v; want ErrLocked naming the lock file", dir, err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, err = c.OpenJournal(nil)
	if err != nil {
		t.Fatalf("OpenJournal after Close: %v", err)
	}
	defer j.Close()
	if first, next := j.Bounds(); first != pos || next != pos+1 {
		t.Errorf("reopened journal holds %d..%d, want the entry at %d", first, next, pos)
	}
}

// TestSampleTxLogBlockParses checks that the sample's commented
// TransactionLog block is valid once uncommented.
func TestSampleTxLogBlockParses(t *testing.T) {
	s := string(Sample())
	start := strings.Index(s, "  <TransactionLog>")
	end := strings.Index(s, "</TransactionLog>")
	if start < 0 || end < start {
		t.Fatal("the sample has no TransactionLog block")
	}
	block := s[start : end+len("</TransactionLog>")]
	cfg, e := parseString(t, doc(block), &ParseOptions{Vars: map[string]string{"RUN_DIR": "/run/x"}})
	if e != nil {
		t.Fatalf("uncommented sample block: %v", e)
	}
	l := cfg.TransactionLog
	if l.JournalDirectory != "/run/x/journal" || !l.Journaled("orders", "json") || !l.Journaled("fills/1", "json") || l.Journaled("prices/x", "json") {
		t.Errorf("sample TransactionLog = %+v", l)
	}
	if w := l.WithDefaults(); !reflect.DeepEqual(w, *l) {
		t.Errorf("the sample shows values other than the defaults: %+v", *l)
	}
}
