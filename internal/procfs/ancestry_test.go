//go:build linux

package procfs

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

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// This test process's ancestors, read the way a guard reads them: each is the parent of the
// one before, with its own (verified) executable, up to a process with no parent.
func TestReadAncestrySelf(t *testing.T) {
	pid := int32(os.Getpid())
	if ppid, err := ReadPPid(pid); err != nil || ppid != int32(os.Getppid()) {
		t.Fatalf("ReadPPid(self) = %d, %v; want %d", ppid, err, os.Getppid())
	}
	list, complete, err := ReadAncestry(pid, 64)
	if err != nil || !complete || len(list) == 0 {
		t.Fatalf("ReadAncestry(self) = %v, %v, %v", list, complete, err)
	}
	child := pid
	for i, a := range list {
		ppid, err := ReadPPid(child)
		if err != nil || ppid != a.Pid {
			t.Errorf("ancestor %d is %d, but %d's parent is %d (%v)", i, a.Pid, child, ppid, err)
		}
		exe, verified, err := ReadExe(a.Pid)
		switch {
		case a.Unreadable:
			// This machine's pid 1 shields itself even from root (permission denied).
			if !errors.Is(err, syscall.EACCES) && !errors.Is(err, syscall.EPERM) || a.Exe != "" || a.Verified {
				t.Errorf("ancestor %d (%d) %+v is unreadable, but ReadExe says %q %v %v", i, a.Pid, a, exe, verified, err)
			}
		case err != nil || exe != a.Exe || verified != a.Verified:
			t.Errorf("ancestor %d (%d): exe %q verified %v; ReadExe says %q %v %v", i, a.Pid, a.Exe, a.Verified, exe, verified, err)
		}
		child = a.Pid
	}
	if ppid, err := ReadPPid(child); err != nil || ppid != 0 {
		t.Errorf("the last ancestor %d has parent %d (%v), want 0", child, ppid, err)
	}
	if list[0].Pid != int32(os.Getppid()) || !list[0].Verified {
		t.Errorf("first ancestor %+v, want the verified parent %d", list[0], os.Getppid())
	}
	t.Logf("%d ancestors: %+v", len(list), list)

	// Bounded: the same chain cut short is incomplete.
	if n := len(list); n > 1 {
		short, complete, err := ReadAncestry(pid, n-1)
		if err != nil || complete || len(short) != n-1 || short[n-2] != list[n-2] {
			t.Errorf("ReadAncestry(self, %d) = %v, %v, %v", n-1, short, complete, err)
		}
	}
	short, complete, err := ReadAncestry(pid, 0)
	if err != nil || complete || len(short) != 0 || short == nil {
		t.Errorf("ReadAncestry(self, 0) = %#v, %v, %v; want an empty list, incomplete", short, complete, err)
	}
}

func TestReadAncestryGone(t *testing.T) {
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int32{0, -1, int32(c.Process.Pid)} {
		if _, _, err := ReadAncestry(pid, 8); !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("ReadAncestry(%d): %v, want os.ErrProcessDone", pid, err)
		}
		if _, err := ReadPPid(pid); !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("ReadPPid(%d): %v, want os.ErrProcessDone", pid, err)
		}
	}
}

// chainScript nests itself N deep: each level is a shell waiting for the next; the innermost
// prints its pid and sleeps.
const chainScript = `#!/bin/sh
if [ "$1" -gt 1 ]; then "$0" $(($1 - 1)); exit; fi
echo $$
exec sleep 600
`

// startChain starts chainScript depth levels deep as cred, and returns the innermost pid.
func startChain(t *testing.T, depth int, cred *syscall.Credential) int32 {
	t.Helper()
	dir := testenv.PublicDir(t)
	script := filepath.Join(dir, "chain.sh")
	if err := os.WriteFile(script, []byte(chainScript), 0o755); err != nil {
		t.Fatal(err)
	}
	c := exec.Command(script, strconv.Itoa(depth))
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-c.Process.Pid, syscall.SIGKILL); c.Wait() })
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		pid, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			t.Fatalf("chain printed %q", s)
		}
		return int32(pid)
	case <-time.After(20 * time.Second):
		t.Fatal("the chain did not start")
	}
	return 0
}

