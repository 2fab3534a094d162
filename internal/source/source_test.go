//go:build linux

package source

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/daemon"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/testdaemon"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// daemonEnv makes TestHelperDaemon serve the socket it names until its stdin closes
// (TestRemoteExemptNeedsTheDaemonsPidNamespace runs it in a pid namespace of its own).
const daemonEnv = "FSNOTIFYD_SOURCE_TEST_DAEMON"

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 && os.Getenv(daemonEnv) == "" {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// TestHelperDaemon is not a test: with daemonEnv set, it is a daemon that says "serving" on
// stdout once it serves, and ends when its stdin closes.
func TestHelperDaemon(t *testing.T) {
	sock := os.Getenv(daemonEnv)
	if sock == "" {
		t.Skip("a helper process of TestRemoteExemptNeedsTheDaemonsPidNamespace")
	}
	testdaemon.Start(t, daemon.Options{Config: daemon.DefaultConfig()}, sock)
	fmt.Println("serving")
	io.Copy(io.Discard, os.Stdin)
}

// startDaemon runs a daemon in this process on a socket under t.TempDir().
func startDaemon(t *testing.T) string {
	t.Helper()
	return testdaemon.Start(t, daemon.Options{Config: daemon.DefaultConfig()}, filepath.Join(t.TempDir(), "d.sock")).Sock
}

// eachMode runs f embedded and through a daemon: the two sources must behave the same.
func eachMode(t *testing.T, f func(t *testing.T, daemon string)) {
	testenv.RequireRoot(t)
	t.Run("embedded", func(t *testing.T) { f(t, "") })
	t.Run("daemon", func(t *testing.T) { f(t, startDaemon(t)) })
}

func open(t *testing.T, opts Options) Source {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// next reads events until one satisfies ok (within 10 s), releasing the others.
func next(t *testing.T, s Source, ok func(*Event) bool) Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	buf := make([]Event, 16)
	for {
		n, err := s.ReadBatch(ctx, buf)
		if err != nil {
			t.Fatalf("no such event: %v", err)
		}
		for i := range buf[:n] {
			if ok(&buf[i]) {
				for j := range buf[i+1 : n] {
					buf[i+1+j].Release()
				}
				return buf[i]
			}
			buf[i].Release()
		}
	}
}

// The same object marked twice is the same *Mark; its events are placed relative to it; once
// RemoveMark returns, no event of its object is read (a mark on another directory, written
// after, is what is read next).
func TestSourceMarks(t *testing.T) {
	eachMode(t, func(t *testing.T, daemon string) {
		dir := testenv.Tmpfs(t)
		a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
		os.Mkdir(a, 0o755)
		os.Mkdir(b, 0o755)
		s := open(t, Options{Daemon: daemon, Name: "source-test", WantComm: true})
		ctx := context.Background()
		spec := engine.MarkSpec{Mask: engine.Create | engine.EventOnChild | engine.OnDir}
		ma, err := s.AddMark(ctx, a, engine.KindInode, spec)
		if err != nil {
			t.Fatal(err)
		}
		again, err := s.AddMark(ctx, a+"/.", engine.KindInode, spec)
		if err != nil || again != ma {
			t.Fatalf("marking %s again: %p, %v; want the same mark %p", a, again, err, ma)
		}
		if ma.Path != a || !ma.IsDir || ma.Kind != engine.KindInode {
			t.Errorf("mark %+v, want an inode mark on the directory %s", ma, a)
		}
		mb, err := s.AddMark(ctx, b, engine.KindInode, spec)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(a, "f"), nil, 0o644)
		ev := next(t, s, func(e *Event) bool { return e.Mask&engine.Create != 0 })
		if ev.Path != filepath.Join(a, "f") || ev.Relation(ma) != Entry || ev.Relation(mb) != Unrelated {
			t.Errorf("create %q: relation %d to a, %d to b; want %s/f, an entry of a only", ev.Path, ev.Relation(ma), ev.Relation(mb), a)
		}
		if ev.Pid != int32(os.Getpid()) || ev.Comm == "" {
			t.Errorf("create by pid %d (%q), want this process %d and its name", ev.Pid, ev.Comm, os.Getpid())
		}
		if err := s.RemoveMark(ctx, ma); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(a, "g"), nil, 0o644)
		os.WriteFile(filepath.Join(b, "g"), nil, 0o644)
		ev = next(t, s, func(*Event) bool { return true })
		if ev.Path != filepath.Join(b, "g") {
			t.Errorf("after RemoveMark(a), read %v on %q, want the create of %s/g", ev.Mask, ev.Path, b)
		}
	})
}

