package fsevent

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// Event is one file event: the one record every source of events produces — the kernel
// through this process's backend, or the daemon through its protocol — and every consumer
// reads. Zero values mean unknown: no field is made up.
type Event struct {
	// ID identifies a permission event, to be answered; 0 for a notification.
	ID uint64
	// Mask holds the event bits the listener's marks selected, plus OnDir for a directory. A
	// permission event holds exactly one permission bit. QueueOverflow (alone) says events
	// were lost here.
	Mask Mask
	// Time is when the event was read from the kernel (zero if unknown).
	Time time.Time
	// Pid and Tid are the process and thread that caused the event, in the reader's pid
	// namespace (0 if unknown).
	Pid, Tid int32
	// UID is the accessing process's effective uid, when HasUID.
	UID    uint32
	HasUID bool
	// Comm is the accessing process's command name, read when the event was read ("" if
	// unknown or not asked for). Any process can set its own.
	Comm string
	// Exe is the accessing process's executable (/proc/PID/exe; a deleted one without the
	// kernel's " (deleted)": ExeDeleted) where the source read it ("" otherwise). The daemon does not send
	// it.
	Exe string
	// ExeDeleted: the executable was deleted; Exe is its path without the kernel's
	// " (deleted)" (a file named so keeps it in Exe, and this is false).
	ExeDeleted bool
	// Path is the object's absolute path, OldPath the source path of a rename or move. Both
	// are "" when unknown (or not the listener's to know).
	Path, OldPath string
	// PathUnknown says the object's path could not be read (deeper than the kernel prints
	// for a file, or printed wrong): Path is "", and a consumer deciding by path must treat
	// it as unknown, never as a path that matches nothing.
	PathUnknown bool
	// Dev and Ino, with HasObject, identify the object the event is reported on (for a
	// directory-entry event, the directory): st_dev as makedev(major, minor) and the inode
	// number; Ino 0 when the number is unknown (the object was gone when its event was read).
	Dev, Ino  uint64
	HasObject bool
	// Name is the entry name of a directory-entry event or of a child's event; NewName the
	// new name of a Rename.
	Name, NewName string
	// Range is the byte range of a PreAccess event (zero otherwise).
	Range Range
	// FSErrno and FSErrorCount describe an FSError event (zero otherwise).
	FSErrno      int32
	FSErrorCount uint32
	// FD is a permission event's open file, where the source hands one out (a daemon client
	// granted event descriptors). Whoever holds the event owns it and must close it.
	FD FD
}

// IsDir reports whether the event's object is a directory (Mask has OnDir).
func (e *Event) IsDir() bool { return e.Mask&OnDir != 0 }

// IsOverflow reports whether the event says that events were lost here.
func (e *Event) IsOverflow() bool { return e.Mask&QueueOverflow != 0 }

// AppendJSON appends the event as one JSON object, without a newline: the object
// `fsnotifyd watch --json` prints (docs/trace-format.md, "JSON lines"), and the payload of a
// fleet event record (docs/fleet.md):
//
//	{"time":"2024-05-01T12:00:00.123456789+02:00","path":"/srv/a","events":["CLOSE_WRITE"],
//	 "isdir":false,"pid":42,"comm":"cp","exe":"/usr/bin/cp","old_path":"/srv/b"}
//
// in that order. time (RFC 3339 with nanoseconds, in the time's location), path, pid, comm,
// exe and old_path are left out when unknown (zero); events (the kernel's names in bit order,
// no flags) and isdir are always there. An event whose path is unknown (PathUnknown) ends with
// what is known instead: "path_unknown":true, then "dev":"MAJOR:MINOR" and "ino":N
// (HasObject; "ino" left out when 0, unknown), then "name" (if known). A string that is not valid UTF-8 (Linux names are
// bytes) cannot be a JSON string without losing bytes, so it is written as KEY_raw, an array
// of its bytes ("path_raw":[47,255]), as fatrace does. It allocates nothing beyond dst.
func (e *Event) AppendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	sep := false
	field := func(key string) {
		if sep {
			dst = append(dst, ',')
		}
		sep = true
		dst = append(dst, '"')
		dst = append(dst, key...)
		dst = append(dst, `":`...)
	}
	if !e.Time.IsZero() {
		field("time")
		dst = append(dst, '"')
		dst = e.Time.AppendFormat(dst, time.RFC3339Nano)
		dst = append(dst, '"')
	}
	if e.Path != "" {
		dst = appendJSONField(dst, &sep, "path", e.Path)
	}
	field("events")
	dst = append(dst, '[')
	if m := e.Mask &^ EventFlags; m != 0 {
		dst = append(dst, '"')
		dst = m.AppendNames(dst, `","`)
		dst = append(dst, '"')
	}
	dst = append(dst, ']')
	field("isdir")
	dst = strconv.AppendBool(dst, e.IsDir())
	if e.Pid > 0 {
		field("pid")
		dst = strconv.AppendInt(dst, int64(e.Pid), 10)
	}
	if e.Comm != "" {
		dst = appendJSONField(dst, &sep, "comm", e.Comm)
	}
	if e.Exe != "" {
		dst = appendJSONField(dst, &sep, "exe", e.Exe)
		if e.ExeDeleted {
			field("exe_deleted")
			dst = append(dst, "true"...)
		}
	}
	if e.OldPath != "" {
		dst = appendJSONField(dst, &sep, "old_path", e.OldPath)
	}
	if e.PathUnknown {
		field("path_unknown")
		dst = append(dst, "true"...)
		if e.HasObject {
			field("dev")
			dst = AppendDev(append(dst, '"'), e.Dev)
			dst = append(dst, '"')
			if e.Ino != 0 {
				field("ino")
				dst = strconv.AppendUint(dst, e.Ino, 10)
			}
		}
		if e.Name != "" {
			dst = appendJSONField(dst, &sep, "name", e.Name)
		}
	}
	return append(dst, '}')
}

