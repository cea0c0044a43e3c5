package filejournal

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// ErrLocked: another process (or another Journal in this one) has the
// journal directory open.
var ErrLocked = errors.New("journal directory in use")

// lockDir takes an exclusive, non-blocking flock on path (created when
// missing). The lock goes with the returned file: closing it releases it,
// and so does the end of the process, however it ends.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("journal lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("journal lock %s is held by another journal: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("journal lock %s: flock: %w", path, err)
	}
	return f, nil
}
