//go:build linux

// Package sysattr gives a guard policy (internal/policy) the attributes of the running
// system: a process's from /proc, through backend's readers (Process), and a file's from an
// open descriptor, through internal/trust's Verifier and internal/ftype (Object). A guard
// builds one Process and one Object per decision; `fsnotifyd policy explain` builds them for
// a live process and a file it opens.
//
// Each attribute is read on first use, while the process waits, and remembered for the rest
// of the decision (policy.Decide asks each at most once; an audit line shows what it read).
// A Process or Object serves one decision at a time: it takes no lock and must not be used
// from two goroutines at once; what it remembers may be read after Decide returns, on the
// same goroutine or after a synchronizing hand-off.
//
// # No self-deadlock
//
// Nothing here opens a path that an untrusted user chose. Process reads /proc (which takes
// no fanotify permission marks) and, for trusted_exe=, opens /proc/PID/exe only when the
// executable is verified and its path is listed in the trust database: a file the package
// manager or root put there (with Process.CacheOnly, the guard's inline attempt on its
// kernel-reading goroutine, that open is O_PATH, which no permission event follows). That
// open, and every read of a descriptor, is made by the guard's own process, which the backend exempts from its own decisions. Object reads only
// the descriptor it is given (pread, fstat, fstatfs): it never moves the
// descriptor's offset, which the accessing process may share. Hashing stops at the context's
// deadline (the guard's late point), and with Late nothing is hashed; the file's head for
// ftype= is at most ftype.MaxRead bytes.
//
// The package starts no goroutine and takes no lock.
package sysattr

import (
	"cmp"
	"context"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/fsnotifyd/fsnotifyd/internal/format"
	"github.com/fsnotifyd/fsnotifyd/internal/ftype"
	"github.com/fsnotifyd/fsnotifyd/internal/policy"
	"github.com/fsnotifyd/fsnotifyd/internal/procfs"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/trust"
)

// Trust is what trusted= and trusted_exe= verify against: the trust database a decision pinned
// (a guard loads its DB pointer once per decision, so a reload in the middle cannot mix two),
// and the guard's one Verifier, whose hash cache serves every decision and every DB.
type Trust struct {
	// DB is the trust database; nil trusts nothing (every file is not-listed).
	DB *trust.DB
	// Verifier hashes and remembers digests; nil uses a Verifier of this Process or Object's
	// own, with no cache to speak of (policy explain).
	Verifier *trust.Verifier
}

func (t *Trust) verifier() *trust.Verifier {
	if t.Verifier == nil {
		t.Verifier = trust.NewVerifier(trust.VerifierConfig{CacheEntries: 1})
	}
	return t.Verifier
}

// verify verifies the file open as fd, which the kernel reported at path. A deadline is the
// only error (the guard's on-timeout verdict): any other failure to verify is untrusted, as
// policy.Object.Trusted says, and is kept in the Result's error for the audit line.
func (t *Trust) verify(ctx context.Context, path string, fd int) (trusted bool, res trust.Result, why, err error) {
	if t.DB == nil {
		return false, trust.Result{Status: trust.NotListed}, nil, nil
	}
	res, why = t.verifier().Verify(ctx, t.DB, path, fd)
	if why != nil && (errors.Is(why, context.DeadlineExceeded) || errors.Is(why, context.Canceled)) {
		return false, res, why, why
	}
	return res.Trusted(), res, why, nil
}

// verifyCached is verify from the hash cache only: trust.ErrNotCached (returned as the error,
// like a deadline: no verdict) when the file would have to be hashed; late (a decision at its
// late point), errLate instead: unverifiable, a condition that may hold.
func (t *Trust) verifyCached(path string, fd int, late bool) (trusted bool, res trust.Result, why, err error) {
	if t.DB == nil {
		return false, trust.Result{Status: trust.NotListed}, nil, nil
	}
	res, why = t.verifier().VerifyCached(t.DB, path, fd)
	if errors.Is(why, trust.ErrNotCached) {
		if late {
			why = errLate
		}
		return false, res, why, why
	}
	return res.Trusted(), res, why, nil
}

