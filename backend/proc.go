//go:build linux

package backend

import (
	"bytes"
	"os"
	"strconv"
	"strings"

	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// The accessing process's name, effective uid and ancestry, from /proc: for the backend's
// readers, the daemon and the notify library alike. procfs takes no fanotify marks, so these
// never wait on a listener.

// ProcessComm returns a process's name, /proc/PID/comm ("" if the process is gone).
func ProcessComm(pid int32) string {
	comm, _ := readComm(pid)
	return comm
}

// readComm is ProcessComm with the error, for the comm cache.
func readComm(pid int32) (string, error) {
	var buf [64]byte // TASK_COMM_LEN is 16
	n, err := readProc(pid, "comm", buf[:])
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(buf[:n]), "\n"), nil
}

// ProcessEUID returns a process's effective uid (the one its file accesses are checked with),
// from /proc/PID/status; false if the process is gone.
func ProcessEUID(pid int32) (uint32, bool) {
	var buf [2048]byte // Uid: is in the first kilobyte
	n, err := readProc(pid, "status", buf[:])
	if err != nil {
		return 0, false
	}
	return statusEUID(buf[:n])
}

// statusEUID finds the effective uid in /proc/PID/status text ("Uid:\treal\teffective\t...").
func statusEUID(b []byte) (uint32, bool) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if rest, ok := bytes.CutPrefix(line, []byte("Uid:")); ok {
			if f := strings.Fields(string(rest)); len(f) >= 2 {
				if n, err := strconv.ParseUint(f[1], 10, 32); err == nil {
					return uint32(n), true
				}
			}
			return 0, false
		}
	}
	return 0, false
}

// readProc reads the start of /proc/PID/name into buf with one read (no os.File, no
// allocation: the readers call it per event).
func readProc(pid int32, name string, buf []byte) (int, error) {
	if pid <= 0 {
		return 0, os.ErrNotExist
	}
	fd, err := sys.Open("/proc/"+strconv.Itoa(int(pid))+"/"+name, sys.O_RDONLY|sys.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	n, err := sys.Read(fd, buf)
	sys.Close(fd)
	return n, err
}

// Descends reports whether process pid descends from ancestor (its parent, or its parent's,
// and so on).
func Descends(pid, ancestor int) bool {
	for i := 0; i < 64 && pid > 1; i++ {
		ppid := int(parentPid(int32(pid)))
		if ppid <= 0 {
			return false
		}
		if ppid == ancestor {
			return true
		}
		pid = ppid
	}
	return false
}

// parentPid reads a process's parent from /proc/PID/stat (0 if gone).
func parentPid(pid int32) int32 {
	var buf [1024]byte // pid (comm) state ppid ...: comm is at most 64 bytes
	n, err := readProc(pid, "stat", buf[:])
	if err != nil {
		return 0
	}
	// The comm field may hold spaces and parentheses: the ppid follows the last ')'.
	s := string(buf[:n])
	j := strings.LastIndexByte(s, ')')
	if j < 0 {
		return 0
	}
	f := strings.Fields(s[j+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return 0
	}
	return int32(ppid)
}
