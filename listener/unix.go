package listener

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/ampsbroker/ampsbroker/transport"
)

// Unix transport defaults.
const (
	// DefaultUnixMode is the permission of the socket file when
	// UnixOptions.Mode is zero: read and write for the owner and the group.
	// Connecting to a Unix socket needs write permission on the file
	// (amps-config §3.7), so the group can run clients while other users
	// cannot. A host that wants the process umask to decide (what AMPS
	// does without FileMask) passes the mode it computed.
	DefaultUnixMode os.FileMode = 0o660

	// staleProbeTimeout bounds the connect that tells a stale socket file
	// from a live one.
	staleProbeTimeout = time.Second
)

// Sentinel errors of ListenUnix. Each error returned wraps one and names the
// path.
var (
	// ErrSocketInUse means a process is listening on the socket file
	// already. The file is left alone.
	ErrSocketInUse = errors.New("listener: unix socket in use")

	// ErrNotSocket means the path exists and is not a socket. It is never
	// removed: it may be somebody's data.
	ErrNotSocket = errors.New("listener: path exists and is not a socket")
)

// UnixListener is a Unix domain socket transport (AMPS type amps-unix). It
// speaks the stream encoding and, like TCP, accepts the HTTP preflight. It
// implements Listener.
type UnixListener struct {
	ln      *net.UnixListener
	path    string
	created os.FileInfo // the socket file we bound, to recognise it at Close
	cfg     streamConfig

	removeOnce sync.Once
}

var _ transport.Listener = (*UnixListener)(nil)

// ListenUnix creates a Unix domain socket at path and listens on it, then sets
// the file's mode to UnixOptions.Mode (default DefaultUnixMode), as AMPS
// applies FileMask after creation (amps-config §3.7). A nil opts means all
// defaults.
//
// When a file already exists at path (a case AMPS does not document):
//   - a socket nobody listens on (connect refused), left by a process that
//     died, is removed and the path reused;
//   - a socket a process listens on is left alone and ErrSocketInUse
//     returned;
//   - anything that is not a socket is left alone and ErrNotSocket returned.
//
// Between bind and chmod the file has the mode the process umask gives; a
// host that cannot accept that window creates path in a directory only it
// can enter.
func ListenUnix(path string, opts *UnixOptions) (*UnixListener, error) {
	var o UnixOptions
	if opts != nil {
		o = *opts
	}
	if path == "" {
		return nil, errors.New("listener: unix socket path is empty")
	}
	if err := clearStaleSocket(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listener: listening on unix socket %q: %w", path, err)
	}
	// Close removes the file itself, and only if it is still ours.
	ln.SetUnlinkOnClose(false)
	mode := o.Mode.Perm()
	if mode == 0 {
		mode = DefaultUnixMode
	}
	created, err := os.Lstat(path)
	if err == nil {
		err = os.Chmod(path, mode)
	}
	if err != nil {
		ln.Close()
		if created != nil {
			os.Remove(path)
		}
		return nil, fmt.Errorf("listener: setting mode %04o on unix socket %q: %w", mode, path, err)
	}
	name := o.Name
	if name == "" {
		name = "unix"
	}
	return &UnixListener{
		ln:      ln,
		path:    path,
		created: created,
		cfg: streamConfig{
			name:         name,
			timeout:      o.HandshakeTimeout,
			messageType:  o.MessageType,
			maxFrameSize: o.MaxFrameSize,
		},
	}, nil
}

// clearStaleSocket removes a socket file at path that no process listens on.
func clearStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listener: checking unix socket path %q: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%w: %q is %s", ErrNotSocket, path, describeType(fi.Mode()))
	}
	c, err := net.DialTimeout("unix", path, staleProbeTimeout)
	if err == nil {
		c.Close()
		return fmt.Errorf("%w: a process is listening on %q", ErrSocketInUse, path)
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		// Nobody listening: a leftover of a process that died.
	case errors.Is(err, fs.ErrNotExist):
		return nil // removed meanwhile
	default:
		// A timeout (full backlog of a live server), a permission error:
		// we cannot tell it is stale, so we do not touch it.
		return fmt.Errorf("%w: cannot tell whether %q is stale: %v", ErrSocketInUse, path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("listener: removing stale unix socket %q: %w", path, err)
	}
	return nil
}

// Accept waits for the next connection. After Close it returns an error
// wrapping net.ErrClosed.
func (l *UnixListener) Accept() (net.Conn, error) { return l.ln.Accept() }

// Handshake checks for an HTTP preflight, as on TCP (wire spec §4.3), and
// returns the stream connection. There is no TLS on a Unix socket
// (amps-config §3.7) and a WebSocket upgrade is refused with 400. Bounded by
// ctx and UnixOptions.HandshakeTimeout. On error c is closed.
func (l *UnixListener) Handshake(ctx context.Context, c net.Conn) (transport.Conn, error) {
	return handshakeStream(ctx, c, &l.cfg)
}

// Addr returns the socket address (its path).
func (l *UnixListener) Addr() net.Addr { return l.ln.Addr() }

// Name returns UnixOptions.Name, by default "unix".
func (l *UnixListener) Name() string { return l.cfg.name }

// Path returns the socket file's path.
func (l *UnixListener) Path() string { return l.path }

// Close stops accepting and removes the socket file, unless the file at the
// path is no longer the one ListenUnix created (another process replaced
// it). Connections already accepted stay open.
func (l *UnixListener) Close() error {
	err := l.ln.Close()
	l.removeOnce.Do(func() {
		if fi, serr := os.Lstat(l.path); serr == nil && os.SameFile(fi, l.created) {
			os.Remove(l.path)
		}
	})
	return err
}

// describeType names a file type for error messages.
func describeType(m fs.FileMode) string {
	switch m.Type() {
	case 0:
		return "a regular file"
	case fs.ModeDir:
		return "a directory"
	case fs.ModeSymlink:
		return "a symbolic link"
	case fs.ModeNamedPipe:
		return "a named pipe"
	case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
		return "a device"
	}
	return fmt.Sprintf("a file of type %v", m.Type())
}
