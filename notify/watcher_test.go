//go:build linux

package notify

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// hang bounds every wait for an event; passing tests never reach it (they stop at the event
// they wait for), so it is generous for a loaded machine.
const hang = 30 * time.Second

// modes are the kernel interfaces every Watcher behaviour is checked on.
var modes = []struct {
	name string
	mode backend.Mode
}{
	{"fanotify", backend.ModeFanotify},
	{"inotify", backend.ModeInotify},
}

// env is one test's Watcher setup in one mode.
type env struct {
	t    *testing.T
	mode backend.Mode
	b    *backend.Backend // nil through the daemon
	// daemon is the socket of the daemon the Watchers run through, "" for none.
	daemon string
	dir    string // a scratch directory: a private tmpfs for fanotify, whose recursive
	// watches are filesystem marks; t.TempDir() for inotify, which needs no privilege
}

// eachMode runs f once per mode, as subtests, and once through a daemon (on fanotify): the
// Watcher is built once on its event source, and behaves the same on each.
func eachMode(t *testing.T, f func(e *env)) {
	t.Run("daemon", func(t *testing.T) {
		testenv.RequireRoot(t)
		f(&env{t: t, mode: backend.ModeFanotify, daemon: startDaemon(t), dir: testenv.Tmpfs(t)})
	})
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			e := &env{t: t, mode: m.mode}
			if m.mode == backend.ModeFanotify {
				testenv.RequireRoot(t)
				e.dir = testenv.Tmpfs(t)
			} else {
				e.dir = t.TempDir()
			}
			b, err := backend.New(backend.Options{Mode: m.mode})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() }) // after the Watchers' cleanups (LIFO)
			e.b = b
			f(e)
		})
	}
}

