package filter

import (
	"bytes"
	"hash/crc32"
	"math"
	"regexp"
	"time"
	"unsafe"
)

// Functions. Every function except IF, COALESCE and ARRAY_COUNT takes the
// first value of an array argument (functions are not array-aware), and a
// function that reads text returns NULL when that text is NULL [I: the
// docs do not say; NULL in, NULL out is the SQL convention and keeps
// `UPPER(/nosuch) = ''` from matching]. Text results that are empty are
// NULL, like every empty string. Text is built in the evaluation's scratch
// buffer, so these functions do not allocate. The functions that build text
// (CONCAT, UPPER, LOWER, REVERSE, REPLACE, REGEXP_REPLACE, CHAR_VALUE) take
// what they build from the evaluation's text budget and give NULL when it
// would run out (see TextBudget): nesting them could otherwise double the
// text at every level.

// call builds a function call; the parser has already checked the name and
// the argument count.
func (b *builder) call(n *Call) valFn {
	// Each argument is built once (IF's condition as a predicate,
	// ARRAY_COUNT's by itself), so that nested calls cost linear build time.
	args := make([]valFn, len(n.Args))
	for i, a := range n.Args {
		if i == 0 && (n.Name == "IF" || n.Name == "ARRAY_COUNT") {
			continue
		}
		args[i] = b.val(a)
	}
	if !b.isConst(n) {
		switch n.Name {
		case "CONCAT", "UPPER", "LOWER", "REVERSE", "REPLACE", "CHAR_VALUE", "CRC32",
			"INSTR", "INSTR_I", "STREQUAL_I", "SUBSTR", "REGEXP_MATCH", "REGEXP_REPLACE",
			"TOPIC_NAME", "CLIENT_NAME", "AMPS_INSTANCE_NAME", "MESSAGE_SIZE":
			// They read their arguments as text (which a computed number
			// formats into the scratch buffer), build text, or read the Env.
			b.needCtx = true
		}
	}
	switch n.Name {
	case "IF":
		// IF(c, a, b) is a when c is TRUE, else b (FALSE, NULL and NaN
		// conditions choose b); only the chosen branch is evaluated.
		cond := b.pred(n.Args[0])
		a, e := args[1], args[2]
		return func(fs *Fields, c *ctx) val {
			if cond(fs, c) == tTrue {
				return a(fs, c)
			}
			return e(fs, c)
		}
	case "COALESCE":
		// The first argument that is not NULL (the empty string is NULL);
		// the rest are not evaluated. NaN is not NULL.
		return func(fs *Fields, c *ctx) val {
			for _, a := range args {
				if v := a(fs, c); v.k != kNull {
					return v
				}
			}
			return nullVal
		}
	case "CONCAT":
		// The arguments as text, one after the other; NULL arguments add
		// nothing [I].
		// The arguments are all evaluated before the result is written, so
		// that text which they build in the scratch buffer is not
		// interleaved with the result.
		return func(fs *Fields, c *ctx) val {
			var small [8]val
			vs := small[:0]
			if len(args) > len(small) {
				vs = make([]val, 0, len(args)) // a long CONCAT allocates
			}
			n := 0
			for _, a := range args {
				v := a(fs, c)
				n += textLen(&v)
				vs = append(vs, v)
			}
			if !c.reserve(n) {
				return nullVal
			}
			start := len(c.buf)
			for i := range vs {
				c.buf = appendText(c.buf, &vs[i])
			}
			return strVal(c.buf[start:len(c.buf):len(c.buf)])
		}
	case "UPPER":
		// ASCII case mapping only; other bytes are kept as they are (AMPS
		// is not Unicode-aware).
		return sameLength(args[0], func(dst, t []byte) []byte {
			for _, ch := range t {
				if 'a' <= ch && ch <= 'z' {
					ch -= 'a' - 'A'
				}
				dst = append(dst, ch)
			}
			return dst
		})
	case "LOWER":
		return sameLength(args[0], func(dst, t []byte) []byte {
			for _, ch := range t {
				dst = append(dst, lowerASCII(ch))
			}
			return dst
		})
	case "INSTR", "INSTR_I":
		// The 1-based position of the first occurrence of sub in s, 0 when
		// absent; INSTR_I ignores ASCII case.
		fold := n.Name == "INSTR_I"
		a, s := args[0], args[1]
		return func(fs *Fields, c *ctx) val {
			v, w := a(fs, c), s(fs, c)
			if v.k == kNull || w.k == kNull {
				return nullVal
			}
			hay, needle := c.text(&v), c.text(&w)
			var i int
			if fold {
				i = indexFold(c, hay, needle)
			} else {
				i = bytes.Index(hay, needle)
			}
			return intVal(int64(i + 1))
		}
	case "STREQUAL_I":
		// 1 when the texts are equal ignoring ASCII case, else 0.
		a, s := args[0], args[1]
		return func(fs *Fields, c *ctx) val {
			v, w := a(fs, c), s(fs, c)
			if v.k == kNull || w.k == kNull {
				return nullVal
			}
			return boolVal(equalFold(c.text(&v), c.text(&w)))
		}
	case "SUBSTR":
		return b.substr(args)
	case "REVERSE":
		// The bytes in reverse order (not Unicode-aware).
		return sameLength(args[0], func(dst, t []byte) []byte {
			for i := len(t) - 1; i >= 0; i-- {
				dst = append(dst, t[i])
			}
			return dst
		})
	case "REPLACE":
		// Every non-overlapping occurrence of from, left to right,
		// replaced by to [I: signature not in our copy of the docs]. A NULL
		// from leaves s as it is; a NULL to deletes the occurrences.
		a, from, to := args[0], args[1], args[2]
		return func(fs *Fields, c *ctx) val {
			v := a(fs, c)
			if v.k == kNull {
				return nullVal
			}
			fv, tv := from(fs, c), to(fs, c)
			s := c.text(&v)
			if fv.k == kNull {
				return strVal(s)
			}
			old, nw := c.text(&fv), c.text(&tv)
			// The result's length is known before it is built: old is not
			// empty (the empty string is NULL), so counting its
			// occurrences gives it in one pass.
			if c.over {
				return nullVal
			}
			n := len(s)
			if grow := len(nw) - len(old); grow > 0 {
				if k := bytes.Count(s, old); k > 0 {
					if grow > (c.room-n)/k {
						c.over = true
						return nullVal
					}
					n += k * grow
				}
			}
			if !c.reserve(n) {
				return nullVal
			}
			start := len(c.buf)
			for {
				i := bytes.Index(s, old)
				if i < 0 {
					break
				}
				c.buf = append(c.buf, s[:i]...)
				c.buf = append(c.buf, nw...)
				s = s[i+len(old):]
			}
			c.buf = append(c.buf, s...)
			c.room += n - (len(c.buf) - start) // a shorter result gives back the rest
			return strVal(c.buf[start:len(c.buf):len(c.buf)])
		}
	case "REGEXP_MATCH":
		// The first substring of s that the pattern matches, NULL when
		// none does. Allocates (Go's regexp returns the match positions in
		// a new slice).
		re := b.regexArg(n, 1)
		a := args[0]
		return func(fs *Fields, c *ctx) val {
			v := a(fs, c)
			if v.k == kNull {
				return nullVal
			}
			t := c.text(&v)
			loc := re.FindIndex(t)
			if loc == nil {
				return nullVal
			}
			return strVal(t[loc[0]:loc[1]:loc[1]])
		}
	case "REGEXP_REPLACE":
		// Every match of the pattern in s replaced by to, taken literally
		// [I: no group references in the replacement; the docs give no
		// syntax for them]. Allocates the result.
		re := b.regexArg(n, 1)
		a, to := args[0], args[2]
		return func(fs *Fields, c *ctx) val {
			v := a(fs, c)
			if v.k == kNull {
				return nullVal
			}
			tv := to(fs, c)
			if c.over {
				return nullVal
			}
			src, repl := c.text(&v), c.text(&tv)
			// The result's length is counted as it is built: once it
			// would go past the budget, the remaining matches are
			// replaced by nothing (cheaply) and the result is dropped.
			// The result's length is followed as it is built: m is
			// src[i:j], so cap(src)-cap(m) is i, and the output so far,
			// which only grows, is src[:i] less the matches already
			// replaced, plus the replacements. Once it would go past the
			// budget, the remaining matches are replaced by nothing (so
			// the work stays linear) and the result is dropped.
			removed, added, over := 0, 0, false
			out := re.ReplaceAllFunc(src, func(m []byte) []byte {
				if over {
					return nil
				}
				i := cap(src) - cap(m)
				removed += len(m)
				added += len(repl)
				if i+len(m)-removed+added > c.room {
					over = true
					return nil
				}
				return repl
			})
			if over || !c.reserve(len(out)) {
				c.over = true
				return nullVal
			}
			return strVal(out)
		}
	case "ABS":
		// The absolute value of the numeric reading; -MinInt64 is the
		// unsigned 9223372036854775808.
		a := args[0]
		return func(fs *Fields, c *ctx) val {
			v := a(fs, c)
			if v.k == kNull {
				return nullVal
			}
			v = v.num()
			switch v.k {
			case kInt:
				if v.i < 0 {
					return neg(v)
				}
				return intVal(v.i)
			case kUint:
				return val{k: kUint, i: v.i}
			}
			return floatVal(math.Abs(v.f))
		}
	case "CRC32":
		// The IEEE CRC-32 of the text, as a non-negative integer.
		a := args[0]
		return func(fs *Fields, c *ctx) val {
			v := a(fs, c)
			if v.k == kNull {
				return nullVal
			}
			return intVal(int64(crc32.ChecksumIEEE(c.text(&v))))
		}
	case "ARRAY_COUNT":
		// The number of values at a field path: all elements of an array
		// (NULL elements included), 1 for a single value, 0 for a missing
		// field or an empty array. For any other argument: 1 unless it is
		// NULL [I].
		if id, ok := n.Args[0].(*Ident); ok && id.Subscript == NoSubscript {
			s := b.slot(id)
			return func(fs *Fields, c *ctx) val {
				fl := fs.Field(s)
				if !fl.Array && len(fl.Values) == 1 && (fl.Values[0].Kind == Null || fl.Values[0].Kind == Missing) {
					return intVal(0)
				}
				return intVal(int64(len(fl.Values)))
			}
		}
		a := b.val(n.Args[0])
		return func(fs *Fields, c *ctx) val {
			if a(fs, c).k == kNull {
				return intVal(0)
			}
			return intVal(1)
		}
	case "TOPIC_NAME":
		return func(fs *Fields, c *ctx) val { return strVal(stringBytes(c.env.Topic)) }
	case "CLIENT_NAME":
		return func(fs *Fields, c *ctx) val { return strVal(stringBytes(c.env.ClientName)) }
	case "AMPS_INSTANCE_NAME":
		return func(fs *Fields, c *ctx) val { return strVal(stringBytes(c.env.InstanceName)) }
	case "MESSAGE_SIZE":
		return func(fs *Fields, c *ctx) val { return intVal(int64(c.env.Size)) }
	case "UNIX_TIMESTAMP":
		// Seconds since the Unix epoch, with the fraction [I: the unit is
		// not documented; a float keeps sub-second precision and compares
		// with integer seconds]. Non-deterministic.
		b.nondet = true
		return func(fs *Fields, c *ctx) val {
			return floatVal(float64(time.Now().UnixNano()) / 1e9)
		}
	case "TRUE_VALUE":
		return func(*Fields, *ctx) val { return trueVal }
	case "FALSE_VALUE":
		return func(*Fields, *ctx) val { return falseVal }
	case "NAN_VALUE":
		return func(*Fields, *ctx) val { return nanVal }
	case "CHAR_VALUE":
		// The one-byte string whose byte is the argument's integer value
		// (0 to 255); NULL for any other value [I].
		a := args[0]
		return func(fs *Fields, c *ctx) val {
			v := a(fs, c)
			if v.k == kNull {
				return nullVal
			}
			v = v.num()
			var x int64
			switch v.k {
			case kInt:
				x = v.i
			case kFloat:
				if v.f != math.Trunc(v.f) || v.f < 0 || v.f > 255 {
					return nullVal
				}
				x = int64(v.f)
			default:
				return nullVal
			}
			if x < 0 || x > 255 {
				return nullVal
			}
			if !c.reserve(1) {
				return nullVal
			}
			start := len(c.buf)
			c.buf = append(c.buf, byte(x))
			return strVal(c.buf[start:len(c.buf):len(c.buf)])
		}
	}
	panic("filter: internal error: function " + n.Name + " has no implementation")
}

