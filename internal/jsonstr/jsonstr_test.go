package jsonstr

import "testing"

func TestAppendUnescaped(t *testing.T) {
	tests := []struct {
		raw      string
		sanitize bool
		want     string
		ok       bool
	}{
		{`plain`, false, "plain", true},
		{`a\"b\\c\/d\b\f\n\r\t`, false, "a\"b\\c/d\b\f\n\r\t", true},
		{`\u00e9\u20AC`, false, "é€", true},
		{`\ud83d\ude00`, false, "😀", true},               // a surrogate pair
		{`\ud83dx`, false, "\uFFFDx", true},              // a lone high surrogate
		{`\ude00`, false, "\uFFFD", true},                // a lone low surrogate
		{"\xff\xfe", false, "\xff\xfe", true},            // bytes copied as they are
		{"\xffok\xc3\xa9", true, "\uFFFDok\u00e9", true}, // sanitized
		{`\x`, false, "", false},
		{`ab\`, false, "ab", false},
		{`\u12`, false, "", false},
		{`\u12g4`, false, "", false},
	}
	for _, tt := range tests {
		got, ok := AppendUnescaped(nil, []byte(tt.raw), tt.sanitize)
		if string(got) != tt.want || ok != tt.ok {
			t.Errorf("AppendUnescaped(%q, sanitize=%v) = %q, %v; want %q, %v", tt.raw, tt.sanitize, got, ok, tt.want, tt.ok)
		}
	}
}
