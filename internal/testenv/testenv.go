//go:build linux

// Package testenv holds the test helpers shared across fsnotifyd: skipping without root and
// scratch filesystems to put marks on.
//
// Kernel tests put mount, filesystem and permission marks only on the scratch mounts made
// here, never on / or on the filesystem of t.TempDir(): a permission mark there could block
// the test runner, the shell or the rest of the machine.
package testenv

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// RequireRoot skips the test, saying why, unless it runs with euid 0. CI runs as root, so
// these tests run there.
func RequireRoot(t testing.TB) {
	t.Helper()
	if euid := os.Geteuid(); euid != 0 {
		t.Skipf("needs root for real kernel marks and mounts (euid is %d)", euid)
	}
}

// Tmpfs mounts a private 16 MiB tmpfs on a fresh directory under t.TempDir() and returns its
// path; t.Cleanup unmounts it (MNT_DETACH, so a file a failing test left open cannot keep it
// busy). It skips the test without root.
func Tmpfs(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	return mountTmpfs(t, filepath.Join(t.TempDir(), "tmpfs")) // TempDir's removal registered first runs last
}

// TmpfsSize is Tmpfs of sizeMB MiB: for floods of files whose pages stay allocated while
// fanotify event descriptors hold them open after their removal.
func TmpfsSize(t testing.TB, sizeMB int) string {
	t.Helper()
	RequireRoot(t)
	return mountTmpfsSize(t, filepath.Join(t.TempDir(), "tmpfs"), sizeMB)
}

// PublicTmpfs is Tmpfs mounted where every uid can reach it (below a fresh 0755 directory,
// as PublicDir), for tests whose hostile steps run as an unprivileged user. Its root is
// owned by root, mode 0755.
func PublicTmpfs(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	return mountTmpfs(t, filepath.Join(PublicDir(t), "tmpfs"))
}

