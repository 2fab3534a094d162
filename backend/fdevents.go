//go:build linux

package backend

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// permEvent is a kernel permission event: the engine payload of its engine event. It is
// answered exactly once (answer), and its descriptor is closed once the engine and every
// group are done with it (Release).
type permEvent struct {
	g        *kgroup
	fd       int32
	answered atomic.Bool

	// st is the event object's statx; pathTried says translateFD looked for the path already
	// (path is then what it found, "" if unknown, and Path does not look again).
	st        sys.Stat
	pathTried bool
	pathOnce  sync.Once
	path      string
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

// handleFD turns one FD-group event into an engine event. Notifications are dispatched on the
// reader goroutine (Notify never blocks for them, and order is kept); a permission event gets
// a goroutine of its own, so that a slow group never holds up the reading of later events
// (their deadlines run from the moment they are read).
func (g *kgroup) handleFD(kev *sys.FanotifyEvent, v *view, now time.Time) {
	b := g.b
	if kev.Mask&sys.FAN_Q_OVERFLOW != 0 {
		g.overflow()
		return
	}
	if kev.Fd < 0 {
		return // FAN_NOFD without overflow, or an FD_ERROR: nothing to answer or report
	}
	if !kev.IsPerm() {
		ev, ok := b.translateFD(kev, v, now, true, nil)
		sys.Close(int(kev.Fd))
		if ok {
			ev.Comm, ev.Exe = b.comms.get(kev.Pid, now)
			b.eng.Notify(b.ctx, ev)
			b.maybeIgnore(kFD, ev, v)
			ev.Release()
		}
		return
	}
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
	// Walk as far as possible here: groups with a Handler answer at once, and then the
	// kernel is answered without a goroutine hand-off. Only a walk that must wait for a
	// group's reader gets a goroutine of its own.
	r, w := b.eng.Dispatch(ev)
	if w == nil {
		b.finishPerm(p, ev, v, r)
		return
	}
	// The rest of the walk runs where the answers arrive (a group reader's Respond, a
	// deadline's timer, a Close, Close of the backend), and the kernel is answered there:
	// no goroutine per waiting event, no wake-up after the last answer.
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
		b.cacheVerdict(p, ev)
	}
	p.answer(response)
	b.maybeIgnore(kFD, ev, v)
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
// for a permission event, learns the object's statx and whether its path was found.
func (b *Backend) translateFD(kev *sys.FanotifyEvent, v *view, now time.Time, withPath bool, p *permEvent) (*engine.Event, bool) {
	st, err := sys.Fstat(int(kev.Fd))
	if err != nil {
		b.stats.TranslateErrors.Add(1)
		return nil, false
	}
	if p != nil {
		p.st = st
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
		if p != nil {
			p.path, p.pathTried = path, true
		}
		ev.Path = path
		if !known {
			b.stats.PathsUnknown.Add(1)
		} else if path != "/" {
			ev.Name = filepath.Base(path)
		}
		if !needPlace || path == "/" || st.MountRoot {
			return ev, true // nothing above the root of its mount, as the walk up stops there
		}
		// The directories above: from the path, or, for a directory whose path is too long
		// for that (or unknown), from its descriptor.
		var chain []engine.ID
		complete := false
		if known && len(path) < pathMax {
			chain, complete = ancestry(filepath.Dir(path), st.Dev, needAncestry)
		}
		if !complete && st.IsDir() {
			chain, complete = dirAncestry(int(kev.Fd))
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

// maybeIgnore puts an evictable ignore mark where the kernel would otherwise keep sending
// events nobody wants: the event is outside every subtree and nothing else on the
// filesystem (a filesystem or mount mark, a parent watching its children) wants it. For an
// open, access or permission event the mark goes on the object itself (so the first access of
// each file pays, later ones do not). Directory-entry events get none (see below).
//
// Why not the directory for opens too: a directory ignore mark with FAN_EVENT_ON_CHILD makes
// the kernel look up the parent and snapshot the name on every open in that directory; on
// this machine that cost 1.25× an open without listener, the per-file mark 1.13×
// (bench/ignore.sh).
func (b *Backend) maybeIgnore(k int, ev *engine.Event, v *view) {
	fv := v.fs[ev.Inode.Hi]
	if fv == nil || len(fv.roots) == 0 || fv.rootOnly || fv.subtreeOnly[k] == 0 || ev.Path == "" {
		return
	}
	if ev.Ancestors == nil || ev.AncestryUnknown {
		return // ancestry unknown: never ignore on a guess
	}
	for _, a := range ev.Ancestors {
		if fv.roots[a] {
			return
		}
	}
	req := ignoreRequest{k: k, fs: fv.state, mask: fv.subtreeOnly[k], gen: fv.ignGen}
	switch {
	case k == kFD:
		// The object itself; with OnDir for a directory's own events.
		if fv.roots[ev.Inode] || fv.eocDirs[ev.Parent] || fv.inodeDirs[ev.Parent] > 0 {
			return
		}
		req.target, req.path = ev.Inode, ev.Path
		if ev.Mask&engine.OnDir != 0 {
			req.mask |= uint64(engine.OnDir)
		}
	default:
		// Not for directory-entry events: an ignore mark on a directory outside every subtree
		// would stay until the backend read that directory's move into a subtree, and the
		// entries created there in the meantime would be lost. The FID group's events
		// outside subtrees cost the reader, not the processes that cause them.
		return
	}
	select {
	case b.janitor <- req:
	default: // the janitor is behind: the next event will ask again
	}
}

// ignoreRequest asks the janitor to install an ignore mark.
type ignoreRequest struct {
	k      int
	fs     *fsState
	target engine.ID // the object or directory to mark
	path   string
	mask   uint64
	gen    uint64
	eoc    bool // also ignore the directory's children's events
}

// runJanitor installs ignore marks off the reading goroutines.
func (b *Backend) runJanitor() {
	defer b.wg.Done()
	for r := range b.janitor {
		b.installIgnore(r)
	}
}

func (b *Backend) installIgnore(r ignoreRequest) {
	b.mu.Lock()
	g := b.group(r.k)
	b.mu.Unlock()
	if g == nil {
		return
	}
	fs := r.fs
	fs.ignMu.Lock()
	defer fs.ignMu.Unlock()
	if fs.ignGen.Load() != r.gen {
		return // decided before marks changed: the decision may be wrong now
	}
	if _, ok := fs.ignored[r.k][r.target]; ok {
		return
	}
	mask := r.mask
	if r.eoc {
		mask |= uint64(engine.EventOnChild)
	}
	// Open the object once, so that the mark and the handle that takes it off again name the
	// same inode even if the path changes meanwhile.
	fd, err := sys.Open(r.path, sys.O_PATH|sys.O_NOFOLLOW, 0)
	if err != nil {
		return
	}
	defer sys.Close(fd)
	st, err := sys.Fstat(fd)
	if err != nil || inodeID(st.Dev, st.Ino) != r.target {
		return // the path names another object now
	}
	h, _, err := sys.NameToHandleAt(fd, "", sys.AT_EMPTY_PATH)
	if err != nil {
		return // without a handle the mark could not be taken off reliably
	}
	err = sys.FanotifyMark(g.fd, sys.FAN_MARK_ADD|sys.FAN_MARK_IGNORE_SURV|sys.FAN_MARK_EVICTABLE,
		mask, sys.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd))
	if err != nil {
		if !errorsIsAny(err, syscall.ENOENT, syscall.ENOTDIR, syscall.EEXIST) {
			b.log.Debug("ignore mark", "path", r.path, "err", err)
		}
		return
	}
	fs.ignored[r.k][r.target] = ignoreEntry{handle: h, mask: mask}
	b.stats.IgnoreMarks.Add(1)
}

// ignoreEntry is an ignore mark the backend put: what it ignores, and the object's handle to
// take it off again (a path may have changed by then).
type ignoreEntry struct {
	handle sys.FileHandle
	mask   uint64
}

// dropIgnoreMarks removes every ignore mark on fs (a subtree was added, or a directory moved).
// Needs no lock but fs.ignMu's order (after Backend.mu if held).
func (b *Backend) dropIgnoreMarks(fs *fsState) {
	fs.ignMu.Lock()
	defer fs.ignMu.Unlock()
	fs.ignGen.Add(1)
	for k := kFD; k <= kFID; k++ {
		g := b.group(k)
		for target, e := range fs.ignored[k] {
			if g != nil {
				b.removeIgnore(g, fs, e)
			}
			delete(fs.ignored[k], target)
		}
	}
}

// dropIgnoreMark removes the ignore marks on one object.
func (b *Backend) dropIgnoreMark(fs *fsState, target engine.ID) {
	fs.ignMu.Lock()
	defer fs.ignMu.Unlock()
	fs.ignGen.Add(1)
	for k := kFD; k <= kFID; k++ {
		if e, ok := fs.ignored[k][target]; ok {
			if g := b.group(k); g != nil {
				b.removeIgnore(g, fs, e)
			}
			delete(fs.ignored[k], target)
		}
	}
}

// removeIgnore takes exactly the ignore bits it put off the object (the kernel refuses bits
// the mark cannot hold with EINVAL, and bits it does not hold with ENOENT).
func (b *Backend) removeIgnore(g *kgroup, fs *fsState, e ignoreEntry) {
	if fs.anchor < 0 {
		return
	}
	fd, err := sys.OpenByHandleAt(fs.anchor, e.handle, sys.O_PATH)
	if err != nil {
		return // gone, or evicted: its marks went with it
	}
	defer sys.Close(fd)
	err = sys.FanotifyMark(g.fd, sys.FAN_MARK_REMOVE|sys.FAN_MARK_IGNORE, e.mask, sys.AT_FDCWD,
		"/proc/self/fd/"+strconv.Itoa(fd))
	if err != nil && !errorsIsAny(err, syscall.ENOENT) {
		b.log.Warn("removing an ignore mark", "err", err)
	}
}

// cachedVerdict is a kernel ignore mark that remembers an allow: enough to find the inode
// again by handle and take the mark off.
type cachedVerdict struct {
	dev    uint64
	handle sys.FileHandle
	mask   uint64
}

// maxCached bounds the verdict cache's bookkeeping; past it, allows are not cached.
const maxCached = 1 << 20

// cacheVerdict installs an evictable ignore mark for the event's inode and permission event,
// so that later accesses skip userspace until the file is modified (the mark does not survive
// modification) or evicted.
func (b *Backend) cacheVerdict(p *permEvent, ev *engine.Event) {
	mask := uint64(ev.Mask & engine.PermissionEvents)
	key := ev.Inode.Hi*0x9e3779b97f4a7c15 ^ ev.Inode.Lo
	b.cacheMu.Lock()
	_, dup := b.cached[key]
	full := len(b.cached) >= maxCached
	b.cacheMu.Unlock()
	if full {
		return
	}
	// The handle first: without it the mark could never be taken off again.
	h, _, err := sys.NameToHandleAt(int(p.fd), "", sys.AT_EMPTY_PATH)
	if err != nil {
		return
	}
	path := "/proc/self/fd/" + strconv.Itoa(int(p.fd))
	if err := sys.FanotifyMark(p.g.fd, sys.FAN_MARK_ADD|sys.FAN_MARK_IGNORE|sys.FAN_MARK_EVICTABLE, mask, sys.AT_FDCWD, path); err != nil {
		return // e.g. EEXIST: the inode has a real mark in this group
	}
	b.cacheMu.Lock()
	c := b.cached[key]
	c.dev, c.handle, c.mask = ev.Inode.Hi, h, c.mask|mask
	b.cached[key] = c
	b.cacheMu.Unlock()
	if !dup {
		b.stats.VerdictCached.Add(1)
	}
}

// FlushVerdictCache forgets every cached allow (call it when the policy changes): later
// accesses are decided again.
func (b *Backend) FlushVerdictCache() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushVerdictCacheLocked()
}

// flushVerdictCacheLocked takes every verdict-cache ignore mark off. Needs b.mu (for the
// filesystems' anchors).
func (b *Backend) flushVerdictCacheLocked() {
	b.cacheMu.Lock()
	cached := b.cached
	b.cached = make(map[uint64]cachedVerdict)
	b.cacheMu.Unlock()
	g := b.fdGroup
	if g == nil {
		return
	}
	for _, c := range cached {
		fs := b.fss[c.dev]
		if fs == nil || fs.anchor < 0 {
			continue
		}
		fd, err := sys.OpenByHandleAt(fs.anchor, c.handle, sys.O_PATH)
		if err != nil {
			continue // gone: its marks went with it
		}
		err = sys.FanotifyMark(g.fd, sys.FAN_MARK_REMOVE|sys.FAN_MARK_IGNORE, c.mask, sys.AT_FDCWD,
			"/proc/self/fd/"+strconv.Itoa(fd))
		if err != nil && !errorsIsAny(err, syscall.ENOENT) {
			b.log.Debug("taking a cached verdict off", "err", err)
		}
		sys.Close(fd)
	}
}

func errorsIsAny(err error, errnos ...syscall.Errno) bool {
	for _, e := range errnos {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// parentCache maps a file to its directory while the file's ctime stands still.
type parentCache struct {
	mu sync.Mutex
	m  map[engine.ID]parentEntry
}

type parentEntry struct {
	ctime  int64
	parent engine.ID
}

func (c *parentCache) get(id engine.ID, ctime int64) (engine.ID, bool) {
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	return e.parent, ok && e.ctime == ctime
}

func (c *parentCache) put(id engine.ID, ctime int64, parent engine.ID) {
	c.mu.Lock()
	if c.m == nil || len(c.m) >= 1<<16 {
		c.m = make(map[engine.ID]parentEntry) // bounded: start over
	}
	c.m[id] = parentEntry{ctime: ctime, parent: parent}
	c.mu.Unlock()
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
// it, so directories are cached with ctime 0.
type chainCache struct {
	mu sync.Mutex
	m  map[engine.ID]chainEntry
}

type chainEntry struct {
	ctime int64
	mnt   uint64 // the walk up ends at the root of this mount
	gen   uint64
	chain []engine.ID // shared, never modified
	path  string      // a deep directory's (see translateFD)
}

func (c *chainCache) get(id engine.ID, ctime int64, mnt, gen uint64) (chainEntry, bool) {
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	return e, ok && e.ctime == ctime && e.mnt == mnt && e.gen == gen && len(e.chain) > 0
}

func (c *chainCache) put(id engine.ID, e chainEntry) {
	c.mu.Lock()
	if c.m == nil || len(c.m) >= 1<<16 {
		c.m = make(map[engine.ID]chainEntry)
	}
	c.m[id] = e
	c.mu.Unlock()
}
