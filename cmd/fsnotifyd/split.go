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
// inotify's events. It returns line, reused as the buffer.
func writeSplit(w io.Writer, out format.Formatter, r *format.Record, line []byte) ([]byte, error) {
	var parts [4]engine.Mask
	mask := r.Mask
	defer func() { r.Mask = mask }()
	for _, m := range engine.SplitMask(mask, parts[:0]) {
		r.Mask = m
		line = out.Append(line[:0], r)
		line = append(line, '\n')
		if _, err := w.Write(line); err != nil {
			return line, err
		}
	}
	return line, nil
}
