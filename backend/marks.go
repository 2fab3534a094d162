//go:build linux

package backend

import (
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/lockorder"
	"github.com/fsnotifyd/fsnotifyd/internal/lru"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// Which kernel group reports which events.
const (
	// notifBits are the notification events either kind of group can report: the FID group
	// takes them wherever it can (one queue for all notification events: the kernel's order,
	// see the package doc), the FD group where it cannot (fsState.notifyFID).
	notifBits = engine.Access | engine.Modify | engine.Close | engine.Open | engine.OpenExec
	// fdBits are what an FD-mode group can report (permission events need its permission
	// class).
	fdBits = notifBits | engine.PermissionEvents
	// fidBits need a FID-mode group (FAN_REPORT_DFID_NAME).
	fidBits = engine.Attrib | engine.Create | engine.Delete | engine.Move | engine.DeleteSelf |
		engine.MoveSelf | engine.Rename | engine.FSError
)

const (
	kFD  = 0
	kFID = 1
)

// fsState is what the backend tracks per filesystem (by device).
type fsState struct {
	dev    uint64
	fsid   sys.Fsid
	fd     int // a descriptor on the filesystem for its kernel filesystem marks: the anchor, or a dup
	anchor int // its mount root, opened: for open_by_handle_at (-1 if none)

	handles map[string]registered // handles of registered objects; guarded by Backend.mu
	dirs    map[string]*dirInfo   // the FID reader's directory cache (that goroutine only)
	recent  map[string]string     // handle → path of recent entries (the FID reader's)
	// movedTo: handle → where a MOVED_TO (or RENAME) read last put a registered object, for
	// its MOVE_SELF, queued just after (the FID reader's; taken by that MOVE_SELF).
	movedTo map[string]string
	keyBuf  []byte // the FID reader's scratch handle key (fsState.keyOf)
	// inodes maps handles to the IDs of the objects they name (objectID; the FID reader's),
	// where handleIno cannot read them from the handle.
	inodes *lru.Cache[string, engine.ID]
	// handleIno is where this filesystem's handles hold the inode number (tmpfs, ext2/3/4:
	// sys.HandleInoOf), checked on the first object registered here; the zero value where
	// that is not known (objectID then asks the kernel). Set before the view that holds the
	// filesystem is published (a test changes it under b.mu, then publishes the view again).
	handleIno sys.HandleIno
	orphans   *orphanage // events below directories gone when read (the FID reader's)
	// gone holds, by handle key, directories named by their deletion after they went
	// (orphans.go; the FID reader's; nil until the first).
	gone *lru.Cache[string, *dirInfo]
	// moved finds events a directory's move misplaced (movedaway.go; the FID reader's).
	moved movedAway

	fsMask   engine.Mask               // union of engine filesystem marks
	subtrees map[engine.ID]engine.Mask // subtree roots and their unions
	rootIno  uint64                    // the filesystem root's inode number, 0 if unknown
	mounts   map[uint64]engine.Mask    // engine mount marks on mounts of this filesystem
	eocDirs  map[engine.ID]bool        // directories whose inode marks watch children
	inodeDir map[engine.ID]int         // parents of marked non-directories (no ignore marks there)
	kmask    [2]uint64                 // kernel filesystem mark masks (FD, FID)
	// fidCapable: the kernel can name this filesystem's objects by handle and the backend can
	// open them again (an anchor): its notification events may come from the FID group.
	fidCapable bool
	// notifyFID: the notification events of this filesystem's inode, filesystem and subtree
	// marks come from the FID group, in one queue with its directory-entry events. False on
	// a filesystem that is not fidCapable, and while a mount mark there wants notification
	// events: a FID event does not say through which mount it happened, so mount marks take
	// them from the FD group, and then so do the others (one group per filesystem, so that
	// an event is read once). Guarded by Backend.mu (routeLocked).
	notifyFID bool
	// fidWatched: the FID group's filesystem mark reports this filesystem's moves, links,
	// deletions and attribute changes (nameWatchBits), so caches keyed by its directory
	// generation are sound and name marks may be placed.
	fidWatched bool
	// nameWatch asks for the FID watch on a filesystem without subtrees (for the verdict
	// cache). Guarded by Backend.mu.
	nameWatch bool

	// Name marks (names.go), guarded by ignMu.
	ignMu       lockorder.Mutex          // lockIgnore
	nameMarks   map[engine.ID]*nameMark  // the FD group's ignore marks, by object
	nameKeys    map[string]engine.ID     // the same, by handle key (as fid records name them)
	trusted     map[engine.ID]trustedDir // directories pinned up to the filesystem root
	trustedKeys map[string]struct{}      // the same, by handle key
	// markGen is bumped (under ignMu) whenever name marks are dropped and whenever the view
	// changes: a mark decided before is never recorded after.
	markGen atomic.Uint64
	// placing counts name marks being placed (between the generation check and the record);
	// placed (on ignMu) wakes drops that wait for them.
	placing int
	placed  *sync.Cond
	dirGen  atomic.Uint64 // bumped when a directory moves or is deleted
}

// registered is what the readers know of an object resolved through the backend.
type registered struct {
	id   engine.ID
	path string // at resolve time: the best name left once the object is gone
}

// fsLocked returns the state of the filesystem on dev, creating it with fd's filesystem.
// Needs b.mu.
func (b *Backend) fsLocked(dev uint64, fd int, path string) (*fsState, error) {
	if fs := b.fss[dev]; fs != nil {
		return fs, nil
	}
	st, err := sys.Fstatfs(fd)
	if err != nil {
		return nil, err
	}
	if !sys.RawSafeFs(st.Type) && !b.rawUnsafe.Load() {
		b.rawUnsafe.Store(true) // before any mark here: see rawUnsafe
	}
	rootPath, rootIno := fsRoot(dev)
	anchor := -1
	if rootPath != "" {
		anchor = openRootAnchor(rootPath, dev, rootIno)
	}
	if anchor < 0 {
		anchor = openAnchor(fd, path, dev)
	}
	markFd := anchor
	if markFd < 0 {
		if markFd, err = sys.Dup(fd); err != nil {
			return nil, err
		}
	}
	// A handle for the filesystem's own objects, and an anchor to open them by: the FID
	// group can then report and the backend name this filesystem's notification events.
	h, _, herr := sys.NameToHandleAt(fd, "", sys.AT_EMPTY_PATH)
	// Where the handles hold the inode number, if known, checked on this one (objectID).
	var hino sys.HandleIno
	if herr == nil {
		if fst, err := sys.Fstat(fd); err == nil && fst.Dev == dev {
			hino = sys.CheckedHandleIno(st.Type, h, fst.Ino)
		}
	}
	fs := &fsState{
		dev: dev, fsid: st.Fsid, fd: markFd, anchor: anchor, fidCapable: herr == nil && anchor >= 0,
		subtrees: map[engine.ID]engine.Mask{}, mounts: map[uint64]engine.Mask{},
		eocDirs: map[engine.ID]bool{}, inodeDir: map[engine.ID]int{},
		handles: map[string]registered{}, dirs: map[string]*dirInfo{}, recent: map[string]string{}, movedTo: map[string]string{},
		inodes:    lru.New[string, engine.ID](cacheEntries),
		handleIno: hino,
		rootIno:   rootIno,
	}
	fs.nameMarks, fs.nameKeys = map[engine.ID]*nameMark{}, map[string]engine.ID{}
	fs.trusted, fs.trustedKeys = map[engine.ID]trustedDir{}, map[string]struct{}{}
	fs.ignMu.Init(lockIgnore)
	fs.placed = sync.NewCond(&fs.ignMu)
	fs.notifyFID = fs.fidCapable && b.canFID() // no mount marks yet (routeLocked)
	b.fss[dev] = fs
	return fs, nil
}

// hook is the engine's MaskHook: it makes the kernel marks follow the engine's unions.
func (b *Backend) hook(obj engine.Object, old, new engine.Mask) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	o := b.objects[obj]
	if o == nil || b.closed {
		if new&^old == 0 {
			return nil
		}
		if b.closed {
			return ErrClosed
		}
		return fmt.Errorf("backend: %v was not resolved through the backend (use Backend.AddMark)", obj)
	}
	fs := b.fss[o.dev]
	var err error
	// Growth of a mark that sees more than one object (a mount, a filesystem, a subtree, a
	// directory's children) may want events that outside-ignore marks now hide: they all go
	// once the new view is published (after it, the janitor decides from the new marks).
	dropIgnores := b.mode == ModeFanotify && new&^old != 0 &&
		(obj.Kind != engine.KindInode || o.isDir && new&engine.EventOnChild != 0)
	switch {
	case b.mode == ModeInotify:
		err = b.inotifyMarkLocked(o, fs, new)
	case obj.Kind == engine.KindInode:
		err = b.withObject(o, fs, func(path string) error { return b.markInodeLocked(o, fs, path, new) })
	case obj.Kind == engine.KindMount:
		// Always the FD group: only its events say which mount they came through (routeLocked
		// moves the filesystem's other notification marks there too).
		prev := fs.mounts[o.mntID]
		setMask(fs.mounts, o.mntID, new)
		if err = b.routeLocked(fs); err == nil {
			err = b.withObject(o, fs, func(path string) error {
				return b.setKernelMarkLocked(kFD, sys.FAN_MARK_MOUNT, path, &o.kmasks[kFD], uint64(new&(fdBits|engine.OnDir)))
			})
		}
		if err != nil {
			setMask(fs.mounts, o.mntID, prev)
			b.routeLocked(fs)
		}
	case obj.Kind == engine.KindFilesystem:
		prev := fs.fsMask
		fs.fsMask = new
		if err = b.syncFsLocked(fs); err != nil {
			fs.fsMask = prev
			b.syncFsLocked(fs)
		}
	case obj.Kind == engine.KindSubtree:
		prev, had := fs.subtrees[obj.ID]
		setMask(fs.subtrees, obj.ID, new)
		if err = b.syncFsLocked(fs); err != nil {
			if had {
				fs.subtrees[obj.ID] = prev
			} else {
				delete(fs.subtrees, obj.ID)
			}
			b.syncFsLocked(fs)
		}
	}
	if err != nil {
		return err
	}
	o.union = new
	b.publishViewLocked()
	if dropIgnores {
		// Before returning, so that no event of the grown mark escapes once AddMark returns.
		b.dropNameMarks(fs, engine.ID{}, purposeIgnore)
	}
	if o.fd >= 0 && o.hasHandle && b.mode == ModeFanotify {
		// The kernel marks are in place: let go of the descriptor (it pins the dentry, so the
		// kernel would report the object's deletion only once we closed it); the handle
		// finds the object again for later changes.
		sys.Close(o.fd)
		o.fd = -1
	}
	b.maybeDropLocked(o)
	return nil
}

