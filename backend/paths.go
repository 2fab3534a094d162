//go:build linux

package backend

import (
	"errors"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// Paths the kernel will not print, and paths it prints wrong.
//
// The backend learns an FD-group event's path from readlink(/proc/self/fd/N) and its
// ancestry (which subtree marks see it) from that path. Two things break this, and an
// attacker controls both:
//
//   - A path longer than PATH_MAX (any user who may create directories can make one):
//     readlink fails with ENAMETOOLONG. For a directory, its ancestry comes from its
//     descriptor instead (sys.WalkUp) and its path from sys.LongPath; FID-group events
//     carry a directory handle, opened and handled the same way. A non-directory's parent
//     cannot be reached from its descriptor, so its place is unknown.
//   - A non-directory opened by file handle (open_by_handle_at) may have a dentry that is
//     not connected to the tree: the kernel then prints "/" or "/name". The backend takes
//     a non-directory's printed path only if it leads back to the same inode.
//
// An event whose place is unknown is dispatched with engine.Event.AncestryUnknown and, as
// PossibleAncestors, every subtree root and children-watching directory of its filesystem:
// each of those marks treats it as possibly inside (docs/security.md, "Paths the kernel
// cannot print"). Its Path is "", which consumers treat as unknown, never as a path that
// matches nothing. Such an event never gets an ignore mark.

// maxWalkLevels bounds the directories walked up from one descriptor: a path of PATH_MAX
// has at most 2048; an attacker's deeper tree beyond the bound is reported with its place
// unknown (conservative) rather than costing every event a walk of any length.
const maxWalkLevels = 4096

// eventPath returns the path of event descriptor fd, whose statx is st, and whether it is
// known: for a directory, at any length (sys.LongPath); for a non-directory, only what
// readlink prints (a file's directory is not reachable from its descriptor). The kernel
// prints the path in the mount namespace the object was opened in, and any user makes one
// (unshare -Urm) with a directory of theirs bind-mounted over any path: so a path is taken
// only if it leads back to the same inode here, or, for a directory (a rename meanwhile) and
// for an unlinked object, whose path no lookup can check, if the descriptor's mount is one of
// this namespace's (sys.MountPlaceOf). The kernel's " (deleted)" suffix is dropped from an unlinked
// object's path (nlink 0), whose last path it is; a live file whose name ends in " (deleted)"
// keeps it. An object unlinked after st was taken and before its path was read has the
// suffix with st's nlink not 0: st is then taken again (*st updated), so that the caller sees
// it gone and no path gets the suffix as a name (a tree's rm -rf read as it runs reported
// "d/e (deleted)/f"). onMount reports that the path was found, by a statx of it taken after
// st, to name st's object on st's own mount: verifyPath's first look, already made (its
// caller passes it on rather than take the same statx again: h30-daemonsys).
func eventPath(fd int, st *sys.Stat) (path string, known, onMount bool) {
	return descPath(fd, st, false)
}

// descPath is eventPath; here says fd is a descriptor the backend opened in its own mount
// namespace (by handle through an anchor), so that its mount is here without asking.
func descPath(fd int, st *sys.Stat, here bool) (path string, known, onMount bool) {
	for try := 0; try < 2; try++ {
		p, err := sys.FdPath(fd)
		if err != nil {
			if st.IsDir() && errors.Is(err, syscall.ENAMETOOLONG) {
				if p, err := sys.LongPath(fd, 0); err == nil && (here || sys.MountPlaceOf(st) == sys.MountHere) {
					restatIfDeleted(fd, p, st)
					p, known := trimDeleted(p, st, here)
					return p, known, false
				}
			}
			return "", false, false
		}
		restatIfDeleted(fd, p, st)
		if st.IsDir() {
			// A directory's dentry is always connected, but its path is printed in the mount
			// namespace it was opened in: it is this one's if it leads back here, or if the
			// mount is here (a rename meanwhile).
			if here || st.Nlink == 0 {
				p, known := trimDeleted(p, st, here)
				return p, known, false
			}
			if leads, on := leadsTo(p, st); leads || sys.MountPlaceOf(st) == sys.MountHere {
				return p, true, on
			}
			return "", false, false
		}
		if st.Nlink == 0 {
			if p, ok := strings.CutSuffix(p, " (deleted)"); ok {
				// An unlinked file: its last name, in its last directory, if that is here.
				if !here && sys.MountPlaceOf(st) != sys.MountHere {
					return "", false, false
				}
				return p, true, false
			}
		}
		if leads, on := leadsTo(p, st); leads {
			return p, true, on
		}
		// Renamed between the two calls, or a disconnected dentry ("/", "/name"): once more,
		// then unknown.
	}
	return "", false, false
}

// restatIfDeleted takes fd's statx again into *st when its path p has the kernel's
// " (deleted)" suffix but st says it was linked: it may have been unlinked between the two
// (links only go down to 0 once, for a directory; a file relinked since is found by leadsTo).
func restatIfDeleted(fd int, p string, st *sys.Stat) {
	if st.Nlink == 0 || !strings.HasSuffix(p, " (deleted)") {
		return
	}
	if fresh, err := sys.Fstat(fd); err == nil {
		*st = fresh
	}
}

// trimDeleted is a directory's path p: its last one, known only if its mount is here, when it
// was removed (see eventPath).
func trimDeleted(p string, st *sys.Stat, here bool) (string, bool) {
	if st.Nlink == 0 {
		if !here && sys.MountPlaceOf(st) != sys.MountHere {
			return "", false
		}
		return strings.TrimSuffix(p, " (deleted)"), true
	}
	return p, true
}

// leadsTo reports whether path names the object st describes, and onMount whether it names it
// on st's own mount too (what verifyPath asks of a path first).
func leadsTo(path string, st *sys.Stat) (leads, onMount bool) {
	if path == "" || path[0] != '/' {
		return false, false
	}
	got, err := sys.Statx(sys.AT_FDCWD, path, sys.AT_SYMLINK_NOFOLLOW)
	leads = err == nil && got.Dev == st.Dev && got.Ino == st.Ino
	return leads, leads && got.MntID == st.MntID
}

// placeUnknown marks ev as possibly below every subtree root and every children-watching
// directory on its filesystem (fv nil: none are marked), and below the directories known,
// those the caller knows to be above it (its parent, say).
func placeUnknown(ev *engine.Event, fv *fsView, known ...engine.ID) {
	ev.AncestryUnknown = true
	ev.Ancestors = nil
	var possible []engine.ID
	if fv != nil {
		possible = fv.possibleAncestors
	}
	if len(known) > 0 {
		possible = append(append(make([]engine.ID, 0, len(known)+len(possible)), known...), possible...)
	}
	ev.PossibleAncestors = possible
}

// ancestry returns the IDs of dir and the directories above it on device dev, nearest first,
// up to the filesystem's root; with all unset only dir's own ID. complete reports whether it
// got them all: it reached the root of the filesystem (or, with no mount of that root in
// sight, the highest directory this mount namespace names), or (all unset) dir. A walk that
// meets the root of a mount of a directory below the filesystem's root (a bind mount) goes on
// from where that directory is in the whole filesystem, found by handle through fs's anchor.
// A directory that cannot be stat'ed on the way (moved or removed meanwhile, or a path that
// does not name what the caller thinks) leaves it incomplete.
func (b *Backend) ancestry(fs *fsState, dir string, dev uint64, all bool) (chain []engine.ID, complete bool) {
	chain, complete, _ = b.ancestryPinned(fs, dir, dev, all)
	return chain, complete
}

// ancestryPinned is ancestry, and reports too whether the chain is pinned: all of it, up to
// the root of the filesystem, walked without leaving the path's mount, and every directory
// on it owned by root and writable by neither group nor others unless it is sticky. Nobody
// but root can then rename or move any of them, nor the entries in them but a file of their
// own in a sticky one, whose move moves its ctime (docs/security.md, "Cached ancestries of
// pinned files"): in a sticky directory only the owner of an entry or of the directory may
// rename or remove the entry, and the directories of the chain are all root's. An access
// ACL cannot grant a write that the mode does not show: the group bits of a directory with
// an ACL are its mask, which bounds every named entry.
func (b *Backend) ancestryPinned(fs *fsState, dir string, dev uint64, all bool) (chain []engine.ID, complete, pinned bool) {
	pinned = all && fs != nil && fs.rootIno != 0
	for hops := 0; ; {
		st, err := sys.Statx(sys.AT_FDCWD, dir, sys.AT_SYMLINK_NOFOLLOW)
		if err != nil || st.Dev != dev {
			return chain, false, false
		}
		chain = append(chain, inodeID(st.Dev, st.Ino))
		if !all {
			return chain, true, false
		}
		if !st.IsDir() || st.Uid != 0 || st.Mode&0o022 != 0 && st.Mode&modeSticky == 0 {
			pinned = false
		}
		if st.MountRoot || dir == "/" {
			if fs.isRoot(st.Ino) {
				return chain, true, pinned && hops == 0 && st.Ino == fs.rootIno
			}
			pinned = false
			// A mount of a directory below the filesystem's root: go on above it.
			if hops++; hops > 8 {
				return chain, false, false
			}
			whole, ok := dirPathByHandle(fs, dir, st)
			if !ok || whole == "/" {
				return chain, false, false
			}
			dir = filepath.Dir(whole)
			continue
		}
		dir = filepath.Dir(dir)
	}
}

// modeSticky is S_ISVTX, the sticky bit of a directory's mode.
const modeSticky = 0o1000

// isRoot reports whether ino is the root of fs's filesystem, as far as this mount namespace
// can tell: with no mount of that root in sight, the root of any mount counts.
func (fs *fsState) isRoot(ino uint64) bool {
	return fs == nil || fs.rootIno == 0 || ino == fs.rootIno
}

// dirPathByHandle is pathByHandle for the directory at dir (stat st).
func dirPathByHandle(fs *fsState, dir string, st sys.Stat) (string, bool) {
	fd, err := sys.Open(dir, sys.O_PATH|sys.O_DIRECTORY, 0)
	if err != nil {
		return "", false
	}
	defer sys.Close(fd)
	return pathByHandle(fs, fd, st)
}

// dirAncestry returns the IDs of the directories above directory fd (stat st), nearest first,
// up to the filesystem's root, found from the descriptor (sys.WalkUp), and whether that is the
// whole way up. A walk that ends at the root of a mount of a subdirectory (a bind mount) goes
// on from the directory's place in the whole filesystem (by handle), if its path is short
// enough to be read; else it is incomplete.
func (b *Backend) dirAncestry(fs *fsState, fd int, st sys.Stat) ([]engine.ID, bool) {
	levels, complete, err := sys.WalkUp(fd, maxWalkLevels)
	if err != nil || len(levels) == 0 {
		return nil, false
	}
	if last := levels[len(levels)-1]; complete && last.MountRoot && !fs.isRoot(last.Ino) {
		whole, ok := pathByHandle(fs, fd, st)
		if !ok || whole == "/" {
			return nil, false
		}
		return b.ancestry(fs, filepath.Dir(whole), st.Dev, true)
	}
	chain := make([]engine.ID, 0, len(levels)-1)
	for _, l := range levels[1:] {
		chain = append(chain, inodeID(l.Dev, l.Ino))
	}
	return chain, complete
}

// fdObjectPath is eventPath for a descriptor the backend opened itself: "" if unknown.
func fdObjectPath(fd int) string {
	st, err := sys.Fstat(fd)
	if err != nil {
		return ""
	}
	p, _, _ := descPath(fd, &st, true)
	return p
}
