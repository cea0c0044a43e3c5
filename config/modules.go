package config

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/ampsbroker/ampsbroker/broker"
)

// Built-in authentication and entitlement modules. They need no Modules
// declaration.
const (
	// ModuleDefaultAuthentication accepts every logon. Options:
	// AllowSpoofing, RequireLogon, RequireUsername.
	ModuleDefaultAuthentication = "amps-default-authentication-module"
	// ModuleImplicitAuthentication logs a connection on with empty
	// credentials when its first command is not a logon. This broker
	// requires an explicit logon, so Validate reports the module as
	// unsupported: an error in strict mode; lenient mode runs it as
	// ModuleDefaultAuthentication (see BrokerOptions).
	ModuleImplicitAuthentication = "amps-implicit-authentication-module"
	// ModuleNoAuthentication refuses every logon: an instance default that
	// transports must override.
	ModuleNoAuthentication = "amps-default-no-authentication-module"
	// ModuleDefaultEntitlement allows everything to everyone.
	ModuleDefaultEntitlement = "amps-default-entitlement-module"
	// ModuleNoEntitlement denies everything to everyone, logons included.
	ModuleNoEntitlement = "amps-default-no-entitlement-module"
)

// LibrarySimpleAccess is the Library of AMPS's simple access entitlement
// module, the one module library this package emulates: a Modules/Module with this Library is an entitlement module built by
// NewSimpleAccess from its Options.
const LibrarySimpleAccess = "libamps_simple_access_entitlement.so"

// Options of the built-in authentication modules.
const (
	optAllowSpoofing   = "AllowSpoofing"
	optRequireLogon    = "RequireLogon"
	optRequireUsername = "RequireUsername"
)

// Sentinel errors returned by the Authenticators BrokerOptions builds. The
// broker logs them and answers the logon with "auth failure".
var (
	// ErrNoAuthentication refuses a logon on a transport governed by
	// amps-default-no-authentication-module.
	ErrNoAuthentication = errors.New("config: amps-default-no-authentication-module refuses every logon")

	// ErrUserRequired refuses a logon without user_id when the default
	// authentication module has RequireUsername true.
	ErrUserRequired = errors.New("config: RequireUsername is set and the logon has no user_id")

	// ErrLogonNotEntitled refuses a logon on a transport governed by
	// amps-default-no-entitlement-module: logon is itself an entitlement
	// resource, and that module denies every resource.
	ErrLogonNotEntitled = errors.New("config: amps-default-no-entitlement-module denies the logon")

	// ErrModuleUnusable refuses every logon on a transport whose
	// Authentication or Entitlement cannot be resolved: BrokerOptions was
	// called on a Config that does not pass Validate. Failing closed keeps
	// a misconfigured transport from running unprotected.
	ErrModuleUnusable = errors.New("config: authentication or entitlement module cannot be resolved (run Validate)")
)

// moduleKind is what a Module element selects.
type moduleKind uint8

const (
	kindAuthentication moduleKind = iota
	kindEntitlement
)

func (k moduleKind) String() string {
	if k == kindEntitlement {
		return "Entitlement"
	}
	return "Authentication"
}

// builtinKind returns the kind of a built-in module name.
func builtinKind(name string) (moduleKind, bool) {
	switch name {
	case ModuleDefaultAuthentication, ModuleImplicitAuthentication, ModuleNoAuthentication:
		return kindAuthentication, true
	case ModuleDefaultEntitlement, ModuleNoEntitlement:
		return kindEntitlement, true
	}
	return 0, false
}

// goModule reports whether name is registered as a Go-side module of any
// kind.
func (c *Config) goModule(name string) bool {
	_, a := c.Authenticators[name]
	_, e := c.Entitlers[name]
	return a || e
}

// moduleDef returns the Modules/Module declaration named name.
func (c *Config) moduleDef(name string) (*ModuleDef, int) {
	for i := range c.Modules {
		if c.Modules[i].Name == name {
			return &c.Modules[i], i
		}
	}
	return nil, -1
}

