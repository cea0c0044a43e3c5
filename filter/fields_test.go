package filter

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// f1 is fixture F1 of the semantics spec's worked examples.
const f1 = `{"id":7,"sym":"ACME","px":101.5,"qty":"250","side":"B","note":"","opt":null,"live":true,
 "lvl":[10,25,60],"tags":["hot","fx",3],"meta":{"desk":"rates","geo":{"code":"EMEA"}},
 "legs":[{"px":1.5,"ccy":"USD"},{"px":2.5,"ccy":"EUR"}]}`

// v is a compact spelling of an expected value: "Int:7", "Null", "Missing".
type want struct {
	vals  []string
	array bool
}

func show(v Value) string {
	switch v.Kind {
	case Missing, Null:
		if len(v.Raw) > 0 && v.Kind == Null && string(v.Raw) != "null" {
			return "Null:" + string(v.Raw) // a Null carries no bytes but "null"
		}
		return v.Kind.String()
	}
	return v.Kind.String() + ":" + string(v.Raw)
}

func split(p string) []string { return strings.Split(strings.TrimPrefix(p, "/"), "/") }

// extract runs one extraction of the paths over body.
func extract(t testing.TB, mt, body string, paths ...string) (*Extractor, *Fields) {
	t.Helper()
	var ps [][]string
	for _, p := range paths {
		ps = append(ps, split(p))
	}
	x, err := NewExtractor(mt, ps)
	if err != nil {
		t.Fatalf("NewExtractor(%s, %q): %v", mt, paths, err)
	}
	f := x.NewFields()
	x.Extract([]byte(body), f)
	return x, f
}

func check(t *testing.T, x *Extractor, f *Fields, path string, w want) {
	t.Helper()
	s, ok := x.Slot(split(path))
	if !ok {
		t.Fatalf("no slot for %s", path)
	}
	fl := f.Field(s)
	var got []string
	for _, v := range fl.Values {
		got = append(got, show(v))
	}
	if fmt.Sprint(got) != fmt.Sprint(w.vals) || fl.Array != w.array {
		t.Errorf("%s: got %v array=%v, want %v array=%v", path, got, fl.Array, w.vals, w.array)
	}
}

func vals(s ...string) want    { return want{vals: s} }
func arrayOf(s ...string) want { return want{vals: s, array: true} }

// TestValueModelF1 covers every row of the value-model table (what an
// identifier yields for JSON) over fixture F1 and small bodies.
func TestValueModelF1(t *testing.T) {
	cases := []struct {
		path string
		w    want
	}{
		{"/id", vals("Int:7")},                          // number without . or exponent
		{"/px", vals("Float:101.5")},                    // number with .
		{"/sym", vals("String:ACME")},                   // string
		{"/qty", vals("String:250")},                    // numeric-looking text stays a String
		{"/note", vals("Null")},                         // "" is NULL
		{"/opt", vals("Null")},                          // null
		{"/nosuch", vals()},                             // missing
		{"/live", vals("Bool:true")},                    // boolean
		{"/meta", vals()},                               // an object has no value of its own
		{"/meta/desk", vals("String:rates")},            // its members are deeper paths
		{"/meta/geo/code", vals("String:EMEA")},         // nested path
		{"/lvl", arrayOf("Int:10", "Int:25", "Int:60")}, // array of scalars
		{"/tags", arrayOf("String:hot", "String:fx", "Int:3")},
		{"/legs/px", arrayOf("Float:1.5", "Float:2.5")}, // array of objects collects
		{"/legs/ccy", arrayOf("String:USD", "String:EUR")},
		{"/legs", arrayOf()}, // objects add no value
		{"/sym/x", vals()},   // below a scalar
	}
	var paths []string
	for _, c := range cases {
		paths = append(paths, c.path)
	}
	x, f := extract(t, "json", f1, paths...)
	if f.Malformed() {
		t.Fatal("F1 reported malformed")
	}
	for _, c := range cases {
		check(t, x, f, c.path, c.w)
	}
	// Each path alone gives the same answer as in the union.
	for _, c := range cases {
		x, f := extract(t, "json", f1, c.path)
		check(t, x, f, c.path, c.w)
	}
}

