package filter

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Error is a filter that cannot be compiled: Offset is the 0-based byte
// position in the filter text where the problem was found, Msg says what
// was wrong.
type Error struct {
	Offset int
	Msg    string
}

// Error formats the error as "filter: at byte N: message".
func (e *Error) Error() string {
	return fmt.Sprintf("filter: at byte %d: %s", e.Offset, e.Msg)
}

func errorf(off int, format string, args ...any) *Error {
	return &Error{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// tokKind is the kind of a token.
type tokKind uint8

const (
	tEOF     tokKind = iota
	tIdent           // field identifier: steps and subscript
	tInt             // integer literal (int64, or uint64 above MaxInt64)
	tFloat           // float literal
	tString          // string literal, raw or not
	tName            // bare word that is not a keyword (a function name)
	tKeyword         // AND OR NOT ... ; word holds the upper-case keyword
	tPunct           // operator or punctuation; text holds it
)

// token is one lexical token. off is its byte offset and text its exact
// source text; the other fields hold the decoded value for its kind.
type token struct {
	kind  tokKind
	off   int
	text  string
	word  string // tKeyword: upper-case keyword; tName: upper-case name
	str   string // tString: decoded bytes
	raw   bool   // tString: raw string
	isU   bool   // tInt: value is in u, above MaxInt64
	i     int64
	u     uint64
	f     float64
	steps []string // tIdent
	sub   int64    // tIdent: subscript or NoSubscript
}

// keywords of the language; they are recognised in any letter case.
var keywords = map[string]bool{
	"AND": true, "OR": true, "NOT": true, "IN": true, "BETWEEN": true,
	"LIKE": true, "IS": true, "NULL": true, "NAN": true, "MOD": true,
	"BEGINS": true, "ENDS": true, "WITH": true, "IF": true,
}

// isNameChar reports whether c may appear in a field name step: ASCII
// letters and digits, '_', '-', '.', and any byte of a multi-byte UTF-8
// sequence (names are bytes; no Unicode classification is attempted).
func isNameChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '_' || c == '-' || c == '.' || c >= 0x80
}

func isWordStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_'
}

func isWordChar(c byte) bool { return isWordStart(c) || '0' <= c && c <= '9' }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// lexer produces tokens on demand. Whether a '/' starts an identifier or is
// the division operator depends on what came before, so the lexer remembers
// whether the previous token ended an operand.
type lexer struct {
	src        string
	pos        int
	operandEnd bool // previous token was an identifier, literal or ')'
}

// next returns the next token, or an error for text that is no token.
func (lx *lexer) next() (token, *Error) {
	t, err := lx.scan()
	if err == nil {
		lx.operandEnd = t.kind == tIdent || t.kind == tInt || t.kind == tFloat ||
			t.kind == tString || t.kind == tPunct && t.text == ")"
	}
	return t, err
}

func (lx *lexer) scan() (token, *Error) {
	src := lx.src
	// Space, tab, CR and LF separate tokens.
	for lx.pos < len(src) {
		c := src[lx.pos]
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			break
		}
		lx.pos++
	}
	start := lx.pos
	if start >= len(src) {
		return token{kind: tEOF, off: start}, nil
	}
	c := src[start]
	switch {
	case c == '/' && !lx.operandEnd:
		// In operand position a '/' starts a field identifier; in operator
		// position (after an operand) it is division.
		return lx.ident()
	case c == '[' && !lx.operandEnd:
		return lx.ident()
	case (c == 'r' || c == 'R') && start+1 < len(src) && (src[start+1] == '\'' || src[start+1] == '"'):
		return lx.rawString()
	case c == '\'' || c == '"':
		return lx.str()
	case isDigit(c) || c == '.' && start+1 < len(src) && isDigit(src[start+1]):
		return lx.number()
	case isWordStart(c):
		for lx.pos++; lx.pos < len(src) && isWordChar(src[lx.pos]); lx.pos++ {
		}
		text := src[start:lx.pos]
		up := strings.ToUpper(text)
		if keywords[up] {
			return token{kind: tKeyword, off: start, text: text, word: up}, nil
		}
		return token{kind: tName, off: start, text: text, word: up}, nil
	}
	// Operators and punctuation, two-byte ones first.
	if start+1 < len(src) {
		switch two := src[start : start+2]; two {
		case "==", "!=", "<>", "<=", ">=":
			lx.pos += 2
			return token{kind: tPunct, off: start, text: two}, nil
		}
	}
	switch c {
	case '(', ')', ',', '=', '<', '>', '+', '-', '*', '/', '%':
		lx.pos++
		return token{kind: tPunct, off: start, text: src[start : start+1]}, nil
	case '[':
		return token{}, errorf(start, "unexpected '[' after an operand (a subscript must follow its identifier directly)")
	}
	return token{}, errorf(start, "unexpected character %s", quoteChar(c))
}

