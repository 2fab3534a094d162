//go:build linux

package procfs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

func TestStatusIDs(t *testing.T) {
	for _, tc := range []struct {
		name, text, key string
		ids             []uint32
		ok              bool
	}{
		{"uid line", "Name:\tsu\nUmask:\t0022\nState:\tS\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n", "Uid:", []uint32{1000, 0, 0, 0}, true},
		{"groups", "Gid:\t5\t5\t5\t5\nGroups:\t4 24 27 \nNSpid:\t1\n", "Groups:", []uint32{4, 24, 27}, true},
		{"no groups", "Groups:\t\n", "Groups:", []uint32{}, true},
		{"a line cut by the read", "Name:\tx\nUid:\t5\t7\t7\t7", "Uid:", nil, false},
		{"no such line", "Name:\tx\nGid:\t1\t1\t1\t1\n", "Uid:", nil, false},
		{"not a number", "Uid:\t5\tx\t5\t5\n", "Uid:", nil, false},
		{"empty", "", "Uid:", nil, false},
	} {
		ids, ok := statusIDs([]byte(tc.text), tc.key)
		if ok != tc.ok || !slices.Equal(ids, tc.ids) {
			t.Errorf("%s: statusIDs = %v, %v; want %v, %v", tc.name, ids, ok, tc.ids, tc.ok)
		}
	}
}

func TestProcLookups(t *testing.T) {
	pid := int32(os.Getpid())
	if uid, ok := EUID(pid); !ok || uid != uint32(os.Geteuid()) {
		t.Errorf("EUID(self) = %d, %v; want %d", uid, ok, os.Geteuid())
	}
	b, _ := os.ReadFile("/proc/self/comm")
	if got, want := Comm(pid), string(b[:len(b)-1]); got != want {
		t.Errorf("Comm(self) = %q, want %q", got, want)
	}
	if uid, err := ReadRUID(pid); err != nil || uid != uint32(os.Getuid()) {
		t.Errorf("ReadRUID(self) = %d, %v; want %d", uid, err, os.Getuid())
	}
	if _, ok := EUID(-1); ok {
		t.Error("EUID(-1) succeeded")
	}
	if got := Comm(0); got != "" {
		t.Errorf("Comm(0) = %q", got)
	}
	// The session may be 0: CI runs the tests in a session whose leader lives outside this pid
	// namespace. No exempt helper has pid 0, so such a session never matches one.
	if ppid, sid, err := ReadStat(pid); err != nil || ppid != int32(os.Getppid()) || sid < 0 {
		t.Errorf("ReadStat(self) = %d, %d, %v; want ppid %d", ppid, sid, err, os.Getppid())
	}
	groups, err := ReadGroups(pid)
	want := []uint32{uint32(os.Getgid()), uint32(os.Getegid())}
	supp, _ := os.Getgroups()
	for _, g := range supp {
		want = append(want, uint32(g))
	}
	for _, g := range want {
		if !slices.Contains(groups, g) {
			t.Errorf("ReadGroups(self) = %v, %v; lacks %d", groups, err, g)
		}
	}
	self, _ := os.Executable()
	self, _ = filepath.EvalSymlinks(self)
	if exe, verified, err := ReadExe(pid); err != nil || !verified || exe != self {
		t.Errorf("ReadExe(self) = %q, %v, %v; want %q, verified", exe, verified, err, self)
	}
	for _, f := range []func(int32) error{
		func(p int32) error { _, err := ReadComm(p); return err },
		func(p int32) error { _, err := ReadEUID(p); return err },
		func(p int32) error { _, err := ReadRUID(p); return err },
		func(p int32) error { _, err := ReadGroups(p); return err },
		func(p int32) error { _, _, err := ReadExe(p); return err },
	} {
		if err := f(0); !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("pid 0: %v, want os.ErrProcessDone", err)
		}
		if err := f(gonePid(t)); !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("an exited process: %v, want os.ErrProcessDone", err)
		}
	}
}

// gonePid is the pid of a process that has exited and been reaped.
func gonePid(t *testing.T) int32 {
	t.Helper()
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	return int32(c.Process.Pid)
}