func TestValueModelShapes(t *testing.T) {
	cases := []struct {
		body, path string
		w          want
	}{
		{`{"a":[]}`, "/a", arrayOf()},                                   // empty array is NULL
		{`{"a":[[1,2],[3]]}`, "/a", arrayOf("Int:1", "Int:2", "Int:3")}, // nested arrays flatten
		{`{"a":[[],[[4]],5]}`, "/a", arrayOf("Int:4", "Int:5")},
		{`{"a":[1,null,"",3]}`, "/a", arrayOf("Int:1", "Null", "Null", "Int:3")}, // positions kept
		{`{"a":1,"a":2}`, "/a", vals("Int:1")},                                   // first occurrence wins
		{`{"a":{"b":1},"a":{"b":2}}`, "/a/b", vals("Int:1")},
		{`{"l":[{"p":1,"p":9},{"p":2}]}`, "/l/p", arrayOf("Int:1", "Int:2")}, // per element
		{`{"l":[{"p":1},{},{"p":3}]}`, "/l/p", arrayOf("Int:1", "Int:3")},
		{`{"l":[{"p":[1,2]},{"p":3}]}`, "/l/p", arrayOf("Int:1", "Int:2", "Int:3")},
		{`{"l":[{"m":{"p":1}},[{"m":{"p":2}}]]}`, "/l/m/p", arrayOf("Int:1", "Int:2")},
		{`{"l":[1,{"p":2},3]}`, "/l", arrayOf("Int:1", "Int:3")},
		{`{"odd key":4}`, "/odd key", vals("Int:4")},
		{`{"a":-0.5e+3,"b":0,"c":-12}`, "/a", vals("Float:-0.5e+3")},
		{`{"a":18446744073709551615}`, "/a", vals("Int:18446744073709551615")},
		{`{"a":false}`, "/a", vals("Bool:false")},
		{`{"s\u0079m":"x"}`, "/sym", vals("String:x")}, // escaped member name
		{`{"a":"x\"y\\z\/\n\t"}`, "/a", vals("String:x\"y\\z/\n\t")},
		{`{"a":"\u00e9\ud83d\ude00"}`, "/a", vals("String:é😀")}, // surrogate pair
		{`{"a":"\ud83d!"}`, "/a", vals("String:\uFFFD!")},       // lone surrogate
		{`{"a":"\u0000"}`, "/a", vals("String:\x00")},
		{` { "a" : [ 1 , 2 ] , "b" : { } } `, "/a", arrayOf("Int:1", "Int:2")},
		{`{"a":"}]","b":1}`, "/b", vals("Int:1")}, // brackets in skipped strings
		{`{"x":{"y":"\"}"},"b":1}`, "/b", vals("Int:1")},
	}
	for _, c := range cases {
		x, f := extract(t, "json", c.body, c.path)
		if f.Malformed() {
			t.Errorf("%s: reported malformed", c.body)
		}
		check(t, x, f, c.path, c.w)
	}
}

func TestSubscripts(t *testing.T) {
	x, f := extract(t, "json", f1, "/lvl", "/legs/px", "/id", "/nosuch", "/legs")
	at := func(p string, i int) string {
		s, _ := x.Slot(split(p))
		return show(f.Field(s).At(i))
	}
	first := func(p string) string {
		s, _ := x.Slot(split(p))
		return show(f.Field(s).First())
	}
	for _, c := range [][2]string{
		{at("/lvl", 1), "Int:25"}, {at("/lvl", 3), "Missing"}, {at("/lvl", -1), "Missing"},
		{at("/legs/px", 1), "Float:2.5"}, {at("/id", 0), "Int:7"}, {at("/id", 1), "Missing"},
		{first("/lvl"), "Int:10"}, {first("/nosuch"), "Missing"}, {first("/legs"), "Null"},
	} {
		if c[0] != c[1] {
			t.Errorf("got %s, want %s", c[0], c[1])
		}
	}
}

