package engine

import (
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
	QueueOverflow Mask = 0x00004000 // FAN_Q_OVERFLOW: output only; the group lost events
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
	// PermissionEvents block the accessing process until every interested group answers.
	PermissionEvents = OpenPerm | AccessPerm | OpenExecPerm | PreAccess
	// ContentPermissionEvents are the permission events a content-class group may mark.
	ContentPermissionEvents = OpenPerm | AccessPerm | OpenExecPerm
	// PreContentEvents need a pre-content class group.
	PreContentEvents = PreAccess
	// DirentEvents are reported on the directory holding the entry, with the entry's name.
	DirentEvents = MovedFrom | MovedTo | Create | Delete | Rename
	// NotificationEvents are the events that never block.
	NotificationEvents = Access | Modify | Attrib | Close | Open | Move | Create | Delete |
		DeleteSelf | MoveSelf | OpenExec | FSError | Rename
	// AllEvents is every event bit a mark may hold.
	AllEvents = NotificationEvents | PermissionEvents
	// EventFlags are the flag bits of a mask (kernel FANOTIFY_EVENT_FLAGS).
	EventFlags = EventOnChild | OnDir
	// PossibleOnChild are the events a directory reports for its children when its mark has
	// EventOnChild (kernel FS_EVENTS_POSS_ON_CHILD).
	PossibleOnChild = Access | Modify | Attrib | Close | Open | OpenExec | OpenPerm |
		AccessPerm | OpenExecPerm | PreAccess
)

// maskNames is in bit order; the names are fanotify's without the FAN_ prefix.
var maskNames = []struct {
	bit  Mask
	name string
}{
	{Access, "ACCESS"},
	{Modify, "MODIFY"},
	{Attrib, "ATTRIB"},
	{CloseWrite, "CLOSE_WRITE"},
	{CloseNoWrite, "CLOSE_NOWRITE"},
	{Open, "OPEN"},
	{MovedFrom, "MOVED_FROM"},
	{MovedTo, "MOVED_TO"},
	{Create, "CREATE"},
	{Delete, "DELETE"},
	{DeleteSelf, "DELETE_SELF"},
	{MoveSelf, "MOVE_SELF"},
	{OpenExec, "OPEN_EXEC"},
	{QueueOverflow, "Q_OVERFLOW"},
	{FSError, "FS_ERROR"},
	{OpenPerm, "OPEN_PERM"},
	{AccessPerm, "ACCESS_PERM"},
	{OpenExecPerm, "OPEN_EXEC_PERM"},
	{PreAccess, "PRE_ACCESS"},
	{EventOnChild, "EVENT_ON_CHILD"},
	{Rename, "RENAME"},
	{OnDir, "ONDIR"},
}

// Names returns the names of the bits in m, in bit order (for example ["OPEN", "ONDIR"]).
// Unknown bits are named by their hexadecimal value.
func (m Mask) Names() []string {
	var out []string
	rest := m
	for _, n := range maskNames {
		if m&n.bit != 0 {
			out = append(out, n.name)
			rest &^= n.bit
		}
	}
	for bit := Mask(1); rest != 0; bit <<= 1 {
		if rest&bit != 0 {
			out = append(out, "0x"+hex(uint64(bit)))
			rest &^= bit
		}
	}
	return out
}

// String joins Names with "|"; the empty mask is "0".
func (m Mask) String() string {
	if m == 0 {
		return "0"
	}
	return strings.Join(m.Names(), "|")
}

// MaskByName returns the bit named name (as in Names, case-insensitive), and whether it exists.
func MaskByName(name string) (Mask, bool) {
	for _, n := range maskNames {
		if strings.EqualFold(n.name, name) {
			return n.bit, true
		}
	}
	return 0, false
}

func hex(v uint64) string {
	const digits = "0123456789abcdef"
	if v == 0 {
		return "0"
	}
	var buf [16]byte
	i := len(buf)
	for v != 0 {
		i--
		buf[i] = digits[v&0xf]
		v >>= 4
	}
	return string(buf[i:])
}
