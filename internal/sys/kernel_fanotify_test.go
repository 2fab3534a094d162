package sys_test

import (
	"errors"
	"fmt"
	. "github.com/fsnotifyd/fsnotifyd/internal/sys"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

const fuzzFan = "FuzzParseFanotify"

// TestKernelBatchedCreates is the opcoder0/fanotify bug: 20 creates before one read must give
// 20 events with the right names (a parser that steps by name length instead of event_len, or
// reads only the first event, gets 1).
func TestKernelBatchedCreates(t *testing.T) {
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
			g := newGroup(t, FAN_CLASS_NOTIF|FAN_REPORT_DFID_NAME, O_RDONLY)
			g.mark(t, FAN_MARK_ADD, FAN_CREATE, dir)
			const n = 20
			for i := range n {
				writeFile(t, filepath.Join(dir, fmt.Sprintf("file-%02d", i)), nil)
			}
			buf := g.read(t) // one read
			evs := g.parseAnswer(t, buf, FAN_ALLOW)
			if len(evs) != n {
				t.Fatalf("one read of %d bytes gave %d events, want %d", len(buf), len(evs), n)
			}
			for i, ev := range evs {
				if ev.Mask != FAN_CREATE || ev.Fd != FAN_NOFD || ev.Pid != int32(Getpid()) {
					t.Errorf("event %d: mask %s fd %d pid %d", i, EventMaskString(ev.Mask), ev.Fd, ev.Pid)
				}
				if ev.Records != 1<<FAN_EVENT_INFO_TYPE_DFID_NAME {
					t.Errorf("event %d: records %b, want only DFID_NAME", i, ev.Records)
				}
				checkFID(t, fmt.Sprintf("event %d", i), ev.DFID, dir, fmt.Sprintf("file-%02d", i))
			}
			saveSeed(t, fuzzFan, "kernel-dfid-name-20-creates-"+tc.name, buf)
		})
	}
}

// TestKernelFanotifyQueued: FanotifyQueued counts the events queued, not their bytes (the
// kernel's FIONREAD gives FAN_EVENT_METADATA_LEN per event, whatever its info records), and
// a read takes them off the count.
func TestKernelFanotifyQueued(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	g := newGroup(t, FAN_CLASS_NOTIF|FAN_REPORT_DFID_NAME, O_RDONLY)
	g.mark(t, FAN_MARK_ADD, FAN_CREATE, dir)
	if n, err := FanotifyQueued(g.fd); err != nil || n != 0 {
		t.Fatalf("empty queue: FanotifyQueued = %d, %v; want 0", n, err)
	}
	const n = 7
	for i := range n {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("a-longer-name-%02d", i)), nil)
	}
	if got, err := FanotifyQueued(g.fd); err != nil || got != n {
		t.Fatalf("FanotifyQueued = %d, %v; want %d", got, err, n)
	}
	buf := make([]byte, FAN_EVENT_METADATA_LEN+64) // room for one event
	if _, err := Read(g.fd, buf); err != nil {
		t.Fatal(err)
	}
	if got, err := FanotifyQueued(g.fd); err != nil || got != n-1 {
		t.Fatalf("after reading one: FanotifyQueued = %d, %v; want %d", got, err, n-1)
	}
}

