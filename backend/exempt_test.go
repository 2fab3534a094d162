//go:build linux

package backend

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// denyAll is a backend with a deny-all content group on a fresh tmpfs holding one file
// anyone may read (so that EPERM can only come from the group), which it returns.
func denyAll(t *testing.T) (*Backend, string) {
	t.Helper()
	root := testenv.Tmpfs(t)
	file := filepath.Join(root, "f")
	writeFile(t, file, "x")
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	b := newBackend(t, ModeFanotify)
	g := newGroup(t, b, engine.Options{Name: "deny-all", Class: engine.ClassContent, Deadline: permDeadline})
	mark(t, b, g, root, engine.KindFilesystem, engine.MarkSpec{Mask: engine.OpenPerm})
	record(t, g, func(rec) engine.Response { return engine.Response{Verdict: engine.Deny} })
	return b, file
}

// gatedShell starts sh -c script with the given process attributes; the script starts
// only once release is called (it first reads a line from stdin), so that the caller can
// register it before it does anything. It returns the command, release, and its output.
func gatedShell(t *testing.T, attr *syscall.SysProcAttr, script string) (*exec.Cmd, func(), *lockedBuffer) {
	t.Helper()
	c := exec.Command("sh", "-c", "read go; "+script)
	c.SysProcAttr = attr
	var out lockedBuffer
	c.Stdout, c.Stderr = &out, &out
	in, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	return c, func() { io.WriteString(in, "go\n"); in.Close() }, &out
}

// waitCmd waits for c to exit, failing the test as hung after the bound.
func waitCmd(t *testing.T, c *exec.Cmd) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(hang):
		t.Fatalf("%v still running after %v (hang)", c.Args, hang)
		return nil
	}
}

// A helper that leads its own session has its session's members exempt: its children, and
// theirs. A member that leaves the session (setsid) is decided again, and so is any other
// process, the helper's own siblings included.
func TestExemptHelperSession(t *testing.T) {
	b, file := denyAll(t)

	leader, release, out := gatedShell(t, &syscall.SysProcAttr{Setsid: true},
		"cat "+file+" && echo CHILD-OK; sh -c 'cat "+file+" && echo GRANDCHILD-OK'; setsid -w cat "+file+" || echo LEFT-DENIED")
	done := b.ExemptPid(leader.Process.Pid)
	defer done()
	release()
	if err := waitCmd(t, leader); err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	for _, want := range []string{"CHILD-OK", "GRANDCHILD-OK", "LEFT-DENIED", "Operation not permitted"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("helper session output lacks %q:\n%s", want, out)
		}
	}

	// Another process while a (live) helper is registered: our own child, not in its session.
	defer b.ExemptPid(sleeper(t).Process.Pid)()
	if res, pid := access(t, "open:"+file); res.errno != syscall.EPERM {
		t.Errorf("an ordinary child (pid %d) while a helper is registered: %v, want EPERM", pid, res)
	}
}

// A helper that does not lead its own session is exempt itself, but its children are not:
// they could be anyone's (it may have been started by a shell of the user's).
func TestExemptHelperNotLeaderCoversOnlyItself(t *testing.T) {
	b, file := denyAll(t)
	h, release, out := gatedShell(t, nil, "cat "+file+" >/dev/null && echo CHILD-OK || echo CHILD-DENIED")
	done := b.ExemptPid(h.Process.Pid)
	defer done()
	release()
	if err := waitCmd(t, h); err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if !strings.Contains(out.String(), "CHILD-DENIED") {
		t.Errorf("the child of a helper that is no session leader was exempt:\n%s", out)
	}
}

// sleeper starts a process that leads its own session and sleeps.
func sleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	c := exec.Command("sleep", "600")
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	return c
}

// The Spawning window exempts this process's direct children only: a grandchild, started by
// a child while the window is open, is decided.
func TestExemptSpawningWindowDirectChildrenOnly(t *testing.T) {
	b, file := denyAll(t)
	end := b.Spawning()
	defer end()
	c, release, out := gatedShell(t, nil, "cat "+file+" >/dev/null && echo GRANDCHILD-OK || echo GRANDCHILD-DENIED")
	release()
	if err := waitCmd(t, c); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out.String(), "GRANDCHILD-DENIED") {
		t.Errorf("a grandchild was exempt in the Spawning window:\n%s", out)
	}
	if res, _ := access(t, "open:"+file); res.errno != 0 {
		t.Errorf("a direct child in the Spawning window: %v, want allowed", res)
	}
	end()
	if res, _ := access(t, "open:"+file); res.errno != syscall.EPERM {
		t.Errorf("a direct child after the Spawning window: %v, want EPERM", res)
	}
}

// Add refuses a pid that is no live process: nothing gets exempt by a stale pid.
func TestExemptAddGonePid(t *testing.T) {
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	e := NewExemptions()
	if _, err := e.Add(c.Process.Pid); err == nil {
		t.Fatal("Add of a reaped pid succeeded")
	}
	if e.Exempt(int32(c.Process.Pid)) {
		t.Fatal("a reaped pid is exempt")
	}
}

// A helper that was reaped is not exempt, even if its caller never said so (done is never
// called here): a hostile process (uid nobody) given the very same pid, a session leader as
// the helper was, still gets EPERM. The scenario runs in a fresh pid namespace, where the
// next pid can be chosen (ns_last_pid) without touching the machine's.
func TestExemptPidReuse(t *testing.T) {
	// Forked from a thread that outlives it (see spawner).
	testenv.RunInPidNamespace(t, "TestExemptPidReuseInner", func(c *exec.Cmd) error { return startFromSpawner(c.Start) })
}

func TestExemptPidReuseInner(t *testing.T) {
	testenv.EnterPidNamespace(t)
	b, file := denyAll(t)
	testenv.OpenToAll(t, file)

	// A thread of this process (the Go runtime starts them when it needs them) takes a pid as a
	// process does, and keeps it: then the reaped helper's pid cannot come back, and another
	// helper is tried.
	ownThread := func(pid int) bool {
		_, err := os.Stat("/proc/self/task/" + strconv.Itoa(pid))
		return err == nil
	}
	for helpers := 0; helpers < 10; helpers++ {
		helper := sleeper(t)
		hpid := helper.Process.Pid
		_ = b.ExemptPid(hpid) // never released: the exemption must end by itself
		if !b.Exemptions().Exempt(int32(hpid)) {
			t.Fatal("the registered helper is not exempt")
		}
		helper.Process.Kill()
		helper.Wait() // reaped: the pid is free

		for try := 0; !ownThread(hpid); try++ {
			if try == 50 {
				t.Fatalf("could not get pid %d again", hpid)
			}
			if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(hpid-1)), 0); err != nil {
				t.Fatal(err)
			}
			// The hostile process: uid nobody, a session leader as the helper was, with the
			// helper's pid (so also the helper's session id).
			h := exec.Command("cat", file)
			h.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			var out lockedBuffer
			h.Stdout, h.Stderr = &out, &out
			if err := h.Start(); err != nil {
				t.Fatal(err)
			}
			err := waitCmd(t, h)
			if h.Process.Pid != hpid {
				continue // another process took it first
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || !strings.Contains(out.String(), "Operation not permitted") {
				t.Fatalf("a process given a reaped helper's pid %d: %v %q, want EPERM", hpid, err, out.String())
			}
			t.Logf("pid %d reused by a hostile process: %s", hpid, strings.TrimSpace(out.String()))
			return
		}
		t.Logf("pid %d of a reaped helper is a thread of this process now; another helper", hpid)
	}
	t.Fatal("each of 10 reaped helpers' pids became a thread of this process")
}
