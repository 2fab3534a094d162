//go:build linux

package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/daemon"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
)

// TestDaemonThatStopsReadingHoldsNoOneAfterClose: a daemon that stops reading (stopped,
// stuck) fills the client's socket, and the writes behind it wait — a request too, whatever
// its context (a documented limit: a context bounds the wait for the reply, not a write the
// daemon does not take; docs/daemon.md, "Restarts"). Close still returns within byeWait,
// saying why (ErrByeUnanswered), every write and request it held returns an error, and every
// goroutine ends (goleak). TestDaemonStoppedClientsExitPromptly (cmd/fsnotifyd) does it with
// a real daemon process stopped by SIGSTOP.
func TestDaemonThatStopsReadingHoldsNoOneAfterClose(t *testing.T) {
	for _, handler := range []bool{false, true} {
		name := "Events"
		opts := client.Options{Class: engine.ClassContent}
		if handler {
			name = "Handler"
			opts.Handler = func(client.Event) {}
		}
		t.Run(name, func(t *testing.T) {
			f := newFake(t)
			c, conn := f.dial(opts)
			if c == nil {
				return
			}
			_ = conn // never read: the daemon is stuck
			flooded := make(chan error, 1)
			go func() {
				// Answers do not wait for the daemon: they fill the socket until a write blocks.
				for i := uint64(1); ; i++ {
					if err := c.Respond(i, engine.Response{}); err != nil {
						flooded <- err
						return
					}
				}
			}()
			time.Sleep(300 * time.Millisecond) // the socket is full by now
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			pinged := make(chan error, 1)
			go func() { pinged <- c.Ping(ctx) }()
			time.Sleep(200 * time.Millisecond)
			start := time.Now()
			err := c.Close()
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Close took %v with the daemon not reading", d)
			}
			if !errors.Is(err, client.ErrByeUnanswered) {
				t.Errorf("Close with the daemon not reading returned %v, want ErrByeUnanswered", err)
			}
			for what, ch := range map[string]chan error{"a Respond": flooded, "a Ping": pinged} {
				select {
				case err := <-ch:
					if err == nil {
						t.Errorf("%s held by the full socket returned nil after Close", what)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("%s held by the full socket did not return within 5 s of Close", what)
				}
			}
		})
	}
}

// TestWrongReplyIsAnError: a daemon that replies to a request with a message of another
// kind (a Pong to an AddMark, a Stats to a RemoveMark or a RespondWait, a Result of success
// to a StatsRequest), or to an AddMark with no mark id, makes the request fail with an error that says so; the client does not
// panic, and goes on.
func TestWrongReplyIsAnError(t *testing.T) {
	f := newFake(t)
	c, conn := f.dial(client.Options{Class: engine.ClassContent})
	if c == nil {
		return
	}
	defer c.Close()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	call := func(do func() error, reply func(req uint64) proto.Msg) error {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- do() }()
		m, err := conn.ReadMsg()
		if err != nil {
			t.Fatal(err)
		}
		proto.CloseFDs(m)
		if err := conn.WriteMsg(reply(m.RequestID())); err != nil {
			t.Fatal(err)
		}
		return <-done
	}
	addMark := func() error {
		_, err := c.AddMark(ctx, dir, engine.KindInode, engine.MarkSpec{Mask: engine.Create})
		return err
	}
	for _, tc := range []struct {
		name  string
		do    func() error
		reply func(req uint64) proto.Msg
		want  string
	}{
		{"Pong to AddMark", addMark, func(req uint64) proto.Msg { return &proto.Pong{Req: req} }, "Pong"},
		{"Result without a mark id to AddMark", addMark, func(req uint64) proto.Msg { return &proto.Result{Req: req} }, "mark id"},
		{"Stats to RespondWait", func() error { return c.RespondWait(ctx, 5, engine.Response{}) },
			func(req uint64) proto.Msg { return &proto.Stats{Req: req} }, "Stats"},
		{"Result of success to StatsRequest", func() error {
			st, err := c.Stats(ctx, true)
			if err == nil && st == nil {
				return errors.New("Stats returned neither figures nor an error")
			}
			return err
		}, func(req uint64) proto.Msg { return &proto.Result{Req: req} }, "Result to StatsRequest"},
	} {
		err := call(tc.do, tc.reply)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
	// Still usable: a good reply is taken.
	if err := call(addMark, func(req uint64) proto.Msg { return &proto.Result{Req: req, ID: 9} }); err != nil {
		t.Errorf("AddMark after the bad replies: %v", err)
	}
	if err := call(func() error { return c.RemoveMark(ctx, 1) }, func(req uint64) proto.Msg { return &proto.Stats{Req: req} }); err == nil || !strings.Contains(err.Error(), "Stats") {
		t.Errorf("Stats to RemoveMark: %v, want an error naming Stats", err)
	}
}