// exeUnknown is ExeUnknown of exe as ReadExecutable read it, which must agree with ExeUnknown
// of its path and verified alone (an Exe made elsewhere, as sysattr.Process.SetExe's, whose
// file ExeUnknown reads again).
func exeUnknown(t *testing.T, pid int32, exe Exe) (bool, error) {
	t.Helper()
	u, err := ExeUnknown(pid, exe)
	if u2, err2 := ExeUnknown(pid, Exe{Path: exe.Path, Verified: exe.Verified}); u2 != u || (err2 == nil) != (err == nil) {
		t.Errorf("ExeUnknown of %q: %v, %v as read; %v, %v from its path alone", exe.Path, u, err, u2, err2)
	}
	return u, err
}

// An executable deleted, or replaced at its path, since the process started is not verified;
// nor is one the process runs through a mount this process does not see, whatever its path
// says.
func TestReadProcessExeUnverified(t *testing.T) {
	dir := testenv.Tmpfs(t)
	start := func(t *testing.T, c *exec.Cmd) *exec.Cmd {
		t.Helper()
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		return c
	}
	run := func(t *testing.T, bin string) *exec.Cmd { return start(t, exec.Command(bin, "600")) }
	// overReal runs evil bind-mounted over real, through real's path, in a mount namespace of
	// its own.
	overReal := func(t *testing.T, evil, real string) *exec.Cmd {
		return start(t, exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
			"mount --bind "+evil+" "+real+" && exec "+real+" 600"))
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	copyTo := func(dst string) {
		data, err := os.ReadFile(sleep)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	waitExe := func(t *testing.T, c *exec.Cmd, want string) Exe {
		t.Helper()
		var exe Exe
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
			exe, err = ReadExecutable(int32(c.Process.Pid))
			if err == nil && exe.Path == want {
				return exe
			}
		}
		t.Fatalf("exe = %q, %v, %v; want %q", exe.Path, exe.Verified, err, want)
		return Exe{}
	}

	t.Run("running from its path", func(t *testing.T) {
		bin := filepath.Join(dir, "a")
		copyTo(bin)
		if exe := waitExe(t, run(t, bin), bin); !exe.Verified {
			t.Error("not verified")
		}
	})
	t.Run("deleted", func(t *testing.T) {
		bin := filepath.Join(dir, "b")
		copyTo(bin)
		c := run(t, bin)
		waitExe(t, c, bin)
		os.Remove(bin)
		if exe := waitExe(t, c, bin+" (deleted)"); exe.Verified {
			t.Error("a deleted executable is verified")
		}
		copyTo(bin + " (deleted)") // a file that bears the deleted one's name is not it
		exe := waitExe(t, c, bin+" (deleted)")
		if exe.Verified {
			t.Error("a deleted executable is verified by a file named like it")
		}
		// Root's (an upgraded daemon's): no user chose its path.
		if u, err := exeUnknown(t, int32(c.Process.Pid), exe); err != nil || u {
			t.Errorf("ExeUnknown of root's deleted executable: %v, %v; want false", u, err)
		}
	})
	t.Run("deleted, a user's", func(t *testing.T) {
		// A user's program removed while it runs: they chose its path, which matches no glob
		// now; it may be any program.
		bin := filepath.Join(dir, "u")
		copyTo(bin)
		if err := os.Chown(bin, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		c := run(t, bin)
		waitExe(t, c, bin)
		os.Remove(bin)
		exe := waitExe(t, c, bin+" (deleted)")
		if u, err := exeUnknown(t, int32(c.Process.Pid), exe); err != nil || !u {
			t.Errorf("ExeUnknown of a user's deleted executable: %v, %v; want true", u, err)
		}
	})
	t.Run("replaced", func(t *testing.T) {
		bin := filepath.Join(dir, "c")
		copyTo(bin)
		c := run(t, bin)
		waitExe(t, c, bin)
		tmp := bin + ".new"
		copyTo(tmp)
		if err := os.Rename(tmp, bin); err != nil {
			t.Fatal(err)
		}
		if exe := waitExe(t, c, bin+" (deleted)"); exe.Verified {
			t.Errorf("%q: a replaced executable is verified", exe.Path)
		}
	})
	t.Run("through a mount this process does not see", func(t *testing.T) {
		// The child mounts its own file over a path in a mount namespace of its own, then
		// runs it through that path: its exe reads as the path, but the path here is
		// another file.
		real := filepath.Join(dir, "real")
		copyTo(real)
		evil := filepath.Join(dir, "evil")
		copyTo(evil)
		os.WriteFile(evil, append(must(os.ReadFile(evil)), 0), 0o755) // another inode, other content
		c := overReal(t, evil, real)
		exe := waitExe(t, c, real)
		if exe.Verified {
			t.Error("an executable from another mount namespace is verified by the path it reads as")
		}
		// Root's file, in a namespace of root's (a container): no user chose it.
		if u, err := exeUnknown(t, int32(c.Process.Pid), exe); err != nil || u {
			t.Errorf("ExeUnknown of root's executable through root's mount namespace: %v, %v; want false", u, err)
		}
	})
	t.Run("a user's, through a mount this process does not see", func(t *testing.T) {
		// The same with a file of user nobody's: whoever owns it may have put it there, and
		// a descriptor of it opened there may be run anywhere; it may be any program.
		real := filepath.Join(dir, "real2")
		copyTo(real)
		evil := filepath.Join(dir, "evil2")
		copyTo(evil)
		if err := os.Chown(evil, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		c := overReal(t, evil, real)
		exe := waitExe(t, c, real)
		if u, err := exeUnknown(t, int32(c.Process.Pid), exe); err != nil || !u {
			t.Errorf("ExeUnknown of a user's executable through another mount namespace: %v, %v (verified %v); want true", u, err, exe.Verified)
		}
	})
	t.Run("no executable: a thread group whose leader exited", func(t *testing.T) {
		// The main thread exits (pthread_exit), another one lives on: the kernel has no
		// executable to show for the process, which can still open files.
		c := exec.Command(python3(t), "-c", zombieLeaderPy, "600")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		pid := int32(c.Process.Pid)
		for end := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			st, _ := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/status")
			if strings.Contains(string(st), "State:\tZ") {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("the leader did not exit: %s", st)
			}
		}
		if exe, v, err := ReadExe(pid); err != nil || exe != "" || v {
			t.Errorf("ReadExe = %q, %v, %v; want \"\", false, nil", exe, v, err)
		}
		if _, err := ReadGroups(pid); err != nil {
			t.Errorf("ReadGroups: %v", err)
		}
	})
}

// zombieLeaderPy runs a thread that sleeps argv[1] seconds and ends the main thread: the
// process lives on with a zombie thread-group leader.
const zombieLeaderPy = `
import ctypes, sys, threading, time
threading.Thread(target=time.sleep, args=(float(sys.argv[1]),)).start()
ctypes.CDLL(None).pthread_exit(None)
`

func python3(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 not found (CI installs python3-minimal): %v", err)
	}
	return p
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestReadRUIDOfASetUIDProcess: a process running with another effective uid (as a set-user-ID
// program does) has its real uid read, the user who started it.
func TestReadRUIDOfASetUIDProcess(t *testing.T) {
	testenv.RequireRoot(t)
	c := exec.Command("setpriv", "--ruid", "65534", "--euid", "0", "--", "sleep", "30")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { c.Process.Kill(); c.Wait() }()
	pid := int32(c.Process.Pid)
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if string(b) == "sleep\n" {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("setpriv did not exec sleep: comm %q", b)
		}
	}
	if uid, err := ReadRUID(pid); err != nil || uid != 65534 {
		t.Errorf("ReadRUID = %d, %v; want 65534", uid, err)
	}
	if uid, err := ReadEUID(pid); err != nil || uid != 0 {
		t.Errorf("ReadEUID = %d, %v; want 0", uid, err)
	}
}

// TestReadLoginUID: unset for a process outside any login (as this test may be: then set is
// false), and, once a process sets it (root may, once), read as set for it and for what it
// runs under another uid.
func TestReadLoginUID(t *testing.T) {
	testenv.RequireRoot(t)
	self, set, err := ReadLoginUID(int32(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	if set {
		t.Skipf("this process has a login uid (%d): a child cannot be given another", self)
	}
	c := exec.Command("sh", "-c", "echo 1234 > /proc/self/loginuid && exec setpriv --reuid 65534 --regid 65534 --clear-groups -- sleep 30")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { c.Process.Kill(); c.Wait() }()
	pid := int32(c.Process.Pid)
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); string(b) == "sleep\n" {
			break
		}
		if time.Now().After(end) {
			t.Skip("the child did not get to sleep: no login uid to set here (audit off?)")
		}
	}
	if uid, set, err := ReadLoginUID(pid); err != nil || !set || uid != 1234 {
		t.Errorf("ReadLoginUID = %d, %v, %v; want 1234, set", uid, set, err)
	}
	if uid, err := ReadRUID(pid); err != nil || uid != 65534 {
		t.Errorf("ReadRUID = %d, %v; want 65534", uid, err)
	}
	if _, _, err := ReadLoginUID(gonePid(t)); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("an exited process: %v, want os.ErrProcessDone", err)
	}
}

