package filter

import (
	"math"
	"strconv"
	"strings"
)

// The syntax tree.
//
// Every node records Off, the byte offset in the source of the token that
// best names it (the operator of a binary node, the keyword of a predicate,
// the first byte of an identifier, literal or call), so that a later stage
// can report problems with a position.
//
// The node set mirrors the grammar levels one to one:
//
//	*Binary    L op R for OR, AND, the comparisons and the arithmetic operators
//	*Not       NOT X (prefix NOT over a whole predicate)
//	*Unary     -X or +X (arithmetic sign)
//	*Between   X [NOT] BETWEEN Lo AND Hi
//	*In        X [NOT] IN (List...)
//	*Like      X [NOT] LIKE 'pattern' (pattern is always a string literal)
//	*Affix     X [NOT] BEGINS WITH (List...) or X [NOT] ENDS WITH (List...)
//	*IsNull    X IS [NOT] NULL
//	*IsNaN     X IS [NOT] NAN
//	*Call      NAME(Args...), IF included; Name is upper case
//	*Ident     a field: its path steps and optional subscript
//	*Literal   an integer, unsigned integer, float or string constant
//
// Parentheses leave no node of their own: grouping is the shape of the tree.

// Node is one node of a parsed filter.
type Node interface {
	// Pos is the byte offset in the source that the node is reported at.
	Pos() int
	// String prints the node in canonical form: every composite expression
	// is wrapped in parentheses, keywords are upper case, `==` prints as `=`,
	// `<>` as `!=` and MOD as `%`. Parsing the canonical form yields a tree
	// whose canonical form is the same string.
	String() string
	format(b *strings.Builder)
}

// Op is a binary operator.
type Op uint8

// The binary operators, loosest binding first.
const (
	OpOr  Op = iota + 1 // OR
	OpAnd               // AND
	OpEq                // = and ==
	OpNe                // != and <>
	OpLt                // <
	OpLe                // <=
	OpGt                // >
	OpGe                // >=
	OpAdd               // +
	OpSub               // binary -
	OpMul               // *
	OpDiv               // /
	OpMod               // % and MOD
)

var opText = [...]string{
	OpOr: "OR", OpAnd: "AND", OpEq: "=", OpNe: "!=", OpLt: "<", OpLe: "<=",
	OpGt: ">", OpGe: ">=", OpAdd: "+", OpSub: "-", OpMul: "*", OpDiv: "/", OpMod: "%",
}

// String is the canonical spelling of the operator.
func (o Op) String() string {
	if int(o) < len(opText) && opText[o] != "" {
		return opText[o]
	}
	return "Op(" + strconv.Itoa(int(o)) + ")"
}

// IsComparison reports whether o is one of = != < <= > >=.
func (o Op) IsComparison() bool { return o >= OpEq && o <= OpGe }

// IsArithmetic reports whether o is one of + - * / %.
func (o Op) IsArithmetic() bool { return o >= OpAdd && o <= OpMod }

// Binary is L Op R.
type Binary struct {
	Off  int
	Op   Op
	L, R Node
}

// Not is the logical negation of a predicate.
type Not struct {
	Off int
	X   Node
}

// Unary is an arithmetic sign applied to X: Neg is true for '-', false for
// '+'. A '-' applied to a numeric literal (directly or through parentheses)
// is folded into the literal where the result is representable, so `-5` and
// `-(5)` are the *Literal -5, while `-18446744073709551615` stays a *Unary.
type Unary struct {
	Off int
	Neg bool
	X   Node
}

// Between is X [NOT] BETWEEN Lo AND Hi, bounds inclusive.
type Between struct {
	Off    int
	Negate bool
	X      Node
	Lo, Hi Node
}

// In is X [NOT] IN (List...).
type In struct {
	Off    int
	Negate bool
	X      Node
	List   []Node
}

// Like is X [NOT] LIKE Pattern. The pattern is a string literal; when
// Pattern.Raw is set it matches its characters literally.
type Like struct {
	Off     int
	Negate  bool
	X       Node
	Pattern *Literal
}

// Affix is X [NOT] BEGINS WITH (List...) when Suffix is false and
// X [NOT] ENDS WITH (List...) when Suffix is true.
type Affix struct {
	Off    int
	Negate bool
	Suffix bool
	X      Node
	List   []Node
}

