package jsondelta

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// checkMerge runs Merge and compares its output byte for byte.
func checkMerge(t *testing.T, stored, delta, want string) {
	t.Helper()
	got, err := Merge([]byte(stored), []byte(delta))
	if err != nil {
		t.Fatalf("Merge(%s, %s): %v", stored, delta, err)
	}
	if string(got) != want {
		t.Errorf("Merge(%s, %s)\n got %s\nwant %s", stored, delta, got, want)
	}
	if !json.Valid(got) {
		t.Errorf("Merge(%s, %s) = %s: not valid JSON", stored, delta, got)
	}
}

// The worked example of the specification, byte for byte.
func TestMergeWorkedExample(t *testing.T) {
	checkMerge(t,
		`{"id":5,"st":"new","px":{"bid":9,"ask":11},"legs":[1,2],"memo":"x"}`,
		`{"id":5,"st":"open","px":{"ask":12},"legs":[3],"memo":null,"venue":"X1"}`,
		`{"id":5,"st":"open","px":{"bid":9,"ask":12},"legs":[3],"memo":"x","venue":"X1"}`)
}

// One test per row of the merge table that concerns the JSON document.
func TestMergeTable(t *testing.T) {
	tests := []struct{ name, stored, delta, want string }{
		{"a field with a value replaces the stored value",
			`{"a":1,"b":"x","c":true}`, `{"b":"y","c":false}`, `{"a":1,"b":"y","c":false}`},
		{"a field with the same value is still written (the stored text is replaced by the delta's)",
			`{"a":1,"b":"\u0078"}`, `{"b":"x"}`, `{"a":1,"b":"x"}`},
		{"an absent field keeps the stored value; a delta cannot remove a field",
			`{"a":1,"b":2,"c":3}`, `{}`, `{"a":1,"b":2,"c":3}`},
		{"null keeps the stored value",
			`{"a":1,"b":2}`, `{"a":null}`, `{"a":1,"b":2}`},
		{"empty string keeps the stored value",
			`{"a":"x","b":2}`, `{"a":""}`, `{"a":"x","b":2}`},
		{"null or empty string for a field not stored adds nothing",
			`{"a":1}`, `{"n":null,"e":"","f":0}`, `{"a":1,"f":0}`},
		{"a string holding only a space or an escape is a value",
			`{"a":"x","b":"y"}`, `{"a":" ","b":"\u0000"}`, `{"a":" ","b":"\u0000"}`},
		{"false and 0 are values, not absent",
			`{"a":true,"b":1}`, `{"a":false,"b":0}`, `{"a":false,"b":0}`},
		{"new fields are appended after the stored ones, in the delta's order",
			`{"a":1,"b":2}`, `{"z":26,"b":3,"y":25}`, `{"a":1,"b":3,"z":26,"y":25}`},
		{"an array replaces the stored array whole",
			`{"l":[1,2,3],"o":[{"x":1},{"y":2}]}`, `{"l":[9],"o":[{"y":3}]}`, `{"l":[9],"o":[{"y":3}]}`},
		{"an empty array replaces too",
			`{"l":[1,2]}`, `{"l":[]}`, `{"l":[]}`},
		{"nested objects merge member by member",
			`{"p":{"a":1,"b":2},"q":0}`, `{"p":{"b":3,"c":4}}`, `{"p":{"a":1,"b":3,"c":4},"q":0}`},
		{"nested objects merge recursively, with null kept at depth",
			`{"p":{"q":{"r":{"a":1,"b":2}},"s":1}}`, `{"p":{"q":{"r":{"b":null,"c":3}}}}`, `{"p":{"q":{"r":{"a":1,"b":2,"c":3}},"s":1}}`},
		{"an empty nested object changes nothing",
			`{"p":{"a":1}}`, `{"p":{}}`, `{"p":{"a":1}}`},
		{"an object replaces a scalar",
			`{"p":5}`, `{"p":{"a":1,"z":null}}`, `{"p":{"a":1,"z":null}}`},
		{"a scalar replaces an object",
			`{"p":{"a":1}}`, `{"p":7}`, `{"p":7}`},
		{"an array replaces an object",
			`{"p":{"a":1}}`, `{"p":[1]}`, `{"p":[1]}`},
		{"an object replaces an array",
			`{"p":[1,2]}`, `{"p":{"a":1}}`, `{"p":{"a":1}}`},
		{"a new field with an object value is appended as written",
			`{"a":1}`, `{"o":{"x":null,"y":""}}`, `{"a":1,"o":{"x":null,"y":""}}`},
		{"null never replaces an object",
			`{"p":{"a":1}}`, `{"p":null}`, `{"p":{"a":1}}`},
		{"null stored is replaced by a value",
			`{"p":null}`, `{"p":1}`, `{"p":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkMerge(t, tt.stored, tt.delta, tt.want) })
	}
}

// Values keep their text byte for byte; whitespace between members of a
// merged object is dropped, whitespace inside a copied value is kept.
func TestMergeKeepsText(t *testing.T) {
	checkMerge(t,
		" {\n \"n\" : 1.50 , \"big\": 12345678901234567890, \"e\":1E+2, \"o\" : { \"a\" : [1, 2] } ,\"s\":\"\\u00e9\\n\" }\t",
		`{ "n" : -0.0e-0 , "o": { "b" : { "k" : 1 } } }`,
		`{"n":-0.0e-0,"big":12345678901234567890,"e":1E+2,"o":{"a":[1, 2],"b":{ "k" : 1 }},"s":"\u00e9\n"}`)
	// Keys are kept as written too, the stored one for a stored member.
	checkMerge(t, `{"\u0061":1}`, `{"a":2,"\u0062":3}`, `{"\u0061":2,"\u0062":3}`)
}

// Names and strings compare by their decoded content.
func TestMergeUnicodeNames(t *testing.T) {
	checkMerge(t, `{"é":1,"😀":2,"a\"b":3}`, `{"\u00e9":4,"\ud83d\ude00":5,"a\u0022b":6}`, `{"é":4,"😀":5,"a\"b":6}`)
	checkMerge(t, `{"\/":1}`, `{"/":2}`, `{"\/":2}`)
	// Invalid UTF-8 is copied as it is.
	checkMerge(t, "{\"a\":\"\xff\"}", "{\"b\":\"\xfe\"}", "{\"a\":\"\xff\",\"b\":\"\xfe\"}")
}

// Repeated names: the first occurrence is the member, later ones are
// dropped from the objects Merge merges and kept in copied ones.
func TestMergeDuplicates(t *testing.T) {
	tests := []struct{ name, stored, delta, want string }{
		{"later stored duplicates are dropped", `{"a":1,"b":2,"a":3}`, `{}`, `{"a":1,"b":2}`},
		{"the first stored occurrence is replaced", `{"a":1,"a":3}`, `{"a":5}`, `{"a":5}`},
		{"later delta duplicates are ignored", `{"a":1}`, `{"a":2,"a":3,"b":4,"b":5}`, `{"a":2,"b":4}`},
		{"a first occurrence of null decides", `{"a":1}`, `{"a":null,"a":2}`, `{"a":1}`},
		{"duplicates under escapes", `{"a":1,"\u0061":2}`, `{"\u0061":3}`, `{"a":3}`},
		{"nested merged objects drop them", `{"p":{"x":1,"x":2}}`, `{"p":{"y":1,"y":2}}`, `{"p":{"x":1,"y":1}}`},
		{"copied objects keep them", `{"p":{"x":1,"x":2}}`, `{"q":{"y":1,"y":2}}`, `{"p":{"x":1,"x":2},"q":{"y":1,"y":2}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkMerge(t, tt.stored, tt.delta, tt.want) })
	}
}

