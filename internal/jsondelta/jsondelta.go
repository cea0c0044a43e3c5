// Package jsondelta merges a JSON delta into a stored JSON record (what a
// delta_publish does to a State of the World record) and computes the
// delta a delta subscriber is sent when a record changes. Both are pure
// functions over bytes; the broker decides when to call them.
//
// Both functions read their inputs with the small validating tokenizer in
// this file (no encoding/json), copy every key and value they keep byte
// for byte as it was written (numbers, string escapes and whitespace
// inside a copied value stay as they are) and add no whitespace of their
// own. Work is linear in the size of the inputs: each input is read once
// into a flat list of object members, members are matched by name through
// a hash table, and nesting deeper than MaxDepth is refused.
//
// Decisions that hold for both functions:
//
//   - Names and strings are compared by their decoded content, so "a" and
//     "\u0061" are the same name and the same value. Escapes are decoded as
//     package jsonstr does (a lone surrogate becomes U+FFFD); other bytes,
//     including invalid UTF-8, are compared as they are.
//   - Numbers are equal only when their text is equal: 1.0 and 1 differ,
//     and so do 1e2 and 100. AMPS gives no rule here; comparing text keeps
//     the diff exact (what the publisher wrote is what the subscriber
//     receives) and never calls two different values equal.
//   - Arrays are equal when they hold the same number of equal elements
//     in the same order; objects inside an array are equal when they hold
//     equal members (names and values) in the same order.
//   - A name repeated in one object: the first occurrence is the member,
//     as in AMPS. See Merge and Diff for what becomes of the later ones.
//   - Strings may hold any byte but the control characters below U+0020,
//     as encoding/json accepts; invalid UTF-8 is not refused.
package jsondelta

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"sync"

	"github.com/ampsbroker/ampsbroker/internal/jsonstr"
)

// MaxDepth is the deepest nesting of objects and arrays that Merge and
// Diff accept; the top-level object is at depth 1. A deeper input is
// refused with an error rather than read with unbounded recursion.
const MaxDepth = 512

// Error reports an input that is not a JSON object Merge or Diff can use.
type Error struct {
	Input  string // which argument: "stored", "delta", "old" or "new"
	Offset int    // byte offset in that input where the problem was found
	Msg    string // what is wrong
}

// Error returns e as "jsondelta: <input> <msg> at byte <offset>".
func (e *Error) Error() string {
	return fmt.Sprintf("jsondelta: %s %s at byte %d", e.Input, e.Msg, e.Offset)
}

// kind is the type of a JSON value.
type kind uint8

const (
	kindLiteral kind = iota // true, false or null
	kindNumber
	kindString
	kindArray
	kindObject
)

// member is one member of an object, as offsets into its document.
type member struct {
	name       []byte // the decoded name
	key0, key1 int    // the key as written, quotes included: data[key0:key1]
	v0, v1     int    // the value as written: data[v0:v1]
	kind       kind
	obj        int32 // for an object value: its index in doc.objs
	link       int32 // the matching member of the other document, or -1
	dup        bool  // a later occurrence of a name already in the object
}

// object is an object's members: doc.members[first : first+n].
type object struct {
	first, n int32
}

// doc is one parsed input: every object that is the top-level value or
// the value of an object member (objects inside arrays are validated but
// not recorded; arrays are only ever compared and copied whole).
type doc struct {
	data    []byte
	input   string
	members []member
	objs    []object
	stack   []member // members of the objects still open
	names   []byte   // decoded names that had escapes
}

// root is the index of the top-level object: objects are recorded as
// they close, so the outermost comes last.
func (d *doc) root() int32 { return int32(len(d.objs) - 1) }

// membersOf returns the members of object o, in document order.
func (d *doc) membersOf(o int32) []member {
	return d.members[d.objs[o].first:][:d.objs[o].n]
}

// appendKey appends member m's key as written and a colon, after a comma
// unless it is the first member written.
func (d *doc) appendKey(out []byte, first bool, m *member) []byte {
	if !first {
		out = append(out, ',')
	}
	out = append(out, d.data[m.key0:m.key1]...)
	return append(out, ':')
}

