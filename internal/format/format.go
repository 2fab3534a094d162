package format

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/fsevent"
)

// Record is one event as the CLI prints it. Zero values mean unknown; no format invents what
// is unknown.
type Record struct {
	// Time is when the event was seen (zero: unknown).
	Time time.Time
	// Watched is the watched path the event came through, for %w. For inotifywait
	// compatibility with -r, the CLI passes the event's directory here and the entry's name
	// in Name, as inotifywait (one watch per directory) does.
	Watched string
	// Name is the entry's name relative to Watched, for %f; "" for Watched itself.
	Name string
	// Path is the absolute path of the object.
	Path string
	// OldPath is a rename's or move's source path ("" if none or unknown).
	OldPath string
	// OldPathUnknown: the event had a source, whose path is not known (a traced PATH's
	// MOVE_SELF after one whose place was unknown): a trace line prints "? -> NEW"; JSON
	// leaves old_path out.
	OldPathUnknown bool
	// Mask holds the event bits; an OnDir bit counts as IsDir.
	Mask engine.Mask
	// IsDir says the object is a directory.
	IsDir bool
	// Pid is the process that caused the event (0: unknown).
	Pid int
	// Comm is that process's name (/proc/PID/comm; "": unknown).
	Comm string
	// Exe is that process's executable (/proc/PID/exe) where it was read ("": not read, or
	// unknown).
	Exe string
	// ExeDeleted: the executable was deleted (Exe is its path, without " (deleted)").
	ExeDeleted bool
	// PathUnknown says the object's path could not be read (deeper than the kernel prints
	// for a file): Path is "", Name the object's name if known, and Dev and Ino (with
	// HasObject) identify the object the event is reported on.
	PathUnknown bool
	HasObject   bool
	Dev, Ino    uint64
}

func (r *Record) isDir() bool { return r.IsDir || r.Mask&engine.OnDir != 0 }

// Formatter appends a record to dst (without a trailing newline: the caller ends the line,
// which lets it choose, and reuse one buffer for every event).
type Formatter interface {
	Append(dst []byte, r *Record) []byte
}

// DefaultFormat is watch's output when no --format is given: inotifywait's default.
const DefaultFormat = "%w %,e %f"

// Format is a compiled inotifywait-style --format. It is immutable and safe for concurrent use.
type Format struct {
	src  string
	ops  []formatOp
	time *TimeFormat
}

type opKind uint8

const (
	opLiteral opKind = iota
	opWatched
	opName
	opEvents
	opTime
	opPid
	opComm
)

type formatOp struct {
	kind opKind
	text string // literal text, or the event separator
}

