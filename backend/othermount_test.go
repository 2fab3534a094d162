//go:build linux

package backend

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// An access through a mount of another namespace prints, for its descriptor, a path that is
// not this namespace's: through an overlay (the kernel's permission event names the backing
// file on the overlay's private copy of the layer's mount, which prints relative to the
// layer), through a bind mount in a user's own mount namespace. translateFD finds such a
// file's real path by handle (verifyPath); the path a decision reads later (permEvent.Path,
// when the event's ancestry came from the chain cache) must be found the same way. Before,
// only the first access of a file had its path: every later one, its chain cached, was
// decided with its path unknown — a deny rule that may match denied it and an allow rule for
// its path was passed over (2 of 3 reads of an allowed file through nobody's overlay were
// refused under `deny open .../secret`), and an overlay's copy-up of a file read before
// failed with EPERM.
func TestPathThroughAnotherMountOnEveryAccess(t *testing.T) {
	fx := newNameFixture(t)
	j := filepath.Join
	for _, d := range []string{j(fx.g, "lo"), j(fx.out, "up"), j(fx.out, "wk"), j(fx.out, "m")} {
		mkdirAll(t, d)
	}
	for _, f := range []string{"a.txt", "b.key", "u.txt", "v.key"} {
		writeFile(t, j(fx.g, "lo", f), "x") // our own accesses are exempt
	}
	m := j(fx.out, "m")
	opts := "lowerdir=" + j(fx.g, "lo") + ",upperdir=" + j(fx.out, "up") + ",workdir=" + j(fx.out, "wk")
	if err := sys.Mount("overlay", m, "overlay", 0, opts); err != nil {
		t.Skipf("no overlayfs: %v", err)
	}
	t.Cleanup(func() { sys.Unmount(m, sys.MNT_DETACH) })
	const n = 3
	for _, f := range []struct {
		name string
		want syscall.Errno
	}{{"a.txt", 0}, {"b.key", syscall.EPERM}} {
		real := j(fx.g, "lo", f.name)
		for i := range n {
			if e := catAs(t, nobodyCred, j(m, f.name)); e != f.want {
				t.Errorf("read %d of %s through root's overlay: %v, want %v", i+1, f.name, e, f.want)
			}
		}
		if got := fx.d.count(real); got != n {
			t.Errorf("%s through root's overlay: %d of %d decisions named its path %s (%d with it unknown)", f.name, got, n, real, fx.d.count(""))
		}
	}
	requireUserns(t)
	// nobody's bind mount of the directory, in a mount namespace of its own: the kernel prints
	// the path there (pub/...), which names nothing here.
	for _, f := range []struct {
		name string
		want string
	}{{"u.txt", ""}, {"v.key", "Operation not permitted"}} {
		real := j(fx.g, "lo", f.name)
		script := "mount --bind " + j(fx.g, "lo") + " " + fx.pub + " && for i in 1 2 3; do cat " + j(fx.pub, f.name) + " >/dev/null; done"
		out, _ := shAs(nobodyCred, "unshare -Urm sh -c '"+script+"' 2>&1")
		if got := strings.Count(out, "Operation not permitted"); f.want != "" && got != n || f.want == "" && got != 0 {
			t.Errorf("as nobody, %d reads of %s through a bind mount in its namespace: %s", n, f.name, out)
		}
		if got := fx.d.count(real); got != n {
			t.Errorf("%s through nobody's bind mount: %d of %d decisions named its path %s (%d with it unknown)", f.name, got, n, real, fx.d.count(""))
		}
	}
}
