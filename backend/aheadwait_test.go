//go:build linux

package backend

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// TestAheadEventThatWaitsStaysOutOfInflight: an event answered ahead whose walk then waits for
// a group (one that took its first permission mark after the answer went out, with no Handler)
// is answered already, so it never goes into inflight — where nothing would take it out
// again, since only an answer's write does — and the group's later answer is not sent; once it
// comes, the event is released (its descriptor closed at the batch's end, as held). Fails when
// awaitPerm puts such an event into inflight.
func TestAheadEventThatWaitsStaysOutOfInflight(t *testing.T) {
	e := engine.New(engine.Config{})
	x, err := e.NewGroup(engine.Options{Class: engine.ClassContent})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	file := engine.ID{Hi: 7, Lo: 42}
	if err := x.AddMark(engine.Inode(file), engine.MarkSpec{Mask: engine.OpenPerm}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := &Backend{opts: Options{ReusePermEvents: true}, eng: e, ctx: ctx, inflight: map[*permEvent]struct{}{}}
	g := &fdGroup{}
	g.b = b
	g.closed.Store(true) // no kernel group: nothing is written, as after a close
	fd, err := sys.Open(os.DevNull, sys.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := g.newPermEvent(int32(fd))
	// As handlePerm does for an event answerAhead answered.
	p.reuse = true
	p.claimWith(stateHeld)
	g.written = append(g.written, p)
	ev := &p.ev
	ev.Mask, ev.Inode, ev.Pid, ev.Time = engine.OpenPerm, file, 1, time.Now()
	ev.Payload, ev.AllowedAhead = p, true
	var r engine.Response
	w := e.DispatchInto(ev, &r)
	if w == nil {
		t.Fatal("the walk did not wait for the group without a Handler")
	}
	g.awaitPerm(p, ev, &view{}, w)
	b.inflightMu.Lock()
	_, in := b.inflight[p]
	b.inflightMu.Unlock()
	if in {
		t.Fatal("an event answered ahead went into inflight")
	}
	g.flushAnswers() // the batch ends while the walk waits: the descriptor stays open
	if _, err := sys.Fstat(fd); err != nil {
		t.Fatal("the batch's end closed the descriptor of an event whose walk still waits")
	}
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	d, err := x.Read(rctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Respond(d.ID, engine.Response{Verdict: engine.Deny}); err != nil {
		t.Fatal(err)
	}
	d.Release()
	b.wg.Wait() // the walk's callback ran: finishPerm (its answer not sent: claimed)
	if len(b.inflight) != 0 {
		t.Errorf("inflight holds %d events after the walk ended", len(b.inflight))
	}
	if _, err := sys.Fstat(fd); err == nil {
		sys.Close(fd)
		t.Error("the descriptor is still open after the walk ended and the event was released")
	}
}
