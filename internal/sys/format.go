package sys

import (
	"strconv"
	"strings"
)

// Names of flag bits, kernel names without the FAN_/IN_ prefix, for error messages and logs.

type bitName struct {
	bit  uint64
	name string
}

var initFlagNames = []bitName{
	{uint64(FAN_CLOEXEC), "CLOEXEC"},
	{uint64(FAN_NONBLOCK), "NONBLOCK"},
	{uint64(FAN_UNLIMITED_QUEUE), "UNLIMITED_QUEUE"},
	{uint64(FAN_UNLIMITED_MARKS), "UNLIMITED_MARKS"},
	{uint64(FAN_ENABLE_AUDIT), "ENABLE_AUDIT"},
	{uint64(FAN_REPORT_PIDFD), "REPORT_PIDFD"},
	{uint64(FAN_REPORT_TID), "REPORT_TID"},
	{uint64(FAN_REPORT_FID), "REPORT_FID"},
	{uint64(FAN_REPORT_DIR_FID), "REPORT_DIR_FID"},
	{uint64(FAN_REPORT_NAME), "REPORT_NAME"},
	{uint64(FAN_REPORT_TARGET_FID), "REPORT_TARGET_FID"},
	{uint64(FAN_REPORT_FD_ERROR), "REPORT_FD_ERROR"},
	{uint64(FAN_REPORT_MNT), "REPORT_MNT"},
}

var markFlagNames = []bitName{
	{uint64(FAN_MARK_ADD), "ADD"},
	{uint64(FAN_MARK_REMOVE), "REMOVE"},
	{uint64(FAN_MARK_FLUSH), "FLUSH"},
	{uint64(FAN_MARK_DONT_FOLLOW), "DONT_FOLLOW"},
	{uint64(FAN_MARK_ONLYDIR), "ONLYDIR"},
	{uint64(FAN_MARK_IGNORED_MASK), "IGNORED_MASK"},
	{uint64(FAN_MARK_IGNORED_SURV_MODIFY), "IGNORED_SURV_MODIFY"},
	{uint64(FAN_MARK_EVICTABLE), "EVICTABLE"},
	{uint64(FAN_MARK_IGNORE), "IGNORE"},
}

var eventNames = []bitName{
	{FAN_ACCESS, "ACCESS"},
	{FAN_MODIFY, "MODIFY"},
	{FAN_ATTRIB, "ATTRIB"},
	{FAN_CLOSE_WRITE, "CLOSE_WRITE"},
	{FAN_CLOSE_NOWRITE, "CLOSE_NOWRITE"},
	{FAN_OPEN, "OPEN"},
	{FAN_MOVED_FROM, "MOVED_FROM"},
	{FAN_MOVED_TO, "MOVED_TO"},
	{FAN_CREATE, "CREATE"},
	{FAN_DELETE, "DELETE"},
	{FAN_DELETE_SELF, "DELETE_SELF"},
	{FAN_MOVE_SELF, "MOVE_SELF"},
	{FAN_OPEN_EXEC, "OPEN_EXEC"},
	{FAN_Q_OVERFLOW, "Q_OVERFLOW"},
	{FAN_FS_ERROR, "FS_ERROR"},
	{FAN_OPEN_PERM, "OPEN_PERM"},
	{FAN_ACCESS_PERM, "ACCESS_PERM"},
	{FAN_OPEN_EXEC_PERM, "OPEN_EXEC_PERM"},
	{FAN_PRE_ACCESS, "PRE_ACCESS"},
	{FAN_MNT_ATTACH, "MNT_ATTACH"},
	{FAN_MNT_DETACH, "MNT_DETACH"},
	{FAN_EVENT_ON_CHILD, "EVENT_ON_CHILD"},
	{FAN_RENAME, "RENAME"},
	{FAN_ONDIR, "ONDIR"},
}

