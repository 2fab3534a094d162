//go:build linux

package backend

import (
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/lockorder"
	"github.com/fsnotifyd/fsnotifyd/internal/paths"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// The inotify fallback (ModeInotify): without CAP_SYS_ADMIN, engine inode and subtree marks run
// on one inotify instance per backend, read by one goroutine.
//
// inotify knows one watch per inode per instance, reports events one directory level up, and
// has no subtree watch. So:
//
//   - An engine inode mark is a watch on its inode; a subtree mark is a watch on every
//     directory of the tree (on the root's filesystem only, as a fanotify filesystem mark),
//     kept up to date from the tree's own directory-entry events. Each watch keeps its
//     reasons (the union of the engine's inode marks, and tree membership), and its kernel
//     mask is the union of what they need.
//   - A directory created in (or moved into) a tree gets its watch first, then a scan that
//     reports a Create for every entry already there, recursively: what appeared before the
//     watch existed is reported by the scan, what appeared after by the kernel — the
//     `mkdir -p a/b/c && touch a/b/c/f` race that makes inotifywait -r miss files. The kernel
//     event for an entry the scan already reported is dropped (see inoWatch.synth). Of a
//     directory moved in from outside every tree, only the entries that may have appeared
//     since the move are reported (scan). What happened to a file before its directory's
//     watch existed cannot be seen: when the scan reports a regular file and the trees ask
//     for content or attribute events, an overflow follows (newDirLocked).
//   - Directories deeper than PATH_MAX are watched and scanned through /proc/self/fd/N/name
//     paths (entryPath); their events carry full paths.
//   - The backend keeps no descriptor on an object marked through inotify (an O_PATH
//     descriptor holds the dentry, and the kernel then reports IN_DELETE_SELF only when it is
//     closed: a deleted watched file would never say so). Watches are added by path, checked
//     against the inode the object was resolved to.
//   - A tree's directory paths are derived from the tree (parent + name), so a rename inside a
//     tree (IN_MOVED_FROM/IN_MOVED_TO with one cookie) moves every path below it at once.
//     Other watches learn their new path from the MOVED_TO of a watched directory; one moved
//     where nothing is watched keeps its old path (inotify does not tell the new one), except
//     a tree's root: its path, and with it every path of its tree, becomes unknown (""), and
//     nothing is looked up through it (adriftLocked) — the old path may name another
//     directory by then.
//   - inotify reports an event on a child twice when the child and its directory are both
//     watched: on the directory's watch (with the name) and on the child's own, in that order
//     (fsnotify_handle_event queues the parent's first). The engine wants one event with
//     Inode, Parent and Ancestors; so the directory's report becomes the engine event, and
//     the child's own report that follows it is dropped (inotifyGroup.skip).
//   - A MOVED_FROM/MOVED_TO pair becomes, besides the two directory-entry events, one Rename
//     event (FAN_RENAME's), before the MOVED_FROM when both are in one read, else before the
//     MOVED_TO.
//   - IN_Q_OVERFLOW becomes an engine overflow in every group with marks, and the trees are
//     walked again to watch the directories whose creation was lost.
//
// What inotify cannot give: the pid, exec opens apart from other opens (a mark for OpenExec
// only sees nothing), events on files of a tree whose directory is not reachable through
// it, and the backend's own directory scans are seen as opens, reads and closes of those
// directories (by groups that ask for such events on directories).

// treeBits are the kernel events every directory of a tree needs, whatever the engine's marks
// ask for: entries appearing (new directories need watches), leaving (paths and the scan
// bookkeeping) and the directory moving.
const treeBits = sys.IN_CREATE | sys.IN_MOVED_FROM | sys.IN_MOVED_TO | sys.IN_DELETE | sys.IN_MOVE_SELF

// inotifyGroup is the backend's inotify instance and the state of its watches.
type inotifyGroup struct {
	b    *Backend
	file *os.File
	rc   syscall.RawConn
	done chan struct{} // closed when the reader returns

	closeOnce sync.Once

	// mu guards everything below. Lock order: Backend.mu (held by the MaskHook) before mu;
	// the reader takes only mu, and never holds it while dispatching.
	mu      lockorder.Mutex // lockInotify
	byWd    map[int32]*inoWatch
	byID    map[engine.ID]*inoWatch
	roots   map[engine.ID]engine.Mask // subtree roots → the engine's union on them
	subMask engine.Mask               // union of roots
	// skip counts child events reported through a watched directory whose second report, on
	// the child's own watch, is still to come and must be dropped.
	skip map[skipKey]int
	// moves remembers recent MOVED_FROMs by cookie (like fsnotify's ring: a MOVED_FROM whose
	// MOVED_TO never comes must not leak).
	moves    [16]*inoMove
	nextMove int
	// pendingOut are moves of tree directories whose MOVED_TO has not been read yet. The
	// directory's own MOVE_SELF settles each (movedSelfLocked): the kernel queues a rename's
	// MOVED_FROM, MOVED_TO (to a watched directory) and MOVE_SELF in that order
	// (fsnotify_move), but a read can end between any two of them, and other events can come
	// between them; a MOVE_SELF with no MOVED_TO before it is a move outside every watch.
	pendingOut []*inoMove
	synthed    []*inoWatch // watches with a non-empty synth set
	// quiet is the time taken just before the latest read that found the queue empty (or the
	// instance's creation): every event read after that read was queued after it, so the
	// change it reports happened after quiet (give or take the rename's own microseconds).
	quiet time.Time
	// blinded counts the directories the scans skipped as blind (see inoWatch.blind).
	blinded int
	// stale: a directory was not watched because the tree's path to it was stale (renamed
	// since: addMemberLocked); the trees are walked again once the queue has been read empty,
	// when the renames are read and the paths current (drained).
	stale bool
	// staleN counts the directories not watched or not scanned for a stale path: a scan
	// that met one was incomplete (newDirLocked).
	staleN int

	out []*engine.Event // the reader's, reused by handleBatch (not guarded by mu)
}

// inoWatch is one inotify watch: one inode.
type inoWatch struct {
	wd    int32
	id    engine.ID
	isDir bool
	// path is the absolute path of a watch without parent (a subtree root, an inode mark
	// outside the trees); a tree's other directories derive theirs from parent and name. ""
	// when unknown: the watch moved where no watch saw (see adrift).
	path     string
	parent   *inoWatch
	name     string
	member   bool // in a subtree: a root or below one
	children map[string]*inoWatch
	explicit engine.Mask // union of the engine's inode marks on this inode
	kmask    uint32      // the kernel mask
	// synth holds the entries a scan reported a Create for, until the queue has been read
	// empty once: a kernel IN_CREATE or IN_MOVED_TO for one of them was queued before the
	// scan saw the entry, so it is a repeat.
	synth map[string]struct{}
	// blind: an entry of this directory is a directory the backend may not watch (no
	// permission: inotify_add_watch needs read access): its events are not reported. Set by
	// the scans, which log each such directory they meet (skipBlindLocked).
	blind bool
}

type skipKey struct {
	wd   int32
	mask engine.Mask
}

// inoMove is one MOVED_FROM waiting for its MOVED_TO.
type inoMove struct {
	cookie  uint32
	from    *inoWatch
	name    string
	oldPath string
	isDir   bool
	moved   *inoWatch // the moved directory's watch when it was in a tree
	renamed bool      // the Rename event went out
	out     bool      // the directory was taken out of its tree
}

// overflowEvent marks where a kernel queue overflow sits among the events to dispatch.
var overflowEvent = &engine.Event{Mask: engine.QueueOverflow}

func (w *inoWatch) fullPath() string {
	if w.parent == nil {
		return w.path
	}
	return joinPath(w.parent.fullPath(), w.name)
}

// adriftLocked forgets the path of w, a tree's root, when it no longer names w: w moved
// (its MOVE_SELF) and no MOVED_TO of a watched directory said where. Its old path may name
// nothing, or another directory made there since: the events of w and of its tree go on
// with their path unknown (""), and nothing is looked up through it (entryPath) until a mark
// resolves w again.
func (g *inotifyGroup) adriftLocked(w *inoWatch) {
	if w.parent != nil || w.path == "" || !w.member {
		// A watch outside the trees (an inode mark) keeps its old path, as inotifywait's
		// %w: nothing is looked up below it.
		return
	}
	if st, err := sys.Statx(sys.AT_FDCWD, w.path, sys.AT_SYMLINK_NOFOLLOW); err == nil && inodeID(st.Dev, st.Ino) == w.id {
		return // still there (moved back, or a MOVED_TO told its new path)
	}
	w.path = ""
}

// errPathUnknown: a directory's path is unknown (inotifyGroup.adriftLocked).
var errPathUnknown = errors.New("path unknown: the watched directory above it was moved where no watch saw (watch it again at its new path)")

// joinPath joins a directory's path and an entry's name; "" (unknown) stays "".
func joinPath(dir, name string) string {
	if dir == "" {
		return ""
	}
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// chain returns w's ID and those of the tree directories above it, nearest first: the
// ancestry that lets subtree connectors match.
func chain(w *inoWatch) []engine.ID {
	var ids []engine.ID
	for ; w != nil; w = w.parent {
		ids = append(ids, w.id)
	}
	return ids
}

// inMask maps engine bits onto inotify bits: the event bits share their values, an exec
// open is an open to inotify, and a rename is the pair of moves.
func inMask(m engine.Mask) uint32 {
	in := uint32(m) & sys.IN_ALL_EVENTS
	if m&engine.OpenExec != 0 {
		in |= sys.IN_OPEN
	}
	if m&engine.Rename != 0 {
		in |= sys.IN_MOVE
	}
	return in
}

// startInotifyLocked creates the inotify instance and its reader. Needs b.mu.
func (b *Backend) startInotifyLocked() (*inotifyGroup, error) {
	if b.ino != nil {
		return b.ino, nil
	}
	if b.closed {
		return nil, ErrClosed
	}
	fd, err := sys.InotifyInit(sys.IN_NONBLOCK)
	if err != nil {
		if errors.Is(err, syscall.EMFILE) {
			return nil, fmt.Errorf("%w (too many inotify instances for this user: raise fs.inotify.max_user_instances, or close other watchers)", err)
		}
		return nil, err
	}
	g := &inotifyGroup{
		b:     b,
		file:  os.NewFile(uintptr(fd), "inotify"), // non-blocking: Close unblocks the reader
		done:  make(chan struct{}),
		byWd:  map[int32]*inoWatch{},
		byID:  map[engine.ID]*inoWatch{},
		roots: map[engine.ID]engine.Mask{},
		skip:  map[skipKey]int{},
		quiet: time.Now(),
	}
	g.mu.Init(lockInotify)
	if g.rc, err = g.file.SyscallConn(); err != nil {
		g.file.Close()
		return nil, err
	}
	b.ino = g
	b.wg.Add(1)
	go g.readLoop()
	return g, nil
}

// close closes the instance (the kernel drops its watches) and waits for the reader.
func (g *inotifyGroup) close() {
	if g == nil {
		return
	}
	g.closeOnce.Do(func() {
		g.file.Close()
		<-g.done
	})
}

// registerInotify is Backend.register in inotify mode: it records the object with its path
// (symlinks resolved as the open resolved them) and closes fd, so that nothing pins the
// object's dentry. It takes ownership of fd.
func (b *Backend) registerInotify(fd int, path string, obj engine.Object, st sys.Stat) (Target, error) {
	real, err := sys.FdPath(fd)
	sys.Close(fd)
	if err != nil {
		return Target{}, err
	}
	real = strings.TrimSuffix(real, " (deleted)")
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return Target{}, ErrClosed
	}
	o := b.objects[obj]
	if o == nil {
		o = &object{obj: obj, fd: -1, dev: st.Dev, mntID: st.MntID, isDir: st.IsDir()}
		b.objects[obj] = o
	}
	o.path = real // the newest resolution names it best
	o.refs++
	return Target{Object: obj, Path: path, IsDir: o.isDir}, nil
}

// addWatch and rmWatch go through the RawConn, so that they can never reach a descriptor
// number reused after Close.
func (g *inotifyGroup) addWatch(path string, mask uint32) (int32, error) {
	var wd int
	var err error
	if cerr := g.rc.Control(func(fd uintptr) { wd, err = sys.InotifyAddWatch(int(fd), path, mask) }); cerr != nil {
		return -1, ErrClosed
	}
	return int32(wd), err
}

// Paths beyond PATH_MAX. A tree's directories may be nested deeper than any path a system
// call takes (PATH_MAX, 4,096 bytes: any user who may create directories can nest them), and
// inotify_add_watch has no *at form. So an entry of a tree directory whose full path is too
// long is named through a descriptor of that directory, opened name by name from the nearest
// directory above whose path is short enough: /proc/self/fd/N/name, which every system call
// takes (the kernel follows the magic link to the directory, then looks the name up in it).
// Events still carry the full path, however long.

// entryPath returns a path that names entry name of tree directory w for any system call: its
// full path when shorter than PATH_MAX, else a /proc/self/fd/N/name path; done closes the
// descriptor that path goes through (call it when the path is no longer used).
func (g *inotifyGroup) entryPath(w *inoWatch, name string) (path string, done func(), err error) {
	path = joinPath(w.fullPath(), name)
	if path == "" {
		return "", nil, fmt.Errorf("%s: %w", name, errPathUnknown)
	}
	if len(path) < sys.PathMax {
		return path, func() {}, nil
	}
	fd, err := g.openDirLocked(w)
	if err != nil {
		return "", nil, err
	}
	return sys.ProcFdPath(fd) + "/" + name, func() { sys.Close(fd) }, nil
}

// selfPath is entryPath of w itself: its path, or its parent's descriptor and its name.
func (g *inotifyGroup) selfPath(w *inoWatch) (path string, done func(), err error) {
	if w.parent == nil {
		if w.path == "" {
			return "", nil, errPathUnknown
		}
		return w.path, func() {}, nil
	}
	return g.entryPath(w.parent, w.name)
}

// openDirLocked opens tree directory w (O_PATH), by its path when it is short enough, else
// from its parent's descriptor by its name (never following a symlink put there meanwhile).
// The descriptor is only held for the call that needs it: the backend keeps none (see the top
// of this file).
func (g *inotifyGroup) openDirLocked(w *inoWatch) (int, error) {
	if p := w.fullPath(); p == "" {
		return -1, errPathUnknown
	} else if len(p) < sys.PathMax || w.parent == nil {
		return sys.Open(p, sys.O_PATH|sys.O_DIRECTORY, 0)
	}
	up, err := g.openDirLocked(w.parent)
	if err != nil {
		return -1, err
	}
	defer sys.Close(up)
	return sys.Openat(up, w.name, sys.O_PATH|sys.O_DIRECTORY|sys.O_NOFOLLOW, 0)
}

// gone reports whether err says an object is not (or no longer) where the tree has it.
func gone(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, ErrClosed)
}

