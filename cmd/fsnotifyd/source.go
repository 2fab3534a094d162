//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/format"
	"github.com/fsnotifyd/fsnotifyd/internal/paths"
	"github.com/fsnotifyd/fsnotifyd/internal/source"
)

// event is what watch and trace print: a record, or a report that events were lost.
type event struct {
	rec      format.Record
	overflow bool
	resync   bool // the daemon restarted: events may have been missed
	// self is 1 + the index of the first watch (in the order added) whose object the event
	// is on (source.Self: by identity, whatever path it was reached by); 0 if none.
	self int
}

// watchSpec is one thing to watch.
type watchSpec struct {
	path string // as the user wrote it
	abs  string
	kind engine.Kind
	mask engine.Mask
	// machine: one of the filesystems of a trace of every filesystem (no PATH), which one
	// that refuses the mark must not end (stream: traced by its mount, or skipped, said).
	machine bool
}

// events is the one event source of watch and trace: embedded (a backend and an engine group
// in this process), or the daemon's with --daemon (internal/source decides which, once).
type events struct {
	cmd   string // watch or trace
	src   source.Source
	buf   []source.Event
	marks []*source.Mark // of each watch added, in order
	log   *logWriter     // the embedded backend's warnings, on stderr
}

// openSource opens the source of a watch or trace named cmd. withExe asks for each process's
// executable (embedded only: the daemon does not send it); prune are watch's @PATHs (embedded
// on inotify, no watch goes below them).
func openSource(cmd string, daemon daemonFlag, withExe bool, prune []string) (*events, error) {
	opts := source.Options{Name: cmd, Exe: withExe, Prune: prune,
		// A terminal can fall behind a burst: keep more than the kernel's 16384.
		QueueLimit: 1 << 18,
		// watch reports one operation per event, in order, as inotifywait: its group merges
		// only exact repeats (a touch's open, attrib and close stay three events, in their
		// order, also on inotify, where the kernel merged none of them). trace reports the
		// kernel's events as fatrace does, merged.
		MergeLast: cmd == "watch"}
	var logw *logWriter
	if !daemon.on {
		// The backend's warnings (on inotify: a directory of a tree that could not be
		// watched, and why), as "fsnotifyd watch: msg=... path=... err=...", written by a
		// goroutine of their own: the backend's reader logs, and must never wait for stderr.
		logw = newLogWriter(prefixWriter{"fsnotifyd " + cmd + ": ", os.Stderr})
		opts.Logger = slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{
			ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
				if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
					return slog.Attr{}
				}
				return a
			}}))
	}
	if daemon.on {
		// The daemon's default queue; the command's name in its stats; the process's name
		// with each event, as embedded.
		opts = source.Options{Daemon: daemon.path(), Name: "fsnotifyd-" + cmd, WantComm: true, Buffer: 256}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src, err := source.Open(ctx, opts)
	if err != nil {
		logw.close()
		return nil, err
	}
	return &events{cmd: cmd, src: src, buf: make([]source.Event, 256), log: logw}, nil
}

// checkAsked says what the embedded backend on inotify (unprivileged) cannot report of the
// events -e named (asked; 0: -e not given): OPEN_EXEC, which inotify has no event for. Asked
// alone, nothing would ever be reported: an error; with others, a warning on stderr, and the
// others are reported.
func (s *events) checkAsked(asked engine.Mask) error {
	e, ok := s.src.(interface{ Backend() *backend.Backend })
	if asked&engine.OpenExec == 0 || !ok || e.Backend().Privileged() {
		return nil
	}
	const why = "-e open_exec: not reported unprivileged (inotify has no such event; an exec's open is reported as open): run as root or with --daemon"
	if asked&^engine.OpenExec == 0 {
		return errors.New(why)
	}
	fmt.Fprintf(os.Stderr, "fsnotifyd %s: %s; the other events are reported\n", s.cmd, why)
	return nil
}

func (d daemonFlag) path() string {
	if d.socket == "" || d.socket == "true" {
		return client.DefaultSocket
	}
	return d.socket
}

// fsRefusedError is add's error for a filesystem of a trace of every filesystem
// (watchSpec.machine) that cannot be traced whole for a reason of its own: it refuses the mark
// (overlayfs: EOPNOTSUPP; ENODEV, EXDEV), or its mount point refuses root (a user's FUSE
// mount without allow_other: EACCES). Not a lack of privilege, nor a daemon's refusal.
type fsRefusedError struct{ error }

func (e fsRefusedError) Unwrap() error { return e.error }

// add places a watch; its marks are in place when it returns.
func (s *events) add(w watchSpec) error {
	err := s.addMark(w)
	if w.machine && errors.Is(err, backend.ErrNeedsPrivilege) {
		// Not "/dev/shm: filesystem watch: needs root": the user named no filesystem.
		return fmt.Errorf("tracing every filesystem (no --mount, --fs or PATH) %w; or name the directories to trace: unprivileged, a trace of PATHs runs on inotify", backend.ErrNeedsPrivilege)
	}
	if err != nil && w.machine && !errors.Is(err, backend.ErrNeedsPrivilege) && !errors.As(err, new(*client.Error)) &&
		(errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.EXDEV) || errors.Is(err, os.ErrPermission)) {
		return fsRefusedError{err}
	}
	return err
}

