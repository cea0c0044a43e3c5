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
	// stBad: the body is truncated or malformed.
	stBad
)

// jscan is the state of one JSON extraction. It reads the body once, left
// to right, descending only into members on a requested path and skipping
// everything else with a cheap bracket-and-string scan that does not
// validate what it skips (AMPS does not validate beyond what it parses).
//
// The cursor is not part of the state: every method takes it as an
// argument and returns where it got to, so it lives in a register.
type jscan struct {
	b    []byte
	open int // containers left open by a stDone result
	x    *Extractor
	f    *Fields
}

func (x *Extractor) extractJSON(body []byte, f *Fields) {
	if len(x.nodes[0].kids) == 0 {
		return
	}
	s := jscan{b: body, x: x, f: f}
	i := skipWS(body, 0)
	if i >= len(body) || body[i] != '{' {
		// A JSON message is an object; anything else holds no fields.
		f.malformed = true
		return
	}
	i, st := s.object(i+1, 0, false)
	switch st {
	case stBad:
		f.malformed = true
	case stEnd:
		if skipWS(body, i) != len(body) {
			f.malformed = true // content after the top-level object
		}
	}
}

// skipWS returns the index of the first byte at or after i that is not
// JSON whitespace (space, tab, newline, carriage return).
func skipWS(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// Word-at-a-time ("SWAR") byte search: 8 bytes of the body are loaded as
// one little-endian uint64, so the lowest byte is the first in the body.
const (
	lsbs = 0x0101010101010101
	msbs = 0x8080808080808080
)

// strEnd returns the index of the quote that closes the string whose
// content starts at i, or -1 when the body ends first, and whether the
// string holds a backslash (an escape). A backslash escapes the byte after
// it, so a quote preceded by an odd number of backslashes is content.
//
// A string without escapes, the common long case (text, padding, encoded
// blobs), is found with the runtime's vectorised bytes.IndexByte, tens of
// bytes per cycle where a byte loop does about one: the next quote, then
// whether a backslash comes before it. A string with escapes is walked
// byte by byte, which is cheaper than a search per escape.
func strEnd(b []byte, i int) (int, bool) {
	if i < len(b) {
		if q := bytes.IndexByte(b[i:], '"'); q >= 0 && bytes.IndexByte(b[i:i+q], '\\') < 0 {
			return i + q, false
		}
	}
	esc := false
	for {
		for i < len(b) && b[i] != '"' && b[i] != '\\' {
			i++
		}
		if i >= len(b) {
			return -1, esc
		}
		if b[i] == '"' {
			return i, esc
		}
		esc = true
		i += 2 // the backslash and the byte it escapes
	}
}

// byteEnd is the inlined fast path of strEnd: the index of the quote
// that closes the string whose content starts at i, or -1 when a
// backslash, the end of the body or the end of its first shortRun bytes
// comes first (then strEnd decides). It is a plain byte loop: it runs
// ahead of its exit on branch prediction, which suits the short strings
// (member names, codes) that most messages are made of.
func byteEnd(b []byte, i int) int {
	n := min(len(b), i+shortRun)
	for i < n && b[i] != '"' && b[i] != '\\' {
		i++
	}
	if i < n && b[i] == '"' {
		return i
	}
	return -1
}

// shortRun is how many bytes of a string byteEnd looks at one by one
// before leaving the rest to strEnd.
const shortRun = 32

// skipOpen returns the index just after the end of depth open containers
// that start at i, minding strings (which may hold brackets) but
// otherwise not validating (a '}' may close a '[').
func skipOpen(b []byte, i, depth int) (int, bool) {
	for i < len(b) {
		switch skipClass[b[i]] {
		case 0:
			i++
		case '"':
			end := byteEnd(b, i+1)
			if end < 0 {
				if end, _ = strEnd(b, i+1); end < 0 {
					return len(b), false
				}
			}
			i = end + 1
		case '[':
			depth++
			i++
		default: // ']'
			depth--
			i++
			if depth == 0 {
				return i, true
			}
		}
	}
	return len(b), false
}

// skipClass sorts the bytes for skipOpen: '"' starts a string, '[' is '['
// or '{', ']' is ']' or '}', 0 is any other byte.
var skipClass = [256]byte{'"': '"', '[': '[', '{': '[', ']': ']', '}': ']'}

// skipValue returns the index after the value at i, of a member that no
// path asks for. A container is skipped without validating its content; a
// scalar is checked as when it is read.
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch b[i] {
	case '"':
		end := byteEnd(b, i+1)
		if end < 0 {
			if end, _ = strEnd(b, i+1); end < 0 {
				return len(b), false
			}
		}
		return end + 1, true
	case '{', '[':
		return skipOpen(b, i+1, 1)
	case 't':
		return literalEnd(b, i, "true")
	case 'f':
		return literalEnd(b, i, "false")
	case 'n':
		return literalEnd(b, i, "null")
	}
	end, _ := numberEnd(b, i)
	return end, end >= 0
}

