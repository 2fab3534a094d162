//go:build linux

package backend

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestCloseAnswersTheEventBeingDispatched: a permission event a Handler is still deciding on
// the loop is in no map (fdGroup.dispatching, not inflight: an event decided during its
// dispatch costs no lock), and Backend.Close still answers it (allow, as the kernel does when
// a group closes) without waiting for that Handler: the opener is let go while the Handler
// is stuck, and the Handler's late deny, once it returns, reaches no one. With
// ReusePermEvents, as the embedded guard runs. Left out of Close, the opener waits for the
// Handler (here: until the test gives up on it).
func TestCloseAnswersTheEventBeingDispatched(t *testing.T) {
	testenv.RequireRoot(t)
	b, err := New(Options{Mode: ModeFanotify, ReusePermEvents: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := testenv.Tmpfs(t)
	file := filepath.Join(dir, "f")
	writeFile(t, file, "x")
	entered, release := make(chan struct{}), make(chan struct{})
	var once, releaseOnce sync.Once
	closeDone := make(chan struct{})
	t.Cleanup(func() {
		releaseOnce.Do(func() { close(release) })
		<-closeDone
	})
	g := newGroup(t, b, engine.Options{Class: engine.ClassContent, Handler: func(d engine.Delivery) (engine.Response, bool) {
		once.Do(func() { close(entered) })
		<-release
		return engine.Response{Verdict: engine.Deny}, true
	}})
	mark(t, b, g, dir, engine.KindMount, engine.MarkSpec{Mask: engine.OpenPerm})

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
