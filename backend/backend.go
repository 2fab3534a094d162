//go:build linux

package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/evloop"
	"github.com/fsnotifyd/fsnotifyd/internal/lockorder"
	"github.com/fsnotifyd/fsnotifyd/internal/lru"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// Mode selects the kernel interface.
type Mode uint8

const (
	// ModeAuto uses fanotify when the process may (CAP_SYS_ADMIN), inotify otherwise.
	ModeAuto Mode = iota
	// ModeFanotify requires fanotify.
	ModeFanotify
	// ModeInotify uses inotify even when fanotify would work (for tests and comparisons).
	ModeInotify
)

func (m Mode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeFanotify:
		return "fanotify"
	case ModeInotify:
		return "inotify"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// Options configure a Backend.
type Options struct {
	// Mode selects fanotify or inotify (default: fanotify when privileged).
	Mode Mode
	// Logger receives warnings about the kernel side (nil: discard). The readers never log
	// while an event waits for its answer.
	Logger *slog.Logger
	// FIDQueueUnlimited lifts the kernel's queue limit (max_queued_events, 16384) from the
	// FID group, which reports every notification event. By default the limit holds: a
	// reader that falls that far behind gets an overflow in band (an engine overflow event
	// for every group that wanted such events), as inotify's readers and fatrace do, and the
	// kernel memory a flood can pin stays bounded. The FD group (permission events) always
	// has an unlimited queue, so that no permission event is dropped (and allowed) by the
	// kernel.
	FIDQueueUnlimited bool
	// Prune are absolute paths whose directories' events no consumer wants (watch's @PATH
	// exclusions): on inotify, a tree watches no directory at or below one of them — unless
	// that directory is also at or below a subtree root that is itself at or below that path
	// — so they take none of the user's watches (fs.inotify.max_user_watches), and one the
	// user may not read is no overflow. Their entries in the directory above are still
	// reported; a tree directory renamed into one keeps its watches. fanotify watches no
	// directory one by one: there it changes nothing.
	Prune []string
	// Exe makes the readers read each process's executable along with its name (Event.Exe),
	// for tracing: one more readlink per process and burst of its events.
	Exe bool
	// ReusePermEvents lets the FD group reuse the payload and engine event of a permission
	// event that every group answered at once on the loop (a Handler) for a later kernel
	// event, once its answer is written and the event released: no allocation per event. Set
	// it only when no consumer of the backend's events uses one after its release, nor keeps
	// a pointer to it from a Handler call beyond the call (a notify.Guard with
	// ReuseRequests: its Requests refer to the event). Events a group queued are never reused.
	ReusePermEvents bool
	// Engine options other than the MaskHook, which the backend sets.
	Engine engine.Config
}

// ReaderHook is told by the FID group's reader — the goroutine that reads every notification
// event and queues them to the engine's groups — when it takes up events (Awake: before it
// dispatches a batch it read, or what a wait's end brings) and when it is about to wait for the
// next (Idle: no event held, no lock held). Idle returns how long the reader may wait before
// calling Idle again (below zero: as long as it likes); the reader calls it again at that
// time even if no event came. Each Awake is followed by one Idle; when the reader ends (its
// group closed) that Idle has last set, and the reader will not call again. Neither may
// block.
//
// The daemon's notification fan-out (daemon/fanout.go) flushes its clients in Idle: on the
// thread that queued their events, which is awake anyway, instead of waking a timer's
// thread for each flush (docs/design/performance.md).
type ReaderHook interface {
	Awake()
	Idle(last bool) time.Duration
}

// SetReaderHook sets (nil: removes) the FID reader's hook. The reader reads it each time it
// wakes; a hook it told Awake gets its Idle even if replaced meanwhile.
func (b *Backend) SetReaderHook(h ReaderHook) {
	if h == nil {
		b.readerHook.Store(nil)
		return
	}
	b.readerHook.Store(&h)
}

// ClearReaderHook removes the FID reader's hook if it is h (a server closing on a shared
// backend must not remove another's).
func (b *Backend) ClearReaderHook(h ReaderHook) {
	for {
		cur := b.readerHook.Load()
		if cur == nil || *cur != h || b.readerHook.CompareAndSwap(cur, nil) {
			return
		}
	}
}

// Errors.
var (
	// ErrNeedsPrivilege: permission, mount and filesystem marks need fanotify, which needs
	// CAP_SYS_ADMIN (run as root, or through the fsnotifyd daemon).
	ErrNeedsPrivilege = errors.New("needs root (CAP_SYS_ADMIN for fanotify); run as root or through the fsnotifyd daemon (--daemon)")
	// ErrMountDirent: the kernel reports directory-entry and attribute events only for
	// directories and filesystems, not per mount.
	ErrMountDirent = errors.New("directory-entry and attribute events (create, delete, move, rename, attrib) cannot be watched per mount; watch the filesystem or a directory")
	// ErrClosed: the backend is closed.
	ErrClosed = errors.New("backend closed")
)

// Backend is the kernel side: an engine fed by fanotify (or inotify).
type Backend struct {
	eng  *engine.Engine
	opts Options
	log  *slog.Logger
	pid  int32
	mode Mode // resolved: ModeFanotify or ModeInotify

	// beforeFIDRead, if set (tests only, before the FID group starts), is called by the FID
	// reader before each read of its queue: a test holds it to let a tree go before its
	// events are read.
	beforeFIDRead func()
	// readerHook is told when the FID reader takes up a batch and when it is about to wait
	// (SetReaderHook).
	readerHook atomic.Pointer[ReaderHook]
	// orphanGrace is how long the FID queue stays empty before waiting orphans are
	// dispatched unplaced (orphans.go): defaultOrphanGrace; tests may set it before the FID
	// group starts.
	orphanGrace time.Duration

	ctx    context.Context // cancelled at Close: waiting permission dispatches give up
	cancel context.CancelFunc
	wg     sync.WaitGroup // the janitor, the FID reader, walks awaiting an answer

	// loop reads the FD group and runs the continuations of its walks (Loop).
	loop *evloop.Loop

	mu      lockorder.Mutex // lockBackend
	closed  bool
	objects map[engine.Object]*object
	fss     map[uint64]*fsState // by device
	fdGroup *fdGroup            // nil until a mark needs it
	fidGrp  *fidGroup
	ino     *inotifyGroup
	// cacheGen is bumped by every flush of the verdict cache (names.go).
	cacheGen atomic.Uint64
	// hardlinksProtected: fs.protected_hardlinks is 1 (read at start, polled by the janitor).
	hardlinksProtected atomic.Bool

	view atomic.Pointer[view] // what readers need to know about the marks; rebuilt under mu
	// rawUnsafe is set, for good, once an object on a filesystem that is not sys.RawSafeFs
	// was resolved (fsLocked), before any mark is placed there. Until then every event of the
	// FD group comes from a filesystem where its descriptor's statx and close wait for
	// nothing but the CPU and the local disk (the marks are on resolved objects, and a mount,
	// filesystem or inode mark, with its children, reports only its own filesystem's
	// files), so they may be raw system calls (translateFD, permEvent.close: no
	// entersyscall/exitsyscall, about 60 ns each here). Never cleared: an event of a
	// filesystem whose marks are gone may still be queued. (A raw call keeps the loop's P,
	// and a stop-the-world waits for it: on FUSE or NFS that could be as long as a server
	// takes; see sys.RawSafeFs. TestRawCallsOnlyOnSafeFilesystems.)
	rawUnsafe atomic.Bool

	inflightMu lockorder.Mutex         // lockInflight
	inflight   map[*permEvent]struct{} // kernel permission events a walk waits for, not answered yet (and fdGroup.dispatching)

	exempts *Exemptions // this process and its helpers: allowed without a decision
	// ahead is the group whose verdicts by kind may answer permission events before their
	// object is known (AnswerAhead), or nil.
	ahead atomic.Pointer[aheadAnswers]

	janitor     chan ignoreRequest // never closed (see runJanitor)
	janitorStop chan struct{}      // closed by Close: the janitor returns
	comms       commCache
	parents     parentCache
	chains      chainCache
	// fidGroupAtomic and fdGroupAtomic are fidGrp and fdGroup for the readers and the
	// janitor, which take no lock.
	fidGroupAtomic atomic.Pointer[fidGroup]
	fdGroupAtomic  atomic.Pointer[fdGroup]
	stats          Stats
}

// object is a resolved mark target: an O_PATH descriptor the backend opened itself (or got
// from a client), which it marks through /proc/self/fd so that no path is resolved twice.
type object struct {
	obj engine.Object
	// fd is the descriptor the object was resolved by, until its kernel marks are in place;
	// then (if it has a handle) it is closed and handle finds the object again.
	fd        int
	handle    sys.FileHandle
	hasHandle bool
	path      string // at resolve time, for messages
	dev       uint64
	mntID     uint64
	isDir     bool
	refs      int         // resolutions not yet released; guarded by Backend.mu
	union     engine.Mask // the engine's union, as last set by the hook
	kmasks    [2]uint64   // kernel mark masks in the FD and FID groups (inode and mount objects)
	parent    engine.ID   // the parent directory, for inode marks on non-directories
}

// New starts a backend. With ModeAuto it probes fanotify and falls back to inotify.
func New(opts Options) (*Backend, error) {
	b := &Backend{
		opts:        opts,
		orphanGrace: defaultOrphanGrace,
		log:         opts.Logger,
		pid:         int32(os.Getpid()),
		objects:     make(map[engine.Object]*object),
		fss:         make(map[uint64]*fsState),
		inflight:    make(map[*permEvent]struct{}),
		exempts:     NewExemptions(),
		janitor:     make(chan ignoreRequest, 1024),
		janitorStop: make(chan struct{}),
	}
	b.mu.Init(lockBackend)
	b.inflightMu.Init(lockInflight)
	b.comms = newCommCache(opts.Exe)
	b.parents = parentCache{lru.New[engine.ID, parentEntry](cacheEntries)}
	b.chains = chainCache{m: lru.New[engine.ID, *chainEntry](cacheEntries)}
	if b.log == nil {
		b.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	switch opts.Mode {
	case ModeAuto:
		// A notification group without FID reporting needs CAP_SYS_ADMIN: creating one tells.
		// (No mark-based probe: closing a group that had a mark waits for an SRCU grace
		// period, 13-20 ms here, which "watch" would pay at every start.)
		b.mode = ModeInotify
		if fd, err := sys.FanotifyInit(sys.FAN_CLASS_NOTIF, sys.O_RDONLY); err == nil {
			sys.Close(fd)
			b.mode = ModeFanotify
		}
	case ModeFanotify:
		if err := sys.Require(sys.FeatureFanotify); err != nil {
			return nil, fmt.Errorf("backend: %w (%w)", err, ErrNeedsPrivilege)
		}
		b.mode = ModeFanotify
	case ModeInotify:
		b.mode = ModeInotify
	default:
		return nil, fmt.Errorf("backend: unknown mode %d", opts.Mode)
	}
	b.hardlinksProtected.Store(readHardlinksProtected())
	b.loop = evloop.New("backend")
	cfg := opts.Engine
	cfg.MaskHook = b.hook
	cfg.PermissionHook = b.permissionHook
	// A walk waiting for a group's answer goes on on the loop, whoever answers: the kernel
	// is answered there, and an answer read on the loop itself goes on before it waits again.
	cfg.Executor = b.loop.Post
	if cfg.PermissionIDBase == 0 {
		// Ids above every id an engine of an earlier process of this boot gave (fewer than
		// one per nanosecond it ran): a client that answers, after the daemon restarted, an
		// event it read from the old daemon must not answer the new daemon's event of the
		// same id (TestGuardStaleAnswerAfterDaemonRestart, notify).
		cfg.PermissionIDBase = uint64(sys.MonotonicNanos())
	}
	b.eng = engine.New(cfg)
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.view.Store(&view{fs: map[uint64]*fsView{}})
	b.wg.Add(1)
	go b.runJanitor()
	return b, nil
}

// Engine returns the engine the backend feeds. Create groups on it; add marks with
// Backend.AddMark (which resolves the object for the kernel) or, for objects already marked
// through the backend, with the engine directly.
func (b *Backend) Engine() *engine.Engine { return b.eng }

// Loop returns the event loop that reads the kernel's permission events and on which their
// walks go on (internal/evloop): a component that wants the answers it reads acted on with no
// hand-off (the daemon's permission clients) registers its descriptors there. It closes with
// the backend.
func (b *Backend) Loop() *evloop.Loop { return b.loop }

// Mode reports whether the backend runs on fanotify or inotify.
func (b *Backend) Mode() Mode { return b.mode }

// Privileged reports whether permission, mount and filesystem marks are possible.
func (b *Backend) Privileged() bool { return b.mode == ModeFanotify }

// Target is an object resolved for marking.
type Target struct {
	Object engine.Object
	// Path is the object's path when it was resolved.
	Path  string
	IsDir bool
	// HeldFd says that the backend keeps a descriptor of the object for as long as it has
	// marks: its filesystem gives no file handle to find it again by (procfs, sysfs). A
	// caller that lets untrusted users place marks bounds how many such objects they hold.
	HeldFd bool
}

// Resolve opens path (without following a final symlink when nofollow is set) and returns the
// object of kind k it names: the file or directory itself (KindInode), the directory and
// everything below it (KindSubtree), its mount (KindMount) or its filesystem
// (KindFilesystem). The path is resolved with this process's own privileges.
func (b *Backend) Resolve(path string, k engine.Kind, nofollow bool) (Target, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Target{}, err
	}
	flags := sys.O_PATH
	if nofollow {
		flags |= sys.O_NOFOLLOW
	}
	fd, err := sys.Open(abs, flags, 0)
	if err != nil {
		return Target{}, err
	}
	t, err := b.register(fd, abs, k)
	if err != nil {
		sys.Close(fd)
	}
	return t, err
}

// ResolveFd is Resolve for an O_PATH (or any) descriptor a client opened itself: the backend
// never resolves a client's path with its own privileges. It takes a duplicate of fd.
func (b *Backend) ResolveFd(fd int, k engine.Kind) (Target, error) {
	dup, err := sys.Dup(fd)
	if err != nil {
		return Target{}, err
	}
	path, _ := sys.FdPath(dup)
	t, err := b.register(dup, path, k)
	if err != nil {
		sys.Close(dup)
	}
	return t, err
}

// ObjectOf returns the object of kind k that fd's file is (or is on), as ResolveFd would,
// without taking it up: no descriptor, no filesystem state. For looking up a mark by its
// object.
func (b *Backend) ObjectOf(fd int, k engine.Kind) (engine.Object, error) {
	st, err := sys.Fstat(fd)
	if err != nil {
		return engine.Object{}, err
	}
	return objectOf(st, "", k)
}

// objectOf returns the object of kind k of the file st describes (path is for messages).
func objectOf(st sys.Stat, path string, k engine.Kind) (engine.Object, error) {
	var id engine.ID
	switch k {
	case engine.KindInode:
		id = inodeID(st.Dev, st.Ino)
	case engine.KindSubtree:
		if !st.IsDir() {
			return engine.Object{}, fmt.Errorf("%s: %w (a recursive watch needs a directory)", path, syscall.ENOTDIR)
		}
		id = inodeID(st.Dev, st.Ino)
	case engine.KindMount:
		id = engine.ID{Hi: st.MntID, Lo: 1}
	case engine.KindFilesystem:
		id = fsID(st.Dev)
	default:
		return engine.Object{}, fmt.Errorf("backend: unknown object kind %v", k)
	}
	return engine.Object{Kind: k, ID: id}, nil
}

// register records fd as the object of kind k, taking ownership of fd (or closing it when
// the object is already registered). The caller must Release the target or use it in AddMark.
func (b *Backend) register(fd int, path string, k engine.Kind) (Target, error) {
	st, err := sys.Fstat(fd)
	if err != nil {
		return Target{}, err
	}
	if !filepath.IsAbs(path) {
		// A pipe, socket or anonymous inode ("pipe:[N]"), or a file out of our reach:
		// nothing the backend can name on a filesystem.
		return Target{}, fmt.Errorf("%s: %w (not a file or directory on a filesystem)", path, syscall.EINVAL)
	}
	obj, err := objectOf(st, path, k)
	if err != nil {
		return Target{}, err
	}
	if b.mode == ModeInotify && (k == engine.KindMount || k == engine.KindFilesystem) {
		return Target{}, fmt.Errorf("%s: %s watch: %w", path, k, ErrNeedsPrivilege)
	}
	if b.mode == ModeInotify {
		return b.registerInotify(fd, path, obj, st) // keeps no descriptor: see there
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return Target{}, ErrClosed
	}
	o := b.objects[obj]
	if o != nil {
		sys.Close(fd)
	} else {
		o = &object{obj: obj, fd: fd, path: path, dev: st.Dev, mntID: st.MntID, isDir: st.IsDir()}
		fs, err := b.fsLocked(st.Dev, fd, path)
		if err != nil {
			return Target{}, err
		}
		if h, _, err := sys.NameToHandleAt(fd, "", sys.AT_EMPTY_PATH); err == nil {
			o.handle, o.hasHandle = h, true
			if k != engine.KindMount && k != engine.KindFilesystem {
				fs.handles[handleKey(h)] = registered{id: inodeID(st.Dev, st.Ino), path: path}
			}
		}
		if k == engine.KindInode && !o.isDir {
			if pst, err := sys.Statx(sys.AT_FDCWD, filepath.Dir(path), 0); err == nil && pst.Dev == st.Dev {
				o.parent = inodeID(pst.Dev, pst.Ino)
			}
		}
		b.objects[obj] = o
	}
	o.refs++
	return Target{Object: obj, Path: path, IsDir: o.isDir, HeldFd: o.fd >= 0 && !o.hasHandle}, nil
}

// Release drops a resolution that was not used in AddMark (or after AddMark: AddMark takes
// its own). The kernel side of an object is dropped once it has no marks and no resolutions.
func (b *Backend) Release(t Target) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if o := b.objects[t.Object]; o != nil {
		o.refs--
		b.maybeDropLocked(o)
	}
}

