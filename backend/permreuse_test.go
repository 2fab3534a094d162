//go:build linux

package backend

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// A reused permEvent is another kernel event: an answer meant for the event it carried before
// (Backend.Close's, from its snapshot of inflight) cannot answer the new one, and nothing of
// the old event (answer, path, statx, engine event, held answer) is left in it.
func TestPermEventReuseStaleAnswer(t *testing.T) {
	g := &fdGroup{}
	g.b = &Backend{}
	p := g.newPermEvent(5)
	gen := p.generation()
	if !p.claim() {
		t.Fatal("a new event's first claim failed")
	}
	p.path, p.pathTried, p.st.Ino, p.ev.Path, p.markGen = "/old", true, 42, "/old", 7
	p.state.Store(p.state.Load() | stateHeld | stateReleased)
	p.reuse = true
	g.free = append(g.free, p)

	q := g.newPermEvent(9)
	if q != p {
		t.Fatal("the free permEvent was not reused")
	}
	if q.generation() != gen+1 {
		t.Errorf("generation %d after reuse, want %d", q.generation(), gen+1)
	}
	if q.fd != 9 || q.path != "" || q.pathTried || q.st.Ino != 0 || q.ev.Path != "" || q.markGen != 0 || q.state.Load()&(stateHeld|stateReleased) != 0 || q.reuse {
		t.Errorf("reused permEvent kept the old event's state: fd %d path %q tried %v ino %d ev.Path %q markGen %d state %#x reuse %v",
			q.fd, q.path, q.pathTried, q.st.Ino, q.ev.Path, q.markGen, q.state.Load(), q.reuse)
	}
	// The stale answer: q's group has no descriptor, so an answer that got through would
	// fail loudly (a nil RawConn); it must not get that far.
	q.answerGen(gen, sys.FAN_ALLOW)
	if q.state.Load()&1 != 0 {
		t.Fatal("an answer for the previous event answered the reused one")
	}
	if !q.claim() {
		t.Error("the reused event's own answer was refused")
	}
	if q.claim() {
		t.Error("the reused event was answered twice")
	}
	if st := g.b.Stats(); st.PermEventsAllocated != 1 {
		t.Errorf("PermEventsAllocated %d after one allocation and a reuse, want 1", st.PermEventsAllocated)
	}
}

// With ReusePermEvents, permission events decided at once on the loop are read into reused
// permEvents, and each is still decided on its own object: opens by an unprivileged user, from
// two processes at once, of files allowed and denied by inode, each get their own verdict and
// each event names its own file (never the path of the event the permEvent carried before);
// then, as that user, hard links to denied files under allowed-looking names and denied files
// moved over allowed ones are denied, and allowed files reached through links are allowed.
func TestPermEventsReusedDecideEach(t *testing.T) {
	b := newBackendWith(t, Options{Mode: ModeFanotify, ReusePermEvents: true})
	dir := testenv.PublicTmpfs(t)
	if err := os.Chown(dir, 65534, 65534); err != nil { // the hostile user's: it links and moves there
		t.Fatal(err)
	}
	const n = 40
	deny := map[engine.ID]bool{}
	pathOf := map[engine.ID]string{}
	for i := 0; i < n; i++ {
		for _, kind := range []string{"allow", "deny"} {
			f := filepath.Join(dir, fmt.Sprintf("%s%d", kind, i))
			writeFile(t, f, "x")
			if err := os.Chown(f, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			id := idOf(t, f)
			deny[id] = kind == "deny"
			pathOf[id] = f
		}
	}
	var checkPaths atomic.Bool
	checkPaths.Store(true)
	var mu sync.Mutex
	var wrong []string
	var decided atomic.Int64
	g := newGroup(t, b, engine.Options{Class: engine.ClassContent, Handler: func(d engine.Delivery) (engine.Response, bool) {
		decided.Add(1)
		if checkPaths.Load() {
			if got, want := d.Event.GetPath(), pathOf[d.Event.Inode]; got != want {
				mu.Lock()
				wrong = append(wrong, fmt.Sprintf("event on %s has path %q", want, got))
				mu.Unlock()
			}
		}
		if deny[d.Event.Inode] {
			return engine.Response{Verdict: engine.Deny}, true
		}
		return engine.Response{Verdict: engine.Allow}, true
	}})
	mark(t, b, g, dir, engine.KindInode, engine.MarkSpec{Mask: engine.OpenPerm | engine.EventOnChild})

	// Phase 1: two unprivileged openers at once, allowed and denied files interleaved.
	opens := func(from, to int) string {
		return fmt.Sprintf(`d=%s; i=%d; while [ $i -lt %d ]; do
			for k in allow deny; do if { true < "$d/$k$i"; } 2>/dev/null; then echo "$k$i ok"; else echo "$k$i no"; fi; done
			i=$((i+1)); done`, dir, from, to)
	}
	outs := make([]string, 2)
	var wg sync.WaitGroup
	for j := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[j], _ = testenv.Sh(testenv.Nobody, opens(0, n))
		}()
	}
	wg.Wait()
	for j, out := range outs {
		if len(strings.Split(out, "\n")) != 2*n {
			t.Fatalf("opener %d printed %d lines, want %d:\n%s", j, len(strings.Split(out, "\n")), 2*n, out)
		}
		for _, l := range strings.Split(out, "\n") {
			name, res, _ := strings.Cut(l, " ")
			if want := map[bool]string{true: "no", false: "ok"}[strings.HasPrefix(name, "deny")]; res != want {
				t.Errorf("opener %d: open %s: %s, want %s", j, name, res, want)
			}
		}
	}
	mu.Lock()
	if len(wrong) > 0 {
		t.Errorf("%d events named another file, e.g. %s", len(wrong), wrong[0])
	}
	mu.Unlock()
	if st := b.Stats(); st.PermEventsAllocated >= uint64(decided.Load()) {
		t.Errorf("no permEvent reused over %d decisions (%d allocated)", decided.Load(), st.PermEventsAllocated)
	}

	// Phase 2, hostile: links and moves by the unprivileged user while a second one opens.
	checkPaths.Store(false) // names move now: the verdicts are what is checked
	out, err := testenv.Sh(testenv.Nobody, fmt.Sprintf(`d=%s; set -e
		ln "$d/deny1" "$d/allowlink1"; ln "$d/allow2" "$d/denylike2"
		mv "$d/deny3" "$d/allow3"; mv "$d/allow4" "$d/deny4"
		for f in allowlink1 denylike2 allow3 deny4; do if { true < "$d/$f"; } 2>/dev/null; then echo "$f ok"; else echo "$f no"; fi; done`, dir))
	if err != nil {
		t.Fatalf("hostile script: %v\n%s", err, out)
	}
	want := "allowlink1 no\ndenylike2 ok\nallow3 no\ndeny4 ok"
	if out != want {
		t.Errorf("after links and moves:\n%s\nwant:\n%s", out, want)
	}
}
