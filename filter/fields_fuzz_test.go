package filter

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzExtractJSON checks that extraction never panics, and that on bodies
// encoding/json accepts it agrees with encoding/json on every top-level
// member: the first occurrence of each name (duplicates: first wins), with
// scalars compared by kind and bytes, and arrays of scalars element-wise.
func FuzzExtractJSON(f *testing.F) {
	for _, s := range []string{
		f1, `{}`, `{"a":1,"a":2}`, `{"a":"\u00e9\ud83d\ude00","b":[[1],[2,[3]]]}`,
		`{"a":""}`, `{"a":null,"b":true,"c":-1.5e3}`, `{"l":[{"p":1},{"p":2}]}`, `{"a":"x\"}"}`,
		`{"a":1,"b":`, `[1]`, `{"a":[],"b":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// No panic on anything, whatever is asked for.
		x, err := NewExtractor("json", [][]string{{"a"}, {"b"}, {"l", "p"}, {"a", "b", "c"}})
		if err != nil {
			t.Fatal(err)
		}
		fs := x.NewFields()
		x.Extract(body, fs)

		first, ok := firstMembers(body)
		if !ok {
			return
		}
		var paths [][]string
		var names []string
		for name := range first {
			if name == "" || strings.ContainsRune(name, utf8.RuneError) {
				// No identifier names an empty step; encoding/json turns
				// invalid UTF-8 in a name into U+FFFD, AMPS keeps the bytes.
				continue
			}
			paths = append(paths, []string{name})
			names = append(names, name)
		}
		paths = append(paths, []string{"zz-absent-zz"})
		x, err = NewExtractor("json", paths)
		if err != nil {
			t.Fatal(err)
		}
		fs = x.NewFields()
		x.Extract(body, fs)
		if fs.Malformed() {
			t.Fatalf("%q: accepted by encoding/json but reported malformed", body)
		}
		for _, name := range names {
			s, _ := x.Slot([]string{name})
			fl := fs.Field(s)
			want, wantArray := expect(first[name])
			if want == nil {
				continue // a value whose bytes cannot be compared
			}
			var got []string
			for _, v := range fl.Values {
				got = append(got, show(v))
			}
			if strings.Join(got, "|") != strings.Join(want, "|") || fl.Array != wantArray {
				t.Fatalf("%q: member %q: got %q array=%v, want %q array=%v", body, name, got, fl.Array, want, wantArray)
			}
		}
		if s, _ := x.Slot([]string{"zz-absent-zz"}); first["zz-absent-zz"] == nil && len(fs.Field(s).Values) != 0 {
			t.Fatalf("%q: absent member has values", body)
		}
	})
}

// firstMembers decodes a top-level JSON object with encoding/json, keeping
// the first occurrence of every member name.
func firstMembers(body []byte) (map[string]any, bool) {
	var all any
	if json.Unmarshal(body, &all) != nil {
		return nil, false
	}
	if _, isObj := all.(map[string]any); !isObj {
		return nil, false
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if _, err := d.Token(); err != nil {
		return nil, false
	}
	first := map[string]any{}
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return nil, false
		}
		name, _ := tok.(string)
		var v any
		if d.Decode(&v) != nil {
			return nil, false
		}
		if _, dup := first[name]; !dup {
			first[name] = v
		}
	}
	return first, true
}

// expect renders what the extractor should yield for a value decoded by
// encoding/json; nil when the value cannot be compared byte for byte
// (encoding/json replaces invalid UTF-8 with U+FFFD, AMPS keeps bytes).
func expect(v any) ([]string, bool) {
	scalar := func(v any) (string, bool) {
		switch v := v.(type) {
		case nil:
			return "Null", true
		case bool:
			if v {
				return "Bool:true", true
			}
			return "Bool:false", true
		case json.Number:
			if strings.ContainsAny(string(v), ".eE") {
				return "Float:" + string(v), true
			}
			return "Int:" + string(v), true
		case string:
			if v == "" {
				return "Null", true
			}
			if strings.ContainsRune(v, utf8.RuneError) {
				return "", false
			}
			return "String:" + v, true
		}
		return "", true // an object: no value
	}
	arr, isArr := v.([]any)
	if !isArr {
		if _, isObj := v.(map[string]any); isObj {
			return []string{}, false
		}
		s, ok := scalar(v)
		if !ok {
			return nil, false
		}
		return []string{s}, false
	}
	out := []string{}
	var walk func([]any) bool
	walk = func(a []any) bool {
		for _, e := range a {
			switch e := e.(type) {
			case []any:
				if !walk(e) { // nested arrays flatten
					return false
				}
			case map[string]any:
				// an object element adds no value
			default:
				s, ok := scalar(e)
				if !ok {
					return false
				}
				out = append(out, s)
			}
		}
		return true
	}
	if !walk(arr) {
		return nil, true
	}
	return out, true
}
