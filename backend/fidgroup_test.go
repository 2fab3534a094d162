//go:build linux

package backend

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// readTrace is a ReaderHook and the FID reader's beforeFIDRead together: it records, in
// one sequence, the reader's Awake and Idle calls and the reads it begins, with whether busy
// was set as each read began. While arm is above zero, each Idle queues an event for each of
// files (a chmod: different files, so the kernel does not merge them) before it returns:
// under a flood the queue fills again while a batch is dispatched, and this does it at the
// one moment that decides the reader's next step.
type readTrace struct {
	mu      sync.Mutex
	b       *Backend
	files   []string
	arm     int
	seq     []string // "awake", "idle", "read"
	busyOff int      // reads begun with busy clear
	bad     []string
}

func (r *readTrace) Awake() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.seq); n > 0 && r.lastHookCallLocked() == "awake" {
		r.bad = append(r.bad, fmt.Sprintf("Awake twice without Idle (entry %d)", n))
	}
	r.seq = append(r.seq, "awake")
}

func (r *readTrace) Idle(last bool) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lastHookCallLocked() != "awake" {
		r.bad = append(r.bad, fmt.Sprintf("Idle without Awake (entry %d)", len(r.seq)))
	}
	r.seq = append(r.seq, "idle")
	if r.arm > 0 && !last {
		r.arm--
		for _, f := range r.files {
			if err := os.Chmod(f, os.FileMode(0o600+r.arm%2)); err != nil {
				r.bad = append(r.bad, fmt.Sprintf("chmod in Idle: %v", err))
			}
		}
	}
	return -1
}

// lastHookCallLocked is the last Awake or Idle recorded ("" if none).
func (r *readTrace) lastHookCallLocked() string {
	for i := len(r.seq) - 1; i >= 0; i-- {
		if r.seq[i] != "read" {
			return r.seq[i]
		}
	}
	return ""
}

// read is beforeFIDRead: on the reader's goroutine, just before its read(2).
func (r *readTrace) read() {
	busy := false
	if g := r.b.fidGroupAtomic.Load(); g != nil {
		busy = g.busy.Load() == 1
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !busy {
		r.busyOff++
	}
	r.seq = append(r.seq, "read")
}

// count returns how often pattern (consecutive entries) occurs in the sequence.
func (r *readTrace) count(pattern ...string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for i := 0; i+len(pattern) <= len(r.seq); i++ {
		match := true
		for j, p := range pattern {
			if r.seq[i+j] != p {
				match = false
				break
			}
		}
		if match {
			n++
		}
	}
	return n
}

// TestFIDReadFirstKeepsBusyBeforeEveryRead: while the queue fills faster than it is read
// (a batch of more than one event, or one found by a read tried first), the FID reader reads
// again before it waits (readFirst: under a flood the queue has most often filled meanwhile,
// and a poll would only say so), so a read no longer always follows a poll.
// Backend.dirsSettled rests on busy being set before any read can take events off the
// kernel's queue, whichever path led to the read: every read must begin with busy set
// (fails if busy is set only on the path through the poll, or after the read). With two
// events queued in each armed Idle, the read right after every such Idle but the first
// must find them without waiting (the sequence Idle, read, Awake; fails on the reader that
// always polls first, where it is Idle, Awake, read); with one event per Idle — one event
// per wake-up — the reader must poll first each time (no read right after an Idle: a read
// finding the queue empty would be a system call more per event). The hook's calls must
// still alternate, and the group must be found idle once the events are dispatched.
func TestFIDReadFirstKeepsBusyBeforeEveryRead(t *testing.T) {
	for _, tc := range []struct {
		name    string
		perIdle int // events each armed Idle queues
		arm     int
		// reads right after an Idle: at least minFirst of them found events; at most
		// maxFirst in all (-1: no bound)
		minFirst, maxFirst int
	}{
		{"two events per Idle, twice", 2, 2, 1, -1},
		{"two events per Idle, a run", 2, 20, 19, -1},
		{"one event per Idle: poll first", 1, 20, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := testenv.Tmpfs(t)
			var files []string
			for i := range tc.perIdle {
				f := filepath.Join(root, fmt.Sprintf("f%d", i))
				writeFile(t, f, "x")
				files = append(files, f)
			}
			b := newBackend(t, ModeFanotify)
			tr := &readTrace{b: b, files: files}
			b.beforeFIDRead = tr.read // before the first mark starts the FID reader
			b.SetReaderHook(tr)
			g := newGroup(t, b, engine.Options{Name: "readfirst"})
			mark(t, b, g, root, engine.KindInode, engine.MarkSpec{Mask: engine.Attrib | engine.EventOnChild})
			r := record(t, g, nil)

			tr.mu.Lock()
			tr.arm = tc.arm
			tr.mu.Unlock()
			if err := os.Chmod(files[0], 0o644); err != nil { // the first event: read after a wait
				t.Fatal(err)
			}
			r.waitFor(0, "ATTRIB of f0", func(x rec) bool { return x.Mask&engine.Attrib != 0 && x.Path == files[0] })
			waitUntil(t, "the armed Idles spent and the FID group idle", func() bool {
				tr.mu.Lock()
				armed := tr.arm
				tr.mu.Unlock()
				idle, err := b.fidGroupAtomic.Load().idle()
				return armed == 0 && err == nil && idle
			})

			tr.mu.Lock()
			bad, busyOff, seq := append([]string(nil), tr.bad...), tr.busyOff, strings.Join(tr.seq, " ")
			tr.mu.Unlock()
			for _, s := range bad {
				t.Error(s)
			}
			if busyOff != 0 {
				t.Errorf("%d reads began with busy clear (dirsSettled would take the queue's emptiness for idleness)", busyOff)
			}
			if hits := tr.count("idle", "read", "awake"); hits < tc.minFirst {
				t.Errorf("%d reads right after an Idle found events, want at least %d: %s", hits, tc.minFirst, seq)
			}
			if tried := tr.count("idle", "read"); tc.maxFirst >= 0 && tried > tc.maxFirst {
				t.Errorf("%d reads right after an Idle, want at most %d: %s", tried, tc.maxFirst, seq)
			}
		})
	}
}
