package filter

import (
	"bytes"
	"math"
	"strconv"
	"unsafe"
)

// The evaluator's value model.
//
// A val is one scalar during evaluation: NULL, a signed integer, an
// unsigned integer above the int64 maximum, a float (which may be NaN), or
// a byte string. Booleans from the message behave as the integers 1 and 0
// in every context (arithmetic, comparison, and as text: CONCAT(/live) is
// "1") [I: AMPS documents that a boolean "behaves as 1 / 0"; we apply that
// everywhere rather than keep a separate boolean kind].
//
// A string keeps its bytes in s; its numeric reading is parsed when an
// operator asks for a number (nk says whether that was done: kNull = not
// yet, kStr = the text is not numeric, kInt/kUint/kFloat = the reading is
// in i/f). Literal strings are read at compile time. A number taken from a
// message keeps its source text in s, so that using it as text (LIKE,
// CONCAT) gives the text the message holds.
type val struct {
	k  vk
	nk vk // for kStr: state of the numeric reading (see above)
	i  int64
	f  float64
	s  []byte
}

type vk uint8

const (
	kNull  vk = iota // NULL: missing field, JSON null, "", empty array
	kInt             // i
	kUint            // uint64(i), only for values above math.MaxInt64
	kFloat           // f
	kStr             // s
)

var (
	nullVal  = val{}
	trueVal  = val{k: kInt, i: 1}
	falseVal = val{k: kInt, i: 0}
	nanVal   = val{k: kFloat, f: math.NaN()}
)

func intVal(i int64) val     { return val{k: kInt, i: i} }
func floatVal(f float64) val { return val{k: kFloat, f: f} }
func strVal(s []byte) val {
	if len(s) == 0 {
		// The empty string is NULL everywhere, whether it comes from a
		// message, a literal or a function result.
		return nullVal
	}
	return val{k: kStr, s: s}
}

func boolVal(b bool) val {
	if b {
		return trueVal
	}
	return falseVal
}

// fromValue converts a value extracted from a message.
func fromValue(v Value) val {
	switch v.Kind {
	case Int, Float:
		n := readNumber(v.Raw)
		if n.k == kStr || n.k == kNull {
			// Extractor guarantees numeric text; be safe anyway.
			return strVal(v.Raw)
		}
		n.s = v.Raw
		return n
	case String:
		return strVal(v.Raw)
	case Bool:
		if len(v.Raw) > 0 && v.Raw[0] == 't' {
			return trueVal
		}
		return falseVal
	}
	return nullVal
}

// readNumber parses b as a numeric literal: an optional '-', then digits
// with an optional '.' and fraction (or '.' and digits), then an optional
// exponent. Integers are int64, or uint64 above the int64 maximum, or a
// float when even uint64 cannot hold them. Anything else (a '+' sign,
// spaces, "0x10", "1,000", "NaN", "inf") is not numeric: the result has
// kind kStr. This is the "same lexical forms as literals" rule; leading
// and trailing whitespace are not accepted [I].
func readNumber(b []byte) val {
	n := len(b)
	// Fast path: a short run of digits, optionally negative, which cannot
	// overflow an int64.
	if n > 0 && n <= 18 {
		j, neg := 0, false
		if b[0] == '-' {
			j, neg = 1, true
		}
		var x int64
		for ; j < n && isDigit(b[j]); j++ {
			x = x*10 + int64(b[j]-'0')
		}
		if j == n && (!neg || n > 1) {
			if neg {
				x = -x
			}
			return intVal(x)
		}
	}
	i := 0
	if i < n && b[i] == '-' {
		i++
	}
	ds := i
	for i < n && isDigit(b[i]) {
		i++
	}
	intDigits := i - ds
	isFloat := false
	if i < n && b[i] == '.' {
		isFloat = true
		i++
		fs := i
		for i < n && isDigit(b[i]) {
			i++
		}
		if intDigits == 0 && i == fs {
			return val{k: kStr}
		}
	} else if intDigits == 0 {
		return val{k: kStr}
	}
	if i < n && (b[i] == 'e' || b[i] == 'E') {
		isFloat = true
		i++
		if i < n && (b[i] == '+' || b[i] == '-') {
			i++
		}
		es := i
		for i < n && isDigit(b[i]) {
			i++
		}
		if i == es {
			return val{k: kStr}
		}
	}
	if i != n {
		return val{k: kStr}
	}
	// The bytes are only read during the call: ParseInt/ParseFloat copy
	// the text they keep for an error.
	s := unsafe.String(unsafe.SliceData(b), len(b))
	if !isFloat {
		if v, err := strconv.ParseInt(s, 10, 64); err == nil {
			return intVal(v)
		}
		if b[0] != '-' {
			if u, err := strconv.ParseUint(s, 10, 64); err == nil {
				return val{k: kUint, i: int64(u)}
			}
		}
	}
	f, _ := strconv.ParseFloat(s, 64) // out of range gives ±Inf, as a double would
	return floatVal(f)
}

