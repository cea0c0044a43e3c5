package filter

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// Regular expressions.
//
// AMPS uses PCRE; Go's regexp is RE2, which has no backtracking. Decision
// [I, spec §1.8 leaves the choice open]: we use RE2 and refuse, at Compile,
// every pattern that needs what RE2 lacks or that RE2 would read
// differently, never changing its meaning silently:
//   - backreferences (\1 .. \9, \k<name>): refused. A backslash and a digit
//     1-9 is refused even when PCRE would read it as an octal escape
//     (\12 is group 12 or octal 012 depending on the group count); write
//     \012 for the octal form;
//   - lookahead (?= (?!, lookbehind (?<= (?<!, atomic groups (?>,
//     possessive quantifiers (*+ ++ ?+ {n}+), and the PCRE-only flags and
//     escapes RE2 rejects (x, A, \Z, \G, \K, \R, \h, \e, \cX, comments):
//     refused with the reason;
//   - \xHH, \x{H..} and octal escapes of a value above 0x7f: refused. PCRE
//     (without UTF mode) reads \xff as the byte 0xff; RE2 reads it as the
//     code point U+00FF, that is the two bytes C3 BF;
//   - a pattern that is not valid UTF-8: refused (RE2 reads patterns as
//     UTF-8). A raw pattern (r'...') is matched literally as bytes, so any
//     byte may appear in one.
//
// Subjects are byte strings and need not be UTF-8. RE2 reads an invalid
// byte as one character U+FFFD: `.` and negated classes match it, literal
// text never does, so ASCII patterns behave exactly as PCRE's byte
// matching. Known, accepted differences on valid non-ASCII UTF-8 text: RE2
// treats a multi-byte character as one character for `.` and classes
// (PCRE without UTF mode sees its bytes), and (?i) folds some non-ASCII
// letters (K and the Kelvin sign). `$` without (?m) matches only at the very
// end in RE2, while PCRE also matches before a final newline.

// matcher is a compiled LIKE pattern: a byte test chosen for the pattern's
// shape (substring, prefix, suffix, whole text) or the regexp. With fold,
// lit is lower case and the test runs on the text folded the way RE2's
// (?i) folds it against ASCII letters (see foldText): a (?i) pattern of
// plain ASCII text. RE2 would run such a pattern as a program of one
// instruction per letter over every byte of the text, which costs seconds
// on a long pattern and a large message; the byte test is linear and
// matches exactly what RE2 would.
type matcher struct {
	kind matchKind
	fold bool
	lit  []byte
	re   *regexp.Regexp
}

type matchKind uint8

const (
	mContains matchKind = iota
	mPrefix
	mSuffix
	mEqual
	mRegexp
)

// match reports whether the pattern is found anywhere in s: LIKE is a
// search, not anchored unless the pattern anchors itself.
func (m *matcher) match(c *ctx, s []byte) bool {
	if m.fold {
		if c == nil {
			c = &ctx{} // Compile asks for a context for such patterns: a safety net
		}
		start := len(c.buf)
		c.buf = foldText(c.buf, s)
		s = c.buf[start:]
		defer func() { c.buf = c.buf[:start] }()
	}
	switch m.kind {
	case mContains:
		return bytes.Contains(s, m.lit)
	case mPrefix:
		return bytes.HasPrefix(s, m.lit)
	case mSuffix:
		return bytes.HasSuffix(s, m.lit)
	case mEqual:
		return bytes.Equal(s, m.lit)
	}
	return m.re.Match(s)
}

// foldText appends s to dst as RE2's (?i) sees it against ASCII letters:
// ASCII letters in lower case, and the two other characters that Unicode
// folds onto ASCII letters, the Kelvin sign (U+212A, as k) and the long s
// (U+017F, as s), replaced by them. Every other byte stays as it is, and
// never equals a letter of a lower-case ASCII pattern, as in RE2.
func foldText(dst, s []byte) []byte {
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == 0xe2 && i+2 < len(s) && s[i+1] == 0x84 && s[i+2] == 0xaa:
			dst = append(dst, 'k')
			i += 2
		case ch == 0xc5 && i+1 < len(s) && s[i+1] == 0xbf:
			dst = append(dst, 's')
			i++
		default:
			dst = append(dst, lowerASCII(ch))
		}
	}
	return dst
}

