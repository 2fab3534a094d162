package sys_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
	"golang.org/x/sys/unix" // allowed: this is internal/sys's own directory
)

// mountinfoID returns the (reusable) mount id of the mount at dir from /proc/self/mountinfo.
func mountinfoID(t *testing.T, dir string) uint64 {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var id uint64
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fs := strings.Fields(s.Text()); len(fs) > 4 && fs[4] == dir {
			id, _ = strconv.ParseUint(fs[0], 10, 64) // the last match is the top mount
		}
	}
	if id == 0 {
		t.Fatalf("%s not in mountinfo", dir)
	}
	return id
}

func TestHandles(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tc := range []struct {
		name  string
		mount func(t *testing.T) string
	}{
		{"tmpfs", func(t *testing.T) string { return testenv.Tmpfs(t) }},
		{"ext4", func(t *testing.T) string { return testenv.Ext4(t, 16) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.mount(t)
			file := filepath.Join(dir, "f")
			writeFile(t, file, []byte("x"))
			st, err := Statx(AT_FDCWD, file, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !st.MntIDUnique || st.MntID == 0 || st.IsDir() || st.Mode&S_IFMT != S_IFREG || st.Size != 1 {
				t.Errorf("statx: %+v", st)
			}
			h, legacyID, err := NameToHandleAt(AT_FDCWD, file, 0)
			if err != nil {
				t.Fatal(err)
			}
			h2, uniqueID, err := NameToHandleAt(AT_FDCWD, file, AT_HANDLE_MNT_ID_UNIQUE)
			if err != nil {
				t.Fatal(err)
			}
			if h.Type != h2.Type || string(h.Bytes) != string(h2.Bytes) || len(h.Bytes) == 0 {
				t.Errorf("handles differ: %v %v", h, h2)
			}
			if uniqueID != st.MntID {
				t.Errorf("AT_HANDLE_MNT_ID_UNIQUE mount id %#x, statx STATX_MNT_ID_UNIQUE %#x", uniqueID, st.MntID)
			}
			if want := mountinfoID(t, dir); legacyID != want {
				t.Errorf("legacy mount id %d, mountinfo says %d", legacyID, want)
			}

			mountFd, err := Open(dir, O_RDONLY|O_DIRECTORY, 0) // not O_PATH: open_by_handle_at gives EBADF
			if err != nil {
				t.Fatal(err)
			}
			defer Close(mountFd)
			dfh, _, err := NameToHandleAt(mountFd, "", AT_EMPTY_PATH)
			if err != nil {
				t.Fatal(err)
			}
			if string(dfh.Bytes) != string(handleOf(t, dir).Bytes) {
				t.Errorf("AT_EMPTY_PATH handle %v, path handle %v", dfh, handleOf(t, dir))
			}

			fd, err := OpenByHandleAt(mountFd, h, O_RDONLY)
			if err != nil {
				t.Fatal(err)
			}
			fst, err := Fstat(fd)
			if err != nil {
				t.Fatal(err)
			}
			if fst.Ino != st.Ino || fst.Dev != st.Dev || fst.MntID != st.MntID {
				t.Errorf("opened by handle: %+v, want %+v", fst, st)
			}
			if p, err := FdPath(fd); err != nil || p != file {
				t.Errorf("FdPath = %q, %v; want %q", p, err, file)
			}
			fs, err := Fstatfs(fd)
			if err != nil {
				t.Fatal(err)
			}
			if fs.Fsid != fsidOf(t, dir) {
				t.Errorf("Fstatfs fsid %v, Statfs %v", fs.Fsid, fsidOf(t, dir))
			}
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
			if p, err := FdPath(fd); err != nil || p != file+" (deleted)" {
				t.Errorf("FdPath of unlinked = %q, %v", p, err)
			}
			Close(fd)
			if fd, err := OpenByHandleAt(mountFd, h, O_RDONLY); !errors.Is(err, syscall.ESTALE) {
				t.Errorf("open of a deleted file's handle: fd %d, %v; want ESTALE", fd, err)
				if err == nil {
					Close(fd)
				}
			}
		})
	}
}

func fdCloexec(t *testing.T, fd int) bool {
	t.Helper()
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	return flags&unix.FD_CLOEXEC != 0
}

// TestCloexec: every fd this package hands out is close-on-exec, asked for or not.
func TestCloexec(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	fan, err := FanotifyInit(FAN_CLASS_NOTIF|FAN_NONBLOCK, O_RDONLY) // no FAN_CLOEXEC, no O_CLOEXEC
	if err != nil {
		t.Fatal(err)
	}
	defer Close(fan)
	in, err := InotifyInit(0)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(in)
	dup, err := Dup(in)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(dup)
	if err := FanotifyMark(fan, FAN_MARK_ADD, FAN_OPEN|FAN_ONDIR, AT_FDCWD, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadDir(dir); err != nil {
		t.Fatal(err)
	}
	if ok, err := PollRead(fan, eventTimeout); !ok || err != nil {
		t.Fatalf("no event: %v", err)
	}
	buf := make([]byte, FanotifyReadSize)
	n, err := Read(fan, buf)
	if err != nil {
		t.Fatal(err)
	}
	var ev FanotifyEvent
	if _, err := ParseFanotifyEvent(buf[:n], &ev); err != nil {
		t.Fatal(err)
	}
	defer Close(int(ev.Fd))
	for name, fd := range map[string]int{"fanotify": fan, "inotify": in, "dup": dup, "event fd": int(ev.Fd)} {
		if !fdCloexec(t, fd) {
			t.Errorf("%s fd %d is not close-on-exec", name, fd)
		}
	}
}

func TestPidfd(t *testing.T) {
	pidfd, err := PidfdOpen(Getpid(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(pidfd)
	if pid, err := PidfdPid(pidfd); err != nil || pid != Getpid() {
		t.Errorf("PidfdPid = %d, %v; want %d", pid, err, Getpid())
	}
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child, err := PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(child)
	cmd.Wait()
	if pid, err := PidfdPid(child); err != nil || pid != -1 {
		t.Errorf("PidfdPid of a reaped child = %d, %v; want -1", pid, err)
	}
	if _, err := PidfdPid(0); err == nil { // stdin is no pidfd
		t.Error("PidfdPid(0) succeeded")
	}
}

// TestErrors: errors name the call and its arguments and wrap the errno.
func TestErrors(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	fan, err := FanotifyInit(FAN_CLASS_CONTENT|FAN_NONBLOCK, O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(fan)
	in, err := InotifyInit(0)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(in)
	_, initErr := FanotifyInit(FAN_CLASS_CONTENT|FAN_REPORT_FID, O_RDONLY)
	_, readErr := Read(fan, make([]byte, 4096))
	_, shortErr := Read(fan, make([]byte, 4)) // EAGAIN comes first: the queue is empty
	_, watchErr := InotifyAddWatch(in, filepath.Join(dir, "missing"), IN_CREATE)
	_, handleErr := OpenByHandleAt(fan, FileHandle{Type: 1, Bytes: make([]byte, 200)}, O_RDONLY)
	for _, tc := range []struct {
		err   error
		errno syscall.Errno
		msg   string
	}{
		{FanotifyMark(fan, FAN_MARK_REMOVE|FAN_MARK_FILESYSTEM, FAN_OPEN_PERM, AT_FDCWD, dir), syscall.ENOENT,
			"fanotify_mark(REMOVE|FILESYSTEM, OPEN_PERM, " + dir + "): no such file or directory"},
		{FanotifyMark(fan, FAN_MARK_ADD, FAN_OPEN_PERM|FAN_ONDIR, 12345, ""), syscall.EBADF,
			"fanotify_mark(ADD, OPEN_PERM|ONDIR, fd 12345): bad file descriptor"},
		{initErr, syscall.EINVAL, "fanotify_init(CLASS_CONTENT|CLOEXEC|REPORT_FID, 0x"},
		{WriteResponse(fan, 12345, FAN_ALLOW), syscall.ENOENT,
			"write(fanotify response fd 12345, ALLOW): no such file or directory"},
		{readErr, syscall.EAGAIN, "read(fd " + strconv.Itoa(fan) + "): resource temporarily unavailable"},
		{shortErr, syscall.EAGAIN, "read(fd"},
		{watchErr, syscall.ENOENT, "inotify_add_watch(" + dir + "/missing, CREATE): no such file or directory"},
		{InotifyRmWatch(in, 77), syscall.EINVAL, "inotify_rm_watch(wd 77): invalid argument"},
		{handleErr, syscall.EINVAL, "open_by_handle_at(1:"},
		{Unmount(filepath.Join(dir, "nothing"), 0), syscall.ENOENT, "umount2(" + dir + "/nothing, 0x0)"},
	} {
		if tc.err == nil {
			t.Errorf("no error, want %q", tc.msg)
			continue
		}
		if !errors.Is(tc.err, tc.errno) {
			t.Errorf("%v does not wrap %v", tc.err, tc.errno)
		}
		if !strings.Contains(tc.err.Error(), tc.msg) {
			t.Errorf("error %q, want it to contain %q", tc.err, tc.msg)
		}
		var se *os.SyscallError
		if !errors.As(tc.err, &se) {
			t.Errorf("%v is not an *os.SyscallError", tc.err)
		}
	}
}

// TestWriteResponseNoAllocs answers 11 blocked opens; the answers must not allocate. The
// accessors allocate only before they block (path conversion) and not after.
func TestWriteResponseNoAllocs(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	file := filepath.Join(dir, "f")
	writeFile(t, file, nil)
	g := newGroup(t, FAN_CLASS_CONTENT, O_RDONLY)
	g.mark(t, FAN_MARK_ADD, FAN_OPEN_PERM, file)
	const n = 11
	done := make(chan error, n)
	for range n {
		go func() {
			fd, err := Open(file, O_RDONLY, 0)
			if err == nil {
				err = Close(fd)
			}
			done <- err
		}()
	}
	var fds []int32
	for len(fds) < n {
		err := ParseFanotify(g.read(t), func(ev *FanotifyEvent) error {
			fds = append(fds, ev.Fd)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	i := 0
	allocs := testing.AllocsPerRun(n-1, func() {
		if err := WriteResponse(g.fd, fds[i], FAN_ALLOW); err != nil {
			panic(err)
		}
		i++
	})
	for _, fd := range fds {
		Close(int(fd))
	}
	for range n {
		if err := wait(t, done); err != nil {
			t.Error(err)
		}
	}
	if allocs != 0 {
		t.Errorf("WriteResponse allocates %.1f times per call", allocs)
	}
}

// A wait on a descriptor and a Waker's Fd returns when the descriptor is readable or the
// Waker wakes, whichever comes first; a Wake after Close does nothing.
func TestWaker(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	w, err := NewWaker()
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		readable bool
		err      error
	}
	poll := func() <-chan result {
		c := make(chan result, 1)
		go func() {
			var ready [2]bool
			err := PollReadable([]int{p[0], w.Fd()}, ready[:])
			c <- result{ready[0] && !ready[1], err} // woken: not readable, as the reader sees it
		}()
		return c
	}
	wait := func(c <-chan result, what string) result {
		t.Helper()
		select {
		case r := <-c:
			return r
		case <-time.After(5 * time.Second):
			t.Fatalf("PollReadable still blocked after %s", what)
		}
		return result{}
	}
	c := poll()
	time.Sleep(10 * time.Millisecond)
	unix.Write(p[1], []byte("x"))
	if r := wait(c, "a write"); !r.readable || r.err != nil {
		t.Errorf("after a write: readable %v, %v", r.readable, r.err)
	}
	var b [1]byte
	unix.Read(p[0], b[:])
	c = poll()
	time.Sleep(10 * time.Millisecond)
	w.Wake()
	if r := wait(c, "Wake"); r.readable || r.err != nil {
		t.Errorf("after Wake: readable %v, %v", r.readable, r.err)
	}
	w.Wake() // counts, never blocks
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.Wake() // after Close: nothing
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// NewUnpolledFile keeps the descriptor non-blocking and out of the netpoller: a RawConn read
// callback sees EAGAIN itself.
func TestNewUnpolledFile(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[1])
	f, err := NewUnpolledFile(p[0], "pipe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if fl, _ := unix.FcntlInt(uintptr(p[0]), unix.F_GETFL, 0); fl&unix.O_NONBLOCK == 0 {
		t.Error("the descriptor is blocking")
	}
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var rerr error
	if err := rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, rerr = unix.Read(int(fd), b[:])
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if rerr != unix.EAGAIN {
		t.Errorf("read of an empty pipe: %v, want EAGAIN", rerr)
	}
	// Unpolled: a deadline cannot be set (only the poller implements them).
	if err := f.SetReadDeadline(time.Now()); err == nil {
		t.Error("SetReadDeadline succeeded: the file is in the netpoller")
	}
}

func TestPollReadable(t *testing.T) {
	var a, b [2]int
	for _, p := range []*[2]int{&a, &b} {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		p[0], p[1] = fds[0], fds[1]
	}
	defer func() {
		for _, fd := range []int{a[0], a[1], b[0], b[1]} {
			if fd >= 0 {
				syscall.Close(fd)
			}
		}
	}()
	ready := make([]bool, 2)
	if err := PollReadable([]int{a[0]}, ready); err == nil {
		t.Fatal("mismatched lengths accepted")
	}
	done := make(chan error, 1)
	go func() { done <- PollReadable([]int{a[0], b[0]}, ready) }()
	select {
	case err := <-done:
		t.Fatalf("returned with nothing to read: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	syscall.Write(b[1], []byte("x"))
	if err := <-done; err != nil || ready[0] || !ready[1] {
		t.Fatalf("PollReadable = %v, ready %v; want only the second", err, ready)
	}
	syscall.Close(a[1]) // a hang-up counts
	a[1] = -1
	if err := PollReadable([]int{a[0], b[0]}, ready); err != nil || !ready[0] || !ready[1] {
		t.Fatalf("after a hang-up: %v, ready %v", err, ready)
	}
	if err := PollReadable([]int{1 << 20}, ready[:1]); err != nil || !ready[0] {
		t.Fatalf("a descriptor that is not open: %v, ready %v; want it ready (reading it says EBADF)", err, ready[:1])
	}
	// A Waker's Fd is readable once woken, and no longer once drained.
	w, err := NewWaker()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Wake()
	if err := PollReadable([]int{w.Fd()}, ready[:1]); err != nil || !ready[0] {
		t.Fatalf("woken Waker: %v, ready %v", err, ready[:1])
	}
	w.Drain()
	wready := make([]bool, 1)
	go func() { done <- PollReadable([]int{w.Fd()}, wready) }()
	select {
	case err := <-done:
		t.Fatalf("a drained Waker is still readable: %v %v", err, wready)
	case <-time.After(50 * time.Millisecond):
	}
	w.Wake()
	if err := <-done; err != nil || !wready[0] {
		t.Fatalf("woken again: %v, ready %v", err, wready)
	}
}

// TestPreadAndMtime: Pread reads at an offset without moving the descriptor's offset, and says
// 0 at the end; Fstat's Mtime is the file's modification time to the nanosecond.
func TestPreadAndMtime(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	writeFile(t, file, []byte("0123456789"))
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 678901234, time.UTC)
	if err := os.Chtimes(file, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	buf := make([]byte, 4)
	if n, err := Pread(fd, buf, 3); n != 4 || err != nil || string(buf) != "3456" {
		t.Fatalf("Pread at 3: %d %v %q", n, err, buf)
	}
	if n, err := Pread(fd, buf, 8); n != 2 || err != nil || string(buf[:n]) != "89" {
		t.Fatalf("Pread at 8: %d %v %q", n, err, buf[:n])
	}
	if n, err := Pread(fd, buf, 10); n != 0 || err != nil {
		t.Fatalf("Pread at the end: %d %v", n, err)
	}
	if off, _ := f.Seek(0, 1); off != 0 {
		t.Fatalf("Pread moved the file offset to %d", off)
	}
	if _, err := Pread(-1, buf, 0); !errors.Is(err, syscall.EBADF) || !strings.Contains(err.Error(), "pread(fd -1") {
		t.Fatalf("Pread of a bad fd: %v", err)
	}
	st, err := Fstat(fd)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mtime != mtime.UnixNano() {
		t.Fatalf("Mtime %d, want %d", st.Mtime, mtime.UnixNano())
	}
}

// TestPollSetWaitFor: WaitFor returns false, with no slot ready, once its timeout passes with
// nothing to read (not before it, and a timeout below a millisecond is not rounded up to
// one), and true with the readable slot as Wait does.
func TestPollSetWaitFor(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[0])
	defer syscall.Close(fds[1])
	var ps PollSet
	ready := []bool{true}
	start := time.Now()
	ok, err := ps.WaitFor(fds[:1], ready, 30*time.Millisecond)
	if took := time.Since(start); err != nil || ok || ready[0] || took < 30*time.Millisecond || took > 5*time.Second {
		t.Fatalf("WaitFor with nothing to read = %v, %v, ready %v after %v; want false after 30 ms", ok, err, ready, took)
	}
	// A fraction of a millisecond is not rounded up to one (the FID reader waits until the
	// fan-out's next flush is due): the quickest of 20 waits of 200 µs takes less than 1 ms,
	// and none less than 200 µs.
	quickest := time.Hour
	for range 20 {
		start := time.Now()
		ok, err := ps.WaitFor(fds[:1], ready, 200*time.Microsecond)
		took := time.Since(start)
		if err != nil || ok || took < 200*time.Microsecond {
			t.Fatalf("WaitFor 200 µs with nothing to read = %v, %v after %v; want false after 200 µs", ok, err, took)
		}
		quickest = min(quickest, took)
	}
	if quickest >= time.Millisecond {
		t.Errorf("the quickest of 20 waits of 200 µs took %v: rounded up to a millisecond", quickest)
	}
	// A zero timeout (the event loop's look before it sleeps) reads no clock and does not
	// wait: false at once with nothing to read, whatever is passed in ready.
	ready[0] = true
	start = time.Now()
	if ok, err := ps.WaitFor(fds[:1], ready, 0); err != nil || ok || ready[0] || time.Since(start) > time.Second {
		t.Fatalf("WaitFor 0 with nothing to read = %v, %v, ready %v after %v; want false at once", ok, err, ready, time.Since(start))
	}
	syscall.Write(fds[1], []byte("x"))
	if ok, err := ps.WaitFor(fds[:1], ready, 0); err != nil || !ok || !ready[0] {
		t.Fatalf("WaitFor 0 with a byte to read = %v, %v, ready %v", ok, err, ready)
	}
	if ok, err := ps.WaitFor(fds[:1], ready, time.Hour); err != nil || !ok || !ready[0] {
		t.Fatalf("WaitFor with a byte to read = %v, %v, ready %v", ok, err, ready)
	}
}

// TestFstatTo: FstatTo writes every field of the Stat it is given, as Fstat returns them
// (the Stat starts full of another file's and made-up values), for a file with two links, a
// directory, the root of a mount and a device; and zeroes it on an error.
func TestFstatTo(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	writeFile(t, file, []byte("0123456789"))
	if err := os.Link(file, filepath.Join(dir, "g")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, 0o640); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{file, dir, "/", "/dev/null"} {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		restore := SetStatxNullPath(false) // the path "", as every kernel takes it
		want, err := Fstat(int(f.Fd()))
		restore()
		if err != nil {
			t.Fatal(err)
		}
		// A NULL path (Linux 6.11+) and "" (older kernels) give the same Stat.
		for _, null := range []bool{true, false} {
			restore := SetStatxNullPath(null)
			for _, raw := range []bool{false, true} {
				got := Stat{Dev: 1, Ino: 2, Mode: 3, Nlink: 4, Uid: 5, Gid: 6, Size: 7, Rdev: 8, MntID: 9,
					MntIDUnique: !want.MntIDUnique, MountRoot: !want.MountRoot, Ctime: 10, Mtime: 11}
				if err := FstatTo(int(f.Fd()), &got, raw); err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("%s: FstatTo (raw %v, NULL path %v) %+v, Fstat %+v", path, raw, null, got, want)
				}
			}
			if null && kernelAtLeast(6, 11) && !StatxNullPathUsed() {
				t.Errorf("%s: the kernel (6.11+) refused statx's NULL path", path)
			}
			restore()
		}
		f.Close()
	}
	for _, raw := range []bool{false, true} {
		got := Stat{Dev: 1, Ino: 2, MountRoot: true}
		if err := FstatTo(-1, &got, raw); !errors.Is(err, syscall.EBADF) || got != (Stat{}) {
			t.Errorf("FstatTo(-1, raw %v): %v, %+v; want EBADF and a zero Stat", raw, err, got)
		}
	}
	fd, err := Open(file, O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := CloseRaw(fd); err != nil {
		t.Fatal(err)
	}
	if err := CloseRaw(fd); !errors.Is(err, syscall.EBADF) {
		t.Errorf("CloseRaw of a closed descriptor: %v, want EBADF", err)
	}
}

// TestRawSafeFs: only the local filesystems whose statx of an open file and close of a
// read-only descriptor wait for nothing but the CPU and the local disk take raw system calls;
// a filesystem whose calls may wait for a server (FUSE, network filesystems), overlayfs
// (whatever is below it) or one the list does not know do not; /proc's type, read through
// statfs, is not one.
func TestRawSafeFs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fsType int64
		safe   bool
	}{
		{"tmpfs", 0x01021994, true}, {"ext4", 0xef53, true}, {"xfs", 0x58465342, true}, {"btrfs", 0x9123683e, true},
		{"fuse", 0x65735546, false}, {"fuseblk", 0x65735546, false}, {"nfs", 0x6969, false}, {"cifs", 0xff534d42, false},
		{"smb2", 0xfe534d42, false}, {"9p", 0x01021997, false}, {"ceph", 0x00c36400, false}, {"overlayfs", 0x794c7630, false},
		{"ramfs", 0x858458f6, false}, {"proc", 0x9fa0, false}, {"unknown", 0x12345678, false}, {"zero", 0, false},
	} {
		if got := RawSafeFs(tc.fsType); got != tc.safe {
			t.Errorf("%s (%#x): RawSafeFs %v, want %v", tc.name, tc.fsType, got, tc.safe)
		}
	}
	if st, err := Statfs("/proc"); err != nil {
		t.Errorf("statfs /proc: %v", err)
	} else if RawSafeFs(st.Type) {
		t.Errorf("/proc (type %#x): RawSafeFs true", st.Type)
	}
}

// PollRead with a zero timeout and PollReadNow answer at once, and as PollRead with a
// timeout does: not readable, readable, or an error for a descriptor that is not open.
func TestPollReadNow(t *testing.T) {
	polls := []struct {
		name string
		poll func(fd int) (bool, error)
	}{
		{"PollRead(fd, 0)", func(fd int) (bool, error) { return PollRead(fd, 0) }},
		{"PollReadNow", PollReadNow},
		{"PollRead(fd, 1ms)", func(fd int) (bool, error) { return PollRead(fd, time.Millisecond) }},
	}
	for _, p := range polls {
		t.Run(p.name, func(t *testing.T) {
			var fds [2]int
			if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			defer syscall.Close(fds[1])
			start := time.Now()
			if ok, err := p.poll(fds[0]); ok || err != nil {
				t.Errorf("empty pipe: %v, %v; want false, nil", ok, err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("empty pipe: the poll took %v", d)
			}
			syscall.Write(fds[1], []byte("x"))
			if ok, err := p.poll(fds[0]); !ok || err != nil {
				t.Errorf("pipe with a byte: %v, %v; want true, nil", ok, err)
			}
			syscall.Close(fds[0])
			if ok, err := p.poll(fds[0]); ok || !errors.Is(err, syscall.EBADF) {
				t.Errorf("closed descriptor: %v, %v; want false, EBADF", ok, err)
			}
		})
	}
}

// kernelAtLeast reports whether the running kernel's release is major.minor or later.
func kernelAtLeast(major, minor int) bool {
	var u syscall.Utsname
	if syscall.Uname(&u) != nil {
		return false
	}
	var rel []byte
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		rel = append(rel, byte(c))
	}
	var ma, mi int
	if _, err := fmt.Sscanf(string(rel), "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// TestStatxShortAndLongPaths: Statx gives the same answer for a path passed from its stack
// buffer (shorter than 256 bytes) and one copied to the heap (longer), relative to a
// directory descriptor or absolute; a path with a NUL byte is EINVAL either way (never cut
// at the NUL, which would stat another file); a short path allocates nothing.
func TestStatxShortAndLongPaths(t *testing.T) {
	dir := t.TempDir()
	// long is deep enough that its path relative to dir is over 256 bytes too, whatever the
	// length of dir (TMPDIR): both long cases go through the heap.
	long := dir
	for len(long)-len(dir) < 300 {
		long = filepath.Join(long, strings.Repeat("d", 40))
	}
	if err := os.MkdirAll(long, 0o755); err != nil {
		t.Fatal(err)
	}
	// edge is a file in dir whose absolute path is n bytes long.
	edge := func(n int) string { return filepath.Join(dir, strings.Repeat("e", n-len(dir)-1)) }
	for _, p := range []string{filepath.Join(dir, "f"), filepath.Join(long, "f"), edge(255), edge(256)} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	rel := strings.TrimPrefix(filepath.Join(long, "f"), dir+"/")
	if len(rel) < 256 {
		t.Fatalf("the long relative path is %d bytes, want 256 or more", len(rel))
	}
	for _, c := range []struct {
		name  string
		dirfd int
		path  string
	}{
		{"short absolute", AT_FDCWD, filepath.Join(dir, "f")},
		{"short relative", dfd, "f"},
		{"long absolute", AT_FDCWD, filepath.Join(long, "f")},
		{"long relative", dfd, rel},
		{"255 bytes: the longest from the stack", AT_FDCWD, edge(255)},
		{"256 bytes: the shortest from the heap", AT_FDCWD, edge(256)},
	} {
		t.Run(c.name, func(t *testing.T) {
			var want unix.Stat_t
			if err := unix.Fstatat(c.dirfd, c.path, &want, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				t.Fatal(err)
			}
			got, err := Statx(c.dirfd, c.path, AT_SYMLINK_NOFOLLOW)
			if err != nil {
				t.Fatalf("Statx(%q): %v", c.path, err)
			}
			if got.Ino != want.Ino || got.Size != uint64(want.Size) {
				t.Fatalf("Statx(%q) = inode %d size %d, want %d %d", c.path, got.Ino, got.Size, want.Ino, want.Size)
			}
			if _, err := Statx(c.dirfd, c.path+"\x00", AT_SYMLINK_NOFOLLOW); !errors.Is(err, syscall.EINVAL) {
				t.Fatalf("Statx of %q with a NUL after it: %v, want EINVAL", c.path, err)
			}
		})
	}
	// A NUL in the middle of a short path: EINVAL, not the stat of its first half (dir).
	if _, err := Statx(AT_FDCWD, dir+"\x00/f", AT_SYMLINK_NOFOLLOW); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("Statx with a NUL inside: %v, want EINVAL", err)
	}
	short := filepath.Join(dir, "f")
	if n := testing.AllocsPerRun(100, func() { _, _ = Statx(AT_FDCWD, short, AT_SYMLINK_NOFOLLOW) }); n != 0 {
		t.Fatalf("Statx of a short path allocates %v times, want 0", n)
	}
}

// TestOpenForWrite: the lease probe says open for writing exactly while a descriptor or a
// shared writable mapping (its descriptor closed) can write the file, and leaves no lease
// behind: a later open for writing that would wait for a lease's break (O_NONBLOCK: it fails
// with EWOULDBLOCK instead) goes through at once.
func TestOpenForWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, make([]byte, 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	mapFile := func(flags, prot, mapping int) []byte {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd) // the mapping keeps the file: the descriptor is not needed
		b, err := unix.Mmap(fd, 0, 8192, prot, mapping)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	openHeld := func(flags int) func() func() {
		return func() func() {
			fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			return func() { unix.Close(fd) }
		}
	}
	tests := []struct {
		name string
		hold func() (release func()) // what is open while the probe runs
		want bool
	}{
		{"nothing open", func() func() { return func() {} }, false},
		{"read-only descriptor", openHeld(unix.O_RDONLY), false},
		{"write-only descriptor", openHeld(unix.O_WRONLY), true},
		{"shared writable mapping, descriptor closed, page dirtied", func() func() {
			b := mapFile(unix.O_RDWR, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
			b[0] = 0
			return func() { unix.Munmap(b) }
		}, true},
		{"shared read-only mapping", func() func() {
			b := mapFile(unix.O_RDONLY, unix.PROT_READ, unix.MAP_SHARED)
			return func() { unix.Munmap(b) }
		}, false},
		{"private writable mapping (copy on write)", func() func() {
			b := mapFile(unix.O_RDONLY, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
			b[0] = 1
			return func() { unix.Munmap(b) }
		}, false},
	}
	probe, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := tt.hold()
			got, err := OpenForWrite(int(probe.Fd()))
			release()
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("OpenForWrite = %v, want %v", got, tt.want)
			}
			// No lease is left: an open for writing does not have to wait for its break.
			fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatalf("open for writing after the probe: %v (a lease left in place?)", err)
			}
			unix.Close(fd)
			// And once released, the file is not open for writing any more.
			if got, err := OpenForWrite(int(probe.Fd())); err != nil || got {
				t.Fatalf("after release: OpenForWrite = %v, %v; want false", got, err)
			}
		})
	}
}

// TestDeviceWritesSeen: a filesystem's blocks change only through it unless it sits on a loop
// device whose image anyone but root may write: an image root owns and alone may write is
// seen, wherever it is renamed to; the same image given to nobody, made writable by its group
// or by all, or removed, is not; tmpfs (no block device) is.
func TestDeviceWritesSeen(t *testing.T) {
	testenv.RequireRoot(t)
	devOf := func(path string) uint64 {
		st, err := Statx(AT_FDCWD, path, 0)
		if err != nil {
			t.Fatal(err)
		}
		return st.Dev
	}
	if !DeviceWritesSeen(devOf(testenv.Tmpfs(t))) {
		t.Error("tmpfs: not seen")
	}
	mnt, img := testenv.PublicExt4Image(t, 8)
	dev := devOf(mnt)
	for _, step := range []struct {
		name string
		do   func() error
		want bool
	}{
		{"root's image, 0644", func() error { return os.Chmod(img, 0o644) }, true},
		{"nobody's image", func() error { return os.Chown(img, 65534, 65534) }, false},
		{"root's again", func() error { return os.Chown(img, 0, 0) }, true},
		{"writable by all", func() error { return os.Chmod(img, 0o666) }, false},
		{"writable by its group", func() error { return os.Chmod(img, 0o664) }, false},
		{"root's, 0600", func() error { return os.Chmod(img, 0o600) }, true},
		// The kernel names the file the device holds wherever it went, not the path it had.
		{"renamed, a new file at its old path", func() error {
			if err := os.Rename(img, img+".old"); err != nil {
				return err
			}
			return os.WriteFile(img, nil, 0o600)
		}, true},
		{"renamed, and given to nobody", func() error { return os.Chown(img+".old", 65534, 65534) }, false},
		{"root's, removed", func() error {
			return errors.Join(os.Chown(img+".old", 0, 0), os.Remove(img), os.Remove(img+".old"))
		}, false},
	} {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got := DeviceWritesSeen(dev); got != step.want {
			t.Errorf("%s: DeviceWritesSeen = %v, want %v", step.name, got, step.want)
		}
	}
}