// num returns the numeric reading of v: v itself for a number, the parsed
// reading of a string (NaN when the string is not numeric), NULL for NULL.
func (v val) num() val {
	if v.k != kStr {
		return v
	}
	r := v.reading()
	if r.k == kStr {
		return nanVal
	}
	return r
}

// reading returns the numeric reading of a string value (kind kStr when it
// is not numeric), parsing it once.
func (v *val) reading() val {
	if v.nk == kNull {
		r := readNumber(v.s)
		v.nk = r.k
		v.i, v.f = r.i, r.f
	}
	return val{k: v.nk, i: v.i, f: v.f}
}

func (v *val) isNaN() bool { return v.k == kFloat && v.f != v.f }

// asFloat is the value of a number as a double.
func (v *val) asFloat() float64 {
	switch v.k {
	case kInt:
		return float64(v.i)
	case kUint:
		return float64(uint64(v.i))
	}
	return v.f
}

// numCmp orders two numbers (kinds kInt, kUint, kFloat); ok is false when
// either is NaN. An integer against a float compares as floats (2 = 2.0);
// two integers compare exactly, signed against unsigned included.
func numCmp(a, b val) (int, bool) {
	if a.k == kFloat || b.k == kFloat {
		x, y := a.asFloat(), b.asFloat()
		switch {
		case x < y:
			return -1, true
		case x > y:
			return 1, true
		case x == y:
			return 0, true
		}
		return 0, false // NaN
	}
	if a.k == b.k {
		if a.k == kUint {
			return cmp3u(uint64(a.i), uint64(b.i)), true
		}
		return cmp3(a.i, b.i), true
	}
	// One is kInt, the other kUint (above every int64).
	if a.k == kUint {
		return 1, true
	}
	return -1, true
}

func cmp3(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmp3u(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compare orders a and b under the comparison rules; ok is false when the
// comparison is FALSE whatever the operator:
//   - a NULL on either side makes every comparison FALSE, = and != included
//     (a comparison never yields NULL [I, §10 item 1: we read the docs'
//     "never true" as FALSE, so `/nosuch = 1 OR /id = 7` matches]);
//   - a NaN on either side makes every comparison FALSE, != included
//     [I, §10 item 2];
//   - two strings compare byte by byte, with no numeric conversion;
//   - a number and a string: the string's numeric reading when it has one,
//     else the string is greater than any number.
func compare(a, b *val) (int, bool) {
	if a.k == kNull || b.k == kNull {
		return 0, false
	}
	if a.isNaN() || b.isNaN() {
		return 0, false
	}
	if a.k == kStr && b.k == kStr {
		return bytes.Compare(a.s, b.s), true
	}
	x, y := *a, *b
	if a.k == kStr {
		r := a.reading()
		if r.k == kStr {
			return 1, true
		}
		x = r
	}
	if b.k == kStr {
		r := b.reading()
		if r.k == kStr {
			return -1, true
		}
		y = r
	}
	return numCmp(x, y)
}

// cmpOp applies a comparison operator to the result of compare.
func cmpOp(op Op, c int) bool {
	switch op {
	case OpEq:
		return c == 0
	case OpNe:
		return c != 0
	case OpLt:
		return c < 0
	case OpLe:
		return c <= 0
	case OpGt:
		return c > 0
	case OpGe:
		return c >= 0
	}
	return false
}

// smallInts spells 0..9 without a buffer.
var smallInts = [10][]byte{
	[]byte("0"), []byte("1"), []byte("2"), []byte("3"), []byte("4"),
	[]byte("5"), []byte("6"), []byte("7"), []byte("8"), []byte("9"),
}

// text returns v as text: a string's bytes, a number's source text when it
// came from a message, else the number formatted into the scratch buffer
// (integers in decimal, floats in the shortest form that reads back,
// NaN as "NaN"). NULL gives nil.
func (c *ctx) text(v *val) []byte {
	if v.k == kNull {
		return nil
	}
	if v.s != nil {
		return v.s
	}
	if v.k == kInt && v.i >= 0 && v.i < 10 {
		return smallInts[v.i]
	}
	if c == nil {
		// Compile gives a scratch context to every filter that may turn a
		// computed number into text, so this is only a safety net.
		c = &ctx{}
	}
	start := len(c.buf)
	c.buf = appendNum(c.buf, v)
	return c.buf[start:len(c.buf):len(c.buf)]
}

// appendText appends v as text (see text) to dst.
func appendText(dst []byte, v *val) []byte {
	if v.k == kNull {
		return dst
	}
	if v.s != nil {
		return append(dst, v.s...)
	}
	return appendNum(dst, v)
}

func appendNum(dst []byte, v *val) []byte {
	switch v.k {
	case kInt:
		return strconv.AppendInt(dst, v.i, 10)
	case kUint:
		return strconv.AppendUint(dst, uint64(v.i), 10)
	case kFloat:
		return strconv.AppendFloat(dst, v.f, 'g', -1, 64)
	}
	return dst
}
