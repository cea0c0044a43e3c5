package filter

import (
	"fmt"
	"testing"
)

// triOf evaluates expr over body and reports TRUE, FALSE or NULL, telling
// them apart with `expr`, `NOT (expr)` and `(expr) IS NULL`.
func triOf(t *testing.T, expr, body string) string {
	t.Helper()
	isT := mustMatch(t, expr, "json", body, nil)
	isF := mustMatch(t, "NOT ("+expr+")", "json", body, nil)
	isN := mustMatch(t, "("+expr+") IS NULL", "json", body, nil)
	switch {
	case isT && !isF && !isN:
		return "TRUE"
	case isF && !isT && !isN:
		return "FALSE"
	case isN && !isT && !isF:
		return "NULL"
	}
	t.Fatalf("%s: inconsistent: match %v, NOT match %v, IS NULL %v", expr, isT, isF, isN)
	return ""
}

// The operands of the truth tables: a TRUE and a FALSE predicate and a
// NULL (a bare missing field), over this body.
const triBody = `{"one":1,"zero":0}`

var triOperand = map[string]string{"TRUE": "/one = 1", "FALSE": "/one = 2", "NULL": "/nosuch"}

func TestTruthTables(t *testing.T) {
	vals := []string{"TRUE", "FALSE", "NULL"}
	// AMPS's order-dependent tables: the left operand decides first.
	and := map[[2]string]string{
		{"TRUE", "TRUE"}: "TRUE", {"TRUE", "FALSE"}: "FALSE", {"TRUE", "NULL"}: "NULL",
		{"FALSE", "TRUE"}: "FALSE", {"FALSE", "FALSE"}: "FALSE", {"FALSE", "NULL"}: "FALSE",
		{"NULL", "TRUE"}: "NULL", {"NULL", "FALSE"}: "NULL", {"NULL", "NULL"}: "NULL",
	}
	or := map[[2]string]string{
		{"TRUE", "TRUE"}: "TRUE", {"TRUE", "FALSE"}: "TRUE", {"TRUE", "NULL"}: "TRUE",
		{"FALSE", "TRUE"}: "TRUE", {"FALSE", "FALSE"}: "FALSE", {"FALSE", "NULL"}: "NULL",
		{"NULL", "TRUE"}: "NULL", {"NULL", "FALSE"}: "NULL", {"NULL", "NULL"}: "NULL",
	}
	for _, l := range vals {
		if got := triOf(t, triOperand[l], triBody); got != l {
			t.Fatalf("operand %s evaluates to %s", l, got)
		}
		for _, r := range vals {
			e := fmt.Sprintf("(%s) AND (%s)", triOperand[l], triOperand[r])
			if got := triOf(t, e, triBody); got != and[[2]string{l, r}] {
				t.Errorf("%s AND %s = %s, want %s", l, r, got, and[[2]string{l, r}])
			}
			e = fmt.Sprintf("(%s) OR (%s)", triOperand[l], triOperand[r])
			if got := triOf(t, e, triBody); got != or[[2]string{l, r}] {
				t.Errorf("%s OR %s = %s, want %s", l, r, got, or[[2]string{l, r}])
			}
		}
	}
	not := map[string]string{"TRUE": "FALSE", "FALSE": "TRUE", "NULL": "NULL"}
	for _, x := range vals {
		if got := triOf(t, "NOT ("+triOperand[x]+")", triBody); got != not[x] {
			t.Errorf("NOT %s = %s, want %s", x, got, not[x])
		}
	}
	// Chains: the first operand that is not TRUE (AND) / not FALSE (OR)
	// decides.
	for _, c := range []struct{ e, want string }{
		{"/one = 1 AND /one = 1 AND /nosuch", "NULL"},
		{"/one = 1 AND /nosuch AND /one = 2", "NULL"},
		{"/one = 1 AND /one = 2 AND /nosuch", "FALSE"},
		{"/one = 2 OR /nosuch OR /one = 1", "NULL"},
		{"/one = 2 OR /one = 1 OR /nosuch", "TRUE"},
		{"/one = 2 OR (/nosuch AND /one = 1)", "NULL"},
		{"/one = 1 AND (/one = 2 OR /one = 1)", "TRUE"},
	} {
		if got := triOf(t, c.e, triBody); got != c.want {
			t.Errorf("%s = %s, want %s", c.e, got, c.want)
		}
	}
}

