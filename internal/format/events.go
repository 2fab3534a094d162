// Package format prints the events of `fsnotifyd watch` and `fsnotifyd trace`: inotifywait's
// --format and --timefmt, JSON lines, and fatrace-style trace lines. The CLI fills a Record per
// event and appends it to a reused buffer with a Formatter, so printing does not allocate.
//
// The formats are documented in docs/trace-format.md.
package format

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/fsevent"
)

// watchEvents are the events -e takes, named as fsevent names them in lower case: inotifywait's
// (with its groups close and move), plus fanotify's open_exec and rename.
var watchEvents = []engine.Mask{engine.Access, engine.Modify, engine.Attrib, engine.CloseWrite, engine.CloseNoWrite,
	engine.Close, engine.Open, engine.OpenExec, engine.MovedFrom, engine.MovedTo, engine.Move, engine.Create,
	engine.Delete, engine.DeleteSelf, engine.MoveSelf, engine.Rename}

// EventNames returns the names ParseEvents accepts, in a stable order (for --help).
func EventNames() []string {
	names := make([]string, len(watchEvents))
	for i, m := range watchEvents {
		names[i] = strings.ToLower(fsevent.Name(m))
	}
	return names
}

// ParseEvents parses -e's comma list (for example "create,close_write,move") into a mask.
// Names are matched without regard to case, as inotifywait does, and blanks around them are
// ignored; an unknown or empty name is an error that names it and lists the valid ones.
func ParseEvents(list string) (engine.Mask, error) {
	if strings.TrimSpace(list) == "" {
		return 0, fmt.Errorf("empty event list (want a comma list of %s)", strings.Join(EventNames(), ", "))
	}
	var m engine.Mask
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			return 0, fmt.Errorf("empty event name in %q (want a comma list of %s)", list, strings.Join(EventNames(), ", "))
		}
		bit, ok := fsevent.MaskByName(name)
		if !ok || !slices.Contains(watchEvents, bit) {
			return 0, fmt.Errorf("unknown event %q (want %s)", name, strings.Join(EventNames(), ", "))
		}
		m |= bit
	}
	return m, nil
}

// inotifyOrder is the order of %e: inotifywait's (libinotifytools'
// inotifytools_event_to_str), including its CLOSE after either close event, so that scripts
// matching "CLOSE_WRITE,CLOSE" or "CREATE,ISDIR" keep working; fanotify-only events follow in
// bit order. ISDIR comes last, as in inotifywait. The names are fsevent's.
var inotifyOrder = []engine.Mask{engine.Access, engine.Modify, engine.Attrib, engine.CloseWrite, engine.CloseNoWrite,
	engine.Open, engine.MovedFrom, engine.MovedTo, engine.Create, engine.Delete, engine.DeleteSelf,
	engine.QueueOverflow, engine.Close, engine.MoveSelf, engine.OpenExec, engine.FSError, engine.OpenPerm,
	engine.AccessPerm, engine.OpenExecPerm, engine.PreAccess, engine.Rename}

// flagBits are not events.
const flagBits = fsevent.EventFlags

// appendNames appends the names of m in the order of order, separated by sep; bits without a
// name follow as 0x-prefixed hexadecimal, as fsevent writes them.
func appendNames(dst []byte, order []engine.Mask, m engine.Mask, sep string, isDir bool) []byte {
	first := true
	add := func(name string) {
		if !first {
			dst = append(dst, sep...)
		}
		first = false
		dst = append(dst, name...)
	}
	for _, bits := range order {
		if m&bits != 0 {
			add(fsevent.Name(bits))
		}
	}
	for bit := engine.Mask(1); bit != 0; bit <<= 1 {
		if m&^flagBits&bit != 0 && fsevent.Name(bit) == "" {
			add("0x")
			dst = strconv.AppendUint(dst, uint64(bit), 16)
		}
	}
	if isDir {
		add("ISDIR")
	}
	return dst
}

// InotifyNames returns m as %e prints it: inotifywait's upper-case names joined by sep,
// with ISDIR last when isDir.
func InotifyNames(m engine.Mask, isDir bool, sep string) string {
	return string(appendNames(nil, inotifyOrder, m, sep, isDir))
}

// traceLetters are fatrace's event letters, in fatrace's order (R C W O + D < >), with the
// letters fatrace lacks inserted: E for exec, A for attrib, F for a filesystem error and ! for
// lost events. Permission events print as the access they ask for. A close_write is "CW", as
// in fatrace; a rename is "<>", moved out of one place and into another.
var traceLetters = []struct {
	mask   engine.Mask
	letter byte
}{
	{engine.Access | engine.AccessPerm | engine.PreAccess, 'R'},
	{engine.Close, 'C'},
	{engine.Modify | engine.CloseWrite, 'W'},
	{engine.Open | engine.OpenPerm, 'O'},
	{engine.OpenExec | engine.OpenExecPerm, 'E'},
	{engine.Create, '+'},
	{engine.Delete | engine.DeleteSelf, 'D'},
	{engine.MovedFrom | engine.MoveSelf | engine.Rename, '<'},
	{engine.MovedTo | engine.Rename, '>'},
	{engine.Attrib, 'A'},
	{engine.FSError, 'F'},
	{engine.QueueOverflow, '!'},
}

// appendLetters appends the trace letters of m.
func appendLetters(dst []byte, m engine.Mask) []byte {
	for _, l := range traceLetters {
		if m&l.mask != 0 {
			dst = append(dst, l.letter)
		}
	}
	return dst
}

// Letters returns the fatrace-style letters of m (for example "CW" for a close after write).
func Letters(m engine.Mask) string { return string(appendLetters(nil, m)) }
