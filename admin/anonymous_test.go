package admin_test

import (
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ampsbroker/ampsbroker/admin"
	"github.com/ampsbroker/ampsbroker/broker"
)

// TestAnonymousPaths: paths AnonymousPaths matches are served without
// authentication or entitlement; the others still need both.
func TestAnonymousPaths(t *testing.T) {
	_, h := newAdmin(t, &admin.Options{
		Authenticate:   func(*http.Request) (string, error) { return "", errors.New("nobody gets in") },
		Entitler:       broker.EntitlerFunc(func(*broker.Identity, string, broker.Permission) bool { return false }),
		AnonymousPaths: regexp.MustCompile(`^/amps$|^/amps/instance/name$|^/$|^/dashboard/`),
	})
	for path, want := range map[string]int{
		"/amps.json":                 200,
		"/amps/instance/name.json":   200,
		"/":                          200,
		"/dashboard/app.js":          200,
		"/amps/instance.json":        401,
		"/amps/instance/clients":     401,
		"/amps/instance/name/x.json": 401, // not the anonymous path itself
	} {
		if code, body, _ := do(t, h, "GET", path); code != want {
			t.Errorf("GET %s = %d %q, want %d", path, code, body, want)
		}
	}

	// An anonymous action still needs actions to be on.
	_, off := newAdmin(t, &admin.Options{AnonymousPaths: regexp.MustCompile(`^/amps/administrator`)})
	if code, body, _ := do(t, off, "GET", "/amps/administrator/clients/1/disconnect"); code != 403 || !strings.Contains(body, "actions are off") {
		t.Errorf("anonymous action with actions off = %d %q, want 403", code, body)
	}
}

// TestHeadersAndOrigin: Headers go on every response; AllowOrigin echoes
// a matching Origin and lets its pages run actions.
func TestHeadersAndOrigin(t *testing.T) {
	_, h := newAdmin(t, &admin.Options{
		Headers:     http.Header{"X-Frame-Options": {"DENY"}, "X-Test": {"a", "b"}},
		AllowOrigin: regexp.MustCompile(`^https://ops\.example$`),
		OpenActions: true,
	})
	for _, path := range []string{"/amps/instance/name.json", "/nope", "/"} {
		_, _, hdr := do(t, h, "GET", path)
		if hdr.Get("X-Frame-Options") != "DENY" || !slices.Equal(hdr.Values("X-Test"), []string{"a", "b"}) {
			t.Errorf("GET %s: headers %v", path, hdr)
		}
		if !slices.Contains(hdr.Values("Vary"), "Origin") {
			t.Errorf("GET %s: no Vary: Origin", path)
		}
	}
	_, _, hdr := do(t, h, "GET", "/amps.json", "Origin", "https://ops.example")
	if got := hdr.Get("Access-Control-Allow-Origin"); got != "https://ops.example" {
		t.Errorf("allowed origin: Access-Control-Allow-Origin %q", got)
	}
	_, _, hdr = do(t, h, "GET", "/amps.json", "Origin", "https://evil.example")
	if got := hdr.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("other origin: Access-Control-Allow-Origin %q, want none", got)
	}

	// An action from another site runs only for an allowed origin (the
	// unknown client then answers 404: the action was tried).
	const action = "/amps/administrator/clients/999999/disconnect"
	if code, body, _ := do(t, h, "POST", action, "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"); code != 403 || !strings.Contains(body, "another site") {
		t.Errorf("cross-site action from another origin = %d %q, want 403", code, body)
	}
	if code, body, _ := do(t, h, "POST", action, "Sec-Fetch-Site", "cross-site", "Origin", "https://ops.example"); code != 404 {
		t.Errorf("cross-site action from the allowed origin = %d %q, want 404 (tried)", code, body)
	}

	// Without AllowOrigin there is no CORS header at all.
	_, plain := newAdmin(t, nil)
	if _, _, hdr := do(t, plain, "GET", "/amps.json", "Origin", "https://ops.example"); hdr.Get("Access-Control-Allow-Origin") != "" || hdr.Get("Vary") != "" {
		t.Errorf("no AllowOrigin: headers %v", hdr)
	}
}
