//go:build linux

package backend

// Helpers for the kernel scenario tests (ltp_test.go, scenario_test.go): an event recorder
// for engine groups, and child processes made by re-executing this test binary — accessors
// (our own process is exempt from permission events by design, so another process must cause
// them) and listeners (a backend + engine in a process the test can SIGSTOP or SIGKILL).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// hang bounds every wait for something that must happen; it is not a timing assertion: when it
// passes, the test fails as hung (and its cleanup kills what it started).
const hang = 30 * time.Second

// permDeadline is the safety net of every permission group that does not need to hold events.
const permDeadline = 10 * time.Second

// ---------------------------------------------------------------------------------------------
// Objects.

// stat returns path's statx (without following a final symlink).
func stat(t testing.TB, path string) sys.Stat {
	t.Helper()
	st, err := sys.Statx(sys.AT_FDCWD, path, sys.AT_SYMLINK_NOFOLLOW)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// idOf returns the engine ID the backend uses for path's inode.
func idOf(t testing.TB, path string) engine.ID {
	t.Helper()
	st := stat(t, path)
	return inodeID(st.Dev, st.Ino)
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdirAll(t testing.TB, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

// copyExecutable copies a small binary (true(1)) to dst, for open-exec events on a scratch fs.
func copyExecutable(t testing.TB, dst string) {
	t.Helper()
	src, err := exec.LookPath("true")
	if err != nil {
		t.Fatalf("true(1) not found: %v", err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

// touch opens path read-only and closes it: an Open and a CloseNoWrite by this process.
func touch(t testing.TB, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// create creates (or truncates) path and closes it.
func create(t testing.TB, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// addMark resolves path as kind k and adds spec for g, returning the error.
func addMark(b *Backend, g *engine.Group, path string, k engine.Kind, spec engine.MarkSpec) error {
	tg, err := b.Resolve(path, k, false)
	if err != nil {
		return err
	}
	return b.AddMark(g, tg, spec)
}

// ---------------------------------------------------------------------------------------------
// Recorder: reads a group, answers its permission events, and keeps what it read.

// rec is one delivery as a group read it.
type rec struct {
	Mask                               engine.Mask
	Perm                               bool // a permission event (it was answered)
	Inode, Parent, Target, Mount, Fsys engine.ID
	Name, NewName, Path, OldPath       string
	Pid                                int32
	Range                              engine.Range
	Answer                             engine.Response
}

func (r rec) String() string {
	if r.Mask == engine.QueueOverflow {
		return "Q_OVERFLOW"
	}
	s := fmt.Sprintf("%v pid=%d inode=%x:%x path=%q name=%q", r.Mask, r.Pid, r.Inode.Hi, r.Inode.Lo, r.Path, r.Name)
	if !r.Parent.IsZero() {
		s += fmt.Sprintf(" parent=%x:%x", r.Parent.Hi, r.Parent.Lo)
	}
	if r.Mask&engine.Rename != 0 {
		s += fmt.Sprintf(" target=%x:%x newname=%q oldpath=%q", r.Target.Hi, r.Target.Lo, r.NewName, r.OldPath)
	}
	if r.Mask&engine.PreAccess != 0 {
		s += fmt.Sprintf(" range=%d+%d", r.Range.Offset, r.Range.Count)
	}
	if r.Perm {
		s += " answer=" + r.Answer.Verdict.String()
		if r.Answer.Errno != 0 {
			s += "(" + r.Answer.Errno.Error() + ")"
		}
	}
	return s
}

type recorder struct {
	t    *testing.T
	g    *engine.Group
	name string

	mu      sync.Mutex
	recs    []rec
	changed chan struct{} // closed (and replaced) whenever recs grows
	errs    []string

	cancel context.CancelFunc
	done   chan struct{}
}

// record starts reading g until the test ends. policy answers g's permission events (nil:
// allow all); every permission event is answered, whatever policy does.
func record(t *testing.T, g *engine.Group, policy func(rec) engine.Response) *recorder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &recorder{t: t, g: g, name: g.Options().Name, changed: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	go r.loop(ctx, policy)
	t.Cleanup(func() {
		r.cancel()
		<-r.done
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, e := range r.errs {
			t.Errorf("recorder %s: %s", r.name, e)
		}
	})
	return r
}

func (r *recorder) loop(ctx context.Context, policy func(rec) engine.Response) {
	defer close(r.done)
	var buf [64]engine.Delivery
	for {
		n, err := r.g.ReadBatch(ctx, buf[:])
		if err != nil {
			return
		}
		for i := 0; i < n; i++ {
			r.take(buf[i], policy)
			buf[i] = engine.Delivery{}
		}
	}
}

func (r *recorder) take(d engine.Delivery, policy func(rec) engine.Response) {
	x := rec{Mask: d.Mask}
	if ev := d.Event; ev != nil {
		x.Inode, x.Parent, x.Target, x.Mount, x.Fsys = ev.Inode, ev.Parent, ev.Target, ev.Mount, ev.Filesystem
		x.Name, x.NewName, x.Path, x.OldPath = ev.Name, ev.NewName, ev.GetPath(), ev.OldPath
		x.Pid, x.Range = ev.Pid, ev.Range
	}
	if d.ID != 0 {
		// Answer whatever happens (a panicking policy still answers, allow), and only after
		// recording: once an accessor's call returns, its permission events are recorded.
		x.Perm = true
		resp := engine.Response{}
		defer func() {
			if err := r.g.Respond(d.ID, resp); err != nil {
				r.fail("answering %v: %v", x, err)
			}
			d.Release()
		}()
		if policy != nil {
			resp = policy(x)
		}
		x.Answer = resp
	} else {
		defer d.Release()
	}
	r.mu.Lock()
	r.recs = append(r.recs, x)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func (r *recorder) fail(format string, args ...any) {
	r.mu.Lock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// len returns how many deliveries were read so far: a position for waitFor and since.
func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.recs)
}

// since returns the deliveries read from position from on.
func (r *recorder) since(from int) []rec {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]rec(nil), r.recs[from:]...)
}

// waitFor waits until a delivery at position from or later matches pred, and returns its
// position. The test fails (as hung) if none comes within the hang bound.
func (r *recorder) waitFor(from int, what string, pred func(rec) bool) int {
	r.t.Helper()
	timer := time.NewTimer(hang)
	defer timer.Stop()
	for {
		r.mu.Lock()
		for i := from; i < len(r.recs); i++ {
			if pred(r.recs[i]) {
				r.mu.Unlock()
				return i
			}
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			r.t.Fatalf("group %q: no delivery %s after %v; it read:\n%s", r.name, what, hang, dump(r.since(from)))
		}
	}
}

// waitPath waits for a delivery with bit on path and returns its position.
func (r *recorder) waitPath(from int, bit engine.Mask, path string) int {
	r.t.Helper()
	return r.waitFor(from, fmt.Sprintf("%v on %s", bit, path), func(x rec) bool {
		return x.Mask&bit != 0 && x.Path == path
	})
}

func dump(rs []rec) string {
	var b strings.Builder
	for i, x := range rs {
		fmt.Fprintf(&b, "  %3d %v\n", i, x)
	}
	if len(rs) == 0 {
		b.WriteString("  (nothing)\n")
	}
	return b.String()
}

// unionOn returns the union of the masks of the deliveries on inode id in rs.
func unionOn(rs []rec, id engine.ID) engine.Mask {
	var m engine.Mask
	for _, x := range rs {
		if x.Inode == id {
			m |= x.Mask
		}
	}
	return m
}

// waitUntil polls cond until it holds or the hang bound passes (then the test fails). For
// conditions with no event to wait on (a counter reaching a value).
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hang)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after %v for %s", hang, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// within runs f and fails the test if it does not return within the hang bound (f keeps
// running; the test's cleanup must then free whatever it waits on).
func within(t testing.TB, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(hang):
		t.Fatalf("%s did not return within %v (hang)", what, hang)
	}
}

// ---------------------------------------------------------------------------------------------
// Child processes: this test binary re-executed with helperEnv set.

const helperEnv = "FSNOTIFYD_BACKEND_TEST_HELPER"

func init() {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperMain(mode, os.Args[1:]))
	}
}

// proc is a child process whose stdout lines the test reads.
type proc struct {
	t      testing.TB
	cmd    *exec.Cmd
	what   string
	lines  chan string
	exited chan struct{}
	err    error // Wait's result, valid once exited is closed

	stderr lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// spawns carries the forks of children with Pdeathsig to spawner, a goroutine locked for the
// whole test binary to one OS thread that never exits. Pdeathsig fires when the thread that
// forked the child exits, and threads do exit here: a goroutine that locked its thread and
// returns takes the thread with it (the backend's event loop at Close, LongPath's chroot
// goroutine), and the runtime may have run an earlier fork on one of them before it was
// locked — the child was then killed in the middle of its test.
var (
	spawns      = make(chan func())
	spawnerOnce sync.Once
)

func spawner() {
	runtime.LockOSThread() // never unlocked: the thread lives as long as the binary
	for f := range spawns {
		f()
	}
}

// startFromSpawner runs start (an exec.Cmd's Start or Run) on the spawner's thread.
func startFromSpawner(start func() error) error {
	spawnerOnce.Do(func() { go spawner() })
	done := make(chan error, 1)
	spawns <- func() { done <- start() }
	return <-done
}

// startHelper starts this test binary as helper mode with args. Cleanup SIGKILLs it (blocked
// accessors ignore every other signal) and reaps it.
func startHelper(t testing.TB, mode string, args ...string) *proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, what: mode + " " + strings.Join(args, " "), lines: make(chan string, 1<<16), exited: make(chan struct{})}
	p.cmd = exec.Command(exe, args...)
	// GORACE: a race-enabled binary otherwise sleeps 1 s at exit.
	p.cmd.Env = append(os.Environ(), helperEnv+"="+mode, "GORACE=atexit_sleep_ms=0")
	p.cmd.Stderr = &p.stderr
	// Should this test binary die without its cleanup, its children die too: a listener that
	// never answers must not outlive it (the signal comes when the forking thread exits:
	// startFromSpawner forks from a thread that never does).
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := startFromSpawner(p.cmd.Start); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		io.Copy(io.Discard, out)
		p.err = p.cmd.Wait()
		close(p.lines)
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// running reports whether the process has not exited (it cannot while blocked on a
// permission event).
func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// line waits for the next stdout line starting with prefix (skipping others) and returns it.
func (p *proc) line(prefix string) string {
	p.t.Helper()
	timer := time.NewTimer(hang)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("helper %q exited (%v) before printing %q; stderr:\n%s", p.what, p.err, prefix, p.stderr.String())
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timer.C:
			p.t.Fatalf("helper %q printed no %q within %v (hang); stderr:\n%s", p.what, prefix, hang, p.stderr.String())
		}
	}
}

