//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/format"
	"github.com/fsnotifyd/fsnotifyd/internal/paths"
	"github.com/fsnotifyd/fsnotifyd/notify"
)

const watchHelp = `
Report file events below each PATH, one line each, until interrupted (like
"inotifywait -m"). With -r the watch is recursive: as root it is one kernel
mark for the whole tree, so files created in a directory created a moment
earlier are reported too (inotifywait -r misses them); unprivileged it falls
back to inotify, adding watches as directories appear.

Events (-e, comma list; an empty list is an error): access, modify, attrib, close_write,
close_nowrite, close, open, open_exec, moved_from, moved_to, move, create,
delete, delete_self, move_self, rename. Default: all but open_exec and rename,
as inotifywait (an exec's open is reported as OPEN, a rename as MOVED_FROM
and MOVED_TO); open_exec needs root or --daemon (inotify has no such event).

--format directives (inotifywait's): %w watched directory, %f file name,
%e events (comma list), %Xe events separated by the character X, %T time
(per --timefmt, strftime), %p pid, %c command (not inotifywait's rename
cookie), %0 NUL, %n newline, %% a %. Default: "%w %,e %f". With --json each
event is one JSON object per line: {"time", "path", "events", "isdir", "pid",
"comm", "old_path"}; unknown fields are omitted. A rename's MOVED_TO has
old_path, the path of its MOVED_FROM, when both directories are watched: that
pairs them (--format cannot).

-c (--csv) prints inotifywait -c's lines: %w,%e,%f, a field quoted ("...", its
quotes doubled) when it holds a comma, a quote or a newline, or begins or ends
with a blank: d/,"CLOSE_WRITE,CLOSE","a,b". Only one of --json, -c and --format.

--exclude RE drops the events whose path, as %w%f prints it (the PATH as
given, then the file name: src/.git/index; a directory's own event src/sub/),
matches the regular expression RE; --include RE reports only those that match;
--excludei and --includei ignore case. As in inotifywait only one of the four
may be given (the last of a repeated one counts); join alternatives with |. RE
is Go's syntax (RE2), not POSIX's: an extended regular expression means the
same, except that back-references (\1), GNU's anchors (\< \>: use \b, ^, $)
and a repetition of a repetition (a**) are refused. Filtered events are not counted
by -n. With -r, directories are watched whether or not their events are shown.

An argument @PATH excludes PATH (as inotifywait): nothing is reported through
a watch at or below it, as for --fromfile's @ lines below; name a file whose
name begins with @ as ./@name.

--fromfile FILE reads paths to watch from FILE (- for stdin), one a line, as
they are but for the newline, before the PATHs given; a line @PATH excludes
PATH: nothing is reported through a watch at or below it (its own entry in
its parent, "d/ CREATE,ISDIR skip", is), unless a path listed below it is
watched too; empty lines and a lone @ are skipped. PATHs are compared
absolute (inotifywait wants them spelt as the watched path is). A listed path
that is missing is an error naming FILE and its line; so is a FILE that
cannot be read (inotifywait went on without it).
Unprivileged (inotify), -r places no watch below an excluded directory (one
watched path below it excepted): it takes none of the user's inotify watches.
Unprivileged (inotify), a directory of the tree the user may not read cannot be
watched: it is named on stderr ("not watched") and an overflow follows; the rest
of the tree is watched.

-o FILE appends the lines to FILE, created mode 0600 if needed (inotifywait's
-o); the messages stay on stderr. The file's own events are not reported: in
a watched directory each write would report one more. In a sticky directory
anyone may write (/tmp), a link, file or FIFO another user owns is refused
(fs.protected_* rules, whatever the sysctls say); a FIFO with no reader is an
error, not a wait.

"Watches established." is printed on stderr once the marks are in place.
Interrupted (SIGINT, SIGTERM, --timeout), it first writes the events already
queued to it (until none came for 0.1 s, at most 1 s; stopped by that bound it
says on stderr that later ones were not written).
Exit status: 0 after -n events, at --timeout, or on SIGINT/SIGTERM; 1 on a
runtime error, or at --timeout or a signal with the output blocked for a second
(its reader not reading: lines not written, said on stderr); 2 on a usage error.

Examples:
  fsnotifyd watch -r .
  fsnotifyd watch -r -e create,delete,move /srv/data
  fsnotifyd watch -e close_write --format '%w%f' -n 1 /var/spool/in
  fsnotifyd watch -r --json --timeout 30s /etc
  fsnotifyd watch -c -e create,delete /srv/in
  fsnotifyd watch -r --exclude '(^|/)\.git(/|$)' ~/src
  fsnotifyd watch -r -e close_write --includei '\.(jpe?g|png)$' /srv/photos
  printf '%s\n' /srv/a /srv/b @/srv/a/cache | fsnotifyd watch -r --fromfile -
  fsnotifyd watch -r /srv/data @/srv/data/tmp
  fsnotifyd watch -r -c -o /var/log/srv-events.csv /srv
  fsnotifyd watch --timefmt '%H:%M:%S' --format '%T %e %w%f (%c[%p])' /tmp
`

