package filter

import "bytes"

// The delimiters of FIX and NVFIX bodies. AMPS makes them configurable per
// message type (FieldSeparator, MessageSeparator as decimal ASCII codes);
// our configuration refuses redefining them, so the defaults are all the
// extractor needs. The field separator is SOH (0x01), as every FIX tool and
// the AMPS clients use. The message separator is ETX (0x03) [I]: our copy
// of the docs names the option but not its default; 0x03 follows the SOH
// (fields), STX (header) sequence of the AMPS FIX options.
const (
	kvFieldSep   = 0x01
	kvMessageSep = 0x03
)

// extractKV reads a FIX or NVFIX body: fields "key=value" separated by the
// field separator, up to the end of the body or a message separator. FIX
// keys are numeric tags (/55) and NVFIX keys are names (/Symbol); both are
// matched as bytes, so the two formats share this scanner. Every value is a
// String (its numeric reading is the evaluator's work); an empty value is
// NULL. A repeated key: the first occurrence wins, as for JSON member names.
// The scan stops once every requested key has been found.
func (x *Extractor) extractKV(body []byte, f *Fields) {
	need := x.kvNeed
	if need == 0 {
		return
	}
	id := f.nextObj()
	for i := 0; i < len(body); {
		field := body[i:]
		next := len(body)
		if j := bytes.IndexByte(field, kvFieldSep); j >= 0 {
			field = field[:j]
			next = i + j + 1
		}
		if k := bytes.IndexByte(field, kvMessageSep); k >= 0 {
			field = field[:k]
			next = len(body) // the message ends here
		}
		i = next
		if len(field) == 0 {
			continue // a trailing or doubled field separator holds nothing
		}
		eq := bytes.IndexByte(field, '=')
		if eq <= 0 {
			// A field without "key=" is damage: keep what was found.
			f.malformed = true
			return
		}
		c := x.lookup(0, field[:eq])
		if c < 0 || f.seen[c] == id {
			continue
		}
		f.seen[c] = id
		s := x.nodes[c].slot
		if s < 0 {
			continue
		}
		v := Value{Kind: String, Raw: field[eq+1 : len(field) : len(field)]}
		if len(v.Raw) == 0 {
			v = Value{Kind: Null}
		}
		f.add(s, v, false)
		need--
		if need == 0 {
			return
		}
	}
}