// MarshalJSON is AppendJSON for encoding/json, which escapes <, > and & in the strings it
// is given unless told not to (Encoder.SetEscapeHTML): use AppendJSON for the exact line.
func (e Event) MarshalJSON() ([]byte, error) { return e.AppendJSON(nil), nil }

// DevString is a device number (st_dev) as MAJOR:MINOR, as the JSON and trace formats print
// it.
func DevString(dev uint64) string { return string(AppendDev(nil, dev)) }

// AppendDev appends a device number as MAJOR:MINOR (the kernel's new_encode_dev split, as
// /proc/self/mountinfo prints it).
func AppendDev(dst []byte, dev uint64) []byte {
	major := (dev >> 8 & 0xfff) | (dev >> 32 & 0xfffff000)
	minor := (dev & 0xff) | (dev >> 12 & 0xffffff00)
	dst = strconv.AppendUint(dst, major, 10)
	dst = append(dst, ':')
	return strconv.AppendUint(dst, minor, 10)
}

// appendJSONField appends "key":"value", or "key_raw":[bytes] when value is not UTF-8.
func appendJSONField(dst []byte, sep *bool, key, value string) []byte {
	if *sep {
		dst = append(dst, ',')
	}
	*sep = true
	dst = append(dst, '"')
	dst = append(dst, key...)
	if !utf8.ValidString(value) {
		return appendByteArray(append(dst, `_raw":`...), value)
	}
	dst = append(dst, `":`...)
	return appendJSONString(dst, value)
}

// appendByteArray appends s's bytes as a JSON array of numbers: [47,97,255].
func appendByteArray(dst []byte, s string) []byte {
	dst = append(dst, '[')
	for i := 0; i < len(s); i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendUint(dst, uint64(s[i]), 10)
	}
	return append(dst, ']')
}

// appendJSONString appends s (valid UTF-8) as a JSON string. Control characters are escaped,
// and so are DEL, the C1 controls U+0080-U+009F (a terminal that takes 8-bit controls reads
// U+009B as CSI, U+009D as OSC: `watch --json` on a terminal must not pass a name's escape
// sequences) and U+2028/U+2029 (which break JavaScript and some line-based tools).
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f && c != 0xe2 && c != 0xc2 {
			i++
			continue
		}
		if c == 0xc2 { // U+0080-U+009F are c2 80 to c2 9f
			if i+1 < len(s) && s[i+1] >= 0x80 && s[i+1] <= 0x9f {
				dst = append(dst, s[start:i]...)
				dst = append(dst, '\\', 'u', '0', '0', hex[s[i+1]>>4], hex[s[i+1]&0xf])
				i += 2
				start = i
				continue
			}
			i++
			continue
		}
		if c == 0xe2 { // U+2028 and U+2029 are e2 80 a8 and e2 80 a9
			if i+2 < len(s) && s[i+1] == 0x80 && (s[i+2] == 0xa8 || s[i+2] == 0xa9) {
				dst = append(dst, s[start:i]...)
				if s[i+2] == 0xa8 {
					dst = append(dst, `\u2028`...)
				} else {
					dst = append(dst, `\u2029`...)
				}
				i += 3
				start = i
				continue
			}
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
