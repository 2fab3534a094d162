//go:build linux

package notify

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// TestWatcherLifecycleRaces: what fsnotify's users met (fsnotify/fsnotify#367, #456: Close
// racing Close; #195: Remove from the loop reading Events; #704: Add racing Close; #516: Add
// after Close is ErrClosed, Remove nil), on every event source. Each case must end within
// the hang bound; a call that loses a race with Close answers as if it came after it (Add
// ErrClosed or nil, Remove nil or ErrNonExistentWatch), never an error of the source's.
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
		{"add and remove racing close", func(e *env, _ *Watcher) {
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
				w := sub.watcher()
				must(t, w.Add(sub.dir))
				done := make(chan struct{})
				go func() { defer close(done); c.run(&sub, w) }()
				select {
				case <-done:
				case <-time.After(hang):
					t.Fatal("hangs")
				}
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
