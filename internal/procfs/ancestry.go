//go:build linux

package procfs

import (
	"errors"
	"os"
	"syscall"

	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// A process's parent and ancestors, from /proc, for policies that test them (ppid=,
// ancestor=). They sit next to proc.go's readers and use its helpers; like them they tell a
// process that is gone (os.ErrProcessDone) from a failure to read.

// ReadPPid returns a process's parent pid, from /proc/PID/stat: 0 when the parent is
// outside this pid namespace (pid 1 and kthreadd have none).
func ReadPPid(pid int32) (int32, error) {
	ppid, _, err := ReadStat(pid)
	return ppid, err
}

// Ancestor is one ancestor of a process: its pid and its executable, as
// ReadExe gives it.
type Ancestor struct {
	Pid      int32
	Exe      string
	Verified bool
	// Unreadable: the executable could not be read for want of permission (a guard without
	// CAP_SYS_PTRACE, or a process an LSM shields): it is unknown, not absent.
	Unreadable bool
	// Unknown: the executable is not verified and may be any program (ExeUnknown).
	Unknown bool
}

// ancestryStep, when set (tests), runs at each step of ReadAncestry: "parent" after
// child's stat named parent, "exe" before parent's executable is read.
var ancestryStep func(step string, child, parent int32)

// ReadAncestry returns the ancestors of process pid, its parent first, at most max of
// them, each with its executable (ReadExe), and whether the list is complete: it ends
// at a process with no parent in this pid namespace. It is not complete when the chain is
// longer than max, or when an ancestor exits while the chain is read (its children go to a
// reaper: the chain has changed under the walk).
//
// Every ancestor listed was an ancestor of pid while it was read, and its executable is its
// own, even if pids are reused meanwhile. A child's stat names its parent; the parent's
// executable is read; the child's stat must name the same parent again, the child being held
// by a pidfd all along. A child's parent pid never comes back to a parent that died (the
// reaper it goes to already held another pid), so the parent lived, and kept its pid,
// between the two reads. The parent is held by a pidfd taken in between, which makes it the
// child of the next step. A pid that changes hands, or an ancestor that exits, between the
// reads ends the list, incomplete; it never adds a stranger, nor an exited ancestor without
// its executable.
//
// An ancestor whose executable the caller may not read (EACCES, EPERM: no CAP_SYS_PTRACE,
// or an LSM shields it) is listed as Unreadable, and the walk goes on. The error is
// os.ErrProcessDone (wrapped) when pid itself is gone or unknown, and the system's error when
// /proc cannot be read otherwise. Cost: per ancestor, two reads of /proc/PID/stat, ReadExe, a
// pidfd_open and a pidfd_send_signal.
func ReadAncestry(pid int32, max int) (list []Ancestor, complete bool, err error) {
	if pid <= 0 {
		return nil, false, goneOr(pid, syscall.ESRCH)
	}
	childFd, err := sys.PidfdOpen(int(pid), 0)
	if err != nil {
		return nil, false, goneOr(pid, err)
	}
	defer func() { sys.Close(childFd) }()
	list = []Ancestor{}
	child := pid
	// cut ends the walk where the chain changed under it: incomplete, or the process itself
	// gone.
	cut := func() ([]Ancestor, bool, error) {
		if child == pid && !sys.PidfdAlive(childFd) {
			return nil, false, goneOr(pid, syscall.ESRCH)
		}
		return list, false, nil
	}
	for {
		parent, _, err := ReadStat(child)
		switch {
		case errors.Is(err, os.ErrProcessDone):
			return cut()
		case err != nil:
			return nil, false, err
		case parent == 0 && sys.PidfdAlive(childFd):
			return list, true, nil
		case parent == 0:
			return cut()
		case len(list) == max:
			return list, false, nil
		}
		if ancestryStep != nil {
			ancestryStep("parent", child, parent)
		}
		parentFd, err := sys.PidfdOpen(int(parent), 0)
		if errors.Is(err, syscall.ESRCH) {
			return cut() // the parent exited: its child went to a reaper
		} else if err != nil {
			return nil, false, err
		}
		if ancestryStep != nil {
			ancestryStep("exe", child, parent)
		}
		exe, err := ReadExecutable(parent)
		a := Ancestor{Pid: parent, Exe: exe.Path, Verified: exe.Verified}
		switch {
		case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
			// Unknown, and the walk goes on: a policy counts it as an ancestor that may be
			// any program.
			a = Ancestor{Pid: parent, Unreadable: true}
		case errors.Is(err, os.ErrProcessDone):
			sys.Close(parentFd)
			return cut()
		case err != nil:
			sys.Close(parentFd)
			return nil, false, err
		case !a.Verified:
			a.Unknown, _ = ExeUnknown(parent, exe) // gone: the check below cuts
		}
		if ok, err := stillChildOf(child, childFd, parent); err != nil || !ok {
			sys.Close(parentFd)
			if err != nil {
				return nil, false, err
			}
			return cut()
		}
		list = append(list, a)
		sys.Close(childFd)
		childFd, child = parentFd, parent
	}
}

// stillChildOf reports whether child, held by childFd, still has parent as its parent: then
// parent has been its parent, with that pid, since an earlier read of child's stat said so.
func stillChildOf(child int32, childFd int, parent int32) (bool, error) {
	again, _, err := ReadStat(child)
	if errors.Is(err, os.ErrProcessDone) {
		return false, nil
	}
	return err == nil && again == parent && sys.PidfdAlive(childFd), err
}