func (g *inotifyGroup) rmWatch(wd int32) {
	g.rc.Control(func(fd uintptr) {
		// EINVAL: the kernel removed it already (IN_IGNORED is on its way).
		if err := sys.InotifyRmWatch(int(fd), int(wd)); err != nil && !errors.Is(err, syscall.EINVAL) {
			g.b.log.Warn("removing inotify watch", "err", err)
		}
	})
}

// inotifyMarkLocked is the MaskHook's inotify side: it makes the watches follow the engine's
// union on o. Needs b.mu.
func (b *Backend) inotifyMarkLocked(o *object, fs *fsState, new engine.Mask) error {
	if new&engine.PermissionEvents&^o.union != 0 {
		return fmt.Errorf("%s: permission events: %w", o.path, ErrNeedsPrivilege)
	}
	if o.obj.Kind != engine.KindInode && o.obj.Kind != engine.KindSubtree {
		if new&^o.union == 0 {
			return nil
		}
		return fmt.Errorf("%s: %s watch: %w", o.path, o.obj.Kind, ErrNeedsPrivilege)
	}
	if new == 0 && b.ino == nil {
		return nil
	}
	g, err := b.startInotifyLocked()
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if o.obj.Kind == engine.KindInode {
		return g.setExplicitLocked(o, new)
	}
	return g.setRootLocked(o, new)
}