// A permission source offers each event to Inline first, on the goroutine that read it: an
// answer there is final and reported to Answered; what it declines is read with ReadBatch and
// answered with Respond, once (a second answer is ErrTooLate).
func TestSourcePermission(t *testing.T) {
	eachMode(t, func(t *testing.T, daemon string) {
		dir := testenv.Tmpfs(t)
		inl, queued := filepath.Join(dir, "inline"), filepath.Join(dir, "queued")
		os.WriteFile(inl, []byte("i"), 0o644)
		os.WriteFile(queued, []byte("q"), 0o644)
		var mu sync.Mutex
		var answered []string
		s := open(t, Options{Daemon: daemon, Name: "source-test", Class: engine.ClassContent, QueueLimit: -1,
			Deadline: 10 * time.Second, EventFDs: true,
			Inline: func(ev *Event) (Answer, any, bool) {
				if p := ev.GetPath(); strings.HasSuffix(p, "/inline") {
					return Answer{Verdict: engine.Deny}, p, true
				}
				return Answer{}, nil, false
			},
			Answered: func(tag any, err error) {
				mu.Lock()
				defer mu.Unlock()
				answered = append(answered, fmt.Sprintf("%v %v", tag, err))
			}})
		if _, err := s.AddMark(context.Background(), dir, engine.KindSubtree, engine.MarkSpec{Mask: engine.OpenPerm}); err != nil {
			t.Fatal(err)
		}
		if _, err := testenv.Sh(nil, "cat "+inl); err == nil {
			t.Errorf("cat %s: allowed, want the inline deny", inl)
		}
		// Answered comes after the answer went out (through the daemon, after Respond): the
		// opener may return first.
		for end := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			mu.Lock()
			got := append([]string(nil), answered...)
			mu.Unlock()
			if len(got) == 1 && got[0] == inl+" <nil>" {
				break
			}
			if len(got) > 1 || time.Now().After(end) {
				t.Errorf("Answered got %q, want one %q", got, inl+" <nil>")
				break
			}
		}

		out := make(chan error, 1)
		go func() { _, err := testenv.Sh(nil, "cat "+queued); out <- err }()
		ev := next(t, s, func(e *Event) bool { return e.ID != 0 })
		if p := ev.GetPath(); p != queued || ev.Mask&engine.OpenPerm == 0 {
			t.Errorf("queued event %v on %q, want OPEN_PERM on %s", ev.Mask, p, queued)
		}
		if ev.Fd() < 0 {
			t.Error("the permission event has no descriptor")
		}
		if err := ev.Respond(context.Background(), engine.Response{Verdict: engine.Deny}); err != nil {
			t.Fatalf("Respond: %v", err)
		}
		if err := ev.Respond(context.Background(), engine.Response{Verdict: engine.Allow}); !errors.Is(err, ErrTooLate) {
			t.Errorf("a second Respond: %v, want ErrTooLate", err)
		}
		ev.Release()
		select {
		case err := <-out:
			if err == nil {
				t.Errorf("cat %s: allowed, want the deny", queued)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("cat still waits 10 s after the answer")
		}
	})
}