func (b *Backend) maybeDropLocked(o *object) {
	if o.refs > 0 || o.union != 0 || b.objects[o.obj] != o {
		return
	}
	delete(b.objects, o.obj)
	if o.fd >= 0 {
		sys.Close(o.fd)
	}
}

// AddMark adds spec to g's mark on t's object (engine.Group.AddMark), placing the kernel marks
// it needs first. It consumes t's resolution.
func (b *Backend) AddMark(g *engine.Group, t Target, spec engine.MarkSpec) error {
	defer b.Release(t)
	if err := b.checkSpec(t, spec); err != nil {
		return err
	}
	if err := g.AddMark(t.Object, spec); err != nil {
		return err
	}
	// On inotify, a tree with a directory the user may not read is watched without it: the
	// group is told in band that its events are lost (inotifyGroup.skipBlindLocked).
	if t.Object.Kind == engine.KindSubtree && b.mode == ModeInotify {
		b.mu.Lock()
		ino := b.ino
		b.mu.Unlock()
		if ino != nil && ino.blindBelow(t.Object.ID) {
			g.Overflow()
		}
	}
	return nil
}

func (b *Backend) checkSpec(t Target, spec engine.MarkSpec) error {
	all := spec.Mask | spec.Ignore
	if b.mode == ModeInotify && all&engine.PermissionEvents != 0 {
		return fmt.Errorf("%s: permission events: %w", t.Path, ErrNeedsPrivilege)
	}
	if t.Object.Kind == engine.KindMount && spec.Mask&fidBits != 0 {
		return fmt.Errorf("%s: %w", t.Path, ErrMountDirent)
	}
	if spec.Mask&engine.PreAccess != 0 {
		if err := sys.RequirePreAccess(t.Path); err != nil {
			return fmt.Errorf("%s: %w", t.Path, err)
		}
	}
	return nil
}

