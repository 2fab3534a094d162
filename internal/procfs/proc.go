//go:build linux

// Package procfs reads the attributes of the process behind an event from /proc: its name,
// effective uid, groups, executable, parent and session. The backend's readers, the daemon,
// the notify library and the guard read them through it. procfs takes no fanotify marks, so
// none of these ever waits on a listener, and none asks the filesystem of a process's
// executable (see ReadExe).
//
// The Read* functions tell a process that is gone from a failure to read: their error is
// os.ErrProcessDone (wrapped) when the process has exited or pid is 0 (unknown), and the
// system's error otherwise. The package keeps no state and starts no goroutine.
package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// Comm returns a process's name, /proc/PID/comm ("" if the process is gone).
func Comm(pid int32) string {
	comm, _ := readComm(pid)
	return comm
}

// ReadComm returns a process's name, /proc/PID/comm. Any process can set its own.
func ReadComm(pid int32) (string, error) {
	comm, err := readComm(pid)
	return comm, goneOr(pid, err)
}

// readComm is ReadComm with the system's error.
func readComm(pid int32) (string, error) {
	var buf [64]byte // TASK_COMM_LEN is 16
	n, err := readProc(pid, "comm", buf[:])
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(buf[:n]), "\n"), nil
}

// EUID returns a process's effective uid (the one its file accesses are checked with),
// from /proc/PID/status; false if the process is gone.
func EUID(pid int32) (uint32, bool) {
	uid, err := ReadEUID(pid)
	return uid, err == nil
}

// ReadEUID is EUID with the error.
func ReadEUID(pid int32) (uint32, error) { return readUID(pid, 1, "effective") }

// ReadRUID returns a process's real uid, from /proc/PID/status: the user who started it,
// which a set-user-ID program does not change (only a privileged process can).
func ReadRUID(pid int32) (uint32, error) { return readUID(pid, 0, "real") }

// ReadLoginUID returns a process's login uid, /proc/PID/loginuid: the user whose login session
// (pam_loginuid) it descends from, whatever uids it runs as — in a user namespace too; set
// false when it is unset (a process started outside any login, as system services are).
// Changing it takes CAP_AUDIT_CONTROL, and once set, where loginuid_immutable is on, nothing
// changes it.
func ReadLoginUID(pid int32) (uid uint32, set bool, err error) {
	var buf [16]byte
	n, err := readProc(pid, "loginuid", buf[:])
	if err != nil {
		return 0, false, goneOr(pid, err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(buf[:n])), 10, 32)
	if err != nil {
		return 0, false, fmt.Errorf("/proc/%d/loginuid: %w", pid, err)
	}
	const unset = 1<<32 - 1 // AUDIT_UID_UNSET
	return uint32(v), v != unset, nil
}

// ReadUIDs returns a process's real and effective uids from one read of /proc/PID/status
// (ReadRUID and ReadEUID read it once each).
func ReadUIDs(pid int32) (real, effective uint32, err error) {
	ids, err := statusUIDs(pid, 1, "effective")
	if err != nil {
		return 0, 0, err
	}
	return ids[0], ids[1], nil
}

// readUID reads field i of the "Uid:" line of /proc/PID/status (real, effective, saved,
// filesystem), named which.
func readUID(pid int32, i int, which string) (uint32, error) {
	ids, err := statusUIDs(pid, i, which)
	if err != nil {
		return 0, err
	}
	return ids[i], nil
}

// statusUIDs reads the "Uid:" line of /proc/PID/status, which must have field i (named
// which in the error).
func statusUIDs(pid int32, i int, which string) ([]uint32, error) {
	var buf [2048]byte // Uid: is in the first kilobyte
	n, err := readProc(pid, "status", buf[:])
	if err != nil {
		return nil, goneOr(pid, err)
	}
	ids, ok := statusIDs(buf[:n], "Uid:")
	if !ok || len(ids) <= i {
		return nil, fmt.Errorf("/proc/%d/status: no %s uid", pid, which)
	}
	return ids, nil
}

