//go:build linux

package notify

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestGuardCloseFromItsCallbacks: a program that stops guarding from inside the Guard — a
// Handler, Inline or OnDecision calling Close (fsnotify/fsnotify#230, #187: Close from the
// goroutine the library runs). Close must return, the access in hand be answered (the
// callback's verdict or the close verdict), and the Guard end: nothing left running.
func TestGuardCloseFromItsCallbacks(t *testing.T) {
	type hook int
	const (
		inHandler hook = iota
		inInline
		inOnDecision
	)
	for _, c := range []struct {
		name string
		at   hook
	}{{"handler", inHandler}, {"inline", inInline}, {"ondecision", inOnDecision}} {
		t.Run(c.name, func(t *testing.T) {
			eachGuardMode(t, func(t *testing.T, daemon string) {
				dir := testenv.Tmpfs(t)
				must(t, os.WriteFile(filepath.Join(dir, "stop"), []byte("x"), 0o644))
				var g atomic.Pointer[Guard] // set once NewGuard returns, before the access
				var once sync.Once
				closed := make(chan struct{})
				closeOnce := func(r *Request) {
					if strings.HasSuffix(r.Path(), "/stop") {
						once.Do(func() { g.Load().Close(); close(closed) })
					}
				}
				cfg := GuardConfig{Paths: []string{dir}, Daemon: daemon, Deadline: 5 * time.Second}
				switch c.at {
				case inInline:
					cfg.Inline = func(r *Request) (Verdict, bool) { closeOnce(r); return Allow, true }
				case inOnDecision:
					cfg.OnDecision = func(d Decision) { closeOnce(d.Request) }
				}
				gd, err := NewGuard(cfg, func(ctx context.Context, r *Request) Verdict {
					if c.at == inHandler {
						closeOnce(r)
					}
					return Allow
				})
				must(t, err)
				g.Store(gd)
				defer gd.Close()
				done := make(chan error, 1)
				go func() { _, err := catFile(filepath.Join(dir, "stop"), nil); done <- err }()
				select {
				case <-closed:
				case <-time.After(hang):
					t.Fatal("Close called from the Guard's callback does not return")
				}
				select {
				case <-done:
				case <-time.After(hang):
					t.Fatal("the access in hand is never answered")
				}
			})
		})
	}
}

// TestCallbackFramesExist: every name inCallback looks for is a function of the package (a
// rename would silently bring back the deadlock TestGuardCloseFromItsCallbacks checks).
func TestCallbackFramesExist(t *testing.T) {
	got := map[string]bool{}
	for _, f := range []any{(*Guard).decide, (*Guard).readLoop, (*Guard).callInline, (*Guard).record, callBack} {
		got[runtime.FuncForPC(reflect.ValueOf(f).Pointer()).Name()] = true
	}
	for name := range callbackFrames {
		if !got[name] {
			t.Errorf("callbackFrames names %s, which is none of the callback runners %v", name, got)
		}
	}
	for name := range sourceFrames {
		if !callbackFrames[name] {
			t.Errorf("sourceFrames names %s, which is none of the callback runners %v", name, got)
		}
	}
	if len(got) != len(callbackFrames) {
		t.Errorf("callback runners %v, callbackFrames %v", got, callbackFrames)
	}
}

// TestGuardCloseTwiceWaits: Close called twice at once (two goroutines shutting down) — each
// returns only once the Guard is closed: its running handlers returned (fsnotify's Close:
// idempotent, and it waits). A handler is held until released; neither Close may return
// before that.
func TestGuardCloseTwiceWaits(t *testing.T) {
	eachGuardMode(t, func(t *testing.T, daemon string) {
		dir := testenv.Tmpfs(t)
		must(t, os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644))
		inHandler, release := make(chan struct{}), make(chan struct{})
		var handlerDone atomic.Bool
		var once sync.Once
		gd, err := NewGuard(GuardConfig{Paths: []string{dir}, Daemon: daemon, Deadline: 5 * time.Second},
			func(ctx context.Context, r *Request) Verdict {
				once.Do(func() { close(inHandler) })
				<-release // a handler that ignores ctx
				handlerDone.Store(true)
				return Allow
			})
		must(t, err)
		go catFile(filepath.Join(dir, "f"), nil)
		<-inHandler
		var wg sync.WaitGroup
		early := make(chan string, 2)
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				gd.Close()
				if !handlerDone.Load() {
					early <- fmt.Sprintf("Close #%d returned while a handler still ran", i)
				}
			}()
		}
		time.Sleep(200 * time.Millisecond)
		close(release)
		wg.Wait()
		close(early)
		for msg := range early {
			t.Error(msg)
		}
	})
}

