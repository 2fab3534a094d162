//go:build linux

package client_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/daemon"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
)

// TestRespondWaitAtCloseTellsTheTruth: a RespondWait that races Close reports what happened
// to the access: nil when its allow reached the daemon (the open succeeds), an error
// (ErrClosed or ErrUnavailable) when it did not and the close verdict, deny, applied (the
// open fails) — never an error for an answer the daemon applied. (notify's guard records a
// handler's decision from it: CI once recorded "closed" for an allow that applied,
// TestGuardReuseRequests/daemon.) Close comes at delays swept across the round trip, with
// the answer on the socket and beside the permission ring (events in the ring, RespondWait
// on the socket, as guard --daemon's handlers do).
func TestRespondWaitAtCloseTellsTheTruth(t *testing.T) {
	sock, _ := serve(t, daemon.DefaultConfig())
	scratch, file := scratchFile(t, "x")
	const rounds = 60
	for _, ring := range []bool{false, true} {
		t.Run(fmt.Sprintf("ring=%v", ring), func(t *testing.T) {
			applied, refused := 0, 0
			for i := 0; i < rounds; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), hang)
				ids := make(chan uint64, 1)
				c, err := client.Dial(ctx, client.Options{Socket: sock, Class: engine.ClassContent, Deadline: time.Minute,
					CloseVerdict: engine.Deny, Ring: ring, Handler: func(ev client.Event) {
						ev.FD.Close()
						if ev.ID != 0 {
							ids <- ev.ID
						}
					}})
				if err != nil {
					cancel()
					t.Fatal(err)
				}
				if got := c.Welcome().Ring; got != ring {
					t.Fatalf("Welcome.Ring %v, want %v", got, ring)
				}
				if _, err := c.AddMark(ctx, scratch, engine.KindInode, engine.MarkSpec{Mask: engine.OpenPerm | engine.EventOnChild}); err != nil {
					t.Fatal(err)
				}
				done := accessor(t, file)
				var id uint64
				select {
				case id = <-ids:
				case <-time.After(hang):
					t.Fatal("no permission event")
				}
				answered := make(chan error, 1)
				go func() { answered <- c.RespondWait(ctx, id, engine.Response{Verdict: engine.Allow}) }()
				// From at once (Close first) to well past a round trip (the reply read).
				if d := time.Duration(i%20) * 25 * time.Microsecond; d > 0 {
					time.Sleep(d)
				}
				c.Close()
				var werr, oerr error
				select {
				case werr = <-answered:
				case <-time.After(hang):
					t.Fatal("RespondWait still waits after Close")
				}
				select {
				case oerr = <-done:
				case <-time.After(hang):
					t.Fatal("the open still waits after Close")
				}
				cancel()
				switch {
				case werr == nil && oerr != nil:
					t.Errorf("round %d: RespondWait said its allow applied, but the open failed: %v", i, oerr)
				case werr != nil && oerr == nil:
					t.Errorf("round %d: RespondWait failed (%v), but its allow applied: the open succeeded", i, werr)
				case werr != nil && !errors.Is(werr, client.ErrClosed) && !errors.Is(werr, client.ErrUnavailable):
					t.Errorf("round %d: RespondWait at Close: %v, want nil, ErrClosed or ErrUnavailable", i, werr)
				case werr == nil:
					applied++
				default:
					refused++
				}
			}
			t.Logf("%d rounds: the allow applied in %d, the close verdict in %d", rounds, applied, refused)
		})
	}
}

// TestCloseWithRequestsInFlightIsBounded: Close waits for the replies to the requests in
// flight only as long as the daemon answers: one that reads the Bye and stays silent (stopped,
// stuck) holds Close about a second (byeWait), the request then fails with ErrClosed, and
// Close says why (ErrByeUnanswered); a daemon that replies to both lets Close return at once,
// nil, with the reply delivered.
func TestCloseWithRequestsInFlightIsBounded(t *testing.T) {
	for _, silent := range []bool{true, false} {
		t.Run(fmt.Sprintf("silent=%v", silent), func(t *testing.T) {
			f := newFake(t)
			c, conn := f.dial(client.Options{Class: engine.ClassContent})
			if c == nil {
				return
			}
			pinged := make(chan error, 1)
			go func() { pinged <- c.Ping(context.Background()) }()
			ping := expect[*proto.Ping](t, conn)
			closed := make(chan time.Duration, 1)
			var closeErr error
			start := time.Now()
			go func() { closeErr = c.Close(); closed <- time.Since(start) }()
			bye := expect[*proto.Bye](t, conn)
			if !silent {
				if err := conn.WriteMsgs(&proto.Pong{Req: ping.Req}, &proto.Result{Req: bye.Req}); err != nil {
					t.Fatal(err)
				}
				conn.Close() // as the daemon does after a Bye
			}
			var took time.Duration
			select {
			case took = <-closed:
			case <-time.After(hang):
				t.Fatal("Close still waits")
			}
			err := <-pinged
			switch {
			case silent && (took < 900*time.Millisecond || took > 5*time.Second):
				t.Errorf("Close took %v with a silent daemon, want about a second", took)
			case silent && !errors.Is(err, client.ErrClosed):
				t.Errorf("Ping cut by Close: %v, want ErrClosed", err)
			case !silent && took > 900*time.Millisecond:
				t.Errorf("Close took %v with a daemon that replied", took)
			case !silent && err != nil:
				t.Errorf("Ping answered before the Bye's Result: %v, want nil", err)
			case silent && !errors.Is(closeErr, client.ErrByeUnanswered):
				t.Errorf("Close with a silent daemon returned %v, want ErrByeUnanswered (saying why it cut the goodbye short)", closeErr)
			case !silent && closeErr != nil:
				t.Errorf("Close with a daemon that replied returned %v, want nil", closeErr)
			}
		})
	}
}

// TestCloseEndsTheSessionFirst: once Close has returned, the client has no say in any
// access: the daemon has closed its session (its marks removed, its pending events answered).
// A client that denies when it goes away (CloseVerdict deny) and marks a file for opens is
// closed, and the file is opened at once by another process, round after round: every open
// succeeds. (Close used to write its goodbye and return without waiting when no request was
// in flight: an open in the moment after could still reach the closing session and get its
// close verdict, deny — a closed client denying an access it never saw. CI saw it as a
// missing event in TestRespondWaitAtCloseTellsTheTruth: the next round's open was denied by
// the previous round's client, ahead of the new one.)
func TestCloseEndsTheSessionFirst(t *testing.T) {
	sock, _ := serve(t, daemon.DefaultConfig())
	scratch, file := scratchFile(t, "x")
	for i := 0; i < 100; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), hang)
		c, err := client.Dial(ctx, client.Options{Socket: sock, Class: engine.ClassContent, Deadline: time.Minute,
			CloseVerdict: engine.Deny, Handler: func(ev client.Event) { ev.FD.Close() }})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		if _, err := c.AddMark(ctx, scratch, engine.KindInode, engine.MarkSpec{Mask: engine.OpenPerm | engine.EventOnChild}); err != nil {
			cancel()
			t.Fatal(err)
		}
		c.Close()
		cancel()
		select {
		case err := <-accessor(t, file):
			if err != nil {
				t.Fatalf("round %d: the open after Close returned: %v (the closed client's close verdict)", i, err)
			}
		case <-time.After(hang):
			t.Fatalf("round %d: the open after Close returned still waits", i)
		}
	}
}
