package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Code identifies a kind of configuration problem. The values ("CFG-...")
// are stable, so tests and tools can match on them.
type Code string

// Diagnostic codes.
const (
	// CodeXML: the file is not well-formed XML.
	CodeXML Code = "CFG-XML"
	// CodeRoot: the root element is not AMPSConfig.
	CodeRoot Code = "CFG-ROOT"
	// CodeEnvUndefined: a ${NAME} has no value.
	CodeEnvUndefined Code = "CFG-ENV-UNDEFINED"
	// CodeIncludeMissing: an Include target cannot be read.
	CodeIncludeMissing Code = "CFG-INCLUDE-MISSING"
	// CodeIncludeCycle: a file includes itself, or the expanded document
	// exceeds ConfigCycleDetectionThreshold.
	CodeIncludeCycle Code = "CFG-INCLUDE-CYCLE"
	// CodeUnknownElement: an element AMPS does not define at that position.
	CodeUnknownElement Code = "CFG-UNKNOWN-ELEMENT"
	// CodeDuplicate: a single-valued element is repeated.
	CodeDuplicate Code = "CFG-DUPLICATE"
	// CodeValue: a value cannot be parsed (interval, size, percent, bool,
	// octal, enumeration).
	CodeValue Code = "CFG-VALUE"
	// CodeNameMissing: the instance Name is absent or empty.
	CodeNameMissing Code = "CFG-NAME-MISSING"
	// CodeVersion: RequiredMinimumVersion (error) or SuggestedMinimumVersion
	// (warning) is above the version the broker reports.
	CodeVersion Code = "CFG-VERSION"
	// CodeTransportName: a transport Name is missing or used twice.
	CodeTransportName Code = "CFG-TRANSPORT-NAME"
	// CodeTransportType: a transport Type is missing or unknown.
	CodeTransportType Code = "CFG-TRANSPORT-TYPE"
	// CodeTransportReplication: replication transports or a Replication block.
	CodeTransportReplication Code = "CFG-TRANSPORT-REPLICATION"
	// CodeInetAddr: InetAddr missing on tcp/tcps, or malformed.
	CodeInetAddr Code = "CFG-INETADDR"
	// CodeAddrConflict: two transports on the same address or Unix path.
	CodeAddrConflict Code = "CFG-ADDR-CONFLICT"
	// CodeProtocol: an unknown or unsupported Protocol.
	CodeProtocol Code = "CFG-PROTOCOL"
	// CodeProtocolDefaulted: Protocol absent, amps used.
	CodeProtocolDefaulted Code = "CFG-PROTOCOL-DEFAULTED"
	// CodeWSType: the websocket protocol on an amps-unix transport.
	CodeWSType Code = "CFG-WS-TYPE"
	// CodeMessageType: a MessageType that is neither built in nor declared.
	CodeMessageType Code = "CFG-MESSAGETYPE"
	// CodeTLSMissing: tcps without Certificate and PrivateKey, or tcp with
	// only one of them.
	CodeTLSMissing Code = "CFG-TLS-MISSING"
	// CodeTLSLoad: the certificate or key cannot be loaded.
	CodeTLSLoad Code = "CFG-TLS-LOAD"
	// CodeTLSProtocol: SSLv2/SSLv3 or an unknown SecureSocketProtocols token.
	CodeTLSProtocol Code = "CFG-TLS-PROTOCOL"
	// CodeTLSCiphers: Ciphers cannot be translated to Go cipher suites.
	CodeTLSCiphers Code = "CFG-TLS-CIPHERS"
	// CodeTLSCA: VerifyClient without a CA, or an unreadable CA.
	CodeTLSCA Code = "CFG-TLS-CA"
	// CodeTLSOnUnix: TLS elements on an amps-unix transport.
	CodeTLSOnUnix Code = "CFG-TLS-ON-UNIX"
	// CodeUnixPath: amps-unix without FileName, or a path too long.
	CodeUnixPath Code = "CFG-UNIX-PATH"
	// CodeUnixMask: a bad FileMask, or one without owner write.
	CodeUnixMask Code = "CFG-UNIX-MASK"
	// CodeUnixInUse: the socket path is held by a live listener or is not a
	// socket.
	CodeUnixInUse Code = "CFG-UNIX-INUSE"
	// CodeIgnored: a setting that does not apply to the transport's type or
	// protocol.
	CodeIgnored Code = "CFG-INETADDR-IGNORED"
	// CodeModuleUnknown: an Authentication/Entitlement without Module, or
	// naming an unknown module.
	CodeModuleUnknown Code = "CFG-MODULE-UNKNOWN"
	// CodeModuleLibrary: a Modules/Module library this broker cannot emulate.
	CodeModuleLibrary Code = "CFG-MODULE-LIBRARY"
	// CodeSlowClient: disk offlining settings, which this broker ignores.
	CodeSlowClient Code = "CFG-SLOW-CLIENT"
	// CodeSOWTopic: a SOW Topic without Name/MessageType, defined twice, a
	// bad Pattern, or a definition the broker refuses (warning: a topic an
	// earlier Pattern shadows).
	CodeSOWTopic Code = "CFG-SOW-TOPIC"
	// CodeSOWKey: a bad Key, or KeyDomain without Key.
	CodeSOWKey Code = "CFG-SOW-KEY"
	// CodeSOWStorage: persistent storage without FileName, on a topic that
	// is not journaled, or with RecoveryPoint now (a persistent topic is
	// rebuilt from the journal); two persistent topics sharing a FileName;
	// as a warning, the note that a persistent topic is journal-backed.
	CodeSOWStorage Code = "CFG-SOW-STORAGE"
	// CodeSOWRecovery: an explicit RecoveryPoint on a topic that is not
	// journaled, where it has no effect (warning).
	CodeSOWRecovery Code = "CFG-SOW-RECOVERY"
	// CodeSOWLimits: SlabSize or InitialSlabCount out of range.
	CodeSOWLimits Code = "CFG-SOW-LIMITS"
	// CodeSOWType: AMPS-computed keys (Key) on a message type the broker
	// cannot read fields of (only json, fix and nvfix).
	CodeSOWType Code = "CFG-SOW-TYPE"
	// CodeCluster: a NATSCluster without a URL (or Embedded), with both,
	// with a URL that is not a NATS server's, with a Certificate and no
	// PrivateKey or the reverse, with JournalReplicas out of range, or an
	// Embedded server with a listener that is not host:port, a Route that
	// is not nats-route://host:port, or Routes without a ClusterListen.
	CodeCluster Code = "CFG-CLUSTER"
	// CodeTxLogDir: TransactionLog without a JournalDirectory.
	CodeTxLogDir Code = "CFG-TXLOG-DIR"
	// CodeTxLogArchive: JournalArchiveDirectory equal to JournalDirectory.
	CodeTxLogArchive Code = "CFG-TXLOG-ARCHIVE"
	// CodeTxLogSize: JournalSize below the minimum or given under both
	// names; PreallocatedJournalFiles below 1.
	CodeTxLogSize Code = "CFG-TXLOG-SIZE"
	// CodeTxLogFlush: FlushInterval outside 1us..1000ms.
	CodeTxLogFlush Code = "CFG-TXLOG-FLUSH"
	// CodeTxLogTopic: a TransactionLog Topic without Name or MessageType,
	// or with a Name that does not compile as a regular expression.
	CodeTxLogTopic Code = "CFG-TXLOG-TOPIC"
	// CodeTxLogNoTopic: a TransactionLog that records no topic (warning).
	CodeTxLogNoTopic Code = "CFG-TXLOG-NOTOPIC"
	// CodeTxLogTopicEvent: a TransactionLog Topic naming an /AMPS/ event
	// topic, which is never journaled (warning).
	CodeTxLogTopicEvent Code = "CFG-TXLOG-TOPIC-EVENT"
	// CodeUnsupported: an AMPS feature this broker does not implement.
	CodeUnsupported Code = "CFG-UNSUPPORTED"
	// CodeAccepted: an element that is read and then ignored.
	CodeAccepted Code = "CFG-ACCEPTED"
	// CodeAdminSQL: Admin/SQLTransport names no websocket transport.
	CodeAdminSQL Code = "CFG-ADMIN-SQL"
)