// PublicRamfs is PublicTmpfs on a ramfs: a filesystem with no export operations (no
// exportable file handles: name_to_handle_at without AT_HANDLE_FID fails with EOPNOTSUPP),
// no size limit and coarse timestamps (no multigrain times: two writes in one clock tick may
// leave mtime and ctime unchanged). Its root is mode 0755, owned by root.
func PublicRamfs(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	dir := filepath.Join(PublicDir(t), "ramfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := sys.Mount("fsnotifyd-test", dir, "ramfs", sys.MS_NOSUID|sys.MS_NODEV, "mode=0755"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unmount(t, dir) })
	makePrivate(t, dir)
	return dir
}

// TmpdirOnTmpfs, for a TestMain, mounts a private tmpfs (mode 1777, as /tmp) on a fresh
// directory and points TMPDIR at it, so that what the package's tests and examples make with
// t.TempDir() or os.MkdirTemp("", ...) is on a filesystem of its own: an example that watches
// a temporary directory (which has no *testing.T for Tmpfs) never marks the machine's own
// filesystem. The returned func unmounts it (MNT_DETACH) and removes the directory. Without
// root, and in a child of RunTestAs (which uses its parent's directories), it changes nothing
// and returns a func that does nothing. The directory's name is short (/tmp/eNNNNNNNNN):
// tests put sockets in t.TempDir(), whose path must fit a socket address (107 bytes).
func TmpdirOnTmpfs() (done func()) {
	if os.Geteuid() != 0 || IsChild() {
		return func() {}
	}
	dir, err := os.MkdirTemp("", "e")
	if err == nil {
		err = sys.Mount("fsnotifyd-test", dir, "tmpfs", sys.MS_NOSUID|sys.MS_NODEV, "mode=1777")
		if err == nil {
			err = sys.Mount("none", dir, "", sys.MS_PRIVATE, "")
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: a tmpfs for TMPDIR: %v\n", err)
		os.Exit(1)
	}
	old, had := os.LookupEnv("TMPDIR")
	os.Setenv("TMPDIR", dir)
	return func() {
		if had {
			os.Setenv("TMPDIR", old)
		} else {
			os.Unsetenv("TMPDIR")
		}
		sys.Unmount(dir, sys.MNT_DETACH|sys.UMOUNT_NOFOLLOW)
		os.Remove(dir)
	}
}

func mountTmpfs(t testing.TB, dir string) string {
	t.Helper()
	return mountTmpfsSize(t, dir, 16)
}

func mountTmpfsSize(t testing.TB, dir string, sizeMB int) string {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := sys.Mount("fsnotifyd-test", dir, "tmpfs", sys.MS_NOSUID|sys.MS_NODEV, fmt.Sprintf("size=%dm,mode=0755", sizeMB)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unmount(t, dir) })
	makePrivate(t, dir)
	return dir
}

// Ext4 makes a sparse image of sizeMB MiB (at least 8), formats it with mkfs.ext4, mounts it
// on a loop device under t.TempDir() and returns the mount point; t.Cleanup unmounts it. Use
// it where tmpfs will not do: FAN_PRE_ACCESS needs a filesystem that opts in to HSM, and
// decodable handles and FS_ERROR need a block filesystem. It skips the test without root and
// fails it without mkfs.ext4 (package e2fsprogs) or mount (util-linux).
//
// The filesystem uses errors=remount-ro, so a test may make it fail (remount with "abort")
// safely. The loop device is attached by "mount -o loop", which sets LO_FLAGS_AUTOCLEAR: the device
// detaches itself when the filesystem is finally released, even after a lazy unmount or a
// crash of the test binary, so no loop device leaks.
func Ext4(t testing.TB, sizeMB int) string {
	t.Helper()
	mnt, _ := ext4In(t, t.TempDir(), sizeMB)
	return mnt
}

// PublicExt4Image is Ext4 with its image and mount point in a directory anyone may enter
// (PublicDir), so that a test can give the image to another user (a desktop user's own image,
// mounted for them). It returns the mount point and the image's path.
func PublicExt4Image(t testing.TB, sizeMB int) (mnt, img string) {
	t.Helper()
	RequireRoot(t)
	return ext4In(t, PublicDir(t), sizeMB)
}

// ext4In is Ext4 with its image and mount point in base.
func ext4In(t testing.TB, base string, sizeMB int) (mnt, img string) {
	t.Helper()
	RequireRoot(t)
	if sizeMB < 8 {
		sizeMB = 8
	}
	for _, tool := range []string{"mkfs.ext4", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (install e2fsprogs and util-linux): %v", tool, err)
		}
	}
	img = filepath.Join(base, "ext4.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	err = f.Truncate(int64(sizeMB) << 20) // sparse: costs no disk until written
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	// errors=remount-ro, in the superblock and as a mount option: a test that makes ext4 report
	// an error (FAN_FS_ERROR) must never meet errors=panic from a distribution default.
	run(t, "mkfs.ext4", "-q", "-F", "-e", "remount-ro", "-L", "fsnotifyd-test", img)
	mnt = filepath.Join(base, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "mount", "-t", "ext4", "-o", "loop,errors=remount-ro", img, mnt)
	t.Cleanup(func() { unmount(t, mnt) })
	makePrivate(t, mnt)
	return mnt, img
}

// makePrivate stops mount events under dir from propagating to peer mounts in other
// namespaces (the host's / is usually shared).
func makePrivate(t testing.TB, dir string) {
	t.Helper()
	if err := sys.Mount("none", dir, "", sys.MS_PRIVATE, ""); err != nil {
		t.Fatal(err)
	}
}

// unmount detaches the mount at dir. It reports but tolerates a mount that is already gone
// (a test may unmount its fixture itself to see IN_UNMOUNT).
func unmount(t testing.TB, dir string) {
	t.Helper()
	err := sys.Unmount(dir, sys.MNT_DETACH|sys.UMOUNT_NOFOLLOW)
	if err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
		t.Errorf("cleanup: %v", err)
	}
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// IsMountPoint reports whether dir is the root of a mount (its mount id differs from its
// parent's), for tests that check their fixture is what they think it is.
func IsMountPoint(t testing.TB, dir string) bool {
	t.Helper()
	st, err := sys.Statx(sys.AT_FDCWD, dir, sys.AT_SYMLINK_NOFOLLOW)
	if err != nil {
		t.Fatal(err)
	}
	parent, err := sys.Statx(sys.AT_FDCWD, filepath.Dir(dir), sys.AT_SYMLINK_NOFOLLOW)
	if err != nil {
		t.Fatal(err)
	}
	return st.MntID != parent.MntID
}

// PublicDir is a fresh directory any uid may search (for sockets that unprivileged helpers
// use), removed at the end of the test. Its path is short, as a unix socket path must be.
func PublicDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "fsn-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// OpenToAll makes the directories above path, up to the system's temporary directory,
// searchable by every user (t.TempDir() makes them 0700), so that a process run as nobody
// reaches path and a denial it meets comes from the test's guard, not from the file mode.
// Call it on paths under the test's own temporary directories only.
func OpenToAll(t testing.TB, path string) {
	t.Helper()
	tmp := filepath.Clean(os.TempDir())
	for d := filepath.Dir(filepath.Clean(path)); strings.HasPrefix(d, tmp+"/"); d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, st.Mode().Perm()|0o055); err != nil {
			t.Fatal(err)
		}
	}
}

