//go:build linux

package notify

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestAnswerAheadOnlyWhileTheGuardDecidesAlone: an embedded Guard whose verdicts by kind allow
// opens has them answered ahead, before the object is known (backend.AnswerAhead) — but only
// while it is the backend's only group with permission marks, and only while its verdict by
// kind is Allow. Opens inside its tree are counted as decided (a moment after the answer: the
// walk runs after it), opens outside are not, and they still earn outside-ignore marks. A
// second Guard on the same backend that denies must deny (first deny wins) while it stands,
// and answers ahead resume once it is closed; a verdict by kind turned to Deny denies at once.
// It fails if an answer ahead skips another group's decision, outlives an Allow by kind,
// counts what the Guard never saw, or stops the outside-ignore marks.
func TestAnswerAheadOnlyWhileTheGuardDecidesAlone(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.PublicTmpfs(t) // another uid reaches it (below)
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	for _, d := range []string{in, out} {
		must(t, os.MkdirAll(d, 0o755))
	}
	f, o := filepath.Join(in, "f"), filepath.Join(out, "o")
	must(t, os.WriteFile(f, []byte("f"), 0o644))
	must(t, os.WriteFile(o, []byte("o"), 0o644))
	b, err := backend.New(backend.Options{Mode: backend.ModeFanotify})
	must(t, err)
	t.Cleanup(func() { b.Close() })

	var allowOpens, denyOpens KindVerdicts
	allowOpens.Set(AccessOpen, Allow)
	denyOpens.Set(AccessOpen, Deny)
	a, err := NewGuard(GuardConfig{Paths: []string{in}, Backend: b, Deadline: 10 * time.Second, ByKind: allowOpens,
		Inline: func(*Request) (Verdict, bool) { return Deny, true }}, nil) // never asked: the kind decides
	must(t, err)
	defer a.Close()

	var decided uint64
	// cat opens path n times (another process: the test's own is exempt) and checks the
	// verdict, the answers ahead (more than before when ahead) and, within a moment, a's
	// count of decisions (want more when counted).
	cat := func(step, path string, n int, deny, ahead, counted bool) {
		t.Helper()
		before := b.Stats().AnsweredAhead
		for range n {
			if out, err := catFile(path, nil); denied(out, err) != deny {
				t.Fatalf("%s: cat %s: %v %q; want denied=%v", step, path, err, out, deny)
			}
		}
		if counted {
			decided += uint64(n)
		}
		// Both counts are taken after the answer (AnsweredAhead once the batch's answers are
		// written, Decided after the walk): the last opener may be gone before they are.
		deadline := time.Now().Add(2 * time.Second)
		for (a.Stats().Decided != decided || ahead && b.Stats().AnsweredAhead-before < uint64(n)) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond) // and no more than that
		if got := a.Stats().Decided; got != decided {
			t.Errorf("%s: the guard counts %d decisions, want %d", step, got, decided)
		}
		if got := b.Stats().AnsweredAhead - before; (got >= uint64(n)) != ahead || (!ahead && got != 0) {
			t.Errorf("%s: %d of %d opens answered ahead; want all: %v", step, got, n, ahead)
		}
	}
	cat("alone", f, 5, false, true, true)
	// Concurrent openers: batches of several events, answered ahead in one write before any is
	// translated (fdGroup.answerAhead), each still counted once, and every event's descriptor
	// closed (the process's open descriptors come back to what they were).
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		must(t, err)
		return len(ents)
	}
	fdsBefore := fds()
	beforeAhead := b.Stats().AnsweredAhead
	const openers, each = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, openers*each)
	for range openers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if out, err := catFile(f, nil); err != nil {
					errs <- fmt.Errorf("cat: %v %q", err, out)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	decided += openers * each
	deadline := time.Now().Add(2 * time.Second)
	for (a.Stats().Decided != decided || fds() != fdsBefore) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := a.Stats().Decided; got != decided {
		t.Errorf("concurrent: the guard counts %d decisions, want %d", got, decided)
	}
	if got := b.Stats().AnsweredAhead - beforeAhead; got != openers*each {
		t.Errorf("concurrent: %d opens answered ahead, want %d", got, openers*each)
	}
	if n := fds(); n != fdsBefore {
		t.Errorf("concurrent: %d open descriptors after, %d before: an event's descriptor leaked or was closed twice", n, fdsBefore)
	}
	// Outside its tree: allowed (ahead: nobody else decides), not counted, and an
	// outside-ignore mark still placed from the translation after the answer.
	cat("outside", o, 1, false, true, false)
	deadline = time.Now().Add(5 * time.Second)
	for b.Stats().IgnoreMarks == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no outside-ignore mark was placed for opens answered ahead")
		}
		catFile(o, nil)
	}

	// A second group with permission marks: nothing is answered ahead, and its deny wins.
	second, err := NewGuard(GuardConfig{Paths: []string{in}, Backend: b, Deadline: 10 * time.Second,
		Inline: func(*Request) (Verdict, bool) { return Deny, true }}, nil)
	must(t, err)
	cat("with a denying second guard", f, 3, true, false, true)
	// Another uid fares no better: nothing about the opener makes an answer ahead.
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	beforeAhead = b.Stats().AnsweredAhead
	if out, err := catFile(f, nobody); !denied(out, err) {
		t.Errorf("with a denying second guard, uid 65534: cat: %v %q; want denied", err, out)
	}
	decided++
	// Read once the guard has counted the open (after its walk, which comes after any answer).
	deadline = time.Now().Add(2 * time.Second)
	for a.Stats().Decided != decided && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := b.Stats().AnsweredAhead - beforeAhead; got != 0 {
		t.Errorf("with a denying second guard, uid 65534: %d opens answered ahead, want 0", got)
	}
	must(t, second.Close())
	cat("second guard closed", f, 3, false, true, true)

	// The verdict by kind turned to Deny: denied at once, nothing ahead; and back.
	a.SetKindVerdicts(denyOpens)
	cat("deny by kind", f, 3, true, false, true)
	a.SetKindVerdicts(allowOpens)
	cat("allow by kind again", f, 3, false, true, true)
}