func (d *doc) errorf(off int, format string, args ...any) error {
	return &Error{Input: d.input, Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// errEnd reports data ending where more was expected.
func (d *doc) errEnd(what string) error {
	return d.errorf(len(d.data), "is not valid JSON: it ends where %s was expected", what)
}

// errAt reports an unexpected byte.
func (d *doc) errAt(i int, what string) error {
	return d.errorf(i, "is not valid JSON: expected %s, found %q", what, d.data[i])
}

// parse reads data, which must be exactly one JSON object with optional
// whitespace around it.
func (d *doc) parse(data []byte, input string) error {
	d.data, d.input = data, input
	d.members, d.objs, d.stack, d.names = d.members[:0], d.objs[:0], d.stack[:0], d.names[:0]
	i := skipSpace(data, 0)
	if i == len(data) {
		return d.errorf(i, "is not a JSON object: it is empty")
	}
	if data[i] != '{' {
		return d.errorf(i, "is not a JSON object: it starts with %q", data[i])
	}
	i, err := d.object(i, 1)
	if err != nil {
		return err
	}
	if i = skipSpace(data, i); i != len(data) {
		return d.errorf(i, "is not valid JSON: %q after the object", data[i])
	}
	return nil
}

// object reads the object that opens at data[i] and records it with its
// members; it returns the offset after it.
func (d *doc) object(i, depth int) (int, error) {
	if depth > MaxDepth {
		return 0, d.errorf(i, "nests objects and arrays deeper than %d", MaxDepth)
	}
	data := d.data
	base := len(d.stack)
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		i++
	} else {
		for {
			if i == len(data) {
				return 0, d.errEnd("a member name")
			}
			if data[i] != '"' {
				return 0, d.errAt(i, "'\"' to start a member name")
			}
			m := member{key0: i, link: -1, obj: -1}
			end, escaped, err := d.str(i)
			if err != nil {
				return 0, err
			}
			m.key1 = end
			m.name = data[i+1 : end-1]
			if escaped {
				start := len(d.names)
				d.names, _ = jsonstr.AppendUnescaped(d.names, m.name, false) // validated by str
				m.name = d.names[start:len(d.names):len(d.names)]
			}
			if i = skipSpace(data, end); i == len(data) {
				return 0, d.errEnd("':'")
			}
			if data[i] != ':' {
				return 0, d.errAt(i, "':' after a member name")
			}
			if i = skipSpace(data, i+1); i == len(data) {
				return 0, d.errEnd("a value")
			}
			m.v0 = i
			if data[i] == '{' {
				m.kind = kindObject
				if i, err = d.object(i, depth+1); err != nil {
					return 0, err
				}
				m.obj = int32(len(d.objs) - 1)
			} else if m.kind, i, err = d.value(i, depth+1); err != nil {
				return 0, err
			}
			m.v1 = i
			d.stack = append(d.stack, m)
			if i = skipSpace(data, i); i == len(data) {
				return 0, d.errEnd("',' or '}'")
			}
			if data[i] == ',' {
				i = skipSpace(data, i+1)
				continue
			}
			if data[i] != '}' {
				return 0, d.errAt(i, "',' or '}' after an object member")
			}
			i++
			break
		}
	}
	first := len(d.members)
	d.members = append(d.members, d.stack[base:]...)
	d.objs = append(d.objs, object{first: int32(first), n: int32(len(d.stack) - base)})
	d.stack = d.stack[:base]
	return i, nil
}

// value validates the value that starts at data[i] (i < len(data)) and
// returns its kind and the offset after it. Objects met here (inside
// arrays) are validated, not recorded.
func (d *doc) value(i, depth int) (kind, int, error) {
	data := d.data
	switch c := data[i]; {
	case c == '"':
		end, _, err := d.str(i)
		return kindString, end, err
	case c == '{' || c == '[':
		end, err := d.container(i, depth)
		if c == '{' {
			return kindObject, end, err
		}
		return kindArray, end, err
	case c == 't':
		return kindLiteral, i + 4, d.literal(i, "true")
	case c == 'f':
		return kindLiteral, i + 5, d.literal(i, "false")
	case c == 'n':
		return kindLiteral, i + 4, d.literal(i, "null")
	case c == '-' || '0' <= c && c <= '9':
		end, err := d.number(i)
		return kindNumber, end, err
	}
	return 0, 0, d.errAt(i, "a value")
}

// container validates the array or object that opens at data[i].
func (d *doc) container(i, depth int) (int, error) {
	if depth > MaxDepth {
		return 0, d.errorf(i, "nests objects and arrays deeper than %d", MaxDepth)
	}
	data := d.data
	isObj := data[i] == '{'
	closer, what := byte(']'), "',' or ']' after an array element"
	if isObj {
		closer, what = '}', "',' or '}' after an object member"
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == closer {
		return i + 1, nil
	}
	for {
		var err error
		if isObj {
			if i == len(data) {
				return 0, d.errEnd("a member name")
			}
			if data[i] != '"' {
				return 0, d.errAt(i, "'\"' to start a member name")
			}
			if i, _, err = d.str(i); err != nil {
				return 0, err
			}
			if i = skipSpace(data, i); i == len(data) {
				return 0, d.errEnd("':'")
			}
			if data[i] != ':' {
				return 0, d.errAt(i, "':' after a member name")
			}
			i = skipSpace(data, i+1)
		}
		if i == len(data) {
			return 0, d.errEnd("a value")
		}
		if _, i, err = d.value(i, depth+1); err != nil {
			return 0, err
		}
		if i = skipSpace(data, i); i == len(data) {
			return 0, d.errEnd(fmt.Sprintf("',' or '%c'", closer))
		}
		if data[i] == ',' {
			i = skipSpace(data, i+1)
			continue
		}
		if data[i] != closer {
			return 0, d.errAt(i, what)
		}
		return i + 1, nil
	}
}

// str validates the string that opens at data[i]; it returns the offset
// after its closing quote and whether it holds an escape.
func (d *doc) str(i int) (int, bool, error) {
	data := d.data
	escaped := false
	for j := i + 1; j < len(data); {
		switch c := data[j]; {
		case c == '"':
			return j + 1, escaped, nil
		case c == '\\':
			escaped = true
			if j+1 == len(data) {
				return 0, false, d.errEnd("an escape")
			}
			switch data[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if _, ok := jsonstr.Hex4(data, j+2); !ok {
					return 0, false, d.errorf(j, "is not valid JSON: \\u must be followed by four hex digits")
				}
				j += 6
			default:
				return 0, false, d.errorf(j, "is not valid JSON: unknown escape \\%c in a string", data[j+1])
			}
		case c < 0x20:
			return 0, false, d.errorf(j, "is not valid JSON: control character %q in a string", c)
		default:
			j++
		}
	}
	return 0, false, d.errEnd("the end of a string")
}

// literal checks that data[i:] starts with word.
func (d *doc) literal(i int, word string) error {
	for k := 0; k < len(word); k++ {
		if i+k == len(d.data) {
			return d.errEnd(word)
		}
		if d.data[i+k] != word[k] {
			return d.errorf(i+k, "is not valid JSON: expected %s, found %q", word, d.data[i+k])
		}
	}
	return nil
}

// number validates the number at data[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *doc) number(i int) (int, error) {
	data := d.data
	if data[i] == '-' {
		i++
	}
	digits := func(what string) error {
		if i == len(data) {
			return d.errEnd(what)
		}
		if data[i] < '0' || data[i] > '9' {
			return d.errAt(i, what)
		}
		for i < len(data) && '0' <= data[i] && data[i] <= '9' {
			i++
		}
		return nil
	}
	if i < len(data) && data[i] == '0' {
		i++
	} else if err := digits("a digit in a number"); err != nil {
		return 0, err
	}
	if i < len(data) && data[i] == '.' {
		i++
		if err := digits("a digit after a decimal point"); err != nil {
			return 0, err
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if err := digits("a digit in an exponent"); err != nil {
			return 0, err
		}
	}
	return i, nil
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// isAbsent reports whether a delta member's value counts as absent: AMPS
// ignores a field whose value is null or the empty string in a delta.
func (d *doc) isAbsent(m *member) bool {
	v := d.data[m.v0:m.v1]
	return string(v) == "null" || string(v) == `""`
}

// state is the scratch space of one call, pooled.
type state struct {
	a, b   doc
	slots  []int32
	sa, sb []byte // decoded strings being compared
	out    []byte
}

var statePool = sync.Pool{New: func() any { return new(state) }}

// maxPooled is the largest scratch slice kept for the next call, so one
// huge input does not pin its memory in the pool.
const maxPooled = 1 << 16

func getState() *state { return statePool.Get().(*state) }

func putState(s *state) {
	for _, d := range []*doc{&s.a, &s.b} {
		clear(d.members) // drop references to the caller's bytes
		d.data = nil
		if cap(d.members) > maxPooled {
			d.members = nil
		}
		if cap(d.stack) > maxPooled {
			d.stack = nil
		}
		if cap(d.names) > maxPooled {
			d.names = nil
		}
		if cap(d.objs) > maxPooled {
			d.objs = nil
		}
	}
	if cap(s.slots) > maxPooled {
		s.slots = nil
	}
	if cap(s.out) > maxPooled {
		s.out = nil
	}
	if cap(s.sa) > maxPooled || cap(s.sb) > maxPooled {
		s.sa, s.sb = nil, nil
	}
	statePool.Put(s)
}

var hashSeed = maphash.MakeSeed()

// smallPair is the largest total member count paired by direct
// comparison; above it pair builds a hash table, so work stays linear.
const smallPair = 16

// pair matches the members of object ao in s.a with those of bo in s.b
// by name. Afterwards, in each object, dup marks every later occurrence
// of a name; each first occurrence in B has link set to the first member
// of A with its name (or -1), and that member of A has link set back.
func (s *state) pair(ao, bo int32) {
	A, B := s.a.membersOf(ao), s.b.membersOf(bo)
	for i := range A {
		A[i].link, A[i].dup = -1, false
	}
	for j := range B {
		B[j].link, B[j].dup = -1, false
	}
	if len(A)+len(B) <= smallPair {
		for i := range A {
			for k := 0; k < i; k++ {
				if !A[k].dup && bytes.Equal(A[k].name, A[i].name) {
					A[i].dup = true
					break
				}
			}
		}
		for j := range B {
			for k := 0; k < j; k++ {
				if !B[k].dup && bytes.Equal(B[k].name, B[j].name) {
					B[j].dup = true
					break
				}
			}
			if B[j].dup {
				continue
			}
			for i := range A {
				if !A[i].dup && bytes.Equal(A[i].name, B[j].name) {
					A[i].link, B[j].link = int32(j), int32(i)
					break
				}
			}
		}
		return
	}
	// Open addressing with linear probing, at most half full; a slot
	// holds i+1 for A[i], -(j+1) for B[j], 0 when empty.
	size := 4
	for size < 2*(len(A)+len(B)) {
		size <<= 1
	}
	if cap(s.slots) < size {
		s.slots = make([]int32, size)
	}
	slots := s.slots[:size]
	clear(slots)
	mask := uint64(size - 1)
	// find returns the slot of name: the one holding it, or the empty
	// one where it goes.
	find := func(name []byte) int {
		h := maphash.Bytes(hashSeed, name) & mask
		for {
			e := slots[h]
			switch {
			case e == 0:
				return int(h)
			case e > 0 && bytes.Equal(A[e-1].name, name), e < 0 && bytes.Equal(B[-e-1].name, name):
				return int(h)
			}
			h = (h + 1) & mask
		}
	}
	for i := range A {
		h := find(A[i].name)
		if slots[h] != 0 {
			A[i].dup = true
		} else {
			slots[h] = int32(i + 1)
		}
	}
	for j := range B {
		h := find(B[j].name)
		switch e := slots[h]; {
		case e == 0:
			slots[h] = int32(-(j + 1))
		case e < 0 || A[e-1].link >= 0:
			B[j].dup = true
		default:
			A[e-1].link, B[j].link = int32(j), e-1
		}
	}
}

// equal reports whether the raw values a and b (both validated) are
// equal under the package's rules: the same tokens in the same order,
// strings compared decoded, numbers and literals compared as written,
// whitespace between tokens ignored.
func (s *state) equal(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	i, j := 0, 0
	for {
		i, j = skipSpace(a, i), skipSpace(b, j)
		if i == len(a) || j == len(b) {
			return i == len(a) && j == len(b)
		}
		ca, cb := a[i], b[j]
		switch ca {
		case '{', '}', '[', ']', ',', ':':
			if ca != cb {
				return false
			}
			i, j = i+1, j+1
		case '"':
			if cb != '"' {
				return false
			}
			ea, eb := stringEnd(a, i), stringEnd(b, j)
			ra, rb := a[i+1:ea-1], b[j+1:eb-1]
			if bytes.IndexByte(ra, '\\') >= 0 || bytes.IndexByte(rb, '\\') >= 0 {
				s.sa, _ = jsonstr.AppendUnescaped(s.sa[:0], ra, false)
				s.sb, _ = jsonstr.AppendUnescaped(s.sb[:0], rb, false)
				ra, rb = s.sa, s.sb
			}
			if !bytes.Equal(ra, rb) {
				return false
			}
			i, j = ea, eb
		default: // a number or a literal: up to the next delimiter
			ea, eb := tokenEnd(a, i), tokenEnd(b, j)
			if !bytes.Equal(a[i:ea], b[j:eb]) {
				return false
			}
			i, j = ea, eb
		}
	}
}

// stringEnd returns the offset after the closing quote of the validated
// string that opens at data[i].
func stringEnd(data []byte, i int) int {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(data)
}

// tokenEnd returns the end of the number or literal at data[i].
func tokenEnd(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r', ',', ']', '}', ':':
			return i
		}
		i++
	}
	return i
}