func orBackground(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

// Process is a policy.Process for the process Pid, read from /proc (backend's readers).
type Process struct {
	Pid int32
	// Ctx bounds TrustedExe's hashing: the guard's deadline. nil: no bound.
	Ctx context.Context
	// Trust is what TrustedExe verifies against.
	Trust Trust
	// CacheOnly: TrustedExe never reads the executable's content, nor opens it for reading:
	// it identifies the file through an O_PATH descriptor of /proc/PID/exe (which causes no
	// permission event, so the kernel-reading goroutine may do it) and answers from the hash
	// cache; when the answer needs the file hashed, its error is trust.ErrNotCached.
	CacheOnly bool
	// Late: the decision is made at its late point (notify.GuardConfig.OnLate), with no time
	// to hash. TrustedExe answers as with CacheOnly, and an executable that would have to be
	// hashed is policy.ErrUnverifiable (errLate): trusted_exe= may hold.
	Late bool

	done              uint16 // attributes read (bits: 1 << policy.Attr)
	comm              string
	uid               uint32
	groups            []uint32
	exe               procfs.Exe
	ppid              int32
	ancestry          policy.Ancestry
	exeTrusted        bool
	exeTrust          trust.Result
	exeTrustWhy       error // why the executable could not be verified (it is then untrusted)
	commErr, uidErr   error
	groupsErr, exeErr error
	ppidErr, ancErr   error
	exeTrustErr       error // TrustedExe's error: a deadline, or reading Exe failed
}

var _ policy.Process = (*Process)(nil)

// once runs read the first time attr is asked for.
func (p *Process) once(attr policy.Attr, read func()) {
	if bit := uint16(1) << attr; p.done&bit == 0 {
		p.done |= bit
		read()
	}
}

// SetExe gives Exe its answer, read elsewhere (a guard's Request, which names it in the audit
// line), unless Exe was read already: TrustedExe then verifies that executable and /proc is
// not read twice.
func (p *Process) SetExe(path string, verified bool, err error) {
	p.once(policy.AttrExe, func() { p.exe, p.exeErr = procfs.Exe{Path: path, Verified: verified}, err })
}

// Read reports whether attr was read (for an audit line: what a decision looked at).
func (p *Process) Read(attr policy.Attr) bool { return p.done&(uint16(1)<<attr) != 0 }

func (p *Process) Comm() (string, error) {
	p.once(policy.AttrComm, func() { p.comm, p.commErr = procfs.ReadComm(p.Pid) })
	return p.comm, p.commErr
}

func (p *Process) UID() (uint32, error) {
	p.once(policy.AttrUID, func() { p.uid, p.uidErr = procfs.ReadEUID(p.Pid) })
	return p.uid, p.uidErr
}

func (p *Process) Groups() ([]uint32, error) {
	p.once(policy.AttrGID, func() { p.groups, p.groupsErr = procfs.ReadGroups(p.Pid) })
	return p.groups, p.groupsErr
}

// GroupsMayLack reports whether Groups may lack a group the process had (procfs.GroupsMayLack).
func (p *Process) GroupsMayLack() (bool, error) { return procfs.GroupsMayLack(p.Pid) }

func (p *Process) Exe() (string, bool, error) {
	p.once(policy.AttrExe, func() { p.exe, p.exeErr = procfs.ReadExecutable(p.Pid) })
	return p.exe.Path, p.exe.Verified, p.exeErr
}

// ExeUnknown reports whether Exe, not verified, may be any program (procfs.ExeUnknown).
func (p *Process) ExeUnknown() (bool, error) {
	if _, verified, err := p.Exe(); err != nil || verified {
		return false, err
	}
	return procfs.ExeUnknown(p.Pid, p.exe)
}

func (p *Process) PPid() (int32, error) {
	p.once(policy.AttrPPID, func() { p.ppid, p.ppidErr = procfs.ReadPPid(p.Pid) })
	return p.ppid, p.ppidErr
}

// Ancestors reads at most policy.MaxAncestors ancestors (procfs.ReadAncestry).
func (p *Process) Ancestors() (policy.Ancestry, error) {
	p.once(policy.AttrAncestor, func() {
		list, complete, err := procfs.ReadAncestry(p.Pid, policy.MaxAncestors)
		if err != nil {
			p.ancErr = err
			return
		}
		p.ancestry = policy.Ancestry{List: make([]policy.Ancestor, len(list)), Complete: complete}
		for i, a := range list {
			p.ancestry.List[i] = policy.Ancestor{Pid: a.Pid, Exe: a.Exe, Verified: a.Verified, Unreadable: a.Unreadable, Unknown: a.Unknown}
		}
	})
	return p.ancestry, p.ancErr
}

// TrustedExe verifies the file the process runs against the trust database: by the verified
// path of its executable (Exe), and the content of that very file, read through
// /proc/PID/exe. An executable that is not verified (deleted, replaced, from another mount
// namespace) or not listed is untrusted, and nothing is opened.
func (p *Process) TrustedExe() (bool, error) {
	p.once(policy.AttrTrustedExe, func() { p.exeTrusted, p.exeTrustErr = p.trustedExe() })
	return p.exeTrusted, p.exeTrustErr
}

func (p *Process) trustedExe() (bool, error) {
	exe, verified, err := p.Exe()
	if err != nil {
		return false, err
	}
	p.exeTrust = trust.Result{Status: trust.NotListed}
	if !verified || p.Trust.DB == nil {
		return false, nil
	}
	if Loaders()[exe] {
		// ld.so PROGRAM: the loader maps PROGRAM itself (an open, not an exec), and runs it
		// as the process's executable. The loader is trusted, but what runs is whatever it
		// loaded.
		p.exeTrust, p.exeTrustWhy = trust.Result{Status: trust.Unverifiable}, errThroughLoader
		return false, errThroughLoader
	}
	var buf [4]trust.Entry
	if len(p.Trust.DB.Lookup(exe, buf[:0])) == 0 {
		return false, nil // not listed: nothing to open
	}
	// The file the process runs, whatever its path leads to now; the path must still lead
	// to it for the entries of that path to apply. Cache-only, an O_PATH descriptor: fstat
	// works on it, and opening it asks no fanotify listener.
	cacheOnly := p.CacheOnly || p.Late
	flags := sys.O_RDONLY | sys.O_NONBLOCK
	if cacheOnly {
		flags = sys.O_PATH
	}
	fd, err := sys.Open("/proc/"+strconv.Itoa(int(p.Pid))+"/exe", flags, 0)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ESRCH) {
			return false, fmt.Errorf("process %d: %w", p.Pid, os.ErrProcessDone)
		}
		return false, err
	}
	defer sys.Close(fd)
	if same, err := sameFile(fd, exe); err != nil || !same {
		p.exeTrust = trust.Result{Status: trust.Unverifiable}
		p.exeTrustWhy = errors.New("the executable's path no longer leads to it")
		return false, nil
	}
	verify := func() (bool, trust.Result, error, error) { return p.Trust.verify(orBackground(p.Ctx), exe, fd) }
	if cacheOnly {
		verify = func() (bool, trust.Result, error, error) { return p.Trust.verifyCached(exe, fd, p.Late) }
	}
	trusted, res, why, err := verify()
	p.exeTrust, p.exeTrustWhy = res, why
	return trusted, err
}

