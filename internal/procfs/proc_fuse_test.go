//go:build linux

package procfs

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// hangFS is a FUSE filesystem with one executable, prog, whose lookups and getattrs block
// while hang is set, until release is closed: a FUSE daemon that stops answering, as a local
// user's may.
type hangFS struct {
	fs.Inode
	data    []byte
	hang    atomic.Bool
	release chan struct{}
}

type hangProg struct {
	fs.Inode
	root *hangFS
}

func (r *hangFS) OnAdd(ctx context.Context) {
	r.AddChild("prog", r.NewPersistentInode(ctx, &hangProg{root: r}, fs.StableAttr{Mode: syscall.S_IFREG}), false)
}

func (r *hangFS) wait() {
	if r.hang.Load() {
		<-r.release
	}
}

func (r *hangFS) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	r.wait()
	out.Mode = syscall.S_IFDIR | 0o755
	return 0
}

func (p *hangProg) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	p.root.wait()
	out.Mode = syscall.S_IFREG | 0o755
	out.Size = uint64(len(p.root.data))
	return 0
}

func (p *hangProg) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, fuse.FOPEN_KEEP_CACHE, 0
}

func (p *hangProg) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	end := min(off+int64(len(dest)), int64(len(p.root.data)))
	if off >= end {
		return fuse.ReadResultData(nil), 0
	}
	return fuse.ReadResultData(p.root.data[off:end]), 0
}

// ReadExe never asks the executable's filesystem: a process that runs a program from a
// FUSE mount whose daemon stopped answering is read at once (unverified), where a stat of the
// same path waits for the daemon.
func TestReadProcessExeNeverAsksTheFilesystem(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no FUSE: %v", err)
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	root := &hangFS{data: data, release: make(chan struct{})}
	mnt := filepath.Join(t.TempDir(), "fuse")
	os.Mkdir(mnt, 0o755)
	zero := time.Duration(0)
	server, err := fs.Mount(mnt, root, &fs.Options{EntryTimeout: &zero, AttrTimeout: &zero,
		MountOptions: fuse.MountOptions{DirectMountStrict: true, FsName: "fsnotifyd-test", Name: "hangfs"}})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() { once.Do(func() { close(root.release) }) }
	t.Cleanup(func() {
		release()
		server.Unmount()
		server.Wait()
	})
	prog := filepath.Join(mnt, "prog")
	// Through sh: this process serves the FUSE requests, and Go's fork waits (vfork) for the
	// child's execve, during which a stop-the-world would freeze the server the execve waits
	// for. sh's execve is not on the FUSE mount.
	c := exec.Command("sh", "-c", `exec "$0" 600`, prog)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	pid := int32(c.Process.Pid)
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if l, _ := os.Readlink("/proc/" + itoa(pid) + "/exe"); l == prog {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the program from the FUSE mount did not start")
		}
	}

	root.hang.Store(true)
	// Asking the filesystem now waits (so the test can tell).
	st := exec.Command("stat", prog)
	if err := st.Start(); err != nil {
		t.Fatal(err)
	}
	stDone := make(chan struct{})
	go func() { st.Wait(); close(stDone) }()
	t.Cleanup(func() { release(); <-stDone }) // a FUSE wait ends with the daemon's answer only
	select {
	case <-stDone:
		t.Fatal("stat of the path did not wait for the FUSE daemon: the test cannot tell")
	case <-time.After(300 * time.Millisecond):
	}

	type res struct {
		exe      string
		verified bool
		err      error
	}
	got := make(chan res, 1)
	go func() {
		exe, v, err := ReadExe(pid)
		got <- res{exe, v, err}
	}()
	select {
	case r := <-got:
		if r.err != nil || r.exe != prog || r.verified {
			t.Errorf("ReadExe = %q, %v, %v; want %q, unverified", r.exe, r.verified, r.err, prog)
		}
	case <-time.After(3 * time.Second):
		release() // let the stuck read finish, so the test ends
		<-got
		t.Fatal("ReadExe waited for the FUSE daemon")
	}
}

func itoa(pid int32) string { return strconv.Itoa(int(pid)) }
