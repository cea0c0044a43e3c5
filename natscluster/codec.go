package natscluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ampsbroker/ampsbroker/internal/wire"

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

// decodeEntry decodes data (which the entry's Body does not share).
func decodeEntry(data []byte) (broker.Entry, error) {
	d := wire.Decoder{B: data, Bad: errBadEntry}
	var e broker.Entry
	if v := d.Byte(); d.Err == nil && v != codecVersion {
		return e, fmt.Errorf("%w: version %d, want %d", errBadEntry, v, codecVersion)
	}
	e.Kind = broker.EntryKind(d.Byte())
	flags := d.Byte()
	e.Sequence = d.Uvarint()
	e.Time = time.Unix(0, d.Varint())
	if flags&flagExpiry != 0 {
		e.Expiry = time.Unix(0, d.Varint())
	}
	e.Topic = d.String()
	e.MessageType = d.String()
	e.ClientName = d.String()
	e.CorrelationID = d.String()
	e.SOWKey = d.String()
	e.User = d.String()
	if d.Err != nil {
		return broker.Entry{}, d.Err
	}
	e.Body = append([]byte(nil), d.B...)
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
