//go:build linux

package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/engine"
)

// TestDaemonThatStopsReadingHoldsNoOneAfterClose: a daemon that stops reading (stopped,
// stuck) fills the client's socket, and the writes behind it wait — a request too, whatever
// its context (a documented limit: a context bounds the wait for the reply, not a write the
// daemon does not take; docs/daemon.md, "Restarts"). Close still returns within byeWait,
// every write and request it held returns an error, and every goroutine ends (goleak).
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
			c.Close()
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Close took %v with the daemon not reading", d)
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
