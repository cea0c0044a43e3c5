package broker

import (
	"fmt"
	"strings"
)

// This file decides what the broker does with each option ("o"/"opts") a
// command carries. AMPS refuses a command with an option it does not know
// (semantics §4.1), and so does this broker: an option is either honoured,
// accepted because it has nothing to do here (the table says why), or the
// command fails with a failure ack, so that an application never believes
// it got a behaviour it did not get.

// optionUse is how the broker treats one option of a command.
type optionUse uint8

const (
	// optHonoured: implemented.
	optHonoured optionUse = iota + 1
	// optIgnored: accepted, with nothing to do in this broker.
	optIgnored
	// optLater: an AMPS option this broker does not implement yet; the
	// command fails with "<name> option is not supported yet".
	optLater
)

// subscribeOptions are the options of subscribe. An option missing here
// is unknown to AMPS's subscribe and fails the command with
// ReasonInvalidOptions.
var subscribeOptions = map[string]optionUse{
	"none":            optIgnored, // an explicit "no options"
	"replace":         optHonoured,
	"non_regex_topic": optHonoured,
	"no_sowkey":       optHonoured,
	// Key fields in delta bodies are the default anyway.
	"send_keys": optIgnored,
	// "bookmark" adds the journal's bookmark ("bm") to each delivery of a
	// journaled message; other messages have none.
	"bookmark": optHonoured,
	// "live" lets a bookmark subscription get messages before they are
	// durable; this broker always waits (a replay reads only durable
	// entries), which is stricter, never weaker: a subscriber's stored
	// bookmark always survives a crash. "fully_durable" asks for what
	// the local journal already gives when there is no replication.
	"live":          optIgnored,
	"fully_durable": optIgnored,
	// max_backlog applies to queue topics only; on any other topic AMPS
	// documents that it does not apply.
	"max_backlog": optIgnored,
	// send_empties is the default of no_empties.
	"send_empties": optIgnored,

	"oof":                optHonoured,
	"timestamp":          optHonoured,
	"select":             optHonoured,
	"top_n":              optHonoured, // a bookmark replay's cap (replay.go)
	"skip_n":             optLater,
	"conflation":         optLater,
	"conflation_key":     optLater,
	"grouping":           optLater,
	"projection":         optLater,
	"bookmark_not_found": optHonoured,
	// pause, resume and rate shape a bookmark replay (replay.go); on any
	// other subscription they fail with ReasonReplayOnly.
	"pause":        optHonoured,
	"resume":       optHonoured,
	"rate":         optHonoured,
	"rate_max_gap": optLater,
}

// logonOptions are the options of logon. "pretty" renders binary message
// types as text for display, nothing to do here; "ack_conflation" sets the
// interval of conflated persisted acks, which exist with a journal (see
// persist.go; without one they are sent one by one).
var logonOptions = map[string]optionUse{
	"pretty":         optIgnored,
	"ack_conflation": optHonoured,
}

// deltaSubscribeOptions are the options of delta_subscribe: those of
// subscribe, and no_empties (drop updates that changed only the keys).
var deltaSubscribeOptions = withOption(subscribeOptions, "no_empties", optHonoured)

// withOption returns a copy of table with name set to use.
func withOption(table map[string]optionUse, name string, use optionUse) map[string]optionUse {
	m := make(map[string]optionUse, len(table)+1)
	for k, v := range table {
		m[k] = v
	}
	m[name] = use
	return m
}

// flagOptions take no value: "replace=yes" is malformed.
var flagOptions = map[string]bool{"none": true, "replace": true, "non_regex_topic": true, "no_empties": true}

// checkOptions checks every option of a command against its table. It
// returns "" when the command may proceed; else the failure ack's reason
// and, for the log, what exactly was refused. Option names are lower case
// and matched exactly; a value follows '='.
func checkOptions(opts []string, table map[string]optionUse) (reason string, detail error) {
	for _, o := range opts {
		name, _, hasValue := strings.Cut(o, "=")
		name = strings.TrimSpace(name)
		switch table[name] {
		case optHonoured, optIgnored:
			if hasValue && flagOptions[name] {
				return ReasonInvalidOptions, fmt.Errorf("option %q takes no value", o)
			}
		case optLater:
			return name + " option" + reasonNotSupportedTail, fmt.Errorf("option %q is not supported yet", o)
		default:
			return ReasonInvalidOptions, fmt.Errorf("unknown option %q", o)
		}
	}
	return "", nil
}
