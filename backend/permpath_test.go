//go:build linux

package backend

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// A permission event's Path never reads its descriptor once closeFd has closed it: the number
// is likely another file's by then, and a directory's path is read from its descriptor
// unchecked (eventPath). closeFd settles the path with one compare-and-swap when no Path is
// reading (pathState), else waits for that Path. Rounds in turn sequential (closeFd, the
// number reused for another directory, then Path: it must not read that one) and concurrent
// (Path racing closeFd and the reuse: the path it gives is the event's own or unknown).
func TestPermEventPathSettledByClose(t *testing.T) {
	dir := t.TempDir() // nothing is marked: the descriptors are this process's own
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, d := range []string{a, b} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	openDir := func(path string) int {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		return fd
	}
	reused, readBefore := 0, 0
	for i := range 400 {
		fd := openDir(a)
		st, err := sys.Fstat(fd)
		if err != nil {
			t.Fatal(err)
		}
		p := &permEvent{fd: int32(fd), st: st}
		concurrent := i%2 == 1
		got := make(chan string, 1)
		if concurrent {
			go func() { got <- p.Path() }()
		}
		p.closeFd()
		fd2 := openDir(b) // the lowest free number: most often fd's
		if fd2 == fd {
			reused++
		}
		if !concurrent {
			got <- p.Path()
		}
		path := <-got
		syscall.Close(fd2)
		switch {
		case path == a:
			readBefore++
			if !concurrent {
				t.Fatalf("round %d: Path read the descriptor after closeFd had closed it (got %q)", i, path)
			}
		case path != "":
			t.Fatalf("round %d (concurrent %v): Path %q, want %q or unknown (descriptor %d, reused by %d)", i, concurrent, path, a, fd, fd2)
		}
	}
	if reused < 100 {
		t.Errorf("the closed descriptor's number was reused in %d rounds of 400: the test tried little", reused)
	}
	t.Logf("number reused in %d of 400 rounds; a concurrent Path read the path first in %d", reused, readBefore)
}

// closeFd called while a Path reads the descriptor waits for it: the Path reads the event's
// own path, not that of a file that took the number meanwhile.
func TestPermEventCloseWaitsForPath(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, d := range []string{a, b} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fd, err := syscall.Open(a, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sys.Fstat(fd)
	if err != nil {
		t.Fatal(err)
	}
	p := &permEvent{fd: int32(fd), st: st}
	reading := make(chan struct{})
	testPathReading = func() {
		close(reading)
		time.Sleep(20 * time.Millisecond) // closeFd and the reuse would come now
	}
	defer func() { testPathReading = nil }()
	got := make(chan string, 1)
	go func() { got <- p.Path() }()
	<-reading
	p.closeFd()
	fd2, err := syscall.Open(b, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd2)
	if path := <-got; path != a {
		t.Errorf("Path %q while closeFd ran (descriptor %d, then %d), want %q", path, fd, fd2, a)
	}
}