// regexArg compiles the pattern argument i of a REGEXP_* call, which must
// be a string literal so that it is compiled once.
func (b *builder) regexArg(n *Call, i int) *regexp.Regexp {
	return b.prepared(n, func() any {
		lit, ok := n.Args[i].(*Literal)
		if !ok || lit.Kind != LitString {
			b.failf(n.Args[i].Pos(), "the pattern of %s must be a string literal (it is compiled once, with the filter)", n.Name)
		}
		if lit.Raw {
			return regexp.MustCompile(regexp.QuoteMeta(lit.Str))
		}
		b.chargeRegexp(lit.Str, lit.Off, n.Name+" pattern")
		re, err := compileRE(lit.Str, lit.Off, n.Name+" pattern")
		if err != nil {
			panic(bailErr{err})
		}
		return re
	}).(*regexp.Regexp)
}

// substr builds SUBSTR(s, start[, len]): len bytes (all the rest without
// len) from the 1-based position start. Decisions [I]: a negative start
// counts from the end (-1 is the last byte), 0 counts as 1; a start past
// the end or a len below 1 give NULL (the empty string); a non-integer
// number is truncated; a NULL or non-numeric start or len gives NULL.
func (b *builder) substr(args []valFn) valFn {
	a, st := args[0], args[1]
	var ln valFn
	if len(args) == 3 {
		ln = args[2]
	}
	return func(fs *Fields, c *ctx) val {
		v := a(fs, c)
		if v.k == kNull {
			return nullVal
		}
		start, ok := intArg(st(fs, c))
		if !ok {
			return nullVal
		}
		t := c.text(&v)
		n := int64(len(t))
		switch {
		case start < 0:
			start = n + start
			if start < 0 {
				start = 0
			}
		case start > 0:
			start--
		}
		if start >= n {
			return nullVal
		}
		end := n
		if ln != nil {
			l, ok := intArg(ln(fs, c))
			if !ok || l < 1 {
				return nullVal
			}
			if l < n-start {
				end = start + l
			}
		}
		return strVal(t[start:end:end])
	}
}

