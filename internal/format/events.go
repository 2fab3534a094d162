// Package format prints the events of `fsnotifyd watch` and `fsnotifyd trace`: inotifywait's
// --format and --timefmt, JSON lines, and fatrace-style trace lines. The CLI fills a Record per
// event and appends it to a reused buffer with a Formatter, so printing does not allocate.
//
// The formats are documented in docs/trace-format.md.
package format

import (
	"fmt"
	"strings"

	"github.com/fsnotifyd/fsnotifyd/engine"
)

// watchEvents are the names -e takes: inotifywait's, in lower case, plus fanotify's open_exec
// and rename.
var watchEvents = []struct {
	name string
	mask engine.Mask
}{
	{"access", engine.Access},
	{"modify", engine.Modify},
	{"attrib", engine.Attrib},
	{"close_write", engine.CloseWrite},
	{"close_nowrite", engine.CloseNoWrite},
	{"close", engine.Close},
	{"open", engine.Open},
	{"open_exec", engine.OpenExec},
	{"moved_from", engine.MovedFrom},
	{"moved_to", engine.MovedTo},
	{"move", engine.Move},
	{"create", engine.Create},
	{"delete", engine.Delete},
	{"delete_self", engine.DeleteSelf},
	{"move_self", engine.MoveSelf},
	{"rename", engine.Rename},
}

// EventNames returns the names ParseEvents accepts, in a stable order (for --help).
func EventNames() []string {
	names := make([]string, len(watchEvents))
	for i, e := range watchEvents {
		names[i] = e.name
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
		bit := engine.Mask(0)
		for _, e := range watchEvents {
			if strings.EqualFold(name, e.name) {
				bit = e.mask
				break
			}
		}
		if bit == 0 {
			return 0, fmt.Errorf("unknown event %q (want %s)", name, strings.Join(EventNames(), ", "))
		}
		m |= bit
	}
	return m, nil
}

type named struct {
	mask engine.Mask
	name string
}

// inotifyNames is the order and naming of %e: inotifywait's (libinotifytools'
// inotifytools_event_to_str), including its CLOSE after either close event, so that scripts
// matching "CLOSE_WRITE,CLOSE" or "CREATE,ISDIR" keep working; fanotify-only events follow in
// bit order. ISDIR comes last, as in inotifywait.
var inotifyNames = []named{
	{engine.Access, "ACCESS"},
	{engine.Modify, "MODIFY"},
	{engine.Attrib, "ATTRIB"},
	{engine.CloseWrite, "CLOSE_WRITE"},
	{engine.CloseNoWrite, "CLOSE_NOWRITE"},
	{engine.Open, "OPEN"},
	{engine.MovedFrom, "MOVED_FROM"},
	{engine.MovedTo, "MOVED_TO"},
	{engine.Create, "CREATE"},
	{engine.Delete, "DELETE"},
	{engine.DeleteSelf, "DELETE_SELF"},
	{engine.QueueOverflow, "Q_OVERFLOW"},
	{engine.Close, "CLOSE"},
	{engine.MoveSelf, "MOVE_SELF"},
	{engine.OpenExec, "OPEN_EXEC"},
	{engine.FSError, "FS_ERROR"},
	{engine.OpenPerm, "OPEN_PERM"},
	{engine.AccessPerm, "ACCESS_PERM"},
	{engine.OpenExecPerm, "OPEN_EXEC_PERM"},
	{engine.PreAccess, "PRE_ACCESS"},
	{engine.Rename, "RENAME"},
}

// jsonNames is the order and naming of JSON's "events": the kernel's names in bit order, one
// per bit (no CLOSE pseudo-event, no ISDIR: that is the "isdir" field).
var jsonNames = []named{
	{engine.Access, "ACCESS"},
	{engine.Modify, "MODIFY"},
	{engine.Attrib, "ATTRIB"},
	{engine.CloseWrite, "CLOSE_WRITE"},
	{engine.CloseNoWrite, "CLOSE_NOWRITE"},
	{engine.Open, "OPEN"},
	{engine.MovedFrom, "MOVED_FROM"},
	{engine.MovedTo, "MOVED_TO"},
	{engine.Create, "CREATE"},
	{engine.Delete, "DELETE"},
	{engine.DeleteSelf, "DELETE_SELF"},
	{engine.MoveSelf, "MOVE_SELF"},
	{engine.OpenExec, "OPEN_EXEC"},
	{engine.QueueOverflow, "Q_OVERFLOW"},
	{engine.FSError, "FS_ERROR"},
	{engine.OpenPerm, "OPEN_PERM"},
	{engine.AccessPerm, "ACCESS_PERM"},
	{engine.OpenExecPerm, "OPEN_EXEC_PERM"},
	{engine.PreAccess, "PRE_ACCESS"},
	{engine.Rename, "RENAME"},
}

// knownBits are the event bits with names; others print as hexadecimal (0x...).
var knownBits = func() engine.Mask {
	var m engine.Mask
	for _, n := range jsonNames {
		m |= n.mask
	}
	return m
}()

// flagBits are not events.
const flagBits = engine.OnDir | engine.EventOnChild

// appendNames appends the names of m from table, separated by sep; unknown bits follow as
// 0x-prefixed hexadecimal.
func appendNames(dst []byte, table []named, m engine.Mask, sep string, isDir bool) []byte {
	first := true
	add := func(name string) {
		if !first {
			dst = append(dst, sep...)
		}
		first = false
		dst = append(dst, name...)
	}
	for _, n := range table {
		if m&n.mask != 0 {
			add(n.name)
		}
	}
	if rest := m &^ knownBits &^ flagBits; rest != 0 {
		for bit := engine.Mask(1); bit != 0; bit <<= 1 {
			if rest&bit != 0 {
				if !first {
					dst = append(dst, sep...)
				}
				first = false
				dst = append(dst, "0x"...)
				dst = appendHex(dst, uint64(bit))
			}
		}
	}
	if isDir {
		add("ISDIR")
	}
	return dst
}

func appendHex(dst []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	var buf [16]byte
	i := len(buf)
	for {
		i--
		buf[i] = digits[v&0xf]
		v >>= 4
		if v == 0 {
			break
		}
	}
	return append(dst, buf[i:]...)
}

// InotifyNames returns m as %e prints it: inotifywait's upper-case names joined by sep,
// with ISDIR last when isDir.
func InotifyNames(m engine.Mask, isDir bool, sep string) string {
	return string(appendNames(nil, inotifyNames, m, sep, isDir))
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
