package ampstest

import (
	"strings"
	"testing"

	"github.com/ampsbroker/ampsbroker/protocol"
)

// Records splits a sow batch and refuses a damaged one.
func TestMessageRecords(t *testing.T) {
	batch := func(bs uint64, body string) Message {
		h := protocol.Header{Command: protocol.CmdSOW}
		h.Set(protocol.FieldBatchSize, bs)
		return Message{Header: h, Body: []byte(body)}
	}
	recs, err := batch(2, `{"k":"1","l":8}{"id":1}{"k":"2","l":8}{"id":2}`).Records()
	if err != nil || len(recs) != 2 || recs[1].Header.SOWKey != "2" || string(recs[1].Data) != `{"id":2}` {
		t.Fatalf("Records: %+v, %v", recs, err)
	}
	for _, tc := range []struct {
		bs         uint64
		body, want string
	}{
		{1, `{"k":"1","l":9}{"id":1}`, "runs past"},
		{2, `{"k":"1","l":8}{"id":1}`, "bs=2"},
		{1, `{"k":"1"`, "record header"},
	} {
		if _, err := batch(tc.bs, tc.body).Records(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.body, err, tc.want)
		}
	}
}
