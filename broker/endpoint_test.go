package broker

import (
	"errors"
	"testing"
)

// TestFlushedOnlyCompletesAFlush: the writer's errFlushed ends a session
// only after a flush. When the writer stops because an overflowing queue
// closed itself a moment before its publisher's close(ErrSlowConsumer),
// errFlushed changes nothing, and the slow consumer is the cause and the
// mode.
func TestFlushedOnlyCompletesAFlush(t *testing.T) {
	b := New(nil)
	defer b.Close()
	e := b.newEndpoint(1, 0)
	if e.close(errFlushed) {
		t.Fatal("errFlushed was taken as the first cause of an open endpoint")
	}
	e.close(ErrSlowConsumer)
	if cause, mode := e.closeState(); !errors.Is(cause, ErrSlowConsumer) || mode != modeReset {
		t.Fatalf("cause %v, mode %d; want ErrSlowConsumer and a reset", cause, mode)
	}

	f := b.newEndpoint(1, 0)
	f.close(ErrBrokerClosed) // a graceful Shutdown: flush first
	f.close(errFlushed)
	if cause, mode := f.closeState(); cause != ErrBrokerClosed || mode != modeFlushed {
		t.Fatalf("after a flush: cause %v, mode %d; want ErrBrokerClosed and modeFlushed", cause, mode)
	}
}
