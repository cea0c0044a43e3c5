package jsondelta

import (
	"encoding/json"
	"testing"
)

// The select list rules of semantics §4.2: most specific directive wins,
// unmatched fields are kept, the first directive of a path wins, no field
// is created.
func TestSelect(t *testing.T) {
	msg := `{"id":1,"sym":"A","px":{"bid":9,"ask":11,"src":{"v":"X"}},"legs":[{"q":1}],"memo":"m"}`
	for _, tc := range []struct{ list, want string }{
		{"-/,+/id", `{"id":1}`},
		{"-/,+/id,+/px/bid", `{"id":1,"px":{"bid":9}}`},
		{"-/px", `{"id":1,"sym":"A","legs":[{"q":1}],"memo":"m"}`},
		{"-/px/src", `{"id":1,"sym":"A","px":{"bid":9,"ask":11},"legs":[{"q":1}],"memo":"m"}`},
		{"+/", msg},
		{"-/memo,+/memo", `{"id":1,"sym":"A","px":{"bid":9,"ask":11,"src":{"v":"X"}},"legs":[{"q":1}]}`},
		{"-/,+/px/src/v", `{"px":{"src":{"v":"X"}}}`},
		{"-/,+/nosuch", `{}`},
		{"-/,+/px,-/px/ask", `{"px":{"bid":9,"src":{"v":"X"}}}`},
	} {
		sel, err := ParseSelect(tc.list)
		if err != nil {
			t.Fatalf("%s: %v", tc.list, err)
		}
		got, err := Select([]byte(msg), sel)
		if err != nil || string(got) != tc.want {
			t.Errorf("select=[%s]: %s (%v), want %s", tc.list, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "id", "+id", "*/a", "+/a//b"} {
		if _, err := ParseSelect(bad); err == nil {
			t.Errorf("ParseSelect(%q) accepted", bad)
		}
	}
	sel, _ := ParseSelect("-/")
	if _, err := Select([]byte(`[1]`), sel); err == nil {
		t.Error("Select of an array accepted")
	}
}

// FuzzSelect: any select list over any bytes never panics, and what Select
// returns for a JSON object is valid JSON.
func FuzzSelect(f *testing.F) {
	f.Add(`-/,+/a/b`, `{"a":{"b":1,"c":2},"d":[1]}`)
	f.Add(`-/a`, `{"a":"x\"y","a":2}`)
	f.Fuzz(func(t *testing.T, list, body string) {
		sel, err := ParseSelect(list)
		if err != nil {
			return
		}
		out, err := Select([]byte(body), sel)
		if err == nil && !json.Valid(out) {
			t.Fatalf("select=[%s] over %q gave invalid JSON %q", list, body, out)
		}
	})
}