// TestEarlyStop shows that the scan stops once every requested path is
// complete: damage after that point is never looked at.
func TestEarlyStop(t *testing.T) {
	cases := []struct {
		body  string
		paths []string
		bad   bool
	}{
		{`{"a":1,"b":2,GARBAGE`, []string{"/a", "/b"}, false},
		{`{"a":1,"m":{"x":2,GARBAGE`, []string{"/a", "/m/x"}, false},
		{`{"m":{"x":2,"y":GARBAGE},"a":1}`, []string{"/a", "/m/x"}, false}, // skip is not validating
		// A path through an array of objects is complete only once the array ends.
		{`{"l":[{"p":1}],"a":1,GARBAGE`, []string{"/a", "/l/p"}, false},
		{`{"l":[{"p":1},GARBAGE`, []string{"/l/p"}, true},
		{`{"a":1,"b":2,GARBAGE`, []string{"/a", "/c"}, true},
	}
	for _, c := range cases {
		x, f := extract(t, "json", c.body, c.paths...)
		if f.Malformed() != c.bad {
			t.Errorf("%s %v: malformed=%v, want %v", c.body, c.paths, f.Malformed(), c.bad)
		}
		if s, _ := x.Slot(split(c.paths[0])); f.Field(s).First().Kind == Missing && !c.bad {
			t.Errorf("%s: %s missing", c.body, c.paths[0])
		}
	}
	x, f := extract(t, "json", `{"l":[{"p":1}],"a":1,"l":[{"p":2}],"b":1}`, "/l/p", "/a")
	check(t, x, f, "/l/p", arrayOf("Int:1")) // the duplicate array is ignored
}

func TestMalformedJSON(t *testing.T) {
	for _, body := range []string{
		``, `   `, `[1]`, `"x"`, `{`, `{"a"`, `{"a":`, `{"a":1`, `{"a":1,`, `{"a":1}x`,
		`{"a":tru}`, `{"a":nul}`, `{"a":01}`, `{"a":1.}`, `{"a":1e}`, `{"a":-}`, `{"a":+1}`,
		`{"a":"x}`, `{"a":"\q"}`, `{"a":"\u12"}`, `{a:1}`, `{"a" 1}`, `{"a":1 "b":2}`,
		`{"a":[1,}`, `{"a":[1 2]}`, `{"a":{"b":1}`,
	} {
		_, f := extract(t, "json", body, "/a", "/b")
		if !f.Malformed() {
			t.Errorf("%q: not reported malformed", body)
		}
	}
	// What came before the damage is kept; the rest is Missing.
	x, f := extract(t, "json", `{"a":1,"c":[1,2,x],"b":2}`, "/a", "/b", "/c")
	if !f.Malformed() {
		t.Error("not malformed")
	}
	check(t, x, f, "/a", vals("Int:1"))
	check(t, x, f, "/b", vals())
	check(t, x, f, "/c", arrayOf("Int:1", "Int:2"))
	// Every truncation of F1 is safe and keeps the complete values.
	for n := 0; n < len(f1); n++ {
		x, f := extract(t, "json", f1[:n], "/id", "/legs/px", "/meta/geo/code", "/zzz")
		if !f.Malformed() {
			t.Fatalf("truncated at %d: not malformed", n)
		}
		if s, _ := x.Slot(split("/id")); n > 8 && show(f.Field(s).First()) != "Int:7" {
			t.Fatalf("truncated at %d: /id lost", n)
		}
	}
}

