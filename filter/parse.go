package filter

import (
	"math"
	"strings"
)

// MaxLen is the longest filter text Parse accepts, in bytes.
const MaxLen = 64 << 10

// MaxDepth bounds the nesting of parentheses, NOT, unary signs and function
// calls. The parser recurses once per nesting level, so this bound (and not
// the input length) limits its stack use. Chains of binary operators at one
// level (`a OR b OR c ...`) are parsed by iteration and do not count.
const MaxDepth = 128

// Parse parses a content filter and returns its syntax tree. A filter that
// is empty, longer than MaxLen, nested deeper than MaxDepth, malformed, or
// that calls an unknown or aggregate function, gives an *Error naming the
// byte offset and the problem.
func Parse(src string) (Node, error) {
	if len(src) > MaxLen {
		return nil, errorf(MaxLen, "filter is %d bytes long; the limit is %d", len(src), MaxLen)
	}
	if strings.Trim(src, " \t\r\n") == "" {
		return nil, errorf(0, "empty filter")
	}
	p := &parser{lx: lexer{src: src}}
	n, err := p.parse()
	if err != nil {
		return nil, err
	}
	return n, nil
}

type parser struct {
	lx    lexer
	tok   token
	depth int
}

// bail carries a parse error up through the recursive descent; parse
// recovers it. Only *Error values are thrown this way.
type bail struct{ err *Error }

func (p *parser) fail(err *Error) { panic(bail{err}) }

func (p *parser) failf(off int, format string, args ...any) {
	p.fail(errorf(off, format, args...))
}

func (p *parser) parse() (n Node, err *Error) {
	defer func() {
		if r := recover(); r != nil {
			b, ok := r.(bail)
			if !ok {
				panic(r)
			}
			n, err = nil, b.err
		}
	}()
	p.advance()
	n = p.orExpr()
	if p.tok.kind != tEOF {
		p.failf(p.tok.off, "unexpected %s after the end of the expression", describe(p.tok))
	}
	return n, nil
}

func (p *parser) advance() {
	t, err := p.lx.next()
	if err != nil {
		p.fail(err)
	}
	p.tok = t
}

// describe names a token for an error message.
func describe(t token) string {
	if t.kind == tEOF {
		return "end of input"
	}
	s := t.text
	if len(s) > 24 {
		s = s[:24] + "..."
	}
	return "'" + s + "'"
}

func (p *parser) isKeyword(w string) bool { return p.tok.kind == tKeyword && p.tok.word == w }

func (p *parser) isPunct(s string) bool { return p.tok.kind == tPunct && p.tok.text == s }

// expectPunct consumes the punctuation s or fails with "expected s what".
func (p *parser) expectPunct(s, what string) {
	if !p.isPunct(s) {
		p.failf(p.tok.off, "expected '%s' %s, found %s", s, what, describe(p.tok))
	}
	p.advance()
}

func (p *parser) expectKeyword(w, what string) {
	if !p.isKeyword(w) {
		p.failf(p.tok.off, "expected %s %s, found %s", w, what, describe(p.tok))
	}
	p.advance()
}

func (p *parser) enter(off int) {
	p.depth++
	if p.depth > MaxDepth {
		p.failf(off, "expression nested more than %d levels deep", MaxDepth)
	}
}

func (p *parser) leave() { p.depth-- }

// orExpr = andExpr { OR andExpr } (left associative).
func (p *parser) orExpr() Node {
	l := p.andExpr()
	for p.isKeyword("OR") {
		off := p.tok.off
		p.advance()
		r := p.andExpr()
		l = &Binary{Off: off, Op: OpOr, L: l, R: r}
	}
	return l
}

// andExpr = notExpr { AND notExpr } (left associative).
func (p *parser) andExpr() Node {
	l := p.notExpr()
	for p.isKeyword("AND") {
		off := p.tok.off
		p.advance()
		r := p.notExpr()
		l = &Binary{Off: off, Op: OpAnd, L: l, R: r}
	}
	return l
}

