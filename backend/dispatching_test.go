//go:build linux

package backend

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestCloseAnswersTheEventBeingDispatched: a permission event a Handler is still deciding on
// the loop is in no map (fdGroup.dispatching, not inflight: an event decided during its
// dispatch costs no lock), and Backend.Close still answers it (allow, as the kernel does when
// a group closes) without waiting for that Handler: the opener is let go while the Handler
// is stuck, and the Handler's late deny, once it returns, reaches no one. With and without
// ReusePermEvents (the embedded guard reuses them), as the first event or after others were
// decided (dispatching still names the last of those, answered: it is stored only when it
// changes). Left out of Close, or with dispatching left naming an earlier event (stored only
// when it was nil), the opener waits for the Handler (here: until the test gives up on it).
func TestCloseAnswersTheEventBeingDispatched(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tc := range []struct {
		name   string
		reuse  bool
		before int // opens decided before the one the Handler is stuck on
	}{
		{"reuse, first", true, 0},
		{"reuse, after 3", true, 3},
		{"no reuse, first", false, 0},
		{"no reuse, after 3", false, 3},
	} {
		t.Run(tc.name, func(t *testing.T) { testCloseAnswersTheEventBeingDispatched(t, tc.reuse, tc.before) })
	}
}

func testCloseAnswersTheEventBeingDispatched(t *testing.T, reuse bool, before int) {
	b, err := New(Options{Mode: ModeFanotify, ReusePermEvents: reuse})
	if err != nil {
		t.Fatal(err)
	}
	dir := testenv.Tmpfs(t)
	file, quick := filepath.Join(dir, "f"), filepath.Join(dir, "quick")
	writeFile(t, file, "x")
	writeFile(t, quick, "x")
	entered, release := make(chan struct{}), make(chan struct{})
	var once, releaseOnce sync.Once
	closeDone := make(chan struct{})
	t.Cleanup(func() {
		releaseOnce.Do(func() { close(release) })
		<-closeDone
	})
	g := newGroup(t, b, engine.Options{Class: engine.ClassContent, Handler: func(d engine.Delivery) (engine.Response, bool) {
		if filepath.Base(d.Event.GetPath()) == "quick" {
			return engine.Response{Verdict: engine.Allow}, true
		}
		once.Do(func() { close(entered) })
		<-release
		return engine.Response{Verdict: engine.Deny}, true
	}})
	mark(t, b, g, dir, engine.KindMount, engine.MarkSpec{Mask: engine.OpenPerm})

	for i := 0; i < before; i++ {
		if res, _ := access(t, "open:"+quick); res.errno != 0 {
			t.Fatalf("open %d of the quick file: %v, want allowed", i, res)
		}
	}
	p := startAccess(t, "open:"+file)
	select {
	case <-entered:
	case <-time.After(hang):
		t.Fatal("the Handler never got the open")
	}
	go func() {
		defer close(closeDone)
		b.Close() // returns once the Handler does (the loop lets go of the group first)
	}()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the opener still waits 10 s after Close began: Close did not answer the event being dispatched")
	}
	if res := p.result(); res.errno != 0 {
		t.Fatalf("the open: %v, want allowed (Close allows what waits)", res)
	}
	select {
	case <-closeDone:
		t.Fatal("Close returned while the Handler still decided on the loop")
	default:
	}
	releaseOnce.Do(func() { close(release) })
	select {
	case <-closeDone:
	case <-time.After(hang):
		t.Fatal("Close did not return after the Handler did")
	}
	// After Close, an open of the file is not held up (the group is gone).
	if res, _ := access(t, "open:"+file); res.errno != 0 {
		t.Errorf("an open after Close: %v, want allowed", res)
	}
}

// TestCloseOnTheLoopAnswersNoReusedDescriptor: the loop reads its group and writes the answers
// of its batch on the group's descriptor number, not through the RawConn (fdgroup.go,
// readOnLoop): nothing can close the group while the loop runs its callback, except the loop
// itself. Here it does: a Handler closes the Backend on the loop in the middle of a batch
// whose first answer is still held, then opens files for writing, which take the freed
// descriptor numbers (the group's among them). The held answer must not be written to
// whichever of them took the group's number (8 bytes of a fanotify response in a file).
func TestCloseOnTheLoopAnswersNoReusedDescriptor(t *testing.T) {
	b := newBackendWith(t, Options{Mode: ModeFanotify, ReusePermEvents: true})
	dir, scratch := testenv.Tmpfs(t), t.TempDir()
	for _, f := range []string{"slow", "a", "b"} {
		writeFile(t, filepath.Join(dir, f), "x")
	}
	var filesMu sync.Mutex // the Handler opens them on the loop
	var files []*os.File
	t.Cleanup(func() {
		filesMu.Lock()
		defer filesMu.Unlock()
		for _, f := range files {
			f.Close()
		}
	})
	var calls atomic.Int32
	queued := make(chan struct{})
	var batch sync.Map // the event names decided in the batch after the slow one
	g := newGroup(t, b, engine.Options{Class: engine.ClassContent, Handler: func(d engine.Delivery) (engine.Response, bool) {
		name := filepath.Base(d.Event.GetPath())
		if name == "slow" {
			<-queued // the two other opens wait in the kernel's queue: they come in one batch
			return engine.Response{Verdict: engine.Allow}, true
		}
		if calls.Add(1) == 2 {
			// The second event of the batch: the first one's answer is held.
			// Locked first: Close lets the openers go, and the test then looks at the files.
			filesMu.Lock()
			defer filesMu.Unlock()
			b.Close()
			for i := 0; i < 64; i++ {
				f, err := os.OpenFile(filepath.Join(scratch, fmt.Sprint(i)), os.O_WRONLY|os.O_CREATE, 0o600)
				if err != nil {
					t.Error(err)
					break
				}
				files = append(files, f)
			}
		}
		batch.Store(name, true)
		return engine.Response{Verdict: engine.Allow}, true
	}})
	mark(t, b, g, dir, engine.KindMount, engine.MarkSpec{Mask: engine.OpenPerm})

	slow := startAccess(t, "open:"+filepath.Join(dir, "slow"))
	waitUntil(t, "the slow open reaches its Handler", func() bool { return b.Stats().PermissionEvents >= 1 })
	pa := startAccess(t, "open:"+filepath.Join(dir, "a"))
	pb := startAccess(t, "open:"+filepath.Join(dir, "b"))
	// Give both opens time to be queued behind the slow one (not needed for the check, only for
	// the batch of two it is about; the calls counter tells whether it came).
	time.Sleep(300 * time.Millisecond)
	close(queued)
	for _, p := range []*proc{slow, pa, pb} {
		if res := p.result(); res.errno != 0 {
			t.Errorf("an open: %v, want allowed", res)
		}
	}
	if calls.Load() < 2 {
		t.Fatalf("the Handler decided %d events after the slow one, want 2: no batch to close in", calls.Load())
	}
	filesMu.Lock()
	defer filesMu.Unlock()
	if len(files) == 0 {
		t.Fatal("the Handler opened no file")
	}
	for _, f := range files {
		if st, err := f.Stat(); err != nil || st.Size() != 0 {
			t.Errorf("%s: %d bytes (err %v): an answer went to a descriptor number the group had", f.Name(), st.Size(), err)
		}
	}
}