// Close stops the backend: it answers every kernel permission event still waiting (allow,
// as the kernel does when a group closes), closes the kernel groups and the loop, and waits
// for its goroutines. Engine groups stay usable but receive nothing more.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	fd, fid := b.fdGroup, b.fidGrp
	ino := b.ino
	b.mu.Unlock()

	b.cancel() // walks waiting in the engine go on with ReasonCancelled and answer allow
	// With each event its generation: one answered and reused meanwhile (ReusePermEvents) is
	// another kernel event by then, which this answer must not reach (permEvent.answerGen).
	type pendingEvent struct {
		p   *permEvent
		gen uint64
	}
	var pending []pendingEvent
	// The event the loop is dispatching first, then inflight: an event a walk waits for
	// enters inflight before it leaves dispatching (fdGroup.dispatching).
	if fd != nil {
		if p := fd.dispatching.Load(); p != nil {
			pending = append(pending, pendingEvent{p, p.generation()})
		}
	}
	b.inflightMu.Lock()
	for p := range b.inflight {
		pending = append(pending, pendingEvent{p, p.generation()})
	}
	b.inflightMu.Unlock()
	for _, e := range pending {
		e.p.answerGen(e.gen, sys.FAN_ALLOW)
	}
	if fd != nil {
		fd.close() // the loop lets go of it first
	}
	if fid != nil {
		fid.close()
	}
	if ino != nil {
		ino.close()
	}
	close(b.janitorStop)
	// The work posted to the loop runs before it ends (the continuations of the walks the
	// cancel ended, say); later posts run on their caller.
	b.loop.Close()
	b.wg.Wait()

	b.mu.Lock()
	for _, o := range b.objects {
		if o.fd >= 0 {
			sys.Close(o.fd)
		}
	}
	b.objects = nil
	for _, fs := range b.fss {
		sys.Close(fs.fd)
		if fs.anchor >= 0 && fs.anchor != fs.fd {
			sys.Close(fs.anchor)
		}
	}
	b.fss = nil
	b.mu.Unlock()
	return nil
}

