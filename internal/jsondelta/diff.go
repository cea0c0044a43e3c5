package jsondelta

import "fmt"

// Diff returns the message a delta subscriber is sent when a record is
// updated from old to new: the key fields plus every member whose value
// changed. Both must be JSON objects. A brand-new record has nothing to
// compare with and is sent in full; that is the caller's business, Diff
// is for updates.
//
// keys are the record's key fields as paths of member names (["id"], or
// ["a","b"] for member b of object a). Each key that new holds is always
// in the delta, with its value in new, changed or not; a path new does not
// hold (a missing member, or a step through a value that is not an object)
// is left out.
//
// The delta holds, in new's member order:
//   - each member of new that old does not have, as written;
//   - each member whose value differs from old's (see the package comment
//     for when two values are equal); when both values are objects only
//     their changed members are sent, as an object holding just those
//     (recursively), and the object is left out when nothing in it
//     changed; arrays are compared and sent whole; a change of type sends
//     new's value whole;
//   - the key fields, as above.
//
// Members old has and new lacks are not in the delta: a delta cannot
// remove a field, so a subscriber keeps the old value until the record is
// deleted or it resubscribes (our reading; AMPS documents no way to send
// a removal). A member of new whose value is null or "" is sent as such
// when it changed; a subscriber merging the delta as AMPS merges a
// delta_publish would ignore it.
//
// empty reports that nothing changed, so the delta holds only the keys
// (AMPS's "empty" delta, sent unless no_empties): a member only removed
// does not count as a change, as it cannot be sent.
//
// A name repeated in one object: the first occurrence is the member;
// later occurrences in new are never sent and later ones in old are not
// compared, so a change only to a later occurrence is no change.
//
// The error is an *Error naming the input that is not a JSON object, is
// not valid JSON, or nests deeper than MaxDepth, or reports an empty key
// path.
func Diff(old, new []byte, keys [][]string) (delta []byte, empty bool, err error) {
	for i, k := range keys {
		if len(k) == 0 {
			return nil, false, fmt.Errorf("jsondelta: key path %d is empty", i)
		}
	}
	s := getState()
	defer putState(s)
	if err := s.a.parse(old, "old"); err != nil {
		return nil, false, err
	}
	if err := s.b.parse(new, "new"); err != nil {
		return nil, false, err
	}
	var changed bool
	s.out, _, changed = s.diffObject(s.out[:0], s.a.root(), s.b.root(), keys, 0)
	return append([]byte(nil), s.out...), !changed, nil
}

// diffObject appends the delta from object oo of old to object no of
// new. keys are the key paths whose first depth names lead to this
// object. It reports whether it wrote a member, and whether anything
// changed.
func (s *state) diffObject(out []byte, oo, no int32, keys [][]string, depth int) (_ []byte, wrote, changed bool) {
	s.pair(oo, no)
	od, nd := &s.a, &s.b
	O, N := od.membersOf(oo), nd.membersOf(no)
	out = append(out, '{')
	n := 0 // members written
	for j := range N {
		m := &N[j]
		if m.dup {
			continue
		}
		// Does a key end at this member, or pass through it?
		isKey := false
		var sub [][]string
		for _, k := range keys {
			if k[depth] != string(m.name) {
				continue
			}
			if len(k) == depth+1 {
				isKey = true
			} else {
				sub = append(sub, k)
			}
		}
		mark := len(out)
		out = nd.appendKey(out, n == 0, m)
		whole := true // write new's value as written
		switch {
		case m.link < 0:
			changed = true
		case O[m.link].kind == kindObject && m.kind == kindObject:
			valueAt := len(out)
			var w, c bool
			out, w, c = s.diffObject(out, O[m.link].obj, m.obj, sub, depth+1)
			changed = changed || c
			if isKey {
				out = out[:valueAt] // the key is sent whole
			} else if w {
				whole = false
			} else {
				out = out[:mark]
				continue
			}
		case !s.equal(od.data[O[m.link].v0:O[m.link].v1], nd.data[m.v0:m.v1]):
			changed = true
		case !isKey:
			out = out[:mark]
			continue
		}
		if whole {
			out = append(out, nd.data[m.v0:m.v1]...)
		}
		n++
	}
	return append(out, '}'), n > 0, changed
}
