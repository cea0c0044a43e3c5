package config

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/protocol"
	"github.com/ampsbroker/ampsbroker/transport"
)

// effective returns the Authenticator and Entitler the broker uses for a
// connection on transport, applying broker.Options' fallback rule: a nil
// TransportOptions field means the broker-wide value.
func effective(o broker.Options, transport string) (broker.Authenticator, broker.Entitler) {
	a, e := o.Authenticator, o.Entitler
	if t, ok := o.Transports[transport]; ok {
		if t.Authenticator != nil {
			a = t.Authenticator
		}
		if t.Entitler != nil {
			e = t.Entitler
		}
	}
	return a, e
}

// logonErr runs a logon through the effective Authenticator; a nil
// Authenticator accepts (broker default).
func logonErr(o broker.Options, tname, user, password string) error {
	a, _ := effective(o, tname)
	if a == nil {
		return nil
	}
	h := &protocol.Header{UserID: user, Password: password}
	return a.Authenticate(context.Background(), &broker.LogonRequest{Header: h, Conn: &transport.ConnInfo{Transport: tname}})
}

// entitled asks the effective Entitler; nil allows (broker default).
func entitled(o broker.Options, tname, user, topic string, p broker.Permission) bool {
	_, e := effective(o, tname)
	if e == nil {
		return true
	}
	return e.Entitled(&broker.Identity{UserID: user, Conn: &transport.ConnInfo{Transport: tname}}, topic, p)
}

type logonCheck struct {
	transport, user, password string
	want                      error // nil: accepted; errAny: any refusal
}

type entCheck struct {
	transport, user, topic string
	p                      broker.Permission
	want                   bool
}

// errAny stands for "refused, whatever the error".
var errAny = errors.New("any refusal")

func tcpT(name string) Transport { return Transport{Name: name, Type: TypeTCP, InetAddr: "0"} }

