package sys

import "syscall"

// fanotify constants, with the values of include/uapi/linux/fanotify.h (Linux 6.18). They are
// the same on every architecture. TestFanotifyConstantsMatchUnix compares those that
// golang.org/x/sys/unix also defines.

// FANOTIFY_METADATA_VERSION is the only struct fanotify_event_metadata version the parser accepts.
const FANOTIFY_METADATA_VERSION = 3

// fanotify_init flags (first argument).
const (
	FAN_CLOEXEC  uint = 0x00000001
	FAN_NONBLOCK uint = 0x00000002

	// The class is a two-bit field, not a set of flags.
	FAN_CLASS_NOTIF       uint = 0x00000000
	FAN_CLASS_CONTENT     uint = 0x00000004
	FAN_CLASS_PRE_CONTENT uint = 0x00000008
	FAN_CLASS_BITS        uint = FAN_CLASS_CONTENT | FAN_CLASS_PRE_CONTENT

	FAN_UNLIMITED_QUEUE uint = 0x00000010
	FAN_UNLIMITED_MARKS uint = 0x00000020
	FAN_ENABLE_AUDIT    uint = 0x00000040

	FAN_REPORT_PIDFD      uint = 0x00000080 // 5.15: a FAN_EVENT_INFO_TYPE_PIDFD record
	FAN_REPORT_TID        uint = 0x00000100 // 4.20: pid is the thread id
	FAN_REPORT_FID        uint = 0x00000200 // 5.1: a FAN_EVENT_INFO_TYPE_FID record, fd FAN_NOFD
	FAN_REPORT_DIR_FID    uint = 0x00000400 // 5.9: a FAN_EVENT_INFO_TYPE_DFID record
	FAN_REPORT_NAME       uint = 0x00000800 // 5.9: DFID becomes DFID_NAME; requires DIR_FID
	FAN_REPORT_TARGET_FID uint = 0x00001000 // 5.17: child FID on dirent events
	FAN_REPORT_FD_ERROR   uint = 0x00002000 // 6.13: fd is -errno when the kernel could not open it
	FAN_REPORT_MNT        uint = 0x00004000 // 6.15: mount events with a FAN_EVENT_INFO_TYPE_MNT record

	FAN_REPORT_DFID_NAME        uint = FAN_REPORT_DIR_FID | FAN_REPORT_NAME
	FAN_REPORT_DFID_NAME_TARGET uint = FAN_REPORT_DFID_NAME | FAN_REPORT_FID | FAN_REPORT_TARGET_FID
)

// fanotify_mark flags (second argument).
const (
	FAN_MARK_ADD                 uint = 0x00000001
	FAN_MARK_REMOVE              uint = 0x00000002
	FAN_MARK_DONT_FOLLOW         uint = 0x00000004
	FAN_MARK_ONLYDIR             uint = 0x00000008
	FAN_MARK_IGNORED_MASK        uint = 0x00000020 // legacy ignore mask
	FAN_MARK_IGNORED_SURV_MODIFY uint = 0x00000040
	FAN_MARK_FLUSH               uint = 0x00000080
	FAN_MARK_EVICTABLE           uint = 0x00000200 // 5.19: inode marks only; does not pin the inode
	FAN_MARK_IGNORE              uint = 0x00000400 // 6.0: new ignore semantics
	FAN_MARK_IGNORE_SURV         uint = FAN_MARK_IGNORE | FAN_MARK_IGNORED_SURV_MODIFY

	// The mark type is a field, not a set of flags: MNTNS is MOUNT|FILESYSTEM.
	FAN_MARK_INODE      uint = 0x00000000
	FAN_MARK_MOUNT      uint = 0x00000010
	FAN_MARK_FILESYSTEM uint = 0x00000100
	FAN_MARK_MNTNS      uint = 0x00000110 // 6.15: path is /proc/PID/ns/mnt; FAN_REPORT_MNT groups
	FAN_MARK_TYPE_BITS  uint = FAN_MARK_MOUNT | FAN_MARK_FILESYSTEM
)