// Objects large enough to be paired through the hash table behave as
// small ones do, duplicates included.
func TestMergeLargeObjects(t *testing.T) {
	var stored, delta, want strings.Builder
	stored.WriteString(`{`)
	delta.WriteString(`{`)
	want.WriteString(`{`)
	const n = 200
	for i := 0; i < n; i++ {
		if i > 0 {
			stored.WriteString(",")
			want.WriteString(",")
		}
		name := strings.Repeat("k", i%7+1) + string(rune('A'+i%26)) + strings.Repeat("z", i/26)
		stored.WriteString(`"` + name + `":0`)
		if i%3 == 0 {
			delta.WriteString(`"` + name + `":1,`)
			want.WriteString(`"` + name + `":1`)
		} else {
			want.WriteString(`"` + name + `":0`)
		}
	}
	stored.WriteString(`,"kA":9}`) // a later duplicate of the first name, dropped
	delta.WriteString(`"kA":7,"new1":1,"new2":2,"new1":3}`)
	want.WriteString(`,"new1":1,"new2":2}`)
	checkMerge(t, stored.String(), delta.String(), want.String())
}

func TestMergeDepth(t *testing.T) {
	nest := func(depth int, leaf string) string {
		return strings.Repeat(`{"a":`, depth-1) + leaf + strings.Repeat(`}`, depth-1)
	}
	// MaxDepth levels of objects merge; the deepest member is replaced.
	stored := nest(MaxDepth, `{"x":1,"y":2}`)
	delta := nest(MaxDepth, `{"y":3}`)
	checkMerge(t, stored, delta, nest(MaxDepth, `{"x":1,"y":3}`))
	// Arrays count too: MaxDepth containers are fine, one more is not.
	arr := `{"a":` + strings.Repeat(`[`, MaxDepth-1) + strings.Repeat(`]`, MaxDepth-1) + `}`
	checkMerge(t, `{}`, arr, arr)
	for _, tt := range []struct{ stored, delta, input string }{
		{nest(MaxDepth+1, `{}`), `{}`, "stored"},
		{`{}`, `{"a":` + strings.Repeat(`[`, MaxDepth) + strings.Repeat(`]`, MaxDepth) + `}`, "delta"},
		{`{}`, strings.Repeat(`[{"a":`, 100000), "delta"}, // no stack exhaustion
	} {
		_, err := Merge([]byte(tt.stored), []byte(tt.delta))
		var e *Error
		if !errors.As(err, &e) || e.Input != tt.input {
			t.Errorf("Merge of too deep %s: err %v, want an *Error on %s", tt.input, err, tt.input)
		} else if tt.input == "stored" && !strings.Contains(err.Error(), "deeper than 512") {
			t.Errorf("error %q does not name the depth limit", err)
		}
	}
}

