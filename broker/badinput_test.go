package broker_test

import (
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/listener"
)

// Each kind of bad input closes only the offending connection; a
// well-behaved client on the same broker keeps working throughout.
func TestBadInputClosesOnlyTheOffender(t *testing.T) {
	tb := ampstest.NewBroker(t, &ampstest.Options{TCP: &listener.TCPOptions{MaxFrameSize: 1 << 20}})
	good := tb.Dial(tb.TCPURL(), nil)
	good.Logon("good")
	good.Subscribe("s", "t")

	prefix := func(n uint32) []byte {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], n)
		return b[:]
	}
	cases := map[string][]byte{
		"length over the limit":  prefix(2 << 20),
		"4 GiB length":           prefix(0xFFFFFFFF),
		"header is not JSON":     append(prefix(11), "hello world"...),
		"header never ends":      append(prefix(20), `{"c":"p","t":"abcdef`...),
		"header is a JSON array": append(prefix(9), `["c","p"]`...),
		"garbage":                []byte("\x00\x00\x00\x05\xff\xfe\xfd\xfc\xfb"),
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			bad := tb.Dial(tb.TCPURL(), nil)
			bad.Logon("bad")
			bad.WriteRaw(raw)
			bad.ExpectClosed()
			good.Publish("t", []byte(name))
			if f := good.Next(); string(f.Body) != name {
				t.Fatalf("good client got %s%s", f.RawHeader, f.Body)
			}
		})
	}
	t.Run("truncated frame", func(t *testing.T) {
		bad := tb.Dial(tb.TCPURL(), nil)
		bad.Logon("trunc")
		bad.WriteRaw(append(prefix(100), `{"c":"p"`...))
		bad.NetConn().(interface{ CloseWrite() error }).CloseWrite()
		bad.ExpectClosed()
		good.Flush("after-trunc")
	})
}

// A client that claims a huge frame and sends a few bytes costs the broker
// memory in proportion to what it sent, not to what it claimed.
func TestClaimedLengthDoesNotAllocate(t *testing.T) {
	tb := startBroker(t, nil) // default limit: 200 MiB
	const claim = 150 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var conns []*ampstest.Client
	for i := 0; i < 4; i++ {
		c := tb.Dial(tb.TCPURL(), nil)
		c.Logon("claim")
		var p [4]byte
		binary.BigEndian.PutUint32(p[:], claim)
		c.WriteRaw(append(p[:], `{"c":"p","t":"x"}abc`...))
		conns = append(conns, c)
	}
	time.Sleep(200 * time.Millisecond) // let the broker read what arrived
	runtime.ReadMemStats(&after)
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 16<<20 {
		t.Fatalf("broker allocated %d MiB for 4 claimed frames of %d MiB with 20 bytes each", grown>>20, claim>>20)
	}
	for _, c := range conns {
		c.Close()
	}
}
