package config

import (
	"fmt"
	"os"
	"sort"
	"strings"
)

// decoder turns the expanded element tree into a Config.
type decoder struct {
	ds             *diags
	cfg            *Config
	lenient        bool
	cycleThreshold int64
	// xmlPath maps each node to its element path, set by check.
	xmlPath map[*node]string
	// skip marks nodes check reported and decoding must ignore.
	skip map[*node]bool
}

// check walks n against its schema entry and records every element's path;
// at is n's position. Element names are case-sensitive, so a case-only
// mismatch is an unknown element, reported with a "did you mean" hint. An
// unknown element is an error in strict mode and a warning in lenient mode.
// A single-valued element given twice is an error. An element we parse but
// ignore earns a warning; an unsupported one is an error, downgraded to a
// warning in lenient mode unless dropping it would change what clients
// see (lvRejectHard). Reported elements are not decoded.
func (d *decoder) check(n *node, e *elem, at pos) {
	if d.xmlPath == nil {
		d.xmlPath = map[*node]string{}
		d.skip = map[*node]bool{}
	}
	d.xmlPath[n] = at.path
	if e.opaque {
		return
	}
	if e.kids == nil {
		if len(n.children) > 0 {
			d.ds.errorf(CodeValue, at, "%s must hold text, not <%s>", n.name, n.children[0].name)
			d.skip[n] = true
		}
		return
	}
	count := map[string]int{}
	for _, c := range n.children {
		count[c.name]++
	}
	index := map[string]int{}
	for _, c := range n.children {
		index[c.name]++
		ce := e.kids[c.name]
		name := c.name
		if ce != nil && ce.repeat {
			name = fmt.Sprintf("%s[%d]", c.name, index[c.name])
		}
		cp := at.child(name)
		cp.file, cp.line = c.file, c.line
		d.xmlPath[c] = cp.path
		if ce == nil {
			d.skip[c] = true
			if hint := suggest(c.name, e.kids); hint != "" {
				d.ds.strictf(CodeUnknownElement, cp, "unknown element (did you mean %s?)", hint)
			} else {
				d.ds.strictf(CodeUnknownElement, cp, "unknown element")
			}
			continue
		}
		if !ce.repeat && index[c.name] == 2 {
			d.ds.errorf(CodeDuplicate, cp, "%s given twice", c.name)
		}
		if !ce.repeat && index[c.name] > 1 {
			d.skip[c] = true
			continue
		}
		code := ce.code
		switch ce.lv {
		case lvAccept:
			if code == "" {
				code = CodeAccepted
			}
			d.ds.warnf(code, cp, "%s", ce.why)
		case lvReject:
			if code == "" {
				code = CodeUnsupported
			}
			d.ds.strictf(code, cp, "%s", ce.why)
			d.skip[c] = true
			continue
		case lvRejectHard:
			if code == "" {
				code = CodeUnsupported
			}
			d.ds.errorf(code, cp, "%s", ce.why)
			d.skip[c] = true
			continue
		}
		d.check(c, ce, cp)
	}
}

