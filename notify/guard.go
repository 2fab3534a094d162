//go:build linux

package notify

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/fsevent"
	"github.com/fsnotifyd/fsnotifyd/internal/procfs"
	"github.com/fsnotifyd/fsnotifyd/internal/source"
	"github.com/fsnotifyd/fsnotifyd/internal/workslot"
)

// AccessKind is the kind of access a Guard decides on.
type AccessKind uint8

const (
	// AccessOpen is an open(2) of a file or directory (FAN_OPEN_PERM).
	AccessOpen AccessKind = 1 << iota
	// AccessRead is each read of an open file (FAN_ACCESS_PERM; costly: every read(2) waits).
	AccessRead
	// AccessExec is an open for execve(2) (FAN_OPEN_EXEC_PERM).
	AccessExec
	// AccessPreAccess is a byte range about to be read or written (FAN_PRE_ACCESS, Linux
	// 6.14+, on filesystems that allow it: ext4, xfs, btrfs). A deny may carry an errno.
	AccessPreAccess

	allKinds = AccessOpen | AccessRead | AccessExec | AccessPreAccess
)

// accessKinds are the kinds and the permission events they decide on; their names are
// fsevent's (AccessName).
var accessKinds = [...]struct {
	k    AccessKind
	mask engine.Mask
}{
	{AccessOpen, engine.OpenPerm},
	{AccessRead, engine.AccessPerm},
	{AccessExec, engine.OpenExecPerm},
	{AccessPreAccess, engine.PreAccess},
}

func (k AccessKind) String() string {
	var parts []string
	for _, n := range accessKinds {
		if k&n.k != 0 {
			parts = append(parts, fsevent.AccessName(n.mask))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

// ParseAccessKinds parses a comma list of open, access, exec, pre_access (read and pre-access
// are accepted for access and pre_access).
func ParseAccessKinds(s string) (AccessKind, error) {
	var k AccessKind
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		switch f {
		case "read":
			f = "access"
		case "pre-access":
			f = "pre_access"
		}
		m, ok := fsevent.MaskByAccess(f)
		if !ok {
			return 0, fmt.Errorf("unknown event %q (want %s)", f, fsevent.AccessNames(", "))
		}
		k |= kindOf(m)
	}
	return k, nil
}

// Mask returns the permission events of the kinds in k.
func (k AccessKind) Mask() engine.Mask {
	var m engine.Mask
	for _, n := range accessKinds {
		if k&n.k != 0 {
			m |= n.mask
		}
	}
	return m
}

func kindOf(m engine.Mask) AccessKind {
	for i := range accessKinds { // by index: a range over the array's values copies it first
		if m&accessKinds[i].mask != 0 {
			return accessKinds[i].k
		}
	}
	return 0
}

// Verdict is a Guard handler's answer.
type Verdict struct {
	deny  bool
	errno syscall.Errno
	cache bool
}

var (
	// Allow lets the access proceed.
	Allow = Verdict{}
	// Deny fails the access with EPERM.
	Deny = Verdict{deny: true}
	// AllowAndCache allows and lets the kernel remember it for this file and kind of access
	// until the file is modified, renamed or linked, or FlushCache is called (only if the
	// Guard was created with Cache, embedded or through a daemon of protocol version 6 or
	// later, only where every permission listener on the file allowed caching, and only for
	// files no unprivileged user could rename or link: docs/security.md).
	AllowAndCache = Verdict{cache: true}
)

// DenyErrno fails the access with errno instead of EPERM. Only pre-content guards (those
// watching AccessPreAccess) can, and only with EPERM, EIO, EBUSY, ETXTBSY, EAGAIN, ENOSPC or
// EDQUOT (the kernel's FAN_DENY_ERRNO); elsewhere — another guard, another errno — it is a
// plain deny (EPERM), at once, embedded and through the daemon alike, and OnDecision is told
// the plain deny.
func DenyErrno(errno syscall.Errno) Verdict { return Verdict{deny: true, errno: errno} }

// Denied reports whether v denies.
func (v Verdict) Denied() bool { return v.deny }

func (v Verdict) String() string {
	switch {
	case v.deny && v.errno != 0:
		return "deny(" + v.errno.Error() + ")"
	case v.deny:
		return "deny"
	case v.cache:
		return "allow(cached)"
	}
	return "allow"
}

// Request is one access waiting for a Guard's verdict. Its methods that read /proc (Comm,
// Uid, Groups, Exe and the Lookup forms) do so on first use, while the process waits, and
// remember the answer; the file stays readable through File until the handler returns.
//
// The process attributes tell a process that is gone from a failure to read: the error is
// os.ErrProcessDone (wrapped) when the process has exited or is unknown (pid 0), and the
// system's error otherwise. Read them while r is decided (Inline, the Handler, OnLate) or
// in OnDecision: first read on a Request kept for later, they are what /proc says of the pid
// then — another process's, once the accessing one has exited and its pid been reused (the
// kernel's event names the process by pid only). File gives nil once r is answered.
type Request struct {
	// Kind is the access.
	Kind AccessKind
	// Pid is the accessing process (0 if unknown, e.g. in another pid namespace).
	Pid int
	// IsDir reports a directory.
	IsDir bool
	// Offset and Count are the byte range of an AccessPreAccess request.
	Offset, Count uint64
	// Time is when the kernel event was read.
	Time time.Time
	// Note is free for the handler, e.g. to tell an OnDecision callback why it decided.
	Note string
	// Err is set by a handler (or Inline) that could not decide because of a failure of its
	// own (a scanner that cannot run, an attribute it cannot read) and answered with the
	// on-error verdict, and by the Guard when the handler panicked. OnDecision gets it as
	// Decision.Err.
	Err error

	// ev is the event: the Request's own copy (newRequest: ownedRequest), or, for an inline
	// decision with ReuseRequests, the source's *ev itself while Inline runs, and the
	// Guard's copy (inlEv) after it when OnDecision will read it (inlineFunc). nil in a
	// Request built by hand (noEvent stands for it: event).
	ev      *source.Event
	inlined Verdict // the verdict Inline gave, until the answer went out (Guard.answeredFunc)
	// inInline: Inline is running on r (InlineFd's descriptor is open). Written by the
	// kernel reader before any hand-off of r to a handler goroutine.
	inInline bool
	// file orders File's duplicates of the event's descriptor before its release: closed
	// once r is decided (settle), File gives nil from then on.
	file fileGate

	commOnce sync.Once
	comm     string
	commErr  error

	uidOnce sync.Once
	uid     int
	uidErr  error

	groupsOnce sync.Once
	groups     []uint32
	groupsErr  error

	exeOnce sync.Once
	exe     procfs.Exe
	exeErr  error
	exeDone atomic.Bool // set once exe and exeErr hold Exe's answer
}

// Path returns the path of the file (resolved on first use), or "" if it is unknown (see
// PathUnknown).
func (r *Request) Path() string { return r.event().GetPath() }

// noEvent is the event of a Request that has none (a zero Request): no path, no object, no
// descriptor. Never written.
var noEvent source.Event

// event is r's event, noEvent if it has none.
func (r *Request) event() *source.Event {
	if r.ev == nil {
		return &noEvent
	}
	return r.ev
}

// PathUnknown reports that the file's path could not be read: the kernel does not print a
// path longer than PATH_MAX (anyone who may create directories can make a file that deep),
// and a file opened by handle may print one that does not lead to it. Path is then "". The
// access is still to be decided — it may be to any file on the guarded filesystem, inside
// the guarded paths or not — by what is known: the process, the kind of access, the content
// (File still reads it), Inode. A handler deciding by path must treat it as a path that may
// match any of its patterns (as the guard's policy does: docs/policy.md), never as one that
// matches none.
func (r *Request) PathUnknown() bool { return r.Path() == "" }

// Inode returns the file's device (st_dev) and inode number, and whether they are known
// (through a daemon that speaks protocol version 1 they are not).
func (r *Request) Inode() (dev, ino uint64, ok bool) {
	ev := r.event()
	return ev.Dev, ev.Ino, ev.HasObject
}

// Comm returns the accessing process's command name ("" if it is gone or unknown). Any
// process can set its own name (prctl PR_SET_NAME): it identifies nothing.
func (r *Request) Comm() string {
	c, _ := r.LookupComm()
	return c
}

// LookupComm is Comm with the error.
func (r *Request) LookupComm() (string, error) {
	r.commOnce.Do(func() { r.comm, r.commErr = procfs.ReadComm(int32(r.Pid)) })
	return r.comm, r.commErr
}

// Uid returns the accessing process's effective user id, or -1 if unknown.
func (r *Request) Uid() int {
	u, err := r.LookupUid()
	if err != nil {
		return -1
	}
	return u
}

// LookupUid is Uid with the error.
func (r *Request) LookupUid() (int, error) {
	r.uidOnce.Do(func() {
		u, err := procfs.ReadEUID(int32(r.Pid))
		r.uid, r.uidErr = int(u), err
	})
	return r.uid, r.uidErr
}

// owner says whose work deciding r is, for pools shared among owners
// (workslot.WithOwner): the user the accessing process works for, which it cannot change
// unless privileged — its login uid where it has one (the user whose login session it
// descends from: also in a user namespace, where a user with subordinate uids could run
// processes under thousands of real uids), else its real uid (a set-user-ID program runs
// with its starter's) — or an owner of its own when neither can be read (the process is
// gone, or in another pid namespace).
func (r *Request) owner() uint64 {
	if u, set, err := procfs.ReadLoginUID(int32(r.Pid)); err == nil && set {
		return uint64(u)
	}
	if u, err := procfs.ReadRUID(int32(r.Pid)); err == nil {
		return uint64(u)
	}
	return workslot.NoOwner
}

// Groups returns all of the accessing process's group ids: its real, effective, saved and
// filesystem gid, and its supplementary groups. An unprivileged process can neither add a
// group to this set nor leave one.
func (r *Request) Groups() ([]uint32, error) {
	r.groupsOnce.Do(func() { r.groups, r.groupsErr = procfs.ReadGroups(int32(r.Pid)) })
	return r.groups, r.groupsErr
}

// Exe returns the executable the accessing process runs (/proc/PID/exe) and whether the
// path is verified: whether it leads, in this process's mount namespace, to that very file.
// It does not when the executable was deleted (the path then ends in " (deleted)") or
// replaced since it started, or when the process started it through a mount this process
// does not see (a container, or a user namespace that mounted its own file over the path); a
// process with no executable (a kernel thread, a thread group whose leader exited) or with a
// path longer than PATH_MAX gives "" and false. Only a verified path says which program runs.
func (r *Request) Exe() (path string, verified bool, err error) {
	r.exeOnce.Do(func() {
		r.exe, r.exeErr = procfs.ReadExecutable(int32(r.Pid))
		r.exeDone.Store(true)
	})
	return r.exe.Path, r.exe.Verified, r.exeErr
}

// ExeUnknown reports whether the executable Exe gives, not verified, may be any program: the
// process has no path we can read and is not a kernel thread, or runs in a mount or user
// namespace a user made, or its executable is not root's and was deleted or opened through a
// mount of another mount namespace (see docs/policy.md). It reads no more of the executable
// than Exe did.
func (r *Request) ExeUnknown() (bool, error) {
	if _, verified, err := r.Exe(); err != nil || verified {
		return false, err
	}
	return procfs.ExeUnknown(int32(r.Pid), r.exe)
}

// ExeRead returns the executable and true if Exe has been called (for audit logs, which show
// it where a decision read it), else "", false, false.
func (r *Request) ExeRead() (path string, verified, ok bool) {
	if !r.exeDone.Load() {
		return "", false, false
	}
	return r.exe.Path, r.exe.Verified, true
}

// File returns the file being accessed, read-only, for inspecting its content; reading it
// causes no events. Each call opens a new descriptor of the file (a duplicate of the event's):
// close it when done; it stays valid as long as it is open. File gives one only while r is
// being decided — Inline, the Handler or OnLate runs on it — and nil once the Guard has
// answered (in OnDecision, or from a Request kept for later: the event's descriptor is closed
// after the answer, and its number names whatever this process opens next). nil too if the
// source has no descriptor.
func (r *Request) File() *os.File {
	if !r.file.enter() {
		return nil
	}
	defer r.file.leave()
	efd := r.event().Fd()
	if efd < 0 {
		return nil
	}
	// A duplicate, so that the caller's reads do not move the event fd's offset under
	// other readers and closing it is harmless.
	fd, err := syscall.Dup(efd)
	if err != nil {
		return nil
	}
	syscall.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), r.Path())
}