// notExpr = NOT notExpr | predicate. NOT binds looser than the comparison
// operators, so it applies to the whole predicate after it:
// `NOT /x IN (1)` is NOT (/x IN (1)).
func (p *parser) notExpr() Node {
	if p.isKeyword("NOT") {
		off := p.tok.off
		p.enter(off)
		p.advance()
		x := p.notExpr()
		p.leave()
		return &Not{Off: off, X: x}
	}
	return p.predicate()
}

var cmpOps = map[string]Op{
	"=": OpEq, "==": OpEq, "!=": OpNe, "<>": OpNe,
	"<": OpLt, "<=": OpLe, ">": OpGt, ">=": OpGe,
}

// startsPredicateTail reports whether the current token would begin a
// comparison or other predicate operator.
func (p *parser) startsPredicateTail() bool {
	if p.tok.kind == tPunct {
		_, ok := cmpOps[p.tok.text]
		return ok
	}
	if p.tok.kind == tKeyword {
		switch p.tok.word {
		case "NOT", "BETWEEN", "IN", "LIKE", "BEGINS", "ENDS", "IS":
			return true
		}
	}
	return false
}

// predicate = additive [ predicateTail ]. Predicates do not chain: after a
// tail, another comparison operator is an error (`a = b = c`).
func (p *parser) predicate() Node {
	x := p.additive()
	if !p.startsPredicateTail() {
		return x
	}
	n := p.predicateTail(x)
	if p.startsPredicateTail() {
		p.failf(p.tok.off, "unexpected %s: comparisons and other predicates do not chain; use parentheses", describe(p.tok))
	}
	return n
}

func (p *parser) predicateTail(x Node) Node {
	t := p.tok
	if t.kind == tPunct {
		p.advance()
		r := p.additive()
		return &Binary{Off: t.off, Op: cmpOps[t.text], L: x, R: r}
	}
	if t.word == "IS" {
		p.advance()
		neg := false
		if p.isKeyword("NOT") {
			neg = true
			p.advance()
		}
		switch {
		case p.isKeyword("NULL"):
			p.advance()
			return &IsNull{Off: t.off, Negate: neg, X: x}
		case p.isKeyword("NAN"):
			p.advance()
			return &IsNaN{Off: t.off, Negate: neg, X: x}
		}
		p.failf(p.tok.off, "expected NULL or NAN after IS, found %s", describe(p.tok))
	}
	neg := false
	if t.word == "NOT" {
		neg = true
		p.advance()
		if p.tok.kind != tKeyword {
			p.failf(p.tok.off, "expected BETWEEN, IN, LIKE, BEGINS WITH or ENDS WITH after NOT, found %s", describe(p.tok))
		}
	}
	kw := p.tok
	switch kw.word {
	case "BETWEEN":
		// The AND here belongs to BETWEEN: both bounds are additive
		// expressions, so `x BETWEEN 1 AND 2 AND y` is (x BETWEEN 1 AND 2) AND y.
		p.advance()
		lo := p.additive()
		p.expectKeyword("AND", "between the bounds of BETWEEN")
		hi := p.additive()
		return &Between{Off: kw.off, Negate: neg, X: x, Lo: lo, Hi: hi}
	case "IN":
		p.advance()
		list := p.parenList("IN")
		return &In{Off: kw.off, Negate: neg, X: x, List: list}
	case "LIKE":
		// The pattern of LIKE must be a string literal (raw or not), never
		// a field or an expression.
		p.advance()
		if p.tok.kind != tString {
			p.failf(p.tok.off, "LIKE needs a string literal pattern, found %s", describe(p.tok))
		}
		pat := stringLit(p.tok)
		p.advance()
		return &Like{Off: kw.off, Negate: neg, X: x, Pattern: pat}
	case "BEGINS", "ENDS":
		p.advance()
		p.expectKeyword("WITH", "after "+kw.word)
		list := p.parenList(kw.word + " WITH")
		return &Affix{Off: kw.off, Negate: neg, Suffix: kw.word == "ENDS", X: x, List: list}
	}
	p.failf(kw.off, "expected BETWEEN, IN, LIKE, BEGINS WITH or ENDS WITH after NOT, found %s", describe(kw))
	return nil
}

