//go:build linux

package notify

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
	"go.uber.org/goleak"
)

// TestWatcherLifecycleRaces: what fsnotify's users met (fsnotify/fsnotify#367, #456: Close
// racing Close; #195: Remove from the loop reading Events; #704: Add racing Close; #516: Add
// after Close is ErrClosed, Remove nil), on every event source. Each case must end within
// the hang bound; a call that loses a race with Close answers as if it came after it (Add
// ErrClosed or nil, Remove nil or ErrNonExistentWatch), never an error of the source's; and
// once Close has returned, no goroutine of the Watcher's is left.
func TestWatcherLifecycleRaces(t *testing.T) {
	cases := []struct {
		name string
		run  func(e *env, w *Watcher)
	}{
		{"close from the loop reading Events", func(e *env, w *Watcher) {
			defer flood(e, 200)()
			for range w.Events {
				must(e.t, w.Close())
			}
		}},
		{"add and remove from the loop reading Events", func(e *env, w *Watcher) {
			defer flood(e, 200)()
			n := 0
			for ev := range w.Events {
				if n++; n == 50 {
					break
				}
				if ev.Has(Create) {
					must(e.t, w.Add(ev.Name)) // fsnotify's pattern: watch what appears
					must(e.t, w.Remove(ev.Name))
				}
			}
			must(e.t, w.Close())
		}},
		{"close concurrently from many goroutines", func(e *env, w *Watcher) {
			defer flood(e, 50)()
			var wg sync.WaitGroup
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					must(e.t, w.Close())
					select { // Close returns once the Watcher's goroutine has: Events is closed
					case _, ok := <-w.Events:
						for ok {
							_, ok = <-w.Events
						}
					default:
						e.t.Error("Close returned before Events was closed")
					}
				}()
			}
			wg.Wait()
		}},
		{"add and remove racing close", func(e *env, first *Watcher) {
			must(e.t, first.Close())
			for i := range 4 {
				must(e.t, os.Mkdir(e.path(fmt.Sprint("d", i)), 0o755))
			}
			for round := range 30 {
				w := e.watcher()
				var wg sync.WaitGroup
				for i := range 4 {
					wg.Add(1)
					go func() { // Add and Remove until Add says the Watcher is closed
						defer wg.Done()
						p := e.path(fmt.Sprint("d", i))
						for {
							err := w.AddWith(p, WithRecursive())
							if errors.Is(err, ErrClosed) {
								return
							}
							if err != nil {
								e.t.Errorf("round %d: Add racing Close: %v, want nil or ErrClosed", round, err)
								return
							}
							if err := w.Remove(p); err != nil && !errors.Is(err, ErrNonExistentWatch) {
								e.t.Errorf("round %d: Remove racing Close: %v, want nil or ErrNonExistentWatch", round, err)
								return
							}
						}
					}()
				}
				time.Sleep(time.Duration(round%5) * time.Millisecond)
				must(e.t, w.Close())
				wg.Wait()
			}
		}},
	}
	eachMode(t, func(e *env) {
		for i, c := range cases {
			e.t.Run(c.name, func(t *testing.T) {
				sub := *e
				sub.t = t
				sub.dir = e.path(fmt.Sprint("case", i))
				must(t, os.Mkdir(sub.dir, 0o755))
				// The backend's own goroutines (started with its first mark, ended with it) are
				// there before the snapshot.
				warm := sub.watcher()
				must(t, warm.Add(sub.dir))
				must(t, warm.Close())
				before := goleak.IgnoreCurrent()
				w := sub.watcher()
				must(t, w.Add(sub.dir))
				done := make(chan struct{})
				go func() { defer close(done); c.run(&sub, w) }()
				select {
				case <-done:
				case <-time.After(hang):
					t.Fatal("hangs")
				}
				// Closed: nothing of the Watcher's goes on (its goroutine, its source's, and
				// through the daemon the connection's).
				goleak.VerifyNone(t, before)
			})
		}
	})
}

// flood creates n files in e.dir, in the background, so that events are pending and keep
// coming while a case runs; the case waits for it before it ends.
func flood(e *env, n int) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			os.WriteFile(e.path(fmt.Sprint("f", i)), nil, 0o644)
		}
	}()
	return func() { <-done }
}

// TestWatcherEventsAfterRemove: once Remove has returned, a watch's events stop, but for what
// the Watcher had already taken from its source and was offering on Events: the event being
// sent, and the operations split from the same source event (at most 4; the Events buffer
// too, here none). fsnotify's users see the same (an event already read); more would be
// events the program asked to stop. 500 files are created, nobody reading, the directory's
// watch is removed, then a sentinel in another watched directory is read up to.
func TestWatcherEventsAfterRemove(t *testing.T) {
	eachMode(t, func(e *env) {
		t := e.t
		w := e.watcher()
		gone, other := e.path("gone"), e.path("other")
		must(t, os.Mkdir(gone, 0o755))
		must(t, os.Mkdir(other, 0o755))
		must(t, w.Add(gone))
		must(t, w.Add(other))
		for i := range 500 {
			must(t, os.WriteFile(fmt.Sprintf("%s/f%d", gone, i), nil, 0o644))
		}
		must(t, w.Remove(gone))
		must(t, os.WriteFile(other+"/sentinel", nil, 0o644))
		evs := until(t, w, is(Create, other+"/sentinel"))
		after := 0
		for _, ev := range evs {
			if strings.HasPrefix(ev.Name, gone+"/") {
				after++
			}
		}
		if after > 4 {
			t.Errorf("%d events of a removed watch after Remove returned, want at most 4:\n%s", after, tail(strings.Split(show(evs), "\n")))
		}
	})
}

// TestWatcherAsNobody runs the library users' scenarios as an unprivileged user (nobody), as
// most programs embedding a Watcher run: on inotify, the fanotify and daemon cases skipped.
func TestWatcherAsNobody(t *testing.T) {
	if testenv.IsChild() {
		t.Skip("already the child")
	}
	testenv.RequireRoot(t)
	const tests = "(TestWatcherLifecycleRaces|TestWatcherEventsAfterRemove|TestWatcherWatchedFileReplaced|TestWatcherAddErrors|TestWatcherOverflow|TestWatcherNoGapBeforeTheOverflow)"
	out, err := testenv.RunTestAs(t, 65534, 65534, tests)
	if err != nil || !strings.Contains(out, "--- PASS: TestWatcherWatchedFileReplaced/inotify") ||
		!strings.Contains(out, "--- PASS: TestWatcherLifecycleRaces/inotify") {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
}
