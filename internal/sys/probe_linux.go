package sys

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Probes make the real call on a private object and classify the kernel's answer. They never
// mark anything another process can reach:
//   - inode marks go on a memfd, an anonymous inode only this process can open;
//   - mark types and event bits that need a real filesystem (FAN_MARK_FILESYSTEM, FAN_RENAME)
//     are probed with FAN_MARK_REMOVE on the memfd: the kernel validates flags and mask before
//     it looks the mark up, so ENOENT ("no such mark") proves it accepted them, EINVAL that it
//     did not, and nothing is ever added;
//   - ProbePreAccess puts an ignore mark (which generates no events) on the caller's path.
// Every group is closed before the probe returns.

type probeResult struct {
	support Support
	err     error
}

type probeSlot struct {
	mu     sync.Mutex
	cached atomic.Pointer[probeResult] // nil until a Supported or Unsupported answer
}

var probeSlots [numFeatures]probeSlot

// Probe reports whether the running kernel supports f. The error is nil when Supported and
// otherwise a *FeatureError saying what is missing (Unsupported: errors.Is(err,
// ErrNotSupported)) or why the probe could not tell (Unknown). Supported and Unsupported are
// cached for the life of the process; concurrent callers wait for one probe. After the first
// answer a call is an atomic load.
func Probe(f Feature) (Support, error) {
	if f <= 0 || f >= numFeatures {
		return Unknown, &FeatureError{Feature: f.String(), Err: errors.New("no such feature")}
	}
	slot := &probeSlots[f]
	if r := slot.cached.Load(); r != nil {
		return r.support, r.err
	}
	slot.mu.Lock()
	defer slot.mu.Unlock()
	if r := slot.cached.Load(); r != nil {
		return r.support, r.err
	}
	s, cause := probeFuncs[f]()
	r := &probeResult{support: s, err: featureError(f.String(), s, "kernel", cause)}
	if s != Unknown {
		slot.cached.Store(r)
	}
	return r.support, r.err
}

// Require returns nil when f is supported and Probe's *FeatureError otherwise.
func Require(f Feature) error {
	_, err := Probe(f)
	return err
}

// featureError builds the error for a probe answer; by names who decided ("kernel",
// "filesystem").
func featureError(feature string, s Support, by string, cause error) error {
	switch s {
	case Supported:
		return nil
	case Unsupported:
		return &FeatureError{Feature: feature, Err: fmt.Errorf("%w by this %s: %w", ErrNotSupported, by, cause)}
	}
	if cause == nil {
		cause = errors.New("probe gave no answer")
	}
	return &FeatureError{Feature: feature, Err: fmt.Errorf("cannot tell whether supported: %w", cause)}
}

// classify maps a probe call's error to an answer: success is Supported; EINVAL (unknown flag
// or bit), ENOSYS (no such system call) and EOPNOTSUPP are Unsupported; anything else (EPERM,
// EACCES, ENOMEM, EMFILE, ENFILE ...) says nothing about the kernel: Unknown.
func classify(err error) Support {
	switch {
	case err == nil:
		return Supported
	case errors.Is(err, syscall.EINVAL), errors.Is(err, syscall.ENOSYS), errors.Is(err, syscall.EOPNOTSUPP):
		return Unsupported
	}
	return Unknown
}

var probeFuncs = [numFeatures]func() (Support, error){
	FeatureFanotify:        func() (Support, error) { return probeInit(FAN_CLASS_NOTIF) },
	FeatureInotify:         probeInotify,
	FeatureClassContent:    func() (Support, error) { return probeMemfdMark(FAN_CLASS_CONTENT, FAN_MARK_ADD, FAN_OPEN_PERM) },
	FeatureClassPreContent: func() (Support, error) { return probeMemfdMark(FAN_CLASS_PRE_CONTENT, FAN_MARK_ADD, FAN_OPEN_PERM) },
	FeaturePreAccess:       probePreAccessKernel,
	FeatureReportFID:       func() (Support, error) { return probeInit(FAN_REPORT_FID) },
	FeatureReportDFIDName:  func() (Support, error) { return probeInit(FAN_REPORT_DFID_NAME) },
	FeatureReportTargetFID: func() (Support, error) { return probeInit(FAN_REPORT_DFID_NAME_TARGET) },
	FeatureRename:          func() (Support, error) { return probeMemfdMark(FAN_REPORT_DFID_NAME, FAN_MARK_REMOVE, FAN_RENAME) },
	FeatureMarkFilesystem: func() (Support, error) {
		return probeMemfdMark(FAN_CLASS_NOTIF, FAN_MARK_REMOVE|FAN_MARK_FILESYSTEM, FAN_OPEN)
	},
	FeatureMarkEvictable: func() (Support, error) {
		return probeMemfdMark(FAN_CLASS_NOTIF, FAN_MARK_ADD|FAN_MARK_EVICTABLE, FAN_OPEN)
	},
	FeatureMarkIgnore: func() (Support, error) {
		return probeMemfdMark(FAN_CLASS_NOTIF, FAN_MARK_ADD|FAN_MARK_IGNORE, FAN_OPEN)
	},
	FeatureReportPidfd:   func() (Support, error) { return probeInit(FAN_REPORT_PIDFD) },
	FeatureReportFDError: func() (Support, error) { return probeInit(FAN_REPORT_FD_ERROR) },
	FeatureReportMnt:     func() (Support, error) { return probeInit(FAN_REPORT_MNT) },
	FeatureUnprivileged:  probeUnprivileged,
}

