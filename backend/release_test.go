//go:build linux

package backend

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestCloseReleasesGroupHeldByAChild: a process that closes its permission group may not hold
// its last descriptor. A child forked a moment before (os/exec forks, then execs) holds a
// copy until its exec closes it (FAN_CLOEXEC acts only then), and the exec's own open of the
// program is a permission event in that group. Left to the kernel — which answers what is
// queued only when the last descriptor goes — the child waits for an answer nobody will read,
// holding the descriptor that would answer it: a notify test hung so, for 14 minutes, in
// execve (2026-12-05). Here the child holds the group on purpose (an inherited descriptor,
// not close-on-exec) and opens a guarded file after Close: it must not wait, and the group
// must report nothing more.
func TestCloseReleasesGroupHeldByAChild(t *testing.T) {
	for _, kind := range []engine.Kind{engine.KindInode, engine.KindMount, engine.KindFilesystem} {
		t.Run(kind.String(), func(t *testing.T) {
			b := newBackend(t, ModeFanotify)
			dir := testenv.Tmpfs(t)
			file := filepath.Join(dir, "f")
			create(t, file)
			g := newGroup(t, b, engine.Options{Name: "guard", Class: engine.ClassContent})
			spec := engine.MarkSpec{Mask: engine.OpenPerm | engine.EventOnChild}
			if kind != engine.KindInode {
				spec.Mask = engine.OpenPerm
			}
			mark(t, b, g, dir, kind, spec)
			go func() { // allow everything while the backend runs
				collect(t, g, time.Minute, func([]got) bool { return false })
			}()

			// The child holds a copy of the group's descriptor (fd 3) and opens the guarded
			// file when told to (its stdin closes).
			b.mu.Lock()
			groupFd := b.fdGroup.fd
			b.mu.Unlock()
			nfd, err := sys.Dup(groupFd)
			if err != nil {
				t.Fatal(err)
			}
			held := os.NewFile(uintptr(nfd), "group")
			child := exec.Command("sh", "-c", "read x; exec cat "+file)
			child.ExtraFiles = []*os.File{held}
			stdin, err := child.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := child.Start(); err != nil {
				t.Fatal(err)
			}
			held.Close()
			done := make(chan error, 1)
			go func() { done <- child.Wait() }()
			t.Cleanup(func() { child.Process.Kill() })

			b.Close()
			stdin.Close()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("the child's open after Close: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("the child's open waited 10 s after Close for an answer in a group only it holds")
			}
		})
	}
}
