//go:build linux

package main

import (
	"io"
	"strings"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/format"
)

// writeSplit writes r as one line per operation: a kernel event that carries several
// (merged in the kernel's queue: OPEN|CLOSE_NOWRITE) becomes one line each, in the order
// they happen for one object (engine.SplitOrder; docs/events.md), as inotifywait prints
// inotify's events. It writes at most max lines (0: no limit) and returns line, reused as
// the buffer, and how many it wrote. show, if not nil, is asked about each line's record
// (its mask one operation, %w and %f as printed): a line it refuses is not written, nor
// counted.
//
// A DELETE_SELF or MOVE_SELF is printed as the object's own event, %w its path and %f empty,
// as inotifywait prints them (it watches each directory itself: `a/b/ DELETE_SELF`), not as
// an entry of its directory (`a/ DELETE_SELF b`), which is how the other parts of the same
// kernel event print.
func writeSplit(w io.Writer, out format.Formatter, r *format.Record, line []byte, max int, show func(*format.Record) bool) ([]byte, int, error) {
	var parts [4]engine.Mask
	mask, watched, name, oldPath := r.Mask, r.Watched, r.Name, r.OldPath
	defer func() { r.Mask, r.Watched, r.Name, r.OldPath = mask, watched, name, oldPath }()
	n := 0
	for _, m := range engine.SplitMask(mask, parts[:0]) {
		if max > 0 && n == max {
			break
		}
		r.Mask = m
		r.Watched, r.Name, r.OldPath = watched, name, oldPath
		if m&(engine.Rename|engine.MovedTo|engine.MoveSelf) == 0 {
			r.OldPath = "" // the source of the rename or move, not of the entry's other events
		}
		if m&(engine.DeleteSelf|engine.MoveSelf) != 0 && name != "" {
			r.Watched, r.Name = strings.TrimSuffix(watched, "/")+"/"+name, ""
		}
		if show != nil && !show(r) {
			continue
		}
		line = out.Append(line[:0], r)
		line = append(line, '\n')
		if _, err := w.Write(line); err != nil {
			return line, n, err
		}
		n++
	}
	return line, n, nil
}