func runWatch(args []string) int {
	var (
		recursive, jsonOut, csvOut, quiet, monitor bool
		events, fmtStr, timefmt                    string
		exclude, excludei                          string
		include, includei                          string
		count                                      int
		timeout                                    time.Duration
		daemon                                     daemonFlag
		fromFile, outFile                          onceString
	)
	fs := newFlagSet("watch", "[-r] [-e EVENTS] [--json | -c | --format FMT] [--timefmt FMT] [--exclude[i] RE | --include[i] RE] [-o FILE] [-n COUNT] [--timeout DUR] [--fromfile FILE] PATH... [@PATH...]", watchHelp)
	fs.boolVar(&recursive, "r,recursive", "watch every directory below each PATH (a subtree watch)")
	fs.stringVar(&events, "e,event,events", "events to report, a comma list (default all but open_exec and rename)")
	fs.boolVar(&jsonOut, "json,j", "print one JSON object per event")
	fs.boolVar(&csvOut, "c,csv", "print inotifywait's CSV lines: %w,%e,%f, quoted (e.g. d/,\"CLOSE_WRITE,CLOSE\",\"a,b\")")
	fs.stringVar(&fmtStr, "format", "print events in this inotifywait-style format")
	fs.stringVar(&timefmt, "timefmt", "strftime format of %T")
	fs.stringVar(&exclude, "exclude", "do not report events whose %w%f matches this regular expression")
	fs.stringVar(&excludei, "excludei", "--exclude, ignoring case")
	fs.stringVar(&include, "include", "report only events whose %w%f matches this regular expression")
	fs.stringVar(&includei, "includei", "--include, ignoring case")
	fs.value(&fromFile, "fromfile", "read the paths to watch from FILE (- for stdin), one a line; @PATH excludes PATH's subtree")
	fs.value(&outFile, "o,outfile", "append the events to FILE (created mode 0600) instead of printing them")
	fs.intVar(&count, "n,count", "exit after COUNT events (0, the default: no limit)")
	fs.durationVar(&timeout, "t,timeout", "exit after DUR (e.g. 30s; 0, the default: no limit)")
	fs.boolVar(&quiet, "q,quiet", "do not print \"Watches established.\"")
	fs.boolVar(&monitor, "m,monitor", "keep watching (the default; accepted for inotifywait habits)")
	fs.value(&daemon, "daemon", "run through the fsnotifyd daemon (--daemon=SOCKET for another socket)")
	paths, status, ok := fs.parseArgs(args)
	if !ok {
		return status
	}
	if fromFile.set && fromFile.s == "" {
		return fs.usageError(errors.New("--fromfile: empty file name (- reads standard input)"))
	}
	if outFile.set && outFile.s == "" {
		return fs.usageError(errors.New("-o: empty file name"))
	}
	var skip []string // the @PATHs (command line and --fromfile), absolute
	// @PATH on the command line excludes PATH, as inotifywait takes it (a file whose name
	// begins with @ is named by a path that does not: ./@x, or absolute).
	kept := paths[:0:0]
	for _, p := range paths {
		if !strings.HasPrefix(p, "@") {
			kept = append(kept, p)
			continue
		}
		if p == "@" {
			return fs.usageError(errors.New("@ without a path: @PATH excludes PATH (a file named @... is ./@...)"))
		}
		skip = append(skip, absPath(p[1:]))
	}
	paths = kept
	// where says where each path was named, for its errors: "" on the command line.
	where := make([]string, len(paths))
	if fromFile.set {
		listed, excl, err := readPathList(fromFile.s, os.Stdin)
		if err != nil {
			return fail("watch", err)
		}
		var ps, ws []string
		for _, l := range listed {
			ps, ws = append(ps, l.path), append(ws, l.where+": ")
		}
		paths, where = append(ps, paths...), append(ws, where...) // the file's first, as inotifywait
		for _, l := range excl {
			skip = append(skip, absPath(l.path))
		}
	}
	if len(paths) == 0 {
		if fromFile.set {
			return fs.usageError(fmt.Errorf("no PATH given: --fromfile %s lists none and none follows", fromFile.s))
		}
		return fs.usageError(errors.New("no PATH given: name at least one file or directory to watch"))
	}
	if jsonOut && fmtStr != "" {
		return fs.usageError(errors.New("--json and --format cannot be used together"))
	}
	if csvOut && (jsonOut || fmtStr != "") {
		other := "--json"
		if fmtStr != "" {
			other = "--format"
		}
		return fs.usageError(fmt.Errorf("-c (--csv) and %s cannot be used together: each chooses the output", other))
	}
	if err := negativeFlag(intFlag{"-n", count}); err != nil {
		return fs.usageError(err)
	}
	re, onlyMatches, err := pathRegexp(fs, map[string]string{"exclude": exclude, "excludei": excludei,
		"include": include, "includei": includei})
	if err != nil {
		return fs.usageError(err)
	}
	mask := engine.Access | engine.Modify | engine.Attrib | engine.Close | engine.Open |
		engine.Move | engine.Create | engine.Delete | engine.DeleteSelf | engine.MoveSelf
	asked, given, err := parseEventsFlag(fs, events)
	if err != nil {
		return fs.usageError(err)
	} else if given {
		mask = asked
	}
	if err := checkTimefmt(timefmt); err != nil {
		return fs.usageError(err)
	}
	var out format.Formatter
	switch {
	case jsonOut:
		out = format.JSON{}
	case csvOut:
		out = format.CSV{}
	default:
		f := fmtStr
		if f == "" {
			f = format.DefaultFormat
		}
		compiled, err := format.Compile(f, timefmt)
		if err != nil {
			return fs.usageError(fmt.Errorf("--format: %w", err))
		}
		out = compiled
	}
	// A rename's MOVED_TO carries the path its MOVED_FROM printed (old_path): the kernel's
	// RENAME, queued just before the pair, has both paths, so it is asked for too and only
	// printed when -e asked for it (renames).
	kmask, pairs := mask, (*renamePairs)(nil)
	if mask&engine.MovedTo != 0 {
		kmask |= engine.Rename
		pairs = &renamePairs{}
	}
	kind := engine.KindInode
	if recursive {
		kind = engine.KindSubtree
	}
	var specs []watchSpec
	for i, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return fail("watch", fmt.Errorf("%s%w", where[i], explainPathError(p, err)))
		}
		k, m := kind, kmask|engine.OnDir
		if !st.IsDir() {
			k = engine.KindInode
			if mask&^engine.DirentEvents == 0 { // a file has no entries: nothing would be left
				return fs.usageError(fmt.Errorf("-e %s: a file (%s%s) reports only %s", strings.TrimSpace(events), where[i], p,
					eventNames(engine.NotificationEvents&^engine.DirentEvents)))
			}
		} else if k == engine.KindInode {
			m |= engine.EventOnChild
		}
		specs = append(specs, watchSpec{path: p, abs: absPath(p), kind: k, mask: m})
	}
	var keep func(*event) bool
	if pairs != nil {
		keep = func(e *event) bool { return pairs.pair(&e.rec, mask&engine.Rename != 0) }
	}
	var dst *os.File
	if outFile.set {
		// As inotifywait: appended to, created 0600 (less the umask); unlike it, not another
		// user's link, file or FIFO in /tmp (openOutput).
		f, err := openOutput(outFile.s, 0o600)
		if err != nil {
			if pe := (*os.PathError)(nil); errors.As(err, &pe) {
				err = pe.Err
			}
			return fail("watch", fmt.Errorf("-o %s: %w", outFile.s, err))
		}
		defer f.Close()
		dst = f
	}
	filter := &watchFilter{re: re, include: onlyMatches, skip: skip}
	for _, s := range specs {
		filter.roots = append(filter.roots, s.abs)
	}
	if dst != nil {
		// The output file's own events would be printed to it, each printing one more: they
		// are not reported (by its path, and as this process's own where the pid is known).
		filter.outPath, filter.self = absPath(outFile.s), os.Getpid()
		if p, err := filepath.EvalSymlinks(filter.outPath); err == nil {
			filter.outReal = p
		}
	}
	var show func(*format.Record) bool
	if filter.active() {
		show = filter.show
	}
	return stream("watch", specs, streamOpts{daemon: daemon, quiet: quiet, count: count, timeout: timeout, out: out,
		recursive: recursive, keep: keep, show: show, dst: dst, dstName: outFile.s, prune: skip, asked: asked})
}

