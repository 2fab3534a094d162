//go:build linux

package client_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
)

// TestEventMarkFollowsMarkChanges: an event's Mark is the live mark with the longest path
// containing the event's path, after each change of the marks, while the events keep naming
// the same path (the reader remembers its last answer: it must not outlive a change). Against
// a fake daemon, which sends the events: a directory's mark, then its file's (the longer path
// wins), the file's removed, placed again, then gone with its object's DELETE_SELF.
func TestEventMarkFollowsMarkChanges(t *testing.T) {
	f := newFake(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(file, &st); err != nil {
		t.Fatal(err)
	}
	c, conn := f.dial(client.Options{})
	if c == nil {
		return
	}
	defer c.Close()
	var daemonID uint64
	add := func(path string, spec engine.MarkSpec) client.MarkID {
		t.Helper()
		type res struct {
			id  client.MarkID
			err error
		}
		done := make(chan res, 1)
		go func() {
			id, err := c.AddMark(context.Background(), path, engine.KindInode, spec)
			done <- res{id, err}
		}()
		am := expect[*proto.AddMark](t, conn)
		daemonID++
		conn.WriteMsg(&proto.Result{Req: am.Req, ID: daemonID})
		r := <-done
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.id
	}
	remove := func(id client.MarkID) {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- c.RemoveMark(context.Background(), id) }()
		rm := expect[*proto.RemoveMark](t, conn)
		conn.WriteMsg(&proto.Result{Req: rm.Req})
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	var evs int
	send := func(mask engine.Mask, want client.MarkID, step string) {
		t.Helper()
		// Three events each time: the first after a change, and two that a remembered answer
		// would give.
		for i := 0; i < 3; i++ {
			evs++
			ev := &proto.Event{Mask: mask, Path: file, Pid: 1, Dev: uint64(st.Dev), Ino: st.Ino, HasObject: true}
			if err := conn.WriteMsg(ev); err != nil {
				t.Fatal(err)
			}
			if got := nextEvent(t, c); got.Path != file || got.Mark != want {
				t.Fatalf("%s: event %d: mark %d (path %q), want %d", step, evs, got.Mark, got.Path, want)
			}
		}
	}
	dirID := add(dir, engine.MarkSpec{Mask: engine.Open | engine.EventOnChild})
	send(engine.Open, dirID, "directory marked")
	fileID := add(file, engine.MarkSpec{Mask: engine.Open | engine.DeleteSelf})
	if fileID == dirID {
		t.Fatalf("the file's mark has the directory's id %d", dirID)
	}
	send(engine.Open, fileID, "file marked too")
	remove(fileID)
	send(engine.Open, dirID, "file's mark removed")
	fileID = add(file, engine.MarkSpec{Mask: engine.Open | engine.DeleteSelf})
	send(engine.Open, fileID, "file marked again")
	// Its DELETE_SELF names the file's mark (still live when it comes); the kernel dropped the
	// mark with it, so the events after it are the directory's.
	evs++
	if err := conn.WriteMsg(&proto.Event{Mask: engine.DeleteSelf, Path: file, Pid: 1, Dev: uint64(st.Dev), Ino: st.Ino, HasObject: true}); err != nil {
		t.Fatal(err)
	}
	if got := nextEvent(t, c); got.Mask&engine.DeleteSelf == 0 || got.Mark != fileID {
		t.Fatalf("DELETE_SELF: %+v, want mark %d", got, fileID)
	}
	send(engine.Open, dirID, "file's mark gone")
}
