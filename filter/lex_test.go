package filter

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

// lexAll returns the tokens of src up to (not including) EOF.
func lexAll(src string) ([]token, *Error) {
	lx := lexer{src: src}
	var out []token
	for {
		t, err := lx.next()
		if err != nil {
			return out, err
		}
		if t.kind == tEOF {
			return out, nil
		}
		out = append(out, t)
	}
}

// shape renders tokens compactly: I:/a/b[1] N:5 U:... F:1.5 S:'..' R:'..' K:AND W:NAME P:+
func shape(ts []token) string {
	var parts []string
	for _, t := range ts {
		switch t.kind {
		case tIdent:
			s := "I:" + strings.Join(t.steps, "|")
			if t.sub != NoSubscript {
				s += "[" + itoa(int(t.sub)) + "]"
			}
			parts = append(parts, s)
		case tInt:
			if t.isU {
				parts = append(parts, "U:"+t.text)
			} else {
				parts = append(parts, "N:"+t.text)
			}
		case tFloat:
			parts = append(parts, "F:"+t.text)
		case tString:
			if t.raw {
				parts = append(parts, "R:"+t.str)
			} else {
				parts = append(parts, "S:"+t.str)
			}
		case tKeyword:
			parts = append(parts, "K:"+t.word)
		case tName:
			parts = append(parts, "W:"+t.word)
		case tPunct:
			parts = append(parts, "P:"+t.text)
		}
	}
	return strings.Join(parts, " ")
}

func TestLexShapes(t *testing.T) {
	cases := []struct{ src, want string }{
		// '/' in operand position starts an identifier; steps follow without spaces.
		{"/a/b/c", "I:a|b|c"},
		{"/55", "I:55"},
		{"/x/@id", "I:x|@id"},
		{"/a.b_c", "I:a.b_c"},
		// '-' is a name character inside an identifier.
		{"/a-b", "I:a-b"},
		{"/a - /b", "I:a P:- I:b"},
		{"/a -/b", "I:a P:- I:b"},
		{"/a-/b", "I:a-|b"},
		// '/' after an operand is division; a '/' followed by a step
		// character while scanning an identifier extends it.
		{"/a / /b", "I:a P:/ I:b"},
		{"/a/ 2", "I:a P:/ N:2"},
		{"/a/2", "I:a|2"},
		{"/a //b", "I:a P:/ I:b"},
		{"5/2", "N:5 P:/ N:2"},
		{"(/a)/2", "P:( I:a P:) P:/ N:2"},
		{"/a*2", "I:a P:* N:2"},
		// Subscripts and the bracketed form.
		{"/lvl[1]", "I:lvl[1]"},
		{"/legs/px[10]", "I:legs|px[10]"},
		{"[/odd key]", "I:odd key"},
		{"[/a b/c d][0]", "I:a b|c d[0]"},
		// Keywords in any case; other words are names.
		{"and Or nOt in between like is null nan mod begins ends with if", "K:AND K:OR K:NOT K:IN K:BETWEEN K:LIKE K:IS K:NULL K:NAN K:MOD K:BEGINS K:ENDS K:WITH K:IF"},
		{"instr_i concat r", "W:INSTR_I W:CONCAT W:R"},
		// Operators, longest first.
		{"= == != <> < <= > >= + - * % , ( )", "P:= P:== P:!= P:<> P:< P:<= P:> P:>= P:+ P:- P:* P:% P:, P:( P:)"},
		{"1 / 2", "N:1 P:/ N:2"},
		{"1<=2", "N:1 P:<= N:2"},
		// Numbers.
		{"0 007 04109", "N:0 N:007 N:04109"},
		{"9223372036854775807 9223372036854775808 18446744073709551615", "N:9223372036854775807 U:9223372036854775808 U:18446744073709551615"},
		{"3.5 .5 5. 6E2 12.5e-1 1e+3", "F:3.5 F:.5 F:5. F:6E2 F:12.5e-1 F:1e+3"},
		{"-5", "P:- N:5"},
		// Strings and raw strings.
		{`'a' "b"`, "S:a S:b"},
		{`r'C++' R"a.b" r'\n'`, `R:C++ R:a.b R:\n`},
		{"\t/a\r\n=\n1 ", "I:a P:= N:1"},
	}
	for _, c := range cases {
		ts, err := lexAll(c.src)
		if err != nil {
			t.Errorf("lex %q: %v", c.src, err)
			continue
		}
		if got := shape(ts); got != c.want {
			t.Errorf("lex %q:\n got %s\nwant %s", c.src, got, c.want)
		}
	}
}

