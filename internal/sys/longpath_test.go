package sys_test

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	. "github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// deepTree makes the directories names[0]/names[1]/... below root, and returns an O_PATH
// descriptor of each (closed at cleanup) and the expected path of each. It never passes a
// path longer than one name to the kernel.
func deepTree(t testing.TB, root string, names []string) (fds []int, paths []string) {
	t.Helper()
	cur, err := Open(root, O_PATH|O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Close(cur) })
	path := root
	for _, n := range names {
		if err := mkdirat(cur, n); err != nil {
			t.Fatal(err)
		}
		fd, err := Openat(cur, n, O_PATH|O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { Close(fd) })
		path += "/" + n
		fds, paths = append(fds, fd), append(paths, path)
		cur = fd
	}
	return fds, paths
}

func mkdirat(dirfd int, name string) error {
	fd, err := Openat(dirfd, ".", O_PATH|O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer Close(fd)
	return os.Mkdir(procFdPath(fd)+"/"+name, 0o755)
}

// procFdPath is /proc/self/fd/N, which resolves through the descriptor whatever the length of
// the path behind it.
func procFdPath(fd int) string { return "/proc/self/fd/" + itoa(fd) }

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

func repeatNames(n, length int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = strings.Repeat(string(rune('a'+i%26)), length)
	}
	return names
}

// The tree: 22 directories of 200 bytes, deeper than FdPath can print.
func TestWalkUpAndLongPathBeyondPathMax(t *testing.T) {
	root := testenv.Tmpfs(t)
	rootSt, err := Statx(AT_FDCWD, root, 0)
	if err != nil {
		t.Fatal(err)
	}
	fds, paths := deepTree(t, root, repeatNames(22, 200))
	wdBefore, _ := os.Getwd()
	deepest := fds[len(fds)-1]
	if _, err := FdPath(deepest); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Fatalf("FdPath of a %d-byte path: %v; the test needs ENAMETOOLONG", len(paths[len(paths)-1]), err)
	}
	levels, complete, err := WalkUp(deepest, 0)
	if err != nil || !complete {
		t.Fatalf("WalkUp: complete %v, %v", complete, err)
	}
	if len(levels) != len(fds)+1 {
		t.Fatalf("WalkUp: %d levels, want %d (22 directories and the mount root)", len(levels), len(fds)+1)
	}
	for i, fd := range fds {
		st, _ := Fstat(fd)
		if got := levels[len(fds)-1-i]; got.Ino != st.Ino || got.Dev != st.Dev {
			t.Fatalf("level %d: inode %d, want %d", len(fds)-1-i, got.Ino, st.Ino)
		}
	}
	if top := levels[len(levels)-1]; top.Ino != rootSt.Ino || !top.MountRoot {
		t.Fatalf("top level: inode %d (mount root %v), want the tmpfs root %d", top.Ino, top.MountRoot, rootSt.Ino)
	}
	for i, fd := range fds {
		got, err := LongPath(fd, 0)
		if err != nil || got != paths[i] {
			t.Fatalf("LongPath at depth %d (%d bytes): %q..., %v", i+1, len(paths[i]), trunc(got), err)
		}
	}
	// A bound below the path's length fails, never truncates.
	if got, err := LongPath(deepest, len(paths[len(paths)-1])-1); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Fatalf("LongPath with a bound 1 byte short: %q, %v; want ENAMETOOLONG", trunc(got), err)
	}
	if got, err := LongPath(deepest, len(paths[len(paths)-1])); err != nil || got != paths[len(paths)-1] {
		t.Fatalf("LongPath with an exact bound: %q, %v", trunc(got), err)
	}
	// The chroot happened on a thread of its own.
	if wd, _ := os.Getwd(); wd != wdBefore {
		t.Fatalf("working directory moved: %q -> %q", wdBefore, wd)
	}
	if r, err := os.Readlink("/proc/thread-self/root"); err != nil || r != "/" {
		t.Fatalf("root directory: %q, %v", r, err)
	}
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:40] + "..." + s[len(s)-40:]
	}
	return s
}

// MaxLongPath bounds the walk: a deeper directory is refused, not walked forever.
func TestLongPathLimit(t *testing.T) {
	root := testenv.Tmpfs(t)
	fds, paths := deepTree(t, root, repeatNames(MaxLongPath/200+2, 199))
	deepest := fds[len(fds)-1]
	if len(paths[len(paths)-1]) <= MaxLongPath {
		t.Fatalf("test tree too shallow: %d bytes", len(paths[len(paths)-1]))
	}
	if got, err := LongPath(deepest, 0); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Fatalf("LongPath beyond MaxLongPath: %q, %v; want ENAMETOOLONG", trunc(got), err)
	}
	// The deepest directory within the bound still works.
	i := len(paths) - 1
	for len(paths[i]) > MaxLongPath {
		i--
	}
	if got, err := LongPath(fds[i], 0); err != nil || got != paths[i] {
		t.Fatalf("LongPath of %d bytes: %q, %v", len(paths[i]), trunc(got), err)
	}
	if levels, complete, err := WalkUp(deepest, 10); err != nil || complete || len(levels) != 10 {
		t.Fatalf("WalkUp(max 10): %d levels, complete %v, %v", len(levels), complete, err)
	}
}