// compileLike compiles a LIKE pattern literal. A raw pattern matches its
// bytes literally (as if every metacharacter were escaped).
func compileLike(p *Literal) (*matcher, *Error) {
	if p.Raw {
		return &matcher{kind: mContains, lit: []byte(p.Str)}, nil
	}
	re, err := compileRE(p.Str, p.Off, "LIKE pattern")
	if err != nil {
		return nil, err
	}
	m := &matcher{kind: mRegexp, re: re}
	// Patterns that are plain text, possibly anchored, need no regexp.
	if t, perr := syntax.Parse(p.Str, syntax.Perl); perr == nil {
		t = t.Simplify()
		lit := func(r *syntax.Regexp) ([]byte, bool) {
			if r.Op != syntax.OpLiteral {
				return nil, false
			}
			s := string(r.Rune)
			if strings.ContainsRune(s, utf8.RuneError) {
				return nil, false // would match invalid bytes in RE2
			}
			if r.Flags&syntax.FoldCase == 0 {
				return []byte(s), true
			}
			b := []byte(s)
			for i, ch := range b {
				if ch >= utf8.RuneSelf {
					return nil, false // non-ASCII folding stays with RE2
				}
				b[i] = lowerASCII(ch)
			}
			m.fold = true
			return b, true
		}
		if b, ok := lit(t); ok {
			m.kind, m.lit = mContains, b
		} else if t.Op == syntax.OpConcat {
			sub := t.Sub
			begin := len(sub) > 0 && sub[0].Op == syntax.OpBeginText
			end := len(sub) > 0 && sub[len(sub)-1].Op == syntax.OpEndText
			mid := sub
			if begin {
				mid = mid[1:]
			}
			if end && len(mid) > 0 {
				mid = mid[:len(mid)-1]
			}
			if len(mid) == 1 && (begin || end) {
				if b, ok := lit(mid[0]); ok {
					m.lit = b
					switch {
					case begin && end:
						m.kind = mEqual
					case begin:
						m.kind = mPrefix
					default:
						m.kind = mSuffix
					}
				}
			}
		}
	}
	return m, nil
}

// compileRE compiles a PCRE-style pattern with RE2, refusing what RE2
// cannot do faithfully (see above). what names the pattern in the error.
func compileRE(pat string, off int, what string) (*regexp.Regexp, *Error) {
	fail := func(reason string) *Error {
		return errorf(off, "%s %s: %s (Go's RE2 regular expressions do not backtrack)", what, quote(pat), reason)
	}
	if !utf8.ValidString(pat) {
		return nil, errorf(off, "%s %s: not valid UTF-8; use a raw string r'...' to match arbitrary bytes literally", what, quote(pat))
	}
	if reason := unsupportedEscape(pat); reason != "" {
		return nil, fail(reason)
	}
	re, err := regexp.Compile(pat)
	if err == nil {
		return re, nil
	}
	var se *syntax.Error
	if !errors.As(err, &se) {
		return nil, errorf(off, "%s %s: %v", what, quote(pat), err)
	}
	expr := se.Expr
	switch se.Code {
	case syntax.ErrInvalidEscape:
		if strings.HasPrefix(expr, `\k`) || strings.HasPrefix(expr, `\g`) {
			return nil, fail("backreferences are not supported")
		}
		return nil, fail(fmt.Sprintf("the escape %s is not supported", expr))
	case syntax.ErrInvalidPerlOp, syntax.ErrInvalidNamedCapture:
		switch {
		case strings.HasPrefix(expr, "(?="), strings.HasPrefix(expr, "(?!"):
			return nil, fail("lookahead is not supported")
		case strings.HasPrefix(expr, "(?<="), strings.HasPrefix(expr, "(?<!"):
			return nil, fail("lookbehind is not supported")
		case strings.HasPrefix(expr, "(?>"):
			return nil, fail("atomic groups are not supported")
		case strings.HasPrefix(expr, "(?#"):
			return nil, fail("comments are not supported")
		case strings.HasPrefix(expr, "(?"):
			return nil, fail(fmt.Sprintf("the group or flag syntax %s is not supported (RE2 flags: i, m, s, U)", expr))
		}
	case syntax.ErrInvalidRepeatOp:
		if strings.HasSuffix(expr, "+") {
			return nil, fail("possessive quantifiers are not supported")
		}
	}
	return nil, errorf(off, "%s %s: %s", what, quote(pat), se.Code.String()+": `"+expr+"`")
}

