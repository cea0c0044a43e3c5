package filter

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A reference evaluator for differential testing: a direct walk over the
// syntax tree with Go values (nil = NULL, int64, uint64 for values above
// the int64 maximum, float64, string), written from the rules and sharing
// nothing with the compiled evaluator but the parser and the extractor.

type refEval struct {
	fields map[string]*Field // by path key
	built  int               // bytes of text built by text functions
}

// refBuilt counts text built by a text function. The compiled evaluator
// gives NULL once an evaluation builds more than its budget; the reference
// evaluates at least every call that the compiled one does (constants
// included, without the short cuts of IN and the existential operators),
// so a filter for which it builds no more than TextBudget is one where the
// budget played no part. It gives up on the others (the budget's own
// behaviour is tested directly).
func (r *refEval) refBuilt(s string) refVal {
	r.built += len(s)
	if r.built > TextBudget {
		panic(errRefUnsupported)
	}
	return refStr(s)
}

var errRefUnsupported = errors.New("reference: unsupported")

type rlogic int

const (
	rFalse rlogic = iota
	rTrue
	rNull
)

var refNumRE = regexp.MustCompile(`^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$`)

// refNum is the numeric reading of a string: ok false when not numeric.
func refNum(s string) (any, bool) {
	if !refNumRE.MatchString(s) {
		return nil, false
	}
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, true
		}
		if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			return u, true
		}
	}
	f, _ := strconv.ParseFloat(s, 64)
	return f, true
}

// refText is a value's text; raw is the message's spelling when known.
type refVal struct {
	v   any
	raw string
}

func refFrom(v Value) refVal {
	switch v.Kind {
	case Int, Float:
		n, ok := refNum(string(v.Raw))
		if !ok {
			return refVal{v: string(v.Raw)}
		}
		return refVal{v: n, raw: string(v.Raw)}
	case String:
		return refVal{v: string(v.Raw)}
	case Bool:
		if string(v.Raw) == "true" {
			return refVal{v: int64(1)}
		}
		return refVal{v: int64(0)}
	}
	return refVal{}
}

func refIsNum(v any) bool {
	switch v.(type) {
	case int64, uint64, float64:
		return true
	}
	return false
}

func refIsNaN(v any) bool { f, ok := v.(float64); return ok && math.IsNaN(f) }

func refBig(v any) *big.Float {
	switch x := v.(type) {
	case int64:
		return new(big.Float).SetInt64(x)
	case uint64:
		return new(big.Float).SetUint64(x)
	}
	return nil
}

// refCmp orders a and b; ok false makes every comparison FALSE.
func refCmp(a, b any) (int, bool) {
	if a == nil || b == nil || refIsNaN(a) || refIsNaN(b) {
		return 0, false
	}
	as, aStr := a.(string)
	bs, bStr := b.(string)
	if aStr && bStr {
		return strings.Compare(as, bs), true
	}
	if aStr {
		n, ok := refNum(as)
		if !ok {
			return 1, true
		}
		a = n
	}
	if bStr {
		n, ok := refNum(bs)
		if !ok {
			return -1, true
		}
		b = n
	}
	_, af := a.(float64)
	_, bf := b.(float64)
	if af || bf {
		x, y := refF(a), refF(b)
		if math.IsNaN(x) || math.IsNaN(y) {
			return 0, false
		}
		switch {
		case x < y:
			return -1, true
		case x > y:
			return 1, true
		}
		return 0, true
	}
	return refBig(a).Cmp(refBig(b)), true
}

func refF(v any) float64 {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case uint64:
		return float64(x)
	case float64:
		return x
	}
	return math.NaN()
}

func refOp(op Op, c int) bool {
	return map[Op]bool{OpEq: c == 0, OpNe: c != 0, OpLt: c < 0, OpLe: c <= 0, OpGt: c > 0, OpGe: c >= 0}[op]
}

func (r *refEval) field(id *Ident) *Field { return r.fields[pathKey(id.Steps)] }

// values returns the values an existential operator sees of n.
func (r *refEval) values(n Node) []refVal {
	if id, ok := n.(*Ident); ok && id.Subscript == NoSubscript {
		var out []refVal
		for _, v := range r.field(id).Values {
			out = append(out, refFrom(v))
		}
		return out
	}
	return []refVal{r.val(n)}
}

