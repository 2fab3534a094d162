package sys

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestFanotifyStructSizes pins the Go mirrors to the sizes and offsets of the uapi structs
// (include/uapi/linux/fanotify.h, include/uapi/linux/inotify.h, struct file_handle in
// include/linux/fs.h), as a 64-bit kernel lays them out.
func TestFanotifyStructSizes(t *testing.T) {
	is64 := unsafe.Sizeof(uintptr(0)) == 8
	mntSize, mntOff := 12, 4 // i386 aligns __u64 to 4 inside structs
	if is64 {
		mntSize, mntOff = 16, 8
	}
	for _, tc := range []struct {
		name      string
		got, want int
	}{
		{"sizeof(struct fanotify_event_metadata)", sizeofFanotifyEventMetadata, 24},
		{"offsetof(fanotify_event_metadata, mask)", offMetaMask, 8},
		{"offsetof(fanotify_event_metadata, fd)", offMetaFd, 16},
		{"offsetof(fanotify_event_metadata, pid)", offMetaPid, 20},
		{"sizeof(struct fanotify_event_info_header)", sizeofInfoHeader, 4},
		{"sizeof(struct fanotify_event_info_fid)", sizeofInfoFid, 12},
		{"sizeof(struct file_handle)", sizeofFileHandle, 8},
		{"sizeof(struct fanotify_event_info_pidfd)", sizeofInfoPidfd, 8},
		{"sizeof(struct fanotify_event_info_error)", sizeofInfoError, 12},
		{"sizeof(struct fanotify_event_info_range)", sizeofInfoRange, 24},
		{"offsetof(fanotify_event_info_range, offset)", offRangeOffset, 8},
		{"offsetof(fanotify_event_info_range, count)", offRangeCount, 16},
		{"sizeof(struct fanotify_event_info_mnt)", sizeofInfoMnt, mntSize},
		{"offsetof(fanotify_event_info_mnt, mnt_id)", offMntID, mntOff},
		{"sizeof(struct fanotify_response)", sizeofFanotifyResponse, 8},
		{"sizeof(struct inotify_event)", sizeofInotifyEvent, 16},
		// Cross-check with the structs x/sys/unix generated from the C headers.
		{"unix.FanotifyEventMetadata", int(unsafe.Sizeof(unix.FanotifyEventMetadata{})), sizeofFanotifyEventMetadata},
		{"unix.FanotifyResponse", int(unsafe.Sizeof(unix.FanotifyResponse{})), sizeofFanotifyResponse},
		{"unix.SizeofInotifyEvent", unix.SizeofInotifyEvent, sizeofInotifyEvent},
		{"unix.FAN_EVENT_METADATA_LEN", unix.FAN_EVENT_METADATA_LEN, FAN_EVENT_METADATA_LEN},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %d, want %d", tc.name, tc.got, tc.want)
		}
	}
}

