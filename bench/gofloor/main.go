//go:build linux

// Command gofloor is bench/guardfloor.c's responder in Go, on internal/sys's wrappers and
// nothing else of the repository: one goroutine locked to its thread, a blocking read(2) of
// the group, a statx(2) of each event's descriptor (sys.Fstat, the guard's call), the answer's
// write(2), close(2), and internal/evloop's yield once per 8 ms. What the language and its
// runtime cost on the embedded guard's calls, for bench/guardfloor.sh.
//
//	gofloor DIR [nostatx]
//	gofloor MNT exec TRUSTFILE
//
// A filesystem mark on DIR's filesystem, FAN_CLASS_PRE_CONTENT (the guard's FD group's setup).
// Prints "ready" once the mark is in place; runs until SIGTERM or SIGINT.
//
// The exec mode is bench/execref.c's calls mode in Go, for bench/exec.sh: a mount mark on MNT
// for FAN_OPEN_EXEC_PERM alone, and per event the calls the guard makes for an exec under a
// trust-based allowlist, through the wrappers it makes them with — the descriptor's statx
// (sys.FstatTo, raw), its path (sys.FdPath), the statx of that path that checks it leads back
// to the same inode (sys.Statx), the trust hash cache's fstat (sys.FstatTo, raw) — then the
// path and size compared with TRUSTFILE's entry (PATH SIZE SHA256; the digest not computed),
// the answer (allow, or deny on a mismatch) and close(2). What a Go listener that decides what
// the guard decides pays before any of the guard's own code: the floor of an exec's added time
// for any guard written in Go.
package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" {
		fmt.Fprintln(os.Stderr, "usage: gofloor DIR [nostatx] | gofloor MNT exec TRUSTFILE")
		os.Exit(2)
	}
	exec := len(os.Args) == 4 && os.Args[2] == "exec"
	stx := len(os.Args) < 3 || os.Args[2] != "nostatx"
	var decide func(fd int) bool
	flags, mask := uint(sys.FAN_MARK_ADD|sys.FAN_MARK_FILESYSTEM), uint64(sys.FAN_OPEN_PERM)
	if exec {
		var err error
		if decide, err = execDecider(os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, "gofloor:", err)
			os.Exit(1)
		}
		flags, mask = sys.FAN_MARK_ADD|sys.FAN_MARK_MOUNT, sys.FAN_OPEN_EXEC_PERM
	}
	fd, err := sys.FanotifyInit(sys.FAN_CLASS_PRE_CONTENT, sys.O_RDONLY|sys.O_LARGEFILE)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gofloor:", err)
		os.Exit(1)
	}
	if err := sys.FanotifyMark(fd, flags, mask, sys.AT_FDCWD, os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "gofloor:", err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; os.Exit(0) }() // the loop blocks in read: exit from here
	fmt.Println("ready")
	runtime.LockOSThread()
	buf := make([]byte, 1<<16)
	last := time.Now()
	for {
		// Yield once per 8 ms of work, as internal/evloop does (maybeYield): otherwise sysmon
		// preempts the goroutine, which never leaves its P, in the middle of a system call.
		if now := time.Now(); now.Sub(last) >= 8*time.Millisecond {
			runtime.Gosched()
			last = time.Now()
		}
		n, err := sys.Read(fd, buf)
		if err != nil || n <= 0 {
			fmt.Fprintln(os.Stderr, "gofloor: read:", err)
			os.Exit(1)
		}
		// struct fanotify_event_metadata: event_len u32, vers u8, reserved u8, metadata_len
		// u16, mask u64, fd s32, pid s32.
		for off := 0; off+24 <= n; {
			l := int(binary.NativeEndian.Uint32(buf[off:]))
			mask := binary.NativeEndian.Uint64(buf[off+8:])
			efd := int32(binary.NativeEndian.Uint32(buf[off+16:]))
			if efd >= 0 {
				switch {
				case decide != nil:
					if mask&sys.FAN_OPEN_EXEC_PERM != 0 {
						response := uint32(sys.FAN_ALLOW)
						if !decide(int(efd)) {
							response = sys.FAN_DENY
						}
						sys.WriteResponse(fd, efd, response)
					}
					sys.CloseRaw(int(efd)) // as the guard closes a regular file's descriptor
				default:
					if stx {
						sys.Fstat(int(efd))
					}
					if mask&sys.FAN_OPEN_PERM != 0 {
						sys.WriteResponse(fd, efd, sys.FAN_ALLOW)
					}
					sys.Close(int(efd))
				}
			}
			if l <= 0 {
				break
			}
			off += l
		}
	}
}

// execDecider reads TRUSTFILE's first entry (PATH SIZE SHA256) and returns the exec mode's
// decision for an event's descriptor: allow when its path, read and checked as the guard
// checks it, is the entry's and its size the entry's.
func execDecider(trustFile string) (func(fd int) bool, error) {
	b, err := os.ReadFile(trustFile)
	if err != nil {
		return nil, err
	}
	var path string
	var size uint64
	if n, _ := fmt.Sscan(string(b), &path, &size); n != 2 {
		return nil, fmt.Errorf("%s: want a line PATH SIZE SHA256", trustFile)
	}
	return func(fd int) bool {
		var id, again sys.Stat
		if sys.FstatTo(fd, &id, true) != nil {
			return false
		}
		p, err := sys.FdPath(fd)
		if err != nil {
			return false
		}
		byName, err := sys.Statx(sys.AT_FDCWD, p, sys.AT_SYMLINK_NOFOLLOW)
		if err != nil || byName.Dev != id.Dev || byName.Ino != id.Ino {
			return false
		}
		return sys.FstatTo(fd, &again, true) == nil && p == path && again.Size == size
	}, nil
}
