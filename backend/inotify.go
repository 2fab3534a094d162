//go:build linux

package backend

import (
	"errors"

	"github.com/fsnotifyd/fsnotifyd/engine"
)

// inotifyGroup is the inotify fallback (work in progress).
type inotifyGroup struct{}

func (g *inotifyGroup) close() {}

func (b *Backend) inotifyMarkLocked(o *object, fs *fsState, new engine.Mask) error {
	return errors.New("inotify fallback: not implemented yet")
}