// evalCase is a filter, a JSON body, and whether it matches.
type evalCase struct {
	src  string
	body string
	want bool
}

func runCases(t *testing.T, cases []evalCase) {
	t.Helper()
	for _, c := range cases {
		body := c.body
		if body == "" {
			body = f1
		}
		if got := mustMatch(t, c.src, "json", body, nil); got != c.want {
			t.Errorf("%s over %s: got %v, want %v", c.src, body, got, c.want)
		}
	}
}

func TestComparisonsNeverNull(t *testing.T) {
	for _, e := range []string{"/nosuch = 1", "/nosuch != 1", "/nosuch < 'a'", "NAN_VALUE() = NAN_VALUE()", "NAN_VALUE() != 1", "/nosuch IN (1)", "/nosuch LIKE 'a'", "/nosuch BETWEEN 1 AND 2", "/nosuch BEGINS WITH ('a')"} {
		if got := triOf(t, e, triBody); got != "FALSE" {
			t.Errorf("%s = %s, want FALSE", e, got)
		}
	}
}

func TestTruthiness(t *testing.T) {
	body := `{"one":1,"zero":0,"f":0.5,"s":"2","z":"0","w":"abc","t":true,"fa":false,"nul":null}`
	for _, c := range []struct{ e, want string }{
		{"/one", "TRUE"}, {"/zero", "FALSE"}, {"/f", "TRUE"}, {"/s", "TRUE"}, {"/z", "FALSE"},
		{"/w", "FALSE"}, {"/t", "TRUE"}, {"/fa", "FALSE"}, {"/nul", "NULL"}, {"/nosuch", "NULL"},
		{"NAN_VALUE()", "FALSE"}, {"TRUE_VALUE()", "TRUE"}, {"FALSE_VALUE()", "FALSE"},
		{"/one + 1", "TRUE"}, {"/nosuch + 1", "NULL"},
	} {
		if got := triOf(t, c.e, body); got != c.want {
			t.Errorf("%s = %s, want %s", c.e, got, c.want)
		}
	}
}

func TestPrecedenceAndSlash(t *testing.T) {
	body := `{"a":{"b":6},"b":2,"a-b":5,"c":3}`
	runCases(t, []evalCase{
		{"/a/b = 6", body, true},                       // a path, not a division
		{"/a/b / /b = 3", body, true},                  // path, then division
		{"/a-b = 5", body, true},                       // one field named a-b
		{"/b - /c = -1", body, true},                   // subtraction
		{"/b-/c = -1", body, false},                    // /b-/c lexes as field b- ... not subtraction: a field
		{"1 + 2 * 3 = 7", body, true},                  // * before +
		{"(1 + 2) * 3 = 9", body, true},                // grouping
		{"10 - 4 - 3 = 3", body, true},                 // left associative
		{"2 * 3 % 4 = 2", body, true},                  // same level, left to right
		{"-2 * 3 = -6", body, true},                    // unary minus binds tightest
		{"- /b * 3 = -6", body, true},                  // on a field too
		{"/b = 2 OR /b = 3 AND /c = 4", body, true},    // AND before OR
		{"(/b = 2 OR /b = 3) AND /c = 4", body, false}, // grouping
		{"NOT /b = 3 AND /c = 3", body, true},          // NOT before AND
		{"/c BETWEEN 1 AND 3 AND /b = 2", body, true},  // BETWEEN owns its AND
		{"/b + 1 BETWEEN 2 + 1 AND 4", body, true},     // bounds are additive
		{"/b * 2 IN (4, 5)", body, true},
	})
}

