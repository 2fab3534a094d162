//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/format"
)

const traceHelp = `
Report every file access, one line each, like fatrace:

  15:04:05.123456 cat(4242): O /srv/data/report.txt

time, command(pid), event letters, path. Letters: O open, R read, W write,
C close (CW closed after writing, CO opened and closed), E exec, A attrib,
+ create, D delete, < moved from, > moved to, <> rename (OLD -> NEW),
F filesystem error, ! events were lost here (the trace fell behind the
kernel: also said on stderr, then and at exit). See docs/trace-format.md.

What to trace: --mount PATH (the whole mount PATH is on: opens, reads,
writes, closes), --fs PATH (the whole filesystem: also creates, deletes and
moves), or PATHs (everything below each directory, and each PATH's own
deletion, D, or move, <); they may be repeated and mixed, each traced as
it says. With none of them, every real filesystem of the
machine is traced (as fatrace does): those mounted when it starts, not one
mounted later (trace it with --fs). --mount, --fs and the whole machine need
root (fanotify) or --daemon; an unprivileged trace of PATHs runs on inotify,
which names no process: its lines say ?(?), and show the trace's own first
reading of each directory (O, R, C).

-e takes watch's event names (see "watch --help"); one that asks for nothing
the trace reports (delete_self with --mount, create on a file) is an error.

--json --exe adds each process's executable, read with its name when the
event is read (a process that exited by then has none). Names are hints: any
process sets its own (docs/trace-format.md, "Process names").

-p PID ignores the events of that process (fatrace's -p, e.g. your shell:
-p $$); --pid PID shows only that process's events (all its threads, not its
children: a command your shell runs is another process). Both may repeat.

Examples:
  fsnotifyd trace --mount /
  fsnotifyd trace --fs /srv -p $$
  fsnotifyd trace --json -n 100 /var/lib/app
  fsnotifyd trace --pid 4242 --timeout 10s --mount /home
`

// What each kind of trace reports: a mount mark only a file's opens, reads, writes and
// closes (traceFD: the kernel's rule); a filesystem, and a traced directory's tree, also
// their entries' creates, deletes, moves and attributes (traceFID); a traced PATH also its
// own deletion or move (traceSelf: DELETE_SELF and MOVE_SELF, letters D and <), which nothing
// else reports. Below a PATH, a directory's deletion or move is reported as its entry's
// (DELETE, MOVED_FROM), so the self events are asked for on each PATH itself, not on its
// tree, which would print each removal twice. A file has no entries (traceFile).
const (
	traceFD   = engine.Open | engine.Access | engine.Modify | engine.Close | engine.OpenExec
	traceFID  = engine.Create | engine.Delete | engine.Move | engine.Rename | engine.Attrib
	traceSelf = engine.DeleteSelf | engine.MoveSelf
	traceFile = traceFD | engine.Attrib | traceSelf
)

// pidList is a repeatable PID flag.
type pidList map[int32]bool

func (p pidList) String() string { return "" }
func (p pidList) Set(s string) error {
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32) // not wrapped: 4294967297 is no pid 1
		if err != nil || n <= 0 {
			return fmt.Errorf("%q is not a process id", f)
		}
		p[int32(n)] = true
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