// onceString is a string flag that may be given once: inotifywait refuses a second
// --fromfile or --outfile rather than take one of them.
type onceString struct {
	s   string
	set bool
}

func (o *onceString) String() string { return o.s }
func (o *onceString) Set(s string) error {
	if o.set {
		return fmt.Errorf("given twice (%q, then %q): give it once", o.s, s)
	}
	o.s, o.set = s, true
	return nil
}

// listedPath is a path of a --fromfile list, with where it was: "FILE:LINE".
type listedPath struct{ path, where string }

// readPathList reads --fromfile's list (name "-": stdin) as inotifywait does: one path a
// line, taken as it is but for the newline; "@PATH" excludes PATH; an empty line and a lone
// "@" are skipped.
func readPathList(name string, stdin io.Reader) (watch, exclude []listedPath, err error) {
	r, shown := stdin, "stdin"
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			if pe := (*os.PathError)(nil); errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, nil, fmt.Errorf("--fromfile %s: %w", name, err)
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.IsDir() {
			// Not "--fromfile D:1: read D: is a directory": no line of it was read.
			return nil, nil, fmt.Errorf("--fromfile %s: is a directory: want a file of paths, one a line (- for stdin)", name)
		}
		r, shown = f, name
	}
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, err := br.ReadString('\n')
		if err != nil && err != io.EOF {
			return nil, nil, fmt.Errorf("--fromfile %s:%d: %w", shown, n, err)
		}
		if line == "" && err == io.EOF {
			return watch, exclude, nil
		}
		line = strings.TrimSuffix(line, "\n")
		where := fmt.Sprintf("--fromfile %s:%d", shown, n)
		switch {
		case line == "" || line == "@":
		case line[0] == '@':
			exclude = append(exclude, listedPath{line[1:], where})
		default:
			watch = append(watch, listedPath{line, where})
		}
		if err == io.EOF {
			return watch, exclude, nil
		}
	}
}

