package filter

import (
	"bytes"
	"math"
)

// The compiled form is a tree of closures built once per Bind: a predicate
// node becomes a predFn giving TRUE, FALSE or NULL, a value node a valFn
// giving a val. Constant sub-trees are evaluated once at build time.

// tri is the result of a logical expression.
type tri uint8

const (
	tFalse tri = iota
	tTrue
	tNull
)

type predFn func(fs *Fields, c *ctx) tri

type valFn func(fs *Fields, c *ctx) val

// truth is the truth value of a non-predicate value used as a condition (a
// bare field, a function result, IF's first argument): a non-zero number
// is TRUE and zero FALSE; NULL is NULL; a string counts by its numeric
// reading, and a string that is not numeric is FALSE [I, §10 item 3]. NaN
// is FALSE [I: NaN "does not match", and a NaN condition must not make a
// whole AND/OR NULL the way a missing field does].
func truth(v val) tri {
	switch v.k {
	case kNull:
		return tNull
	case kStr:
		r := v.reading()
		if r.k == kStr {
			return tFalse
		}
		v = r
	}
	switch v.k {
	case kInt, kUint:
		if v.i != 0 {
			return tTrue
		}
	case kFloat:
		if v.f != 0 && v.f == v.f {
			return tTrue
		}
	}
	return tFalse
}

// triVal is the value of a predicate used as a value: TRUE is 1, FALSE 0,
// NULL NULL.
func triVal(t tri) val {
	switch t {
	case tTrue:
		return trueVal
	case tFalse:
		return falseVal
	}
	return nullVal
}

func not(t tri) tri {
	switch t {
	case tTrue:
		return tFalse
	case tFalse:
		return tTrue
	}
	return tNull // NOT NULL is NULL [I]
}

func isPredicate(n Node) bool {
	switch n := n.(type) {
	case *Binary:
		return n.Op == OpAnd || n.Op == OpOr || n.Op.IsComparison()
	case *Not, *Between, *In, *Like, *Affix, *IsNull, *IsNaN:
		return true
	}
	return false
}

// isConst reports whether n depends on neither the message, the Env nor
// the clock, so that it can be evaluated once at build time.
func (b *builder) isConst(n Node) bool { return !b.f.dyn[n] }

// markDyn records in dyn every node that depends on the message, the Env
// or the clock, in one bottom-up pass, and reports whether n does.
func markDyn(n Node, dyn map[Node]bool) bool {
	_, d := n.(*Ident)
	if c, ok := n.(*Call); ok && envFuncs[c.Name] {
		d = true
	}
	for _, c := range children(n) {
		d = markDyn(c, dyn) || d // every child is visited: all get marked
	}
	if d {
		dyn[n] = true
	}
	return d
}

// envFuncs are the functions whose value is not fixed by their arguments:
// the message functions (which read the Env) and the clock.
var envFuncs = map[string]bool{
	"TOPIC_NAME": true, "MESSAGE_SIZE": true, "CLIENT_NAME": true,
	"AMPS_INSTANCE_NAME": true, "UNIX_TIMESTAMP": true,
}

// constVal evaluates the constant value node n, built as fn, once. Text is
// copied out of the scratch buffer, and a string's numeric reading is
// taken now so that the shared constant is never written during
// evaluation. The text functions of all the filter's constant expressions
// share one budget of TextBudget bytes; Compile refuses a filter that goes
// past it, at the call that does (its arguments, folded before it, did
// not).
func (b *builder) constVal(n Node, fn valFn) val {
	c := b.foldCtx()
	v := fn(nil, c)
	b.endFold(n, c)
	if v.s != nil {
		v.s = bytes.Clone(v.s)
	}
	if v.k == kStr {
		v.reading()
	}
	return v
}

// foldCtx is the scratch context of a constant evaluation, with what is
// left of the filter's constant text budget.
func (b *builder) foldCtx() *ctx { return &ctx{room: b.room} }

// endFold takes the text that the constant evaluation of n in c built from
// the budget, and refuses the filter at n when it went past it.
func (b *builder) endFold(n Node, c *ctx) {
	b.room = c.room
	if c.over && b.compiling {
		what := "the expression"
		if call, ok := n.(*Call); ok {
			what = call.Name
		}
		b.failf(n.Pos(), "%s produces more than %d bytes of text (the limit on the text a filter's constant expressions may build)", what, TextBudget)
	}
}