func TestLongPathRefusesFiles(t *testing.T) {
	root := testenv.Tmpfs(t)
	fds, _ := deepTree(t, root, repeatNames(22, 200))
	f, err := Openat(fds[len(fds)-1], "deep.key", O_RDWR|O_CREAT, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(f)
	if _, err := LongPath(f, 0); !errors.Is(err, syscall.ENOTDIR) {
		t.Fatalf("LongPath of a deep file: %v; want ENOTDIR (a file's parent is not reachable)", err)
	}
	if _, _, err := WalkUp(f, 0); !errors.Is(err, syscall.ENOTDIR) {
		t.Fatalf("WalkUp of a file: %v; want ENOTDIR", err)
	}
}

// WalkUp stops at the root of the descriptor's mount: below a bind mount of a subdirectory,
// that is not the filesystem's root, and the caller must see it (the top level).
func TestWalkUpBindMount(t *testing.T) {
	root := testenv.Tmpfs(t)
	if err := os.MkdirAll(root+"/a/b/c", 0o755); err != nil {
		t.Fatal(err)
	}
	bind := t.TempDir()
	if err := Mount(root+"/a", bind, "", MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer Unmount(bind, MNT_DETACH)
	fd, err := Open(bind+"/b/c", O_PATH|O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(fd)
	levels, complete, err := WalkUp(fd, 0)
	a, _ := Statx(AT_FDCWD, root+"/a", 0)
	if err != nil || !complete || len(levels) != 3 || levels[2].Ino != a.Ino || !levels[2].MountRoot {
		t.Fatalf("WalkUp below a bind mount: %d levels, complete %v, %v; want c, b, a (a the mount root)", len(levels), complete, err)
	}
	if p, err := LongPath(fd, 0); err != nil || p != bind+"/b/c" {
		t.Fatalf("LongPath: %q, %v", p, err)
	}
}

// FuzzLongPath builds a chain of directories with the fuzzer's name lengths and checks that
// LongPath gives exactly its path, or ENAMETOOLONG when it is longer than the bound.
func FuzzLongPath(f *testing.F) {
	f.Add([]byte{200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200}, uint16(0))
	f.Add([]byte{255, 1, 255, 1, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}, uint16(4200))
	f.Add([]byte{1, 2, 3}, uint16(5))
	f.Add(append(make([]byte, 0, 64), []byte(strings.Repeat("\xff", 60))...), uint16(0))
	root := testenv.Tmpfs(f)
	n := 0
	f.Fuzz(func(t *testing.T, lens []byte, max uint16) {
		if len(lens) == 0 || len(lens) > 80 {
			return
		}
		n++
		base := root + "/t" + itoa(n)
		if err := os.Mkdir(base, 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(base)
		names := make([]string, len(lens))
		for i, l := range lens {
			if l == 0 {
				l = 1
			}
			names[i] = strings.Repeat(string(rune('a'+i%26)), int(l))
		}
		fds, paths := deepTree(t, base, names)
		want := paths[len(paths)-1]
		got, err := LongPath(fds[len(fds)-1], int(max))
		bound := int(max)
		if bound <= 0 || bound > MaxLongPath {
			bound = MaxLongPath
		}
		if len(want) > bound {
			if !errors.Is(err, syscall.ENAMETOOLONG) {
				t.Fatalf("%d-byte path, bound %d: %q, %v; want ENAMETOOLONG", len(want), bound, trunc(got), err)
			}
			return
		}
		if err != nil || got != want {
			t.Fatalf("%d-byte path: %q, %v", len(want), trunc(got), err)
		}
		levels, complete, err := WalkUp(fds[len(fds)-1], 0)
		if err != nil || !complete || len(levels) != len(names)+2 { // the names, base, the tmpfs root
			t.Fatalf("WalkUp: %d levels, complete %v, %v; want %d", len(levels), complete, err, len(names)+2)
		}
	})
}

// BenchmarkLongPath: the cost of a directory's path beyond PATH_MAX (22 levels of 200 bytes),
// next to FdPath of a short one and WalkUp of the same directory.
func BenchmarkLongPath(b *testing.B) {
	root := testenv.Tmpfs(b)
	fds, _ := deepTree(b, root, repeatNames(22, 200))
	deepest := fds[len(fds)-1]
	b.Run("FdPath-short", func(b *testing.B) {
		for b.Loop() {
			if _, err := FdPath(fds[0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("LongPath-deep", func(b *testing.B) {
		for b.Loop() {
			if _, err := LongPath(deepest, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("WalkUp-deep", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := WalkUp(deepest, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}
