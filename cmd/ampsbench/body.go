package main

import (
	"fmt"
)

// A message body is a JSON object of fixed layout, padded to the message
// size, so that publishers rewrite only the digits in place and subscribers
// read them at fixed offsets:
//
//	{"p":PPPP,"s":SSSSSSSSSSSS,"t":TTTTTTTTTTTTTTTTTTT,"x":"xxxx…"}
//
// p is the publisher id, s the publisher's sequence number (from 0), t the
// publish time in Unix nanoseconds (0 unless latency is measured), and x
// padding. Every number is zero-padded decimal of fixed width.
const (
	bodyPubOff  = 5  // after {"p":
	bodyPubLen  = 4  // publisher ids 0..9999
	bodySeqOff  = 14 // after ,"s":
	bodySeqLen  = 12 // sequence numbers below 10^12
	bodyTimeOff = 31 // after ,"t":
	bodyTimeLen = 19 // Unix nanoseconds until 2286
	bodyPadOff  = 56 // after ,"x":"

	// minBodySize is the smallest body the layout fits: the fixed part and
	// the closing "}.
	minBodySize = bodyPadOff + 2

	maxPublishers = 9999
)

// newBody returns a body of exactly size bytes for publisher pub with
// sequence number and time zero. size must be at least minBodySize.
func newBody(pub, size int) []byte {
	b := make([]byte, 0, size)
	b = append(b, `{"p":0000,"s":000000000000,"t":0000000000000000000,"x":"`...)
	for len(b) < size-2 {
		b = append(b, 'x')
	}
	b = append(b, '"', '}')
	putDigits(b[bodyPubOff:bodyPubOff+bodyPubLen], uint64(pub))
	return b
}

// setBody stores sequence number seq and time ts (Unix nanoseconds) in a
// body made by newBody.
func setBody(b []byte, seq uint64, ts int64) {
	putDigits(b[bodySeqOff:bodySeqOff+bodySeqLen], seq)
	putDigits(b[bodyTimeOff:bodyTimeOff+bodyTimeLen], uint64(ts))
}

// putDigits writes v as zero-padded decimal filling d.
func putDigits(d []byte, v uint64) {
	for i := len(d) - 1; i >= 0; i-- {
		d[i] = byte('0' + v%10)
		v /= 10
	}
}

// parseBody reads the publisher id, sequence number and time of a body,
// checking that it has the expected size and layout.
func parseBody(b []byte, size int) (pub int, seq uint64, ts int64, err error) {
	if len(b) != size {
		return 0, 0, 0, fmt.Errorf("body of %d bytes, want %d: %.60q", len(b), size, b)
	}
	if len(b) < minBodySize || string(b[:bodyPubOff]) != `{"p":` || string(b[len(b)-2:]) != `"}` {
		return 0, 0, 0, fmt.Errorf("body is not an ampsbench message: %.60q", b)
	}
	p, ok1 := digits(b[bodyPubOff : bodyPubOff+bodyPubLen])
	s, ok2 := digits(b[bodySeqOff : bodySeqOff+bodySeqLen])
	t, ok3 := digits(b[bodyTimeOff : bodyTimeOff+bodyTimeLen])
	if !ok1 || !ok2 || !ok3 {
		return 0, 0, 0, fmt.Errorf("body has a malformed number: %.60q", b)
	}
	return int(p), s, int64(t), nil
}

// digits parses d as unsigned decimal; ok is false if a byte is not a digit.
func digits(d []byte) (v uint64, ok bool) {
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}