// errThroughLoader is trusted_exe= of a process that runs the dynamic loader directly (ld.so
// PROGRAM): the program it runs is not its executable, and may be any: the condition may hold.
var errThroughLoader = fmt.Errorf("%w: the process runs the dynamic loader directly (ld.so PROGRAM): the program it runs is not its executable", policy.ErrUnverifiable)

// Loaders returns the paths (symbolic links resolved) of this system's dynamic loaders: the
// program interpreter (PT_INTERP) of /bin/sh and of /usr/bin/env, and the files named ld-*.so*
// and ld64.so.* in /lib*, /usr/lib* and their multiarch directories. A process whose verified
// executable is one of them was started as ld.so PROGRAM (a normal exec of a program leaves
// the program as the process's executable, not its interpreter). Read once.
var Loaders = sync.OnceValue(func() map[string]bool {
	found := map[string]bool{}
	add := func(p string) {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			found[r] = true
		}
	}
	for _, prog := range []string{"/bin/sh", "/usr/bin/env"} {
		if f, err := elf.Open(prog); err == nil {
			for _, ph := range f.Progs {
				if ph.Type == elf.PT_INTERP {
					b := make([]byte, min(ph.Filesz, 4096))
					if n, _ := ph.ReadAt(b, 0); n > 0 {
						add(strings.TrimRight(string(b[:n]), "\x00"))
					}
				}
			}
			f.Close()
		}
	}
	for _, dir := range []string{"/lib*", "/usr/lib*", "/lib*/*-linux-gnu*", "/usr/lib*/*-linux-gnu*", "/lib*/*-linux-musl*", "/usr/lib*/*-linux-musl*"} {
		for _, name := range []string{"ld-*.so*", "ld64.so.*"} {
			m, _ := filepath.Glob(filepath.Join(dir, name))
			for _, p := range m {
				add(p)
			}
		}
	}
	return found
})

