//go:build linux

// Command gofloor is bench/guardfloor.c's responder in Go, on internal/sys's wrappers and
// nothing else of the repository: one goroutine locked to its thread, a blocking read(2) of
// the group, a statx(2) of each event's descriptor (sys.Fstat, the guard's call), the answer's
// write(2), close(2), and internal/evloop's yield once per 8 ms. What the language and its
// runtime cost on the embedded guard's calls, for bench/guardfloor.sh.
//
//	gofloor DIR [nostatx]
//
// A filesystem mark on DIR's filesystem, FAN_CLASS_PRE_CONTENT (the guard's FD group's setup).
// Prints "ready" once the mark is in place; runs until SIGTERM or SIGINT.
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
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gofloor DIR [nostatx]")
		os.Exit(2)
	}
	stx := len(os.Args) < 3 || os.Args[2] != "nostatx"
	fd, err := sys.FanotifyInit(sys.FAN_CLASS_PRE_CONTENT, sys.O_RDONLY|sys.O_LARGEFILE)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gofloor:", err)
		os.Exit(1)
	}
	if err := sys.FanotifyMark(fd, sys.FAN_MARK_ADD|sys.FAN_MARK_FILESYSTEM, sys.FAN_OPEN_PERM, sys.AT_FDCWD, os.Args[1]); err != nil {
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
				if stx {
					sys.Fstat(int(efd))
				}
				if mask&sys.FAN_OPEN_PERM != 0 {
					sys.WriteResponse(fd, efd, sys.FAN_ALLOW)
				}
				sys.Close(int(efd))
			}
			if l <= 0 {
				break
			}
			off += l
		}
	}
}