// withObject calls f with a path naming o: its descriptor while it has one, else a
// descriptor opened again from its handle. An object that is gone (ESTALE) took its kernel
// marks with it: f is not called and its kernel masks are forgotten.
func (b *Backend) withObject(o *object, fs *fsState, f func(path string) error) error {
	fd := o.fd
	if fd < 0 {
		if !o.hasHandle || fs.anchor < 0 {
			o.kmasks = [2]uint64{}
			return nil
		}
		var err error
		if fd, err = sys.OpenByHandleAt(fs.anchor, o.handle, sys.O_PATH); err != nil {
			o.kmasks = [2]uint64{} // gone: the kernel dropped its marks with the inode
			if errors.Is(err, syscall.ESTALE) || errors.Is(err, syscall.ENOENT) {
				return nil
			}
			return err
		}
		defer sys.Close(fd)
	}
	return f("/proc/self/fd/" + strconv.Itoa(fd))
}

func setMask[K comparable](m map[K]engine.Mask, k K, v engine.Mask) {
	if v == 0 {
		delete(m, k)
	} else {
		m[k] = v
	}
}

// kernelMask returns the part of an engine union that kernel group k reports, with the flags:
// notification events from the FID group when notifyFID (see fsState.notifyFID), else from
// the FD group.
func kernelMask(k int, m engine.Mask, notifyFID bool) uint64 {
	bits := fdBits
	switch {
	case k == kFID && notifyFID:
		bits = fidBits | notifBits
	case k == kFID:
		bits = fidBits
	case notifyFID:
		bits = engine.PermissionEvents
	}
	if m&bits == 0 {
		return 0
	}
	return uint64(m & (bits | engine.EventFlags))
}