// suggest finds the element the user probably meant: a case-insensitive
// match (element names are case-sensitive, so "inetaddr" is unknown), or a
// name within edit distance 2.
func suggest(name string, kids map[string]*elem) string {
	names := make([]string, 0, len(kids))
	for k := range kids {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if strings.EqualFold(k, name) {
			return k
		}
	}
	// Allow about two edits per five letters, at least two.
	best, bestD := "", max(2, len(name)*2/5)+1
	for _, k := range names {
		if dist := editDistance(strings.ToLower(k), strings.ToLower(name)); dist < bestD {
			best, bestD = k, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// kid returns the first usable child named name, or nil.
func (d *decoder) kid(n *node, name string) *node {
	for _, c := range n.children {
		if c.name == name && !d.skip[c] {
			return c
		}
	}
	return nil
}

// kids returns every usable child named name.
func (d *decoder) kids(n *node, name string) []*node {
	var out []*node
	for _, c := range n.children {
		if c.name == name && !d.skip[c] {
			out = append(out, c)
		}
	}
	return out
}

func (d *decoder) at(n *node) pos {
	return pos{path: d.xmlPath[n], file: n.file, line: n.line}
}

// remember records where the Go value at goPath came from, for Validate.
func (d *decoder) remember(goPath string, n *node) {
	d.cfg.positions[goPath] = d.at(n)
	prefix := ""
	if goPath != "" {
		prefix = goPath + "/"
	}
	for _, c := range n.children {
		// The last segment of the element path: "InetAddr" or "Key[2]".
		seg := d.xmlPath[c]
		if i := strings.LastIndexByte(seg, '/'); i >= 0 {
			seg = seg[i+1:]
		}
		if _, ok := d.cfg.positions[prefix+seg]; !ok && !d.skip[c] && seg != "" {
			d.cfg.positions[prefix+seg] = d.at(c)
		}
	}
}

// text returns a child's text ("" when absent).
func (d *decoder) text(n *node, name string) string {
	if c := d.kid(n, name); c != nil {
		return c.text
	}
	return ""
}

// value parses a child's text with fn, reporting CFG-VALUE on failure.
func value[T any](d *decoder, n *node, name string, fn func(string) (T, error)) (T, bool) {
	var zero T
	c := d.kid(n, name)
	if c == nil {
		return zero, false
	}
	v, err := fn(c.text)
	if err != nil {
		d.ds.errorf(CodeValue, d.at(c), "%s %v", name, err)
		return zero, false
	}
	return v, true
}

// enum lower-cases an enumerated value: enumerated values (Type, Protocol,
// Durability, levels, booleans) are case-insensitive, as the AMPS
// documentation writes both "True" and "true".
func enum(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func (d *decoder) decodeRoot(root *node) {
	c := d.cfg
	d.remember("", root)
	c.Name = d.text(root, "Name")
	c.Description = d.text(root, "Description")
	c.RequiredMinimumVersion = d.text(root, "RequiredMinimumVersion")
	c.SuggestedMinimumVersion = d.text(root, "SuggestedMinimumVersion")
	value(d, root, "ConfigIncludeCommentDefault", ParseBool)
	if v, ok := value(d, root, "ConfigCycleDetectionThreshold", ParseSize); ok {
		d.cycleThreshold = v
	}
	if v, ok := value(d, root, "ConfigValidation", ParseBool); ok && !v {
		// ConfigValidation disabled lets AMPS start on an invalid file; this
		// broker always validates, so the element is only acknowledged.
		d.ds.warnf(CodeAccepted, d.at(d.kid(root, "ConfigValidation")), "ConfigValidation disabled is ignored: this broker always validates")
	}
	if v, ok := value(d, root, "RegexTopicSupport", ParseBool); ok {
		c.NoRegexTopics = !v
	}
	c.MessageMemoryLimit, _ = value(d, root, "MessageMemoryLimit", ParseSize)
	c.ClientMessageAgeLimit, _ = value(d, root, "ClientMessageAgeLimit", ParseInterval)
	c.ClientMaxCapacity, _ = value(d, root, "ClientMaxCapacity", ParsePercent)
	c.Authentication = d.moduleRef(d.kid(root, "Authentication"))
	c.Entitlement = d.moduleRef(d.kid(root, "Entitlement"))
	d.rememberModule("Authentication", d.kid(root, "Authentication"))
	d.rememberModule("Entitlement", d.kid(root, "Entitlement"))

	if ms := d.kid(root, "Modules"); ms != nil {
		for _, m := range d.kids(ms, "Module") {
			def := ModuleDef{Name: d.text(m, "Name"), Library: d.text(m, "Library"), Options: d.options(d.kid(m, "Options"))}
			if d.lenient && def.Name != "" && !emulatedLibraries[libraryBase(def.Library)] && !d.cfg.goModule(def.Name) {
				// A library this broker cannot emulate is an error in strict
				// mode (Validate); lenient mode drops the module instead.
				d.ds.warnf(CodeModuleLibrary, d.at(m), "Module %q: library %q is not available in this broker; skipped", def.Name, def.Library)
				continue
			}
			d.rememberModule(fmt.Sprintf("Modules/Module[%d]", len(c.Modules)+1), m)
			c.Modules = append(c.Modules, def)
		}
	}
	if mts := d.kid(root, "MessageTypes"); mts != nil {
		for _, m := range d.kids(mts, "MessageType") {
			mt := MessageType{Name: d.text(m, "Name"), Module: d.text(m, "Module")}
			// With EarlyTerminationOptimization false, AMPS lets the last of
			// duplicate JSON member names win; the filter engine always takes
			// the first (AMPS's default), so false is refused rather than
			// ignored.
			if v, ok := value(d, m, "EarlyTerminationOptimization", ParseBool); ok && !v {
				d.ds.strictf(CodeUnsupported, d.at(d.kid(m, "EarlyTerminationOptimization")),
					"MessageType %q: EarlyTerminationOptimization false (the last of duplicate JSON members wins) is not supported: the first always wins", mt.Name)
			}
			if d.lenient && mt.Module != "" && mt.Module != "json" {
				d.ds.warnf(CodeUnsupported, d.at(m), "MessageType %q: module %q is not supported; payloads are carried opaque", mt.Name, mt.Module)
				mt.Module = ""
			}
			d.remember(fmt.Sprintf("MessageTypes/MessageType[%d]", len(c.MessageTypes)+1), m)
			c.MessageTypes = append(c.MessageTypes, mt)
		}
	}
	if ts := d.kid(root, "Transports"); ts != nil {
		for _, tn := range d.kids(ts, "Transport") {
			if t, ok := d.transport(tn); ok {
				path := fmt.Sprintf("Transports/Transport[%d]", len(c.Transports)+1)
				d.remember(path, tn)
				d.rememberModule(path+"/Authentication", d.kid(tn, "Authentication"))
				d.rememberModule(path+"/Entitlement", d.kid(tn, "Entitlement"))
				c.Transports = append(c.Transports, t)
			}
		}
	}
	// The journal first: whether a SOW topic is journaled decides how
	// lenient mode runs a persistent one.
	if tl := d.kid(root, "TransactionLog"); tl != nil {
		c.TransactionLog = d.transactionLog(tl)
	}
	for _, sowName := range []string{"SOW", "TopicMetaData"} {
		sn := d.kid(root, sowName)
		if sn == nil {
			continue
		}
		if sowName == "TopicMetaData" {
			d.ds.warnf(CodeAccepted, d.at(sn), "TopicMetaData is the pre-5.0 name of SOW; read as SOW")
		}
		for _, tn := range sn.children {
			if d.skip[tn] || (tn.name != "Topic" && tn.name != "TopicDefinition") {
				continue
			}
			if tn.name == "TopicDefinition" {
				d.ds.warnf(CodeAccepted, d.at(tn), "TopicDefinition is the pre-5.0 name of Topic; read as Topic")
			}
			d.remember(fmt.Sprintf("SOW/Topic[%d]", len(c.SOW)+1), tn)
			c.SOW = append(c.SOW, d.topic(tn))
		}
	}
	if cn := d.kid(root, "NATSCluster"); cn != nil {
		c.NATSCluster = d.natsCluster(cn)
	}
	if lg := d.kid(root, "Logging"); lg != nil {
		for _, tn := range d.kids(lg, "Target") {
			c.Logging = append(c.Logging, d.logTarget(tn))
		}
	}
	if adm := d.kid(root, "Admin"); adm != nil {
		d.admin(adm)
	}
}

// rememberModule records where a module element (Authentication,
// Entitlement or Modules/Module) and each of its Options came from, so that
// Validate names the line of a bad option.
func (d *decoder) rememberModule(goPath string, n *node) {
	if n == nil {
		return
	}
	d.remember(goPath, n)
	o := d.kid(n, "Options")
	if o == nil {
		return
	}
	base := d.xmlPath[o]
	for _, c := range o.children {
		// Options is opaque to check, so its children have no path yet.
		d.cfg.positions[goPath+"/Options/"+c.name] = pos{path: base + "/" + c.name, file: c.file, line: c.line}
	}
}

// moduleRef decodes an Authentication or Entitlement element.
func (d *decoder) moduleRef(n *node) *Module {
	if n == nil {
		return nil
	}
	return &Module{Module: d.text(n, "Module"), Options: d.options(d.kid(n, "Options"))}
}

// options flattens module Options children into name → text.
func (d *decoder) options(n *node) map[string]string {
	if n == nil || len(n.children) == 0 {
		return nil
	}
	m := make(map[string]string, len(n.children))
	for _, c := range n.children {
		m[c.name] = c.text
	}
	return m
}

func (d *decoder) transport(n *node) (Transport, bool) {
	t := Transport{
		Name:                  d.text(n, "Name"),
		Type:                  enum(d.text(n, "Type")),
		InetAddr:              d.text(n, "InetAddr"),
		Protocol:              enum(d.text(n, "Protocol")),
		MessageType:           d.text(n, "MessageType"),
		InitialState:          enum(d.text(n, "InitialState")),
		Certificate:           d.text(n, "Certificate"),
		PrivateKey:            d.text(n, "PrivateKey"),
		Ciphers:               d.text(n, "Ciphers"),
		SecureSocketProtocols: d.text(n, "SecureSocketProtocols"),
		CAFile:                d.text(n, "CAFile"),
		CAPath:                d.text(n, "CAPath"),
		FileName:              d.text(n, "FileName"),
		Authentication:        d.moduleRef(d.kid(n, "Authentication")),
		Entitlement:           d.moduleRef(d.kid(n, "Entitlement")),
	}
	at := d.at(n)
	who := fmt.Sprintf("transport %q: ", t.Name)
	t.VerifyClient, _ = value(d, n, "VerifyClient", ParseBool)
	if m, ok := value(d, n, "FileMask", parseFileMask); ok {
		t.FileMask = os.FileMode(m)
	}
	t.MessageMemoryLimit, _ = value(d, n, "MessageMemoryLimit", ParseSize)
	t.ClientMessageAgeLimit, _ = value(d, n, "ClientMessageAgeLimit", ParseInterval)
	t.ClientMaxCapacity, _ = value(d, n, "ClientMaxCapacity", ParsePercent)
	for _, h := range d.kids(n, "HTTPHeader") {
		t.HTTPHeaders = append(t.HTTPHeaders, h.text)
	}

	// The AMPS documentation both lists Protocol as required and says amps
	// is used when none is given. We default to amps, with a warning so the
	// omission stays visible.
	if d.kid(n, "Protocol") == nil {
		d.ds.warnf(CodeProtocolDefaulted, at, "%sProtocol not set, using amps", who)
	} else if t.Protocol == "json" {
		t.Protocol = ProtocolAMPS // AMPS treats json as a synonym of amps
	}

	// PerMessageDeflate is on unless the element says literally "disabled",
	// as in AMPS (no other false-like spelling turns it off).
	t.PerMessageDeflate = true
	if pmd := d.kid(n, "PerMessageDeflate"); pmd != nil {
		t.PerMessageDeflate = enum(pmd.text) != "disabled"
		if t.Protocol != ProtocolWebSocket {
			d.ds.warnf(CodeIgnored, d.at(pmd), "%sPerMessageDeflate ignored for Protocol %s", who, t.protocol())
		}
	}
	if t.Protocol != ProtocolWebSocket {
		t.PerMessageDeflate = false
	}

	if d.lenient {
		// Problems that are errors in strict mode (Validate reports them)
		// but that lenient mode turns into a warning and skips the transport.
		switch t.Type {
		case "amps-replication", "amps-replication-secure":
			d.ds.warnf(CodeTransportReplication, at, "%sreplication transports are not supported by this broker; skipped", who)
			return t, false
		}
		switch t.Protocol {
		case "fix", "nvfix", "xml", "soap", "fix-session":
			d.ds.warnf(CodeProtocol, at, "%sProtocol %q not supported (use amps); skipped", who, t.Protocol)
			return t, false
		}
	}
	return t, true
}

func (d *decoder) topic(n *node) SOWTopic {
	t := SOWTopic{
		Name:          d.text(n, "Name"),
		Pattern:       d.text(n, "Pattern"),
		MessageType:   d.text(n, "MessageType"),
		KeyDomain:     d.text(n, "KeyDomain"),
		FileName:      d.text(n, "FileName"),
		Durability:    enum(d.text(n, "Durability")),
		RecoveryPoint: enum(d.text(n, "RecoveryPoint")),
	}
	if t.Name == "" {
		t.Name = d.text(n, "Topic") // pre-5.0 name of Name, still accepted
	}
	if t.Durability == "" {
		t.Durability = enum(d.text(n, "Duration"))
	}
	for _, k := range d.kids(n, "Key") {
		t.Keys = append(t.Keys, k.text)
	}
	if p := d.kid(n, "Pattern"); p != nil && p.text == "" {
		// An empty element would quietly make the topic a plain Name topic.
		d.ds.errorf(CodeSOWTopic, d.at(p), "SOW Topic %q: Pattern is empty", t.Name)
	}
	at := d.at(n)
	// An absent Durability means persistent, as in AMPS.
	if t.Durability == "" {
		t.Durability = DurabilityPersistent
	}
	if t.Durability == DurabilityPersistent && d.lenient {
		// A persistent topic is kept only by rebuilding it from the
		// journal (journal-backed). When that cannot be done as written
		// (not journaled, RecoveryPoint now, no FileName) strict mode
		// refuses it (Validate); lenient mode runs it as transient, which
		// for a journaled topic still rebuilds it from its RecoveryPoint.
		journaled := d.cfg.TransactionLog.Journaled(t.Name, t.MessageType)
		switch {
		case !journaled:
			d.ds.warnf(CodeSOWStorage, at, "SOW Topic %q: persistent storage needs the topic to be journaled; running it as transient", t.Name)
			t.Durability = DurabilityTransient
		case t.RecoveryPoint == RecoveryNow:
			d.ds.warnf(CodeSOWStorage, at, "SOW Topic %q: persistent storage with RecoveryPoint now cannot keep records; running it as transient, empty at start", t.Name)
			t.Durability = DurabilityTransient
		case t.FileName == "":
			d.ds.warnf(CodeSOWStorage, at, "SOW Topic %q: Durability persistent needs FileName; running it as transient, rebuilt from the journal", t.Name)
			t.Durability = DurabilityTransient
		}
	}
	if e := d.kid(n, "Expiration"); e != nil {
		switch enum(e.text) {
		case "disabled", "false":
		case "enabled", "true":
			t.ExpirationEnabled = true
		default:
			if v, err := ParseInterval(e.text); err != nil {
				d.ds.errorf(CodeValue, d.at(e), "Expiration %q must be disabled, enabled or an interval", e.text)
			} else {
				t.Expiration, t.ExpirationEnabled = v, true
			}
		}
	}
	t.ExpectedKeyCountHint, _ = value(d, n, "ExpectedKeyCountHint", parseCount)
	if s, ok := value(d, n, "SlabSize", ParseSize); ok {
		if s > gib {
			d.ds.errorf(CodeSOWLimits, d.at(d.kid(n, "SlabSize")), "SOW Topic %q: SlabSize %s is above the 1GB maximum", t.Name, formatSize(s))
		} else {
			d.ds.warnf(CodeAccepted, d.at(d.kid(n, "SlabSize")), "SlabSize accepted but ignored")
		}
	}
	if s, ok := value(d, n, "InitialSlabCount", parseCount); ok {
		if s > 1024 {
			d.ds.errorf(CodeSOWLimits, d.at(d.kid(n, "InitialSlabCount")), "SOW Topic %q: InitialSlabCount %d is above the maximum 1024", t.Name, s)
		} else {
			d.ds.warnf(CodeAccepted, d.at(d.kid(n, "InitialSlabCount")), "InitialSlabCount accepted but ignored")
		}
	}
	return t
}

// logLevels are the AMPS level names, lowest first, plus "none" and the
// obsolete "debug".
var logLevels = map[string]bool{
	"developer": true, "trace": true, "stats": true, "info": true, "warning": true,
	"error": true, "critical": true, "emergency": true, "none": true, "debug": true,
}

func (d *decoder) logTarget(n *node) LogTarget {
	t := LogTarget{
		Protocol: enum(d.text(n, "Protocol")),
		Level:    enum(d.text(n, "Level")),
		Levels:   d.text(n, "Levels"),
		FileName: d.text(n, "FileName"),
	}
	at := d.at(n)
	switch t.Protocol {
	case "stdout", "stderr", "file":
	case "gzip", "syslog":
		d.ds.warnf(CodeAccepted, at, "logging Protocol %s is approximated (gzip writes a plain file, syslog writes to stderr)", t.Protocol)
	case "":
		d.ds.errorf(CodeValue, at, "logging Target needs a Protocol (stdout, stderr, file, gzip or syslog)")
	default:
		d.ds.errorf(CodeValue, d.at(d.kid(n, "Protocol")), "unknown logging Protocol %q (use stdout, stderr, file, gzip or syslog)", t.Protocol)
	}
	if t.Level != "" && !logLevels[t.Level] {
		d.ds.errorf(CodeValue, d.at(d.kid(n, "Level")), "unknown log Level %q", t.Level)
	}
	if t.Level == "" && t.Levels == "" {
		// The AMPS documentation gives three different defaults for Level
		// (none, no default, info). We take none: a target without Level or
		// Levels logs nothing, and we warn about it.
		d.ds.warnf(CodeValue, at, "logging Target without Level or Levels logs nothing")
	}
	if (t.Protocol == "file" || t.Protocol == "gzip") && t.FileName == "" {
		d.ds.errorf(CodeValue, at, "logging Target with Protocol %s needs a FileName", t.Protocol)
	}
	t.RotationThreshold, _ = value(d, n, "RotationThreshold", ParseSize)
	return t
}

// admin decodes the Admin block into c.Admin (validate checks the values)
// and checks SQLTransport, which is otherwise ignored: it must name a
// websocket transport.
func (d *decoder) admin(n *node) {
	a := &Admin{
		InetAddr:     strings.TrimSpace(d.text(n, "InetAddr")),
		Interval:     DefaultAdminInterval,
		Certificate:  d.text(n, "Certificate"),
		PrivateKey:   d.text(n, "PrivateKey"),
		Galvanometer: enum(d.text(n, "Galvanometer")),

		AnonymousPaths:           d.text(n, "AnonymousPaths"),
		AccessControlAllowOrigin: d.text(n, "AccessControlAllowOrigin"),
	}
	for _, h := range d.kids(n, "Header") {
		a.Headers = append(a.Headers, h.text)
	}
	d.cfg.Admin = a
	d.remember("Admin", n)
	a.Authentication = d.moduleRef(d.kid(n, "Authentication"))
	a.Entitlement = d.moduleRef(d.kid(n, "Entitlement"))
	d.rememberModule("Admin/Authentication", d.kid(n, "Authentication"))
	d.rememberModule("Admin/Entitlement", d.kid(n, "Entitlement"))
	if iv, ok := value(d, n, "Interval", ParseInterval); ok {
		a.Interval = iv
	}
	if s := d.kid(n, "SQLTransport"); s != nil {
		found := false
		for _, t := range d.cfg.Transports {
			if t.Name == s.text {
				found = true
				if t.protocol() != ProtocolWebSocket {
					d.ds.errorf(CodeAdminSQL, d.at(s), "SQLTransport '%s' is not a websocket transport", s.text)
				}
			}
		}
		if !found {
			d.ds.errorf(CodeAdminSQL, d.at(s), "SQLTransport '%s' names no transport", s.text)
		}
	}
}
