package protocol

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// withNums returns h with the given numeric fields set.
func withNums(h Header, kv ...any) Header {
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i].(Field), kv[i+1].(uint64))
	}
	return h
}

func TestDecodeHeaderKeys(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Header
	}{
		{"empty object", `{}`, Header{}},
		{"spec 2.4 logon",
			`{"c":"logon","cid":"1","client_name":"pub-1","user_id":"alice","pw":"secret","mt":"json","a":"processed","version":"5.3.4.0:cpp"}`,
			Header{Command: "logon", CommandID: "1", ClientName: "pub-1", UserID: "alice", Password: "secret",
				MessageType: "json", AckType: "processed", Version: "5.3.4.0:cpp"}},
		{"spec 2.4 logon ack",
			`{"c":"ack","cid":"1","s":0,"bm":"1457924087319513207|0|","client_name":"pub-1","a":"processed","status":"success","reason":"authentication disabled","version":"5.3.4.0"}`,
			withNums(Header{Command: "ack", CommandID: "1", Bookmark: "1457924087319513207|0|", ClientName: "pub-1",
				AckType: "processed", Status: "success", Reason: "authentication disabled", Version: "5.3.4.0"},
				FieldSequence, uint64(0))},
		{"spec 14.1 JS subscribe with empty filter",
			`{"c":"subscribe","t":"orders","filter":"","cid":"auto2","sub_id":"auto2","a":"processed"}`,
			Header{Command: "subscribe", Topic: "orders", CommandID: "auto2", SubID: "auto2", AckType: "processed"}},
		{"spec 14.2 sow", `{"c":"sow","cid":"4","t":"orders","bs":10,"a":"processed,completed","query_id":"4"}`,
			withNums(Header{Command: "sow", CommandID: "4", Topic: "orders", AckType: "processed,completed", QueryID: "4"},
				FieldBatchSize, uint64(10))},
		{"all string keys",
			`{"c":"x1","cid":"x2","a":"x3","t":"x4","sub_id":"x5","sids":"x6","query_id":"x7","filter":"x8","opts":"x9","bm":"x10","orderby":"x11","sow_keys":"x12","k":"x13","x":"x14","ts":"x15","lp":"x16","status":"x17","reason":"x18","client_name":"x19","user_id":"x20","pw":"x21","version":"x22","mt":"x23"}`,
			Header{Command: "x1", CommandID: "x2", AckType: "x3", Topic: "x4", SubID: "x5", SubIDs: "x6", QueryID: "x7",
				Filter: "x8", Options: "x9", Bookmark: "x10", OrderBy: "x11", SOWKeys: "x12", SOWKey: "x13",
				CorrelationID: "x14", Timestamp: "x15", LeasePeriod: "x16", Status: "x17", Reason: "x18",
				ClientName: "x19", UserID: "x20", Password: "x21", Version: "x22", MessageType: "x23"}},
		{"all numeric keys",
			`{"bs":1,"top_n":2,"e":3,"s":4,"l":5,"records_returned":6,"records_inserted":7,"records_updated":8,"records_deleted":9,"topic_matches":10,"matches":11,"gseq":12,"skip_n":13,"max_msgs":14,"timeout_interval":15,"grace_period":16}`,
			withNums(Header{}, FieldBatchSize, uint64(1), FieldTopN, uint64(2), FieldExpiration, uint64(3),
				FieldSequence, uint64(4), FieldLength, uint64(5), FieldRecordsReturned, uint64(6),
				FieldRecordsInserted, uint64(7), FieldRecordsUpdated, uint64(8), FieldRecordsDeleted, uint64(9),
				FieldTopicMatches, uint64(10), FieldMatches, uint64(11), FieldGroupSeq, uint64(12),
				FieldSkipN, uint64(13), FieldMaxMessages, uint64(14), FieldTimeoutInterval, uint64(15),
				FieldGracePeriod, uint64(16))},
		{"all bool keys",
			`{"send_empty":true,"send_keys":"true","send_oof":true,"data_only":"true","send_subscription_ids":true}`,
			Header{SendEmpty: true, SendKeys: true, SendOOF: true, DataOnly: true, SendSubscriptionIDs: true, Present: FieldSendEmpty}},
		{"bools false", `{"send_empty":false,"send_keys":"false","send_oof":"","data_only":null}`, Header{Present: FieldSendEmpty}},
		{"abbreviations f o v maximum_messages", `{"f":"/a>1","o":"start,1","v":"1.0","maximum_messages":7}`,
			withNums(Header{Filter: "/a>1", Options: "start,1", Version: "1.0"}, FieldMaxMessages, uint64(7))},
		{"numbers as strings (JS)", `{"c":"publish","s":"1795369341455000001","bs":"10","l":"0"}`,
			withNums(Header{Command: "publish"}, FieldSequence, uint64(1795369341455000001),
				FieldBatchSize, uint64(10), FieldLength, uint64(0))},
		{"max uint64", `{"s":18446744073709551615,"e":"18446744073709551615"}`,
			withNums(Header{}, FieldSequence, uint64(1<<64-1), FieldExpiration, uint64(1<<64-1))},
		{"empty string numeric is absent", `{"s":"","bs":null}`, Header{}},
		{"duplicate key last wins", `{"t":"a","t":"b","s":1,"s":2}`, withNums(Header{Topic: "b"}, FieldSequence, uint64(2))},
		{"duplicate numeric cleared by empty", `{"s":1,"s":""}`, Header{}},
		{"abbreviation and long form last wins", `{"filter":"a","f":"b","opts":"x","o":"y"}`,
			Header{Filter: "b", Options: "y"}},
		{"escapes", `{"filter":"/name = \"a\\b\" AND \/x\b\f\n\r\t"}`,
			Header{Filter: "/name = \"a\\b\" AND /x\b\f\n\r\t"}},
		{"unicode escapes", `{"t":"\u00e9\u4e2d\ud83d\ude00\u0000"}`, Header{Topic: "é中😀\x00"}},
		{"upper-case hex", `{"t":"\u00C9"}`, Header{Topic: "É"}},
		{"lone high surrogate", `{"t":"a\ud83db"}`, Header{Topic: "a\uFFFDb"}},
		{"lone low surrogate", `{"t":"\ude00"}`, Header{Topic: "\uFFFD"}},
		{"high surrogate then non-surrogate escape", `{"t":"\ud83d\u0041"}`, Header{Topic: "\uFFFDA"}},
		{"invalid utf-8 replaced", "{\"t\":\"a\xffb\"}", Header{Topic: "a\uFFFDb"}},
		{"raw utf-8 kept", `{"t":"привет"}`, Header{Topic: "привет"}},
		{"brace in value", `{"filter":"/a = '}'","t":"x}{"}`, Header{Filter: "/a = '}'", Topic: "x}{"}},
		{"whitespace", " \t\r\n{ \"c\" :\n\"p\" ,\t\"s\" : 5 , \"send_oof\" : true }\n ",
			withNums(Header{Command: "p", SendOOF: true}, FieldSequence, uint64(5))},
		{"unknown keys of every type",
			`{"zz":{"a":[1,{"b":"}"}],"c":null},"t":"x","arr":[[],{},"]",-1.5e+3,true,false,null],"n":-0.25,"transmission_time":"1","grp":true,"heartbeat":null}`,
			Header{Topic: "x"}},
		{"escaped key", `{"\u0074":"topic","c\u0069d":"9"}`, Header{Topic: "topic", CommandID: "9"}},
		{"number for string field", `{"cid":5,"t":-1.5}`, Header{CommandID: "5", Topic: "-1.5"}},
		{"null for string field", `{"t":"x","t":null}`, Header{}},
		{"leading zeros tolerated", `{"s":007,"bs":"010"}`, withNums(Header{}, FieldSequence, uint64(7), FieldBatchSize, uint64(10))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Header
			h.Topic = "stale" // DecodeHeader must reset
			if err := DecodeHeader([]byte(tt.in), &h); err != nil {
				t.Fatalf("DecodeHeader(%s): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, h); diff != "" {
				t.Errorf("DecodeHeader(%s) mismatch (-want +got):\n%s", tt.in, diff)
			}
			end, err := HeaderEnd([]byte(tt.in))
			if err != nil {
				t.Fatalf("HeaderEnd(%s): %v", tt.in, err)
			}
			if want := len(strings.TrimRight(tt.in, " \t\r\n")); end != want {
				t.Errorf("HeaderEnd(%s) = %d, want %d", tt.in, end, want)
			}
		})
	}
}