// pred builds a node used as a condition.
func (b *builder) pred(n Node) predFn {
	if b.isConst(n) {
		fn := b.pred1(n)
		c := b.foldCtx()
		t := fn(nil, c)
		b.endFold(n, c)
		return func(*Fields, *ctx) tri { return t }
	}
	return b.pred1(n)
}

func (b *builder) pred1(n Node) predFn {
	switch n := n.(type) {
	case *Binary:
		switch {
		case n.Op == OpAnd || n.Op == OpOr:
			return b.logic(n)
		case n.Op.IsComparison():
			return b.comparison(n)
		}
	case *Not:
		x := b.pred(n.X)
		return func(fs *Fields, c *ctx) tri { return not(x(fs, c)) }
	case *Between:
		return b.between(n)
	case *In:
		return b.in(n)
	case *Like:
		return b.like(n)
	case *Affix:
		return b.affix(n)
	case *IsNull:
		return b.isNull(n)
	case *IsNaN:
		x := b.val(n.X)
		neg := n.Negate
		return func(fs *Fields, c *ctx) tri {
			v := x(fs, c)
			// Only a number can be NaN: a non-numeric string is not NaN
			// until arithmetic turns it into one [I].
			return boolTri(v.isNaN() != neg)
		}
	}
	v := b.val(n)
	return func(fs *Fields, c *ctx) tri { return truth(v(fs, c)) }
}

func boolTri(b bool) tri {
	if b {
		return tTrue
	}
	return tFalse
}

// logic builds a chain of AND (or of OR) as one loop. AMPS's tables are
// order dependent, not SQL's three-valued logic: the left operand decides
// first, and a NULL left operand makes the result NULL whatever the right
// one is. FALSE AND x is FALSE, TRUE AND x is x, NULL AND x is NULL;
// TRUE OR x is TRUE, FALSE OR x is x, NULL OR x is NULL. For a left-nested
// chain that means: the first operand that is not TRUE (for AND) or not
// FALSE (for OR) gives the result, and the rest are not evaluated.
func (b *builder) logic(n *Binary) predFn {
	var ops []Node
	var flatten func(x Node)
	flatten = func(x Node) {
		if bn, ok := x.(*Binary); ok && bn.Op == n.Op {
			flatten(bn.L)
			flatten(bn.R)
			return
		}
		ops = append(ops, x)
	}
	flatten(n)
	// (a AND b) AND c and a AND (b AND c) give the same result under the
	// rule above, so flattening right-nested chains is safe too.
	fns := make([]predFn, len(ops))
	for i, o := range ops {
		fns[i] = b.pred(o)
	}
	pass := tTrue // the value that lets evaluation go on
	if n.Op == OpOr {
		pass = tFalse
	}
	if len(fns) == 2 {
		l, r := fns[0], fns[1]
		return func(fs *Fields, c *ctx) tri {
			if t := l(fs, c); t != pass {
				return t
			}
			return r(fs, c)
		}
	}
	return func(fs *Fields, c *ctx) tri {
		for _, f := range fns {
			if t := f(fs, c); t != pass {
				return t
			}
		}
		return pass
	}
}

// val builds a node used as a value.
func (b *builder) val(n Node) valFn {
	if b.isConst(n) {
		v := b.constVal(n, b.val1(n))
		return func(*Fields, *ctx) val { return v }
	}
	return b.val1(n)
}

