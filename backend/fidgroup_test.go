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
// was set as each read began. While arm is above zero, each Idle queues an event (a chmod
// of f) before it returns: under a flood the queue fills again while a batch is dispatched,
// and this does it at the one moment that decides the reader's next step.
type readTrace struct {
	mu      sync.Mutex
	b       *Backend
	f       string
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
		if err := os.Chmod(r.f, os.FileMode(0o600+r.arm%2)); err != nil {
			r.bad = append(r.bad, fmt.Sprintf("chmod in Idle: %v", err))
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

// TestFIDReadFirstKeepsBusyBeforeEveryRead: after a batch the FID reader reads again before
// it waits (readFirst: under a flood the queue has most often filled meanwhile, and a poll
// would only say so), so a read no longer always follows a poll. Backend.dirsSettled rests on
// busy being set before any read can take events off the kernel's queue, whichever path led
// to the read: every read must begin with busy set (fails if busy is set only on the path
// through the poll, or after the read). Each of the armed Idles queues an event; the read
// right after that Idle must find it without waiting (the sequence Idle, read, Awake; fails
// on the reader that always polls first, where it is Idle, Awake, read), the hook's calls
// must still alternate, and the group must be found idle once the events are dispatched.
func TestFIDReadFirstKeepsBusyBeforeEveryRead(t *testing.T) {
	for _, tc := range []struct {
		name string
		arm  int
	}{
		{"one event queued in Idle", 1},
		{"a run of events each queued in the Idle before", 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := testenv.Tmpfs(t)
			f := filepath.Join(root, "f")
			writeFile(t, f, "x")
			b := newBackend(t, ModeFanotify)
			tr := &readTrace{b: b, f: f}
			b.beforeFIDRead = tr.read // before the first mark starts the FID reader
			b.SetReaderHook(tr)
			g := newGroup(t, b, engine.Options{Name: "readfirst"})
			mark(t, b, g, root, engine.KindInode, engine.MarkSpec{Mask: engine.Attrib | engine.EventOnChild})
			r := record(t, g, nil)

			tr.mu.Lock()
			tr.arm = tc.arm
			tr.mu.Unlock()
			if err := os.Chmod(f, 0o644); err != nil { // the first event: read after a wait
				t.Fatal(err)
			}
			r.waitFor(0, "ATTRIB of f", func(x rec) bool { return x.Mask&engine.Attrib != 0 && x.Path == f })
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
			// Each armed Idle queued an event before the read after it: that read found it
			// without a wait in between.
			if hits := tr.count("idle", "read", "awake"); hits < tc.arm {
				t.Errorf("%d reads right after an Idle found events, want %d (the armed Idles'): %s", hits, tc.arm, seq)
			}
		})
	}
}
