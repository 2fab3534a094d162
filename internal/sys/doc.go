// Package sys is the system-call layer of fsnotifyd: fanotify, inotify, file handles, statx,
// statfs, pidfds, mounts and cached kernel feature probes.
//
// It is the ONE package in the module that imports golang.org/x/sys/unix (TestOnlySysImportsUnix
// enforces this). Everything else uses the typed constants and wrappers here, so the kernel ABI
// is spelled out, checked against the uapi sizes and fuzzed in one place.
//
// Conventions:
//   - Kernel concepts keep their kernel names: FAN_OPEN_PERM, FAN_MARK_FILESYSTEM,
//     FAN_EVENT_INFO_TYPE_DFID_NAME, IN_MOVED_TO. Constants are typed with the type of the
//     parameter they are passed in (fanotify_init flags uint, mark flags uint, event masks
//     uint64, responses uint32, inotify masks uint32), so no conversions are needed.
//   - Every wrapper returns an error that names the operation and its arguments, for example
//     "fanotify_mark(ADD|FILESYSTEM, OPEN_PERM, /mnt/x): operation not permitted", and wraps the
//     errno: errors.Is(err, syscall.EPERM) works.
//   - File descriptors returned by this package are close-on-exec unless the caller asked
//     otherwise through explicit flags (a permission group inherited by a child deadlocks).
//   - Parsers (ParseFanotifyEvent, ParseInotifyEvent) never panic and never loop forever: every
//     malformed buffer yields a *ParseError (errors.Is(err, ErrMalformed)). Parsed names and file
//     handles alias the read buffer; see FanotifyEvent for their lifetime.
//   - Feature probes (Probe, Require, ProbePreAccess) make the real system call on a private
//     object and never parse kernel versions.
//
// Goroutines: LongPath does part of its work on a goroutine of its own, locked to an OS thread
// whose root directory it changes (chroot after unshare(CLONE_FS)); it waits for it, and that
// goroutine never unlocks its thread, so the thread ends with it before LongPath returns and
// no other goroutine ever runs with a changed root.
package sys