// unsupportedEscape finds an escape that RE2 would accept with another
// meaning than PCRE's: \1 .. \9 (a backreference in PCRE) and escapes of
// byte values above 0x7f. It returns the reason, or "".
func unsupportedEscape(pat string) string {
	for i := 0; i < len(pat); i++ {
		if pat[i] != '\\' || i+1 >= len(pat) {
			continue
		}
		c := pat[i+1]
		switch {
		case c >= '1' && c <= '9':
			return "backreferences are not supported (\\" + string(c) + "; write \\0" + string(c) + " for an octal escape)"
		case c == '0':
			v, j := 0, i+2
			for ; j < len(pat) && j < i+4 && pat[j] >= '0' && pat[j] <= '7'; j++ {
				v = v*8 + int(pat[j]-'0')
			}
			if v > 0x7f {
				return "escapes of bytes above \\x7f are not supported (RE2 matches code points, not bytes)"
			}
		case c == 'x':
			v := 0
			if i+2 < len(pat) && pat[i+2] == '{' {
				j := i + 3
				for ; j < len(pat) && isHex(pat[j]) && v <= 0x7f; j++ {
					v = v*16 + hexVal(pat[j])
				}
			} else {
				for j := i + 2; j < len(pat) && j < i+4 && isHex(pat[j]); j++ {
					v = v*16 + hexVal(pat[j])
				}
			}
			if v > 0x7f {
				return "escapes of bytes above \\x7f are not supported (RE2 matches code points, not bytes)"
			}
		}
		i++ // skip the escaped character
	}
	return ""
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return int(c-'A') + 10
}

// like builds X [NOT] LIKE pattern: TRUE when the pattern is found in some
// value of X, read as text (a number by its text); NULL never matches.
// NOT LIKE is NOT (LIKE).
func (b *builder) like(n *Like) predFn {
	m := b.prepared(n, func() any {
		if !n.Pattern.Raw {
			b.chargeRegexp(n.Pattern.Str, n.Pattern.Off, "LIKE pattern")
		}
		m, err := compileLike(n.Pattern)
		if err != nil {
			panic(bailErr{err})
		}
		return m
	}).(*matcher)
	if m.fold {
		b.needCtx = true // the text is folded into the scratch buffer
	}
	x := b.operand(n.X)
	b.textOperand(n.X, x)
	negate := n.Negate
	if x.multi {
		s := x.slot
		return func(fs *Fields, c *ctx) tri {
			hit := false
			for _, xv := range fs.Field(s).Values {
				v := fromValue(xv)
				if v.k != kNull && m.match(c, c.text(&v)) {
					hit = true
					break
				}
			}
			return boolTri(hit != negate)
		}
	}
	return func(fs *Fields, c *ctx) tri {
		v := x.fn(fs, c)
		return boolTri((v.k != kNull && m.match(c, c.text(&v))) != negate)
	}
}

// textOperand notes that the operand will be read as text: a value that
// is computed (not a field and not a constant) may need the scratch buffer.
func (b *builder) textOperand(n Node, o operand) {
	if !o.multi && !o.cnst {
		if id, ok := n.(*Ident); ok && id != nil {
			return // a subscripted field: its text is in the message
		}
		b.needCtx = true
	}
}

