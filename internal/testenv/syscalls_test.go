//go:build linux

package testenv_test

import (
	"os"
	"syscall"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestCountSyscalls: the counter sees the calls fn makes on its thread, and nothing of its
// own: none for an empty fn, ten for ten getppid calls (the fewest of three runs), none for
// ten getpid (one of the runtime's, left out).
func TestCountSyscalls(t *testing.T) {
	testenv.RequireRoot(t)
	fewest := func(fn func()) int {
		n := -1
		for range 3 {
			if c := testenv.CountSyscalls(t, fn); n < 0 || c < n {
				n = c
			}
		}
		return n
	}
	if n := fewest(func() {}); n != 0 {
		t.Errorf("an empty fn made %d system calls, want 0", n)
	}
	if n := fewest(func() {
		for range 10 {
			os.Getppid()
		}
	}); n != 10 {
		t.Errorf("ten getppid made %d system calls, want 10", n)
	}
	if n := fewest(func() {
		for range 10 {
			syscall.RawSyscall(syscall.SYS_GETPID, 0, 0, 0)
		}
	}); n != 0 {
		t.Errorf("ten getpid (left out) counted %d system calls, want 0", n)
	}
}
