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
	node()
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
// '+'. A '-' directly before a numeric literal is folded into the literal
// where the result is representable, so `-5` is a *Literal, not a *Unary.
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

func (*Binary) node()  {}
func (*Not) node()     {}
func (*Unary) node()   {}
func (*Between) node() {}
func (*In) node()      {}
func (*Like) node()    {}
func (*Affix) node()   {}
func (*IsNull) node()  {}
func (*IsNaN) node()   {}
func (*Call) node()    {}
func (*Ident) node()   {}
func (*Literal) node() {}

// String implements Node.
func (n *Binary) String() string {
	return "(" + n.L.String() + " " + n.Op.String() + " " + n.R.String() + ")"
}

// String implements Node.
func (n *Not) String() string { return "(NOT " + n.X.String() + ")" }

// String implements Node.
func (n *Unary) String() string {
	if n.Neg {
		return "(-" + n.X.String() + ")"
	}
	return "(+" + n.X.String() + ")"
}

func notWord(neg bool) string {
	if neg {
		return " NOT"
	}
	return ""
}

func listString(list []Node) string {
	var b strings.Builder
	b.WriteByte('(')
	for i, x := range list {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(x.String())
	}
	b.WriteByte(')')
	return b.String()
}

// String implements Node.
func (n *Between) String() string {
	return "(" + n.X.String() + notWord(n.Negate) + " BETWEEN " + n.Lo.String() + " AND " + n.Hi.String() + ")"
}

// String implements Node.
func (n *In) String() string {
	return "(" + n.X.String() + notWord(n.Negate) + " IN " + listString(n.List) + ")"
}

// String implements Node.
func (n *Like) String() string {
	return "(" + n.X.String() + notWord(n.Negate) + " LIKE " + n.Pattern.String() + ")"
}

// String implements Node.
func (n *Affix) String() string {
	word := " BEGINS WITH "
	if n.Suffix {
		word = " ENDS WITH "
	}
	return "(" + n.X.String() + notWord(n.Negate) + word + listString(n.List) + ")"
}

// String implements Node.
func (n *IsNull) String() string {
	return "(" + n.X.String() + " IS" + notWord(n.Negate) + " NULL)"
}

// String implements Node.
func (n *IsNaN) String() string {
	return "(" + n.X.String() + " IS" + notWord(n.Negate) + " NAN)"
}

// String implements Node.
func (n *Call) String() string {
	if len(n.Args) == 0 {
		return n.Name + "()"
	}
	return n.Name + listString(n.Args)
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

// String implements Node. Steps that the slash form cannot spell (spaces,
// punctuation) make the whole identifier print in the bracketed form.
func (n *Ident) String() string {
	bracket := false
	for _, s := range n.Steps {
		if !plainStep(s) {
			bracket = true
		}
	}
	var b strings.Builder
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
	return b.String()
}

// String implements Node. Floats always print with a '.' or an exponent so
// that they read back as floats; strings print single-quoted with `\'`,
// `\\` and `\xHH` (for bytes outside printable ASCII) escapes; raw strings
// print with the r prefix and whichever quote their text does not contain.
func (n *Literal) String() string {
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