func TestDecodeHeaderErrors(t *testing.T) {
	tests := []struct {
		in      string
		wantOff int
		wantMsg string // substring of the message
	}{
		{``, 0, "before it starts"},
		{`   `, 3, "before it starts"},
		{`[]`, 0, "expected '{'"},
		{`{"c":"p"`, 8, "ends after the value of key \"c\""},
		{`{"c":"p`, 7, "inside the string starting at byte 5"},
		{`{"c"`, 4, `after key "c"`},
		{`{"c":`, 5, "where the value of key \"c\" was expected"},
		{`{"c":"p","t" "x"}`, 13, `expected ':' after key "t"`},
		{`{"c":"logon","t"  ;`, 18, `expected ':' after key "t"`},
		{`{c:"p"}`, 1, "expected '\"' to start a key"},
		{`{"c":"p",}`, 9, "expected '\"' to start a key"},
		{`{"c":"p" "t":"x"}`, 9, `expected ',' or '}' after the value of key "c"`},
		{`{"s":-1}`, 5, `key "s" is negative`},
		{`{"bs":1.5}`, 7, `key "bs" is not an unsigned integer`},
		{`{"bs":1e3}`, 7, `key "bs" is not an unsigned integer`},
		{`{"s":18446744073709551616}`, 5, `overflows uint64`},
		{`{"s":"18446744073709551616"}`, 5, `overflows uint64`},
		{`{"s":"12a"}`, 5, `"12a" of key "s" is not an unsigned decimal integer`},
		{`{"s":" 1"}`, 5, `not an unsigned decimal integer`},
		{`{"s":true}`, 5, `expected a number or a string of digits for key "s"`},
		{`{"t":{}}`, 5, `expected a string value for key "t"`},
		{`{"t":true}`, 5, `expected a string value for key "t"`},
		{`{"send_oof":1}`, 12, `expected true or false for key "send_oof"`},
		{`{"send_oof":"yes"}`, 12, `"yes" of key "send_oof" is not true or false`},
		{`{"send_oof":tru}`, 12, "invalid literal: expected true"},
		{`{"send_oof":tr`, 14, "inside true"},
		{`{"t":"a\x"}`, 7, `invalid escape "\\x"`},
		{`{"t":"\u12G4"}`, 6, `want four hex digits`},
		{`{"t":"\u12`, 10, `inside a \u escape`},
		{`{"t":"\`, 7, "inside an escape sequence"},
		{`{"zz":[1,2}`, 10, "expected ',' or ']'"},
		{`{"zz":{"a" 1}}`, 11, "expected ':' after a key"},
		{`{"zz":-}`, 7, "expected a digit first"},
		{`{"zz":1.}`, 8, "expected a digit after '.'"},
		{`{"zz":1e}`, 8, "expected a digit in the exponent"},
		{`{"zz":nul}`, 6, "invalid literal: expected null"},
		{`{"zz":[`, 7, "where a value was expected"},
		{`{"zz":@}`, 6, "expected a value, found '@'"},
		{`{"c":"p"}x`, 9, "unexpected 'x' after the header object"},
		{`{"c":"p"}{"id":1}`, 9, "unexpected '{' after the header object"},
		{`{"zz":` + strings.Repeat("[", maxHeaderNesting+1), 6 + maxHeaderNesting - 1, "nested deeper than"},
	}
	for _, tt := range tests {
		var h Header
		err := DecodeHeader([]byte(tt.in), &h)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("DecodeHeader(%q) error = %v, want *SyntaxError", tt.in, err)
			continue
		}
		if se.Offset != tt.wantOff || !strings.Contains(se.Msg, tt.wantMsg) {
			t.Errorf("DecodeHeader(%q) = offset %d %q; want offset %d containing %q", tt.in, se.Offset, se.Msg, tt.wantOff, tt.wantMsg)
		}
	}
}

func TestSyntaxErrorMessage(t *testing.T) {
	var h Header
	err := DecodeHeader([]byte(`{"c":"logon","t" "x"}`), &h)
	want := `protocol: malformed header at byte 17: expected ':' after key "t"`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %s", err, want)
	}
	if h.Command != "logon" {
		t.Errorf("keys before the error: Command = %q, want logon", h.Command)
	}
}

func TestHeaderEnd(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{`{"c":"p","t":"orders"}{"id":1,"qty":5}`, 22},
		{`{"c":"p"}{"id":1}`, 9},
		{`{"c":"p"}`, 9},
		{`{"filter":"a}b"}rest`, 16},
		{`{"filter":"q\"}"}{}`, 17},
		{`{"filter":"\\"}{}`, 15},
		{`{"filter":"\\\"}"}x`, 18},
		{`{"zz":{"a":[1,{"b":"]}"}]}}{"body":{}}`, 27},
		{"  {}\n{}", 4},
		{`{"c":"sow","t":"orders","query_id":"9","bs":2}{"k":"101","l":8}{"id":1}{"k":"102","l":8}{"id":2}`, 46},
	}
	for _, tt := range tests {
		got, err := HeaderEnd([]byte(tt.in))
		if err != nil || got != tt.want {
			t.Errorf("HeaderEnd(%s) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	// Deep nesting, past the 64 levels skipContainer tracks in one word:
	// objects and arrays alternate, so a closer taken from the wrong level
	// would fail.
	var deep, deepBad strings.Builder
	deep.WriteString(`{"zz":`)
	for range 100 {
		deep.WriteString(`[{"a":`)
	}
	deep.WriteString(`"}]"`)
	for range 100 {
		deep.WriteString(`}]`)
	}
	deepBad.WriteString(deep.String()[:deep.Len()-100] + "]" + strings.Repeat("}]", 49) + "}") // one '}' became ']'
	deep.WriteString(`}{"body":1}`)
	if got, err := HeaderEnd([]byte(deep.String())); err != nil || got != deep.Len()-len(`{"body":1}`) {
		t.Errorf("HeaderEnd(deeply nested) = %d, %v; want %d", got, err, deep.Len()-len(`{"body":1}`))
	}
	if _, err := HeaderEnd([]byte(deepBad.String())); err == nil {
		t.Errorf("HeaderEnd(%s) accepted a mismatched bracket", deepBad.String())
	}
	bad := []struct {
		in      string
		wantOff int
	}{
		{``, 0},
		{`x{}`, 0},
		{` "c"`, 1},
		{`{"c":"p"`, 8},
		{`{"c":"p}`, 8},
		{`{"c":"\"}`, 9},
		{`{"zz":[}`, 7},
		{`{]`, 1},
		{`{"a" 1}`, 5},
		{`{"a":}`, 5},
		{`{"a":1,}`, 7},
		{`{"a":[1,]}`, 8},
		{`{"a":tru}`, 5},
	}
	for _, tt := range bad {
		_, err := HeaderEnd([]byte(tt.in))
		var se *SyntaxError
		if !errors.As(err, &se) || se.Offset != tt.wantOff {
			t.Errorf("HeaderEnd(%s) error = %v; want *SyntaxError at %d", tt.in, err, tt.wantOff)
		}
	}
}

func TestDecodeHeaderAllocs(t *testing.T) {
	tests := []struct {
		in string
		// One per stored string that is not a constant, the topic aside:
		// decoded again into the same Header, it is the string h holds.
		want float64
	}{
		{`{"c":"heartbeat","o":"beat","cid":"auto5"}`, 2},
		{`{"c":"p","t":"orders","s":"17","a":"processed"}`, 0},
		{`{"c":"subscribe","cid":"12","t":"orders","a":"processed","sub_id":"12","bs":10,"zz":[1,{"x":null}]}`, 2},
		{`{"c":"ack","status":"success","a":"completed","mt":"json","s":5,"send_oof":true}`, 0},
		{`{"c":"p","t":"a\"b"}`, 1}, // escaped string: built in one allocation
	}
	for _, tt := range tests {
		data := []byte(tt.in)
		var h Header
		got := testing.AllocsPerRun(100, func() {
			if err := DecodeHeader(data, &h); err != nil {
				t.Fatal(err)
			}
		})
		if got != tt.want {
			t.Errorf("DecodeHeader(%s): %v allocs, want %v", tt.in, got, tt.want)
		}
	}
	// Another topic is decoded as itself, not as the one h held.
	var h Header
	for _, topic := range []string{"orders", "orderz", "orders", "order"} {
		if err := DecodeHeader([]byte(`{"c":"p","t":"`+topic+`"}`), &h); err != nil || h.Topic != topic {
			t.Fatalf("topic %q decoded as %q, %v", topic, h.Topic, err)
		}
	}
}