func runTrace(args []string) int {
	var (
		mounts, fss             stringList
		jsonOut, quiet, withExe bool
		count                   int
		timeout                 time.Duration
		ignore, only            = pidList{}, pidList{}
		daemon                  daemonFlag
		fmtStr, timefmt, events string
	)
	fs := newFlagSet("trace", "[--mount PATH | --fs PATH | PATH...] [-p PID] [--json [--exe]] [-n COUNT] [--timeout DUR]", traceHelp)
	fs.value(&mounts, "mount,c", "trace the whole mount PATH is on (repeatable)")
	fs.value(&fss, "fs,filesystem", "trace the whole filesystem PATH is on (repeatable)")
	fs.value(ignore, "p,ignore-pid", "ignore the events of process PID (repeatable)")
	fs.value(only, "pid", "show only the events of process PID (repeatable)")
	fs.boolVar(&jsonOut, "json,j", "print one JSON object per event")
	fs.boolVar(&withExe, "exe", "with --json, read each process's executable too (\"exe\"; not through the daemon)")
	fs.stringVar(&fmtStr, "format", "print events in this inotifywait-style format instead")
	fs.stringVar(&timefmt, "timefmt", "strftime format of %T in --format")
	fs.stringVar(&events, "e,event,events", "events to report, a comma list (default all; see \"watch --help\")")
	fs.intVar(&count, "n,count", "exit after COUNT events (0, the default: no limit)")
	fs.durationVar(&timeout, "t,timeout", "exit after DUR (e.g. 30s; 0, the default: no limit)")
	fs.boolVar(&quiet, "q,quiet", "do not print \"Watches established.\"")
	fs.value(&daemon, "daemon", "run through the fsnotifyd daemon (--daemon=SOCKET for another socket)")
	paths, status, ok := fs.parseArgs(args)
	if !ok {
		return status
	}
	if jsonOut && fmtStr != "" {
		return fs.usageError(errors.New("--json and --format cannot be used together"))
	}
	if withExe && !jsonOut {
		return fs.usageError(errors.New("--exe adds the \"exe\" field of --json: give --json too"))
	}
	if withExe && daemon.on {
		return fs.usageError(errors.New("--exe: the daemon does not send executables; trace without --daemon (as root)"))
	}
	if err := negativeFlag(intFlag{"-n", count}); err != nil {
		return fs.usageError(err)
	}
	if err := checkTimefmt(timefmt); err != nil {
		return fs.usageError(err)
	}
	var out format.Formatter = format.Trace{}
	switch {
	case jsonOut:
		out = format.JSON{}
	case fmtStr != "":
		f, err := format.Compile(fmtStr, timefmt)
		if err != nil {
			return fs.usageError(fmt.Errorf("--format: %w", err))
		}
		out = f
	}
	fdMask, fidMask, selfMask := traceFD, traceFID, traceSelf
	asked, given, err := parseEventsFlag(fs, events)
	if err != nil {
		return fs.usageError(err)
	}
	if given {
		fdMask &= asked
		fidMask &= asked
		selfMask &= asked
	}
	// nothing is the usage error of an -e that asks for none of the events (can) that a
	// trace of what reports.
	nothing := func(what string, can engine.Mask, hint string) int {
		return fs.usageError(fmt.Errorf("-e %s: %s reports only %s%s", strings.TrimSpace(events), what, eventNames(can), hint))
	}
	const selfHint = "; delete_self and move_self are a traced PATH's own: trace the PATH"

	var specs []watchSpec
	addSpec := func(p string, k engine.Kind, m engine.Mask) error {
		if _, err := os.Stat(p); err != nil {
			return explainPathError(p, err)
		}
		specs = append(specs, watchSpec{path: p, abs: absPath(p), kind: k, mask: m | engine.OnDir})
		return nil
	}
	for _, p := range mounts {
		if fdMask == 0 {
			if given {
				return nothing("--mount", traceFD, " (the kernel reports creates, deletes and moves per filesystem: use --fs)")
			}
			return fs.usageError(errors.New("--mount reports opens, reads, writes and closes only (the kernel reports creates, deletes and moves per filesystem): use --fs"))
		}
		if err := addSpec(p, engine.KindMount, fdMask); err != nil {
			return fail("trace", err)
		}
	}
	for _, p := range fss {
		if fdMask|fidMask == 0 {
			return nothing("--fs", traceFD|traceFID, selfHint)
		}
		if err := addSpec(p, engine.KindFilesystem, fdMask|fidMask); err != nil {
			return fail("trace", err)
		}
	}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return fail("trace", explainPathError(p, err))
		}
		if !st.IsDir() {
			m := (fdMask | fidMask | selfMask) & traceFile
			if m == 0 {
				return nothing(fmt.Sprintf("a file (%s)", p), traceFile, "")
			}
			if err := addSpec(p, engine.KindInode, m); err != nil {
				return fail("trace", err)
			}
			continue
		}
		if fdMask|fidMask != 0 {
			if err := addSpec(p, engine.KindSubtree, fdMask|fidMask); err != nil {
				return fail("trace", err)
			}
		}
		if selfMask != 0 {
			if err := addSpec(p, engine.KindInode, selfMask); err != nil {
				return fail("trace", err)
			}
		}
	}
	if len(specs) == 0 && fdMask|fidMask == 0 {
		return nothing("a trace of every filesystem (no PATH)", traceFD|traceFID, selfHint)
	}
	if len(specs) == 0 {
		all, err := backend.RealFilesystems()
		if err != nil {
			return fail("trace", err)
		}
		for _, p := range all {
			specs = append(specs, watchSpec{path: p, abs: p, kind: engine.KindFilesystem, mask: fdMask | fidMask | engine.OnDir, machine: true})
		}
		if !quiet {
			fmt.Fprintf(os.Stderr, "Tracing %d filesystems (all real ones mounted now, not those mounted later; name --mount, --fs or paths to narrow it).\n", len(all))
		}
	}
	self := int32(os.Getpid())
	keep := func(e *event) bool {
		p := int32(e.rec.Pid)
		if p == self || ignore[p] {
			return false // like fatrace, never report our own writes of the output
		}
		return len(only) == 0 || only[p]
	}
	return stream("trace", specs, streamOpts{daemon: daemon, quiet: quiet, count: count, timeout: timeout, out: out,
		withExe: withExe, keep: keep, asked: asked})
}
