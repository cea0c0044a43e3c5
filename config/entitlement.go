package config

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"

	"github.com/ampsbroker/ampsbroker/broker"
)

// Options of the simple access entitlement module.
const (
	optAllowedTopics      = "AllowedTopics"
	optDeniedTopics       = "DeniedTopics"
	optGrantedPermissions = "GrantedPermissions"
)

// SimpleAccess is a broker.Entitler with the behaviour of AMPS's simple
// access entitlement module (libamps_simple_access_entitlement.so): the
// same rights for every user, decided by topic name alone. The zero value allows everything, like the module without
// Options.
type SimpleAccess struct {
	// Allowed matches the topics that may be used (AllowedTopics). Nil
	// matches every topic, the module's default ".*".
	Allowed *regexp.Regexp

	// Denied matches topics that are refused even when Allowed matches them
	// (DeniedTopics; deny wins). Nil denies no topic.
	Denied *regexp.Regexp

	// NoRead and NoWrite withhold a permission (GrantedPermissions lists
	// only the other one). Both false grants read and write, the module's
	// default.
	NoRead, NoWrite bool
}

// NewSimpleAccess builds a SimpleAccess from the module's Options:
//
//   - AllowedTopics: a regular expression; default ".*".
//   - DeniedTopics: a regular expression; default none.
//   - GrantedPermissions: "read", "write", or both separated by commas,
//     spaces or '|' (any case); default both.
//
// Option names it does not know are ignored, as AMPS hands Options to the
// module uninterpreted. Errors name the option and its value.
//
// The expressions use Go's RE2 syntax, which covers the PCRE subset topic
// patterns use but has no backreferences or lookaround; such patterns are
// reported as errors rather than approximated. A pattern matches anywhere
// in the topic unless anchored with ^ and $, as AMPS subscription topic
// regexes do; the module's documentation does not say, so this is our
// reading.
func NewSimpleAccess(options map[string]string) (*SimpleAccess, error) {
	var sa SimpleAccess
	for _, name := range []string{optAllowedTopics, optDeniedTopics} {
		v, ok := options[name]
		if !ok {
			continue
		}
		re, err := regexp.Compile(v)
		if err != nil {
			return nil, fmt.Errorf("%s %q is not a valid regular expression: %v", name, v, unwrapRegexpError(err))
		}
		if name == optAllowedTopics {
			sa.Allowed = re
		} else {
			sa.Denied = re
		}
	}
	if v, ok := options[optGrantedPermissions]; ok {
		read, write, err := parsePermissions(v)
		if err != nil {
			return nil, err
		}
		sa.NoRead, sa.NoWrite = !read, !write
	}
	return &sa, nil
}

// unwrapRegexpError drops the "regexp: Compile(...)" prefix that repeats
// the pattern.
func unwrapRegexpError(err error) string {
	var se *syntax.Error
	if errors.As(err, &se) {
		return fmt.Sprintf("%s: `%s`", se.Code, se.Expr)
	}
	return err.Error()
}

// parsePermissions reads GrantedPermissions.
func parsePermissions(v string) (read, write bool, err error) {
	fields := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == '|' || r == ' ' || r == '\t' || r == '\n' })
	if len(fields) == 0 {
		return false, false, fmt.Errorf("%s %q names no permission (use read, write or both)", optGrantedPermissions, v)
	}
	for _, f := range fields {
		switch strings.ToLower(f) {
		case "read":
			read = true
		case "write":
			write = true
		default:
			return false, false, fmt.Errorf("%s %q: unknown permission %q (use read, write or both)", optGrantedPermissions, v, f)
		}
	}
	return read, write, nil
}

// Entitled implements broker.Entitler: the permission must be granted, the
// topic must match Allowed and must not match Denied.
func (s *SimpleAccess) Entitled(_ *broker.Identity, topic string, p broker.Permission) bool {
	switch p {
	case broker.Read:
		if s.NoRead {
			return false
		}
	case broker.Write:
		if s.NoWrite {
			return false
		}
	default:
		return false
	}
	if s.Denied != nil && s.Denied.MatchString(topic) {
		return false
	}
	return s.Allowed == nil || s.Allowed.MatchString(topic)
}

// checkSimpleAccessOptions validates simple access Options where they are
// written, reporting each bad option at its own element.
func checkSimpleAccessOptions(ds *diags, optAt func(string) pos, who string, options map[string]string) {
	for _, name := range sortedKeys(options) {
		switch name {
		case optAllowedTopics, optDeniedTopics, optGrantedPermissions:
			if _, err := NewSimpleAccess(map[string]string{name: options[name]}); err != nil {
				ds.errorf(CodeValue, optAt(name), "%s%v", who, err)
			}
		default:
			ds.warnf(CodeAccepted, optAt(name), "%s%s has no option %s; ignored", who, LibrarySimpleAccess, name)
		}
	}
}