func TestCoercion(t *testing.T) {
	body := `{"i":2,"f":2.0,"s":"2","s2":"2.00","w":"abc","t":true,"u":18446744073709551615,"big":9223372036854775807,"neg":-5}`
	runCases(t, []evalCase{
		// number × number
		{"/i = /f", body, true}, {"/i = 2.0", body, true}, {"/f < 3", body, true},
		// string × string: bytes, no numeric reading
		{"/s = /s2", body, false}, {"/s = '2'", body, true}, {"/s < 'abc'", body, true},
		{"'b' > 'abc'", body, true}, {"'B' < 'a'", body, true},
		// number × numeric string: numeric
		{"/s = 2.0", body, true}, {"/s2 = 2", body, true}, {"/i = '2.00'", body, true}, {"/s > 1.5", body, true},
		// number × non-numeric string: the string is greater
		{"/w > 99999999", body, true}, {"/w >= 1", body, true}, {"/w != 1", body, true},
		{"/w < 1", body, false}, {"/w <= 1", body, false}, {"/w = 1", body, false},
		{"1 < /w", body, true}, {"1 > /w", body, false},
		// boolean as 1 / 0
		{"/t = 1", body, true}, {"/t = 'true'", body, false}, {"/t + 1 = 2", body, true},
		// unsigned above int64
		{"/u > /big", body, true}, {"/u = 18446744073709551615", body, true}, {"/neg < /u", body, true},
		{"/big = 9223372036854775807", body, true}, {"/big = 9223372036854775806", body, false},
		// NaN against anything is FALSE, != included
		{"/w * 1 != 1", body, false}, {"/w * 1 = /w * 1", body, false},
		// numeric readings: only the literal forms
		{"' 2' = 2", body, false}, {"'0x10' = 16", body, false}, {"'1e1' = 10", body, true},
		{"'.5' = 0.5", body, true}, {"'-3' = -3", body, true}, {"'+3' = 3", body, false},
		{"'5.' = 5", body, true},
	})
}

func TestArithmetic(t *testing.T) {
	body := `{"i":7,"n":-7,"z":0,"f":7.5,"s":"abc"}`
	runCases(t, []evalCase{
		{"/i / 2 = 3", body, true}, {"/n / 2 = -3", body, true}, {"/i / -2 = -3", body, true},
		{"/i % 4 = 3", body, true}, {"/n % 4 = -3", body, true}, {"/i % -4 = 3", body, true},
		{"/i MOD 4 = 3", body, true}, {"/f % 2 = 1.5", body, true}, {"-7.5 % 2 = -1.5", body, true},
		{"/i / 2.0 = 3.5", body, true}, {"/i * 1.0 / 2 = 3.5", body, true},
		// division and remainder by zero are NaN
		{"/i / /z IS NAN", body, true}, {"/i % /z IS NAN", body, true}, {"/f / 0 IS NAN", body, true},
		{"/f % 0.0 IS NAN", body, true}, {"/i / 0 IS NULL", body, false},
		// overflow goes to double precision
		{"9223372036854775807 + 1 = 9223372036854775808.0", body, true},
		{"9223372036854775807 + 1 > 0", body, true},
		{"-9223372036854775808 - 1 < 0", body, true},
		{"-9223372036854775808 / -1 > 0", body, true},
		{"-9223372036854775808 % -1 = 0", body, true},
		{"4611686018427387904 * 4 > 0", body, true},
		{"-(-9223372036854775808) = 9223372036854775808", body, true},
		// NULL and NaN propagate
		{"/nosuch + 1 IS NULL", body, true}, {"/s + 1 IS NAN", body, true}, {"NAN_VALUE() + 1 IS NAN", body, true},
		{"/nosuch * NAN_VALUE() IS NULL", body, true}, {"/s IS NAN", body, false}, {"/i IS NOT NAN", body, true},
		{"+'5' = 5", body, true}, {"+/s IS NAN", body, true},
	})
}

