package filejournal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/ampsbroker/ampsbroker/internal/wire"

	"github.com/ampsbroker/ampsbroker/broker"
)

// On-disk format (our own, config spec §6A.3 [I]).
//
// A segment file starts with a header: the magic segmentMagic (8 bytes),
// the position of the segment's first entry (uint64, little endian) and the
// CRC-32C of those 16 bytes (uint32). Entries follow back to back, each
// framed as: payload length (uint32), CRC-32C of the payload (uint32),
// payload. The payload holds, in order: position (uvarint), time (varint,
// µs since the Unix epoch), kind (1 byte), sequence (uvarint), expiry
// (varint µs, 0 for none), then topic, message type, client name,
// correlation id, SOW key and user (each uvarint length + bytes), and the
// body (the rest).

const (
	// segmentMagic opens every segment file; its last byte is the format
	// version.
	segmentMagic = "AMPSBJ\x00\x01"
	// segmentHeaderSize is the magic, the first position and their CRC.
	segmentHeaderSize = 8 + 8 + 4
	// frameHeaderSize is an entry's length and CRC.
	frameHeaderSize = 4 + 4
	// MaxEntrySize bounds an entry's payload. A length field above it is
	// damage, not an entry (AMPS's own message size limit is far below).
	MaxEntrySize = 256 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errBadEntry is why a frame or payload does not decode.
var errBadEntry = errors.New("bad entry")

func putSegmentHeader(b []byte, first broker.Position) {
	copy(b, segmentMagic)
	binary.LittleEndian.PutUint64(b[8:], uint64(first))
	binary.LittleEndian.PutUint32(b[16:], crc32.Checksum(b[:16], castagnoli))
}

// parseSegmentHeader returns the first position a header names.
func parseSegmentHeader(b []byte) (broker.Position, error) {
	if len(b) < segmentHeaderSize {
		return 0, fmt.Errorf("segment header: %d bytes, want %d", len(b), segmentHeaderSize)
	}
	if string(b[:8]) != segmentMagic {
		return 0, fmt.Errorf("segment header: magic %q, want %q", b[:8], segmentMagic)
	}
	if got, want := binary.LittleEndian.Uint32(b[16:]), crc32.Checksum(b[:16], castagnoli); got != want {
		return 0, fmt.Errorf("segment header: CRC %08x, computed %08x", got, want)
	}
	return broker.Position(binary.LittleEndian.Uint64(b[8:])), nil
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us)
}

// appendFrame appends e, framed, to b.
func appendFrame(b []byte, e *broker.Entry) []byte {
	start := len(b)
	b = append(b, make([]byte, frameHeaderSize)...)
	b = binary.AppendUvarint(b, uint64(e.Position))
	b = binary.AppendVarint(b, micros(e.Time))
	b = append(b, byte(e.Kind))
	b = binary.AppendUvarint(b, e.Sequence)
	b = binary.AppendVarint(b, micros(e.Expiry))
	for _, s := range [...]string{e.Topic, e.MessageType, e.ClientName, e.CorrelationID, e.SOWKey, e.User} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = append(b, e.Body...)
	payload := b[start+frameHeaderSize:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(payload, castagnoli))
	return b
}

// frameLength returns the payload length a frame header announces, or an
// error when it cannot be an entry.
func frameLength(h []byte) (int, error) {
	n := binary.LittleEndian.Uint32(h)
	if n == 0 || n > MaxEntrySize {
		return 0, fmt.Errorf("%w: payload length %d", errBadEntry, n)
	}
	return int(n), nil
}

// decodeFrame checks a frame's CRC and decodes its payload. h is the frame
// header, payload exactly the announced bytes. The entry's Body is a copy.
func decodeFrame(h, payload []byte) (broker.Entry, error) {
	if got, want := binary.LittleEndian.Uint32(h[4:]), crc32.Checksum(payload, castagnoli); got != want {
		return broker.Entry{}, fmt.Errorf("%w: CRC %08x, computed %08x", errBadEntry, got, want)
	}
	return decodePayload(payload)
}

func decodePayload(p []byte) (broker.Entry, error) {
	var e broker.Entry
	d := wire.Decoder{B: p, Bad: errBadEntry}
	e.Position = broker.Position(d.Uvarint())
	e.Time = fromMicros(d.Varint())
	e.Kind = broker.EntryKind(d.Byte())
	e.Sequence = d.Uvarint()
	e.Expiry = fromMicros(d.Varint())
	e.Topic = d.String()
	e.MessageType = d.String()
	e.ClientName = d.String()
	e.CorrelationID = d.String()
	e.SOWKey = d.String()
	e.User = d.String()
	if d.Err != nil {
		return broker.Entry{}, d.Err
	}
	if e.Kind != broker.EntryPublish && e.Kind != broker.EntrySOWDelete {
		return broker.Entry{}, fmt.Errorf("%w: kind %d", errBadEntry, e.Kind)
	}
	e.Body = append([]byte(nil), d.B...)
	return e, nil
}
