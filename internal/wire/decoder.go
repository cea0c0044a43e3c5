// Package wire reads the binary encodings shared by the file journal's
// entries and the cluster's messages: fixed little-endian integers,
// varints, and strings prefixed with their length as a uvarint.
package wire

import (
	"encoding/binary"
	"fmt"
)

// Decoder reads fields from B front to back. The first failure sticks in
// Err (wrapping Bad, the caller's sentinel) and empties B, so that every
// later read returns a zero value; a caller checks Err once, after the
// last field.
type Decoder struct {
	B   []byte
	Err error
	Bad error
}

// Fail records that the data is malformed (what says how), unless a
// failure is recorded already.
func (d *Decoder) Fail(what string) {
	if d.Err == nil {
		d.Err = fmt.Errorf("%w: %s", d.Bad, what)
	}
	d.B = nil
}

// Byte reads one byte.
func (d *Decoder) Byte() byte {
	if len(d.B) < 1 {
		d.Fail("truncated byte")
		return 0
	}
	c := d.B[0]
	d.B = d.B[1:]
	return c
}

// Uint64 reads 8 little-endian bytes.
func (d *Decoder) Uint64() uint64 {
	if len(d.B) < 8 {
		d.Fail("truncated 8-byte integer")
		return 0
	}
	v := binary.LittleEndian.Uint64(d.B)
	d.B = d.B[8:]
	return v
}

// Uvarint reads an unsigned varint.
func (d *Decoder) Uvarint() uint64 {
	v, n := binary.Uvarint(d.B)
	if n <= 0 {
		d.Fail("bad unsigned varint")
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Varint reads a signed varint.
func (d *Decoder) Varint() int64 {
	v, n := binary.Varint(d.B)
	if n <= 0 {
		d.Fail("bad varint")
		return 0
	}
	d.B = d.B[n:]
	return v
}

// String reads a string: its length as a uvarint, then its bytes.
func (d *Decoder) String() string {
	n := d.Uvarint()
	if n > uint64(len(d.B)) {
		d.Fail("string longer than the data")
		return ""
	}
	s := string(d.B[:n])
	d.B = d.B[n:]
	return s
}