func (b *Backend) markInodeLocked(o *object, fs *fsState, path string, new engine.Mask) error {
	if new&^o.union != 0 {
		// An outside-ignore mark on the object would hide events from this mark: drop it
		// first (the kernel keeps an ignore mask on an inode mark it upgrades).
		b.dropNameMarks(fs, o.obj.ID, purposeIgnore)
	}
	var firstErr error
	for k := kFD; k <= kFID; k++ {
		want := kernelMask(k, inodeBits(o, new), fs.notifyFID)
		if err := b.setKernelMarkLocked(k, 0, path, &o.kmasks[k], want); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		// Put back what the kernel had.
		for k := kFD; k <= kFID; k++ {
			b.setKernelMarkLocked(k, 0, path, &o.kmasks[k], kernelMask(k, inodeBits(o, o.union), fs.notifyFID))
		}
		return firstErr
	}
	// Directories that must keep reporting their children: no ignore marks there.
	if o.isDir {
		if new&engine.EventOnChild != 0 {
			fs.eocDirs[o.obj.ID] = true
		} else {
			delete(fs.eocDirs, o.obj.ID)
		}
	} else if !o.parent.IsZero() {
		switch {
		case o.union == 0 && new != 0:
			fs.inodeDir[o.parent]++
		case o.union != 0 && new == 0:
			if fs.inodeDir[o.parent]--; fs.inodeDir[o.parent] <= 0 {
				delete(fs.inodeDir, o.parent)
			}
		}
	}
	return nil
}