// A process in a user namespace other than ours may have set its executable (PR_SET_MM_MAP)
// and dropped groups where setgroups was allowed there: ReadExe does not verify its
// executable, which is unknown, even where the path leads to the very file it runs; its
// groups may lack one only where setgroups says allow (here: root writes the maps, as
// newgidmap does) or the namespace is not ours. Our own process: verified, lacks nothing.
func TestUserNamespaceExeAndGroups(t *testing.T) {
	testenv.RequireRoot(t)
	self := int32(os.Getpid())
	if _, v, err := ReadExe(self); err != nil || !v {
		t.Fatalf("own executable: verified %v, %v", v, err)
	}
	if may, err := GroupsMayLack(self); err != nil || may {
		t.Fatalf("own groups may lack: %v, %v", may, err)
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep")
	}
	start := func(t *testing.T, args ...string) int32 {
		t.Helper()
		c := exec.Command("setpriv", append([]string{"--reuid", "65534", "--regid", "65534", "--clear-groups"}, args...)...)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		pid := int32(c.Process.Pid)
		// Wait for the exec of sleep (setpriv and unshare exec in place).
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
			if exe, _, err := ReadExe(pid); err == nil && exe == sleep {
				return pid
			}
		}
		t.Skipf("%v did not come to run %s", args, sleep)
		return 0
	}
	t.Run("unshare -Ur: setgroups deny", func(t *testing.T) {
		pid := start(t, "unshare", "-Ur", sleep, "600")
		exe, err := ReadExecutable(pid)
		if err != nil || exe.Verified || exe.Path != sleep {
			t.Errorf("ReadExe = %q, verified %v, %v; want %s, not verified", exe.Path, exe.Verified, err, sleep)
		}
		if u, err := exeUnknown(t, pid, exe); err != nil || !u {
			t.Errorf("ExeUnknown = %v, %v; want unknown", u, err)
		}
		if may, err := GroupsMayLack(pid); err != nil || may {
			t.Errorf("GroupsMayLack = %v, %v; want false (setgroups deny)", may, err)
		}
	})
	t.Run("maps written by a privileged helper: setgroups allow", func(t *testing.T) {
		pid := start(t, "unshare", "-U", sleep, "600")
		for file, m := range map[string]string{"uid_map": "0 65534 1\n", "gid_map": "0 65534 1\n"} {
			if err := os.WriteFile("/proc/"+strconv.Itoa(int(pid))+"/"+file, []byte(m), 0); err != nil {
				t.Fatal(err)
			}
		}
		if may, err := GroupsMayLack(pid); err != nil || !may {
			t.Errorf("GroupsMayLack = %v, %v; want true (setgroups allow)", may, err)
		}
	})
	t.Run("a namespace we may not look at", func(t *testing.T) {
		if _, err := os.Stat("/proc/1/ns/user"); !errors.Is(err, os.ErrPermission) {
			t.Skipf("pid 1's user namespace is not hidden here (%v)", err)
		}
		// pid 1 of a sandbox's host: its status reads, its namespace does not.
		if may, err := GroupsMayLack(1); err != nil || !may {
			t.Errorf("GroupsMayLack(1) = %v, %v; want true, no error", may, err)
		}
	})
	t.Run("not in a user namespace", func(t *testing.T) {
		pid := start(t, sleep, "600")
		if _, v, err := ReadExe(pid); err != nil || !v {
			t.Errorf("verified %v, %v", v, err)
		}
		if may, err := GroupsMayLack(pid); err != nil || may {
			t.Errorf("GroupsMayLack = %v, %v", may, err)
		}
	})
}