// want is the kernel mask w needs for its reasons.
func (g *inotifyGroup) want(w *inoWatch) uint32 {
	m := inMask(w.explicit)
	if w.explicit != 0 {
		m |= sys.IN_MOVE_SELF
		if w.isDir {
			// The moves of its entries: watched entries learn their new paths, and pairs
			// become Rename events.
			m |= sys.IN_MOVE
		}
	}
	if w.member {
		m |= inMask(g.subMask) | treeBits
	}
	return m
}

// syncLocked brings w's kernel mask to what it needs, removing the watch when nothing needs
// it any more.
func (g *inotifyGroup) syncLocked(w *inoWatch) error {
	want := g.want(w)
	if want == 0 {
		g.dropLocked(w, true)
		return nil
	}
	if want == w.kmask {
		return nil
	}
	// By path, without following a symlink put there meanwhile; the wd says whether the
	// path still names our inode.
	at, done, err := g.selfPath(w)
	if err != nil {
		return err
	}
	wd, err := g.addWatch(at, want|sys.IN_DONT_FOLLOW)
	done()
	path := w.fullPath() // for the error: its full path, however long
	if err != nil {
		return explainInotifyError(err)
	}
	if wd != w.wd {
		// The path now names another inode (the watched one moved away where we could not
		// see it). The call set that inode's mask: undo it.
		if other := g.byWd[wd]; other != nil {
			other.kmask = want
			g.syncLocked(other)
		} else {
			g.rmWatch(wd)
		}
		return fmt.Errorf("%s: %w (moved while being watched)", path, syscall.ESTALE)
	}
	w.kmask = want
	return nil
}

func explainInotifyError(err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("%w (inotify watch limit reached: raise fs.inotify.max_user_watches, or run as root to use fanotify)", err)
	}
	return err
}

// watchObjectLocked returns the watch of o's inode, creating it if needed.
func (g *inotifyGroup) watchObjectLocked(o *object, grow bool) (*inoWatch, bool, error) {
	if w := g.byID[o.obj.ID]; w != nil {
		if grow && w.parent == nil {
			w.path = o.path // just resolved: newer than what the watch knew
		}
		return w, false, nil
	}
	// IN_MASK_ADD: if the inode is watched already (a tree directory being marked) its mask
	// is not cut.
	wd, err := g.addWatch(o.path, sys.IN_MOVE_SELF|sys.IN_MASK_ADD|sys.IN_DONT_FOLLOW)
	if err != nil {
		return nil, false, explainInotifyError(err)
	}
	if w := g.byWd[wd]; w != nil {
		if w.id == o.obj.ID {
			return w, false, nil
		}
		return nil, false, fmt.Errorf("%s: %w (moved or replaced since it was resolved; add it again)", o.path, syscall.ESTALE)
	}
	if st, err := sys.Statx(sys.AT_FDCWD, o.path, sys.AT_SYMLINK_NOFOLLOW); err != nil || inodeID(st.Dev, st.Ino) != o.obj.ID {
		g.rmWatch(wd)
		return nil, false, fmt.Errorf("%s: %w (moved or replaced since it was resolved; add it again)", o.path, syscall.ESTALE)
	}
	w := &inoWatch{wd: wd, id: o.obj.ID, isDir: o.isDir, path: o.path, kmask: sys.IN_MOVE_SELF}
	g.byWd[wd] = w
	g.byID[w.id] = w
	return w, true, nil
}

