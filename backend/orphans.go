//go:build linux

package backend

import (
	"bytes"
	"slices"
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
// A file's own event that carries no directory record (the unlink's link-count ATTRIB,
// queued just before the file's DELETE) and whose handle no longer opens waits the same way,
// keyed by the file's own handle, for the DELETE that names it (with FAN_REPORT_TARGET_FID,
// the DELETE carries the file's handle): it is dispatched with that path just before the
// DELETE (revealing). Without target FIDs, or where the FID mark does not report deletions,
// it goes at once, its path unknown, as before.
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
	// move: for a MOVE_SELF, where it took its object, decided when it was first read
	// (movePlace); nil otherwise.
	move *movePlace
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

// cloneEvent returns a deep copy of kev, which the read buffer's reuse does not change,
// without its pidfd (closed already).
func cloneEvent(kev *sys.FanotifyEvent) sys.FanotifyEvent {
	c := *kev
	c.Records &^= 1 << sys.FAN_EVENT_INFO_TYPE_PIDFD
	c.FID, c.DFID = cloneFileID(kev.FID), cloneFileID(kev.DFID)
	c.OldDFID, c.NewDFID = cloneFileID(kev.OldDFID), cloneFileID(kev.NewDFID)
	return c
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
	g.adoptMove(fv, kev, key, now, nil)
}

// adoptMove is adopt of a MOVE_SELF that keeps where it took its object (move).
func (g *fidGroup) adoptMove(fv *fsView, kev *sys.FanotifyEvent, key string, now time.Time, move *movePlace) {
	o := orphan{kev: cloneEvent(kev), now: now, move: move}
	og := fv.state.orphanage()
	og.waiting[key] = append(og.waiting[key], o)
	og.n++
	g.b.stats.Orphaned.Add(1)
	if og.n > maxOrphans {
		g.flushOrphans(fv, g.b.view.Load())
	}
}

// handleOrphan dispatches an orphan, a MOVE_SELF with the place decided when it was read.
func (g *fidGroup) handleOrphan(o *orphan, v *view) {
	g.moveOverride = o.move
	g.handle(&o.kev, v, o.now)
	g.moveOverride = nil
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
		g.handleOrphan(&waiting[i], v)
	}
	for _, i := range self {
		g.handleOrphan(&waiting[i], v)
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
		// A file's DELETE names the file whose own events wait for it (fidGroup.handle).
		if ev.Mask&engine.Delete == 0 || !kev.Records.Has(sys.FAN_EVENT_INFO_TYPE_FID) {
			return "", nil, false
		}
		key := handleKey(kev.FID.Handle)
		if !waiting(key) {
			return "", nil, false
		}
		return key, &dirInfo{id: fv.goneID(key), path: ev.GetPath(), parent: ev.Inode, ancestors: []engine.ID{}}, true
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

// Held DELETE_SELFs: a directory's DELETE_SELF split off an older event of its own, where no
// DELETE on its parent will place it.
//
// The kernel merges a directory's DELETE_SELF into the directory's own unread event — rm
// -rf's open, read and close of it, queued before the removals inside it — so the reader
// reads it before the events that happened before it: the DELETE of every entry, and the
// events on them (an open of a subdirectory, reported to the directory's mark). Where
// recursive watches need places (fsView.selfPlacedByDelete) it waits for the directory's
// DELETE (adopt, reveal). Elsewhere — a non-recursive watch of the directory: its parent is
// not watched and no DELETE comes — it is held here until the reader has dispatched every
// event the kernel had queued when it was read: the rest of its batch and what FIONREAD
// counted then (sys.FanotifyQueued). Nothing in the directory can happen after its rmdir,
// which needs it empty, so each event concerning its entries was queued before the rmdir,
// hence before the read that found the DELETE_SELF merged: it is among those. The events
// queued after the read are not waited for, so the wait is bounded by the queue's length at
// the read, flood or not. The directory's own DELETE on its parent (when a mark reports it)
// is queued just after its DELETE_SELF (d_delete_notify), after the removals inside it: the
// held DELETE_SELF goes just before it, as the kernel queued them. (When something held the
// directory as it went, its DELETE_SELF came after that DELETE, at the last reference's
// release: it goes just before it all the same, still after every event inside it.)
//
// A held DELETE_SELF is never dropped: it goes when its count is reached, before its
// DELETE, when a read finds the queue empty (all that was queued is dispatched; and the
// fallback if FIONREAD failed), and when the reader ends (the group closed, or a malformed
// batch) — no event read after it can be dispatched then anyway. An overflow is a queued
// event like any other (counted, dispatched in its place): the DELETE_SELF goes after it.
// Only the FID reader goroutine touches this state.

// heldSelf is a held DELETE_SELF.
type heldSelf struct {
	kev sys.FanotifyEvent // a deep copy: the read buffer is reused
	now time.Time
	key string // the directory's handle key
	// until: it goes once the reader has dispatched this many kernel events
	// (fidGroup.dispatched).
	until uint64
}

// hold keeps kev, a directory's DELETE_SELF split off an older event of the directory's own
// (key: its handle), until the events queued when it was read are dispatched. Called while
// the reader dispatches a batch it read.
func (g *fidGroup) hold(kev *sys.FanotifyEvent, key string, now time.Time) {
	until := ^uint64(0) // without a count: until a read finds the queue empty
	queued, err := 0, error(nil)
	// Through the RawConn, as the reads: a Close racing with it cannot have the number
	// reused under it.
	if cerr := g.rc.Control(func(fd uintptr) { queued, err = sys.FanotifyQueued(int(fd)) }); cerr != nil {
		err = cerr
	}
	if err == nil {
		// The event being dispatched (counted when its dispatch ends), the rest of its
		// batch, and what the kernel still holds.
		until = g.dispatched + 1 + uint64(g.batchLeft) + uint64(queued)
	}
	g.held = append(g.held, heldSelf{kev: cloneEvent(kev), now: now, key: key, until: until})
}

// releaseHeld dispatches, in the order they were held, the held DELETE_SELFs that are due:
// every one if all, else those whose count the reader has reached.
func (g *fidGroup) releaseHeld(v *view, all bool) {
	if v == nil {
		g.held = nil // no filesystem is marked: nobody could get them
		return
	}
	for len(g.held) > 0 {
		i := 0
		if !all {
			for i < len(g.held) && g.held[i].until > g.dispatched {
				i++
			}
			if i == len(g.held) {
				return
			}
		}
		g.dispatchHeld(i, v)
	}
}

// releaseHeldBefore dispatches the held DELETE_SELF of the directory a DELETE (kev) removes,
// if any, before that DELETE is dispatched: the kernel queued it just before.
func (g *fidGroup) releaseHeldBefore(kev *sys.FanotifyEvent, v *view) {
	if kev.Mask&sys.FAN_DELETE == 0 || kev.Mask&sys.FAN_ONDIR == 0 || !kev.Records.Has(sys.FAN_EVENT_INFO_TYPE_FID) {
		return
	}
	key := handleKey(kev.FID.Handle)
	for {
		// (Found afresh each time: a dispatch may release others, revealing orphans.)
		i := slices.IndexFunc(g.held, func(h heldSelf) bool { return h.key == key })
		if i < 0 {
			return
		}
		g.dispatchHeld(i, v)
	}
}

// dispatchHeld takes the i-th held DELETE_SELF out and dispatches it (which reveals the
// directory's orphans before it, orphans.go).
func (g *fidGroup) dispatchHeld(i int, v *view) {
	h := g.held[i]
	copy(g.held[i:], g.held[i+1:])
	g.held[len(g.held)-1] = heldSelf{} // nothing kept past its use
	g.held = g.held[:len(g.held)-1]
	g.handle(&h.kev, v, h.now)
}
