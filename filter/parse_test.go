package filter

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

// workedExamples are the filter strings of the worked examples of the
// semantics spec (§1.10), in order; every one must parse.
var workedExamples = []string{
	`/sym = 'ACME'`,
	`/sym == "ACME"`,
	`/sym = 'acme'`,
	`/qty > 200`,
	`/qty = '250.0'`,
	`/qty = 250.0`,
	`/id = '7'`,
	`/sym > 1000000`,
	`/note IS NULL`,
	`/note = ''`,
	`/opt IS NULL`,
	`/nosuch != 5`,
	`NOT /nosuch IS NULL`,
	`/px BETWEEN 100 AND 101.5`,
	`/px NOT BETWEEN 100 AND 101.5`,
	`/side IN ('S', 'B')`,
	`/side NOT IN ('S', 'B')`,
	`/sym LIKE 'CM'`,
	`/sym LIKE '^CM'`,
	`/sym LIKE '(?i)^acme$'`,
	`/sym LIKE 'AC.E'`,
	`/sym LIKE r'AC.E'`,
	`/sym BEGINS WITH ('AB', 'AC')`,
	`/sym NOT ENDS WITH ('ME')`,
	`INSTR(/sym, 'ME') = 3`,
	`STREQUAL_I(/sym, 'acme') = 1`,
	`/lvl > 50`,
	`/lvl < 10`,
	`/lvl[1] = 25`,
	`/tags = 'fx'`,
	`/tags != 'hot'`,
	`25 IN (/lvl)`,
	`/lvl IN (60, 70)`,
	`/lvl + 1 = 11`,
	`/legs/ccy = 'EUR'`,
	`/legs/px[1] = 2.5`,
	`/meta/geo/code = 'EMEA'`,
	`/meta = 'rates'`,
	`/qty * 2 = 500`,
	`/id / 2 = 3`,
	`/id / 2.0 = 3.5`,
	`(0 - /id) % 4 = -3`,
	`/px * /nosuch IS NULL`,
	`/sym * 1 IS NAN`,
	`/live = 1`,
	`/side = 'S' OR /qty > 100 AND /sym = 'XYZ'`,
	`(/side = 'S' OR /qty > 100) AND /sym = 'ACME'`,
	`IF(/qty > 100, 'big', 'small') = 'big'`,
	`COALESCE(/nosuch, /note, /sym) = 'ACME'`,
	`CONCAT(/sym, '-', /side) = 'ACME-B'`,
	`REVERSE(SUBSTR(/sym, 2)) = 'EMC'`,
	`1 = 1`,
	`/nosuch = 1 OR /id = 7`,
	`NOT /nosuch = 1`,
	`/nosuch NOT IN (1, 2)`,
	`[/odd key] = 4`,
	`/a = 1`,
	`/35 = 'D' AND /38 >= 100`,
}

// mustParse parses src and checks that its canonical form parses back to
// the same canonical form.
func mustParse(t *testing.T, src string) Node {
	t.Helper()
	n, err := Parse(src)
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	s := n.String()
	n2, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q) printed %q, which does not parse: %v", src, s, err)
	}
	if s2 := n2.String(); s2 != s {
		t.Fatalf("Parse(%q) printed %q, which prints back as %q", src, s, s2)
	}
	return n
}

func TestParseWorkedExamples(t *testing.T) {
	if len(workedExamples) != 58 {
		t.Fatalf("%d worked examples, the spec has 58", len(workedExamples))
	}
	for _, src := range workedExamples {
		mustParse(t, src)
	}
}

