//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/trust"
)

const trustHelp = `
Manage and verify the trust database that guard policies consult (trusted=,
trusted_exe=; see docs/trust.md). A file is trusted when a source lists its
path and its content is still what was listed:

  - the package manager: every file an installed Debian package put on disk,
    with the md5 dpkg recorded (/var/lib/dpkg/info/*.md5sums, conffiles);
  - trust files: lines of "PATH SIZE SHA256", by default the *.trust files
    in /etc/fsnotifyd/trust.d/.

Subcommands:
  add     append lines for files as they are now (replacing their old lines)
  list    show entries and where they come from
  check   verify files against their entries: OK, MODIFIED or MISSING

Run "fsnotifyd trust SUBCOMMAND --help" for each one's flags.

Examples:
  fsnotifyd trust add /usr/local/bin/backup
  fsnotifyd trust list /usr/bin/python3.11
  fsnotifyd trust check
  fsnotifyd trust check --packages --failed
`

func runTrust(args []string) int {
	if len(args) == 0 {
		fmt.Fprintf(os.Stderr, "fsnotifyd trust: no subcommand: add, list or check (see \"fsnotifyd trust --help\")\n")
		return exitUsage
	}
	switch args[0] {
	case "add":
		return runTrustAdd(args[1:])
	case "list":
		return runTrustList(args[1:])
	case "check":
		return runTrustCheck(args[1:])
	case "help", "-h", "-help", "--help":
		fmt.Printf("Usage: fsnotifyd trust add|list|check [FLAGS] [PATH...]\n\n%s", strings.TrimLeft(trustHelp, "\n"))
		return exitOK
	}
	fmt.Fprintf(os.Stderr, "fsnotifyd trust: unknown subcommand %q: add, list or check (see \"fsnotifyd trust --help\")\n", args[0])
	return exitUsage
}

const trustAddHelp = `
Hash each file as it is now and write a "PATH SIZE SHA256" line for it into
the trust file (default /etc/fsnotifyd/trust.d/local.trust, created with its
directory if missing). A path already in the file gets its line replaced, so
re-adding a file after an upgrade keeps one line. PATH is recorded as the
canonical path the kernel reports (symbolic links resolved). Only regular
files can be trusted. Either every file is written or none (exit status 1).

The file is replaced atomically; a running guard sees the change on its next
reload.

Examples:
  fsnotifyd trust add /usr/local/bin/backup /usr/local/lib/libbackup.so.1
  fsnotifyd trust add --file /etc/fsnotifyd/trust.d/ops.trust /opt/ops/bin/*
`

func runTrustAdd(args []string) int {
	file := trust.DefaultFile
	fs := newFlagSet("trust add", "[--file FILE] PATH...", trustAddHelp)
	fs.stringVar(&file, "file,f", "the trust file to write")
	paths, status, ok := fs.parseArgs(args)
	if !ok {
		return status
	}
	if len(paths) == 0 {
		return fs.usageError(errors.New("no PATH given: name the files to trust"))
	}
	v := trust.NewVerifier(trust.VerifierConfig{CacheEntries: 1})
	var add []trust.NewEntry
	seen := map[string]bool{}
	failed := false
	for _, p := range paths {
		canon, err := canonicalPath(p)
		if err != nil {
			fmt.Fprintf(os.Stderr, "fsnotifyd trust add: %v\n", err)
			failed = true
			continue
		}
		if seen[canon] {
			continue
		}
		seen[canon] = true
		if canon != p {
			if abs, _ := filepath.Abs(p); abs != canon {
				fmt.Fprintf(os.Stderr, "fsnotifyd trust add: %s is %s (the path the kernel reports): listing that\n", p, canon)
			}
		}
		sums, err := hashFile(v, canon, trust.SHA256)
		if err != nil {
			fmt.Fprintf(os.Stderr, "fsnotifyd trust add: %v\n", err)
			failed = true
			continue
		}
		add = append(add, trust.NewEntry{Path: canon, Size: sums.Size, SHA256: sums.SHA256})
	}
	if failed {
		fmt.Fprintf(os.Stderr, "fsnotifyd trust add: nothing written to %s\n", file)
		return exitRuntime
	}
	lines, replaced, err := trust.UpdateFile(file, add)
	if err != nil {
		return fail("trust add", err)
	}
	for i, e := range add {
		verb := "added"
		if replaced[i] {
			verb = "replaced"
		}
		fmt.Printf("%s:%d: %s %s\n", file, lines[i], verb, trust.FormatLine(e.Path, e.Size, e.SHA256))
	}
	return exitOK
}

