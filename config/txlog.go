package config

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/journal/filejournal"
)

// Transaction log defaults and limits (amps-config-txlog §6A.2).
const (
	// DefaultJournalSize is the target size of one journal file when
	// JournalSize is not set (AMPS default 1GB).
	DefaultJournalSize = 1 * gib

	// MinJournalSize is the smallest JournalSize AMPS accepts ("10M"; read
	// as 10 MiB, like every byte size here).
	MinJournalSize = 10 * mib

	// DefaultPreallocatedJournalFiles is how many journal files are created
	// at start when PreallocatedJournalFiles is not set (AMPS default 2).
	DefaultPreallocatedJournalFiles = 2

	// DefaultFlushInterval bounds how long a partly filled batch of journal
	// writes waits before it is written and synced (AMPS default 100ms).
	DefaultFlushInterval = 100 * time.Millisecond

	// MinFlushInterval and MaxFlushInterval are the range AMPS allows for
	// FlushInterval.
	MinFlushInterval = time.Microsecond
	MaxFlushInterval = 1000 * time.Millisecond
)

// eventTopicPrefix starts the topics of the broker's own event messages
// (/AMPS/ClientStatus, /AMPS/SOWStats...), which are never journaled.
const eventTopicPrefix = "/AMPS/"

// topicRegexMeta are the characters that make a TransactionLog Topic Name
// a regular expression: the same set that makes a subscription topic one
// (wire spec §11), so one rule decides what is literal everywhere.
const topicRegexMeta = `^$.*+?()[]{}|\`

// TransactionLog is the journal configuration (AMPS TransactionLog,
// amps-config-txlog §6A.2). Fields left zero take the Default... values.
// A nil *TransactionLog on Config means no journal. The XML elements
// O_DIRECT and CompressedJournalCacheMemoryLimit are read and checked but
// have no field: the journal always writes, then syncs with fdatasync
// before an entry counts as persisted (the guarantee O_DIRECT is for), and
// it never compresses.
type TransactionLog struct {
	// JournalDirectory is where journal files are created. Required.
	// Relative paths are relative to the working directory. Whether it
	// exists, can be created and is writable is checked when the journal
	// opens, not by Validate.
	JournalDirectory string

	// JournalArchiveDirectory, when set, is where older journal files are
	// moved; its files still belong to the log. It must differ from
	// JournalDirectory.
	JournalArchiveDirectory string

	// JournalSize is the target size of each journal file in bytes (XML
	// JournalSize or its synonym MinJournalSize); at least MinJournalSize.
	// Zero means DefaultJournalSize.
	JournalSize int64

	// PreallocatedJournalFiles is how many journal files are created at
	// start; at least 1. Zero means DefaultPreallocatedJournalFiles.
	PreallocatedJournalFiles int

	// FlushInterval is the longest a journal write waits for its batch to
	// be written and synced, in [MinFlushInterval, MaxFlushInterval]. Zero
	// means DefaultFlushInterval.
	FlushInterval time.Duration

	// InactiveClientAckExpiration, when positive, makes recovery forget the
	// last sequence number of publishers idle for longer. Zero keeps them
	// forever (the AMPS default).
	InactiveClientAckExpiration time.Duration

	// Topics select what is journaled; see Journaled.
	Topics []JournalTopic
}

// JournalTopic is one TransactionLog/Topic entry.
type JournalTopic struct {
	// Name is a literal topic, or a regular expression when it holds one of
	// ^$.*+?()[]{}|\ (searched for anywhere in the topic, not anchored).
	Name string
	// MessageType is the message type the entry applies to. Required.
	MessageType string
}

// WithDefaults returns a copy of l with every zero field that has a
// default set to it, i.e. the values the journal runs with.
func (l TransactionLog) WithDefaults() TransactionLog {
	if l.JournalSize == 0 {
		l.JournalSize = DefaultJournalSize
	}
	if l.PreallocatedJournalFiles == 0 {
		l.PreallocatedJournalFiles = DefaultPreallocatedJournalFiles
	}
	if l.FlushInterval == 0 {
		l.FlushInterval = DefaultFlushInterval
	}
	return l
}

// Journaled reports whether publishes to topic with message type mt are
// recorded in the journal. It compiles regular-expression entries on each
// call; a caller asking per message should use Matcher once instead. A nil
// TransactionLog journals nothing.
func (l *TransactionLog) Journaled(topic, mt string) bool {
	if l == nil {
		return false
	}
	return newJournalMatcher(l.Topics).Journaled(topic, mt)
}

// Matcher compiles the Topic entries once for repeated Journaled
// questions. It fails on an entry whose regular expression does not
// compile (Validate reports it as CFG-TXLOG-TOPIC).
func (l *TransactionLog) Matcher() (*JournalMatcher, error) {
	var topics []JournalTopic
	if l != nil {
		topics = l.Topics
	}
	for i, t := range topics {
		if _, err := compileJournalTopic(t.Name); err != nil {
			return nil, fmt.Errorf("config: TransactionLog/Topic[%d]: %w", i+1, err)
		}
	}
	return newJournalMatcher(topics), nil
}

// JournalMatcher decides whether a (topic, message type) is journaled.
// It is safe for concurrent use.
type JournalMatcher struct {
	// literal holds the entries without metacharacters, by message type.
	literal map[string]map[string]bool
	// patterns holds the regular-expression entries, by message type.
	patterns map[string][]*regexp.Regexp
}

// newJournalMatcher compiles entries, skipping those that do not compile.
func newJournalMatcher(topics []JournalTopic) *JournalMatcher {
	m := &JournalMatcher{literal: map[string]map[string]bool{}, patterns: map[string][]*regexp.Regexp{}}
	for _, t := range topics {
		re, err := compileJournalTopic(t.Name)
		switch {
		case err != nil:
		case re == nil:
			if m.literal[t.MessageType] == nil {
				m.literal[t.MessageType] = map[string]bool{}
			}
			m.literal[t.MessageType][t.Name] = true
		default:
			m.patterns[t.MessageType] = append(m.patterns[t.MessageType], re)
		}
	}
	return m
}

// compileJournalTopic returns nil for a literal Name, else its compiled
// regular expression.
//
// The AMPS documentation says entries record topics that "exactly match
// the topic or regular expression", yet describes LOGGED_.* as catching
// every topic that contains LOGGED_. We follow the rule of subscription
// topics, which the second reading agrees with: a Name without
// metacharacters matches by equality, any other Name is a regular
// expression searched for anywhere in the topic (unanchored; ^ and $
// anchor it). RE2 cannot compile every PCRE pattern (lookaround,
// backreferences); such a Name is an error rather than a silent miss.
// RegexTopicSupport false does not make these Names literal: it governs
// the topics clients subscribe to, and ".*" is the documented way to
// journal every topic of a type.
func compileJournalTopic(name string) (*regexp.Regexp, error) {
	if !strings.ContainsAny(name, topicRegexMeta) {
		return nil, nil
	}
	re, err := regexp.Compile(name)
	if err != nil {
		return nil, fmt.Errorf("Name %q is not a supported regular expression: %v", name, err)
	}
	return re, nil
}

// Journaled reports whether some entry has message type mt and a Name that
// matches topic. Event topics (/AMPS/...) are never journaled, whatever
// the entries say. A nil matcher journals nothing.
func (m *JournalMatcher) Journaled(topic, mt string) bool {
	if m == nil || strings.HasPrefix(topic, eventTopicPrefix) {
		return false
	}
	if m.literal[mt][topic] {
		return true
	}
	for _, re := range m.patterns[mt] {
		if re.MatchString(topic) {
			return true
		}
	}
	return false
}

// Problems of a TransactionLog value, shared by the decoder (explicit XML
// values, where zero is a value rather than "use the default") and
// Validate (Go values, where zero means the default). Each returns "" when
// the value is acceptable.

func journalSizeProblem(name string, v int64) string {
	if v < MinJournalSize {
		return fmt.Sprintf("%s %s is below the minimum %s", name, formatSize(v), formatSize(MinJournalSize))
	}
	return ""
}

func preallocatedProblem(v int64) string {
	if v < 1 {
		return fmt.Sprintf("PreallocatedJournalFiles %d is below the minimum 1", v)
	}
	return ""
}

func flushIntervalProblem(v time.Duration) string {
	switch {
	case v < MinFlushInterval:
		return fmt.Sprintf("FlushInterval %v is below the minimum 1us", v)
	case v > MaxFlushInterval:
		return fmt.Sprintf("FlushInterval %v exceeds the maximum 1000ms", v)
	}
	return ""
}

// transactionLog decodes the TransactionLog element. Explicit values out
// of range are reported here and left zero, so Validate, which cannot tell
// an explicit zero from an absent element, does not report them again.
func (d *decoder) transactionLog(n *node) *TransactionLog {
	l := &TransactionLog{
		JournalDirectory:        d.text(n, "JournalDirectory"),
		JournalArchiveDirectory: d.text(n, "JournalArchiveDirectory"),
	}
	d.remember("TransactionLog", n)
	size, sizeName := d.kid(n, "JournalSize"), "JournalSize"
	if min := d.kid(n, "MinJournalSize"); min != nil {
		if size != nil {
			d.ds.errorf(CodeTxLogSize, d.at(min), "JournalSize and MinJournalSize are synonyms; give only one")
		} else {
			size, sizeName = min, "MinJournalSize"
		}
	}
	if v, ok := value(d, n, sizeName, ParseSize); ok {
		if p := journalSizeProblem(sizeName, v); p != "" {
			d.ds.errorf(CodeTxLogSize, d.at(size), "%s", p)
		} else {
			l.JournalSize = v
		}
	}
	if v, ok := value(d, n, "PreallocatedJournalFiles", parseCount); ok {
		if p := preallocatedProblem(v); p != "" {
			d.ds.errorf(CodeTxLogSize, d.at(d.kid(n, "PreallocatedJournalFiles")), "%s", p)
		} else {
			l.PreallocatedJournalFiles = int(v)
		}
	}
	if v, ok := value(d, n, "FlushInterval", ParseInterval); ok {
		if p := flushIntervalProblem(v); p != "" {
			d.ds.errorf(CodeTxLogFlush, d.at(d.kid(n, "FlushInterval")), "%s", p)
		} else {
			l.FlushInterval = v
		}
	}
	l.InactiveClientAckExpiration, _ = value(d, n, "InactiveClientAckExpiration", ParseInterval)
	// Accepted without effect (the schema warns); their values must still
	// be well-formed.
	value(d, n, "O_DIRECT", ParseBool)
	value(d, n, "CompressedJournalCacheMemoryLimit", ParseSize)
	for _, tn := range d.kids(n, "Topic") {
		d.remember(fmt.Sprintf("TransactionLog/Topic[%d]", len(l.Topics)+1), tn)
		l.Topics = append(l.Topics, JournalTopic{Name: d.text(tn, "Name"), MessageType: d.text(tn, "MessageType")})
	}
	return l
}

// validateTxLog checks the TransactionLog as far as the file alone
// decides: the directories are only compared here; whether they exist and
// are writable, and whether another instance holds them, is found out
// when the journal opens.
func (c *Config) validateTxLog(ds *diags, types map[string]bool) {
	l := c.TransactionLog
	if l == nil {
		return
	}
	if strings.TrimSpace(l.JournalDirectory) == "" {
		ds.errorf(CodeTxLogDir, c.at("TransactionLog/JournalDirectory"), "JournalDirectory is required (the directory journal files are written to)")
	} else if l.JournalArchiveDirectory != "" && filepath.Clean(l.JournalArchiveDirectory) == filepath.Clean(l.JournalDirectory) {
		ds.errorf(CodeTxLogArchive, c.at("TransactionLog/JournalArchiveDirectory"), "JournalArchiveDirectory %q is the JournalDirectory; archived journals need a directory of their own", l.JournalArchiveDirectory)
	}
	if l.JournalSize != 0 {
		if p := journalSizeProblem("JournalSize", l.JournalSize); p != "" {
			ds.errorf(CodeTxLogSize, c.at("TransactionLog/JournalSize"), "%s", p)
		}
	}
	if l.PreallocatedJournalFiles != 0 {
		if p := preallocatedProblem(int64(l.PreallocatedJournalFiles)); p != "" {
			ds.errorf(CodeTxLogSize, c.at("TransactionLog/PreallocatedJournalFiles"), "%s", p)
		}
	}
	if l.FlushInterval != 0 {
		if p := flushIntervalProblem(l.FlushInterval); p != "" {
			ds.errorf(CodeTxLogFlush, c.at("TransactionLog/FlushInterval"), "%s", p)
		}
	}
	if l.InactiveClientAckExpiration < 0 {
		ds.errorf(CodeValue, c.at("TransactionLog/InactiveClientAckExpiration"), "InactiveClientAckExpiration %v must not be negative", l.InactiveClientAckExpiration)
	}
	if len(l.Topics) == 0 {
		// AMPS then records nothing yet still enforces one connection per
		// client name: almost always a mistake.
		ds.warnf(CodeTxLogNoTopic, c.at("TransactionLog"), "TransactionLog records no topics; only client-name uniqueness is enforced")
	}
	for i, t := range l.Topics {
		path := fmt.Sprintf("TransactionLog/Topic[%d]", i+1)
		if t.Name == "" {
			ds.errorf(CodeTxLogTopic, c.at(path+"/Name"), "Topic needs a Name (a topic or a regular expression)")
		} else if _, err := compileJournalTopic(t.Name); err != nil {
			ds.errorf(CodeTxLogTopic, c.at(path+"/Name"), "%v", err)
		} else if strings.HasPrefix(t.Name, eventTopicPrefix) && !strings.ContainsAny(t.Name, topicRegexMeta) {
			ds.warnf(CodeTxLogTopicEvent, c.at(path+"/Name"), "%s is never journaled (event topics are not recorded)", t.Name)
		}
		if t.MessageType == "" {
			ds.errorf(CodeTxLogTopic, c.at(path+"/MessageType"), "Topic %q needs a MessageType", t.Name)
		} else if !types[t.MessageType] {
			ds.errorf(CodeMessageType, c.at(path+"/MessageType"), "unknown MessageType %q", t.MessageType)
		}
	}
}

// journalBacked reports whether a persistent SOW topic is kept by
// rebuilding it from the journal (amps-config-txlog §6A.5): it is
// journaled and recovers from epoch.
func (c *Config) journalBacked(t *SOWTopic) bool {
	return t.Durability == DurabilityPersistent && c.TransactionLog.Journaled(t.Name, t.MessageType) &&
		t.RecoveryPoint != RecoveryNow
}

// sowFileName expands %n in a SOW FileName to the topic name and message
// type, as AMPS does ("./sow/%n.sow" is ./sow/positions.json.sow).
func sowFileName(pattern, name, mt string) string {
	return strings.ReplaceAll(pattern, "%n", name+"."+mt)
}

// journalBlockSize is the write block JournalSize is rounded up to a
// multiple of (AMPS rounds to an undocumented internal buffer size;
// amps-config-txlog §6A.2 chooses 4 KiB, a page and a disk block).
const journalBlockSize = 4 << 10

// EffectiveJournalSize is the size the journal's files are rotated at:
// JournalSize (DefaultJournalSize when zero) rounded up to a multiple of
// 4 KiB.
func (l TransactionLog) EffectiveJournalSize() int64 {
	size := l.WithDefaults().JournalSize
	return (size + journalBlockSize - 1) / journalBlockSize * journalBlockSize
}

// FileJournalOptions returns the options of the file journal the
// TransactionLog describes, for the instance name (the prefix of its
// files): Dir = JournalDirectory, SegmentSize = EffectiveJournalSize,
// FlushInterval = FlushInterval (DefaultFlushInterval when zero),
// ForgetPublishersAfter = InactiveClientAckExpiration, Logger = logger.
// PreallocatedJournalFiles and JournalArchiveDirectory have no file
// journal option: journal files are created as they are needed and never
// archived.
func (l TransactionLog) FileJournalOptions(name string, logger *slog.Logger) filejournal.Options {
	return filejournal.Options{
		Dir:           l.JournalDirectory,
		Name:          name,
		SegmentSize:   l.EffectiveJournalSize(),
		FlushInterval: l.WithDefaults().FlushInterval,
		Logger:        logger,

		ForgetPublishersAfter: l.InactiveClientAckExpiration,
	}
}

// OpenJournal opens the file journal the TransactionLog describes (see
// FileJournalOptions), recovering what its directory holds, and returns
// it for broker.Options.Journal; nil, nil without a TransactionLog. The
// caller closes it after the broker's Shutdown. A directory another
// instance holds fails with an error wrapping filejournal.ErrLocked that
// names the lock file; damage recovery cannot explain fails with one
// wrapping filejournal.ErrCorrupt naming the file and offset. logger may
// be nil (quiet); the journal logs a cut torn tail and a write failure to
// it, and OpenJournal logs the journal's state once it is open.
func (c *Config) OpenJournal(logger *slog.Logger) (broker.Journal, error) {
	l := c.TransactionLog
	if l == nil {
		return nil, nil
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	name := c.Name
	if name == "" {
		name = filejournal.DefaultName
	}
	opts := l.FileJournalOptions(name, logger)
	if strings.TrimSpace(opts.Dir) == "" {
		return nil, errors.New("config: TransactionLog: JournalDirectory is empty")
	}
	j, err := filejournal.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("config: TransactionLog in %s: %w", opts.Dir, err)
	}
	st := j.Stats()
	logger.Info("journal open", "dir", opts.Dir, "name", name, "file_size", opts.SegmentSize,
		"flush_interval", opts.FlushInterval, "files", st.Segments, "entries", st.Entries,
		"first", uint64(st.First), "next", uint64(st.Next))
	return j, nil
}
