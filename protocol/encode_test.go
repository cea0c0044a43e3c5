package protocol

import (
	"encoding/json"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAppendHeader(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		want string
	}{
		{"empty", Header{}, `{}`},
		{"heartbeat (spec 8.5)", Header{Command: CmdHeartbeat}, `{"c":"heartbeat"}`},
		{"logon ack (spec 2.4)",
			withNums(Header{Command: CmdAck, CommandID: "1", Bookmark: "1457924087319513207|0|", ClientName: "pub-1",
				AckType: AckProcessed, Status: StatusSuccess, Reason: "authentication disabled", Version: "5.3.4.0"},
				FieldSequence, uint64(0)),
			`{"c":"ack","cid":"1","s":0,"bm":"1457924087319513207|0|","client_name":"pub-1","a":"processed","status":"success","reason":"authentication disabled","version":"5.3.4.0"}`},
		{"delivery (spec 2.4)",
			withNums(Header{Command: CmdP, Topic: "orders", SubIDs: "7", Bookmark: "1457924087319513207|1|"}, FieldLength, uint64(16)),
			`{"c":"p","t":"orders","sids":"7","bm":"1457924087319513207|1|","l":16}`},
		{"sow batch (spec 2.4)",
			withNums(Header{Command: CmdSOW, Topic: "orders", QueryID: "9"}, FieldBatchSize, uint64(2)),
			`{"c":"sow","t":"orders","query_id":"9","bs":2}`},
		{"sow record header (spec 2.3)", withNums(Header{SOWKey: "101"}, FieldLength, uint64(8)), `{"k":"101","l":8}`},
		{"subscribe ack (spec 14.2)",
			Header{Command: CmdAck, CommandID: "2", SubID: "2", AckType: AckProcessed, Status: StatusSuccess},
			`{"c":"ack","cid":"2","sub_id":"2","a":"processed","status":"success"}`},
		{"completed ack (spec 14.2)",
			withNums(Header{Command: CmdAck, CommandID: "4", QueryID: "4", AckType: AckCompleted, Status: StatusSuccess},
				FieldRecordsReturned, uint64(2)),
			`{"c":"ack","cid":"4","query_id":"4","a":"completed","status":"success","records_returned":2}`},
		{"group_begin (spec 14.2)", Header{Command: CmdGroupBegin, QueryID: "4"}, `{"c":"group_begin","query_id":"4"}`},
		{"oof (spec 8.6)",
			withNums(Header{Command: CmdOOF, Topic: "t", SubIDs: "1,2", SOWKey: "k1", Reason: "deleted", CorrelationID: "xx"},
				FieldLength, uint64(0)),
			`{"c":"oof","t":"t","sids":"1,2","k":"k1","reason":"deleted","x":"xx","l":0}`},
		{"s after cid when keys follow",
			withNums(Header{Command: CmdAck, CommandID: "9", AckType: AckPersisted}, FieldSequence, uint64(42)),
			`{"c":"ack","cid":"9","s":42,"a":"persisted"}`},
		{"s moves before cid when nothing follows (spec 5)",
			withNums(Header{Command: CmdAck, CommandID: "9"}, FieldSequence, uint64(42)),
			`{"c":"ack","s":42,"cid":"9"}`},
		{"s before only a length", withNums(Header{Command: CmdAck, CommandID: "9"}, FieldSequence, uint64(1), FieldLength, uint64(3)),
			`{"c":"ack","cid":"9","s":1,"l":3}`},
		{"s with a bool after it", withNums(Header{CommandID: "9", SendOOF: true}, FieldSequence, uint64(1)),
			`{"cid":"9","s":1,"send_oof":true}`},
		{"s alone cannot be followed", withNums(Header{Command: CmdAck}, FieldSequence, uint64(7)), `{"c":"ack","s":7}`},
		{"s without c", withNums(Header{Topic: "x"}, FieldSequence, uint64(7)), `{"s":7,"t":"x"}`},
		{"full order",
			withNums(Header{Command: "c", CommandID: "cid", Topic: "t", SubID: "sub", SubIDs: "sids", QueryID: "q",
				Bookmark: "bm", ClientName: "cn", UserID: "u", Password: "pw", AckType: "a", Status: "st",
				Timestamp: "ts", SOWKey: "k", Reason: "r", CorrelationID: "x", LeasePeriod: "lp", Version: "v",
				MessageType: "mt", Filter: "f", Options: "o", OrderBy: "ob", SOWKeys: "sk",
				SendEmpty: true, SendKeys: true, SendOOF: true, DataOnly: true, SendSubscriptionIDs: true},
				FieldSequence, uint64(1), FieldBatchSize, uint64(2), FieldTopN, uint64(3), FieldExpiration, uint64(4),
				FieldLength, uint64(5), FieldRecordsReturned, uint64(6), FieldRecordsInserted, uint64(7),
				FieldRecordsUpdated, uint64(8), FieldRecordsDeleted, uint64(9), FieldTopicMatches, uint64(10),
				FieldMatches, uint64(11), FieldGroupSeq, uint64(12), FieldSkipN, uint64(13), FieldMaxMessages, uint64(14),
				FieldTimeoutInterval, uint64(15), FieldGracePeriod, uint64(16)),
			`{"c":"c","cid":"cid","s":1,"t":"t","sub_id":"sub","sids":"sids","query_id":"q","bm":"bm","client_name":"cn",` +
				`"user_id":"u","pw":"pw","a":"a","status":"st","ts":"ts","k":"k","reason":"r","x":"x","lp":"lp",` +
				`"version":"v","mt":"mt","filter":"f","opts":"o","orderby":"ob","sow_keys":"sk","bs":2,"top_n":3,"e":4,` +
				`"records_returned":6,"records_inserted":7,"records_updated":8,"records_deleted":9,"topic_matches":10,` +
				`"matches":11,"gseq":12,"skip_n":13,"max_msgs":14,"timeout_interval":15,"grace_period":16,` +
				`"send_empty":true,"send_keys":true,"send_oof":true,"data_only":true,"send_subscription_ids":true,"l":5}`},
		{"escaped values", Header{Command: CmdAck, Reason: "bad \"filter\"\n\\ }"}, `{"c":"ack","reason":"bad \"filter\"\n\\ }"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("xyz")
			got := AppendHeader(prefix, &tt.h)
			if string(got[:3]) != "xyz" {
				t.Fatalf("AppendHeader overwrote dst prefix: %q", got)
			}
			if string(got[3:]) != tt.want {
				t.Errorf("AppendHeader =\n%s\nwant\n%s", got[3:], tt.want)
			}
			if !json.Valid(got[3:]) {
				t.Errorf("AppendHeader output is not valid JSON: %s", got[3:])
			}
			var back Header
			if err := DecodeHeader(got[3:], &back); err != nil {
				t.Fatalf("DecodeHeader(AppendHeader) = %v", err)
			}
			// The decoder records that send_empty was present; the
			// encoder writes it only when true, from SendEmpty.
			back.Present &^= FieldSendEmpty
			if diff := cmp.Diff(tt.h, back); diff != "" {
				t.Errorf("round trip mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// jsSeqPattern is the JavaScript client's extraction of s (wire spec §5).
var jsSeqPattern = regexp.MustCompile(`"s":(\d+),`)

func TestAppendHeaderJSSequencePattern(t *testing.T) {
	headers := []Header{
		withNums(Header{Command: CmdAck, CommandID: "auto0", ClientName: "js", Bookmark: "1|0|", AckType: AckProcessed,
			Status: StatusSuccess, Version: "5.3.4.0"}, FieldSequence, uint64(0)),
		withNums(Header{Command: CmdAck, CommandID: "auto7"}, FieldSequence, uint64(1795369341455000001)),
		withNums(Header{Command: CmdAck, AckType: AckPersisted, Status: StatusSuccess}, FieldSequence, uint64(99)),
		withNums(Header{Command: CmdAck, CommandID: "c", Topic: `"s":1,`}, FieldSequence, uint64(5)),
	}
	for _, h := range headers {
		out := AppendHeader(nil, &h)
		m := jsSeqPattern.FindAllSubmatch(out, -1)
		if len(m) != 1 {
			t.Errorf("%s: pattern matched %d times, want 1", out, len(m))
			continue
		}
		if got := string(m[0][1]); got != string(AppendUint(nil, h.Sequence)) {
			t.Errorf("%s: pattern extracted %s, want %d", out, got, h.Sequence)
		}
	}
}

func TestAppendString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{`a"b\c/d`, `"a\"b\\c/d"`},
		{"\b\f\n\r\t", `"\b\f\n\r\t"`},
		{"\x00\x01\x1f\x7f", `"\u0000\u0001\u001f` + "\x7f" + `"`},
		{"é中😀", `"é中😀"`},
		{"a\xffb", `"a\ufffdb"`},
		{"\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`}, // encoded surrogate is invalid UTF-8
		{"x\xe4\xb8", `"x\ufffd\ufffd"`},         // truncated sequence
		{"<&>\u2028", "\"<&>\u2028\""},
	}
	for _, tt := range tests {
		got := AppendString(nil, tt.in)
		if string(got) != tt.want {
			t.Errorf("AppendString(%q) = %s, want %s", tt.in, got, tt.want)
		}
		var s string
		if err := json.Unmarshal(got, &s); err != nil {
			t.Errorf("AppendString(%q) = %s: not a JSON string: %v", tt.in, got, err)
		}
	}
}

func TestAppendAllocs(t *testing.T) {
	h := withNums(Header{Command: CmdP, Topic: "orders", SubIDs: "7", Bookmark: "1457924087319513207|1|",
		Reason: "needs \"escaping\"\n", Filter: "bad\xff"}, FieldLength, uint64(16), FieldSequence, uint64(3))
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { buf = AppendHeader(buf[:0], &h) }); n != 0 {
		t.Errorf("AppendHeader: %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { buf = AppendString(buf[:0], "a\"b\x01\xffé") }); n != 0 {
		t.Errorf("AppendString: %v allocs, want 0", n)
	}
}
