//go:build linux

package backend

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// mangleMountinfo escapes a path as the kernel writes it in mountinfo (seq_path with
// " \t\n\\": an octal \ooo for a blank, a newline and a backslash).
func mangleMountinfo(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if c := p[i]; strings.IndexByte(" \t\n\\", c) >= 0 {
			fmt.Fprintf(&b, `\%03o`, c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// FuzzUnescapeMountinfo: a mount point of a user's choosing ("/tmp/a b", "/tmp/x\040y" with a
// literal backslash, newlines) stays one field of its mountinfo line and unescapes to itself;
// no input panics.
func FuzzUnescapeMountinfo(f *testing.F) {
	for _, p := range []string{"/", "/tmp/a\u00a0-\u00a0proc", "/y\u0085z", "/tmp/a b", `/tmp/x\040y`, "/a\nb", `/a\`, `\\`, `\777`, `\0`, `/x\`, "/t\tb", `\134040`, "/-"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		_ = unescapeMountinfo(p) // anything: no panic
		if !strings.HasPrefix(p, "/") || strings.IndexByte(p, 0) >= 0 {
			return // a mount point is absolute and holds no NUL
		}
		m := mangleMountinfo(p)
		line := "36 35 98:0 / " + m + " rw,noatime master:1 - ext3 /dev/root rw,errors=continue"
		fields := mountinfoFields(line)
		if len(fields) != 11 || fields[4] != m || fields[7] != "-" {
			t.Fatalf("mount point %q split its line: %q", p, fields)
		}
		if got := unescapeMountinfo(fields[4]); got != p {
			t.Fatalf("unescapeMountinfo(%q) = %q, want %q", fields[4], got, p)
		}
	})
}

// TestMountinfoOddMountPoint: a mount point whose name holds blanks the kernel does not
// escape (a no-break space, which a user may give a FUSE mount of theirs through fusermount)
// and that spells " - proc" is read whole: machine-wide tracing (RealFilesystems) still takes
// up its filesystem, and fsRoot finds its root there.
func TestMountinfoOddMountPoint(t *testing.T) {
	base := testenv.Tmpfs(t)
	for _, name := range []string{"x\u00a0-\u00a0proc", "y\u0085z", "a b\tc\\040"} {
		dir := filepath.Join(base, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := sys.Mount("fsnotifyd-test", dir, "tmpfs", sys.MS_NOSUID|sys.MS_NODEV, "size=1m"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sys.Unmount(dir, sys.MNT_DETACH) })
		all, err := RealFilesystems()
		if err != nil || !slices.Contains(all, dir) {
			t.Errorf("RealFilesystems() = %q, %v; lacks %q", all, err, dir)
		}
		st, err := sys.Statx(sys.AT_FDCWD, dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		if root, ino := fsRoot(st.Dev); root != dir || ino != st.Ino {
			t.Errorf("fsRoot(%q) = %q, %d; want it, %d", dir, root, ino, st.Ino)
		}
	}
}
