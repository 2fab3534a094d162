//go:build linux

package backend

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// fidFixture is a FID group's event as the kernel reports it for a child of a watched
// directory (its directory's handle and the child's name, and the child's own handle),
// built from the handles name_to_handle_at gives, so that the FID reader's translation can be
// run again and again on one goroutine (the reader's own caches: run it only while the real
// reader has nothing to read).
type fidFixture struct {
	b   *Backend
	g   *engine.Group
	fg  *fidGroup
	dir string
	kev sys.FanotifyEvent
	buf []engine.Delivery
}

func newFIDFixture(t testing.TB, b *Backend, g *engine.Group) *fidFixture {
	t.Helper()
	return &fidFixture{b: b, g: g, buf: make([]engine.Delivery, 64)}
}

// childEvent sets the fixture's event: mask on dir/name, caused by this process.
func (x *fidFixture) childEvent(t testing.TB, dir, name string, mask uint64) {
	t.Helper()
	dh, _, err := sys.NameToHandleAt(sys.AT_FDCWD, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh, _, err := sys.NameToHandleAt(sys.AT_FDCWD, filepath.Join(dir, name), 0)
	if err != nil {
		t.Fatal(err)
	}
	x.b.mu.Lock()
	fg := x.b.fidGrp
	var fsid sys.Fsid
	found := false
	for _, fs := range x.b.fss {
		if fs.dev == stat(t, dir).Dev {
			fsid, found = fs.fsid, true
		}
	}
	x.b.mu.Unlock()
	if fg == nil || !found {
		t.Fatalf("no FID group, or %s's filesystem is not marked", dir)
	}
	x.fg, x.dir = fg, dir
	// The real reader must be idle: the fixture runs the reader's code on this goroutine.
	if idle, err := fg.idle(); err != nil || !idle {
		t.Fatalf("the FID group is not idle (%v): the fixture would race with its reader", err)
	}
	x.kev = sys.FanotifyEvent{
		Mask:    mask,
		Fd:      -1,
		Pid:     int32(os.Getpid()),
		Pidfd:   -1,
		Records: 1<<sys.FAN_EVENT_INFO_TYPE_DFID_NAME | 1<<sys.FAN_EVENT_INFO_TYPE_FID,
		DFID:    sys.FileID{Fsid: fsid, Handle: dh, Name: []byte(name)},
		FID:     sys.FileID{Fsid: fsid, Handle: fh},
	}
}

// handleOne translates and dispatches the fixture's event once, as the FID reader does, and
// reads back and releases what the group got; it returns how many deliveries that was.
func (x *fidFixture) handleOne(now time.Time) int {
	kev := x.kev // handle may split it (a copy, as parseEach hands the reader)
	x.fg.handle(&kev, x.b.view.Load(), now)
	n, _ := x.g.TryReadBatch(x.buf)
	for i := range x.buf[:n] {
		x.buf[i].Release()
		x.buf[i] = engine.Delivery{}
	}
	return n
}

// maxFIDAllocs is what the FID reader may allocate to translate and dispatch one event on a
// child of a watched directory once the directory and the child are known: nothing (the
// event itself is reused once released: fidEvent).
const maxFIDAllocs = 0

// TestFIDHandleAllocations: translating a FID group's event on a child of a watched
// directory (bench/fanout.sh's load: the OPEN and CLOSE of one file) allocates at most
// maxFIDAllocs once the directory is cached and the child's inode known: the handle keys are
// looked up from a reused buffer, the name shares the path's bytes, the event is reused once
// released. Each event still reaches the group, with the child's path, name and inode.
func TestFIDHandleAllocations(t *testing.T) {
	root := testenv.Tmpfs(t)
	dir := filepath.Join(root, "d")
	mkdirAll(t, dir)
	f := filepath.Join(dir, "f")
	writeFile(t, f, "x")
	g2 := filepath.Join(dir, "g2")
	writeFile(t, g2, "x") // before the mark: the real reader is to have nothing to read
	b := newBackend(t, ModeFanotify)
	g := newGroup(t, b, engine.Options{Name: "allocs"})
	mark(t, b, g, dir, engine.KindInode, engine.MarkSpec{Mask: engine.Open | engine.Close | engine.EventOnChild})
	x := newFIDFixture(t, b, g)
	now := time.Now() // one time: the process's name stays cached (commTTL)
	for _, tc := range []struct {
		name string
		mask uint64
		want engine.Mask
	}{
		{"open", sys.FAN_OPEN, engine.Open},
		{"close", sys.FAN_CLOSE_NOWRITE, engine.CloseNoWrite},
		{"open+close merged", sys.FAN_OPEN | sys.FAN_CLOSE_NOWRITE, engine.Open | engine.CloseNoWrite},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x.childEvent(t, dir, "f", tc.mask)
			// The first events fill the caches (the directory, the child's inode, the name).
			kev := x.kev
			x.fg.handle(&kev, b.view.Load(), now)
			n, err := g.TryReadBatch(x.buf)
			if err != nil || n != 1 {
				t.Fatalf("the group got %d deliveries (%v), want 1", n, err)
			}
			d := x.buf[0]
			if d.Mask != tc.want || d.Event.Path != f || d.Event.Name != "f" || d.Event.Inode != idOf(t, f) || d.Event.Parent != idOf(t, dir) {
				t.Errorf("delivery %v path %q name %q inode %v parent %v; want %v %q \"f\" %v %v",
					d.Mask, d.Event.Path, d.Event.Name, d.Event.Inode, d.Event.Parent, tc.want, f, idOf(t, f), idOf(t, dir))
			}
			d.Release()
			x.buf[0] = engine.Delivery{}
			lost := 0
			allocs := testing.AllocsPerRun(1000, func() {
				if x.handleOne(now) != 1 {
					lost++
				}
			})
			if lost > 0 {
				t.Errorf("%d of the events did not reach the group", lost)
			}
			if allocs > maxFIDAllocs {
				t.Errorf("%.2f allocations per event, want at most %d", allocs, maxFIDAllocs)
			}
			t.Logf("%.2f allocations per event", allocs)
		})
	}
	// Two children in turn: each event gets its own child's path and name (the directory
	// remembers only the last child's path: here each event builds its path again).
	t.Run("two children in turn", func(t *testing.T) {
		var evF, evG sys.FanotifyEvent
		x.childEvent(t, dir, "f", sys.FAN_OPEN)
		evF = x.kev
		x.childEvent(t, dir, "g2", sys.FAN_OPEN)
		evG = x.kev
		check := func(kev sys.FanotifyEvent, path, name string) {
			x.fg.handle(&kev, b.view.Load(), now)
			n, err := g.TryReadBatch(x.buf)
			if err != nil || n != 1 {
				t.Fatalf("the group got %d deliveries (%v), want 1", n, err)
			}
			d := x.buf[0]
			if d.Event.Path != path || d.Event.Name != name || d.Event.Inode != idOf(t, path) {
				t.Errorf("event path %q name %q inode %v, want %q %q %v", d.Event.Path, d.Event.Name, d.Event.Inode, path, name, idOf(t, path))
			}
			d.Release()
			x.buf[0] = engine.Delivery{}
		}
		for range 3 {
			check(evF, f, "f")
			check(evG, g2, "g2")
		}
		const maxAlternating = maxFIDAllocs + 1 // and the path
		x.kev = evF
		allocs := testing.AllocsPerRun(500, func() {
			x.kev = evF
			x.handleOne(now)
			x.kev = evG
			x.handleOne(now)
		})
		if allocs > 2*maxAlternating {
			t.Errorf("%.2f allocations per two events, want at most %d", allocs, 2*maxAlternating)
		}
		t.Logf("%.2f allocations per two events", allocs)
	})
}