// TestModuleMapping checks what each Authentication and Entitlement choice
// becomes in broker.Options (amps-config §7.1, §7.2, §7.3).
func TestModuleMapping(t *testing.T) {
	users := broker.UserTable{"alice": "secret"}
	audit := broker.TopicPrefixTable{"alice": {Read: []string{"audit/"}}}
	simple := ModuleDef{Name: "simple-access", Library: "/opt/amps/lib/" + LibrarySimpleAccess}
	cases := []struct {
		name string
		cfg  Config
		// nilAuth: the broker-wide Authenticator must stay nil, so the
		// logon ack says "authentication disabled" (wire §7.1).
		nilAuth bool
		logons  []logonCheck
		ents    []entCheck
	}{
		{
			name:    "no modules",
			cfg:     Config{Transports: []Transport{tcpT("a")}},
			nilAuth: true,
			logons:  []logonCheck{{"a", "", "", nil}, {"a", "bob", "x", nil}},
			ents:    []entCheck{{"a", "bob", "any", broker.Write, true}},
		},
		{
			name: "default modules named explicitly",
			cfg: Config{
				Authentication: &Module{Module: ModuleDefaultAuthentication, Options: map[string]string{"AllowSpoofing": "true", "RequireLogon": "true"}},
				Entitlement:    &Module{Module: ModuleDefaultEntitlement},
				Transports:     []Transport{tcpT("a")},
			},
			nilAuth: true,
			logons:  []logonCheck{{"a", "", "", nil}},
			ents:    []entCheck{{"a", "", "x", broker.Read, true}},
		},
		{
			name: "RequireUsername",
			cfg: Config{
				Authentication: &Module{Module: ModuleDefaultAuthentication, Options: map[string]string{"RequireUsername": "TRUE"}},
				Transports:     []Transport{tcpT("a")},
			},
			logons: []logonCheck{{"a", "", "pw", ErrUserRequired}, {"a", "bob", "", nil}},
		},
		{
			name: "RequireUsername false",
			cfg: Config{
				Authentication: &Module{Module: ModuleDefaultAuthentication, Options: map[string]string{"RequireUsername": "false"}},
				Transports:     []Transport{tcpT("a")},
			},
			nilAuth: true,
			logons:  []logonCheck{{"a", "", "", nil}},
		},
		{
			name: "no-authentication instance, transport overrides",
			cfg: Config{
				Authentication: &Module{Module: ModuleNoAuthentication},
				Transports: []Transport{
					tcpT("closed"),
					{Name: "open", Type: TypeTCP, InetAddr: "1", Authentication: &Module{Module: ModuleDefaultAuthentication}},
					{Name: "named", Type: TypeTCP, InetAddr: "2", Authentication: &Module{Module: ModuleDefaultAuthentication, Options: map[string]string{"RequireUsername": "true"}}},
				},
			},
			logons: []logonCheck{
				{"closed", "alice", "secret", ErrNoAuthentication},
				{"open", "", "", nil},
				{"named", "", "", ErrUserRequired},
				{"named", "bob", "", nil},
			},
		},
		{
			name: "no-entitlement instance denies topics and logons, transport overrides",
			cfg: Config{
				Entitlement: &Module{Module: ModuleNoEntitlement},
				Transports: []Transport{
					tcpT("closed"),
					{Name: "open", Type: TypeTCP, InetAddr: "1", Entitlement: &Module{Module: ModuleDefaultEntitlement}},
				},
			},
			logons: []logonCheck{{"closed", "bob", "", ErrLogonNotEntitled}, {"open", "bob", "", nil}},
			ents: []entCheck{
				{"closed", "bob", "t", broker.Read, false},
				{"closed", "bob", "t", broker.Write, false},
				{"open", "bob", "t", broker.Write, true},
			},
		},
		{
			name: "transport no-entitlement keeps the instance Authenticator elsewhere",
			cfg: Config{
				Authentication: &Module{Module: "users"},
				Authenticators: map[string]broker.Authenticator{"users": users},
				Transports: []Transport{
					tcpT("main"),
					{Name: "dead", Type: TypeTCP, InetAddr: "1", Entitlement: &Module{Module: ModuleNoEntitlement}},
				},
			},
			logons: []logonCheck{
				{"main", "alice", "secret", nil},
				{"main", "alice", "wrong", broker.ErrBadCredentials},
				{"dead", "alice", "secret", ErrLogonNotEntitled},
			},
			ents: []entCheck{{"main", "alice", "t", broker.Write, true}, {"dead", "alice", "t", broker.Read, false}},
		},
		{
			name: "simple access on one transport",
			cfg: Config{
				Modules: []ModuleDef{simple},
				Transports: []Transport{
					tcpT("open"),
					{Name: "ops", Type: TypeTCP, InetAddr: "1", Entitlement: &Module{Module: "simple-access", Options: map[string]string{
						"AllowedTopics": "^audit/", "DeniedTopics": "secret", "GrantedPermissions": "read",
					}}},
				},
			},
			nilAuth: true,
			logons:  []logonCheck{{"ops", "anyone", "", nil}},
			ents: []entCheck{
				{"ops", "u", "audit/logins", broker.Read, true},
				{"ops", "u", "audit/logins", broker.Write, false},
				{"ops", "u", "audit/secret/keys", broker.Read, false},
				{"ops", "u", "orders", broker.Read, false},
				{"ops", "u", "x/audit/y", broker.Read, false},
				{"open", "u", "orders", broker.Write, true},
			},
		},
		{
			name: "simple access options from the Modules declaration, element wins",
			cfg: Config{
				Modules: []ModuleDef{{Name: "sa", Library: LibrarySimpleAccess, Options: map[string]string{
					"AllowedTopics": "^orders", "GrantedPermissions": "read",
				}}},
				Entitlement: &Module{Module: "sa", Options: map[string]string{"GrantedPermissions": "read,write"}},
				Transports:  []Transport{tcpT("a")},
			},
			ents: []entCheck{
				{"a", "u", "orders/1", broker.Write, true},
				{"a", "u", "fills", broker.Read, false},
			},
		},
		{
			name: "Go-registered modules",
			cfg: Config{
				Authentication: &Module{Module: "users"},
				Entitlement:    &Module{Module: "prefixes"},
				Authenticators: map[string]broker.Authenticator{"users": users},
				Entitlers:      map[string]broker.Entitler{"prefixes": audit},
				Transports: []Transport{
					tcpT("a"),
					{Name: "guest", Type: TypeTCP, InetAddr: "1", Authentication: &Module{Module: ModuleDefaultAuthentication}},
				},
			},
			logons: []logonCheck{
				{"a", "alice", "secret", nil},
				{"a", "alice", "nope", broker.ErrBadCredentials},
				{"a", "mallory", "secret", broker.ErrBadCredentials},
				{"guest", "mallory", "", nil},
			},
			ents: []entCheck{
				{"a", "alice", "audit/1", broker.Read, true},
				{"a", "alice", "audit/1", broker.Write, false},
				{"guest", "mallory", "audit/1", broker.Read, false}, // instance Entitler still applies
			},
		},
		{
			name: "unvalidated unknown modules fail closed",
			cfg: Config{
				Authentication: &Module{Module: "ldap"},
				Transports: []Transport{
					tcpT("a"),
					{Name: "b", Type: TypeTCP, InetAddr: "1", Authentication: &Module{Module: ModuleDefaultAuthentication}, Entitlement: &Module{Module: "nosuch"}},
				},
			},
			logons: []logonCheck{{"a", "alice", "", ErrModuleUnusable}, {"b", "alice", "", ErrLogonNotEntitled}},
			ents:   []entCheck{{"b", "alice", "t", broker.Read, false}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Name = "t"
			o := cfg.BrokerOptions()
			if tc.nilAuth && o.Authenticator != nil {
				t.Errorf("broker-wide Authenticator = %v, want nil (authentication disabled)", o.Authenticator)
			}
			for _, lc := range tc.logons {
				err := logonErr(o, lc.transport, lc.user, lc.password)
				switch {
				case lc.want == nil && err != nil:
					t.Errorf("logon %q on %s: %v, want accepted", lc.user, lc.transport, err)
				case lc.want == errAny && err == nil, lc.want != nil && lc.want != errAny && !errors.Is(err, lc.want):
					t.Errorf("logon %q on %s: %v, want %v", lc.user, lc.transport, err, lc.want)
				}
			}
			for _, ec := range tc.ents {
				if got := entitled(o, ec.transport, ec.user, ec.topic, ec.p); got != ec.want {
					t.Errorf("%s %s %q on %s: entitled %v, want %v", ec.user, ec.p, ec.topic, ec.transport, got, ec.want)
				}
			}
		})
	}
}

