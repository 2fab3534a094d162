package sys

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestMayWriteRaw: a response goes through RawSyscall only when fanotify's write handler
// cannot sleep on it: never with FAN_AUDIT (audit_log_start waits while the audit backlog is
// full) nor FAN_INFO.
func TestMayWriteRaw(t *testing.T) {
	for _, tc := range []struct {
		name     string
		response uint32
		raw      bool
	}{
		{"allow", FAN_ALLOW, true},
		{"deny", FAN_DENY, true},
		{"deny with errno", FAN_DENY_ERRNO(5), true},
		{"allow|audit", FAN_ALLOW | FAN_AUDIT, false},
		{"deny|audit", FAN_DENY | FAN_AUDIT, false},
		{"deny|info", FAN_DENY | FAN_INFO, false},
	} {
		if got := mayWriteRaw(tc.response); got != tc.raw {
			t.Errorf("%s (%#x): raw %v, want %v", tc.name, tc.response, got, tc.raw)
		}
	}
}

// TestFdPathThroughProcSelfFd: FdPath, reading relative to the /proc/self/fd it opened at
// start, gives what the whole path gives, from any thread, for a descriptor reused for
// another file, and the error for one that is not open; it allocates only its result.
func TestFdPathThroughProcSelfFd(t *testing.T) {
	if procSelfFd < 0 {
		t.Skip("no /proc/self/fd at start: FdPath reads the whole path")
	}
	dir := t.TempDir()
	a, b := dir+"/a", dir+"/b"
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	whole := func(fd int) string {
		t.Helper()
		p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	fd, err := Open(a, O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := FdPath(fd); err != nil || p != a || p != whole(fd) {
		t.Errorf("FdPath(%d) = %q, %v; want %q", fd, p, err, a)
	}
	// From another thread: the table is the process's.
	done := make(chan string)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		p, _ := FdPath(fd)
		done <- p
	}()
	if p := <-done; p != a {
		t.Errorf("FdPath(%d) on another thread = %q, want %q", fd, p, a)
	}
	if n := testing.AllocsPerRun(100, func() { FdPath(fd) }); n > 1 {
		t.Errorf("FdPath allocates %v times a call, want 1 (its result)", n)
	}
	Close(fd)
	if p, err := FdPath(fd); err == nil || !strings.Contains(err.Error(), "/proc/self/fd/"+strconv.Itoa(fd)) {
		t.Errorf("FdPath of a closed descriptor = %q, %v; want an error naming /proc/self/fd/%d", p, err, fd)
	}
	fd2, err := Open(b, O_RDONLY, 0) // most likely the same number
	if err != nil {
		t.Fatal(err)
	}
	defer Close(fd2)
	if p, err := FdPath(fd2); err != nil || p != b {
		t.Errorf("FdPath(%d) after reuse = %q, %v; want %q", fd2, p, err, b)
	}
}