// TestRequestsDuringDaemonRestart: requests made while a real daemon stops and another starts
// on its socket each return — done, or ErrUnavailable (the connection was lost under them) —
// never hang; the client then reconnects (a Resync), its requests succeed again, and Close
// ends every goroutine (goleak, TestMain).
func TestRequestsDuringDaemonRestart(t *testing.T) {
	sock, stop := serve(t, daemon.DefaultConfig())
	c := dial(t, client.Options{Socket: sock, Reconnect: true})
	dir := t.TempDir()
	if _, err := c.AddMark(context.Background(), dir, engine.KindInode, engine.MarkSpec{Mask: engine.Create}); err != nil {
		t.Fatal(err)
	}
	stopPinging := make(chan struct{})
	bad := make(chan error, 1)
	var pings sync.WaitGroup
	for range 4 {
		pings.Add(1)
		go func() {
			defer pings.Done()
			for {
				select {
				case <-stopPinging:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), hang)
				err := c.Ping(ctx)
				cancel()
				if err != nil && !errors.Is(err, client.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
					select {
					case bad <- err:
					default:
					}
				}
				if errors.Is(err, context.DeadlineExceeded) {
					select {
					case bad <- fmt.Errorf("a Ping hung for %v across the restart", hang):
					default:
					}
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	stop()
	time.Sleep(100 * time.Millisecond)
	serveOn(t, daemon.DefaultConfig(), sock)
	if ev := nextEvent(t, c); !ev.Resync {
		t.Fatalf("first event after the restart: %+v, want the Resync", ev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		t.Errorf("Ping after the reconnection: %v", err)
	}
	close(stopPinging)
	pings.Wait()
	select {
	case err := <-bad:
		t.Errorf("a request across the restart: %v", err)
	default:
	}
}

// TestWelcomeOfAnotherClassIsRefused: a Welcome that grants a class other than the one the
// Hello asked for (a permission client told it is a notification client: it would get no
// permission event, and decide nothing while it seems to guard) fails Dial with an error
// naming both; the daemon refuses a class with a Fatal, it never grants another.
func TestWelcomeOfAnotherClassIsRefused(t *testing.T) {
	for _, tc := range []struct{ asked, granted engine.Class }{
		{engine.ClassContent, engine.ClassNotification},
		{engine.ClassPreContent, engine.ClassContent},
		{engine.ClassNotification, engine.ClassContent},
	} {
		t.Run(tc.asked.String()+" granted "+tc.granted.String(), func(t *testing.T) {
			f := newFake(t)
			f.class = &tc.granted
			done := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), hang)
				defer cancel()
				c, err := client.Dial(ctx, client.Options{Socket: f.sock, Class: tc.asked})
				if err == nil {
					c.Close()
				}
				done <- err
			}()
			f.accept(true)
			err := <-done
			if err == nil || !strings.Contains(err.Error(), tc.asked.String()) || !strings.Contains(err.Error(), tc.granted.String()) {
				t.Errorf("Dial asking for %s, granted %s: %v, want an error naming both", tc.asked, tc.granted, err)
			}
		})
	}
}

// TestCloseDuringRemarkWithStalledDaemon: a daemon that welcomes a reconnecting client and
// then stops answering (stopped with SIGSTOP between the two, stuck) while the client places
// its marks again holds that reconnection, not Close: Close returns within a few seconds, and
// every goroutine ends (goleak). Before, the reconnection waited for the AddMark's Result with
// no bound and Close waited for the reconnection, for ever.
func TestCloseDuringRemarkWithStalledDaemon(t *testing.T) {
	f := newFake(t)
	c, conn := f.dial(client.Options{Reconnect: true})
	if c == nil {
		return
	}
	dir := t.TempDir()
	added := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), hang)
		defer cancel()
		_, err := c.AddMark(ctx, dir, engine.KindInode, engine.MarkSpec{Mask: engine.Create})
		added <- err
	}()
	add := expect[*proto.AddMark](t, conn)
	if err := conn.WriteMsg(&proto.Result{Req: add.Req, ID: 1}); err != nil {
		t.Fatal(err)
	}
	if err := <-added; err != nil {
		t.Fatal(err)
	}
	conn.Close() // the daemon goes; the client reconnects
	conn2 := f.accept(true)
	expect[*proto.AddMark](t, conn2) // the mark placed again: never answered
	start := time.Now()
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Close took %v with the daemon stalled in a reconnection", d)
		}
	case <-time.After(hang):
		t.Fatalf("Close still waits %v after it was called, the daemon stalled while the client placed its marks again", hang)
	}
}

// TestDialOfStalledDaemonSaysWhy: a daemon that accepts the connection but never answers its
// Hello (stopped with SIGSTOP: the kernel accepts into its backlog for it; stuck) fails Dial
// when its context ends, with ErrUnavailable and a message that says the daemon did not
// answer, and whose (its pid), not a bare "use of closed network connection".
func TestDialOfStalledDaemonSaysWhy(t *testing.T) {
	f := newFake(t)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		c, err := client.Dial(ctx, client.Options{Socket: f.sock})
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	f.accept(false) // reads the Hello, never answers
	err := <-done
	if !errors.Is(err, client.ErrUnavailable) || !strings.Contains(err.Error(), "did not answer") || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("Dial of a daemon that never answers: %v; want ErrUnavailable saying the daemon (pid %d) did not answer", err, os.Getpid())
	}
}
