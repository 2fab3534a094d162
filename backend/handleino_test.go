//go:build linux

package backend

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// handleInoFilesystems are the filesystems whose handles hold the inode number
// (sys.HandleInoOf), as the tests mount them.
var handleInoFilesystems = []struct {
	name string
	dir  func(testing.TB) string
}{
	{"tmpfs", func(t testing.TB) string { return testenv.Tmpfs(t) }},
	{"ext4", func(t testing.TB) string { return testenv.Ext4(t, 16) }},
}

// setHandleIno sets the handle layout of path's filesystem in b, and publishes the view: the
// zero value makes it a filesystem whose layout is unknown (objectID's statx or open).
func setHandleIno(t testing.TB, b *Backend, path string, l sys.HandleIno) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	fs := b.fss[stat(t, path).Dev]
	if fs == nil {
		t.Fatalf("%s's filesystem is not the backend's", path)
	}
	fs.handleIno = l
	b.publishViewLocked()
}

// handleInoOf returns the handle layout b found for path's filesystem.
func handleInoOf(t testing.TB, b *Backend, path string) sys.HandleIno {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fss[stat(t, path).Dev].handleIno
}

// TestObjectIDFromHandle: on tmpfs and ext4 the FID reader reads a file's inode number from
// its handle (fsState.handleIno): the first event of each of 100 files costs no system call
// (before: one statx of its path each, bench/notifysyscalls.sh's statx per opened file), and
// each event still has the file's own ID; an ATTRIB costs attribPath's one statx (before: two
// for a file first seen, objectID's and attribPath's). Where the layout is not known (set
// off here, as on xfs or btrfs), the first event of a file costs objectID's one statx as
// before, and an ATTRIB of a file first seen one statx in all, which both use (before: two).
// A file gone before its event is read gets its own ID from the handle (not a stand-in: its
// inode number is known), and a stand-in where the layout is not known, as before.
//
// System calls are counted by the kernel (testenv.CountSyscalls), on the goroutine that
// translates the events: a count, whatever the machine's load; the bounds leave room for a
// runtime call of the test's own.
func TestObjectIDFromHandle(t *testing.T) {
	for _, fsys := range handleInoFilesystems {
		t.Run(fsys.name, func(t *testing.T) {
			root := fsys.dir(t)
			dir := filepath.Join(root, "d")
			mkdirAll(t, dir)
			const n = 100
			// Every file before the mark: the real reader must have nothing to read.
			for _, set := range []string{"open", "attrib", "open-unknown", "attrib-unknown"} {
				for i := range n {
					writeFile(t, filepath.Join(dir, fmt.Sprint(set, i)), "x")
				}
			}
			writeFile(t, filepath.Join(dir, "warm"), "x")
			gone, goneUnknown := filepath.Join(dir, "gone"), filepath.Join(dir, "gone-unknown")
			writeFile(t, gone, "x")
			writeFile(t, goneUnknown, "x")
			b := newBackend(t, ModeFanotify)
			g := newGroup(t, b, engine.Options{Name: "handleino"})
			mark(t, b, g, dir, engine.KindInode, engine.MarkSpec{Mask: engine.Open | engine.Attrib | engine.EventOnChild})
			layout := handleInoOf(t, b, dir)
			if !layout.Known() {
				t.Fatalf("%s: no handle layout found: its handles hold the inode number (sys.HandleInoOf)", fsys.name)
			}
			x := newFIDFixture(t, b, g)
			now := time.Now() // one time: the process's name stays cached
			// events returns the fixture's events on set's n files, built before they are
			// counted (name_to_handle_at is the test's, not the reader's).
			events := func(set string, mask uint64) []sys.FanotifyEvent {
				evs := make([]sys.FanotifyEvent, n)
				for i := range n {
					x.childEvent(t, dir, fmt.Sprint(set, i), mask)
					evs[i] = x.kev
				}
				return evs
			}
			// run handles evs (counting the system calls made), then checks what the group
			// got: each file's own ID, and its path.
			run := func(set string, evs []sys.FanotifyEvent, want engine.Mask) int {
				t.Helper()
				got := make([]engine.Delivery, 0, n)
				calls := testenv.CountSyscalls(t, func() {
					for i := range evs {
						kev := evs[i]
						x.fg.handle(&kev, b.view.Load(), now)
						k, _ := g.TryReadBatch(x.buf)
						got = append(got, x.buf[:k]...)
						clear(x.buf[:k])
					}
				})
				if len(got) != n {
					t.Fatalf("%s: the group got %d deliveries for %d events", set, len(got), n)
				}
				for i, d := range got {
					f := filepath.Join(dir, fmt.Sprint(set, i))
					if d.Mask != want || d.Event.Path != f || d.Event.Inode != idOf(t, f) || d.Event.InodeStandIn {
						t.Errorf("%s: delivery %v path %q inode %v (stand-in %v), want %v %q %v", set, d.Mask, d.Event.Path,
							d.Event.Inode, d.Event.InodeStandIn, want, f, idOf(t, f))
					}
					d.Release()
				}
				t.Logf("%s: %d system calls for %d events", set, calls, n)
				return calls
			}
			// The directory, the process's name: cached by a first event.
			x.childEvent(t, dir, "warm", sys.FAN_OPEN)
			if x.handleOne(now) != 1 {
				t.Fatal("the warming event did not reach the group")
			}
			const slack = 2 // a runtime call of the test's own (CountSyscalls)
			opens, attribs := events("open", sys.FAN_OPEN), events("attrib", sys.FAN_ATTRIB)
			if c := run("open", opens, engine.Open); c > slack {
				t.Errorf("first OPENs of %d files: %d system calls, want none (at most %d)", n, c, slack)
			}
			if c := run("attrib", attribs, engine.Attrib); c > n+slack {
				t.Errorf("first ATTRIBs of %d files: %d system calls, want one statx each (at most %d)", n, c, n+slack)
			}
			// The same, where the filesystem's layout is not known.
			setHandleIno(t, b, dir, sys.HandleIno{})
			if c := run("open-unknown", events("open-unknown", sys.FAN_OPEN), engine.Open); c > n+slack {
				t.Errorf("unknown layout: first OPENs of %d files: %d system calls, want one statx each (at most %d)", n, c, n+slack)
			}
			if c := run("attrib-unknown", events("attrib-unknown", sys.FAN_ATTRIB), engine.Attrib); c > n+slack {
				t.Errorf("unknown layout: first ATTRIBs of %d files: %d system calls, want one statx each for both (at most %d)", n, c, n+slack)
			}
			setHandleIno(t, b, dir, layout)
			// Known objects, again: nothing for an OPEN, attribPath's statx for an ATTRIB.
			if c := run("open", opens, engine.Open); c > slack {
				t.Errorf("OPENs of %d files seen before: %d system calls, want none (at most %d)", n, c, slack)
			}
			if c := run("attrib", attribs, engine.Attrib); c > n+slack {
				t.Errorf("ATTRIBs of %d files seen before: %d system calls, want one statx each (at most %d)", n, c, n+slack)
			}

			// Files gone when their events are read: the ID from the handle where the layout
			// is known; a stand-in where it is not, as before. (Last: the removals' own
			// events are the real reader's, and are read and drained first.)
			x.childEvent(t, dir, "gone", sys.FAN_OPEN)
			goneEv, goneID := x.kev, idOf(t, gone)
			x.childEvent(t, dir, "gone-unknown", sys.FAN_OPEN)
			goneUnknownEv, goneUnknownID := x.kev, idOf(t, goneUnknown)
			for _, f := range []string{gone, goneUnknown} {
				if err := os.Remove(f); err != nil {
					t.Fatal(err)
				}
			}
			waitUntil(t, "the FID reader idle", func() bool { idle, err := x.fg.idle(); return err == nil && idle })
			time.Sleep(3 * b.orphanGrace) // events waiting for a DELETE that is not marked: flushed
			for {
				k, _ := g.TryReadBatch(x.buf)
				if k == 0 {
					break
				}
				for i := range x.buf[:k] {
					x.buf[i].Release()
					x.buf[i] = engine.Delivery{}
				}
			}
			checkGone := func(kev sys.FanotifyEvent, id engine.ID, standIn bool) {
				t.Helper()
				x.fg.handle(&kev, b.view.Load(), now)
				k, _ := g.TryReadBatch(x.buf)
				if k != 1 {
					t.Fatalf("the gone file's event: %d deliveries, want 1", k)
				}
				d := x.buf[0]
				x.buf[0] = engine.Delivery{}
				defer d.Release()
				if d.Event.InodeStandIn != standIn || (!standIn && d.Event.Inode != id) || (standIn && d.Event.Inode == id) {
					t.Errorf("the gone file's event: inode %v (stand-in %v), want %v (stand-in %v)", d.Event.Inode, d.Event.InodeStandIn, id, standIn)
				}
			}
			checkGone(goneEv, goneID, false)
			setHandleIno(t, b, dir, sys.HandleIno{})
			checkGone(goneUnknownEv, goneUnknownID, true)
		})
	}
}

