package readbuf

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// script is a reader that returns its steps one per Read: data, and an
// error with it or alone.
type script struct {
	steps []step
	reads int
}

type step struct {
	data string
	err  error
}

func (s *script) Read(p []byte) (int, error) {
	s.reads++
	if len(s.steps) == 0 {
		return 0, io.EOF
	}
	st := &s.steps[0]
	n := copy(p, st.data)
	st.data = st.data[n:]
	if st.data != "" {
		return n, nil
	}
	err := st.err
	s.steps = s.steps[1:]
	return n, err
}

func TestEnsureAndDiscard(t *testing.T) {
	src := &script{steps: []step{{data: "ab"}, {data: "cdef"}, {data: "g", err: io.EOF}}}
	b := NewSize(src, 4, 8)
	// "ab" leaves room; "cd" fills the small buffer.
	if err := b.Ensure(3); err != nil || string(b.Buffered()) != "abcd" {
		t.Fatalf("Ensure(3): %v, buffered %q", err, b.Buffered())
	}
	b.Discard(3)
	// The last byte comes with io.EOF: the byte first, the error after.
	if err := b.Ensure(4); err != nil || string(b.Buffered()) != "defg" {
		t.Fatalf("Ensure(4): %v, buffered %q", err, b.Buffered())
	}
	b.Discard(3)
	if err := b.Ensure(2); err != io.EOF || string(b.Buffered()) != "g" {
		t.Fatalf("Ensure past the end: %v, buffered %q; want io.EOF with g kept", err, b.Buffered())
	}
	if err := b.Ensure(2); err != io.EOF {
		t.Fatalf("Ensure again: %v, want the same io.EOF", err)
	}
}

// Streaming input moves the reader to its large buffer; a read that finds
// the source drained moves it back before the next read.
func TestBufferFollowsTraffic(t *testing.T) {
	src := &script{steps: []step{{data: string(bytes.Repeat([]byte("x"), 40))}, {data: "yz"}}}
	b := NewSize(src, 4, 16)
	if err := b.Ensure(1); err != nil || b.Large() {
		t.Fatalf("first read: %v, large %v; want the small buffer", err, b.Large())
	}
	if b.Len() != 4 {
		t.Fatalf("the first read filled %d of the small buffer's 4 bytes", b.Len())
	}
	b.Discard(4)
	if err := b.Ensure(1); err != nil || !b.Large() || b.Len() != 16 {
		t.Fatalf("after a full read: %v, large %v, %d buffered; want a full large buffer", err, b.Large(), b.Len())
	}
	got := 4
	for {
		err := b.Ensure(1)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", got, err)
		}
		got += b.Len()
		b.Discard(b.Len())
	}
	if got != 42 {
		t.Fatalf("read %d bytes, want 42", got)
	}
	// The read that returned "yz" after the last x's had room to spare:
	// the source was drained, so the read that found the end went
	// through the small buffer.
	if b.Large() {
		t.Error("the large buffer is held after the source drained")
	}
	if err := b.Ensure(17); err == nil {
		t.Error("Ensure over the large buffer's size did not fail")
	}
}

// Read serves the buffered input, then the source directly, and keeps an
// error that came with data for the next call.
func TestReadDirect(t *testing.T) {
	boom := errors.New("boom")
	src := &script{steps: []step{{data: "abc"}, {data: "defgh", err: boom}}}
	b := NewSize(src, 4, 8)
	if err := b.Ensure(2); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 10)
	n, err := b.Read(p)
	if err != nil || string(p[:n]) != "abc" {
		t.Fatalf("Read from the buffer: %q, %v", p[:n], err)
	}
	n, err = b.Read(p)
	if err != nil || string(p[:n]) != "defgh" {
		t.Fatalf("Read from the source: %q, %v", p[:n], err)
	}
	if n, err = b.Read(p); n != 0 || err != boom {
		t.Fatalf("Read after the data: %d, %v; want boom", n, err)
	}
	if err := b.Ensure(1); err != boom {
		t.Fatalf("Ensure after the error: %v", err)
	}
}

// Append takes the buffered input first, then reads straight from the
// source, stops at n bytes, and reports a source that ends early with what
// arrived.
func TestAppend(t *testing.T) {
	src := &script{steps: []step{{data: "abcd"}, {data: "efghijklmnop"}}}
	b := NewSize(src, 4, 8)
	if err := b.Ensure(2); err != nil {
		t.Fatal(err)
	}
	b.Discard(1)
	got, err := b.Append([]byte("<"), 10)
	if err != nil || string(got) != "<bcdefghijk" {
		t.Fatalf("Append(10) = %q, %v; want <bcdefghijk", got, err)
	}
	if err := b.Ensure(5); err != nil || string(b.Buffered()) != "lmnop" {
		t.Fatalf("after Append: %v, buffered %q; want the rest, lmnop", err, b.Buffered())
	}
	b.Discard(5)
	got, err = b.Append(nil, 3)
	if err != io.EOF || len(got) != 0 {
		t.Fatalf("Append past the end = %q, %v; want nothing and io.EOF", got, err)
	}
}

// endless returns a chunk per Read: fill bytes when asked for more than
// small, few otherwise, so a reader moves between its buffers each time.
type endless struct{ small int }

func (e endless) Read(p []byte) (int, error) {
	n := min(len(p), 3*e.small)
	if len(p) <= e.small {
		n = 1
	}
	clear(p[:n])
	return n, nil
}

// A large buffer of a size other than LargeSize comes from a pool of its
// size as the default one does: moving between the buffers does not
// allocate each time.
func TestSizedLargeBufferIsRecycled(t *testing.T) {
	const small, large = 16, 100 // large is not LargeSize
	b := NewSize(endless{small}, small, large)
	cycle := func() {
		if err := b.Ensure(small + 1); err != nil || !b.Large() {
			t.Fatalf("Ensure(%d): %v, large %v; want the large buffer", small+1, err, b.Large())
		}
		b.Discard(b.Len())
		if err := b.Ensure(1); err != nil || b.Large() {
			t.Fatalf("Ensure(1): %v, large %v; want the small buffer again", err, b.Large())
		}
		b.Discard(b.Len())
	}
	cycle()
	// The race detector makes sync.Pool drop a quarter of what it is
	// given; without a pool every cycle allocates.
	if allocs := testing.AllocsPerRun(200, cycle); allocs > 0.5 {
		t.Fatalf("%.2f allocations per move to the large buffer and back, want none", allocs)
	}
	b.Release()
	if b.Large() {
		t.Fatal("Release kept the large buffer")
	}
}
