//go:build linux

package main

import (
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

const hardlinksSysctlPath = "/proc/sys/fs/protected_hardlinks"

// setHardlinks sets fs.protected_hardlinks to v for as long as the test needs it and puts
// back what it was at cleanup (and returns a func that puts it back early).
func setHardlinks(t *testing.T, v string) (restore func()) {
	t.Helper()
	old, err := os.ReadFile(hardlinksSysctlPath)
	if err != nil {
		t.Skip("fs.protected_hardlinks cannot be read: ", err)
	}
	var once sync.Once
	restore = func() {
		once.Do(func() {
			if err := os.WriteFile(hardlinksSysctlPath, old, 0o644); err != nil {
				t.Errorf("putting fs.protected_hardlinks back to %s: %v", strings.TrimSpace(string(old)), err)
			}
		})
	}
	t.Cleanup(restore)
	if err := os.WriteFile(hardlinksSysctlPath, []byte(v+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return restore
}

// TestGuardLinksSymlinksAndHeldDescriptorsAsNobody: as nobody, on a public tmpfs and an ext4
// image, with and without --cache, a file that `deny open G/secret/**` keeps closed (and
// nobody's own files once moved into G/secret, a sticky 1777 directory) is reached in every
// way a name can be had without a permission event of its own:
//
//   - a chain of three symbolic links (absolute and relative) from nobody's directory: EPERM;
//   - open_by_handle_at of a handle of the secret: EPERM (the kernel's: it needs
//     CAP_DAC_READ_SEARCH);
//   - nobody's directory moved in after nobody took an O_PATH descriptor of a file in it, a
//     read-only and an O_PATH descriptor of the directory: the re-open through
//     /proc/self/fd/N, openat of each directory descriptor, and a path through the
//     directory's /proc/self/fd link are each EPERM; a descriptor opened before the move
//     still reads (docs/security.md: a descriptor is decided once, at open);
//   - the directory moved in and out 100 times while another goroutine opens a file in it
//     through its directory descriptor without pause: no open that began and ended while
//     the directory stood inside was allowed, none while it stood outside was refused;
//   - a directory deeper than PATH_MAX in nobody's directory inside the tree, listed, its
//     top moved into G/secret and the directory listed at once through its descriptor, 20
//     times: each listing after the move EPERM;
//   - hard links, fs.protected_hardlinks=1: nobody cannot link root's 0644 secret (EPERM) nor
//     root's pinned file that --cache allowed (then opened 20 times); root's 0666 file, which
//     nobody may read and write, they can link out, and the outside name opens (the limit
//     "Hard links out of a tree"); nobody's own file linked into G/secret is denied there;
//   - fs.protected_hardlinks=0 (set for this step, past the guard's one-second poll): nobody
//     links root's secret out (the limit), and root's pinned file whose allow was cached into
//     G/secret — the open under that name is denied: the cached allow is not served.
//
// The guarded names stay denied throughout.
func TestGuardLinksSymlinksAndHeldDescriptorsAsNobody(t *testing.T) {
	for _, fs := range []string{"tmpfs", "ext4"} {
		for _, cache := range []bool{false, true} {
			name := fs
			if cache {
				name += ",cache"
			}
			t.Run(name, func(t *testing.T) {
				var root string
				if fs == "tmpfs" {
					root = testenv.PublicTmpfs(t)
				} else {
					root, _ = testenv.PublicExt4Image(t, 32)
					sh(t, "chmod 0755 "+root)
				}
				g := root + "/g"
				sh(t, "mkdir -p "+g+"/secret "+g+"/pub "+root+"/out && chmod 1777 "+g+"/secret && chown 65534:65534 "+root+"/out"+
					" && mkdir "+g+"/pub/n && chown 65534:65534 "+g+"/pub/n && echo s > "+g+"/secret/k && echo w > "+g+"/secret/w && chmod 0666 "+g+"/secret/w && echo f > "+g+"/pub/f")
				args := []string{"guard", "--deny", g + "/secret/**"}
				if cache {
					args = append(args, "--cache")
				}
				p := start(t, append(args, g)...)
				t.Setenv("FSN_LINKS_ROOT", root)
				child := func(step string) {
					t.Helper()
					t.Setenv("FSN_LINKS_STEP", step)
					out, err := testenv.RunTestAs(t, 65534, 65534, "TestGuardLinksChild")
					if i := strings.Index(out, "concurrent opens"); i >= 0 {
						t.Log(strings.SplitN(out[i:], "\n", 2)[0])
					}
					if err != nil || !strings.Contains(out, "--- PASS: TestGuardLinksChild") {
						t.Errorf("step %s as nobody: %v\n%s", step, err, out)
					}
				}
				restore := setHardlinks(t, "1")
				child("moves")
				child("deep")
				child("links1")
				setHardlinks(t, "0")
				time.Sleep(1500 * time.Millisecond) // the guard polls the sysctl once a second
				child("links0")
				restore()
				for _, path := range []string{g + "/secret/k", g + "/secret/w"} {
					if !denied(nobody, path) {
						t.Errorf("%s opened at the end", path)
					}
				}
				if st := p.stop(); st != 0 {
					t.Errorf("guard exit %d; stderr:\n%s", st, p.errText())
				}
			})
		}
	}
}

// TestGuardLinksChild is TestGuardLinksSymlinksAndHeldDescriptorsAsNobody's side as nobody.
func TestGuardLinksChild(t *testing.T) {
	if !testenv.IsChild() {
		t.Skip("run by TestGuardLinksSymlinksAndHeldDescriptorsAsNobody")
	}
	root := os.Getenv("FSN_LINKS_ROOT")
	g, out, secret := root+"/g", root+"/out", root+"/g/secret"
	mustOpen := func(what string, fd int, err error, want error) {
		t.Helper()
		if fd >= 0 && err == nil {
			sys.Close(fd)
		}
		if !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Errorf("%s: %v, want %v", what, err, want)
		}
	}
	open := func(path string) (int, error) { return sys.Open(path, sys.O_RDONLY|sys.O_CLOEXEC, 0) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	switch os.Getenv("FSN_LINKS_STEP") {
	case "moves":
		must(os.MkdirAll(out+"/l", 0o755))
		must(os.Symlink(secret+"/k", out+"/l/c"))
		must(os.Symlink("c", out+"/l/b"))
		must(os.Symlink(out+"/l/b", out+"/l/a"))
		must(os.Symlink("../g/secret/k", out+"/rel"))
		for _, l := range []string{out + "/l/a", out + "/rel"} {
			fd, err := open(l)
			mustOpen("open through the symbolic links "+l, fd, err, syscall.EPERM)
		}
		// A file handle: open_by_handle_at needs CAP_DAC_READ_SEARCH, which nobody has.
		h, _, err := sys.NameToHandleAt(sys.AT_FDCWD, secret+"/k", 0)
		must(err)
		mfd, err := sys.Open(g, sys.O_RDONLY|sys.O_DIRECTORY|sys.O_CLOEXEC, 0)
		must(err)
		fd, err := sys.OpenByHandleAt(mfd, h, sys.O_RDONLY|sys.O_CLOEXEC)
		mustOpen("open_by_handle_at of the secret", fd, err, syscall.EPERM)
		sys.Close(mfd)
		// Descriptors taken outside, then the directory moved in.
		must(os.MkdirAll(out+"/t", 0o755))
		must(os.WriteFile(out+"/t/x", []byte("x"), 0o644))
		held, err := open(out + "/t/x")
		must(err)
		defer sys.Close(held)
		px, err := sys.Open(out+"/t/x", sys.O_PATH|sys.O_CLOEXEC, 0)
		must(err)
		dfd, err := sys.Open(out+"/t", sys.O_RDONLY|sys.O_DIRECTORY|sys.O_CLOEXEC, 0)
		must(err)
		pdfd, err := sys.Open(out+"/t", sys.O_PATH|sys.O_DIRECTORY|sys.O_CLOEXEC, 0)
		must(err)
		must(os.Rename(out+"/t", secret+"/t"))
		fd, err = open(testenv.ProcFd(px))
		mustOpen("re-open of an O_PATH descriptor taken outside", fd, err, syscall.EPERM)
		for _, d := range []int{dfd, pdfd} {
			fd, err := sys.Openat(d, "x", sys.O_RDONLY|sys.O_CLOEXEC, 0)
			mustOpen("openat of a directory descriptor taken outside", fd, err, syscall.EPERM)
			fd, err = open(testenv.ProcFd(d) + "/x")
			mustOpen("open through /proc/self/fd of a directory descriptor taken outside", fd, err, syscall.EPERM)
		}
		if n, err := sys.Pread(held, make([]byte, 1), 0); n != 1 || err != nil {
			t.Errorf("a descriptor opened before the move no longer reads (%d, %v): the documented limit changed", n, err)
		}
		// The directory moved in and out while another goroutine opens through its descriptor.
		must(os.MkdirAll(out+"/c", 0o755))
		must(os.WriteFile(out+"/c/y", []byte("y"), 0o644))
		cfd, err := sys.Open(out+"/c", sys.O_PATH|sys.O_DIRECTORY|sys.O_CLOEXEC, 0)
		must(err)
		var phase atomic.Int64 // 4k: outside; 4k+2: inside; odd: moving
		var stop atomic.Bool
		var wrong, inside, outside atomic.Int64
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				before := phase.Load()
				fd, err := sys.Openat(cfd, "y", sys.O_RDONLY|sys.O_CLOEXEC, 0)
				if err == nil {
					sys.Close(fd)
				}
				if phase.Load() != before || before%2 == 1 {
					continue
				}
				if before%4 == 2 {
					inside.Add(1)
					if err == nil {
						wrong.Add(1)
					}
				} else {
					outside.Add(1)
					if err != nil {
						wrong.Add(1)
					}
				}
			}
		}()
		for i := 0; i < 100; i++ {
			phase.Add(1)
			must(os.Rename(out+"/c", secret+"/c"))
			phase.Add(1)
			fd, err := sys.Openat(cfd, "y", sys.O_RDONLY|sys.O_CLOEXEC, 0)
			mustOpen("openat right after the move in", fd, err, syscall.EPERM)
			phase.Add(1)
			must(os.Rename(secret+"/c", out+"/c"))
			phase.Add(1)
			fd, err = sys.Openat(cfd, "y", sys.O_RDONLY|sys.O_CLOEXEC, 0)
			mustOpen("openat right after the move out", fd, err, nil)
		}
		stop.Store(true)
		wg.Wait()
		if wrong.Load() != 0 {
			t.Errorf("%d of the concurrent opens (%d inside, %d outside) got the other side's verdict", wrong.Load(), inside.Load(), outside.Load())
		}
		t.Logf("concurrent opens: %d inside, %d outside", inside.Load(), outside.Load())
	case "deep":
		// A directory deeper than PATH_MAX, placed by its long path: listed in nobody's
		// directory inside the tree, then its top moved into the denied directory and
		// listed at once through a descriptor, 20 times.
		d := testenv.DeepTree(t, g+"/pub/n", 22, 200)
		top := d.Top
		for i := 0; i < 20; i++ {
			fd, err := sys.Openat(d.Fd, ".", sys.O_RDONLY|sys.O_DIRECTORY|sys.O_CLOEXEC, 0)
			mustOpen("the deep directory in nobody's directory", fd, err, nil)
			must(os.Rename(top, secret+"/top"))
			fd, err = sys.Openat(d.Fd, ".", sys.O_RDONLY|sys.O_DIRECTORY|sys.O_CLOEXEC, 0)
			mustOpen("the deep directory right after its top moved into the denied directory", fd, err, syscall.EPERM)
			must(os.Rename(secret+"/top", top))
		}
	case "links1":
		for i := 0; i < 20; i++ { // allowed, and with --cache cached
			fd, err := open(g + "/pub/f")
			mustOpen("open of root's allowed file", fd, err, nil)
		}
		for _, c := range []struct{ from, to string }{{secret + "/k", out + "/k1"}, {g + "/pub/f", secret + "/f1"}} {
			if err := os.Link(c.from, c.to); !errors.Is(err, syscall.EPERM) {
				t.Errorf("nobody's link of root's %s with fs.protected_hardlinks=1: %v, want EPERM", c.from, err)
			}
		}
		if err := os.Rename(g+"/pub/f", secret+"/f1"); !errors.Is(err, syscall.EACCES) {
			t.Errorf("nobody's rename of root's %s/pub/f: %v, want EACCES", g, err)
		}
		must(os.Link(secret+"/w", out+"/w1")) // read and write permission: may link
		fd, err := open(out + "/w1")
		mustOpen("the outside name of root's 0666 file (the documented limit)", fd, err, nil)
		must(os.WriteFile(out+"/own", []byte("o"), 0o644))
		must(os.Link(out+"/own", secret+"/own"))
		fd, err = open(secret + "/own")
		mustOpen("nobody's file linked into the denied directory", fd, err, syscall.EPERM)
	case "links0":
		must(os.Link(secret+"/k", out+"/k0"))
		fd, err := open(out + "/k0")
		mustOpen("the outside name of root's secret with fs.protected_hardlinks=0 (the documented limit)", fd, err, nil)
		must(os.Link(g+"/pub/f", secret+"/f0"))
		fd, err = open(secret + "/f0")
		mustOpen("root's cached file linked into the denied directory", fd, err, syscall.EPERM)
	}
	for _, path := range []string{secret + "/k", secret + "/w"} {
		fd, err := open(path)
		mustOpen("the guarded name "+path, fd, err, syscall.EPERM)
	}
}
