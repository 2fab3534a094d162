//go:build linux

package client_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/daemon"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
	"github.com/fsnotifyd/fsnotifyd/internal/testdaemon"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// selfBound bounds the wait for a deleted object's DELETE_SELF: the kernel queues it when the
// last reference goes, at once here; the bound only absorbs a loaded machine.
const selfBound = 5 * time.Second

func inodeOf(t *testing.T, path string) (dev, ino uint64) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Dev, st.Ino
}

// nextEventWithin returns the next event, failing the test if none comes within d.
func nextEventWithin(t *testing.T, c *client.Client, d time.Duration) client.Event {
	t.Helper()
	select {
	case ev, ok := <-c.Events():
		if !ok {
			t.Fatal("Events closed")
		}
		return ev
	case <-time.After(d):
		t.Fatalf("no event within %v", d)
	}
	return client.Event{}
}

// clientMarks is the number of marks the daemon holds for c.
func clientMarks(t *testing.T, ctx context.Context, c *client.Client) uint32 {
	t.Helper()
	st, err := c.Stats(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	id := c.Welcome().ClientID
	for _, cs := range st.Clients {
		if cs.ID == id {
			return cs.Marks
		}
	}
	t.Fatalf("client %d not in the daemon's stats", id)
	return 0
}

// TestDeleteSelfThroughDaemon: deleting a marked file or directory reports its DELETE_SELF
// (the client keeps no descriptor that would hold it back) within selfBound; the mark is then
// not modifiable (ErrLost) and RemoveMark forgets it.
func TestDeleteSelfThroughDaemon(t *testing.T) {
	sock, _ := serve(t, daemon.DefaultConfig())
	for _, tc := range []struct {
		name string
		dir  bool
	}{{"file", false}, {"directory", true}} {
		t.Run(tc.name, func(t *testing.T) {
			scratch := testenv.Tmpfs(t)
			c := dial(t, client.Options{Socket: sock})
			ctx, cancel := context.WithTimeout(context.Background(), hang)
			defer cancel()
			p := filepath.Join(scratch, "obj")
			mask := engine.DeleteSelf
			if tc.dir {
				must(t, os.Mkdir(p, 0o755))
				mask |= engine.OnDir
			} else {
				must(t, os.WriteFile(p, nil, 0o644))
			}
			dev, ino := inodeOf(t, p)
			id, err := c.AddMark(ctx, p, engine.KindInode, engine.MarkSpec{Mask: mask})
			must(t, err)
			start := time.Now()
			must(t, os.Remove(p))
			ev := nextEventWithin(t, c, selfBound)
			t.Logf("DELETE_SELF %v after the removal", time.Since(start))
			if ev.Mask&engine.DeleteSelf == 0 || ev.Lost != nil || ev.Mark != id || !ev.HasObject || ev.Dev != dev || ev.Ino != ino {
				t.Fatalf("got %+v, want the kernel's DELETE_SELF of mark %d (dev %d ino %d)", ev, id, dev, ino)
			}
			if tc.dir != (ev.Mask&engine.OnDir != 0) {
				t.Errorf("OnDir %v on a directory %v", ev.Mask&engine.OnDir != 0, tc.dir)
			}
			if err := c.ModifyMark(ctx, id, engine.MarkSpec{Mask: mask}); !errors.Is(err, client.ErrLost) {
				t.Errorf("ModifyMark of the deleted object's mark: %v, want ErrLost", err)
			}
			if err := c.RemoveMark(ctx, id); err != nil {
				t.Errorf("RemoveMark: %v", err)
			}
			if n := clientMarks(t, ctx, c); n != 0 {
				t.Errorf("the daemon holds %d marks of the client, want 0", n)
			}
		})
	}
}

// TestRemarkAfterRestart: after a daemon restart the client marks again the objects still at
// their paths, and never a stranger: an object deleted, replaced (by a new file, a new
// directory, a symbolic link to another file, a new file given the same inode number) or
// moved while the daemon was away is reported lost — a DELETE_SELF of the object marked,
// Lost matching ErrLost — and the daemon holds no mark for it: events of the object now at
// the path are not reported.
func TestRemarkAfterRestart(t *testing.T) {
	testenv.RequireRoot(t)
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	for _, tc := range []struct {
		name string
		ext4 bool // inode numbers are reused there
		kind engine.Kind
		dir  bool
		// change runs while the daemon is stopped; it returns the path to write to after the
		// restart (the object now at p, or where the marked one went).
		change  func(t *testing.T, p string) string
		lost    bool
		missing bool // the path is gone: Lost matches fs.ErrNotExist
	}{
		{name: "untouched file", kind: engine.KindInode, change: func(t *testing.T, p string) string { return p }},
		{name: "untouched directory", kind: engine.KindSubtree, dir: true, change: func(t *testing.T, p string) string {
			return filepath.Join(p, "f")
		}},
		{name: "deleted", kind: engine.KindInode, lost: true, missing: true, change: func(t *testing.T, p string) string {
			must(t, os.Remove(p))
			return ""
		}},
		{name: "replaced by a new file", kind: engine.KindInode, lost: true, change: func(t *testing.T, p string) string {
			must(t, os.WriteFile(p+".new", nil, 0o644))
			must(t, os.Rename(p+".new", p)) // an editor's save
			return p
		}},
		{name: "directory replaced", kind: engine.KindSubtree, dir: true, lost: true, change: func(t *testing.T, p string) string {
			must(t, os.RemoveAll(p))
			must(t, os.Mkdir(p, 0o755))
			return filepath.Join(p, "f")
		}},
		{name: "replaced by a symlink to another file", kind: engine.KindInode, lost: true, change: func(t *testing.T, p string) string {
			other := p + ".other"
			must(t, os.WriteFile(other, nil, 0o644))
			must(t, os.Remove(p))
			must(t, os.Symlink(other, p))
			return other
		}},
		{name: "moved away", kind: engine.KindInode, lost: true, missing: true, change: func(t *testing.T, p string) string {
			must(t, os.Rename(p, p+".moved"))
			return p + ".moved"
		}},
		{name: "same inode number reused", ext4: true, kind: engine.KindInode, lost: true, change: func(t *testing.T, p string) string {
			_, ino := inodeOf(t, p)
			for i := 0; i < 20; i++ {
				must(t, os.Remove(p))
				must(t, os.WriteFile(p, nil, 0o644))
				if _, now := inodeOf(t, p); now == ino {
					return p
				}
			}
			t.Skipf("ext4 gave the new file another inode number than %d 20 times: nothing to test", ino)
			return ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var scratch string
			if tc.ext4 {
				scratch = testenv.Ext4(t, 32)
			} else {
				scratch = testenv.Tmpfs(t)
			}
			d := testdaemon.Start(t, daemon.Options{Config: daemon.DefaultConfig()}, sock)
			c := dial(t, client.Options{Socket: sock, Reconnect: true})
			ctx, cancel := context.WithTimeout(context.Background(), hang)
			defer cancel()
			p := filepath.Join(scratch, "obj")
			if tc.dir {
				must(t, os.Mkdir(p, 0o755))
			} else {
				must(t, os.WriteFile(p, nil, 0o644))
			}
			dev, ino := inodeOf(t, p)
			// A sentinel, untouched: its event after the restart says whether anything of
			// the changed object came before it. Made before any mark: the daemon may match
			// an event read after a mark was added to it, though it happened before.
			sentinel := filepath.Join(scratch, "sentinel")
			must(t, os.WriteFile(sentinel, nil, 0o644))
			mask := engine.Modify | engine.CloseWrite | engine.DeleteSelf
			id, err := c.AddMark(ctx, p, tc.kind, engine.MarkSpec{Mask: mask})
			must(t, err)
			sid, err := c.AddMark(ctx, sentinel, engine.KindInode, engine.MarkSpec{Mask: engine.CloseWrite})
			must(t, err)

			d.Stop()
			write := tc.change(t, p)
			testdaemon.Start(t, daemon.Options{Config: daemon.DefaultConfig()}, sock)

			if ev := nextEvent(t, c); !ev.Resync {
				t.Fatalf("first event after the restart %+v, want the Resync", ev)
			}
			if tc.lost {
				ev := nextEvent(t, c)
				if !errors.Is(ev.Lost, client.ErrLost) || ev.Mark != id || ev.Mask&engine.DeleteSelf == 0 ||
					ev.Path != p || !ev.HasObject || ev.Dev != dev || ev.Ino != ino {
					t.Fatalf("got %+v, want mark %d lost: a DELETE_SELF of %s (dev %d ino %d)", ev, id, p, dev, ino)
				}
				if tc.dir != (ev.Mask&engine.OnDir != 0) {
					t.Errorf("OnDir %v on a directory %v", ev.Mask&engine.OnDir != 0, tc.dir)
				}
				if tc.missing != errors.Is(ev.Lost, fs.ErrNotExist) {
					t.Errorf("Lost %v: matches fs.ErrNotExist %v, want %v", ev.Lost, !tc.missing, tc.missing)
				}
				t.Logf("lost: %v", ev.Lost)
			}
			wantMarks := uint32(2)
			if tc.lost {
				wantMarks = 1
			}
			if n := clientMarks(t, ctx, c); n != wantMarks {
				t.Errorf("the daemon holds %d marks of the client, want %d", n, wantMarks)
			}
			if write != "" {
				must(t, os.WriteFile(write, []byte("x"), 0o644))
			}
			must(t, os.WriteFile(sentinel, []byte("x"), 0o644))
			var got []client.Event
			for {
				ev := nextEvent(t, c)
				if ev.Mark == sid && ev.Mask&engine.CloseWrite != 0 {
					break
				}
				got = append(got, ev)
			}
			switch {
			case tc.lost && len(got) > 0:
				t.Errorf("events of the object now at the lost mark's path (or of the moved one): %+v", got)
			case !tc.lost && (len(got) == 0 || got[0].Mark != id || got[0].Mask&engine.Modify == 0):
				t.Errorf("after the restart, events %+v, want the re-placed mark %d's MODIFY first", got, id)
			}
			if tc.lost {
				if err := c.ModifyMark(ctx, id, engine.MarkSpec{Mask: mask}); !errors.Is(err, client.ErrLost) {
					t.Errorf("ModifyMark of a lost mark: %v, want ErrLost", err)
				}
				if err := c.RemoveMark(ctx, id); err != nil {
					t.Errorf("RemoveMark of a lost mark: %v", err)
				}
				if _, ok := c.Marks()[id]; ok {
					t.Errorf("Marks still lists the removed mark %d", id)
				}
			}
		})
	}
}

// TestModifyMarkFindsTheObject: ModifyMark hands the daemon the object at the mark's path only
// if it is still the one marked; a replaced one is ErrLost, and the daemon's mark is untouched.
func TestModifyMarkFindsTheObject(t *testing.T) {
	sock, _ := serve(t, daemon.DefaultConfig())
	scratch := testenv.Tmpfs(t)
	c := dial(t, client.Options{Socket: sock})
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	p := filepath.Join(scratch, "f")
	must(t, os.WriteFile(p, nil, 0o644))
	id, err := c.AddMark(ctx, p, engine.KindInode, engine.MarkSpec{Mask: engine.Modify})
	must(t, err)
	must(t, c.ModifyMark(ctx, id, engine.MarkSpec{Mask: engine.CloseWrite}))
	must(t, os.WriteFile(p, []byte("x"), 0o644))
	if ev := nextEventWithin(t, c, selfBound); ev.Mask&engine.CloseWrite == 0 || ev.Mask&engine.Modify != 0 || ev.Mark != id {
		t.Fatalf("after ModifyMark to CLOSE_WRITE: %+v", ev)
	}
	// Keep the marked inode alive elsewhere (a hard link), and put a stranger at the path.
	must(t, os.Link(p, p+".kept"))
	must(t, os.WriteFile(p+".new", nil, 0o644))
	must(t, os.Rename(p+".new", p))
	if err := c.ModifyMark(ctx, id, engine.MarkSpec{Mask: engine.Modify}); !errors.Is(err, client.ErrLost) {
		t.Fatalf("ModifyMark with a stranger at the path: %v, want ErrLost", err)
	}
	// The mark is still CLOSE_WRITE on the kept inode, and the stranger unmarked.
	must(t, os.WriteFile(p, []byte("y"), 0o644))
	must(t, os.WriteFile(p+".kept", []byte("z"), 0o644))
	ev := nextEventWithin(t, c, selfBound)
	if ev.Mask&engine.CloseWrite == 0 || ev.Mask&engine.Modify != 0 || ev.Path != p+".kept" {
		t.Fatalf("after a refused ModifyMark: %+v, want the kept inode's CLOSE_WRITE only", ev)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRemoveMarkDuringReconnection: a mark removed while the client places it again after a
// reconnection is taken off the new connection by the id it got there (never by the last
// connection's id, which names another mark there), and RemoveMark does not wait for it.
func TestRemoveMarkDuringReconnection(t *testing.T) {
	f := newFake(t)
	dir := t.TempDir()
	c, conn := f.dial(client.Options{Reconnect: true})
	if c == nil {
		return
	}
	defer c.Close()
	ids := map[string]client.MarkID{}
	for i, name := range []string{"a", "b"} {
		p := filepath.Join(dir, name)
		must(t, os.WriteFile(p, nil, 0o644))
		added := make(chan error, 1)
		go func() {
			id, err := c.AddMark(context.Background(), p, engine.KindInode, engine.MarkSpec{Mask: engine.Modify})
			ids[p] = id
			added <- err
		}()
		am := expect[*proto.AddMark](t, conn)
		conn.WriteMsg(&proto.Result{Req: am.Req, ID: uint64(i + 1)})
		must(t, <-added)
	}
	conn.Close() // the daemon restarts

	conn = f.accept(true)
	// targetOf reads the next AddMark and returns it with the path of its object.
	targetOf := func() (*proto.AddMark, string) {
		m, err := conn.ReadMsg()
		if err != nil {
			t.Fatal(err)
		}
		am, ok := m.(*proto.AddMark)
		if !ok {
			t.Fatalf("got %T, want an AddMark", m)
		}
		p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(am.Target.Int()))
		proto.CloseFDs(am)
		if err != nil {
			t.Fatal(err)
		}
		return am, p
	}
	am, first := targetOf()
	start := time.Now()
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	must(t, c.RemoveMark(rctx, ids[first]))
	if d := time.Since(start); d > time.Second {
		t.Errorf("RemoveMark during the reconnection took %v", d)
	}
	conn.WriteMsg(&proto.Result{Req: am.Req, ID: 1})
	rm := expect[*proto.RemoveMark](t, conn)
	if rm.By != proto.RemoveByID || rm.MarkID != 1 {
		t.Fatalf("got %+v, want the removal of the new connection's mark 1", rm)
	}
	conn.WriteMsg(&proto.Result{Req: rm.Req})
	am, second := targetOf()
	if second == first {
		t.Fatalf("%s placed again after its removal", first)
	}
	conn.WriteMsg(&proto.Result{Req: am.Req, ID: 2})
	if ev := nextEvent(t, c); !ev.Resync {
		t.Fatalf("first event after the reconnection: %+v, want the Resync", ev)
	}
	removed := make(chan error, 1)
	go func() { removed <- c.RemoveMark(context.Background(), ids[second]) }()
	rm = expect[*proto.RemoveMark](t, conn)
	if rm.MarkID != 2 {
		t.Fatalf("got %+v, want the removal of the new connection's mark 2", rm)
	}
	conn.WriteMsg(&proto.Result{Req: rm.Req})
	must(t, <-removed)
}