// IsNull is X IS [NOT] NULL.
type IsNull struct {
	Off    int
	Negate bool
	X      Node
}

// IsNaN is X IS [NOT] NAN.
type IsNaN struct {
	Off    int
	Negate bool
	X      Node
}

// Call is a function call. Name is the upper-case function name (function
// names are case-insensitive); the parser accepts only known, non-aggregate
// functions with an accepted number of arguments.
type Call struct {
	Off  int
	Name string
	Args []Node
}

// NoSubscript is the Ident.Subscript of an identifier without `[n]`.
const NoSubscript = -1

// Ident is a field reference. Steps are the path steps in order, without
// slashes: `/a/b` is ["a", "b"], `/55` is ["55"], `/x/@id` is ["x", "@id"]
// (an XML attribute step keeps its '@'), `[/odd key]` is ["odd key"].
// Subscript is the 0-based `[n]` that followed the identifier, or
// NoSubscript.
type Ident struct {
	Off       int
	Steps     []string
	Subscript int64
}

// LitKind is the type of a literal.
type LitKind uint8

// The literal kinds.
const (
	LitInt    LitKind = iota + 1 // Int holds the value
	LitUint                      // Uint holds the value, above math.MaxInt64
	LitFloat                     // Float holds the value
	LitString                    // Str holds the bytes
)

// Literal is a constant. Exactly one value field is meaningful, chosen by
// Kind. Raw marks a raw string (`r'...'`), whose characters a LIKE pattern
// matches literally.
type Literal struct {
	Off   int
	Kind  LitKind
	Int   int64
	Uint  uint64
	Float float64
	Str   string
	Raw   bool
}

// Pos implements Node.
func (n *Binary) Pos() int { return n.Off }

// Pos implements Node.
func (n *Not) Pos() int { return n.Off }

// Pos implements Node.
func (n *Unary) Pos() int { return n.Off }

// Pos implements Node.
func (n *Between) Pos() int { return n.Off }

// Pos implements Node.
func (n *In) Pos() int { return n.Off }

// Pos implements Node.
func (n *Like) Pos() int { return n.Off }

// Pos implements Node.
func (n *Affix) Pos() int { return n.Off }

// Pos implements Node.
func (n *IsNull) Pos() int { return n.Off }

// Pos implements Node.
func (n *IsNaN) Pos() int { return n.Off }

// Pos implements Node.
func (n *Call) Pos() int { return n.Off }

// Pos implements Node.
func (n *Ident) Pos() int { return n.Off }

// Pos implements Node.
func (n *Literal) Pos() int { return n.Off }

// Each node prints itself into a shared builder, so that printing a long
// chain costs time linear in the output, not quadratic.

// String implements Node.
func (n *Binary) String() string { return str(n) }

// String implements Node.
func (n *Not) String() string { return str(n) }

// String implements Node.
func (n *Unary) String() string { return str(n) }

// String implements Node.
func (n *Between) String() string { return str(n) }

// String implements Node.
func (n *In) String() string { return str(n) }

// String implements Node.
func (n *Like) String() string { return str(n) }

// String implements Node.
func (n *Affix) String() string { return str(n) }

// String implements Node.
func (n *IsNull) String() string { return str(n) }

// String implements Node.
func (n *IsNaN) String() string { return str(n) }

// String implements Node.
func (n *Call) String() string { return str(n) }

// String implements Node.
func (n *Ident) String() string { return str(n) }

// String implements Node.
func (n *Literal) String() string { return str(n) }

func str(n Node) string {
	var b strings.Builder
	n.format(&b)
	return b.String()
}

func (n *Binary) format(b *strings.Builder) {
	b.WriteByte('(')
	n.L.format(b)
	b.WriteByte(' ')
	b.WriteString(n.Op.String())
	b.WriteByte(' ')
	n.R.format(b)
	b.WriteByte(')')
}

func (n *Not) format(b *strings.Builder) {
	b.WriteString("(NOT ")
	n.X.format(b)
	b.WriteByte(')')
}

func (n *Unary) format(b *strings.Builder) {
	if n.Neg {
		b.WriteString("(-")
	} else {
		b.WriteString("(+")
	}
	n.X.format(b)
	b.WriteByte(')')
}