// inodeID and fsID build engine IDs from stat fields. An inode is {device, inode number}; a
// filesystem is {device, 0}... with Lo set so that no real object gets the zero ID.
func inodeID(dev, ino uint64) engine.ID { return engine.ID{Hi: dev, Lo: ino} }
func fsID(dev uint64) engine.ID         { return engine.ID{Hi: dev, Lo: 1 << 63} }

// Stats are the backend's figures.
type Stats struct {
	// Kernel events read: those that are not permission events (notifications, overflows;
	// StatsSnapshot.Events is the sum of the two) and permission events, each counted once
	// per batch as it is read; permission events answered by the fast self-exemption; and
	// kernel queue overflows.
	OtherEvents, PermissionEvents, SelfExempt, KernelOverflows atomic.Uint64
	// IgnoreMarks placed on objects outside every subtree; VerdictCached ignore marks placed
	// for cached allows; NameMarkDrops: those taken off because the FID group reported a
	// move, link or attribute change they depended on.
	IgnoreMarks, VerdictCached, NameMarkDrops atomic.Uint64
	// Errors translating events (the event was still answered).
	TranslateErrors atomic.Uint64
	// PathsUnknown counts events whose path could not be read (too long for the kernel to
	// print for a file, or printed wrong); PlacesUnknown those among them, or others, whose
	// ancestry could not be learned either, dispatched as possibly inside every subtree of
	// their filesystem (engine.Event.AncestryUnknown).
	PathsUnknown, PlacesUnknown atomic.Uint64
	// Orphaned counts FID events whose directory (or, for a file's own event with no
	// directory record, whose file) was gone when read, kept until its own deletion named it
	// (orphans.go); OrphansUnplaced those dispatched unplaced instead.
	Orphaned, OrphansUnplaced atomic.Uint64
	// MovedAwayOverflows counts overflows given because a directory's move misplaced events
	// read after it (movedaway.go).
	MovedAwayOverflows atomic.Uint64
	// FIDIdlePolls counts the polls that asked whether the FID group had unread moves before
	// a cached ancestry was used (dirsSettled): at most one per batch, none for a file whose
	// cached ancestry is pinned (translateFD, pinnedHolds).
	FIDIdlePolls atomic.Uint64
	// AnswerBatches counts the writev(2)s that answered several permission events of one
	// batch together (fdGroup.flushAnswers), AnswersBatched the answers they carried.
	AnswerBatches, AnswersBatched atomic.Uint64
	// PermEventsAllocated counts the permEvents allocated; with Options.ReusePermEvents, the
	// permission events read into a reused one are not (newPermEvent).
	PermEventsAllocated atomic.Uint64
	// AnsweredAhead counts the permission events answered Allow before their object was
	// known (AnswerAhead).
	AnsweredAhead atomic.Uint64
}