// TestConstantsMatchUnix compares our constants with x/sys/unix's where it has them; the rest
// (none at v0.50.0) are checked against the uapi header by hand.
func TestConstantsMatchUnix(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want uint64
	}{
		{"FANOTIFY_METADATA_VERSION", FANOTIFY_METADATA_VERSION, unix.FANOTIFY_METADATA_VERSION},
		{"FAN_CLOEXEC", uint64(FAN_CLOEXEC), unix.FAN_CLOEXEC},
		{"FAN_NONBLOCK", uint64(FAN_NONBLOCK), unix.FAN_NONBLOCK},
		{"FAN_CLASS_NOTIF", uint64(FAN_CLASS_NOTIF), unix.FAN_CLASS_NOTIF},
		{"FAN_CLASS_CONTENT", uint64(FAN_CLASS_CONTENT), unix.FAN_CLASS_CONTENT},
		{"FAN_CLASS_PRE_CONTENT", uint64(FAN_CLASS_PRE_CONTENT), unix.FAN_CLASS_PRE_CONTENT},
		{"FAN_UNLIMITED_QUEUE", uint64(FAN_UNLIMITED_QUEUE), unix.FAN_UNLIMITED_QUEUE},
		{"FAN_UNLIMITED_MARKS", uint64(FAN_UNLIMITED_MARKS), unix.FAN_UNLIMITED_MARKS},
		{"FAN_ENABLE_AUDIT", uint64(FAN_ENABLE_AUDIT), unix.FAN_ENABLE_AUDIT},
		{"FAN_REPORT_PIDFD", uint64(FAN_REPORT_PIDFD), unix.FAN_REPORT_PIDFD},
		{"FAN_REPORT_TID", uint64(FAN_REPORT_TID), unix.FAN_REPORT_TID},
		{"FAN_REPORT_FID", uint64(FAN_REPORT_FID), unix.FAN_REPORT_FID},
		{"FAN_REPORT_DIR_FID", uint64(FAN_REPORT_DIR_FID), unix.FAN_REPORT_DIR_FID},
		{"FAN_REPORT_NAME", uint64(FAN_REPORT_NAME), unix.FAN_REPORT_NAME},
		{"FAN_REPORT_TARGET_FID", uint64(FAN_REPORT_TARGET_FID), unix.FAN_REPORT_TARGET_FID},
		{"FAN_REPORT_FD_ERROR", uint64(FAN_REPORT_FD_ERROR), unix.FAN_REPORT_FD_ERROR},
		{"FAN_REPORT_MNT", uint64(FAN_REPORT_MNT), unix.FAN_REPORT_MNT},
		{"FAN_REPORT_DFID_NAME", uint64(FAN_REPORT_DFID_NAME), unix.FAN_REPORT_DFID_NAME},
		{"FAN_REPORT_DFID_NAME_TARGET", uint64(FAN_REPORT_DFID_NAME_TARGET), unix.FAN_REPORT_DFID_NAME_TARGET},
		{"FAN_MARK_ADD", uint64(FAN_MARK_ADD), unix.FAN_MARK_ADD},
		{"FAN_MARK_REMOVE", uint64(FAN_MARK_REMOVE), unix.FAN_MARK_REMOVE},
		{"FAN_MARK_DONT_FOLLOW", uint64(FAN_MARK_DONT_FOLLOW), unix.FAN_MARK_DONT_FOLLOW},
		{"FAN_MARK_ONLYDIR", uint64(FAN_MARK_ONLYDIR), unix.FAN_MARK_ONLYDIR},
		{"FAN_MARK_IGNORED_MASK", uint64(FAN_MARK_IGNORED_MASK), unix.FAN_MARK_IGNORED_MASK},
		{"FAN_MARK_IGNORED_SURV_MODIFY", uint64(FAN_MARK_IGNORED_SURV_MODIFY), unix.FAN_MARK_IGNORED_SURV_MODIFY},
		{"FAN_MARK_FLUSH", uint64(FAN_MARK_FLUSH), unix.FAN_MARK_FLUSH},
		{"FAN_MARK_EVICTABLE", uint64(FAN_MARK_EVICTABLE), unix.FAN_MARK_EVICTABLE},
		{"FAN_MARK_IGNORE", uint64(FAN_MARK_IGNORE), unix.FAN_MARK_IGNORE},
		{"FAN_MARK_IGNORE_SURV", uint64(FAN_MARK_IGNORE_SURV), unix.FAN_MARK_IGNORE_SURV},
		{"FAN_MARK_INODE", uint64(FAN_MARK_INODE), unix.FAN_MARK_INODE},
		{"FAN_MARK_MOUNT", uint64(FAN_MARK_MOUNT), unix.FAN_MARK_MOUNT},
		{"FAN_MARK_FILESYSTEM", uint64(FAN_MARK_FILESYSTEM), unix.FAN_MARK_FILESYSTEM},
		{"FAN_MARK_MNTNS", uint64(FAN_MARK_MNTNS), unix.FAN_MARK_MNTNS},
		{"FAN_ACCESS", FAN_ACCESS, unix.FAN_ACCESS},
		{"FAN_MODIFY", FAN_MODIFY, unix.FAN_MODIFY},
		{"FAN_ATTRIB", FAN_ATTRIB, unix.FAN_ATTRIB},
		{"FAN_CLOSE_WRITE", FAN_CLOSE_WRITE, unix.FAN_CLOSE_WRITE},
		{"FAN_CLOSE_NOWRITE", FAN_CLOSE_NOWRITE, unix.FAN_CLOSE_NOWRITE},
		{"FAN_OPEN", FAN_OPEN, unix.FAN_OPEN},
		{"FAN_MOVED_FROM", FAN_MOVED_FROM, unix.FAN_MOVED_FROM},
		{"FAN_MOVED_TO", FAN_MOVED_TO, unix.FAN_MOVED_TO},
		{"FAN_CREATE", FAN_CREATE, unix.FAN_CREATE},
		{"FAN_DELETE", FAN_DELETE, unix.FAN_DELETE},
		{"FAN_DELETE_SELF", FAN_DELETE_SELF, unix.FAN_DELETE_SELF},
		{"FAN_MOVE_SELF", FAN_MOVE_SELF, unix.FAN_MOVE_SELF},
		{"FAN_OPEN_EXEC", FAN_OPEN_EXEC, unix.FAN_OPEN_EXEC},
		{"FAN_Q_OVERFLOW", FAN_Q_OVERFLOW, unix.FAN_Q_OVERFLOW},
		{"FAN_FS_ERROR", FAN_FS_ERROR, unix.FAN_FS_ERROR},
		{"FAN_OPEN_PERM", FAN_OPEN_PERM, unix.FAN_OPEN_PERM},
		{"FAN_ACCESS_PERM", FAN_ACCESS_PERM, unix.FAN_ACCESS_PERM},
		{"FAN_OPEN_EXEC_PERM", FAN_OPEN_EXEC_PERM, unix.FAN_OPEN_EXEC_PERM},
		{"FAN_PRE_ACCESS", FAN_PRE_ACCESS, unix.FAN_PRE_ACCESS},
		{"FAN_MNT_ATTACH", FAN_MNT_ATTACH, unix.FAN_MNT_ATTACH},
		{"FAN_MNT_DETACH", FAN_MNT_DETACH, unix.FAN_MNT_DETACH},
		{"FAN_EVENT_ON_CHILD", FAN_EVENT_ON_CHILD, unix.FAN_EVENT_ON_CHILD},
		{"FAN_RENAME", FAN_RENAME, unix.FAN_RENAME},
		{"FAN_ONDIR", FAN_ONDIR, unix.FAN_ONDIR},
		{"FAN_CLOSE", FAN_CLOSE, unix.FAN_CLOSE},
		{"FAN_MOVE", FAN_MOVE, unix.FAN_MOVE},
		{"FAN_EVENT_INFO_TYPE_FID", uint64(FAN_EVENT_INFO_TYPE_FID), unix.FAN_EVENT_INFO_TYPE_FID},
		{"FAN_EVENT_INFO_TYPE_DFID_NAME", uint64(FAN_EVENT_INFO_TYPE_DFID_NAME), unix.FAN_EVENT_INFO_TYPE_DFID_NAME},
		{"FAN_EVENT_INFO_TYPE_DFID", uint64(FAN_EVENT_INFO_TYPE_DFID), unix.FAN_EVENT_INFO_TYPE_DFID},
		{"FAN_EVENT_INFO_TYPE_PIDFD", uint64(FAN_EVENT_INFO_TYPE_PIDFD), unix.FAN_EVENT_INFO_TYPE_PIDFD},
		{"FAN_EVENT_INFO_TYPE_ERROR", uint64(FAN_EVENT_INFO_TYPE_ERROR), unix.FAN_EVENT_INFO_TYPE_ERROR},
		{"FAN_EVENT_INFO_TYPE_RANGE", uint64(FAN_EVENT_INFO_TYPE_RANGE), unix.FAN_EVENT_INFO_TYPE_RANGE},
		{"FAN_EVENT_INFO_TYPE_MNT", uint64(FAN_EVENT_INFO_TYPE_MNT), unix.FAN_EVENT_INFO_TYPE_MNT},
		{"FAN_EVENT_INFO_TYPE_OLD_DFID_NAME", uint64(FAN_EVENT_INFO_TYPE_OLD_DFID_NAME), unix.FAN_EVENT_INFO_TYPE_OLD_DFID_NAME},
		{"FAN_EVENT_INFO_TYPE_NEW_DFID_NAME", uint64(FAN_EVENT_INFO_TYPE_NEW_DFID_NAME), unix.FAN_EVENT_INFO_TYPE_NEW_DFID_NAME},
		{"FAN_ALLOW", uint64(FAN_ALLOW), unix.FAN_ALLOW},
		{"FAN_DENY", uint64(FAN_DENY), unix.FAN_DENY},
		{"FAN_AUDIT", uint64(FAN_AUDIT), unix.FAN_AUDIT},
		{"FAN_INFO", uint64(FAN_INFO), unix.FAN_INFO},
		{"FAN_ERRNO_BITS", FAN_ERRNO_BITS, unix.FAN_ERRNO_BITS},
		{"FAN_ERRNO_SHIFT", FAN_ERRNO_SHIFT, unix.FAN_ERRNO_SHIFT},
		{"FAN_ERRNO_MASK", FAN_ERRNO_MASK, unix.FAN_ERRNO_MASK},
		{"IN_ACCESS", uint64(IN_ACCESS), unix.IN_ACCESS},
		{"IN_MODIFY", uint64(IN_MODIFY), unix.IN_MODIFY},
		{"IN_ATTRIB", uint64(IN_ATTRIB), unix.IN_ATTRIB},
		{"IN_CLOSE_WRITE", uint64(IN_CLOSE_WRITE), unix.IN_CLOSE_WRITE},
		{"IN_CLOSE_NOWRITE", uint64(IN_CLOSE_NOWRITE), unix.IN_CLOSE_NOWRITE},
		{"IN_OPEN", uint64(IN_OPEN), unix.IN_OPEN},
		{"IN_MOVED_FROM", uint64(IN_MOVED_FROM), unix.IN_MOVED_FROM},
		{"IN_MOVED_TO", uint64(IN_MOVED_TO), unix.IN_MOVED_TO},
		{"IN_CREATE", uint64(IN_CREATE), unix.IN_CREATE},
		{"IN_DELETE", uint64(IN_DELETE), unix.IN_DELETE},
		{"IN_DELETE_SELF", uint64(IN_DELETE_SELF), unix.IN_DELETE_SELF},
		{"IN_MOVE_SELF", uint64(IN_MOVE_SELF), unix.IN_MOVE_SELF},
		{"IN_UNMOUNT", uint64(IN_UNMOUNT), unix.IN_UNMOUNT},
		{"IN_Q_OVERFLOW", uint64(IN_Q_OVERFLOW), unix.IN_Q_OVERFLOW},
		{"IN_IGNORED", uint64(IN_IGNORED), unix.IN_IGNORED},
		{"IN_ONLYDIR", uint64(IN_ONLYDIR), unix.IN_ONLYDIR},
		{"IN_DONT_FOLLOW", uint64(IN_DONT_FOLLOW), unix.IN_DONT_FOLLOW},
		{"IN_EXCL_UNLINK", uint64(IN_EXCL_UNLINK), unix.IN_EXCL_UNLINK},
		{"IN_MASK_CREATE", uint64(IN_MASK_CREATE), unix.IN_MASK_CREATE},
		{"IN_MASK_ADD", uint64(IN_MASK_ADD), unix.IN_MASK_ADD},
		{"IN_ISDIR", uint64(IN_ISDIR), unix.IN_ISDIR},
		{"IN_ONESHOT", uint64(IN_ONESHOT), unix.IN_ONESHOT},
		{"IN_ALL_EVENTS", uint64(IN_ALL_EVENTS), unix.IN_ALL_EVENTS},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %#x, x/sys/unix has %#x", tc.name, tc.got, tc.want)
		}
	}
	// Signed values.
	if FAN_NOFD != unix.FAN_NOFD || FAN_NOPIDFD != unix.FAN_NOPIDFD || FAN_EPIDFD != unix.FAN_EPIDFD {
		t.Errorf("FAN_NOFD/FAN_NOPIDFD/FAN_EPIDFD = %d/%d/%d, x/sys/unix has %d/%d/%d",
			FAN_NOFD, FAN_NOPIDFD, FAN_EPIDFD, unix.FAN_NOFD, unix.FAN_NOPIDFD, unix.FAN_EPIDFD)
	}
}

