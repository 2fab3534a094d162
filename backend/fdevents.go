//go:build linux

package backend

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/lru"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// permEvent is a kernel permission event: the engine payload of its engine event. It is
// answered exactly once (answer), and its descriptor is closed once the engine and every
// group are done with it (Release).
type permEvent struct {
	g        *fdGroup
	fd       int32
	answered atomic.Bool

	// st is the event object's statx; pathTried says translateFD looked for the path already
	// (path is then what it found, "" if unknown, and Path does not look again).
	st        sys.Stat
	pathTried bool
	pathOnce  sync.Once
	path      string

	// What the verdict cache needs to know that the decision still stands when it places its
	// mark: the generations from before the object's path was read (and st's ctime).
	markGen, cacheGn uint64
}

// answer writes the kernel answer, once; later calls do nothing.
func (p *permEvent) answer(response uint32) {
	if !p.answered.CompareAndSwap(false, true) {
		return
	}
	b := p.g.b
	if err := p.g.respond(p.fd, response); err != nil && !isClosedErr(err) {
		b.log.Error("answering a permission event", "err", err)
	}
	b.inflightMu.Lock()
	delete(b.inflight, p)
	b.inflightMu.Unlock()
}

// Release closes the event's descriptor (engine.Payload).
func (p *permEvent) Release() { sys.Close(int(p.fd)) }

// Fd returns the event's open descriptor, for reading the file's content (reads through it
// cause no events). Valid until the delivery is released; do not close it.
func (p *permEvent) Fd() int { return int(p.fd) }

// Path returns the path of the file, resolved on first use: "" if it is unknown (longer
// than the kernel prints for a file, or printed wrong: see eventPath).
func (p *permEvent) Path() string {
	p.pathOnce.Do(func() {
		if p.path == "" && !p.pathTried {
			p.path, _ = eventPath(int(p.fd), &p.st)
		}
	})
	return p.path
}

func isClosedErr(err error) bool {
	return err == os.ErrClosed || strings.Contains(err.Error(), "file already closed")
}

// handlePerm dispatches a kernel permission event on the loop, and answers it there if it
// can: the event of an exempt process at once; else its engine event walks the groups as far
// as possible here (groups with a Handler answer at once), and the kernel is answered without
// a hand-off. A walk that must wait for a group's answer goes on, and answers the kernel, on
// the loop too: the engine hands its continuation to the loop (engine.Config.Executor).
func (g *fdGroup) handlePerm(kev *sys.FanotifyEvent, v *view, now time.Time) {
	b := g.b
	b.stats.PermissionEvents.Add(1)
	p := &permEvent{g: g, fd: kev.Fd}
	if b.exempts.Exempt(kev.Pid) {
		b.stats.SelfExempt.Add(1)
		g.respond(kev.Fd, sys.FAN_ALLOW)
		p.Release()
		return
	}
	b.inflightMu.Lock()
	b.inflight[p] = struct{}{}
	b.inflightMu.Unlock()
	// Read before the walk: a group that adds a permission mark later flushes the cache, and
	// an allow decided without it must not be cached after that.
	p.cacheGn = b.cacheGen.Load()
	ev, ok := b.translateFD(kev, v, now, false, p)
	if !ok {
		// The kernel fails open on errors of its own; so do we, and count it.
		p.answer(sys.FAN_ALLOW)
		p.Release()
		return
	}
	ev.Payload = p
	defer func() {
		if r := recover(); r != nil {
			p.answer(sys.FAN_ALLOW) // a Handler panicked: answer, then let it crash
			panic(r)
		}
	}()
	r, w := b.eng.Dispatch(ev)
	if w == nil {
		b.finishPerm(p, ev, v, r)
		return
	}
	// The rest of the walk runs once the group holding the event answers (a client's
	// Respond, its deadline's timer, its Close, Close of the backend), on the loop: no
	// goroutine per waiting event.
	b.wg.Add(1)
	w.Await(b.ctx, func(r engine.Response) {
		defer b.wg.Done()
		defer func() {
			if x := recover(); x != nil {
				p.answer(sys.FAN_ALLOW) // never leave the opener blocked, even on a bug
				panic(x)
			}
		}()
		b.finishPerm(p, ev, v, r)
	})
}