var inotifyNames = []bitName{
	{uint64(IN_ACCESS), "ACCESS"},
	{uint64(IN_MODIFY), "MODIFY"},
	{uint64(IN_ATTRIB), "ATTRIB"},
	{uint64(IN_CLOSE_WRITE), "CLOSE_WRITE"},
	{uint64(IN_CLOSE_NOWRITE), "CLOSE_NOWRITE"},
	{uint64(IN_OPEN), "OPEN"},
	{uint64(IN_MOVED_FROM), "MOVED_FROM"},
	{uint64(IN_MOVED_TO), "MOVED_TO"},
	{uint64(IN_CREATE), "CREATE"},
	{uint64(IN_DELETE), "DELETE"},
	{uint64(IN_DELETE_SELF), "DELETE_SELF"},
	{uint64(IN_MOVE_SELF), "MOVE_SELF"},
	{uint64(IN_UNMOUNT), "UNMOUNT"},
	{uint64(IN_Q_OVERFLOW), "Q_OVERFLOW"},
	{uint64(IN_IGNORED), "IGNORED"},
	{uint64(IN_ONLYDIR), "ONLYDIR"},
	{uint64(IN_DONT_FOLLOW), "DONT_FOLLOW"},
	{uint64(IN_EXCL_UNLINK), "EXCL_UNLINK"},
	{uint64(IN_MASK_CREATE), "MASK_CREATE"},
	{uint64(IN_MASK_ADD), "MASK_ADD"},
	{uint64(IN_ISDIR), "ISDIR"},
	{uint64(IN_ONESHOT), "ONESHOT"},
}

// formatBits appends the names of v's bits (prefix first, if any) joined by "|"; unknown bits
// are printed in hexadecimal. An empty result is "0".
func formatBits(prefix []string, v uint64, names []bitName) string {
	var b strings.Builder
	sep := func() {
		if b.Len() > 0 {
			b.WriteByte('|')
		}
	}
	for _, p := range prefix {
		sep()
		b.WriteString(p)
	}
	for _, n := range names {
		if v&n.bit == n.bit && n.bit != 0 {
			sep()
			b.WriteString(n.name)
			v &^= n.bit
		}
	}
	if v != 0 {
		sep()
		b.WriteString("0x")
		b.WriteString(strconv.FormatUint(v, 16))
	}
	if b.Len() == 0 {
		return "0"
	}
	return b.String()
}

// InitFlagsString formats fanotify_init flags, e.g. "CLASS_CONTENT|CLOEXEC|NONBLOCK". The
// notification class, being 0, is printed as CLASS_NOTIF.
func InitFlagsString(flags uint) string {
	class := "CLASS_NOTIF"
	switch flags & FAN_CLASS_BITS {
	case FAN_CLASS_CONTENT:
		class = "CLASS_CONTENT"
	case FAN_CLASS_PRE_CONTENT:
		class = "CLASS_PRE_CONTENT"
	case FAN_CLASS_BITS:
		class = "CLASS_0xc"
	}
	return formatBits([]string{class}, uint64(flags&^FAN_CLASS_BITS), initFlagNames)
}

// MarkFlagsString formats fanotify_mark flags, command first, e.g. "ADD|FILESYSTEM|IGNORE_SURV";
// the inode mark type (0) is not printed.
func MarkFlagsString(flags uint) string {
	var parts []string
	for _, c := range [...]struct {
		flag uint
		name string
	}{{FAN_MARK_ADD, "ADD"}, {FAN_MARK_REMOVE, "REMOVE"}, {FAN_MARK_FLUSH, "FLUSH"}} {
		if flags&c.flag != 0 {
			parts = append(parts, c.name)
			flags &^= c.flag
		}
	}
	switch flags & FAN_MARK_TYPE_BITS {
	case FAN_MARK_MOUNT:
		parts = append(parts, "MOUNT")
	case FAN_MARK_FILESYSTEM:
		parts = append(parts, "FILESYSTEM")
	case FAN_MARK_MNTNS:
		parts = append(parts, "MNTNS")
	}
	flags &^= FAN_MARK_TYPE_BITS
	if flags&FAN_MARK_IGNORE_SURV == FAN_MARK_IGNORE_SURV {
		parts = append(parts, "IGNORE_SURV") // as callers write it
		flags &^= FAN_MARK_IGNORE_SURV
	}
	if len(parts) > 0 && flags == 0 {
		return strings.Join(parts, "|")
	}
	return formatBits(parts, uint64(flags), markFlagNames)
}

// EventMaskString formats a fanotify event mask, e.g. "OPEN_PERM|ONDIR".
func EventMaskString(mask uint64) string { return formatBits(nil, mask, eventNames) }

// InotifyMaskString formats an inotify mask, e.g. "CREATE|ISDIR".
func InotifyMaskString(mask uint32) string { return formatBits(nil, uint64(mask), inotifyNames) }
