//go:build linux

package backend

import (
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestRawCallsOnlyOnSafeFilesystems: the statx and close of a permission event's descriptor
// are raw system calls (they keep the loop's P: a stop-the-world waits for them) only while
// every filesystem the backend resolved is one where they wait for nothing but the CPU and
// the local disk (sys.RawSafeFs: a tmpfs here); once an object on another filesystem (a
// ramfs, standing for FUSE or NFS, whose calls may wait for a server) is resolved, before its
// mark is placed, no event takes them any more — on that filesystem or any other, for the
// rest of the backend's life, also after that mark is gone (an event of it may still be
// queued). Fails when the flag is not set, is set after the mark, or is cleared.
func TestRawCallsOnlyOnSafeFilesystems(t *testing.T) {
	b := newBackendWith(t, Options{Mode: ModeFanotify, ReusePermEvents: true})
	tmp, ram := testenv.Tmpfs(t), testenv.PublicRamfs(t)
	tf, rf := filepath.Join(tmp, "f"), filepath.Join(ram, "f")
	writeFile(t, tf, "x")
	writeFile(t, rf, "x")
	var mu sync.Mutex
	raw := map[string][]bool{} // per file, each event's rawClose, as the loop set it
	g := newGroup(t, b, engine.Options{Class: engine.ClassContent, Handler: func(d engine.Delivery) (engine.Response, bool) {
		if p, ok := d.Event.Payload.(*permEvent); ok { // on the loop, which set it
			mu.Lock()
			raw[filepath.Base(filepath.Dir(d.Event.GetPath()))] = append(raw[filepath.Base(filepath.Dir(d.Event.GetPath()))], p.rawClose)
			mu.Unlock()
		}
		return engine.Response{Verdict: engine.Allow}, true
	}})
	open := func(f string) {
		t.Helper()
		if res, _ := access(t, "open:"+f); res.errno != 0 {
			t.Fatalf("open %s: %v", f, res)
		}
	}
	check := func(when string, want map[string][]bool) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		for k, w := range want {
			if !slices.Equal(raw[k], w) {
				t.Errorf("%s: %s's events raw %v, want %v", when, k, raw[k], w)
			}
		}
		clear(raw)
	}
	mark(t, b, g, tmp, engine.KindMount, engine.MarkSpec{Mask: engine.OpenPerm})
	open(tf)
	open(tf)
	check("a tmpfs alone", map[string][]bool{"tmpfs": {true, true}})

	rt, err := b.Resolve(ram, engine.KindMount, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AddMark(g, rt, engine.MarkSpec{Mask: engine.OpenPerm}); err != nil {
		t.Fatal(err)
	}
	b.Release(rt)
	open(rf)
	open(tf)
	check("with a ramfs marked", map[string][]bool{"ramfs": {false}, "tmpfs": {false}})

	if err := g.RemoveMark(rt.Object); err != nil {
		t.Fatal(err)
	}
	open(tf)
	check("after the ramfs's mark is gone", map[string][]bool{"tmpfs": {false}})
}