func (g *inotifyGroup) setExplicitLocked(o *object, new engine.Mask) error {
	w := g.byID[o.obj.ID]
	if w == nil && new == 0 {
		return nil
	}
	if w != nil && w.parent == nil && new&^o.union != 0 {
		w.path = o.path // a growth comes from AddMark, which just resolved the object
	}
	created := false
	if w == nil {
		var err error
		if w, created, err = g.watchObjectLocked(o, true); err != nil {
			return err
		}
	}
	prev := w.explicit
	w.explicit = new
	if err := g.syncLocked(w); err != nil {
		w.explicit = prev
		if created {
			g.dropLocked(w, true)
		} else {
			g.syncLocked(w)
		}
		return err
	}
	return nil
}

// setRootLocked adds, changes or removes the subtree rooted at o.
func (g *inotifyGroup) setRootLocked(o *object, new engine.Mask) error {
	id := o.obj.ID
	old, had := g.roots[id]
	prevSub := g.subMask
	if new == 0 {
		delete(g.roots, id)
	} else {
		g.roots[id] = new
	}
	g.subMask = 0
	for _, m := range g.roots {
		g.subMask |= m
	}
	var err error
	switch {
	case !had && new != 0:
		err = g.addRootLocked(o)
	case new&^old != 0:
		if w := g.byID[id]; w != nil && w.parent == nil {
			w.path = o.path
		}
	case had && new == 0:
		if w := g.byID[id]; w != nil {
			g.removeRootLocked(w)
		}
	}
	if err == nil && g.subMask != prevSub {
		err = g.syncMembersLocked()
	}
	if err != nil {
		if had {
			g.roots[id] = old
		} else {
			delete(g.roots, id)
			if w := g.byID[id]; w != nil && w.member && w.parent == nil {
				g.removeRootLocked(w)
			}
		}
		g.subMask = prevSub
		g.syncMembersLocked()
	}
	return err
}

// addRootLocked watches the tree below o's directory.
func (g *inotifyGroup) addRootLocked(o *object) error {
	w, created, err := g.watchObjectLocked(o, true)
	if err != nil {
		return err
	}
	wasMember := w.member
	w.member = true
	if err := g.syncLocked(w); err != nil {
		w.member = wasMember
		if created {
			g.dropLocked(w, true)
		}
		return err
	}
	if wasMember {
		return nil // already inside another tree: its directories are watched
	}
	return g.scanLocked(w, nil, false, 0)
}

// removeRootLocked takes the tree rooted at w out, unless w is itself inside another tree.
func (g *inotifyGroup) removeRootLocked(w *inoWatch) {
	if w.parent != nil {
		return // still a member of the tree above
	}
	g.leaveTreeLocked(w)
}

// syncMembersLocked applies a new subtree union to every tree directory.
func (g *inotifyGroup) syncMembersLocked() error {
	var firstErr error
	for _, w := range g.byWd {
		if w.member {
			if err := g.syncLocked(w); err != nil && firstErr == nil && !errors.Is(err, syscall.ENOENT) && !errors.Is(err, errPathUnknown) {
				firstErr = err
			}
		}
	}
	return firstErr
}

// leaveTreeLocked takes w and the directories below it out of their tree (they were moved
// outside it, or its root mark went away). Subtree roots below stay trees of their own;
// directories with inode marks keep their watches with their own paths; the rest are
// unwatched. A subtree root stays one: only its link to the tree above goes.
func (g *inotifyGroup) leaveTreeLocked(w *inoWatch) {
	path := w.fullPath()
	if w.parent != nil && w.parent.children[w.name] == w {
		delete(w.parent.children, w.name)
	}
	w.parent, w.name, w.path = nil, "", path
	if _, root := g.roots[w.id]; root {
		return
	}
	for name, c := range w.children {
		delete(w.children, name)
		c.parent, c.name, c.path = nil, "", joinPath(path, name)
		if _, root := g.roots[c.id]; !root {
			g.leaveTreeLocked(c)
		}
	}
	w.member = false
	g.syncLocked(w)
}

// dropLocked forgets w (and removes its kernel watch with rm).
func (g *inotifyGroup) dropLocked(w *inoWatch, rm bool) {
	if g.byWd[w.wd] != w {
		return
	}
	if rm {
		g.rmWatch(w.wd)
	}
	delete(g.byWd, w.wd)
	if g.byID[w.id] == w {
		delete(g.byID, w.id)
	}
	if w.parent != nil && w.parent.children[w.name] == w {
		delete(w.parent.children, w.name)
	}
	for name, c := range w.children {
		// Only an unmount drops a directory that still has entries: keep what is below
		// with the paths it had.
		c.parent, c.name, c.path = nil, "", joinPath(w.fullPath(), name)
	}
	w.children = nil
	for k := range g.skip {
		if k.wd == w.wd {
			delete(g.skip, k)
		}
	}
	// Its pending moves end with it: no MOVE_SELF of this watch will come.
	g.pendingOut = slices.DeleteFunc(g.pendingOut, func(mv *inoMove) bool { return mv.moved == w })
}

