package protocol_test

import (
	"bytes"
	"fmt"

	"github.com/ampsbroker/ampsbroker/protocol"
)

func ExampleDecodeHeader() {
	var h protocol.Header
	err := protocol.DecodeHeader([]byte(`{"c":"publish","t":"orders","s":"1795369341455000001","filter":""}`), &h)
	fmt.Println(err, h.Command, h.Topic, h.Sequence, h.Has(protocol.FieldSequence), h.Filter == "")
	// Output: <nil> publish orders 1795369341455000001 true true
}

func ExampleAppendHeader() {
	h := protocol.Header{Command: protocol.CmdAck, CommandID: "auto0", AckType: protocol.AckProcessed,
		Status: protocol.StatusSuccess, Version: "5.3.4.0"}
	h.Set(protocol.FieldSequence, 0)
	fmt.Println(string(protocol.AppendHeader(nil, &h)))
	// Output: {"c":"ack","cid":"auto0","s":0,"a":"processed","status":"success","version":"5.3.4.0"}
}

func ExampleNewStreamReader() {
	frames := protocol.AppendStreamFrame(nil, []byte(`{"c":"p","t":"orders"}`), []byte(`{"id":1}`))
	r := protocol.NewStreamReader(bytes.NewReader(frames), 0)
	f, err := r.ReadFrame()
	end, _ := protocol.HeaderEnd(f)
	fmt.Printf("%s | %s | %v\n", f[:end], f[end:], err)
	// Output: {"c":"p","t":"orders"} | {"id":1} | <nil>
}

func ExampleSharedHeader() {
	// One publish, encoded once, delivered to two connections whose
	// matching subscriptions differ.
	h := protocol.Header{Command: protocol.CmdP, Topic: "orders"}
	h.Set(protocol.FieldLength, 8)
	var shared protocol.SharedHeader
	shared.Prepare(nil, &h)
	for _, ids := range []string{"sub-1", "sub-2,sub-3"} {
		m := protocol.Message{Shared: &shared, SubIDs: protocol.NewSubIDs(ids), Body: []byte(`{"id":1}`)}
		frame, _ := protocol.AppendStreamMessage(nil, &m)
		fmt.Printf("%d %s\n", frame[3], frame[4:])
	}
	// Output:
	// 51 {"c":"p","t":"orders","sids":"sub-1","l":8}{"id":1}
	// 57 {"c":"p","t":"orders","sids":"sub-2,sub-3","l":8}{"id":1}
}

func ExampleWSEncoder() {
	// A query result as the JS client reads it in text mode: the sow
	// header, then per record a record header and its data.
	sow := protocol.Header{Command: protocol.CmdSOW, QueryID: "q1"}
	sow.Set(protocol.FieldBatchSize, 2)
	m := protocol.Message{Header: &sow, Records: []protocol.Record{
		{Header: &protocol.Header{SOWKey: "1"}, Data: []byte(`{"id":1}`)},
		{Header: &protocol.Header{SOWKey: "2"}, Data: []byte(`{"id":2}`)},
	}}
	var e protocol.WSEncoder
	e.Encode(&m, protocol.WSModeText, func(text bool, p []byte) error {
		fmt.Println(text, string(p))
		return nil
	})
	// Output:
	// true {"c":"sow","query_id":"q1","bs":2}
	// true {"k":"1","l":8}
	// true {"id":1}
	// true {"k":"2","l":8}
	// true {"id":2}
}
