package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/filter"
	"github.com/ampsbroker/ampsbroker/listener"
)

// emulatedLibraries are the Modules/Module Library values this broker can
// stand in for; any other library is CFG-MODULE-LIBRARY unless the module's
// Name is registered in Go.
var emulatedLibraries = map[string]bool{
	LibrarySimpleAccess: true,
}

// Validate checks the configuration and reports every problem at once as an
// *Error (nil when there is none). It reads the certificate, key and CA
// files named by TLS transports, and looks at existing amps-unix socket
// files. Warnings are not returned; Parse and Load put them in Warnings.
func (c *Config) Validate() error {
	var ds diags
	c.validate(&ds)
	if e, _ := ds.result(); e != nil {
		return e
	}
	return nil
}

// at returns where the Go value at path came from: the element path and
// line Parse recorded for it or for its nearest recorded ancestor. For Go
// values it is just the path.
func (c *Config) at(path string) pos {
	for p := path; p != ""; {
		if got, ok := c.positions[p]; ok {
			return pos{path: got.path + path[len(p):], file: got.file, line: got.line}
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	if got, ok := c.positions[""]; ok {
		return pos{path: path, file: got.file, line: got.line}
	}
	return pos{path: path}
}

func (c *Config) validate(ds *diags) {
	if c.Admin != nil {
		c.Admin.validate(c, ds)
	}
	if c.NATSCluster != nil {
		c.NATSCluster.validate(c, ds)
	}
	// The instance Name is required and, as AMPS asks, contains no spaces,
	// '/', '\', '$' or '~' (it ends up in file names).
	if strings.TrimSpace(c.Name) == "" {
		ds.errorf(CodeNameMissing, c.at("Name"), "instance Name is required")
	} else if strings.ContainsAny(c.Name, " \t/\\$~") {
		ds.errorf(CodeValue, c.at("Name"), "instance Name %q must not contain spaces, '/', '\\', '$' or '~'", c.Name)
	}

	version := c.Version
	if version == "" {
		version = broker.DefaultVersion
	}
	if c.RequiredMinimumVersion != "" {
		if cmp, err := compareVersions(version, c.RequiredMinimumVersion); err != nil {
			ds.errorf(CodeValue, c.at("RequiredMinimumVersion"), "%v", err)
		} else if cmp < 0 {
			ds.errorf(CodeVersion, c.at("RequiredMinimumVersion"), "config requires AMPS >= %s, broker reports %s", c.RequiredMinimumVersion, version)
		}
	}
	if c.SuggestedMinimumVersion != "" {
		if cmp, err := compareVersions(version, c.SuggestedMinimumVersion); err != nil {
			ds.errorf(CodeValue, c.at("SuggestedMinimumVersion"), "%v", err)
		} else if cmp < 0 {
			ds.warnf(CodeVersion, c.at("SuggestedMinimumVersion"), "config suggests AMPS >= %s, broker reports %s", c.SuggestedMinimumVersion, version)
		}
	}

	validateLimits(ds, c.at(""), "", c.MessageMemoryLimit, c.ClientMessageAgeLimit, c.ClientMaxCapacity)
	if c.MaxFrameSize < 0 {
		ds.errorf(CodeValue, c.at("MaxFrameSize"), "MaxFrameSize %d must not be negative", c.MaxFrameSize)
	}

	modules := map[string]bool{}
	for i, m := range c.Modules {
		path := fmt.Sprintf("Modules/Module[%d]", i+1)
		p := c.at(path)
		switch {
		case m.Name == "":
			ds.errorf(CodeModuleUnknown, p, "Module has no Name")
		case modules[m.Name]:
			ds.errorf(CodeModuleUnknown, p, "two modules named %q", m.Name)
		case c.goModule(m.Name):
			// A Go-registered Name needs no loadable library.
			if m.Library != "" {
				ds.warnf(CodeAccepted, c.at(path+"/Library"), "Module %q is registered in Go; Library %q is not loaded", m.Name, m.Library)
			}
		case !emulatedLibraries[libraryBase(m.Library)]:
			ds.errorf(CodeModuleLibrary, p, "Module %q: library %q is not available in this broker", m.Name, m.Library)
		case libraryBase(m.Library) == LibrarySimpleAccess:
			who := fmt.Sprintf("Module %q: ", m.Name)
			checkSimpleAccessOptions(ds, func(name string) pos { return c.at(path + "/Options/" + name) }, who, m.Options)
		}
		modules[m.Name] = true
	}
	c.checkModule(ds, "Authentication", "", kindAuthentication, c.Authentication)
	c.checkModule(ds, "Entitlement", "", kindEntitlement, c.Entitlement)

	types := map[string]bool{}
	for _, n := range builtinMessageTypes {
		types[n] = true
	}
	for i, mt := range c.MessageTypes {
		p := c.at(fmt.Sprintf("MessageTypes/MessageType[%d]", i+1))
		if mt.Name == "" {
			ds.errorf(CodeMessageType, p, "MessageType has no Name")
			continue
		}
		if mt.Module != "" && mt.Module != "json" {
			ds.errorf(CodeUnsupported, p.child("Module"), "MessageType %q: module %q is not supported (only json)", mt.Name, mt.Module)
		}
		types[mt.Name] = true
	}

	c.validateTransports(ds, types)
	c.validateTxLog(ds, types)
	c.validateSOW(ds, types)

	// The broker must accept the options the configuration gives it
	// (broker.New panics on the rest). validateSOW had it check each SOW
	// definition, to report at the definition's path; this covers the
	// options as a whole, in case a rule spans definitions.
	if ds.errorCount() == 0 {
		o := c.BrokerOptions()
		if err := o.Validate(); err != nil {
			ds.errorf(CodeSOWTopic, c.at("SOW"), "%v", err)
		}
	}
}

// libraryBase strips directories from a module library path.
func libraryBase(lib string) string {
	if i := strings.LastIndexAny(lib, `/\`); i >= 0 {
		return lib[i+1:]
	}
	return lib
}

// validateLimits checks slow-client settings: none is negative, and
// ClientMaxCapacity is a percentage (zero meaning the default).
func validateLimits(ds *diags, p pos, who string, mem int64, age time.Duration, capacity float64) {
	if mem < 0 {
		ds.errorf(CodeValue, p.child("MessageMemoryLimit"), "%sMessageMemoryLimit %d must not be negative", who, mem)
	}
	if age < 0 {
		ds.errorf(CodeValue, p.child("ClientMessageAgeLimit"), "%sClientMessageAgeLimit %v must not be negative", who, age)
	}
	if capacity < 0 || capacity > 100 {
		ds.errorf(CodeValue, p.child("ClientMaxCapacity"), "%sClientMaxCapacity '%v%%': must be in (0,100]", who, capacity)
	}
}

// conflicts reports whether two InetAddrs cannot both be bound: same
// non-zero port and either the same host, or one of them a wildcard that
// covers the other: a port alone ("9007") listens on IPv4 and IPv6,
// "0.0.0.0" on every IPv4 address, "[::]" on every IPv6 address.
func conflicts(a, b listener.InetAddr) bool {
	if a.Port == 0 || a.Port != b.Port {
		return false
	}
	if a.Host == b.Host || a.Host == "" || b.Host == "" {
		return true
	}
	covers := func(w, o string) bool {
		ip, err := netip.ParseAddr(o)
		switch w {
		case "0.0.0.0":
			return err == nil && ip.Is4()
		case "::":
			return err == nil && ip.Is6()
		}
		return false
	}
	return covers(a.Host, b.Host) || covers(b.Host, a.Host)
}

// boundAddr names what an InetAddr binds, for conflict messages: a port
// alone binds every address of both families.
func boundAddr(a listener.InetAddr) string {
	if a.Host == "" {
		return "[::]:" + strconv.Itoa(a.Port)
	}
	return a.Address()
}

func (c *Config) validateTransports(ds *diags, types map[string]bool) {
	names := map[string]int{}
	type bound struct {
		name string
		addr listener.InetAddr
	}
	var tcp []bound
	unixPaths := map[string]string{}

	for i := range c.Transports {
		t := &c.Transports[i]
		path := fmt.Sprintf("Transports/Transport[%d]", i+1)
		p := c.at(path)
		who := fmt.Sprintf("transport %q: ", t.Name)

		// CFG-TRANSPORT-NAME
		if t.Name == "" {
			ds.errorf(CodeTransportName, c.at(path+"/Name"), "transport Name is required")
			who = fmt.Sprintf("transport #%d: ", i+1)
		} else if j, dup := names[t.Name]; dup {
			ds.errorf(CodeTransportName, c.at(path+"/Name"), "two transports named %q (the other is Transport[%d])", t.Name, j+1)
		} else {
			names[t.Name] = i
		}

		// Type is tcp, tcps or amps-unix; replication transports are
		// recognised but not supported.
		switch t.Type {
		case TypeTCP, TypeTCPS, TypeUnix:
		case "":
			ds.errorf(CodeTransportType, c.at(path+"/Type"), "%sType is required (tcp, tcps or amps-unix)", who)
			continue
		case "amps-replication", "amps-replication-secure":
			ds.errorf(CodeTransportReplication, c.at(path+"/Type"), "%sreplication transports are not supported by this broker", who)
			continue
		default:
			ds.errorf(CodeTransportType, c.at(path+"/Type"), "%sunknown Type %q (use tcp, tcps or amps-unix)", who, t.Type)
			continue
		}

		// Protocol is amps or websocket; the legacy header protocols are
		// recognised but not supported.
		proto := t.protocol()
		switch proto {
		case ProtocolAMPS, ProtocolWebSocket:
		case "fix", "nvfix", "xml", "soap", "fix-session":
			ds.errorf(CodeProtocol, c.at(path+"/Protocol"), "%sProtocol %q not supported (use amps)", who, t.Protocol)
		default:
			ds.errorf(CodeProtocol, c.at(path+"/Protocol"), "%sunknown Protocol %q (use amps or websocket)", who, t.Protocol)
		}

		if t.MessageType != "" && !types[t.MessageType] {
			ds.errorf(CodeMessageType, c.at(path+"/MessageType"), "%sunknown MessageType %q", who, t.MessageType)
		}

		switch t.InitialState {
		case "", StateEnabled, StateDisabled:
		default:
			ds.errorf(CodeValue, c.at(path+"/InitialState"), "%sInitialState %q must be enabled or disabled", who, t.InitialState)
		}

		if t.Type == TypeUnix {
			// amps-unix: websocket and TLS are not available over a Unix
			// socket; FileName is required and fits in sun_path; InetAddr
			// is ignored.
			if proto == ProtocolWebSocket {
				ds.errorf(CodeWSType, c.at(path+"/Protocol"), "%swebsocket requires Type tcp or tcps", who)
			}
			if t.Certificate != "" || t.PrivateKey != "" || t.CAFile != "" || t.CAPath != "" || t.VerifyClient || t.SecureSocketProtocols != "" || t.Ciphers != "" || t.TLSConfig != nil {
				ds.errorf(CodeTLSOnUnix, p, "%sTLS options not valid for amps-unix", who)
			}
			if t.InetAddr != "" {
				ds.warnf(CodeIgnored, c.at(path+"/InetAddr"), "%sInetAddr ignored for Type amps-unix", who)
			}
			switch {
			case t.FileName == "":
				ds.errorf(CodeUnixPath, c.at(path+"/FileName"), "%sFileName is required for Type amps-unix", who)
			case len(t.FileName) > maxUnixPath:
				ds.errorf(CodeUnixPath, c.at(path+"/FileName"), "%sFileName %q is %d bytes, longer than the %d a socket path may have", who, t.FileName, len(t.FileName), maxUnixPath)
			default:
				if other, dup := unixPaths[t.FileName]; dup {
					ds.errorf(CodeAddrConflict, p, "transports %q and %q both listen on %s", other, t.Name, t.FileName)
				}
				unixPaths[t.FileName] = t.Name
				checkSocketFile(ds, c.at(path+"/FileName"), who, t.FileName)
			}
			if t.FileMask&^os.ModePerm != 0 {
				ds.errorf(CodeUnixMask, c.at(path+"/FileMask"), "%sFileMask %#o has bits beyond 0777", who, uint32(t.FileMask))
			} else if t.FileMask != 0 && t.FileMask&0o200 == 0 {
				// A client needs write permission on the socket file to
				// connect, so a mask without owner write is likely a mistake.
				ds.warnf(CodeUnixMask, c.at(path+"/FileMask"), "%sFileMask '%04o' gives no write permission; clients cannot connect", who, uint32(t.FileMask))
			}
		} else {
			// tcp / tcps: InetAddr is required, and no two transports may
			// bind the same address. tcps needs Certificate and PrivateKey;
			// tcp with both becomes TLS; one without the other is an error.
			if t.InetAddr == "" {
				ds.errorf(CodeInetAddr, c.at(path+"/InetAddr"), "%sInetAddr missing (required for Type %s)", who, t.Type)
			} else if a, err := listener.ParseInetAddr(t.InetAddr); err != nil {
				// The listener's grammar is the one ListenTCP and
				// ListenWebSocket apply.
				ds.errorf(CodeInetAddr, c.at(path+"/InetAddr"), "%s%s", who, strings.TrimPrefix(err.Error(), "listener: "))
			} else {
				for _, o := range tcp {
					if conflicts(a, o.addr) {
						ds.errorf(CodeAddrConflict, c.at(path+"/InetAddr"), "transports %q and %q both listen on %s", o.name, t.Name, boundAddr(a))
						break
					}
				}
				tcp = append(tcp, bound{t.Name, a})
			}
			if t.TLSConfig == nil {
				hasCert, hasKey := t.Certificate != "", t.PrivateKey != ""
				switch {
				case t.Type == TypeTCPS && (!hasCert || !hasKey):
					ds.errorf(CodeTLSMissing, p, "%sType tcps requires Certificate and PrivateKey", who)
				case hasCert != hasKey:
					ds.errorf(CodeTLSMissing, p, "%sCertificate and PrivateKey must be given together", who)
				case hasCert:
					t.loadTLS(ds, p)
				default:
					if t.VerifyClient || t.CAFile != "" || t.CAPath != "" || t.SecureSocketProtocols != "" || t.Ciphers != "" {
						ds.warnf(CodeIgnored, p, "%sTLS options ignored without Certificate and PrivateKey", who)
					}
				}
			}
			if t.FileName != "" || t.FileMask != 0 {
				ds.warnf(CodeIgnored, p, "%sFileName and FileMask ignored for Type %s", who, t.Type)
			}
		}
		if proto != ProtocolWebSocket && len(t.HTTPHeaders) > 0 {
			ds.warnf(CodeIgnored, c.at(path+"/HTTPHeader[1]"), "%sHTTPHeader ignored for Protocol %s", who, proto)
		}
		for j, h := range t.HTTPHeaders {
			if !headerLine(h) {
				ds.errorf(CodeValue, c.at(fmt.Sprintf("%s/HTTPHeader[%d]", path, j+1)), "%sHTTPHeader %q must be 'Name: value' on one line", who, h)
			}
		}
		if t.MaxFrameSize < 0 {
			ds.errorf(CodeValue, p, "%sMaxFrameSize %d must not be negative", who, t.MaxFrameSize)
		}
		validateLimits(ds, p, who, t.MessageMemoryLimit, t.ClientMessageAgeLimit, t.ClientMaxCapacity)
		if t.MaxConnections < 0 {
			ds.errorf(CodeValue, p, "%sMaxConnections %d must not be negative", who, t.MaxConnections)
		}
		c.checkModule(ds, path+"/Authentication", who, kindAuthentication, t.Authentication)
		c.checkModule(ds, path+"/Entitlement", who, kindEntitlement, t.Entitlement)
	}
}

// checkSocketFile checks what already exists at a Unix socket path: a
// socket nobody answers on is stale and left for the listener to replace;
// a live socket or any other file is CFG-UNIX-INUSE.
func checkSocketFile(ds *diags, p pos, who, path string) {
	fi, err := os.Lstat(path)
	if err != nil {
		return // absent (or unreadable: the listener reports it)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		ds.errorf(CodeUnixInUse, p, "%s%s exists and is not a socket", who, path)
		return
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		ds.errorf(CodeUnixInUse, p, "%s%s is in use by a running server", who, path)
	}
}

// validateSOW checks the SOW topic definitions. The broker has the last
// word on what it can run (broker.Options.Validate; New panics on what it
// refuses), so each definition that passes the checks here is also handed
// to the broker's validation, and what the broker refuses becomes a
// diagnostic at the topic's path. The checks here come first because they
// can name the offending element (a Key, the Pattern) and the diagnostic
// code; a definition that fails them is not handed on, so one problem gives
// one message.
func (c *Config) validateSOW(ds *diags, types map[string]bool) {
	seen := map[[2]string]int{}        // (Name, MessageType) -> index
	seenPattern := map[[2]string]int{} // (Pattern, MessageType) -> index
	files := map[string]int{}          // expanded FileName of persistent topics -> index
	var journal *JournalMatcher        // nil without a TransactionLog: nothing is journaled
	if c.TransactionLog != nil {
		journal = newJournalMatcher(c.TransactionLog.Topics)
	}
	for i, t := range c.SOW {
		errs := ds.errorCount()
		path := fmt.Sprintf("SOW/Topic[%d]", i+1)
		p := c.at(path)
		who := fmt.Sprintf("SOW Topic %q", t.Name)
		// AMPS requires Name on every Topic, Pattern topics included: its
		// configuration reference marks Name required and says that with a
		// Pattern the Name defines the physical topic only, and a
		// ConflatedTopic refers to a pattern topic by that Name. So a
		// Pattern does not replace Name here either; spec §6.2 lists Name
		// as required without exception.
		if t.Name == "" {
			who = fmt.Sprintf("SOW Topic #%d", i+1)
			if t.Pattern != "" {
				ds.errorf(CodeSOWTopic, c.at(path+"/Name"), "SOW Topic with Pattern %q needs a Name (the physical topic holding the matching topics)", t.Pattern)
			} else {
				ds.errorf(CodeSOWTopic, c.at(path+"/Name"), "SOW Topic needs a Name")
			}
		}
		if t.MessageType == "" {
			ds.errorf(CodeSOWTopic, c.at(path+"/MessageType"), "%s needs a MessageType", who)
		} else if !types[t.MessageType] {
			ds.errorf(CodeMessageType, c.at(path+"/MessageType"), "%s: unknown MessageType %q", who, t.MessageType)
		}
		// The pair (name, message type) identifies a topic; for a Pattern
		// topic the name is the physical topic's, so it may not repeat
		// either.
		if t.Name != "" && t.MessageType != "" {
			k := [2]string{t.Name, t.MessageType}
			if j, dup := seen[k]; dup {
				ds.errorf(CodeSOWTopic, p, "SOW Topic %q (%s) defined twice (first as Topic[%d])", t.Name, t.MessageType, j+1)
			} else {
				seen[k] = i
			}
		}
		if t.Pattern != "" {
			if _, err := regexp.Compile(t.Pattern); err != nil {
				ds.errorf(CodeSOWTopic, c.at(path+"/Pattern"), "%s: Pattern %q is not a valid regular expression: %v", who, t.Pattern, err)
			} else if t.MessageType != "" {
				// Two definitions with one pattern: the second could never
				// hold a topic.
				k := [2]string{t.Pattern, t.MessageType}
				if j, dup := seenPattern[k]; dup {
					ds.errorf(CodeSOWTopic, c.at(path+"/Pattern"), "%s: Pattern %q (%s) is already defined by Topic[%d]", who, t.Pattern, t.MessageType, j+1)
				} else {
					seenPattern[k] = i
				}
			}
		}
		// A Key starts with '/' (an XPath-like field path such as /id) or
		// is a bracketed name.
		for j, k := range t.Keys {
			if !(strings.HasPrefix(k, "/") && len(k) > 1 || strings.HasPrefix(k, "[") && strings.HasSuffix(k, "]") && len(k) > 2) {
				ds.errorf(CodeSOWKey, c.at(fmt.Sprintf("%s/Key[%d]", path, j+1)), "%s: Key %q must start with '/' (e.g. /id)", who, k)
			}
		}
		if t.KeyDomain != "" && len(t.Keys) == 0 {
			ds.errorf(CodeSOWKey, c.at(path+"/KeyDomain"), "%s: KeyDomain requires at least one Key", who)
		}
		// The broker computes keys by reading the key fields, which it can
		// do for the message types its filter engine parses (json, fix,
		// nvfix: filter.ParseMessageType, the test the broker applies).
		// Other types, declared aliases included, need publishers to give
		// each record's key.
		if len(t.Keys) > 0 && t.MessageType != "" && types[t.MessageType] {
			if _, err := filter.ParseMessageType(t.MessageType); err != nil {
				ds.errorf(CodeSOWType, p, "%s (%s): keys cannot be computed for this message type (json, fix and nvfix can be read); without Key, publishers give each record's key", who, t.MessageType)
			}
		}
		c.validateSOWStorage(ds, &t, i, who, journal.Journaled(t.Name, t.MessageType), files)
		if t.Expiration < 0 {
			ds.errorf(CodeValue, c.at(path+"/Expiration"), "%s: Expiration %v must not be negative", who, t.Expiration)
		}
		if ds.errorCount() == errs {
			o := broker.Options{SOWTopics: []broker.SOWTopic{t.brokerTopic()}}
			if err := o.Validate(); err != nil {
				ds.errorf(CodeSOWTopic, p, "%v", brokerReason(err))
			}
		}
	}
	c.warnShadowedSOW(ds)
}

// validateSOWStorage checks Durability, FileName and RecoveryPoint
// (amps-config-txlog §6A.5). This broker writes no SOW file: a persistent
// topic is kept by rebuilding it from the journal at start, as AMPS does
// when the file is missing, so it must be journaled and recover from
// epoch; its FileName is still required and must not be shared. Strict
// mode refuses the rest (lenient Parse has already made them transient);
// a RecoveryPoint on a topic that is not journaled has no effect.
func (c *Config) validateSOWStorage(ds *diags, t *SOWTopic, i int, who string, journaled bool, files map[string]int) {
	path := fmt.Sprintf("SOW/Topic[%d]", i+1)
	switch t.RecoveryPoint {
	case "", RecoveryEpoch, RecoveryNow:
		if t.RecoveryPoint != "" && !journaled {
			ds.warnf(CodeSOWRecovery, c.at(path+"/RecoveryPoint"), "%s: RecoveryPoint ignored, topic is not journaled", who)
		}
	default:
		ds.errorf(CodeValue, c.at(path+"/RecoveryPoint"), "%s: RecoveryPoint %q must be epoch or now", who, t.RecoveryPoint)
	}
	switch t.Durability {
	case "", DurabilityTransient:
		return
	case DurabilityPersistent:
	default:
		ds.errorf(CodeValue, c.at(path+"/Durability"), "%s: Durability %q must be persistent or transient", who, t.Durability)
		return
	}
	p := c.at(path)
	switch {
	case t.FileName == "":
		ds.errorf(CodeSOWStorage, p, "%s: Durability persistent needs FileName (or set transient)", who)
		return
	case c.TransactionLog == nil:
		ds.errorf(CodeSOWStorage, p, "%s: persistent storage needs the topic to be journaled with RecoveryPoint epoch, and there is no TransactionLog (or set Durability transient)", who)
	case !journaled:
		ds.errorf(CodeSOWStorage, p, "%s: persistent storage needs the topic to be journaled with RecoveryPoint epoch, and no TransactionLog Topic matches (%s, %s) (or set Durability transient)", who, t.Name, t.MessageType)
	case t.RecoveryPoint == RecoveryNow:
		ds.errorf(CodeSOWStorage, p, "%s: persistent storage needs RecoveryPoint epoch: it is rebuilt from the journal, so with now it would lose its records (or set Durability transient)", who)
	default:
		ds.warnf(CodeSOWStorage, p, "%s: journal-backed: rebuilt from the transaction log at start; %s is not written", who, sowFileName(t.FileName, t.Name, t.MessageType))
	}
	file := filepath.Clean(sowFileName(t.FileName, t.Name, t.MessageType))
	if j, dup := files[file]; dup {
		ds.errorf(CodeSOWStorage, c.at(path+"/FileName"), "%s: FileName %s is also Topic[%d]'s; two topics must not share a file", who, file, j+1)
	} else {
		files[file] = i
	}
}

// brokerReason strips the broker's list position ("broker: SOWTopics[0]:")
// from a Validate error, which the diagnostic's path replaces.
func brokerReason(err error) error {
	if inner := errors.Unwrap(err); inner != nil {
		return inner
	}
	return err
}

// warnShadowedSOW warns about a Name topic that an earlier Pattern topic of
// the same message type matches: the first matching definition holds a
// topic, so the later one is never used (AMPS: a standalone definition
// wins over a pattern only when it comes first). The pattern is matched
// against the whole name, as the broker does.
func (c *Config) warnShadowedSOW(ds *diags) {
	type pat struct {
		re *regexp.Regexp
		mt string
		i  int
	}
	var pats []pat
	for i, t := range c.SOW {
		if t.Pattern != "" {
			if re, err := regexp.Compile(`^(?:` + t.Pattern + `)$`); err == nil {
				pats = append(pats, pat{re, t.MessageType, i})
			}
			continue
		}
		for _, q := range pats {
			if q.mt == t.MessageType && t.Name != "" && q.re.MatchString(t.Name) {
				ds.warnf(CodeSOWTopic, c.at(fmt.Sprintf("SOW/Topic[%d]", i+1)), "SOW Topic %q (%s) is never used: the Pattern %q of Topic[%d] comes first and holds it (put it before the pattern topic)", t.Name, t.MessageType, c.SOW[q.i].Pattern, q.i+1)
				break
			}
		}
	}
}

// brokerTopic is the broker's definition of t. For a Pattern topic the
// broker takes the Pattern alone (its Name and Pattern are exclusive); the
// physical topic's Name survives as the default KeyDomain, which is what
// AMPS seeds a pattern topic's keys with when KeyDomain is not given.
func (t *SOWTopic) brokerTopic() broker.SOWTopic {
	bt := broker.SOWTopic{Name: t.Name, Pattern: t.Pattern, MessageType: t.MessageType, Keys: t.Keys, KeyDomain: t.KeyDomain,
		Expiration: t.Expiration, ExpirationEnabled: t.ExpirationEnabled}
	if len(t.Keys) > 0 {
		bt.Keys = append([]string(nil), t.Keys...)
	}
	return bt
}

// compareVersions compares dot-separated numeric versions ("5.3.4.0" vs
// "5.3"); missing parts count as zero. Non-numeric suffix parts of have
// (build hashes) are ignored.
func compareVersions(have, want string) (int, error) {
	parse := func(s string, strict bool) ([]int, error) {
		var out []int
		for _, part := range strings.Split(strings.TrimSpace(s), ".") {
			n, err := strconv.Atoi(part)
			if err != nil {
				if strict {
					return nil, fmt.Errorf("version %q is not dot-separated numbers", s)
				}
				break
			}
			out = append(out, n)
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("version %q is not dot-separated numbers", s)
		}
		return out, nil
	}
	h, err := parse(have, false)
	if err != nil {
		return 0, err
	}
	w, err := parse(want, true)
	if err != nil {
		return 0, err
	}
	for i := 0; i < len(h) || i < len(w); i++ {
		var a, b int
		if i < len(h) {
			a = h[i]
		}
		if i < len(w) {
			b = w[i]
		}
		if a != b {
			if a < b {
				return -1, nil
			}
			return 1, nil
		}
	}
	return 0, nil
}

// validate checks the admin server's settings: InetAddr (when set) has the
// transport InetAddr syntax, a non-zero Interval is at least
// MinAdminInterval, and Certificate and PrivateKey come together and load.
func (a *Admin) validate(c *Config, ds *diags) {
	if a.InetAddr != "" {
		if _, err := listener.ParseInetAddr(a.InetAddr); err != nil {
			ds.errorf(CodeInetAddr, c.at("Admin/InetAddr"), "Admin %s", strings.TrimPrefix(err.Error(), "listener: "))
		}
	}
	for i, h := range a.Headers {
		if !headerLine(h) {
			ds.errorf(CodeValue, c.at(fmt.Sprintf("Admin/Header[%d]", i+1)), "Admin Header %q must be 'Name: value' on one line", h)
		}
	}
	for _, re := range []struct{ name, expr string }{
		{"AnonymousPaths", a.AnonymousPaths}, {"AccessControlAllowOrigin", a.AccessControlAllowOrigin},
	} {
		if _, err := regexp.Compile(re.expr); err != nil {
			ds.errorf(CodeValue, c.at("Admin/"+re.name), "Admin %s %q is not a valid regular expression: %v", re.name, re.expr, err)
		}
	}
	switch a.Galvanometer {
	case "", StateEnabled, StateDisabled:
	default:
		ds.errorf(CodeValue, c.at("Admin/Galvanometer"), "Admin Galvanometer %q must be enabled or disabled", a.Galvanometer)
	}
	c.checkModule(ds, "Admin/Authentication", "Admin ", kindAuthentication, a.Authentication)
	c.checkModule(ds, "Admin/Entitlement", "Admin ", kindEntitlement, a.Entitlement)
	if a.Interval != 0 && a.Interval < MinAdminInterval {
		ds.errorf(CodeValue, c.at("Admin/Interval"), "Admin Interval %v is below the %v minimum", a.Interval, MinAdminInterval)
	}
	if (a.Certificate == "") != (a.PrivateKey == "") {
		ds.errorf(CodeTLSMissing, c.at("Admin"), "Admin Certificate and PrivateKey go together: HTTPS needs both")
	} else if _, err := a.LoadTLS(); err != nil {
		ds.errorf(CodeTLSLoad, c.at("Admin/Certificate"), "%v", err)
	}
}

// headerLine says whether h is one "Name: value" header line.
func headerLine(h string) bool {
	name, _, ok := strings.Cut(h, ":")
	return ok && strings.TrimSpace(name) != "" && !strings.ContainsAny(h, "\r\n")
}