// canonicalCases map a filter to its fully parenthesised canonical form:
// the worked examples with interesting structure, precedence, the '/' and
// '-' ambiguity, and literals.
var canonicalCases = []struct{ src, want string }{
	// Worked examples.
	{`/sym == "ACME"`, `(/sym = 'ACME')`},
	{`NOT /nosuch IS NULL`, `(NOT (/nosuch IS NULL))`},
	{`/px NOT BETWEEN 100 AND 101.5`, `(/px NOT BETWEEN 100 AND 101.5)`},
	{`/side NOT IN ('S', 'B')`, `(/side NOT IN ('S', 'B'))`},
	{`/sym LIKE r'AC.E'`, `(/sym LIKE r'AC.E')`},
	{`/sym NOT ENDS WITH ('ME')`, `(/sym NOT ENDS WITH ('ME'))`},
	{`/sym BEGINS WITH ('AB', 'AC')`, `(/sym BEGINS WITH ('AB', 'AC'))`},
	{`/lvl[1] = 25`, `(/lvl[1] = 25)`},
	{`(0 - /id) % 4 = -3`, `(((0 - /id) % 4) = -3)`},
	{`/px * /nosuch IS NULL`, `((/px * /nosuch) IS NULL)`},
	{`/sym * 1 IS NAN`, `((/sym * 1) IS NAN)`},
	{`/side = 'S' OR /qty > 100 AND /sym = 'XYZ'`, `((/side = 'S') OR ((/qty > 100) AND (/sym = 'XYZ')))`},
	{`(/side = 'S' OR /qty > 100) AND /sym = 'ACME'`, `(((/side = 'S') OR (/qty > 100)) AND (/sym = 'ACME'))`},
	{`IF(/qty > 100, 'big', 'small') = 'big'`, `(IF((/qty > 100), 'big', 'small') = 'big')`},
	{`REVERSE(SUBSTR(/sym, 2)) = 'EMC'`, `(REVERSE(SUBSTR(/sym, 2)) = 'EMC')`},
	{`[/odd key] = 4`, `([/odd key] = 4)`},
	{`/35 = 'D' AND /38 >= 100`, `((/35 = 'D') AND (/38 >= 100))`},
	// Precedence: NOT > AND > OR; NOT over a whole predicate.
	{`/a = 1 OR /b = 2 AND NOT /c = 3`, `((/a = 1) OR ((/b = 2) AND (NOT (/c = 3))))`},
	{`/a = 1 AND /b = 2 OR /c = 3`, `(((/a = 1) AND (/b = 2)) OR (/c = 3))`},
	{`/a OR /b OR /c`, `((/a OR /b) OR /c)`},
	{`/a AND /b AND /c`, `((/a AND /b) AND /c)`},
	{`NOT NOT /a`, `(NOT (NOT /a))`},
	{`NOT /x IN (1, 2)`, `(NOT (/x IN (1, 2)))`},
	{`NOT /a + 1 > 2 * 3`, `(NOT ((/a + 1) > (2 * 3)))`},
	{`not /a = 1 and /b = 2`, `((NOT (/a = 1)) AND (/b = 2))`},
	// Arithmetic: * / % MOD over + -, left associative; unary tightest.
	{`1 + 2 * 3 - 4`, `((1 + (2 * 3)) - 4)`},
	{`1 - 2 - 3`, `((1 - 2) - 3)`},
	{`8 / 4 / 2`, `((8 / 4) / 2)`},
	{`7 MOD 4 % 3`, `((7 % 4) % 3)`},
	{`7 mod 4`, `(7 % 4)`},
	{`-/a * 2`, `((-/a) * 2)`},
	{`- -/a`, `(-(-/a))`},
	{`+/a`, `(+/a)`},
	{`-(1 + 2)`, `(-(1 + 2))`},
	{`-(5)`, `-5`},
	{`--5`, `5`},
	{`-(-9223372036854775808)`, `(--9223372036854775808)`},
	{`-18446744073709551615`, `(-18446744073709551615)`},
	{`-9223372036854775808`, `-9223372036854775808`},
	{`-2.0`, `-2.0`},
	{`-0.0`, `-0.0`},
	// BETWEEN owns its AND; its bounds are additive expressions.
	{`/a BETWEEN 1 AND 2 AND /b = 3`, `((/a BETWEEN 1 AND 2) AND (/b = 3))`},
	{`/a BETWEEN /lo - 1 AND /hi * 2 OR /c`, `((/a BETWEEN (/lo - 1) AND (/hi * 2)) OR /c)`},
	{`/a + 1 between 0 and 10`, `((/a + 1) BETWEEN 0 AND 10)`},
	{`/a BETWEEN (1 AND 2) AND 3`, `(/a BETWEEN (1 AND 2) AND 3)`},
	// IN / BEGINS WITH / ENDS WITH lists hold full expressions.
	{`/a IN (/b * 2, 'x', 1 = 1)`, `(/a IN ((/b * 2), 'x', (1 = 1)))`},
	{`/s begins with ('a') or /s ends with ('b', 'c')`, `((/s BEGINS WITH ('a')) OR (/s ENDS WITH ('b', 'c')))`},
	{`/a IS NOT NULL AND /b IS NOT NAN`, `((/a IS NOT NULL) AND (/b IS NOT NAN))`},
	{`/s NOT LIKE "x"`, `(/s NOT LIKE 'x')`},
	// Comparison operator spellings.
	{`/a <> 1`, `(/a != 1)`},
	{`/a<=1 AND /b>=2 AND /c<3 AND /d>4`, `((((/a <= 1) AND (/b >= 2)) AND (/c < 3)) AND (/d > 4))`},
	// The '/' ambiguity.
	{`/a / /b`, `(/a / /b)`},
	{`/a/ 2`, `(/a / 2)`},
	{`/a/2`, `/a/2`},
	{`/id / 2`, `(/id / 2)`},
	{`(/a)/2`, `(/a / 2)`},
	{`5/2`, `(5 / 2)`},
	{`/a//b`, `(/a / /b)`},
	// The '-' ambiguity.
	{`/a-b = 1`, `(/a-b = 1)`},
	{`/a - /b`, `(/a - /b)`},
	{`/a -1`, `(/a - 1)`},
	{`/a - -1`, `(/a - -1)`},
	{`/a-1`, `/a-1`},
	// Identifiers.
	{`/x/@id = 'k'`, `(/x/@id = 'k')`},
	{`[/a b/c][3] = 1`, `([/a b/c][3] = 1)`},
	{`[/plain] = 1`, `(/plain = 1)`},
	{`[/a@b] = 1`, `([/a@b] = 1)`},
	// Literals.
	{`/a = 04109`, `(/a = 4109)`},
	{`/a = 9223372036854775807`, `(/a = 9223372036854775807)`},
	{`/a = 9223372036854775808`, `(/a = 9223372036854775808)`},
	{`/a = 18446744073709551615`, `(/a = 18446744073709551615)`},
	{`/a = .5`, `(/a = 0.5)`},
	{`/a = 5.`, `(/a = 5.0)`},
	{`/a = 6E2`, `(/a = 600.0)`},
	{`/a = 12.5e-1`, `(/a = 1.25)`},
	{`/a = 1e300`, `(/a = 1e+300)`},
	{`/a = "it's"`, `(/a = 'it\'s')`},
	{`/a = '\x00\n\xff\\'`, `(/a = '\x00\x0a\xff\\')`},
	{`/a LIKE R"it's"`, `(/a LIKE r"it's")`},
	{`/a LIKE r'a\d'`, `(/a LIKE r'a\d')`},
	// Calls: case-insensitive names, IF, zero-argument functions.
	{`instr_i(/a, 'x') > 0`, `(INSTR_I(/a, 'x') > 0)`},
	{`if(/a, 1, 2)`, `IF(/a, 1, 2)`},
	{`TOPIC_NAME() = 'orders'`, `(TOPIC_NAME() = 'orders')`},
	{`CRC32(/id) % 4 = 1`, `((CRC32(/id) % 4) = 1)`},
	{`SUBSTR(/a, 1, 2) = 'x'`, `(SUBSTR(/a, 1, 2) = 'x')`},
	{`COALESCE(/a) = TRUE_VALUE()`, `(COALESCE(/a) = TRUE_VALUE())`},
	// A bare value is a predicate.
	{`/flag`, `/flag`},
	{`((/a))`, `/a`},
}