// syncFsLocked sets the kernel filesystem marks to the union of the engine's filesystem and
// subtree marks on fs. Needs b.mu.
func (b *Backend) syncFsLocked(fs *fsState) error {
	union := fs.fsMask
	for _, m := range fs.subtrees {
		union |= m
	}
	var firstErr error
	defer func() { fs.fidWatched = fs.kmask[kFID]&uint64(nameWatchBits) == uint64(nameWatchBits) }()
	for k := kFD; k <= kFID; k++ {
		want := kernelMask(k, union, fs.notifyFID)
		if k == kFID && (len(fs.subtrees) > 0 || fs.nameWatch) && b.canFID() {
			want |= uint64(nameWatchBits)
		}
		if err := b.setKernelMarkLocked(k, sys.FAN_MARK_FILESYSTEM, markPathFd(fs.fd), &fs.kmask[k], want); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// routeLocked decides which group reports fs's notification events (fsState.notifyFID) and,
// when that changes, moves the bits of every kernel mark on fs to the other group. Needs b.mu.
func (b *Backend) routeLocked(fs *fsState) error {
	want := fs.fidCapable && b.canFID()
	for _, m := range fs.mounts {
		if m&notifBits != 0 {
			want = false
		}
	}
	if want == fs.notifyFID {
		return nil
	}
	fs.notifyFID = want
	var firstErr error
	for _, o := range b.objects {
		if o.dev != fs.dev || o.obj.Kind != engine.KindInode || o.union == 0 {
			continue
		}
		err := b.withObject(o, fs, func(path string) error { return b.markInodeLocked(o, fs, path, o.union) })
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if err := b.syncFsLocked(fs); err != nil && firstErr == nil {
		firstErr = err
	}
	return firstErr
}

func markPathFd(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// inodeBits drops from a non-directory's union what only a directory can report (the kernel
// refuses those bits on a file with ENOTDIR); the engine's mark keeps them, harmlessly.
func inodeBits(o *object, m engine.Mask) engine.Mask {
	if o.isDir {
		return m
	}
	return m &^ (engine.EventOnChild | engine.OnDir | engine.DirentEvents)
}

// setKernelMarkLocked makes kernel group k's mark of type markType on path have mask want
// (cur holds what it has). Needs b.mu.
func (b *Backend) setKernelMarkLocked(k int, markType uint, path string, cur *uint64, want uint64) error {
	if *cur == want {
		return nil
	}
	g, err := b.groupLocked(k)
	if err != nil {
		return err
	}
	add, remove := want&^*cur, *cur&^want
	if want == 0 {
		err := sys.FanotifyMark(g.fd, sys.FAN_MARK_REMOVE|markType, *cur, sys.AT_FDCWD, path)
		if err != nil && !errors.Is(err, syscall.ENOENT) {
			b.log.Warn("removing kernel mark", "err", err)
		}
		*cur = 0
		return nil
	}
	if add != 0 {
		if want&uint64(engine.PreAccess) != 0 && g.class != sys.FAN_CLASS_PRE_CONTENT {
			return fmt.Errorf("pre-access events: %w", &sys.FeatureError{Feature: "FAN_CLASS_PRE_CONTENT", Err: sys.ErrNotSupported})
		}
		if err := sys.FanotifyMark(g.fd, sys.FAN_MARK_ADD|markType, want, sys.AT_FDCWD, path); err != nil {
			return explainMarkError(err, markType)
		}
	}
	if remove != 0 {
		if err := sys.FanotifyMark(g.fd, sys.FAN_MARK_REMOVE|markType, remove, sys.AT_FDCWD, path); err != nil && !errors.Is(err, syscall.ENOENT) {
			b.log.Warn("shrinking kernel mark", "err", err)
		}
	}
	*cur = want
	return nil
}

// explainMarkError adds what the user can do to the kernel's errno.
func explainMarkError(err error, markType uint) error {
	switch {
	case errors.Is(err, syscall.EXDEV):
		return fmt.Errorf("%w (the kernel cannot report file handles for this filesystem or subvolume)", err)
	case errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.ENODEV):
		return fmt.Errorf("%w (this filesystem does not support these events)", err)
	case errors.Is(err, syscall.EPERM) && markType != 0:
		return fmt.Errorf("%w (%w)", err, ErrNeedsPrivilege)
	}
	return err
}

// groupLocked returns kernel group k, starting it if needed. Needs b.mu.
func (b *Backend) groupLocked(k int) (*kgroup, error) {
	if k == kFD {
		if b.fdGroup == nil {
			if _, err := b.startFDGroupLocked(); err != nil {
				return nil, err
			}
		}
		return &b.fdGroup.kgroup, nil
	}
	if b.fidGrp == nil {
		if _, err := b.startFIDGroupLocked(); err != nil {
			return nil, err
		}
	}
	return &b.fidGrp.kgroup, nil
}

func (b *Backend) canFID() bool {
	s, _ := sys.Probe(sys.FeatureReportDFIDName)
	return s == sys.Supported && b.mode == ModeFanotify
}

// view is what the readers need to know about the marks, published as an immutable snapshot
// so that they never take Backend.mu.
type view struct {
	fs     map[uint64]*fsView // by device
	byFsid map[sys.Fsid]*fsView
	// only is fs's one filesystem, on device onlyDev, when it has exactly one (nil
	// otherwise): fsOf then answers without the map's lookup (a hash per event).
	only    *fsView
	onlyDev uint64
}

// fsOf is v.fs[dev].
func (v *view) fsOf(dev uint64) *fsView {
	if v.only != nil {
		if dev == v.onlyDev {
			return v.only
		}
		return nil
	}
	return v.fs[dev]
}

type fsView struct {
	state *fsState
	// roots are the subtree roots on this filesystem. rootOnly: the only root is the
	// filesystem's root directory, so every event is inside and no ancestry is needed.
	roots    map[engine.ID]bool
	rootOnly bool
	// ancestry is needAncestry's answer, fixed with roots and rootOnly: every permission
	// event reads it (translateFD, maybeIgnore), where len(roots) read the map's header, a
	// cache line of its own.
	ancestry  bool
	rootID    engine.ID
	rootChain []engine.ID // {rootID}, shared by every event (never modified)
	// needParent: some inode mark watches children, so events need their parent directory.
	needParent bool
	handles    map[string]registered
	// handleIDs are the IDs of handles' objects, where the filesystem's handles hold the
	// inode number (fsState.handleIno): an inode number read from an unregistered handle that
	// is one of them was reused (objectID).
	handleIDs map[engine.ID]struct{}
	eocDirs   map[engine.ID]bool
	inodeDirs map[engine.ID]int
	// allRoots are the subtree roots on this filesystem, as an ancestry: the conservative
	// ancestry of an object whose real one cannot be found (shared, never modified).
	allRoots []engine.ID
	// fidWatched: see fsState.fidWatched.
	fidWatched bool
	// subtreeOnly[k]: the bits kernel group k's filesystem mark has only because of subtrees
	// (no filesystem or mount mark wants them): those may be ignored outside the subtrees.
	subtreeOnly [2]uint64
	// possibleAncestors are the subtree roots and children-watching directories here: where
	// an event whose place is unknown may be (engine.Event.PossibleAncestors; shared, never
	// modified).
	possibleAncestors []engine.ID
}

// needAncestry reports whether events here must carry their ancestry: some subtree has a
// root other than the filesystem's own.
func (fv *fsView) needAncestry() bool { return fv.ancestry }

// selfPlacedByDelete reports whether a gone directory's self events wait for the DELETE on
// its parent, which places them, and every directory DELETE records its directory for them
// (orphans.go, revealing): events need their place here, and the FID group's filesystem
// mark reports every DELETE.
func (fv *fsView) selfPlacedByDelete() bool { return fv.needAncestry() && fv.fidWatched }

// allRootsOf returns the conservative ancestry of an object on dev whose real one is unknown:
// every subtree root there.
func (v *view) allRootsOf(dev uint64) []engine.ID {
	if fv := v.fsOf(dev); fv != nil {
		return fv.allRoots
	}
	return nil
}

// publishViewLocked rebuilds the readers' snapshot. Needs b.mu.
func (b *Backend) publishViewLocked() {
	v := &view{fs: make(map[uint64]*fsView, len(b.fss)), byFsid: make(map[sys.Fsid]*fsView, len(b.fss))}
	for dev, fs := range b.fss {
		fv := &fsView{state: fs, roots: make(map[engine.ID]bool, len(fs.subtrees)),
			eocDirs: maps.Clone(fs.eocDirs), inodeDirs: maps.Clone(fs.inodeDir),
			handles: maps.Clone(fs.handles)}
		if fs.handleIno.Known() {
			fv.handleIDs = make(map[engine.ID]struct{}, len(fs.handles))
			for _, r := range fs.handles {
				fv.handleIDs[r.id] = struct{}{}
			}
		}
		var sub engine.Mask
		for id, m := range fs.subtrees {
			fv.roots[id] = true
			fv.allRoots = append(fv.allRoots, id)
			sub |= m
		}
		for id := range fv.roots {
			fv.possibleAncestors = append(fv.possibleAncestors, id)
		}
		for id := range fv.eocDirs {
			if !fv.roots[id] {
				fv.possibleAncestors = append(fv.possibleAncestors, id)
			}
		}
		fv.rootID = inodeID(dev, fs.rootIno)
		fv.rootChain = []engine.ID{fv.rootID}
		fv.rootOnly = len(fv.roots) == 1 && fs.rootIno != 0 && fv.roots[fv.rootID]
		fv.ancestry = len(fv.roots) > 0 && !fv.rootOnly
		fv.needParent = len(fs.eocDirs) > 0
		fv.fidWatched = fs.fidWatched
		wide := fs.fsMask
		for _, m := range fs.mounts {
			wide |= m
		}
		if len(fs.subtrees) > 0 {
			for k := kFD; k <= kFID; k++ {
				fv.subtreeOnly[k] = kernelMask(k, sub&^wide, fs.notifyFID) &^ uint64(engine.EventFlags)
			}
		}
		v.fs[dev] = fv
		v.byFsid[fs.fsid] = fv
		if len(b.fss) == 1 {
			v.only, v.onlyDev = fv, dev
		}
	}
	// A new view invalidates every name-mark decision taken from the old one: the janitor
	// reads a filesystem's generation and the view together under ignMu, and records a mark
	// only if the generation still holds.
	for _, fs := range b.fss {
		fs.ignMu.Lock()
		fs.markGen.Add(1)
		b.view.Store(v)
		fs.ignMu.Unlock()
	}
	b.view.Store(v)
}
