//go:build linux

package client_test

import (
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
)

// TestEventsReadBeforeTheConnectionEndsAreDelivered: without Reconnect, a connection that
// ends while the application has not read the last burst yet closes Events only after that
// burst: every event the client read comes, in order, with no Overflow (nothing lost
// silently), then the close.
func TestEventsReadBeforeTheConnectionEndsAreDelivered(t *testing.T) {
	f := newFake(t)
	c, conn := f.dial(client.Options{})
	if c == nil {
		return
	}
	defer c.Close()
	const n = 200
	var frames []byte
	for i := range n {
		ev := proto.Event{Mask: engine.Open, Pid: int32(i + 1), Path: "/d/f", Name: "f", Dev: 1, Ino: 12, HasObject: true, Time: time.Unix(1, 0)}
		var err error
		if frames, err = proto.AppendEvent(frames, &ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.WriteFrames(frames); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	// The client reads the burst and the connection's end before anyone reads Events.
	deadline := time.Now().Add(5 * time.Second)
	for !client.ConnLost(c) {
		if time.Now().After(deadline) {
			t.Fatal("the client did not see the connection end within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := range n {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatalf("Events closed after %d of the %d events read before the connection ended", i, n)
			}
			if ev.Overflow || ev.Pid != int32(i+1) {
				t.Fatalf("event %d: overflow %v pid %d, want pid %d", i, ev.Overflow, ev.Pid, i+1)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d of %d: nothing on Events within 5 s", i, n)
		}
	}
	select {
	case ev, ok := <-c.Events():
		if ok {
			t.Fatalf("an event after the %d sent: %+v", n, ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Events not closed within 5 s of the last event, with the connection gone")
	}
}