func (b *builder) val1(n Node) valFn {
	switch n := n.(type) {
	case *Literal:
		var v val
		switch n.Kind {
		case LitInt:
			v = intVal(n.Int)
		case LitUint:
			v = val{k: kUint, i: int64(n.Uint)}
		case LitFloat:
			v = floatVal(n.Float)
		case LitString:
			v = strVal([]byte(n.Str))
			if v.k == kStr {
				v.reading()
			}
		}
		return func(*Fields, *ctx) val { return v }
	case *Ident:
		s := b.slot(n)
		if n.Subscript != NoSubscript {
			// A subscript out of range is NULL; on a value that is not an
			// array, [0] is the value itself and any other index NULL [I].
			i := n.Subscript
			if i > math.MaxInt32 {
				return func(*Fields, *ctx) val { return nullVal }
			}
			return func(fs *Fields, c *ctx) val { return fromValue(fs.Field(s).At(int(i))) }
		}
		// Outside the existential operators a field is its first value
		// (arithmetic and functions are not array-aware).
		return func(fs *Fields, c *ctx) val { return fromValue(fs.Field(s).First()) }
	case *Binary:
		if n.Op.IsArithmetic() {
			return b.arith(n)
		}
	case *Unary:
		x := b.val(n.X)
		if n.Neg {
			return func(fs *Fields, c *ctx) val { return neg(x(fs, c)) }
		}
		return func(fs *Fields, c *ctx) val { return x(fs, c).num() }
	case *Call:
		return b.call(n)
	}
	if isPredicate(n) {
		p := b.pred(n)
		return func(fs *Fields, c *ctx) val { return triVal(p(fs, c)) }
	}
	panic("filter: internal error: unexpected node " + n.String())
}

// operand is one side of an existential operator: either a bare field
// (all of its values take part) or a single value.
type operand struct {
	multi bool
	slot  int
	fn    valFn
	cnst  bool // fn is constant; its value is kv
	kv    val
}

func (b *builder) operand(n Node) operand {
	if id, ok := n.(*Ident); ok && id.Subscript == NoSubscript {
		return operand{multi: true, slot: b.slot(id)}
	}
	o := operand{fn: b.val(n)}
	if b.isConst(n) {
		o.cnst = true
		o.kv = o.fn(nil, nil)
	}
	return o
}

// each calls fn for every value of o until fn returns true, and reports
// whether it did. A bare field offers each of its values; a field with no
// value offers nothing.
func (o *operand) each(fs *Fields, c *ctx, fn func(v val) bool) bool {
	if o.multi {
		fl := fs.Field(o.slot)
		for _, x := range fl.Values {
			if fn(fromValue(x)) {
				return true
			}
		}
		return false
	}
	return fn(o.fn(fs, c))
}

// count is the number of values the operand offers to each.
func (o *operand) count(fs *Fields) int {
	if o.multi {
		return len(fs.Field(o.slot).Values)
	}
	return 1
}

// An existential comparison of two operands that both hold arrays
// (/a = /b, /a IN (/b), /a BEGINS WITH (/b)) tries every pair of their
// values, so its cost is the product of the arrays' lengths, which a
// publisher controls: two arrays of 50,000 numbers in a 200 KB message
// would be 2.5 billion comparisons per filter. The rule: such a comparison
// looks at no more pairs than the larger of MaxPairs and PairsPerValue
// times the number of values of both operands; with more pairs it finds
// none (FALSE; so NOT IN and NOT BEGINS/ENDS WITH are TRUE). The numbers
// let any two arrays of up to 512 values, or an array of any length and
// one of up to 16 values, be compared in full, and keep a filter's cost
// proportional to its length times its message's.
const (
	MaxPairs      = 1 << 18
	PairsPerValue = 16
)

// pairsAllowed reports whether n values may be compared with m values.
func pairsAllowed(n, m int) bool {
	return n <= 1 || m <= 1 || n*m <= max(MaxPairs, PairsPerValue*(n+m))
}

// comparison builds L op R. Comparisons are existential over arrays: TRUE
// when some value of L and some value of R satisfy op.
func (b *builder) comparison(n *Binary) predFn {
	l, r := b.operand(n.L), b.operand(n.R)
	op := n.Op
	switch {
	case l.multi && r.cnst:
		s, kv := l.slot, r.kv
		return func(fs *Fields, c *ctx) tri {
			for _, x := range fs.Field(s).Values {
				v := fromValue(x)
				if cv, ok := compare(&v, &kv); ok && cmpOp(op, cv) {
					return tTrue
				}
			}
			return tFalse
		}
	case !l.multi && !r.multi:
		lf, rf := l.fn, r.fn
		return func(fs *Fields, c *ctx) tri {
			a, bv := lf(fs, c), rf(fs, c)
			cv, ok := compare(&a, &bv)
			return boolTri(ok && cmpOp(op, cv))
		}
	}
	return func(fs *Fields, c *ctx) tri {
		if !pairsAllowed(l.count(fs), r.count(fs)) {
			return tFalse
		}
		return boolTri(l.each(fs, c, func(a val) bool {
			return r.each(fs, c, func(bv val) bool {
				cv, ok := compare(&a, &bv)
				return ok && cmpOp(op, cv)
			})
		}))
	}
}

