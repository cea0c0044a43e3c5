package jsondelta

import (
	"fmt"
	"strings"
)

// Selector is a compiled AMPS select list (the select=[…] option): which
// fields of a JSON message a subscriber receives.
//
// A directive is "+/path" (keep) or "-/path" (drop); "+/" and "-/" name
// every field. A field is kept or dropped by the most specific directive
// naming it or an object it is in (the one with the longest path); a field
// no directive names is kept. When a path is given twice, the first
// directive wins. A select list never creates a field: an object whose
// own directive drops it appears only if a more specific directive keeps
// something inside it, holding just that.
type Selector struct {
	dirs []directive
}

type directive struct {
	path []string
	keep bool
}

// ParseSelect compiles the directives of a select list, given without its
// brackets: "-/,+/id,+/px/bid". The error says which directive is wrong.
func ParseSelect(list string) (*Selector, error) {
	sel := &Selector{}
	seen := make(map[string]bool)
	for _, d := range strings.Split(list, ",") {
		d = strings.TrimSpace(d)
		if len(d) < 2 || (d[0] != '+' && d[0] != '-') || d[1] != '/' {
			return nil, fmt.Errorf("jsondelta: select directive %q is not +/path or -/path", d)
		}
		p := strings.TrimSuffix(d[2:], "/")
		var path []string
		if p != "" {
			path = strings.Split(p, "/")
			for _, step := range path {
				if step == "" {
					return nil, fmt.Errorf("jsondelta: select directive %q has an empty step", d)
				}
			}
		}
		if seen[p] {
			continue // the first directive of a path wins
		}
		seen[p] = true
		sel.dirs = append(sel.dirs, directive{path: path, keep: d[0] == '+'})
	}
	if len(sel.dirs) == 0 {
		return nil, fmt.Errorf("jsondelta: empty select list")
	}
	return sel, nil
}

// keeps reports whether the field at path is kept, and whether a directive
// names something strictly inside it (so an object there needs a look at
// its members).
func (sel *Selector) keeps(path [][]byte) (keep, deeper bool) {
	keep, best := true, -1
	for _, d := range sel.dirs {
		if len(d.path) <= len(path) {
			if len(d.path) > best && prefix(d.path, path) {
				keep, best = d.keep, len(d.path)
			}
		} else if prefix2(path, d.path) {
			deeper = true
		}
	}
	return keep, deeper
}

// prefix reports whether steps p begin path.
func prefix(p []string, path [][]byte) bool {
	for i, s := range p {
		if s != string(path[i]) {
			return false
		}
	}
	return true
}

// prefix2 reports whether path begins steps p.
func prefix2(path [][]byte, p []string) bool {
	for i, s := range path {
		if p[i] != string(s) {
			return false
		}
	}
	return true
}

// Select returns the JSON object body with only the fields sel keeps. It
// copies what it keeps byte for byte; the error is an *Error when body is
// not a JSON object.
func Select(body []byte, sel *Selector) ([]byte, error) {
	s := getState()
	defer putState(s)
	if err := s.a.parse(body, "message"); err != nil {
		return nil, err
	}
	out, _ := s.selectObject(s.out[:0], sel, s.a.root(), nil, true)
	s.out = out
	return append([]byte(nil), out...), nil
}

// selectObject appends object o with the members sel keeps; path is its
// path and keep its own decision. It reports whether it wrote the object.
func (s *state) selectObject(out []byte, sel *Selector, o int32, path [][]byte, keep bool) ([]byte, bool) {
	d := &s.a
	M := d.membersOf(o)
	start := len(out)
	out = append(out, '{')
	n := 0
	for i := range M {
		m := &M[i]
		p := append(path, m.name)
		k, deeper := sel.keeps(p)
		mark := len(out)
		out = d.appendKey(out, n == 0, m)
		switch {
		case m.kind == kindObject && deeper:
			var wrote bool
			if out, wrote = s.selectObject(out, sel, m.obj, p, k); !wrote {
				out = out[:mark]
				continue
			}
		case k:
			out = append(out, d.data[m.v0:m.v1]...)
		default:
			out = out[:mark]
			continue
		}
		n++
	}
	if n == 0 && !keep {
		return out[:start], false
	}
	return append(out, '}'), true
}
