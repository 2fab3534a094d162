//go:build linux

package notify

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestWatcherWatchedFileReplaced: a watched FILE replaced the ways editors and config tools
// do (fsnotify/fsnotify#17, #134, #282, #372: "the watch stops working after vim saves").
// A watch is on an inode, as fsnotify's: it ends with the old file, so it must say so — an
// event on the file's name that ends the watch (Remove or Rename, as its doc says) — and
// WatchList must drop it, so that a program can add the path again. Then the new file's
// writes are seen: through the directory's watch (the recommended pattern: watch the
// directory, filter by name) or the path added again. Each way of
// replacing, with the file watched alone and with its directory watched too (for fsnotify's
// operations, or only Write: a directory that does not report Remove cannot stand in for
// the file's own).
func TestWatcherWatchedFileReplaced(t *testing.T) {
	ways := []struct {
		name    string
		replace func(e *env, f string)
	}{
		{"write to temporary then rename over (VS Code, atomic writers)", func(e *env, f string) {
			must(e.t, os.WriteFile(e.path(".file.tmp"), []byte("new"), 0o644))
			must(e.t, os.Rename(e.path(".file.tmp"), f))
		}},
		{"rename away then write anew (vim backupcopy=no)", func(e *env, f string) {
			must(e.t, os.Rename(f, f+"~"))
			must(e.t, os.WriteFile(f, []byte("new"), 0o644))
			must(e.t, os.Remove(f+"~"))
		}},
		{"delete then recreate", func(e *env, f string) {
			must(e.t, os.Remove(f))
			must(e.t, os.WriteFile(f, []byte("new"), 0o644))
		}},
	}
	eachMode(t, func(e *env) {
		for i, way := range ways {
			for j, dirOps := range []Op{0, fsnotifyOps, Write} {
				withDir := dirOps != 0
				name := way.name + "/file alone"
				if withDir {
					name = way.name + "/file and its directory for " + dirOps.String()
				}
				e.t.Run(name, func(t *testing.T) {
					sub := *e
					sub.t = t
					sub.dir = e.path(fmt.Sprintf("case%d.%d", i, j))
					must(t, os.Mkdir(sub.dir, 0o755))
					w := sub.watcher()
					f := sub.path("file")
					must(t, os.WriteFile(f, []byte("old"), 0o644))
					must(t, w.Add(f))
					if withDir {
						must(t, w.AddWith(sub.dir, WithOps(dirOps)))
					}
					// A sentinel: what happened before its Create has been read after it.
					sentinel := sub.dir + "-sentinel"
					must(t, os.Mkdir(sentinel, 0o755))
					must(t, w.Add(sentinel))
					way.replace(&sub, f)
					evs := readWhile(t, w, func() bool { return slices.Contains(w.WatchList(), f) })
					must(t, os.WriteFile(filepath.Join(sentinel, "s"), nil, 0o644))
					evs = append(evs, until(t, w, is(Create, filepath.Join(sentinel, "s")))...)
					if !slices.ContainsFunc(evs, func(ev Event) bool { return ev.Name == f && ev.Has(Remove|Rename) }) {
						t.Errorf("the file's watch ended without a Remove or Rename on its name:\n%s", show(evs))
					}
					if !withDir || dirOps&Write == 0 {
						// fsnotify's other remedy: add the path again, now the new file.
						must(t, w.Add(f))
					}
					// The new file's writes are seen (through the directory's watch, or the
					// file's new one).
					must(t, os.WriteFile(f, []byte("newer"), 0o644))
					evs = append(evs, until(t, w, is(Write, f))...)
					t.Logf("\n%s", show(evs))
				})
			}
		}
	})
}

// readWhile reads w.Events while more holds (checked between events and every millisecond)
// and returns what it read; the test fails after the hang timeout.
func readWhile(t *testing.T, w *Watcher, more func() bool) []Event {
	t.Helper()
	timeout := time.After(hang)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var got []Event
	for more() {
		select {
		case ev, ok := <-w.Events:
			if !ok {
				t.Fatalf("Events closed; got:\n%s", show(got))
			}
			got = append(got, ev)
		case <-tick.C:
		case <-timeout:
			t.Fatalf("timed out; WatchList %q; got:\n%s", w.WatchList(), show(got))
		}
	}
	return got
}