// ReadGroups returns every group id of a process: its real, effective, saved and
// filesystem gid (the "Gid:" line of /proc/PID/status) and its supplementary groups
// ("Groups:"), duplicates included. An unprivileged process can switch among the first four
// and cannot drop a supplementary group, so it can neither add a group to this set nor leave
// one.
func ReadGroups(pid int32) ([]uint32, error) {
	var small [4096]byte // enough but for very long group lists
	n, err := readProc(pid, "status", small[:])
	if err != nil {
		return nil, goneOr(pid, err)
	}
	b := small[:n]
	if n == len(small) {
		// Groups: may hold up to 65536 ids; read the whole file.
		if b, err = os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/status"); err != nil {
			return nil, goneOr(pid, err)
		}
	}
	gids, ok := statusIDs(b, "Gid:")
	if !ok || len(gids) != 4 {
		return nil, fmt.Errorf("/proc/%d/status: no Gid line", pid)
	}
	supp, ok := statusIDs(b, "Groups:")
	if !ok {
		return nil, fmt.Errorf("/proc/%d/status: no Groups line", pid)
	}
	return append(gids, supp...), nil
}

// GroupsMayLack reports whether the groups ReadGroups gives of process pid may lack one it
// had: it is in a user namespace where setgroups(2) may have been allowed
// (sys.GroupsMayLack: a privileged helper, newgidmap, mapped its gids), where it may have
// dropped a supplementary group.
func GroupsMayLack(pid int32) (bool, error) {
	if pid <= 0 {
		return false, goneOr(pid, syscall.ESRCH)
	}
	may, err := sys.GroupsMayLack(int(pid))
	return may, goneOr(pid, err)
}

// ReadSupplementaryGroups returns a process's supplementary groups (the "Groups:" line of
// /proc/PID/status).
func ReadSupplementaryGroups(pid int32) ([]uint32, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/status") // up to 65536 groups
	if err != nil {
		return nil, goneOr(pid, err)
	}
	supp, ok := statusIDs(b, "Groups:")
	if !ok {
		return nil, fmt.Errorf("/proc/%d/status: no Groups line", pid)
	}
	return supp, nil
}

// statusIDs parses the numbers of the /proc/PID/status line that starts with key; false if
// there is no such line (or, read in part, it does not end) or a field is not a number.
func statusIDs(b []byte, key string) ([]uint32, bool) {
	for len(b) > 0 {
		line := b
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return nil, false // a line cut by the read
		}
		line, b = b[:i], b[i+1:]
		rest, ok := bytes.CutPrefix(line, []byte(key))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		ids := make([]uint32, 0, len(f))
		for _, s := range f {
			n, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return nil, false
			}
			ids = append(ids, uint32(n))
		}
		return ids, true
	}
	return nil, false
}

// ReadExeLink returns /proc/PID/exe as the kernel writes it, and whether the executable was
// deleted: then the path is without the " (deleted)" the kernel appended, which a file may
// have in its name too — such a path is the file's own only if it leads, as written, to the
// very file the process runs. For a name, not a decision: see ReadExe.
func ReadExeLink(pid int32) (path string, deleted bool, err error) {
	link := "/proc/" + strconv.Itoa(int(pid)) + "/exe"
	path, err = sys.Readlink(link)
	const suffix = " (deleted)"
	if err != nil || !strings.HasSuffix(path, suffix) {
		return path, false, err
	}
	exe, err := sys.Statx(sys.AT_FDCWD, link, sys.AT_STATX_DONT_SYNC) // the executable itself
	if err != nil {
		return "", false, err // exited meanwhile: not known which
	}
	if exe.Nlink > 0 {
		// A file of that name, if the whole string leads to this very file.
		if fd, err := sys.Openat2(sys.AT_FDCWD, path, sys.O_PATH, 0, sys.RESOLVE_CACHED); err == nil {
			st, err := sys.Statx(fd, "", sys.AT_EMPTY_PATH|sys.AT_STATX_DONT_SYNC)
			sys.Close(fd)
			if err == nil && st.Dev == exe.Dev && st.Ino == exe.Ino {
				return path, false, nil
			}
		}
	}
	return strings.TrimSuffix(path, suffix), true, nil
}