// Exempt exempts a live helper in both modes (its access is never read), and refuses a pid
// that is no live process.
func TestSourceExempt(t *testing.T) {
	eachMode(t, func(t *testing.T, daemon string) {
		dir := testenv.Tmpfs(t)
		file := filepath.Join(dir, "f")
		os.WriteFile(file, []byte("x"), 0o644)
		s := open(t, Options{Daemon: daemon, Name: "source-test", Class: engine.ClassContent, QueueLimit: -1,
			Deadline: 10 * time.Second, DeadlineVerdict: engine.Deny})
		h, gate := testenv.Gated(t, "read go; exec cat "+file) // the helper itself opens it
		done, err := s.Exempt(h.Process.Pid)
		if err != nil {
			t.Fatalf("Exempt(%d), a live helper: %v", h.Process.Pid, err)
		}
		defer done()
		if _, err := s.AddMark(context.Background(), dir, engine.KindSubtree, engine.MarkSpec{Mask: engine.OpenPerm}); err != nil {
			t.Fatal(err)
		}
		gate()
		waited := make(chan error, 1)
		go func() { waited <- h.Wait() }()
		select {
		case err := <-waited:
			if err != nil {
				t.Errorf("the exempt helper's cat: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("the exempt helper's cat waits on the source")
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			buf := make([]Event, 4)
			if n, _ := s.ReadBatch(ctx, buf); n > 0 {
				for i := range buf[:n] {
					buf[i].Respond(context.Background(), engine.Response{Verdict: engine.Allow})
					buf[i].Release()
				}
			}
			<-waited
		}
		dead := exec.Command("true")
		dead.Run()
		if _, err := s.Exempt(dead.Process.Pid); err == nil {
			t.Errorf("Exempt(%d), a reaped process: no error", dead.Process.Pid)
		}
	})
}

// Through a daemon in another pid namespace, Exempt refuses with an error that says so: the
// daemon's events name processes by pids that are not this process's, and exempting by them
// would exempt other processes (never a silent no-op).
func TestRemoteExemptNeedsTheDaemonsPidNamespace(t *testing.T) {
	testenv.RequireRoot(t)
	sock := filepath.Join(t.TempDir(), "d.sock")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperDaemon$")
	cmd.Env = append(os.Environ(), daemonEnv+"="+sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "serving\n" {
		t.Fatalf("the daemon in a pid namespace of its own: %q, %v", line, err)
	}
	s := open(t, Options{Daemon: sock, Name: "source-test"})
	done, err := s.Exempt(os.Getpid())
	if err == nil || !strings.Contains(err.Error(), "another pid namespace") {
		t.Errorf("Exempt through a daemon in another pid namespace: %v, want an error naming the pid namespace", err)
	}
	if done == nil {
		t.Error("Exempt returned a nil done")
	} else {
		done()
	}
}

// impostorEnv names, for TestRemoteExemptFromAChildPidNamespace, the socket of a daemon in
// the pid namespace above it.
const impostorEnv = "FSNOTIFYD_SOURCE_TEST_PARENT_DAEMON"

// Through a daemon in a pid namespace above this process's, Exempt refuses even when the
// daemon's Welcome says it sees this process under its own pid (a coincidence of pid numbers
// across namespaces, or a daemon's mistake): the kernel says this process cannot see the
// daemon (its SO_PEERCRED pid is 0 here), so the namespaces differ, and the daemon's events
// name processes by pids that are not this process's. Before, the Welcome's word was taken.
func TestRemoteExemptFromAChildPidNamespace(t *testing.T) {
	testenv.RequireRoot(t)
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	// The client will be pid 1 of its namespace: the daemon says so.
	testdaemon.ServeImpostor(t, ln, 1)
	t.Setenv(impostorEnv, sock)
	testenv.RunInPidNamespace(t, "TestRemoteExemptFromAChildPidNamespaceInner", nil)
}

func TestRemoteExemptFromAChildPidNamespaceInner(t *testing.T) {
	testenv.EnterPidNamespace(t)
	s := open(t, Options{Daemon: os.Getenv(impostorEnv), Name: "source-test"})
	if w := s.(*remote).Welcome(); w.PID != int32(os.Getpid()) {
		t.Fatalf("the daemon says this process is pid %d, want %d (the case under test)", w.PID, os.Getpid())
	}
	done, err := s.Exempt(os.Getpid())
	if err == nil || !strings.Contains(err.Error(), "another pid namespace") {
		t.Errorf("Exempt through a daemon in the pid namespace above: %v, want an error naming the pid namespace", err)
	}
	if done != nil {
		done()
	}
}

// The event a source offers to Inline is one value it rewrites for each event (no copy, no
// allocation): that is sound only while Inline calls come one at a time and none sees its
// event change under it. Here eight shells open files at once, and every event first waits
// in a higher-priority group answered from other goroutines, so that the walks that reach the
// Inline source resume after those answers (on the backend's loop embedded, on the
// connection's reader through the daemon). Inline holds each event 100 µs: a second call
// meanwhile, or a change of the event before it returns, fails the test (and -race reports
// the shared event's writes).
func TestSourceInlineCallsOneAtATime(t *testing.T) {
	eachMode(t, func(t *testing.T, daemon string) {
		dir := testenv.Tmpfs(t)
		const files, opens = 8, 40
		for i := range files {
			os.WriteFile(filepath.Join(dir, fmt.Sprint(i)), nil, 0o644)
		}
		var shared *backend.Backend
		if daemon == "" {
			b, err := backend.New(backend.Options{Mode: backend.ModeAuto})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() }) // after the sources' Close (cleanups run last first)
			shared = b
		}
		var inflight, calls, waited atomic.Int32
		var mu sync.Mutex
		var bad []string
		fail := func(format string, a ...any) {
			mu.Lock()
			bad = append(bad, fmt.Sprintf(format, a...))
			mu.Unlock()
		}
		inl := open(t, Options{Daemon: daemon, Name: "source-inline", Class: engine.ClassContent, QueueLimit: -1,
			Deadline: 20 * time.Second, Backend: shared, Release: func() {},
			Inline: func(ev *Event) (Answer, any, bool) {
				if n := inflight.Add(1); n != 1 {
					fail("%d Inline calls at once", n)
				}
				calls.Add(1)
				before := ev.Event
				time.Sleep(100 * time.Microsecond)
				if ev.Event != before {
					fail("the event changed while Inline ran: %+v, then %+v", before, ev.Event)
				}
				inflight.Add(-1)
				return Answer{}, nil, true
			}})
		first := open(t, Options{Daemon: daemon, Name: "source-first", Class: engine.ClassPreContent, QueueLimit: -1,
			Deadline: 20 * time.Second, Backend: shared, Release: func() {}})
		for _, s := range []Source{inl, first} {
			if _, err := s.AddMark(context.Background(), dir, engine.KindSubtree, engine.MarkSpec{Mask: engine.OpenPerm}); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var answerers sync.WaitGroup
		answerers.Add(1)
		go func() { // the first group's reader hands each event to a goroutine of its own
			defer answerers.Done()
			buf := make([]Event, 16)
			for {
				n, err := first.ReadBatch(ctx, buf)
				if err != nil {
					return
				}
				for i := range buf[:n] {
					ev := buf[i]
					if ev.ID != 0 {
						waited.Add(1)
					}
					answerers.Add(1)
					go func() {
						defer answerers.Done()
						ev.Respond(context.Background(), engine.Response{})
						ev.Release()
					}()
				}
			}
		}()
		var openers sync.WaitGroup
		for i := range files {
			openers.Add(1)
			go func() {
				defer openers.Done()
				// A shell of its own (this process's opens are exempt), opening the file
				// itself.
				sh := fmt.Sprintf("for i in $(seq %d); do : < %s; done", opens, filepath.Join(dir, fmt.Sprint(i)))
				if out, err := testenv.Sh(nil, sh); err != nil {
					fail("%s: %v %s", sh, err, out)
				}
			}()
		}
		openers.Wait()
		cancel()
		answerers.Wait()
		if n := calls.Load(); n < files*opens {
			t.Errorf("Inline saw %d events, want at least %d", n, files*opens)
		}
		if n := waited.Load(); n < files*opens {
			t.Errorf("the first group answered %d events, want at least %d", n, files*opens)
		}
		for _, b := range bad[:min(len(bad), 5)] {
			t.Error(b)
		}
	})
}

// Inline's Answer is what the kernel is told, field by field (embedded: the group's Handler
// builds the engine.Response from it): a Deny denies the open; an Allow without Cache is never
// remembered in the kernel, however often the file is opened; an Allow with Cache is (the
// backend's verdict cache places an ignore mark: Stats().VerdictCached). A Handler that drops
// Answer.Cache, or the Verdict, fails here. (Answer.Errno: cmd/fsnotifyd's
// TestGuardErrnoRuleDeniesAtOnce, embedded and through the daemon.)
func TestSourceInlineAnswerReachesTheKernel(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	for _, f := range []string{"deny", "nocache", "cache"} {
		os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644)
	}
	b, err := backend.New(backend.Options{Mode: backend.ModeAuto})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() }) // after the source's Close (cleanups run last first)
	var calls sync.Map              // file name → *atomic.Int32
	asked := func(name string) int32 {
		if n, ok := calls.Load(name); ok {
			return n.(*atomic.Int32).Load()
		}
		return 0
	}
	s := open(t, Options{Name: "source-answer", Class: engine.ClassContent, QueueLimit: -1,
		Deadline: 10 * time.Second, Backend: b, Release: func() {},
		Inline: func(ev *Event) (Answer, any, bool) {
			name := filepath.Base(ev.GetPath())
			n, _ := calls.LoadOrStore(name, new(atomic.Int32))
			n.(*atomic.Int32).Add(1)
			switch name {
			case "deny":
				return Answer{Verdict: engine.Deny}, nil, true
			case "cache":
				return Answer{Verdict: engine.Allow, Cache: true}, nil, true
			}
			return Answer{Verdict: engine.Allow}, nil, true
		}})
	if _, err := s.AddMark(context.Background(), dir, engine.KindSubtree, engine.MarkSpec{Mask: engine.OpenPerm}); err != nil {
		t.Fatal(err)
	}
	// A shell of its own opens the files (this process's opens are exempt).
	cat := func(name string, times int) (string, error) {
		return testenv.Sh(nil, fmt.Sprintf("for i in $(seq %d); do cat %s; done", times, filepath.Join(dir, name)))
	}
	if out, err := cat("deny", 1); err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("cat deny: %v %q, want EPERM", err, out)
	}
	// Without Cache: opened again and again (the verdict cache's name watch is set up after
	// the first events), Inline is asked each time and nothing is cached.
	for range 10 {
		if out, err := cat("nocache", 5); err != nil || out != strings.Repeat("nocache", 5) {
			t.Fatalf("cat nocache: %v %q", err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := b.Stats().VerdictCached; n != 0 {
		t.Errorf("%d allows cached after allows without Cache, want 0", n)
	}
	if n := asked("nocache"); n != 50 {
		t.Errorf("Inline asked %d times about nocache, want 50", n)
	}
	// With Cache: cached within a few opens.
	deadline := time.Now().Add(5 * time.Second)
	for b.Stats().VerdictCached == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no allow with Cache cached within 5s (Inline asked %d times)", asked("cache"))
		}
		if out, err := cat("cache", 1); err != nil || out != "cache" {
			t.Fatalf("cat cache: %v %q", err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSourceInlineTableAnswersFirst: an embedded source answers each permission event from
// its InlineTable before Inline, by the event's kind; what the table answers reaches the
// kernel as it holds it (a deny denies, an allow with Cache is cached) and is counted, without
// Inline or Answered hearing of the event; what it leaves undecided goes to Inline as before.
// It fails when the Handler skips the table, drops its verdict or cache bit, answers what it
// leaves undecided, or miscounts.
func TestSourceInlineTableAnswersFirst(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	f := filepath.Join(dir, "f")
	os.WriteFile(f, []byte("f"), 0o644)
	b, err := backend.New(backend.Options{Mode: backend.ModeAuto})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() }) // after the source's Close (cleanups run last first)
	tab := new(InlineTable)
	var inlines, answered atomic.Int32
	s := open(t, Options{Name: "source-table", Class: engine.ClassContent, QueueLimit: -1,
		Deadline: 10 * time.Second, Backend: b, Release: func() {},
		InlineTable: tab,
		Inline: func(ev *Event) (Answer, any, bool) {
			inlines.Add(1)
			return Answer{Verdict: engine.Allow}, nil, true
		},
		Answered: func(any, error) { answered.Add(1) }})
	if _, err := s.AddMark(context.Background(), dir, engine.KindSubtree, engine.MarkSpec{Mask: engine.OpenPerm}); err != nil {
		t.Fatal(err)
	}
	counts := func() [2]uint64 { a, d := tab.Counts(); return [2]uint64{a, d} }
	set := func(k engine.Mask, a Answer) {
		var e Entries
		if !e.Set(k, a) {
			t.Fatalf("Set(%v, %+v) refused", k, a)
		}
		tab.Store(e)
	}
	// A shell of its own opens the file (this process's opens are exempt).
	cat := func(times int) (string, error) {
		return testenv.Sh(nil, fmt.Sprintf("for i in $(seq %d); do cat %s; done", times, f))
	}
	// Undecided (an empty table, then one that answers execs only): every open goes on to
	// Inline, which allows, and Answered hears of each.
	if out, err := cat(5); err != nil || out != strings.Repeat("f", 5) {
		t.Fatalf("cat, empty table: %v %q", err, out)
	}
	set(engine.OpenExecPerm, Answer{Verdict: engine.Deny})
	if out, err := cat(5); err != nil || out != strings.Repeat("f", 5) {
		t.Fatalf("cat, table of execs: %v %q", err, out)
	}
	if i, a, c := inlines.Load(), answered.Load(), counts(); i != 10 || a != 10 || c != [2]uint64{} {
		t.Errorf("table undecided: Inline asked %d times, Answered %d, table counts %v; want 10, 10, [0 0]", i, a, c)
	}
	// Denied by the table: the open fails, and neither Inline nor Answered hears of it.
	set(engine.OpenPerm, Answer{Verdict: engine.Deny})
	for range 5 {
		if out, err := cat(1); err == nil || !strings.Contains(out, "Operation not permitted") {
			t.Errorf("cat, table denying: %v %q, want EPERM", err, out)
		}
	}
	if i, a, c := inlines.Load(), answered.Load(), counts(); i != 10 || a != 10 || c != [2]uint64{0, 5} {
		t.Errorf("table denying 5: Inline asked %d times, Answered %d, table counts %v; want 10, 10, [0 5]", i, a, c)
	}
	if b.Stats().VerdictCached != 0 {
		t.Errorf("%d verdicts cached before any answer with Cache", b.Stats().VerdictCached)
	}
	// Allowed with Cache by the table: cached within a few opens, each counted until then.
	set(engine.OpenPerm, Answer{Verdict: engine.Allow, Cache: true})
	deadline := time.Now().Add(5 * time.Second)
	n := uint64(0)
	for b.Stats().VerdictCached == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no allow with Cache from the table cached within 5s (%d opens)", n)
		}
		if out, err := cat(1); err != nil || out != "f" {
			t.Fatalf("cat, table allowing: %v %q", err, out)
		}
		n++
		time.Sleep(20 * time.Millisecond)
	}
	if i, a, c := inlines.Load(), answered.Load(), counts(); i != 10 || a != 10 || c[1] != 5 || c[0] < 1 || c[0] > n {
		t.Errorf("after the table's allows: Inline asked %d times, Answered %d, table counts %v; want 10, 10, [1..%d 5]", i, a, c, n)
	}
}