// watchFilter decides which lines watch prints (streamOpts.show): --exclude or --include's
// regular expression on %w%f, --fromfile's @ exclusions, and -o's own file.
type watchFilter struct {
	re      *regexp.Regexp
	include bool // print only what re matches (else only what it does not)
	// skip are the @PATHs, roots the watched paths (absolute). An event through a watch at or
	// below an excluded directory is not printed, as inotifywait -r sets no watch there;
	// one on it as an entry of its parent (CREATE,ISDIR) is. A watched path at or below an
	// excluded one is watched all the same (inotifywait: "always watched").
	skip, roots []string
	// outPath (and outReal, symlinks resolved) is -o's file, self this process: their
	// events are not printed.
	outPath, outReal string
	self             int
	buf              []byte
}

func (f *watchFilter) active() bool { return f.re != nil || len(f.skip) > 0 || f.outPath != "" }

func (f *watchFilter) show(r *format.Record) bool {
	if f.outPath != "" && (r.Pid == f.self || r.Path != "" && (r.Path == f.outPath || r.Path == f.outReal)) {
		return false
	}
	if len(f.skip) > 0 && !r.PathUnknown && r.Path != "" && f.excluded(r) {
		return false
	}
	if f.re != nil {
		f.buf = format.AppendPath(f.buf[:0], r)
		return f.re.Match(f.buf) == f.include
	}
	return true
}

// excluded reports whether r came through a watch inotifywait would not have set: its
// directory (the object itself for its own event, %f empty) at or below an @PATH, and not
// at or below a watched path that is itself at or below that @PATH.
func (f *watchFilter) excluded(r *format.Record) bool {
	dir := r.Path
	if r.Name != "" {
		dir = filepath.Dir(r.Path)
	}
	for _, x := range f.skip {
		if !paths.Within(dir, x) {
			continue
		}
		watched := false
		for _, w := range f.roots {
			if paths.Within(w, x) && paths.Within(dir, w) {
				watched = true
				break
			}
		}
		if !watched {
			return true
		}
	}
	return false
}

