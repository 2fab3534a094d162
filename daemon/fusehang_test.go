//go:build linux

package daemon_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// stallFS is a FUSE filesystem with one file, f, whose statfs waits while stall is set (after
// answering the first after: statfs once more before it waits), until release is closed: a
// FUSE daemon of a local user's that stops answering some requests.
type stallFS struct {
	fs.Inode
	stall   atomic.Bool
	after   atomic.Int32
	release chan struct{}
}

// stallFile is f: the kernel asks a file's own node for the statfs of its descriptor.
type stallFile struct {
	fs.MemRegularFile
	root *stallFS
}

func (f *stallFile) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return f.root.Statfs(ctx, out)
}

func (r *stallFS) OnAdd(ctx context.Context) {
	f := &stallFile{MemRegularFile: fs.MemRegularFile{Data: []byte("x"), Attr: fuse.Attr{Mode: 0o644}}, root: r}
	r.AddChild("f", r.NewPersistentInode(ctx, f, fs.StableAttr{Mode: syscall.S_IFREG}), false)
}

func (r *stallFS) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFDIR | 0o755
	return 0
}

func (r *stallFS) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	if r.stall.Load() && r.after.Add(-1) < 0 {
		<-r.release
	}
	return 0
}

// TestStalledFilesystemHoldsUpNoOneElse: an unprivileged client marks a file on a FUSE
// filesystem (as a user may mount one with fusermount) whose daemon stops answering statfs, at
// once or after one answer; meanwhile root's client marks a file elsewhere. Root's request
// must not wait for the FUSE daemon, and the user's is refused (permission): no lock that
// others' requests take is held while the FUSE daemon is asked. Before, the backend called
// statfs(2) with the lock every mark change, every client's close and Close take ("at once"),
// and so did the kernel's fanotify_mark, which the backend calls with that lock held
// ("later"): one user's FUSE daemon held up every client's marks (a guard's start and reloads,
// every client's close, the daemon's stop) for as long as it liked.
func TestStalledFilesystemHoldsUpNoOneElse(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no FUSE: %v", err)
	}
	// At once: the first statfs waits; later: the one after the first.
	for _, after := range []int32{0, 1} {
		t.Run(map[int32]string{0: "at once", 1: "later"}[after], func(t *testing.T) { stalledFilesystem(t, after) })
	}
}

func stalledFilesystem(t *testing.T, after int32) {
	scratch := testenv.Tmpfs(t)
	openUp(t, scratch)
	root := &stallFS{release: make(chan struct{})}
	mnt := filepath.Join(scratch, "fuse")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	zero := time.Duration(0)
	server, err := fs.Mount(mnt, root, &fs.Options{EntryTimeout: &zero, AttrTimeout: &zero,
		MountOptions: fuse.MountOptions{DirectMountStrict: true, AllowOther: true, FsName: "fsnotifyd-test", Name: "stallfs"}})
	if err != nil {
		t.Skipf("mounting a FUSE filesystem: %v", err)
	}
	var once sync.Once
	release := func() { once.Do(func() { close(root.release) }) }
	t.Cleanup(func() {
		release()
		server.Unmount()
		server.Wait()
	})
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	startDaemon(t, testConfig(), sock)
	t.Cleanup(release) // before the daemon stops
	admin := dialClient(t, sock, "name=root,quiet=1", spawnOpts{})
	mustAdd(t, admin, kindInode, maskOpen, scratch) // the daemon's first use of its kernel groups

	p := dialClient(t, sock, "name=nobody,quiet=1", nobody)
	root.after.Store(after)
	root.stall.Store(true)
	p.send("add %s %s %s", kindInode, maskOpen, filepath.Join(mnt, "f"))
	// At once, the mark waits for the first statfs, whoever asks it; later, it is refused
	// after one (now), or waits for the second, wherever it is asked (before: in the kernel's
	// fanotify_mark, under the backend's lock).
	nobodyLine, nobodyDone := p.waitLine("add-", 300*time.Millisecond)
	if nobodyDone && after == 0 {
		t.Fatalf("the mark on the stalled filesystem did not wait for its statfs (%q): the test cannot tell", nobodyLine)
	}
	other := filepath.Join(scratch, "other")
	if err := os.WriteFile(other, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	admin.send("add %s %s %s", kindInode, maskOpen, other)
	l, ok := admin.waitLine("add-", 5*time.Second)
	took := time.Since(start)
	release()
	if !ok {
		t.Fatalf("root's mark on %s waited more than 5 s for uid 65534's FUSE daemon", other)
	}
	if !strings.HasPrefix(l, "add-ok") {
		t.Errorf("root's mark: %q", l)
	}
	t.Logf("root's mark took %v while uid 65534's waited for its FUSE daemon", took.Round(time.Microsecond))
	if !nobodyDone {
		nobodyLine, nobodyDone = p.waitLine("add-", hang)
	}
	if l := nobodyLine; !nobodyDone {
		t.Errorf("uid 65534's mark did not end once its FUSE daemon answered")
	} else if !strings.HasPrefix(l, "add-err permission ") || !strings.Contains(l, "is on a FUSE filesystem") {
		t.Errorf("uid 65534's mark on a FUSE filesystem: %q, want a permission error", l)
	}
}
