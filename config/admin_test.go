package config

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// TestAdminElement checks that the served children of Admin reach
// Config.Admin, that the defaults apply, and that the ignored children
// are each named in a warning.
func TestAdminElement(t *testing.T) {
	cert, key := writeCert(t, t.TempDir())
	cfg, e := parseString(t, doc(`<Admin><InetAddr>127.0.0.1:28085</InetAddr><Interval>2s</Interval>
<Certificate>`+cert+`</Certificate><PrivateKey>`+key+`</PrivateKey>
<FileName>stats.db</FileName><Header>X-A: b</Header><Header>X-C: d</Header>
<AnonymousPaths>^/amps$</AnonymousPaths><AccessControlAllowOrigin>^https://ops\.example$</AccessControlAllowOrigin>
<Entitlement><Module>amps-default-entitlement-module</Module></Entitlement></Admin>`), nil)
	if e != nil {
		t.Fatalf("Parse: %v", e)
	}
	a := cfg.Admin
	if a == nil || a.InetAddr != "127.0.0.1:28085" || a.Interval != 2*time.Second || a.Certificate != cert || a.PrivateKey != key {
		t.Fatalf("Admin = %+v", a)
	}
	tc, err := a.LoadTLS()
	if err != nil || tc == nil || len(tc.Certificates) != 1 {
		t.Fatalf("LoadTLS = %v, %v", tc, err)
	}
	var warned []string
	for _, w := range cfg.Warnings {
		warned = append(warned, string(w.Code)+" "+w.Path)
	}
	want := "CFG-ACCEPTED Admin/FileName"
	if got := strings.Join(warned, "\n"); got != want {
		t.Errorf("warnings:\n%s\nwant:\n%s", got, want)
	}

	// Naming the default entitlement module is a decision: actions on,
	// everything allowed.
	if a.Entitlement == nil || a.Entitlement.Module != ModuleDefaultEntitlement || a.Authentication != nil {
		t.Errorf("Admin modules = %+v, %+v", a.Authentication, a.Entitlement)
	}
	if auth, ent, set := cfg.AdminSecurity(); auth != nil || ent != nil || !set {
		t.Errorf("AdminSecurity = %v, %v, %v; want nil, nil, true", auth, ent, set)
	}

	if !slices.Equal(a.Headers, []string{"X-A: b", "X-C: d"}) || a.AnonymousPaths != "^/amps$" || a.AccessControlAllowOrigin != `^https://ops\.example$` {
		t.Errorf("Headers %q, AnonymousPaths %q, AccessControlAllowOrigin %q", a.Headers, a.AnonymousPaths, a.AccessControlAllowOrigin)
	}
	if a.Galvanometer != "" {
		t.Errorf("Galvanometer = %q, want empty (enabled)", a.Galvanometer)
	}
	cfg, e = parseString(t, doc(`<Admin><Galvanometer> Disabled </Galvanometer></Admin>`), nil)
	if e != nil || cfg.Admin.Galvanometer != StateDisabled {
		t.Errorf("Galvanometer disabled: %+v, %v", cfg.Admin, e)
	}

	cfg, e = parseString(t, doc(`<Admin><InetAddr>8085</InetAddr></Admin>`), nil)
	if e != nil {
		t.Fatalf("Parse: %v", e)
	}
	if cfg.Admin.Interval != DefaultAdminInterval || cfg.Admin.Certificate != "" {
		t.Errorf("defaults: %+v", cfg.Admin)
	}
	if tc, err := cfg.Admin.LoadTLS(); tc != nil || err != nil {
		t.Errorf("LoadTLS without files = %v, %v", tc, err)
	}

	if _, _, set := cfg.AdminSecurity(); set {
		t.Error("AdminSecurity is set without Authentication or Entitlement")
	}

	cfg, e = parseString(t, doc(``), nil)
	if e != nil || cfg.Admin != nil {
		t.Errorf("no Admin element: Admin = %+v, %v", cfg.Admin, e)
	}
	if _, _, set := cfg.AdminSecurity(); set {
		t.Error("AdminSecurity is set without an Admin element")
	}
}

// TestAdminModules: the Admin element's own modules resolve as the
// instance's do, the instance's do not apply to the admin server, and a
// bad one is refused with its path.
func TestAdminModules(t *testing.T) {
	cfg, e := parseString(t, doc(`<Modules><Module><Name>sa</Name><Library>`+LibrarySimpleAccess+`</Library></Module></Modules>
<Authentication><Module>amps-default-no-authentication-module</Module></Authentication>
<Admin><InetAddr>8085</InetAddr>
<Authentication><Module>amps-default-authentication-module</Module><Options><RequireUsername>true</RequireUsername></Options></Authentication>
<Entitlement><Module>sa</Module><Options><DeniedTopics>^/amps/administrator</DeniedTopics></Options></Entitlement></Admin>`), nil)
	if e != nil {
		t.Fatalf("Parse: %v", e)
	}
	auth, ent, set := cfg.AdminSecurity()
	if !set || auth == nil || ent == nil {
		t.Fatalf("AdminSecurity = %v, %v, %v", auth, ent, set)
	}
	// RequireUsername: a request without a user is refused, one with a
	// user accepted (the instance's no-authentication module is not
	// the admin server's).
	if err := auth.Authenticate(context.Background(), &broker.LogonRequest{Header: &protocol.Header{}}); !errors.Is(err, ErrUserRequired) {
		t.Errorf("no user: %v, want ErrUserRequired", err)
	}
	if err := auth.Authenticate(context.Background(), &broker.LogonRequest{Header: &protocol.Header{UserID: "ops"}}); err != nil {
		t.Errorf("user ops: %v", err)
	}
	id := &broker.Identity{UserID: "ops"}
	if !ent.Entitled(id, "/amps/instance/clients", broker.Read) || ent.Entitled(id, "/amps/administrator/clients/1/disconnect", broker.Read) {
		t.Error("the Admin simple-access entitlement does not read-only the console")
	}

	for _, tc := range []struct{ body, msg string }{
		{`<Admin><Entitlement><Module>nope</Module></Entitlement></Admin>`,
			`Admin/Entitlement/Module: Admin Entitlement module "nope" is not defined (line 3)`},
		{`<Admin><Authentication><Module>amps-default-entitlement-module</Module></Authentication></Admin>`,
			`Admin/Authentication/Module: Admin Authentication module "amps-default-entitlement-module" is an Entitlement module (line 3)`},
	} {
		_, e := parseString(t, doc(tc.body), nil)
		if e == nil || !strings.Contains(e.Error(), tc.msg) {
			t.Errorf("%s: error %v, want one saying %s", tc.body, e, tc.msg)
		}
	}
}