// parenList = "(" orExpr { "," orExpr } ")", the list of IN, BEGINS WITH
// and ENDS WITH; it may not be empty.
func (p *parser) parenList(what string) []Node {
	p.enter(p.tok.off)
	p.expectPunct("(", "after "+what)
	list := []Node{p.orExpr()}
	for p.isPunct(",") {
		p.advance()
		list = append(list, p.orExpr())
	}
	p.leave()
	p.expectPunct(")", "after "+what+" list")
	return list
}

// additive = multiplicative { ("+" | "-") multiplicative }.
func (p *parser) additive() Node {
	l := p.multiplicative()
	for p.isPunct("+") || p.isPunct("-") {
		t := p.tok
		p.advance()
		r := p.multiplicative()
		op := OpAdd
		if t.text == "-" {
			op = OpSub
		}
		l = &Binary{Off: t.off, Op: op, L: l, R: r}
	}
	return l
}

// multiplicative = unary { ("*" | "/" | "%" | MOD) unary }.
func (p *parser) multiplicative() Node {
	l := p.unary()
	for {
		var op Op
		switch {
		case p.isPunct("*"):
			op = OpMul
		case p.isPunct("/"):
			op = OpDiv
		case p.isPunct("%"), p.isKeyword("MOD"):
			op = OpMod
		default:
			return l
		}
		off := p.tok.off
		p.advance()
		r := p.unary()
		l = &Binary{Off: off, Op: op, L: l, R: r}
	}
}

// unary = [ "-" | "+" ] unary | primary. A '-' applied to a numeric
// literal is folded into it when the negated value is representable:
// `-5` is the integer -5 and `-9223372036854775808` the int64 minimum.
func (p *parser) unary() Node {
	if !p.isPunct("-") && !p.isPunct("+") {
		return p.primary()
	}
	t := p.tok
	p.enter(t.off)
	p.advance()
	x := p.unary()
	p.leave()
	if t.text == "+" {
		return &Unary{Off: t.off, X: x}
	}
	if lit, ok := x.(*Literal); ok {
		if folded := negate(lit, t.off); folded != nil {
			return folded
		}
	}
	return &Unary{Off: t.off, Neg: true, X: x}
}

// negate returns -lit as a literal at off, or nil when lit is not numeric
// or -lit is not representable as an int64 or a float.
func negate(lit *Literal, off int) *Literal {
	switch lit.Kind {
	case LitInt:
		if lit.Int == math.MinInt64 {
			return nil
		}
		return &Literal{Off: off, Kind: LitInt, Int: -lit.Int}
	case LitUint:
		if lit.Uint == 1<<63 {
			return &Literal{Off: off, Kind: LitInt, Int: math.MinInt64}
		}
		return nil
	case LitFloat:
		return &Literal{Off: off, Kind: LitFloat, Float: -lit.Float}
	}
	return nil
}

func stringLit(t token) *Literal {
	return &Literal{Off: t.off, Kind: LitString, Str: t.str, Raw: t.raw}
}