// Compile compiles an inotifywait --format ("" means DefaultFormat) and its --timefmt.
//
// Directives: %w the watched path (with a trailing / when it is a directory, as inotifywait
// prints it, so %w%f is the full path); %f the name within it; %e the events, comma-separated,
// in inotifywait's names and order (ISDIR included for a directory); %Xe the same separated
// by the character X; %T the time in timefmt (strftime); %p the pid and %c the command ("?"
// when unknown); %0 a NUL byte; %n a newline; %% a percent sign. Note that inotifywait's %c
// is the rename cookie; here it is the command.
//
// Anything else after % is an error, as is %T without a timefmt (inotifywait refuses it too);
// a timefmt without %T is ignored.
func Compile(format, timefmt string) (*Format, error) {
	if format == "" {
		format = DefaultFormat
	}
	f := &Format{src: format}
	lit := func(s string) {
		if n := len(f.ops); n > 0 && f.ops[n-1].kind == opLiteral {
			f.ops[n-1].text += s
			return
		}
		f.ops = append(f.ops, formatOp{kind: opLiteral, text: s})
	}
	usesTime := false
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			j := strings.IndexByte(format[i:], '%')
			if j < 0 {
				j = len(format) - i
			}
			lit(format[i : i+j])
			i += j - 1
			continue
		}
		if i+1 >= len(format) {
			return nil, fmt.Errorf("format %q ends with a lone %% (write %%%% for a literal %%)", format)
		}
		switch c := format[i+1]; c {
		case '%':
			lit("%")
		case '0':
			lit("\x00")
		case 'n':
			lit("\n")
		case 'w':
			f.ops = append(f.ops, formatOp{kind: opWatched})
		case 'f':
			f.ops = append(f.ops, formatOp{kind: opName})
		case 'e':
			f.ops = append(f.ops, formatOp{kind: opEvents, text: ","})
		case 'T':
			usesTime = true
			f.ops = append(f.ops, formatOp{kind: opTime})
		case 'p':
			f.ops = append(f.ops, formatOp{kind: opPid})
		case 'c':
			f.ops = append(f.ops, formatOp{kind: opComm})
		default:
			// %Xe: X is any one character (a UTF-8 sequence counts as one).
			r, w := utf8.DecodeRuneInString(format[i+1:])
			if j := i + 1 + w; j < len(format) && format[j] == 'e' {
				sep := format[i+1 : j]
				if r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || r == utf8.RuneError && w == 1 {
					return nil, fmt.Errorf("format %q: %q cannot separate events (they are made of letters and _): use punctuation or a blank, as in %%,e or %%|e", format, sep)
				}
				f.ops = append(f.ops, formatOp{kind: opEvents, text: sep})
				i = j - 1 // with the i++ below and the loop's, parsing resumes after the 'e'
				break
			}
			return nil, fmt.Errorf("format %q: unknown directive %q (want %%w %%f %%e %%Xe %%T %%p %%c %%0 %%n or %%%%)", format, "%"+string(format[i+1:i+1+w]))
		}
		i++
	}
	if usesTime {
		if timefmt == "" {
			return nil, fmt.Errorf("format %q uses %%T but no time format was given (--timefmt, e.g. '%%F %%T')", format)
		}
		t, err := CompileTime(timefmt)
		if err != nil {
			return nil, err
		}
		f.time = t
	}
	return f, nil
}

// MustCompile is Compile for formats known to be valid; it panics otherwise.
func MustCompile(format, timefmt string) *Format {
	f, err := Compile(format, timefmt)
	if err != nil {
		panic(err)
	}
	return f
}

// String returns the format as given (DefaultFormat for "").
func (f *Format) String() string { return f.src }

// Append appends r formatted. Names are printed as they are (no quoting), as inotifywait does:
// scripts that must survive any file name use %0 separators or JSON. For a terminal, wrap
// it in ForTerminal.
func (f *Format) Append(dst []byte, r *Record) []byte {
	for i := range f.ops {
		op := &f.ops[i]
		switch op.kind {
		case opLiteral:
			dst = append(dst, op.text...)
		case opWatched:
			dst = appendWatched(dst, r)
		case opName:
			dst = append(dst, r.Name...)
		case opEvents:
			dst = appendEvents(dst, r, op.text)
		case opTime:
			if !r.Time.IsZero() {
				dst = f.time.Append(dst, r.Time)
			}
		case opPid:
			dst = appendPid(dst, r.Pid)
		case opComm:
			if r.Comm == "" {
				dst = append(dst, '?')
			} else {
				dst = append(dst, r.Comm...)
			}
		}
	}
	return dst
}

// appendWatched appends %w: Watched, with a trailing / when it is a directory (an entry's
// directory, or a directory's own event), as inotifywait prints it, so that %w%f is the path.
func appendWatched(dst []byte, r *Record) []byte {
	dst = append(dst, r.Watched...)
	if r.Watched != "" && (r.Name != "" || r.isDir()) && !strings.HasSuffix(r.Watched, "/") {
		dst = append(dst, '/')
	}
	return dst
}

// appendEvents appends %e's names separated by sep. inotify reports a directory's DELETE_SELF
// and MOVE_SELF without IN_ISDIR (inotifywait prints `d/ DELETE_SELF`; the trailing slash
// tells the directory).
func appendEvents(dst []byte, r *Record, sep string) []byte {
	return appendNames(dst, inotifyOrder, r.Mask, sep, r.isDir() && r.Mask&(engine.DeleteSelf|engine.MoveSelf) == 0)
}

