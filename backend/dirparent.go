//go:build linux

package backend

import (
	"path/filepath"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// dirParent gives an event on directory d itself (ATTRIB|ONDIR, say) its parent directory
// and name when an inode mark on that parent watches children.
//
// A FID group reports an event on a directory with the directory's own handle (and the
// name "."), whether the kernel sent it for the directory's own mark or for its parent's
// mark with FAN_EVENT_ON_CHILD|FAN_ONDIR: the record does not say which. The engine matches
// a parent's mark through Event.Parent, so without it a chmod of a subdirectory of a
// watched directory reached nobody (issue 11). Directories have one parent: the one found
// with the directory (dirInfo.parent: its ".." when the kernel resolved it, or the directory
// its DELETE came from after it went), else — a dirInfo made without one — the path's
// directory, which may be gone by now (rm -rf's open, read and close of a subdirectory, read
// after the rmdir of its parent, were lost both ways: by path, and before dirInfo.parent was
// found by "..", from a cached dirInfo).
func (b *Backend) dirParent(fv *fsView, ev *engine.Event, d *dirInfo) {
	if len(fv.eocDirs) == 0 || d.path == "" || d.path == "/" {
		return
	}
	var parent engine.ID
	if len(d.ancestors) > 0 {
		parent = d.ancestors[0]
	} else if !d.parent.IsZero() {
		parent = d.parent
	} else {
		st, err := sys.Statx(sys.AT_FDCWD, filepath.Dir(d.path), sys.AT_SYMLINK_NOFOLLOW)
		if err != nil || st.Dev != fv.state.dev {
			return
		}
		parent = inodeID(st.Dev, st.Ino)
	}
	if fv.eocDirs[parent] {
		ev.Parent, ev.Name = parent, filepath.Base(d.path)
	}
}
