package filter

import (
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"
)

// costBound is the time a bounded evaluation may take: generous for a
// loaded machine (and five times that under the race detector, which slows
// Go's regexp tenfold); without the bounds these cases take seconds to
// hours and gigabytes.
var costBound = func() time.Duration {
	if raceEnabled {
		return 10 * time.Second
	}
	return 2 * time.Second
}()

// nest wraps inner in depth calls: pre + inner + post, depth times.
func nest(depth int, pre, inner, post string) string {
	return strings.Repeat(pre, depth) + inner + strings.Repeat(post, depth)
}

// timed runs fn and fails when it takes longer than costBound.
func timed(t *testing.T, what string, fn func()) {
	t.Helper()
	start := time.Now()
	fn()
	if d := time.Since(start); d > costBound {
		t.Errorf("%s took %v", what, d)
	}
}

// matchJSON compiles src and matches it over body, with an Env whose Size
// is the body's when withSize is set (as the broker gives it).
func matchJSON(t *testing.T, src, body string, withSize bool) bool {
	t.Helper()
	f := mustCompile(t, src)
	var env *Env
	if withSize {
		env = &Env{Size: len(body)}
	}
	ok, err := f.MatchBody("json", []byte(body), env)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestTextBudgetConstantFolding: nested doubling over a literal is refused
// at Compile, at the call whose text goes past the budget.
func TestTextBudgetConstantFolding(t *testing.T) {
	const depth = 22
	src := nest(depth, "REPLACE(", "'aaaaaaaaaaaaaaaa'", ", 'a', 'aa')") + " = 'x'"
	var err error
	timed(t, "Compile of 22 nested REPLACEs", func() { _, err = Compile(src) })
	var fe *Error
	if !errors.As(err, &fe) {
		t.Fatalf("Compile: %v, want an *Error", err)
	}
	// The calls are folded innermost first; level k (from the inside)
	// builds 16<<k bytes, and the first level whose running total passes
	// the budget is the one refused.
	total, level := 0, 0
	for total <= TextBudget {
		level++
		total += 16 << level
	}
	wantOff := 8 * (depth - level) // each "REPLACE(" is 8 bytes
	if fe.Offset != wantOff || !strings.HasPrefix(src[fe.Offset:], "REPLACE(") || !strings.Contains(fe.Msg, fmt.Sprintf("more than %d bytes", TextBudget)) {
		t.Errorf("error %q at %d, want the REPLACE at %d (level %d) and the budget", fe.Msg, fe.Offset, wantOff, level)
	}
	// One level less fits and folds to the right text.
	ok := mustCompile(t, fmt.Sprintf("CRC32(%s) = %d", nest(level-1, "REPLACE(", "'aaaaaaaaaaaaaaaa'", ", 'a', 'aa')"),
		crc32.ChecksumIEEE([]byte(strings.Repeat("a", 16<<(level-1))))))
	if m, _ := ok.MatchBody("json", []byte(`{}`), nil); !m {
		t.Errorf("%d nested REPLACEs under the budget do not give the doubled text", level-1)
	}
}

// TestTextBudgetAtMatch: text functions over a field that would build
// more than the budget give NULL, quickly; under the budget they give the
// full text.
func TestTextBudgetAtMatch(t *testing.T) {
	body := `{"x":"aaaaaaaaaaaaaaaa","y":"b"}`
	cases := []struct {
		name, expr string
	}{
		{"REPLACE 22 deep", nest(22, "REPLACE(", "/x", ", 'a', 'aa')")},
		{"REPLACE 40 deep", nest(40, "REPLACE(", "/x", ", 'a', 'aa')")},
		{"CONCAT over REPLACE 40 deep", nest(40, "CONCAT(REPLACE(", "/x", ", 'a', 'aa'), 'b')")},
		{"REGEXP_REPLACE 40 deep", nest(40, "REGEXP_REPLACE(", "/x", ", 'a', 'aa')")},
		{"LOWER of REPLACE 40 deep", nest(40, "LOWER(UPPER(REPLACE(", "/x", ", 'a', 'aa')))")},
		{"REPLACE by a long text", nest(3, "REPLACE(", "/x", ", 'a', '"+strings.Repeat("a", 20000)+"')")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var isNull, eq, neq bool
			timed(t, "compiling and matching", func() { isNull = matchJSON(t, c.expr+" IS NULL", body, true) })
			timed(t, "compiling and matching", func() { eq = matchJSON(t, c.expr+" = 'x'", body, true) })
			timed(t, "compiling and matching", func() { neq = matchJSON(t, c.expr+" != 'x'", body, true) })
			if !isNull || eq || neq {
				t.Errorf("IS NULL %v, = %v, != %v; want the result NULL (TRUE, FALSE, FALSE)", isNull, eq, neq)
			}
		})
	}
	// Under the budget the functions give their full result: 10 levels
	// build 16 KiB.
	want := strings.Repeat("a", 16<<10)
	for _, fn := range []string{"REPLACE(", "REGEXP_REPLACE("} {
		src := fmt.Sprintf("CRC32(%s) = %d", nest(10, fn, "/x", ", 'a', 'aa')"), crc32.ChecksumIEEE([]byte(want)))
		if !matchJSON(t, src, body, true) {
			t.Errorf("%s 10 deep does not give 16 KiB of a", fn)
		}
	}
	// Once a function is refused, later text functions of the same
	// evaluation give NULL too.
	over := nest(22, "REPLACE(", "/x", ", 'a', 'aa')") + " IS NULL"
	if matchJSON(t, "UPPER(/y) IS NULL", body, true) || !matchJSON(t, over+" AND UPPER(/y) IS NULL", body, true) {
		t.Error("UPPER after an exhausted budget is not NULL")
	}
}