// AppendPath appends %w%f, the path as the --format directives print it ("d/sub/f", a
// directory's own event "d/sub/"): what watch's --exclude and --include match, as
// inotifywait matches its regular expression against "%w%f".
func AppendPath(dst []byte, r *Record) []byte {
	return append(appendWatched(dst, r), r.Name...)
}

// CSV formats a record as inotifywait -c does: %w, %e and %f separated by commas, each
// field quoted when it holds a comma, a double quote or a newline, or begins or ends with a
// blank; a quote inside a quoted field is doubled (RFC 4180):
//
//	d/,CREATE,"a,b"
//	d/,"CLOSE_WRITE,CLOSE","q""t"
//	"d/sub,1/",DELETE_SELF,
//
// An empty %w (an overflow's record) is left out with its comma, as inotifywait does
// ("Q_OVERFLOW,"). No other byte is escaped: a field is the name's bytes, quoted.
type CSV struct{}

// Append appends r as a CSV line (without its newline).
func (CSV) Append(dst []byte, r *Record) []byte {
	start := len(dst)
	dst = appendWatched(dst, r)
	if len(dst) > start {
		dst = csvQuote(dst, start)
		dst = append(dst, ',')
	}
	start = len(dst)
	dst = csvQuote(appendEvents(dst, r, ","), start)
	dst = append(dst, ',')
	start = len(dst)
	return csvQuote(append(dst, r.Name...), start)
}

// csvQuote quotes dst[start:] as inotifywait's csv_escape does, if it needs it.
func csvQuote(dst []byte, start int) []byte {
	f := dst[start:]
	if len(f) == 0 || (!bytes.ContainsAny(f, "\",\n") && f[0] != ' ' && f[len(f)-1] != ' ') {
		return dst
	}
	quotes := bytes.Count(f, []byte{'"'})
	n := len(dst)
	dst = slices.Grow(dst, 2+quotes)[:n+2+quotes]
	// Shift the field right, from its end, doubling its quotes, then open the quote.
	w := len(dst) - 1
	dst[w] = '"'
	w--
	for i := n - 1; i >= start; i-- {
		dst[w] = dst[i]
		w--
		if dst[i] == '"' {
			dst[w] = '"'
			w--
		}
	}
	dst[w] = '"'
	return dst
}

func appendPid(dst []byte, pid int) []byte {
	if pid <= 0 {
		return append(dst, '?')
	}
	return strconv.AppendInt(dst, int64(pid), 10)
}

// JSON formats a record as one JSON object (a JSON-lines line without its newline):
//
//	{"time":"2024-05-01T12:00:00.123456789+02:00","path":"/srv/a","events":["CLOSE_WRITE"],
//	 "isdir":false,"pid":42,"comm":"cp","exe":"/usr/bin/cp","old_path":"/srv/b"}
//
// in that order. time (RFC 3339 with nanoseconds, in the record's location), path, pid, comm,
// exe and old_path are left out when unknown (zero); events and isdir are always there. A
// record whose path is unknown (PathUnknown) ends with what is known instead:
// "path_unknown":true, then "dev":"MAJOR:MINOR" and "ino":N (HasObject), then "name" (if
// known). A string
// that is not valid UTF-8 (Linux names are bytes) cannot be a JSON string without losing
// bytes, so it is written as KEY_raw, an array of its bytes ("path_raw":[47,255]), as
// fatrace does.
type JSON struct{}

// Append appends r as a JSON object: the record's event as fsevent.Event.AppendJSON writes it,
// the one JSON encoding of an event.
func (JSON) Append(dst []byte, r *Record) []byte {
	ev := r.event()
	return ev.AppendJSON(dst)
}