func (e *env) watcher(opts ...Option) *Watcher {
	e.t.Helper()
	first := WithBackend(e.b)
	if e.daemon != "" {
		first = WithDaemon(e.daemon)
	}
	w, err := New(append([]Option{first}, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { w.Close() })
	return w
}

func (e *env) path(elem ...string) string { return filepath.Join(append([]string{e.dir}, elem...)...) }

// until reads w.Events until stop holds for an event (included) and returns what it read;
// the test fails after the hang timeout, showing it.
func until(t *testing.T, w *Watcher, stop func(Event) bool) []Event {
	t.Helper()
	timeout := time.After(hang)
	var got []Event
	for {
		select {
		case ev, ok := <-w.Events:
			if !ok {
				t.Fatalf("Events closed; got:\n%s", show(got))
			}
			got = append(got, ev)
			if stop(ev) {
				return got
			}
		case <-timeout:
			t.Fatalf("timed out; got:\n%s", show(got))
		}
	}
}

func show(evs []Event) string {
	var b strings.Builder
	for _, ev := range evs {
		b.WriteString("\t" + ev.String() + "\n")
	}
	return b.String()
}

func is(op Op, name string) func(Event) bool {
	return func(ev Event) bool { return ev.Has(op) && ev.Name == name }
}

// ops returns the events' operations on name, in order.
func opsOn(evs []Event, name string) []Op {
	var out []Op
	for _, ev := range evs {
		if ev.Name == name {
			out = append(out, ev.Op)
		}
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpAndEventStrings(t *testing.T) {
	for _, c := range []struct {
		op   Op
		want string
	}{
		{0, "[no events]"},
		{Create, "CREATE"},
		{Chmod | Create | Write | Rename | Remove, "CREATE|REMOVE|WRITE|RENAME|CHMOD"},
		{Open | Read | CloseWrite | CloseRead, "OPEN|READ|CLOSE_WRITE|CLOSE_READ"},
		{Rename | CloseRead | Create, "CREATE|CLOSE_READ|RENAME"},
		{Exec | Overflow | Chmod, "CHMOD|EXEC|OVERFLOW"},
	} {
		if got := c.op.String(); got != c.want {
			t.Errorf("Op(%d).String() = %q, want %q", c.op, got, c.want)
		}
	}
	// fsnotify's values, the unexported ones included.
	for op, v := range map[Op]uint32{Create: 1, Write: 2, Remove: 4, Rename: 8, Chmod: 16, Open: 32,
		Read: 64, CloseWrite: 128, CloseRead: 256} {
		if uint32(op) != v {
			t.Errorf("%v = %d, want %d", op, op, v)
		}
	}
	for _, c := range []struct {
		ev   Event
		want string
	}{
		{Event{Name: "dir/f", Op: Create}, `CREATE        "dir/f"`},
		{Event{Name: "/a b", Op: Write | Chmod}, `WRITE|CHMOD   "/a b"`},
		{Event{Name: "dir/g", Op: Create, OldName: "dir/f"}, `CREATE        "dir/g" ← "dir/f"`},
		{Event{Name: "x", Op: Create | Remove | Write | Rename}, `CREATE|REMOVE|WRITE|RENAME "x"`},
		{Event{}, `[no events]   ""`},
	} {
		if got := c.ev.String(); got != c.want {
			t.Errorf("%#v.String() = %q, want %q", c.ev, got, c.want)
		}
	}
	if !(Event{Op: Create | Write}).Has(Write) || (Event{Op: Create}).Has(Write) {
		t.Error("Event.Has")
	}
	for _, c := range []struct {
		err  error
		want string
	}{
		{ErrNonExistentWatch, "fsnotify: can't remove non-existent watch"},
		{ErrClosed, "fsnotify: watcher already closed"},
		{ErrEventOverflow, "fsnotify: queue or buffer overflow"},
	} {
		if c.err.Error() != c.want {
			t.Errorf("%q, want fsnotify's %q", c.err, c.want)
		}
	}
}

func TestWatcherAddRemove(t *testing.T) {
	eachMode(t, func(e *env) {
		t := e.t
		w := e.watcher()
		if err := w.Add(e.path("missing")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Add of a missing path: %v, want ErrNotExist", err)
		}
		if err := w.Remove(e.path("missing")); !errors.Is(err, ErrNonExistentWatch) {
			t.Errorf("Remove of an unwatched path: %v, want ErrNonExistentWatch", err)
		}
		os.Mkdir(e.path("d"), 0o755)
		must(t, w.Add(e.path("d")))
		must(t, w.Add(e.path("d")+"/")) // the same path again: a no-op
		os.Mkdir(e.path("r"), 0o755)
		must(t, w.AddWith(e.path("r", "..."))) // fsnotify's recursive form
		if l := w.WatchList(); len(l) != 2 {
			t.Errorf("WatchList %q; want 2 paths", l)
		}
		// Said in the API's words (recursive or not), with what to do.
		if err := w.AddWith(e.path("d"), WithRecursive()); err == nil ||
			!strings.Contains(err.Error(), "non-recursive") || !strings.Contains(err.Error(), "Remove") {
			t.Errorf("a path watched both recursively and not under one name: %v", err)
		}
		if err := w.Add(e.path("r")); err == nil || !strings.Contains(err.Error(), "recursive watch") {
			t.Errorf("a recursive watch added again non-recursively: %v", err)
		}
		must(t, w.Remove(e.path("d")))
		if err := w.Remove(e.path("d")); !errors.Is(err, ErrNonExistentWatch) {
			t.Errorf("second Remove: %v", err)
		}
		must(t, w.Remove(e.path("r", "..."))) // the recursive form names the watch too
		if l := w.WatchList(); len(l) != 0 {
			t.Errorf("WatchList %q after removing everything", l)
		}
		// Removed: no more events.
		os.WriteFile(e.path("d", "f"), nil, 0o644)
		must(t, w.Add(e.path("d")))
		os.WriteFile(e.path("d", "g"), nil, 0o644)
		evs := until(t, w, is(Create, e.path("d", "g")))
		if len(evs) != 1 {
			t.Errorf("events of a removed watch:\n%s", show(evs))
		}
	})
}

func TestWatcherClose(t *testing.T) {
	eachMode(t, func(e *env) {
		t := e.t
		w := e.watcher()
		must(t, w.Add(e.dir))
		// Events pending and nobody reading: Close must not wait for a reader.
		for i := 0; i < 20; i++ {
			os.WriteFile(e.path("f"+strconv.Itoa(i)), []byte("x"), 0o644)
		}
		closed := make(chan struct{})
		go func() {
			must(t, w.Close())
			must(t, w.Close()) // idempotent
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(hang):
			t.Fatal("Close hangs")
		}
		for range w.Events { // closed: the range ends (after what was sent already, if any)
		}
		if _, ok := <-w.Errors; ok {
			t.Error("Errors not closed")
		}
		if err := w.Add(e.dir); !errors.Is(err, ErrClosed) {
			t.Errorf("Add after Close: %v, want ErrClosed", err)
		}
		if err := w.AddWith(e.dir, WithRecursive()); !errors.Is(err, ErrClosed) {
			t.Errorf("AddWith after Close: %v, want ErrClosed", err)
		}
		if err := w.Remove(e.dir); err != nil {
			t.Errorf("Remove after Close: %v, want nil", err)
		}
		if l := w.WatchList(); l != nil {
			t.Errorf("WatchList after Close: %q, want nil", l)
		}
	})
}

// fsnotify's directory scenario, with the name in the form it was added with (relative).
func TestWatcherDirectory(t *testing.T) {
	eachMode(t, func(e *env) {
		t := e.t
		w := e.watcher()
		cwd, _ := os.Getwd()
		rel, err := filepath.Rel(cwd, e.dir)
		must(t, err)
		must(t, w.Add(rel+"/"))
		name := func(n string) string { return filepath.Join(rel, n) }

		must(t, os.WriteFile(e.path("f"), nil, 0o644))
		until(t, w, is(Create, name("f")))
		must(t, os.WriteFile(e.path("f"), []byte("data"), 0o644))
		until(t, w, is(Write, name("f")))
		must(t, os.Chmod(e.path("f"), 0o600))
		until(t, w, is(Chmod, name("f")))

		must(t, os.Rename(e.path("f"), e.path("g")))
		evs := until(t, w, is(Create, name("g")))
		last := evs[len(evs)-1]
		if !slices.ContainsFunc(evs, is(Rename, name("f"))) || last.OldName != name("f") {
			t.Errorf("rename: want RENAME f, then CREATE g ← f; got:\n%s", show(evs))
		}
		if s := last.String(); s != `CREATE        "`+name("g")+`" ← "`+name("f")+`"` {
			t.Errorf("String() = %s", s)
		}

		// Unlink: Remove (the link count's Chmod goes to the file's own watch only).
		must(t, os.Remove(e.path("g")))
		until(t, w, is(Remove, name("g")))

		// Subdirectories: created and removed, reported; what happens inside, not.
		must(t, os.Mkdir(e.path("sub"), 0o755))
		evs = until(t, w, is(Create, name("sub")))
		if !evs[len(evs)-1].IsDir {
			t.Error("mkdir: IsDir unset")
		}
		os.WriteFile(e.path("sub", "inside"), nil, 0o644)
		must(t, os.Remove(e.path("sub", "inside")))
		must(t, os.Remove(e.path("sub")))
		evs = until(t, w, is(Remove, name("sub")))
		for _, ev := range evs {
			if strings.Contains(ev.Name, "inside") {
				t.Errorf("event from a subdirectory of a non-recursive watch: %v", ev)
			}
		}
		if e.mode == backend.ModeInotify && evs[len(evs)-1].Pid != 0 {
			t.Errorf("inotify knows no pid, got %d", evs[len(evs)-1].Pid)
		}
	})
}

// A watched file: its own events; removing it reports Chmod and Remove and ends the watch.
func TestWatcherFile(t *testing.T) {
	eachMode(t, func(e *env) {
		t := e.t
		w := e.watcher()
		f := e.path("file")
		os.WriteFile(f, nil, 0o644)
		must(t, w.Add(f))
		os.WriteFile(f, []byte("x"), 0o644)
		until(t, w, is(Write, f))
		os.Chmod(f, 0o600)
		until(t, w, is(Chmod, f))
		must(t, os.Remove(f))
		evs := until(t, w, is(Remove, f))
		if ops := opsOn(evs, f); len(ops) < 2 || ops[len(ops)-2] != Chmod {
			t.Errorf("want CHMOD then REMOVE; got:\n%s", show(evs))
		}
		waitWatchList(t, w, 0)
	})
}

func waitWatchList(t *testing.T, w *Watcher, n int) {
	t.Helper()
	deadline := time.Now().Add(hang)
	for len(w.WatchList()) != n {
		if time.Now().After(deadline) {
			t.Fatalf("WatchList %q, want %d paths", w.WatchList(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// A watched directory renamed: Rename with its old name, and the watch is gone (fsnotify's
// watches do not follow renames).
func TestWatcherRenameWatchedDirectory(t *testing.T) {
	eachMode(t, func(e *env) {
		t := e.t
		w := e.watcher()
		d := e.path("d")
		os.Mkdir(d, 0o755)
		must(t, w.Add(d))
		must(t, os.Rename(d, e.path("moved")))
		until(t, w, is(Rename, d))
		waitWatchList(t, w, 0)
		// No events from it any more: a new watch elsewhere sees its own events only.
		os.WriteFile(e.path("moved", "f"), nil, 0o644)
		os.Mkdir(e.path("other"), 0o755)
		must(t, w.Add(e.path("other")))
		os.WriteFile(e.path("other", "f"), nil, 0o644)
		evs := until(t, w, is(Create, e.path("other", "f")))
		if len(evs) != 1 {
			t.Errorf("events from a renamed (unwatched) directory:\n%s", show(evs))
		}
	})
}

// A watched directory removed, with its parent watched too: one Remove (the parent's; the
// directory's own is dropped), and the watch is gone.
func TestWatcherRemoveWatchedDirectory(t *testing.T) {
	eachMode(t, func(e *env) {
		t := e.t
		w := e.watcher()
		d := e.path("d")
		os.Mkdir(d, 0o755)
		must(t, w.Add(e.dir))
		must(t, w.Add(d))
		must(t, os.Remove(d))
		os.WriteFile(e.path("sentinel"), nil, 0o644)
		evs := until(t, w, is(Create, e.path("sentinel")))
		removes := 0
		for _, ev := range evs {
			if ev.Name == d && ev.Has(Remove) {
				removes++
			}
		}
		if removes != 1 {
			t.Errorf("%d Remove of the directory, want 1:\n%s", removes, show(evs))
		}
		waitWatchList(t, w, 1)
	})
}

// `mkdir -p a/b/c && touch a/b/c/f` ×5 under a recursive watch: every create, once
// (inotifywait -r reports 0 of the 5 files).
func TestWatcherRecursiveMkdirP(t *testing.T) {
	eachMode(t, func(e *env) {
		t := e.t
		w := e.watcher()
		os.Mkdir(e.path("w"), 0o755)
		must(t, w.AddWith(e.path("w"), WithRecursive()))
		for i := 0; i < 5; i++ {
			d := e.path("w", "r"+strconv.Itoa(i))
			if out, err := exec.Command("sh", "-c", "mkdir -p "+d+"/a/b/c && touch "+d+"/a/b/c/f").CombinedOutput(); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
		}
		sentinel := e.path("w", "sentinel")
		os.WriteFile(sentinel, nil, 0o644)
		evs := until(t, w, is(Create, sentinel))
		seen := map[string]int{}
		for _, ev := range evs {
			if ev.Has(Create) {
				seen[ev.Name]++
			}
		}
		for i := 0; i < 5; i++ {
			d := e.path("w", "r"+strconv.Itoa(i))
			for _, p := range []string{d, d + "/a", d + "/a/b", d + "/a/b/c", d + "/a/b/c/f"} {
				if seen[p] != 1 {
					t.Errorf("%s created %d times, want once", p, seen[p])
				}
			}
		}
	})
}

// A directory renamed inside a recursive watch: Rename and Create ← old, and the paths
// below follow it.
func TestWatcherRecursiveRename(t *testing.T) {
	eachMode(t, func(e *env) {
		t := e.t
		w := e.watcher()
		root := e.path("w")
		os.MkdirAll(filepath.Join(root, "a", "b"), 0o755)
		must(t, w.Add(root+"/...")) // fsnotify's recursive form
		must(t, os.Rename(filepath.Join(root, "a"), filepath.Join(root, "c")))
		evs := until(t, w, is(Create, filepath.Join(root, "c")))
		if ev := evs[len(evs)-1]; ev.OldName != filepath.Join(root, "a") || !ev.IsDir ||
			!slices.ContainsFunc(evs, is(Rename, filepath.Join(root, "a"))) {
			t.Errorf("want RENAME a, CREATE c ← a:\n%s", show(evs))
		}
		f := filepath.Join(root, "c", "b", "f")
		os.WriteFile(f, nil, 0o644)
		until(t, w, is(Create, f))
		must(t, os.Rename(filepath.Join(root, "c", "b"), filepath.Join(root, "c", "d")))
		g := filepath.Join(root, "c", "d", "g")
		os.WriteFile(g, nil, 0o644)
		until(t, w, is(Create, g))
		os.WriteFile(g, []byte("x"), 0o644)
		until(t, w, is(Write, g))
	})
}

// WithOps filters per watch, and brings fsnotify's hidden operations.
func TestWatcherWithOps(t *testing.T) {
	eachMode(t, func(e *env) {
		t := e.t
		w := e.watcher()
		os.Mkdir(e.path("a"), 0o755)
		os.Mkdir(e.path("b"), 0o755)
		must(t, w.AddWith(e.path("a"), WithOps(CloseWrite)))
		must(t, w.AddWith(e.path("b"), WithOps(Create)))
		os.WriteFile(e.path("a", "f"), []byte("x"), 0o644) // create, write, close: only the close
		os.WriteFile(e.path("b", "f"), []byte("x"), 0o644) // only the create
		// Two kernel groups with fanotify: the two may come in either order.
		var closed, created bool
		evs := until(t, w, func(ev Event) bool {
			closed = closed || is(CloseWrite, e.path("a", "f"))(ev)
			created = created || is(Create, e.path("b", "f"))(ev)
			return closed && created
		})
		for _, ev := range evs {
			if (ev.Name == e.path("a", "f") && ev.Op != CloseWrite) || (ev.Name == e.path("b", "f") && ev.Op != Create) {
				t.Errorf("operation outside the watch's WithOps: %v", ev)
			}
		}
	})
}

// Lost events become an Overflow event in order, and ErrEventOverflow on Errors, without
// the Watcher ever waiting on Errors.
func TestWatcherOverflow(t *testing.T) {
	eachMode(t, func(e *env) {
		t := e.t
		w := e.watcher(WithQueueLimit(8))
		must(t, w.Add(e.dir))
		// Nobody reads, so every event not lost is held somewhere until the first overflow,
		// which comes in order after all of them. The bound, per path:
		//   - the Watcher's read-ahead: one ReadBatch, at most 64 events (run's buffer);
		//     Events has no buffer (WithEventBuffer not given).
		//   - embedded: the engine group's queue, QueueLimit = 8 events; then it drops and
		//     queues its overflow.
		//   - through the daemon: the client library's queue, bounded by the same QueueLimit
		//     (the remote source sets client.Options.Queue from it, counting the event its
		//     pump holds): 8 events, then it drops and delivers an overflow (ahead of the
		//     events it still holds, client.pump: fewer may precede it). The socket and
		//     the daemon's queue for this client (QueueLimit 8 too, flushed at once at that
		//     size) hold events only in passing: the client reads its socket all the time.
		//     A drop in the daemon's queue comes after events that all reached the client
		//     without one, and so are all held there: at most 64+8 again.
		// Each file written here (no data; fsnotify's default ops) is one Create, and a
		// Create is one operation: splitting adds none. So at most 64+8 events precede the
		// overflow on every path.
		const n = 500
		for i := 0; i < n; i++ {
			os.WriteFile(e.path("f"+strconv.Itoa(i)), nil, 0o644)
		}
		evs := until(t, w, func(ev Event) bool { return ev.Op == Overflow })
		if ev := evs[len(evs)-1]; ev.Name != "" || ev.String() != `OVERFLOW      ""` {
			t.Errorf("overflow event %#v", ev)
		}
		t.Logf("%d events before the overflow", len(evs)-1)
		if len(evs) > 64+8+1 {
			t.Errorf("%d events before the overflow, want at most 64+8", len(evs)-1)
		}
		select {
		case err := <-w.Errors:
			if !errors.Is(err, ErrEventOverflow) {
				t.Errorf("Errors: %v", err)
			}
		case <-time.After(hang):
			t.Error("no ErrEventOverflow on Errors")
		}
		// And it goes on. (A backlog may still overflow the small queue: then try again.)
		for i := 0; ; i++ {
			after := e.path("after" + strconv.Itoa(i))
			os.WriteFile(after, nil, 0o644)
			evs := until(t, w, func(ev Event) bool { return ev.Op == Overflow || is(Create, after)(ev) })
			if evs[len(evs)-1].Op != Overflow {
				break
			}
		}
	})
}

// The process behind an event: fanotify knows it (a cat run here, kept alive until its event
// is read, so that its command name can be checked); inotify never invents one.
func TestWatcherPidComm(t *testing.T) {
	eachMode(t, func(e *env) {
		t := e.t
		w := e.watcher()
		f := e.path("file")
		os.WriteFile(f, []byte("hello\n"), 0o644)
		must(t, w.AddWith(e.dir, WithOps(Open|CloseRead)))
		cat := exec.Command("cat", f, "-")
		stdin, err := cat.StdinPipe()
		must(t, err)
		must(t, cat.Start())
		defer cat.Wait()
		defer stdin.Close()
		evs := until(t, w, func(ev Event) bool { return ev.Has(Open) && ev.Name == f && ev.Pid != os.Getpid() })
		ev := evs[len(evs)-1]
		if e.mode == backend.ModeInotify {
			if ev.Pid != 0 || ev.Comm != "" {
				t.Errorf("inotify: pid %d comm %q; want none", ev.Pid, ev.Comm)
			}
			return
		}
		if ev.Pid != cat.Process.Pid || ev.Comm != "cat" {
			t.Errorf("pid %d comm %q; want %d cat", ev.Pid, ev.Comm, cat.Process.Pid)
		}
	})
}

// Whole-mount and whole-filesystem watches: fanotify on a scratch tmpfs; a clear error with
// inotify.
func TestWatcherMountAndFilesystem(t *testing.T) {
	eachMode(t, func(e *env) {
		t := e.t
		w := e.watcher()
		if e.mode == backend.ModeInotify {
			for _, o := range []AddOption{WithMount(), WithFilesystem()} {
				err := w.AddWith(e.dir, o)
				if !errors.Is(err, backend.ErrNeedsPrivilege) || !strings.Contains(err.Error(), "root") {
					t.Errorf("without fanotify: %v, want ErrNeedsPrivilege saying root is needed", err)
				}
			}
			return
		}
		if err := w.AddWith(e.dir, WithMount(), WithOps(Create)); !errors.Is(err, backend.ErrMountDirent) {
			t.Errorf("Create on a mount: %v, want ErrMountDirent", err)
		}
		must(t, w.AddWith(e.dir, WithFilesystem()))
		os.Mkdir(e.path("x"), 0o755)
		f := e.path("x", "f")
		os.WriteFile(f, nil, 0o644)
		until(t, w, is(Create, f)) // absolute, below a directory nobody added
		must(t, w.Remove(e.dir))

		must(t, w.AddWith(e.dir, WithMount())) // default: Write
		os.WriteFile(f, []byte("x"), 0o644)
		until(t, w, is(Write, f))
	})
}

// Watchers share one process-wide backend, closed with the last of them.
func TestWatcherSharedBackend(t *testing.T) {
	dir := t.TempDir()
	w1, err := NewWatcher()
	must(t, err)
	w2, err := NewBufferedWatcher(10)
	must(t, err)
	if backendOf(w1) != backendOf(w2) || cap(w2.Events) != 10 || cap(w1.Events) != 0 {
		t.Fatal("Watchers do not share the backend, or buffers are wrong")
	}
	must(t, w1.Add(dir))
	must(t, w2.Add(dir))
	os.WriteFile(filepath.Join(dir, "f"), nil, 0o644)
	until(t, w1, is(Create, filepath.Join(dir, "f")))
	until(t, w2, is(Create, filepath.Join(dir, "f")))
	w1.Close()
	sharedBackend.mu.Lock()
	alive := sharedBackend.b != nil
	sharedBackend.mu.Unlock()
	if !alive {
		t.Fatal("backend closed while a Watcher uses it")
	}
	os.WriteFile(filepath.Join(dir, "g"), nil, 0o644)
	until(t, w2, is(Create, filepath.Join(dir, "g")))
	w2.Close()
	sharedBackend.mu.Lock()
	alive = sharedBackend.b != nil
	sharedBackend.mu.Unlock()
	if alive {
		t.Fatal("backend left open after the last Watcher closed")
	}
}

// backendOf returns the backend of an embedded Watcher.
func backendOf(w *Watcher) *backend.Backend {
	return w.src.(interface{ Backend() *backend.Backend }).Backend()
}

// Unprivileged, the Watcher runs on inotify: recursive watches work (with every create of a
// mkdir -p), whole-filesystem watches say root is needed.
func TestWatcherUnprivileged(t *testing.T) {
	if testenv.IsChild() {
		dir := t.TempDir()
		w, err := NewWatcher()
		must(t, err)
		defer w.Close()
		if b := backendOf(w); b.Mode() != backend.ModeInotify {
			t.Fatalf("mode %v", b.Mode())
		}
		if err := w.AddWith(dir, WithFilesystem()); !errors.Is(err, backend.ErrNeedsPrivilege) {
			t.Fatalf("filesystem watch: %v", err)
		}
		must(t, w.AddWith(dir, WithRecursive()))
		exec.Command("sh", "-c", "mkdir -p "+dir+"/a/b/c && touch "+dir+"/a/b/c/f").Run()
		until(t, w, is(Create, dir+"/a/b/c/f"))
		return
	}
	testenv.RequireRoot(t)
	out, err := testenv.RunTestAs(t, 65534, 65534, "TestWatcherUnprivileged")
	if err != nil || !strings.Contains(out, "PASS") {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
}

// TestWatcherMovedInFileEvents: a file opened outside a recursive watch — so the backend put
// an outside-ignore mark on it (it is root's, in root's directories) — then moved in by root,
// reports its OPEN, WRITE and CLOSE_WRITE inside the watch once its move was reported (the
// backend drops the mark before it dispatches the move: docs/security.md).
func TestWatcherMovedInFileEvents(t *testing.T) {
	testenv.RequireRoot(t)
	e := &env{t: t, mode: backend.ModeFanotify, dir: testenv.Tmpfs(t)}
	b, err := backend.New(backend.Options{Mode: backend.ModeFanotify})
	must(t, err)
	t.Cleanup(func() { b.Close() })
	e.b = b
	w := e.watcher()
	must(t, os.MkdirAll(e.path("w"), 0o755))
	must(t, os.MkdirAll(e.path("out"), 0o755))
	must(t, w.AddWith(e.path("w"), WithRecursive(), WithOps(Create|Open|Write|CloseWrite|CloseRead)))
	out, in := e.path("out", "f"), e.path("w", "f")
	must(t, os.WriteFile(out, []byte("x"), 0o644))
	deadline := time.Now().Add(hang)
	for b.Stats().IgnoreMarks == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no outside-ignore mark was placed")
		}
		f, err := os.Open(out)
		must(t, err)
		f.Close()
		time.Sleep(2 * time.Millisecond)
	}
	drops := b.Stats().NameMarkDrops
	if o, err := exec.Command("mv", out, in).CombinedOutput(); err != nil {
		t.Fatalf("mv: %v %s", err, o)
	}
	until(t, w, is(Create, in))
	if b.Stats().NameMarkDrops == drops {
		t.Error("the move dropped no name mark")
	}
	f, err := os.OpenFile(in, os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, err = f.WriteString("more")
	must(t, err)
	must(t, f.Close())
	evs := until(t, w, is(CloseWrite, in))
	var ops Op
	for _, op := range opsOn(evs, in) {
		ops |= op
	}
	if ops&(Open|Write) != Open|Write {
		t.Errorf("the moved-in file's events: %v, want OPEN, WRITE and CLOSE_WRITE:\n%s", ops, show(evs))
	}
}