// addMemberLocked watches the directory name in the tree directory parent, however deep
// (entryPath). It returns the watch (nil if it is gone, is no longer a directory or is a mount
// point: a tree stays on its mount — a bind mount of the same filesystem names a directory
// the tree may hold at its own place, and inotify has one watch per inode, so following it
// would move that watch, or make a root its own parent), whether it was not in a tree before, and an error
// when it could not be watched for any other reason (a full watch table, no permission).
func (g *inotifyGroup) addMemberLocked(parent *inoWatch, name string) (*inoWatch, bool, error) {
	path, done, err := g.entryPath(parent, name)
	if err != nil {
		if gone(err) {
			return nil, false, nil
		}
		return nil, false, err
	}
	defer done()
	st, err := sys.Statx(sys.AT_FDCWD, path, sys.AT_SYMLINK_NOFOLLOW)
	if err != nil {
		if gone(err) {
			return nil, false, nil
		}
		return nil, false, err
	}
	if !st.IsDir() || st.Dev != parent.id.Hi || st.MountRoot {
		return nil, false, nil
	}
	mask := inMask(g.subMask) | treeBits
	wd, err := g.addWatch(path, mask|sys.IN_ONLYDIR|sys.IN_DONT_FOLLOW|sys.IN_MASK_ADD)
	if err != nil {
		if gone(err) {
			return nil, false, nil
		}
		return nil, false, explainInotifyError(err)
	}
	// The path must still lead through parent: events are read late, and when a directory
	// of the path was renamed since (its MOVED_FROM still queued), the path may name another
	// directory by now — anyone's who may write there. Then the directory is not watched
	// here (it is gone from where the tree has it): the caller says so, and the trees are
	// walked again once the renames are read (stale, drained).
	// (A directory the user may read but not search cannot be checked so: it is taken as
	// found, unchecked — the one case where the race stays open.)
	if up, err := sys.Statx(sys.AT_FDCWD, path+"/..", sys.AT_SYMLINK_NOFOLLOW); err != nil && !errors.Is(err, syscall.EACCES) ||
		err == nil && inodeID(up.Dev, up.Ino) != parent.id {
		if g.byWd[wd] == nil {
			g.rmWatch(wd)
		}
		g.stale = true
		g.staleN++
		return nil, false, nil
	}
	w := g.byWd[wd]
	if w == nil {
		w = &inoWatch{wd: wd, id: inodeID(st.Dev, st.Ino), isDir: true, kmask: mask}
		g.byWd[wd] = w
		if g.byID[w.id] == nil {
			g.byID[w.id] = w
		}
	}
	fresh := !w.member
	if w.parent != nil && w.parent.children[w.name] == w {
		delete(w.parent.children, w.name)
	}
	if parent.children == nil {
		parent.children = map[string]*inoWatch{}
	}
	parent.children[name] = w
	w.parent, w.name, w.member = parent, name, true
	w.kmask |= mask
	if w.explicit != 0 {
		g.syncLocked(w)
	}
	return w, fresh, nil
}

