//go:build linux

package backend

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestCloseWhileAWalkGoesOn: Close cancels the walks still waiting for a group's answer, and
// each goes on — to lower groups, then to the janitor for an outside-ignore mark — while
// Close runs, or after. It used to close the janitor's channel under them, and the
// continuation's request then panicked the process ("send on closed channel"). Here a lower
// group's Handler holds the continuation until Close has stopped the janitor.
func TestCloseWhileAWalkGoesOn(t *testing.T) {
	testenv.RequireRoot(t)
	b, err := New(Options{Mode: ModeFanotify})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			b.Close()
		}
	})
	dir := testenv.Tmpfs(t)
	sub, out := filepath.Join(dir, "sub"), filepath.Join(dir, "out", "f")
	mkdirAll(t, sub)
	writeFile(t, out, "x")
	// The walk: a group that holds the event (never read), then one whose Handler answers
	// late; both through the mount. A subtree elsewhere makes the file's event an outside one
	// (the janitor is asked for an ignore mark once the walk ends).
	holder := newGroup(t, b, engine.Options{Class: engine.ClassPreContent})
	mark(t, b, holder, dir, engine.KindMount, engine.MarkSpec{Mask: engine.OpenPerm})
	late := newGroup(t, b, engine.Options{Class: engine.ClassContent, Handler: func(engine.Delivery) (engine.Response, bool) {
		time.Sleep(200 * time.Millisecond) // Close is long past stopping the janitor
		return engine.Response{}, true
	}})
	mark(t, b, late, dir, engine.KindMount, engine.MarkSpec{Mask: engine.OpenPerm})
	watcher := newGroup(t, b, engine.Options{})
	mark(t, b, watcher, sub, engine.KindSubtree, engine.MarkSpec{Mask: engine.Open})

	p := startAccess(t, "open:"+out)
	waitUntil(t, "the holder has the event", func() bool { return holder.Stats().Pending == 1 })
	within(t, "Close", func() { b.Close() })
	closed = true
	if res := p.result(); res.errno != 0 {
		t.Fatalf("the open: %v, want allowed (Close allows what waits)", res)
	}
	// The continuation ran into the janitor's request after Close returned, or during it: give
	// a late one time to show itself (it would crash the test binary).
	time.Sleep(300 * time.Millisecond)
}

// TestCloseEndsTheFIDReaderInPoll: the FID group's reader waits in poll(2) on its own thread
// between batches, which closing the descriptor does not interrupt (fidGroup.close wakes it).
// Events read after several such waits still arrive in order, and Close, with the reader
// waiting, returns within the hang bound with the reader gone (goleak in TestMain checks the
// goroutine; the FID group's idle check must see the group idle once it waits).
func TestCloseEndsTheFIDReaderInPoll(t *testing.T) {
	b := newBackend(t, ModeFanotify) // its cleanup's Close is a no-op after the test's
	dir := testenv.Tmpfs(t)
	g := newGroup(t, b, engine.Options{})
	mark(t, b, g, dir, engine.KindInode, engine.MarkSpec{Mask: engine.Create | engine.EventOnChild})
	r := record(t, g, nil)
	from := 0
	for i := range 3 {
		// Each file after the reader went back to its wait (the group idle).
		waitUntil(t, "the FID group idle", func() bool {
			fg := b.fidGroupAtomic.Load()
			if fg == nil {
				return false
			}
			idle, err := fg.idle()
			return err == nil && idle
		})
		name := filepath.Join(dir, fmt.Sprintf("f%d", i))
		create(t, name)
		from = r.waitPath(from, engine.Create, name) + 1 // in order
	}
	within(t, "Close with the FID reader waiting in poll", func() { b.Close() })
	if n := r.len(); n != 3 {
		t.Fatalf("%d events recorded, want the 3 creates", n)
	}
}