// checkModule validates one Authentication or Entitlement element at
// path. Module is required and resolves, in this order, to a built-in
// module, a Go-registered module, or a Modules declaration; the module
// found must be of the element's kind. Anything else is
// CFG-MODULE-UNKNOWN. A declaration with a library other than the simple
// access one is reported where it is declared (CFG-MODULE-LIBRARY).
func (c *Config) checkModule(ds *diags, path, who string, kind moduleKind, m *Module) {
	if m == nil {
		return
	}
	p := c.at(path)
	optAt := func(name string) pos { return c.at(path + "/Options/" + name) }
	if m.Module == "" {
		ds.errorf(CodeModuleUnknown, p, "%s%s without Module", who, kind)
		return
	}
	if k, ok := builtinKind(m.Module); ok {
		if k != kind {
			ds.errorf(CodeModuleUnknown, c.at(path+"/Module"), "%s%s module %q is an %s module", who, kind, m.Module, k)
			return
		}
		checkBuiltinOptions(ds, c.at(path+"/Module"), optAt, who, m)
		return
	}
	if a, ok := c.Authenticators[m.Module]; ok && kind == kindAuthentication {
		if a == nil {
			ds.errorf(CodeModuleUnknown, c.at(path+"/Module"), "%s%s module %q is registered as nil", who, kind, m.Module)
		}
		warnGoOptions(ds, c.at(path+"/Options"), who, m)
		return
	}
	if e, ok := c.Entitlers[m.Module]; ok && kind == kindEntitlement {
		if e == nil {
			ds.errorf(CodeModuleUnknown, c.at(path+"/Module"), "%s%s module %q is registered as nil", who, kind, m.Module)
		}
		warnGoOptions(ds, c.at(path+"/Options"), who, m)
		return
	}
	if c.goModule(m.Module) {
		other := kindEntitlement
		if kind == kindEntitlement {
			other = kindAuthentication
		}
		ds.errorf(CodeModuleUnknown, c.at(path+"/Module"), "%s%s module %q is registered as an %s module", who, kind, m.Module, other)
		return
	}
	def, _ := c.moduleDef(m.Module)
	if def == nil {
		ds.errorf(CodeModuleUnknown, c.at(path+"/Module"), "%s%s module %q is not defined", who, kind, m.Module)
		return
	}
	if libraryBase(def.Library) != LibrarySimpleAccess {
		// The declaration itself is reported as CFG-MODULE-LIBRARY.
		return
	}
	if kind != kindEntitlement {
		ds.errorf(CodeModuleUnknown, c.at(path+"/Module"), "%s%s module %q (%s) is an entitlement module", who, kind, m.Module, LibrarySimpleAccess)
		return
	}
	checkSimpleAccessOptions(ds, optAt, who, m.Options)
}

// checkBuiltinOptions validates the options of a built-in module: the
// options it defines are booleans. Options a module does not define are
// ignored with a warning, since AMPS hands Options to the module
// uninterpreted.
func checkBuiltinOptions(ds *diags, at pos, optAt func(string) pos, who string, m *Module) {
	known := map[string]bool{}
	switch m.Module {
	case ModuleDefaultAuthentication:
		known = map[string]bool{optAllowSpoofing: true, optRequireLogon: true, optRequireUsername: true}
	case ModuleImplicitAuthentication:
		known = map[string]bool{optAllowSpoofing: true}
		// AMPS offers implicit logon, but this broker always requires a
		// logon as the first command. A client relying on implicit logon
		// sees its first command refused and the connection closed, so the
		// gap cannot go unnoticed: an error in strict mode, and in lenient
		// mode a warning, the module then acting as the default module.
		ds.strictf(CodeUnsupported, at, "%s%s: implicit logon is not supported by this broker; clients must send logon first", who, m.Module)
	}
	for _, name := range sortedKeys(m.Options) {
		v := m.Options[name]
		if !known[name] {
			ds.warnf(CodeAccepted, optAt(name), "%s%s has no option %s; ignored", who, m.Module, name)
			continue
		}
		b, err := ParseBool(v)
		if err != nil {
			ds.errorf(CodeValue, optAt(name), "%s%s %v", who, name, err)
			continue
		}
		if name == optRequireLogon && !b {
			// RequireLogon false means implicit logon; see above.
			ds.strictf(CodeUnsupported, optAt(name), "%sRequireLogon false (implicit logon) is not supported by this broker; clients must send logon first", who)
		}
	}
}