// canonicalPath is p as the kernel reports it: absolute, symbolic links resolved, each ".."
// taken after the links before it, as open(2) does ("link/../x" is x beside the link's
// target, not beside the link: filepath.Abs, which cleans the text first, would say the
// latter).
func canonicalPath(p string) (string, error) {
	abs, err := absUncleaned(p)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return "", fmt.Errorf("%s: %w", p, pe.Err)
		}
		return "", err
	}
	return real, nil
}

// absUncleaned is p made absolute by the working directory, its ".." left for
// filepath.EvalSymlinks to take after the links before it.
func absUncleaned(p string) (string, error) {
	if filepath.IsAbs(p) {
		return p, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return wd + "/" + p, nil
}

// kernelPath is the path the kernel would report for p, existing or not: canonicalPath's,
// or, for a file (or directories) not there yet, the canonical path of its nearest existing
// directory with the rest of p after it, as a file created by that name would be reported.
func kernelPath(p string) (string, error) {
	abs, err := absUncleaned(p)
	if err != nil {
		return "", err
	}
	if canon, err := canonicalPath(abs); err == nil {
		return canon, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	abs = strings.TrimRight(abs, "/")
	i := strings.LastIndexByte(abs, '/')
	if i < 0 {
		return "", fmt.Errorf("%s: not an absolute path", p)
	}
	dir, err := kernelPath(abs[:i] + "/")
	if err != nil {
		return "", err
	}
	switch base := abs[i+1:]; base {
	case "", ".":
		return dir, nil
	case "..":
		return filepath.Dir(dir), nil
	default:
		return filepath.Join(dir, base), nil
	}
}

// notRegularError is openRegular's refusal of what is not a regular file.
type notRegularError struct{ path, kind string }

func (e *notRegularError) Error() string {
	hint := ""
	if e.kind == "a directory" {
		hint = " (name the directory's files to trust them)"
	}
	return fmt.Sprintf("%s: %s, not a regular file: only files can be trusted%s", e.path, e.kind, hint)
}

// openRegular opens path for hashing without following a final symbolic link or waiting on a
// FIFO, and refuses anything but a regular file (*notRegularError). Other errors wrap the
// errno: errors.Is(err, os.ErrNotExist) works.
func openRegular(path string) (*os.File, error) {
	fd, err := sys.Open(path, sys.O_RDONLY|sys.O_NOFOLLOW|sys.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, &notRegularError{path, "a symbolic link"}
	}
	if err != nil {
		var se *os.SyscallError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%s: %w", path, se.Err)
		}
		return nil, err
	}
	f := os.NewFile(uintptr(fd), path)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &notRegularError{path, trust.FileKind(fi.Mode())}
	}
	return f, nil
}

func hashFile(v *trust.Verifier, path string, want trust.Algo) (trust.Sums, error) {
	f, err := openRegular(path)
	if err != nil {
		return trust.Sums{}, err
	}
	defer f.Close()
	sums, err := v.Sums(context.Background(), int(f.Fd()), want)
	if err != nil {
		return sums, fmt.Errorf("%s: %w", path, err)
	}
	return sums, nil
}

// trustSources are the flags that choose a command's trust sources.
type trustSources struct {
	files stringList
	dir   string
	// fileFlag and dirFlag are the names files and dir were registered under (--file,
	// --dir; guard's --trust, --trust-dir), for checkDir's errors.
	fileFlag, dirFlag string
	packages          bool
	noPackages        bool
	dpkgDir           string
}