// between builds X [NOT] BETWEEN Lo AND Hi: TRUE when some value of X is
// >= Lo and <= Hi (bounds inclusive), each under the comparison rules. The
// bounds are single values (a field bound is its first value) [I: the docs
// make BETWEEN existential over X only]. NOT BETWEEN is NOT (BETWEEN).
func (b *builder) between(n *Between) predFn {
	x := b.operand(n.X)
	lo, hi := b.val(n.Lo), b.val(n.Hi)
	negate := n.Negate
	return func(fs *Fields, c *ctx) tri {
		l, h := lo(fs, c), hi(fs, c)
		hit := x.each(fs, c, func(v val) bool {
			c1, ok1 := compare(&v, &l)
			if !ok1 || c1 < 0 {
				return false
			}
			c2, ok2 := compare(&v, &h)
			return ok2 && c2 <= 0
		})
		return boolTri(hit != negate)
	}
}

// isNull builds X IS [NOT] NULL. A bare field is NULL when it is missing,
// null, "", an empty array, or (for an array) when its first value is one
// of those [I: IS NULL is not an existential comparison, so like
// functions it looks at the first value].
func (b *builder) isNull(n *IsNull) predFn {
	x := b.val(n.X)
	neg := n.Negate
	return func(fs *Fields, c *ctx) tri {
		v := x(fs, c)
		return boolTri((v.k == kNull) != neg)
	}
}

// arith builds L op R for + - * / %. A NULL operand gives NULL; a string
// counts by its numeric reading and a string that is not numeric gives
// NaN; NaN propagates. See arith for the integer rules.
func (b *builder) arith(n *Binary) valFn {
	l, r := b.val(n.L), b.val(n.R)
	op := n.Op
	return func(fs *Fields, c *ctx) val { return arith(op, l(fs, c), r(fs, c)) }
}

// arith computes a op b. Two integers give an integer: division truncates
// toward zero (7 / 2 = 3, -7 / 2 = -3) and the remainder has the sign of
// the dividend (-7 % 4 = -3, 7 % -4 = 3). Any float operand makes the
// operation a float one (math.Mod for %, with the dividend's sign too).
//
// Decisions [I]:
//   - division or remainder by zero (integer or float) is NaN, so it never
//     matches and IS NAN finds it; no ±Inf comes out of a division;
//   - an integer result that overflows int64 (and MinInt64 / -1) is
//     computed in double precision instead of wrapping;
//   - arithmetic with an unsigned operand (a value above the int64
//     maximum) is done in double precision.
func arith(op Op, a, b val) val {
	if a.k == kNull || b.k == kNull {
		return nullVal
	}
	a, b = a.num(), b.num()
	if a.isNaN() || b.isNaN() {
		return nanVal
	}
	if a.k == kInt && b.k == kInt {
		x, y := a.i, b.i
		switch op {
		case OpAdd:
			s := x + y
			if (s > x) == (y > 0) {
				return intVal(s)
			}
		case OpSub:
			s := x - y
			if (s < x) == (y > 0) {
				return intVal(s)
			}
		case OpMul:
			if x == 0 || y == 0 {
				return intVal(0)
			}
			p := x * y
			if p/y == x && !(x == -1 && y == math.MinInt64) && !(y == -1 && x == math.MinInt64) {
				return intVal(p)
			}
		case OpDiv:
			if y == 0 {
				return nanVal
			}
			if !(x == math.MinInt64 && y == -1) {
				return intVal(x / y)
			}
		case OpMod:
			if y == 0 {
				return nanVal
			}
			if y == -1 {
				return intVal(0)
			}
			return intVal(x % y)
		}
	}
	x, y := a.asFloat(), b.asFloat()
	switch op {
	case OpAdd:
		return floatVal(x + y)
	case OpSub:
		return floatVal(x - y)
	case OpMul:
		return floatVal(x * y)
	case OpDiv:
		if y == 0 {
			return nanVal
		}
		return floatVal(x / y)
	case OpMod:
		if y == 0 {
			return nanVal
		}
		return floatVal(math.Mod(x, y))
	}
	return nanVal
}