// settle ends r's decision for File: from its return on, File gives nil, so that nothing
// duplicates the event's descriptor once it may be released. A File at work meanwhile (on a
// goroutine the handler started) is waited for.
func (r *Request) settle() { r.file.close() }

// fileGate lets File use the event's descriptor until settle closes the gate: the number of
// File calls at work, times two, plus one once closed.
type fileGate struct{ n atomic.Int32 }

// enter reports whether the gate is open, and if so holds it open until leave.
func (g *fileGate) enter() bool {
	if g.n.Add(2)&1 != 0 {
		g.n.Add(-2)
		return false
	}
	return true
}

func (g *fileGate) leave() { g.n.Add(-2) }

// close closes the gate and waits for the Files at work (one dup(2) each) to leave.
func (g *fileGate) close() {
	if g.n.Or(1) == 0 {
		return
	}
	for g.n.Load() != 1 {
		runtime.Gosched()
	}
}

// InlineFd returns the event's own descriptor of the file while GuardConfig.Inline runs on r
// (through the daemon, the one it passed), and -1 otherwise (or when the source has no
// descriptor). It saves File's dup, its fcntls and close on the kernel reader: the
// descriptor stays open until Inline has returned and the answer is written. Do not close
// it, and read it only with pread (its offset is the accessing process's when it shares the
// open file). Call it from Inline itself, on its goroutine, and use the number only until
// Inline returns: after that it may name another file, and nothing can tell a number kept
// from one that is still the event's. A Handler (or a goroutine Inline starts) uses File
// instead: it may still run after the deadline answered the event and its descriptor was
// closed.
func (r *Request) InlineFd() int {
	if !r.inInline {
		return -1
	}
	return r.event().Fd()
}

// FileStamp identifies a version of a file without reading it: its inode, its size and its
// modification and change times (nanoseconds since the epoch), as statx(2) gave them. The
// change time moves at every change of the inode (a write, a truncate, a rename, a link or
// unlink, a chmod) and nobody but the kernel sets it.
type FileStamp struct {
	Dev, Ino, Size uint64
	Mtime, Ctime   int64
}

// InlineStamp returns the stamp of the file that the backend took (a statx of the event's
// descriptor) when it read the event, while GuardConfig.Inline runs on r; false otherwise,
// through the daemon, or for a directory. It costs no system call. Read after Path (which
// takes the statx again for a file unlinked meanwhile), it is the file's as of the path read.
func (r *Request) InlineStamp() (FileStamp, bool) {
	if !r.inInline || r.IsDir {
		return FileStamp{}, false
	}
	st, ok := r.event().Stat()
	if !ok {
		return FileStamp{}, false
	}
	return FileStamp{Dev: st.Dev, Ino: st.Ino, Size: st.Size, Mtime: st.Mtime, Ctime: st.Ctime}, true
}

