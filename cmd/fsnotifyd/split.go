//go:build linux

package main

import (
	"io"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/format"
)

// writeSplit writes r as one line per operation: a kernel event that carries several
// (merged in the kernel's queue: OPEN|CLOSE_NOWRITE) becomes one line each, in the order
// they happen for one object (engine.SplitOrder; docs/events.md), as inotifywait prints
// inotify's events. It writes at most max lines (0: no limit) and returns line, reused as
// the buffer, and how many it wrote.
func writeSplit(w io.Writer, out format.Formatter, r *format.Record, line []byte, max int) ([]byte, int, error) {
	var parts [4]engine.Mask
	mask := r.Mask
	defer func() { r.Mask = mask }()
	n := 0
	for _, m := range engine.SplitMask(mask, parts[:0]) {
		if max > 0 && n == max {
			break
		}
		r.Mask = m
		line = out.Append(line[:0], r)
		line = append(line, '\n')
		if _, err := w.Write(line); err != nil {
			return line, n, err
		}
		n++
	}
	return line, n, nil
}
