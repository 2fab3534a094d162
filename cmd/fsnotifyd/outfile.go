//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"
)

// openOutput opens name for appending lines (watch -o: mode 0600 as inotifywait; guard
// --audit: 0640), created with mode perm if missing, refusing what the kernel's
// fs.protected_symlinks, fs.protected_regular and fs.protected_fifos refuse, whatever those
// are set to here: in a directory others may write with the sticky bit (/tmp), a symbolic
// link, or an existing file or FIFO, that neither this process's user nor the directory's
// owner owns. There another user could have put it: a link to /etc/shadow that root would
// append to, their own file to read what root writes, or a FIFO that would hang the open. A
// FIFO or a pipe elsewhere (>(cmd)'s /dev/fd/N) is opened without waiting for a reader:
// with none, ENXIO.
func openOutput(name string, perm os.FileMode) (*os.File, error) {
	const flags = os.O_WRONLY | os.O_CREATE | os.O_APPEND | syscall.O_NONBLOCK
	euid := uint32(os.Geteuid())
	dir, err := os.Stat(filepath.Dir(name))
	if err != nil {
		return nil, err
	}
	dst, _ := dir.Sys().(*syscall.Stat_t)
	shared := dst != nil && dir.Mode()&os.ModeSticky != 0 && dir.Mode().Perm()&0o002 != 0
	// refuse reports a file or link of another user's in a shared directory.
	refuse := func(fi os.FileInfo, what string) error {
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !shared || !ok || st.Uid == euid || st.Uid == dst.Uid {
			return nil
		}
		return fmt.Errorf("%s owned by uid %d in %s, a directory anyone may write: another user may have put it there to %s (remove it, or choose a file in a directory of yours)",
			what, st.Uid, filepath.Dir(name), map[string]string{
				"a symbolic link": "point what is written at any file",
				"a file":          "read what is written",
				"a FIFO":          "read what is written, or stall the writer",
			}[what])
	}
	kind := func(fi os.FileInfo) string {
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			return "a symbolic link"
		case fi.Mode()&os.ModeNamedPipe != 0:
			return "a FIFO"
		}
		return "a file"
	}
	// What is there is looked at first: opening another user's FIFO would wait (or, without
	// a reader, fail) before its owner could be known.
	before, err := os.Lstat(name)
	switch {
	case err == nil:
		if err := refuse(before, kind(before)); err != nil {
			return nil, err
		}
	case errors.Is(err, os.ErrNotExist):
		before = nil
	default:
		return nil, err
	}
	follow := before != nil && before.Mode()&os.ModeSymlink != 0 // a link of ours (or the directory owner's)
	open := flags
	if !follow {
		open |= syscall.O_NOFOLLOW
	}
	f, err := os.OpenFile(name, open, perm)
	if pe := (*os.PathError)(nil); errors.As(err, &pe) && errors.Is(pe.Err, syscall.ENXIO) {
		pe.Err = fmt.Errorf("%w (a FIFO with no reader: start its reader first)", pe.Err)
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	switch {
	case err != nil:
	case before == nil:
		err = refuse(fi, kind(fi)) // put there since the Lstat: ours if we created it
	case !follow && !os.SameFile(before, fi):
		err = fmt.Errorf("it changed while it was opened: try again")
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// logQueue is how many log lines logWriter holds for its writer.
const logQueue = 4096

// logWriter hands each line written to it (one Write a line, as log/slog writes) to a
// goroutine of its own that writes it to w, so that the writer never waits for w's reader
// (the daemon's log, the guard's stderr: a stopped pager, a wedged shipper). When the
// goroutine is logQueue lines behind, lines are dropped and counted; the count is logged
// (dropped) once lines are written again.
type logWriter struct {
	ch      chan []byte
	done    chan struct{}
	w       *progressWriter
	lost    atomic.Uint64
	dropped func(n uint64) // logs that n lines were dropped; set before the first Write
}

func newLogWriter(w io.Writer) *logWriter {
	l := &logWriter{ch: make(chan []byte, logQueue), done: make(chan struct{}), w: &progressWriter{w: w}}
	go l.run()
	return l
}

func (l *logWriter) Write(p []byte) (int, error) {
	if l == nil { // none made (a guardRun a test built): written at once
		return os.Stderr.Write(p)
	}
	select {
	case l.ch <- bytes.Clone(p): // the handler reuses p
	default:
		l.lost.Add(1)
	}
	return len(p), nil
}

func (l *logWriter) run() {
	after := -1 // lines still to write after close's marker (the drop count among them)
	for b := range l.ch {
		if b == nil { // close's marker
			if n := l.lost.Swap(0); n > 0 && l.dropped != nil {
				l.dropped(n)
			}
			if after = len(l.ch); after == 0 {
				close(l.done)
				return
			}
			continue
		}
		l.w.Write(b)
		switch {
		case after > 0:
			if after--; after == 0 {
				close(l.done)
				return // later lines (a goroutine still logging) fill the queue, then are dropped
			}
		case after < 0 && l.lost.Load() > 0 && len(l.ch) < logQueue/2 && l.dropped != nil:
			l.dropped(l.lost.Swap(0))
		}
	}
}

// close waits until the lines logged so far are written, no longer than outputGrace for a
// writer that does not progress (its reader not reading); the writer's goroutine then ends.
// The channel stays open: a late line (a goroutine still logging) is queued or dropped,
// never a panic.
func (l *logWriter) close() {
	if l == nil {
		return
	}
	select {
	case l.ch <- nil:
	case <-time.After(outputGrace): // the queue is full, its writer stuck
		return
	}
	waitOutput(l.done, l.w)
}