// wait waits for the process to exit (the test fails as hung after the bound) and returns
// its remaining stdout lines.
func (p *proc) wait() []string {
	p.t.Helper()
	var out []string
	timer := time.NewTimer(hang)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				<-p.exited
				if p.err != nil {
					p.t.Fatalf("helper %q: %v; stderr:\n%s", p.what, p.err, p.stderr.String())
				}
				return out
			}
			out = append(out, l)
		case <-timer.C:
			p.t.Fatalf("helper %q still running after %v: blocked (hang)? stderr:\n%s", p.what, hang, p.stderr.String())
		}
	}
}

func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.exited
}

// ---------------------------------------------------------------------------------------------
// Accessors: a child process that performs file operations and reports each result.
//
// Operations (one argument each): open:PATH (read-only), openrw:PATH, openw:PATH, read:N,
// pread:OFF:N, write:N, pwrite:OFF:N, close, exec:PATH (last; a program that exits 0). Each
// prints "OK <n>" or "ERR <errno>"; the first error ends the run.
//
// Never exec a file under a permission mark from the listener's own process (os/exec): Go
// forks with CLONE_VFORK, so the forking thread waits in a raw syscall until the child's
// execve returns; if the child's execve waits for a permission answer and the runtime starts a
// stop-the-world meanwhile, the whole process freezes and can never answer (and the child,
// holding a copy of the group's descriptor until its execve completes, keeps the group alive
// even after the listener dies). The accessor calls execve itself.