// Severity says whether a Diagnostic stops the configuration from loading.
type Severity int

const (
	// SeverityError makes Parse, Load and Validate fail.
	SeverityError Severity = iota
	// SeverityWarning is reported in Config.Warnings; loading goes on.
	SeverityWarning
)

// String is "error" or "warning".
func (s Severity) String() string {
	if s == SeverityWarning {
		return "warning"
	}
	return "error"
}

// Diagnostic is one problem found in a configuration. It implements error.
type Diagnostic struct {
	// Code classifies the problem, e.g. CodeInetAddr.
	Code Code
	// Severity says whether the problem stops loading.
	Severity Severity
	// Path is the element path below the root, with 1-based indexes on
	// repeatable elements, e.g. "Transports/Transport[2]/InetAddr". Empty
	// for problems of the whole file.
	Path string
	// File is the file the element came from (after includes); empty for a
	// document read from an io.Reader without ParseOptions.FileName, and for
	// Go values.
	File string
	// Line is the 1-based line of the element; 0 when unknown.
	Line int
	// Message says what is wrong, naming the offending value.
	Message string
}

// Error formats the diagnostic as "Path: Message (file line N)".
func (d Diagnostic) Error() string {
	var b strings.Builder
	if d.Path != "" {
		b.WriteString(d.Path)
		b.WriteString(": ")
	}
	b.WriteString(d.Message)
	switch {
	case d.Line > 0 && d.File != "":
		fmt.Fprintf(&b, " (%s line %d)", d.File, d.Line)
	case d.Line > 0:
		fmt.Fprintf(&b, " (line %d)", d.Line)
	case d.File != "":
		fmt.Fprintf(&b, " (%s)", d.File)
	}
	return b.String()
}