// errLate is the content a decision made at its late point (Object.Late, Process.Late) did
// not hash: unverifiable, so that a condition on it may hold (a deny rule denies, an allow
// rule is passed over) and whoever made the guard late cannot pick the verdict.
var errLate = fmt.Errorf("%w: not hashed: decided at the guard's late point, a margin before the deadline (no handler had decided it in time), and its digest is not in the hash cache", policy.ErrUnverifiable)

// sameFile reports whether path leads, through the lookup caches only (never asking the
// filesystem, as procfs.ReadExe verifies), to the file open as fd.
func sameFile(fd int, path string) (bool, error) {
	st, err := sys.Fstat(fd)
	if err != nil {
		return false, err
	}
	pfd, err := sys.Openat2(sys.AT_FDCWD, path, sys.O_PATH, 0, sys.RESOLVE_CACHED)
	if err != nil {
		return false, nil
	}
	defer sys.Close(pfd)
	at, err := sys.Statx(pfd, "", sys.AT_EMPTY_PATH|sys.AT_STATX_DONT_SYNC)
	return err == nil && at.Dev == st.Dev && at.Ino == st.Ino, nil
}

// ExeTrust returns the verification of the executable, if TrustedExe ran: for the audit line.
func (p *Process) ExeTrust() (*format.AuditTrust, bool) {
	if !p.Read(policy.AttrTrustedExe) || p.exeErr != nil {
		return nil, false
	}
	return format.NewAuditTrust(p.exeTrust, cmp.Or(p.exeTrustErr, p.exeTrustWhy)), true
}

// Object is a policy.Object for the file open as Fd (the event's descriptor; Object never
// closes it), which the kernel reported at Path ("" if unknown: then no trust entry applies).
type Object struct {
	Fd   int
	Path string
	// Ctx bounds hashing: the guard's deadline. nil: no bound.
	Ctx context.Context
	// Trust is what Trusted verifies against.
	Trust Trust
	// CacheOnly: Trusted never reads the file's content; when the answer needs it hashed, its
	// error is trust.ErrNotCached (the guard's inline attempt, which must not block).
	CacheOnly bool
	// Late: the decision is made at its late point (notify.GuardConfig.OnLate), with no time
	// to hash: SHA256 and Trusted answer from the hash cache, and content that would have to
	// be hashed is policy.ErrUnverifiable (errLate). FileType still reads the file's head.
	Late bool

	done     uint16
	st       sys.Stat
	stErr    error
	typ      ftype.Type
	typErr   error
	sum      [32]byte
	sumErr   error
	trusted  bool
	trust    trust.Result
	trustWhy error // why the file could not be verified (it is then untrusted)
	trustErr error // a deadline
	writable bool
	mountErr error
}

