package filter

import (
	"bytes"

	"github.com/ampsbroker/ampsbroker/internal/jsonstr"
)

// Results of scanning one JSON value or object.
const (
	// stEnd: the value was read to its end.
	stEnd = iota
	// stDone: every requested member of the object is complete; the rest of
	// the object was not read (jscan.open counts the containers left open).
	stDone
	// stBad: the body is truncated or malformed at jscan.i.
	stBad
)

// jscan is the state of one JSON extraction. It reads the body once, left
// to right, descending only into members on a requested path and skipping
// everything else with a cheap bracket-and-string scan that does not
// validate what it skips (AMPS does not validate beyond what it parses).
type jscan struct {
	b    []byte
	i    int
	open int // containers left open by a stDone result
	x    *Extractor
	f    *Fields
}

func (x *Extractor) extractJSON(body []byte, f *Fields) {
	if len(x.nodes[0].kids) == 0 {
		return
	}
	s := jscan{b: body, x: x, f: f}
	s.ws()
	if s.peek() != '{' {
		// A JSON message is an object; anything else holds no fields.
		f.malformed = true
		return
	}
	s.i++
	switch s.object(0, false) {
	case stBad:
		f.malformed = true
	case stEnd:
		s.ws()
		if s.i != len(s.b) {
			f.malformed = true // content after the top-level object
		}
	}
}

// peek returns the byte at the cursor, or 0 at the end of the body (0 is
// never valid where peek is used, so the callers report the truncation).
func (s *jscan) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *jscan) ws() {
	if s.i < len(s.b) && s.b[s.i] > ' ' {
		return // the common case: no whitespace
	}
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// nextObj returns a fresh identity for an object instance. A member name
// counts once per object instance: the first occurrence of a duplicate name
// wins (AMPS's default JSON setting), and every element of an array of
// objects is a new instance.
func (f *Fields) nextObj() uint32 {
	f.epoch++
	if f.epoch == 0 {
		clear(f.seen)
		f.epoch = 1
	}
	return f.epoch
}

// object reads the members of an object (its '{' already consumed) whose
// node in the path trie is n. inArray tells whether an array lies on the
// way here: then members may collect more values from later elements, so
// the object is never complete before it ends.
func (s *jscan) object(n int32, inArray bool) int {
	id := s.f.nextObj()
	pending := len(s.x.nodes[n].kids)
	s.ws()
	if s.peek() == '}' {
		s.i++
		return stEnd
	}
	for {
		if s.peek() != '"' {
			return stBad
		}
		s.i++
		key, ok := s.key()
		if !ok {
			return stBad
		}
		s.ws()
		if s.peek() != ':' {
			return stBad
		}
		s.i++
		c := s.x.lookup(n, key)
		if c < 0 || s.f.seen[c] == id {
			if !s.skipValue() {
				return stBad
			}
		} else {
			s.f.seen[c] = id
			st := s.value(c, inArray)
			if st == stBad {
				return stBad
			}
			if !inArray {
				// Outside arrays a member is complete once its first
				// occurrence has been read (later duplicates are ignored).
				pending--
				if pending == 0 {
					s.open++
					return stDone
				}
			}
			if st == stDone {
				if !s.skipOpen(s.open) {
					return stBad
				}
				s.open = 0
			}
		}
		s.ws()
		switch s.peek() {
		case ',':
			s.i++
			s.ws()
		case '}':
			s.i++
			return stEnd
		default:
			return stBad
		}
	}
}

// value reads the value of a member whose trie node is c.
func (s *jscan) value(c int32, inArray bool) int {
	nd := &s.x.nodes[c]
	s.ws()
	switch s.peek() {
	case '{':
		s.i++
		if len(nd.kids) == 0 {
			// An object has no value of its own (/meta over
			// {"meta":{...}} yields nothing, i.e. NULL).
			if !s.skipOpen(1) {
				return stBad
			}
			return stEnd
		}
		return s.object(c, inArray)
	case '[':
		s.i++
		return s.array(c)
	}
	v, ok := s.scalar(nd.slot >= 0)
	if !ok {
		return stBad
	}
	if nd.slot >= 0 {
		s.f.add(nd.slot, v, inArray)
	}
	return stEnd
}

// array reads an array (its '[' already consumed) at trie node c: scalar
// elements are values of c's path, object elements contribute their
// members to the deeper paths below c, in document order.
//
// Nested arrays are flattened in document order: [[1,2],[3]] yields 1, 2, 3
// [I]: AMPS does not document nested arrays (semantics spec §10 item 5).
// An object element adds no value to c's own path, so a subscript counts
// only scalar elements [I].
func (s *jscan) array(c int32) int {
	nd := &s.x.nodes[c]
	if nd.slot >= 0 {
		s.f.fields[nd.slot].Array = true
	}
	depth := 1
	s.ws()
	if s.peek() == ']' {
		s.i++
		return stEnd
	}
	for {
		// A value (or the opening of a nested array) is expected here.
		s.ws()
		switch s.peek() {
		case '[':
			s.i++
			depth++
			s.ws()
			if s.peek() != ']' {
				continue
			}
			s.i++
			depth--
		case '{':
			s.i++
			if len(nd.kids) == 0 {
				if !s.skipOpen(1) {
					return stBad
				}
			} else if s.object(c, true) == stBad {
				return stBad
			}
		default:
			v, ok := s.scalar(nd.slot >= 0)
			if !ok {
				return stBad
			}
			if nd.slot >= 0 {
				s.f.add(nd.slot, v, true)
			}
		}
		// After a value: a comma, or the ends of arrays.
		for {
			s.ws()
			if s.peek() == ',' {
				s.i++
				break
			}
			if s.peek() != ']' {
				return stBad
			}
			s.i++
			depth--
			if depth == 0 {
				return stEnd
			}
		}
	}
}

// skipValue skips one value of a member that no path asks for.
func (s *jscan) skipValue() bool {
	s.ws()
	switch s.peek() {
	case '{', '[':
		s.i++
		return s.skipOpen(1)
	}
	_, ok := s.scalar(false)
	return ok
}

// skipOpen skips to the end of depth open containers, minding strings
// (which may hold brackets) but otherwise not validating.
func (s *jscan) skipOpen(depth int) bool {
	b := s.b
	for i := s.i; i < len(b); i++ {
		switch b[i] {
		case '"':
			s.i = i + 1
			end, _, ok := s.strEnd()
			if !ok {
				return false
			}
			i = end
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				s.i = i + 1
				return true
			}
		}
	}
	s.i = len(b)
	return depth == 0
}