// ReadExe returns the executable a process runs: /proc/PID/exe as the kernel writes
// it, and whether that path leads, in this process's mount namespace, to that very file (same
// device and inode). It does not (verified is false) when the executable was deleted (the
// kernel appends " (deleted)") or replaced since it started, or when the process started it
// through a mount this process does not see (another mount namespace: a container, or an
// unprivileged user namespace that mounted its own file over /usr/bin/x, whose path reads
// /usr/bin/x), or when the process is in a user namespace other than this process's: there it
// may have set its executable to any file it can open (prctl(PR_SET_MM_MAP) with exe_fd needs
// only CAP_CHECKPOINT_RESTORE in its own user namespace), while it runs code of its own. A process with no executable (a kernel thread, or a thread group whose leader
// has exited) and one whose path is longer than PATH_MAX give "" and false, not an error: the
// path cannot be known, which is no failure of ours.
//
// It never asks the executable's filesystem: the process may run a program from a FUSE
// mount whose daemon (its owner's) does not answer, and a guard that waited for it would stall
// every decision. Attributes come from the kernel's cache (AT_STATX_DONT_SYNC) and the path is
// resolved through the lookup caches only (RESOLVE_CACHED); a path they cannot resolve (a FUSE
// or network filesystem that wants to be asked again) is not verified.
func ReadExe(pid int32) (path string, verified bool, err error) {
	exe, err := ReadExecutable(pid)
	return exe.Path, exe.Verified, err
}

// Exe is the executable a process runs, as ReadExecutable read it: its path and whether that
// is verified (ReadExe), with what ExeUnknown looks at of the file the process runs, read
// with the path, so that ExeUnknown need not read it again.
type Exe struct {
	Path     string
	Verified bool
	file     exeFile
}

// exeFile is what ExeUnknown looks at of the file a process runs (/proc/PID/exe's own
// attributes): its owner, its links, its mount.
type exeFile struct {
	uid, nlink  uint32
	mntID       uint64
	mntIDUnique bool
	read        bool // the rest holds the file's attributes (an Exe ReadExecutable gave with a path)
}

// exeFileOf keeps of st what ExeUnknown looks at.
func exeFileOf(st *sys.Stat) exeFile {
	return exeFile{read: true, uid: st.Uid, nlink: st.Nlink, mntID: st.MntID, mntIDUnique: st.MntIDUnique}
}

// ReadExecutable is ReadExe, with what ExeUnknown needs of the executable.
func ReadExecutable(pid int32) (Exe, error) {
	if pid <= 0 {
		return Exe{}, goneOr(pid, syscall.ENOENT)
	}
	dir := "/proc/" + strconv.Itoa(int(pid))
	link := dir + "/exe"
	var path string
	exe, err := sys.Statx(sys.AT_FDCWD, link, sys.AT_STATX_DONT_SYNC) // the executable itself (a magic link)
	if err == nil {
		path, err = sys.Readlink(link)
	}
	switch {
	case errors.Is(err, syscall.ENAMETOOLONG):
		return Exe{}, nil
	case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ESRCH):
		if _, serr := sys.Statx(sys.AT_FDCWD, dir, 0); serr != nil {
			return Exe{}, goneOr(pid, serr)
		}
		return Exe{}, nil // no executable, but the process is there
	case err != nil:
		return Exe{}, err
	}
	e := Exe{Path: path, file: exeFileOf(&exe)} // not verified, until shown
	if exe.Nlink == 0 {
		return e, nil // deleted
	}
	// O_PATH: the file itself is not opened (no permission event, no filesystem open).
	fd, err := sys.Openat2(sys.AT_FDCWD, path, sys.O_PATH, 0, sys.RESOLVE_CACHED)
	if err != nil {
		return e, nil // gone from the path, or not resolvable without the filesystem
	}
	st, err := sys.Statx(fd, "", sys.AT_EMPTY_PATH|sys.AT_STATX_DONT_SYNC)
	sys.Close(fd)
	if err != nil || st.Dev != exe.Dev || st.Ino != exe.Ino {
		return e, nil
	}
	// A process in a user namespace of its own set its executable where it liked
	// (prctl(PR_SET_MM_MAP) with exe_fd: sys.UserNSForeign): it leads to that file, and
	// vouches for nothing.
	foreign, err := sys.UserNSForeign(int(pid))
	if err != nil {
		return Exe{}, goneOr(pid, err)
	}
	e.Verified = !foreign
	return e, nil
}

