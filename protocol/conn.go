package protocol

// Conn carries whole AMPS messages over one client connection, in either the
// stream encoding (TCP, TLS, Unix, post-preflight; spec §2) or the WebSocket
// encoding of the official JavaScript client (spec §3). The broker reads and
// writes through it without knowing which.
//
// ReadMessage is called from one goroutine; WriteMessage and Flush from one
// (other) goroutine; Close may be called from any goroutine, at any time, more
// than once, and unblocks a pending ReadMessage or WriteMessage.
type Conn interface {
	// ReadMessage returns the next message's raw JSON header and body. Both
	// slices are valid only until the next call. Zero-length stream frames are
	// skipped. A malformed or oversized message returns an error (see
	// ErrFrameTooLarge and *SyntaxError); the connection is then unusable.
	ReadMessage() (header, body []byte, err error)

	// WriteMessage writes one whole message: a compact JSON header and a body.
	// It may buffer; Flush sends what is buffered. Frames belonging to one
	// message are never split by another message. On the WebSocket encoding a
	// "sow" message's body (record header + data pairs, spec §2.3) is sent as
	// the record frames of spec §3.4, and headers of "p"/"oof" messages must
	// carry "l".
	WriteMessage(header, body []byte) error

	// Flush sends buffered messages.
	Flush() error

	// Close closes the connection. It is safe to call more than once.
	Close() error
}