func TestFIXAndNVFIX(t *testing.T) {
	x, f := extract(t, "fix", "35=D\x0155=ACME\x0138=500\x0144=\x0155=DUP\x01", "/35", "/55", "/38", "/44", "/99", "/a/b")
	if f.Malformed() {
		t.Error("malformed")
	}
	check(t, x, f, "/35", vals("String:D"))
	check(t, x, f, "/55", vals("String:ACME")) // first occurrence wins
	check(t, x, f, "/38", vals("String:500"))  // raw bytes; numeric reading comes later
	check(t, x, f, "/44", vals("Null"))        // empty value is NULL
	check(t, x, f, "/99", vals())
	check(t, x, f, "/a/b", vals()) // no hierarchy in FIX

	// NVFIX: names; the message separator ends the message.
	x, f = extract(t, "nvfix", "Symbol=IBM\x01Price=12.5\x01\x01Note=a=b\x03Side=S\x01", "/Symbol", "/Price", "/Note", "/Side")
	check(t, x, f, "/Symbol", vals("String:IBM"))
	check(t, x, f, "/Price", vals("String:12.5"))
	check(t, x, f, "/Note", vals("String:a=b"))
	check(t, x, f, "/Side", vals())
	if f.Malformed() {
		t.Error("malformed")
	}
	// Stops after the last needed field; damage and no trailing SOH before that.
	x, f = extract(t, "nvfix", "A=1\x01B=2\x01garbage", "/A", "/B")
	check(t, x, f, "/B", vals("String:2"))
	if f.Malformed() {
		t.Error("garbage after the last needed field was read")
	}
	x, f = extract(t, "fix", "35=D\x01garbage\x0155=X", "/35", "/55")
	check(t, x, f, "/35", vals("String:D"))
	check(t, x, f, "/55", vals())
	if !f.Malformed() {
		t.Error("a field without = not reported")
	}
	_, f = extract(t, "fix", "=5\x01", "/55")
	if !f.Malformed() {
		t.Error("an empty tag not reported")
	}
}

func TestCompileErrors(t *testing.T) {
	if _, err := NewExtractor("xml", [][]string{{"a"}}); err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Errorf("xml: %v", err)
	}
	if _, err := NewExtractor("json", [][]string{{}}); err == nil {
		t.Error("empty path accepted")
	}
	if _, err := NewExtractor("json", [][]string{{"a", ""}}); err == nil {
		t.Error("empty step accepted")
	}
	x, err := NewExtractor("json", [][]string{{"a"}, {"b", "c"}, {"a"}})
	if err != nil || x.Len() != 2 {
		t.Fatalf("dedup: %v %d", err, x.Len())
	}
	if s, ok := x.Slot([]string{"b", "c"}); !ok || s != 1 || strings.Join(x.Path(s), "/") != "b/c" {
		t.Error("Slot/Path")
	}
	if _, ok := x.Slot([]string{"b"}); ok {
		t.Error("a prefix has a slot")
	}
}

// TestManyChildren covers the map lookup of a node with many children.
func TestManyChildren(t *testing.T) {
	var paths []string
	var body bytes.Buffer
	body.WriteString("{")
	for i := 0; i < 40; i++ {
		paths = append(paths, fmt.Sprintf("/f%d", i))
		fmt.Fprintf(&body, `"f%d":%d,`, 39-i, 39-i)
	}
	body.WriteString(`"z":0}`)
	x, f := extract(t, "json", body.String(), paths...)
	for i := 0; i < 40; i++ {
		check(t, x, f, fmt.Sprintf("/f%d", i), vals(fmt.Sprintf("Int:%d", i)))
	}
}

// body1K is a ~1 KiB JSON message; the fields wanted are spread through it.
func body1K() []byte {
	var b bytes.Buffer
	b.WriteString(`{"id":123456,`)
	for i := 0; b.Len() < 1000; i++ {
		switch i {
		case 3:
			b.WriteString(`"sym":"ACME",`)
		case 7:
			b.WriteString(`"px":101.25,`)
		case 11:
			b.WriteString(`"legs":[{"px":1.5,"ccy":"USD"},{"px":2.5,"ccy":"EUR"}],`)
		case 15:
			b.WriteString(`"meta":{"desk":"rates","geo":{"code":"EMEA"}},`)
		}
		fmt.Fprintf(&b, `"pad%02d":"some padding text %d","n%02d":%d,`, i, i, i, i*31)
	}
	b.WriteString(`"qty":250}`)
	return b.Bytes()
}