// strEnd returns the index of the quote that closes the string whose
// content starts at the cursor, and whether the string may hold escapes.
// Short strings are scanned byte by byte; then a quote is found with
// bytes.IndexByte and is escaped when an odd number of backslashes
// precedes it.
func (s *jscan) strEnd() (end int, esc bool, ok bool) {
	b := s.b
	i := s.i
	for n := min(len(b), i+16); i < n; i++ {
		switch b[i] {
		case '"':
			return i, esc, true
		case '\\':
			esc = true
			i++
		}
	}
	for {
		if i >= len(b) {
			return 0, false, false
		}
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return 0, false, false
		}
		k := i + j
		n := 0
		for p := k - 1; p >= s.i && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return k, true, true
		}
		i = k + 1
	}
}

// key reads a member name (its opening quote consumed) and returns it with
// escapes decoded, for comparison with the requested steps.
func (s *jscan) key() ([]byte, bool) {
	end, esc, ok := s.strEnd()
	if !ok {
		return nil, false
	}
	raw := s.b[s.i:end]
	s.i = end + 1
	if !esc || bytes.IndexByte(raw, '\\') < 0 {
		return raw, true
	}
	s.f.keybuf, ok = jsonstr.AppendUnescaped(s.f.keybuf[:0], raw, false)
	return s.f.keybuf, ok
}

// scalar reads a string, number, true, false or null at the cursor. With
// want false the value is only skipped (a string is not decoded).
func (s *jscan) scalar(want bool) (Value, bool) {
	b := s.b
	start := s.i
	switch s.peek() {
	case '"':
		s.i++
		end, esc, ok := s.strEnd()
		if !ok {
			return Value{}, false
		}
		raw := b[s.i:end]
		s.i = end + 1
		if !want {
			return Value{}, true
		}
		if len(raw) == 0 {
			return Value{Kind: Null}, true // "" is NULL
		}
		if esc && bytes.IndexByte(raw, '\\') >= 0 {
			// JSON escapes are decoded only for requested values.
			from := len(s.f.scratch)
			s.f.scratch, ok = jsonstr.AppendUnescaped(s.f.scratch, raw, false)
			if !ok {
				return Value{}, false
			}
			raw = s.f.scratch[from:len(s.f.scratch):len(s.f.scratch)]
			if len(raw) == 0 {
				return Value{Kind: Null}, true
			}
		}
		return Value{Kind: String, Raw: raw}, true
	case 't':
		return s.literal("true", Bool)
	case 'f':
		return s.literal("false", Bool)
	case 'n':
		return s.literal("null", Null)
	}
	// A number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?. The text is
	// kept; its reading as int64 (uint64 above the signed maximum) or
	// double is the evaluator's work.
	i := start
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return Value{}, false
	}
	k := Int
	if i < len(b) && b[i] == '.' {
		k = Float
		j := digits(b, i+1)
		if j == i+1 {
			return Value{}, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		k = Float
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return Value{}, false
		}
		i = j
	}
	s.i = i
	return Value{Kind: k, Raw: b[start:i:i]}, true
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

func (s *jscan) literal(word string, k Kind) (Value, bool) {
	end := s.i + len(word)
	if end > len(s.b) || string(s.b[s.i:end]) != word {
		return Value{}, false
	}
	v := Value{Kind: k, Raw: s.b[s.i:end:end]}
	s.i = end
	return v, true
}
