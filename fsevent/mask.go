package fsevent

import (
	"strconv"
	"strings"
)

// Mask is a set of event bits. The values are fanotify's (include/uapi/linux/fanotify.h), so a
// kernel source passes them through unchanged; inotify shares the low bits.
type Mask uint64

// Event bits.
const (
	Access        Mask = 0x00000001 // FAN_ACCESS: a file was read
	Modify        Mask = 0x00000002 // FAN_MODIFY: a file was written
	Attrib        Mask = 0x00000004 // FAN_ATTRIB: metadata changed
	CloseWrite    Mask = 0x00000008 // FAN_CLOSE_WRITE: a file opened for writing was closed
	CloseNoWrite  Mask = 0x00000010 // FAN_CLOSE_NOWRITE: a file opened read-only was closed
	Open          Mask = 0x00000020 // FAN_OPEN
	MovedFrom     Mask = 0x00000040 // FAN_MOVED_FROM: an entry left a directory (reported on the directory)
	MovedTo       Mask = 0x00000080 // FAN_MOVED_TO: an entry arrived in a directory (reported on the directory)
	Create        Mask = 0x00000100 // FAN_CREATE (reported on the directory)
	Delete        Mask = 0x00000200 // FAN_DELETE (reported on the directory)
	DeleteSelf    Mask = 0x00000400 // FAN_DELETE_SELF
	MoveSelf      Mask = 0x00000800 // FAN_MOVE_SELF
	OpenExec      Mask = 0x00001000 // FAN_OPEN_EXEC: opened for execve
	QueueOverflow Mask = 0x00004000 // FAN_Q_OVERFLOW: output only; events were lost
	FSError       Mask = 0x00008000 // FAN_FS_ERROR: filesystem error (filesystem marks)
	OpenPerm      Mask = 0x00010000 // FAN_OPEN_PERM: permission to open
	AccessPerm    Mask = 0x00020000 // FAN_ACCESS_PERM: permission to read
	OpenExecPerm  Mask = 0x00040000 // FAN_OPEN_EXEC_PERM: permission to open for execve
	PreAccess     Mask = 0x00100000 // FAN_PRE_ACCESS: permission before content is accessed, with a byte range
	Rename        Mask = 0x10000000 // FAN_RENAME: one event with old and new directory and name

	// EventOnChild in a mark's mask makes a directory mark report the events of its direct
	// children (FAN_EVENT_ON_CHILD); in an ignore mask, it makes the ignore mask cover them.
	EventOnChild Mask = 0x08000000
	// OnDir in an event says the object is a directory; in a mark's mask, that the mark wants
	// events on directories (FAN_ONDIR); in an ignore mask, that it ignores them.
	OnDir Mask = 0x40000000
)

// Groups of bits.
const (
	// Close is both close events.
	Close = CloseWrite | CloseNoWrite
	// Move is both directory-entry move events.
	Move = MovedFrom | MovedTo
	// PermissionEvents block the accessing process until every interested listener answers.
	PermissionEvents = OpenPerm | AccessPerm | OpenExecPerm | PreAccess
	// DirentEvents are reported on the directory holding the entry, with the entry's name.
	DirentEvents = MovedFrom | MovedTo | Create | Delete | Rename
	// EventFlags are the flag bits of a mask (the kernel's FANOTIFY_EVENT_FLAGS): no events.
	EventFlags = EventOnChild | OnDir
)

// names is the one table of event names: every bit's kernel name (fanotify's without FAN_),
// in bit order, and for a permission event the access it decides (a guard's --events, a
// policy rule's events). Everything that names events reads it.
var names = [...]struct {
	bit          Mask
	name, access string
}{
	{Access, "ACCESS", ""},
	{Modify, "MODIFY", ""},
	{Attrib, "ATTRIB", ""},
	{CloseWrite, "CLOSE_WRITE", ""},
	{CloseNoWrite, "CLOSE_NOWRITE", ""},
	{Open, "OPEN", ""},
	{MovedFrom, "MOVED_FROM", ""},
	{MovedTo, "MOVED_TO", ""},
	{Create, "CREATE", ""},
	{Delete, "DELETE", ""},
	{DeleteSelf, "DELETE_SELF", ""},
	{MoveSelf, "MOVE_SELF", ""},
	{OpenExec, "OPEN_EXEC", ""},
	{QueueOverflow, "Q_OVERFLOW", ""},
	{FSError, "FS_ERROR", ""},
	{OpenPerm, "OPEN_PERM", "open"},
	{AccessPerm, "ACCESS_PERM", "access"},
	{OpenExecPerm, "OPEN_EXEC_PERM", "exec"},
	{PreAccess, "PRE_ACCESS", "pre_access"},
	{EventOnChild, "EVENT_ON_CHILD", ""},
	{Rename, "RENAME", ""},
	{OnDir, "ONDIR", ""},
}

