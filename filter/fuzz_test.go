package filter

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// parseBudget is the time any input of at most MaxLen bytes may take to
// parse and print, generous enough for the race detector and slow machines;
// the parser is linear, so real times are far below it.
const parseBudget = 2 * time.Second

// checkParse parses src and checks the parser's contract: it returns in
// bounded time; an error is an *Error whose offset lies within the input;
// a success prints a canonical form that parses back to the same form.
func checkParse(t *testing.T, src string) {
	t.Helper()
	start := time.Now()
	n, err := Parse(src)
	if err != nil {
		if n != nil {
			t.Fatalf("Parse(%q) returned a node and an error", src)
		}
		var fe *Error
		if !errors.As(err, &fe) {
			t.Fatalf("Parse(%q): error %T, want *Error", src, err)
		}
		if fe.Offset < 0 || fe.Offset > len(src) || fe.Msg == "" {
			t.Fatalf("Parse(%q): error offset %d outside the input, or empty message", src, fe.Offset)
		}
	} else {
		s := n.String()
		n2, err := Parse(s)
		if err != nil {
			// The canonical form may be longer than the input, and
			// nested deeper (it parenthesises every operator: 65 unary
			// signs print as 130 levels); only the length and depth
			// limits may refuse it.
			var fe *Error
			tooLong := len(s) > MaxLen && errors.As(err, &fe) && fe.Offset == MaxLen
			tooDeep := errors.As(err, &fe) && strings.Contains(fe.Msg, fmt.Sprintf("nested more than %d levels", MaxDepth))
			if !tooLong && !tooDeep {
				t.Fatalf("Parse(%q) printed %q, which does not parse: %v", src, s, err)
			}
		} else if s2 := n2.String(); s2 != s {
			t.Fatalf("Parse(%q) printed %q, which prints back as %q", src, s, s2)
		}
	}
	if d := time.Since(start); len(src) <= MaxLen && d > parseBudget {
		t.Fatalf("Parse of a %d-byte input took %v", len(src), d)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range workedExamples {
		f.Add(s)
	}
	for _, c := range canonicalCases {
		f.Add(c.src)
		f.Add(c.want)
	}
	for _, c := range errorCases {
		f.Add(c.src)
	}
	for _, s := range []string{
		`'\x41\101\q'`, `r"it's"`, `[/a b][1]`, `/a/@b-c.d[0]`, `.5e3`, `- - -1`,
		"/a = 1 OR /b IN (1, 2) AND NOT /c LIKE r'x' AND /d BEGINS WITH ('a')",
		strings.Repeat("+", 65) + "0", // prints nested deeper than MaxDepth
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		checkParse(t, src)
	})
}

// TestParseWorstCases runs inputs of the full 64 KiB that stress each part
// of the parser (deep nesting up to the bound and past it, long chains, long
// tokens, unterminated tokens) and checks the contract and the time bound.
func TestParseWorstCases(t *testing.T) {
	fill := func(unit string) string {
		return strings.Repeat(unit, MaxLen/len(unit))
	}
	// ok says whether the input is a valid filter.
	inputs := map[string]struct {
		src string
		ok  bool
	}{
		"open parens":        {fill("("), false},
		"NOTs":               {fill("NOT "), false},
		"minus signs":        {fill("-"), false},
		"calls":              {fill("ABS("), false},
		"OR chain":           {"1" + fill(" OR 1")[5:], true},
		"plus chain":         {"1" + fill("+1")[2:], true},
		"mixed chain":        {"/a" + fill(" * /a - 1 = 2 AND /b")[20:], true},
		"IN list":            {"/a IN (1" + fill(",1")[10:] + ")", true},
		"long identifier":    {"/" + strings.TrimSuffix(fill("a/")[2:], "/"), true},
		"long bracketed":     {"[/" + fill("a ")[4:] + "]", true},
		"long string":        {"'" + fill("\\x41")[4:] + "'", true},
		"subscripts":         {"/a[1]" + fill(" + /a[1]")[8:], true},
		"nested under limit": {strings.Repeat("(", MaxDepth) + fill("1+")[2*MaxDepth+2:] + "1" + strings.Repeat(")", MaxDepth), true},
		"unterminated [":     {fill("["), false},
		"unterminated quote": {fill("'"), false},
		"raw prefixes":       {fill("r'"), false},
		"slashes":            {fill("/"), false},
	}
	for name, in := range inputs {
		if len(in.src) > MaxLen {
			t.Fatalf("%s: test input is %d bytes", name, len(in.src))
		}
		t.Run(name, func(t *testing.T) {
			checkParse(t, in.src)
			if _, err := Parse(in.src); (err == nil) != in.ok {
				t.Errorf("valid %v, but Parse returned error %v", in.ok, err)
			}
		})
	}
}