// startAccess starts an accessor; its pid is known before it touches anything.
func startAccess(t testing.TB, ops ...string) *proc {
	t.Helper()
	return startHelper(t, "access", ops...)
}

// result is an accessor's outcome: the errno of the failed operation (0 if all succeeded)
// and which operation failed.
type result struct {
	errno syscall.Errno
	op    string
	lines []string
}

func (r result) String() string {
	if r.errno == 0 {
		return "ok"
	}
	return fmt.Sprintf("%s: %v (errno %d)", r.op, r.errno, int(r.errno))
}

func (p *proc) result() result {
	p.t.Helper()
	lines := p.wait()
	res := result{lines: lines}
	ops := p.cmd.Args[1:]
	for i, l := range lines {
		if n, ok := strings.CutPrefix(l, "ERR "); ok {
			e, _ := strconv.Atoi(n)
			res.errno = syscall.Errno(e)
			if i < len(ops) {
				res.op = ops[i]
			}
			return res
		}
	}
	execs := len(ops) > 0 && strings.HasPrefix(ops[len(ops)-1], "exec:")
	if len(lines) != len(ops) && !(execs && len(lines) == len(ops)-1) {
		p.t.Fatalf("accessor %v printed %q", ops, lines)
	}
	return res
}

// access runs an accessor to completion and returns its outcome and pid.
func access(t testing.TB, ops ...string) (result, int) {
	t.Helper()
	p := startAccess(t, ops...)
	return p.result(), p.pid()
}