// ProcessComm reads /proc/PID/comm ("" if the process is gone). procfs takes no fanotify
// marks, so this never waits on a guard.
func ProcessComm(pid int) string { return procfs.Comm(int32(pid)) }

// Handler decides on an access. ctx ends at the Guard's deadline, or with OnLate at the
// request's late point (or when the Guard closes): a handler that outlives it is too late,
// and the deadline verdict, or OnLate's, decides.
type Handler func(ctx context.Context, r *Request) Verdict

// GuardConfig configures a Guard.
type GuardConfig struct {
	// Paths are guarded recursively: everything below each directory (a file guards itself),
	// including files in directories created later, with no window. A file on the same
	// filesystem whose place cannot be known (its path is deeper than the kernel prints) is
	// decided too, as possibly inside: see Request.PathUnknown. A relative path is taken
	// from the current directory when NewGuard runs; an empty one, here or in Mounts and
	// Filesystems, is an error.
	Paths []string
	// Mounts and Filesystems are guarded whole (a path on each names it). A mount mark sees
	// only accesses through that one mount: not through a bind mount, nor from a process in
	// another mount namespace (which unprivileged users can make where user namespaces are
	// allowed). Paths and Filesystems see every mount of the filesystem (docs/security.md).
	Mounts, Filesystems []string
	// Events are the kinds of access to decide on (default AccessOpen).
	Events AccessKind
	// Ask, if set, are the kinds of Events the marks ask the kernel for at the start (the
	// others are let through by the kernel with no event); SetEvents changes them while the
	// Guard runs. Only AccessOpen and AccessExec may be left unasked: the kernel decides at
	// open whether an open file's reads will ever ask (see SetEvents). Default: Events.
	Ask AccessKind
	// Deadline bounds each decision (0: wait forever — a hung handler then hangs every
	// access it guards); OnTimeout is the verdict at the deadline (default Allow, so the host
	// stays usable if a handler hangs).
	Deadline  time.Duration
	OnTimeout Verdict
	// OnLate, with a Deadline, decides in place of OnTimeout a request that no handler has
	// answered by its late point, Guard.LateMargin before its deadline: one still waiting for one
	// of the Concurrency handlers then, or whose handler returned after its ctx, which ends
	// at the late point, had ended. It is called on the request's own goroutine, holding no
	// handler, and must decide at once, without what made the handler late: a guard's rules,
	// say, with the file's content unknown, so that whoever keeps the handlers busy (a
	// flood of large files to hash) does not choose the verdict of the requests behind them.
	// Its verdict is recorded By "late". OnTimeout still answers a request that OnLate too
	// fails to answer by the deadline, and, through the daemon, every request of a Guard
	// that stopped.
	OnLate func(r *Request) Verdict
	// OnClose answers accesses still pending when the Guard closes (default Allow, as the
	// kernel does when a listener exits).
	OnClose Verdict
	// Cache lets handlers return AllowAndCache. Through the daemon, only while it speaks
	// protocol version 6 or later, whose FlushCache withdraws the allows cached in its
	// kernel groups; with an older daemon AllowAndCache answers a plain Allow, since
	// FlushCache could not take back an allow after a policy change (docs/policy.md,
	// "Caching"). Caches says which holds.
	Cache bool
	// Inline, if set, is offered every request first, on the goroutine that reads the
	// kernel, before any queueing: it returns a verdict and true, or false to pass the
	// request to the Handler. It must be fast and never block (a glob policy, say); it saves
	// two goroutine hand-offs per access. FlushCache and SetEvents called from it (or from
	// OnResync, OnDisconnected) are refused with an error: through the daemon it runs on the
	// goroutine that reads the daemon's replies, which they wait for.
	Inline func(r *Request) (Verdict, bool)
	// ByKind, with Inline, are the verdicts of the kinds of access decided from their kind
	// alone (an allow-all policy, say). Embedded and without OnDecision (nothing would read
	// their Request), every access of such a kind gets its verdict before anything is built
	// for it — no Request, no record of the event, no call — and is counted in Stats; through
	// the daemon, or with OnDecision, they are not used (Inline decides every access). A kind's
	// verdict must be the one Inline would return for every Request of that kind, from the
	// moment it is published (here, or by Guard.SetKindVerdicts) until the next
	// SetKindVerdicts: see there how to change what Inline decides by.
	ByKind KindVerdicts
	// Concurrency bounds the handlers running at once (default 256). A handler that waits for
	// one of the trust Verifier's hash slots (fsnotifyd's own guard) gives its place back
	// first (internal/workslot): the handlers are not held by such waits. Those slots are
	// shared among the users of the processes decided for, in turn (Request.owner).
	Concurrency int
	// Backend to use (default: a private fanotify backend, closed with the Guard). Close the
	// Guard before it: once it is closed, nothing reaches the Guard, and the kernel allows
	// every access it guarded, with no error said.
	Backend *backend.Backend
	// Daemon, if set, is the socket of a running fsnotifyd daemon to run through (as a
	// permission client: root or an allowed uid) instead of attaching to the kernel here.
	// A Request's Comm and Uid are then read from this process's /proc on first use, as
	// embedded (the daemon's pid namespace is assumed): asking the daemon for them would
	// cost every event two /proc reads on its critical path.
	Daemon string
	// NoPaths and NoFiles, through the daemon, say the handler reads no Request's Path and
	// no File (a decision by process, or allow-all): the daemon then reads no path for the
	// events (a readlink and a statx each) and sends no file (a dup it makes and a close
	// here). Path is then "" (PathUnknown true) where the daemon did not read it anyway, and
	// File nil. Embedded they change nothing: paths are read on demand.
	NoPaths, NoFiles bool
	// Name names the Guard in the daemon's stats (default "notify.Guard").
	Name string
	// Exempt are helper processes the caller started (a scanner launcher, say) and has not
	// reaped: their accesses are allowed at once and never decided, from before the marks
	// are placed, and so are those of their sessions' members if they lead their own
	// sessions (SysProcAttr.Setsid) — which is how a helper's own children are exempt. A
	// helper stops being exempt once it is reaped, whatever the caller does: its pid, reused,
	// exempts nobody (see docs/security.md, "Exempt processes").
	Exempt []int
	// AllowOnError makes the Guard's own failures allow; by default they deny. They are a
	// handler or Inline that panics (the Guard recovers, answers, reports the panic in
	// Decision.Err and goes on), and what a handler reports in Request.Err and answers with
	// the Guard's OnError verdict. A handler that could crash on a crafted file must not let
	// that file through.
	AllowOnError bool
	// OnDecision, if set, is called after each decision (for audit logs), from the
	// goroutine that decided; it must not block for long. A panic in it (or in OnLost,
	// OnResync, OnDisconnected) is not recovered, unlike a Handler's: it ends the program,
	// and with it the guarding (the kernel, or the daemon, answers the pending accesses
	// with allow, or the daemon's close verdict). A callback that may panic on what an
	// access brings (a crafted file name) recovers by itself.
	OnDecision func(Decision)
	// ReuseRequests promises that Inline and OnDecision keep no Request (nor its Decision,
	// nor anything reached through it: InlineFd, File) once they return: the Guard then
	// reuses the Requests of inline decisions, so that an access decided inline allocates
	// nothing here (with a backend made with backend.Options.ReusePermEvents, nothing at
	// all: docs/security.md, "Reused permission events"). A Request a Handler gets is never
	// reused. Leave it false when a callback hands Requests on for later.
	ReuseRequests bool
	// OnResync, if set, is called (through the daemon) when the Guard has reconnected to a
	// restarted daemon and placed its marks again; accesses made while the daemon was down
	// were allowed by the kernel. It runs on the connection's reading goroutine and must not
	// block.
	OnResync func()
	// OnLost, if set, is called (through the daemon) for each guarded path that could not be
	// marked again after the daemon restarted because the object there is not the one the
	// Guard marked (it was deleted, moved or replaced meanwhile): what is at that path now is
	// NOT guarded. Restarting the Guard guards it. It runs on the Guard's reading goroutine
	// and must not block for long.
	OnLost func(path string, err error)
	// OnDisconnected, if set, is called (through the daemon) when the Guard's connection to
	// the daemon is lost, and for each new reason it cannot get back on (the daemon down,
	// then refusing it): until OnResync, nothing it guards is guarded (the kernel allows).
	// It must not block for long.
	OnDisconnected func(err error)
}