// probeInit: fanotify_init validates every init flag, so creating a group answers.
func probeInit(flags uint) (Support, error) {
	fd, _, err := initForProbe(flags)
	if err != nil {
		return classify(err), err
	}
	unix.Close(fd)
	return Supported, nil
}

// initForProbe creates a probe group. Without CAP_SYS_ADMIN the kernel refuses every group
// but FID ones with EPERM, which says nothing about the flags; then the same flags plus
// FAN_REPORT_FID are tried (retried reports it), and a success proves the kernel knows them.
// From such a group only successes are believed: an EINVAL could come from the combination
// with FAN_REPORT_FID rather than from the feature.
func initForProbe(flags uint) (fd int, retried bool, err error) {
	fd, err = FanotifyInit(flags, O_RDONLY)
	if err == nil || !errors.Is(err, syscall.EPERM) || flags&(FAN_CLASS_BITS|FAN_REPORT_FID) != 0 {
		return fd, false, err
	}
	if has, cerr := hasCapSysAdmin(); cerr != nil || has {
		return fd, false, err
	}
	fd2, err2 := FanotifyInit(flags|FAN_REPORT_FID, O_RDONLY)
	if err2 != nil {
		return -1, false, err // the original EPERM: Unknown
	}
	return fd2, true, nil
}

func probeInotify() (Support, error) {
	fd, err := InotifyInit(0)
	if err != nil {
		return classify(err), err
	}
	unix.Close(fd)
	return Supported, nil
}

// probeMemfdMark creates a group with initFlags and applies markFlags/mask to a fresh memfd.
// For FAN_MARK_REMOVE probes ENOENT means the kernel accepted the flags and mask.
func probeMemfdMark(initFlags, markFlags uint, mask uint64) (Support, error) {
	fd, retried, err := initForProbe(initFlags)
	if err != nil {
		return classify(err), err
	}
	defer unix.Close(fd)
	mfd, err := memfdCreate("fsnotifyd-probe")
	if err != nil {
		return Unknown, err
	}
	defer unix.Close(mfd)
	err = FanotifyMark(fd, markFlags, mask, mfd, "")
	if markFlags&FAN_MARK_REMOVE != 0 && errors.Is(err, syscall.ENOENT) {
		return Supported, nil
	}
	if s := classify(err); s != Supported && retried {
		return Unknown, err
	}
	return classify(err), err
}

// probePreAccessKernel: a FAN_PRE_ACCESS mark on the memfd. shmem does not opt in to HSM, so
// a kernel that knows FAN_PRE_ACCESS answers EOPNOTSUPP (the filesystem's refusal), one that
// does not answers EINVAL (unknown bit).
func probePreAccessKernel() (Support, error) {
	s, err := probeMemfdMark(FAN_CLASS_PRE_CONTENT, FAN_MARK_ADD, FAN_PRE_ACCESS)
	if errors.Is(err, syscall.EOPNOTSUPP) {
		return Supported, nil
	}
	return s, err
}

// probeUnprivileged: without CAP_SYS_ADMIN, try a FID group directly (EPERM then means "not
// allowed unprivileged": Unsupported). With it, drop CAP_SYS_ADMIN from the effective set of
// one locked thread (capabilities are per thread) and try there. That goroutine never unlocks
// its thread, so the thread exits with it and its reduced credentials never run other code.
func probeUnprivileged() (Support, error) {
	tryFID := func() (Support, error) {
		fd, err := unix.FanotifyInit(FAN_CLOEXEC|FAN_REPORT_FID, O_RDONLY|O_CLOEXEC)
		if err != nil {
			err = fmt.Errorf("fanotify_init(REPORT_FID) without CAP_SYS_ADMIN: %w", err)
			if errors.Is(err, syscall.EPERM) {
				return Unsupported, err
			}
			return classify(err), err
		}
		unix.Close(fd)
		return Supported, nil
	}
	has, err := hasCapSysAdmin()
	if err != nil {
		return Unknown, err
	}
	if !has {
		return tryFID()
	}
	ch := make(chan probeResult, 1)
	go func() {
		runtime.LockOSThread() // never unlocked, see above
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			ch <- probeResult{Unknown, fmt.Errorf("capget: %w", err)}
			return
		}
		data[unix.CAP_SYS_ADMIN/32].Effective &^= 1 << (unix.CAP_SYS_ADMIN % 32)
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			ch <- probeResult{Unknown, fmt.Errorf("capset: %w", err)}
			return
		}
		s, err := tryFID()
		ch <- probeResult{s, err}
	}()
	r := <-ch
	return r.support, r.err
}