// event is the record as the event it was made from (FromEvent): what JSON prints.
func (r *Record) event() fsevent.Event {
	ev := fsevent.Event{Time: r.Time, Path: r.Path, OldPath: r.OldPath, Mask: r.Mask, Pid: int32(r.Pid),
		Comm: r.Comm, Exe: r.Exe, ExeDeleted: r.ExeDeleted, PathUnknown: r.PathUnknown, HasObject: r.HasObject, Dev: r.Dev, Ino: r.Ino}
	if r.isDir() {
		ev.Mask |= engine.OnDir
	}
	if r.PathUnknown {
		ev.Name = r.Name // the object's name, printed in place of its unknown path
	}
	return ev
}

// FromEvent is the record watch and trace print for an event: the event's time (now if
// unknown), paths, bits and process. An event whose path is "" — unknown, or, through the
// daemon, not the listener's to know — is printed as one whose path is unknown (PathUnknown),
// with its name and object if known; %w and %f are the caller's to fill (Watched, Name) for
// the others. An overflow's record has the mask QueueOverflow and its time.
func FromEvent(ev *fsevent.Event) Record {
	t := ev.Time
	if t.IsZero() {
		t = time.Now()
	}
	if ev.IsOverflow() {
		return Record{Time: t, Mask: engine.QueueOverflow}
	}
	r := Record{Time: t, Path: ev.Path, OldPath: ev.OldPath, Mask: ev.Mask, IsDir: ev.IsDir(), Pid: int(ev.Pid),
		Comm: ev.Comm, Exe: ev.Exe, ExeDeleted: ev.ExeDeleted}
	if r.Path == "" {
		r.PathUnknown, r.Name = true, ev.Name
		r.HasObject, r.Dev, r.Ino = ev.HasObject, ev.Dev, ev.Ino
	}
	return r
}

// appendDev appends a device number as MAJOR:MINOR: fsevent's, as the JSON prints it.
func appendDev(dst []byte, dev uint64) []byte { return fsevent.AppendDev(dst, dev) }

// Trace formats a record as fatrace does:
//
//	12:00:00.123456 cat(4242): RO  /etc/hostname
//
// that is the local time (in the record's location) with microseconds, the command and pid
// ("?" when unknown), the event letters padded to three columns, and the path; a rename or a
// move with a known source prints "OLD -> NEW". The time is left out when unknown. Control
// characters, invalid UTF-8 and backslashes in names are escaped (\n, \t, \\, \xNN, \u0085),
// so a file name cannot forge or split a line, nor send escape sequences to a terminal; so
// are ( and ) in the command, a command "?", and a > after " -" in a path (\x28, \x29,
// \x3f, \x3e), so that the line reads back one way: the command ends at the first "(", and
// " -> " is only the arrow.
type Trace struct{}

// Append appends r as a trace line.
func (Trace) Append(dst []byte, r *Record) []byte {
	if !r.Time.IsZero() {
		dst = r.Time.AppendFormat(dst, "15:04:05.000000")
		dst = append(dst, ' ')
	}
	switch r.Comm {
	case "":
		dst = append(dst, '?')
	case "?": // a process may name itself "?": not the unknown one
		dst = append(dst, `\x3f`...)
	default:
		dst = appendEscapedIn(dst, r.Comm, inComm)
	}
	dst = append(dst, '(')
	dst = appendPid(dst, r.Pid)
	dst = append(dst, "): "...)
	n := len(dst)
	dst = appendLetters(dst, r.Mask)
	for len(dst)-n < 3 {
		dst = append(dst, ' ')
	}
	dst = append(dst, ' ')
	if r.OldPath != "" {
		dst = appendEscapedIn(dst, r.OldPath, inPath)
		dst = append(dst, " -> "...)
	} else if r.OldPathUnknown {
		dst = append(dst, "? -> "...)
	}
	if r.Path == "" {
		dst = append(dst, '?')
		if r.PathUnknown && (r.HasObject || r.Name != "") {
			// What is known of it instead: "? (dev 0:45 ino 1234 name deep.key)".
			dst = append(dst, " ("...)
			if r.HasObject {
				dst = appendDev(append(dst, "dev "...), r.Dev)
				if r.Ino != 0 { // else unknown: the object was gone
					dst = strconv.AppendUint(append(dst, " ino "...), r.Ino, 10)
				}
			}
			if r.Name != "" {
				if r.HasObject {
					dst = append(dst, ' ')
				}
				dst = appendEscaped(append(dst, "name "...), r.Name)
			}
			dst = append(dst, ')')
		}
		return dst
	}
	return appendEscapedIn(dst, r.Path, inPath)
}

