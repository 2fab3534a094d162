//go:build linux

package backend

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// Name marks: evictable ignore marks that stand for a decision about a name (the FD group's
// for permission events, and the FID group's for notification events where it reports them).
//
// Two shortcuts put an ignore mark on an inode (FAN_MARK_IGNORE|FAN_MARK_EVICTABLE): the
// outside-ignore marks (an object outside every subtree: nobody wants its events) and the
// verdict cache (every group allowed the access and said it may be remembered). Both decisions
// depend on the object's name, the kernel keys the mark by inode, and rename(2) and link(2)
// give an inode a new name without any event that could wait for us. So a name mark is placed
// only on an object whose names no untrusted (non-root) user can change — a pinned object
// (pinnedChain) — and the backend drops it as soon as its FID reader sees root change a name
// it depends on (nameChanged). docs/security.md ("Evictable ignore marks and the verdict
// cache") states the invariants and the tests that prove them.

// nameWatchBits are what the FID group's filesystem mark reports on every filesystem that has
// name marks or subtrees: every event that gives an object another name (moves, links, which
// come as CREATE of an existing inode), takes one away (for the directory caches) or changes
// who may change names (ATTRIB: chmod, chown, ACLs), for files and directories.
const nameWatchBits = engine.MovedFrom | engine.MovedTo | engine.Create | engine.Delete | engine.Attrib | engine.OnDir

// maxChainDepth bounds the walk up to the filesystem root; deeper objects get no name marks.
const maxChainDepth = 2048

// nameMark is one object's ignore bits, by group and purpose: the outside-ignore marks and
// the verdict cache may share an inode (the FD group's kernel mark holds their union).
type nameMark struct {
	handle    sys.FileHandle
	key       string // handleKey(handle): how fid records name the object
	ignore    uint64 // outside every subtree (the FD group: permission events)
	fidIgnore uint64 // outside every subtree (the FID group: notification events)
	cache     uint64 // cached allows (the FD group)
}

// bits returns the ignore bits the object has in each kernel group (kFD, kFID).
func (m *nameMark) bits() [2]uint64 { return [2]uint64{m.ignore | m.cache, m.fidIgnore} }

// Purposes of name marks.
const (
	purposeIgnore = 1 << iota
	purposeCache
	purposeAll = purposeIgnore | purposeCache
)

// trustedDir is a directory found pinned up to the filesystem root (owned by root, not
// writable by group or others, no access ACL, and so is every directory above it), valid
// while its ctime stands still and no name event dropped the cache (nameChanged).
type trustedDir struct {
	ctime int64
	chain []engine.ID // the directory and those above it, up to the filesystem root (shared)
}

// nameRemoval is an ignore mark to take bits off (in each kernel group), outside the lock.
type nameRemoval struct {
	handle sys.FileHandle
	bits   [2]uint64
}