// groupNames are the names of the groups of bits that inotify names too.
var groupNames = [...]struct {
	bits Mask
	name string
}{
	{Close, "CLOSE"},
	{Move, "MOVE"},
}

// Name returns the name of one bit (as in Names) or of the group Close ("CLOSE") or Move
// ("MOVE"); "" for anything else.
func Name(m Mask) string {
	for i := range names {
		if names[i].bit == m {
			return names[i].name
		}
	}
	for _, g := range groupNames {
		if g.bits == m {
			return g.name
		}
	}
	return ""
}

// MaskByName returns the bit, or the group, that Name calls name (ASCII case-insensitive),
// and whether there is one.
func MaskByName(name string) (Mask, bool) {
	for i := range names {
		if EqualFoldASCII(names[i].name, name) {
			return names[i].bit, true
		}
	}
	for _, g := range groupNames {
		if EqualFoldASCII(g.name, name) {
			return g.bits, true
		}
	}
	return 0, false
}

// EqualFoldASCII reports whether name, an ASCII name of a table (an event, an errno), and s
// are equal without regard to ASCII case. Unicode folding (strings.EqualFold alone) would take
// "acceſs" (a long s) or a Kelvin sign for an ASCII letter: a name in a policy or on a command
// line must read as what it matches. Every letter Unicode folds to an ASCII one takes more than
// one byte in UTF-8, so equal lengths leave only ASCII case.
func EqualFoldASCII(name, s string) bool {
	return len(name) == len(s) && strings.EqualFold(name, s)
}

// AppendNames appends the names of the bits of m, in bit order, separated by sep; a bit
// without a name follows as hexadecimal ("0x2000"). It allocates nothing beyond dst.
func (m Mask) AppendNames(dst []byte, sep string) []byte {
	first := true
	for i := range names {
		if m&names[i].bit != 0 {
			if !first {
				dst = append(dst, sep...)
			}
			first = false
			dst = append(dst, names[i].name...)
		}
	}
	for bit := Mask(1); bit != 0; bit <<= 1 {
		if m&bit != 0 && Name(bit) == "" {
			if !first {
				dst = append(dst, sep...)
			}
			first = false
			dst = append(dst, "0x"...)
			dst = strconv.AppendUint(dst, uint64(bit), 16)
		}
	}
	return dst
}

// Names returns the names of the bits in m, in bit order (for example ["OPEN", "ONDIR"]).
// Unknown bits are named by their hexadecimal value.
func (m Mask) Names() []string {
	if m == 0 {
		return nil
	}
	return strings.Split(string(m.AppendNames(nil, "|")), "|")
}

// String joins Names with "|"; the empty mask is "0".
func (m Mask) String() string {
	if m == 0 {
		return "0"
	}
	return string(m.AppendNames(nil, "|"))
}

// AccessName returns the access the permission event bit m decides — "open" (OpenPerm),
// "access" (AccessPerm), "exec" (OpenExecPerm), "pre_access" (PreAccess) — or "".
func AccessName(m Mask) string {
	for i := range names {
		if names[i].bit == m {
			return names[i].access
		}
	}
	return ""
}

// MaskByAccess returns the permission event bit whose access is name (as AccessName gives
// it: case matters), and whether there is one.
func MaskByAccess(name string) (Mask, bool) {
	for i := range names {
		if names[i].access != "" && names[i].access == name {
			return names[i].bit, true
		}
	}
	return 0, false
}

// AccessNames returns the accesses in bit order: "open, access, exec, pre_access" joined by
// sep.
func AccessNames(sep string) string {
	var b []byte
	for i := range names {
		if names[i].access != "" {
			if len(b) > 0 {
				b = append(b, sep...)
			}
			b = append(b, names[i].access...)
		}
	}
	return string(b)
}
