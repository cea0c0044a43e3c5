package admin_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ampsbroker/ampsbroker/admin"
	"github.com/ampsbroker/ampsbroker/broker"
)

// TestBasicAuthenticator: a broker Authenticator checks the Basic
// credentials as a logon on the transport amps-admin; the user it accepts
// is the one the Entitler is asked about.
func TestBasicAuthenticator(t *testing.T) {
	var seen []string
	auth := broker.AuthenticatorFunc(func(ctx context.Context, req *broker.LogonRequest) error {
		seen = append(seen, req.Conn.Transport+" "+req.Header.ClientName+" "+req.Conn.RemoteAddr.String())
		return broker.UserTable{"ops": "secret"}.Authenticate(ctx, req)
	})
	var asked []string
	ent := broker.EntitlerFunc(func(id *broker.Identity, topic string, p broker.Permission) bool {
		asked = append(asked, id.UserID+" "+topic)
		return id.UserID == "ops"
	})
	_, h := newAdmin(t, &admin.Options{Authenticate: admin.BasicAuthenticator(auth), Entitler: ent})
	basic := func(user, password string) string {
		r := httptest.NewRequest("GET", "/", nil)
		r.SetBasicAuth(user, password)
		return r.Header.Get("Authorization")
	}
	for _, c := range []struct {
		auth string
		code int
		says string
	}{
		{"", 401, "no Basic credentials"},
		{basic("ops", "wrong"), 401, "unknown user or wrong password"},
		{basic("ops", "secret"), 200, ""},
	} {
		var hdr []string
		if c.auth != "" {
			hdr = []string{"Authorization", c.auth}
		}
		code, body, h := do(t, h, "GET", "/amps/instance/name.json", hdr...)
		if code != c.code || !strings.Contains(body, c.says) {
			t.Errorf("Authorization %q = %d %q, want %d saying %q", c.auth, code, body, c.code, c.says)
		}
		if code == 401 && h.Get("WWW-Authenticate") == "" {
			t.Errorf("401 without a challenge")
		}
	}
	if len(seen) != 2 || !strings.HasPrefix(seen[0], admin.AdminTransport+" "+admin.AdminTransport+" ") {
		t.Errorf("the Authenticator saw %q, want two logons on %s", seen, admin.AdminTransport)
	}
	if len(asked) != 1 || asked[0] != "ops /amps/instance/name" {
		t.Errorf("the Entitler was asked %q", asked)
	}

	// Without an Authenticator (AMPS's default module) every request is
	// accepted, as its Basic user when it names one.
	f := admin.BasicAuthenticator(nil)
	r := httptest.NewRequest("GET", "/", nil)
	if u, err := f(r); u != "" || err != nil {
		t.Errorf("anonymous = %q, %v", u, err)
	}
	r.SetBasicAuth("viewer", "")
	if u, err := f(r); u != "viewer" || err != nil {
		t.Errorf("Basic viewer = %q, %v", u, err)
	}
	if _, err := admin.BasicAuthenticator(auth)(httptest.NewRequest("GET", "/", nil)); !errors.Is(err, admin.ErrNoCredentials) {
		t.Errorf("no credentials: %v, want ErrNoCredentials", err)
	}
}