// StatsSnapshot is a copy of Stats.
type StatsSnapshot struct {
	Events, PermissionEvents, SelfExempt, KernelOverflows uint64
	IgnoreMarks, VerdictCached, NameMarkDrops             uint64
	TranslateErrors                                       uint64
	PathsUnknown, PlacesUnknown                           uint64
	Orphaned, OrphansUnplaced                             uint64
	FIDIdlePolls                                          uint64
	AnswerBatches, AnswersBatched                         uint64
	PermEventsAllocated                                   uint64
	AnsweredAhead                                         uint64
}

// Stats returns the backend's figures.
func (b *Backend) Stats() StatsSnapshot {
	s := StatsSnapshot{
		PermissionEvents: b.stats.PermissionEvents.Load(), Events: b.stats.OtherEvents.Load(),
		SelfExempt: b.stats.SelfExempt.Load(), KernelOverflows: b.stats.KernelOverflows.Load(),
		IgnoreMarks: b.stats.IgnoreMarks.Load(), VerdictCached: b.stats.VerdictCached.Load(),
		NameMarkDrops: b.stats.NameMarkDrops.Load(), TranslateErrors: b.stats.TranslateErrors.Load(),
		PathsUnknown: b.stats.PathsUnknown.Load(), PlacesUnknown: b.stats.PlacesUnknown.Load(),
		Orphaned: b.stats.Orphaned.Load(), OrphansUnplaced: b.stats.OrphansUnplaced.Load(),
		FIDIdlePolls:  b.stats.FIDIdlePolls.Load(),
		AnswerBatches: b.stats.AnswerBatches.Load(), AnswersBatched: b.stats.AnswersBatched.Load(),
		PermEventsAllocated: b.stats.PermEventsAllocated.Load(),
		AnsweredAhead:       b.stats.AnsweredAhead.Load(),
	}
	s.Events += s.PermissionEvents
	return s
}

