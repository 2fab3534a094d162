//go:build linux

package main

import (
	"context"
	"errors"
	"os"

	"github.com/fsnotifyd/fsnotifyd/internal/format"
	"github.com/fsnotifyd/fsnotifyd/internal/ftype"
	"github.com/fsnotifyd/fsnotifyd/internal/policy"
	"github.com/fsnotifyd/fsnotifyd/internal/procfs"
	"github.com/fsnotifyd/fsnotifyd/internal/sysattr"
	"github.com/fsnotifyd/fsnotifyd/internal/trust"
	"github.com/fsnotifyd/fsnotifyd/notify"
)

// The attributes a guard's decision reads, for policy.Decide: a guardProc and a guardObj per
// decision, each used by the one goroutine deciding.
//
// A decision is first tried inline, on the goroutine that reads the kernel (it must never
// block): there the attributes that read a file's content (ftype=, sha256=, trusted=,
// trusted_exe=: policy.Attr.ReadsContent) answer errSlow (trusted= and trusted_exe= only when
// the digest is not in the hash cache), and a decision that needs one is
// made again from the start by the handler, off that goroutine, under the deadline, with all
// of them. Rules decided by event, path, process ids, size or mount flags stay inline.
// A decision no handler made by its late point (notify.GuardConfig.OnLate) is made once more,
// readLate: everything is read but what would need hashing (sysattr's Late), which is
// unverifiable, so that a condition on it may hold.

// readMode is how a decision reads the attributes that need a file's content.
type readMode uint8

const (
	readInline  readMode = iota // on the kernel reader: errSlow (trusted=, trusted_exe=: unless cached)
	readHandler                 // a handler: all of them, under the handler's ctx
	readLate                    // at the late point: ftype= read, digests from the hash cache only
)

// errSlow: the inline attempt needs an attribute that reads content.
var errSlow = errors.New("needs the file's content: decided off the kernel-reading goroutine")

// errNoFd: the event has no descriptor (through the daemon), so the file cannot be read.
var errNoFd = errors.New("the event has no file descriptor to read the file from (through the daemon, content keys are not available)")

// guardProc is the accessing process. Comm, UID, Groups and Exe are notify.Request's (read once
// and remembered there, for the audit line); the rest are sysattr.Process's.
type guardProc struct {
	r    *notify.Request
	fast bool // readInline
	sp   sysattr.Process
}

func (p *guardProc) Comm() (string, error) { return p.r.LookupComm() }
func (p *guardProc) UID() (uint32, error) {
	u, err := p.r.LookupUid()
	return uint32(u), err
}
func (p *guardProc) Groups() ([]uint32, error)    { return p.r.Groups() }
func (p *guardProc) GroupsMayLack() (bool, error) { return p.sp.GroupsMayLack() }
func (p *guardProc) Exe() (string, bool, error)   { return p.r.Exe() }
func (p *guardProc) ExeUnknown() (bool, error)    { return p.r.ExeUnknown() }
func (p *guardProc) PPid() (int32, error)         { return procfs.ReadPPid(int32(p.r.Pid)) }
func (p *guardProc) Ancestors() (policy.Ancestry, error) {
	return p.sp.Ancestors()
}

// TrustedExe, inline, answers from the hash cache when it can (sysattr.Process.CacheOnly:
// /proc/PID/exe opened O_PATH, which asks no listener, then fstat) and is
// errSlow only when the executable must be hashed.
func (p *guardProc) TrustedExe() (bool, error) {
	p.sp.SetExe(p.r.Exe()) // the Request's, which the audit line names
	ok, err := p.sp.TrustedExe()
	if p.fast && errors.Is(err, trust.ErrNotCached) {
		return false, errSlow
	}
	return ok, err
}

// guardObj is the file, read from the event's descriptor: inline, the event's own
// (Request.InlineFd: open until the answer is written, no dup); in a handler, a duplicate
// (Request.File), taken on first use and closed by close.
//
// The sysattr.Object is held by value (o points at obj once it is set up): an inline
// decision's guardObj lives in a pooled decideState, so a trusted= decision from the hash
// cache allocates nothing on the kernel reader. (It allocated the 568-byte Object per
// decision: about one garbage collection per few thousand execs under bench/exec.sh, whose
// stop-the-world preempted the reader in the middle of a decision; docs/design/performance.md,
// h9-exec.)
type guardObj struct {
	r     *notify.Request
	fast  bool // readInline
	late  bool // readLate
	ctx   context.Context
	trust sysattr.Trust
	f     *os.File
	o     *sysattr.Object // nil, or &obj
	obj   sysattr.Object
	err   error
}

func (g *guardObj) get() (*sysattr.Object, error) {
	if g.o == nil && g.err == nil {
		fd := -1
		if g.fast {
			fd = g.r.InlineFd()
		} else if g.f = g.r.File(); g.f != nil {
			fd = int(g.f.Fd())
		}
		if fd < 0 {
			g.err = errNoFd
		} else {
			g.obj = sysattr.Object{Fd: fd, Path: g.r.Path(), Ctx: g.ctx, Trust: g.trust, CacheOnly: g.fast, Late: g.late}
			g.o = &g.obj
		}
	}
	return g.o, g.err
}

func (g *guardObj) close() {
	if g.f != nil {
		g.f.Close()
	}
}

func (g *guardObj) FileType() (ftype.Type, error) {
	if g.fast {
		return ftype.Type{}, errSlow
	}
	o, err := g.get()
	if err != nil {
		return ftype.Type{}, err
	}
	return o.FileType()
}

func (g *guardObj) SHA256() ([32]byte, error) {
	if g.fast {
		return [32]byte{}, errSlow
	}
	o, err := g.get()
	if err != nil {
		return [32]byte{}, err
	}
	return o.SHA256()
}

// Trusted, inline, answers from the hash cache when it can (an fstat of the descriptor, no
// content read: as cheap as Size) and is errSlow only when the file must be
// hashed. An exec of a trusted binary seen before is then decided on the kernel reader, with
// no hand-off to a handler goroutine.
func (g *guardObj) Trusted() (bool, error) {
	o, err := g.get()
	if err != nil {
		return false, err
	}
	ok, err := o.Trusted()
	if g.fast && errors.Is(err, trust.ErrNotCached) {
		return false, errSlow
	}
	return ok, err
}

// nameless is policy.Request's Nameless, for an open whose path is unknown (an fstat of the
// event's descriptor, inline too: as cheap as Size).
func (g *guardObj) nameless() bool {
	o, err := g.get()
	return err == nil && o.Nameless()
}

func (g *guardObj) Size() (uint64, error) {
	o, err := g.get()
	if err != nil {
		return 0, err
	}
	return o.Size()
}

func (g *guardObj) MountWritable() (bool, error) {
	o, err := g.get()
	if err != nil {
		return false, err
	}
	return o.MountWritable()
}

// audit is what the decision read of the file and of the executable, for the audit line.
func (g *guardObj) audit(p *guardProc) format.AuditAttrs {
	return g.o.Audit(&p.sp) // a nil Object reports nothing of the file
}