func helperMain(mode string, args []string) int {
	switch mode {
	case "access":
		return helperAccess(args)
	case "listen-perm":
		return helperListenPerm(args)
	case "listen-overflow":
		return helperListenOverflow(args)
	case "listen-print":
		return helperListenPrint(args)
	}
	fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
	return 2
}

func helperAccess(ops []string) int {
	fd := -1
	buf := make([]byte, 1<<16)
	for _, op := range ops {
		f := strings.Split(op, ":")
		num := func(i int) int {
			n, err := strconv.Atoi(f[i])
			if err != nil {
				fmt.Fprintf(os.Stderr, "bad op %q\n", op)
				os.Exit(2)
			}
			return n
		}
		var n int
		var err error
		switch f[0] {
		case "open":
			fd, err = syscall.Open(strings.Join(f[1:], ":"), syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		case "openrw":
			fd, err = syscall.Open(strings.Join(f[1:], ":"), syscall.O_RDWR|syscall.O_CLOEXEC, 0)
		case "openw":
			fd, err = syscall.Open(strings.Join(f[1:], ":"), syscall.O_WRONLY|syscall.O_CLOEXEC, 0)
		case "read":
			n, err = syscall.Read(fd, buf[:num(1)])
		case "pread":
			n, err = syscall.Pread(fd, buf[:num(2)], int64(num(1)))
		case "write":
			n, err = syscall.Write(fd, bytes.Repeat([]byte("w"), num(1)))
		case "pwrite":
			n, err = syscall.Pwrite(fd, bytes.Repeat([]byte("w"), num(2)), int64(num(1)))
		case "close":
			err = syscall.Close(fd)
		case "chdir":
			err = syscall.Chdir(strings.Join(f[1:], ":"))
		case "exec":
			// This process becomes the program (exit 0, no output) or prints the error.
			path := strings.Join(f[1:], ":")
			err = syscall.Exec(path, []string{path}, os.Environ())
		default:
			fmt.Fprintf(os.Stderr, "unknown op %q\n", op)
			return 2
		}
		var errno syscall.Errno
		if errors.As(err, &errno) {
			fmt.Printf("ERR %d\n", int(errno))
			return 0
		} else if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", op, err)
			return 2
		}
		fmt.Printf("OK %d\n", n)
	}
	return 0
}

// helperBackend is a helper process's backend (opts) with one group (gopts); on an error
// nothing is left open.
func helperBackend(opts Options, gopts engine.Options) (*Backend, *engine.Group, error) {
	b, err := New(opts)
	if err != nil {
		return nil, nil, err
	}
	g, err := b.Engine().NewGroup(gopts)
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	return b, g, nil
}

