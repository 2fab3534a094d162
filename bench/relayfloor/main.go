//go:build linux

// Command relayfloor measures what any out-of-process permission relay costs on this machine:
// the floor under bench/daemon.sh's daemon + client. It is a minimal Go relay between the
// kernel and a child process that allows everything, with no engine, no protocol, no paths:
// it marks DIR's children for FAN_OPEN_PERM, sends each event's 4-byte id to the child over a
// socketpair, and writes the child's answer to the kernel. MODE says how the relay waits:
//
//	split  a thread reads the kernel and sends the ids, another reads the answers and writes
//	       them to the kernel (the daemon's structure: kernel reader, one reader per client)
//	loop   one thread polls both the kernel and the socket (an event loop)
//	block  one thread sends an id and waits for its answer before it reads the kernel again
//	       (not an option for a daemon: one slow client stalls everyone)
//
//	relayfloor MODE DIR
//
// It prints "ready" once its mark is in place and runs until killed. bench/relayfloor.sh runs
// it beside fanref's responder, the same relay in C (bench/relayfloor.c) and the daemon with
// an out-of-process client, round by round in one run, and prints each one's per-open time
// over fanref's and context switches per open; docs/design/performance.md has the figures,
// with their date and machine. (The loop mode reads one answer per readiness, as the
// daemon's loop does; it used to read until EAGAIN, one empty read per event more.)
package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "child" {
		child()
		return
	}
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: relayfloor split|loop|block DIR")
		os.Exit(2)
	}
	mode, dir := os.Args[1], os.Args[2]
	if mode != "split" && mode != "loop" && mode != "block" {
		fmt.Fprintf(os.Stderr, "relayfloor: unknown mode %q (want split, loop or block)\n", mode)
		os.Exit(2)
	}
	fd, err := sys.FanotifyInit(sys.FAN_CLASS_CONTENT, sys.O_RDONLY)
	if err != nil {
		fail(err)
	}
	if err := sys.FanotifyMark(fd, sys.FAN_MARK_ADD, sys.FAN_OPEN_PERM|sys.FAN_EVENT_ON_CHILD, sys.AT_FDCWD, dir); err != nil {
		fail(err)
	}
	sv, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		fail(err)
	}
	f := os.NewFile(uintptr(sv[1]), "child-socket")
	cmd := exec.Command("/proc/self/exe", "child", mode)
	cmd.ExtraFiles = []*os.File{f} // fd 3
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		fail(err)
	}
	f.Close()
	r := &relay{kfd: fd, sock: sv[0]}
	fmt.Println("ready")
	switch mode {
	case "split":
		go r.answers()
		r.events(false)
	case "loop":
		if err := syscall.SetNonblock(fd, true); err != nil {
			fail(err)
		}
		if err := syscall.SetNonblock(sv[0], true); err != nil {
			fail(err)
		}
		r.loop()
	case "block":
		r.events(true)
	}
}

type relay struct {
	kfd, sock int
	buf       [64 << 10]byte
}

// events reads the kernel and sends each permission event's id; with wait, it also reads the
// answer and writes it to the kernel before going on.
func (r *relay) events(wait bool) {
	for {
		n, err := sys.Read(r.kfd, r.buf[:])
		if err != nil {
			fail(err)
		}
		r.forward(r.buf[:n], wait)
	}
}

// forward sends the ids of a buffer of fanotify events (struct fanotify_event_metadata:
// event_len u32, vers u8, reserved u8, metadata_len u16, mask u64, fd s32, pid s32).
func (r *relay) forward(b []byte, wait bool) {
	for len(b) >= 24 {
		l := int(binary.NativeEndian.Uint32(b))
		if l < 24 || l > len(b) {
			fail(fmt.Errorf("malformed event of %d bytes", l))
		}
		var id [4]byte
		copy(id[:], b[16:20])
		if _, err := syscall.Write(r.sock, id[:]); err != nil {
			fail(err)
		}
		if wait {
			r.answer()
		}
		b = b[l:]
	}
}

// answer reads one answer (an id) and allows that event; it reports false on EAGAIN.
func (r *relay) answer() bool {
	var id [4]byte
	if _, err := syscall.Read(r.sock, id[:]); err != nil {
		if err == syscall.EAGAIN {
			return false
		}
		fail(err)
	}
	efd := int32(binary.NativeEndian.Uint32(id[:]))
	if err := sys.WriteResponse(r.kfd, efd, sys.FAN_ALLOW); err != nil {
		fail(err)
	}
	sys.Close(int(efd))
	return true
}

func (r *relay) answers() {
	for {
		r.answer()
	}
}

func (r *relay) loop() {
	fds, ready := []int{r.kfd, r.sock}, make([]bool, 2)
	for {
		if err := sys.PollReadable(fds, ready); err != nil {
			fail(err)
		}
		if ready[0] {
			n, err := sys.Read(r.kfd, r.buf[:])
			if err == nil {
				r.forward(r.buf[:n], false)
			} else if err != syscall.EAGAIN {
				fail(err)
			}
		}
		if ready[1] {
			// One answer per readiness, as the daemon's loop reads: poll is level-triggered,
			// so what is left wakes the next poll, and no read finds the socket empty.
			r.answer()
		}
	}
}

// child answers every id it reads by sending it back.
func child() {
	var id [4]byte
	for {
		n, err := syscall.Read(3, id[:])
		if err != nil || n == 0 {
			return // the relay is gone
		}
		if _, err := syscall.Write(3, id[:n]); err != nil {
			return
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "relayfloor:", err)
	os.Exit(1)
}
