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