// TestBrokerOptionsLimits checks the slow-client and connection mappings
// (amps-config §3.10, §3.11).
func TestBrokerOptionsLimits(t *testing.T) {
	cases := []struct {
		name      string
		cfg       Config
		queue     int
		age       time.Duration
		transport map[string]broker.TransportOptions
	}{
		{name: "nothing set", cfg: Config{}, queue: 0, age: -1},
		{name: "age limit", cfg: Config{ClientMessageAgeLimit: 45 * time.Second}, age: 45 * time.Second},
		{name: "pool default capacity", cfg: Config{MessageMemoryLimit: 100 << 20}, queue: 50 << 20, age: -1},
		{name: "pool and capacity", cfg: Config{MessageMemoryLimit: 10 << 20, ClientMaxCapacity: 20}, queue: 2 << 20, age: -1},
		{name: "tiny pool", cfg: Config{MessageMemoryLimit: 1, ClientMaxCapacity: 1}, queue: 1, age: -1},
		{
			name: "transport slow-client settings",
			cfg: Config{ClientMessageAgeLimit: time.Minute, Transports: []Transport{
				{Name: "a", Type: TypeTCP, InetAddr: "0", MessageMemoryLimit: 1 << 20, ClientMessageAgeLimit: time.Hour, ClientMaxCapacity: 5},
				{Name: "b", Type: TypeTCP, InetAddr: "1", ClientMaxCapacity: 10}, // pool from the instance: none
			}},
			age: time.Minute,
			transport: map[string]broker.TransportOptions{
				"a": {OutboundQueueBytes: 1 << 20 * 5 / 100, MaxMessageAge: time.Hour},
				"b": {},
			},
		},
		{
			name: "transport MaxConnections",
			cfg: Config{Transports: []Transport{
				{Name: "a", Type: TypeTCP, InetAddr: "0", MaxConnections: 7},
				tcpT("b"),
			}},
			age:       -1,
			transport: map[string]broker.TransportOptions{"a": {MaxConnections: 7}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.cfg.BrokerOptions()
			if o.OutboundQueueBytes != tc.queue {
				t.Errorf("OutboundQueueBytes = %d, want %d", o.OutboundQueueBytes, tc.queue)
			}
			if o.MaxMessageAge != tc.age {
				t.Errorf("MaxMessageAge = %v, want %v", o.MaxMessageAge, tc.age)
			}
			if o.WriteTimeout != 0 || o.LogonTimeout != 0 || o.MaxConnections != 0 || o.MaxSubscriptions != 0 || o.MaxHeaderSize != 0 {
				t.Errorf("Go-only limits set from a file: %+v", o)
			}
			if len(o.Transports) != len(tc.transport) {
				t.Fatalf("Transports = %+v, want %+v", o.Transports, tc.transport)
			}
			for name, want := range tc.transport {
				got := o.Transports[name]
				if got.MaxConnections != want.MaxConnections || got.OutboundQueueBytes != want.OutboundQueueBytes ||
					got.MaxMessageAge != want.MaxMessageAge || got.Authenticator != nil || got.Entitler != nil {
					t.Errorf("Transports[%s] = %+v, want %+v", name, got, want)
				}
			}
		})
	}
}