// Decision describes one decided access, for audit logs.
type Decision struct {
	// Request is the access decided (how long it may be kept: GuardConfig.ReuseRequests).
	Request *Request
	// Verdict is what the access was answered.
	Verdict Verdict
	// By says who decided: "inline", "handler", "late" (GuardConfig.OnLate), "deadline",
	// "closed".
	By string
	// Err, if set, is the Guard's own failure that decided, with the on-error verdict: the
	// handler's Request.Err, or a *PanicError when the handler (or Inline) panicked.
	Err error
	// Latency is the time from the kernel event being read to the verdict.
	Latency time.Duration
}

// Guard decides on accesses below its paths with a Handler.
type Guard struct {
	cfg     GuardConfig
	src     source.Source
	handler Handler
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup // the reader and the handlers' goroutines
	sem     chan struct{}
	closed  atomic.Bool
	// closeDone is closed when Close's work is done: a second Close waits for it.
	closeDone chan struct{}
	closeErr  error // the source's Close's, set before closeDone is closed

	unexempt []func()

	askMu sync.Mutex     // serializes SetEvents, held across its mark changes (the source's and engine's locks are taken under it, never it under them); no event path takes it
	marks []*source.Mark // the Guard's marks, set before the reader starts; under askMu after
	asked AccessKind     // the kinds the marks ask for; under askMu

	decided, denied atomic.Uint64
	late            atomic.Uint64 // answered by OnLate (GuardStats.Late)
	// table answers the kinds of cfg.ByKind and SetKindVerdicts in the source, and counts
	// them (Stats adds its counts); nil when they are not used (see GuardConfig.ByKind).
	table *source.InlineTable

	// inl is the Request of the inline decisions, with cfg.ReuseRequests, while no decision
	// holds it (nil while one does): inlineRequest takes it, recycle gives it back. Inline
	// calls come one at a time, and an inline answer's Answered comes on the same goroutine
	// before the next call (source.Options), so one Request serves them in turn (no
	// sync.Pool round, whose pinning and per-P lists cost more than the rest of the
	// Request's bookkeeping).
	inl *Request
	// inlEv is the copy of an inline Request's event that OnDecision reads after Inline
	// returned (inlineFunc): the source's is the next event's by then. With inl, one at a time.
	inlEv source.Event
}

// ErrGuardNeedsPrivilege: a Guard needs fanotify permission events (root, or
// CAP_SYS_ADMIN).
var ErrGuardNeedsPrivilege = errors.New("guarding accesses needs root (fanotify permission events need CAP_SYS_ADMIN); run as root or through the fsnotifyd daemon (--daemon)")