// pathRegexp compiles the one regular expression of watch's --exclude, --excludei,
// --include or --includei (values: each flag's value by name, without dashes): nil if none
// was given; include says that it selects what is reported rather than what is not. As in
// inotifywait, only one of them may be given (the last of repeats counts); an empty pattern
// (a shell variable that expanded to nothing) is an error, not "match every path"; the
// syntax is Go's (RE2).
func pathRegexp(fs *flagSet, values map[string]string) (re *regexp.Regexp, include bool, err error) {
	var given []string
	for _, name := range []string{"exclude", "excludei", "include", "includei"} {
		if fs.given(name) {
			given = append(given, name)
		}
	}
	switch {
	case len(given) == 0:
		return nil, false, nil
	case len(given) > 1:
		return nil, false, fmt.Errorf("--%s and --%s cannot be used together (as in inotifywait: one pattern; join alternatives with |)", given[0], given[1])
	}
	name := given[0]
	pat := values[name]
	if pat == "" {
		return nil, false, fmt.Errorf("--%s: empty pattern (it would match every path)", name)
	}
	// GNU's \< \> \` \' are anchors where Go reads a quoted character: refused, not misread.
	for i := 0; i+1 < len(pat); i++ {
		if pat[i] != '\\' {
			continue
		}
		if c := pat[i+1]; strings.IndexByte("<>`'", c) >= 0 {
			return nil, false, fmt.Errorf("--%s %q: \\%c is GNU's anchor, which Go's syntax reads as a plain %c: use \\b, ^ or $", name, pat, c, c)
		}
		i++
	}
	src := pat
	if strings.HasSuffix(name, "i") {
		src = "(?i)" + pat
	}
	if re, err = regexp.Compile(src); err != nil {
		msg := err.Error()
		if se := (*syntax.Error)(nil); errors.As(err, &se) {
			msg = se.Code.String()
			if se.Expr != "" && se.Expr != src {
				msg += " " + strconv.Quote(se.Expr)
			}
		}
		return nil, false, fmt.Errorf("--%s %q: not a regular expression: %s", name, pat, msg)
	}
	return re, strings.HasPrefix(name, "include"), nil
}

// renamePairs gives a rename's MOVED_TO the old path of its RENAME, which the kernel queues
// just before the MOVED_FROM and MOVED_TO (fsnotify_move; the inotify backend builds it from
// the pair, and puts it first too): a --json record of the MOVED_TO then has old_path, the
// path of its MOVED_FROM, as inotifywait's cookie pairs them. The RENAME of a MOVED_TO that
// was not read (an overflow, a MOVED_TO outside the watches) is forgotten after
// len(renamePairs.recent) more renames.
type renamePairs struct {
	recent [16]struct{ oldPath, newPath string }
	next   int
}

// pair notes a RENAME (dropped unless keepRename) and gives a MOVED_TO its old path. It
// returns whether r is still to be printed.
func (p *renamePairs) pair(r *format.Record, keepRename bool) bool {
	if r.Mask&engine.Rename != 0 {
		if r.OldPath != "" && r.Path != "" {
			p.recent[p.next].oldPath, p.recent[p.next].newPath = r.OldPath, r.Path
			p.next = (p.next + 1) % len(p.recent)
		}
		if !keepRename {
			r.Mask &^= engine.Rename
			return r.Mask&^engine.EventFlags != 0
		}
		return true
	}
	if r.Mask&engine.MovedTo != 0 && r.OldPath == "" && r.Path != "" {
		for i := range p.recent {
			if q := &p.recent[i]; q.newPath == r.Path {
				r.OldPath = q.oldPath
				*q = struct{ oldPath, newPath string }{}
				break
			}
		}
	}
	return true
}

// streamPace is the least time between two reads of an embedded source under a steady flow
// of events (see stream).
const streamPace = time.Millisecond

// streamOpts are how stream prints: what watch's and trace's flags chose.
type streamOpts struct {
	daemon  daemonFlag
	quiet   bool
	count   int           // -n: exit after this many lines (0: no limit)
	timeout time.Duration // exit after it (0: never)
	out     format.Formatter
	// recursive only changes "Setting up watches."; withExe asks for executables (trace).
	recursive, withExe bool
	// keep, if set, decides on each event before its %w and %f are known: false drops it.
	keep func(*event) bool
	// show, if set, decides on each line (one operation of an event: writeSplit) once its
	// %w and %f are set: false drops it, and -n does not count it.
	show func(*format.Record) bool
	// dst is where lines go (nil: stdout); dstName names it (-o FILE): a write error there is
	// a runtime error, where stdout's (a closed pipe) ends the command quietly.
	dst     *os.File
	dstName string
	// prune are the @PATHs: an embedded backend on inotify places no watch below them
	// (backend.Options.Prune).
	prune []string
	// asked is what -e named (0: -e not given, the command's default).
	asked engine.Mask
}

