//go:build linux

package backend

import (
	"bytes"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
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
	// gone holds directories revealed after they were gone, by handle key: what their
	// orphans (and later events naming them) resolve to.
	gone map[string]*dirInfo
	// selfNamed holds, by handle key, directories whose DELETE_SELF came while their
	// orphans waited and now waits with them for the DELETE on their parent (revealing):
	// the directory as that self event named it, for flushOrphans should the DELETE
	// never come.
	selfNamed map[string]*dirInfo
	n         int // orphans waiting
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

func (fs *fsState) orphanage() *orphanage {
	if fs.orphans == nil {
		fs.orphans = &orphanage{waiting: map[string][]orphan{}, gone: map[string]*dirInfo{}, selfNamed: map[string]*dirInfo{}}
	}
	return fs.orphans
}

// goneDir returns a directory revealed after it was gone, or nil.
func (fs *fsState) goneDir(key string) *dirInfo {
	if fs.orphans == nil {
		return nil
	}
	return fs.orphans.gone[key]
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
	og := fs.orphans
	if og == nil {
		return
	}
	waiting, ok := og.waiting[key]
	if !ok {
		return
	}
	delete(og.waiting, key)
	delete(og.selfNamed, key)
	og.n -= len(waiting)
	if len(og.gone) >= maxOrphans {
		clear(og.gone)
	}
	og.gone[key] = d
	for i := range waiting {
		g.handle(&waiting[i].kev, v, waiting[i].now)
	}
}

// How an event concerns the orphans (revealing).
type revelation int

const (
	revealsNothing revelation = iota
	// reveals: the event names a gone directory whose events wait: they go before it.
	reveals
	// revealsAtDelete: the event is the DELETE_SELF of a gone directory whose events wait,
	// and carries no ancestry, while the DELETE on its parent, which does, is still to come
	// (the filesystem's FID mark reports every DELETE, fsView.fidWatched): the self event
	// waits with the directory's orphans for that DELETE.
	revealsAtDelete
)

// revealing returns the handle key of the directory ev's kernel event names as removed or
// moved away (its own DELETE or MOVED_FROM on its parent, or its DELETE_SELF or MOVE_SELF),
// that directory as it was, and what to do, if events wait for it.
//
// A DELETE_SELF names its directory with no place: a self event carries no ancestry. When
// nothing holds a directory as it is removed, its DELETE_SELF is queued just before its
// DELETE on its parent (d_delete_notify: d_delete, whose dentry_unlink_inode reports the
// inode gone, then fsnotify_delete), and the DELETE carries the parent's ancestry. Revealing
// the directory at its DELETE_SELF put its orphans in every subtree of the filesystem (a
// recursive watch of one directory reported removals from anywhere else on it); so where
// subtrees need the place and the DELETE is sure to be queued (fidWatched), the DELETE_SELF
// waits as the directory's last orphan, and the DELETE reveals them all, in the kernel's
// order. Should the DELETE never come (an overflow), the grace flushes them, named as the
// DELETE_SELF named the directory, with their place unknown (flushOrphans).
func (fv *fsView) revealing(kev *sys.FanotifyEvent, ev *engine.Event, needAncestry bool) (string, *dirInfo, revelation) {
	fs := fv.state
	if fs.orphans == nil || fs.orphans.n == 0 || ev.Mask&engine.OnDir == 0 {
		return "", nil, revealsNothing
	}
	var key string
	d := &dirInfo{path: ev.GetPath()}
	switch {
	case ev.Mask&(engine.Delete|engine.MovedFrom) != 0 && kev.Records.Has(sys.FAN_EVENT_INFO_TYPE_FID):
		key = handleKey(kev.FID.Handle)
		if _, ok := fs.orphans.waiting[key]; !ok {
			return "", nil, revealsNothing
		}
		// Its marks' ID if it was marked (or its inode, if an earlier event found it), else
		// a stand-in: marks only ever match registered objects, whose IDs the handle table
		// gives. Not a stand-in for a marked directory: when something still held it as it
		// was removed (an open descriptor, a cwd, the kernel's own lookup) its DELETE_SELF
		// comes after this DELETE, so this is what names it, and its children's events
		// must still match its marks — a stand-in here lost every one of them (the watch's
		// and, through a subtree mark, the whole subtree's: issue 11's rm -rf test).
		d.id = fv.goneID(key)
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
		if _, ok := fs.orphans.waiting[key]; !ok {
			return "", nil, revealsNothing
		}
		d.id = ev.Inode
		if needAncestry {
			// A self event carries no ancestry: the directory's events are placed below
			// it (which is what matters when it is a subtree's root), and possibly in
			// every subtree of the filesystem — unless the DELETE that follows places
			// them (see above).
			d.placeUnknown = len(ev.Ancestors) == 0
			d.ancestors = ev.Ancestors
			if d.placeUnknown && ev.Mask&engine.DeleteSelf != 0 && fv.fidWatched {
				if d.ancestors == nil {
					d.ancestors = []engine.ID{}
				}
				return key, d, revealsAtDelete
			}
		}
	default:
		return "", nil, revealsNothing
	}
	if d.ancestors == nil {
		d.ancestors = []engine.ID{}
	}
	return key, d, reveals
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
		d := og.selfNamed[k] // named by its DELETE_SELF, which waits among them
		if d == nil {
			d = &dirInfo{id: fv.goneID(k), ancestors: []engine.ID{}, placeUnknown: true}
		}
		g.reveal(fs, k, d, v)
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
