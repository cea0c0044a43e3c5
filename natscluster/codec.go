package natscluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
)

// A journal entry travels as one JetStream message: its subject is the
// mapped (message type, topic) subject, its data the encoding below, and a
// sequenced entry (client name and sequence) also carries them in the
// HighWaterHeader, so the high-water marks can be rebuilt from headers
// alone without reading bodies.
//
// Data layout, little-endian varints throughout:
//
//	version byte (codecVersion)
//	kind byte
//	flags byte (flagExpiry: an expiry follows)
//	uvarint sequence
//	varint time (unix nanoseconds)
//	[varint expiry (unix nanoseconds)]
//	6 × (uvarint length, bytes): topic, message type, client name,
//	    correlation id, SOW key, user
//	body: the rest

// HighWaterHeader is the header of a sequenced entry's message:
// "<sequence> <client name token>" (the client name as EncodeToken writes
// it, so any name fits a header value).
const HighWaterHeader = "Amps-High-Water"

// codecVersion is the first byte of every encoded entry.
const codecVersion = 1

const flagExpiry = 1

// errBadEntry: a stream message is not an entry this codec wrote.
var errBadEntry = errors.New("malformed journal entry")

// appendEntry appends e's encoding to dst.
func appendEntry(dst []byte, e *broker.Entry) []byte {
	var flags byte
	if !e.Expiry.IsZero() {
		flags |= flagExpiry
	}
	dst = append(dst, codecVersion, byte(e.Kind), flags)
	dst = binary.AppendUvarint(dst, e.Sequence)
	dst = binary.AppendVarint(dst, e.Time.UnixNano())
	if flags&flagExpiry != 0 {
		dst = binary.AppendVarint(dst, e.Expiry.UnixNano())
	}
	for _, s := range [...]string{e.Topic, e.MessageType, e.ClientName, e.CorrelationID, e.SOWKey, e.User} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return append(dst, e.Body...)
}

// decoder reads an encoded entry front to back; the first failure sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errBadEntry, what)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.fail("truncated header")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// uint64 reads 8 little-endian bytes.
func (d *decoder) uint64() uint64 {
	if d.err != nil || len(d.b) < 8 {
		d.fail("truncated header")
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if d.err != nil || n <= 0 {
		d.fail("bad unsigned varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if d.err != nil || n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail("string longer than the entry")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// decodeEntry decodes data (which the entry's Body does not share).
func decodeEntry(data []byte) (broker.Entry, error) {
	d := decoder{b: data}
	var e broker.Entry
	if v := d.byte(); d.err == nil && v != codecVersion {
		return e, fmt.Errorf("%w: version %d, want %d", errBadEntry, v, codecVersion)
	}
	e.Kind = broker.EntryKind(d.byte())
	flags := d.byte()
	e.Sequence = d.uvarint()
	e.Time = time.Unix(0, d.varint())
	if flags&flagExpiry != 0 {
		e.Expiry = time.Unix(0, d.varint())
	}
	e.Topic = d.string()
	e.MessageType = d.string()
	e.ClientName = d.string()
	e.CorrelationID = d.string()
	e.SOWKey = d.string()
	e.User = d.string()
	if d.err != nil {
		return broker.Entry{}, d.err
	}
	e.Body = append([]byte(nil), d.b...)
	return e, nil
}

// highWaterValue is the HighWaterHeader value of a sequenced entry.
func highWaterValue(client string, seq uint64) string {
	return strconv.FormatUint(seq, 10) + " " + EncodeToken(client)
}

// parseHighWater reads a HighWaterHeader value.
func parseHighWater(v string) (client string, seq uint64, err error) {
	a, b, ok := strings.Cut(v, " ")
	if !ok {
		return "", 0, fmt.Errorf("%w: high-water header %q has no client", errBadEntry, v)
	}
	if seq, err = strconv.ParseUint(a, 10, 64); err != nil {
		return "", 0, fmt.Errorf("%w: high-water header %q: %v", errBadEntry, v, err)
	}
	if client, err = DecodeToken(b); err != nil {
		return "", 0, fmt.Errorf("%w: high-water header %q: %v", errBadEntry, v, err)
	}
	return client, seq, nil
}