// TestReadUIDsIsReadRUIDAndReadEUID: one read gives what the two give apart, for this process
// and for one gone.
func TestReadUIDsIsReadRUIDAndReadEUID(t *testing.T) {
	pid := int32(os.Getpid())
	r, e, err := ReadUIDs(pid)
	if err != nil || r != uint32(os.Getuid()) || e != uint32(os.Geteuid()) {
		t.Errorf("ReadUIDs(self) = %d, %d, %v; want %d, %d", r, e, err, os.Getuid(), os.Geteuid())
	}
	if _, _, err := ReadUIDs(1 << 30); err == nil {
		t.Error("ReadUIDs of a pid that does not exist: no error")
	}
}

// TestReadStatHostileComm: an unprivileged process names itself so that its comm looks like
// the fields after it in /proc/PID/stat (a parent, a session, flags of its choice) or like a
// line of /proc/PID/status (Uid:, Groups:); its parent (which ppid= conditions and ancestry
// test), session (which exempt helpers' sessions are matched by), flags (kernel threads),
// uids and groups are read as the kernel keeps them.
func TestReadStatHostileComm(t *testing.T) {
	testenv.RequireRoot(t)
	for _, comm := range []string{
		"x) S 1 1 1 0 0",     // ppid 1, session 1
		"x) S 0 0 0 0 0",     // no parent: a complete ancestry of none
		"x)\nR 1 1 1 1 1",    // a newline: the fields on another line
		") ) ) ) ) ) )",      // parentheses only
		"(x) S 2 2 2 2 2",    // 15 bytes, the most comm holds
		"\nUid:\t0\t0\t0\t0", // status escapes a newline: no Uid line of its own
		"\nGroups:\t0 27",
	} {
		t.Run(strings.ReplaceAll(comm, " ", "_"), func(t *testing.T) {
			// The shell renames itself (printf is a builtin: the shell writes its own comm) and
			// waits on its standard input.
			c := exec.Command("sh", "-c", `printf "$1" > /proc/$$/comm && read x`, "sh", strings.ReplaceAll(comm, "\n", `\n`))
			c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			stdin, err := c.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { stdin.Close(); c.Wait() }()
			pid := int32(c.Process.Pid)
			for end := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				got, _ := ReadComm(pid)
				if got == comm {
					break
				}
				if time.Now().After(end) {
					t.Fatalf("the process did not rename itself: comm %q, want %q", got, comm)
				}
			}
			ppid, sid, err := ReadStat(pid)
			if err != nil || ppid != int32(os.Getpid()) || sid != pid {
				t.Errorf("ReadStat = ppid %d, session %d, %v; want %d, %d", ppid, sid, err, os.Getpid(), pid)
			}
			if kernel, err := IsKernelThread(pid); err != nil || kernel {
				t.Errorf("IsKernelThread = %v, %v; want false", kernel, err)
			}
			if ruid, euid, err := ReadUIDs(pid); err != nil || ruid != 65534 || euid != 65534 {
				t.Errorf("ReadUIDs = %d, %d, %v; want 65534", ruid, euid, err)
			}
			if groups, err := ReadGroups(pid); err != nil || slices.ContainsFunc(groups, func(g uint32) bool { return g != 65534 }) {
				t.Errorf("ReadGroups = %v, %v; want 65534 only", groups, err)
			}
			list, _, err := ReadAncestry(pid, 2)
			if err != nil || len(list) == 0 || list[0].Pid != int32(os.Getpid()) {
				t.Errorf("ReadAncestry = %+v, %v; want this process (%d) first", list, err, os.Getpid())
			}
		})
	}
}
