//go:build linux

package backend

import (
	"testing"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestViewFsOf: view.fsOf answers as the view's map does, for every filesystem in it and for
// one that is not, with one filesystem marked (when it skips the map), two, and one again;
// and it skips the map exactly when the view has one filesystem. Fails when the single
// filesystem answers for another device, or stays after a second one is marked.
func TestViewFsOf(t *testing.T) {
	b := newBackendWith(t, Options{Mode: ModeFanotify})
	a, c := testenv.Tmpfs(t), testenv.Tmpfs(t)
	g := newGroup(t, b, engine.Options{Class: engine.ClassContent, Handler: func(d engine.Delivery) (engine.Response, bool) {
		return engine.Response{Verdict: engine.Allow}, true
	}})
	check := func(when string, want int) {
		t.Helper()
		v := b.view.Load()
		if len(v.fs) != want {
			t.Fatalf("%s: %d filesystems in the view, want %d", when, len(v.fs), want)
		}
		if (v.only != nil) != (len(v.fs) == 1) {
			t.Errorf("%s: only %v with %d filesystems", when, v.only != nil, len(v.fs))
		}
		devs := []uint64{1<<63 | 12345} // no filesystem's
		for dev := range v.fs {
			devs = append(devs, dev)
		}
		for _, dev := range devs {
			if got, want := v.fsOf(dev), v.fs[dev]; got != want {
				t.Errorf("%s: fsOf(%#x) = %p, want %p", when, dev, got, want)
			}
		}
	}
	check("nothing marked", 0)
	mark(t, b, g, a, engine.KindFilesystem, engine.MarkSpec{Mask: engine.OpenPerm})
	check("one tmpfs", 1)
	ct, err := b.Resolve(c, engine.KindFilesystem, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AddMark(g, ct, engine.MarkSpec{Mask: engine.OpenPerm}); err != nil {
		t.Fatal(err)
	}
	b.Release(ct)
	check("two tmpfs", 2)
	if err := g.RemoveMark(ct.Object); err != nil {
		t.Fatal(err)
	}
	check("the second's mark removed", len(b.view.Load().fs))
}