func TestArraysAndSubscripts(t *testing.T) {
	body := `{"a":[1,2,3],"e":[],"s":5,"o":[{"p":1},{"p":"x"}],"n":[[1,2],[3]]}`
	runCases(t, []evalCase{
		{"/a = 2", body, true}, {"/a > 3", body, false}, {"/a != 1", body, true},
		{"/a IN (3, 4)", body, true}, {"3 IN (/a)", body, true}, {"/a IN (/o/p)", body, true},
		{"/a NOT IN (1, 2, 3)", body, false},
		{"/a BETWEEN 3 AND 9", body, true}, {"/a NOT BETWEEN 1 AND 3", body, false},
		{"/a LIKE '^3$'", body, true}, {"/o/p BEGINS WITH ('x')", body, true},
		{"/a[0] = 1", body, true}, {"/a[2] = 3", body, true}, {"/a[3] IS NULL", body, true},
		{"/s[0] = 5", body, true}, {"/s[1] IS NULL", body, true},
		{"/e IS NULL", body, true}, {"/e = 1", body, false}, {"/e != 1", body, false},
		{"/a + 1 = 2", body, true}, {"/a * 10 = 10", body, true},
		{"/n = 3", body, true}, {"/n[2] = 3", body, true}, // nested arrays flatten
		{"/a = /o/p", body, true}, // array × array: some pair
		{"ARRAY_COUNT(/a) = 3", body, true}, {"ARRAY_COUNT(/e) = 0", body, true},
		{"ARRAY_COUNT(/s) = 1", body, true}, {"ARRAY_COUNT(/nosuch) = 0", body, true},
	})
}

func TestStringPredicates(t *testing.T) {
	body := `{"s":"C++ rocks","n":12345,"f":1.50,"sym":"ACME","bin":"a\u0000b"}`
	runCases(t, []evalCase{
		{"/s LIKE 'C+ r'", body, false},       // + is a quantifier: one or more C, then " r"
		{"/s LIKE r'C++'", body, true},        // raw: literal (as a pattern, C++ is possessive and refused)
		{"/s LIKE r'C+ r'", body, false},      // raw: literal
		{"/s LIKE R\"C++ r\"", body, true},    // raw, double quotes
		{"/s LIKE r'c++'", body, false},       // raw is case-sensitive
		{"/s LIKE 'C\\\\+\\\\+'", body, true}, // escaped metacharacters
		{"/s LIKE 'rocks$'", body, true},      // suffix
		{"/s LIKE '^C'", body, true},          // prefix
		{"/s LIKE '^C\\\\+\\\\+ rocks$'", body, true},
		{"/s LIKE '(?i)ROCKS'", body, true},
		{"/s NOT LIKE 'zzz'", body, true},
		{"/n LIKE '^123'", body, true},        // a number by its text
		{"/f LIKE '^1\\\\.50$'", body, true},  // as the message spells it
		{"/n * 2 LIKE '^24690$'", body, true}, // a computed number, formatted
		{"/bin LIKE 'a.b'", body, true},       // embedded NUL
		{"/sym BEGINS WITH ('AC')", body, true}, {"/sym BEGINS WITH ('ME')", body, false},
		{"/sym ENDS WITH ('ME', 'X')", body, true}, {"/sym NOT ENDS WITH ('X')", body, true},
		{"/sym BEGINS WITH ('')", body, false}, // '' is NULL: never matches
		{"/n BEGINS WITH (12)", body, true},
		{"/sym BEGINS WITH (SUBSTR(/sym, 1, 2))", body, true},
		{"/sym BEGINS WITH ('A.')", body, false},                         // literal, not a pattern
		{"/sym IN ('a','b','c','d','e','f','g','h','ACME')", body, true}, // indexed set
		{"/sym IN ('a','b','c','d','e','f','g','h','acme')", body, false},
		{"/n IN ('a','b','c','d','e','f','g','h','12345')", body, true}, // numeric reading of a constant
		{"/n IN ('a','b','c','d','e','f','g','h','12345.0', 7)", body, true},
		{"'12345.0' IN (/n)", body, true},
	})
}

