package filter

import (
	"fmt"
	"math"
	"strings"
	"sync"
)

// Filter is a compiled content filter: the syntax tree checked once, its
// constants converted, its regular expressions compiled. A Filter is not
// tied to any message layout; Bind ties it to the slots of an Extractor.
// A Filter is immutable and safe for concurrent use.
type Filter struct {
	src     string
	root    Node
	paths   [][]string
	pathIdx map[string]int
	prep    map[Node]any  // per node: compiled patterns and constant sets
	dyn     map[Node]bool // nodes that depend on the message, Env or clock
	needCtx bool          // evaluation needs a scratch context (text building, Env)
	det     bool
}

// Matcher is a Filter bound to the slot numbers of one Extractor. It is
// immutable and safe for concurrent use.
type Matcher struct {
	f       *Filter
	root    predFn
	needCtx bool
}

// Env is what a filter's message functions see of the message being
// evaluated.
type Env struct {
	// Topic is what TOPIC_NAME() returns.
	Topic string
	// Size is what MESSAGE_SIZE() returns: the body's length in bytes [I:
	// the unit is not documented; bytes is the only size the broker knows].
	Size int
	// ClientName is what CLIENT_NAME() returns: the name of the client
	// whose command triggered the evaluation. For a subscription filter
	// that is the publisher of the message [decision: the publish is the
	// command that triggers the evaluation].
	ClientName string
	// InstanceName is what AMPS_INSTANCE_NAME() returns.
	InstanceName string
}

// Compile parses src and compiles it into a Filter. A filter that does not
// parse, or that the evaluator cannot run faithfully (a LIKE pattern or
// REGEXP_* expression using features Go's RE2 engine lacks, a REGEXP_*
// expression that is not a string literal), gives an *Error naming the
// byte offset and the problem.
func Compile(src string) (*Filter, error) {
	n, err := Parse(src)
	if err != nil {
		return nil, err
	}
	f := &Filter{src: src, root: n, pathIdx: map[string]int{}, prep: map[Node]any{}, det: true}
	collectPaths(n, f)
	f.dyn = map[Node]bool{}
	markDyn(n, f.dyn)
	// Compile by building the evaluator once over identity slots: every
	// check runs and every prepared artefact lands in f.prep, which Bind
	// then only reads.
	ident := make([]int, len(f.paths))
	for i := range ident {
		ident[i] = i
	}
	b := &builder{f: f, slots: ident, compiling: true, room: TextBudget}
	if e := b.run(); e != nil {
		return nil, e
	}
	f.needCtx = b.needCtx
	f.det = !b.nondet
	return f, nil
}

// String returns the filter's source text as given to Compile.
func (f *Filter) String() string { return f.src }

// Paths returns the distinct field paths the filter reads, each as its
// steps (as Ident.Steps), in order of first appearance in the source. The
// caller must not modify them.
func (f *Filter) Paths() [][]string { return f.paths }

// Deterministic reports whether the filter's result depends only on the
// message: it is false when the filter calls UNIX_TIMESTAMP(), whose value
// changes with the time of evaluation. (The message functions TOPIC_NAME()
// and the like are deterministic: they describe the message.)
func (f *Filter) Deterministic() bool { return f.det }

// Bind ties the filter to the slots of x, an Extractor built (with
// NewExtractor) over a set of paths that includes every one of f.Paths().
// It fails when x lacks one of them.
func (f *Filter) Bind(x *Extractor) (*Matcher, error) {
	slots := make([]int, len(f.paths))
	for i, p := range f.paths {
		s, ok := x.Slot(p)
		if !ok {
			return nil, fmt.Errorf("filter: cannot bind %q: the extractor does not read the path /%s", f.src, strings.Join(p, "/"))
		}
		slots[i] = s
	}
	b := &builder{f: f, slots: slots, room: TextBudget}
	root := b.pred(f.root)
	return &Matcher{f: f, root: root, needCtx: f.needCtx}, nil
}