// pinnedChain reports whether no untrusted user can give the object of fd another name, and
// returns its directory chain (its parent first, up to the filesystem root). st is the
// object's statx through fd; path must name it in this mount namespace.
//
// The object is pinned when: a non-directory is owned by root, not writable by group or
// others, has no access ACL and one link, and fs.protected_hardlinks is 1 (so no untrusted
// user may link it: may_linkat needs ownership, or read and write access); and every
// directory from its parent up to the root of the FILESYSTEM (not only of the mount: another
// mount of the same filesystem may show directories this mount hides) is owned by root, not
// writable by group or others, and has no access ACL (so nobody but root can rename or
// remove entries in them, or move them: moving a directory needs write access to its parent).
// The walk goes by ".." from descriptors, never crossing a mount: it follows the dentry's
// real parents, whatever mount or namespace the path came from.
func (b *Backend) pinnedChain(fs *fsState, fd int, st sys.Stat, path string) ([]engine.ID, bool) {
	if fs.rootIno == 0 || !filepath.IsAbs(path) || path == "/" {
		return nil, false
	}
	if !st.IsDir() {
		if st.Uid != 0 || st.Mode&0o022 != 0 || st.Nlink != 1 || !b.hardlinksProtected.Load() {
			return nil, false
		}
		if acl, err := sys.HasAccessACL(fd); err != nil || acl {
			return nil, false
		}
	}
	pfd, err := sys.Open(filepath.Dir(path), sys.O_PATH|sys.O_DIRECTORY, 0)
	if err != nil {
		return nil, false
	}
	defer func() { sys.Close(pfd) }()
	// The directory must hold the object under its name on the object's own mount: then it
	// is the object's dentry parent (a file with one link and a directory have one name).
	cst, err := sys.Statx(pfd, filepath.Base(path), sys.AT_SYMLINK_NOFOLLOW)
	if err != nil || cst.Dev != st.Dev || cst.Ino != st.Ino || cst.MntID != st.MntID {
		return nil, false
	}
	type fresh struct {
		id    engine.ID
		ctime int64
		key   string
		at    int // its index in chain
	}
	var chain []engine.ID
	var news []fresh
	for depth := 0; ; depth++ {
		if depth > maxChainDepth {
			return nil, false
		}
		dst, err := sys.Fstat(pfd)
		if err != nil || dst.Dev != st.Dev {
			return nil, false
		}
		id := inodeID(dst.Dev, dst.Ino)
		if t, ok := fs.trustedDir(id, dst.Ctime); ok {
			chain = append(chain, t.chain...)
			break
		}
		if dst.Uid != 0 || dst.Mode&0o022 != 0 {
			return nil, false
		}
		if acl, err := sys.HasAccessACL(pfd); err != nil || acl {
			return nil, false
		}
		h, _, err := sys.NameToHandleAt(pfd, "", sys.AT_EMPTY_PATH)
		if err != nil {
			return nil, false // a fid record could not name it: its moves would go unseen
		}
		news = append(news, fresh{id: id, ctime: dst.Ctime, key: handleKey(h), at: len(chain)})
		chain = append(chain, id)
		if dst.MountRoot {
			if dst.Ino != fs.rootIno {
				// The root of a mount of a directory below the filesystem's root: what is
				// above it is out of this mount's sight. No mark.
				return nil, false
			}
			break
		}
		next, err := sys.OpenParent(pfd)
		if err != nil {
			return nil, false
		}
		sys.Close(pfd)
		pfd = next
	}
	if len(news) > 0 {
		fs.ignMu.Lock()
		full := len(fs.trusted)+len(news) > maxTrustedDirs
		fs.ignMu.Unlock()
		if full {
			// Bounded: forgetting a pinned directory would leave its moves unwatched, so every
			// name mark resting on one goes with the set, and the set refills.
			b.dropNameMarks(fs, engine.ID{}, purposeAll)
		}
		fs.ignMu.Lock()
		for _, n := range news {
			fs.rememberTrustedLocked(n.id, n.key, trustedDir{ctime: n.ctime, chain: chain[n.at:]})
		}
		fs.ignMu.Unlock()
	}
	return chain, true
}

// trustedDir returns the cached trust of directory id, if its ctime still matches.
func (fs *fsState) trustedDir(id engine.ID, ctime int64) (trustedDir, bool) {
	fs.ignMu.Lock()
	t, ok := fs.trusted[id]
	fs.ignMu.Unlock()
	return t, ok && t.ctime == ctime
}

// maxTrustedDirs bounds the pinned directories remembered per filesystem.
const maxTrustedDirs = 1 << 16

// rememberTrustedLocked records a pinned directory. Needs fs.ignMu.
func (fs *fsState) rememberTrustedLocked(id engine.ID, key string, t trustedDir) {
	fs.trusted[id] = t
	fs.trustedKeys[key] = struct{}{}
}

