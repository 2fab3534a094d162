//go:build linux

package client

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/fsevent"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// ident is what a marked object was, for finding it again by path without keeping a
// descriptor of it (see the package doc).
type ident struct {
	dev, ino  uint64
	isDir     bool
	handle    sys.FileHandle // the inode's file handle (generation included where the
	hasHandle bool           // filesystem has one), when the filesystem gives one
	mntID     uint64
	mntUnique bool // mntID is never reused (STATX_MNT_ID_UNIQUE)
}

// identify returns the identity of fd's object.
func identify(fd int) (ident, error) {
	st, err := sys.Fstat(fd)
	if err != nil {
		return ident{}, err
	}
	id := ident{dev: st.Dev, ino: st.Ino, isDir: st.IsDir(), mntID: st.MntID, mntUnique: st.MntIDUnique}
	// name_to_handle_at needs no privilege (open_by_handle_at does, and is not used here).
	if h, _, err := sys.NameToHandleAt(fd, "", sys.AT_EMPTY_PATH); err == nil {
		id.handle, id.hasHandle = h.Clone(), true
	}
	return id, nil
}

// same reports whether now is the object was identified, for a mark of kind k: the same
// mount for a mount mark, the same filesystem for a filesystem mark, else the same inode —
// device and inode number, and the file handle when there was one (an inode number the
// filesystem reused for a new file differs in its handle's generation).
func (was ident) same(now ident, k engine.Kind) bool {
	switch k {
	case engine.KindMount:
		return was.mntID == now.mntID && was.mntUnique == now.mntUnique
	case engine.KindFilesystem:
		return was.dev == now.dev
	}
	if was.dev != now.dev || was.ino != now.ino || was.isDir != now.isDir || was.hasHandle != now.hasHandle {
		return false
	}
	return !was.hasHandle || (was.handle.Type == now.handle.Type && bytes.Equal(was.handle.Bytes, now.handle.Bytes))
}

// reopen opens path again, without following a symbolic link there, and returns its
// descriptor (the caller's to close) if it is still the object was of a mark of kind k; an
// error matching ErrLost otherwise (and fs.ErrNotExist if path is gone).
func reopen(path string, k engine.Kind, was ident) (int, error) {
	fd, err := sys.Open(path, sys.O_PATH|sys.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return -1, fmt.Errorf("%w: %s is gone: %w", ErrLost, path, err)
		}
		return -1, fmt.Errorf("%w: %s: %w", ErrLost, path, err)
	}
	now, err := identify(fd)
	if err == nil && !was.same(now, k) {
		what := fmt.Sprintf("device %s inode %d now, %s inode %d then", fsevent.DevString(now.dev), now.ino, fsevent.DevString(was.dev), was.ino)
		if now.dev == was.dev && now.ino == was.ino && k != engine.KindMount && k != engine.KindFilesystem {
			what = fmt.Sprintf("a new object given the same inode number %d: its file handle differs", now.ino)
		}
		if k == engine.KindMount {
			what = fmt.Sprintf("mount %d now, %d then", now.mntID, was.mntID)
		}
		err = fmt.Errorf("%w: %s is not the object marked any more (%s): it is not marked in its place", ErrLost, path, what)
	} else if err != nil {
		err = fmt.Errorf("%w: %s: %w", ErrLost, path, err)
	}
	if err != nil {
		sys.Close(fd)
		return -1, err
	}
	return fd, nil
}

// lostEvent is the notice of mark m's loss (Event.Lost): a DELETE_SELF of the object marked.
func lostEvent(m *mark, why error) Event {
	ev := Event{Mark: m.id, Lost: why}
	ev.Mask, ev.Time = engine.DeleteSelf, time.Now()
	if m.ident.isDir {
		ev.Mask |= engine.OnDir
	}
	ev.Path = m.path
	if m.kind == engine.KindInode || m.kind == engine.KindSubtree {
		ev.Dev, ev.Ino, ev.HasObject = m.ident.dev, m.ident.ino, true
	}
	return ev
}