// finishPerm answers the kernel with the engine's verdict.
func (b *Backend) finishPerm(p *permEvent, ev *engine.Event, v *view, resp engine.Response) {
	response := sys.FAN_ALLOW
	if resp.Verdict == engine.Deny {
		response = sys.FAN_DENY
		if resp.Errno != 0 && p.g.class == sys.FAN_CLASS_PRE_CONTENT {
			response = sys.FAN_DENY_ERRNO(resp.Errno)
		}
	} else if resp.Cache && resp.Reason == engine.ReasonAnswered {
		b.cacheVerdict(p, ev, v)
	}
	p.answer(response)
	b.maybeIgnore(ev, v)
	ev.Release()
}

// ExemptPid exempts a helper process this process started (a scanner, say) and has not
// reaped: its permission events are allowed at once and never dispatched, and so are those of
// its session's members if it leads its own session (see Exemptions.Add). Call the returned
// function when the helper has exited; a pid that is not a live process is not exempted.
func (b *Backend) ExemptPid(pid int) (done func()) {
	done, _ = b.exempts.Add(pid)
	return done
}

// Spawning marks a window in which helpers are being started: until end is called, this
// process's direct children are exempt (see Exemptions.Spawning).
func (b *Backend) Spawning() (end func()) { return b.exempts.Spawning() }

// Exemptions are the processes whose permission events the backend allows without a
// decision: this process and its registered helpers.
func (b *Backend) Exemptions() *Exemptions { return b.exempts }