// takeNameMarksLocked takes the given purposes off every name mark on fs (all objects when id
// is zero), bumps the mark generation (a mark decided before is never recorded after) and
// returns what to remove from the kernel. Needs fs.ignMu.
func (fs *fsState) takeNameMarksLocked(id engine.ID, purposes int) []nameRemoval {
	fs.markGen.Add(1)
	var out []nameRemoval
	take := func(id engine.ID, m *nameMark) {
		before := m.bits()
		if purposes&purposeIgnore != 0 {
			m.ignore, m.fidIgnore = 0, 0
		}
		if purposes&purposeCache != 0 {
			m.cache = 0
		}
		after := m.bits()
		if gone := [2]uint64{before[kFD] &^ after[kFD], before[kFID] &^ after[kFID]}; gone != ([2]uint64{}) {
			out = append(out, nameRemoval{handle: m.handle, bits: gone})
		}
		if after == ([2]uint64{}) {
			delete(fs.nameMarks, id)
			delete(fs.nameKeys, m.key)
		}
	}
	if !id.IsZero() {
		if m := fs.nameMarks[id]; m != nil {
			take(id, m)
		}
		return out
	}
	for id, m := range fs.nameMarks {
		take(id, m)
	}
	if purposes == purposeAll {
		clear(fs.trusted)
		clear(fs.trustedKeys)
	}
	return out
}

// dropNameMarks takes purposes off the name marks on fs (one object, or all when id is zero).
// It returns once no mark decided before the drop can remain: placements in flight have
// recorded their mark (then it is taken here too) or taken it off themselves.
func (b *Backend) dropNameMarks(fs *fsState, id engine.ID, purposes int) {
	fs.ignMu.Lock()
	rm := fs.takeNameMarksLocked(id, purposes)
	for fs.placing > 0 {
		fs.placed.Wait()
		rm = append(rm, fs.takeNameMarksLocked(id, purposes)...)
	}
	fs.ignMu.Unlock()
	b.removeNameMarks(fs, rm)
}

// placingDone ends a placement that recorded nothing.
func (fs *fsState) placingDone() {
	fs.ignMu.Lock()
	fs.placing--
	fs.placed.Broadcast()
	fs.ignMu.Unlock()
}

// removeNameMarks takes ignore bits off objects in the kernel (exactly the bits the backend
// put: the kernel refuses bits a mark cannot hold with EINVAL, and bits it does not hold with
// ENOENT).
func (b *Backend) removeNameMarks(fs *fsState, rm []nameRemoval) {
	if len(rm) == 0 || fs.anchor < 0 {
		return
	}
	for _, r := range rm {
		fd, err := sys.OpenByHandleAt(fs.anchor, r.handle, sys.O_PATH)
		if err != nil {
			continue // gone, or evicted: its marks went with it
		}
		for k, bits := range r.bits {
			g := b.kgroupOf(k)
			if bits == 0 || g == nil {
				continue
			}
			err = sys.FanotifyMark(g.fd, sys.FAN_MARK_REMOVE|sys.FAN_MARK_IGNORE, bits, sys.AT_FDCWD,
				"/proc/self/fd/"+strconv.Itoa(fd))
			if err != nil && !errorsIsAny(err, syscall.ENOENT) {
				b.log.Warn("removing an ignore mark", "group", g.name, "err", err)
			}
		}
		sys.Close(fd)
	}
}

// kgroupOf returns kernel group k (kFD, kFID) for the janitor and the readers, nil if it was
// never started.
func (b *Backend) kgroupOf(k int) *kgroup {
	if k == kFD {
		if g := b.fdGroupAtomic.Load(); g != nil {
			return &g.kgroup
		}
		return nil
	}
	if g := b.fidGroupAtomic.Load(); g != nil {
		return &g.kgroup
	}
	return nil
}

// dropAllNameMarks drops every name mark on every filesystem (the backend may have missed a
// name change: the FID queue overflowed, fs.protected_hardlinks was turned off).
func (b *Backend) dropAllNameMarks() {
	v := b.view.Load()
	for _, fv := range v.fs {
		fv.state.dirGen.Add(1)
		b.dropNameMarks(fv.state, engine.ID{}, purposeAll)
	}
}