// TestObjectIDReusedInodeNumber: an unregistered file's handle holds an inode number that a
// registered file has now (ext4 gave the number of a removed file to the next one): its event
// does not take the registered file's ID (whose marks would then report it) but is looked
// up as where the layout is not known — gone: a stand-in — and the registered file's mark
// reports nothing.
func TestObjectIDReusedInodeNumber(t *testing.T) {
	root := testenv.Ext4(t, 16)
	dir := filepath.Join(root, "d")
	mkdirAll(t, dir)
	old, now := filepath.Join(dir, "old"), filepath.Join(dir, "new")
	var oldHandle sys.FileHandle
	var ino uint64
	reused := false
	for range 20 {
		writeFile(t, old, "x")
		h, _, err := sys.NameToHandleAt(sys.AT_FDCWD, old, 0)
		if err != nil {
			t.Fatal(err)
		}
		oldHandle, ino = h, stat(t, old).Ino
		if err := os.Remove(old); err != nil {
			t.Fatal(err)
		}
		writeFile(t, now, "x")
		if stat(t, now).Ino == ino {
			reused = true
			break
		}
		os.Remove(now)
	}
	if !reused {
		t.Skipf("ext4 gave the new file another inode number than the removed one's 20 times: nothing to test")
	}
	b := newBackend(t, ModeFanotify)
	g := newGroup(t, b, engine.Options{Name: "reused"})
	mark(t, b, g, dir, engine.KindInode, engine.MarkSpec{Mask: engine.Open | engine.EventOnChild})
	self := newGroup(t, b, engine.Options{Name: "self"})
	mark(t, b, self, now, engine.KindInode, engine.MarkSpec{Mask: engine.Open}) // registers "new"
	if l := handleInoOf(t, b, dir); !l.Known() {
		t.Fatal("ext4: no handle layout found")
	} else if got, ok := l.Ino(oldHandle); !ok || got != ino {
		t.Fatalf("the removed file's handle holds %d (%v), want %d", got, ok, ino)
	}
	x := newFIDFixture(t, b, g)
	x.childEvent(t, dir, "new", sys.FAN_OPEN) // the directory's handle, this process
	x.kev.DFID.Name = []byte("old")
	x.kev.FID.Handle = oldHandle
	kev := x.kev
	x.fg.handle(&kev, b.view.Load(), time.Now())
	k, _ := g.TryReadBatch(x.buf)
	if k != 1 {
		t.Fatalf("the directory's group got %d deliveries, want 1", k)
	}
	d := x.buf[0]
	x.buf[0] = engine.Delivery{}
	defer d.Release()
	if d.Event.Inode == idOf(t, now) || !d.Event.InodeStandIn {
		t.Errorf("the removed file's event has inode %v (stand-in %v): the registered file's is %v", d.Event.Inode, d.Event.InodeStandIn, idOf(t, now))
	}
	if k, _ := self.TryReadBatch(x.buf); k != 0 {
		t.Errorf("the registered file's mark reported the removed file's event: %v", x.buf[0].Event)
		for i := range x.buf[:k] {
			x.buf[i].Release()
		}
	}
}