func (s *trustSources) register(fs *flagSet) {
	s.fileFlag, s.dirFlag = "--file", "--dir"
	fs.value(&s.files, "file,f", "read the trust file FILE (repeatable; default: the *.trust files of --dir)")
	fs.stringVar(&s.dir, "dir", "read the *.trust files of DIR when no --file is given (default "+trust.DefaultDir+")")
	fs.boolVar(&s.packages, "packages,p", "include the package database (the default when PATHs are named)")
	fs.boolVar(&s.noPackages, "no-packages", "leave the package database out, also when PATHs are named")
	fs.stringVar(&s.dpkgDir, "dpkg-dir", "dpkg's database directory (default "+trust.DefaultDpkgDir+")")
}

// checkDir refuses a directory flag that would be ignored or read nothing, where the default
// directory may be missing (it then holds no trust file): given with a file flag, it is not
// read (a usage error, exit 2); given and missing, a typo would leave the trust files out
// without a word (a runtime error naming it, exit 1).
func (s *trustSources) checkDir(cmd string) (int, bool) {
	if s.dir == "" {
		return 0, true
	}
	if len(s.files) > 0 {
		fmt.Fprintf(os.Stderr, "fsnotifyd %s: %s is read only when no %s is given: give one or the other (see \"fsnotifyd %s --help\")\n", cmd, s.dirFlag, s.fileFlag, cmd)
		return exitUsage, false
	}
	if _, err := os.Stat(s.dir); err != nil {
		if pe := (*os.PathError)(nil); errors.As(err, &pe) {
			err = pe.Err
		}
		return fail(cmd, fmt.Errorf("%s %s: %w", s.dirFlag, s.dir, err)), false
	}
	return 0, true
}

// load loads the chosen sources; withPaths says PATHs were named (the package database is then
// included unless --no-packages).
func (s *trustSources) load(cmd string, withPaths bool) (*trust.DB, int, bool) {
	if s.packages && s.noPackages {
		fmt.Fprintf(os.Stderr, "fsnotifyd %s: --packages and --no-packages contradict each other (see \"fsnotifyd %s --help\")\n", cmd, cmd)
		return nil, exitUsage, false
	}
	if status, ok := s.checkDir(cmd); !ok {
		return nil, status, false
	}
	cfg := trust.Config{Files: s.files, Packages: s.packages || (withPaths && !s.noPackages), DpkgDir: s.dpkgDir}
	if len(s.files) == 0 {
		cfg.Dir = s.dir
		if cfg.Dir == "" {
			cfg.Dir = trust.DefaultDir
		}
	}
	db, err := trust.Load(cfg)
	if err != nil {
		return nil, fail(cmd, err), false
	}
	return db, 0, true
}

// selectEntries returns db's entries, or those of the named paths (canonicalized); missing
// lists the paths with none.
func selectEntries(db *trust.DB, paths []string) (entries []trust.Entry, missing []string) {
	if len(paths) == 0 {
		db.Each(func(e trust.Entry) bool { entries = append(entries, e); return true })
		return entries, nil
	}
	for _, p := range paths {
		canon, err := canonicalPath(p)
		if err != nil { // gone: look the path up as written
			canon, _ = filepath.Abs(p)
		}
		found := db.Lookup(canon, nil)
		if len(found) == 0 {
			missing = append(missing, p)
		}
		entries = append(entries, found...)
	}
	return entries, missing
}

func formatEntry(e trust.Entry) string {
	size := "-"
	if e.Size >= 0 {
		size = fmt.Sprint(e.Size)
	}
	return fmt.Sprintf("%s %s %s %s", trust.EscapePath(e.Path), size, e.Digest, e.Source)
}

const trustListHelp = `
Print the entries of the trust database, one per line: the path (escaped as
in trust files), the size (- when the source records none), the digest and
the source (a trust file's name and line, or dpkg:PACKAGE).

Without PATH, the entries of the trust files are listed, and with
--packages those of the package database too. With PATHs, each one is looked
up in every source, the package database included (--no-packages leaves it
out); a PATH with no entry is reported on stderr and the exit status is 1.
--count prints the number of entries per source instead.

Examples:
  fsnotifyd trust list
  fsnotifyd trust list /usr/bin/ls /usr/local/bin/backup
  fsnotifyd trust list --packages --count
  fsnotifyd trust list --file ./staging.trust
`