// placeNameMark puts ignore bits on the object of fd in kernel group k for a purpose (the
// cache: kFD only), if the decision behind it still stands: no name mark was dropped on fs
// since gen was read (and, for the cache, no flush since cacheGen), and the object's ctime is
// still ctime (a rename, link, chmod or write moves it). It reports whether the mark is in
// place.
func (b *Backend) placeNameMark(fs *fsState, fd int, id engine.ID, purpose, k int, bits uint64, surv bool,
	gen, cacheGen uint64, ctime int64) bool {
	g := b.kgroupOf(k)
	if g == nil || fs.anchor < 0 {
		return false
	}
	// The handle first: without it the mark could never be taken off again.
	h, _, err := sys.NameToHandleAt(fd, "", sys.AT_EMPTY_PATH)
	if err != nil {
		return false
	}
	flags := uint(sys.FAN_MARK_ADD | sys.FAN_MARK_IGNORE | sys.FAN_MARK_EVICTABLE)
	if surv {
		flags = sys.FAN_MARK_ADD | sys.FAN_MARK_IGNORE_SURV | sys.FAN_MARK_EVICTABLE
	}
	stale := func() bool {
		return fs.markGen.Load() != gen || (purpose == purposeCache && b.cacheGen.Load() != cacheGen)
	}
	// In flight from here until the mark is recorded or taken off again: a drop meanwhile
	// waits for it (placingDone), so that no mark it could not see outlives it.
	fs.ignMu.Lock()
	if stale() {
		fs.ignMu.Unlock()
		return false
	}
	fs.placing++
	fs.ignMu.Unlock()
	if err := sys.FanotifyMark(g.fd, flags, bits, sys.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd)); err != nil {
		if !errorsIsAny(err, syscall.ENOENT, syscall.ENOTDIR, syscall.EEXIST, syscall.EISDIR) {
			b.log.Debug("ignore mark", "err", err)
		}
		fs.placingDone()
		return false // e.g. EEXIST: the inode has a real mark in this group
	}
	key := handleKey(h)
	fs.ignMu.Lock()
	if stale() {
		fs.ignMu.Unlock()
		b.removeNameMarks(fs, b.unrecorded(fs, id, h, k, bits))
		fs.placingDone()
		return false
	}
	m := fs.nameMarks[id]
	if m != nil && m.key != key {
		// A record of an earlier inode with this number (deleted since): its mark went with it.
		delete(fs.nameKeys, m.key)
		delete(fs.nameMarks, id)
		m = nil
	}
	if m == nil {
		if len(fs.nameMarks) >= maxNameMarks {
			fs.ignMu.Unlock()
			b.removeNameMarks(fs, b.unrecorded(fs, id, h, k, bits))
			fs.placingDone()
			return false
		}
		m = &nameMark{handle: h, key: key}
		fs.nameMarks[id] = m
		fs.nameKeys[key] = id
	}
	switch {
	case purpose == purposeIgnore && k == kFID:
		m.fidIgnore |= bits
	case purpose == purposeIgnore:
		m.ignore |= bits
	default:
		m.cache |= bits
	}
	fs.placing--
	fs.placed.Broadcast()
	fs.ignMu.Unlock()
	// Recorded first, checked second: a change after the check is seen by nameChanged, which
	// finds the record; a change before it moved the ctime.
	if st, err := sys.Fstat(fd); err != nil || st.Ctime != ctime {
		b.dropNameMarks(fs, id, purpose)
		return false
	}
	return true
}

// unrecorded returns the removal of bits just placed on an object in group k but not
// recorded: only the bits no recorded purpose holds. Takes fs.ignMu.
func (b *Backend) unrecorded(fs *fsState, id engine.ID, h sys.FileHandle, k int, bits uint64) []nameRemoval {
	fs.ignMu.Lock()
	defer fs.ignMu.Unlock()
	if m := fs.nameMarks[id]; m != nil {
		bits &^= m.bits()[k]
	}
	if bits == 0 {
		return nil
	}
	r := nameRemoval{handle: h}
	r.bits[k] = bits
	return []nameRemoval{r}
}

// maxNameMarks bounds the name marks recorded per filesystem; past it, none are placed.
const maxNameMarks = 1 << 20