// intArg is the integer reading of a numeric argument (floats truncated).
func intArg(v val) (int64, bool) {
	if v.k == kNull {
		return 0, false
	}
	v = v.num()
	switch v.k {
	case kInt:
		return v.i, true
	case kUint:
		return math.MaxInt64, true
	case kFloat:
		if v.f != v.f {
			return 0, false
		}
		if v.f >= math.MaxInt64 {
			return math.MaxInt64, true
		}
		if v.f <= math.MinInt64 {
			return math.MinInt64, true
		}
		return int64(v.f), true
	}
	return 0, false
}

// stringBytes views s as bytes without copying; the evaluator never writes
// to the text it reads.
func stringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// sameLength builds a text function whose result is as long as its
// argument's text: NULL in, NULL out; the result is written by conv into
// the scratch buffer, within the evaluation's text budget.
func sameLength(a valFn, conv func(dst, t []byte) []byte) valFn {
	return func(fs *Fields, c *ctx) val {
		v := a(fs, c)
		if v.k == kNull {
			return nullVal
		}
		t := c.text(&v)
		if !c.reserve(len(t)) {
			return nullVal
		}
		start := len(c.buf)
		c.buf = conv(c.buf, t)
		return strVal(c.buf[start:len(c.buf):len(c.buf)])
	}
}

// equalFold reports whether a and b are equal ignoring ASCII case.
func equalFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

// indexFold is bytes.Index ignoring ASCII case. Comparing sub at every
// position of s would cost len(s) × len(sub); instead both are lowered into
// the scratch buffer, which is then given back, and searched with
// bytes.Index, in time linear in their lengths.
func indexFold(c *ctx, s, sub []byte) int {
	if c == nil {
		c = &ctx{}
	}
	start := len(c.buf)
	for _, ch := range s {
		c.buf = append(c.buf, lowerASCII(ch))
	}
	for _, ch := range sub {
		c.buf = append(c.buf, lowerASCII(ch))
	}
	ls, lsub := c.buf[start:start+len(s)], c.buf[start+len(s):]
	i := bytes.Index(ls, lsub)
	c.buf = c.buf[:start]
	return i
}

// textLen is the length of v as text (see ctx.text), without building it.
func textLen(v *val) int {
	if v.k == kNull {
		return 0
	}
	if v.s != nil {
		return len(v.s)
	}
	var a [32]byte
	return len(appendNum(a[:0], v))
}