var paths5 = [][]string{{"sym"}, {"px"}, {"legs", "ccy"}, {"meta", "geo", "code"}, {"qty"}}

func TestZeroAllocs(t *testing.T) {
	x, _ := NewExtractor("json", paths5)
	f := x.NewFields()
	body := body1K()
	x.Extract(body, f)
	if f.Malformed() {
		t.Fatal("benchmark body malformed")
	}
	for i := range paths5 {
		if f.Field(i).First().Kind == Missing {
			t.Fatalf("path %v missing", paths5[i])
		}
	}
	if n := testing.AllocsPerRun(100, func() { x.Extract(body, f) }); n != 0 {
		t.Errorf("%v allocations per extraction", n)
	}
	fx, _ := NewExtractor("fix", [][]string{{"35"}, {"55"}})
	ff := fx.NewFields()
	fb := []byte("35=D\x0155=ACME\x0138=500\x01")
	if n := testing.AllocsPerRun(100, func() { fx.Extract(fb, ff) }); n != 0 {
		t.Errorf("fix: %v allocations per extraction", n)
	}
}

func BenchmarkExtractJSON5Fields1K(b *testing.B) {
	x, _ := NewExtractor("json", paths5)
	f := x.NewFields()
	body := body1K()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		x.Extract(body, f)
	}
}

// BenchmarkEarlyStop: the time grows with the position of the last needed
// field, not with the length of the body (64 KiB here).
func BenchmarkEarlyStop(b *testing.B) {
	var body bytes.Buffer
	body.WriteString("{")
	for i := 0; body.Len() < 64<<10; i++ {
		fmt.Fprintf(&body, `"f%d":"padding %d",`, i, i)
	}
	body.WriteString(`"end":1}`)
	for _, pos := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("field%d", pos), func(b *testing.B) {
			x, _ := NewExtractor("json", [][]string{{"f0"}, {fmt.Sprintf("f%d", pos)}})
			f := x.NewFields()
			b.ReportAllocs()
			for b.Loop() {
				x.Extract(body.Bytes(), f)
			}
		})
	}
	b.Run("end", func(b *testing.B) {
		x, _ := NewExtractor("json", [][]string{{"end"}})
		f := x.NewFields()
		for b.Loop() {
			x.Extract(body.Bytes(), f)
		}
	})
}

func BenchmarkExtractNVFIX(b *testing.B) {
	x, _ := NewExtractor("nvfix", [][]string{{"Symbol"}, {"Price"}, {"Qty"}})
	f := x.NewFields()
	body := []byte("MsgType=D\x01Account=XYZ123\x01Symbol=ACME\x01Side=B\x01Price=101.25\x01TimeInForce=0\x01Qty=500\x01Text=hello\x01")
	b.ReportAllocs()
	for b.Loop() {
		x.Extract(body, f)
	}
}

// naiveStrEnd is the reference for strEnd: a byte loop in which a
// backslash escapes the byte after it.
func naiveStrEnd(b []byte, i int) (int, bool) {
	esc := false
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			return i, esc
		case '\\':
			esc = true
			i++
		}
	}
	return -1, esc
}