// A hostile user (nobody) nests processes deeper than the bound: the walk stops at the bound
// and says the chain is incomplete — never complete without the ancestors it did not read.
func TestReadAncestryDeeperThanTheBound(t *testing.T) {
	testenv.RequireRoot(t)
	const depth = 40
	inner := startChain(t, depth, testenv.Nobody)
	list, complete, err := ReadAncestry(inner, 32)
	if err != nil || complete || len(list) != 32 {
		t.Fatalf("32 of a %d-deep chain: %d ancestors, complete %v, %v", depth, len(list), complete, err)
	}
	list, complete, err = ReadAncestry(inner, 64)
	if err != nil || !complete || len(list) < depth {
		t.Fatalf("64 of a %d-deep chain: %d ancestors, complete %v, %v", depth, len(list), complete, err)
	}
	for i := 0; i < depth-1; i++ {
		if !list[i].Verified || !strings.HasSuffix(list[i].Exe, "sh") && !strings.HasSuffix(list[i].Exe, "dash") {
			t.Fatalf("ancestor %d: %+v, want the verified shell", i, list[i])
		}
	}
	if list[depth-1].Pid != int32(os.Getpid()) {
		t.Errorf("ancestor %d is %+v, want this test (%d)", depth-1, list[depth-1], os.Getpid())
	}
}

// A process leaves its ancestors by letting its parent exit (a double fork): it goes to its
// reaper. This is why ancestor= says who started a process only as long as the chain stands
// (docs/policy.md).
func TestReadAncestryAfterADoubleFork(t *testing.T) {
	out, err := exec.Command("sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!").Output()
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	list, complete, err := ReadAncestry(int32(pid), 64)
	if err != nil || !complete {
		t.Fatalf("ReadAncestry = %v, %v, %v", list, complete, err)
	}
	for _, a := range list {
		if a.Pid == int32(os.Getpid()) {
			t.Fatalf("the orphan still has this test as its ancestor: %+v", list)
		}
	}
	t.Logf("orphan %d: ancestors %+v", pid, list)
}

// A parent exits while the walk reads it and a hostile process (nobody) gets its pid: the
// walk must not list the impostor as an ancestor (that would grant an allow by ancestor= to
// anyone who wins the race, or take a deny away). Run in a fresh pid namespace, where the
// next pid can be chosen (ns_last_pid) without touching the machine's; the test hook makes
// the exit and the reuse happen at each step of the walk in turn.
func TestReadAncestryPidReuse(t *testing.T) {
	testenv.RunInPidNamespace(t, "TestReadAncestryPidReuseInner", nil)
}

func TestReadAncestryPidReuseInner(t *testing.T) {
	testenv.EnterPidNamespace(t)
	tail, err := exec.LookPath("tail")
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{"parent", "exe"} {
		t.Run(step, func(t *testing.T) {
			// The parent, a shell, and its child, whose ancestry is read.
			parent := exec.Command("sh", "-c", "sleep 600 & echo $!; wait")
			out, err := parent.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := parent.Start(); err != nil {
				t.Fatal(err)
			}
			s, _ := bufio.NewReader(out).ReadString('\n')
			child, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				t.Fatalf("parent printed %q", s)
			}
			defer syscall.Kill(child, syscall.SIGKILL)
			ppid := int32(parent.Process.Pid)
			var impostor *exec.Cmd
			ancestryStep = func(at string, c, p int32) {
				if at != step || c != int32(child) || p != ppid || impostor != nil {
					return
				}
				parent.Process.Kill()
				parent.Wait() // reaped: its pid is free, the child went to us (pid 1)
				for try := 0; try < 50; try++ {
					os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(int(ppid)-1)), 0)
					h := exec.Command(tail, "-f", "/dev/null")
					h.SysProcAttr = &syscall.SysProcAttr{Credential: testenv.Nobody}
					if err := h.Start(); err != nil {
						t.Error(err)
						return
					}
					if int32(h.Process.Pid) == ppid {
						impostor = h
						return
					}
					h.Process.Kill()
					h.Wait()
				}
				t.Errorf("could not give pid %d to an impostor", ppid)
			}
			defer func() { ancestryStep = nil }()
			list, complete, err := ReadAncestry(int32(child), 32)
			if impostor == nil {
				t.Fatal("the hook never ran")
			}
			defer func() { impostor.Process.Kill(); impostor.Wait() }()
			t.Logf("pid %d now %s: ancestry of %d: %+v complete %v err %v", ppid, tail, child, list, complete, err)
			if err != nil || complete {
				t.Fatalf("got %+v, complete %v, %v; want the walk cut, incomplete", list, complete, err)
			}
			for _, a := range list {
				if a.Pid == ppid || a.Exe == tail {
					t.Fatalf("the impostor %d is listed as an ancestor: %+v", ppid, list)
				}
			}
			// Read again, the chain is the child's new one: complete, through its reaper.
			list, complete, err = ReadAncestry(int32(child), 32)
			if err != nil || !complete || len(list) != 1 || list[0].Pid != 1 {
				t.Fatalf("after the reuse: %+v, %v, %v; want [pid 1], complete", list, complete, err)
			}
			fmt.Fprintf(os.Stderr, "step %s: cut as it should\n", step)
		})
	}
}
