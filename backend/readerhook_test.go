//go:build linux

package backend

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// hookCall is one call of a testHook: Awake, or Idle and what it returned.
type hookCall struct {
	at    time.Time
	awake bool
	ret   time.Duration
}

// testHook records the FID reader's calls; Idle returns next once, then -1.
type testHook struct {
	mu    sync.Mutex
	calls []hookCall
	isUp  bool
	bad   []string
	next  time.Duration
}

func (h *testHook) Awake() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.isUp {
		h.bad = append(h.bad, fmt.Sprintf("Awake twice without Idle (call %d)", len(h.calls)))
	}
	h.isUp = true
	h.calls = append(h.calls, hookCall{at: time.Now(), awake: true})
}

func (h *testHook) Idle(last bool) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.isUp {
		h.bad = append(h.bad, fmt.Sprintf("Idle without Awake (call %d)", len(h.calls)))
	}
	h.isUp = false
	d := h.next
	h.next = -1
	h.calls = append(h.calls, hookCall{at: time.Now(), ret: d})
	return d
}

func (h *testHook) snapshot() ([]hookCall, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookCall(nil), h.calls...), append([]string(nil), h.bad...)
}

// TestReaderHookBracketsBatchesAndBoundsWaits: the FID reader tells its hook Awake before it
// dispatches events and Idle before it waits, strictly alternating, so that the daemon's
// fan-out can leave a flush to it; and when Idle asks to be called again in d, the reader's
// wait ends by then with no event coming (the fan-out's flush would otherwise wait for the
// next event, without bound).
func TestReaderHookBracketsBatchesAndBoundsWaits(t *testing.T) {
	root := testenv.Tmpfs(t)
	f := filepath.Join(root, "f")
	writeFile(t, f, "x")
	b := newBackend(t, ModeFanotify)
	h := &testHook{next: -1}
	b.SetReaderHook(h)
	g := newGroup(t, b, engine.Options{Name: "hook"})
	mark(t, b, g, root, engine.KindInode, engine.MarkSpec{Mask: engine.Attrib | engine.EventOnChild})
	r := record(t, g, nil)

	const ask = 40 * time.Millisecond
	h.mu.Lock()
	h.next = ask // the Idle after the event's batch
	h.mu.Unlock()
	if err := os.Chmod(f, 0o600); err != nil {
		t.Fatal(err)
	}
	r.waitFor(0, "ATTRIB of f", func(x rec) bool { return x.Mask&engine.Attrib != 0 && x.Path == f })
	// The Idle that returned ask, then the reader's own wake-up: Awake and Idle again.
	var calls []hookCall
	waitUntil(t, "the reader's call after the asked wait", func() bool {
		calls, _ = h.snapshot()
		for i, c := range calls {
			if !c.awake && c.ret == ask {
				return len(calls) >= i+3
			}
		}
		return false
	})
	calls, bad := h.snapshot()
	for _, s := range bad {
		t.Error(s)
	}
	for i, c := range calls {
		if c.awake || c.ret != ask {
			continue
		}
		if i == 0 || !calls[i-1].awake {
			t.Errorf("the Idle that returned %v (call %d) did not follow an Awake", ask, i)
		}
		woke := calls[i+1]
		if !woke.awake {
			t.Fatalf("call %d after the Idle that returned %v is an Idle, want Awake", i+1, ask)
		}
		// ppoll's timeout never ends early; the upper bound is hang (waitUntil).
		if d := woke.at.Sub(c.at); d < ask-time.Millisecond {
			t.Errorf("the reader woke %v after Idle asked for %v", d, ask)
		}
		if calls[i+2].awake {
			t.Errorf("call %d after the reader's wake-up is an Awake, want Idle", i+2)
		}
		break
	}

	// Another hook is not removed by ClearReaderHook(h); h is. Then no more calls, events
	// still read.
	other := &testHook{next: -1}
	b.ClearReaderHook(other)
	if cur := b.readerHook.Load(); cur == nil || *cur != ReaderHook(h) {
		t.Fatal("ClearReaderHook of another hook removed the one set")
	}
	b.ClearReaderHook(h)
	time.Sleep(10 * time.Millisecond) // a reader awake with the hook calls its Idle still
	calls, _ = h.snapshot()
	n := len(calls)
	from := r.len()
	if err := os.Chmod(f, 0o644); err != nil {
		t.Fatal(err)
	}
	r.waitFor(from, "ATTRIB of f without a hook", func(x rec) bool { return x.Mask&engine.Attrib != 0 && x.Path == f })
	if calls, _ := h.snapshot(); len(calls) != n {
		t.Errorf("the hook was called %d times after it was removed", len(calls)-n)
	}
}