// TestModuleValidation checks the diagnostics of module references
// (amps-config §7, §8, §11): code, path, message and line.
func TestModuleValidation(t *testing.T) {
	reg := &ParseOptions{
		Authenticators: map[string]broker.Authenticator{"users": broker.UserTable{}, "nil-auth": nil},
		Entitlers:      map[string]broker.Entitler{"prefixes": broker.TopicPrefixTable{}},
	}
	sa := "<Modules><Module><Name>sa</Name><Library>" + LibrarySimpleAccess + "</Library></Module></Modules>\n"
	cases := []struct {
		name   string
		doc    string
		opts   *ParseOptions
		code   Code
		errMsg string // the full Diagnostic text; empty: no error expected
		warn   string // a warning expected (full text), if any
	}{
		{
			name:   "unknown transport entitlement",
			doc:    doc("<Transports>\n" + tcp("x", "1", "\n<Entitlement>\n<Module>acl</Module></Entitlement>") + "\n</Transports>"),
			code:   CodeModuleUnknown,
			errMsg: `Transports/Transport[1]/Entitlement/Module: transport "x": Entitlement module "acl" is not defined (line 6)`,
		},
		{
			name:   "without Module",
			doc:    doc("<Entitlement><Options><A>1</A></Options></Entitlement>"),
			code:   CodeModuleUnknown,
			errMsg: `Entitlement: Entitlement without Module (line 3)`,
		},
		{
			name:   "entitlement module as authentication",
			doc:    doc("<Authentication><Module>amps-default-entitlement-module</Module></Authentication>"),
			code:   CodeModuleUnknown,
			errMsg: `Authentication/Module: Authentication module "amps-default-entitlement-module" is an Entitlement module (line 3)`,
		},
		{
			name:   "simple access as authentication",
			doc:    doc(sa + "<Authentication><Module>sa</Module></Authentication>"),
			code:   CodeModuleUnknown,
			errMsg: `Authentication/Module: Authentication module "sa" (libamps_simple_access_entitlement.so) is an entitlement module (line 4)`,
		},
		{
			name:   "bad AllowedTopics",
			doc:    doc(sa + "<Entitlement><Module>sa</Module>\n<Options>\n<AllowedTopics>orders/(</AllowedTopics></Options></Entitlement>"),
			code:   CodeValue,
			errMsg: "Entitlement/Options/AllowedTopics: AllowedTopics \"orders/(\" is not a valid regular expression: missing closing ): `orders/(` (line 6)",
		},
		{
			name:   "PCRE lookahead in DeniedTopics",
			doc:    doc("<Modules><Module><Name>sa</Name><Library>" + LibrarySimpleAccess + "</Library>\n<Options><DeniedTopics>^(?!audit)</DeniedTopics></Options></Module></Modules>"),
			code:   CodeValue,
			errMsg: "Modules/Module[1]/Options/DeniedTopics: Module \"sa\": DeniedTopics \"^(?!audit)\" is not a valid regular expression: invalid or unsupported Perl syntax: `(?!` (line 4)",
		},
		{
			name:   "bad GrantedPermissions",
			doc:    doc(sa + "<Entitlement><Module>sa</Module><Options><GrantedPermissions>read,delete</GrantedPermissions></Options></Entitlement>"),
			code:   CodeValue,
			errMsg: `Entitlement/Options/GrantedPermissions: GrantedPermissions "read,delete": unknown permission "delete" (use read, write or both) (line 4)`,
		},
		{
			name: "unknown simple access option warns",
			doc:  doc(sa + "<Entitlement><Module>sa</Module><Options><Topics>x</Topics></Options></Entitlement>"),
			warn: `Entitlement/Options/Topics: libamps_simple_access_entitlement.so has no option Topics; ignored (line 4)`,
		},
		{
			name:   "RequireUsername not a bool",
			doc:    doc("<Authentication><Module>amps-default-authentication-module</Module><Options><RequireUsername>maybe</RequireUsername></Options></Authentication>"),
			code:   CodeValue,
			errMsg: `Authentication/Options/RequireUsername: RequireUsername "maybe" is not a boolean (use true/false or enabled/disabled) (line 3)`,
		},
		{
			name:   "RequireLogon false is rejected",
			doc:    doc("<Authentication><Module>amps-default-authentication-module</Module>\n<Options><RequireLogon>false</RequireLogon></Options></Authentication>"),
			code:   CodeUnsupported,
			errMsg: `Authentication/Options/RequireLogon: RequireLogon false (implicit logon) is not supported by this broker; clients must send logon first (line 4)`,
		},
		{
			name: "RequireLogon false warns in lenient mode",
			doc:  doc("<Authentication><Module>amps-default-authentication-module</Module>\n<Options><RequireLogon>false</RequireLogon></Options></Authentication>"),
			opts: &ParseOptions{Lenient: true},
			warn: `Authentication/Options/RequireLogon: RequireLogon false (implicit logon) is not supported by this broker; clients must send logon first (line 4)`,
		},
		{
			name:   "implicit module is rejected",
			doc:    doc("<Transports>\n" + tcp("x", "1", "<Authentication><Module>amps-implicit-authentication-module</Module></Authentication>") + "\n</Transports>"),
			code:   CodeUnsupported,
			errMsg: `Transports/Transport[1]/Authentication/Module: transport "x": amps-implicit-authentication-module: implicit logon is not supported by this broker; clients must send logon first (line 4)`,
		},
		{
			name: "Go-registered names resolve",
			doc:  doc("<Authentication><Module>users</Module></Authentication><Entitlement><Module>prefixes</Module></Entitlement>"),
			opts: reg,
		},
		{
			name:   "Go-registered entitler as authentication",
			doc:    doc("<Authentication><Module>prefixes</Module></Authentication>"),
			opts:   reg,
			code:   CodeModuleUnknown,
			errMsg: `Authentication/Module: Authentication module "prefixes" is registered as an Entitlement module (line 3)`,
		},
		{
			name:   "Go-registered nil",
			doc:    doc("<Authentication><Module>nil-auth</Module></Authentication>"),
			opts:   reg,
			code:   CodeModuleUnknown,
			errMsg: `Authentication/Module: Authentication module "nil-auth" is registered as nil (line 3)`,
		},
		{
			name: "Go-registered module declared with a C library",
			doc:  doc("<Modules><Module><Name>users</Name>\n<Library>libamps_multi_authentication.so</Library></Module></Modules>\n<Authentication><Module>users</Module></Authentication>"),
			opts: reg,
			warn: `Modules/Module[1]/Library: Module "users" is registered in Go; Library "libamps_multi_authentication.so" is not loaded (line 4)`,
		},
		{
			name:   "unregistered name still needs a library",
			doc:    doc("<Modules><Module><Name>users</Name><Library>libamps_multi_authentication.so</Library></Module></Modules>"),
			code:   CodeModuleLibrary,
			errMsg: `Modules/Module[1]: Module "users": library "libamps_multi_authentication.so" is not available in this broker (line 3)`,
		},
		{
			name: "options of a Go-registered module warn",
			doc:  doc("<Authentication><Module>users</Module><Options><Realm>x</Realm></Options></Authentication>"),
			opts: reg,
			warn: `Authentication/Options: module "users" is registered in Go; its Options are ignored (line 3)`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, e := parseString(t, tc.doc, tc.opts)
			if tc.errMsg == "" {
				if e != nil {
					t.Fatalf("unexpected error: %v", e)
				}
			} else {
				if e == nil {
					t.Fatalf("no error, want %s %s", tc.code, tc.errMsg)
				}
				if len(e.Errors) != 1 || e.Errors[0].Code != tc.code || e.Errors[0].Error() != tc.errMsg {
					t.Fatalf("errors %v\nwant one %s: %s", e.Errors, tc.code, tc.errMsg)
				}
			}
			if tc.warn != "" {
				var ws []Diagnostic
				if cfg != nil {
					ws = cfg.Warnings
				} else {
					ws = e.Warnings
				}
				found := false
				for _, w := range ws {
					found = found || w.Error() == tc.warn
				}
				if !found {
					t.Errorf("warnings %v\nwant %s", ws, tc.warn)
				}
			}
		})
	}
}