// TestFIDHandleAllocationsSubtree: TestFIDHandleAllocations below a subtree mark (watch -r's:
// the events carry their ancestry, and each asks maybeIgnore whether the object may earn an
// outside-ignore mark): nothing allocated per event either, for a file seen before or, on a
// filesystem whose handles hold the inode number (tmpfs), for one seen for the first time but
// its path (one string: its directory's path and its name). Before, each event built its
// handle's key for maybeIgnore, which uses it only for a request it sends (none here: the
// file is inside the subtree), and a file's first event the key and the cache entry of its
// inode.
func TestFIDHandleAllocationsSubtree(t *testing.T) {
	root := testenv.Tmpfs(t)
	dir := filepath.Join(root, "w", "d")
	mkdirAll(t, dir)
	const n = 200
	for i := range n {
		writeFile(t, filepath.Join(dir, fmt.Sprint("f", i)), "x")
	}
	b := newBackend(t, ModeFanotify)
	g := newGroup(t, b, engine.Options{Name: "allocs"})
	mark(t, b, g, filepath.Join(root, "w"), engine.KindSubtree, engine.MarkSpec{Mask: engine.Open | engine.Close})
	x := newFIDFixture(t, b, g)
	now := time.Now()
	x.childEvent(t, dir, "f0", sys.FAN_OPEN)
	if x.handleOne(now) != 1 {
		t.Fatal("the first event did not reach the group")
	}
	lost := 0
	allocs := testing.AllocsPerRun(1000, func() {
		if x.handleOne(now) != 1 {
			lost++
		}
	})
	if allocs > maxFIDAllocs {
		t.Errorf("a file seen before: %.2f allocations per event, want at most %d", allocs, maxFIDAllocs)
	}
	t.Logf("a file seen before: %.2f allocations per event", allocs)
	evs := make([]sys.FanotifyEvent, n)
	for i := range n {
		x.childEvent(t, dir, fmt.Sprint("f", i), sys.FAN_OPEN)
		evs[i] = x.kev
	}
	next := 1
	allocs = testing.AllocsPerRun(n-2, func() { // AllocsPerRun runs it once more first
		x.kev = evs[next]
		next++
		if x.handleOne(now) != 1 {
			lost++
		}
	})
	if lost > 0 {
		t.Errorf("%d of the events did not reach the group", lost)
	}
	const maxFirst = maxFIDAllocs + 1 // the path
	if allocs > maxFirst {
		t.Errorf("files seen for the first time: %.2f allocations per event, want at most %d", allocs, maxFirst)
	}
	t.Logf("files seen for the first time: %.2f allocations per event", allocs)
}

