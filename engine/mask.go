package engine

import "github.com/fsnotifyd/fsnotifyd/fsevent"

// Mask is a set of event bits: fanotify's values (include/uapi/linux/fanotify.h), so a kernel
// source passes them through unchanged; inotify shares the low bits. It is fsevent.Mask, the
// type the wire protocol, the client and the CLI use too, and its names are fsevent's.
type Mask = fsevent.Mask

// Event bits and flags (see fsevent).
const (
	Access        = fsevent.Access
	Modify        = fsevent.Modify
	Attrib        = fsevent.Attrib
	CloseWrite    = fsevent.CloseWrite
	CloseNoWrite  = fsevent.CloseNoWrite
	Open          = fsevent.Open
	MovedFrom     = fsevent.MovedFrom
	MovedTo       = fsevent.MovedTo
	Create        = fsevent.Create
	Delete        = fsevent.Delete
	DeleteSelf    = fsevent.DeleteSelf
	MoveSelf      = fsevent.MoveSelf
	OpenExec      = fsevent.OpenExec
	QueueOverflow = fsevent.QueueOverflow
	FSError       = fsevent.FSError
	OpenPerm      = fsevent.OpenPerm
	AccessPerm    = fsevent.AccessPerm
	OpenExecPerm  = fsevent.OpenExecPerm
	PreAccess     = fsevent.PreAccess
	Rename        = fsevent.Rename
	EventOnChild  = fsevent.EventOnChild
	OnDir         = fsevent.OnDir
)

// Groups of bits.
const (
	// Close is both close events.
	Close = fsevent.Close
	// Move is both directory-entry move events.
	Move = fsevent.Move
	// PermissionEvents block the accessing process until every interested group answers.
	PermissionEvents = fsevent.PermissionEvents
	// ContentPermissionEvents are the permission events a content-class group may mark.
	ContentPermissionEvents = OpenPerm | AccessPerm | OpenExecPerm
	// PreContentEvents need a pre-content class group.
	PreContentEvents = PreAccess
	// DirentEvents are reported on the directory holding the entry, with the entry's name.
	DirentEvents = fsevent.DirentEvents
	// NotificationEvents are the events that never block.
	NotificationEvents = Access | Modify | Attrib | Close | Open | Move | Create | Delete |
		DeleteSelf | MoveSelf | OpenExec | FSError | Rename
	// AllEvents is every event bit a mark may hold.
	AllEvents = NotificationEvents | PermissionEvents
	// EventFlags are the flag bits of a mask (kernel FANOTIFY_EVENT_FLAGS).
	EventFlags = fsevent.EventFlags
	// PossibleOnChild are the events a directory reports for its children when its mark has
	// EventOnChild (kernel FS_EVENTS_POSS_ON_CHILD).
	PossibleOnChild = Access | Modify | Attrib | Close | Open | OpenExec | OpenPerm |
		AccessPerm | OpenExecPerm | PreAccess
)
