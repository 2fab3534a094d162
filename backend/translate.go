//go:build linux

package backend

import (
	"path/filepath"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/lru"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// translateFD builds the engine event of an FD-group event. withPath asks for the path even
// when dispatch does not need it (notifications, whose descriptor is closed right away). p,
// for a permission event, learns the object's statx, whether its path was found, and the
// name-mark generation from before its path was read (see cacheVerdict).
func (b *Backend) translateFD(kev *sys.FanotifyEvent, v *view, now time.Time, withPath bool, p *permEvent) (*engine.Event, bool) {
	// Into the permEvent's own st (p learns the object's statx): FstatTo writes it in place,
	// where Fstat's result was copied twice through memory, with loads that stall store
	// forwarding. Read through the pointer from here on.
	var own sys.Stat
	st := &own
	if p != nil {
		st = &p.st
	}
	// Raw system calls (no entersyscall, exitsyscall) while every filesystem marked is one
	// where the descriptor's statx and close wait for nothing but the CPU and the local disk.
	raw := !b.rawUnsafe.Load()
	if p != nil {
		p.rawClose = raw
	}
	if err := sys.FstatTo(int(kev.Fd), st, raw); err != nil {
		b.stats.TranslateErrors.Add(1)
		return nil, false
	}
	// A permission event's engine event lives in its permEvent (one allocation for both:
	// the event holds the permEvent as its payload, so they die together).
	var ev *engine.Event
	if p != nil {
		ev = &p.ev
	} else {
		ev = new(engine.Event)
	}
	ev.Mask = engine.Mask(kev.Mask) &^ engine.EventFlags
	ev.Inode, ev.Mount, ev.Filesystem = inodeID(st.Dev, st.Ino), mountID(st.MntID), fsID(st.Dev)
	ev.Pid, ev.Time = kev.Pid, now
	if kev.Records.Has(sys.FAN_EVENT_INFO_TYPE_RANGE) {
		ev.Range = engine.Range{Offset: kev.RangeOffset, Count: kev.RangeCount}
	}
	if st.IsDir() {
		ev.Mask |= engine.OnDir
	}
	fv := v.fsOf(st.Dev)
	if p != nil && fv != nil {
		p.markGen = fv.state.markGen.Load()
		p.fs = fv.state
	}
	needAncestry := fv != nil && fv.needAncestry()
	if fv != nil && fv.rootOnly {
		ev.Ancestors = fv.rootAncestors()
	}
	if !withPath && !needAncestry && (fv == nil || !fv.needParent) {
		return ev, true
	}
	if !withPath && !needAncestry && st.Nlink == 1 {
		// Only the parent is needed (a directory mark watches its children): a file with one
		// name keeps its parent while its ctime stands still (rename, link and unlink move
		// it), so a cached parent saves a readlink and a stat per event.
		if parent, ok := b.parents.get(ev.Inode, st.Ctime); ok {
			ev.Parent = parent
			return ev, true
		}
	}
	// Cached ancestries: of a file with one name (when its path is not wanted), and of a
	// directory deeper than PATH_MAX with its path (each event of one would otherwise cost a
	// walk up of every level: a guarded reader an attacker could slow down at will).
	// walkGen is the directory generation read before the walk, which the entry it makes is
	// kept under: a directory move the walk could not see is read after it, and bumps it.
	var walkGen, markGen uint64
	cacheable := needAncestry && fv.fidWatched && ((!withPath && st.Nlink == 1) || st.IsDir())
	cacheCtime := st.Ctime
	if st.IsDir() {
		cacheCtime = 0
	}
	if cacheable {
		// Read before anything about the object's place is: a pinned chain computed after
		// it holds while no directory name or mode change has been read since (pinnedHolds).
		markGen = fv.state.markGen.Load()
		e, found := b.chains.get(ev.Inode, cacheCtime, st.MntID)
		found = found && (!st.IsDir() || e.path != "")
		if found && e.pinned {
			if b.pinnedHolds(fv.state, e, markGen) {
				// Every directory above is pinned: no untrusted user can have moved one
				// since the chain was walked, so it needs no idle poll of the FID group
				// (docs/security.md, "Cached ancestries of pinned files"). Not counted (a
				// locked instruction per event): the polls it saves are (Stats.FIDIdlePolls).
				ev.Parent, ev.Ancestors = e.chain[0], e.chain
				return ev, true
			}
			// A name or mode change was read since (or a move): walked again, so that a
			// chain still pinned is the shortcut's again. Taken after an idle poll instead,
			// it would stay the entry with the old mark generation, polled at every access
			// while the directory generation stood still (docs/design/performance.md,
			// session 12).
			found = false
		}
		gen, idle, watched := b.dirsSettled(fv.state)
		if idle && found && e.gen == gen {
			ev.Parent, ev.Ancestors = e.chain[0], e.chain
			if e.path != "" {
				ev.Path, ev.Name = e.path, filepath.Base(e.path)
				if p != nil {
					p.path, p.pathTried = e.path, true
				}
			}
			return ev, true
		}
		// Walked whether the FID group was idle or busy, the chain is remembered under the
		// generation read before the walk (gen): a busy group's unread moves happened before
		// the walk, which sees their result, and bump gen when read. Only an idle group's
		// answer lets an entry be used (above), and only a pinned chain without it (a walk
		// thrown away while the reader was behind left every open after it to walk and poll
		// again: docs/design/performance.md, session 12).
		walkGen, cacheable = gen, watched
	}
	needPlace := needAncestry || (fv != nil && fv.needParent)
	// The path is read: eventPath may take the statx again (a file unlinked meanwhile), into
	// a copy, so that p.st stays the one from before the path was read (cacheVerdict).
	stc := *st
	st = &stc
	for try := 0; ; try++ {
		path, known, onMount := eventPath(int(kev.Fd), st)
		if needPlace && st.Nlink > 0 && (!known || path != "/" && len(path) < pathMax) {
			// The path must name the object here, on its own mount: one printed from another
			// mount namespace (a bind mount made in a user namespace) would lead the walk
			// through unrelated directories, or nowhere. verifyPath finds the object's real
			// one if it can.
			raw := path
			if !known {
				raw, _ = sys.FdPath(int(kev.Fd)) // what the kernel printed, if anything
			}
			if vpath, ok := verifyPath(fv.state, int(kev.Fd), *st, raw, kev.Pid, onMount); raw != "" && ok {
				path, known = vpath, true
			} else if known {
				path, known = "", false
			}
		}
		if p != nil {
			p.path, p.pathTried = path, true
		}
		ev.Path = path
		if !known {
			b.stats.PathsUnknown.Add(1)
		} else if path != "/" {
			ev.Name = filepath.Base(path)
		}
		if !needPlace || path == "/" || st.MountRoot && fv.state.isRoot(st.Ino) {
			return ev, true // nothing above the root of the filesystem
		}
		// The directories above: from the path, or, for a directory whose path is too long
		// for that (or unknown), from its descriptor.
		var chain []engine.ID
		complete, pinned := false, false
		if known && len(path) < pathMax {
			chain, complete, pinned = b.ancestryPinned(fv.state, filepath.Dir(path), st.Dev, needAncestry)
		}
		if !complete && st.IsDir() {
			chain, complete = b.dirAncestry(fv.state, int(kev.Fd), *st)
		}
		if !complete {
			if try == 0 && known {
				continue // a directory on the way moved meanwhile: look again, once
			}
			// A file whose place is unknown: possibly inside every subtree here.
			b.stats.PlacesUnknown.Add(1)
			placeUnknown(ev, fv)
			return ev, true
		}
		if len(chain) == 0 {
			return ev, true
		}
		ev.Parent = chain[0]
		if needAncestry {
			ev.Ancestors = chain
		}
		if st.Nlink == 1 {
			b.parents.put(ev.Inode, st.Ctime, chain[0])
		}
		switch {
		case cacheable && !st.IsDir():
			b.chains.put(ev.Inode, &chainEntry{ctime: cacheCtime, mnt: st.MntID, gen: walkGen, chain: chain,
				pinned: pinned && try == 0, markGen: markGen})
		case cacheable && known && len(path) >= pathMax:
			b.chains.put(ev.Inode, &chainEntry{mnt: st.MntID, gen: walkGen, chain: chain, path: path})
		}
		return ev, true
	}
}

// pathMax is PATH_MAX: a longer path cannot be passed to a system call.
const pathMax = 4096

func mountID(mnt uint64) engine.ID { return engine.ID{Hi: mnt, Lo: 1} }

// rootAncestors is the shared, immutable ancestry {filesystem root}, for rootOnly views.
func (fv *fsView) rootAncestors() []engine.ID { return fv.rootChain }

// parentCache maps a file to its directory while the file's ctime stands still (internal/lru:
// cacheEntries files).
type parentCache struct {
	m *lru.Cache[engine.ID, parentEntry]
}

// cacheEntries bounds the parent and ancestry caches.
const cacheEntries = 1 << 16

type parentEntry struct {
	ctime  int64
	parent engine.ID
}

func (c *parentCache) get(id engine.ID, ctime int64) (engine.ID, bool) {
	e, ok := c.m.Get(id)
	return e.parent, ok && e.ctime == ctime
}

func (c *parentCache) put(id engine.ID, ctime int64, parent engine.ID) {
	c.m.Put(id, parentEntry{ctime: ctime, parent: parent})
}

// dirsSettled reports whether every directory move or deletion the kernel reported on fs
// before now has been processed (idle: the FID group is idle), and returns the directory
// generation, read after the question: an ancestry cached under an older generation is never
// used after a move (the reader bumps it before clearing busy). watched is false when no FID
// group reads the filesystem's moves (none, or its poll failed): then nothing may be cached.
// A busy group's generation is still one read before the caller's walk (translateFD keeps
// the walk's chain under it): every move it has not counted yet bumps it when read.
//
// It runs on the loop, for an event of the FD group's current batch, and polls the FID group
// once per batch: every event of the batch was queued before the batch's read returned, so a
// move queued before any of them was queued before a poll made after that read, and an idle
// FID group then has processed it (fdGroup.fidIdle). A busy one is asked again for the next
// event.
func (b *Backend) dirsSettled(fs *fsState) (gen uint64, idle, watched bool) {
	g := b.fidGroupAtomic.Load()
	if g == nil {
		return 0, false, false
	}
	fg := b.fdGroupAtomic.Load()
	if fg == nil || !fg.fidIdle {
		b.stats.FIDIdlePolls.Add(1)
		idle, err := g.idle()
		if err != nil {
			return 0, false, false
		}
		if !idle {
			return fs.dirGen.Load(), false, true
		}
		if fg != nil {
			fg.fidIdle = true
		}
	}
	return fs.dirGen.Load(), true, true
}

// chainCache maps an object, as opened through one mount, to its ancestry (and, for a
// directory deeper than PATH_MAX, its path) while its filesystem's directory generation stands
// still, and for a file (with one link) its ctime too: a rename, link or unlink of the file
// moves its ctime, a move or deletion of any directory bumps the generation. A directory's
// path and ancestry change only by a directory move; its ctime moves with every entry made in
// it, so directories are cached with ctime 0. Bounded by internal/lru (cacheEntries objects).
// An entry is never modified once put (a new one replaces it): the cache holds pointers, so a
// lookup copies one word where it copied the entry (ten) twice.
//
// Only the backend's loop uses it (translateFD runs there, for the FD group's events), so in
// front of the LRU (whose lock costs two locked instructions per lookup, and its map a hash
// of the 16-byte key) it keeps the objects looked up or put last in a small direct-mapped
// table of its own, without a lock. What it holds needs no invalidation: an entry says by
// itself whether it still holds (get checks its ctime and mount, the caller its directory
// generation or its pinned chain's), whether or not the LRU still has it, and put writes both.
type chainCache struct {
	m     *lru.Cache[engine.ID, *chainEntry]
	front [chainFront]struct {
		id engine.ID
		e  *chainEntry
	}
}

// chainFront is the size of chainCache's table in front of the LRU (a power of 2).
const chainFront = 64

// frontSlot is id's place in chainCache.front.
func frontSlot(id engine.ID) int {
	return int((id.Lo*0x9e3779b97f4a7c15 ^ id.Hi) >> 58) // the top 6 bits: chainFront slots
}

type chainEntry struct {
	ctime int64
	mnt   uint64 // the walk up ends at the root of this mount
	gen   uint64
	chain []engine.ID // shared, never modified
	path  string      // a deep directory's (see translateFD)
	// pinned: a file's chain, every directory of which was pinned when it was walked
	// (ancestryPinned), the filesystem's mark generation read before (see pinnedHolds).
	pinned  bool
	markGen uint64
}

// get returns the entry of object id as opened through mount mnt with ctime ctime; the
// caller checks its generation.
func (c *chainCache) get(id engine.ID, ctime int64, mnt uint64) (*chainEntry, bool) {
	f := &c.front[frontSlot(id)]
	e := f.e
	if e == nil || f.id != id {
		var ok bool
		if e, ok = c.m.Get(id); !ok {
			return nil, false
		}
		f.id, f.e = id, e
	}
	if e.ctime != ctime || e.mnt != mnt || len(e.chain) == 0 {
		return nil, false
	}
	return e, true
}

// pinnedHolds reports whether the pinned chain e still stands without asking whether the FID
// group is idle: no directory move or deletion (dirGen) and no name or mode change of a
// directory (markGen: nameChanged bumps it for every directory's move, rename or ATTRIB) has
// been read on fs since the chain was walked, and the FID group still reads them. What has
// not been read yet can only be root's: nobody else can rename, move or chmod a pinned
// directory, or make one of theirs pinned (docs/security.md, "Cached ancestries of pinned
// files"). markGen is the generation the caller read before looking the entry up.
func (b *Backend) pinnedHolds(fs *fsState, e *chainEntry, markGen uint64) bool {
	return e.markGen == markGen && e.gen == fs.dirGen.Load() && b.fidAlive()
}

func (c *chainCache) put(id engine.ID, e *chainEntry) {
	c.m.Put(id, e)
	f := &c.front[frontSlot(id)]
	f.id, f.e = id, e
}
