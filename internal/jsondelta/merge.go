package jsondelta

// Merge returns stored with delta merged into it, as AMPS does for a
// delta_publish to a State of the World topic. Both must be JSON objects.
//
// The rules, level by level:
//   - a member of delta whose value is neither null nor "" replaces the
//     stored member's value (even when the two are equal);
//   - a member of delta whose value is null or "" counts as absent: the
//     stored value is kept, and no member is added for it;
//   - a stored member the delta does not name keeps its value: a delta can
//     never remove a member;
//   - a member new to stored is appended after the stored ones, in the
//     delta's order, with its value as written;
//   - an array replaces the stored value whole, element by element merges
//     do not exist;
//   - when both the stored and the delta value are objects they are merged
//     member by member with these same rules (our decision: AMPS documents
//     no nested example; merging keeps sibling members a publisher did not
//     mention, which is what a delta means at the top level too);
//   - any other change of type (object to scalar or array, or back)
//     replaces the stored value with the delta's.
//
// Stored members keep their order and their key as written. The result is
// compact: no whitespace is added, and whitespace between the members of
// a merged object is dropped, while copied values keep theirs.
//
// A name repeated in one object (stored or delta): the first occurrence
// is the member and the later ones are dropped from every object Merge
// merges, so readers that take the last occurrence see the same record;
// objects copied whole (not merged) are copied as written, repeats and
// all. A delta whose first occurrence of a name is null or "" leaves the
// stored value as it is, whatever the later occurrences hold.
//
// The error is an *Error naming the input that is not a JSON object, is
// not valid JSON, or nests deeper than MaxDepth.
func Merge(stored, delta []byte) ([]byte, error) {
	s := getState()
	defer putState(s)
	if err := s.a.parse(stored, "stored"); err != nil {
		return nil, err
	}
	if err := s.b.parse(delta, "delta"); err != nil {
		return nil, err
	}
	s.out = s.mergeObject(s.out[:0], s.a.root(), s.b.root())
	return append([]byte(nil), s.out...), nil
}

// mergeObject appends the merge of object so of the stored document with
// object do of the delta.
func (s *state) mergeObject(out []byte, so, do int32) []byte {
	s.pair(so, do)
	st, dl := &s.a, &s.b
	S, D := st.membersOf(so), dl.membersOf(do)
	out = append(out, '{')
	n := 0 // members written
	for i := range S {
		m := &S[i]
		if m.dup {
			continue
		}
		out = st.appendKey(out, n == 0, m)
		n++
		if m.link < 0 || dl.isAbsent(&D[m.link]) {
			out = append(out, st.data[m.v0:m.v1]...)
			continue
		}
		dm := &D[m.link]
		if m.kind == kindObject && dm.kind == kindObject {
			// The pairing of the nested objects overwrites only their
			// own members' link and dup, so S and D stay valid here.
			out = s.mergeObject(out, m.obj, dm.obj)
			continue
		}
		out = append(out, dl.data[dm.v0:dm.v1]...)
	}
	for j := range D {
		m := &D[j]
		if m.dup || m.link >= 0 || dl.isAbsent(m) {
			continue
		}
		out = dl.appendKey(out, n == 0, m)
		n++
		out = append(out, dl.data[m.v0:m.v1]...)
	}
	return append(out, '}')
}
