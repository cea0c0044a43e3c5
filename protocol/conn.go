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

	// WriteMessage encodes and writes one whole message. It may buffer;
	// Flush sends what is buffered. Frames belonging to one message are
	// never split by another message. m and what it points to are not
	// retained after WriteMessage returns. A message that breaks the rules
	// of Message yields an error wrapping ErrBadMessage and writes nothing;
	// on the WebSocket encoding, one the JS client cannot decode yields
	// ErrWSFraming (see WSEncoder).
	WriteMessage(m *Message) error

	// Flush sends buffered messages.
	Flush() error

	// Close closes the connection. It is safe to call more than once.
	Close() error
}