// TestAdminErrors checks each refused Admin value: its code and message.
func TestAdminErrors(t *testing.T) {
	cert, key := writeCert(t, t.TempDir())
	missing := filepath.Join(t.TempDir(), "none.key")
	tests := []struct {
		name, body string
		code       Code
		msg        string
	}{
		{"interval below minimum", `<Admin><InetAddr>8085</InetAddr><Interval>500ms</Interval></Admin>`, CodeValue,
			"Admin/Interval: Admin Interval 500ms is below the 1s minimum (line 3)"},
		{"interval unparsable", `<Admin><Interval>soon</Interval></Admin>`, CodeValue, ""},
		{"header without a colon", `<Admin><Header>X-Nothing</Header></Admin>`, CodeValue,
			`Admin/Header[1]: Admin Header "X-Nothing" must be 'Name: value' on one line (line 3)`},
		{"anonymous paths not a regexp", `<Admin><AnonymousPaths>^/amps(</AnonymousPaths></Admin>`, CodeValue,
			"Admin/AnonymousPaths: Admin AnonymousPaths \"^/amps(\" is not a valid regular expression: error parsing regexp: missing closing ): `^/amps(` (line 3)"},
		{"origin not a regexp", `<Admin><AccessControlAllowOrigin>*</AccessControlAllowOrigin></Admin>`, CodeValue, ""},
		{"galvanometer neither enabled nor disabled", `<Admin><Galvanometer>off</Galvanometer></Admin>`, CodeValue,
			`Admin/Galvanometer: Admin Galvanometer "off" must be enabled or disabled (line 3)`},
		{"certificate without key", `<Admin><InetAddr>8085</InetAddr><Certificate>` + cert + `</Certificate></Admin>`, CodeTLSMissing,
			"Admin: Admin Certificate and PrivateKey go together: HTTPS needs both (line 3)"},
		{"key without certificate", `<Admin><PrivateKey>` + key + `</PrivateKey></Admin>`, CodeTLSMissing,
			"Admin: Admin Certificate and PrivateKey go together: HTTPS needs both (line 3)"},
		{"missing key file", `<Admin><Certificate>` + cert + `</Certificate><PrivateKey>` + missing + `</PrivateKey></Admin>`, CodeTLSLoad,
			`Admin/Certificate: Admin: cannot load Certificate "` + cert + `" with PrivateKey "` + missing + `": ` + missing + `: no such file or directory (line 3)`},
		{"key of another certificate", `<Admin><Certificate>` + cert + `</Certificate><PrivateKey>` + cert + `</PrivateKey></Admin>`, CodeTLSLoad, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, e := parseString(t, doc(tc.body), nil)
			if e == nil {
				t.Fatalf("Parse succeeded; want %s", tc.code)
			}
			for _, d := range e.Errors {
				if d.Code == tc.code && (tc.msg == "" || d.Error() == tc.msg) {
					return
				}
			}
			t.Errorf("no %s error with message\n\t%s\ngot:\n%s", tc.code, tc.msg, e.Error())
		})
	}
}

// TestAdminSummary checks that -check-config's summary names the admin
// server.
func TestAdminSummary(t *testing.T) {
	cfg, e := parseString(t, doc(`<Admin><InetAddr>127.0.0.1:8085</InetAddr><Interval>5s</Interval></Admin>`), nil)
	if e != nil {
		t.Fatalf("Parse: %v", e)
	}
	if s := cfg.Summary(); !strings.Contains(s, "  admin: http on 127.0.0.1:8085, interval 5s\n") {
		t.Errorf("summary lacks the admin line:\n%s", s)
	}
}

// TestAdminValidateGoValues checks that Validate applies the Admin rules
// to a configuration built in Go, where a zero Interval is the default.
func TestAdminValidateGoValues(t *testing.T) {
	ok := &Config{Name: "x", Admin: &Admin{InetAddr: "127.0.0.1:8085"}}
	if err := ok.Validate(); err != nil {
		t.Errorf("zero Interval: %v", err)
	}
	for _, tc := range []struct {
		a    Admin
		code Code
	}{
		{Admin{InetAddr: "localhost:http"}, CodeInetAddr},
		{Admin{InetAddr: "8085", Interval: time.Millisecond}, CodeValue},
		{Admin{InetAddr: "8085", PrivateKey: "k.pem"}, CodeTLSMissing},
		{Admin{InetAddr: "8085", Certificate: "none.crt", PrivateKey: "none.key"}, CodeTLSLoad},
	} {
		c := &Config{Name: "x", Admin: &tc.a}
		err := c.Validate()
		var e *Error
		if !errors.As(err, &e) || len(e.Errors) != 1 || e.Errors[0].Code != tc.code {
			t.Errorf("Validate(%+v) = %v, want one %s", tc.a, err, tc.code)
		}
	}
}