func TestDenyErrno(t *testing.T) {
	for _, tc := range []struct {
		errno unix.Errno
		want  uint32
	}{
		{0, FAN_DENY},
		{unix.EPERM, FAN_DENY | 1<<24},
		{unix.EIO, FAN_DENY | 5<<24},
		{unix.ETXTBSY, FAN_DENY | 26<<24},
		{unix.EDQUOT, FAN_DENY | 122<<24},
		{0x1ff, FAN_DENY | 0xff<<24}, // masked to 8 bits, like the kernel macro
	} {
		got := FAN_DENY_ERRNO(tc.errno)
		if got != tc.want {
			t.Errorf("FAN_DENY_ERRNO(%d) = %#x, want %#x", tc.errno, got, tc.want)
		}
		if e := ResponseErrno(got); e != tc.errno&0xff {
			t.Errorf("ResponseErrno(%#x) = %d, want %d", got, e, tc.errno&0xff)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{InitFlagsString(FAN_CLOEXEC | FAN_CLASS_CONTENT | FAN_NONBLOCK), "CLASS_CONTENT|CLOEXEC|NONBLOCK"},
		{InitFlagsString(FAN_REPORT_DFID_NAME), "CLASS_NOTIF|REPORT_DIR_FID|REPORT_NAME"},
		{InitFlagsString(FAN_CLASS_PRE_CONTENT | 0x100000), "CLASS_PRE_CONTENT|0x100000"},
		{MarkFlagsString(FAN_MARK_ADD | FAN_MARK_FILESYSTEM), "ADD|FILESYSTEM"},
		{MarkFlagsString(FAN_MARK_ADD), "ADD"},
		{MarkFlagsString(FAN_MARK_REMOVE | FAN_MARK_MNTNS), "REMOVE|MNTNS"},
		{MarkFlagsString(FAN_MARK_ADD | FAN_MARK_MOUNT | FAN_MARK_IGNORE_SURV), "ADD|MOUNT|IGNORE_SURV"},
		{MarkFlagsString(FAN_MARK_ADD | FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY | FAN_MARK_EVICTABLE),
			"ADD|IGNORED_MASK|IGNORED_SURV_MODIFY|EVICTABLE"},
		{MarkFlagsString(0), "0"},
		{MarkFlagsString(FAN_MARK_ADD | 0x10000), "ADD|0x10000"},
		{EventMaskString(FAN_OPEN_PERM | FAN_ONDIR), "OPEN_PERM|ONDIR"},
		{EventMaskString(0), "0"},
		{EventMaskString(1 << 40), "0x10000000000"},
		{InotifyMaskString(IN_CREATE | IN_ISDIR), "CREATE|ISDIR"},
		{ResponseString(FAN_ALLOW), "ALLOW"},
		{ResponseString(FAN_DENY_ERRNO(unix.EIO)), "DENY(EIO)"},
		{ResponseString(FAN_DENY | FAN_AUDIT), "DENY|AUDIT"},
		{ResponseString(7), "0x7"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestDevnum(t *testing.T) {
	for _, tc := range []struct{ major, minor uint32 }{{0, 0}, {8, 1}, {259, 3}, {7, 1 << 19}, {4095, 0xfffff}} {
		dev := Mkdev(tc.major, tc.minor)
		if Major(dev) != tc.major || Minor(dev) != tc.minor {
			t.Errorf("Mkdev(%d, %d) = %#x splits into %d:%d", tc.major, tc.minor, dev, Major(dev), Minor(dev))
		}
	}
}