// helperListenPerm is a permission listener that never answers: a backend with one content
// group marking the filesystem of args[0] for FAN_OPEN_PERM, with no deadline. It prints
// "READY", then "EVENT <pid> <path>" for each event it reads, and waits to be killed.
func helperListenPerm(args []string) int {
	b, g, err := helperBackend(Options{Mode: ModeFanotify}, engine.Options{Name: "never-answers", Class: engine.ClassContent})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := addMark(b, g, args[0], engine.KindFilesystem, engine.MarkSpec{Mask: engine.OpenPerm}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("READY")
	var held []engine.Delivery // never answered, never released
	for {
		d, err := g.Read(context.Background())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		held = append(held, d)
		fmt.Printf("EVENT %d %s\n", d.Event.Pid, d.Event.GetPath())
	}
}

// helperListenOverflow counts Create events in dir args[1] until it reads one named
// args[2]: mode args[0] is "fanotify" (a filesystem mark, through the FID group),
// "fanotify-close" (the same for CloseWrite events, which the FID group reports too) or
// "inotify" (an inode mark on the directory). It prints READY once marked, OVERFLOW when it reads the
// overflow event, and at the end
// "RESULT before=<creates before the overflow> overflows=<n> after=<creates after it> kernel=<backend KernelOverflows>".
// The engine group's queue is unlimited: any overflow comes from the kernel.
func helperListenOverflow(args []string) int {
	mode, dir, sentinel := args[0], args[1], args[2]
	opts := Options{Mode: ModeFanotify}
	kind := engine.KindFilesystem
	counted := engine.Create
	switch mode {
	case "inotify":
		opts.Mode, kind = ModeInotify, engine.KindInode
	case "fanotify-close":
		counted = engine.CloseWrite
	}
	b, g, err := helperBackend(opts, engine.Options{Name: "overflow", QueueLimit: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer b.Close()
	if err := addMark(b, g, dir, kind, engine.MarkSpec{Mask: counted}); err != nil {
		if strings.Contains(err.Error(), "not implemented") {
			fmt.Printf("SKIP %v\n", err)
			return 0
		}
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("READY")
	before, overflows, after := 0, 0, 0
	for {
		d, err := g.Read(context.Background())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		switch {
		case d.Mask&engine.QueueOverflow != 0:
			overflows++
			fmt.Println("OVERFLOW")
		case d.Event != nil && d.Event.Name == sentinel:
			d.Release()
			fmt.Printf("RESULT before=%d overflows=%d after=%d kernel=%d\n", before, overflows, after, b.Stats().KernelOverflows)
			return 0
		case d.Mask&counted != 0 && overflows == 0:
			before++
		case d.Mask&counted != 0:
			after++
		}
		d.Release()
	}
}

func readSysctl(t testing.TB, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// helperListenPrint prints every delivery of a group with a filesystem mark for CREATE and
// ATTRIB on the filesystem of dir args[0] as "EV <mask hex> <inode> <parent> <name>" until
// it reads the CREATE of args[1], then "END". It prints "READY" once marked.
func helperListenPrint(args []string) int {
	dir, sentinel := args[0], args[1]
	b, g, err := helperBackend(Options{Mode: ModeFanotify}, engine.Options{Name: "print", QueueLimit: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer b.Close()
	if err := addMark(b, g, dir, engine.KindFilesystem, engine.MarkSpec{Mask: engine.Create | engine.Attrib}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("READY")
	for {
		d, err := g.Read(context.Background())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if d.Event == nil {
			fmt.Printf("EV %x - - -\n", uint64(d.Mask))
			continue
		}
		ev := d.Event
		name := ev.Name
		if name == "" {
			name = "-"
		}
		fmt.Printf("EV %x %x:%x %x:%x %s\n", uint64(d.Mask), ev.Inode.Hi, ev.Inode.Lo, ev.Parent.Hi, ev.Parent.Lo, name)
		done := d.Mask&engine.Create != 0 && ev.Name == sentinel
		d.Release()
		if done {
			fmt.Println("END")
			return 0
		}
	}
}
