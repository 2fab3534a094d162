//go:build linux

package notify

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// churnFiles is how many files TestChurn puts through create, write, close, rename and
// remove at full speed (issue 11: at least 100,000); -short runs a tenth.
const churnFiles = 100_000

// TestChurn: every file of a full-speed churn in a recursive watch is accounted for — its
// create, write, close_write, rename (both halves) and remove, each exactly once and in
// order — or the Watcher reported an overflow, in band.
//
// Order is checked in full, on every mode: create, write, close_write, rename, the new
// name's create, remove — one kernel queue holds them all (on fanotify the FID group, which
// names each file by its directory and name, as it was when the event happened).
func TestChurn(t *testing.T) {
	n := churnFiles
	if testing.Short() {
		n /= 10
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			var dir string
			if m.mode == backend.ModeFanotify {
				// Removed files' pages stay allocated while event descriptors hold them.
				dir = testenv.TmpfsSize(t, 512)
			} else {
				dir = t.TempDir()
			}
			b, err := backend.New(backend.Options{Mode: m.mode})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			w, err := New(WithBackend(b))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			tree := filepath.Join(dir, "tree")
			must(t, os.MkdirAll(filepath.Join(tree, "a"), 0o755))
			must(t, w.AddWith(tree, WithRecursive(), WithOps(Create|Write|CloseWrite|Rename|Remove)))

			type seen struct {
				ops      []string
				overflow bool
			}
			files := make([]seen, n)
			overflows := 0
			var stray []string
			unknown := 0 // content events with no path (none expected: one is an error)
			done := make(chan error, 1)
			start := time.Now()
			go func() { done <- churn(tree, n) }()

			// Expected: 6 events a file. Read until all came, or quiet after the churn.
			want := 6 * n
			got := 0
			churned := false
			var idle <-chan time.Time
		read:
			for got < want || !churned {
				select {
				case ev := <-w.Events:
					if ev.Op == Overflow {
						overflows++
						for i := range files {
							files[i].overflow = true // anything may be missing around it
						}
						continue
					}
					if ev.PathUnknown && ev.Op&(Write|CloseWrite) != 0 {
						unknown++
						got++
						continue
					}
					i, form, ok := churnEvent(tree, ev)
					if !ok || i >= n {
						stray = append(stray, ev.String())
						continue
					}
					files[i].ops = append(files[i].ops, form)
					got++
					if churned {
						idle = time.After(5 * time.Second)
					}
				case err := <-done:
					must(t, err)
					churned, idle = true, time.After(5*time.Second)
				case <-idle:
					if overflows == 0 {
						t.Errorf("%d of %d events after the churn went quiet, and no overflow", got, want)
					}
					break read
				case <-time.After(hang):
					t.Fatalf("stalled: %d of %d events", got, want)
				}
			}
			elapsed := time.Since(start)
			if len(stray) > 0 {
				t.Errorf("%d events on no churned file, first: %s", len(stray), stray[0])
			}
			bad := 0
			for i := range files {
				if files[i].overflow {
					continue
				}
				why := checkChurnFile(files[i].ops)
				if why != "" {
					if bad++; bad <= 5 {
						t.Errorf("file %d: %s; got %q", i, why, files[i].ops)
					}
				}
			}
			if bad > 5 {
				t.Errorf("%d files wrong in all", bad)
			}
			if overflows == 0 && unknown > 0 {
				t.Errorf("%d content events reported with no path", unknown)
			}
			t.Logf("%s: %d files, %d events in %v (%.0f events/s), %d overflows, %d content events with no path; backend %+v",
				m.name, n, got, elapsed.Round(time.Millisecond), float64(got)/elapsed.Seconds(), overflows, unknown, b.Stats())
		})
	}
}

// churn puts n files through create+write (one write), close, rename and remove, in tree/a.
func churn(tree string, n int) error {
	a := filepath.Join(tree, "a")
	data := []byte("x")
	for i := 0; i < n; i++ {
		f := filepath.Join(a, "f"+strconv.Itoa(i))
		g := filepath.Join(a, "g"+strconv.Itoa(i))
		fd, err := os.OpenFile(f, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		if _, err := fd.Write(data); err != nil {
			fd.Close()
			return err
		}
		if err := fd.Close(); err != nil {
			return err
		}
		if err := os.Rename(f, g); err != nil {
			return err
		}
		if err := os.Remove(g); err != nil {
			return err
		}
	}
	return nil
}

// churnEvent returns the file number of a churn event and its short form ("create f",
// "create g<f", "write f", ...).
func churnEvent(tree string, ev Event) (int, string, bool) {
	rel, ok := strings.CutPrefix(ev.Name, tree+"/a/")
	if !ok || len(rel) < 2 || (rel[0] != 'f' && rel[0] != 'g') {
		return 0, "", false
	}
	i, err := strconv.Atoi(rel[1:])
	if err != nil {
		return 0, "", false
	}
	form := strings.ToLower(ev.Op.String()) + " " + rel[:1]
	if ev.OldName != "" {
		form += "<" + filepath.Base(ev.OldName)[:1]
	}
	return i, form, true
}

// checkChurnFile checks one file's events: each of the six exactly once, in the order the
// churn made them.
func checkChurnFile(ops []string) string {
	want := []string{"create f", "write f", "close_write f", "rename f", "create g<f", "remove g"}
	if strings.Join(ops, ",") != strings.Join(want, ",") {
		return fmt.Sprintf("events %q, want %q", ops, want)
	}
	return ""
}