// TestTextBudgetScalesWithMessage: a big message gets a budget of
// TextPerMessageByte times its size (when the Env gives the size).
func TestTextBudgetScalesWithMessage(t *testing.T) {
	x := strings.Repeat("a", 100<<10)
	body := `{"x":"` + x + `"}`
	// 100 KiB (UPPER) + 200 KiB (CONCAT) is past the floor, within 4 times
	// the message.
	src := fmt.Sprintf("CRC32(CONCAT(UPPER(/x), /x)) = %d", crc32.ChecksumIEEE([]byte(strings.ToUpper(x)+x)))
	if 300<<10 <= TextBudget || 300<<10 > TextPerMessageByte*len(body) {
		t.Fatal("test sizes do not straddle the floor")
	}
	if !matchJSON(t, src, body, true) {
		t.Error("with Env.Size the message's budget does not apply")
	}
	if matchJSON(t, src, body, false) {
		t.Error("without Env.Size the floor does not apply")
	}
}

// TestRegexpSize: a pattern whose counted repetitions blow up the program
// RE2 would run is refused at Compile; ordinary repetitions are not.
func TestRegexpSize(t *testing.T) {
	for _, src := range []string{
		"/x LIKE '(a?){1000}'",
		"/x LIKE '((a?){30}){30}b'",
		"REGEXP_MATCH(/x, '(a|b){1000}') = 'a'",
		"REGEXP_REPLACE(/x, '(a?){900}', 'b') = 'a'",
	} {
		_, err := Compile(src)
		var fe *Error
		if !errors.As(err, &fe) || !strings.Contains(fe.Msg, "instructions") || !strings.HasPrefix(src[fe.Offset:], "'") {
			t.Errorf("Compile(%q): %v, want an error at the pattern about its size", src, err)
		}
	}
	body := `{"x":"2024-01-31 abc"}`
	for _, src := range []string{
		`/x LIKE '^[0-9]{4}-[0-9]{2}-[0-9]{2}'`,
		`/x LIKE '^[0-9-]{1,10} .{0,300}$'`,
		`REGEXP_MATCH(/x, '[a-c]{3}') = 'abc'`,
	} {
		if !matchJSON(t, src, body, false) {
			t.Errorf("%s does not match %s", src, body)
		}
	}
	// A pattern as long as the limit allows still costs little per
	// message byte.
	worst := "/x LIKE '(a?){200}b'"
	f := mustCompile(t, worst)
	timed(t, worst+" over 4 KiB", func() {
		if ok, _ := f.MatchBody("json", []byte(`{"x":"`+strings.Repeat("a", 4<<10)+`"}`), nil); ok {
			t.Error("matched")
		}
	})
}