var _ policy.Object = (*Object)(nil)

func (o *Object) once(attr policy.Attr, read func()) {
	if bit := uint16(1) << attr; o.done&bit == 0 {
		o.done |= bit
		read()
	}
}

// Read reports whether attr was read.
func (o *Object) Read(attr policy.Attr) bool { return o.done&(uint16(1)<<attr) != 0 }

// stat is the file's fstat, once (bit 0 is no Attr's).
func (o *Object) stat() (sys.Stat, error) {
	if o.done&1 == 0 {
		o.done |= 1
		o.st, o.stErr = sys.Fstat(o.Fd)
	}
	return o.st, o.stErr
}

// regular returns nil for a regular file, policy.ErrNoValue for anything else.
func (o *Object) regular() error {
	st, err := o.stat()
	if err != nil {
		return err
	}
	if st.Mode&sys.S_IFMT != sys.S_IFREG {
		return policy.ErrNoValue
	}
	return nil
}

func (o *Object) FileType() (ftype.Type, error) {
	o.once(policy.AttrFtype, func() {
		if o.typErr = o.regular(); o.typErr == nil {
			o.typ, o.typErr = ftype.FromFd(o.Fd)
		}
	})
	return o.typ, o.typErr
}

// SHA256 is the file's digest from the hash cache, or hashed (in one of the Verifier's hash
// slots) until Ctx ends. Content that cannot be read as one version (trust.ErrOpenForWrite,
// trust.ErrChanged), or, with Late, that would have to be hashed, is policy.ErrUnverifiable:
// whoever writes a file chooses its state and its size, and the guard's --on-error verdict
// (allow, at times) must not be theirs to pick. A hash that Ctx ends (too long, or waiting
// for a slot behind others) returns Ctx's error: the guard then decides at its late point,
// with Late, where the content is unverifiable — the rules', not --on-timeout's, verdict.
func (o *Object) SHA256() ([32]byte, error) {
	o.once(policy.AttrSHA256, func() {
		if o.sumErr = o.regular(); o.sumErr != nil {
			return
		}
		v := o.Trust.verifier()
		s, err := v.CachedSums(o.Fd, trust.SHA256)
		switch {
		case errors.Is(err, trust.ErrNotCached) && o.Late:
			err = errLate
		case errors.Is(err, trust.ErrNotCached):
			s, err = v.Sums(orBackground(o.Ctx), o.Fd, trust.SHA256)
		}
		o.sum, o.sumErr = s.SHA256, err
		if errors.Is(err, trust.ErrOpenForWrite) || errors.Is(err, trust.ErrChanged) {
			o.sumErr = fmt.Errorf("%w: %w", policy.ErrUnverifiable, err)
		}
	})
	return o.sum, o.sumErr
}

func (o *Object) Trusted() (bool, error) {
	o.once(policy.AttrTrusted, func() {
		if o.CacheOnly || o.Late {
			o.trusted, o.trust, o.trustWhy, o.trustErr = o.Trust.verifyCached(o.Path, o.Fd, o.Late)
			return
		}
		o.trusted, o.trust, o.trustWhy, o.trustErr = o.Trust.verify(orBackground(o.Ctx), o.Path, o.Fd)
	})
	return o.trusted, o.trustErr
}