func TestFunctions(t *testing.T) {
	body := `{"sym":"AcMe","n":-4,"f":-2.5,"s":"hello world","e":"","arr":["x","y"],"num":"42"}`
	env := &Env{Topic: "orders", Size: 123, ClientName: "pub1", InstanceName: "amps-a"}
	cases := []evalCase{
		{"IF(/n < 0, 'neg', 'pos') = 'neg'", body, true},
		{"IF(/nosuch, 'a', 'b') = 'b'", body, true}, // NULL condition: else branch
		{"IF(/n > 0, /nosuch, 5) = 5", body, true},
		{"IF(1 = 1, 1, 1 / 0) = 1", body, true},
		{"COALESCE(/nosuch, /e, /sym) = 'AcMe'", body, true},
		{"COALESCE(/nosuch, /e) IS NULL", body, true},
		{"COALESCE(/arr, 'z') = 'x'", body, true}, // first element only
		{"CONCAT(/sym, '-', /n, '-', /f) = 'AcMe--4--2.5'", body, true},
		{"CONCAT(/nosuch, /sym) = 'AcMe'", body, true},
		{"CONCAT(/n * 2, CONCAT('a', /n + 1)) = '-8a-3'", body, true}, // nested builders
		{"CONCAT(1,2,3,4,5,6,7,8,9,/n) = '123456789-4'", body, true},  // more than 8 arguments
		{"UPPER(/sym) = 'ACME'", body, true}, {"LOWER(/sym) = 'acme'", body, true},
		{"UPPER('é') = 'é'", body, true}, {"UPPER(/nosuch) IS NULL", body, true},
		{"INSTR(/s, 'o') = 5", body, true}, {"INSTR(/s, 'z') = 0", body, true}, {"INSTR(/s, 'O') = 0", body, true},
		{"INSTR_I(/s, 'WORLD') = 7", body, true}, {"INSTR(/nosuch, 'a') IS NULL", body, true},
		{"STREQUAL_I(/sym, 'acme') = 1", body, true}, {"STREQUAL_I(/sym, 'acm') = 0", body, true},
		{"SUBSTR(/s, 7) = 'world'", body, true}, {"SUBSTR(/s, 1, 5) = 'hello'", body, true},
		{"SUBSTR(/s, -5) = 'world'", body, true}, {"SUBSTR(/s, 0, 1) = 'h'", body, true},
		{"SUBSTR(/s, 99) IS NULL", body, true}, {"SUBSTR(/s, 1, 0) IS NULL", body, true},
		{"SUBSTR(/s, 7, 99) = 'world'", body, true}, {"SUBSTR(/s, '2', 2.9) = 'el'", body, true},
		{"SUBSTR('abcdefgh', 5) = 'efgh'", body, true},
		{"REVERSE(/sym) = 'eMcA'", body, true}, {"REVERSE(/n) = '4-'", body, true},
		{"REPLACE(/s, 'o', '0') = 'hell0 w0rld'", body, true},
		{"REPLACE(/s, 'l', /nosuch) = 'heo word'", body, true},
		{"REPLACE(/s, /nosuch, 'x') = 'hello world'", body, true},
		{"REGEXP_REPLACE(/s, '[aeiou]', '*') = 'h*ll* w*rld'", body, true},
		{"REGEXP_REPLACE(/s, 'o', '$1') = 'hell$1 w$1rld'", body, true}, // replacement is literal
		{"REGEXP_MATCH(/s, 'w[a-z]+') = 'world'", body, true},
		{"REGEXP_MATCH(/s, 'z+') IS NULL", body, true},
		{"ABS(/n) = 4", body, true}, {"ABS(/f) = 2.5", body, true}, {"ABS('-3') = 3", body, true},
		{"ABS(-9223372036854775808) = 9223372036854775808", body, true}, {"ABS(/nosuch) IS NULL", body, true},
		{"CRC32('hello') = 907060870", body, true}, {"CRC32(/sym) % 10 >= 0", body, true},
		{"ARRAY_COUNT(/arr) = 2", body, true},
		{"TOPIC_NAME() = 'orders'", body, true}, {"MESSAGE_SIZE() = 123", body, true},
		{"CLIENT_NAME() = 'pub1'", body, true}, {"AMPS_INSTANCE_NAME() = 'amps-a'", body, true},
		{"UNIX_TIMESTAMP() > 1700000000", body, true}, {"UNIX_TIMESTAMP() < 4102444800", body, true},
		{"TRUE_VALUE() = 1", body, true}, {"FALSE_VALUE() = 0", body, true}, {"NAN_VALUE() IS NAN", body, true},
		{"CHAR_VALUE(65) = 'A'", body, true}, {"CONCAT('a', CHAR_VALUE(0), 'b') LIKE 'a\\x00b'", body, true},
		{"CHAR_VALUE(256) IS NULL", body, true}, {"CHAR_VALUE(/num) = '*'", body, true},
	}
	for _, c := range cases {
		if got := mustMatch(t, c.src, "json", c.body, env); got != c.want {
			t.Errorf("%s: got %v, want %v", c.src, got, c.want)
		}
	}
	// Without an Env the message functions are NULL.
	for _, e := range []string{"TOPIC_NAME() IS NULL", "CLIENT_NAME() IS NULL", "AMPS_INSTANCE_NAME() IS NULL", "MESSAGE_SIZE() = 0"} {
		if !mustMatch(t, e, "json", body, nil) {
			t.Errorf("%s with a nil Env: no match", e)
		}
	}
}