func writeNot(b *strings.Builder, neg bool) {
	if neg {
		b.WriteString(" NOT")
	}
}

func formatList(b *strings.Builder, list []Node) {
	b.WriteByte('(')
	for i, x := range list {
		if i > 0 {
			b.WriteString(", ")
		}
		x.format(b)
	}
	b.WriteByte(')')
}

func (n *Between) format(b *strings.Builder) {
	b.WriteByte('(')
	n.X.format(b)
	writeNot(b, n.Negate)
	b.WriteString(" BETWEEN ")
	n.Lo.format(b)
	b.WriteString(" AND ")
	n.Hi.format(b)
	b.WriteByte(')')
}

func (n *In) format(b *strings.Builder) {
	b.WriteByte('(')
	n.X.format(b)
	writeNot(b, n.Negate)
	b.WriteString(" IN ")
	formatList(b, n.List)
	b.WriteByte(')')
}

func (n *Like) format(b *strings.Builder) {
	b.WriteByte('(')
	n.X.format(b)
	writeNot(b, n.Negate)
	b.WriteString(" LIKE ")
	n.Pattern.format(b)
	b.WriteByte(')')
}

func (n *Affix) format(b *strings.Builder) {
	b.WriteByte('(')
	n.X.format(b)
	writeNot(b, n.Negate)
	if n.Suffix {
		b.WriteString(" ENDS WITH ")
	} else {
		b.WriteString(" BEGINS WITH ")
	}
	formatList(b, n.List)
	b.WriteByte(')')
}

func (n *IsNull) format(b *strings.Builder) {
	b.WriteByte('(')
	n.X.format(b)
	b.WriteString(" IS")
	writeNot(b, n.Negate)
	b.WriteString(" NULL)")
}

func (n *IsNaN) format(b *strings.Builder) {
	b.WriteByte('(')
	n.X.format(b)
	b.WriteString(" IS")
	writeNot(b, n.Negate)
	b.WriteString(" NAN)")
}

func (n *Call) format(b *strings.Builder) {
	b.WriteString(n.Name)
	if len(n.Args) == 0 {
		b.WriteString("()")
		return
	}
	formatList(b, n.Args)
}

// plainStep reports whether a step can be written in the slash form: a run
// of name characters, or '@' followed by one.
func plainStep(s string) bool {
	if strings.HasPrefix(s, "@") {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isNameChar(s[i]) {
			return false
		}
	}
	return true
}

// format prints the identifier. Steps that the slash form cannot spell
// (spaces, punctuation) make the whole identifier print in the bracketed
// form.
func (n *Ident) format(b *strings.Builder) {
	bracket := false
	for _, s := range n.Steps {
		if !plainStep(s) {
			bracket = true
		}
	}
	if bracket {
		b.WriteByte('[')
	}
	for _, s := range n.Steps {
		b.WriteByte('/')
		b.WriteString(s)
	}
	if bracket {
		b.WriteByte(']')
	}
	if n.Subscript != NoSubscript {
		b.WriteByte('[')
		b.WriteString(strconv.FormatInt(n.Subscript, 10))
		b.WriteByte(']')
	}
}

// format prints the literal. Floats always print with a '.' or an exponent so
// that they read back as floats; strings print single-quoted with `\'`,
// `\\` and `\xHH` (for bytes outside printable ASCII) escapes; raw strings
// print with the r prefix and whichever quote their text does not contain.
func (n *Literal) format(b *strings.Builder) {
	b.WriteString(n.text())
}

func (n *Literal) text() string {
	switch n.Kind {
	case LitInt:
		return strconv.FormatInt(n.Int, 10)
	case LitUint:
		return strconv.FormatUint(n.Uint, 10)
	case LitFloat:
		s := strconv.FormatFloat(n.Float, 'g', -1, 64)
		if math.IsInf(n.Float, 0) || math.IsNaN(n.Float) {
			return s // never produced by the parser
		}
		if !strings.ContainsAny(s, ".e") {
			s += ".0"
		}
		return s
	case LitString:
		if n.Raw {
			if strings.IndexByte(n.Str, '\'') < 0 {
				return "r'" + n.Str + "'"
			}
			return `r"` + n.Str + `"`
		}
		return quote(n.Str)
	}
	return "<bad literal>"
}

func quote(s string) string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			b.WriteString(`\x`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}