func refToNum(v any) any {
	if s, ok := v.(string); ok {
		n, ok := refNum(s)
		if !ok {
			return math.NaN()
		}
		return n
	}
	return v
}

func (r *refEval) text(v refVal) string {
	if v.raw != "" {
		return v.raw
	}
	switch x := v.v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return ""
}

func refStr(s string) refVal {
	if s == "" {
		return refVal{}
	}
	return refVal{v: s}
}

func (r *refEval) val(n Node) refVal {
	switch n := n.(type) {
	case *Literal:
		switch n.Kind {
		case LitInt:
			return refVal{v: n.Int}
		case LitUint:
			return refVal{v: n.Uint}
		case LitFloat:
			return refVal{v: n.Float}
		}
		return refStr(n.Str)
	case *Ident:
		fl := r.field(n)
		if n.Subscript == NoSubscript {
			if len(fl.Values) == 0 {
				return refVal{}
			}
			return refFrom(fl.Values[0])
		}
		i := n.Subscript
		if i >= int64(len(fl.Values)) || (!fl.Array && i > 0) {
			return refVal{}
		}
		return refFrom(fl.Values[i])
	case *Unary:
		x := r.val(n.X)
		if x.v == nil {
			return refVal{}
		}
		v := refToNum(x.v)
		if !n.Neg {
			return refVal{v: v}
		}
		switch y := v.(type) {
		case int64:
			if y == math.MinInt64 {
				return refVal{v: uint64(1 << 63)}
			}
			return refVal{v: -y}
		case uint64:
			if y == 1<<63 {
				return refVal{v: int64(math.MinInt64)}
			}
			return refVal{v: -float64(y)}
		}
		return refVal{v: -v.(float64)}
	case *Binary:
		if n.Op.IsArithmetic() {
			return refArith(n.Op, r.val(n.L).v, r.val(n.R).v)
		}
	case *Call:
		return r.call(n)
	}
	switch r.logic(n) {
	case rTrue:
		return refVal{v: int64(1)}
	case rFalse:
		return refVal{v: int64(0)}
	}
	return refVal{}
}

func refArith(op Op, a, b any) refVal {
	if a == nil || b == nil {
		return refVal{}
	}
	a, b = refToNum(a), refToNum(b)
	if refIsNaN(a) || refIsNaN(b) {
		return refVal{v: math.NaN()}
	}
	ai, aInt := a.(int64)
	bi, bInt := b.(int64)
	if (op == OpDiv || op == OpMod) && refF(b) == 0 {
		return refVal{v: math.NaN()}
	}
	if aInt && bInt {
		x, y := big.NewInt(ai), big.NewInt(bi)
		z := new(big.Int)
		switch op {
		case OpAdd:
			z.Add(x, y)
		case OpSub:
			z.Sub(x, y)
		case OpMul:
			z.Mul(x, y)
		case OpDiv:
			z.Quo(x, y) // truncated
		case OpMod:
			z.Rem(x, y) // sign of the dividend
		}
		if z.IsInt64() {
			return refVal{v: z.Int64()}
		}
	}
	x, y := refF(a), refF(b)
	switch op {
	case OpAdd:
		return refVal{v: x + y}
	case OpSub:
		return refVal{v: x - y}
	case OpMul:
		return refVal{v: x * y}
	case OpDiv:
		return refVal{v: x / y}
	}
	return refVal{v: math.Mod(x, y)}
}

