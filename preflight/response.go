package preflight

import (
	"fmt"
	"io"
)

// Responses, byte for byte.
const (
	// SwitchingProtocols accepts an AMPS preflight (wire spec §4.2). The
	// stream framing starts right after its blank line.
	SwitchingProtocols = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\n"

	// BadRequest refuses a preflight (wire spec §4.3 step 5). It has no body
	// and announces that the broker closes the connection.
	BadRequest = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
)

// WriteSwitchingProtocols writes SwitchingProtocols with a single Write call.
// One call matters: the Go client reads the answer with one read of at most
// 4096 bytes and takes whatever follows as AMPS frames, so a response split
// over two segments would corrupt its stream (wire spec §4.2).
func WriteSwitchingProtocols(w io.Writer) error {
	return writeOnce(w, SwitchingProtocols)
}

// WriteBadRequest writes BadRequest with a single Write call. The caller then
// closes the connection.
func WriteBadRequest(w io.Writer) error {
	return writeOnce(w, BadRequest)
}

func writeOnce(w io.Writer, s string) error {
	n, err := io.WriteString(w, s)
	if err == nil && n != len(s) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("preflight: writing %q response (%d of %d bytes written): %w", firstLine([]byte(s)), n, len(s), err)
	}
	return nil
}