// nameChanged runs on the FID reader before an event is dispatched: if the event may have
// given an object a new name (a move, a link), taken one away, or changed who may rename
// things (ATTRIB), the name marks that depended on it go — before any consumer hears of the
// event. A directory's event drops every name mark on the filesystem when the directory is in
// the chain of a pinned object (or could be: without a target fid the object is unknown); a
// file's drops its own.
func (b *Backend) nameChanged(fs *fsState, kev *sys.FanotifyEvent, mask engine.Mask) {
	relevant := engine.MovedFrom | engine.MovedTo | engine.Rename | engine.Attrib
	if mask&engine.OnDir == 0 {
		// A link is the CREATE of an existing inode (a new directory is in no chain); DELETE
		// of a marked file (one link) ends its record.
		relevant |= engine.Create | engine.Delete
	}
	if mask&relevant == 0 {
		return
	}
	var key string
	if kev.Records.Has(sys.FAN_EVENT_INFO_TYPE_FID) {
		key = handleKey(kev.FID.Handle)
	}
	fs.ignMu.Lock()
	// What goes: every name mark (all), one object's (id), or none — but a decision in flight
	// may rest on a directory that no recorded chain holds yet, and the generation stops it.
	all, id := false, engine.ID{}
	_, trusted := fs.trustedKeys[key]
	switch {
	case len(fs.nameMarks) == 0 && len(fs.trusted) == 0:
	case key == "", mask&engine.OnDir != 0 && trusted:
		all = true
	default:
		var ok bool
		if id, ok = fs.nameKeys[key]; ok && mask&engine.OnDir == 0 && mask&relevant == engine.Create {
			// A link, or the file's own creation read after its mark was placed (which is no
			// new name). A link left it with two names — unless the other was unlinked
			// since, and then that DELETE, queued behind, drops the mark.
			h := fs.nameMarks[id].handle
			fs.ignMu.Unlock()
			if nlinkOf(fs, h) == 1 {
				return
			}
			fs.ignMu.Lock()
			id = fs.nameKeys[key]
		}
	}
	take := func() []nameRemoval {
		switch {
		case all:
			return fs.takeNameMarksLocked(engine.ID{}, purposeAll)
		case !id.IsZero():
			return fs.takeNameMarksLocked(id, purposeAll)
		}
		fs.markGen.Add(1)
		return nil
	}
	var rm []nameRemoval
	if all || !id.IsZero() || mask&engine.OnDir != 0 {
		rm = take()
		for fs.placing > 0 { // placements in flight end before the event is dispatched
			fs.placed.Wait()
			rm = append(rm, take()...)
		}
	}
	fs.ignMu.Unlock()
	if len(rm) > 0 {
		b.stats.NameMarkDrops.Add(uint64(len(rm)))
	}
	b.removeNameMarks(fs, rm)
}

// nlinkOf returns the link count of the object of handle h on fs (0 if it is gone).
func nlinkOf(fs *fsState, h sys.FileHandle) uint32 {
	if fs.anchor < 0 {
		return 0
	}
	fd, err := sys.OpenByHandleAt(fs.anchor, h, sys.O_PATH)
	if err != nil {
		return 0
	}
	defer sys.Close(fd)
	st, err := sys.Fstat(fd)
	if err != nil {
		return 0
	}
	return st.Nlink
}

// readHardlinksProtected reads fs.protected_hardlinks: true when it is 1 (may_linkat then
// refuses an untrusted user a link to a file it neither owns nor may read and write).
func readHardlinksProtected() bool {
	data, err := os.ReadFile(hardlinksSysctl)
	return err == nil && strings.TrimSpace(string(data)) == "1"
}

// hardlinksSysctl is where fs.protected_hardlinks is read (a variable for the tests, which
// must not change the machine's).
var hardlinksSysctl = "/proc/sys/fs/protected_hardlinks"

// hardlinkPoll is how often the janitor reads fs.protected_hardlinks again: root turning it
// off makes every pinned file linkable, and the name marks go within this bound.
const hardlinkPoll = time.Second

// pollHardlinks re-reads fs.protected_hardlinks; when it is no longer 1, every name mark goes.
func (b *Backend) pollHardlinks() {
	now := readHardlinksProtected()
	if was := b.hardlinksProtected.Swap(now); was && !now {
		b.dropAllNameMarks()
	}
}