// literalEnd returns the index after the literal word at i.
func literalEnd(b []byte, i int, word string) (int, bool) {
	end := i + len(word)
	if end > len(b) || string(b[i:end]) != word {
		return i, false
	}
	return end, true
}

// numberEnd returns the index after the number at i and its kind, or -1
// when no valid number starts at i. A number is
// -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?; it is Int without a
// fraction and an exponent, else Float.
func numberEnd(b []byte, i int) (int, Kind) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return -1, Missing
	}
	k := Int
	if i < len(b) && b[i] == '.' {
		k = Float
		j := digits(b, i+1)
		if j == i+1 {
			return -1, Missing
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
			return -1, Missing
		}
		i = j
	}
	return i, k
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
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

// mayHave is a quick filter for lookup: false means no child of nd is
// named key. Most member names of a message are rejected here, by their
// length and first byte, without a comparison.
func (nd *node) mayHave(key []byte) bool {
	return len(key) > 0 && nd.lens&(1<<min(len(key), 63)) != 0 && nd.firsts[key[0]>>6]&(1<<(key[0]&63)) != 0
}

// object reads the members of an object whose '{' ends before i and whose
// node in the path trie is n. inArray tells whether an array lies on the
// way here: then members may collect more values from later elements, so
// the object is never complete before it ends.
func (s *jscan) object(i int, n int32, inArray bool) (int, int) {
	b, f, x := s.b, s.f, s.x
	nd := &x.nodes[n]
	id := f.nextObj()
	pending := len(nd.kids)
	i = skipWS(b, i)
	if i < len(b) && b[i] == '}' {
		return i + 1, stEnd
	}
	for {
		// A member: "name" : value
		if i >= len(b) || b[i] != '"' {
			return i, stBad
		}
		end, esc := byteEnd(b, i+1), false
		if end < 0 {
			if end, esc = strEnd(b, i+1); end < 0 {
				return i, stBad
			}
		}
		key := b[i+1 : end]
		i = skipWS(b, end+1)
		if i >= len(b) || b[i] != ':' {
			return i, stBad
		}
		i = skipWS(b, i+1)
		c := int32(-1)
		if esc {
			// An escaped name is compared decoded ("s\u0079m" is sym).
			var ok bool
			if f.keybuf, ok = jsonstr.AppendUnescaped(f.keybuf[:0], key, false); !ok {
				return i, stBad
			}
			c = x.lookup(n, f.keybuf)
		} else if nd.mayHave(key) {
			c = x.lookup(n, key)
		}
		if c < 0 || f.seen[c] == id {
			// The value of a member no path asks for; a short string
			// (the most common value) is skipped right here.
			if end := -1; i < len(b) && b[i] == '"' {
				end = byteEnd(b, i+1)
				if end >= 0 {
					i = end + 1
					goto next
				}
			}
			var ok bool
			if i, ok = skipValue(b, i); !ok {
				return i, stBad
			}
		} else {
			f.seen[c] = id
			var st int
			i, st = s.value(i, c, inArray)
			if st == stBad {
				return i, stBad
			}
			if !inArray {
				// Outside arrays a member is complete once its first
				// occurrence has been read (later duplicates are ignored).
				pending--
				if pending == 0 {
					s.open++
					return i, stDone
				}
			}
			if st == stDone {
				var ok bool
				if i, ok = skipOpen(b, i, s.open); !ok {
					return i, stBad
				}
				s.open = 0
			}
		}
	next:
		i = skipWS(b, i)
		if i >= len(b) {
			return i, stBad
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return i + 1, stEnd
		default:
			return i, stBad
		}
	}
}

