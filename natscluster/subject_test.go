package natscluster

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSubjectExamples(t *testing.T) {
	s, err := NewSubjects("amps.prod")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ mt, topic, want string }{
		{"json", "orders", "amps.prod.json.orders"},
		{"json", "/desk/1/positions", "amps.prod.json./desk/1/positions"},
		{"json", "market.data", "amps.prod.json.market%2Edata"},
		{"nvfix", "a*b>c d", "amps.prod.nvfix.a%2Ab%3Ec%20d"},
		{"json", "*", "amps.prod.json.%2A"},
		{"json", ">", "amps.prod.json.%3E"},
		{"json", "100%", "amps.prod.json.100%25"},
		{"json", "Zürich", "amps.prod.json.Z%C3%BCrich"},
		{"json", "", "amps.prod.json.%"},
		{"", "%", "amps.prod.%.%25"},
	} {
		got, err := s.Subject(tc.mt, tc.topic)
		if err != nil || got != tc.want {
			t.Errorf("Subject(%q, %q) = %q, %v; want %q", tc.mt, tc.topic, got, err, tc.want)
			continue
		}
		mt, topic, err := s.Parse(got)
		if err != nil || mt != tc.mt || topic != tc.topic {
			t.Errorf("Parse(%q) = %q, %q, %v", got, mt, topic, err)
		}
	}
	if got := s.MessageType("json"); got != "amps.prod.json.*" {
		t.Errorf("MessageType = %q", got)
	}
	if got := s.All(); got != "amps.prod.*.*" {
		t.Errorf("All = %q", got)
	}
}

func TestSubjectRefusals(t *testing.T) {
	for _, p := range []string{"", ".", "a.", ".a", "a..b", "a b", "a.*", "a.>", "a%b", "ä"} {
		if _, err := NewSubjects(p); !errors.Is(err, ErrBadPrefix) {
			t.Errorf("NewSubjects(%q): %v, want ErrBadPrefix", p, err)
		}
	}
	s, _ := NewSubjects("amps")
	if _, err := s.Subject("json", strings.Repeat(".", MaxSubjectBytes/3)); !errors.Is(err, ErrSubjectTooLong) {
		t.Errorf("long topic: %v, want ErrSubjectTooLong", err)
	}
	for _, subj := range []string{
		"other.json.t", "amps.json", "amps.json.a.b", "amps.json.a%2", "amps.json.a%2e",
		"amps.json.%41", "amps.json.a b", "amps.json.a*", "amps.json.", "amps..t", "amps.json.%%",
	} {
		if _, _, err := s.Parse(subj); !errors.Is(err, ErrBadSubject) {
			t.Errorf("Parse(%q): %v, want ErrBadSubject", subj, err)
		}
	}
}

// validPublishSubject checks what a NATS server requires of a subject a
// client publishes to, and more: printable ASCII only, non-empty tokens,
// no wildcard characters anywhere.
func validPublishSubject(subj string) bool {
	if subj == "" || !utf8.ValidString(subj) {
		return false
	}
	for tok := range strings.SplitSeq(subj, ".") {
		if tok == "" {
			return false
		}
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; c <= ' ' || c > '~' || c == '*' || c == '>' {
				return false
			}
		}
	}
	return true
}

// Any message type and topic yield a valid subject of exactly three
// parts under the prefix (or ErrSubjectTooLong when too long), which parses
// back to them; any token that decodes encodes back to itself.
func FuzzSubjectRoundTrip(f *testing.F) {
	for _, seed := range []string{"", "orders", "a.b", "*", ">", " ", "%", "%25", "Zürich", "\x00\xff", "a\r\nb", "%"} {
		f.Add("json", seed)
	}
	s, err := NewSubjects("amps")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, mt, topic string) {
		subj, err := s.Subject(mt, topic)
		if err != nil {
			if !errors.Is(err, ErrSubjectTooLong) || len(EncodeToken(mt))+len(EncodeToken(topic))+len("amps..") <= MaxSubjectBytes {
				t.Fatalf("Subject(%q, %q): %v", mt, topic, err)
			}
			return
		}
		if !validPublishSubject(subj) || len(subj) > MaxSubjectBytes || strings.Count(subj, ".") != 2 {
			t.Fatalf("Subject(%q, %q) = %q: not a valid three-token subject", mt, topic, subj)
		}
		gmt, gtopic, err := s.Parse(subj)
		if err != nil || gmt != mt || gtopic != topic {
			t.Fatalf("Parse(Subject(%q, %q) = %q) = %q, %q, %v", mt, topic, subj, gmt, gtopic, err)
		}
		// The topic string read as a token: decoding and encoding again
		// gives the same token (one token per name).
		if name, err := DecodeToken(topic); err == nil && EncodeToken(name) != topic {
			t.Fatalf("DecodeToken(%q) = %q, which encodes as %q", topic, name, EncodeToken(name))
		}
	})
}

func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		filter, pattern string
		want            bool
	}{
		{"amps.sow.*.*", "amps.sow.*.*", true},
		{"amps.sow.>", "amps.sow.*.*", true},
		{"amps.>", "amps.sow.*.*", true},
		{"amps.*.*.*", "amps.sow.*.*", true},
		{"amps.sow.*", "amps.sow.*.*", false},
		{"amps.bus.*.*", "amps.sow.*.*", false},
		{"amps.sow.json.*", "amps.sow.*.*", false},
		{"amps.sow.*.*.x", "amps.sow.*.*", false},
	} {
		if got := covers(tc.filter, tc.pattern); got != tc.want {
			t.Errorf("covers(%q, %q) = %v, want %v", tc.filter, tc.pattern, got, tc.want)
		}
	}
}
