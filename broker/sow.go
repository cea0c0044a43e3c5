package broker

import (
	"cmp"
	"fmt"
	"sync"
	"time"

	"regexp"

	"github.com/ampsbroker/ampsbroker/protocol"

	"github.com/ampsbroker/ampsbroker/filter"
)

// This file defines State-of-the-World (SOW) topics: a SOW topic keeps the
// latest message per record key, like a table with a primary key. The first
// publish of a key inserts the record, later ones replace it whole.

// DefaultSOWMessageType is the message type of a SOWTopic that names none.
const DefaultSOWMessageType = "json"

// SOWTopic declares a State-of-the-World topic (AMPS's SOW/Topic).
type SOWTopic struct {
	// Name is the exact topic name; with Pattern, the name of the
	// definition (AMPS's physical topic), which seeds the keys. Name or
	// Pattern is required.
	Name string
	// Pattern makes the definition hold every topic whose whole name the
	// regular expression matches, each a topic of its own with its own
	// records (AMPS's Pattern: one physical topic for many logical ones).
	Pattern string
	// MessageType is the type of the stored messages. Default
	// DefaultSOWMessageType. Topics are per message type, as in AMPS.
	MessageType string
	// Keys are the fields whose values identify a record ("/id", or several
	// for a composite key), read as the filter language reads fields. The
	// broker computes each record's key from them: a stable 64-bit hash of
	// the key domain and the values. Without Keys every publish must carry
	// its own key in the "k" header, which is stored and returned as given.
	Keys []string
	// KeyDomain seeds the computed keys, so that topics with the same
	// domain give equal values the same key. Default: the topic's name.
	// Only with Keys.
	KeyDomain string
	// Expiration is the default lifetime of a record, restarted by each
	// update; zero means records live until deleted. A publish's "e"
	// header (seconds) overrides it for that record, and "e":0 makes the
	// record never expire.
	Expiration time.Duration
	// ExpirationEnabled honours a publish's "e" header when Expiration is
	// zero (AMPS's Expiration "enabled"); a non-zero Expiration implies
	// it. Without either, "e" is stored nowhere and enforced never, as in
	// AMPS with expiration disabled.
	ExpirationEnabled bool
	// StartEmpty starts the topic with no records even when its messages
	// are journaled (AMPS RecoveryPoint "now"). Default false: with a
	// Journal that records the topic, New rebuilds the records from the
	// journal (RecoveryPoint "epoch"), then expires what has expired.
	StartEmpty bool
}

// sowDef is a validated SOWTopic.
type sowDef struct {
	SOWTopic
	re *regexp.Regexp // Pattern compiled, anchored; nil for Name
	// keyPaths are Keys as path steps; keyEx reads them from a message.
	keyPaths [][]string
	keyEx    *filter.Extractor
	keys     sync.Pool // *keyScratch
}

// matches reports whether the definition holds topic.
func (d *sowDef) matches(topic string) bool {
	if d.re != nil {
		return d.re.MatchString(topic)
	}
	return d.Name == topic
}

// newSOWDef validates t. The error names the topic and what is wrong.
func newSOWDef(t SOWTopic) (*sowDef, error) {
	d := &sowDef{SOWTopic: t}
	if d.MessageType == "" {
		d.MessageType = DefaultSOWMessageType
	}
	name := t.Name
	switch {
	case t.Name == "" && t.Pattern == "":
		return nil, fmt.Errorf("SOW topic needs a Name or a Pattern")
	case t.Pattern != "":
		name = cmp.Or(t.Name, t.Pattern)
		re, err := regexp.Compile(`^(?:` + t.Pattern + `)$`)
		if err != nil {
			return nil, fmt.Errorf("SOW topic Pattern %q: %v", t.Pattern, err)
		}
		d.re = re
	}
	if publishTopicReason(name) != "" && t.Pattern == "" {
		return nil, fmt.Errorf("SOW topic %q: not a topic clients may publish to", name)
	}
	if t.Expiration < 0 {
		return nil, fmt.Errorf("SOW topic %q: negative Expiration %v", name, t.Expiration)
	}
	if len(t.Keys) == 0 {
		if t.KeyDomain != "" {
			return nil, fmt.Errorf("SOW topic %q: KeyDomain needs at least one Key", name)
		}
		return d, nil
	}
	for _, k := range t.Keys {
		path, ok := fieldPath(k)
		if !ok {
			return nil, fmt.Errorf("SOW topic %q: Key %q is not a field such as /id", name, k)
		}
		d.keyPaths = append(d.keyPaths, path)
	}
	ex, err := filter.NewExtractor(d.MessageType, d.keyPaths)
	if err != nil {
		return nil, fmt.Errorf("SOW topic %q: keys cannot be computed for message type %q (json, fix and nvfix can be read); without Keys, publishers give each record's key", name, d.MessageType)
	}
	d.keyEx = ex
	return d, nil
}

// sowDefs validates a SOWTopics list: each definition, and no name defined
// twice for one message type.
func sowDefs(ts []SOWTopic) ([]*sowDef, error) {
	var defs []*sowDef
	seen := make(map[[2]string]bool)
	for i, t := range ts {
		d, err := newSOWDef(t)
		if err != nil {
			return nil, fmt.Errorf("broker: SOWTopics[%d]: %w", i, err)
		}
		id := [2]string{d.Name + "\x00" + d.Pattern, d.MessageType}
		if seen[id] {
			return nil, fmt.Errorf("broker: SOWTopics[%d]: SOW topic %q (%s) defined twice", i, d.Name+d.Pattern, d.MessageType)
		}
		seen[id] = true
		defs = append(defs, d)
	}
	return defs, nil
}

// lifetime is how long a record published with h lives, or 0 for ever:
// the publish's "e" (seconds; 0 means for ever) when the topic honours it,
// else the topic's Expiration.
func (d *sowDef) lifetime(h *protocol.Header) time.Duration {
	if h != nil && h.Has(protocol.FieldExpiration) && (d.ExpirationEnabled || d.Expiration > 0) {
		return time.Duration(min(h.Expiration, uint64(maxLifetime/time.Second))) * time.Second
	}
	return d.Expiration
}

// maxLifetime caps a record's lifetime so that its expiry instant cannot
// overflow: a century is for ever in practice.
const maxLifetime = 100 * 365 * 24 * time.Hour

// fieldPath reads s as one field of the filter language ("/a/b", or
// "[/name with spaces]"), without a subscript, and returns its steps.
func fieldPath(s string) ([]string, bool) {
	n, err := filter.Parse(s)
	id, ok := n.(*filter.Ident)
	if err != nil || !ok || id.Subscript != filter.NoSubscript {
		return nil, false
	}
	return id.Steps, true
}