func runTrustList(args []string) int {
	var src trustSources
	var count bool
	fs := newFlagSet("trust list", "[--file FILE]... [--dir DIR] [--packages|--no-packages] [--count] [PATH...]", trustListHelp)
	src.register(fs)
	fs.boolVar(&count, "count,c", "print the number of entries per source")
	paths, status, ok := fs.parseArgs(args)
	if !ok {
		return status
	}
	db, status, ok := src.load("trust list", len(paths) > 0)
	if !ok {
		return status
	}
	if count {
		st := db.Stats()
		p := st.Packages
		fmt.Printf("%d entries\n", db.Len())
		fmt.Printf("trust files: %d entries in %d files\n", st.TrustEntries, st.TrustFiles)
		if db.Config().Packages {
			fmt.Printf("packages: %d files and %d conffiles of %d packages (%d MB read, index %.1f MB); loaded in %v\n",
				p.Files, p.Conffiles, p.Packages, p.InfoBytes>>20, float64(p.IndexBytes)/1e6, st.LoadTime.Round(time.Millisecond))
		}
		return exitOK
	}
	entries, missing := selectEntries(db, paths)
	w := newLineWriter(os.Stdout)
	for _, e := range entries {
		w.line(formatEntry(e))
	}
	w.flush()
	for _, p := range missing {
		fmt.Fprintf(os.Stderr, "fsnotifyd trust list: %s: no entry (not trusted)\n", p)
	}
	if len(missing) > 0 {
		return exitRuntime
	}
	return exitOK
}

const trustCheckHelp = `
Verify files against their entries: each entry's file is opened (a final
symbolic link is not followed), hashed, and reported as

  OK        the content is what the entry says: the file is trusted
  MODIFIED  the content (or size) differs, or the path is no longer a
            regular file: the file is not trusted until it is added again
  MISSING   no file at the path (or the path now leads elsewhere)
  ERROR     the file could not be read (the message says why)

one line each: STATUS PATH (SOURCE[: details]). The exit status is 1 when any
entry is not OK. Without PATH, the entries of the trust files are checked,
and with --packages those of the package database too (tens of thousands of
files: a progress line is shown on a terminal). With PATHs, their entries in
every source are checked. A summary goes to stderr.

Examples:
  fsnotifyd trust check
  fsnotifyd trust check /usr/local/bin/backup
  fsnotifyd trust check --packages --failed
`

func runTrustCheck(args []string) int {
	var src trustSources
	var failedOnly bool
	jobs := runtime.GOMAXPROCS(0)
	fs := newFlagSet("trust check", "[--file FILE]... [--dir DIR] [--packages|--no-packages] [--failed] [-j N] [PATH...]", trustCheckHelp)
	src.register(fs)
	fs.boolVar(&failedOnly, "failed", "print only the entries that are not OK")
	fs.intVar(&jobs, "j,jobs", "hash N files at once (default: the number of CPUs)")
	paths, status, ok := fs.parseArgs(args)
	if !ok {
		return status
	}
	if jobs < 1 {
		return fs.usageError(fmt.Errorf("-j %d: want at least 1", jobs))
	}
	db, status, ok := src.load("trust check", len(paths) > 0)
	if !ok {
		return status
	}
	entries, missing := selectEntries(db, paths)
	for _, p := range missing {
		fmt.Fprintf(os.Stderr, "fsnotifyd trust check: %s: no entry (not trusted)\n", p)
	}
	var progress io.Writer
	if db.Config().Packages && isTerminal(os.Stderr) {
		progress = os.Stderr
	}
	counts := checkEntries(entries, jobs, failedOnly, os.Stdout, progress)
	fmt.Fprintf(os.Stderr, "checked %d entries: %d OK, %d MODIFIED, %d MISSING, %d ERROR\n",
		len(entries), counts[checkOK], counts[checkModified], counts[checkMissing], counts[checkError])
	if counts[checkOK] != len(entries) || len(missing) > 0 {
		return exitRuntime
	}
	return exitOK
}

