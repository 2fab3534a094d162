package fsevent

import (
	"encoding/hex"
	"fmt"
	"syscall"
)

// Kind is the kind of a watched object (the kernel's FSNOTIFY_OBJ_TYPE_*).
type Kind uint8

const (
	// KindInode is one file or directory (FSNOTIFY_OBJ_TYPE_INODE). A directory's inode mark
	// also reports the events of its direct children when its mask has EventOnChild.
	KindInode Kind = iota + 1
	// KindMount is one mount (FSNOTIFY_OBJ_TYPE_VFSMOUNT).
	KindMount
	// KindFilesystem is one filesystem, all its mounts (FSNOTIFY_OBJ_TYPE_SB).
	KindFilesystem
	// KindSubtree is a directory and everything below it, at any depth. The kernel has no
	// such object; fsnotifyd finds the marks of the directories above an object.
	KindSubtree
)

var kindNames = [...]string{"invalid", "inode", "mount", "filesystem", "subtree"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Class is a listener's priority class (FAN_CLASS_*). Listeners of a higher class see an
// event first; a permission event reaches lower classes only once the higher ones allowed it.
type Class uint8

const (
	// ClassNotification listeners receive events after the fact and never answer
	// (FAN_CLASS_NOTIF).
	ClassNotification Class = iota
	// ClassContent listeners may take permission events (FAN_CLASS_CONTENT).
	ClassContent
	// ClassPreContent listeners may also take pre-access events and deny with an errno
	// (FAN_CLASS_PRE_CONTENT).
	ClassPreContent
)

var classNames = [...]string{"notification", "content", "pre-content"}

func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// Verdict is the answer to a permission event. The zero value is Allow, the kernel's default
// everywhere it must decide without a listener (close, full queue, mark race).
type Verdict uint8

const (
	Allow Verdict = iota // FAN_ALLOW
	Deny                 // FAN_DENY
)

func (v Verdict) String() string {
	switch v {
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// ParseVerdict parses "allow" or "deny".
func ParseVerdict(s string) (Verdict, error) {
	switch s {
	case "allow":
		return Allow, nil
	case "deny":
		return Deny, nil
	}
	return 0, fmt.Errorf("verdict %q: want allow or deny", s)
}

// DenyErrnos are the errors a pre-content listener may deny with (FAN_DENY_ERRNO in Linux
// 6.14+); any other errno, or an errno from another class, makes a plain deny (EPERM).
var DenyErrnos = []syscall.Errno{syscall.EPERM, syscall.EIO, syscall.EBUSY, syscall.ETXTBSY,
	syscall.EAGAIN, syscall.ENOSPC, syscall.EDQUOT}

// Range is the byte range of a pre-access event (the kernel's RANGE info record).
type Range struct {
	Offset, Count uint64
}

// MarkFlags are a mark's options beyond its masks.
type MarkFlags uint32

const (
	// IgnoreSurviveModify keeps the ignore mask when the object is modified; otherwise a
	// Modify event on the object clears it (FAN_MARK_IGNORED_SURV_MODIFY).
	IgnoreSurviveModify MarkFlags = 1 << iota
)

// InstanceID identifies one run of the daemon: it is drawn at random when the daemon starts.
// A client that reconnects and finds a different instance knows the daemon restarted.
type InstanceID [16]byte

// IsZero reports whether id is the zero id (no instance).
func (id InstanceID) IsZero() bool { return id == InstanceID{} }

func (id InstanceID) String() string { return hex.EncodeToString(id[:]) }

// FD is a file descriptor that travels with a value: a permission event's open file, or a
// protocol message's. Its zero value holds none, so a value built as a literal never carries
// fd 0 (stdin) by accident. Whoever holds an FD owns the descriptor: close it (Close) or take
// it (Take).
type FD struct{ v int32 } // the fd + 1, so that the zero value is "none"

// NewFD returns an FD holding fd; a negative fd gives the empty FD.
func NewFD(fd int) FD {
	if fd < 0 || fd >= 1<<31-1 {
		return FD{}
	}
	return FD{int32(fd) + 1}
}

// Valid reports whether f holds a file descriptor.
func (f FD) Valid() bool { return f.v != 0 }

// Int returns the file descriptor, or -1 if f holds none.
func (f FD) Int() int { return int(f.v) - 1 }

// Take returns the file descriptor (or -1) and empties f: the caller now owns it.
func (f *FD) Take() int {
	fd := f.Int()
	f.v = 0
	return fd
}

// Close closes the file descriptor, if any, and empties f.
func (f *FD) Close() error {
	if fd := f.Take(); fd >= 0 {
		return syscall.Close(fd)
	}
	return nil
}
