package sys_test

import (
	"errors"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	. "github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// TestReadWaiting: ReadWaiting reads what Read reads, reports errors as Read does, and, while
// it waits, the goroutine's P is given up: with GOMAXPROCS 1 the writer that ends the wait
// runs while the reader is blocked (and no later than a sysmon retake would let it otherwise,
// which the bound does not tell apart: the point is that it returns, with the data).
func TestReadWaiting(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	rfd := int(r.Fd()) // Fd makes it blocking: ReadWaiting waits in read(2)
	buf := make([]byte, 16)

	// Something queued: read at once.
	if _, err := w.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if n, err := ReadWaiting(rfd, buf); err != nil || string(buf[:n]) != "abc" {
		t.Fatalf("ReadWaiting with data queued = %q, %v; want abc, nil", buf[:n], err)
	}

	// Nothing queued: it waits until the writer, on the one P, writes.
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() { n, err := ReadWaiting(rfd, buf); done <- result{n, err} }()
	time.Sleep(20 * time.Millisecond)
	select {
	case res := <-done:
		t.Fatalf("ReadWaiting returned %d, %v before anything was written", res.n, res.err)
	default:
	}
	if _, err := w.Write([]byte("de")); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-done:
		if res.err != nil || string(buf[:res.n]) != "de" {
			t.Fatalf("ReadWaiting = %q, %v; want de, nil", buf[:res.n], res.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadWaiting still waiting 10 s after the write")
	}

	// Errors: a bad descriptor, and EAGAIN from a non-blocking one with nothing queued.
	if _, err := ReadWaiting(-1, buf); !errors.Is(err, syscall.EBADF) {
		t.Errorf("ReadWaiting(-1) = %v, want EBADF", err)
	}
	if err := syscall.SetNonblock(rfd, true); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadWaiting(rfd, buf); !errors.Is(err, syscall.EAGAIN) {
		t.Errorf("ReadWaiting on an empty non-blocking pipe = %v, want EAGAIN", err)
	}
	if n, err := ReadWaiting(rfd, nil); err != nil || n != 0 {
		t.Errorf("ReadWaiting of 0 bytes = %d, %v; want 0, nil", n, err)
	}
}
