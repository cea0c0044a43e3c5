// Package jsonstr decodes the content of JSON strings. The header decoder
// (package protocol) and the filter's field reader (package filter) both
// use it, so a JSON escape means one thing throughout the broker.
package jsonstr

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
)

// Hex4 reads the four hex digits at b[i:], as in a \uXXXX escape.
func Hex4(b []byte, i int) (rune, bool) {
	if i < 0 || i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// AppendUnescaped appends the content of a JSON string (raw, the bytes
// between its quotes) to dst with its escapes decoded: \" \\ \/ \b \f \n
// \r \t and \uXXXX, where a surrogate pair yields one UTF-8 character and
// a lone surrogate U+FFFD (as Go's encoding/json does). Other bytes are
// copied as they are, unless sanitize is set: then each byte of invalid
// UTF-8 becomes U+FFFD too, so the result is always valid UTF-8. It
// reports false, with what it decoded so far, at an unknown or short
// escape.
func AppendUnescaped(dst, raw []byte, sanitize bool) ([]byte, bool) {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			if sanitize && c >= utf8.RuneSelf {
				r, size := utf8.DecodeRune(raw[i:]) // RuneError for an invalid byte
				dst = utf8.AppendRune(dst, r)
				i += size
				continue
			}
			// Copy the run up to the next escape (and, when sanitizing,
			// the next multi-byte character) in one go.
			j := len(raw)
			if !sanitize {
				if k := bytes.IndexByte(raw[i:], '\\'); k >= 0 {
					j = i + k
				}
			} else {
				for j = i + 1; j < len(raw) && raw[j] < utf8.RuneSelf && raw[j] != '\\'; j++ {
				}
			}
			dst = append(dst, raw[i:j]...)
			i = j
			continue
		}
		if i+1 >= len(raw) {
			return dst, false
		}
		switch raw[i+1] {
		case '"', '\\', '/':
			dst = append(dst, raw[i+1])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := Hex4(raw, i+2)
			if !ok {
				return dst, false
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if i+1 < len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					if r2, ok := Hex4(raw, i+2); ok {
						if pair := utf16.DecodeRune(r, r2); pair != utf8.RuneError {
							dst = utf8.AppendRune(dst, pair)
							i += 6
							continue
						}
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default:
			return dst, false
		}
		i += 2
	}
	return dst, true
}