// stream opens a source, places the watches, and prints events until done.
func stream(cmd string, specs []watchSpec, o streamOpts) int {
	daemon, quiet, count, timeout, out, keep := o.daemon, o.quiet, o.count, o.timeout, o.out, o.keep
	recursive, withExe := o.recursive, o.withExe
	if !quiet {
		if recursive {
			fmt.Fprintln(os.Stderr, "Setting up watches.  Beware: since -r was given, this may take a while!")
		} else {
			fmt.Fprintln(os.Stderr, "Setting up watches.")
		}
	}
	src, err := openSource(cmd, daemon, withExe, o.prune)
	if err != nil {
		return fail(cmd, err)
	}
	if err := src.checkAsked(o.asked); err != nil {
		src.close()
		return fail(cmd, err)
	}
	defer func() {
		if err := src.close(); err != nil {
			fmt.Fprintf(os.Stderr, "fsnotifyd %s: %v\n", cmd, err) // a daemon that did not end the session
		}
	}()
	added := 0
	for _, w := range specs {
		err := src.add(w)
		if errors.As(err, new(fsRefusedError)) {
			// A filesystem the kernel will not mark whole (overlayfs) must not end a trace
			// of every filesystem, which anyone who may mount one could then prevent: its
			// mount is traced instead where that is possible, and either is said.
			what := "not traced"
			if m := w.mask & traceFD; m != 0 && src.add(watchSpec{path: w.path, abs: w.abs, kind: engine.KindMount, mask: m | engine.OnDir}) == nil {
				what = "traced by its mount only (opens, reads, writes, closes)"
				added++
			}
			fmt.Fprintf(os.Stderr, "fsnotifyd %s: %s: %s\n", cmd, format.Escaped(err.Error()), what)
			continue
		}
		if err != nil {
			return fail(cmd, err)
		}
		added++
	}
	if added == 0 && len(specs) > 0 {
		return fail(cmd, errors.New("no filesystem could be traced"))
	}
	// Signals are caught before "Watches established.": a SIGINT sent as soon as it is read
	// must end the command as one sent later does (exit 0, output flushed), not kill it.
	ctx, stop := untilInterrupt(timeout)
	defer stop()
	if !quiet {
		fmt.Fprintln(os.Stderr, "Watches established.")
	}
	dst := o.dst
	if dst == nil {
		dst = os.Stdout
	}
	if isTerminal(dst) {
		out = format.ForTerminal(out) // a file name must not drive the operator's terminal
	}
	pw := &progressWriter{w: dst}
	w := bufio.NewWriterSize(pw, 64<<10)
	// Runs after the Flush below: that one may block too.
	returned := make(chan struct{})
	defer close(returned)
	// At exit, after the last line: whether events were lost (each loss also has its line,
	// in order, and a stderr line when read), for whoever reads the end of a long output.
	var lost, resyncs int
	defer func() { sayLost(cmd, out, lost, resyncs, src) }()
	defer w.Flush()
	outName := "stdout"
	if o.dstName != "" {
		outName = "-o " + o.dstName
	}
	go endBlockedOutput(ctx, returned, pw, cmd, outName)
	// written ends the command after a write error: quietly on stdout (a pipe closed), as a
	// runtime error naming -o's file.
	written := func(err error) int {
		if o.dstName != "" {
			return fail(cmd, fmt.Errorf("-o %s: %w", o.dstName, err))
		}
		return exitOK
	}
	disp := &displayer{roots: specs}
	// where[i] is where the object of inode watch i was last seen: its path as given, then
	// where each of its moves (MOVE_SELF) took it.
	where := make([]string, len(specs))
	for i, s := range specs {
		where[i] = s.abs
	}
	var line []byte
	var batch []event
	printed := 0
	var unnamed int // the last pid ProcessComm could not name
	// Pacing (embedded): under a steady flow, read at most once per streamPace, so that a
	// flood is printed in batches rather than the reading goroutine being woken per event.
	// Each wake-up of the goroutine (and of the thread that runs it) cost several times the
	// event's own work on a 2-vCPU VM (bench/fanout.sh's embedded rows,
	// docs/design/performance.md). An event waits at most streamPace more; the first one
	// after a quiet streamPace is read at once. The events wait in the engine group, whose
	// queue (QueueLimit, 1<<18) holds far more than a streamPace of them, and overflows in
	// band if not; their order is the group's.
	paced := !daemon.on
	var lastRead, prevRead, drainEnd time.Time
	lastFull := false
	var pace *time.Timer
	for {
		if paced && !lastFull && !prevRead.IsZero() && lastRead.Sub(prevRead) < streamPace {
			if d := streamPace - time.Since(lastRead); d > 0 {
				if pace == nil {
					pace = time.NewTimer(d)
				} else {
					pace.Reset(d)
				}
				select {
				case <-pace.C:
				case <-ctx.Done(): // next returns at once with the reason
				}
			}
		}
		// Interrupted: the events queued to us before it — in the kernel's queue or the
		// daemon's, which a stopped (^Z) or busy reader had not moved into ours yet — are
		// written too: read until none came for drainQuiet, at most drainMax after the
		// interrupt (a tree that never stops changing), then say what was not read.
		rctx, endRead := ctx, context.CancelFunc(func() {})
		if ctx.Err() != nil {
			if drainEnd.IsZero() {
				drainEnd = time.Now().Add(drainMax)
			}
			quiet := min(drainQuiet, time.Until(drainEnd))
			if quiet < drainQuiet {
				// Events came less than drainQuiet before the bound: more may be queued.
				fmt.Fprintf(os.Stderr, "fsnotifyd %s: interrupted while events still came: stopped reading %v after; the events queued after those written were not written\n", cmd, drainMax)
				if err := w.Flush(); err != nil && o.dstName != "" {
					return written(err)
				}
				return exitOK
			}
			rctx, endRead = context.WithTimeout(context.Background(), quiet)
		}
		batch, err = src.next(rctx, batch[:0])
		endRead()
		prevRead, lastRead = lastRead, time.Now()
		lastFull = len(batch) >= len(src.buf) // more are likely queued: no pause
		if err != nil {
			if ferr := w.Flush(); ferr != nil && o.dstName != "" {
				return written(ferr)
			}
			if ctx.Err() != nil {
				if drainEnd.IsZero() {
					continue // interrupted during this read: now what was queued
				}
				return exitOK // --timeout or a signal, and nothing more came
			}
			return fail(cmd, err)
		}
		for i := range batch {
			e := &batch[i]
			if e.overflow || e.resync {
				what := "the kernel or our queue overflowed: events were lost"
				lost++
				if e.resync {
					what = "the daemon restarted: events may have been missed"
					lost, resyncs = lost-1, resyncs+1
				}
				fmt.Fprintf(os.Stderr, "fsnotifyd %s: %s\n", cmd, what)
				// In-band too, in order, for a script reading stdout: a Q_OVERFLOW line
				// (inotifywait's name), or a JSON record.
				line = out.Append(line[:0], &e.rec)
				line = append(line, '\n')
				w.Write(line)
				continue
			}
			if keep != nil && !keep(e) {
				continue
			}
			if e.self > 0 && e.rec.Mask&engine.MoveSelf != 0 {
				// A watched object's move: from where it was (old_path, "OLD -> NEW") to
				// where this move took it; it is watched there now, not at the path given.
				e.rec.Watched, e.rec.Name = specs[e.self-1].path, ""
				if was := where[e.self-1]; e.rec.Path != was || e.rec.Path == "" {
					e.rec.OldPath, e.rec.OldPathUnknown, where[e.self-1] = was, was == "", e.rec.Path
					done := "watched"
					if cmd == "trace" {
						done = "traced"
					}
					to := format.Escaped(e.rec.Path)
					if e.rec.Path == "" {
						// Moved again, or removed, before this move was read: the kernel
						// names a move's object, not where it went (docs/trace-format.md).
						to = "? (an unknown place: moved again or removed before its move was read)"
					}
					from := format.Escaped(was)
					if was == "" {
						from = "?"
					}
					fmt.Fprintf(os.Stderr, "fsnotifyd %s: %s moved to %s, %s there (not a new %s)\n",
						cmd, from, to, done, format.Escaped(specs[e.self-1].path))
				}
			} else if e.rec.PathUnknown {
				// Which watch it came through cannot be told: %w prints "?", %f its name
				// if known.
				e.rec.Watched = "?"
			} else if e.self > 0 {
				// On a watched object itself: %w is that watch's path, however the event
				// reached it (a file written through a hard link in another directory has
				// that link's path, a directory nobody watched), as inotify reports it on the
				// watch.
				e.rec.Watched, e.rec.Name = specs[e.self-1].path, ""
			} else {
				isRoot := false
				for _, s := range specs {
					if e.rec.Path == s.abs {
						isRoot = true
					}
				}
				e.rec.Watched, e.rec.Name = disp.split(e.rec.Path, isRoot)
			}
			if e.rec.Pid > 0 && e.rec.Comm == "" && e.rec.Pid != unnamed {
				// The source could not name it (it had exited when its event was read):
				// try once, not once per event of a flood it left behind.
				if e.rec.Comm = notify.ProcessComm(e.rec.Pid); e.rec.Comm == "" {
					unnamed = e.rec.Pid
				}
			}
			// One operation per line, in the kernel's order (split.go); -n counts lines.
			left := 0
			if count > 0 {
				left = count - printed
			}
			var n int
			if line, n, err = writeSplit(w, out, &e.rec, line[:0], left, o.show); err != nil {
				if o.dstName != "" {
					return written(err)
				}
				return fail(cmd, err)
			}
			printed += n
			if count > 0 && printed >= count {
				if err := w.Flush(); err != nil && o.dstName != "" {
					return written(err)
				}
				return exitOK
			}
		}
		if err := w.Flush(); err != nil { // a pipe closed: stop quietly
			return written(err)
		}
	}
}