func (r *refEval) call(n *Call) refVal {
	switch n.Name {
	case "IF":
		if r.logic(n.Args[0]) == rTrue {
			return r.val(n.Args[1])
		}
		return r.val(n.Args[2])
	case "COALESCE":
		for _, a := range n.Args {
			if v := r.val(a); v.v != nil {
				return v
			}
		}
		return refVal{}
	case "CONCAT":
		var sb strings.Builder
		for _, a := range n.Args {
			if v := r.val(a); v.v != nil {
				sb.WriteString(r.text(v))
			}
		}
		return r.refBuilt(sb.String())
	case "UPPER", "LOWER", "REVERSE":
		v := r.val(n.Args[0])
		if v.v == nil {
			return refVal{}
		}
		b := []byte(r.text(v))
		for i, c := range b {
			if n.Name == "UPPER" && c >= 'a' && c <= 'z' {
				b[i] = c - 32
			}
			if n.Name == "LOWER" && c >= 'A' && c <= 'Z' {
				b[i] = c + 32
			}
		}
		if n.Name == "REVERSE" {
			for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
				b[i], b[j] = b[j], b[i]
			}
		}
		return r.refBuilt(string(b))
	case "INSTR":
		a, b := r.val(n.Args[0]), r.val(n.Args[1])
		if a.v == nil || b.v == nil {
			return refVal{}
		}
		return refVal{v: int64(strings.Index(r.text(a), r.text(b)) + 1)}
	case "TRUE_VALUE":
		return refVal{v: int64(1)}
	case "FALSE_VALUE":
		return refVal{v: int64(0)}
	case "NAN_VALUE":
		return refVal{v: math.NaN()}
	}
	panic(errRefUnsupported)
}

// truthOf is a value used as a condition.
func refTruth(v any) rlogic {
	if v == nil {
		return rNull
	}
	v = refToNum(v)
	if refIsNaN(v) || refF(v) == 0 {
		return rFalse
	}
	return rTrue
}

func (r *refEval) logic(n Node) rlogic {
	b2l := func(b bool) rlogic {
		if b {
			return rTrue
		}
		return rFalse
	}
	switch n := n.(type) {
	case *Binary:
		switch {
		case n.Op == OpAnd:
			l := r.logic(n.L)
			if l != rTrue {
				return l
			}
			return r.logic(n.R)
		case n.Op == OpOr:
			l := r.logic(n.L)
			if l != rFalse {
				return l
			}
			return r.logic(n.R)
		case n.Op.IsComparison():
			for _, a := range r.values(n.L) {
				for _, b := range r.values(n.R) {
					if c, ok := refCmp(a.v, b.v); ok && refOp(n.Op, c) {
						return rTrue
					}
				}
			}
			return rFalse
		}
	case *Not:
		switch r.logic(n.X) {
		case rTrue:
			return rFalse
		case rFalse:
			return rTrue
		}
		return rNull
	case *Between:
		lo, hi := r.val(n.Lo).v, r.val(n.Hi).v
		hit := false
		for _, a := range r.values(n.X) {
			c1, ok1 := refCmp(a.v, lo)
			c2, ok2 := refCmp(a.v, hi)
			if ok1 && ok2 && c1 >= 0 && c2 <= 0 {
				hit = true
			}
		}
		return b2l(hit != n.Negate)
	case *In:
		hit := false
		for _, a := range r.values(n.X) {
			for _, it := range n.List {
				for _, b := range r.values(it) {
					if c, ok := refCmp(a.v, b.v); ok && c == 0 {
						hit = true
					}
				}
			}
		}
		return b2l(hit != n.Negate)
	case *Like:
		// A raw pattern is a literal substring; any other is a regexp
		// (Compile has refused those RE2 cannot run).
		match := func(s string) bool { return strings.Contains(s, n.Pattern.Str) }
		if !n.Pattern.Raw {
			match = regexp.MustCompile(n.Pattern.Str).MatchString
		}
		hit := false
		for _, a := range r.values(n.X) {
			if a.v != nil && match(r.text(a)) {
				hit = true
			}
		}
		return b2l(hit != n.Negate)
	case *Affix:
		hit := false
		for _, a := range r.values(n.X) {
			for _, it := range n.List {
				for _, b := range r.values(it) {
					if a.v == nil || b.v == nil {
						continue
					}
					s, p := r.text(a), r.text(b)
					if !n.Suffix && strings.HasPrefix(s, p) || n.Suffix && strings.HasSuffix(s, p) {
						hit = true
					}
				}
			}
		}
		return b2l(hit != n.Negate)
	case *IsNull:
		return b2l((r.val(n.X).v == nil) != n.Negate)
	case *IsNaN:
		return b2l(refIsNaN(r.val(n.X).v) != n.Negate)
	}
	return refTruth(r.val(n).v)
}

