package config

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// doc wraps body in a root element with a Name; body starts on line 3.
func doc(body string) string {
	return "<AMPSConfig>\n<Name>t</Name>\n" + body + "\n</AMPSConfig>\n"
}

// tcp is a valid transport block with extra children appended.
func tcp(name, addr, extra string) string {
	return "<Transport><Name>" + name + "</Name><Type>tcp</Type><InetAddr>" + addr +
		"</InetAddr><Protocol>amps</Protocol>" + extra + "</Transport>"
}

func parseString(t *testing.T, s string, opts *ParseOptions) (*Config, *Error) {
	t.Helper()
	cfg, err := Parse(strings.NewReader(s), opts)
	if err == nil {
		return cfg, nil
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Parse error is %T (%v), want *config.Error", err, err)
	}
	return cfg, e
}

// TestValidationErrors covers the errors of amps-config §11, asserting code
// and full message (path, text, line) of each.
func TestValidationErrors(t *testing.T) {
	dir := t.TempDir()
	notSocket := filepath.Join(dir, "plain-file")
	if err := os.WriteFile(notSocket, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	live := filepath.Join(dir, "live.sock")
	ln, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		xml  string
		code Code
		msg  string
	}{
		{"xml", "<AMPSConfig>\n<Name>t</Name>\n<Transports>\n</AMPSConfig>\n", CodeXML,
			"XML syntax error: element <Transports> closed by </AMPSConfig> (line 4)"},
		{"root", "<Config>\n</Config>", CodeRoot, "root element is <Config>, expected <AMPSConfig> (line 1)"},
		{"env undefined", doc("<Description>${NO_SUCH_VAR_X}</Description>"), CodeEnvUndefined,
			"variable ${NO_SUCH_VAR_X} is not defined (line 3)"},
		{"include missing", doc("<Include>" + filepath.Join(dir, "nope.xml") + "</Include>"), CodeIncludeMissing,
			"Include: Include '" + filepath.Join(dir, "nope.xml") + "' (resolved to " + filepath.Join(dir, "nope.xml") + "): no such file (line 3)"},
		{"unknown element", doc("<Transports>\n" + tcp("a", "0", "\n<InetAdress>1</InetAdress>") + "\n</Transports>"), CodeUnknownElement,
			"Transports/Transport[1]/InetAdress: unknown element (did you mean InetAddr?) (line 5)"},
		{"case mismatch", doc("<messagememorylimit>1GB</messagememorylimit>"), CodeUnknownElement,
			"messagememorylimit: unknown element (did you mean MessageMemoryLimit?) (line 3)"},
		{"duplicate", doc("<Transports>\n<Transport><Name>a</Name>\n<Type>tcp</Type>\n<Type>tcps</Type><InetAddr>0</InetAddr></Transport>\n</Transports>"), CodeDuplicate,
			"Transports/Transport[1]/Type: Type given twice (line 6)"},
		{"value percent", doc("<ClientMaxCapacity>140%</ClientMaxCapacity>"), CodeValue,
			`ClientMaxCapacity: ClientMaxCapacity percentage "140%" must be in (0,100] (line 3)`},
		{"value size", doc("<MessageMemoryLimit>lots</MessageMemoryLimit>"), CodeValue,
			`MessageMemoryLimit: MessageMemoryLimit size "lots" does not start with a number (line 3)`},
		{"name missing", "<AMPSConfig>\n<Name> </Name>\n</AMPSConfig>", CodeNameMissing, "Name: instance Name is required (line 2)"},
		{"version", doc("<RequiredMinimumVersion>5.4.0</RequiredMinimumVersion>"), CodeVersion,
			"RequiredMinimumVersion: config requires AMPS >= 5.4.0, broker reports 5.3.4.0 (line 3)"},
		{"transport name dup", doc("<Transports>\n" + tcp("a", "1", "") + "\n" + tcp("a", "2", "") + "\n</Transports>"), CodeTransportName,
			`Transports/Transport[2]/Name: two transports named "a" (the other is Transport[1]) (line 5)`},
		{"transport type", doc("<Transports>\n<Transport><Name>x</Name><Type>udp</Type></Transport>\n</Transports>"), CodeTransportType,
			`Transports/Transport[1]/Type: transport "x": unknown Type "udp" (use tcp, tcps or amps-unix) (line 4)`},
		{"replication transport", doc("<Transports>\n<Transport><Name>repl-in</Name><Type>amps-replication</Type><InetAddr>1</InetAddr></Transport>\n</Transports>"), CodeTransportReplication,
			`Transports/Transport[1]/Type: transport "repl-in": replication transports are not supported by this broker (line 4)`},
		{"replication block", doc("<Replication>\n<Destination/>\n</Replication>"), CodeTransportReplication,
			"Replication: replication is not supported by this broker (line 3)"},
		{"inetaddr missing", doc("<Transports>\n<Transport>\n<Name>json-tcp</Name>\n<Type>tcp</Type>\n</Transport>\n</Transports>"), CodeInetAddr,
			`Transports/Transport[1]/InetAddr: transport "json-tcp": InetAddr missing (required for Type tcp) (line 4)`},
		{"inetaddr malformed", doc("<Transports>\n" + tcp("a", "::1:9007", "") + "\n</Transports>"), CodeInetAddr,
			`Transports/Transport[1]/InetAddr: transport "a": invalid InetAddr "::1:9007": want port, :port, ipv4:port, [ipv6]:port or host:port: address ::1:9007: too many colons in address (line 4)`},
		{"inetaddr port range", doc("<Transports>\n" + tcp("a", "70000", "") + "\n</Transports>"), CodeInetAddr,
			`Transports/Transport[1]/InetAddr: transport "a": invalid InetAddr "70000": port "70000" is above 65535 (line 4)`},
		{"addr conflict", doc("<Transports>\n" + tcp("a", "27001", "") + "\n" + tcp("b", "127.0.0.1:27001", "") + "\n</Transports>"), CodeAddrConflict,
			`Transports/Transport[2]/InetAddr: transports "a" and "b" both listen on 127.0.0.1:27001 (line 5)`},
		{"protocol legacy", doc("<Transports>\n<Transport><Name>legacy</Name><Type>tcp</Type><InetAddr>1</InetAddr><Protocol>nvfix</Protocol></Transport>\n</Transports>"), CodeProtocol,
			`Transports/Transport[1]/Protocol: transport "legacy": Protocol "nvfix" not supported (use amps) (line 4)`},
		{"ws on unix", doc("<Transports>\n<Transport><Name>x</Name><Type>amps-unix</Type><FileName>" + filepath.Join(dir, "x.sock") + "</FileName><Protocol>websocket</Protocol></Transport>\n</Transports>"), CodeWSType,
			`Transports/Transport[1]/Protocol: transport "x": websocket requires Type tcp or tcps (line 4)`},
		{"message type", doc("<Transports>\n" + tcp("x", "1", "<MessageType>jsno</MessageType>") + "\n</Transports>"), CodeMessageType,
			`Transports/Transport[1]/MessageType: transport "x": unknown MessageType "jsno" (line 4)`},
		{"tls missing", doc("<Transports>\n<Transport><Name>json-tls</Name><Type>tcps</Type><InetAddr>1</InetAddr><Protocol>amps</Protocol></Transport>\n</Transports>"), CodeTLSMissing,
			`Transports/Transport[1]: transport "json-tls": Type tcps requires Certificate and PrivateKey (line 4)`},
		{"tls half", doc("<Transports>\n" + tcp("x", "1", "<Certificate>a.crt</Certificate>") + "\n</Transports>"), CodeTLSMissing,
			`Transports/Transport[1]: transport "x": Certificate and PrivateKey must be given together (line 4)`},
		{"tls load", doc("<Transports>\n" + tcp("x", "1", "<Certificate>"+garbage+"</Certificate><PrivateKey>"+garbage+"</PrivateKey>") + "\n</Transports>"), CodeTLSLoad,
			`Transports/Transport[1]: transport "x": cannot load Certificate "` + garbage + `" with PrivateKey "` + garbage + `": tls: failed to find any PEM data in certificate input (line 4)`},
		{"tls on unix", doc("<Transports>\n<Transport><Name>json-local</Name><Type>amps-unix</Type><FileName>" + filepath.Join(dir, "y.sock") + "</FileName><Protocol>amps</Protocol><CAFile>x</CAFile></Transport>\n</Transports>"), CodeTLSOnUnix,
			`Transports/Transport[1]: transport "json-local": TLS options not valid for amps-unix (line 4)`},
		{"unix path missing", doc("<Transports>\n<Transport><Name>json-local</Name><Type>amps-unix</Type><Protocol>amps</Protocol></Transport>\n</Transports>"), CodeUnixPath,
			`Transports/Transport[1]/FileName: transport "json-local": FileName is required for Type amps-unix (line 4)`},
		{"unix path long", doc("<Transports>\n<Transport><Name>l</Name><Type>amps-unix</Type><Protocol>amps</Protocol><FileName>/" + strings.Repeat("a", 120) + "</FileName></Transport>\n</Transports>"), CodeUnixPath,
			`Transports/Transport[1]/FileName: transport "l": FileName "/` + strings.Repeat("a", 120) + `" is 121 bytes, longer than the 107 a socket path may have (line 4)`},
		{"unix mask", doc("<Transports>\n<Transport><Name>l</Name><Type>amps-unix</Type><Protocol>amps</Protocol><FileName>" + filepath.Join(dir, "z.sock") + "</FileName><FileMask>0999</FileMask></Transport>\n</Transports>"), CodeValue,
			`Transports/Transport[1]/FileMask: FileMask file mask "0999" is not octal (line 4)`},
		{"unix not socket", doc("<Transports>\n<Transport><Name>l</Name><Type>amps-unix</Type><Protocol>amps</Protocol><FileName>" + notSocket + "</FileName></Transport>\n</Transports>"), CodeUnixInUse,
			`Transports/Transport[1]/FileName: transport "l": ` + notSocket + ` exists and is not a socket (line 4)`},
		{"unix live", doc("<Transports>\n<Transport><Name>l</Name><Type>amps-unix</Type><Protocol>amps</Protocol><FileName>" + live + "</FileName></Transport>\n</Transports>"), CodeUnixInUse,
			`Transports/Transport[1]/FileName: transport "l": ` + live + ` is in use by a running server (line 4)`},
		{"tls protocol", doc("<Transports>\n" + tcp("x", "1", "<Certificate>"+garbage+"</Certificate><PrivateKey>"+garbage+"</PrivateKey><SecureSocketProtocols>SSLv3 TLSv1.2</SecureSocketProtocols>") + "\n</Transports>"), CodeTLSProtocol,
			`Transports/Transport[1]/SecureSocketProtocols: transport "x": SecureSocketProtocols: SSLv3 is not supported (line 4)`},
		{"tls ca", doc("<Transports>\n" + tcp("x", "1", "<Certificate>"+garbage+"</Certificate><PrivateKey>"+garbage+"</PrivateKey><VerifyClient>true</VerifyClient>") + "\n</Transports>"), CodeTLSCA,
			`Transports/Transport[1]/VerifyClient: transport "x": VerifyClient requires CAFile or CAPath (line 4)`},
		{"module unknown", doc("<Authentication><Module>ldap</Module></Authentication>"), CodeModuleUnknown,
			`Authentication/Module: Authentication module "ldap" is not defined (line 3)`},
		{"module library", doc("<Modules><Module><Name>kerb</Name><Library>libamps_multi_authentication.so</Library></Module></Modules>"), CodeModuleLibrary,
			`Modules/Module[1]: Module "kerb": library "libamps_multi_authentication.so" is not available in this broker (line 3)`},
		{"sow topic dup", doc("<SOW>\n<Topic><Name>positions</Name><MessageType>json</MessageType><Durability>transient</Durability></Topic>\n<Topic><Name>positions</Name><MessageType>json</MessageType><Durability>transient</Durability></Topic>\n</SOW>"), CodeSOWTopic,
			`SOW/Topic[2]: SOW Topic "positions" (json) defined twice (first as Topic[1]) (line 5)`},
		{"sow topic name", doc("<SOW>\n<Topic><MessageType>json</MessageType><Durability>transient</Durability></Topic>\n</SOW>"), CodeSOWTopic,
			"SOW/Topic[1]/Name: SOW Topic needs a Name (line 4)"},
		{"sow keydomain", doc("<SOW>\n<Topic><Name>positions</Name><MessageType>json</MessageType><KeyDomain>d</KeyDomain><Durability>transient</Durability></Topic>\n</SOW>"), CodeSOWKey,
			`SOW/Topic[1]/KeyDomain: SOW Topic "positions": KeyDomain requires at least one Key (line 4)`},
		{"sow key syntax", doc("<SOW>\n<Topic><Name>p</Name><MessageType>json</MessageType><Key>id</Key><Durability>transient</Durability></Topic>\n</SOW>"), CodeSOWKey,
			`SOW/Topic[1]/Key[1]: SOW Topic "p": Key "id" must start with '/' (e.g. /id) (line 4)`},
		{"sow storage", doc("<SOW>\n<Topic><Name>positions</Name><MessageType>json</MessageType></Topic>\n</SOW>"), CodeSOWStorage,
			`SOW/Topic[1]: SOW Topic "positions": Durability persistent needs FileName (or set transient) (line 4)`},
		{"sow limits", doc("<SOW>\n<Topic><Name>x</Name><MessageType>json</MessageType><Durability>transient</Durability><SlabSize>2GB</SlabSize></Topic>\n</SOW>"), CodeSOWLimits,
			`SOW/Topic[1]/SlabSize: SOW Topic "x": SlabSize 2GB is above the 1GB maximum (line 4)`},
		{"sow type", doc("<SOW>\n<Topic><Name>ticks</Name><MessageType>bflat</MessageType><Key>/id</Key><Durability>transient</Durability></Topic>\n</SOW>"), CodeSOWType,
			`SOW/Topic[1]: SOW Topic "ticks" (bflat): keys cannot be computed for this message type (json, fix and nvfix can be read); without Key, publishers give each record's key (line 4)`},
		{"unsupported hard", doc("<SOW>\n<Topic><Name>h</Name><MessageType>json</MessageType><Durability>transient</Durability>\n<History><Window>1d</Window></History></Topic>\n</SOW>"), CodeUnsupported,
			"SOW/Topic[1]/History: History is not supported: point-in-time queries would silently return current data (line 5)"},
		{"unsupported view", doc("<SOW>\n<View><Name>v</Name></View>\n</SOW>"), CodeUnsupported,
			"SOW/View[1]: View is not supported: clients querying it would get unexplained failures (line 4)"},
		{"json duplicates last wins", doc("<MessageTypes>\n<MessageType><Name>json</Name><Module>json</Module><EarlyTerminationOptimization>false</EarlyTerminationOptimization></MessageType>\n</MessageTypes>"), CodeUnsupported,
			`MessageTypes/MessageType[1]/EarlyTerminationOptimization: MessageType "json": EarlyTerminationOptimization false (the last of duplicate JSON members wins) is not supported: the first always wins (line 4)`},
		{"admin inetaddr", doc("<Admin><InetAddr>localhost:http</InetAddr></Admin>"), CodeInetAddr,
			`Admin/InetAddr: Admin invalid InetAddr "localhost:http": port "http" is not a decimal number (line 3)`},
		{"inetaddr host", doc("<Transports>\n" + tcp("a", "bad..host:9007", "") + "\n</Transports>"), CodeInetAddr,
			`Transports/Transport[1]/InetAddr: transport "a": invalid InetAddr "bad..host:9007": "bad..host" is neither an IP literal nor a host name (line 4)`},
		{"addr conflict v6 wildcard", doc("<Transports>\n" + tcp("a", "[::]:27002", "") + "\n" + tcp("b", "[::1]:27002", "") + "\n</Transports>"), CodeAddrConflict,
			`Transports/Transport[2]/InetAddr: transports "a" and "b" both listen on [::1]:27002 (line 5)`},
		{"admin sql", doc("<Transports>\n" + tcp("json-tcp", "1", "") + "\n</Transports>\n<Admin><SQLTransport>json-tcp</SQLTransport></Admin>"), CodeAdminSQL,
			"Admin/SQLTransport: SQLTransport 'json-tcp' is not a websocket transport (line 6)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, e := parseString(t, tc.xml, &ParseOptions{LookupEnv: func(string) (string, bool) { return "", false }})
			if e == nil {
				t.Fatalf("Parse succeeded; want %s", tc.code)
			}
			for _, d := range e.Errors {
				if d.Code == tc.code && d.Error() == tc.msg {
					return
				}
			}
			t.Errorf("no %s error with message\n\t%s\ngot:\n%s", tc.code, tc.msg, e.Error())
		})
	}
}