// sayLost says on stderr, at the end of a watch or trace that printed them as out, how many
// times events were lost (overflows) or may have been missed (the daemon restarted), and how
// many events its own queue dropped (embedded; the kernel's overflow does not count them).
func sayLost(cmd string, out format.Formatter, lost, resyncs int, src *events) {
	if lost == 0 && resyncs == 0 {
		return
	}
	line := "Q_OVERFLOW"
	switch out.(type) {
	case format.Trace:
		line = "!"
	case format.JSON:
		line = "Q_OVERFLOW record"
	}
	times := func(n int) string {
		if n == 1 {
			return "1 time"
		}
		return strconv.Itoa(n) + " times"
	}
	if lost > 0 {
		msg := fmt.Sprintf("events were lost %s (a %q line where each happened)", times(lost), line)
		if d := src.src.Stats().Dropped; d > 0 {
			msg += fmt.Sprintf("; our queue dropped %d events", d)
		}
		fmt.Fprintf(os.Stderr, "fsnotifyd %s: %s\n", cmd, msg)
	}
	if resyncs > 0 {
		fmt.Fprintf(os.Stderr, "fsnotifyd %s: the daemon restarted %s: events may have been missed\n", cmd, times(resyncs))
	}
}

// drainQuiet and drainMax bound stream's reading once interrupted: it writes the events
// queued to it until none came for drainQuiet (the backend's reader, stopped with the
// process, moves the kernel's queue into ours within it; the daemon sends what it holds),
// and stops drainMax after the interrupt however many still come, saying so.
const (
	drainQuiet = 100 * time.Millisecond
	drainMax   = time.Second
)

