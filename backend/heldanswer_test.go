//go:build linux

package backend

import (
	"os"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// TestHeldAnswerClosesAfterBothWriteAndRelease: the descriptor of an event whose answer is
// held in the batch (answerInBatch) is closed once both have happened — the batch's answers
// written (flushAnswers) and the event released (Release) — in either order, never before:
// released first, the flush closes it (and takes the record back for reuse); written first
// (flushAnswers runs mid-batch once maxHeldAnswers wait, before that event's own Release),
// the descriptor stays open for the rest of its dispatch and Release closes it. Fails on a
// flush that takes every held event for released (it closed the second one under its
// dispatch), and on one that takes none for it (the first one's descriptor leaked).
func TestHeldAnswerClosesAfterBothWriteAndRelease(t *testing.T) {
	g := &fdGroup{}
	g.b = &Backend{opts: Options{ReusePermEvents: true}}
	g.closed.Store(true) // no kernel group: flushAnswers writes nothing, as after a close
	open := func() int32 {
		fd, err := sys.Open(os.DevNull, sys.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		return int32(fd)
	}
	isOpen := func(fd int32) bool { _, err := sys.Fstat(int(fd)); return err == nil }

	// Released, then written.
	p := g.newPermEvent(open())
	p.reuse = true
	p.answerInBatch(sys.FAN_ALLOW)
	p.Release()
	if !isOpen(p.fd) {
		t.Fatal("released while its answer was held: the descriptor was closed before the answer")
	}
	g.flushAnswers()
	if isOpen(p.fd) {
		t.Fatal("released, then written: the descriptor is still open")
	}
	if len(g.free) != 1 || g.free[0] != p {
		t.Errorf("released, then written: %d records back for reuse, want this one", len(g.free))
	}

	// Written, then released.
	q := g.newPermEvent(open())
	q.reuse = true
	q.answerInBatch(sys.FAN_ALLOW)
	g.flushAnswers()
	if !isOpen(q.fd) {
		t.Fatal("written before its release: the flush closed the descriptor under the event's dispatch")
	}
	if len(g.free) != 0 {
		t.Errorf("written before its release: %d records back for reuse, want none", len(g.free))
	}
	q.Release()
	if isOpen(q.fd) {
		sys.Close(int(q.fd))
		t.Fatal("written, then released: the descriptor is still open")
	}
}
