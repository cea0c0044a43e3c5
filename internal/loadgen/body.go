package loadgen

import (
	"fmt"
)

// A message body is a JSON object of fixed layout, padded to the message
// size, so that publishers rewrite only the digits in place and subscribers
// read them at fixed offsets:
//
//	{"p":1PPPP,"s":1SSSSSSSSSSS,"t":1TTTTTTTTTTTTT,"k":1KKK,"x":"xxxx…"}
//
// p is the publisher id, s the publisher's sequence number (from 0), t the
// publish time in nanoseconds since the run started (0 unless latency is
// measured), k the record key, s modulo SOWKeys (a content filter and a SOW
// key read it), and x padding. Every number is zero-padded decimal of fixed
// width behind a leading 1, so that the body is valid JSON (a number may
// not start with 0) and a filter reads k as the number 1000+key.
const (
	bodyPubOff  = 5  // after {"p":
	bodyPubLen  = 5  // 1 and publisher ids 0..9999
	bodySeqOff  = 15 // after ,"s":
	bodySeqLen  = 12 // 1 and sequence numbers below 10^11
	bodyTimeOff = 32 // after ,"t":
	bodyTimeLen = 14 // 1 and nanoseconds since the start, below 10^13 (2.7 hours)
	bodyKeyOff  = 51 // after ,"k":
	bodyKeyLen  = 4  // 1 and keys 000..999
	bodyPadOff  = 61 // after ,"x":"

	// MinBodySize is the smallest body the layout fits: the fixed part and
	// the closing "}.
	MinBodySize = bodyPadOff + 2

	// MaxPublishers is the most publishers a scenario may have: the
	// publisher id has four digits.
	MaxPublishers = 9999

	// SOWKeys is how many distinct keys the bodies carry (at most what k
	// holds): message s has key s mod SOWKeys, so a SOW topic holds at most this many records per
	// run and every later publish replaces one. A multiple of 10, so that
	// the key's last digit is the sequence number's (see the filter
	// scenario).
	SOWKeys = 1000

	// SOWKeyField is the field that holds the key, for a SOW topic's Key.
	SOWKeyField = "/k"
)

// newBody returns a body of exactly size bytes for publisher pub with
// sequence number and time zero. size must be at least MinBodySize.
func newBody(pub, size int) []byte {
	b := make([]byte, 0, size)
	b = append(b, `{"p":10000,"s":100000000000,"t":10000000000000,"k":1000,"x":"`...)
	for len(b) < size-2 {
		b = append(b, 'x')
	}
	b = append(b, '"', '}')
	putDigits(b[bodyPubOff:bodyPubOff+bodyPubLen], uint64(pub))
	return b
}

// setBody stores sequence number seq, its key and time ts (nanoseconds
// since the run started) in a body made by newBody.
func setBody(b []byte, seq uint64, ts int64) {
	putDigits(b[bodySeqOff:bodySeqOff+bodySeqLen], seq)
	putDigits(b[bodyTimeOff:bodyTimeOff+bodyTimeLen], uint64(ts))
	putDigits(b[bodyKeyOff:bodyKeyOff+bodyKeyLen], seq%SOWKeys)
}

// putDigits writes 1 and then v as zero-padded decimal filling d.
func putDigits(d []byte, v uint64) {
	d[0] = '1'
	for i := len(d) - 1; i > 0; i-- {
		d[i] = byte('0' + v%10)
		v /= 10
	}
}

// parseBody reads the publisher id, sequence number and time of a body,
// checking that it has the expected size and layout and that its key
// belongs to its sequence number.
func parseBody(b []byte, size int) (pub int, seq uint64, ts int64, err error) {
	if len(b) != size {
		return 0, 0, 0, fmt.Errorf("body of %d bytes, want %d: %.72q", len(b), size, b)
	}
	if len(b) < MinBodySize || string(b[:bodyPubOff]) != `{"p":` || string(b[len(b)-2:]) != `"}` {
		return 0, 0, 0, fmt.Errorf("body is not a loadgen message: %.72q", b)
	}
	p, ok1 := digits(b[bodyPubOff : bodyPubOff+bodyPubLen])
	s, ok2 := digits(b[bodySeqOff : bodySeqOff+bodySeqLen])
	t, ok3 := digits(b[bodyTimeOff : bodyTimeOff+bodyTimeLen])
	k, ok4 := digits(b[bodyKeyOff : bodyKeyOff+bodyKeyLen])
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return 0, 0, 0, fmt.Errorf("body has a malformed number: %.72q", b)
	}
	if k != s%SOWKeys {
		return 0, 0, 0, fmt.Errorf("body has key %d, want %d for seq %d: %.72q", k, s%SOWKeys, s, b)
	}
	return int(p), s, int64(t), nil
}

// digits parses what putDigits wrote; ok is false if d does not start
// with 1 or a byte is not a digit.
func digits(d []byte) (v uint64, ok bool) {
	if len(d) == 0 || d[0] != '1' {
		return 0, false
	}
	for _, c := range d[1:] {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}
