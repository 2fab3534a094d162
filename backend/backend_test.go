//go:build linux

package backend

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
	"go.uber.org/goleak"
)

// The spawner lives as long as the binary, by design (see startFromSpawner).
//
// TMPDIR is a tmpfs of the test binary's own (as root): the inotify tests watch directories
// under t.TempDir(), and no test marks the machine's filesystem, not even with inotify.
func TestMain(m *testing.M) {
	done := testenv.TmpdirOnTmpfs()
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreTopFunction("github.com/fsnotifyd/fsnotifyd/backend.spawner")); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	done()
	os.Exit(code)
}

// newBackend starts a backend of mode closed at cleanup.
func newBackend(t *testing.T, mode Mode) *Backend {
	t.Helper()
	return newBackendWith(t, Options{Mode: mode})
}

// newBackendWith starts a backend with opts, closed at cleanup (as root only).
func newBackendWith(t *testing.T, opts Options) *Backend {
	t.Helper()
	testenv.RequireRoot(t)
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func newGroup(t *testing.T, b *Backend, opts engine.Options) *engine.Group {
	t.Helper()
	g, err := b.Engine().NewGroup(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func mark(t *testing.T, b *Backend, g *engine.Group, path string, k engine.Kind, spec engine.MarkSpec) {
	t.Helper()
	tg, err := b.Resolve(path, k, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AddMark(g, tg, spec); err != nil {
		t.Fatalf("AddMark(%s, %v, %v): %v", path, k, spec.Mask, err)
	}
}

// collect reads g's events until want returns true for the list or the timeout passes.
func collect(t *testing.T, g *engine.Group, timeout time.Duration, done func([]got) bool) []got {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []got
	for !done(out) {
		d, err := g.Read(ctx)
		if err != nil {
			return out
		}
		e := got{mask: d.Mask}
		if d.Event != nil {
			e.path, e.name, e.pid = d.Event.Path, d.Event.Name, d.Event.Pid
		}
		if d.ID != 0 {
			g.Respond(d.ID, engine.Response{})
		}
		d.Release()
		out = append(out, e)
	}
	return out
}

type got struct {
	mask engine.Mask
	path string
	name string
	pid  int32
}

func run(t *testing.T, name string, args ...string) error {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return errors.New(strings.TrimSpace(string(out)))
	}
	return nil
}

func TestSubtreeSeesEveryCreateOfMkdirP(t *testing.T) {
	b := newBackend(t, ModeFanotify)
	root := testenv.Tmpfs(t)
	sub := filepath.Join(root, "watched")
	os.Mkdir(sub, 0o755)
	os.Mkdir(filepath.Join(root, "other"), 0o755)
	g := newGroup(t, b, engine.Options{})
	mark(t, b, g, sub, engine.KindSubtree, engine.MarkSpec{Mask: engine.Create | engine.OnDir})

	// Outside the subtree, on the same filesystem: must not be reported.
	if err := run(t, "sh", "-c", "mkdir -p "+root+"/other/x/y && touch "+root+"/other/x/y/f"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		d := filepath.Join(sub, "r"+string(rune('0'+i)))
		if err := run(t, "sh", "-c", "mkdir -p "+d+"/a/b/c && touch "+d+"/a/b/c/file"); err != nil {
			t.Fatal(err)
		}
	}
	evs := collect(t, g, 5*time.Second, func(e []got) bool { return len(e) >= 25 })
	files := 0
	for _, e := range evs {
		if strings.Contains(e.path, "/other") {
			t.Errorf("event outside the subtree: %+v", e)
		}
		if strings.HasSuffix(e.path, "/a/b/c/file") && e.mask == engine.Create {
			files++
		}
	}
	if files != 5 || len(evs) != 25 {
		for _, e := range evs {
			t.Logf("%v %s", e.mask, e.path)
		}
		t.Fatalf("got %d events, %d file creates; want 25 and 5", len(evs), files)
	}
}

func TestPermissionDenyInSubtree(t *testing.T) {
	b := newBackend(t, ModeFanotify)
	root := testenv.Tmpfs(t)
	sub := filepath.Join(root, "guarded")
	os.MkdirAll(filepath.Join(sub, "deep"), 0o755)
	os.WriteFile(filepath.Join(sub, "deep", "secret"), []byte("s"), 0o644)
	os.WriteFile(filepath.Join(sub, "ok"), []byte("o"), 0o644)
	os.WriteFile(filepath.Join(root, "outside-secret"), []byte("x"), 0o644)
	g := newGroup(t, b, engine.Options{Class: engine.ClassContent, Deadline: 5 * time.Second})
	mark(t, b, g, sub, engine.KindSubtree, engine.MarkSpec{Mask: engine.OpenPerm})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			d, err := g.Read(ctx)
			if err != nil {
				return
			}
			v := engine.Allow
			if strings.HasSuffix(d.Event.GetPath(), "secret") {
				v = engine.Deny
			}
			g.Respond(d.ID, engine.Response{Verdict: v})
			d.Release()
		}
	}()
	defer func() { cancel(); <-done }()

	if err := run(t, "cat", filepath.Join(sub, "deep", "secret")); err == nil || !strings.Contains(err.Error(), "Operation not permitted") {
		t.Fatalf("cat of a denied file: %v", err)
	}
	if err := run(t, "cat", filepath.Join(sub, "ok")); err != nil {
		t.Fatalf("cat of an allowed file: %v", err)
	}
	if err := run(t, "cat", filepath.Join(root, "outside-secret")); err != nil {
		t.Fatalf("cat outside the subtree: %v", err)
	}
	// Our own opens are exempt: they never wait on our own listener.
	if _, err := os.ReadFile(filepath.Join(sub, "deep", "secret")); err != nil {
		t.Fatalf("own open: %v", err)
	}
}

func TestVerdictCache(t *testing.T) {
	b := newBackend(t, ModeFanotify)
	root := testenv.Tmpfs(t)
	f := filepath.Join(root, "f")
	os.WriteFile(f, []byte("x"), 0o644)
	g := newGroup(t, b, engine.Options{Class: engine.ClassContent, Deadline: 10 * time.Second,
		Handler: func(engine.Delivery) (engine.Response, bool) { return engine.Response{Cache: true}, true }})
	mark(t, b, g, root, engine.KindSubtree, engine.MarkSpec{Mask: engine.OpenPerm})
	opens := func() uint64 {
		t.Helper()
		if err := run(t, "cat", f); err != nil {
			t.Fatal(err)
		}
		return b.Stats().PermissionEvents
	}
	first := opens()
	if first == 0 {
		t.Fatal("no permission event for the first open")
	}
	// The cache mark is placed before the answer, so the next open is silent.
	if again := opens(); again != first {
		t.Fatalf("a cached allow still reached userspace (%d events, then %d)", first, again)
	}
	// A modification clears the kernel's ignore mark: the next open is decided again.
	if err := run(t, "sh", "-c", "echo y >> "+f); err != nil {
		t.Fatal(err)
	}
	afterWrite := b.Stats().PermissionEvents
	if n := opens(); n == afterWrite {
		t.Fatal("an open after a modification was not decided again")
	}
	cached := opens()
	b.FlushVerdictCache()
	if n := opens(); n == cached {
		t.Fatal("an open after FlushVerdictCache was not decided again")
	}
	if b.Stats().VerdictCached == 0 {
		t.Fatal("VerdictCached stayed 0")
	}
}

// A file's CREATE comes before its OPEN, MODIFY and CLOSE_WRITE, as the one open(O_CREAT)
// and its writes queued them — the order inotify users know: one kernel queue (the FID
// group) holds them all, so not one may come out of order.
func TestCreateComesBeforeTheFileDescriptorEvents(t *testing.T) {
	for _, kind := range []engine.Kind{engine.KindSubtree, engine.KindInode} {
		t.Run(kind.String(), func(t *testing.T) {
			b := newBackend(t, ModeFanotify)
			dir := testenv.Tmpfs(t)
			g := newGroup(t, b, engine.Options{})
			mask := engine.Create | engine.Open | engine.Modify | engine.CloseWrite
			if kind == engine.KindInode {
				mask |= engine.EventOnChild
			}
			mark(t, b, g, dir, kind, engine.MarkSpec{Mask: mask})
			const n = 200
			script := "for i in $(seq " + strconv.Itoa(n) + "); do echo x > " + dir + "/f$i; done"
			if err := run(t, "sh", "-c", script); err != nil {
				t.Fatal(err)
			}
			last := filepath.Join(dir, "f"+strconv.Itoa(n))
			evs := collect(t, g, 30*time.Second, func(out []got) bool {
				return len(out) > 0 && out[len(out)-1].path == last && out[len(out)-1].mask&engine.CloseWrite != 0
			})
			created := map[string]bool{}
			bad := 0
			for _, e := range evs {
				if e.mask&engine.Create != 0 {
					created[e.path] = true
				} else if e.mask&(engine.Open|engine.Modify|engine.CloseWrite) != 0 && !created[e.path] {
					if bad++; bad <= 5 {
						t.Logf("%v of %s before its CREATE", e.mask, e.path)
					}
				}
			}
			if len(created) != n {
				t.Errorf("%d creates reported, want %d", len(created), n)
			}
			if bad > 0 {
				t.Errorf("%d events before their file's CREATE", bad)
			}
		})
	}
}