// refMatch evaluates src over a JSON body with the reference evaluator;
// ok is false when the filter uses something the reference lacks.
func refMatch(f *Filter, body []byte) (match, ok bool) {
	x, err := NewExtractor("json", f.Paths())
	if err != nil {
		panic(err)
	}
	fs := x.NewFields()
	x.Extract(body, fs)
	r := &refEval{fields: map[string]*Field{}}
	for _, p := range f.Paths() {
		s, _ := x.Slot(p)
		r.fields[pathKey(p)] = fs.Field(s)
	}
	defer func() {
		if e := recover(); e != nil {
			if e != errRefUnsupported {
				panic(e)
			}
			ok = false
		}
	}()
	return r.logic(f.root) == rTrue, true
}

// diffBodies are the messages the differential tests evaluate over.
var diffBodies = []string{
	f1,
	`{"a":1,"b":"2","c":2.5,"d":"x","e":[1,"2",3.5,"y",null],"f":true,"g":"","h":null}`,
	`{"a":-7,"b":"-7.0","c":0,"d":"1e3","e":[],"f":false,"g":9223372036854775807,"h":18446744073709551615}`,
	`{"a":"abc","b":0.0,"c":"-0","d":"ACME","e":[[1,2],[3]],"f":[{"x":1},{"x":"a"}],"g":-9223372036854775808,"h":"  5"}`,
	`{"a":[-1,0,1],"b":[],"c":["a","b"],"d":1.5e300,"e":"nan","f":".5","g":"5.","h":"+3"}`,
}

// checkDiff compiles src and compares Match with the reference over every
// diffBody. Filters that do not compile are checked for a proper error.
func checkDiff(t *testing.T, src string) {
	t.Helper()
	start := time.Now()
	f, err := Compile(src)
	if d := time.Since(start); len(src) <= MaxLen && d > parseBudget {
		t.Fatalf("Compile of a %d-byte input took %v", len(src), d)
	}
	if err != nil {
		var fe *Error
		if !errors.As(err, &fe) || fe.Offset < 0 || fe.Offset > len(src) {
			t.Fatalf("Compile(%q): %v, want a positioned *Error", src, err)
		}
		return
	}
	if len(src) > 4096 {
		return // the reference recurses without bound and is slow on huge trees
	}
	defer func() {
		if d := time.Since(start); d > parseBudget {
			t.Fatalf("compiling and evaluating a %d-byte filter took %v", len(src), d)
		}
	}()
	for _, body := range diffBodies {
		got, err := f.MatchBody("json", []byte(body), nil)
		if err != nil {
			t.Fatalf("MatchBody(%q): %v", src, err)
		}
		want, ok := refMatch(f, []byte(body))
		if ok && got != want {
			t.Fatalf("%s over %s: compiled %v, reference %v", src, body, got, want)
		}
	}
}