// ExeUnknown reports whether the executable of process pid, as ReadExecutable gave it, is
// unknown: it may be any program. ReadExe does not verify a path that does not
// lead, here, to the file the process runs; that is unknown when the process has no path we
// can read and is not a kernel thread (its thread group's leader has exited, which any
// program can do; or the path is longer than PATH_MAX), or when it runs in a mount namespace
// that a user made (sys.MountNSForeign: there any user may mount any file over any path, so
// the path it gives says nothing of what runs), or in a user namespace other than ours
// (sys.UserNSForeign: it may have set its executable to any file, PR_SET_MM_MAP), or when it
// is not root's and was deleted, or was opened through a mount of another mount namespace:
// a user who runs a program of theirs and removes it (or whose program removes itself), or
// who runs it, in the guard's namespaces, from a descriptor opened through a bind mount in a
// namespace of their own, chose the path it shows, which then leads to no file here (before
// 2026-12-07 such a process matched no glob and escaped every `deny ... exe=` of the user's
// directories). So is root's file run that way by a process in this mount namespace (root's
// dash reached through a user's overlay or bind mount of /usr/bin and fexecve'd here: before
// 2026-12-07 it escaped `deny ... exe=/usr/bin/dash`). An executable of root's
// deleted or replaced since it started (an upgraded daemon), or started in a namespace of
// root's (a container, from that namespace's mounts), is not verified but not unknown: no
// user chose its path. A process
// gone, or whose namespace cannot be read, is not unknown (no decision is made for a gone
// process; an error reading is the caller's to report).
//
// The executable's owner, links and mount are those ReadExecutable read with the path; an Exe
// made of a path and verified given elsewhere has none, and then they are read now, from
// /proc/PID/exe.
func ExeUnknown(pid int32, exe Exe) (bool, error) {
	if exe.Verified {
		return false, nil
	}
	if exe.Path == "" {
		kernel, err := IsKernelThread(pid)
		return err == nil && !kernel, goneOr(pid, err)
	}
	f := exe.file
	if !f.read {
		st, err := sys.Statx(sys.AT_FDCWD, "/proc/"+strconv.Itoa(int(pid))+"/exe", sys.AT_STATX_DONT_SYNC)
		if err != nil {
			return false, goneOr(pid, err)
		}
		f = exeFileOf(&st)
	}
	if f.uid != 0 && f.nlink == 0 {
		return true, nil
	}
	if sys.MountPlaceOf(&sys.Stat{MntID: f.mntID, MntIDUnique: f.mntIDUnique}) == sys.MountElsewhere {
		if f.uid != 0 {
			return true, nil
		}
		// Root's linked file, through a mount of no namespace here, run by a process in
		// ours: it was handed its executable from another namespace (a descriptor passed
		// back from a user's own overlay or bind mount of /usr/bin, fexecve'd here), whose
		// path says nothing of which program it is. A process of a container of root's runs
		// from its own namespace's mounts, and root's memfd (runc's copy of itself) is not
		// linked: those stay "matches no glob".
		if f.nlink == 0 {
			return false, nil
		}
		own, err := sys.MountNSOwn(int(pid))
		if err != nil {
			return false, goneOr(pid, err)
		}
		if own {
			return true, nil
		}
	}
	foreign, err := sys.MountNSForeign(int(pid))
	if err == nil && !foreign {
		foreign, err = sys.UserNSForeign(int(pid))
	}
	if err != nil {
		return false, goneOr(pid, err)
	}
	return foreign, nil
}