// Filter returns the filter m was bound from.
func (m *Matcher) Filter() *Filter { return m.f }

// Match reports whether the filter evaluates to TRUE over fields, which
// must have been filled by Extract of the Extractor given to Bind. FALSE,
// NULL and NaN results do not match. env supplies the message functions;
// it may be nil (they then return NULL, and MESSAGE_SIZE() 0).
//
// Match does not allocate, with two exceptions: REGEXP_MATCH and
// REGEXP_REPLACE (Go's regexp allocates the match positions and the
// result), and CONCAT of more than 8 arguments. Functions that build text (CONCAT, UPPER, REPLACE, ...) write
// into a scratch buffer taken from a sync.Pool for the duration of the
// call; filters that build no text and call no message function take
// nothing from the pool.
func (m *Matcher) Match(fields *Fields, env *Env) bool {
	if !m.needCtx {
		return m.root(fields, nil) == tTrue
	}
	c := ctxPool.Get().(*ctx)
	c.buf = c.buf[:0]
	if env != nil {
		c.env = *env
	} else {
		c.env = Env{}
	}
	c.room, c.over = textBudget(c.env.Size), false
	r := m.root(fields, c)
	if cap(c.buf) <= maxPooledBuf {
		c.env = Env{}
		ctxPool.Put(c)
	}
	return r == tTrue
}

// MatchBody extracts f's paths from body (of the message type named
// messageType: "json", "fix" or "nvfix") and matches the filter. It builds
// an extractor every call; it suits tests, examples and one-off use, not
// a publish path.
func (f *Filter) MatchBody(messageType string, body []byte, env *Env) (bool, error) {
	x, err := NewExtractor(messageType, f.paths)
	if err != nil {
		return false, err
	}
	m, err := f.Bind(x)
	if err != nil {
		return false, err
	}
	fs := x.NewFields()
	x.Extract(body, fs)
	return m.Match(fs, env), nil
}

// ctx is the per-evaluation scratch state: text built by functions, what
// is left of the evaluation's text budget, and a copy of the Env (copied so
// that the caller's Env need not escape).
type ctx struct {
	buf  []byte
	room int  // bytes the text functions may still build
	over bool // a text function was refused: all later ones give NULL
	env  Env
}

// TextBudget bounds the text that a filter's text functions (CONCAT, UPPER,
// LOWER, REVERSE, REPLACE, REGEXP_REPLACE, CHAR_VALUE) build, so that a
// filter's cost stays proportional to its length times the message's
// length. Without it, nesting doubles text at every level:
// REPLACE(REPLACE(... 'a', 'aa') ..., 'a', 'aa') 30 levels deep is a
// 600-byte filter that would build 16 GiB.
//
// The rule: one evaluation (one Match) may build in all the larger of
// TextBudget bytes and TextPerMessageByte times the message's size
// (Env.Size). A text function whose result would go past that gives NULL,
// and so does every text function after it in the same evaluation (so the
// filter usually does not match). Constant expressions are evaluated once,
// at Compile, under a budget of their own of TextBudget bytes for the
// whole filter; a filter whose constant expressions would build more is
// refused with an *Error at the call that goes past it.
//
// Why these numbers: a filter transforms the fields of its message, so
// the text it legitimately builds is a small multiple of the message (a
// few functions over its biggest field, a few constants); 4 times the
// larger of the message and the longest filter (MaxLen, 64 KiB) covers
// that with room to spare, and scaling with the message keeps the cost
// linear in it. The floor of 256 KiB costs at most about 2 ms of
// evaluation (REPLACE of one byte by two, the most expensive way to build
// text, runs at about 8 ns a byte), the order of what a 64 KiB filter of
// plain predicates already costs on a message of a few KiB, so the budget
// adds no new order of cost. Text that functions only read or slice
// (INSTR, SUBSTR, REGEXP_MATCH, CRC32, a number turned into text) is not
// counted: it is bounded by its input.
const TextBudget = TextPerMessageByte * MaxLen