func TestParseCanonical(t *testing.T) {
	for _, c := range canonicalCases {
		n := mustParse(t, c.src)
		if got := n.String(); got != c.want {
			t.Errorf("Parse(%q)\n got %s\nwant %s", c.src, got, c.want)
		}
	}
}

func TestParseTree(t *testing.T) {
	src := `/legs/px[1] BETWEEN -1 AND r'x' OR -9223372036854775808 = 18446744073709551615 AND /s NOT LIKE 'a.'`
	at := func(sub string) int {
		i := strings.Index(src, sub)
		if i < 0 {
			t.Fatalf("%q not in source", sub)
		}
		return i
	}
	n := mustParse(t, src)
	want := &Binary{Off: at(" OR ") + 1, Op: OpOr,
		L: &Between{Off: at("BETWEEN"), X: &Ident{Off: 0, Steps: []string{"legs", "px"}, Subscript: 1},
			Lo: &Literal{Off: at("-1"), Kind: LitInt, Int: -1},
			Hi: &Literal{Off: at("r'x'"), Kind: LitString, Str: "x", Raw: true}},
		R: &Binary{Off: at(" AND /s") + 1, Op: OpAnd,
			L: &Binary{Off: at(" = ") + 1, Op: OpEq,
				L: &Literal{Off: at("-9223"), Kind: LitInt, Int: math.MinInt64},
				R: &Literal{Off: at("1844"), Kind: LitUint, Uint: math.MaxUint64}},
			R: &Like{Off: at("LIKE"), Negate: true, X: &Ident{Off: at("/s"), Steps: []string{"s"}, Subscript: NoSubscript},
				Pattern: &Literal{Off: at("'a.'"), Kind: LitString, Str: "a."}}},
	}
	if !reflect.DeepEqual(n, want) {
		t.Errorf("tree mismatch:\n got %s\nwant %s", dump(n), dump(want))
	}
	c := mustParse(t, `concat(/a/@b, 2.5, 'q\tz')`).(*Call)
	wantCall := &Call{Off: 0, Name: "CONCAT", Args: []Node{
		&Ident{Off: 7, Steps: []string{"a", "@b"}, Subscript: NoSubscript},
		&Literal{Off: 14, Kind: LitFloat, Float: 2.5},
		&Literal{Off: 19, Kind: LitString, Str: "q\tz"},
	}}
	if !reflect.DeepEqual(c, wantCall) {
		t.Errorf("call mismatch:\n got %s\nwant %s", dump(c), dump(wantCall))
	}
	u := mustParse(t, `-(/a)`).(*Unary)
	if !u.Neg || u.Off != 0 || u.X.Pos() != 2 {
		t.Errorf("unary: %+v", u)
	}
}