// verifyPath returns a path naming the object of fd (stat st) in this process's mount
// namespace, and whether it found one: the descriptor's own path when it resolves back to the
// same inode on the same mount. Else that path may come from another mount namespace (a bind
// mount in a user namespace) and name something else here, or nothing; then, for a directory
// or a file with one link, the object's path through the filesystem's anchor (decoded by
// handle); for a file with more links (decoding may pick another of its names), its name
// under the directory that holds it in the accessing process's namespace (pid's /proc root),
// that directory decoded here. The root of a mount of something below the filesystem's root
// is found by handle only: the directory above its path is where the mount sits, not its
// parent.
//
// checked says the caller found path, by a statx taken after st, to name st's object on st's
// mount (eventPath's onMount): the look this makes first, which is not made again (one statx
// per first-seen object fewer, h30-daemonsys: TestVerifiedPathStatxOnce). A second look
// would prove no more: the path can change after either.
func verifyPath(fs *fsState, fd int, st sys.Stat, path string, pid int32, checked bool) (string, bool) {
	if st.MountRoot && !fs.isRoot(st.Ino) {
		return pathByHandle(fs, fd, st)
	}
	if checked && path != "" {
		return path, true
	}
	if path != "" && len(path) < pathMax {
		if vst, err := sys.Statx(sys.AT_FDCWD, path, sys.AT_SYMLINK_NOFOLLOW); err == nil &&
			vst.Dev == st.Dev && vst.Ino == st.Ino && vst.MntID == st.MntID {
			return path, true
		}
	}
	if p, ok := pathByHandle(fs, fd, st); ok {
		return p, true
	}
	if pid <= 0 || st.IsDir() || !filepath.IsAbs(path) || path == "/" || len(path) >= pathMax {
		return "", false
	}
	dfd, err := sys.Open("/proc/"+strconv.Itoa(int(pid))+"/root"+filepath.Dir(path), sys.O_PATH|sys.O_DIRECTORY, 0)
	if err != nil {
		return "", false
	}
	defer sys.Close(dfd)
	base := filepath.Base(path)
	cst, err := sys.Statx(dfd, base, sys.AT_SYMLINK_NOFOLLOW)
	if err != nil || cst.Dev != st.Dev || cst.Ino != st.Ino || cst.MntID != st.MntID || cst.MountRoot {
		return "", false
	}
	dst, err := sys.Fstat(dfd)
	if err != nil {
		return "", false
	}
	dir, ok := pathByHandle(fs, dfd, dst)
	if !ok {
		return "", false
	}
	p := filepath.Join(dir, base)
	if vst, err := sys.Statx(sys.AT_FDCWD, p, sys.AT_SYMLINK_NOFOLLOW); err != nil || vst.Dev != st.Dev || vst.Ino != st.Ino {
		return "", false
	}
	return p, true
}

// pathByHandle returns the path of the object of fd (stat st) through fs's anchor, decoded by
// its handle: for a directory its one dentry, connected up to the filesystem root; for a file
// with one link its one dentry (held by fd). Others (several links: the alias decoded may be
// another name) have none.
func pathByHandle(fs *fsState, fd int, st sys.Stat) (string, bool) {
	if fs == nil || fs.anchor < 0 || (!st.IsDir() && st.Nlink != 1) {
		return "", false
	}
	h, _, err := sys.NameToHandleAt(fd, "", sys.AT_EMPTY_PATH)
	if err != nil {
		return "", false
	}
	nfd, err := sys.OpenByHandleAt(fs.anchor, h, sys.O_PATH)
	if err != nil {
		return "", false
	}
	defer sys.Close(nfd)
	p, err := sys.FdPath(nfd)
	if err != nil || !filepath.IsAbs(p) {
		return "", false
	}
	p = strings.TrimSuffix(p, " (deleted)")
	vst, err := sys.Statx(sys.AT_FDCWD, p, sys.AT_SYMLINK_NOFOLLOW)
	if err != nil || vst.Dev != st.Dev || vst.Ino != st.Ino {
		return "", false
	}
	return p, true
}

func errorsIsAny(err error, errnos ...syscall.Errno) bool {
	for _, e := range errnos {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