// appendEscaped appends s with control characters, invalid UTF-8 and backslashes escaped.
func appendEscaped(dst []byte, s string) []byte { return appendEscapedIn(dst, s, inName) }

// Where appendEscapedIn writes a string: a trace line's fields escape a few printable
// characters more, so that the line reads back one way whatever the names hold.
const (
	inName = iota // a name anywhere else: only what appendEscaped escapes
	inComm        // a trace line's command: also ( and ), so "comm(pid): " ends at its first (
	inPath        // a trace line's path: also a > after " -", so " -> " is only the rename's arrow
)

// traceSpecial reports whether s[i], printable, is escaped in field (see inComm, inPath).
func traceSpecial(s string, i, field int) bool {
	switch field {
	case inComm:
		return s[i] == '(' || s[i] == ')'
	case inPath:
		return s[i] == '>' && i >= 2 && s[i-1] == '-' && s[i-2] == ' '
	}
	return false
}

// appendEscapedIn is appendEscaped for a string written in field.
func appendEscapedIn(dst []byte, s string, field int) []byte {
	const hex = "0123456789abcdef"
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '\\' && (field == inName || !traceSpecial(s, i, field)) {
			i++
			continue
		}
		r, w := rune(c), 1
		if c >= 0x80 {
			r, w = utf8.DecodeRuneInString(s[i:])
			if !(r == utf8.RuneError && w == 1) && !(r >= 0x80 && r < 0xa0) {
				i += w // printable (or at least not a C1 control) non-ASCII
				continue
			}
		}
		dst = append(dst, s[start:i]...)
		switch {
		case c == '\\':
			dst = append(dst, '\\', '\\')
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case r == utf8.RuneError && w == 1, c < 0x80:
			dst = append(dst, '\\', 'x', hex[c>>4], hex[c&0xf])
		default: // C1 control character
			dst = append(dst, '\\', 'u', '0', '0', hex[r>>4], hex[r&0xf])
		}
		i += w
		start = i
	}
	return append(dst, s[start:]...)
}

// AppendEscaped appends s as trace lines print names: control characters, invalid UTF-8 and
// backslashes escaped, so a string from elsewhere (a remote host's record) cannot forge or
// split a line nor send escape sequences to a terminal.
func AppendEscaped(dst []byte, s string) []byte { return appendEscaped(dst, s) }

// Escaped is s escaped as AppendEscaped escapes it.
func Escaped(s string) string { return string(appendEscaped(nil, s)) }

// ForTerminal is f for a terminal: the names of each record (%w, %f, %c, the paths) are
// escaped as trace lines escape them, as GNU ls quotes names on a terminal, so that a file
// name cannot send escape sequences to it (clear it, retitle it, set the clipboard with OSC
// 52) nor forge a line with a newline or a CR. To a pipe or a file, names stay their bytes,
// as inotifywait prints them. JSON and Trace escape already and are returned as they are.
func ForTerminal(f Formatter) Formatter {
	switch f.(type) {
	case JSON, Trace:
		return f
	}
	return terminal{f}
}

type terminal struct{ f Formatter }

func (t terminal) Append(dst []byte, r *Record) []byte {
	e := *r
	e.Watched, e.Name, e.Path, e.OldPath, e.Comm = Escaped(r.Watched), Escaped(r.Name), Escaped(r.Path), Escaped(r.OldPath), Escaped(r.Comm)
	return t.f.Append(dst, &e)
}