// TestStrEnd checks the string scanners (byteEnd's short byte loop and
// strEnd's search and walk) against the reference at every start, over
// short and long strings with escaped quotes, runs of backslashes
// before a closing quote, multi-byte UTF-8 and bytes with the high bit
// set next to '"' and '\\' in value (0xa2, 0xdc).
func TestStrEnd(t *testing.T) {
	pieces := []string{`a`, `\"`, `\\`, `\\\"`, `\\\\`, "é", "\xa2", "\xdc", `\u00e9`, `"`, `xxxxxxxx`, `}]`,
		strings.Repeat("long", 10), strings.Repeat(`\n`, 12), strings.Repeat(`\\`, 9) + `\"`}
	var bodies []string
	for _, p := range pieces {
		for _, q := range pieces {
			for pad := 0; pad < 10; pad++ {
				bodies = append(bodies, strings.Repeat("p", pad)+p+q+`"tail`, strings.Repeat("p", pad)+p+q)
			}
		}
	}
	for _, body := range bodies {
		b := []byte(body)
		for i := 0; i <= len(b)+1; i++ {
			want, wantEsc := naiveStrEnd(b, i)
			got, gotEsc := strEnd(b, i)
			if got != want || (got >= 0 && gotEsc != wantEsc) {
				t.Fatalf("strEnd(%q, %d) = %d, %v; want %d, %v", body, i, got, gotEsc, want, wantEsc)
			}
			if e := byteEnd(b, i); e >= 0 && (e != want || wantEsc) {
				t.Fatalf("byteEnd(%q, %d) = %d; want %d (escapes %v)", body, i, e, want, wantEsc)
			}
		}
	}
}

// TestSkipping covers the skipping of members no path asks for: strings
// that end in escaped backslashes or hold escaped quotes and brackets,
// long strings, deep nesting, escaped names compared decoded, unicode.
func TestSkipping(t *testing.T) {
	deep := strings.Repeat(`{"x":[`, 200) + `"]}\"{["` + strings.Repeat(`]}`, 200)
	cases := []struct {
		body, path string
		w          want
	}{
		{`{"s":"a\\","b":1}`, "/b", vals("Int:1")},
		{`{"s":"\\\\\\","b":1}`, "/b", vals("Int:1")},
		{`{"s":"\\\"\\","b":1}`, "/b", vals("Int:1")},
		{`{"s":"0123456789abcdef\"0123456789\\","b":1}`, "/b", vals("Int:1")},
		{`{"o":{"s":"x\\","t":"}\"]"},"b":1}`, "/b", vals("Int:1")},
		{`{"o":{"s":"0123456789abcdef\\\\","t":"[{"},"b":1}`, "/b", vals("Int:1")},
		{`{"d":` + deep + `,"b":2}`, "/b", vals("Int:2")},
		{`{"d":` + deep + `,"b":2}`, "/d/x/x", arrayOf()},
		{`{"caf\u00e9":1,"café":2,"b":3}`, "/café", vals("Int:1")},
		{`{"k\"ey":1,"b\\":2}`, `/k"ey`, vals("Int:1")},
		{`{"k\"ey":1,"b\\":2}`, `/b\`, vals("Int:2")},
		{`{"é😀":"ü\"😀\\","b":"x"}`, "/é😀", vals(`String:ü"😀\`)},
		{`{"a":"` + strings.Repeat("long ", 40) + `\\","b":1}`, "/b", vals("Int:1")},
		{`{"a":[1,"]",{"]":"}"},[[]]],"b":1}`, "/b", vals("Int:1")},
	}
	for _, c := range cases {
		x, f := extract(t, "json", c.body, c.path)
		if f.Malformed() {
			t.Errorf("%s: reported malformed", c.body)
		}
		check(t, x, f, c.path, c.w)
	}
	// Every truncation of these bodies is reported, never read past.
	for _, c := range cases {
		for n := 0; n < len(c.body); n++ {
			_, f := extract(t, "json", c.body[:n], c.path, "/zz")
			if !f.Malformed() {
				t.Fatalf("%q truncated to %d: not malformed", c.body, n)
			}
		}
	}
}

// TestSkippedScalarsChecked: a scalar that is skipped is still checked,
// as when it is read, so damage before the last needed path is reported.
func TestSkippedScalarsChecked(t *testing.T) {
	for _, body := range []string{`{"z":tru,"a":1}`, `{"z":01,"a":1}`, `{"z":-,"a":1}`, `{"z":"x,"a":1}`, `{"z":{"y":"x},"a":1}`} {
		x, f := extract(t, "json", body, "/a")
		if !f.Malformed() {
			t.Errorf("%s: not reported malformed", body)
		}
		check(t, x, f, "/a", vals())
	}
}