// neg is unary minus. -MinInt64 is the unsigned 9223372036854775808 and
// the reverse; other unsigned values become negative floats.
func neg(v val) val {
	if v.k == kNull {
		return nullVal
	}
	v = v.num()
	switch v.k {
	case kInt:
		if v.i == math.MinInt64 {
			return val{k: kUint, i: math.MinInt64}
		}
		return intVal(-v.i)
	case kUint:
		if uint64(v.i) == 1<<63 {
			return intVal(math.MinInt64)
		}
		return floatVal(-float64(uint64(v.i)))
	}
	return floatVal(-v.f)
}

// in builds X [NOT] IN (list): TRUE when some value of X equals some value
// of some list item (an item that is a bare field offers all its values),
// under the comparison rules; NULL never equals anything. NOT IN is
// NOT (IN), so a NULL X is FALSE for IN and TRUE for NOT IN.
func (b *builder) in(n *In) predFn {
	x := b.operand(n.X)
	set := b.prepared(n, func() any { return newConstSet(b, n.List) }).(*constSet)
	var dyn []operand
	for _, it := range n.List {
		if !b.isConst(it) {
			dyn = append(dyn, b.operand(it))
		}
	}
	negate := n.Negate
	return func(fs *Fields, c *ctx) tri {
		xn := x.count(fs)
		hit := x.each(fs, c, func(v val) bool {
			if set.has(&v) {
				return true
			}
			for i := range dyn {
				if !pairsAllowed(xn, dyn[i].count(fs)) {
					continue
				}
				if dyn[i].each(fs, c, func(w val) bool {
					cv, ok := compare(&v, &w)
					return ok && cv == 0
				}) {
					return true
				}
			}
			return false
		})
		return boolTri(hit != negate)
	}
}

// constSet holds the constant items of an IN list, ready for lookup: the
// strings (which a string value matches byte for byte, and a number by
// their numeric reading) and the numbers. A long list of strings is also
// indexed by a map.
type constSet struct {
	strs  []val
	nums  []val
	index map[string]struct{}
}

const setIndexFrom = 8

func newConstSet(b *builder, list []Node) *constSet {
	s := &constSet{}
	for _, it := range list {
		if !b.isConst(it) {
			continue
		}
		v := b.constVal(it, b.val1(it))
		switch v.k {
		case kNull:
			// NULL equals nothing.
		case kStr:
			s.strs = append(s.strs, v)
		default:
			s.nums = append(s.nums, v)
		}
	}
	if len(s.strs) >= setIndexFrom {
		s.index = make(map[string]struct{}, len(s.strs))
		for _, v := range s.strs {
			s.index[string(v.s)] = struct{}{}
		}
	}
	return s
}

func (s *constSet) has(v *val) bool {
	switch v.k {
	case kNull:
		return false
	case kStr:
		if s.index != nil {
			if _, ok := s.index[string(v.s)]; ok {
				return true
			}
		} else {
			for i := range s.strs {
				if bytes.Equal(s.strs[i].s, v.s) {
					return true
				}
			}
		}
		// A string equals a number when its numeric reading does.
		if len(s.nums) == 0 {
			return false
		}
		r := v.reading()
		if r.k == kStr {
			return false
		}
		for i := range s.nums {
			if c, ok := numCmp(r, s.nums[i]); ok && c == 0 {
				return true
			}
		}
		return false
	}
	if v.isNaN() {
		return false
	}
	for i := range s.nums {
		if c, ok := numCmp(*v, s.nums[i]); ok && c == 0 {
			return true
		}
	}
	// A number equals a string constant whose numeric reading it equals.
	for i := range s.strs {
		w := s.strs[i]
		if w.nk != kStr {
			if c, ok := numCmp(*v, val{k: w.nk, i: w.i, f: w.f}); ok && c == 0 {
				return true
			}
		}
	}
	return false
}