// TestGuardCloseAnswersBeforeWaitingForAStuckHandler: a handler that ignores its ctx keeps
// Close waiting, but not the access it holds: Close answers it (OnClose) before it waits, so
// the opener goes on at once, and Close returns once the handler does.
func TestGuardCloseAnswersBeforeWaitingForAStuckHandler(t *testing.T) {
	eachGuardMode(t, func(t *testing.T, daemon string) {
		dir := testenv.Tmpfs(t)
		must(t, os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644))
		inHandler, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		gd, err := NewGuard(GuardConfig{Paths: []string{dir}, Daemon: daemon, OnClose: Allow},
			func(ctx context.Context, r *Request) Verdict {
				once.Do(func() { close(inHandler) })
				<-release // ignores ctx; no deadline either
				return Deny
			})
		must(t, err)
		opened := make(chan error, 1)
		go func() { _, err := catFile(filepath.Join(dir, "f"), nil); opened <- err }()
		<-inHandler
		closed := make(chan struct{})
		go func() { gd.Close(); close(closed) }()
		select {
		case err := <-opened:
			if err != nil {
				t.Errorf("the held open got %v; want the OnClose verdict, allow", err)
			}
		case <-time.After(hang):
			t.Fatal("the open a stuck handler holds is not answered by Close")
		}
		select {
		case <-closed:
			t.Error("Close returned while a handler still ran")
		case <-time.After(100 * time.Millisecond):
		}
		close(release)
		select {
		case <-closed:
		case <-time.After(hang):
			t.Fatal("Close does not return once the handler has")
		}
	})
}

// TestGuardFlushAndSetEventsFromInlineRefused: Inline calling FlushCache or SetEvents — which
// wait for the daemon's reply — is refused at once, embedded and through the daemon alike:
// through the daemon Inline runs on the goroutine that reads the replies, so FlushCache waited
// 10 s for itself (and SetEvents until its ctx), every access of the Guard stalled meanwhile;
// embedded the same program worked.
func TestGuardFlushAndSetEventsFromInlineRefused(t *testing.T) {
	eachGuardMode(t, func(t *testing.T, daemon string) {
		dir := testenv.Tmpfs(t)
		must(t, os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644))
		var g atomic.Pointer[Guard]
		var once sync.Once
		type result struct {
			name string
			err  error
			took time.Duration
		}
		results := make(chan result, 2)
		gd, err := NewGuard(GuardConfig{Paths: []string{dir}, Daemon: daemon, Deadline: 20 * time.Second, Cache: true,
			Events: AccessOpen | AccessExec,
			Inline: func(r *Request) (Verdict, bool) {
				once.Do(func() {
					start := time.Now()
					err := g.Load().FlushCache()
					results <- result{"FlushCache", err, time.Since(start)}
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
					defer cancel()
					start = time.Now()
					err = g.Load().SetEvents(ctx, AccessOpen)
					results <- result{"SetEvents", err, time.Since(start)}
				})
				return Allow, true
			}}, nil)
		must(t, err)
		g.Store(gd)
		defer gd.Close()
		start := time.Now()
		if out, err := catFile(filepath.Join(dir, "f"), nil); err != nil {
			t.Fatalf("cat: %v %s", err, out)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("the open took %v: Inline stalled", took)
		}
		for range 2 {
			r := <-results
			if r.err == nil || !strings.Contains(r.err.Error(), "another goroutine") || r.took > time.Second {
				t.Errorf("%s from Inline: %v after %v; want refused at once", r.name, r.err, r.took)
			}
		}
		if gd.Asked() != AccessOpen|AccessExec {
			t.Errorf("Asked %v after the refused SetEvents", gd.Asked())
		}
	})
}