func (s *events) addMark(w watchSpec) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := s.src.AddMark(ctx, w.abs, w.kind, engine.MarkSpec{Mask: w.mask})
	if me := (*source.MarkError)(nil); errors.As(err, &me) {
		if s.cmd == "trace" && !w.machine && w.kind != engine.KindMount && (errors.Is(me.Err, syscall.EOPNOTSUPP) || errors.Is(me.Err, syscall.ENODEV)) {
			// A filesystem that reports no filesystem-wide events (overlayfs) still
			// reports a mount's.
			return fmt.Errorf("%s: %w; trace --mount %s reports its opens, reads, writes and closes", w.path, me.Err, w.path)
		}
		if s.cmd == "watch" && w.kind == engine.KindSubtree && errors.Is(me.Err, syscall.EOPNOTSUPP) {
			// overlayfs: no filesystem-wide events. What is changed through it lands in its
			// upper layer, whose filesystem has them.
			return fmt.Errorf("%s: %w; on an overlayfs, watch -r its upper layer directory (upperdir= in /proc/self/mountinfo), where every change made through the overlay lands, or watch as a user without privilege (inotify: the changes made through this overlay, not those made in its layers directly)", w.path, me.Err)
		}
		if !w.machine && errors.Is(me.Err, syscall.EACCES) {
			// inotify_add_watch needs read permission on the object (a directory of mode
			// 0700 another user owns): explained as a refused stat is, not as the raw call.
			return explained{explainPathError(w.path, me.Err), me.Err}
		}
		return fmt.Errorf("%s: %w", w.path, me.Err)
	}
	if err != nil {
		if e := explainPathError(w.path, err); e != err {
			return explained{e, err}
		}
		return err
	}
	s.marks = append(s.marks, m)
	return nil
}

// explained is an error explained for the user, which still answers errors.Is for its cause.
type explained struct{ msg, cause error }

func (e explained) Error() string { return e.msg.Error() }
func (e explained) Unwrap() error { return e.cause }

// next blocks for the next batch of events and appends them to dst.
func (s *events) next(ctx context.Context, dst []event) ([]event, error) {
	n, err := s.src.ReadBatch(ctx, s.buf)
	for i := range s.buf[:n] {
		ev := &s.buf[i]
		dst = append(dst, event{rec: format.FromEvent(&ev.Event), overflow: ev.IsOverflow() && !ev.Resync, resync: ev.Resync,
			self: s.selfWatch(ev)})
		ev.Release() // a notification source: nothing to answer
		*ev = source.Event{}
	}
	if n > 0 {
		return dst, nil // these first; the error again on the next call
	}
	return dst, err
}

// selfWatch is event.self: which inode watch (1-based) ev is on the object of, 0 if none.
func (s *events) selfWatch(ev *source.Event) int {
	if ev.IsOverflow() || ev.Resync {
		return 0
	}
	for i, m := range s.marks {
		if m.Kind == engine.KindInode && ev.Relation(m) == source.Self {
			return i + 1
		}
	}
	return 0
}

func (s *events) close() error {
	err := s.src.Close()
	s.log.close()
	return err
}

// prefixWriter writes each line written to it (one Write a line, as log/slog writes) after
// prefix.
type prefixWriter struct {
	prefix string
	w      io.Writer
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, p.prefix+string(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}

// explainPathError turns a resolve error into one line that says what to do.
func explainPathError(path string, err error) error {
	if de := (*client.Error)(nil); errors.As(err, &de) {
		// The daemon's refusal says why and what is needed (a mount mark needs root or an
		// allowed uid, say): pass it on rather than a guess from its errno.
		return fmt.Errorf("%s: the daemon refused (%s): %s", path, de.Code, de.Msg)
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s: no such file or directory", path)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%s: permission denied (run as a user who can read it, or as root)", path)
	case errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("%s: not a directory", path)
	}
	return err
}

// absPath makes path absolute and clean, keeping the error about a missing path for later.
func absPath(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	return abs
}

// displayer maps absolute event paths back to the form the user wrote the watched path in
// ("./sub/f" under "watch ."), as inotifywait prints them.
type displayer struct {
	roots []watchSpec
}

// split returns the watched directory (for %w) and name (for %f) of an event path.
func (d *displayer) split(path string, isRoot bool) (watched, name string) {
	user := path
	for _, w := range d.roots {
		if rest, ok := paths.Below(path, w.abs); ok {
			if rest == "" {
				return w.path, ""
			}
			if p := strings.TrimSuffix(w.path, "/"); p == strings.TrimSuffix(w.abs, "/") {
				// Given as it is absolute: the event's path is already p + "/" + rest,
				// not built again (a string per line).
				user = path
			} else {
				user = p + "/" + rest
			}
			break
		}
	}
	if isRoot {
		return user, ""
	}
	dir, base := filepath.Split(user)
	return dir, base
}
