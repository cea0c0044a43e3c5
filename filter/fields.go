package filter

import (
	"errors"
	"fmt"
	"strings"
)

// Kind is the type of one value that a message holds at a path.
type Kind uint8

// The kinds of a Value. The empty string, JSON null and an empty array are
// all NULL in AMPS; a path the message does not hold at all is Missing,
// which the evaluator also treats as NULL.
const (
	// Missing: the message holds nothing at the path.
	Missing Kind = iota
	// Null: JSON null, or an empty string (AMPS treats "" as NULL everywhere).
	Null
	// Int: a JSON number without a fraction or an exponent; Raw is its text.
	Int
	// Float: a JSON number with a fraction and/or an exponent; Raw is its text.
	Float
	// String: a non-empty string; Raw holds its bytes with JSON escapes
	// decoded. Numeric-looking text stays a String: the evaluator converts
	// it when an operator asks for a number. Every FIX/NVFIX value is a String.
	String
	// Bool: JSON true or false; Raw is "true" or "false". It behaves as 1 / 0.
	Bool
)

var kindNames = [...]string{"Missing", "Null", "Int", "Float", "String", "Bool"}

// String returns the kind's name, e.g. "Int".
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Value is one raw, typed value as the message holds it. Raw aliases either
// the message body or a buffer of the Fields it came from: it is valid until
// the next Extract into those Fields, and only while the body is unchanged.
type Value struct {
	Kind Kind
	Raw  []byte
}

// Field is what a message holds at one requested path: its values in
// document order.
//
// A path through JSON arrays collects several values: an array of scalars
// gives its elements, and a member path below an array of objects collects
// that member from every element (/legs/px over [{"px":1.5},{"px":2.5}]
// gives 1.5 and 2.5). Objects have no value of their own, so an object at
// the path, or an object element of an array at the path, adds no value.
type Field struct {
	// Values are the values found, in document order; empty when the path
	// is missing, names an object, or names an empty array.
	Values []Value
	// Array is true when at least one array lay on the way to the values
	// (or is the value itself), even an empty one. Subscripts ([n]) and the
	// existential comparisons of arrays depend on it.
	Array bool
}

// First returns the value a non-array-aware use of the path sees
// (arithmetic and functions use the first element of an array): the first
// value, or Null for an empty array, or Missing.
func (f *Field) First() Value {
	if len(f.Values) > 0 {
		return f.Values[0]
	}
	if f.Array {
		return Value{Kind: Null}
	}
	return Value{Kind: Missing}
}

// At returns the value of the subscript /path[i] (0-based). Out of range
// yields Missing (NULL). On a path that is not an array, index 0 yields its
// value and any other index Missing.
func (f *Field) At(i int) Value {
	if i < 0 || i >= len(f.Values) {
		return Value{Kind: Missing}
	}
	if !f.Array && i > 0 {
		return Value{Kind: Missing}
	}
	return f.Values[i]
}

// MessageType names a message format whose bodies the filter engine can read.
type MessageType uint8

// The message types the extractor can read.
const (
	// JSON bodies (message type "json").
	JSON MessageType = iota + 1
	// FIX bodies: tag=value fields separated by SOH (message type "fix").
	FIX
	// NVFIX bodies: name=value fields separated by SOH (message type "nvfix").
	NVFIX
)

// ParseMessageType maps a message type name (as in the logon "mt" header or
// a transport's MessageType) to a MessageType. The names are case-sensitive,
// as AMPS message type names are.
func ParseMessageType(name string) (MessageType, error) {
	switch name {
	case "json":
		return JSON, nil
	case "fix":
		return FIX, nil
	case "nvfix":
		return NVFIX, nil
	}
	return 0, fmt.Errorf("filter: message type %q cannot be parsed by the filter engine (supported: json, fix, nvfix)", name)
}

// String returns the message type's name, e.g. "nvfix".
func (m MessageType) String() string {
	switch m {
	case JSON:
		return "json"
	case FIX:
		return "fix"
	case NVFIX:
		return "nvfix"
	}
	return fmt.Sprintf("MessageType(%d)", uint8(m))
}

// ErrNoSteps is returned by NewExtractor for a path with no steps.
var ErrNoSteps = errors.New("filter: a field path needs at least one step")

// Extractor pulls the values of a fixed set of paths out of message bodies
// of one message type. It is compiled once (NewExtractor) from the union of
// the paths that the filters on a topic name, so a published message is
// scanned once however many filters meet it. Extract reads a body only as
// far as needed: it stops as soon as every requested path is complete.
//
// An Extractor is immutable after NewExtractor and safe for concurrent use;
// each goroutine extracts into its own Fields.
type Extractor struct {
	mt    MessageType
	nodes []node // nodes[0] is the root (the top-level object / the field list)
	slots int    // number of distinct paths
	// kvNeed is the number of single-step paths: what a FIX/NVFIX scan
	// looks for before it stops.
	kvNeed int
	paths  [][]string
}

// node is one step of the trie of requested paths.
type node struct {
	name  string
	slot  int32 // index of the path that ends here, or -1
	kids  []int32
	index map[string]int32 // built when kids is long; else a linear search
	// lens and firsts are quick filters over the children's names: bit
	// min(len, 63) of lens, and bit c of firsts for each first byte c. Most
	// member names of a message are rejected by them without a comparison.
	lens   uint64
	firsts [4]uint64
}

// indexFrom is the number of children from which a map replaces the linear
// search of a node's children.
const indexFrom = 12