// PublicExecutable returns a copy of the current test binary that every uid may run (go test
// builds it in a private directory), removed at the end of the test.
func PublicExecutable(t testing.TB) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "fsnotifyd-child-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, filepath.Base(exe))
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// Nobody is uid and gid 65534 without supplementary groups: who runs the hostile steps of
// adversarial tests.
var Nobody = &syscall.Credential{Uid: 65534, Gid: 65534}

// Sh runs a shell script as cred (nil: as this process's user) in a process of its own —
// whose accesses a backend in this process does not exempt, as it does its own — from /,
// and returns its combined output, trimmed, and its error.
func Sh(cred *syscall.Credential, script string) (string, error) {
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = "/"
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Gated starts `sh -c script` held at a gate — the script must begin with `read go` — so that
// the test can register its pid (an exemption, say) before it does anything, and returns it
// with go, which opens the gate. The process is killed and reaped when the test ends, if it
// has not been waited for.
func Gated(t testing.TB, script string) (cmd *exec.Cmd, open func()) {
	t.Helper()
	cmd = exec.Command("sh", "-c", script)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, func() { io.WriteString(in, "go\n"); in.Close() }
}

// childEnv marks a process started by RunTestAs.
const childEnv = "FSNOTIFYD_TESTENV_CHILD"

// IsChild reports whether this test binary was started by RunTestAs. A test that only makes
// sense as such a child skips otherwise.
func IsChild() bool { return os.Getenv(childEnv) == "1" }

// RunTestAs runs the test named name (an exact top-level test name) of the current test binary
// in a child process with the given uid and gid (no supplementary groups) and returns its
// output. The binary is copied to a world-readable directory first, because go test builds it
// in a private one. The child sees IsChild() == true.
func RunTestAs(t testing.TB, uid, gid uint32, name string) (string, error) {
	t.Helper()
	RequireRoot(t)
	bin := PublicExecutable(t)
	cmd := exec.Command(bin, "-test.run=^"+name+"$", "-test.v", "-test.timeout=1m")
	cmd.Dir = filepath.Dir(bin)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uid, Gid: gid}, // Groups nil: setgroups(0), none kept
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// DeepDir is a directory deeper than PATH_MAX (see DeepTree).
type DeepDir struct {
	// Fd is an O_PATH descriptor of the deepest directory, closed at cleanup.
	Fd int
	// Path is its full path (longer than PATH_MAX: no system call takes it).
	Path string
	// Top is the first directory made below the base directory.
	Top string
}

// DeepTree makes depth directories of nameLen bytes each, one below the other, below dir,
// without ever passing the kernel a path longer than one name, and returns the deepest.
// Twenty-two directories of 200 bytes make a path of some 4,460 bytes below a short dir:
// readlink(/proc/self/fd/N) fails with ENAMETOOLONG for anything inside.
func DeepTree(t testing.TB, dir string, depth, nameLen int) DeepDir {
	t.Helper()
	cur, err := sys.Open(dir, sys.O_PATH|sys.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	d := DeepDir{Path: dir}
	for i := 0; i < depth; i++ {
		name := strings.Repeat(string(rune('a'+i%26)), nameLen)
		if err := os.Mkdir(ProcFd(cur)+"/"+name, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			t.Fatal(err)
		}
		next, err := sys.Openat(cur, name, sys.O_PATH|sys.O_DIRECTORY, 0)
		sys.Close(cur)
		if err != nil {
			t.Fatal(err)
		}
		cur = next
		d.Path += "/" + name
		if i == 0 {
			d.Top = d.Path
		}
	}
	d.Fd = cur
	t.Cleanup(func() { sys.Close(cur) })
	return d
}

// WriteFile writes a file named name in d.
func (d DeepDir) WriteFile(t testing.TB, name, data string) {
	t.Helper()
	if err := os.WriteFile(ProcFd(d.Fd)+"/"+name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Dir is a path to d short enough for any system call: /proc/self/fd/N. A child process
// started with it as its working directory (exec.Cmd.Dir) resolves it between fork and exec,
// through this process's descriptor, and so runs in d itself: its relative opens then name
// files whose path is longer than PATH_MAX, as an attacker's would.
func (d DeepDir) Dir() string { return ProcFd(d.Fd) }

// ProcFd is /proc/self/fd/N.
func ProcFd(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// RemountExt4 unmounts the filesystem Ext4 mounted on mnt and mounts its image there again:
// the kernel then has none of its dentries or inodes cached, as after a reboot, without
// touching any other filesystem (drop_caches would). A file opened by handle afterwards gets a
// dentry disconnected from the tree.
func RemountExt4(t testing.TB, mnt string) {
	t.Helper()
	img := filepath.Join(filepath.Dir(mnt), "ext4.img")
	if _, err := os.Stat(img); err != nil {
		t.Fatalf("RemountExt4(%s): not a mount made by Ext4: %v", mnt, err)
	}
	if err := sys.Unmount(mnt, 0); err != nil {
		t.Fatalf("RemountExt4: %v", err)
	}
	run(t, "mount", "-t", "ext4", "-o", "loop,errors=remount-ro", img, mnt)
	makePrivate(t, mnt)
}

// Stat returns the statx of the file named name in d.
func (d DeepDir) Stat(t testing.TB, name string) sys.Stat {
	t.Helper()
	st, err := sys.Statx(sys.AT_FDCWD, ProcFd(d.Fd)+"/"+name, sys.AT_SYMLINK_NOFOLLOW)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// SocketPair returns the two ends of a non-blocking unix stream socket pair, closed at
// cleanup.
func SocketPair(t testing.TB) (r, w int) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fds[0]); syscall.Close(fds[1]) })
	return fds[0], fds[1]
}

const pidnsEnv = "FSNOTIFYD_TESTENV_PIDNS"

// RunInPidNamespace runs the test named inner (an exact top-level test name) of the current
// test binary as pid 1 of a fresh pid and mount namespace, where a test can choose the next
// pid (ns_last_pid) without touching the machine's, and fails t unless inner passed. start
// starts the command (nil: its Start); a caller whose threads can exit passes one that forks
// from a thread that never does, since the child has Pdeathsig. The inner test begins with
// EnterPidNamespace.
func RunInPidNamespace(t testing.TB, inner string, start func(*exec.Cmd) error) {
	t.Helper()
	RequireRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command(exe, "-test.run=^"+inner+"$", "-test.v", "-test.timeout=2m")
	// GORACE: a race-enabled binary otherwise sleeps 1 s at exit.
	c.Env = append(os.Environ(), pidnsEnv+"="+inner, "GORACE=atexit_sleep_ms=0")
	c.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	var buf strings.Builder
	c.Stdout, c.Stderr = &buf, &buf
	if start == nil {
		start = (*exec.Cmd).Start
	}
	err = start(c)
	if err == nil {
		err = c.Wait()
	}
	out := buf.String()
	if err != nil || !strings.Contains(out, "--- PASS: "+inner) {
		t.Fatalf("%s in a new pid namespace: %v\n%s", inner, err, out)
	}
	t.Logf("%s", out)
}

// EnterPidNamespace skips the test unless RunInPidNamespace started it; then it checks that
// it runs as pid 1 and mounts this namespace's own /proc (mounts made private first), so
// that the pids read there are this namespace's.
func EnterPidNamespace(t testing.TB) {
	t.Helper()
	if os.Getenv(pidnsEnv) != t.Name() {
		t.Skip("runs in a fresh pid namespace, started by testenv.RunInPidNamespace")
	}
	if os.Getpid() != 1 {
		t.Fatalf("pid %d, want 1 in a new pid namespace", os.Getpid())
	}
	if err := sys.Mount("none", "/", "", sys.MS_REC|sys.MS_PRIVATE, ""); err != nil {
		t.Fatal(err)
	}
	if err := sys.Mount("proc", "/proc", "proc", sys.MS_NOSUID|sys.MS_NODEV|sys.MS_NOEXEC, ""); err != nil {
		t.Fatal(err)
	}
}

// OpenFDs counts this process's open descriptors (a test's leak check).
func OpenFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// Stop sends pid SIGSTOP and returns once every thread of it is stopped. kill(2) returns
// before the stop takes effect: the kernel wakes one thread to take the signal, and only
// that thread, once it runs, stops the others; until then another thread (a kernel event's
// reader) goes on, and may read and answer an event made after the kill. On a busy CPU that
// took long enough for a test's next open to be answered by a "stopped" guard.
func Stop(t testing.TB, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP to %d: %v", pid, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !Stopped(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d not stopped 10 s after SIGSTOP", pid)
		}
		time.Sleep(time.Millisecond)
	}
}