func TestFilterAPI(t *testing.T) {
	f := mustCompile(t, "/b/c = 1 AND /a > 2 OR /b/c < /d AND [/x y] IS NULL")
	want := [][]string{{"b", "c"}, {"a"}, {"d"}, {"x y"}}
	if fmt.Sprint(f.Paths()) != fmt.Sprint(want) {
		t.Errorf("Paths = %q, want %q", f.Paths(), want)
	}
	if f.String() != "/b/c = 1 AND /a > 2 OR /b/c < /d AND [/x y] IS NULL" {
		t.Errorf("String = %q", f.String())
	}
	if !f.Deterministic() || mustCompile(t, "UNIX_TIMESTAMP() > /t").Deterministic() {
		t.Error("Deterministic is wrong")
	}
	x, err := NewExtractor("json", [][]string{{"z"}, {"a"}, {"x y"}, {"b", "c"}, {"d"}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := f.Bind(x)
	if err != nil {
		t.Fatal(err)
	}
	if m.Filter() != f {
		t.Error("Matcher.Filter")
	}
	fs := x.NewFields()
	x.Extract([]byte(`{"a":3,"b":{"c":1}}`), fs)
	if !m.Match(fs, nil) {
		t.Error("no match over union extractor")
	}
	x2, _ := NewExtractor("json", [][]string{{"a"}})
	if _, err := f.Bind(x2); err == nil {
		t.Error("Bind to an extractor lacking paths succeeded")
	}
	if _, err := f.MatchBody("xml", nil, nil); err == nil {
		t.Error("MatchBody of an unknown message type succeeded")
	}
	// NVFIX.
	g := mustCompile(t, "/Symbol = 'IBM' AND /Qty * 2 = 200")
	if ok, err := g.MatchBody("nvfix", []byte("Symbol=IBM\x01Qty=100\x01"), nil); err != nil || !ok {
		t.Errorf("nvfix: %v %v", ok, err)
	}
}

// A LIKE pattern is read as a regular expression after the string
// literal's escapes: a backslash meant for the regular expression is
// doubled, or the pattern is written raw.
func TestLikeEscapes(t *testing.T) {
	runCases(t, []evalCase{
		{`/s LIKE '\\d'`, `{"s":"a1"}`, true},
		{`/s LIKE '\d'`, `{"s":"a1"}`, false}, // '\d' is the letter d
		{`/s LIKE '\d'`, `{"s":"d"}`, true},
		{`/s LIKE '\.'`, `{"s":"x"}`, true}, // '\.' is ".", any character
		{`/s LIKE '\\.'`, `{"s":"x"}`, false},
		{`/s LIKE r'\d'`, `{"s":"x\\d"}`, true}, // raw: the two characters \d
	})
}