// primary = literal | identifier | call | "(" orExpr ")".
func (p *parser) primary() Node {
	t := p.tok
	switch t.kind {
	case tIdent:
		p.advance()
		return &Ident{Off: t.off, Steps: t.steps, Subscript: t.sub}
	case tInt:
		p.advance()
		if t.isU {
			return &Literal{Off: t.off, Kind: LitUint, Uint: t.u}
		}
		return &Literal{Off: t.off, Kind: LitInt, Int: t.i}
	case tFloat:
		p.advance()
		return &Literal{Off: t.off, Kind: LitFloat, Float: t.f}
	case tString:
		p.advance()
		return stringLit(t)
	case tName:
		return p.call()
	case tKeyword:
		if t.word == "IF" {
			return p.call()
		}
	case tPunct:
		if t.text == "(" {
			p.enter(t.off)
			p.advance()
			x := p.orExpr()
			p.leave()
			p.expectPunct(")", "to close the '(' at byte "+itoa(t.off))
			return x
		}
	}
	p.failf(t.off, "expected a field, literal, function call or '(', found %s", describe(t))
	return nil
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// call = name "(" [ orExpr { "," orExpr } ] ")".
func (p *parser) call() Node {
	t := p.tok
	name := t.word
	p.advance()
	ar, known := knownFuncs[name]
	if !p.isPunct("(") {
		if known || aggregateFuncs[name] || laterFuncs[name] {
			p.failf(p.tok.off, "expected '(' after function name %s, found %s", t.text, describe(p.tok))
		}
		p.failf(t.off, "unexpected word '%s': field names start with '/' and strings are quoted", t.text)
	}
	if aggregateFuncs[name] {
		p.failf(t.off, "aggregate function %s is not allowed in a filter", t.text)
	}
	if laterFuncs[name] {
		p.failf(t.off, "function %s is not supported", t.text)
	}
	if !known {
		p.failf(t.off, "unknown function %s", t.text)
	}
	p.enter(p.tok.off)
	p.advance()
	var args []Node
	if !p.isPunct(")") {
		args = append(args, p.orExpr())
		for p.isPunct(",") {
			p.advance()
			args = append(args, p.orExpr())
		}
	}
	p.leave()
	p.expectPunct(")", "after the arguments of "+name)
	if len(args) < ar.min || ar.max >= 0 && len(args) > ar.max {
		p.failf(t.off, "function %s takes %s, not %d", name, ar, len(args))
	}
	return &Call{Off: t.off, Name: name, Args: args}
}

// arity is the accepted argument count of a function; max < 0 means no
// upper bound.
type arity struct{ min, max int }

func (a arity) String() string {
	plural := func(n int) string {
		if n == 1 {
			return "1 argument"
		}
		return itoa(n) + " arguments"
	}
	switch {
	case a.max < 0:
		return "at least " + plural(a.min)
	case a.min == a.max:
		return plural(a.min)
	default:
		return itoa(a.min) + " to " + plural(a.max)
	}
}

// knownFuncs are the scalar functions a filter may call (the ones the
// broker implements or will implement cheaply), by upper-case name, with
// their argument counts. Where AMPS's documentation does not give a
// signature, the count is the natural one for the described behaviour.
var knownFuncs = map[string]arity{
	"IF":                 {3, 3},
	"COALESCE":           {1, -1},
	"CONCAT":             {1, -1},
	"UPPER":              {1, 1},
	"LOWER":              {1, 1},
	"INSTR":              {2, 2},
	"INSTR_I":            {2, 2},
	"STREQUAL_I":         {2, 2},
	"SUBSTR":             {2, 3},
	"REVERSE":            {1, 1},
	"REPLACE":            {3, 3},
	"REGEXP_REPLACE":     {3, 3},
	"REGEXP_MATCH":       {2, 2},
	"ABS":                {1, 1},
	"CRC32":              {1, 1},
	"ARRAY_COUNT":        {1, 1},
	"TOPIC_NAME":         {0, 0},
	"MESSAGE_SIZE":       {0, 0},
	"CLIENT_NAME":        {0, 0},
	"AMPS_INSTANCE_NAME": {0, 0},
	"UNIX_TIMESTAMP":     {0, 0},
	"TRUE_VALUE":         {0, 0},
	"FALSE_VALUE":        {0, 0},
	"NAN_VALUE":          {0, 0},
	"CHAR_VALUE":         {1, 1},
}

// aggregateFuncs compute over many messages (views and projections only);
// a filter looks at one message, so they are refused.
var aggregateFuncs = map[string]bool{
	"SUM": true, "COUNT": true, "AVG": true, "MIN": true, "MAX": true,
	"COUNT_DISTINCT": true, "STDDEV_POP": true, "STDDEV_SAMP": true,
}

// laterFuncs are AMPS functions the broker does not provide (yet): SOW
// record times, date formatting, geodesic distance. They are refused with a
// message that says so rather than "unknown".
var laterFuncs = map[string]bool{
	"LAST_UPDATED": true, "LAST_READ": true, "STRFTIME": true, "GEO_DISTANCE": true,
}