// TestKernelFdEvents: fd-mode events on a directory mark with FAN_EVENT_ON_CHILD; event fds
// resolve to the file, and with FAN_REPORT_PIDFD each event carries a pidfd of this process.
// Fd-mode groups never see FAN_ONDIR in an event mask (the kernel reports it to FID groups
// only): the fd tells a directory apart.
func TestKernelFdEvents(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tc := range []struct {
		name  string
		flags uint
	}{
		{"plain", 0},
		{"pidfd", FAN_REPORT_PIDFD},
		{"tid", FAN_REPORT_TID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := testenv.Tmpfs(t)
			file := filepath.Join(dir, "f")
			writeFile(t, file, []byte("hello"))
			g := newGroup(t, FAN_CLASS_NOTIF|tc.flags, O_RDONLY)
			g.mark(t, FAN_MARK_ADD, FAN_OPEN|FAN_ACCESS|FAN_MODIFY|FAN_CLOSE|FAN_EVENT_ON_CHILD|FAN_ONDIR, dir)

			runtime.LockOSThread() // so that FAN_REPORT_TID reports this thread
			tid := Gettid()
			writeFile(t, file, []byte("hello, world"))
			if _, err := os.ReadFile(file); err != nil {
				t.Fatal(err)
			}
			if _, err := os.ReadDir(dir); err != nil {
				t.Fatal(err)
			}
			runtime.UnlockOSThread()

			var all []byte
			masks := map[string]uint64{}
			for _, buf := range g.readQuiet(t) {
				all = append(all, buf...)
				// Check fds and pidfds before parseAnswer closes them.
				err := ParseFanotify(buf, func(ev *FanotifyEvent) error {
					if ev.Fd < 0 {
						return fmt.Errorf("fd %d", ev.Fd)
					}
					p, err := FdPath(int(ev.Fd))
					if err != nil {
						return err
					}
					masks[p] |= ev.Mask
					wantPid := int32(Getpid())
					if tc.flags&FAN_REPORT_TID != 0 {
						wantPid = int32(tid)
					}
					if ev.Pid != wantPid {
						return fmt.Errorf("%s: pid %d, want %d", EventMaskString(ev.Mask), ev.Pid, wantPid)
					}
					if tc.flags&FAN_REPORT_PIDFD != 0 {
						if !ev.Records.Has(FAN_EVENT_INFO_TYPE_PIDFD) {
							return fmt.Errorf("no pidfd record")
						}
						pid, err := PidfdPid(int(ev.Pidfd))
						if err != nil {
							return err
						}
						if pid != Getpid() {
							return fmt.Errorf("pidfd of pid %d, want %d", pid, Getpid())
						}
					} else if ev.Records != 0 {
						return fmt.Errorf("records %b, want none", ev.Records)
					}
					return nil
				})
				if err != nil {
					t.Error(err)
				}
				g.parseAnswer(t, buf, FAN_ALLOW)
			}
			want := map[string]uint64{
				file: FAN_OPEN | FAN_ACCESS | FAN_MODIFY | FAN_CLOSE_WRITE | FAN_CLOSE_NOWRITE,
				dir:  FAN_OPEN | FAN_ACCESS | FAN_CLOSE_NOWRITE, // readdir is an access; no ONDIR bit
			}
			for p, m := range want {
				if masks[p] != m {
					t.Errorf("%s: events %s, want %s", p, EventMaskString(masks[p]), EventMaskString(m))
				}
			}
			if len(masks) != len(want) {
				t.Errorf("events on %v, want only %s and %s", masks, file, dir)
			}
			saveSeed(t, fuzzFan, "kernel-fd-events-"+tc.name, all)
		})
	}
}