func hasCapSysAdmin() (bool, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false, fmt.Errorf("capget: %w", err)
	}
	return data[unix.CAP_SYS_ADMIN/32].Effective&(1<<(unix.CAP_SYS_ADMIN%32)) != 0, nil
}

// Pre-access support per filesystem, keyed by st_dev (one superblock).
var preAccess struct {
	mu    sync.RWMutex
	cache map[uint64]probeResult
	// probing serializes the slow path so concurrent first calls make one probe.
	probing sync.Mutex
}

// ProbePreAccess reports whether FAN_PRE_ACCESS marks work on the filesystem holding path: the
// kernel must know FAN_PRE_ACCESS (FeaturePreAccess) and the filesystem must opt in to HSM
// (ext4, xfs, btrfs do; tmpfs answers EOPNOTSUPP). It puts a FAN_MARK_IGNORE_SURV ignore mark
// for FAN_PRE_ACCESS on path in a private FAN_CLASS_PRE_CONTENT group (an ignore mark produces
// no events, so no access can block) and closes the group. Answers are cached per filesystem
// (st_dev). path must be a regular file or directory; it needs CAP_SYS_ADMIN for an answer.
func ProbePreAccess(path string) (Support, error) {
	feature := "FAN_PRE_ACCESS on " + path
	if s, err := Probe(FeaturePreAccess); s != Supported {
		var fe *FeatureError
		if errors.As(err, &fe) {
			return s, &FeatureError{Feature: feature, Err: fe.Err}
		}
		return s, err
	}
	st, err := Statx(AT_FDCWD, path, 0)
	if err != nil {
		return Unknown, featureError(feature, Unknown, "", err)
	}
	if r, ok := preAccessCached(st.Dev); ok {
		return r.support, relabel(r.err, feature)
	}
	preAccess.probing.Lock()
	defer preAccess.probing.Unlock()
	if r, ok := preAccessCached(st.Dev); ok {
		return r.support, relabel(r.err, feature)
	}
	s, cause := probePreAccessPath(path)
	r := probeResult{support: s, err: featureError(feature, s, "filesystem", cause)}
	if s != Unknown {
		preAccess.mu.Lock()
		if preAccess.cache == nil {
			preAccess.cache = make(map[uint64]probeResult)
		}
		preAccess.cache[st.Dev] = r
		preAccess.mu.Unlock()
	}
	return r.support, r.err
}

// RequirePreAccess returns nil when ProbePreAccess(path) is Supported, its error otherwise.
func RequirePreAccess(path string) error {
	_, err := ProbePreAccess(path)
	return err
}

func preAccessCached(dev uint64) (probeResult, bool) {
	preAccess.mu.RLock()
	defer preAccess.mu.RUnlock()
	r, ok := preAccess.cache[dev]
	return r, ok
}

// relabel names the caller's path in a cached per-filesystem error (it was first probed
// through another path of the same filesystem).
func relabel(err error, feature string) error {
	var fe *FeatureError
	if errors.As(err, &fe) && fe.Feature != feature {
		return &FeatureError{Feature: feature, Err: fe.Err}
	}
	return err
}

func probePreAccessPath(path string) (Support, error) {
	fd, err := FanotifyInit(FAN_CLASS_PRE_CONTENT, O_RDONLY)
	if err != nil {
		return classify(err), err
	}
	defer unix.Close(fd)
	err = FanotifyMark(fd, FAN_MARK_ADD|FAN_MARK_IGNORE_SURV, FAN_PRE_ACCESS, AT_FDCWD, path)
	switch {
	case err == nil:
		return Supported, nil
	case errors.Is(err, syscall.EOPNOTSUPP):
		return Unsupported, err
	}
	// EINVAL here is about the object (not a regular file or directory), not the filesystem:
	// the kernel's support was established above.
	return Unknown, err
}

// resetProbes forgets every cached answer (tests only).
func resetProbes() {
	for i := range probeSlots {
		probeSlots[i].cached.Store(nil)
	}
	preAccess.mu.Lock()
	preAccess.cache = nil
	preAccess.mu.Unlock()
}