func TestLexNumberValues(t *testing.T) {
	cases := []struct {
		src   string
		kind  tokKind
		isU   bool
		i     int64
		u     uint64
		f     float64
		isNaN bool
	}{
		{src: "0", kind: tInt, i: 0},
		{src: "04109", kind: tInt, i: 4109},
		{src: "010", kind: tInt, i: 10},
		{src: "9223372036854775807", kind: tInt, i: math.MaxInt64},
		{src: "9223372036854775808", kind: tInt, isU: true, u: 1 << 63},
		{src: "18446744073709551615", kind: tInt, isU: true, u: math.MaxUint64},
		{src: ".5", kind: tFloat, f: 0.5},
		{src: "6E2", kind: tFloat, f: 600},
		{src: "12.5e-1", kind: tFloat, f: 1.25},
		{src: "2.0", kind: tFloat, f: 2},
		{src: "1e-400", kind: tFloat, f: 0},
	}
	for _, c := range cases {
		ts, err := lexAll(c.src)
		if err != nil || len(ts) != 1 {
			t.Errorf("lex %q: %v %v", c.src, ts, err)
			continue
		}
		tk := ts[0]
		if tk.kind != c.kind || tk.isU != c.isU || tk.i != c.i || tk.u != c.u || tk.f != c.f {
			t.Errorf("lex %q: got kind %d isU %v i %d u %d f %g", c.src, tk.kind, tk.isU, tk.i, tk.u, tk.f)
		}
	}
}

func TestLexStringEscapes(t *testing.T) {
	cases := []struct{ src, want string }{
		{`'\a\b\t\n\f\r'`, "\a\b\t\n\f\r"},
		{`'\x41\x7e\xff'`, "A~\xff"},
		{`'\101\0\377\7'`, "A\x00\xff\x07"},
		{`'\1012'`, "A2"}, // at most three octal digits
		{`'\'\"\\\q\v'`, `'"\qv`},
		{`"it's"`, "it's"},
		{`'say "hi"'`, `say "hi"`},
		{"'a\x00b'", "a\x00b"},
		{"'\xc3\xa9'", "\xc3\xa9"},
		{`''`, ""},
	}
	for _, c := range cases {
		ts, err := lexAll(c.src)
		if err != nil || len(ts) != 1 || ts[0].kind != tString {
			t.Errorf("lex %q: %v %v", c.src, ts, err)
			continue
		}
		if ts[0].str != c.want || ts[0].raw {
			t.Errorf("lex %q: got %q raw=%v, want %q", c.src, ts[0].str, ts[0].raw, c.want)
		}
	}
}

func TestLexOffsets(t *testing.T) {
	src := "  /a = 'x' AND [/b c][2] >= -1.5"
	ts, err := lexAll(src)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, tk := range ts {
		got = append(got, tk.off)
		if src[tk.off:tk.off+len(tk.text)] != tk.text {
			t.Errorf("token %q at %d does not match the source", tk.text, tk.off)
		}
	}
	want := []int{2, 5, 7, 11, 15, 25, 28, 29}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("offsets %v, want %v", got, want)
	}
}

func TestLexErrors(t *testing.T) {
	cases := []struct {
		src string
		off int
		msg string
	}{
		{"'abc", 0, "unterminated string literal"},
		{`/a = "ab\`, 5, "unterminated string literal"},
		{"r'abc", 0, "unterminated raw string literal"},
		{`'\x4'`, 1, `invalid \x escape: expected two hex digits`},
		{`'\x'`, 1, `invalid \x escape: expected two hex digits`},
		{`'\400'`, 1, `octal escape \400 is above \377`},
		{"6E", 0, `malformed number "6E": exponent has no digits`},
		{"1e+", 0, `malformed number "1e+": exponent has no digits`},
		{"12abc", 0, `malformed number "12abc"`},
		{"0x10", 0, `malformed number "0x10"`},
		{"1.2.3", 0, `malformed number "1.2.3"`},
		{"18446744073709551616", 0, "integer literal 18446744073709551616 is out of range (larger than 18446744073709551615)"},
		{"1e400", 0, "float literal 1e400 is out of range"},
		{"/", 0, "expected a field name after '/'"},
		{"/ a", 0, "expected a field name after '/'"},
		{"/@", 1, "expected an attribute name after '@'"},
		{"[/a", 0, "unterminated bracketed identifier: missing ']'"},
		{"[a]", 0, "a bracketed identifier must start with '/', as in [/name with spaces]"},
		{"[/a//b]", 0, `empty path step in bracketed identifier "[/a//b]"`},
		{"/a[x]", 2, "malformed subscript: expected '[' digits ']' after the identifier"},
		{"/a[-1]", 2, "malformed subscript: expected '[' digits ']' after the identifier"},
		{"/a[1", 2, "malformed subscript: expected '[' digits ']' after the identifier"},
		{"/a[99999999999999999999]", 3, "subscript 99999999999999999999 is out of range"},
		{"/a [1]", 3, "unexpected '[' after an operand (a subscript must follow its identifier directly)"},
		{"/a ! 1", 3, "unexpected character '!'"},
		{"/a = 1 ; ", 7, "unexpected character ';'"},
		{"/a = \x01", 5, "unexpected character byte 0x01"},
	}
	for _, c := range cases {
		_, err := lexAll(c.src)
		if err == nil {
			t.Errorf("lex %q: no error, want %q", c.src, c.msg)
			continue
		}
		if err.Offset != c.off || err.Msg != c.msg {
			t.Errorf("lex %q: got at %d %q, want at %d %q", c.src, err.Offset, err.Msg, c.off, c.msg)
		}
	}
}
