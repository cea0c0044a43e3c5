package preflight

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// getPrefix is what a preflight starts with. A stream frame cannot start with
// it: read as a big-endian length it is 1 195 725 856 bytes, far beyond the
// 200 MB AMPS accepts (wire spec §2.1, §2.2).
const getPrefix = "GET "

// Detect reports whether the bytes waiting in br start with "GET ", that is
// whether the client opens with an HTTP preflight (wire spec §4.3 step 1).
// It only peeks: nothing is consumed, so AMPS frames stay in br for the stream
// decoder (see NewConn).
//
// Detect returns as soon as a byte differs from the prefix; for an AMPS frame
// of less than 16 MiB that is the first byte (0x00). It waits for more bytes
// only while they still match, so a caller bounds it with a read deadline. An
// error is returned only when the connection failed or ended before Detect
// could decide; the connection is then of no use.
func Detect(br *bufio.Reader) (bool, error) {
	for n := 1; n <= len(getPrefix); n++ {
		p, err := br.Peek(n)
		// Peek returns the bytes it has even on error; judge those first.
		if !bytes.HasPrefix([]byte(getPrefix), p) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("preflight: reading the first bytes (%q so far) to tell a preflight from an AMPS frame: %w", p, err)
		}
	}
	return true, nil
}

// ReadRequest reads an HTTP/1.x request head (request line, header lines and
// the blank line) from br and parses it. Lines may end in CRLF or a bare LF
// (wire spec §4.3 step 2 asks for leniency). At most maxBytes bytes of head
// are accepted (DefaultMaxHeaderBytes when maxBytes <= 0); beyond that
// ReadRequest stops reading and returns ErrHeaderTooLarge, so it never holds
// more than maxBytes plus br's own buffer. The byte after the blank line is
// left in br: it is the first byte of the AMPS stream.
//
// The returned request has Method, URL, Proto, ProtoMajor, ProtoMinor,
// Header, Host and RequestURI set. It has no body: a preflight carries none,
// and whatever follows the head is AMPS framing. A head that is not an
// HTTP/1.x GET request returns an error wrapping ErrMalformed; an I/O error
// (including a deadline) is returned wrapped as is.
func ReadRequest(br *bufio.Reader, maxBytes int) (*http.Request, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxHeaderBytes
	}
	head, err := readHead(br, maxBytes)
	if err != nil {
		return nil, err
	}
	return parseHead(head)
}

// readHead returns the bytes up to and including the first empty line.
func readHead(br *bufio.Reader, maxBytes int) ([]byte, error) {
	head := make([]byte, 0, min(maxBytes, 1024))
	lineStart := 0
	for {
		chunk, err := br.ReadSlice('\n')
		if len(head)+len(chunk) > maxBytes {
			return nil, fmt.Errorf("%w: no blank line within the first %d bytes (request line %q)",
				ErrHeaderTooLarge, maxBytes, firstLine(append(head, chunk...)))
		}
		head = append(head, chunk...)
		switch {
		case err == nil:
			// A whole line ends here; an empty one ends the head.
			line := head[lineStart:]
			if len(line) == 1 || (len(line) == 2 && line[0] == '\r') {
				if lineStart == 0 {
					return nil, fmt.Errorf("%w: request starts with an empty line", ErrMalformed)
				}
				return head, nil
			}
			lineStart = len(head)
		case errors.Is(err, bufio.ErrBufferFull):
			// A line longer than br's buffer: keep collecting it.
		case errors.Is(err, io.EOF):
			return nil, fmt.Errorf("preflight: connection ended inside the request head after %d bytes (request line %q): %w",
				len(head), firstLine(head), io.ErrUnexpectedEOF)
		default:
			return nil, fmt.Errorf("preflight: reading request head after %d bytes (request line %q): %w",
				len(head), firstLine(head), err)
		}
	}
}

// parseHead parses a complete head with net/http's HTTP/1.x parser, which
// accepts bare-LF line ends and folds, canonicalises header names and sets
// Host from the Host header.
func parseHead(head []byte) (*http.Request, error) {
	req, err := http.ReadRequest(bufio.NewReaderSize(bytes.NewReader(head), len(head)+16))
	if err != nil {
		return nil, fmt.Errorf("%w: request line %q: %v", ErrMalformed, firstLine(head), err)
	}
	if req.Method != http.MethodGet {
		return nil, fmt.Errorf("%w: method %q, want GET (request line %q)", ErrMalformed, req.Method, firstLine(head))
	}
	if req.ProtoMajor != 1 {
		return nil, fmt.Errorf("%w: protocol %q, want HTTP/1.x (request line %q)", ErrMalformed, req.Proto, firstLine(head))
	}
	// The head holds no body; drop the reader net/http built from any
	// Content-Length so no one mistakes AMPS bytes for a body.
	req.Body = http.NoBody
	req.ContentLength = 0
	req.TransferEncoding = nil
	return req, nil
}

// firstLine returns the request line of b for error messages, without its line
// end and cut to a readable length.
func firstLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	b = bytes.TrimSuffix(b, []byte("\r"))
	const maxShown = 120
	if len(b) > maxShown {
		b = b[:maxShown]
	}
	return b
}
