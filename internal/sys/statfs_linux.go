package sys

import "golang.org/x/sys/unix"

// statfs(2) f_flags (FsStat.Flags): the mount's flags together with its filesystem's, so
// ST_RDONLY is set for a read-only bind mount of a writable filesystem too.
const (
	ST_RDONLY = unix.ST_RDONLY
	ST_NOSUID = unix.ST_NOSUID
	ST_NODEV  = unix.ST_NODEV
	ST_NOEXEC = unix.ST_NOEXEC
)