// value reads the value at i of a member whose trie node is c.
func (s *jscan) value(i int, c int32, inArray bool) (int, int) {
	b := s.b
	nd := &s.x.nodes[c]
	if i >= len(b) {
		return i, stBad
	}
	switch b[i] {
	case '{':
		if len(nd.kids) == 0 {
			// An object has no value of its own (/meta over
			// {"meta":{...}} yields nothing, i.e. NULL).
			i, ok := skipOpen(b, i+1, 1)
			if !ok {
				return i, stBad
			}
			return i, stEnd
		}
		return s.object(i+1, c, inArray)
	case '[':
		return s.array(i+1, c)
	}
	if nd.slot < 0 {
		i, ok := skipValue(b, i)
		if !ok {
			return i, stBad
		}
		return i, stEnd
	}
	v, i, ok := s.scalar(i)
	if !ok {
		return i, stBad
	}
	s.f.add(nd.slot, v, inArray)
	return i, stEnd
}

// array reads an array whose '[' ends before i, at trie node c: scalar
// elements are values of c's path, object elements contribute their
// members to the deeper paths below c, in document order.
//
// Nested arrays are flattened in document order: [[1,2],[3]] yields 1, 2, 3
// [I]: AMPS does not document nested arrays (semantics spec §10 item 5).
// An object element adds no value to c's own path, so a subscript counts
// only scalar elements [I].
func (s *jscan) array(i int, c int32) (int, int) {
	b := s.b
	nd := &s.x.nodes[c]
	if nd.slot >= 0 {
		s.f.fields[nd.slot].Array = true
	}
	depth := 1
	i = skipWS(b, i)
	if i < len(b) && b[i] == ']' {
		return i + 1, stEnd
	}
	for {
		// A value (or the opening of a nested array) is expected here.
		i = skipWS(b, i)
		if i >= len(b) {
			return i, stBad
		}
		switch b[i] {
		case '[':
			depth++
			i = skipWS(b, i+1)
			if i >= len(b) || b[i] != ']' {
				continue
			}
			i++
			depth--
		case '{':
			var ok bool
			if len(nd.kids) == 0 {
				if i, ok = skipOpen(b, i+1, 1); !ok {
					return i, stBad
				}
			} else {
				var st int
				if i, st = s.object(i+1, c, true); st == stBad {
					return i, stBad
				}
			}
		default:
			var ok bool
			if nd.slot < 0 {
				if i, ok = skipValue(b, i); !ok {
					return i, stBad
				}
				break
			}
			var v Value
			if v, i, ok = s.scalar(i); !ok {
				return i, stBad
			}
			s.f.add(nd.slot, v, true)
		}
		// After a value: a comma, or the ends of arrays.
		for {
			i = skipWS(b, i)
			if i < len(b) && b[i] == ',' {
				i++
				break
			}
			if i >= len(b) || b[i] != ']' {
				return i, stBad
			}
			i++
			depth--
			if depth == 0 {
				return i, stEnd
			}
		}
	}
}

// scalar reads the string, number, true, false or null at i.
func (s *jscan) scalar(i int) (Value, int, bool) {
	b := s.b
	if i >= len(b) {
		return Value{}, i, false
	}
	switch b[i] {
	case '"':
		end, esc := strEnd(b, i+1)
		if end < 0 {
			return Value{}, i, false
		}
		raw := b[i+1 : end : end]
		i = end + 1
		if len(raw) == 0 {
			return Value{Kind: Null}, i, true // "" is NULL
		}
		if esc {
			// JSON escapes are decoded only for requested values.
			from := len(s.f.scratch)
			var ok bool
			s.f.scratch, ok = jsonstr.AppendUnescaped(s.f.scratch, raw, false)
			if !ok {
				return Value{}, i, false
			}
			raw = s.f.scratch[from:len(s.f.scratch):len(s.f.scratch)]
			if len(raw) == 0 {
				return Value{Kind: Null}, i, true
			}
		}
		return Value{Kind: String, Raw: raw}, i, true
	case 't':
		return literal(b, i, "true", Bool)
	case 'f':
		return literal(b, i, "false", Bool)
	case 'n':
		return literal(b, i, "null", Null)
	}
	// A number: the text is kept; its reading as int64 (uint64 above the
	// signed maximum) or double is the evaluator's work.
	end, k := numberEnd(b, i)
	if end < 0 {
		return Value{}, i, false
	}
	return Value{Kind: k, Raw: b[i:end:end]}, end, true
}

func literal(b []byte, i int, word string, k Kind) (Value, int, bool) {
	end, ok := literalEnd(b, i, word)
	if !ok {
		return Value{}, i, false
	}
	return Value{Kind: k, Raw: b[i:end:end]}, end, true
}
