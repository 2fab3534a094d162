//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/format"
)

// event is what watch and trace print: a record, or a report that events were lost.
type event struct {
	rec      format.Record
	overflow bool
	resync   bool // the daemon restarted: events may have been missed
}

// watchSpec is one thing to watch.
type watchSpec struct {
	path string // as the user wrote it
	abs  string
	kind engine.Kind
	mask engine.Mask
}

// source delivers the events of a set of watches: embedded (backend + engine in this
// process) or through the daemon.
type source interface {
	// add places a watch; its marks are in place when it returns.
	add(w watchSpec) error
	// next blocks for the next batch of events.
	next(ctx context.Context, dst []event) ([]event, error)
	close() error
}

// embedded runs the backend and an engine group in this process.
type embedded struct {
	b       *backend.Backend
	g       *engine.Group
	watches []watchSpec
	buf     []engine.Delivery
}

func newEmbedded(opts engine.Options, withExe bool) (*embedded, error) {
	b, err := backend.New(backend.Options{Mode: backend.ModeAuto, Exe: withExe})
	if err != nil {
		return nil, err
	}
	if opts.QueueLimit == 0 {
		opts.QueueLimit = 1 << 18 // a terminal can fall behind a burst; keep more than the kernel's 16384
	}
	g, err := b.Engine().NewGroup(opts)
	if err != nil {
		b.Close()
		return nil, err
	}
	return &embedded{b: b, g: g, buf: make([]engine.Delivery, 256)}, nil
}

func (s *embedded) add(w watchSpec) error {
	t, err := s.b.Resolve(w.abs, w.kind, false)
	if err != nil {
		return explainPathError(w.path, err)
	}
	spec := engine.MarkSpec{Mask: w.mask}
	if w.kind == engine.KindInode && !t.IsDir {
		spec.Mask &^= engine.EventOnChild | engine.DirentEvents
	}
	if err := s.b.AddMark(s.g, t, spec); err != nil {
		return fmt.Errorf("%s: %w", w.path, err)
	}
	s.watches = append(s.watches, w)
	return nil
}

func (s *embedded) next(ctx context.Context, dst []event) ([]event, error) {
	n, err := s.g.ReadBatch(ctx, s.buf)
	if err != nil {
		return dst, err
	}
	for _, d := range s.buf[:n] {
		if d.Mask&engine.QueueOverflow != 0 {
			dst = append(dst, event{overflow: true, rec: format.Record{Time: time.Now(), Mask: engine.QueueOverflow}})
			continue
		}
		ev := d.Event
		r := format.Record{
			Time:    ev.Time,
			Path:    ev.GetPath(),
			OldPath: ev.OldPath,
			Mask:    d.Mask,
			IsDir:   d.Mask&engine.OnDir != 0,
			Pid:     int(ev.Pid),
			Comm:    ev.Comm,
			Exe:     ev.Exe,
		}
		if r.Path == "" {
			// What is known instead: the object (the backend's inode IDs are {dev, ino}) and
			// its name, if the event carries it.
			r.PathUnknown, r.Name = true, ev.Name
			if !ev.Inode.IsZero() {
				r.HasObject, r.Dev, r.Ino = true, ev.Inode.Hi, ev.Inode.Lo
			}
		}
		if r.Time.IsZero() {
			r.Time = time.Now()
		}
		d.Release()
		dst = append(dst, event{rec: r})
	}
	return dst, nil
}

func (s *embedded) close() error {
	s.g.Close()
	return s.b.Close()
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
		if path == w.abs {
			return w.path, ""
		}
		if rest, ok := strings.CutPrefix(path, w.abs+"/"); ok || w.abs == "/" && strings.HasPrefix(path, "/") {
			if w.abs == "/" {
				rest = path[1:]
			}
			user = strings.TrimSuffix(w.path, "/") + "/" + rest
			break
		}
	}
	if isRoot {
		return user, ""
	}
	dir, base := filepath.Split(user)
	return dir, base
}