// TestInstrIIsLinear: INSTR_I of a long needle in a long text costs their
// lengths, not their product.
func TestInstrIIsLinear(t *testing.T) {
	hay := strings.Repeat("a", 1<<20) + "AAB"
	needle := strings.Repeat("A", 30000) + "b"
	body := `{"x":"` + hay + `"}`
	timed(t, "INSTR_I over 1 MiB", func() {
		want := strings.Index(strings.ToLower(hay), strings.ToLower(needle)) + 1
		if !matchJSON(t, fmt.Sprintf("INSTR_I(/x, '%s') = %d", needle, want), body, true) {
			t.Errorf("INSTR_I is not %d", want)
		}
		if !matchJSON(t, "INSTR_I(/x, 'aBc') = 0 AND INSTR_I(/x, 'aaAb') = 1048576", body, true) {
			t.Error("INSTR_I of short needles")
		}
	})
}

// TestCompileAndMatchWorstCases: the largest filters of text functions
// (a CONCAT tree as deep as MaxLen allows, long chains of nested calls)
// compile and match in bounded time over a big message.
func TestCompileAndMatchWorstCases(t *testing.T) {
	tree := func(leaf string, depth int) string {
		s := leaf
		for range depth {
			s = "CONCAT(" + s + "," + s + ")"
		}
		return s
	}
	body := `{"x":"` + strings.Repeat("a", 64<<10) + `"}`
	for _, src := range []string{
		tree("/x", 12) + " IS NULL",
		tree("'aaaaaaaa'", 11) + " IS NULL",
		nest(120, "UPPER(LOWER(", "/x", "))") + " IS NULL",
		nest(120, "REVERSE(REPLACE(", "/x", ", 'a', 'ab'))") + " IS NULL",
		nest(120, "IF(/x IS NULL, 1, ", "REPLACE(/x, 'a', 'aa')", ")") + " IS NULL",
	} {
		if len(src) > MaxLen {
			t.Fatalf("test input of %d bytes", len(src))
		}
		timed(t, fmt.Sprintf("%.40s... (%d bytes)", src, len(src)), func() {
			f, err := Compile(src)
			if err != nil {
				var fe *Error
				if !errors.As(err, &fe) {
					t.Fatal(err)
				}
				return
			}
			if _, err := f.MatchBody("json", []byte(body), &Env{Size: len(body)}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// arrayBody is {"a":[...],"b":[...]} with na values 1 in a and nb values 2
// in b, then last appended to b.
func arrayBody(na, nb int, last string) string {
	rep := func(v string, n int) string { return strings.TrimSuffix(strings.Repeat(v+",", n), ",") }
	b := rep("2", nb)
	if last != "" {
		b += "," + last
	}
	return `{"a":[` + rep("1", na) + `],"b":[` + b + `]}`
}

// Two arrays compared pair by pair: in full up to the pair bound (a match
// in the very last pair is found), FALSE beyond it, and fast either way.
func TestArrayPairsBound(t *testing.T) {
	for _, src := range []string{"/a = /b", "/a IN (/b)", "/b BEGINS WITH (/a)"} {
		within := arrayBody(500, 499, "1") // 500 x 500 pairs
		if !matchJSON(t, src, within, true) {
			t.Errorf("%s over 500 x 500 values: no match, want the last pair found", src)
		}
		beyond := arrayBody(600, 599, "1") // 360,000 pairs
		if matchJSON(t, src, beyond, true) {
			t.Errorf("%s over 600 x 600 values: matched, want FALSE beyond %d pairs", src, MaxPairs)
		}
		huge := arrayBody(50000, 49999, "1")
		timed(t, src+" over 50,000 x 50,000 values", func() {
			if matchJSON(t, src, huge, true) {
				t.Errorf("%s over 50,000 x 50,000 values matched", src)
			}
		})
	}
	// NOT IN is NOT (IN): TRUE when the pairs are too many to compare.
	if !matchJSON(t, "/a NOT IN (/b)", arrayBody(600, 599, "1"), true) {
		t.Error("NOT IN beyond the pair bound: FALSE, want TRUE")
	}
	// A long array against a short one is always compared in full.
	if !matchJSON(t, "/a = /b", arrayBody(100000, 15, "1"), true) {
		t.Error("100,000 values against 16: no match, want the last pair found")
	}
}

// A (?i) pattern of plain ASCII text is a linear byte test over the folded
// text, not an RE2 program run over every byte (a 1000-letter pattern over
// a 1 MiB field took 7.7 s per message that way), and matches what RE2
// would.
func TestLikeFoldLiteral(t *testing.T) {
	for _, tc := range []struct {
		pattern, text string
		want          bool
	}{
		{"(?i)acme", "xxAcMexx", true},
		{"(?i)acme", "xxACMxx", false},
		{"(?i)^ac", "ACME", true},
		{"(?i)^ac", "xACME", false},
		{"(?i)ME$", "acme", true},
		{"(?i)ME$", "acmex", false},
		{"(?i)^acme$", "ACME", true},
		{"(?i)^acme$", "ACMEs", false},
		{"(?i)k", "\u212a", true},   // as RE2's folding: the Kelvin sign is a k
		{"(?i)^s$", "\u017f", true}, // and the long s an s
		{"(?i)^ks$", "\xe2\x84k\xc5", false},
		{"(?i)é", "É", true}, // non-ASCII text stays with RE2's folding
	} {
		src := fmt.Sprintf("/s LIKE '%s'", tc.pattern)
		if got := matchJSON(t, src, `{"s":"`+tc.text+`"}`, true); got != tc.want {
			t.Errorf("%s over %q: %v, want %v", src, tc.text, got, tc.want)
		}
	}
	f := mustCompile(t, "/s LIKE '(?i)Acme'")
	if m := f.prep[f.root.(*Like)].(*matcher); !m.fold || m.kind != mContains || string(m.lit) != "acme" {
		t.Fatalf("(?i)Acme compiled to %+v, want a folding substring test for \"acme\"", m)
	}
	long := strings.Repeat("a", 1000) + "b"
	body := `{"s":"` + strings.Repeat("a", 1<<20) + `"}`
	timed(t, "a 1001-letter (?i) pattern over 1 MiB", func() {
		if matchJSON(t, "/s LIKE '(?i)"+long+"'", body, true) {
			t.Error("matched, want no match")
		}
	})
}

// The folding byte test agrees with RE2 on random text made of the
// characters that matter: ASCII letters of both cases, the Kelvin sign,
// the long s, their bytes alone, and other non-ASCII text.
func TestLikeFoldAgreesWithRE2(t *testing.T) {
	pieces := []string{"a", "A", "k", "K", "s", "S", "\u212a", "\u017f", "\xe2", "\x84", "\xaa", "\xc5", "\xbf", "é", "x", "-"}
	patterns := []string{"(?i)ks", "(?i)^sk", "(?i)ak$", "(?i)^kas$", "(?i)s-a"}
	rng := rand.New(rand.NewPCG(1, 2))
	var c ctx
	for _, p := range patterns {
		m, err := compileLike(&Literal{Kind: LitString, Str: p})
		if err != nil {
			t.Fatal(err)
		}
		if !m.fold {
			t.Fatalf("%s: not compiled to the folding test", p)
		}
		re := regexp.MustCompile(p)
		for i := 0; i < 20000; i++ {
			var sb strings.Builder
			for j := rng.IntN(6); j >= 0; j-- {
				sb.WriteString(pieces[rng.IntN(len(pieces))])
			}
			s := []byte(sb.String())
			if got, want := m.match(&c, s), re.Match(s); got != want {
				t.Fatalf("%s over %q: %v, RE2 says %v", p, s, got, want)
			}
		}
	}
}