// genFilter writes a random filter over the diffBodies' fields.
func genFilter(r *rand.Rand, depth int) string {
	fields := []string{"/a", "/b", "/c", "/d", "/e", "/f", "/g", "/h", "/e[1]", "/a[0]", "/f/x", "/sym", "/lvl", "/lvl[2]", "/tags", "/nosuch"}
	lits := []string{"0", "1", "-1", "2", "2.5", "-7", "'2'", "'x'", "'abc'", "''", "'1e3'", "'ACME'", "9223372036854775807", "18446744073709551615", "-9223372036854775808", "0.0", "'-0'", "3.5"}
	var val func(d int) string
	val = func(d int) string {
		if d <= 0 {
			if r.IntN(2) == 0 {
				return fields[r.IntN(len(fields))]
			}
			return lits[r.IntN(len(lits))]
		}
		switch r.IntN(9) {
		case 0, 1:
			return fields[r.IntN(len(fields))]
		case 2:
			return lits[r.IntN(len(lits))]
		case 3:
			ops := []string{" + ", " - ", " * ", " / ", " % "}
			return "(" + val(d-1) + ops[r.IntN(len(ops))] + val(d-1) + ")"
		case 4:
			return "-" + val(d-1)
		case 5:
			fn := []string{"UPPER", "LOWER", "REVERSE"}
			return fn[r.IntN(len(fn))] + "(" + val(d-1) + ")"
		case 6:
			return "CONCAT(" + val(d-1) + ", " + val(d-1) + ")"
		case 7:
			return "COALESCE(" + val(d-1) + ", " + val(d-1) + ")"
		default:
			return "IF(" + genFilter(r, d-1) + ", " + val(d-1) + ", " + val(d-1) + ")"
		}
	}
	list := func(d int) string {
		n := 1 + r.IntN(3)
		var s []string
		for range n {
			s = append(s, val(d))
		}
		return "(" + strings.Join(s, ", ") + ")"
	}
	not := func() string {
		if r.IntN(3) == 0 {
			return " NOT"
		}
		return ""
	}
	if depth <= 0 {
		return val(0) + " = " + val(0)
	}
	switch r.IntN(12) {
	case 0:
		return "(" + genFilter(r, depth-1) + " AND " + genFilter(r, depth-1) + ")"
	case 1:
		return "(" + genFilter(r, depth-1) + " OR " + genFilter(r, depth-1) + ")"
	case 2:
		return "NOT " + genFilter(r, depth-1)
	case 3, 4:
		ops := []string{" = ", " != ", " < ", " <= ", " > ", " >= "}
		return val(depth-1) + ops[r.IntN(len(ops))] + val(depth-1)
	case 5:
		return val(depth-1) + not() + " BETWEEN " + val(depth-1) + " AND " + val(depth-1)
	case 6:
		return val(depth-1) + not() + " IN " + list(depth-1)
	case 7:
		pats := []string{"'^a'", "'b$'", "'x'", "r'.'", "'.'", "'^-?[0-9]+$'", "'(?i)acme'", "r'1e'"}
		return val(depth-1) + not() + " LIKE " + pats[r.IntN(len(pats))]
	case 8:
		kw := []string{" BEGINS WITH ", " ENDS WITH "}
		return val(depth-1) + not() + kw[r.IntN(2)] + list(depth-1)
	case 9:
		return val(depth-1) + " IS" + not() + " NULL"
	case 10:
		return val(depth-1) + " IS" + not() + " NAN"
	}
	return val(depth - 1) // a bare value as a condition
}

func TestEvalDifferential(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 4000
	if testing.Short() {
		n = 500
	}
	for range n {
		checkDiff(t, genFilter(r, 1+r.IntN(4)))
	}
}

func FuzzEval(f *testing.F) {
	for _, s := range workedExamples {
		f.Add(s)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		f.Add(genFilter(r, 1+r.IntN(4)))
	}
	f.Fuzz(func(t *testing.T, src string) {
		// Long inputs are left to FuzzParse and TestCompileWorstCases.
		// Go's fuzzer minimises every input that finds new coverage by
		// trying to delete each substring, which is quadratic in its
		// length: a 1 KiB input keeps a worker minimising, at no
		// throughput, for up to -fuzzminimizetime (60 s), which is what
		// stalled this fuzzer. Semantics need no more than a few
		// hundred bytes (the seeds are at most about 250).
		if len(src) > maxEvalFuzzLen {
			return
		}
		checkDiff(t, src)
	})
}

// maxEvalFuzzLen is the longest input FuzzEval evaluates.
const maxEvalFuzzLen = 384

// TestCompileWorstCases: compile time stays bounded on 64 KiB inputs.
func TestCompileWorstCases(t *testing.T) {
	fill := func(unit string) string { return strings.Repeat(unit, MaxLen/len(unit)) }
	for _, src := range []string{
		"1" + fill(" + 1")[:MaxLen-8],
		"/a = 1" + fill(" OR /a = 1")[:MaxLen-8],
		"/a" + fill(" * /b")[:MaxLen-8],
		"/a IN (1" + fill(", 'x'")[:MaxLen-16] + ")",
		"CONCAT('a'" + fill(", /b")[:MaxLen-16] + ") = 'a'",
		strings.Repeat("IF(", 120) + "1" + strings.Repeat(", 1, 2)", 120) + " = 1",
		strings.Repeat("IF(/a, ", 120) + "1" + strings.Repeat(", 2)", 120) + " = 1",
		strings.Repeat("CONCAT(", 120) + "/a" + strings.Repeat(", /b)", 120) + " = 1",
		"/x LIKE '" + fill("a*")[:MaxLen-16] + "'",
	} {
		checkDiff(t, src)
		if f, err := Compile(src); err == nil {
			if _, err := f.MatchBody("json", []byte(f1), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	_ = bytes.Equal
	_ = fmt.Sprint
}