type checkStatus int

const (
	checkOK checkStatus = iota
	checkModified
	checkMissing
	checkError
)

var checkNames = [...]string{"OK", "MODIFIED", "MISSING", "ERROR"}

// checkEntries verifies entries with jobs workers, printing a line per entry in order (failures
// only with failedOnly), and a progress line to progress when it is not nil.
func checkEntries(entries []trust.Entry, jobs int, failedOnly bool, out, progress io.Writer) [4]int {
	var counts [4]int
	v := trust.NewVerifier(trust.VerifierConfig{CacheEntries: 1})
	w := newLineWriter(out)
	const batch = 256
	results := make([]string, batch)
	stats := make([]checkStatus, batch)
	last := time.Time{}
	for start := 0; start < len(entries); start += batch {
		part := entries[start:min(start+batch, len(entries))]
		var wg sync.WaitGroup
		next := make(chan int)
		for range min(jobs, len(part)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					stats[i], results[i] = checkEntry(v, part[i])
				}
			}()
		}
		for i := range part {
			next <- i
		}
		close(next)
		wg.Wait()
		for i := range part {
			counts[stats[i]]++
			if !failedOnly || stats[i] != checkOK {
				w.line(results[i])
			}
		}
		if progress != nil && time.Since(last) > 100*time.Millisecond {
			w.flush()
			fmt.Fprintf(progress, "\rchecked %d of %d files...", start+len(part), len(entries))
			last = time.Now()
		}
	}
	w.flush()
	if progress != nil {
		fmt.Fprintf(progress, "\r\033[K")
	}
	return counts
}

func checkEntry(v *trust.Verifier, e trust.Entry) (checkStatus, string) {
	line := func(st checkStatus, detail string) (checkStatus, string) {
		src := e.Source.String()
		if detail != "" {
			src += ": " + detail
		}
		return st, fmt.Sprintf("%-8s %s (%s)", checkNames[st], trust.EscapePath(e.Path), src)
	}
	f, err := openRegular(e.Path)
	var nr *notRegularError
	switch {
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		return line(checkMissing, "")
	case errors.As(err, &nr):
		return line(checkModified, "now "+nr.kind)
	case err != nil:
		return line(checkError, strings.TrimPrefix(err.Error(), e.Path+": "))
	}
	defer f.Close()
	// The entry is for the path the kernel reports: a path that now leads elsewhere (a
	// directory replaced by a symbolic link) is not where the guard would find this file.
	if at, err := sys.FdPath(int(f.Fd())); err == nil && at != e.Path {
		return line(checkMissing, "the path now leads to "+trust.EscapePath(at))
	}
	res, err := v.VerifyEntries(context.Background(), []trust.Entry{e}, int(f.Fd()))
	switch {
	case err != nil:
		return line(checkError, err.Error())
	case res.Trusted():
		return line(checkOK, "")
	case res.Actual.Algo == 0:
		fi, _ := f.Stat()
		return line(checkModified, fmt.Sprintf("size %d, want %d", fi.Size(), e.Size))
	}
	return line(checkModified, fmt.Sprintf("%s, want %s", res.Actual, e.Digest))
}

// lineWriter buffers output lines (a --packages listing has ~100,000).
type lineWriter struct {
	w   io.Writer
	buf []byte
}

func newLineWriter(w io.Writer) *lineWriter { return &lineWriter{w: w} }

func (l *lineWriter) line(s string) {
	l.buf = append(append(l.buf, s...), '\n')
	if len(l.buf) > 64<<10 {
		l.flush()
	}
}

func (l *lineWriter) flush() {
	l.w.Write(l.buf)
	l.buf = l.buf[:0]
}

// isTerminal reports whether f is a terminal (a character device: a person may be waiting).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
