package listener

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ampsbroker/ampsbroker/preflight"
)

func socketPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "amps.sock")
}

func listenUnix(t testing.TB, path string, opts *UnixOptions) *UnixListener {
	t.Helper()
	l, err := ListenUnix(path, opts)
	if err != nil {
		t.Fatalf("ListenUnix(%q): %v", path, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestUnix(t *testing.T) {
	path := socketPath(t)
	l := listenUnix(t, path, nil)
	if l.Name() != "unix" || l.Path() != path || l.Addr().String() != path {
		t.Errorf("Name %q Path %q Addr %v", l.Name(), l.Path(), l.Addr())
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != DefaultUnixMode {
		t.Errorf("socket file mode %v, want socket with %v", fi.Mode(), DefaultUnixMode)
	}
	results := serveHandshakes(t, l)

	c, s := logon(t, results, "unix", path)
	exchange(t, c, s)
	if info := s.Info(); info.Transport != "unix" || info.Protocol != "amps" || info.TLS != nil {
		t.Errorf("Info = %+v", info)
	}

	// Preflight works on Unix sockets too.
	c2 := dial(t, "unix", path)
	io.WriteString(c2, "GET /amps/json HTTP/1.1\nUpgrade: tcp\n\n")
	c2.Write(frame(`{"c":"logon"}`, ""))
	got := make([]byte, len(preflight.SwitchingProtocols))
	if _, err := io.ReadFull(c2, got); err != nil || string(got) != preflight.SwitchingProtocols {
		t.Fatalf("response %q, %v", got, err)
	}
	s2 := nextConn(t, results)
	defer s2.Close()
	expectMessage(t, s2, `{"c":"logon"}`, "")
	if s2.Info().MessageType != "json" {
		t.Errorf("MessageType = %q", s2.Info().MessageType)
	}

	// No WebSocket on a Unix socket (amps-config §3.7).
	c3 := dial(t, "unix", path)
	io.WriteString(c3, "GET /amps/json HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	if got := readAllUntilClose(t, c3); got != preflight.BadRequest {
		t.Errorf("websocket on unix: client got %q", got)
	}
	if r := next(t, results); !errors.Is(r.err, preflight.ErrUpgradeRefused) {
		t.Errorf("websocket on unix: Handshake error = %v", r.err)
	}
}

func TestUnixMode(t *testing.T) {
	path := socketPath(t)
	listenUnix(t, path, &UnixOptions{Mode: 0o600, Name: "local"})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestUnixStale: a socket file left by a dead process is replaced.
func TestUnixStale(t *testing.T) {
	path := socketPath(t)
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	old.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket file not left behind: %v", err)
	}
	l := listenUnix(t, path, nil)
	results := serveHandshakes(t, l)
	c, s := logon(t, results, "unix", path)
	exchange(t, c, s)
}

// TestUnixLive: a socket somebody listens on is not stolen.
func TestUnixLive(t *testing.T) {
	path := socketPath(t)
	live := listenUnix(t, path, nil)
	results := serveHandshakes(t, live)
	l, err := ListenUnix(path, nil)
	if err == nil {
		l.Close()
		t.Fatal("ListenUnix on a live socket succeeded")
	}
	if !errors.Is(err, ErrSocketInUse) || !containsQuoted(err, path) {
		t.Errorf("error = %v, want ErrSocketInUse naming %q", err, path)
	}
	// The probe connection reached the live listener; let it finish.
	if r := next(t, results); r.err == nil {
		r.conn.Close()
	}
	// The live listener still works.
	c, s := logon(t, results, "unix", path)
	exchange(t, c, s)
}

// TestUnixNotSocket: another kind of file is never deleted.
func TestUnixNotSocket(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "data")
	if err := os.WriteFile(file, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{file, dir} {
		l, err := ListenUnix(path, nil)
		if err == nil {
			l.Close()
			t.Fatalf("ListenUnix(%q) succeeded", path)
		}
		if !errors.Is(err, ErrNotSocket) || !containsQuoted(err, path) {
			t.Errorf("ListenUnix(%q) error = %v, want ErrNotSocket naming the path", path, err)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "precious" {
		t.Errorf("file after ListenUnix: %q, %v", b, err)
	}
	if _, err := ListenUnix("", nil); err == nil {
		t.Error("ListenUnix(\"\") succeeded")
	}
}

func TestUnixClose(t *testing.T) {
	path := socketPath(t)
	l, err := ListenUnix(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeUnblocksAccept(t, l)
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file after Close: %v, want removed", err)
	}
	l.Close() // a second Close is harmless

	// A file that replaced ours is not removed by Close.
	l2, err := ListenUnix(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("new owner"), 0o600); err != nil {
		t.Fatal(err)
	}
	l2.Close()
	if b, err := os.ReadFile(path); err != nil || string(b) != "new owner" {
		t.Errorf("replacement file after Close: %q, %v", b, err)
	}
}

func containsQuoted(err error, s string) bool {
	return err != nil && strings.Contains(err.Error(), `"`+s+`"`)
}
