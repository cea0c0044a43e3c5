package listener

import (
	"testing"

	"github.com/ampsbroker/ampsbroker/protocol"
)

// outMsg builds the outbound message a broker would write for the given
// header text and body: the header decoded into values and, for "sow", the
// body split into its records (a record header carrying "l", then l bytes
// of data; wire spec §2.3).
func outMsg(t testing.TB, header, body string) *protocol.Message {
	t.Helper()
	m := &protocol.Message{Header: new(protocol.Header)}
	if err := protocol.DecodeHeader([]byte(header), m.Header); err != nil {
		t.Fatalf("outMsg(%q): %v", header, err)
	}
	if m.Header.Command != protocol.CmdSOW {
		m.Body = []byte(body)
		return m
	}
	for body != "" {
		end, err := protocol.HeaderEnd([]byte(body))
		if err != nil {
			t.Fatalf("outMsg(%q): record %q: %v", header, body, err)
		}
		r := protocol.Record{Header: new(protocol.Header)}
		if err := protocol.DecodeHeader([]byte(body[:end]), r.Header); err != nil {
			t.Fatalf("outMsg(%q): record %q: %v", header, body, err)
		}
		n := end + int(r.Header.Length)
		if n > len(body) {
			t.Fatalf("outMsg(%q): record %q is short", header, body)
		}
		r.Data = []byte(body[end:n])
		m.Records = append(m.Records, r)
		body = body[n:]
	}
	return m
}