// NewGuard starts a Guard: its marks are in place when it returns.
func NewGuard(cfg GuardConfig, h Handler) (*Guard, error) {
	if h == nil && cfg.Inline == nil {
		return nil, errors.New("guard: no handler")
	}
	if cfg.Events == 0 {
		cfg.Events = AccessOpen
	}
	if k := cfg.Events &^ allKinds; k != 0 {
		return nil, fmt.Errorf("guard: GuardConfig.Events holds bits %#x that are no kind of access (want AccessOpen, AccessRead, AccessExec, AccessPreAccess)", uint8(k))
	}
	if cfg.Deadline < 0 {
		return nil, fmt.Errorf("guard: GuardConfig.Deadline is negative (%v): give a positive one, or 0 for none", cfg.Deadline)
	}
	if cfg.Ask == 0 {
		cfg.Ask = cfg.Events
	}
	if err := checkAsk(cfg.Events, cfg.Ask); err != nil {
		return nil, err
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 256
	}
	if len(cfg.Paths)+len(cfg.Mounts)+len(cfg.Filesystems) == 0 {
		return nil, errors.New("guard: nothing to guard (no paths, mounts or filesystems)")
	}
	for _, l := range []struct {
		field string
		paths []string
	}{{"Paths", cfg.Paths}, {"Mounts", cfg.Mounts}, {"Filesystems", cfg.Filesystems}} {
		// An empty path (an unset variable, say) would name the current directory embedded —
		// possibly the root of the filesystem — and nothing through the daemon.
		if i := slices.Index(l.paths, ""); i >= 0 {
			return nil, fmt.Errorf("guard: GuardConfig.%s[%d] is empty: name a path (\".\" for the current directory)", l.field, i)
		}
	}
	gd := &Guard{cfg: cfg, handler: h, sem: make(chan struct{}, cfg.Concurrency), closeDone: make(chan struct{})}
	class := engine.ClassContent
	if cfg.Events&AccessPreAccess != 0 {
		class = engine.ClassPreContent
	}
	name := cfg.Name
	if name == "" {
		name = "notify.Guard"
	}
	so := source.Options{Daemon: cfg.Daemon, Name: name, Class: class, Backend: cfg.Backend,
		QueueLimit:      -1, // a full queue would let accesses through unchecked
		Deadline:        cfg.Deadline,
		DeadlineVerdict: cfg.OnTimeout.engineVerdict(),
		CloseVerdict:    cfg.OnClose.engineVerdict(),
		EventFDs:        !cfg.NoFiles || cfg.Daemon == "",
		NoPaths:         cfg.NoPaths,
	}
	if cfg.OnResync != nil {
		so.OnResync = func() { callBack(cfg.OnResync) }
	}
	if cfg.OnDisconnected != nil {
		so.OnDisconnected = func(err error) { callBack(func() { cfg.OnDisconnected(err) }) }
	}
	if cfg.Inline != nil {
		so.Inline, so.Answered = gd.inlineFunc(), gd.answeredFunc()
		if cfg.OnDecision == nil && cfg.Daemon == "" {
			// Published before the source opens: there is no mark yet, and no event.
			gd.table = new(source.InlineTable)
			gd.table.Store(gd.entries(cfg.ByKind))
			so.InlineTable = gd.table
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src, err := source.Open(ctx, so)
	if errors.Is(err, source.ErrNeedsPrivilege) {
		err = ErrGuardNeedsPrivilege
	}
	if err != nil {
		return nil, err
	}
	gd.src = src
	gd.ctx, gd.cancel = context.WithCancel(context.Background())
	// The helpers are exempt before the first mark: their accesses never wait on us.
	if err := gd.exemptHelpers(); err != nil {
		gd.cancel()
		src.Close()
		return nil, err
	}
	if err := gd.addMarks(); err != nil {
		gd.cancel()
		src.Close()
		gd.releaseExempt()
		return nil, err
	}
	gd.wg.Add(1)
	go gd.readLoop()
	return gd, nil
}

// exemptHelpers registers cfg.Exempt.
func (gd *Guard) exemptHelpers() error {
	for _, pid := range gd.cfg.Exempt {
		done, err := gd.src.Exempt(pid)
		if err != nil {
			gd.releaseExempt()
			return fmt.Errorf("guard: exempting helper process %d: %w", pid, err)
		}
		gd.unexempt = append(gd.unexempt, done)
	}
	return nil
}

func (gd *Guard) releaseExempt() {
	for _, f := range gd.unexempt {
		f()
	}
	gd.unexempt = nil
}

// OnError is the verdict for the Guard's own failures (see GuardConfig.AllowOnError).
func (gd *Guard) OnError() Verdict {
	if gd.cfg.AllowOnError {
		return Allow
	}
	return Deny
}

// PanicError is a handler's (or Inline's) panic, recovered by the Guard.
type PanicError struct {
	// Value is what the handler passed to panic.
	Value any
	// Stack is the panicking goroutine's stack (runtime/debug.Stack), for the log.
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("the handler panicked: %v", e.Value) }

// panicked reports whether p, what a deferred function's recover() returned, is a panic of
// the call it guards; if so it is the Guard's own failure, kept in r.Err (the caller answers
// with OnError).
func panicked(r *Request, p any) bool {
	if p == nil {
		return false
	}
	r.Err = &PanicError{Value: p, Stack: debug.Stack()}
	return true
}

// callInline offers r to cfg.Inline. A panic in it is the Guard's own failure: r gets the
// on-error verdict, with the panic in r.Err.
func (gd *Guard) callInline(r *Request) (v Verdict, ok bool) {
	r.inInline = true
	defer func() {
		r.inInline = false
		if panicked(r, recover()) {
			v, ok = gd.OnError(), true
		}
	}()
	return gd.cfg.Inline(r)
}

// KindVerdicts are verdicts by kind of access (GuardConfig.ByKind, Guard.SetKindVerdicts).
// The zero KindVerdicts hold none.
type KindVerdicts struct {
	kinds AccessKind
	v     [len(accessKinds)]Verdict // by kindIndex
}

// kindIndex is the index of kind k (one kind) in accessKinds.
func kindIndex(k AccessKind) int { return bits.TrailingZeros8(uint8(k)) & (len(accessKinds) - 1) }

// Set makes v the verdict of each kind of access in k.
func (kv *KindVerdicts) Set(k AccessKind, v Verdict) {
	for i := range accessKinds {
		if k&accessKinds[i].k != 0 {
			kv.kinds |= accessKinds[i].k
			kv.v[i] = v
		}
	}
}

// Get returns the verdict of kind k (one kind), and whether kv holds one.
func (kv KindVerdicts) Get(k AccessKind) (Verdict, bool) {
	if bits.OnesCount8(uint8(k)) != 1 || kv.kinds&k == 0 {
		return Verdict{}, false
	}
	return kv.v[kindIndex(k)], true
}

// SetKindVerdicts makes kv the verdicts of the kinds of access decided from their kind alone
// (GuardConfig.ByKind), from the next access on; kinds kv leaves out go to Inline. An access
// gets the verdict of one KindVerdicts, the last stored when it was read (whole: one atomic
// word), never a mix. Without their use (through the daemon, with OnDecision) it does nothing.
//
// To change what Inline decides by (a policy reload) so that no access gets a verdict of what
// held before once the change is made: SetKindVerdicts(KindVerdicts{}) (every access goes to
// Inline, which decides by what it reads), then the change, then SetKindVerdicts with the
// verdicts of what holds now. Calls that could overlap are the caller's to serialize (the
// last one stored wins).
func (gd *Guard) SetKindVerdicts(kv KindVerdicts) {
	if gd.table != nil {
		gd.table.Store(gd.entries(kv))
	}
}

// entries are the source table's answers of kv: each verdict as the Guard answers it (answer),
// counted by the table. A verdict the table cannot hold is left out (Inline decides it).
func (gd *Guard) entries(kv KindVerdicts) source.Entries {
	var e source.Entries
	for i := range accessKinds {
		if kv.kinds&accessKinds[i].k != 0 {
			e.Set(accessKinds[i].mask, gd.answer(kv.v[i]).sourceAnswer())
		}
	}
	return e
}

func (v Verdict) engineVerdict() engine.Verdict {
	if v.deny {
		return engine.Deny
	}
	return engine.Allow
}

// answer returns the verdict that applies for v on this Guard: a deny keeps its errno only
// where the kernel honours one (a pre-content guard, an errno of engine.DenyErrnos), else it is
// a plain deny (EPERM) — on every path, embedded or through the daemon, so that the audit
// records what the access got; an allow is cached only with GuardConfig.Cache (and through the
// daemon, one that can withdraw it: Caches). Its engine response is v.response().
func (gd *Guard) answer(v Verdict) Verdict {
	if v.errno != 0 && (gd.cfg.Events&AccessPreAccess == 0 || !slices.Contains(engine.DenyErrnos, v.errno)) {
		v.errno = 0
	}
	if v.deny || !gd.cfg.Cache || (gd.cfg.Daemon != "" && !gd.src.CacheFlushable()) {
		v.cache = false // through a daemon older than version 6 the client would send none
	}
	return v
}

// response is the engine response of a verdict answer returned. Built where it is returned
// (engine.Response has five fields: a function that returns one it got from a call copies it
// through memory, and the copy's wide loads of the narrow stores stall store forwarding).
func (v Verdict) response() engine.Response {
	return engine.Response{Verdict: v.engineVerdict(), Errno: v.errno, Cache: v.cache}
}

// sourceAnswer is the source's answer of a verdict answer returned (Inline's, the table's).
func (v Verdict) sourceAnswer() source.Answer {
	return source.Answer{Verdict: v.engineVerdict(), Errno: v.errno, Cache: v.cache}
}

// markMask is the mask of the Guard's marks that ask for the kinds ask.
func markMask(ask AccessKind) engine.Mask {
	mask := ask.Mask()
	if mask&engine.PreAccess == 0 {
		mask |= engine.OnDir // directories' opens are decided too
	}
	return mask
}

// checkAsk checks that ask, the kinds a Guard's marks ask for, is a non-empty part of events
// leaving out only kinds that may be unasked (see SetEvents).
func checkAsk(events, ask AccessKind) error {
	switch {
	case ask == 0:
		return errors.New("guard: no kind of access asked for (the marks need one)")
	case ask&^allKinds != 0:
		return fmt.Errorf("guard: asked for bits %#x that are no kind of access", uint8(ask&^allKinds))
	case ask&^events != 0:
		return fmt.Errorf("guard: asked for %v, which Events (%v) does not decide", ask&^events, events)
	case (events&^ask)&^(AccessOpen|AccessExec) != 0:
		return fmt.Errorf("guard: %v cannot be left unasked (the kernel decides when a file is opened whether its reads ask)", (events&^ask)&^(AccessOpen|AccessExec))
	}
	return nil
}

func (gd *Guard) addMarks() error {
	mask := markMask(gd.cfg.Ask)
	add := func(path string, k engine.Kind) error {
		if k == engine.KindSubtree {
			if st, err := os.Stat(path); err == nil && !st.IsDir() {
				k = engine.KindInode
			}
		}
		ctx, cancel := context.WithTimeout(gd.ctx, 30*time.Second)
		defer cancel()
		m, err := gd.src.AddMark(ctx, path, k, engine.MarkSpec{Mask: mask})
		if err != nil {
			return fmt.Errorf("guard %s: %w", path, err)
		}
		gd.marks = append(gd.marks, m)
		return nil
	}
	for _, list := range []struct {
		paths []string
		k     engine.Kind
	}{{gd.cfg.Paths, engine.KindSubtree}, {gd.cfg.Mounts, engine.KindMount}, {gd.cfg.Filesystems, engine.KindFilesystem}} {
		for _, p := range list.paths {
			if err := add(p, list.k); err != nil {
				return err
			}
		}
	}
	gd.asked = gd.cfg.Ask
	return nil
}

// SetEvents makes the Guard's marks ask the kernel for the kinds ask (a non-empty part of
// GuardConfig.Events) from now on; an access of a kind of Events left out is let through by
// the kernel with no event and no decision. When SetEvents returns, the kernel's marks ask for
// every kind of ask: an open or exec that starts after it is decided (one in the middle of its
// open(2) may have passed the kernel's check already, as an access does that was decided under
// what held before). A caller that stops asking for a kind must therefore hold a policy that
// allows every access of it from before the call until after a call that asks again
// (docs/security.md, "Kinds of access no rule decides"). Only AccessOpen and AccessExec may be
// left out: the kernel settles when a file is opened whether its reads and pre-content accesses
// will ask (Linux 6.14+), so a read kind asked again would miss the files already open.
//
// On an error the marks changed before it ask for ask and the others for what they asked
// before: Asked then reports 0 (not known), and the next SetEvents sets every mark, whatever
// kinds it asks for.
func (gd *Guard) SetEvents(ctx context.Context, ask AccessKind) error {
	if err := checkAsk(gd.cfg.Events, ask); err != nil {
		return err
	}
	if err := notOnSourceGoroutine("SetEvents"); err != nil {
		return err
	}
	gd.askMu.Lock()
	defer gd.askMu.Unlock()
	if gd.closed.Load() {
		return errors.New("guard: closed")
	}
	if ask == gd.asked {
		return nil
	}
	spec := engine.MarkSpec{Mask: markMask(ask)}
	for _, m := range gd.marks {
		if err := gd.src.ModifyMark(ctx, m, spec); err != nil {
			gd.asked = 0 // some marks ask for ask, others not: the next call sets them all
			return fmt.Errorf("guard %s: asking for %v: %w", m.Path, ask, err)
		}
	}
	gd.asked = ask
	return nil
}

// Asked returns the kinds the Guard's marks ask the kernel for (GuardConfig.Ask, SetEvents),
// or 0 after a SetEvents that failed part-way (some marks ask for more than others).
func (gd *Guard) Asked() AccessKind {
	gd.askMu.Lock()
	defer gd.askMu.Unlock()
	return gd.asked
}

// ownedRequest is a Request with its own copy of the event, in one allocation (newRequest).
type ownedRequest struct {
	Request
	ev source.Event
}

// newRequest is the Request for a permission event, with its own copy of ev. A process's name
// and uid that came with the event (the daemon sends them to clients that ask) are taken as
// read.
func newRequest(ev source.Event) *Request {
	o := &ownedRequest{ev: ev}
	o.init(&o.ev)
	return &o.Request
}

// init makes r the Request of *ev (not copied: r refers to it), whatever r held before: every
// field is written, so nothing of an earlier event a reused Request carried is left (recycle
// does not clear it).
func (r *Request) init(ev *source.Event) {
	// Cleared, then written field by field: a literal with these fields is built in a
	// temporary (360 bytes) and copied in. The event (about 400 bytes) is not copied: the
	// inline path refers to the source's, and copies it only if OnDecision will read it
	// after Inline returned (inlineFunc).
	*r = Request{}
	r.Kind, r.Pid, r.IsDir = kindOf(ev.Mask), int(ev.Pid), ev.IsDir()
	r.Offset, r.Count, r.Time = ev.Range.Offset, ev.Range.Count, ev.Time
	r.ev = ev
	if ev.HasUID {
		r.uidOnce.Do(func() { r.uid = int(ev.UID) })
	}
	if ev.Comm != "" {
		r.commOnce.Do(func() { r.comm = ev.Comm })
	}
}

// inlineRequest is the Request of an event offered to Inline: with cfg.ReuseRequests, the
// Guard's inline one (gd.inl).
func (gd *Guard) inlineRequest(ev *source.Event) *Request {
	if !gd.cfg.ReuseRequests {
		return newRequest(*ev)
	}
	r := gd.inl
	if r == nil {
		r = new(Request)
	} else {
		gd.inl = nil
	}
	r.init(ev)
	return r
}

// recycle takes back an inline Request once Inline and OnDecision are done with it
// (cfg.ReuseRequests: they keep none). It does not clear r (360 bytes): inlineRequest's init
// overwrites every field before r is used again, and until then the Guard holds what r
// refers to (the last event and its strings).
func (gd *Guard) recycle(r *Request) {
	if gd.cfg.ReuseRequests {
		gd.inl = r
	}
}

// inlineFunc returns the source's Inline: it offers the request to cfg.Inline on the goroutine
// that read the event (a kernel reader, or the daemon connection's), and hands the request to
// answeredFunc's as its tag. A function literal, not the method value of a method (whose
// generated wrapper would copy the answer once more), with the answer built in its return
// statement.
func (gd *Guard) inlineFunc() func(ev *source.Event) (source.Answer, any, bool) {
	return func(ev *source.Event) (source.Answer, any, bool) {
		// With ReuseRequests r refers to *ev, which is the source's until this returns, then
		// the next event's (source.Options.Inline); else it has its own copy.
		r := gd.inlineRequest(ev)
		v, ok := gd.callInline(r)
		r.settle() // the source releases ev once this returns (through the daemon, before Answered)
		if !ok {
			gd.recycle(r) // a handler decides, with a Request of its own (decide)
			return source.Answer{}, nil, false
		}
		if r.ev == ev && gd.cfg.OnDecision != nil {
			// OnDecision reads r once the answer went out (answeredFunc), after this returns:
			// through the daemon the source has cleared *ev by then. Copied now, while it is
			// still this event's; without OnDecision nothing reads r after this.
			gd.inlEv = *ev
			r.ev = &gd.inlEv
		}
		v = gd.answer(v)
		r.inlined = v
		return v.sourceAnswer(), r, true
	}
}

// answeredFunc returns the source's Answered: it records an inline decision once its answer
// went out (err nil), or could not (through the daemon, a lost connection: the daemon's close
// verdict applies). A function literal, not a method value (one generated wrapper call less
// per inline decision).
func (gd *Guard) answeredFunc() func(tag any, err error) {
	return func(tag any, err error) {
		r := tag.(*Request)
		if err != nil {
			gd.record(r, gd.cfg.OnClose, "closed")
		} else {
			gd.record(r, r.inlined, "inline")
		}
		gd.recycle(r)
	}
}

func (gd *Guard) record(r *Request, v Verdict, by string) {
	gd.count(v)
	if f := gd.cfg.OnDecision; f != nil {
		lat := time.Duration(0)
		if !r.Time.IsZero() {
			lat = time.Since(r.Time)
		}
		f(Decision{Request: r, Verdict: v, By: by, Latency: lat, Err: r.Err})
	}
}

// count counts a decision (Stats).
func (gd *Guard) count(v Verdict) {
	gd.decided.Add(1)
	if v.deny {
		gd.denied.Add(1)
	}
}

// readLoop reads the events Inline left undecided and gives each to a goroutine of its own
// (decide), which runs the handler, at most cfg.Concurrency at once: without OnLate the
// reader waits for one of them to be free; with it, each request's goroutine waits, until
// the request's late point (then OnLate decides it). Each such goroutine ends once its
// request is answered; Close waits for them (wg).
func (gd *Guard) readLoop() {
	defer gd.wg.Done()
	buf := make([]source.Event, 64)
	for {
		n, err := gd.src.ReadBatch(gd.ctx, buf)
		if err != nil {
			return
		}
		for i := range buf[:n] {
			ev := buf[i]
			buf[i] = source.Event{}
			if ev.ID == 0 { // a notice (an overflow cannot happen with an unlimited queue)
				if ev.Lost != nil && gd.cfg.OnLost != nil {
					gd.cfg.OnLost(ev.Path, ev.Lost)
				}
				ev.Release()
				continue
			}
			slot := false
			if !gd.lateOn() {
				// Without OnLate the reader waits here for a handler: the events behind this
				// one wait in the source (their deadlines running).
				select {
				case gd.sem <- struct{}{}:
					slot = true
				case <-gd.ctx.Done():
					ev.Release() // Close answers it
					continue
				}
			}
			gd.wg.Add(1)
			go gd.decide(ev, slot)
		}
	}
}

// LateMargin is how long before a request's deadline d its late point is (GuardConfig.OnLate),
// embedded: a tenth of d, at least 1 ms, at most 500 ms. Through the daemon it is twice that
// (Guard.LateMargin): the answer must still travel to the daemon, which enforces the deadline,
// and a daemon on a loaded host takes hundreds of milliseconds to acknowledge it (measured:
// up to 600 ms, with 1,000 processes starting at once on 2 vCPUs).
func LateMargin(d time.Duration) time.Duration {
	return min(max(d/10, time.Millisecond), 500*time.Millisecond)
}

// LateMargin is how long before the deadline in force (Deadline) requests have their late
// point: the package's LateMargin of it, twice that through the daemon.
func (gd *Guard) LateMargin() time.Duration {
	m := LateMargin(gd.src.Deadline())
	if gd.cfg.Daemon != "" {
		m *= 2
	}
	return m
}

// lateOn reports whether requests have a late point: OnLate and a deadline.
func (gd *Guard) lateOn() bool { return gd.cfg.OnLate != nil && gd.src.Deadline() > 0 }

// lateAt is r's late point: Guard.LateMargin before its deadline, which runs from the
// kernel read (through the daemon, the daemon's).
func (gd *Guard) lateAt(r *Request) time.Time {
	return r.start().Add(gd.src.Deadline() - gd.LateMargin())
}

// start is when r's deadline started running: the kernel read (Time), or now if unknown.
func (r *Request) start() time.Time {
	if r.Time.IsZero() {
		return time.Now()
	}
	return r.Time
}

// takeSlot waits for a handler until r's late point: false if none was free by then, or the
// Guard closed.
func (gd *Guard) takeSlot(r *Request) bool {
	select {
	case gd.sem <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(time.Until(gd.lateAt(r)))
	defer t.Stop()
	select {
	case gd.sem <- struct{}{}:
		return true
	case <-t.C:
	case <-gd.ctx.Done():
	}
	return false
}

// errNoHandler is the Guard's failure for a request Inline declined when there is no Handler.
var errNoHandler = errors.New("guard: Inline passed the request on, and there is no Handler")

// decide runs the handler for one queued request and answers it. slot: the reader took a
// handler for it (without OnLate); otherwise decide waits for one until r's late point.
func (gd *Guard) decide(ev source.Event, slot bool) {
	defer gd.wg.Done()
	r := newRequest(ev)
	// The Request keeps its own copy of the event: releasing this one leaves it untouched,
	// so its Path, resolved once, stays readable after the answer (Decision.Request).
	defer ev.Release()
	var v Verdict
	by := "handler"
	switch {
	case gd.handler == nil:
		if slot {
			<-gd.sem
		}
		r.Err, v = errNoHandler, gd.OnError()
	case !slot && !gd.takeSlot(r):
		v, by = gd.runLate(r), "late" // no handler was free in time
	default:
		var late bool
		hs := &handlerSlot{sem: gd.sem}
		v, late = gd.runHandler(r, hs)
		hs.release()
		if late {
			v, by = gd.runLate(r), "late"
		}
	}
	v = gd.answer(v)
	// Decided: File gives no more descriptors (ev is released once this returns).
	r.settle()
	switch err := r.ev.Respond(gd.ctx, v.response()); { // r.ev: newRequest's own copy
	case err == nil:
		if by == "late" {
			gd.late.Add(1)
		}
		gd.record(r, v, by)
	case errors.Is(err, source.ErrTooLate):
		gd.record(r, gd.cfg.OnTimeout, "deadline") // too late: the deadline verdict applied
	default:
		gd.record(r, gd.cfg.OnClose, "closed")
	}
}

// handlerSlot is a request's place among the Concurrency handlers, given back once: when its
// handler returns, or before, when the handler waits for what needs no handler (a hash slot:
// workslot.Release through its ctx).
type handlerSlot struct {
	sem  chan struct{}
	done atomic.Bool
}

func (s *handlerSlot) release() {
	if s.done.CompareAndSwap(false, true) {
		<-s.sem
	}
}

// runHandler runs the handler under the deadline (from the kernel read), or with OnLate
// until r's late point. late: its ctx ended first, so OnLate decides. The handler's ctx
// carries slot's release and the request's owner (workslot: the trust Verifier's hash slots
// are shared among owners). A panic in the handler is the Guard's own failure: the
// on-error verdict, with the panic in r.Err.
func (gd *Guard) runHandler(r *Request, slot *handlerSlot) (v Verdict, late bool) {
	defer func() {
		if panicked(r, recover()) {
			v, late = gd.OnError(), false
		}
	}()
	ctx := gd.ctx
	switch {
	case gd.lateOn():
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, gd.lateAt(r))
		defer cancel()
	case gd.src.Deadline() > 0:
		// The deadline in force: through the daemon, the one it granted (capped, or its own
		// for a Guard that asked for none), at which it answers for the Guard.
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, r.start().Add(gd.src.Deadline()))
		defer cancel()
	}
	v = gd.handler(workslot.WithOwner(workslot.WithRelease(ctx, slot.release), r.owner), r)
	if ctx.Err() != nil {
		if gd.lateOn() && gd.ctx.Err() == nil {
			r.Err, r.Note = nil, "" // OnLate decides afresh
			return v, true
		}
		// The handler's deadline ran out (it runs from the kernel read, a hair before the
		// engine's): its answer is too late whatever it says; the deadline verdict holds.
		return gd.cfg.OnTimeout, false
	}
	return v, false
}

// runLate runs OnLate for r. A panic in it is the Guard's own failure, as in a handler.
func (gd *Guard) runLate(r *Request) (v Verdict) {
	defer func() {
		if panicked(r, recover()) {
			v = gd.OnError()
		}
	}()
	return gd.cfg.OnLate(r)
}

// FlushCache forgets every cached allow; call it when the policy changes. It returns once they
// are gone: no access after it returns is skipped on an allow cached before it was called, and
// an answer to an access read before it (decided under the old policy, maybe) is not cached.
// Through the daemon it asks the daemon to withdraw every allow cached in its kernel groups
// (protocol version 6: FlushCache); an error says they may not be gone (the daemon did not
// answer in 10 s, or refused, or the call came from Inline: see GuardConfig.Inline). A daemon of an older version was never asked to cache
// (GuardConfig.Cache), and a Guard reconnecting places its marks again, which flushes them.
func (gd *Guard) FlushCache() error {
	if err := notOnSourceGoroutine("FlushCache"); err != nil {
		return err
	}
	return gd.src.FlushCache()
}

// sourceFrames are the functions that run the callbacks that, through the daemon, run on the
// goroutine that reads the daemon's replies (Inline on the connection's reader, OnResync and
// OnDisconnected on it or on the one reconnecting): a call there that waits for a reply waits
// for itself.
var sourceFrames = map[string]bool{
	"github.com/fsnotifyd/fsnotifyd/notify.(*Guard).callInline": true,
	"github.com/fsnotifyd/fsnotifyd/notify.callBack":            true,
}

// notOnSourceGoroutine refuses a call named name that waits for the daemon's reply when it is
// made from one of sourceFrames' callbacks — embedded too, where it would not wait, so that a
// program behaves the same both ways.
func notOnSourceGoroutine(name string) error {
	if inFrames(sourceFrames) {
		return fmt.Errorf("guard: %s called from Inline, OnResync or OnDisconnected: through the daemon they run on the goroutine that reads its replies, which %s waits for; call it from another goroutine", name, name)
	}
	return nil
}

// Caches reports whether AllowAndCache is cached: GuardConfig.Cache, and through the daemon a
// daemon of protocol version 6 or later (one that can withdraw it). Through the daemon it may
// change when the Guard reconnects to a restarted daemon of another version.
func (gd *Guard) Caches() bool { return gd.cfg.Cache && gd.src.CacheFlushable() }

// Files reports whether Request.File gives the file: always embedded; through the daemon
// when the Guard asked for files (GuardConfig.NoFiles unset) and the daemon sends them to
// this process's uid (its fd_uid and fd_gid). It may change when the Guard reconnects to a
// restarted daemon of another configuration.
func (gd *Guard) Files() bool { return gd.src.EventFiles() }

// ExemptPid exempts a helper process the handler started (a scanner) and has not reaped: its
// own accesses are allowed at once, never decided, so that the guard cannot wait on itself,
// and so are its session's members' if it leads its own session (see GuardConfig.Exempt).
// Call done when it has exited; once reaped, it is not exempt anyway. An error says the
// process is not exempt: pid is not a live process, or, through the daemon, the daemon runs in
// another pid namespace (its events name processes by pids that are not this process's).
func (gd *Guard) ExemptPid(pid int) (done func(), err error) { return gd.src.Exempt(pid) }

// Spawning brackets the start of helper processes: until end is called, this process's
// direct children are exempt, so that a helper's execve, which comes before ExemptPid can
// name it, does not wait on the guard (see backend.Exemptions.Spawning).
func (gd *Guard) Spawning() (end func()) { return gd.src.Spawning() }

// GuardStats are a Guard's figures. Decided counts the accesses the Guard decided; one that its
// verdicts by kind answered ahead (embedded: answered Allow as soon as it was read, while the
// Guard is its backend's only permission group; docs/security.md) is counted a moment after
// the accessing process got its answer, once the Guard's walk has seen it.
type GuardStats struct {
	Decided, Denied, TimedOut uint64
	// Late counts the accesses OnLate answered (in time): a handler had not decided them by
	// their late point. A guard that counts many is overloaded, or its handlers too slow.
	Late uint64
	// Pending counts the engine group's permission events not yet answered.
	Pending int
	// Engine is the engine group's figures: embedded only (through the daemon they are the
	// daemon's, zero here: see fsnotifyd stats).
	Engine engine.GroupStats
}

// Stats returns the Guard's figures (through the daemon, the engine's are the daemon's:
// see fsnotifyd stats).
func (gd *Guard) Stats() GuardStats {
	es := gd.src.Stats()
	var tabAllowed, tabDenied uint64 // the source's table's decisions (SetKindVerdicts)
	if gd.table != nil {
		tabAllowed, tabDenied = gd.table.Counts()
	}
	return GuardStats{Decided: gd.decided.Load() + tabAllowed + tabDenied, Denied: gd.denied.Load() + tabDenied,
		TimedOut: es.DeadlineExpired, Late: gd.late.Load(), Pending: es.Pending, Engine: es}
}

// Deadline is the deadline in force: GuardConfig.Deadline, or through the daemon the one the
// daemon granted (it caps deadlines at its max_deadline, and gives its own to a Guard that
// asked for none).
func (gd *Guard) Deadline() time.Duration { return gd.src.Deadline() }

// Close answers every pending access with the OnClose verdict, removes the marks, and waits
// for running handlers (whose late answers are discarded). It is idempotent: a second call
// returns once the first one's work is done. It ends the handlers' ctx before it waits: a
// handler that neither returns nor watches its ctx keeps Close waiting (the accesses are
// answered already), and so does one waiting for a Close it had another goroutine call
// (callbacks calling Close themselves are the case below).
//
// Called from one of the Guard's callbacks (a Handler, Inline, OnDecision, OnLate, OnResync,
// OnDisconnected — of any Guard: a program that stops guarding on some request), it cannot
// wait for the goroutine it runs on: it then starts the same steps and returns at once;
// they complete once the callback has returned.
//
// Through a daemon that did not end the session in time (stopped, stuck), it returns an
// error matching client.ErrByeUnanswered, once its work is done (not from a callback).
func (gd *Guard) Close() error {
	if !gd.closed.CompareAndSwap(false, true) {
		if !inCallback() {
			<-gd.closeDone // another Close is at work: done when it is
			return gd.closeErr
		}
		return nil
	}
	if inCallback() {
		go gd.finishClose()
		return nil
	}
	gd.finishClose()
	return gd.closeErr
}

// finishClose is Close's work, after its first step (closed set).
func (gd *Guard) finishClose() {
	gd.closeErr = gd.src.Close() // answers pending events; handlers' answers then fail (closed)
	gd.cancel()
	gd.wg.Wait()
	gd.releaseExempt()
	close(gd.closeDone)
}

// callBack runs f, a callback of the source's (OnResync, OnDisconnected), in a frame that
// inCallback recognizes.
//
//go:noinline
func callBack(f func()) { f() }

// callbackFrames are the functions that run a Guard's callbacks: a goroutine with one of them
// on its stack is a Guard's (or its source's) that Close would wait for.
var callbackFrames = map[string]bool{
	"github.com/fsnotifyd/fsnotifyd/notify.(*Guard).decide":     true, // Handler, OnLate, OnDecision
	"github.com/fsnotifyd/fsnotifyd/notify.(*Guard).readLoop":   true,
	"github.com/fsnotifyd/fsnotifyd/notify.(*Guard).callInline": true, // Inline
	"github.com/fsnotifyd/fsnotifyd/notify.(*Guard).record":     true, // OnDecision
	"github.com/fsnotifyd/fsnotifyd/notify.callBack":            true, // OnResync, OnDisconnected
}

// inCallback reports whether the calling goroutine runs one of a Guard's callbacks (its own
// stack holds a frame of callbackFrames). Only Close asks, once (and FlushCache and SetEvents,
// sourceFrames): a walk of the stack there costs the decisions nothing.
func inCallback() bool { return inFrames(callbackFrames) }

// inFrames reports whether the calling goroutine's stack holds a frame of one of names.
func inFrames(names map[string]bool) bool {
	pcs := make([]uintptr, 64)
	for {
		n := runtime.Callers(2, pcs)
		if n < len(pcs) {
			pcs = pcs[:n]
			break
		}
		pcs = make([]uintptr, 2*len(pcs)) // a deep handler: the runner is at the bottom
	}
	frames := runtime.CallersFrames(pcs)
	for {
		f, more := frames.Next()
		if names[f.Function] {
			return true
		}
		if !more {
			return false
		}
	}
}