// goneOr turns err into os.ErrProcessDone (wrapped) if it says that process pid is gone
// (ENOENT, ESRCH; pid 0 or less is no process); it returns any other error as it is.
func goneOr(pid int32, err error) error {
	if err == nil {
		return nil
	}
	if pid <= 0 || errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("process %d: %w", pid, os.ErrProcessDone)
	}
	return err
}

// readProc reads the start of /proc/PID/name into buf with one read (no os.File, no
// allocation: the readers call it per event).
func readProc(pid int32, name string, buf []byte) (int, error) {
	if pid <= 0 {
		return 0, os.ErrNotExist
	}
	fd, err := sys.Open("/proc/"+strconv.Itoa(int(pid))+"/"+name, sys.O_RDONLY|sys.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	n, err := sys.Read(fd, buf)
	sys.Close(fd)
	return n, err
}

// ReadStat reads a process's parent and session from /proc/PID/stat.
func ReadStat(pid int32) (ppid, sid int32, err error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, 0, err
	}
	p, err1 := strconv.ParseInt(f[1], 10, 32)
	s4, err2 := strconv.ParseInt(f[3], 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: bad ppid or session", pid)
	}
	return int32(p), int32(s4), nil
}

// ReadStartTime reads when a process started (/proc/PID/stat's starttime, in clock ticks
// since boot): with its pid, the process's identity, which a pid reused by another process
// does not keep.
func ReadStartTime(pid int32) (uint64, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: no starttime", pid)
	}
	t, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad starttime", pid)
	}
	return t, nil
}

// IsKernelThread reports whether pid is a kernel thread (PF_KTHREAD in /proc/PID/stat's
// flags): it runs no program from a file, and no user chooses what it does.
func IsKernelThread(pid int32) (bool, error) {
	f, err := statFields(pid)
	if err != nil {
		return false, err
	}
	flags, err := strconv.ParseUint(f[6], 10, 32)
	if err != nil {
		return false, fmt.Errorf("/proc/%d/stat: bad flags", pid)
	}
	const pfKthread = 0x00200000 // PF_KTHREAD
	return flags&pfKthread != 0, nil
}

// statFields returns the fields of /proc/PID/stat after the comm field: state, ppid, pgrp,
// session, tty_nr, tpgid, flags, ... (at least seven).
func statFields(pid int32) ([]string, error) {
	var buf [1024]byte // pid (comm) state ppid pgrp session ...: comm is at most 64 bytes
	n, err := readProc(pid, "stat", buf[:])
	if err != nil {
		return nil, goneOr(pid, err)
	}
	f, err := parseStat(buf[:n])
	if err != nil {
		return nil, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return f, nil
}

// parseStat returns the fields of a /proc/PID/stat line after its comm field (at least seven).
// The comm field is the process's own choice: it may hold spaces, parentheses and newlines
// ("x) R 1 1 1"), but no field after it holds a ')', so the fields go on after the last one.
func parseStat(b []byte) ([]string, error) {
	s := string(b)
	j := strings.LastIndexByte(s, ')')
	if j < 0 {
		return nil, errors.New("no comm field")
	}
	f := strings.Fields(s[j+1:])
	if len(f) < 7 {
		return nil, errors.New("too few fields")
	}
	return f, nil
}