// allowsAhead reports whether a permission event of kernel mask m may be answered Allow ahead
// on a's offer: a's group allows its kind and is then the engine's only permission group. The
// same permission state before and after the verdicts' load says that at that load the group
// was the only one with permission marks (a state is never reused while held); Closing, read
// last and never unset, that it was not closing then: one instant at which Allow is its answer
// and no other group's to give (docs/security.md, "answered Allow ahead").
func (b *Backend) allowsAhead(a *aheadAnswers, m uint64) bool {
	s := b.eng.PermissionState()
	return s.Owner() == a.group && a.allows(engine.Mask(m)) && b.eng.PermissionState() == s && !a.group.Closing()
}

// aheadAnswers is a group's offer to have permission events answered Allow before their object
// is known (AnswerAhead).
type aheadAnswers struct {
	group  *engine.Group
	allows func(engine.Mask) bool
}

// AnswerAhead lets permission events be answered Allow as soon as they are read, before the
// statx of their object, its place and the engine's walk — so that the opener waits for none
// of these — while g is the engine's only group with permission marks
// (engine.Engine.PermissionState) and allows(mask) says g answers every event of that kind
// Allow whatever its object (its verdicts by kind: the embedded source's InlineTable). An
// event of an object outside every mark gets Allow too, as with no group. The event is then
// translated and dispatched as usual (engine.Event.AllowedAhead set): the groups it reaches
// count it and place their marks (outside-ignore marks, no verdict cache), but their answers
// are not sent. allows runs on the loop, for every permission event; it must be a load, and
// say true only for an Allow that nothing else about the event can change. The backend keeps
// one such offer: a second one, while the first stands, is refused (ok false). stop withdraws
// it: no event checked after it returns is answered ahead on its strength (one checked before
// was answered as g's verdicts by kind said at that moment, as if read before stop).
func (b *Backend) AnswerAhead(g *engine.Group, allows func(engine.Mask) bool) (stop func(), ok bool) {
	a := &aheadAnswers{group: g, allows: allows}
	if !b.ahead.CompareAndSwap(nil, a) {
		return func() {}, false
	}
	return func() {
		b.ahead.CompareAndSwap(a, nil)
	}, true
}