// TextPerMessageByte is the text budget per byte of message (and per byte
// of the longest filter, for the floor): see TextBudget.
const TextPerMessageByte = 4

// textBudget is the text budget of one evaluation over a message of size
// bytes.
func textBudget(size int) int {
	if size > 0 && size <= math.MaxInt/TextPerMessageByte && size*TextPerMessageByte > TextBudget {
		return size * TextPerMessageByte
	}
	return TextBudget
}

// reserve takes n bytes from the evaluation's text budget, and reports
// whether there were; once a reservation fails, every later one does.
func (c *ctx) reserve(n int) bool {
	if c.over || n > c.room {
		c.over = true
		return false
	}
	c.room -= n
	return true
}

// maxPooledBuf bounds the scratch buffer kept in the pool, so that one
// huge message does not pin a huge buffer.
const maxPooledBuf = 64 << 10

var ctxPool = sync.Pool{New: func() any { return &ctx{buf: make([]byte, 0, 256)} }}

func pathKey(steps []string) string { return strings.Join(steps, "\x00") }

// collectPaths records the identifiers' paths in source order: the parser
// builds every node's children left to right, and a pre-order walk that
// visits them in that order meets identifiers in source order.
func collectPaths(n Node, f *Filter) {
	walk(n, func(n Node) {
		id, ok := n.(*Ident)
		if !ok {
			return
		}
		k := pathKey(id.Steps)
		if _, seen := f.pathIdx[k]; !seen {
			f.pathIdx[k] = len(f.paths)
			f.paths = append(f.paths, id.Steps)
		}
	})
}

// walk visits n and its descendants, parents first, children in source
// order.
func walk(n Node, visit func(Node)) {
	visit(n)
	for _, c := range children(n) {
		walk(c, visit)
	}
}

// children returns the operands of n, in source order (nil for a leaf).
func children(n Node) []Node {
	switch n := n.(type) {
	case *Binary:
		return []Node{n.L, n.R}
	case *Not:
		return []Node{n.X}
	case *Unary:
		return []Node{n.X}
	case *Between:
		return []Node{n.X, n.Lo, n.Hi}
	case *In:
		return append([]Node{n.X}, n.List...)
	case *Like:
		return []Node{n.X, n.Pattern}
	case *Affix:
		return append([]Node{n.X}, n.List...)
	case *IsNull:
		return []Node{n.X}
	case *IsNaN:
		return []Node{n.X}
	case *Call:
		return n.Args
	}
	return nil
}

// builder turns a syntax tree into closures. With compiling set it checks
// the tree and fills f.prep; otherwise (Bind) it only reads f.prep.
type builder struct {
	f         *Filter
	slots     []int
	compiling bool
	needCtx   bool
	nondet    bool
	room      int // what is left of the text budget of constant folding
	reInsts   int // the estimated program size of the regexps so far
}

// bailErr carries a compile error out of the recursive build.
type bailErr struct{ err *Error }

func (b *builder) failf(off int, format string, args ...any) {
	panic(bailErr{errorf(off, format, args...)})
}

func (b *builder) run() (e *Error) {
	defer func() {
		if r := recover(); r != nil {
			be, ok := r.(bailErr)
			if !ok {
				panic(r)
			}
			e = be.err
		}
	}()
	b.pred(b.f.root)
	return nil
}

// prepared returns the artefact made for n at compile time, making it with
// mk when compiling.
func (b *builder) prepared(n Node, mk func() any) any {
	if v, ok := b.f.prep[n]; ok {
		return v
	}
	if !b.compiling {
		panic("filter: internal error: node not prepared at compile time")
	}
	v := mk()
	b.f.prep[n] = v
	return v
}

func (b *builder) slot(id *Ident) int {
	return b.slots[b.f.pathIdx[pathKey(id.Steps)]]
}
