package filter

import (
	"errors"
	"strings"
	"testing"
)

// f1 (fixture F1 of the spec) is declared in fields_test.go.

// workedResults are the expected results of the worked examples, in the
// order of workedExamples; bodies other than F1 are given where the spec
// names one.
var workedResults = []struct {
	want bool
	mt   string
	body string
}{
	{want: true}, {want: true}, {want: false}, {want: true}, {want: false}, // 1-5
	{want: true}, {want: true}, {want: true}, {want: true}, {want: false}, // 6-10
	{want: true}, {want: false}, {want: false}, {want: true}, {want: false}, // 11-15
	{want: true}, {want: false}, {want: true}, {want: false}, {want: true}, // 16-20
	{want: true}, {want: false}, {want: true}, {want: false}, {want: true}, // 21-25
	{want: true}, {want: true}, {want: false}, {want: true}, {want: true}, // 26-30
	{want: true}, {want: true}, {want: true}, {want: true}, {want: true}, // 31-35
	{want: true}, {want: true}, {want: false}, {want: true}, {want: true}, // 36-40
	{want: true}, {want: true}, {want: true}, {want: true}, {want: true}, // 41-45
	{want: false}, {want: true}, {want: true}, {want: true}, {want: true}, // 46-50
	{want: true}, {want: true}, {want: true}, {want: true}, {want: true}, // 51-55
	{want: true, body: `{"odd key":4}`},                            // 56
	{want: true, body: `{"a":1,"a":2}`},                            // 57: first occurrence wins
	{want: true, mt: "fix", body: "35=D\x0155=ACME\x0138=500\x01"}, // 58
}

func TestWorkedExamples(t *testing.T) {
	if len(workedResults) != len(workedExamples) {
		t.Fatalf("%d results for %d examples", len(workedResults), len(workedExamples))
	}
	for i, src := range workedExamples {
		r := workedResults[i]
		mt, body := r.mt, r.body
		if mt == "" {
			mt = "json"
		}
		if body == "" {
			body = f1
		}
		got := mustMatch(t, src, mt, body, nil)
		if got != r.want {
			t.Errorf("#%d %s: got %v, want %v", i+1, src, got, r.want)
		}
	}
}

func mustCompile(t testing.TB, src string) *Filter {
	t.Helper()
	f, err := Compile(src)
	if err != nil {
		t.Fatalf("Compile(%q): %v", src, err)
	}
	return f
}

func mustMatch(t testing.TB, src, mt, body string, env *Env) bool {
	t.Helper()
	f := mustCompile(t, src)
	ok, err := f.MatchBody(mt, []byte(body), env)
	if err != nil {
		t.Fatalf("MatchBody(%q): %v", src, err)
	}
	return ok
}

func TestCompileErrorIsPositioned(t *testing.T) {
	for _, c := range []struct {
		src string
		off int
		msg string
	}{
		// The string literal decodes its own escapes first: '\\1' is the
		// two characters \1 that the regular expression sees.
		{`/a LIKE '(.)\\1'`, 8, "backreferences are not supported"},
		{`/a LIKE 'x(?=y)'`, 8, "lookahead is not supported"},
		{`/a LIKE '(?<=y)x'`, 8, "lookbehind is not supported"},
		{`/a LIKE 'a*+'`, 8, "possessive quantifiers are not supported"},
		{`/a LIKE '(?x)a b'`, 8, "is not supported"},
		{`/a LIKE '(?>a)'`, 8, "atomic groups"},
		{`/a LIKE '\\xff'`, 8, "above \\x7f"},
		{`/a LIKE '\\x{100}'`, 8, "above \\x7f"},
		{`/a LIKE '\xff'`, 8, "not valid UTF-8"},
		{`/a LIKE '\\12'`, 8, "backreferences"},
		{`/a = 1 AND /b NOT LIKE '\\k<n>'`, 23, "backreferences"},
		{`REGEXP_MATCH(/a, /b) = 'x'`, 17, "must be a string literal"},
		{`REGEXP_REPLACE(/a, CONCAT('a','b'), 'c') = 'x'`, 19, "must be a string literal"},
		{`REGEXP_MATCH(/a, '(.)\\1') = 'x'`, 17, "backreferences"},
		{`/a = `, 5, "expected"},
		{`SUM(/a) > 1`, 0, "aggregate"},
	} {
		_, err := Compile(c.src)
		var fe *Error
		if !errors.As(err, &fe) {
			t.Errorf("Compile(%q): %v, want *Error", c.src, err)
			continue
		}
		if fe.Offset != c.off || !strings.Contains(fe.Msg, c.msg) {
			t.Errorf("Compile(%q): offset %d %q, want offset %d containing %q", c.src, fe.Offset, fe.Msg, c.off, c.msg)
		}
	}
}