// NewExtractor compiles an extractor for the paths, each a slice of steps
// (["legs", "px"] for /legs/px, ["55"] for the FIX tag /55), over bodies of
// message type mt ("json", "fix" or "nvfix"). A path given twice shares one
// slot. The slot of path i is Slot(paths[i]).
//
// For FIX and NVFIX a path is a single step, the tag or name; a path of
// several steps names no field of such a message and always yields Missing.
func NewExtractor(mt string, paths [][]string) (*Extractor, error) {
	t, err := ParseMessageType(mt)
	if err != nil {
		return nil, err
	}
	x := &Extractor{mt: t, nodes: []node{{slot: -1}}}
	for _, p := range paths {
		if len(p) == 0 {
			return nil, ErrNoSteps
		}
		n := int32(0)
		for j, step := range p {
			if step == "" {
				return nil, fmt.Errorf("filter: path /%s has an empty step at position %d", strings.Join(p, "/"), j+1)
			}
			n = x.child(n, step)
		}
		if x.nodes[n].slot < 0 {
			x.nodes[n].slot = int32(x.slots)
			x.slots++
			x.paths = append(x.paths, append([]string(nil), p...))
		}
	}
	for _, k := range x.nodes[0].kids {
		if x.nodes[k].slot >= 0 {
			x.kvNeed++
		}
	}
	for i := range x.nodes {
		nd := &x.nodes[i]
		for _, k := range nd.kids {
			name := x.nodes[k].name
			nd.lens |= 1 << min(len(name), 63)
			nd.firsts[name[0]>>6] |= 1 << (name[0] & 63)
		}
		if len(nd.kids) >= indexFrom {
			nd.index = make(map[string]int32, len(nd.kids))
			for _, k := range nd.kids {
				nd.index[x.nodes[k].name] = k
			}
		}
	}
	return x, nil
}

// child returns the child of n named step, adding it if needed.
func (x *Extractor) child(n int32, step string) int32 {
	for _, k := range x.nodes[n].kids {
		if x.nodes[k].name == step {
			return k
		}
	}
	k := int32(len(x.nodes))
	x.nodes = append(x.nodes, node{name: step, slot: -1})
	x.nodes[n].kids = append(x.nodes[n].kids, k)
	return k
}

// lookup returns the child of n whose name is key, or -1.
func (x *Extractor) lookup(n int32, key []byte) int32 {
	nd := &x.nodes[n]
	if len(key) == 0 || nd.lens&(1<<min(len(key), 63)) == 0 || nd.firsts[key[0]>>6]&(1<<(key[0]&63)) == 0 {
		return -1
	}
	if nd.index != nil {
		if k, ok := nd.index[string(key)]; ok {
			return k
		}
		return -1
	}
	for _, k := range nd.kids {
		if string(key) == x.nodes[k].name {
			return k
		}
	}
	return -1
}

// MessageType returns the message type the extractor reads.
func (x *Extractor) MessageType() MessageType { return x.mt }

// Len returns the number of distinct paths (slots).
func (x *Extractor) Len() int { return x.slots }

// Slot returns the slot of a path given to NewExtractor, and false for a
// path that was not given.
func (x *Extractor) Slot(path []string) (int, bool) {
	if len(path) == 0 {
		return 0, false
	}
	n := int32(0)
	for _, step := range path {
		n = x.lookup(n, []byte(step))
		if n < 0 {
			return 0, false
		}
	}
	if s := x.nodes[n].slot; s >= 0 {
		return int(s), true
	}
	return 0, false
}

// Path returns the steps of the path in slot i.
func (x *Extractor) Path(i int) []string { return x.paths[i] }

// NewFields returns a result to Extract into, sized for this extractor.
// Reusing it for every message keeps extraction free of allocations once
// its buffers have grown to the size the messages need.
func (x *Extractor) NewFields() *Fields {
	return &Fields{
		fields: make([]Field, x.slots),
		seen:   make([]uint32, len(x.nodes)),
	}
}

// Extract scans body and fills f (from NewFields of this extractor) with
// the values of every requested path. It never fails and never panics: a
// truncated or malformed body yields the values found before the damage,
// the other paths are Missing, and f.Malformed reports it. Content after
// the point where every path is complete is not looked at, so damage there
// goes unnoticed (as in AMPS).
func (x *Extractor) Extract(body []byte, f *Fields) {
	if len(f.fields) != x.slots || len(f.seen) != len(x.nodes) {
		// Fields from another extractor: resize rather than misbehave.
		f.fields = make([]Field, x.slots)
		f.seen = make([]uint32, len(x.nodes))
	}
	for i := range f.fields {
		f.fields[i].Values = f.fields[i].Values[:0]
		f.fields[i].Array = false
	}
	f.malformed = false
	f.scratch = f.scratch[:0]
	if x.mt == JSON {
		x.extractJSON(body, f)
	} else {
		x.extractKV(body, f)
	}
}

// Fields holds the result of one Extract: one Field per slot of the
// extractor, and whether the body was malformed. Reuse it across messages.
type Fields struct {
	fields    []Field
	malformed bool
	scratch   []byte   // decoded string values
	keybuf    []byte   // a decoded member name, for comparison only
	seen      []uint32 // per node: the object instance it was last seen in
	epoch     uint32   // the last object instance handed out
}

// Len returns the number of slots.
func (f *Fields) Len() int { return len(f.fields) }

// Field returns the field in slot i.
func (f *Fields) Field(i int) *Field { return &f.fields[i] }

// Malformed reports whether the scan met a truncated or malformed body
// before every requested path was complete.
func (f *Fields) Malformed() bool { return f.malformed }

// add appends a value to slot s.
func (f *Fields) add(s int32, v Value, inArray bool) {
	fl := &f.fields[s]
	fl.Values = append(fl.Values, v)
	if inArray {
		fl.Array = true
	}
}