// outputGrace is how long stream waits, once interrupted (a signal, --timeout), for a write
// to its output that does not return (see endBlockedOutput).
const outputGrace = time.Second

// progressWriter is stream's output: it notes whether a write is under way and how many
// returned, for endBlockedOutput.
type progressWriter struct {
	w        io.Writer
	busy     atomic.Bool
	returned atomic.Int64
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.busy.Store(true)
	n, err := p.w.Write(b)
	p.busy.Store(false)
	p.returned.Add(1)
	return n, err
}

// endBlockedOutput ends the process when stream, interrupted (ctx done), stays blocked in a
// write to its output (named name) for outputGrace: a pipe whose reader stopped reading (a
// stopped or wedged consumer) would otherwise keep it from ending at SIGTERM or --timeout
// until SIGKILL. Lines were not written: it says so and exits 1, not 0. A reader that still
// reads, however slowly, is waited for (each write that returns starts the grace again).
// It returns when stream does (returned closed).
func endBlockedOutput(ctx context.Context, returned <-chan struct{}, p *progressWriter, cmd, name string) {
	select {
	case <-returned:
		return
	case <-ctx.Done():
	}
	if !waitOutput(returned, p) {
		fmt.Fprintf(os.Stderr, "fsnotifyd %s: interrupted with its output (%s) blocked for %v, its reader not reading: exiting with lines not written\n",
			cmd, name, outputGrace)
		os.Exit(exitRuntime)
	}
}

// waitOutput waits until returned is closed, and reports whether it was; it gives up (false)
// when p stays blocked in one write for outputGrace: its reader is not reading. A reader
// that still reads, however slowly, is waited for (each write that returns starts the grace
// again).
func waitOutput(returned <-chan struct{}, p *progressWriter) bool {
	tick := time.NewTicker(outputGrace / 10)
	defer tick.Stop()
	seen, since := p.returned.Load(), time.Now()
	for {
		select {
		case <-returned:
			return true
		case <-tick.C:
		}
		if n := p.returned.Load(); n != seen || !p.busy.Load() {
			seen, since = n, time.Now()
			continue
		}
		if time.Since(since) >= outputGrace {
			return false
		}
	}
}