// affix builds X [NOT] BEGINS WITH (list) and X [NOT] ENDS WITH (list):
// TRUE when some value of X, read as text, starts (ends) with some item of
// the list, read as text. NULL items and a NULL X never match. The test is
// literal (no pattern characters). NOT is NOT of the whole predicate.
func (b *builder) affix(n *Affix) predFn {
	lits := b.prepared(n, func() any {
		var out [][]byte
		for _, it := range n.List {
			if !b.isConst(it) {
				continue
			}
			v := b.constVal(it, b.val1(it))
			if v.k == kNull {
				continue
			}
			out = append(out, bytes.Clone((&ctx{}).text(&v)))
		}
		return out
	}).([][]byte)
	var dyn []operand
	for _, it := range n.List {
		if !b.isConst(it) {
			o := b.operand(it)
			b.textOperand(it, o)
			dyn = append(dyn, o)
		}
	}
	x := b.operand(n.X)
	b.textOperand(n.X, x)
	suffix, negate := n.Suffix, n.Negate
	test := func(s, a []byte) bool {
		if suffix {
			return bytes.HasSuffix(s, a)
		}
		return bytes.HasPrefix(s, a)
	}
	return func(fs *Fields, c *ctx) tri {
		xn := x.count(fs)
		hit := x.each(fs, c, func(v val) bool {
			if v.k == kNull {
				return false
			}
			s := c.text(&v)
			for _, a := range lits {
				if test(s, a) {
					return true
				}
			}
			for i := range dyn {
				if !pairsAllowed(xn, dyn[i].count(fs)) {
					continue
				}
				if dyn[i].each(fs, c, func(w val) bool {
					return w.k != kNull && test(s, c.text(&w))
				}) {
					return true
				}
			}
			return false
		})
		return boolTri(hit != negate)
	}
}

// Regular expression size. Go's RE2 matches in time proportional to the
// subject's length times the size of the compiled program (it simulates
// the program's threads in step), and a counted repetition copies its
// operand: (a?){1000} is 10 bytes of pattern but 3000 instructions, all
// of them live at once on a subject of a's. Such a pattern would cost
// a thousand times what its length suggests on every message. The rule:
// the estimated programs of all a filter's regular expressions (LIKE
// patterns and REGEXP_* patterns) may hold at most regexpInstsPerByte
// instructions per byte of filter text plus regexpInstsFloor; a filter
// that needs more is refused at Compile. Patterns without counted
// repetition take about one instruction per byte of pattern, so they
// always fit; repetitions up to a few hundred (\d{1,10}, .{0,300}) fit a
// short filter too.
const (
	regexpInstsPerByte = 8
	regexpInstsFloor   = 1024
)

// chargeRegexp adds the estimated program size of the pattern pat, at
// byte off of the filter, to the filter's total, and refuses the filter
// when the total goes past the limit. A pattern that does not parse is
// left to compileRE to report.
func (b *builder) chargeRegexp(pat string, off int, what string) {
	t, err := syntax.Parse(pat, syntax.Perl)
	if err != nil {
		return
	}
	limit := regexpInstsPerByte*len(b.f.src) + regexpInstsFloor
	b.reInsts += progSize(t, limit+1)
	if b.reInsts > limit {
		b.failf(off, "%s %s: the filter's regular expressions would compile to more than %d instructions, the limit for a filter of %d bytes (counted repetitions such as {n} copy their operand n times)",
			what, quote(pat), limit, len(b.f.src))
	}
}

// progSize estimates the number of instructions RE2 compiles t into,
// stopping at max: one per literal character or class, one or two for
// each operator, and n copies of the operand of a repetition {m,n} (m+1
// when unbounded).
func progSize(t *syntax.Regexp, max int) int {
	n := 0
	switch t.Op {
	case syntax.OpLiteral:
		n = len(t.Rune)
	case syntax.OpCapture:
		n = 2 + progSize(t.Sub[0], max)
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest:
		n = 1 + progSize(t.Sub[0], max)
	case syntax.OpRepeat:
		times := t.Max
		if times < 0 {
			times = t.Min + 1
		}
		sub := progSize(t.Sub[0], max) + 1
		if times > 0 && sub > max/times {
			return max
		}
		n = times * sub
	case syntax.OpConcat, syntax.OpAlternate:
		for _, x := range t.Sub {
			n += 1 + progSize(x, max)
			if n >= max {
				return max
			}
		}
	default:
		n = 1
	}
	return min(n, max)
}
