package backend

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestIgnoreMaskClearedByModifyThroughMountAndParent is the kernel's surviving-modify rule
// (send_to_group) on the real kernel, through the marks TestLTPFanotify01EventsPerMarkType
// leaves out: a modification of ANOTHER file on the mount clears a mount mark's ignore mask,
// and a child's modification clears its directory's ignore mask that covers children (for
// every child)
// (EventOnChild), so the ignored open is reported again; with IgnoreSurviveModify both stay.
// The engine test TestIgnoreMasksKernelRules states the same rules without a kernel.
func TestIgnoreMaskClearedByModifyThroughMountAndParent(t *testing.T) {
	type setup struct {
		name          string
		marks         func(t *testing.T, b *Backend, g *engine.Group, root string, flags engine.MarkFlags)
		target, write string // opened, and written to between the opens (relative to root)
	}
	setups := []setup{
		{
			name: "mount",
			marks: func(t *testing.T, b *Backend, g *engine.Group, root string, flags engine.MarkFlags) {
				mark(t, b, g, filepath.Join(root, "target"), engine.KindInode, engine.MarkSpec{Mask: engine.Open})
				mark(t, b, g, root, engine.KindMount, engine.MarkSpec{Ignore: engine.Open, Flags: flags})
			},
			target: "target", write: "other",
		},
		{
			name: "parent",
			marks: func(t *testing.T, b *Backend, g *engine.Group, root string, flags engine.MarkFlags) {
				mark(t, b, g, root, engine.KindFilesystem, engine.MarkSpec{Mask: engine.Open})
				mark(t, b, g, filepath.Join(root, "d"), engine.KindInode, engine.MarkSpec{Ignore: engine.Open | engine.EventOnChild, Flags: flags})
			},
			target: "d/child", write: "d/other",
		},
	}
	for _, s := range setups {
		for _, surv := range []bool{false, true} {
			var flags engine.MarkFlags
			name := s.name
			if surv {
				flags, name = engine.IgnoreSurviveModify, name+"-surviving"
			}
			t.Run(name, func(t *testing.T) {
				if s.name == "mount" && surv {
					// Fails today: the target's open is reported while ignored.
					t.Skip("limit (backend/doc.go): an ignore-only surviving mount mark does not route the filesystem's notifications to the FD group, so their mount is unknown and the ignore does not apply")
				}
				root := testenv.Tmpfs(t)
				for _, p := range []string{"target", "other", "d/child", "d/other"} {
					writeFile(t, filepath.Join(root, p), "x")
				}
				// Sentinels on the same filesystem (one kernel queue: the FD and FID groups'
				// queues are not ordered against each other), reporting CLOSE_NOWRITE, which
				// no mark here ignores.
				var sentinels []string
				for i := 0; i < 3; i++ {
					p := filepath.Join(root, "sentinel"+strconv.Itoa(i))
					writeFile(t, p, "s")
					sentinels = append(sentinels, p)
				}
				b := newBackend(t, ModeFanotify)
				g := newGroup(t, b, engine.Options{Name: "ignore-" + name})
				for _, p := range sentinels {
					mark(t, b, g, p, engine.KindInode, engine.MarkSpec{Mask: engine.CloseNoWrite})
				}
				s.marks(t, b, g, root, flags)
				r := record(t, g, nil)
				target := filepath.Join(root, s.target)
				id := idOf(t, target)
				phase := 0
				step := func(what string, want engine.Mask, do func()) {
					t.Helper()
					start := r.len()
					do()
					touch(t, sentinels[phase])
					r.waitPath(start, engine.CloseNoWrite, sentinels[phase])
					phase++
					if got := unionOn(r.since(start), id) & engine.Open; got != want {
						t.Errorf("%s: the target's opens are %v, want %v; read:\n%s", what, got, want, dump(r.since(start)))
					}
				}
				step("open while ignored", 0, func() { touch(t, target) })
				step("modify", 0, func() {
					// A write (truncate(2) by path has no path for the kernel's mount marks).
					// Another file than the target: the kernel may merge its open and write
					// into one unread event, read here as one OPEN|MODIFY.
					f, err := os.OpenFile(filepath.Join(root, s.write), os.O_WRONLY|os.O_APPEND, 0)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := f.Write([]byte("m")); err != nil {
						t.Fatal(err)
					}
					f.Close()
				})
				want := engine.Open
				if surv {
					want = 0
				}
				step("open after the modification", want, func() { touch(t, target) })
			})
		}
	}
}

// TestSurvivingMountIgnoreSilencesPermissionEvents is the other side of the limit that
// TestIgnoreMaskClearedByModifyThroughMountAndParent/mount-surviving skips (backend/doc.go):
// permission events are read from the FD group, which says through which mount they came,
// so an ignore-only IgnoreSurviveModify mount mark silences the same group's inode mark's
// OPEN_PERM for another process's open: the policy, which denies everything, is never asked
// and the open succeeds; without the ignore mark it is denied.
func TestSurvivingMountIgnoreSilencesPermissionEvents(t *testing.T) {
	for _, ignore := range []bool{true, false} {
		t.Run(map[bool]string{true: "ignored", false: "not-ignored"}[ignore], func(t *testing.T) {
			root := testenv.Tmpfs(t)
			target := filepath.Join(root, "target")
			writeFile(t, target, "x")
			b := newBackend(t, ModeFanotify)
			g := newGroup(t, b, engine.Options{Name: "surv-mount-ignore", Class: engine.ClassContent})
			mark(t, b, g, target, engine.KindInode, engine.MarkSpec{Mask: engine.OpenPerm})
			if ignore {
				mark(t, b, g, root, engine.KindMount, engine.MarkSpec{Ignore: engine.OpenPerm, Flags: engine.IgnoreSurviveModify})
			}
			r := record(t, g, func(rec) engine.Response { return engine.Response{Verdict: engine.Deny} })
			res, _ := access(t, "open:"+target)
			if ignore && (res.errno != 0 || r.len() != 0) {
				t.Errorf("open with OPEN_PERM ignored through the mount: errno %v, %d permission events read", res.errno, r.len())
			}
			if !ignore && res.errno == 0 {
				t.Errorf("open without the ignore mark was allowed; want the policy's deny")
			}
		})
	}
}