// Stopped reports whether every thread of pid is stopped (state T or t in its stat).
func Stopped(pid int) bool {
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + task.Name() + "/stat")
		if err != nil {
			return false
		}
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || i+2 >= len(s) || (s[i+2] != 'T' && s[i+2] != 't') {
			return false
		}
	}
	return true
}

// listenEnv marks the child that ListenAs starts: it only calls listen(2) on its fd 3.
const listenEnv = "FSNOTIFYD_TESTENV_LISTEN_FD3"

func init() {
	if os.Getenv(listenEnv) != "1" {
		return
	}
	// ListenAs's child, in any test binary that imports testenv: listen on the socket it
	// was handed, as the uid it runs as, and exit.
	if err := syscall.Listen(3, 128); err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// ListenAs returns a unix stream listener on path (created; removed at the end of the test)
// that this process accepts on, but whose peer credentials (SO_PEERCRED, as a connecting
// client reads them) are cred's: the kernel records them when listen(2) is called, and a
// child of the test binary run as cred calls it. It is how a test plays another user's
// impostor daemon in-process.
func ListenAs(t testing.TB, cred *syscall.Credential, path string) *net.UnixListener {
	t.Helper()
	RequireRoot(t)
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
	if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(PublicExecutable(t))
	cmd.Env = append(os.Environ(), listenEnv+"=1")
	cmd.ExtraFiles = []*os.File{f}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("listen(2) as uid %d: %v: %s", cred.Uid, err, out)
	}
	ln, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*net.UnixListener)
}

// MachineLateness starts a sleeper that wakes every 5 ms while a latency is measured and
// returns a stop that reports its worst lateness: how much later than its timer this machine
// ran a goroutine meanwhile. A bound on a latency (the daemon's, the guard's) adds it, so that the bound is on
// the program's own delay, not on the machine's load (2 vCPUs shared with builds and other
// tests, where the same daemon's 200 ms deadline came 314 ms late at load 15): a program
// that adds its own delay still fails, however idle the sleeper found the machine.
func MachineLateness() (stop func() time.Duration) {
	done, worst := make(chan struct{}), make(chan time.Duration, 1)
	go func() {
		// On a thread of its own, as the daemon's kernel readers and per-client threads are:
		// it measures how late the kernel runs a thread, not only how late Go runs a goroutine.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var late time.Duration
		for {
			start := time.Now()
			select {
			case <-done:
				worst <- late
				return
			case <-time.After(5 * time.Millisecond):
				late = max(late, time.Since(start)-5*time.Millisecond)
			}
		}
	}()
	return func() time.Duration { close(done); return <-worst }
}
