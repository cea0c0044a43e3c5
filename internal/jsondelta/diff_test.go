package jsondelta

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

var idKey = [][]string{{"id"}}

// checkDiff runs Diff and compares its output byte for byte.
func checkDiff(t *testing.T, old, new string, keys [][]string, want string, wantEmpty bool) {
	t.Helper()
	got, empty, err := Diff([]byte(old), []byte(new), keys)
	if err != nil {
		t.Fatalf("Diff(%s, %s, %q): %v", old, new, keys, err)
	}
	if string(got) != want || empty != wantEmpty {
		t.Errorf("Diff(%s, %s, %q)\n got %s, empty=%v\nwant %s, empty=%v", old, new, keys, got, empty, want, wantEmpty)
	}
	if !json.Valid(got) {
		t.Errorf("Diff(%s, %s) = %s: not valid JSON", old, new, got)
	}
}

// The worked example read the other way: the record before and after
// that merge differ by what the delta changed.
func TestDiffWorkedExample(t *testing.T) {
	checkDiff(t,
		`{"id":5,"st":"new","px":{"bid":9,"ask":11},"legs":[1,2],"memo":"x"}`,
		`{"id":5,"st":"open","px":{"bid":9,"ask":12},"legs":[3],"memo":"x","venue":"X1"}`,
		idKey,
		`{"id":5,"st":"open","px":{"ask":12},"legs":[3],"venue":"X1"}`, false)
}