// warnGoOptions notes that Options are not handed to Go-registered modules:
// broker.Authenticator and broker.Entitler take no configuration.
func warnGoOptions(ds *diags, at pos, who string, m *Module) {
	if len(m.Options) > 0 {
		ds.warnf(CodeAccepted, at, "%smodule %q is registered in Go; its Options are ignored", who, m.Module)
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// moduleOptions merges a declaration's Options with those of the
// Authentication/Entitlement element naming it; the element wins.
func moduleOptions(def *ModuleDef, m *Module) map[string]string {
	if def == nil || len(def.Options) == 0 {
		return m.Options
	}
	out := make(map[string]string, len(def.Options)+len(m.Options))
	for k, v := range def.Options {
		out[k] = v
	}
	for k, v := range m.Options {
		out[k] = v
	}
	return out
}

// Authenticators and Entitlers BrokerOptions builds.
var (
	acceptAll = broker.AuthenticatorFunc(func(context.Context, *broker.LogonRequest) error { return nil })
	allowAll  = broker.EntitlerFunc(func(*broker.Identity, string, broker.Permission) bool { return true })
	denyAll   = broker.EntitlerFunc(func(*broker.Identity, string, broker.Permission) bool { return false })
)

// refuse returns an Authenticator that refuses every logon with err.
func refuse(err error) broker.Authenticator {
	return broker.AuthenticatorFunc(func(context.Context, *broker.LogonRequest) error { return err })
}

// requireUsername refuses logons without user_id (RequireUsername true).
var requireUsername = broker.AuthenticatorFunc(func(_ context.Context, req *broker.LogonRequest) error {
	if req.Header == nil || req.Header.UserID == "" {
		return ErrUserRequired
	}
	return nil
})

// authenticator resolves an Authentication element. Nil means the broker
// default: accept everyone and answer "authentication disabled", which is
// what AMPS's default module does (wire §7.1).
//
// AllowSpoofing is not mapped: the broker always records the supplied
// user_id as the connection's identity (AllowSpoofing true). With false,
// AMPS records an empty name; that only matters to an entitlement keyed on
// user names, and none of the built-in ones is.
func (c *Config) authenticator(m *Module) broker.Authenticator {
	if m == nil {
		return nil
	}
	switch m.Module {
	case ModuleDefaultAuthentication, ModuleImplicitAuthentication:
		// RequireLogon false and the implicit module are rejected by
		// Validate in strict mode; lenient mode runs them as the default
		// module: logon stays required.
		if v, err := ParseBool(m.Options[optRequireUsername]); err == nil && v {
			return requireUsername
		}
		return nil
	case ModuleNoAuthentication:
		return refuse(ErrNoAuthentication)
	}
	if a := c.Authenticators[m.Module]; a != nil {
		return a
	}
	return refuse(ErrModuleUnusable)
}

// entitler resolves an Entitlement element. Nil means allow everything
// (amps-default-entitlement-module, the broker default). denyLogon is set
// for amps-default-no-entitlement-module, which also refuses logons.
func (c *Config) entitler(m *Module) (e broker.Entitler, denyLogon bool) {
	if m == nil {
		return nil, false
	}
	switch m.Module {
	case ModuleDefaultEntitlement:
		return nil, false
	case ModuleNoEntitlement:
		return denyAll, true
	}
	if e := c.Entitlers[m.Module]; e != nil {
		return e, false
	}
	if def, _ := c.moduleDef(m.Module); def != nil && libraryBase(def.Library) == LibrarySimpleAccess {
		if sa, err := NewSimpleAccess(moduleOptions(def, m)); err == nil {
			return sa, false
		}
	}
	// Unresolvable: deny everything, logons included (see
	// ErrModuleUnusable).
	return denyAll, true
}

// security fills o.Authenticator, o.Entitler and o.Transports from the
// instance and transport Authentication and Entitlement elements: a
// transport's own element wins over the
// instance's, which wins over the default modules.
func (c *Config) security(o *broker.Options) {
	instAuth := c.authenticator(c.Authentication)
	instEnt, instDeny := c.entitler(c.Entitlement)
	o.Authenticator, o.Entitler = instAuth, instEnt
	if instDeny {
		o.Authenticator = refuse(ErrLogonNotEntitled)
	}
	for _, t := range c.Transports {
		slowClient := t.MessageMemoryLimit != 0 || t.ClientMaxCapacity != 0 || t.ClientMessageAgeLimit != 0
		if t.Authentication == nil && t.Entitlement == nil && t.MaxConnections == 0 && !slowClient {
			continue // the instance settings apply
		}
		var to broker.TransportOptions
		to.MaxConnections = t.MaxConnections
		if slowClient {
			// A transport's own slow-client settings; what it leaves out
			// comes from the instance.
			pool, capacity := t.MessageMemoryLimit, t.ClientMaxCapacity
			if pool == 0 {
				pool = c.MessageMemoryLimit
			}
			if capacity == 0 {
				capacity = c.ClientMaxCapacity
			}
			to.OutboundQueueBytes = clientBudget(pool, capacity)
			to.MaxMessageAge = t.ClientMessageAgeLimit
		}
		if t.Authentication != nil || t.Entitlement != nil {
			auth, ent, deny := instAuth, instEnt, instDeny
			if t.Authentication != nil {
				auth = c.authenticator(t.Authentication)
			}
			if t.Entitlement != nil {
				ent, deny = c.entitler(t.Entitlement)
			}
			if deny {
				auth = refuse(ErrLogonNotEntitled)
			}
			// A nil TransportOptions field falls back to the broker's, so
			// "the default module" needs an explicit value when the instance
			// has another one.
			if auth == nil && o.Authenticator != nil {
				auth = acceptAll
			}
			if ent == nil && o.Entitler != nil {
				ent = allowAll
			}
			to.Authenticator, to.Entitler = auth, ent
		}
		if o.Transports == nil {
			o.Transports = map[string]broker.TransportOptions{}
		}
		o.Transports[t.Name] = to
	}
}

// describeModule is a short human description for Summary.
func describeModule(m *Module) string {
	if m == nil {
		return "default"
	}
	if len(m.Options) == 0 {
		return m.Module
	}
	var parts []string
	for _, k := range sortedKeys(m.Options) {
		parts = append(parts, fmt.Sprintf("%s=%s", k, m.Options[k]))
	}
	return m.Module + " (" + strings.Join(parts, " ") + ")"
}
