package jsondelta

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

// refObject reports what Merge and Diff must accept, by encoding/json's
// judgement: valid JSON, an object, nested at most MaxDepth deep.
func refObject(x []byte) bool {
	if !json.Valid(x) {
		return false
	}
	x = bytes.TrimLeft(x, " \t\r\n")
	if x[0] != '{' {
		return false
	}
	depth, inString := 0, false
	for i := 0; i < len(x); i++ {
		switch c := x[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case !inString && (c == '{' || c == '['):
			if depth++; depth > MaxDepth {
				return false
			}
		case !inString && (c == '}' || c == ']'):
			depth--
		}
	}
	return true
}

// decode decodes x keeping numbers as their text.
func decode(t *testing.T, x []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(x))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decoding %q: %v", x, err)
	}
	return v
}

// noRepeatedNames reports whether no object in x (valid JSON) holds a
// name twice.
func noRepeatedNames(x []byte) bool {
	type frame struct {
		obj, wantKey bool
		seen         map[string]bool
	}
	var stack []*frame
	d := json.NewDecoder(bytes.NewReader(x))
	for {
		tok, err := d.Token()
		if err != nil {
			return true // io.EOF: x is valid
		}
		if n := len(stack); n > 0 && stack[n-1].obj && stack[n-1].wantKey {
			if name, ok := tok.(string); ok {
				if stack[n-1].seen[name] {
					return false
				}
				stack[n-1].seen[name] = true
				stack[n-1].wantKey = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if n := len(stack); n > 0 {
				stack[n-1].wantKey = true
			}
			stack = append(stack, &frame{obj: tok == json.Delim('{'), wantKey: true, seen: map[string]bool{}})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		default:
			if n := len(stack); n > 0 {
				stack[n-1].wantKey = true
			}
		}
	}
}

// roundTrips is the condition under which a delta subscriber that merges
// each delta as a delta_publish is merged ends with new: every member of
// old is in new (recursively where both values are objects, as removals
// cannot be sent), and every member of new, reached through objects only,
// whose value is null or "" has that same value in old (a merge ignores
// null and "").
func roundTrips(old, new map[string]any) bool {
	for k, ov := range old {
		nv, ok := new[k]
		if !ok {
			return false
		}
		om, ok1 := ov.(map[string]any)
		nm, ok2 := nv.(map[string]any)
		if ok1 && ok2 && !roundTrips(om, nm) {
			return false
		}
	}
	for k, nv := range new {
		if nv == nil || nv == "" {
			if ov, ok := old[k]; !ok || !reflect.DeepEqual(ov, nv) {
				return false
			}
		}
	}
	return true
}

// refMerge is the merge rule on decoded values (member order aside).
func refMerge(stored, delta map[string]any) map[string]any {
	out := make(map[string]any, len(stored))
	for k, v := range stored {
		out[k] = v
	}
	for k, dv := range delta {
		if dv == nil || dv == "" {
			continue
		}
		sm, ok1 := out[k].(map[string]any)
		dm, ok2 := dv.(map[string]any)
		if ok1 && ok2 {
			out[k] = refMerge(sm, dm)
		} else {
			out[k] = dv
		}
	}
	return out
}

// FuzzMergeDiff checks, for any two byte strings a and b:
//   - Merge(a, b) and Diff(a, b) never panic; they succeed exactly when
//     both are JSON objects (by encoding/json) nested at most MaxDepth
//     deep, and then return valid JSON;
//   - for inputs that are valid UTF-8 with no repeated names, Merge agrees
//     with the merge rule applied to the decoded values, and merging the
//     same delta again changes nothing;
//   - Diff(a, a) is {} and empty;
//   - the round trip: for old = a and new = b or Merge(a, b), whenever
//     roundTrips(old, new) holds (and the UTF-8 and repeated-name
//     conditions), Merge(old, Diff(old, new)) decodes to the same value as
//     new (numbers compared as text), and an empty Diff means old and new
//     decode to the same value.
func FuzzMergeDiff(f *testing.F) {
	f.Add([]byte(`{"id":5,"st":"new","px":{"bid":9,"ask":11},"legs":[1,2],"memo":"x"}`),
		[]byte(`{"id":5,"st":"open","px":{"ask":12},"legs":[3],"memo":null,"venue":"X1"}`))
	f.Add([]byte(`{"a":{"b":{"c":1}},"d":[{"e":null}]}`), []byte(`{"a":{"b":5},"d":{"e":""},"f":"\u00e9"}`))
	f.Add([]byte(`{"a":1,"a":2,"\u0061":3}`), []byte(`{"a":null,"a":4}`))
	f.Add([]byte(` { "n" : 1.0 , "s" : "\ud83d\ude00" } `), []byte(`{"n":1,"s":"😀","t":true}`))
	f.Add([]byte(`{"id":1,"x":{"y":[]}}`), []byte(`{"id":2,"x":{"y":{}}}`))
	f.Add([]byte(`{}`), []byte(`[]`))
	keys := [][]string{{"id"}, {"px", "bid"}}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		valid := refObject(a) && refObject(b)
		merged, err := Merge(a, b)
		if (err == nil) != valid {
			t.Fatalf("Merge(%q, %q): err %v, but encoding/json says valid=%v", a, b, err, valid)
		}
		delta, _, err := Diff(a, b, keys)
		if (err == nil) != valid {
			t.Fatalf("Diff(%q, %q): err %v, but encoding/json says valid=%v", a, b, err, valid)
		}
		if !valid {
			return
		}
		if !json.Valid(merged) || !json.Valid(delta) {
			t.Fatalf("Merge(%q, %q) = %q, Diff = %q: not valid JSON", a, b, merged, delta)
		}
		if d, empty, err := Diff(a, a, nil); err != nil || !empty || string(d) != "{}" {
			t.Fatalf("Diff(%q, itself) = %q, %v, %v; want {}, true", a, d, empty, err)
		}
		if !utf8.Valid(a) || !utf8.Valid(b) || !noRepeatedNames(a) || !noRepeatedNames(b) {
			return
		}
		oldV := decode(t, a).(map[string]any)
		if want := refMerge(oldV, decode(t, b).(map[string]any)); !reflect.DeepEqual(decode(t, merged), any(want)) {
			t.Fatalf("Merge(%q, %q) = %s; the rule gives %v", a, b, merged, want)
		}
		again, err := Merge(merged, b)
		if err != nil || !reflect.DeepEqual(decode(t, again), decode(t, merged)) {
			t.Fatalf("merging %q into %q again gave %q, %v", b, merged, again, err)
		}
		for _, new := range [][]byte{b, merged} {
			newV := decode(t, new).(map[string]any)
			if !roundTrips(oldV, newV) {
				continue
			}
			delta, empty, err := Diff(a, new, keys)
			if err != nil {
				t.Fatalf("Diff(%q, %q): %v", a, new, err)
			}
			got, err := Merge(a, delta)
			if err != nil {
				t.Fatalf("Merge(%q, Diff = %q): %v", a, delta, err)
			}
			if !reflect.DeepEqual(decode(t, got), any(newV)) {
				t.Fatalf("old %s\nnew %s\ndiff %s\nmerged %s: not new", a, new, delta, got)
			}
			if empty && !reflect.DeepEqual(any(oldV), any(newV)) {
				t.Fatalf("Diff(%s, %s) = %s is empty, but they differ", a, new, delta)
			}
		}
	})
}