// dump prints a tree with its offsets, for failure messages.
func dump(n Node) string {
	switch n := n.(type) {
	case *Binary:
		return fmt.Sprintf("Binary@%d(%s %s %s)", n.Off, dump(n.L), n.Op, dump(n.R))
	case *Between:
		return fmt.Sprintf("Between@%d(%v %s %s %s)", n.Off, n.Negate, dump(n.X), dump(n.Lo), dump(n.Hi))
	case *Like:
		return fmt.Sprintf("Like@%d(%v %s %s)", n.Off, n.Negate, dump(n.X), dump(n.Pattern))
	case *Call:
		s := fmt.Sprintf("Call@%d %s(", n.Off, n.Name)
		for _, a := range n.Args {
			s += dump(a) + " "
		}
		return s + ")"
	default:
		return fmt.Sprintf("%T@%d %+v", n, n.Pos(), n)
	}
}

// errorCases are filters that must be refused, with the offset and message
// of the error.
var errorCases = []struct {
	src string
	off int
	msg string
}{
	{``, 0, "empty filter"},
	{" \t\r\n", 0, "empty filter"},
	{`/a IN (1, 2 AND /b = 1`, 22, "expected ')' after IN list, found end of input"},
	{`/a IN (1, 2) AND /b IN (3 4)`, 26, "expected ')' after IN list, found '4'"},
	{`/a IN 1`, 6, "expected '(' after IN, found '1'"},
	{`/a IN ()`, 7, "expected a field, literal, function call or '(', found ')'"},
	{`/a = b = c`, 5, "unexpected word 'b': field names start with '/' and strings are quoted"},
	{`/a = /b = /c`, 8, "unexpected '=': comparisons and other predicates do not chain; use parentheses"},
	{`/a < /b IS NULL`, 8, "unexpected 'IS': comparisons and other predicates do not chain; use parentheses"},
	{`/a BETWEEN 1 AND 2 BETWEEN 3 AND 4`, 19, "unexpected 'BETWEEN': comparisons and other predicates do not chain; use parentheses"},
	{`/a BETWEEN 1 OR 2`, 13, "expected AND between the bounds of BETWEEN, found 'OR'"},
	{`/a BETWEEN 1 = 1 AND 2`, 13, "expected AND between the bounds of BETWEEN, found '='"},
	{`/a LIKE /b`, 8, "LIKE needs a string literal pattern, found '/b'"},
	{`/a LIKE 'x' || 'y'`, 12, "unexpected character '|'"},
	{`/a LIKE CONCAT('x')`, 8, "LIKE needs a string literal pattern, found 'CONCAT'"},
	{`/a NOT LIKE 5`, 12, "LIKE needs a string literal pattern, found '5'"},
	{`/a LIKE ('x')`, 8, "LIKE needs a string literal pattern, found '('"},
	{`/a NOT = 1`, 7, "expected BETWEEN, IN, LIKE, BEGINS WITH or ENDS WITH after NOT, found '='"},
	{`/a NOT IS NULL`, 7, "expected BETWEEN, IN, LIKE, BEGINS WITH or ENDS WITH after NOT, found 'IS'"},
	{`/a IS 5`, 6, "expected NULL or NAN after IS, found '5'"},
	{`/a IS NOT`, 9, "expected NULL or NAN after IS, found end of input"},
	{`/a BEGINS ('x')`, 10, "expected WITH after BEGINS, found '('"},
	{`/a ENDS WITH 'x'`, 13, "expected '(' after ENDS WITH, found ''x''"},
	{`/a = NULL`, 5, "expected a field, literal, function call or '(', found 'NULL'"},
	{`/a = `, 5, "expected a field, literal, function call or '(', found end of input"},
	{`AND /a`, 0, "expected a field, literal, function call or '(', found 'AND'"},
	{`(/a = 1`, 7, "expected ')' to close the '(' at byte 0, found end of input"},
	{`/a = 1)`, 6, "unexpected ')' after the end of the expression"},
	{`/a = 1 /b = 2`, 8, "unexpected word 'b': field names start with '/' and strings are quoted"},
	{`/a = 1 'x'`, 7, "unexpected ''x'' after the end of the expression"},
	{`/a /b`, 4, "unexpected word 'b': field names start with '/' and strings are quoted"},
	{`/a = 1 2`, 7, "unexpected '2' after the end of the expression"},
	{`/a = 1,`, 6, "unexpected ',' after the end of the expression"},
	{`FOO(/a) = 1`, 0, "unknown function FOO"},
	{`VALUE_LOOKUP(/a) = 1`, 0, "unknown function VALUE_LOOKUP"},
	{`sum(/a) > 1`, 0, "aggregate function sum is not allowed in a filter"},
	{`/x > AVG(/a)`, 5, "aggregate function AVG is not allowed in a filter"},
	{`COUNT(/a) > 1`, 0, "aggregate function COUNT is not allowed in a filter"},
	{`LAST_UPDATED() > 1`, 0, "function LAST_UPDATED is not supported"},
	{`UPPER /a`, 6, "expected '(' after function name UPPER, found '/a'"},
	{`sum + 1`, 4, "expected '(' after function name sum, found '+'"},
	{`true`, 0, "unexpected word 'true': field names start with '/' and strings are quoted"},
	{`/a = IBM`, 5, "unexpected word 'IBM': field names start with '/' and strings are quoted"},
	{`IF(/a, 1) = 1`, 0, "function IF takes 3 arguments, not 2"},
	{`UPPER() = 'A'`, 0, "function UPPER takes 1 argument, not 0"},
	{`SUBSTR(/a) = 'A'`, 0, "function SUBSTR takes 2 to 3 arguments, not 1"},
	{`COALESCE() = 'A'`, 0, "function COALESCE takes at least 1 argument, not 0"},
	{`TOPIC_NAME(1) = 'A'`, 0, "function TOPIC_NAME takes 0 arguments, not 1"},
	{`UPPER(/a, ) = 'A'`, 10, "expected a field, literal, function call or '(', found ')'"},
	{`UPPER(/a = 'A'`, 14, "expected ')' after the arguments of UPPER, found end of input"},
	{`IF = 1`, 3, "expected '(' after function name IF, found '='"},
	{`/a = 'x`, 5, "unterminated string literal"},
	{`/a = 1 AND [/b`, 11, "unterminated bracketed identifier: missing ']'"},
	{`/a *`, 4, "expected a field, literal, function call or '(', found end of input"},
	{`/a = 1 OR`, 9, "expected a field, literal, function call or '(', found end of input"},
	{`NOT`, 3, "expected a field, literal, function call or '(', found end of input"},
	{`/a = - `, 7, "expected a field, literal, function call or '(', found end of input"},
	{`/a IN (/averyveryveryverylongfieldname 1)`, 39, "expected ')' after IN list, found '1'"},
	{`/a = /averyveryveryverylongfieldname`[:5] + `/averyveryveryverylongfieldname1 2`, 38, "unexpected '2' after the end of the expression"},
	{`/a = 'averyveryveryverylongstring' 2`, 35, "unexpected '2' after the end of the expression"},
	{`/a IN ('averyveryveryverylongstring' 2)`, 37, "expected ')' after IN list, found '2'"},
	{`/a IN (1) = /b`, 10, "unexpected '=': comparisons and other predicates do not chain; use parentheses"},
	{`/a IN (1) IN (2)`, 10, "unexpected 'IN': comparisons and other predicates do not chain; use parentheses"},
	{`/a = /averylongnameeeeeeeeeeeeee IN (2)`, 33, "unexpected 'IN': comparisons and other predicates do not chain; use parentheses"},
	{`/a = 1 NOT IN (2)`, 7, "unexpected 'NOT': comparisons and other predicates do not chain; use parentheses"},
	{`(/a = ) `, 6, "expected a field, literal, function call or '(', found ')'"},
	{`/a = 'x' AND 'averyveryveryverylongstringxx' 1`, 45, "unexpected '1' after the end of the expression"},
}