// Error is returned by Parse, Load and Validate when a configuration has at
// least one error. It holds every problem found, not just the first; use
// errors.As to get it.
type Error struct {
	// Errors are the problems that stop loading, in document order.
	Errors []Diagnostic
	// Warnings are the problems that would not have stopped loading.
	Warnings []Diagnostic
}

// Error lists every error, one per line.
func (e *Error) Error() string {
	var b strings.Builder
	if len(e.Errors) == 1 {
		b.WriteString("config: ")
		b.WriteString(e.Errors[0].Error())
		return b.String()
	}
	fmt.Fprintf(&b, "config: %d errors:", len(e.Errors))
	for _, d := range e.Errors {
		b.WriteString("\n\t")
		b.WriteString(d.Error())
	}
	return b.String()
}

// Unwrap returns the errors as individual Diagnostic values, so that
// errors.As(err, &diag) finds the first one.
func (e *Error) Unwrap() []error {
	errs := make([]error, len(e.Errors))
	for i, d := range e.Errors {
		errs[i] = d
	}
	return errs
}

// Has reports whether an error (not a warning) with the code was found.
func (e *Error) Has(code Code) bool {
	for _, d := range e.Errors {
		if d.Code == code {
			return true
		}
	}
	return false
}

// Sentinel errors of the Go API.
var (
	// ErrUnknownTransport is returned by Config.Listen when no transport has
	// the name asked for.
	ErrUnknownTransport = errors.New("config: no such transport")

	// ErrIncludeDepth is wrapped when Includes nest deeper than
	// MaxIncludeDepth.
	ErrIncludeDepth = errors.New("config: includes nested too deeply")
)

// diags collects diagnostics while parsing or validating.
type diags struct {
	list    []Diagnostic
	lenient bool
}

func (ds *diags) add(d Diagnostic) { ds.list = append(ds.list, d) }

// errorCount is the number of errors (not warnings) recorded so far.
func (ds *diags) errorCount() int {
	n := 0
	for _, d := range ds.list {
		if d.Severity == SeverityError {
			n++
		}
	}
	return n
}

// errorf records an error, in strict and lenient mode alike.
func (ds *diags) errorf(code Code, at pos, format string, args ...any) {
	ds.add(Diagnostic{Code: code, Severity: SeverityError, Path: at.path, File: at.file, Line: at.line, Message: fmt.Sprintf(format, args...)})
}

// warnf records a warning, in strict and lenient mode alike.
func (ds *diags) warnf(code Code, at pos, format string, args ...any) {
	ds.add(Diagnostic{Code: code, Severity: SeverityWarning, Path: at.path, File: at.file, Line: at.line, Message: fmt.Sprintf(format, args...)})
}

// strictf records an E/W problem: an error in strict mode, a warning in
// lenient mode. It reports whether it was an error.
func (ds *diags) strictf(code Code, at pos, format string, args ...any) bool {
	if ds.lenient {
		ds.warnf(code, at, format, args...)
		return false
	}
	ds.errorf(code, at, format, args...)
	return true
}

// result splits the diagnostics into an *Error (nil without errors) and the
// warnings.
func (ds *diags) result() (*Error, []Diagnostic) {
	// Report in document order: files in the order they first appear, then
	// by line. Problems found by later passes (validation) thus sit next
	// to those of the same element.
	rank := map[string]int{}
	for _, d := range ds.list {
		if _, ok := rank[d.File]; !ok {
			rank[d.File] = len(rank)
		}
	}
	list := append([]Diagnostic(nil), ds.list...)
	sort.SliceStable(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if rank[a.File] != rank[b.File] {
			return rank[a.File] < rank[b.File]
		}
		return a.Line < b.Line
	})
	var e Error
	for _, d := range list {
		if d.Severity == SeverityError {
			e.Errors = append(e.Errors, d)
		} else {
			e.Warnings = append(e.Warnings, d)
		}
	}
	if len(e.Errors) == 0 {
		return nil, e.Warnings
	}
	return &e, e.Warnings
}

// pos locates an element: its path, file and line.
type pos struct {
	path string
	file string
	line int
}

func (p pos) child(name string) pos {
	if p.path == "" {
		return pos{path: name, file: p.file, line: p.line}
	}
	return pos{path: p.path + "/" + name, file: p.file, line: p.line}
}
