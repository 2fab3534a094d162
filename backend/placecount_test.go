//go:build linux

package backend

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestVerifiedPathStatxOnce pins the system calls translateFD makes to place an object seen
// for the first time under a directory that watches its children (an inode mark with
// EventOnChild: the daemon's permission client of bench/daemon.sh, the embedded guard DIR):
// the descriptor's statx, the readlink of its path, one statx of that path (it names the same
// object on the same mount: eventPath's look, which verifyPath took again before,
// h30-daemonsys) and one of the directory above. So at most 4 calls per object, for files
// and for directories, each given its own path and its directory as its parent. Before the
// change: 5 per object.
func TestVerifiedPathStatxOnce(t *testing.T) {
	for _, fsys := range handleInoFilesystems {
		t.Run(fsys.name, func(t *testing.T) {
			dir := filepath.Join(fsys.dir(t), "d")
			mkdirAll(t, dir)
			const n = 100
			type obj struct {
				path string
				fd   int
			}
			var objs []obj
			for i := range n {
				f := filepath.Join(dir, fmt.Sprint("f", i))
				writeFile(t, f, "x")
				sub := filepath.Join(dir, fmt.Sprint("sub", i))
				mkdirAll(t, sub)
				for _, p := range []string{f, sub} {
					fd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { syscall.Close(fd) })
					objs = append(objs, obj{p, fd})
				}
			}
			// Opened before the mark: the backend's own reader sees none of them, and so
			// caches no parent of theirs.
			b := newBackend(t, ModeFanotify)
			g := newGroup(t, b, engine.Options{Name: "placecount"})
			mark(t, b, g, dir, engine.KindInode, engine.MarkSpec{Mask: engine.Open | engine.EventOnChild})
			v := b.view.Load()
			now, pid := time.Now(), int32(syscall.Getpid())
			evs := make([]*engine.Event, len(objs))
			calls := testenv.CountSyscalls(t, func() {
				for i, o := range objs {
					kev := sys.FanotifyEvent{Mask: sys.FAN_OPEN, Fd: int32(o.fd), Pid: pid}
					evs[i], _ = b.translateFD(&kev, v, now, false, nil)
				}
			})
			parent := idOf(t, dir)
			for i, o := range objs {
				ev := evs[i]
				if ev == nil || ev.Path != o.path || ev.Parent != parent || ev.Inode != idOf(t, o.path) || ev.AncestryUnknown {
					t.Fatalf("%s: event %+v, want its path, inode and parent %v", o.path, ev, parent)
				}
			}
			if per := float64(calls) / float64(len(objs)); per > 4.05 {
				t.Errorf("%d system calls for %d objects first seen under a directory watching its children: %.2f each, want at most 4 (statx of the descriptor, readlink, statx of its path, statx of its directory)",
					calls, len(objs), per)
			}
		})
	}
}
