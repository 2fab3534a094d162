//go:build linux

package backend

import (
	"encoding/binary"
	"hash/fnv"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// dirInfo is a directory the FID reader has resolved: its identity, path and ancestry. Only
// the FID group's reader goroutine uses the cache; entries are valid while their generation
// equals the filesystem's dirGen, which a directory move or deletion bumps.
type dirInfo struct {
	id        engine.ID
	path      string      // "" if unknown (see eventPath)
	ancestors []engine.ID // the directories above, nearest first (shared, never modified)
	// placeUnknown: the directories above could not all be found (ancestors is then empty):
	// events below it are dispatched as possibly inside every subtree (placeUnknown).
	placeUnknown bool
	gen          uint64
	// parent is the directory above it on the same filesystem, which its own events name as
	// their parent (dirParent): found by ".." when the kernel resolved it, or for a directory
	// named by its DELETE (or MOVED_FROM) after it went (orphans.go, revealing), the
	// directory it was removed from; zero if unknown (a mount's root, a race with a move).
	// Never by its path later: an event read from the cache after the directory above went
	// — rm -rf's read and close of a subdirectory, read after the rmdir of its parent —
	// found no parent there and reached nobody (CI 2026-12-07, scenario
	// rm-rf-non-recursive-open-read-close).
	parent engine.ID
	// The fields above are set before the dirInfo is first used and never after; those
	// below are memos, filled by the FID reader as it goes.
	//
	// chain is {id} and the ancestors (what an event on a child carries: built once per
	// directory, not per event; shared, never modified); nil until the first.
	chain []engine.ID
	// lastName and lastPath are the child named last and its path (childPath): a file's
	// events come in runs, and its path is then built once. Only the FID reader uses them.
	lastName, lastPath string
	// moves is the count of directory moves read when it was resolved (movedaway.go).
	moves uint64
}

// childChain returns the ancestry of a child of d: d and the directories above it (shared,
// never modified).
func (d *dirInfo) childChain() []engine.ID {
	if d.chain == nil {
		d.chain = append([]engine.ID{d.id}, d.ancestors...)
	}
	return d.chain
}

// childPath returns the path of d's child name and the name, as strings that share bytes
// (the name is the path's tail), and remembers them for the next event on that name; the
// path is "" (unknown) when d's is.
func (d *dirInfo) childPath(name []byte) (path, nm string) {
	if d.path == "" {
		return "", string(name)
	}
	if d.lastPath != "" && d.lastName == string(name) {
		return d.lastPath, d.lastName
	}
	path = joinName(d.path, name)
	nm = path[len(path)-len(name):]
	if len(name) == 0 || (len(name) == 1 && name[0] == '.') {
		nm = string(name) // the directory itself: joinName gave its path
	}
	d.lastName, d.lastPath = nm, path
	return path, nm
}

// handleKey is the string that names a file handle in the backend's maps (its type, then its
// bytes).
func handleKey(h sys.FileHandle) string {
	var a [64]byte
	return string(appendHandleKey(a[:0], h))
}

// appendHandleKey appends h's handle key (handleKey) to b.
func appendHandleKey(b []byte, h sys.FileHandle) []byte {
	t := uint32(h.Type)
	b = append(b, byte(t), byte(t>>8), byte(t>>16), byte(t>>24))
	return append(b, h.Bytes...)
}

// keyOf returns h's handle key in the FID reader's scratch buffer, without allocating: for
// lookups (a map index m[string(k)] does not allocate either). It is valid until the
// reader's next keyOf; string(k) keeps it.
func (fs *fsState) keyOf(h sys.FileHandle) []byte {
	fs.keyBuf = appendHandleKey(fs.keyBuf[:0], h)
	return fs.keyBuf
}

// fidEvent is an engine event made by the FID reader, reused once every holder has released
// it: the event was the reader's largest allocation per kernel event (a quarter of its
// translation's CPU with the garbage collector's share: docs/design/performance.md). It is
// its own payload (engine.Payload), which the engine releases once the source and every
// group that queued the event are done with it (engine.Event.Release: the last reference),
// and only then does it go back to the pool. Sound because nothing uses an event after
// dropping its reference to it: the engine's queues hold a reference while an event is
// queued (their merges look only at queued events), a reader copies what it keeps before
// Delivery.Release (backend.Record, the daemon's encoding; the daemon's memo holds its
// events until its flush ends), and the source releases it last in handle. A use after
// the release would be a race with the reader's reuse, which -race reports (the pool
// orders Put before Get for the race detector): TestFIDEventReuse.
type fidEvent struct{ ev engine.Event }

var fidEvents = sync.Pool{New: func() any { return new(fidEvent) }}

// Release returns the event to the pool (engine.Payload: called once, by the last holder's
// Release).
func (p *fidEvent) Release() { fidEvents.Put(p) }

// newFIDEvent returns an empty event, for the FID reader.
func newFIDEvent() *engine.Event {
	p := fidEvents.Get().(*fidEvent)
	p.ev = engine.Event{Payload: p}
	return &p.ev
}

// resolveDir returns the directory of a fid record, from the cache or the kernel.
func (b *Backend) resolveDir(fs *fsState, fid *sys.FileID, needAncestry bool) (*dirInfo, bool) {
	gen := fs.dirGen.Load()
	k := fs.keyOf(fid.Handle)
	if fs.gone != nil {
		if d := fs.goneDir(string(k)); d != nil {
			return d, true // gone, and named since by its own deletion (orphans.go)
		}
	}
	if d := fs.dirs[string(k)]; d != nil && d.gen == gen && (d.ancestors != nil || !needAncestry) {
		return d, true
	}
	key := string(k) // kept (fs.dirs); k is reused by what follows
	if fs.anchor < 0 {
		return nil, false
	}
	fd, err := sys.OpenByHandleAt(fs.anchor, fid.Handle, sys.O_PATH)
	if err != nil {
		return nil, false // ESTALE: the directory is gone
	}
	defer sys.Close(fd)
	st, err := sys.Fstat(fd)
	if err != nil {
		return nil, false
	}
	if st.Nlink == 0 {
		// Removed, but still referenced (an open descriptor, a cwd): the kernel would print
		// "/path (deleted)". Gone as far as names go: its events wait for its own DELETE,
		// which names it (orphans.go).
		return nil, false
	}
	// The path at any length; "" (unknown) beyond sys.MaxLongPath: the event is still
	// reported, with its name and what is known.
	path, known, _ := descPath(fd, &st, true) // opened by handle through the anchor: here
	if st.Nlink == 0 {
		return nil, false // removed while its path was read (eventPath took st again)
	}
	if !known {
		b.stats.PathsUnknown.Add(1)
	}
	d := &dirInfo{id: inodeID(st.Dev, st.Ino), path: path, gen: gen}
	if path != "/" && !st.MountRoot {
		// Its parent now, while the handle holds it: the same cache generation as its path.
		if pst, err := sys.Statx(fd, "..", sys.AT_SYMLINK_NOFOLLOW); err == nil && pst.Dev == st.Dev {
			d.parent = inodeID(pst.Dev, pst.Ino)
		}
	}
	if needAncestry && path != "/" && !st.MountRoot {
		complete := false
		if known && len(path) < pathMax {
			d.ancestors, complete = b.ancestry(fs, filepath.Dir(path), st.Dev, true)
		}
		if !complete {
			d.ancestors, complete = b.dirAncestry(fs, fd, st)
		}
		if !complete {
			b.stats.PlacesUnknown.Add(1)
			d.ancestors, d.placeUnknown = nil, true
		}
	}
	if d.ancestors == nil {
		d.ancestors = []engine.ID{}
	}
	if len(fs.dirs) > 1<<16 {
		clear(fs.dirs) // bound the cache; it refills from the kernel
	}
	fs.dirs[key] = d
	fs.moved.resolved(d)
	return d, true
}

// objectID returns the ID of a fid record's object: a registered object's exact ID, else its
// inode as the handle says — the handle is the object's identity (one inode, whatever its
// names, never reused thanks to the generation it encodes) — else (it is gone) a stable
// stand-in derived from the handle (marks only exist on registered objects, so a stand-in can
// match nothing but subtree and filesystem marks, which do not need it).
//
// Where the filesystem's handles hold the inode number (tmpfs, ext2/3/4: fsState.handleIno),
// it is read from the handle (knownID): no system call, for every event, also of an object
// gone by then (it had that number; TestObjectIDFromHandle). A number that a registered
// object's handle holds too was reused since (that object's descriptor pins its inode: the
// two cannot both be live), and is looked up as below. Elsewhere the first lookup is one statx
// of the event's path when the handle holds the inode number statx finds there, so that the
// path's object is the handle's — else (renamed meanwhile, or a handle without it) the handle
// is opened: three system calls — and the ID is cached by handle (fsState.inodes), so that
// the events after the first cost none. ps, if not nil, keeps the statx of path taken here
// (ps.taken), for attribPath. standIn says the ID is the stand-in
// (engine.Event.InodeStandIn).
func (b *Backend) objectID(fv *fsView, fid *sys.FileID, path string, ps *pathStat) (id engine.ID, standIn bool) {
	fs := fv.state
	k := fs.keyOf(fid.Handle)
	if id, ok := fv.knownID(k); ok {
		return id, false
	}
	key := string(k)
	if path != "" && len(path) < pathMax {
		st, err := sys.Statx(sys.AT_FDCWD, path, sys.AT_SYMLINK_NOFOLLOW)
		if ps != nil {
			ps.st, ps.err, ps.taken = st, err, true
		}
		if err == nil && st.Dev == fs.dev && handleHoldsIno(fid.Handle.Bytes, st.Ino) {
			id := inodeID(st.Dev, st.Ino)
			fs.inodes.Put(key, id)
			return id, false
		}
	}
	if fs.anchor >= 0 && len(fid.Handle.Bytes) > 0 {
		if fd, err := sys.OpenByHandleAt(fs.anchor, fid.Handle, sys.O_PATH); err == nil {
			st, err := sys.Fstat(fd)
			sys.Close(fd)
			if err == nil && st.Dev == fs.dev {
				id := inodeID(st.Dev, st.Ino)
				fs.inodes.Put(key, id)
				return id, false
			}
		}
	}
	return standInID(fs.dev, key), true
}

// pathStat is a statx of an event's path that objectID took (taken), for attribPath to use
// rather than take its own: one statx per ATTRIB of a file first seen, not two.
type pathStat struct {
	st    sys.Stat
	err   error
	taken bool
}

// knownID returns the ID of the object with handle key k when it is known without a system
// call: a registered object's exact ID (the one its marks are on); or the inode number the
// handle holds, where the filesystem's handles hold it (fsState.handleIno), unless a
// registered object's handle holds that number too (a number reused since: objectID); or the
// inode an earlier event found behind the handle (the FID reader only). Lookups only: k is
// not kept.
func (fv *fsView) knownID(k []byte) (engine.ID, bool) {
	if r, ok := fv.handles[string(k)]; ok {
		return r.id, true
	}
	if fs := fv.state; fs.handleIno.Known() && len(k) >= 4 {
		h := sys.FileHandle{Type: int32(binary.LittleEndian.Uint32(k)), Bytes: k[4:]}
		if ino, ok := fs.handleIno.Ino(h); ok {
			id := inodeID(fs.dev, ino)
			if _, reused := fv.handleIDs[id]; !reused {
				return id, true
			}
		}
	}
	return fv.state.inodes.Get(string(k))
}

// goneID is the ID of an object that is gone: its known ID if any (a marked directory keeps
// its marks' ID after it went: its events must still match them), else a stand-in.
func (fv *fsView) goneID(key string) engine.ID {
	if id, ok := fv.knownID([]byte(key)); ok {
		return id
	}
	return standInID(fv.state.dev, key)
}

// handleHoldsIno reports whether a file handle holds the inode number ino: its low 32 bits
// as a little-endian word at a word boundary, followed by its high 32 bits when they are not
// zero (tmpfs: generation, ino low, ino high; ext4: ino, generation; 64-bit encodings: ino).
func handleHoldsIno(h []byte, ino uint64) bool {
	lo, hi := uint32(ino), uint32(ino>>32)
	for i := 0; i+4 <= len(h); i += 4 {
		if binary.LittleEndian.Uint32(h[i:]) != lo {
			continue
		}
		if hi == 0 || (i+8 <= len(h) && binary.LittleEndian.Uint32(h[i+4:]) == hi) {
			return true
		}
	}
	return false
}

// standInID is the ID of an object that is gone, derived from its handle key.
func standInID(dev uint64, key string) engine.ID {
	h := fnv.New64a()
	h.Write([]byte(key))
	return engine.ID{Hi: dev, Lo: h.Sum64() | 1<<62}
}

// joinName is dir/name; "" (unknown) when dir is.
func joinName(dir string, name []byte) string {
	if dir == "" {
		return ""
	}
	if len(name) == 0 || (len(name) == 1 && name[0] == '.') {
		return dir
	}
	if dir == "/" {
		return "/" + string(name)
	}
	return dir + "/" + string(name)
}

// handle turns one FID-group event into an engine event and dispatches it.
func (g *fidGroup) handle(kev *sys.FanotifyEvent, v *view, now time.Time) {
	b := g.b
	if kev.Mask&sys.FAN_Q_OVERFLOW != 0 {
		g.overflow()
		return
	}
	if kev.Pidfd >= 0 && kev.Records.Has(sys.FAN_EVENT_INFO_TYPE_PIDFD) {
		sys.Close(int(kev.Pidfd))
	}
	fsid := kev.DFID.Fsid
	switch {
	case kev.Records.Has(sys.FAN_EVENT_INFO_TYPE_OLD_DFID_NAME):
		fsid = kev.OldDFID.Fsid
	case !kev.Records.Has(sys.FAN_EVENT_INFO_TYPE_DFID_NAME) && !kev.Records.Has(sys.FAN_EVENT_INFO_TYPE_DFID):
		fsid = kev.FID.Fsid
	}
	fv := v.byFsid[fsid]
	if fv == nil {
		return // a filesystem we no longer mark
	}
	// The kernel merges an unread directory-entry event with later events on the entry's
	// object (CREATE of d/x, then the OPEN, MODIFY, CLOSE_WRITE and ATTRIB of x, even its
	// DELETE, share a directory, a name and, with FAN_REPORT_TARGET_FID, the object): split
	// them in the order the system calls impose — the entry appears, the object's own events,
	// the entry goes — so that the object's events are reported on the object, between.
	// A directory's own events merge alike with its DELETE_SELF (rm -rf's open, read and
	// close of it, then its rmdir): split, they go before it, and wait with the directory's
	// other events when it is gone (orphans.go).
	if parts, n := splitDirent(kev.Mask); n > 1 && kev.Mask&sys.FAN_RENAME == 0 &&
		(kev.Records.Has(sys.FAN_EVENT_INFO_TYPE_FID) || selfRecord(kev)) {
		flags := kev.Mask & uint64(engine.EventFlags)
		// A directory moved in and out of one entry while both moves were unread: merged,
		// their place in the queue is the first's (movedaway.go, checkMergedMove).
		both := uint64(engine.MovedFrom | engine.MovedTo | engine.OnDir)
		mergedMove := kev.Mask&both == both && kev.Records.Has(sys.FAN_EVENT_INFO_TYPE_FID) &&
			kev.Records.Has(sys.FAN_EVENT_INFO_TYPE_DFID_NAME)
		for _, m := range parts {
			if m == 0 {
				continue
			}
			part := *kev
			part.Mask = m | flags
			part.Records &^= 1 << sys.FAN_EVENT_INFO_TYPE_PIDFD // closed above
			if m&uint64(engine.DeleteSelf) != 0 && flags&uint64(engine.OnDir) != 0 && selfRecord(kev) {
				// A directory's DELETE_SELF merged into its own older event, read before the
				// directory's DELETE on its parent, is not in its place: the removals inside
				// the directory, queued after that event, happened before it. Where the
				// DELETE is reported and places it (selfPlacedByDelete), it waits for that
				// DELETE, which the kernel queues just before or after it (orphans.go),
				// also when the directory still resolves; elsewhere (a non-recursive watch
				// of the directory) it is held until the events the kernel had queued when
				// it was read are dispatched (hold). (Read after the DELETE — merged into a
				// later close of a directory held as it went — it is in its place.)
				if key := handleKey(kev.DFID.Handle); fv.state.goneDir(key) == nil {
					if !fv.selfPlacedByDelete() {
						g.hold(&part, key, now)
						continue
					}
					if fv.state.anchor >= 0 {
						g.adopt(fv, &part, key, now)
						continue
					}
				}
			}
			g.handle(&part, v, now)
		}
		if mergedMove {
			if fv := v.byFsid[kev.DFID.Fsid]; fv != nil && fv.needAncestry() {
				b.checkMergedMove(fv, kev)
			}
		}
		return
	}
	if len(g.held) > 0 {
		g.releaseHeldBefore(kev, v) // a held DELETE_SELF goes before its DELETE (orphans.go)
	}
	fs := fv.state
	needAncestry := fv.needAncestry()
	mask := engine.Mask(kev.Mask) &^ engine.EventOnChild
	ev := newFIDEvent()
	ev.Mask, ev.Filesystem, ev.Pid, ev.Time = mask, fsID(fs.dev), kev.Pid, now
	ev.Comm, ev.Exe, ev.ExeDeleted = b.comms.get(kev.Pid, now)
	if fv.rootOnly {
		ev.Ancestors = fv.rootAncestors()
	}
	hasDir := kev.Records.Has(sys.FAN_EVENT_INFO_TYPE_DFID_NAME) || kev.Records.Has(sys.FAN_EVENT_INFO_TYPE_DFID)
	// ignoreFID: a notification event on an object found by its handle, which may earn the
	// object an outside-ignore mark (maybeIgnore).
	var ignoreFID *sys.FileID
	switch {
	case mask&engine.Rename != 0:
		// Through a directory's inode mark the kernel sends only the watched side's record.
		var od, nd *dirInfo
		if kev.Records.Has(sys.FAN_EVENT_INFO_TYPE_OLD_DFID_NAME) {
			od, _ = b.resolveDir(fs, &kev.OldDFID, needAncestry)
		}
		if kev.Records.Has(sys.FAN_EVENT_INFO_TYPE_NEW_DFID_NAME) {
			nd, _ = b.resolveDir(fs, &kev.NewDFID, needAncestry)
		}
		switch {
		case od != nil:
			ev.Inode = od.id
			ev.OldPath, ev.Name = od.childPath(kev.OldDFID.Name)
			if needAncestry {
				ev.Ancestors = od.ancestors
			}
		case nd != nil:
			ev.Inode, ev.Name = nd.id, string(kev.NewDFID.Name) // the only side we know
		default:
			b.stats.TranslateErrors.Add(1)
			return
		}
		if nd != nil {
			ev.Target = nd.id
			ev.Path, ev.NewName = nd.childPath(kev.NewDFID.Name)
			if needAncestry {
				ev.TargetAncestors = nd.childChain()
				if od == nil {
					ev.Ancestors = nd.ancestors
				}
			}
		}
		if needAncestry && ((od != nil && od.placeUnknown) || (nd != nil && nd.placeUnknown)) {
			var known []engine.ID
			for _, d := range []*dirInfo{od, nd} {
				if d != nil {
					known = append(known, d.id)
				}
			}
			placeUnknown(ev, fv, known...)
		}
	case mask&(engine.DirentEvents) != 0 && hasDir:
		d, ok := b.resolveDir(fs, &kev.DFID, needAncestry)
		if !ok {
			if fs.anchor >= 0 {
				g.adopt(fv, kev, handleKey(kev.DFID.Handle), now) // its directory is gone: wait for its deletion (orphans.go)
				return
			}
			b.stats.TranslateErrors.Add(1)
			return
		}
		ev.Inode = d.id
		ev.Path, ev.Name = d.childPath(kev.DFID.Name)
		if needAncestry {
			ev.Ancestors = d.ancestors
			if d.placeUnknown {
				placeUnknown(ev, fv)
			}
		}
		if mask&engine.OnDir != 0 && mask&engine.Move != 0 && needAncestry {
			b.checkMovedAway(fv, kev, ev, d)
		}
	case hasDir && len(kev.DFID.Name) > 0 && string(kev.DFID.Name) != ".":
		// An event on a child, reported with its parent and name.
		d, ok := b.resolveDir(fs, &kev.DFID, needAncestry)
		if !ok {
			if fs.anchor >= 0 {
				g.adopt(fv, kev, handleKey(kev.DFID.Handle), now)
				return
			}
			b.stats.TranslateErrors.Add(1)
			return
		}
		ev.Parent = d.id
		ev.Path, ev.Name = d.childPath(kev.DFID.Name)
		if mask&engine.Attrib != 0 && mask&engine.OnDir == 0 && ev.Path != "" && kev.Records.Has(sys.FAN_EVENT_INFO_TYPE_FID) {
			// One statx of the path serves both, when objectID takes one.
			var ps pathStat
			ev.Inode, ev.InodeStandIn = b.objectID(fv, &kev.FID, ev.Path, &ps)
			ev.Path = b.attribPath(fs, &kev.FID, ev.Path, &ps)
		} else {
			ev.Inode, ev.InodeStandIn = b.objectID(fv, &kev.FID, ev.Path, nil)
		}
		if needAncestry {
			ev.Ancestors = d.childChain()
			if d.placeUnknown {
				placeUnknown(ev, fv, d.id) // its directory is known, not the rest
			}
		}
		if mask&notifBits != 0 && mask&^(notifBits|engine.EventFlags) == 0 {
			ignoreFID = &kev.FID
		}
	default:
		// An event on the object itself (a marked directory reports name "."), or with no
		// directory record at all.
		fid := &kev.FID
		if !kev.Records.Has(sys.FAN_EVENT_INFO_TYPE_FID) {
			fid = &kev.DFID
		}
		// A MOVE_SELF's place: where its MOVED_TO, queued just before, put the object, if
		// read (selfMove); else found afresh below, not from a cache resolved before it.
		var mv *movePlace
		var selfKey string
		if mask&engine.MoveSelf != 0 {
			selfKey = handleKey(fid.Handle)
			if mv = g.moveOverride; mv == nil {
				if p, ok := fs.movedTo[selfKey]; ok {
					delete(fs.movedTo, selfKey)
					mv = &movePlace{path: p}
				} else {
					delete(fs.dirs, selfKey)
				}
			}
		}
		// A directory's DELETE_SELF has no place of its own: where subtrees need it, it
		// takes the one its DELETE gives (orphans.go, revealing).
		if mask&engine.OnDir != 0 && (mask&engine.DeleteSelf == 0 || fv.selfPlacedByDelete()) {
			d, ok := b.resolveDir(fs, fid, needAncestry)
			if !ok && fs.anchor >= 0 && mask&engine.FSError == 0 && (mask&engine.MoveSelf == 0 || fv.selfPlacedByDelete()) {
				// The directory is gone (rm -rf's open, read and close of it, read after
				// its rmdir; its DELETE_SELF; its MOVE_SELF, moved then removed before
				// the reader got to it — `mv a/b a/c && rmdir a/c`): its own DELETE names
				// it, after its children's (orphans.go). A gone directory's MOVE_SELF
				// waits only where every DELETE is reported (selfPlacedByDelete); elsewhere
				// it goes now, placed as unknown where subtrees need its place (below):
				// dispatched with no ancestry it matched no subtree mark, and a recursive
				// watch lost it (TestWatchSelfEventsAsInotifywait, 2 runs in 200 with both
				// CPUs busy).
				if mask&engine.MoveSelf != 0 && mv == nil {
					mv = &movePlace{} // gone: where this move took it is not known
				}
				g.adoptMove(fv, kev, handleKey(fid.Handle), now, mv)
				return
			}
			if !ok && needAncestry && mask&engine.MoveSelf != 0 {
				placeUnknown(ev, fv)
			}
			if ok {
				ev.Inode, ev.Path = d.id, d.path
				b.dirParent(fv, ev, d)
				if needAncestry {
					ev.Ancestors = d.ancestors
					if d.placeUnknown {
						placeUnknown(ev, fv)
					}
				}
				if mask&notifBits != 0 && mask&^(notifBits|engine.EventFlags) == 0 {
					ignoreFID = fid
				}
			}
		}
		if ev.Inode.IsZero() {
			ev.Inode, ev.InodeStandIn = b.objectID(fv, fid, "", nil)
		}
		if mask&engine.MoveSelf != 0 {
			ev.Path = g.selfMove(fs, fid, selfKey, ev.Path, mv)
		} else if ev.Path == "" {
			ev.Path = b.objectPath(fs, fid, mask)
		}
		if ev.Path == "" && mask&engine.MoveSelf == 0 {
			key := handleKey(fid.Handle)
			if _, moved := fs.recent[key]; !moved {
				if r, ok := fv.handles[key]; ok {
					ev.Path = r.path // a watched object that is gone: the name it was watched by
				}
			}
		}
		if ev.Path == "" && mask&(engine.OnDir|engine.FSError|engine.DeleteSelf|engine.MoveSelf) == 0 && !hasDir && g.targetFID && fv.fidWatched && fs.anchor >= 0 {
			// A file that was gone when its own event was read (the unlink's link-count
			// ATTRIB, queued just before its DELETE): its DELETE, which names it, is still
			// to come; it waits for it, as a gone directory's children do (orphans.go).
			key := handleKey(fid.Handle)
			if d := fs.goneDir(key); d != nil {
				ev.Path = d.path // named by its DELETE ("" when it never came: flushed)
			} else {
				g.adopt(fv, kev, key, now)
				return
			}
		}
		if kev.Records.Has(sys.FAN_EVENT_INFO_TYPE_ERROR) {
			ev.FSErrno, ev.FSErrorCount = kev.Error, kev.ErrorCount
		}
	}
	if kev.Records.Has(sys.FAN_EVENT_INFO_TYPE_FID) && mask&(engine.DirentEvents) != 0 && ev.Path != "" {
		// Remember where the entry's object is (or was), for its own later self events
		// (DELETE_SELF and MOVE_SELF carry no name).
		k := fs.keyOf(kev.FID.Handle)
		if p, ok := fs.recent[string(k)]; !ok || p != ev.Path {
			if len(fs.recent) >= 4096 {
				clear(fs.recent)
			}
			fs.recent[string(k)] = ev.Path
		}
		if mask&(engine.MovedTo|engine.Rename) != 0 {
			if _, ok := fv.handles[string(k)]; ok || mask&engine.OnDir != 0 {
				// For its MOVE_SELF, next (a directory's, or a registered object's: one
				// that may have self marks).
				if len(fs.movedTo) >= 4096 {
					clear(fs.movedTo)
				}
				fs.movedTo[string(k)] = ev.Path
			}
		}
	}
	// A directory that was gone when its children's events were read is named now: they go
	// first (orphans.go).
	if key, d, ok := fv.revealing(kev, ev, needAncestry); ok {
		g.reveal(fs, key, d, v)
	}
	// Name marks that rested on the names this event changes go before anyone hears of it.
	b.nameChanged(fs, kev, mask)
	b.eng.Notify(b.ctx, ev)
	if ignoreFID != nil && needAncestry {
		// (maybeIgnore asks for nothing where events need no ancestry: outside-ignore marks
		// are for subtrees. The handle's key is built only for a request it sends.)
		b.maybeIgnore(ev, v, ignoreFID)
	}
	ev.Release()
	// Directory moves and deletions invalidate cached paths and ancestries.
	if mask&engine.OnDir != 0 && mask&(engine.Move|engine.Rename|engine.Delete|engine.DeleteSelf|engine.MoveSelf) != 0 {
		fs.dirGen.Add(1)
	}
}

// knownPath is the path the FID reader last knew for the object with handle key, without a
// system call: where a recent directory-entry event put it, or, for a directory resolved
// before, the cache's; ok false if neither.
func (fs *fsState) knownPath(key string) (string, bool) {
	if p, ok := fs.recent[key]; ok {
		return p, true
	}
	if d := fs.dirs[key]; d != nil {
		return d.path, true // a directory we resolved before it went
	}
	return "", false
}

// selfRecord reports whether kev's only directory record is its object's own (a directory's
// own event: its handle and the name ".").
func selfRecord(kev *sys.FanotifyEvent) bool {
	return kev.Records.Has(sys.FAN_EVENT_INFO_TYPE_DFID_NAME) && string(kev.DFID.Name) == "."
}

// splitDirent splits a FID event's mask (flags excluded) into, in order, the directory-entry
// events that make the entry appear, the object's own events, an ATTRIB that came with the
// entry's removal (its link count), the directory-entry events that make it go, and the
// object's self events; n counts the parts that are not empty.
func splitDirent(m uint64) (parts [5]uint64, n int) {
	arrive := engine.Create | engine.MovedTo
	leave := engine.Delete | engine.MovedFrom
	self := engine.DeleteSelf | engine.MoveSelf
	mask := engine.Mask(m) &^ engine.EventFlags
	// An ATTRIB merged with the removal is the unlink's link count, after the object's own
	// events (their split puts an ATTRIB alone before the close: engine.SplitOrder).
	var late engine.Mask
	if mask&(leave|self) != 0 {
		late = mask & engine.Attrib
	}
	parts = [5]uint64{uint64(mask & arrive), uint64(mask &^ (arrive | leave | self | late)), uint64(late), uint64(mask & leave), uint64(mask & self)}
	for _, p := range parts {
		if p != 0 {
			n++
		}
	}
	return parts, n
}

// movePlace is where a MOVE_SELF took its object, decided when the event is first read:
// path "" when that is not known.
type movePlace struct{ path string }

// selfMove returns the path a MOVE_SELF of the object with handle key took it to: mv's, when
// decided (by the MOVED_TO read just before it, or when it was adopted); else the path found
// now (resolved, for a directory: "" if gone), but only if nothing is queued after the
// event, which could be a later move of the object: the path found then would be that
// move's, and the cache's older path would be this move's source, neither where this move
// took it (two moves read together printed the second's place twice, and a directory gone
// when read the place it had before the moves). The place is remembered (fs.recent, even
// "") for the object's later DELETE_SELF.
func (g *fidGroup) selfMove(fs *fsState, fid *sys.FileID, key, resolved string, mv *movePlace) string {
	path := ""
	switch {
	case mv != nil:
		path = mv.path
	case !g.settled():
	case resolved != "":
		path = resolved
	default:
		path = g.b.handlePath(fs, fid)
	}
	if len(fs.recent) >= 4096 {
		clear(fs.recent)
	}
	fs.recent[key] = path
	if d := fs.goneDir(key); d != nil && d.path != path {
		// Named gone by an earlier move's MOVED_FROM: it is where this move took it now
		// (its DELETE_SELF printed the earlier place).
		moved := *d
		moved.path, moved.lastName, moved.lastPath = path, "", ""
		fs.gone.Put(key, &moved)
	}
	return path
}

// settled reports whether nothing is queued after the event being handled: the rest of its
// batch and the kernel's queue are empty.
func (g *fidGroup) settled() bool {
	if g.batchLeft > 0 {
		return false
	}
	queued, err := 0, error(nil)
	if cerr := g.rc.Control(func(fd uintptr) { queued, err = sys.FanotifyQueued(int(fd)) }); cerr != nil {
		return false
	}
	return err == nil && queued == 0
}

// attribPath is the path to print for a file's ATTRIB named path by the kernel: path, if it
// leads to the file when read; else a name the file has now, if any. The kernel names an
// ATTRIB by the link it went through, which an fchmod or fchown of a descriptor opened by a
// link removed since (another link kept) names although it is gone: "A d/a" for a file that
// is d/b (TestTraceNamesAnAttribThroughARemovedLinkByACurrentName). A file with no name left
// keeps the kernel's (its last). One statx per file ATTRIB (not per read or write: those keep
// the kernel's name, docs/trace-format.md): objectID's of the same path when it took one (ps),
// else its own. Where the filesystem's handles hold the inode number (fsState.handleIno) the
// path's must be that one; elsewhere the handle must hold the path's (handleHoldsIno).
func (b *Backend) attribPath(fs *fsState, fid *sys.FileID, path string, ps *pathStat) string {
	if len(path) < pathMax {
		if !ps.taken {
			ps.st, ps.err = sys.Statx(sys.AT_FDCWD, path, sys.AT_SYMLINK_NOFOLLOW|sys.AT_STATX_DONT_SYNC)
			ps.taken = true
		}
		if ps.err == nil && ps.st.Dev == fs.dev {
			if ino, ok := fs.handleIno.Ino(fid.Handle); ok {
				if ps.st.Ino == ino {
					return path
				}
			} else if handleHoldsIno(fid.Handle.Bytes, ps.st.Ino) {
				return path
			}
		}
	}
	if now := b.handlePath(fs, fid); now != "" {
		return now
	}
	return path
}

// objectPath finds the path of a self event's object: where a recent directory-entry event
// put it, or (if it still exists) where the kernel says it is now.
func (b *Backend) objectPath(fs *fsState, fid *sys.FileID, mask engine.Mask) string {
	if p, ok := fs.knownPath(handleKey(fid.Handle)); ok {
		return p
	}
	if mask&engine.DeleteSelf != 0 {
		return ""
	}
	return b.handlePath(fs, fid)
}

// handlePath is where the kernel says the object of fid is now: "" if gone or unknown.
func (b *Backend) handlePath(fs *fsState, fid *sys.FileID) string {
	if fs.anchor < 0 || len(fid.Handle.Bytes) == 0 {
		return ""
	}
	fd, err := sys.OpenByHandleAt(fs.anchor, fid.Handle, sys.O_PATH)
	if err != nil {
		return ""
	}
	defer sys.Close(fd)
	return fdObjectPath(fd) // "" if unknown
}