// scanLocked watches every directory below w: below the directories it adds to the tree, and
// with all below every directory (after an overflow). With sc set, it also reports a Create
// for the entries it finds that may have appeared since the tree last looked (see scan),
// remembering them in synth so that the kernel's own report of one is dropped.
func (g *inotifyGroup) scanLocked(w *inoWatch, sc *scan, all bool, depth int) error {
	if depth > 4096 {
		return nil // a bound on the walk (mount points are not followed: addMemberLocked)
	}
	path, done, err := g.selfPath(w)
	if err != nil {
		if gone(err) {
			return nil // gone already: its deletion is on its way
		}
		return err
	}
	fd, err := sys.Open(path, sys.O_RDONLY|sys.O_DIRECTORY, 0)
	done()
	if err != nil {
		if gone(err) {
			return nil
		}
		return err
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if st, err := sys.Fstat(fd); err != nil || inodeID(st.Dev, st.Ino) != w.id {
		// The path names another directory by now (see addMemberLocked): not w's entries.
		g.stale = true
		g.staleN++
		return nil
	}
	entries, err := f.ReadDir(-1)
	if err != nil {
		if gone(err) {
			return nil // removed while being read (getdents on a dead directory): as above
		}
		return err
	}
	var firstErr error
	w.blind = false
	for _, e := range entries {
		name := e.Name()
		isDir := e.IsDir()
		if sc != nil && sc.reports(fd, name) {
			if w.synth == nil {
				w.synth = map[string]struct{}{}
				g.synthed = append(g.synthed, w)
			}
			w.synth[name] = struct{}{}
			*sc.out = append(*sc.out, g.direntEvent(w, name, engine.Create, isDir, time.Now()))
			if e.Type().IsRegular() {
				sc.files++
			}
		}
		if !isDir || g.prunedLocked(w, name) {
			continue
		}
		c, fresh, err := g.addMemberLocked(w, name)
		if err == nil && c != nil && (fresh || all) {
			err = g.scanLocked(c, sc, all, depth+1)
		}
		if err != nil && !g.skipBlindLocked(w, name, err) && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// prunedLocked says whether directory name of tree directory w is to get no watch
// (Options.Prune): at or below a pruned path, and not at or below a subtree root that is
// itself at or below that path (that root's tree goes on below it).
func (g *inotifyGroup) prunedLocked(w *inoWatch, name string) bool {
	prune := g.b.opts.Prune
	if len(prune) == 0 {
		return false
	}
	path := joinPath(w.fullPath(), name)
	for _, x := range prune {
		if !paths.Within(path, x) {
			continue
		}
		kept := false
		for id := range g.roots {
			if r := g.byID[id]; r != nil {
				if rp := r.fullPath(); paths.Within(rp, x) && paths.Within(path, rp) {
					kept = true
					break
				}
			}
		}
		if !kept {
			return true
		}
	}
	return false
}

// skipBlindLocked says whether err, met watching or scanning directory name of tree directory
// w, is a lack of permission — another user's directory (or one of the user's own, mode
// 000) inside the tree, which the watch goes on without: w is marked blind, the directory is
// logged, and whoever is told of the tree gets an overflow (newDirLocked, blindBelow), never
// a silent loss, nor a tree that cannot be watched at all because someone else made a
// directory in it. Other errors (a full watch table) are the caller's.
func (g *inotifyGroup) skipBlindLocked(w *inoWatch, name string, err error) bool {
	if !errors.Is(err, syscall.EACCES) && !errors.Is(err, syscall.EPERM) {
		return false
	}
	w.blind = true
	g.blinded++
	g.b.log.Warn("not watched: no permission to read this directory; its events are not reported (an overflow says so)",
		"path", joinPath(w.fullPath(), name), "err", err)
	return true
}

// blindBelow reports whether the tree rooted at the inode id has a directory it could not
// watch (inoWatch.blind): a group that marks the tree is told so by an overflow
// (Backend.AddMark).
func (g *inotifyGroup) blindBelow(id engine.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	w := g.byID[id]
	if w == nil || !w.member {
		return false
	}
	var walk func(w *inoWatch, depth int) bool
	walk = func(w *inoWatch, depth int) bool {
		if w.blind {
			return true
		}
		for _, c := range w.children {
			if depth < 4096 && walk(c, depth+1) {
				return true
			}
		}
		return false
	}
	return walk(w, 0)
}

// scan is what the scan of a directory new to a tree reports.
//
// A directory created in a tree (or renamed into it from another of its directories) is new
// with everything in it: every entry found is reported (since is zero). A directory moved in
// from outside every tree brings entries that were created outside, which fanotify does not
// report either (it reports the MOVED_TO alone): only the entries that may have appeared since
// the move — between it and the watch — are reported, those whose birth time (statx btime; the
// change time where the filesystem keeps none) is not older than since, a time before the
// move: the read before the MOVED_TO's that found the queue empty (inotifyGroup.quiet), less
// moveSlack for the filesystem's coarse clock. The rule errs on the side of a repeat: an entry
// made (or, without btime, changed) less than moveSlack before the move, or while the reader
// was behind, is reported again; none made after the move is missed.
type scan struct {
	out   *[]*engine.Event
	since int64 // nanoseconds since the epoch; 0: every entry
	files int   // regular files reported
}

// moveSlack covers the granularity of the filesystem timestamps a moved-in directory's
// entries are judged by: the kernel stamps them from its coarse clock, updated once per tick
// (4 ms at HZ=250, 10 ms at HZ=100), so a stamp may be up to one tick older than the moment
// it records.
const moveSlack = 20 * time.Millisecond

// reports says whether the scan reports entry name of directory dirfd.
func (sc *scan) reports(dirfd int, name string) bool {
	if sc.since == 0 {
		return true
	}
	birth, _, _, err := sys.Birth(dirfd, name, sys.AT_SYMLINK_NOFOLLOW)
	return err != nil || birth >= sc.since // not known: report it (at least once)
}

// direntEvent builds a directory-entry event: Inode is the directory, Name the entry.
func (g *inotifyGroup) direntEvent(w *inoWatch, name string, m engine.Mask, isDir bool, now time.Time) *engine.Event {
	if isDir {
		m |= engine.OnDir
	}
	return &engine.Event{Mask: m, Inode: w.id, Name: name, Path: joinPath(w.fullPath(), name),
		Ancestors: chain(w.parent), Filesystem: fsID(w.id.Hi), Time: now}
}

// readLoop reads the instance until it is closed.
func (g *inotifyGroup) readLoop() {
	b := g.b
	defer b.wg.Done()
	defer close(g.done)
	buf := make([]byte, sys.InotifyReadSize)
	var evs []sys.InotifyEvent
	for {
		var n int
		var rerr error
		err := g.rc.Read(func(fd uintptr) bool {
			before := time.Now()
			n, rerr = sys.Read(int(fd), buf)
			if errors.Is(rerr, syscall.EAGAIN) {
				// The queue is empty: every event of a change made before now has been read.
				g.drained(before)
				return false
			}
			return true
		})
		if err != nil {
			return // closed
		}
		if rerr != nil {
			b.log.Error("reading inotify", "err", rerr)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		evs = evs[:0]
		perr := sys.ParseInotify(buf[:n], func(ev *sys.InotifyEvent) error {
			evs = append(evs, *ev) // names alias buf, which stays put until the next read
			return nil
		})
		if perr != nil {
			b.log.Error("malformed inotify buffer", "err", perr)
		}
		b.stats.OtherEvents.Add(uint64(len(evs)))
		g.handleBatch(evs, time.Now())
	}
}

// drained runs when a read, started at before, found the queue empty. (An empty queue says
// nothing of a rename in progress: its MOVED_TO may not be queued yet. Only the moved
// directory's MOVE_SELF says it is over: movedSelfLocked.)
func (g *inotifyGroup) drained(before time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.quiet = before
	if g.stale {
		g.stale = false
		g.rescanLocked("after a stale path")
	}
	for _, w := range g.synthed {
		w.synth = nil
	}
	g.synthed = g.synthed[:0]
}

// rescanLocked walks every tree again, watching the directories it has no watch for (their
// CREATE was lost, or looked up at a stale path). What they hold is not reported: the
// overflow that went before tells the groups to look for themselves.
func (g *inotifyGroup) rescanLocked(why string) {
	for id := range g.roots {
		if w := g.byID[id]; w != nil && w.member {
			if err := g.scanLocked(w, nil, true, 0); err != nil {
				g.b.log.Error("watching a tree again "+why, "path", w.fullPath(), "err", err)
			}
		}
	}
}

// takeOutLocked takes the directory of an unpaired MOVED_FROM out of its tree: it went
// outside every watch. (Should a MOVED_TO come after all, it is handled as a directory moved
// in: watched and scanned again.)
func (g *inotifyGroup) takeOutLocked(mv *inoMove) {
	if w := mv.moved; w != nil && !mv.renamed && !mv.out && g.byWd[w.wd] == w && w.parent == mv.from {
		mv.out = true
		g.leaveTreeLocked(w)
	}
}

// movedSelfLocked settles the oldest pending move of w, whose rename its MOVE_SELF ends: the
// kernel queued the rename's MOVED_TO before it if the new directory is watched, so a move
// still unpaired went outside every watch. (Renames of one directory are serialized by the
// rename locks, under which the kernel queues all three events: each MOVE_SELF ends the
// oldest move of its directory.)
func (g *inotifyGroup) movedSelfLocked(w *inoWatch) {
	for i, mv := range g.pendingOut {
		if mv.moved == w {
			g.pendingOut = slices.Delete(g.pendingOut, i, i+1)
			g.takeOutLocked(mv)
			return
		}
	}
}

// handleBatch turns one read's events into engine events and dispatches them in order. Only
// the reader calls it: it reuses g.out.
func (g *inotifyGroup) handleBatch(evs []sys.InotifyEvent, now time.Time) {
	g.out = g.dispatch(evs, now, g.out[:0])
}

// dispatch is handleBatch's work, building the engine events in out (empty; returned emptied,
// for reuse).
func (g *inotifyGroup) dispatch(evs []sys.InotifyEvent, now time.Time, out []*engine.Event) []*engine.Event {
	g.mu.Lock()
	for i := range evs {
		out = g.handleLocked(evs, i, out, now)
	}
	g.mu.Unlock()
	b := g.b
	for i, ev := range out {
		out[i] = nil
		if ev == overflowEvent {
			g.overflow()
			continue
		}
		b.eng.Notify(b.ctx, ev)
		ev.Release()
	}
	return out[:0]
}

func (g *inotifyGroup) handleLocked(evs []sys.InotifyEvent, i int, out []*engine.Event, now time.Time) []*engine.Event {
	ev := &evs[i]
	if ev.Mask&sys.IN_Q_OVERFLOW != 0 {
		g.b.stats.KernelOverflows.Add(1)
		out = append(out, overflowEvent)
		// Lost events leave the pairing state unreliable: a stale count would drop a
		// genuine event later, and a pending move's MOVED_TO or MOVE_SELF may be among them:
		// its directory leaves the tree, and the scan below watches it again if it is still
		// in one.
		clear(g.skip)
		pending := g.pendingOut
		g.pendingOut = nil // (dropLocked deletes from it as directories leave)
		for _, mv := range pending {
			g.takeOutLocked(mv)
		}
		// Directories created meanwhile may have no watch: look for them. (What they hold
		// is not reported: the overflow tells the groups to look for themselves.)
		g.rescanLocked("after an overflow")
		return out
	}
	w := g.byWd[ev.Wd]
	if w == nil {
		return out // removed meanwhile
	}
	if ev.Mask&sys.IN_IGNORED != 0 {
		g.dropLocked(w, false)
		return out
	}
	if ev.Mask&sys.IN_UNMOUNT != 0 {
		return out // IN_IGNORED follows
	}
	isDir := ev.Mask&sys.IN_ISDIR != 0
	bits := engine.Mask(ev.Mask & sys.IN_ALL_EVENTS)
	if len(ev.Name) > 0 {
		name := string(ev.Name)
		if d := bits & engine.DirentEvents; d != 0 {
			return g.direntLocked(evs, i, w, name, d, isDir, out, now)
		}
		return g.childLocked(w, name, bits, isDir, out, now)
	}
	return g.selfLocked(w, bits, out, now)
}

// childLocked handles an event on an entry of a watched directory: the engine event of a
// child (Inode the child, Parent the directory).
func (g *inotifyGroup) childLocked(w *inoWatch, name string, bits engine.Mask, isDir bool, out []*engine.Event, now time.Time) []*engine.Event {
	path := joinPath(w.fullPath(), name)
	var id engine.ID
	if c := w.children[name]; c != nil {
		id = c.id
	} else if st, err := g.statEntryLocked(w, name); err == nil {
		id = inodeID(st.Dev, st.Ino)
	} else {
		id = standIn(w.id, name)
	}
	m := bits
	if isDir {
		m |= engine.OnDir
	}
	// The child's own watch reports this event next: that report is this one.
	if c := g.byID[id]; c != nil && c != w && c.kmask&uint32(bits) == uint32(bits) {
		g.skip[skipKey{c.wd, bits}]++
	}
	return append(out, &engine.Event{Mask: m, Inode: id, Parent: w.id, Name: name, Path: path,
		Ancestors: chain(w), Filesystem: fsID(w.id.Hi), Time: now})
}

// statEntryLocked is the statx (not following a symlink) of entry name of tree directory w,
// however deep.
func (g *inotifyGroup) statEntryLocked(w *inoWatch, name string) (sys.Stat, error) {
	path, done, err := g.entryPath(w, name)
	if err != nil {
		return sys.Stat{}, err
	}
	defer done()
	return sys.Statx(sys.AT_FDCWD, path, sys.AT_SYMLINK_NOFOLLOW)
}

// standIn is a stable ID for an entry that is gone: marks are only on registered objects,
// so it matches nothing but the directory's and the trees' marks, which do not need it.
func standIn(dir engine.ID, name string) engine.ID {
	h := fnv.New64a()
	var b [16]byte
	for i := 0; i < 8; i++ {
		b[i] = byte(dir.Hi >> (8 * i))
		b[8+i] = byte(dir.Lo >> (8 * i))
	}
	h.Write(b[:])
	h.Write([]byte(name))
	return engine.ID{Hi: dir.Hi, Lo: h.Sum64() | 1<<62}
}

// selfLocked handles an event on the watched object itself.
func (g *inotifyGroup) selfLocked(w *inoWatch, bits engine.Mask, out []*engine.Event, now time.Time) []*engine.Event {
	if child := bits & engine.PossibleOnChild; child != 0 {
		k := skipKey{w.wd, child}
		if n := g.skip[k]; n > 0 {
			if n == 1 {
				delete(g.skip, k)
			} else {
				g.skip[k] = n - 1
			}
			return out // reported through the directory already
		}
	}
	if bits == 0 {
		return out
	}
	if bits&engine.MoveSelf != 0 && len(g.pendingOut) > 0 {
		// The end of a rename of w: moved outside every watch, w leaves its tree before
		// its MOVE_SELF is placed (no tree sees it: the directory is outside), and the
		// event is dropped with the watch if nothing else kept it.
		g.movedSelfLocked(w)
		if g.byWd[w.wd] != w {
			return out
		}
	}
	m := bits
	if w.isDir {
		m |= engine.OnDir // inotify leaves IN_ISDIR off IN_DELETE_SELF and IN_MOVE_SELF
	}
	out = append(out, &engine.Event{Mask: m, Inode: w.id, Path: w.fullPath(), Ancestors: chain(w.parent),
		Filesystem: fsID(w.id.Hi), Time: now})
	if bits&engine.MoveSelf != 0 {
		g.adriftLocked(w) // after its own event, which names where it was
	}
	return out
}

// direntLocked handles create, delete and moves of an entry of directory w.
func (g *inotifyGroup) direntLocked(evs []sys.InotifyEvent, i int, w *inoWatch, name string, bits engine.Mask,
	isDir bool, out []*engine.Event, now time.Time) []*engine.Event {
	cookie := evs[i].Cookie
	_, synthed := w.synth[name]
	if synthed {
		delete(w.synth, name)
	}
	switch {
	case bits&engine.Create != 0:
		if synthed {
			return out // the scan reported it (and watched and scanned it, if a directory)
		}
		out = append(out, g.direntEvent(w, name, engine.Create, isDir, now))
		if isDir && w.member {
			out = g.newDirLocked(w, name, out, 0)
		}
	case bits&engine.Delete != 0:
		out = append(out, g.direntEvent(w, name, engine.Delete, isDir, now))
	case bits&engine.MovedFrom != 0:
		mv := &inoMove{cookie: cookie, from: w, name: name, oldPath: joinPath(w.fullPath(), name), isDir: isDir}
		if isDir {
			if c := w.children[name]; c != nil {
				mv.moved = c
			}
		}
		g.moves[g.nextMove] = mv
		g.nextMove = (g.nextMove + 1) % len(g.moves)
		// With the MOVED_TO in this read, the Rename goes first, as fanotify's does.
		found := false
		for j := i + 1; j < len(evs); j++ {
			to := &evs[j]
			if to.Mask&sys.IN_MOVED_TO != 0 && to.Cookie == cookie {
				if tw := g.byWd[to.Wd]; tw != nil {
					out = append(out, g.renameEvent(mv, tw, string(to.Name), now))
					mv.renamed = true
					found = true
				}
				break
			}
		}
		out = append(out, g.direntEvent(w, name, engine.MovedFrom, isDir, now))
		if mv.moved != nil && !found {
			g.pendingOut = append(g.pendingOut, mv)
		}
	case bits&engine.MovedTo != 0:
		var mv *inoMove
		for _, m := range g.moves {
			if m != nil && m.cookie == cookie && cookie != 0 {
				mv = m
				break
			}
		}
		if mv != nil && !mv.renamed {
			out = append(out, g.renameEvent(mv, w, name, now))
			mv.renamed = true
		}
		if !synthed {
			out = append(out, g.direntEvent(w, name, engine.MovedTo, isDir, now))
		}
		newPath := joinPath(w.fullPath(), name)
		if st, err := g.statEntryLocked(w, name); err == nil {
			x := g.byID[inodeID(st.Dev, st.Ino)]
			// The directory the tree still has at the old name, found there now, is the one
			// moved, not the one the MOVED_FROM's name led to: a RENAME_EXCHANGE swaps both
			// names before the kernel queues its two moves, so when the second is read the
			// first has put the other directory at its old name already.
			if x != nil && mv != nil && mv.moved != nil && x != mv.moved && x.parent == mv.from && x.name == mv.name {
				mv.moved = x
			}
			// A watch outside the trees (an inode mark) learns its new path here.
			if x != nil && x.parent == nil && (mv == nil || mv.moved != x) {
				x.path = newPath
			}
		}
		if !isDir {
			return out
		}
		if mv != nil && mv.moved != nil && !mv.out && g.byWd[mv.moved.wd] == mv.moved {
			// A move of a tree directory whose watches stay: re-link it; every path below
			// follows.
			x := mv.moved
			if w.member {
				if x.parent != nil && x.parent.children[x.name] == x {
					delete(x.parent.children, x.name)
				}
				if w.children == nil {
					w.children = map[string]*inoWatch{}
				}
				w.children[name] = x
				x.parent, x.name = w, name
			} else {
				x.path = joinPath(w.fullPath(), name)
				g.leaveTreeLocked(x)
			}
		} else if w.member && !synthed {
			// Moved in from outside the trees, or from a tree directory whose watch it did
			// not have yet (renamed before its CREATE was read): then new with all it holds.
			var since int64
			if mv == nil || !mv.from.member {
				since = g.quiet.Add(-moveSlack).UnixNano()
			}
			out = g.newDirLocked(w, name, out, since)
		}
	}
	return out
}

// renameEvent builds FAN_RENAME's event from a MOVED_FROM/MOVED_TO pair: Inode the old
// directory, Target the new one.
func (g *inotifyGroup) renameEvent(mv *inoMove, to *inoWatch, newName string, now time.Time) *engine.Event {
	m := engine.Rename
	if mv.isDir {
		m |= engine.OnDir
	}
	return &engine.Event{Mask: m, Inode: mv.from.id, Target: to.id, Name: mv.name, NewName: newName,
		OldPath: mv.oldPath, Path: joinPath(to.fullPath(), newName), Ancestors: chain(mv.from.parent),
		TargetAncestors: chain(to), Filesystem: fsID(mv.from.id.Hi), Time: now}
}

// newDirLocked watches a directory that appeared in tree directory w, then scans it: a Create
// for each entry in it (recursively) that may have appeared since the tree last looked —
// since the directory's creation (since 0) or its move into the tree (see scan) — as its own
// creation may have preceded the watch.
//
// Only the Creates can be told: of what happened to a file before the watch existed (opened,
// written, read, closed, its attributes changed) nothing is left to see. So when the scan
// reports a regular file and the trees ask for such events, an overflow follows its Creates:
// events may be lost, in band, never in silence. The same when the directory could not be
// watched, or was gone before its watch was added (what happened in it is unknown).
func (g *inotifyGroup) newDirLocked(w *inoWatch, name string, out []*engine.Event, since int64) []*engine.Event {
	if g.prunedLocked(w, name) {
		return out
	}
	c, _, err := g.addMemberLocked(w, name)
	if err != nil {
		if !g.skipBlindLocked(w, name, err) {
			g.b.log.Error("watching a new directory", "path", joinPath(w.fullPath(), name), "err", err)
		}
		return append(out, overflowEvent) // its events are lost: say so
	}
	if c == nil {
		if g.subMask&^engine.OnDir != 0 {
			out = append(out, overflowEvent) // gone before its watch: what happened in it is unknown
		}
		return out
	}
	sc := &scan{out: &out, since: since}
	blinded, staleN := g.blinded, g.staleN
	if err := g.scanLocked(c, sc, false, 0); err != nil {
		g.b.log.Error("watching a new directory", "path", c.fullPath(), "err", err)
		return append(out, overflowEvent)
	}
	if g.blinded != blinded || g.staleN != staleN {
		return append(out, overflowEvent) // a directory in it could not be watched, or read
	}
	if sc.files > 0 && g.subMask&unseenBefore != 0 {
		out = append(out, overflowEvent)
	}
	return out
}

// unseenBefore are the events on a file that a scan cannot reconstruct: what happened to it
// before its directory's watch existed.
const unseenBefore = engine.Open | engine.OpenExec | engine.Access | engine.Modify | engine.Attrib |
	engine.CloseWrite | engine.CloseNoWrite

// overflow tells every engine group with marks that it lost events.
func (g *inotifyGroup) overflow() {
	for _, eg := range g.b.eng.Groups() {
		if len(eg.Marks()) > 0 {
			eg.Overflow()
		}
	}
}
