//go:build linux

package backend

import (
	"errors"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sockHook waits for the read ends of socket pairs and reads what comes, on the reader's
// thread.
type sockHook struct {
	mu   sync.Mutex
	fds  []int
	got  chan string
	last []int // the reader's: the fds of the last AppendPollFds
}

func (h *sockHook) AppendPollFds(dst []int) []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last = append(h.last[:0], h.fds...)
	return append(dst, h.fds...)
}

func (h *sockHook) Readable(i int) {
	var buf [64]byte
	n, err := syscall.Read(h.last[i], buf[:])
	if err != nil || n <= 0 {
		return
	}
	h.got <- string(buf[:n])
}

func (h *sockHook) add(fd int) {
	h.mu.Lock()
	h.fds = append(h.fds, fd)
	h.mu.Unlock()
}

func socketPair(t *testing.T) (r, w int) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fds[0]); syscall.Close(fds[1]) })
	return fds[0], fds[1]
}

// ShareReader starts the FD group's reader without a mark; the reader hands the hook's
// readable descriptors to it, picks up new ones when nudged, and forgets the hook when it is
// removed.
func TestShareReader(t *testing.T) {
	b := newBackend(t, ModeFanotify)
	h := &sockHook{got: make(chan string, 16)}
	r1, w1 := socketPair(t)
	h.add(r1)
	if err := b.ShareReader(h); err != nil {
		t.Fatal(err)
	}
	expect := func(want string) {
		t.Helper()
		select {
		case got := <-h.got:
			if got != want {
				t.Fatalf("hook read %q, want %q", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("hook never read %q", want)
		}
	}
	syscall.Write(w1, []byte("one"))
	expect("one")
	r2, w2 := socketPair(t)
	h.add(r2)
	b.NudgeReader()
	syscall.Write(w2, []byte("two"))
	expect("two")
	if err := b.ShareReader(nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // the reader's current wait ends (nudged)
	syscall.Write(w1, []byte("three"))
	select {
	case got := <-h.got:
		t.Fatalf("a removed hook still read %q", got)
	case <-time.After(100 * time.Millisecond):
	}
}

// Without fanotify there is no reader to share.
func TestShareReaderInotify(t *testing.T) {
	b := inoBackend(t)
	if err := b.ShareReader(&sockHook{}); !errors.Is(err, ErrNeedsPrivilege) {
		t.Fatalf("ShareReader in inotify mode: %v, want ErrNeedsPrivilege", err)
	}
}