func TestParseErrors(t *testing.T) {
	for _, c := range errorCases {
		n, err := Parse(c.src)
		if err == nil {
			t.Errorf("Parse(%q) = %s, want error %q", c.src, n, c.msg)
			continue
		}
		var fe *Error
		if !errors.As(err, &fe) {
			t.Errorf("Parse(%q): error %T, want *Error", c.src, err)
			continue
		}
		if fe.Offset != c.off || fe.Msg != c.msg {
			t.Errorf("Parse(%q):\n got at %d %q\nwant at %d %q", c.src, fe.Offset, fe.Msg, c.off, c.msg)
		}
	}
}

func TestErrorString(t *testing.T) {
	_, err := Parse(`/a IN (1, 2 'x') AND /b = 1`)
	want := "filter: at byte 12: expected ')' after IN list, found ''x''"
	if err == nil || err.Error() != want {
		t.Errorf("Error() = %v, want %q", err, want)
	}
	e := &Error{Offset: 12, Msg: "expected ')' after IN list, found 'AND'"}
	if got := e.Error(); got != "filter: at byte 12: expected ')' after IN list, found 'AND'" {
		t.Errorf("Error() = %q", got)
	}
}

func TestParseLimits(t *testing.T) {
	// Exactly MaxLen bytes parses; one more is refused.
	body := "/a = '" + strings.Repeat("x", MaxLen-8) + "'"
	body += strings.Repeat(" ", MaxLen-len(body))
	if len(body) != MaxLen {
		t.Fatalf("test input is %d bytes", len(body))
	}
	if _, err := Parse(body); err != nil {
		t.Errorf("filter of MaxLen bytes: %v", err)
	}
	_, err := Parse(body + " ")
	var fe *Error
	if !errors.As(err, &fe) || fe.Offset != MaxLen || fe.Msg != "filter is 65537 bytes long; the limit is 65536" {
		t.Errorf("filter of MaxLen+1 bytes: %v", err)
	}

	// Nesting: MaxDepth levels of each kind parse, one more is refused.
	kinds := []struct {
		open, close string
	}{
		{"(", ")"},
		{"NOT ", ""},
		{"-", ""},
		{"ABS(", ")"},
		{"/a IN (", ")"},
	}
	for _, k := range kinds {
		ok := strings.Repeat(k.open, MaxDepth) + "1" + strings.Repeat(k.close, MaxDepth)
		if _, err := Parse(ok); err != nil {
			t.Errorf("%q nested %d deep: %v", k.open, MaxDepth, err)
		}
		bad := strings.Repeat(k.open, MaxDepth+1) + "1" + strings.Repeat(k.close, MaxDepth+1)
		_, err := Parse(bad)
		if !errors.As(err, &fe) || fe.Msg != "expression nested more than 128 levels deep" ||
			fe.Offset != MaxDepth*len(k.open)+len(k.open)-1 && fe.Offset != MaxDepth*len(k.open) {
			t.Errorf("%q nested %d deep: %v", k.open, MaxDepth+1, err)
		}
	}

	// Long chains at one level are not nesting.
	chain := "/a = 1" + strings.Repeat(" OR /a = 1", 5000)
	if _, err := Parse(chain); err != nil {
		t.Errorf("5001-term OR chain: %v", err)
	}
}

func TestParseReturnsNilOnError(t *testing.T) {
	n, err := Parse(`/a =`)
	if n != nil || err == nil {
		t.Errorf("Parse of a bad filter = %v, %v; want nil and an error", n, err)
	}
}
