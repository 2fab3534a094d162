//go:build linux

package backend

import (
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// maybeIgnore asks the janitor for an outside-ignore mark where the kernel would otherwise
// keep sending events nobody wants: the event is outside every subtree and nothing else on
// the filesystem (a filesystem or mount mark, a directory watching its children) wants it.
// The mark goes on the object itself, so the first access of each file pays and later ones
// do not — if the object is pinned (pinnedChain): the janitor decides that, and checks
// "outside" again from the object's real parents.
//
// Why not a mark on the directory (FAN_EVENT_ON_CHILD), which no file move or link could
// outwit: the kernel then takes the parent and snapshots the name on every open in that
// directory (docs/security.md has the trade-off, bench/ignorekinds.sh measures it).
//
// The marks go in the group that reports the events: permission events (and notification
// events where the FD group reports them) in the FD group, notification events in the FID
// group. fid is the object's fid record when the event came from the FID group (ev.Inode may
// then be a stand-in, objectID; its handle key is built only for a request sent: not one per
// event), nil when ev.Inode is the object's own ID.
//
// Directory-entry, attribute and self events get none: an ignore mark on a directory outside
// every subtree would stay until the backend read that directory's move into a subtree, and
// the entries created there in the meantime would be lost; and the FID reader must see every
// name change (nameChanged). Those events outside subtrees cost the reader, not the
// processes that cause them.
func (b *Backend) maybeIgnore(ev *engine.Event, v *view, fid *sys.FileID) {
	// The event's own fields first — its path (the embedded guard's events, placed by a
	// cached chain, have none: they stop here), its ancestry (unknown: never ignore on a
	// guess) — then its filesystem's view (a cache line or two more).
	if ev.Path == "" || ev.Ancestors == nil || ev.AncestryUnknown {
		return
	}
	fv := v.fsOf(ev.Inode.Hi)
	if fv == nil || !fv.needAncestry() || fv.ignorable() == ([2]uint64{}) || !fv.fidWatched {
		return
	}
	if fv.roots[ev.Inode] || fv.eocDirs[ev.Parent] || fv.inodeDirs[ev.Parent] > 0 {
		return
	}
	for _, a := range ev.Ancestors {
		if fv.roots[a] {
			return
		}
	}
	key := ""
	if fid != nil {
		key = handleKey(fid.Handle)
	}
	select {
	case b.janitor <- ignoreRequest{fs: fv.state, target: ev.Inode, key: key, path: ev.Path}:
	default: // the janitor is behind: the next event will ask again
	}
}

// ignorable returns the bits outside-ignore marks may hide in each kernel group: what only
// subtrees want, but never directory-entry, attribute or self events (see maybeIgnore).
func (fv *fsView) ignorable() [2]uint64 {
	return [2]uint64{fv.subtreeOnly[kFD], fv.subtreeOnly[kFID] & uint64(notifBits)}
}

// ignoreRequest asks the janitor for an outside-ignore mark on target (at path; key, if not
// "", is its handle key and target may be a stand-in), or, with watchNames, for the FID
// group's name watch on fs (for the verdict cache).
type ignoreRequest struct {
	fs         *fsState
	target     engine.ID
	key        string
	path       string
	watchNames bool
}

// runJanitor places outside-ignore marks and name watches off the reading goroutines, and
// polls fs.protected_hardlinks, until Close closes janitorStop. (The request channel itself
// is never closed: the readers and the walks' continuations, which may still run while Close
// does, send to it without waiting.)
func (b *Backend) runJanitor() {
	defer b.wg.Done()
	tick := time.NewTicker(hardlinkPoll)
	defer tick.Stop()
	for {
		select {
		case <-b.janitorStop:
			return
		case r := <-b.janitor:
			if r.watchNames {
				b.watchNames(r.fs)
			} else {
				b.installIgnore(r)
			}
		case <-tick.C:
			b.pollHardlinks()
		}
	}
}

// watchNames adds the FID group's name watch to fs, so that verdicts may be cached there.
func (b *Backend) watchNames(fs *fsState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || fs.nameWatch || b.fss[fs.dev] != fs {
		return
	}
	fs.nameWatch = true
	if err := b.syncFsLocked(fs); err != nil {
		b.log.Debug("watching names for the verdict cache", "err", err)
		fs.nameWatch = false
		b.syncFsLocked(fs)
	}
	b.publishViewLocked()
}

// installIgnore places an outside-ignore mark on r.target if, seen from the current marks
// and the object's real parents, it is outside every subtree, pinned, and nothing else wants
// the bits.
func (b *Backend) installIgnore(r ignoreRequest) {
	fs := r.fs
	// The generation and the view together: a mark decided from this view is recorded only if
	// no drop and no new view came since.
	// (No "already marked" check: the kernel sent the event that asked, so any record of a
	// mark there is stale — the inode was evicted and came back, or the mark is being placed.)
	fs.ignMu.Lock()
	gen := fs.markGen.Load()
	v := b.view.Load()
	fs.ignMu.Unlock()
	fv := v.fsOf(fs.dev)
	if fv == nil || fv.state != fs || !fv.needAncestry() || !fv.fidWatched || !b.fidAlive() {
		return
	}
	masks := fv.ignorable()
	if masks == ([2]uint64{}) {
		return
	}
	fd, err := sys.Open(r.path, sys.O_PATH|sys.O_NOFOLLOW, 0)
	if err != nil {
		return
	}
	defer sys.Close(fd)
	st, err := sys.Fstat(fd)
	if err != nil {
		return
	}
	target := inodeID(st.Dev, st.Ino)
	if r.key != "" {
		if h, _, err := sys.NameToHandleAt(fd, "", sys.AT_EMPTY_PATH); err != nil || handleKey(h) != r.key {
			return // the path names another object now
		}
	} else if target != r.target {
		return
	}
	chain, ok := b.pinnedChain(fs, fd, st, r.path)
	if !ok || fv.roots[target] || fv.eocDirs[chain[0]] || fv.inodeDirs[chain[0]] > 0 {
		return
	}
	for _, a := range chain {
		if fv.roots[a] {
			return
		}
	}
	// A directory's own events: FAN_ONDIR, and an ignore mask on a directory must survive
	// modification (the kernel says EISDIR otherwise). A file's mark does not survive it, as
	// the verdict cache's: the two may share the inode's mark, and a surviving one would
	// make the cache's survive too. A write costs the file its mark; its next open asks again.
	surv := st.IsDir()
	placed := false
	for k, mask := range masks {
		if mask == 0 {
			continue
		}
		if surv {
			mask |= uint64(engine.OnDir)
		}
		if b.placeNameMark(fs, fd, target, purposeIgnore, k, mask, surv, gen, 0, st.Ctime) {
			placed = true
		}
	}
	if placed {
		b.stats.IgnoreMarks.Add(1)
	}
}

// fidAlive reports whether the FID group is reading: name marks rely on it seeing root's
// moves.
func (b *Backend) fidAlive() bool {
	g := b.fidGroupAtomic.Load()
	return g != nil && !g.closed.Load()
}