// translateFD builds the engine event of an FD-group event. withPath asks for the path even
// when dispatch does not need it (notifications, whose descriptor is closed right away). p,
// for a permission event, learns the object's statx, whether its path was found, and the
// name-mark generation from before its path was read (see cacheVerdict).
func (b *Backend) translateFD(kev *sys.FanotifyEvent, v *view, now time.Time, withPath bool, p *permEvent) (*engine.Event, bool) {
	st, err := sys.Fstat(int(kev.Fd))
	if err != nil {
		b.stats.TranslateErrors.Add(1)
		return nil, false
	}
	ev := &engine.Event{
		Mask:       engine.Mask(kev.Mask) &^ engine.EventFlags,
		Inode:      inodeID(st.Dev, st.Ino),
		Mount:      mountID(st.MntID),
		Filesystem: fsID(st.Dev),
		Pid:        kev.Pid,
		Time:       now,
	}
	if kev.Records.Has(sys.FAN_EVENT_INFO_TYPE_RANGE) {
		ev.Range = engine.Range{Offset: kev.RangeOffset, Count: kev.RangeCount}
	}
	if st.IsDir() {
		ev.Mask |= engine.OnDir
	}
	fv := v.fs[st.Dev]
	if p != nil {
		p.st = st
		if fv != nil {
			p.markGen = fv.state.markGen.Load()
		}
	}
	needAncestry := fv != nil && len(fv.roots) > 0 && !fv.rootOnly
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
	var settledGen uint64
	cacheable := needAncestry && fv.fidWatched && ((!withPath && st.Nlink == 1) || st.IsDir())
	cacheCtime := st.Ctime
	if st.IsDir() {
		cacheCtime = 0
	}
	if cacheable {
		var ok bool
		if settledGen, ok = b.dirsSettled(fv.state); ok {
			if e, ok := b.chains.get(ev.Inode, cacheCtime, st.MntID, settledGen); ok && (!st.IsDir() || e.path != "") {
				ev.Parent, ev.Ancestors = e.chain[0], e.chain
				if e.path != "" {
					ev.Path, ev.Name = e.path, filepath.Base(e.path)
					if p != nil {
						p.path, p.pathTried = e.path, true
					}
				}
				return ev, true
			}
		} else {
			cacheable = false
		}
	}
	needPlace := needAncestry || (fv != nil && fv.needParent)
	for try := 0; ; try++ {
		path, known := eventPath(int(kev.Fd), &st)
		if needPlace && st.Nlink > 0 && (!known || path != "/" && len(path) < pathMax) {
			// The path must name the object here, on its own mount: one printed from another
			// mount namespace (a bind mount made in a user namespace) would lead the walk
			// through unrelated directories, or nowhere. verifyPath finds the object's real
			// one if it can.
			raw := path
			if !known {
				raw, _ = sys.FdPath(int(kev.Fd)) // what the kernel printed, if anything
			}
			if vpath, ok := b.verifyPath(fv.state, int(kev.Fd), st, raw, kev.Pid); raw != "" && ok {
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
		complete := false
		if known && len(path) < pathMax {
			chain, complete = b.ancestry(fv.state, filepath.Dir(path), st.Dev, needAncestry)
		}
		if !complete && st.IsDir() {
			chain, complete = b.dirAncestry(fv.state, int(kev.Fd), st)
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
			b.chains.put(ev.Inode, chainEntry{ctime: cacheCtime, mnt: st.MntID, gen: settledGen, chain: chain})
		case cacheable && known && len(path) >= pathMax:
			b.chains.put(ev.Inode, chainEntry{mnt: st.MntID, gen: settledGen, chain: chain, path: path})
		}
		return ev, true
	}
}

// pathMax is PATH_MAX: a longer path cannot be passed to a system call.
const pathMax = 4096

func mountID(mnt uint64) engine.ID { return engine.ID{Hi: mnt, Lo: 1} }

// rootAncestors is the shared, immutable ancestry {filesystem root}, for rootOnly views.
func (fv *fsView) rootAncestors() []engine.ID { return fv.rootChain }

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
// Directory-entry events get none: an ignore mark on a directory outside every subtree
// would stay until the backend read that directory's move into a subtree, and the entries
// created there in the meantime would be lost. The FID group's events outside subtrees cost
// the reader, not the processes that cause them.
func (b *Backend) maybeIgnore(ev *engine.Event, v *view) {
	fv := v.fs[ev.Inode.Hi]
	if fv == nil || len(fv.roots) == 0 || fv.rootOnly || fv.subtreeOnly[kFD] == 0 || ev.Path == "" || !fv.fidWatched {
		return
	}
	if ev.Ancestors == nil || ev.AncestryUnknown {
		return // ancestry unknown: never ignore on a guess
	}
	if fv.roots[ev.Inode] || fv.eocDirs[ev.Parent] || fv.inodeDirs[ev.Parent] > 0 {
		return
	}
	for _, a := range ev.Ancestors {
		if fv.roots[a] {
			return
		}
	}
	select {
	case b.janitor <- ignoreRequest{fs: fv.state, target: ev.Inode, path: ev.Path}:
	default: // the janitor is behind: the next event will ask again
	}
}

// ignoreRequest asks the janitor for an outside-ignore mark on target (at path), or, with
// watchNames, for the FID group's name watch on fs (for the verdict cache).
type ignoreRequest struct {
	fs         *fsState
	target     engine.ID
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
	fv := v.fs[fs.dev]
	if fv == nil || fv.state != fs || len(fv.roots) == 0 || fv.rootOnly || !fv.fidWatched || !b.fidAlive() {
		return
	}
	mask := fv.subtreeOnly[kFD]
	if mask == 0 {
		return
	}
	fd, err := sys.Open(r.path, sys.O_PATH|sys.O_NOFOLLOW, 0)
	if err != nil {
		return
	}
	defer sys.Close(fd)
	st, err := sys.Fstat(fd)
	if err != nil || inodeID(st.Dev, st.Ino) != r.target {
		return // the path names another object now
	}
	chain, ok := b.pinnedChain(fs, fd, st, r.path)
	if !ok || fv.roots[r.target] || fv.eocDirs[chain[0]] || fv.inodeDirs[chain[0]] > 0 {
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
	if surv {
		mask |= uint64(engine.OnDir)
	}
	if b.placeNameMark(fs, fd, r.target, purposeIgnore, mask, surv, gen, 0, st.Ctime) {
		b.stats.IgnoreMarks.Add(1)
	}
}

// fidAlive reports whether the FID group is reading: name marks rely on it seeing root's
// moves.
func (b *Backend) fidAlive() bool {
	g := b.fidGroupAtomic.Load()
	return g != nil && !g.closed.Load()
}

// cacheVerdict remembers an allow in the kernel: an evictable ignore mark for the event's
// inode and permission event (not surviving modification), so that later accesses skip
// userspace until the file is modified, renamed or linked, a group starts to care
// (PermissionHook), the policy changes (FlushVerdictCache), or the inode is evicted. The
// allow was decided on the file's content and on its name: it is cached only for a pinned
// object (pinnedChain), on a filesystem whose names the FID group watches, if nothing moved
// the object's ctime or dropped name marks since its path was read (then a write, rename,
// link or chmod may have slipped in), and while no engine mark has a permission ignore mask
// that a modification would clear (VolatilePermissionIgnores).
func (b *Backend) cacheVerdict(p *permEvent, ev *engine.Event, v *view) {
	mask := uint64(ev.Mask & engine.PermissionEvents)
	fv := v.fs[ev.Inode.Hi]
	if mask == 0 || fv == nil || p.st.IsDir() || b.eng.VolatilePermissionIgnores() {
		return
	}
	fs := fv.state
	if !fv.fidWatched || !b.fidAlive() {
		if b.canFID() {
			select {
			case b.janitor <- ignoreRequest{fs: fs, watchNames: true}:
			default:
			}
		}
		return
	}
	path := p.Path()
	if path == "" {
		return
	}
	if _, ok := b.pinnedChain(fs, int(p.fd), p.st, path); !ok {
		return
	}
	if b.placeNameMark(fs, int(p.fd), ev.Inode, purposeCache, mask, false, p.markGen, p.cacheGn, p.st.Ctime) {
		b.stats.VerdictCached.Add(1)
	}
}

// FlushVerdictCache forgets every cached allow (call it when the policy changes): later
// accesses are decided again.
func (b *Backend) FlushVerdictCache() {
	// A decision in flight that read the generation before this cannot record its mark.
	b.cacheGen.Add(1)
	for _, fv := range b.view.Load().fs {
		b.dropNameMarks(fv.state, engine.ID{}, purposeCache)
	}
}

// permissionHook is the engine's PermissionHook: a group may now take permission events it
// did not take when the cached allows were decided, so they go.
func (b *Backend) permissionHook(engine.Object) { b.FlushVerdictCache() }

func errorsIsAny(err error, errnos ...syscall.Errno) bool {
	for _, e := range errnos {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

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
// before now has been processed (and returns the directory generation then): the FID group
// is idle. A move queued before an access is then reflected in the generation, so an
// ancestry cached under an older generation is never used after a move. The generation is
// read after idle's checks: the reader bumps it before clearing busy.
func (b *Backend) dirsSettled(fs *fsState) (uint64, bool) {
	g := b.fidGroupAtomic.Load()
	if g == nil {
		return 0, false
	}
	if idle, err := g.idle(); err != nil || !idle {
		return 0, false
	}
	return fs.dirGen.Load(), true
}

// chainCache maps an object, as opened through one mount, to its ancestry (and, for a
// directory deeper than PATH_MAX, its path) while its filesystem's directory generation stands
// still, and for a file (with one link) its ctime too: a rename, link or unlink of the file
// moves its ctime, a move or deletion of any directory bumps the generation. A directory's
// path and ancestry change only by a directory move; its ctime moves with every entry made in
// it, so directories are cached with ctime 0. Bounded by internal/lru (cacheEntries objects).
type chainCache struct {
	m *lru.Cache[engine.ID, chainEntry]
}

type chainEntry struct {
	ctime int64
	mnt   uint64 // the walk up ends at the root of this mount
	gen   uint64
	chain []engine.ID // shared, never modified
	path  string      // a deep directory's (see translateFD)
}

func (c *chainCache) get(id engine.ID, ctime int64, mnt, gen uint64) (chainEntry, bool) {
	e, ok := c.m.Get(id)
	return e, ok && e.ctime == ctime && e.mnt == mnt && e.gen == gen && len(e.chain) > 0
}

func (c *chainCache) put(id engine.ID, e chainEntry) { c.m.Put(id, e) }
