//go:build linux

package backend

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// blockedInOpen waits until process pid sleeps in openat(2) (its permission event queued).
func blockedInOpen(t *testing.T, pid int) {
	t.Helper()
	want := strconv.Itoa(syscall.SYS_OPENAT) + " "
	waitUntil(t, fmt.Sprintf("accessor %d blocked in openat", pid), func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
		return err == nil && strings.HasPrefix(string(b), want)
	})
}

// The answers the loop decides while it dispatches one batch are written together, one
// writev(2) for the batch, each with its own verdict: openers queued behind a slow decision
// are read in one batch and each gets its verdict (allows and denies mixed), exactly once,
// and the descriptors of the events are all closed.
func TestFDGroupAnswersBatched(t *testing.T) {
	b := newBackend(t, ModeFanotify)
	dir := testenv.Tmpfs(t)
	names := []string{"first", "a0", "d0", "a1", "d1", "a2", "d2", "a3"}
	deny := map[engine.ID]bool{}
	for _, n := range names {
		f := filepath.Join(dir, n)
		writeFile(t, f, "x")
		if n[0] == 'd' {
			deny[idOf(t, f)] = true
		}
	}
	gate := make(chan struct{})
	var handled, gated atomic.Int32
	g := newGroup(t, b, engine.Options{Class: engine.ClassContent, Handler: func(d engine.Delivery) (engine.Response, bool) {
		handled.Add(1)
		if gated.CompareAndSwap(0, 1) {
			select { // hold the loop until the others wait in the kernel's queue
			case <-gate:
			case <-time.After(hang):
			}
		}
		if deny[d.Event.Inode] {
			return engine.Response{Verdict: engine.Deny}, true
		}
		return engine.Response{Verdict: engine.Allow}, true
	}})
	mark(t, b, g, dir, engine.KindInode, engine.MarkSpec{Mask: engine.OpenPerm | engine.EventOnChild})
	fds0 := testenv.OpenFDs(t)

	first := startAccess(t, "open:"+filepath.Join(dir, "first"))
	waitUntil(t, "the first open handled", func() bool { return handled.Load() == 1 })
	var rest []*proc
	for _, n := range names[1:] {
		p := startAccess(t, "open:"+filepath.Join(dir, n))
		blockedInOpen(t, p.pid())
		rest = append(rest, p)
	}
	close(gate)
	if res := first.result(); res.errno != 0 {
		t.Errorf("open first: %v, want ok", res)
	}
	for i, p := range rest {
		n := names[i+1]
		want := syscall.Errno(0)
		if n[0] == 'd' {
			want = syscall.EPERM
		}
		if res := p.result(); res.errno != want {
			t.Errorf("open %s: %v, want errno %d", n, res, want)
		}
	}
	if h := handled.Load(); h != int32(len(names)) {
		t.Errorf("the Handler saw %d opens, want %d", h, len(names))
	}
	st := b.Stats()
	// The seven queued behind the first are read in one batch (or a few, if the kernel's
	// queue was read in parts): at least one writev carried several answers.
	if st.AnswerBatches == 0 || st.AnswersBatched < 2 {
		t.Errorf("answer batches %d carrying %d answers; want at least one of several", st.AnswerBatches, st.AnswersBatched)
	}
	if st.AnswersBatched > uint64(len(names)-1) {
		t.Errorf("%d answers written in batches for %d events after the first", st.AnswersBatched, len(names)-1)
	}
	waitUntil(t, "the events' descriptors closed", func() bool { return testenv.OpenFDs(t) <= fds0 })
}
