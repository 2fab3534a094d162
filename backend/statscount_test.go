//go:build linux

package backend

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// Stats counts every permission event read exactly once (countBatch, once per batch): an
// accessor's k opens under a content group's mark raise PermissionEvents by exactly k once
// they have all returned (each is counted before it is handled, so before it is answered), and
// Stats read meanwhile by other goroutines never goes back (PermissionEvents, Events, and
// Events never below PermissionEvents). A batch counted twice, or not before its events are
// answered, fails it.
func TestStatsCountEveryEventExactly(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reuse bool
		opens int
	}{
		{"fresh permEvents", false, 40},
		{"reused permEvents", true, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackendWith(t, Options{Mode: ModeFanotify, ReusePermEvents: tc.reuse})
			root := testenv.Tmpfs(t)
			f := filepath.Join(root, "f")
			writeFile(t, f, "x")
			g := newGroup(t, b, engine.Options{Class: engine.ClassContent, Deadline: 10 * time.Second,
				Handler: func(engine.Delivery) (engine.Response, bool) { return engine.Response{Verdict: engine.Allow}, true }})
			mark(t, b, g, root, engine.KindSubtree, engine.MarkSpec{Mask: engine.OpenPerm})

			stop := make(chan struct{})
			var wg sync.WaitGroup
			var bad atomic.Value
			for range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var last StatsSnapshot
					for {
						s := b.Stats()
						switch {
						case s.PermissionEvents < last.PermissionEvents || s.Events < last.Events:
							bad.Store(fmt.Sprintf("Stats went back: %+v after %+v", s, last))
						case s.Events < s.PermissionEvents:
							bad.Store(fmt.Sprintf("Events %d < PermissionEvents %d", s.Events, s.PermissionEvents))
						}
						last = s
						select {
						case <-stop:
							return
						default:
						}
					}
				}()
			}
			before := b.Stats()
			ops := make([]string, 0, 2*tc.opens)
			for range tc.opens {
				ops = append(ops, "open:"+f, "close")
			}
			if res, _ := access(t, ops...); res.errno != 0 {
				t.Fatalf("accessor: %v", res)
			}
			after := b.Stats()
			close(stop)
			wg.Wait()
			if got := after.PermissionEvents - before.PermissionEvents; got != uint64(tc.opens) {
				t.Errorf("%d opens counted as %d permission events (Stats %+v, before %+v)", tc.opens, got, after, before)
			}
			if got := after.Events - before.Events; got < uint64(tc.opens) {
				t.Errorf("%d opens counted as %d events", tc.opens, got)
			}
			if v := bad.Load(); v != nil {
				t.Error(v)
			}
		})
	}
}
