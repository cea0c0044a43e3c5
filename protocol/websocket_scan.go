package protocol

// A minimal JSON object scanner for the WebSocket codec: it finds where a
// header object ends and reads the three keys outbound framing depends on
// ("c", "l", "bs"). Full header decoding is DecodeHeader's job; this scanner
// only has to be exact about where an object ends, which means honouring
// strings and backslash escapes, because a body may start with '{' and a
// string value may contain '}' (wire spec §2.1).

// wsFields holds the top-level header keys WSFrames looks at.
type wsFields struct {
	command   []byte // "c" string value without quotes; nil when absent or not a string
	length    uint64 // "l"
	hasLength bool   // "l" present as a non-negative integer
	batch     uint64 // "bs"
	hasBatch  bool   // "bs" present as a non-negative integer
}

// wsObjectEnd returns the index just past the '}' closing the JSON object
// that starts at b[0], or -1 when b does not start with a complete object.
func wsObjectEnd(b []byte) int {
	var f wsFields
	return f.scan(b)
}

// scan parses the JSON object starting at b[0], records the keys of f, and
// returns the index just past its closing brace, or -1 when b does not start
// with a well-formed object. Nested values are skipped by bracket counting,
// not validated.
func (f *wsFields) scan(b []byte) int {
	if len(b) == 0 || b[0] != '{' {
		return -1
	}
	i := wsSkipSpace(b, 1)
	if i < len(b) && b[i] == '}' {
		return i + 1
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return -1
		}
		keyEnd := wsStringEnd(b, i)
		if keyEnd < 0 {
			return -1
		}
		key := b[i+1 : keyEnd-1]
		i = wsSkipSpace(b, keyEnd)
		if i >= len(b) || b[i] != ':' {
			return -1
		}
		i = wsSkipSpace(b, i+1)
		valEnd := wsValueEnd(b, i)
		if valEnd < 0 {
			return -1
		}
		f.record(key, b[i:valEnd])
		i = wsSkipSpace(b, valEnd)
		if i >= len(b) {
			return -1
		}
		switch b[i] {
		case ',':
			i = wsSkipSpace(b, i+1)
		case '}':
			return i + 1
		default:
			return -1
		}
	}
}

func (f *wsFields) record(key, val []byte) {
	switch string(key) {
	case "c":
		if len(val) >= 2 && val[0] == '"' {
			f.command = val[1 : len(val)-1]
		}
	case "l":
		f.length, f.hasLength = wsUint(val)
	case "bs":
		f.batch, f.hasBatch = wsUint(val)
	}
}

// wsUint parses a JSON number that is a plain non-negative integer.
func wsUint(v []byte) (uint64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' || n > (1<<63)/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

func wsSkipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// wsStringEnd returns the index just past the closing quote of the JSON
// string starting at b[i], or -1 when it is unterminated.
func wsStringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++ // skip the escaped byte; \uXXXX needs no special case
		case '"':
			return j + 1
		}
	}
	return -1
}

// wsValueEnd returns the index just past the JSON value starting at b[i], or
// -1 when there is none.
func wsValueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return wsStringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				e := wsStringEnd(b, j)
				if e < 0 {
					return -1
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	case ',', '}', ']', ':':
		return -1
	}
	// A literal: number, true, false, null.
	j := i
	for j < len(b) {
		switch b[j] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return j
		}
		j++
	}
	return j
}