func TestMergeErrors(t *testing.T) {
	tests := []struct{ stored, delta, want string }{
		{``, `{}`, "jsondelta: stored is not a JSON object: it is empty at byte 0"},
		{`{}`, ` [1]`, "jsondelta: delta is not a JSON object: it starts with '[' at byte 1"},
		{`"x"`, `{}`, "jsondelta: stored is not a JSON object: it starts with '\"' at byte 0"},
		{`{}`, `null`, "jsondelta: delta is not a JSON object: it starts with 'n' at byte 0"},
		{`{} {}`, `{}`, "jsondelta: stored is not valid JSON: '{' after the object at byte 3"},
		{`{"a":1,}`, `{}`, "jsondelta: stored is not valid JSON: expected '\"' to start a member name, found '}' at byte 7"},
		{`{}`, `{"a" 1}`, "jsondelta: delta is not valid JSON: expected ':' after a member name, found '1' at byte 5"},
		{`{}`, `{"a":01}`, "jsondelta: delta is not valid JSON: expected ',' or '}' after an object member, found '1' at byte 6"},
		{`{}`, `{"a":1.}`, "jsondelta: delta is not valid JSON: expected a digit after a decimal point, found '}' at byte 7"},
		{`{}`, `{"a":-}`, "jsondelta: delta is not valid JSON: expected a digit in a number, found '}' at byte 6"},
		{`{}`, `{"a":1e}`, "jsondelta: delta is not valid JSON: expected a digit in an exponent, found '}' at byte 7"},
		{`{}`, `{"a":tru}`, "jsondelta: delta is not valid JSON: expected true, found '}' at byte 8"},
		{`{}`, `{"a":nul`, "jsondelta: delta is not valid JSON: it ends where null was expected at byte 8"},
		{`{}`, `{"a":"x\q"}`, "jsondelta: delta is not valid JSON: unknown escape \\q in a string at byte 7"},
		{`{}`, `{"a":"\u12x4"}`, "jsondelta: delta is not valid JSON: \\u must be followed by four hex digits at byte 6"},
		{`{}`, "{\"a\":\"\t\"}", "jsondelta: delta is not valid JSON: control character '\\t' in a string at byte 6"},
		{`{}`, `{"a":"x`, "jsondelta: delta is not valid JSON: it ends where the end of a string was expected at byte 7"},
		{`{}`, `{"a":[1,]}`, "jsondelta: delta is not valid JSON: expected a value, found ']' at byte 8"},
		{`{}`, `{"a":[1 2]}`, "jsondelta: delta is not valid JSON: expected ',' or ']' after an array element, found '2' at byte 8"},
		{`{}`, `{"a":[{"b":1]}`, "jsondelta: delta is not valid JSON: expected ',' or '}' after an object member, found ']' at byte 12"},
		{`{}`, `{"a":{`, "jsondelta: delta is not valid JSON: it ends where a member name was expected at byte 6"},
		{`{}`, `{"a":[`, "jsondelta: delta is not valid JSON: it ends where a value was expected at byte 6"},
		{`{}`, `{"a":'x'}`, "jsondelta: delta is not valid JSON: expected a value, found '\\'' at byte 5"},
	}
	for _, tt := range tests {
		got, err := Merge([]byte(tt.stored), []byte(tt.delta))
		if err == nil || err.Error() != tt.want {
			t.Errorf("Merge(%q, %q) = %s, %v; want error %q", tt.stored, tt.delta, got, err, tt.want)
		}
		if json.Valid([]byte(tt.stored)) && json.Valid([]byte(tt.delta)) && tt.stored[0] == '{' && tt.delta[0] == '{' {
			t.Errorf("test case %q, %q is valid JSON", tt.stored, tt.delta)
		}
	}
}
