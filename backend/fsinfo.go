//go:build linux

package backend

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// openAnchor opens a readable directory on the filesystem of fd (found at path): the root of
// the mount it is on, when no mount of the filesystem's root is in sight (see
// openRootAnchor). open_by_handle_at needs a mount descriptor that is not O_PATH, fs marks
// need a path on the filesystem, and an open descriptor pins its dentry — the kernel would
// report DELETE_SELF of a pinned object only once it closes — so the anchor is a directory
// that cannot be deleted while mounted. If the mount root cannot be found (the path is from
// another mount namespace, say), it falls back to fd's own directory.
func openAnchor(fd int, path string, dev uint64) int {
	if path != "" && filepath.IsAbs(path) {
		p := path
		if st, err := sys.Statx(sys.AT_FDCWD, p, sys.AT_SYMLINK_NOFOLLOW); err != nil || !st.IsDir() {
			p = filepath.Dir(p)
		}
		for {
			st, err := sys.Statx(sys.AT_FDCWD, p, 0)
			if err != nil || st.Dev != dev {
				break
			}
			if st.MountRoot || p == "/" {
				if a, err := sys.Open(p, sys.O_RDONLY|sys.O_DIRECTORY, 0); err == nil {
					return a
				}
				break
			}
			p = filepath.Dir(p)
		}
	}
	// Fall back to the object itself, if a directory, or its directory — only on the same
	// filesystem: an anchor elsewhere would put filesystem marks on the wrong filesystem.
	candidates := []string{"/proc/self/fd/" + strconv.Itoa(fd)}
	if filepath.IsAbs(path) {
		candidates = append(candidates, filepath.Dir(path))
	}
	for _, c := range candidates {
		a, err := sys.Open(c, sys.O_RDONLY|sys.O_DIRECTORY, 0)
		if err != nil {
			continue
		}
		if st, err := sys.Fstat(a); err == nil && st.Dev == dev {
			return a
		}
		sys.Close(a)
	}
	return -1
}

// fsRoot returns where a mount of the root directory of the filesystem on dev is (found in
// /proc/thread-self/mountinfo) and that directory's inode number; "" and 0 if none is mounted here.
func fsRoot(dev uint64) (string, uint64) {
	// This thread's view (/proc/self/mountinfo shows the mounts seen from the root directory
	// of the process's first thread, which sys.LongPath may have borrowed).
	f, err := os.Open("/proc/thread-self/mountinfo")
	if err != nil {
		return "", 0
	}
	defer f.Close()
	want := strconv.FormatUint(uint64(sys.Major(dev)), 10) + ":" + strconv.FormatUint(uint64(sys.Minor(dev)), 10)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options ...
		fields := mountinfoFields(sc.Text())
		if len(fields) < 5 || fields[2] != want || fields[3] != "/" {
			continue
		}
		mnt := unescapeMountinfo(fields[4])
		st, err := sys.Statx(sys.AT_FDCWD, mnt, sys.AT_SYMLINK_NOFOLLOW)
		if err == nil && st.Dev == dev && st.MountRoot {
			return mnt, st.Ino
		}
	}
	return "", 0
}

// openRootAnchor opens the mount of the filesystem's root directory at mnt (from fsRoot) as
// the filesystem's anchor: open_by_handle_at through it yields paths from the filesystem's
// root, whatever mount an object was reached by.
func openRootAnchor(mnt string, dev, ino uint64) int {
	a, err := sys.Open(mnt, sys.O_RDONLY|sys.O_DIRECTORY, 0)
	if err != nil {
		return -1
	}
	if st, err := sys.Fstat(a); err != nil || st.Dev != dev || st.Ino != ino || !st.MountRoot {
		sys.Close(a)
		return -1
	}
	return a
}

// mountinfoFields splits a line of mountinfo into its fields, which the kernel separates by
// one space, having escaped the blanks of paths in octal (unescapeMountinfo). Not
// strings.Fields: it also splits at blanks the kernel leaves as they are (U+00A0, U+0085), which
// a user may put in the name of a mount of theirs (a FUSE mount through fusermount), shifting
// the fields after it ("x\u00a0-\u00a0proc" reads as the separator and a proc filesystem).
func mountinfoFields(line string) []string {
	return strings.FieldsFunc(line, func(r rune) bool { return r == ' ' })
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space, ...).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// pseudoFS are filesystem types that take no fanotify marks or are not real files.
var pseudoFS = map[string]bool{
	"proc": true, "sysfs": true, "devtmpfs": true, "devpts": true, "cgroup": true, "cgroup2": true,
	"securityfs": true, "debugfs": true, "tracefs": true, "pstore": true, "bpf": true, "mqueue": true,
	"hugetlbfs": true, "configfs": true, "fusectl": true, "binfmt_misc": true, "autofs": true,
	"efivarfs": true, "rpc_pipefs": true, "nsfs": true, "ramfs": false, "overlay": false,
}

// RealFilesystems returns one mount point per real filesystem in /proc/self/mountinfo
// (pseudo filesystems such as proc, sysfs and cgroup left out), for machine-wide tracing.
func RealFilesystems() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	seen := map[string]bool{}
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superopts
		fields := mountinfoFields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(fields) || len(fields) < 5 {
			continue
		}
		if pseudoFS[fields[sep+1]] || seen[fields[2]] {
			continue
		}
		seen[fields[2]] = true
		out = append(out, unescapeMountinfo(fields[4]))
	}
	return out, sc.Err()
}

// ForeignFilesystem reports whether marking fd's object would make the backend take up a
// filesystem that its own mount namespace does not show: one it has not taken up yet (it
// then keeps the filesystem's descriptors and state for as long as it runs, and pins its
// superblock), reached through a mount of another namespace, with no mount of that
// filesystem here — a tmpfs a user mounted in a user and mount namespace of its own, say.
// The daemon refuses such marks to unprivileged clients: a user who can make filesystems
// would otherwise make it hold descriptors without bound. Always false with inotify, which
// keeps no descriptor.
func (b *Backend) ForeignFilesystem(fd int) (bool, error) {
	if b.mode != ModeFanotify {
		return false, nil
	}
	st, err := sys.Fstat(fd)
	if err != nil {
		return false, err
	}
	b.mu.Lock()
	_, known := b.fss[st.Dev]
	b.mu.Unlock()
	if known {
		return false, nil
	}
	if sys.MountPlaceOf(&st) == sys.MountHere {
		return false, nil // a mount of this namespace
	}
	return !devMountedHere(st.Dev), nil
}

// devMountedHere reports whether /proc/thread-self/mountinfo shows a mount of the filesystem
// on dev (any of its directories): a mount namespace made from this one (a service's private
// /tmp) reaches the same filesystems through copies of these mounts.
func devMountedHere(dev uint64) bool {
	f, err := os.Open("/proc/thread-self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	want := strconv.FormatUint(uint64(sys.Major(dev)), 10) + ":" + strconv.FormatUint(uint64(sys.Minor(dev)), 10)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options ...
		if fields := mountinfoFields(sc.Text()); len(fields) >= 3 && fields[2] == want {
			return true
		}
	}
	return false
}