// BenchmarkFIDHandle: the FID reader's translation and dispatch of one event on a child of a
// watched directory, caches warm, to one group, read back and released.
func BenchmarkFIDHandle(bm *testing.B) {
	root := testenv.Tmpfs(bm)
	dir := filepath.Join(root, "d")
	mkdirAll(bm, dir)
	writeFile(bm, filepath.Join(dir, "f"), "x")
	testenv.RequireRoot(bm)
	b, err := New(Options{Mode: ModeFanotify})
	if err != nil {
		bm.Fatal(err)
	}
	defer b.Close()
	g, err := b.Engine().NewGroup(engine.Options{Name: "bench"})
	if err != nil {
		bm.Fatal(err)
	}
	defer g.Close()
	if err := addMark(b, g, dir, engine.KindInode, engine.MarkSpec{Mask: engine.Open | engine.Close | engine.EventOnChild}); err != nil {
		bm.Fatal(err)
	}
	x := newFIDFixture(bm, b, g)
	x.childEvent(bm, dir, "f", sys.FAN_OPEN)
	now := time.Now()
	x.handleOne(now)
	bm.ReportAllocs()
	bm.ResetTimer()
	for bm.Loop() {
		x.handleOne(now)
	}
}

// TestFIDEventReuse: the FID reader reuses an event only once every group that queued it
// has released it. One group releases each event at once, another holds the first it got
// while a thousand more events go by (each one reused by then): the held event keeps its
// path, name and inode, and events after it are not it until it is released. (A use after a
// release would be a data race with the reuse: -race runs of the backend's tests report it.)
func TestFIDEventReuse(t *testing.T) {
	root := testenv.Tmpfs(t)
	dir := filepath.Join(root, "d")
	mkdirAll(t, dir)
	f, g2 := filepath.Join(dir, "f"), filepath.Join(dir, "g2")
	writeFile(t, f, "x")
	writeFile(t, g2, "x")
	b := newBackend(t, ModeFanotify)
	spec := engine.MarkSpec{Mask: engine.Open | engine.EventOnChild}
	quick := newGroup(t, b, engine.Options{Name: "quick"})
	mark(t, b, quick, dir, engine.KindInode, spec)
	holder := newGroup(t, b, engine.Options{Name: "holder"})
	mark(t, b, holder, dir, engine.KindInode, spec)
	x := newFIDFixture(t, b, quick)
	x.childEvent(t, dir, "f", sys.FAN_OPEN)
	evF := x.kev
	x.childEvent(t, dir, "g2", sys.FAN_OPEN)
	evG := x.kev
	now := time.Now()
	hbuf := make([]engine.Delivery, 64)
	drainHolder := func() {
		n, _ := holder.TryReadBatch(hbuf)
		for i := range hbuf[:n] {
			hbuf[i].Release()
			hbuf[i] = engine.Delivery{}
		}
	}

	x.kev = evF
	if n := x.handleOne(now); n != 1 {
		t.Fatalf("quick got %d deliveries, want 1", n)
	}
	n, err := holder.TryReadBatch(hbuf[:1])
	if err != nil || n != 1 {
		t.Fatalf("holder got %d deliveries (%v), want 1", n, err)
	}
	held := hbuf[0]
	hbuf[0] = engine.Delivery{}
	x.kev = evG
	for i := range 1000 {
		if n := x.handleOne(now); n != 1 {
			t.Fatalf("event %d: quick got %d deliveries, want 1", i, n)
		}
		n, _ := holder.TryReadBatch(hbuf)
		for j := range hbuf[:n] {
			if hbuf[j].Event == held.Event {
				t.Fatalf("event %d: the held event was reused while held", i)
			}
		}
		for j := range hbuf[:n] {
			hbuf[j].Release()
			hbuf[j] = engine.Delivery{}
		}
	}
	if ev := held.Event; ev.Path != f || ev.Name != "f" || ev.Inode != idOf(t, f) || held.Mask != engine.Open {
		t.Errorf("the held event became %v %q %q %v, want %v %q \"f\" %v", held.Mask, ev.Path, ev.Name, ev.Inode, engine.Open, f, idOf(t, f))
	}
	held.Release()
	// Released by both groups: it may come back now, with its new event's content only.
	x.kev = evG
	x.fg.handle(&x.kev, b.view.Load(), now)
	n, _ = quick.TryReadBatch(x.buf[:1])
	if n != 1 || x.buf[0].Event.Path != g2 || x.buf[0].Event.Name != "g2" || len(x.buf[0].Event.Ancestors) != 0 {
		t.Errorf("after the release: %d deliveries, %+v", n, x.buf[0].Event)
	}
	x.buf[0].Release()
	x.buf[0] = engine.Delivery{}
	drainHolder()
}