// TestKernelFdError: with FAN_REPORT_FD_ERROR, an event fd the kernel cannot open is -errno.
// Event fds opened O_RDWR on a read-only mount fail with EROFS. (O_WRONLY on a directory does
// not fail: the kernel opens event fds with dentry_open, which skips open(2)'s EISDIR check.)
func TestKernelFdError(t *testing.T) {
	testenv.RequireRoot(t)
	if err := Require(FeatureReportFDError); err != nil {
		t.Skip(err)
	}
	dir := testenv.Tmpfs(t)
	file := filepath.Join(dir, "f")
	writeFile(t, file, nil)
	if err := Mount("", dir, "", MS_REMOUNT|MS_BIND|MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	g := newGroup(t, FAN_CLASS_NOTIF|FAN_REPORT_FD_ERROR, O_RDWR)
	g.mark(t, FAN_MARK_ADD, FAN_OPEN, file)
	if _, err := os.ReadFile(file); err != nil {
		t.Fatal(err)
	}
	buf := g.read(t)
	evs := g.parseAnswer(t, buf, FAN_ALLOW)
	if len(evs) != 1 || evs[0].Mask != FAN_OPEN || evs[0].Fd != -int32(syscall.EROFS) {
		t.Fatalf("events %+v, want one OPEN with fd -EROFS (%d)", evs, -int32(syscall.EROFS))
	}
	saveSeed(t, fuzzFan, "kernel-fd-error-erofs", buf)
}

// TestKernelPermission: FAN_OPEN_PERM allow and deny, the deny's EPERM reaching the opener;
// FAN_DENY_ERRNO is refused (EINVAL) to a content group.
func TestKernelPermission(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	file := filepath.Join(dir, "f")
	writeFile(t, file, []byte("x"))
	g := newGroup(t, FAN_CLASS_CONTENT|FAN_REPORT_PIDFD, O_RDONLY)
	g.mark(t, FAN_MARK_ADD, FAN_OPEN_PERM, file)
	open := func() error {
		f, err := os.Open(file)
		if err == nil {
			f.Close()
		}
		return err
	}
	for _, tc := range []struct {
		name     string
		response uint32
		want     error
	}{
		{"allow", FAN_ALLOW, nil},
		{"deny", FAN_DENY, syscall.EPERM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := async(open)
			buf := g.read(t)
			evs := g.parseAnswer(t, buf, tc.response)
			if len(evs) != 1 || evs[0].Mask != FAN_OPEN_PERM || !evs[0].Records.Has(FAN_EVENT_INFO_TYPE_PIDFD) {
				t.Errorf("events %+v, want one OPEN_PERM with a pidfd", evs)
			}
			if err := wait(t, done); !errors.Is(err, tc.want) && err != tc.want {
				t.Errorf("open: %v, want %v", err, tc.want)
			}
			saveSeed(t, fuzzFan, "kernel-open-perm-pidfd-"+tc.name, buf)
		})
	}
	t.Run("deny errno refused", func(t *testing.T) {
		done := async(open)
		buf := g.read(t)
		err := ParseFanotify(buf, func(ev *FanotifyEvent) error {
			defer Close(int(ev.Fd))
			defer Close(int(ev.Pidfd))
			werr := WriteResponse(g.fd, ev.Fd, FAN_DENY_ERRNO(syscall.EIO))
			// Answer for real whatever happened.
			if err := WriteResponse(g.fd, ev.Fd, FAN_ALLOW); err != nil {
				t.Error(err)
			}
			if !errors.Is(werr, syscall.EINVAL) {
				t.Errorf("FAN_DENY_ERRNO from a content group: %v, want EINVAL", werr)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := wait(t, done); err != nil {
			t.Errorf("open: %v, want success", err)
		}
	})
	t.Run("answer twice", func(t *testing.T) {
		done := async(open)
		evs := g.parseAnswer(t, g.read(t), FAN_ALLOW)
		if err := wait(t, done); err != nil {
			t.Fatal(err)
		}
		err := WriteResponse(g.fd, evs[0].Fd, FAN_ALLOW)
		if !errors.Is(err, syscall.ENOENT) {
			t.Errorf("second answer: %v, want ENOENT", err)
		}
	})
}

// TestKernelPreAccess: FAN_PRE_ACCESS on a loop ext4 gives RANGE records for reads and writes;
// FAN_DENY_ERRNO(EIO) from a pre-content group reaches the reader. The range is the accessed
// byte range widened to whole pages (verified on 6.18: a 10-byte read at 1000 reports
// [0, +4096); 10000 bytes at 100 report [0, +12288)).
func TestKernelPreAccess(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Ext4(t, 16)
	if err := RequirePreAccess(dir); err != nil {
		t.Skip(err)
	}
	file := filepath.Join(dir, "data")
	writeFile(t, file, make([]byte, 64<<10))
	g := newGroup(t, FAN_CLASS_PRE_CONTENT|FAN_REPORT_PIDFD, O_RDONLY)
	g.mark(t, FAN_MARK_ADD, FAN_PRE_ACCESS, file)
	// The file must be opened after the mark exists: the kernel decides at open whether a file
	// can ever produce pre-content events (FMODE_FSNOTIFY_HSM). Only the accessor goroutines
	// touch it.
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tc := range []struct {
		name      string
		access    func() error
		off, size uint64
		response  uint32
		want      error
	}{
		{"read", func() error { _, err := f.ReadAt(make([]byte, 4096), 8192); return err }, 8192, 4096, FAN_ALLOW, nil},
		{"unaligned read", func() error { _, err := f.ReadAt(make([]byte, 10000), 100); return err }, 100, 10000,
			FAN_ALLOW, nil},
		{"write", func() error { _, err := f.WriteAt(make([]byte, 100), 5000); return err }, 5000, 100, FAN_ALLOW, nil},
		{"read denied EIO", func() error { _, err := f.ReadAt(make([]byte, 10), 0); return err }, 0, 10,
			FAN_DENY_ERRNO(syscall.EIO), syscall.EIO},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := async(tc.access)
			buf := g.read(t)
			evs := g.parseAnswer(t, buf, tc.response)
			if len(evs) != 1 {
				t.Fatalf("%d events, want 1: %+v", len(evs), evs)
			}
			ev := evs[0]
			if ev.Mask != FAN_PRE_ACCESS || !ev.Records.Has(FAN_EVENT_INFO_TYPE_RANGE) ||
				!ev.Records.Has(FAN_EVENT_INFO_TYPE_PIDFD) {
				t.Errorf("event %s records %b, want PRE_ACCESS with RANGE and PIDFD", EventMaskString(ev.Mask), ev.Records)
			}
			page := uint64(os.Getpagesize())
			start, end := tc.off/page*page, (tc.off+tc.size+page-1)/page*page
			if ev.RangeOffset != start || ev.RangeCount != end-start {
				t.Errorf("range [%d, +%d), want [%d, +%d) (access [%d, +%d) in whole pages)",
					ev.RangeOffset, ev.RangeCount, start, end-start, tc.off, tc.size)
			}
			if err := wait(t, done); !errors.Is(err, tc.want) && err != tc.want {
				t.Errorf("access: %v, want %v", err, tc.want)
			}
			saveSeed(t, fuzzFan, "kernel-pre-access-range-pidfd-"+tc.name, buf)
		})
	}
}

// TestKernelFID: FID-mode records on inode, directory and filesystem marks, including
// FAN_RENAME's OLD/NEW_DFID_NAME, compared with name_to_handle_at and statfs.
func TestKernelFID(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Ext4(t, 16)
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, d := range []string{a, b} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("fid", func(t *testing.T) {
		file := filepath.Join(a, "fid-file")
		writeFile(t, file, nil)
		g := newGroup(t, FAN_CLASS_NOTIF|FAN_REPORT_FID, O_RDONLY)
		g.mark(t, FAN_MARK_ADD, FAN_ATTRIB|FAN_MODIFY|FAN_CLOSE_WRITE|FAN_DELETE_SELF, file)
		want := handleOf(t, file)
		writeFile(t, file, []byte("x"))
		if err := os.Chmod(file, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(file); err != nil {
			t.Fatal(err)
		}
		var all []byte
		var mask uint64
		for _, buf := range g.readQuiet(t) {
			all = append(all, buf...)
			for _, ev := range g.parseAnswer(t, buf, FAN_ALLOW) {
				mask |= ev.Mask
				if ev.Records != 1<<FAN_EVENT_INFO_TYPE_FID || string(ev.FID.Handle.Bytes) != string(want.Bytes) {
					t.Errorf("%s: records %b handle %v, want FID %v", EventMaskString(ev.Mask), ev.Records, ev.FID.Handle, want)
				}
			}
		}
		if w := FAN_ATTRIB | FAN_MODIFY | FAN_CLOSE_WRITE | FAN_DELETE_SELF; mask != w {
			t.Errorf("events %s, want %s", EventMaskString(mask), EventMaskString(w))
		}
		saveSeed(t, fuzzFan, "kernel-fid-inode", all)
	})
	t.Run("dfid", func(t *testing.T) {
		g := newGroup(t, FAN_CLASS_NOTIF|FAN_REPORT_DIR_FID, O_RDONLY)
		g.mark(t, FAN_MARK_ADD, FAN_CREATE|FAN_DELETE|FAN_ONDIR, a)
		writeFile(t, filepath.Join(a, "x"), nil)
		if err := os.Mkdir(filepath.Join(a, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		buf := g.read(t)
		evs := g.parseAnswer(t, buf, FAN_ALLOW)
		if len(evs) != 2 || evs[0].Mask != FAN_CREATE || evs[1].Mask != FAN_CREATE|FAN_ONDIR {
			t.Fatalf("events %+v, want CREATE and CREATE|ONDIR", evs)
		}
		for _, ev := range evs {
			if ev.Records != 1<<FAN_EVENT_INFO_TYPE_DFID {
				t.Errorf("records %b, want DFID", ev.Records)
			}
			checkFID(t, "dfid", ev.DFID, a, "")
		}
		saveSeed(t, fuzzFan, "kernel-dfid-create", buf)
	})
	t.Run("rename", func(t *testing.T) {
		g := newGroup(t, FAN_CLASS_NOTIF|FAN_REPORT_DFID_NAME_TARGET, O_RDONLY)
		g.mark(t, FAN_MARK_ADD|FAN_MARK_FILESYSTEM, FAN_RENAME|FAN_MOVE|FAN_CREATE|FAN_DELETE|FAN_ATTRIB|FAN_ONDIR, dir)
		src, dst := filepath.Join(a, "old-name"), filepath.Join(b, "a-much-longer-new-name")
		writeFile(t, src, nil)
		if err := os.Rename(src, dst); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(a, 0o700); err != nil { // ATTRIB on a marked dir's self: name "."
			t.Fatal(err)
		}
		if err := os.Remove(dst); err != nil {
			t.Fatal(err)
		}
		var all []byte
		var got []FanotifyEvent
		for _, buf := range g.readQuiet(t) {
			all = append(all, buf...)
			got = append(got, g.parseAnswer(t, buf, FAN_ALLOW)...)
		}
		var sawRename, sawSelf bool
		for _, ev := range got {
			switch {
			case ev.Mask == FAN_RENAME:
				sawRename = true
				want := InfoSet(1<<FAN_EVENT_INFO_TYPE_OLD_DFID_NAME | 1<<FAN_EVENT_INFO_TYPE_NEW_DFID_NAME |
					1<<FAN_EVENT_INFO_TYPE_FID)
				if ev.Records != want {
					t.Errorf("rename records %b, want %b", ev.Records, want)
				}
				checkFID(t, "old", ev.OldDFID, a, "old-name")
				checkFID(t, "new", ev.NewDFID, b, "a-much-longer-new-name")
			case ev.Mask == FAN_ATTRIB|FAN_ONDIR:
				sawSelf = true
				t.Logf("ATTRIB|ONDIR on %s: records %b dfid name %q fid %v", a, ev.Records, ev.DFID.Name, ev.FID.Handle)
			}
		}
		if !sawRename || !sawSelf {
			t.Errorf("saw rename %v, attrib on dir %v; events %+v", sawRename, sawSelf, got)
		}
		saveSeed(t, fuzzFan, "kernel-dfid-name-target-rename", all)
	})
}

// TestKernelFSError: remounting ext4 with "abort" reports FAN_FS_ERROR with an ERROR record
// (ESHUTDOWN, count 1) and a FID record without a handle.
func TestKernelFSError(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Ext4(t, 16) // errors=remount-ro: the abort cannot panic the machine
	g := newGroup(t, FAN_CLASS_NOTIF|FAN_REPORT_FID, O_RDONLY)
	g.mark(t, FAN_MARK_ADD|FAN_MARK_FILESYSTEM, FAN_FS_ERROR, dir)
	if err := Mount("", dir, "", MS_REMOUNT|MS_RDONLY, "abort"); err != nil {
		t.Skipf("cannot abort ext4: %v", err)
	}
	buf := g.read(t)
	evs := g.parseAnswer(t, buf, FAN_ALLOW)
	if len(evs) != 1 {
		t.Fatalf("%d events, want 1: %+v", len(evs), evs)
	}
	ev := evs[0]
	if ev.Mask != FAN_FS_ERROR || ev.Records != 1<<FAN_EVENT_INFO_TYPE_ERROR|1<<FAN_EVENT_INFO_TYPE_FID {
		t.Errorf("event %s records %b, want FS_ERROR with ERROR and FID", EventMaskString(ev.Mask), ev.Records)
	}
	if ev.Error != int32(syscall.ESHUTDOWN) || ev.ErrorCount != 1 {
		t.Errorf("error %d count %d, want ESHUTDOWN (%d) count 1", ev.Error, ev.ErrorCount, syscall.ESHUTDOWN)
	}
	if ev.FID.Fsid != fsidOf(t, dir) || len(ev.FID.Handle.Bytes) != 0 {
		t.Errorf("fid %+v, want fsid %v and no handle", ev.FID, fsidOf(t, dir))
	}
	t.Logf("FS_ERROR fid handle type %#x", ev.FID.Handle.Type)
	saveSeed(t, fuzzFan, "kernel-fs-error-abort", buf)
}

// TestKernelMount: FAN_REPORT_MNT on a private mount namespace: attach and detach events carry
// the unique mount id statx reports.
func TestKernelMount(t *testing.T) {
	testenv.RequireRoot(t)
	if err := Require(FeatureReportMnt); err != nil {
		t.Skip(err)
	}
	target := t.TempDir()
	type result struct {
		buf   []byte
		mntID uint64
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		// This thread moves to a new mount namespace and is never unlocked: it exits with the
		// goroutine, and the namespace and its mount die with it.
		runtime.LockOSThread()
		r := func() (r result) {
			if r.err = Unshare(CLONE_NEWNS); r.err != nil {
				return
			}
			if r.err = Mount("none", "/", "", MS_REC|MS_PRIVATE, ""); r.err != nil {
				return
			}
			fd, err := FanotifyInit(FAN_CLASS_NOTIF|FAN_REPORT_MNT|FAN_NONBLOCK, O_RDONLY)
			if err != nil {
				r.err = err
				return
			}
			defer Close(fd)
			if r.err = FanotifyMark(fd, FAN_MARK_ADD|FAN_MARK_MNTNS, FAN_MNT_ATTACH|FAN_MNT_DETACH,
				AT_FDCWD, "/proc/thread-self/ns/mnt"); r.err != nil {
				return
			}
			if r.err = Mount("fsnotifyd-test", target, "tmpfs", 0, "size=1m"); r.err != nil {
				return
			}
			st, err := Statx(AT_FDCWD, target, 0)
			if err != nil {
				r.err = err
				return
			}
			r.mntID = st.MntID
			if r.err = Unmount(target, 0); r.err != nil {
				return
			}
			if _, r.err = PollRead(fd, eventTimeout); r.err != nil {
				return
			}
			buf := make([]byte, FanotifyReadSize)
			n, err := Read(fd, buf)
			r.buf, r.err = buf[:n], err
			return
		}()
		ch <- r
	}()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	g := &group{fd: -1}
	evs := g.parseAnswer(t, r.buf, FAN_ALLOW)
	if len(evs) != 2 || evs[0].Mask != FAN_MNT_ATTACH || evs[1].Mask != FAN_MNT_DETACH {
		t.Fatalf("events %+v, want MNT_ATTACH, MNT_DETACH", evs)
	}
	for _, ev := range evs {
		if ev.Records != 1<<FAN_EVENT_INFO_TYPE_MNT || ev.MntID != r.mntID || ev.Fd != FAN_NOFD {
			t.Errorf("%s: records %b mnt_id %#x fd %d, want MNT %#x", EventMaskString(ev.Mask), ev.Records, ev.MntID,
				ev.Fd, r.mntID)
		}
	}
	saveSeed(t, fuzzFan, "kernel-mnt-attach-detach", r.buf)
}

// TestWriteResponsesBatch: one writev(2) answers several permission events, each with its own
// verdict, in order; an answer the kernel refuses (an fd with no pending event: ENOENT) is
// reported, those before it are taken, and those after it are written by the next call.
func TestWriteResponsesBatch(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	g := newGroup(t, FAN_CLASS_CONTENT, O_RDONLY)
	const n = 3
	want := map[string]error{"f0": nil, "f1": syscall.EPERM, "f2": nil}
	done := map[string]<-chan error{}
	for i := range n {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("f%d", i)), nil)
	}
	g.mark(t, FAN_MARK_ADD, FAN_OPEN_PERM|FAN_EVENT_ON_CHILD, dir)
	for name := range want {
		done[name] = async(func() error {
			f, err := os.Open(filepath.Join(dir, name))
			if err == nil {
				f.Close()
			}
			return err
		})
	}
	// Read until all three wait (they may come in several batches); answer nothing yet.
	fds := map[string]int32{}
	for len(fds) < n {
		err := ParseFanotify(g.read(t), func(ev *FanotifyEvent) error {
			p, err := FdPath(int(ev.Fd))
			if err != nil {
				return err
			}
			fds[filepath.Base(p)] = ev.Fd
			return nil
		})
		if err != nil {
			t.Fatal(err) // the cleanup's close of the group allows whatever waits
		}
	}
	defer func() {
		for _, fd := range fds {
			Close(int(fd))
		}
	}()
	var b ResponseBatch
	b.Add(fds["f0"], FAN_ALLOW)
	b.Add(1<<20, FAN_ALLOW) // no such event
	b.Add(fds["f1"], FAN_DENY)
	b.Add(fds["f2"], FAN_ALLOW)
	got, err := WriteResponses(g.fd, &b, 0)
	if got != 2 || !errors.Is(err, syscall.ENOENT) {
		t.Errorf("first writev: dealt with %d answers, err %v; want 2 (the second refused with ENOENT)", got, err)
	}
	if got, err = WriteResponses(g.fd, &b, 2); got != 2 || err != nil {
		t.Errorf("second writev: dealt with %d answers, err %v; want 2, nil", got, err)
	}
	for name, w := range want {
		if err := wait(t, done[name]); !errors.Is(err, w) && err != w {
			t.Errorf("open %s: %v, want %v", name, err, w)
		}
	}
	// Every answer was taken: none is pending any more.
	if err := WriteResponse(g.fd, fds["f2"], FAN_ALLOW); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("answering f2 again: %v, want ENOENT", err)
	}
}
