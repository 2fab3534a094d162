//go:build linux

package backend

import (
	"bytes"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/lru"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// Orphans: events below a directory that was gone before the FID reader got to them.
//
// A FID event names its object by its directory's handle and a name; the reader turns the
// handle into a path with open_by_handle_at. When a tree is removed (rm -rf) faster than the
// reader reads, every directory of it is gone by then (ESTALE), and the events of everything
// below it — issue 11: 7 of 14 removals reported, silently — could not be named or placed.
//
// The kernel queue still has what is needed: a directory that is gone was removed, so its
// own DELETE (on its parent, with its handle as the object) or its DELETE_SELF is queued
// after its children's events. So an event whose directory no longer resolves is kept (an
// orphan, keyed by the directory's handle), and when the event that names that directory
// arrives — its parent resolved, or itself revealed in turn — the directory is recorded as
// gone with that path and ancestry, and its orphans are dispatched, in their order, just
// before the event that revealed it: children before their directory, as the kernel queued
// them. Nested trees resolve from the top down, recursively.
//
// Orphans never wait for ever. A directory is gone (its link count 0) a moment before the
// kernel queues its DELETE_SELF and DELETE (vfs_rmdir: the filesystem's rmdir, then the
// inode unlocked, then d_delete_notify), so a read that finds the queue empty does not prove
// the DELETE will never come: the rmdir may be between the two, preempted on a busy machine
// (once in 100 rm -rf runs under load a file was reported with its path unknown). Orphans still
// waiting when the queue has stayed empty for defaultOrphanGrace (the mark does not report
// deletions, or the queue overflowed, or the directory is held and its DELETE was never
// asked for) are dispatched with their place unknown (placeUnknown: possibly inside every
// subtree), never dropped. Only the FID reader goroutine touches this state (as
// fsState.dirs).

// orphanage is one filesystem's orphans.
type orphanage struct {
	// waiting holds, by directory handle key, the events waiting for that directory, in
	// the order they were read.
	waiting map[string][]orphan
	n       int // orphans waiting
}

type orphan struct {
	kev sys.FanotifyEvent // a deep copy: the read buffer is reused
	now time.Time
}

// defaultOrphanGrace is how long the FID queue stays empty, orphans waiting, before they are
// dispatched unplaced: far longer than an rmdir takes from its link count to its DELETE,
// unless its thread is preempted for longer on a loaded machine — then the orphans are still
// reported, with their place unknown.
const defaultOrphanGrace = 100 * time.Millisecond

// maxOrphans bounds the orphans a filesystem keeps; past it they are dispatched unplaced.
const maxOrphans = 1 << 16

// goneEntries bounds the directories remembered as named by their deletion (fsState.gone):
// enough for the DELETE_SELFs of the directories still held when they went; one evicted is
// placed as unknown, never lost (see gone).
const goneEntries = 4096

func (fs *fsState) orphanage() *orphanage {
	if fs.orphans == nil {
		fs.orphans = &orphanage{waiting: map[string][]orphan{}}
	}
	return fs.orphans
}

// goneDir returns a directory named by its deletion after it went, or nil.
func (fs *fsState) goneDir(key string) *dirInfo {
	if fs.gone == nil {
		return nil
	}
	d, _ := fs.gone.Get(key)
	return d
}

func cloneFileID(f sys.FileID) sys.FileID {
	f.Handle = f.Handle.Clone()
	if f.Name != nil {
		f.Name = bytes.Clone(f.Name)
	}
	return f
}

// adopt keeps kev, whose directory (key: its DFID, or for an event on a directory itself its
// own handle) no longer resolves, until that directory is revealed. Its pidfd, if any, was
// closed already.
func (g *fidGroup) adopt(fv *fsView, kev *sys.FanotifyEvent, key string, now time.Time) {
	o := orphan{kev: *kev, now: now}
	o.kev.Records &^= 1 << sys.FAN_EVENT_INFO_TYPE_PIDFD
	o.kev.FID, o.kev.DFID = cloneFileID(kev.FID), cloneFileID(kev.DFID)
	o.kev.OldDFID, o.kev.NewDFID = cloneFileID(kev.OldDFID), cloneFileID(kev.NewDFID)
	og := fv.state.orphanage()
	og.waiting[key] = append(og.waiting[key], o)
	og.n++
	g.b.stats.Orphaned.Add(1)
	if og.n > maxOrphans {
		g.flushOrphans(fv, g.b.view.Load())
	}
}

// reveal records that the directory with handle key, gone, was d, and dispatches the
// events waiting for it. Called by the reader before it dispatches the revealing event.
func (g *fidGroup) reveal(fs *fsState, key string, d *dirInfo, v *view) {
	if fs.gone == nil {
		fs.gone = lru.New[string, *dirInfo](goneEntries)
	}
	fs.gone.Put(key, d)
	og := fs.orphans
	if og == nil {
		return
	}
	waiting, ok := og.waiting[key]
	if !ok {
		return
	}
	delete(og.waiting, key)
	og.n -= len(waiting)
	// The directory's own DELETE_SELF goes last: nothing happens in a directory after its
	// rmdir, which needs it empty, so every other event waiting for it happened before —
	// but the kernel merges the DELETE_SELF into the directory's own unread open, read or
	// close (rm -rf's, just before the rmdir), ahead of the removals inside it, and the
	// split of that event (handle) keeps the merged event's place.
	var self []int
	for i := range waiting {
		if engine.Mask(waiting[i].kev.Mask)&engine.DeleteSelf != 0 {
			self = append(self, i)
			continue
		}
		g.handle(&waiting[i].kev, v, waiting[i].now)
	}
	for _, i := range self {
		g.handle(&waiting[i].kev, v, waiting[i].now)
	}
}

// revealing returns the handle key of the directory ev's kernel event names as removed or
// moved away, and that directory as it was, when events wait for it or, with subtrees on
// the filesystem, when it is its DELETE; ok false otherwise.
//
// The events that name a gone directory are its own DELETE or MOVED_FROM on its parent, and
// its DELETE_SELF or MOVE_SELF. A self event carries no ancestry, so where subtrees need the
// place (and the filesystem's FID mark reports every DELETE, fsView.fidWatched) a gone
// directory's self events wait for the DELETE, which carries its parent's (handle: a
// DELETE_SELF goes through resolveDir like the directory's other events): when nothing held
// the directory as it was removed, its DELETE_SELF is queued just before that DELETE
// (d_delete_notify: d_delete, whose dentry_unlink_inode reports the inode gone, then
// fsnotify_delete); when something held it, just after — so the DELETE records the
// directory (fsState.gone) even when nothing waits for it yet. Revealing a directory at its
// DELETE_SELF instead put its orphans in every subtree of the filesystem (a recursive watch
// reported removals from anywhere else on it), and the DELETE_SELF itself, with the
// directory's own events the kernel merged into it (the open, read and close of rm -rf),
// in none.
func (fv *fsView) revealing(kev *sys.FanotifyEvent, ev *engine.Event, needAncestry bool) (string, *dirInfo, bool) {
	fs := fv.state
	waiting := func(key string) bool {
		if fs.orphans == nil || fs.orphans.n == 0 {
			return false
		}
		_, ok := fs.orphans.waiting[key]
		return ok
	}
	if ev.Mask&engine.OnDir == 0 {
		return "", nil, false
	}
	var key string
	d := &dirInfo{path: ev.GetPath()}
	switch {
	case ev.Mask&(engine.Delete|engine.MovedFrom) != 0 && kev.Records.Has(sys.FAN_EVENT_INFO_TYPE_FID):
		key = handleKey(kev.FID.Handle)
		if !waiting(key) && !(ev.Mask&engine.Delete != 0 && fv.selfPlacedByDelete()) {
			return "", nil, false
		}
		// Its marks' ID if it was marked (or its inode, if an earlier event found it), else
		// a stand-in: marks only ever match registered objects, whose IDs the handle table
		// gives. Not a stand-in for a marked directory: when something still held it as it
		// was removed (an open descriptor, a cwd, the kernel's own lookup) its DELETE_SELF
		// comes after this DELETE, so this is what names it, and its children's events
		// must still match its marks — a stand-in here lost every one of them (the watch's
		// and, through a subtree mark, the whole subtree's: issue 11's rm -rf test).
		d.id = fv.goneID(key)
		d.parent = ev.Inode
		if needAncestry {
			if ev.AncestryUnknown {
				d.placeUnknown = true
			} else {
				d.ancestors = append([]engine.ID{ev.Inode}, ev.Ancestors...)
			}
		}
	case ev.Mask&(engine.DeleteSelf|engine.MoveSelf) != 0 && d.path != "":
		// (Without a path — a directory nobody resolved before it went — the DELETE that
		// follows on its parent names it.)
		fid := &kev.FID
		if !kev.Records.Has(sys.FAN_EVENT_INFO_TYPE_FID) {
			fid = &kev.DFID
		}
		key = handleKey(fid.Handle)
		if !waiting(key) {
			return "", nil, false
		}
		d.id = ev.Inode
		if needAncestry {
			// A self event carries no ancestry (those that wait for their DELETE do not
			// come here): the directory's events are placed below it (which is what
			// matters when it is a subtree's root), and possibly in every subtree of the
			// filesystem.
			d.placeUnknown = len(ev.Ancestors) == 0
			d.ancestors = ev.Ancestors
		}
	default:
		return "", nil, false
	}
	if d.ancestors == nil {
		d.ancestors = []engine.ID{}
	}
	return key, d, true
}

// flushOrphans dispatches every orphan of fs with its place unknown: the queue holds
// nothing that could reveal their directories (see the package comment above).
func (g *fidGroup) flushOrphans(fv *fsView, v *view) {
	fs := fv.state
	og := fs.orphans
	if og == nil || og.n == 0 {
		return
	}
	keys := make([]string, 0, len(og.waiting))
	for k := range og.waiting {
		keys = append(keys, k)
	}
	for _, k := range keys {
		if _, ok := og.waiting[k]; !ok {
			continue // revealed meanwhile, by an orphan dispatched before it
		}
		g.b.stats.OrphansUnplaced.Add(uint64(len(og.waiting[k])))
		// Its path if known (its DELETE_SELF may be among them; paths, unlike places, are
		// only reported).
		path, _ := fs.knownPath(k)
		g.reveal(fs, k, &dirInfo{id: fv.goneID(k), path: path, ancestors: []engine.ID{}, placeUnknown: true}, v)
	}
}

// flushAllOrphans is flushOrphans on every filesystem: the reader found the queue empty.
func (g *fidGroup) flushAllOrphans() {
	v := g.b.view.Load()
	if v == nil {
		return
	}
	for _, fv := range v.byFsid {
		if fs := fv.state; fs.orphans != nil && fs.orphans.n > 0 {
			g.flushOrphans(fv, v)
		}
	}
}

// orphansWaiting reports whether any filesystem has orphans (the FID reader only).
func (g *fidGroup) orphansWaiting() bool {
	v := g.b.view.Load()
	if v == nil {
		return false
	}
	for _, fv := range v.byFsid {
		if og := fv.state.orphans; og != nil && og.n > 0 {
			return true
		}
	}
	return false
}