// TestWarnings checks W-level diagnostics: they do not stop loading.
func TestWarnings(t *testing.T) {
	dir := t.TempDir()
	xml := doc(`<MessageDiskPath>/var/tmp</MessageDiskPath>
<Transports>
<Transport><Name>a</Name><Type>tcp</Type><InetAddr>0</InetAddr></Transport>
<Transport><Name>u</Name><Type>amps-unix</Type><Protocol>amps</Protocol><InetAddr>1</InetAddr><FileName>` + filepath.Join(dir, "u.sock") + `</FileName><FileMask>0444</FileMask></Transport>
</Transports>
<Admin><InetAddr>28085</InetAddr></Admin>`)
	cfg, e := parseString(t, xml, nil)
	if e != nil {
		t.Fatalf("Parse: %v", e)
	}
	want := []string{
		"CFG-SLOW-CLIENT MessageDiskPath: ignored: clients over MessageMemoryLimit are disconnected, not offlined (line 3)",
		`CFG-PROTOCOL-DEFAULTED Transports/Transport[1]: transport "a": Protocol not set, using amps (line 5)`,
		`CFG-INETADDR-IGNORED Transports/Transport[2]/InetAddr: transport "u": InetAddr ignored for Type amps-unix (line 6)`,
		`CFG-UNIX-MASK Transports/Transport[2]/FileMask: transport "u": FileMask '0444' gives no write permission; clients cannot connect (line 6)`,
	}
	var got []string
	for _, w := range cfg.Warnings {
		got = append(got, string(w.Code)+" "+w.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestAllProblemsAtOnce checks that every problem of a file is reported in
// one *Error, in document order.
func TestAllProblemsAtOnce(t *testing.T) {
	xml := "<AMPSConfig>\n<Transports>\n" +
		"<Transport><Name>a</Name><Type>tcp</Type><Protocol>amps</Protocol></Transport>\n" +
		"<Transport><Name>b</Name><Type>tcp</Type><Protocol>amps</Protocol>\n<InetAddr>x:y</InetAddr></Transport>\n" +
		"</Transports>\n<Bogus/>\n</AMPSConfig>"
	_, e := parseString(t, xml, nil)
	if e == nil {
		t.Fatal("Parse succeeded")
	}
	want := []string{
		"Name: instance Name is required (line 1)",
		`Transports/Transport[1]/InetAddr: transport "a": InetAddr missing (required for Type tcp) (line 3)`,
		`Transports/Transport[2]/InetAddr: transport "b": invalid InetAddr "x:y": port "y" is not a decimal number (line 5)`,
		"Bogus: unknown element (line 7)",
	}
	var got []string
	for _, d := range e.Errors {
		got = append(got, d.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var d Diagnostic
	if !errors.As(error(e), &d) || d.Code != CodeNameMissing {
		t.Errorf("errors.As(Diagnostic) = %v, want the first error", d)
	}
	if !e.Has(CodeInetAddr) || e.Has(CodeXML) {
		t.Error("Has reports wrong codes")
	}
}

// TestLenient checks that lenient mode downgrades E/W problems and keeps
// REJECT! ones as errors (amps-config §0.2).
func TestLenient(t *testing.T) {
	xml := doc(`<Description>${NOT_DEFINED_Y}</Description>
<Colour>blue</Colour>
<Actions><Action/></Actions>
<Transports>
<Transport><Name>r</Name><Type>amps-replication</Type><InetAddr>1</InetAddr></Transport>
<Transport><Name>a</Name><Type>tcp</Type><InetAddr>0</InetAddr><Protocol>amps</Protocol></Transport>
</Transports>
<SOW><Topic><Name>p</Name><MessageType>json</MessageType><Key>/id</Key></Topic></SOW>`)
	noEnv := func(string) (string, bool) { return "", false }
	_, e := parseString(t, xml, &ParseOptions{LookupEnv: noEnv})
	if e == nil {
		t.Fatal("strict Parse succeeded")
	}
	for _, c := range []Code{CodeEnvUndefined, CodeUnknownElement, CodeUnsupported, CodeTransportReplication, CodeSOWStorage} {
		if !e.Has(c) {
			t.Errorf("strict: no %s in\n%v", c, e)
		}
	}
	cfg, e := parseString(t, xml, &ParseOptions{Lenient: true, LookupEnv: noEnv})
	if e != nil {
		t.Fatalf("lenient Parse: %v", e)
	}
	if len(cfg.Transports) != 1 || cfg.Transports[0].Name != "a" {
		t.Errorf("lenient transports = %+v, want only a", cfg.Transports)
	}
	if cfg.SOW[0].Durability != DurabilityTransient {
		t.Errorf("lenient SOW durability = %q", cfg.SOW[0].Durability)
	}
	if len(cfg.Warnings) < 5 {
		t.Errorf("lenient warnings = %v", cfg.Warnings)
	}
	// A TransactionLog without its directory is an error in both modes.
	_, e = parseString(t, doc("<TransactionLog/>"), &ParseOptions{Lenient: true})
	if e == nil || !e.Has(CodeTxLogDir) {
		t.Errorf("lenient TransactionLog without JournalDirectory: %v, want CFG-TXLOG-DIR error", e)
	}
}

// TestValidateGoValues checks Validate on a hand-written Config.
func TestValidateGoValues(t *testing.T) {
	c := &Config{
		Name: "x",
		Transports: []Transport{
			{Name: "a", Type: TypeTCP, InetAddr: "0"},
			{Name: "b", Type: TypeTCPS, InetAddr: "0"},
			{Name: "c", Type: "udp"},
		},
		SOW: []SOWTopic{{Name: "p", MessageType: "json", Keys: []string{"/id"}}},
	}
	err := c.Validate()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Validate = %v", err)
	}
	want := []string{
		`Transports/Transport[2]: transport "b": Type tcps requires Certificate and PrivateKey`,
		`Transports/Transport[3]/Type: transport "c": unknown Type "udp" (use tcp, tcps or amps-unix)`,
	}
	var got []string
	for _, d := range e.Errors {
		got = append(got, d.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	c.Transports = c.Transports[:1]
	if err := c.Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}