func quoteChar(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return "'" + string(c) + "'"
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

// ident scans a field identifier starting at '/' or '['.
//
// Slash form: '/' then a step, then more '/step' with no whitespace. A step
// is a run of name characters (letters, digits, '_', '-', '.'), or '@'
// followed by such a run (an XML attribute). A '/' not followed by a step
// character ends the identifier, so `/a/ 2` is `/a` divided by 2, while
// `/a/2` is the path a, 2. A '-' inside is a name character: `/a-b` is one
// field.
//
// Bracketed form: '[' '/' then any bytes but ']' up to ']'; the text is
// split at '/' into steps, which may hold spaces: `[/odd key]`.
//
// Either form may be followed directly by a subscript `[digits]`.
func (lx *lexer) ident() (token, *Error) {
	src := lx.src
	start := lx.pos
	var steps []string
	if src[start] == '[' {
		end := strings.IndexByte(src[start:], ']')
		if end < 0 {
			return token{}, errorf(start, "unterminated bracketed identifier: missing ']'")
		}
		body := src[start+1 : start+end]
		if !strings.HasPrefix(body, "/") {
			return token{}, errorf(start, "a bracketed identifier must start with '/', as in [/name with spaces]")
		}
		steps = strings.Split(body[1:], "/")
		for _, s := range steps {
			if s == "" {
				return token{}, errorf(start, "empty path step in bracketed identifier %q", src[start:start+end+1])
			}
		}
		lx.pos = start + end + 1
	} else {
		for lx.pos < len(src) && src[lx.pos] == '/' {
			p := lx.pos + 1
			q := p
			if q < len(src) && src[q] == '@' {
				q++
			}
			r := q
			for r < len(src) && isNameChar(src[r]) {
				r++
			}
			if r == q {
				if len(steps) == 0 {
					if q > p {
						return token{}, errorf(p, "expected an attribute name after '@'")
					}
					return token{}, errorf(start, "expected a field name after '/'")
				}
				break // this '/' is not part of the identifier
			}
			steps = append(steps, src[p:r])
			lx.pos = r
		}
	}
	t := token{kind: tIdent, off: start, steps: steps, sub: NoSubscript}
	if lx.pos < len(src) && src[lx.pos] == '[' {
		b := lx.pos
		p := b + 1
		for p < len(src) && isDigit(src[p]) {
			p++
		}
		if p == b+1 || p >= len(src) || src[p] != ']' {
			return token{}, errorf(b, "malformed subscript: expected '[' digits ']' after the identifier")
		}
		n, err := strconv.ParseInt(src[b+1:p], 10, 64)
		if err != nil {
			return token{}, errorf(b+1, "subscript %s is out of range", src[b+1:p])
		}
		t.sub = n
		lx.pos = p + 1
	}
	t.text = src[start:lx.pos]
	return t, nil
}

// number scans an integer or float literal. Integers are decimal even with
// leading zeros; they are int64, or uint64 when above the signed maximum.
// A float has a '.', an exponent, or both ("3.5", ".5", "5.", "6E2",
// "12.5e-1"). A sign is not part of the literal: the parser folds a unary
// '-' into the literal that follows it.
func (lx *lexer) number() (token, *Error) {
	src := lx.src
	start := lx.pos
	p := start
	for p < len(src) && isDigit(src[p]) {
		p++
	}
	isFloat := false
	if p < len(src) && src[p] == '.' {
		isFloat = true
		for p++; p < len(src) && isDigit(src[p]); p++ {
		}
	}
	if p < len(src) && (src[p] == 'e' || src[p] == 'E') {
		isFloat = true
		p++
		if p < len(src) && (src[p] == '+' || src[p] == '-') {
			p++
		}
		d := p
		for p < len(src) && isDigit(src[p]) {
			p++
		}
		if p == d {
			return token{}, errorf(start, "malformed number %q: exponent has no digits", src[start:p])
		}
	}
	if p < len(src) && (isWordChar(src[p]) || src[p] == '.') {
		e := p
		for e < len(src) && (isWordChar(src[e]) || src[e] == '.') {
			e++
		}
		return token{}, errorf(start, "malformed number %q", src[start:e])
	}
	text := src[start:p]
	lx.pos = p
	if isFloat {
		f, err := strconv.ParseFloat(text, 64)
		if err != nil || math.IsInf(f, 0) {
			return token{}, errorf(start, "float literal %s is out of range", text)
		}
		return token{kind: tFloat, off: start, text: text, f: f}, nil
	}
	if i, err := strconv.ParseInt(text, 10, 64); err == nil {
		return token{kind: tInt, off: start, text: text, i: i}, nil
	}
	u, err := strconv.ParseUint(text, 10, 64)
	if err != nil {
		return token{}, errorf(start, "integer literal %s is out of range (larger than 18446744073709551615)", text)
	}
	return token{kind: tInt, off: start, text: text, isU: true, u: u}, nil
}

// str scans a quoted string. Either quote character delimits; escapes are
// \a \b \t \n \f \r, \xHH (exactly two hex digits), \OOO (one to three
// octal digits, at most 377), and a backslash before any other byte stands
// for that byte (\' \" \\). The value is a byte string: no UTF-8 checking.
func (lx *lexer) str() (token, *Error) {
	src := lx.src
	start := lx.pos
	q := src[start]
	var b []byte
	p := start + 1
	for {
		if p >= len(src) {
			return token{}, errorf(start, "unterminated string literal")
		}
		c := src[p]
		if c == q {
			p++
			break
		}
		if c != '\\' {
			b = append(b, c)
			p++
			continue
		}
		p++
		if p >= len(src) {
			return token{}, errorf(start, "unterminated string literal")
		}
		e := src[p]
		switch e {
		case 'a':
			b = append(b, '\a')
		case 'b':
			b = append(b, '\b')
		case 't':
			b = append(b, '\t')
		case 'n':
			b = append(b, '\n')
		case 'f':
			b = append(b, '\f')
		case 'r':
			b = append(b, '\r')
		case 'x':
			if p+2 >= len(src) || !isHex(src[p+1]) || !isHex(src[p+2]) {
				return token{}, errorf(p-1, `invalid \x escape: expected two hex digits`)
			}
			v, _ := strconv.ParseUint(src[p+1:p+3], 16, 8)
			b = append(b, byte(v))
			p += 2
		case '0', '1', '2', '3', '4', '5', '6', '7':
			d := p
			for d < len(src) && d < p+3 && src[d] >= '0' && src[d] <= '7' {
				d++
			}
			v, _ := strconv.ParseUint(src[p:d], 8, 16)
			if v > 255 {
				return token{}, errorf(p-1, `octal escape \%s is above \377`, src[p:d])
			}
			b = append(b, byte(v))
			p = d - 1
		default:
			b = append(b, e)
		}
		p++
	}
	lx.pos = p
	return token{kind: tString, off: start, text: src[start:p], str: string(b)}, nil
}

func isHex(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// rawString scans r'...' or R"...": the bytes between the quotes are taken
// as they are, with no escapes, so a raw string cannot hold its own quote
// character.
func (lx *lexer) rawString() (token, *Error) {
	src := lx.src
	start := lx.pos
	q := src[start+1]
	end := strings.IndexByte(src[start+2:], q)
	if end < 0 {
		return token{}, errorf(start, "unterminated raw string literal")
	}
	lx.pos = start + 2 + end + 1
	return token{kind: tString, off: start, text: src[start:lx.pos], str: src[start+2 : start+2+end], raw: true}, nil
}