// One test per rule of delta subscriptions that concerns the diff.
func TestDiffTable(t *testing.T) {
	tests := []struct {
		name, old, new string
		keys           [][]string
		want           string
		empty          bool
	}{
		{"an update is the keys plus the changed fields",
			`{"id":1,"a":1,"b":2,"c":3}`, `{"id":1,"a":1,"b":5,"c":3}`, idKey, `{"id":1,"b":5}`, false},
		{"keys are always sent, with new's values, wherever they are",
			`{"a":1,"id":1,"k2":"x"}`, `{"a":2,"id":1,"k2":"x"}`, [][]string{{"k2"}, {"id"}}, `{"a":2,"id":1,"k2":"x"}`, false},
		{"an update that changes nothing is key-only (empty)",
			`{"id":1,"a":1}`, `{"id":1,"a":1}`, idKey, `{"id":1}`, true},
		{"with no keys, an unchanged record is an empty object",
			`{"a":[1,{"b":2}]}`, `{ "a" : [ 1 , { "b" : 2 } ] }`, nil, `{}`, true},
		{"a removed field cannot be expressed: it is left out and is no change",
			`{"id":1,"a":1,"gone":2}`, `{"id":1,"a":1}`, idKey, `{"id":1}`, true},
		{"a field new in new is sent",
			`{"id":1}`, `{"id":1,"n":{"x":[1]}}`, idKey, `{"id":1,"n":{"x":[1]}}`, false},
		{"nested objects send only their changed leaves",
			`{"id":1,"p":{"a":1,"b":{"c":1,"d":2}},"q":{"z":0}}`, `{"id":1,"p":{"a":1,"b":{"c":1,"d":3}},"q":{"z":0}}`, idKey,
			`{"id":1,"p":{"b":{"d":3}}}`, false},
		{"nested member order does not matter",
			`{"p":{"a":1,"b":2}}`, `{"p":{"b":2,"a":1}}`, nil, `{}`, true},
		{"arrays are compared and sent whole",
			`{"id":1,"l":[1,2,3],"m":[1,2]}`, `{"id":1,"l":[1,2,4],"m":[1,2]}`, idKey, `{"id":1,"l":[1,2,4]}`, false},
		{"arrays of objects compare members in order",
			`{"l":[{"a":1,"b":2}]}`, `{"l":[{"b":2,"a":1}]}`, nil, `{"l":[{"b":2,"a":1}]}`, false},
		{"a change of type sends new's value whole",
			`{"a":{"x":1},"b":5,"c":[1],"d":{"y":1}}`, `{"a":5,"b":{"x":1},"c":{"x":1},"d":[1]}`, nil,
			`{"a":5,"b":{"x":1},"c":{"x":1},"d":[1]}`, false},
		{"new's member order is kept",
			`{"a":1,"b":1,"c":1}`, `{"c":2,"new":1,"b":2,"a":2}`, nil, `{"c":2,"new":1,"b":2,"a":2}`, false},
		{"a value becoming null or empty is sent",
			`{"a":1,"b":"x"}`, `{"a":null,"b":""}`, nil, `{"a":null,"b":""}`, false},
		{"strings compare decoded; new's text is sent",
			`{"a":"é","b":"x"}`, `{"a":"\u00e9","b":"\u0079"}`, nil, `{"b":"\u0079"}`, false},
		{"numbers compare as written: 1.0 is not 1",
			`{"a":1,"b":100,"c":1.5}`, `{"a":1.0,"b":1e2,"c":1.5}`, nil, `{"a":1.0,"b":1e2}`, false},
		{"a nested key is sent as a nested object beside the changes",
			`{"o":{"id":7,"x":1,"y":1},"z":1}`, `{"o":{"id":7,"x":1,"y":2},"z":1}`, [][]string{{"o", "id"}}, `{"o":{"id":7,"y":2}}`, false},
		{"a nested key alone, empty",
			`{"o":{"id":7,"x":1},"z":1}`, `{"o":{"id":7,"x":1},"z":1}`, [][]string{{"o", "id"}}, `{"o":{"id":7}}`, true},
		{"a key that is an object is sent whole",
			`{"k":{"a":1,"b":2},"v":1}`, `{"k":{"a":1,"b":2},"v":2}`, [][]string{{"k"}}, `{"k":{"a":1,"b":2},"v":2}`, false},
		{"a key path through a non-object is left out",
			`{"o":5,"v":1}`, `{"o":5,"v":1}`, [][]string{{"o", "id"}, {"missing"}}, `{}`, true},
		{"a key missing from new is left out",
			`{"id":1,"v":1}`, `{"v":2}`, idKey, `{"v":2}`, false},
		{"whitespace is not a change; the delta is compact",
			"{\"id\" : 1 ,\n \"a\" : [ 1 ] }", "{ \"id\":1, \"a\":[1], \"b\" : [ 2 ] }", idKey, `{"id":1,"b":[ 2 ]}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkDiff(t, tt.old, tt.new, tt.keys, tt.want, tt.empty) })
	}
}

// Repeated names: only first occurrences are compared and sent.
func TestDiffDuplicates(t *testing.T) {
	checkDiff(t, `{"a":1,"a":2}`, `{"a":1,"a":3}`, nil, `{}`, true)
	checkDiff(t, `{"a":1}`, `{"a":2,"a":1,"b":1,"b":2}`, nil, `{"a":2,"b":1}`, false)
	checkDiff(t, `{"a":1}`, `{"\u0061":1}`, nil, `{}`, true)
	checkDiff(t, `{"id":1}`, `{"id":1,"id":2}`, idKey, `{"id":1}`, true)
}

func TestDiffDeep(t *testing.T) {
	nest := func(depth int, leaf string) string {
		return strings.Repeat(`{"a":`, depth-1) + leaf + strings.Repeat(`}`, depth-1)
	}
	checkDiff(t, nest(MaxDepth, `{"x":1,"y":2}`), nest(MaxDepth, `{"x":1,"y":3}`), nil, nest(MaxDepth, `{"y":3}`), false)
	checkDiff(t, nest(MaxDepth, `{"x":1}`), nest(MaxDepth, `{"x":1}`), nil, `{}`, true)
	_, _, err := Diff([]byte(`{}`), []byte(nest(MaxDepth+1, `{}`)), nil)
	var e *Error
	if !errors.As(err, &e) || e.Input != "new" || !strings.Contains(err.Error(), "deeper than 512") {
		t.Errorf("Diff of a too deep new: %v", err)
	}
}

func TestDiffErrors(t *testing.T) {
	tests := []struct {
		old, new string
		keys     [][]string
		want     string
	}{
		{`[]`, `{}`, nil, "jsondelta: old is not a JSON object: it starts with '[' at byte 0"},
		{`{}`, `{"a":}`, nil, "jsondelta: new is not valid JSON: expected a value, found '}' at byte 5"},
		{`{}`, `{}`, [][]string{{"id"}, {}}, "jsondelta: key path 1 is empty"},
	}
	for _, tt := range tests {
		got, _, err := Diff([]byte(tt.old), []byte(tt.new), tt.keys)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Diff(%q, %q, %q) = %s, %v; want error %q", tt.old, tt.new, tt.keys, got, err, tt.want)
		}
	}
}

// Large objects are paired through the hash table: the same result.
func TestDiffLarge(t *testing.T) {
	var old, new, want strings.Builder
	old.WriteString(`{`)
	new.WriteString(`{`)
	// "f0" is also the first name, so the last member of both is a
	// later duplicate: the key is sent with its first value.
	want.WriteString(`{"f0":0`)
	for i := 0; i < 100; i++ {
		if i > 0 {
			old.WriteString(",")
			new.WriteString(",")
		}
		name := `"f` + strings.Repeat("x", i%5) + string(rune('0'+i%10)) + strings.Repeat("y", i/10) + `"`
		old.WriteString(name + `:0`)
		if i%10 == 3 {
			new.WriteString(name + `:1`)
			want.WriteString("," + name + `:1`)
		} else {
			new.WriteString(name + `:0`)
		}
	}
	old.WriteString(`,"f0":0}`)
	new.WriteString(`,"f0":1,"zz":1}`)
	want.WriteString(`,"zz":1}`)
	checkDiff(t, old.String(), new.String(), [][]string{{"f0"}}, want.String(), false)
}