// Event mask bits (fanotify_mark mask, fanotify_event_metadata.mask).
const (
	FAN_ACCESS         uint64 = 0x00000001
	FAN_MODIFY         uint64 = 0x00000002
	FAN_ATTRIB         uint64 = 0x00000004
	FAN_CLOSE_WRITE    uint64 = 0x00000008
	FAN_CLOSE_NOWRITE  uint64 = 0x00000010
	FAN_OPEN           uint64 = 0x00000020
	FAN_MOVED_FROM     uint64 = 0x00000040
	FAN_MOVED_TO       uint64 = 0x00000080
	FAN_CREATE         uint64 = 0x00000100
	FAN_DELETE         uint64 = 0x00000200
	FAN_DELETE_SELF    uint64 = 0x00000400
	FAN_MOVE_SELF      uint64 = 0x00000800
	FAN_OPEN_EXEC      uint64 = 0x00001000
	FAN_Q_OVERFLOW     uint64 = 0x00004000
	FAN_FS_ERROR       uint64 = 0x00008000 // 5.16
	FAN_OPEN_PERM      uint64 = 0x00010000
	FAN_ACCESS_PERM    uint64 = 0x00020000
	FAN_OPEN_EXEC_PERM uint64 = 0x00040000
	FAN_PRE_ACCESS     uint64 = 0x00100000 // 6.14: FAN_CLASS_PRE_CONTENT, HSM filesystems only
	FAN_MNT_ATTACH     uint64 = 0x01000000 // 6.15
	FAN_MNT_DETACH     uint64 = 0x02000000 // 6.15
	FAN_EVENT_ON_CHILD uint64 = 0x08000000
	FAN_RENAME         uint64 = 0x10000000 // 5.17
	FAN_ONDIR          uint64 = 0x40000000

	FAN_CLOSE uint64 = FAN_CLOSE_WRITE | FAN_CLOSE_NOWRITE
	FAN_MOVE  uint64 = FAN_MOVED_FROM | FAN_MOVED_TO

	// FAN_PERM_EVENTS are the events that block until every interested group answers
	// (kernel FANOTIFY_PERM_EVENTS).
	FAN_PERM_EVENTS uint64 = FAN_OPEN_PERM | FAN_ACCESS_PERM | FAN_OPEN_EXEC_PERM | FAN_PRE_ACCESS
)

// Info record types (fanotify_event_info_header.info_type). 11 and 13 are reserved.
const (
	FAN_EVENT_INFO_TYPE_FID           uint8 = 1
	FAN_EVENT_INFO_TYPE_DFID_NAME     uint8 = 2
	FAN_EVENT_INFO_TYPE_DFID          uint8 = 3
	FAN_EVENT_INFO_TYPE_PIDFD         uint8 = 4
	FAN_EVENT_INFO_TYPE_ERROR         uint8 = 5
	FAN_EVENT_INFO_TYPE_RANGE         uint8 = 6
	FAN_EVENT_INFO_TYPE_MNT           uint8 = 7
	FAN_EVENT_INFO_TYPE_OLD_DFID_NAME uint8 = 10
	FAN_EVENT_INFO_TYPE_NEW_DFID_NAME uint8 = 12
)

// Special values of fanotify_event_metadata.fd and of the pidfd record.
const (
	FAN_NOFD    int32 = -1
	FAN_NOPIDFD int32 = FAN_NOFD // the process had exited
	FAN_EPIDFD  int32 = -2       // the kernel failed to create the pidfd
)

// Responses (struct fanotify_response.response).
const (
	FAN_ALLOW uint32 = 0x01
	FAN_DENY  uint32 = 0x02
	FAN_AUDIT uint32 = 0x10 // with FAN_ENABLE_AUDIT
	FAN_INFO  uint32 = 0x20 // an info record follows (audit rule); not used by WriteResponse

	// FAN_DENY may carry an errno in its top byte (6.14, pre-content groups only).
	FAN_ERRNO_BITS  = 8
	FAN_ERRNO_SHIFT = 32 - FAN_ERRNO_BITS
	FAN_ERRNO_MASK  = 1<<FAN_ERRNO_BITS - 1
)

// FAN_DENY_ERRNO returns the response that denies the access and makes the accessing call fail
// with errno (the kernel's FAN_DENY_ERRNO macro). Only FAN_CLASS_PRE_CONTENT groups may send it
// (a content group gets EINVAL), and only EPERM, EIO, EBUSY, ETXTBSY, EAGAIN, ENOSPC and EDQUOT
// are accepted; the kernel rejects others with EINVAL.
func FAN_DENY_ERRNO(errno syscall.Errno) uint32 {
	return FAN_DENY | (uint32(errno)&FAN_ERRNO_MASK)<<FAN_ERRNO_SHIFT
}

// ResponseErrno returns the errno encoded in a FAN_DENY response (0 when none).
func ResponseErrno(response uint32) syscall.Errno {
	return syscall.Errno(response >> FAN_ERRNO_SHIFT & FAN_ERRNO_MASK)
}