// Nameless reports whether the file is a regular file with no link and no content (an
// unlinked file or an O_TMPFILE, empty), by the fstat of its descriptor: policy.Request's
// Nameless. Only on a filesystem whose content only the kernel writes (sys.WritesSeen:
// tmpfs, ext2/3/4, xfs, btrfs), where the size fstat reports is the kernel's own: never FUSE
// or a network filesystem, whose server reports a size and serves any content. false when
// fstat or fstatfs fails.
func (o *Object) Nameless() bool {
	st, err := o.stat()
	if err != nil || st.Mode&sys.S_IFMT != sys.S_IFREG || st.Nlink != 0 || st.Size != 0 {
		return false
	}
	fs, err := sys.Fstatfs(o.Fd)
	return err == nil && sys.WritesSeen(fs.Type)
}

func (o *Object) Size() (uint64, error) {
	if err := o.regular(); err != nil {
		return 0, err
	}
	o.done |= uint16(1) << policy.AttrSize
	return o.st.Size, nil
}

// MountWritable is from fstatfs(2) of the descriptor: the flags of the mount it was opened
// through, with its filesystem's. A read-only one counts only if the mount is one of this
// guard's mount namespace (sys.StatMount finds it here), whose mounts only root makes: any
// user may make a read-only bind mount of a directory in a mount namespace of their own
// (unshare -Urm) and run a file through it, or through a detached mount (open_tree(2)), while
// the file stays writable through every other mount. Such a mount counts as writable, as
// does a read-only mount where statmount(2) is missing (Linux before 6.8): whether it is
// root's cannot be told. So does a read-only mount here whose content a user chooses, which
// root's helpers mount for users: a filesystem on a loop device whose image a user may write
// (udisks), on an nbd or ublk device, or FUSE (fusermount).
func (o *Object) MountWritable() (bool, error) {
	o.once(policy.AttrMountWritable, func() { o.writable, o.mountErr = mountWritable(o.Fd) })
	return o.writable, o.mountErr
}

func mountWritable(fd int) (bool, error) {
	fs, err := sys.Fstatfs(fd)
	if err != nil {
		return false, err
	}
	if fs.Flags&sys.ST_RDONLY == 0 {
		return true, nil
	}
	st, err := sys.Fstat(fd)
	if err != nil {
		return false, err
	}
	if !st.MntIDUnique {
		return true, nil // no unique mount id (before 6.8): no statmount either
	}
	ms, err := sys.StatMount(st.MntID)
	switch {
	case errors.Is(err, sys.ErrMountElsewhere) || errors.Is(err, syscall.ENOSYS):
		return true, nil
	case err != nil:
		return false, err
	case !ms.ReadOnly:
		return true, nil
	}
	// Read-only, but is what it reads the filesystem's alone? Not on a loop device whose image
	// a user may write (a desktop user's own image, mounted read-only for them by udisks), nor
	// an nbd or ublk device (sys.DeviceWritesSeen), nor FUSE, whose server (fusermount lets
	// any user mount one here) answers each read as it likes.
	return fs.Type == sys.FUSE_SUPER_MAGIC || !sys.DeviceWritesSeen(st.Dev), nil
}

// Audit returns the audit line's fields for what was read of the file and of p's executable
// (p may be nil).
func (o *Object) Audit(p *Process) format.AuditAttrs {
	var a format.AuditAttrs
	if o != nil {
		if o.Read(policy.AttrFtype) && o.typErr == nil {
			a.FileType = o.typ.String()
		}
		switch {
		case o.Read(policy.AttrSHA256) && o.sumErr == nil:
			a.SHA256 = hex.EncodeToString(o.sum[:])
		case o.Read(policy.AttrSHA256) && errors.Is(o.sumErr, policy.ErrUnverifiable):
			a.SHA256Unverifiable = o.sumErr.Error()
		case o.trust.Sums.Have&trust.SHA256 != 0:
			a.SHA256 = hex.EncodeToString(o.trust.Sums.SHA256[:])
		}
		if o.Read(policy.AttrTrusted) {
			a.Trust = format.NewAuditTrust(o.trust, cmp.Or(o.trustErr, o.trustWhy))
		}
	}
	if p != nil {
		a.ExeTrust, _ = p.ExeTrust()
	}
	return a
}