// TestLenientRequireLogon checks that a lenient load runs RequireLogon
// false as the default module: logons still required, everyone accepted.
func TestLenientRequireLogon(t *testing.T) {
	cfg, e := parseString(t, doc("<Authentication><Module>amps-implicit-authentication-module</Module></Authentication>"), &ParseOptions{Lenient: true})
	if e != nil {
		t.Fatal(e)
	}
	if len(cfg.Warnings) != 1 || cfg.Warnings[0].Code != CodeUnsupported {
		t.Fatalf("warnings %v, want one CFG-UNSUPPORTED", cfg.Warnings)
	}
	if o := cfg.BrokerOptions(); o.Authenticator != nil {
		t.Errorf("Authenticator = %v, want nil (default module)", o.Authenticator)
	}
}

// TestSimpleAccess checks NewSimpleAccess and Entitled against the module's
// documented options (amps-config §7.2).
func TestSimpleAccess(t *testing.T) {
	type q struct {
		topic string
		p     broker.Permission
		want  bool
	}
	cases := []struct {
		name string
		opts map[string]string
		qs   []q
	}{
		{"defaults allow all", nil, []q{{"a", broker.Read, true}, {"b/c", broker.Write, true}, {"", broker.Read, true}}},
		{"allowed is unanchored", map[string]string{"AllowedTopics": "orders"}, []q{{"orders", broker.Read, true}, {"eu/orders/1", broker.Write, true}, {"fills", broker.Read, false}}},
		{"allowed anchored", map[string]string{"AllowedTopics": "^orders$"}, []q{{"orders", broker.Read, true}, {"orders/1", broker.Read, false}}},
		{"deny wins", map[string]string{"AllowedTopics": ".*", "DeniedTopics": "^admin|secret"}, []q{{"admin/x", broker.Read, false}, {"x/secret", broker.Write, false}, {"x", broker.Read, true}}},
		{"deny alone", map[string]string{"DeniedTopics": "^private/"}, []q{{"private/a", broker.Read, false}, {"public/a", broker.Read, true}}},
		{"read only", map[string]string{"GrantedPermissions": "Read"}, []q{{"a", broker.Read, true}, {"a", broker.Write, false}}},
		{"write only", map[string]string{"GrantedPermissions": " write "}, []q{{"a", broker.Read, false}, {"a", broker.Write, true}}},
		{"both, pipe separated", map[string]string{"GrantedPermissions": "read|write"}, []q{{"a", broker.Read, true}, {"a", broker.Write, true}}},
		{"unknown option ignored", map[string]string{"Foo": "(("}, []q{{"a", broker.Read, true}}},
		{"unknown permission kind denied", nil, []q{{"a", broker.Permission(9), false}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sa, err := NewSimpleAccess(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range tc.qs {
				if got := sa.Entitled(&broker.Identity{UserID: "u"}, x.topic, x.p); got != x.want {
					t.Errorf("%s %q = %v, want %v", x.p, x.topic, got, x.want)
				}
			}
		})
	}
	for _, bad := range []map[string]string{
		{"AllowedTopics": "a("},
		{"DeniedTopics": `\1`},
		{"GrantedPermissions": ""},
		{"GrantedPermissions": "admin"},
	} {
		if _, err := NewSimpleAccess(bad); err == nil {
			t.Errorf("NewSimpleAccess(%v) accepted", bad)
		}
	}
	var zero SimpleAccess
	if !zero.Entitled(nil, "x", broker.Write) {
		t.Error("zero SimpleAccess denies; want the module default (allow)")
	}
	if got := (&SimpleAccess{Allowed: regexp.MustCompile("^a"), NoWrite: true}); got.Entitled(nil, "ab", broker.Write) || !got.Entitled(nil, "ab", broker.Read) {
		t.Error("SimpleAccess built as a Go value")
	}
}

// TestSummaryModules checks that Summary names the security modules.
func TestSummaryModules(t *testing.T) {
	cfg := Config{
		Name:           "s",
		Authentication: &Module{Module: ModuleDefaultAuthentication, Options: map[string]string{"RequireUsername": "true"}},
		Transports:     []Transport{{Name: "ops", Type: TypeTCP, InetAddr: "1", Entitlement: &Module{Module: "sa"}}},
	}
	s := cfg.Summary()
	for _, want := range []string{
		"authentication: amps-default-authentication-module (RequireUsername=true)",
		"ops: entitlement sa",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("Summary lacks %q:\n%s", want, s)
		}
	}
}
