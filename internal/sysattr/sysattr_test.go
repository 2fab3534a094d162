//go:build linux

package sysattr

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/ftype"
	"github.com/fsnotifyd/fsnotifyd/internal/policy"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
	"github.com/fsnotifyd/fsnotifyd/internal/trust"
)

var (
	pkgOnce sync.Once
	pkgDB   *trust.DB
	pkgErr  error
)

// packages is this machine's package database, loaded once (skips where there is none).
func packages(t *testing.T) *trust.DB {
	t.Helper()
	if _, err := os.Stat(trust.DefaultDpkgDir + "/status"); err != nil {
		t.Skipf("no dpkg database: %v", err)
	}
	pkgOnce.Do(func() { pkgDB, pkgErr = trust.Load(trust.Config{Packages: true}) })
	if pkgErr != nil {
		t.Fatal(pkgErr)
	}
	return pkgDB
}

// open opens path read-only, as the kernel opens an event's descriptor.
func open(t *testing.T, path string) int {
	t.Helper()
	fd, err := sys.Open(path, sys.O_RDONLY|sys.O_LARGEFILE, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close(fd) })
	return fd
}

func fileSHA(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// realpath is path with its symbolic links resolved: what the kernel reports.
func realpath(t *testing.T, path string) string {
	t.Helper()
	p, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Skip(err)
	}
	return p
}

// A trusted binary from a package, a PIE: every attribute from its descriptor.
func TestObjectTrustedBinary(t *testing.T) {
	db := packages(t)
	path := realpath(t, "/usr/bin/ls")
	o := &Object{Fd: open(t, path), Path: path, Trust: Trust{DB: db, Verifier: trust.NewVerifier(trust.VerifierConfig{Settle: time.Nanosecond})}}
	typ, err := o.FileType()
	if err != nil || typ.Kind != ftype.ElfExecutable {
		t.Errorf("%s: type %v, %v; want elf-executable (a PIE)", path, typ, err)
	}
	trusted, err := o.Trusted()
	if err != nil || !trusted {
		t.Errorf("%s: trusted %v, %v", path, trusted, err)
	}
	sum, err := o.SHA256()
	if err != nil || sum != fileSHA(t, path) {
		t.Errorf("%s: sha256 %x, %v", path, sum, err)
	}
	fi, _ := os.Stat(path)
	if n, err := o.Size(); err != nil || n != uint64(fi.Size()) {
		t.Errorf("%s: size %d, %v; want %d", path, n, err, fi.Size())
	}
	var fs syscall.Statfs_t
	syscall.Statfs(path, &fs)
	if w, err := o.MountWritable(); err != nil || w != (fs.Flags&syscall.MS_RDONLY == 0) {
		t.Errorf("%s: mount writable %v, %v; statfs flags %#x", path, w, err, fs.Flags)
	}
	a := o.Audit(nil)
	if a.FileType != "elf-executable" || a.SHA256 != hex.EncodeToString(sum[:]) || a.Trust == nil ||
		a.Trust.Status != "trusted" || !strings.HasPrefix(a.Trust.Source, "dpkg:coreutils") || !strings.HasPrefix(a.Trust.Digest, "md5:") {
		t.Errorf("audit %+v %+v", a, a.Trust)
	}
}

// A shared object from a package: elf-shared-object, trusted.
func TestObjectSharedObject(t *testing.T) {
	db := packages(t)
	var path string
	for _, p := range []string{"/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/aarch64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"} {
		if _, err := os.Stat(p); err == nil {
			path = realpath(t, p)
			break
		}
	}
	if path == "" {
		t.Skip("no libc.so.6 where Debian puts it")
	}
	o := &Object{Fd: open(t, path), Path: path, Trust: Trust{DB: db}}
	typ, err := o.FileType()
	if err != nil || typ.Kind != ftype.ElfSharedObject {
		t.Errorf("%s: type %v, %v; want elf-shared-object", path, typ, err)
	}
	if trusted, err := o.Trusted(); err != nil || !trusted {
		t.Errorf("%s: trusted %v, %v (libc6 installed it)", path, trusted, err)
	}
}

// A copy of a trusted binary is not listed at its own path; listed in a trust file and then
// modified, it is modified: untrusted either way, and the audit says which and why.
func TestObjectModifiedCopy(t *testing.T) {
	dir := t.TempDir()
	src := realpath(t, "/usr/bin/ls")
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(dir, "ls")
	if err := os.WriteFile(cp, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cp = realpath(t, cp)
	tf := filepath.Join(dir, "local.trust")
	if err := os.WriteFile(tf, []byte(trust.FormatLine(cp, int64(len(data)), sha256.Sum256(data))+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := trust.Load(trust.Config{Files: []string{tf}})
	if err != nil {
		t.Fatal(err)
	}
	v := trust.NewVerifier(trust.VerifierConfig{Settle: time.Nanosecond})
	check := func(path, want string, trusted bool) {
		t.Helper()
		o := &Object{Fd: open(t, cp), Path: path, Trust: Trust{DB: db, Verifier: v}}
		if got, err := o.Trusted(); err != nil || got != trusted {
			t.Errorf("%s: trusted %v, %v; want %v", path, got, err, trusted)
		}
		if a := o.Audit(nil); a.Trust == nil || a.Trust.Status != want {
			t.Errorf("%s: audit %+v, want %s", path, a.Trust, want)
		}
	}
	check(cp, "trusted", true)
	check(filepath.Join(dir, "elsewhere"), "not-listed", false) // the same content at another path
	// One byte changed in place: same size, same inode.
	f, err := os.OpenFile(cp, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{data[100] ^ 1}, 100)
	f.Close()
	check(cp, "modified", false)
	o := &Object{Fd: open(t, cp), Path: cp, Trust: Trust{DB: db, Verifier: v}}
	o.Trusted()
	listed := sha256.Sum256(data)
	if a := o.Audit(nil); a.Trust.Want != "sha256:"+hex.EncodeToString(listed[:]) ||
		a.Trust.Digest != "sha256:"+a.SHA256 || a.SHA256 == hex.EncodeToString(listed[:]) {
		t.Errorf("modified: audit %+v %+v", a, a.Trust)
	}
}

// Scripts by their #! line, text, data, empty; a directory has no type, digest or size and
// is untrusted.
func TestObjectTypes(t *testing.T) {
	dir := t.TempDir()
	for name, tt := range map[string]struct {
		content string
		want    string
	}{
		"a.sh":    {"#!/bin/sh -e\necho hi\n", "script:sh"},
		"a.py":    {"#!/usr/bin/env python3\nprint(1)\n", "script:python3"},
		"plain":   {"print(1)\n", "text"},
		"bin":     {"\x00\x01\x02", "data"},
		"nothing": {"", "empty"},
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(tt.content), 0o644); err != nil {
			t.Fatal(err)
		}
		o := &Object{Fd: open(t, p), Path: p}
		if typ, err := o.FileType(); err != nil || typ.String() != tt.want {
			t.Errorf("%s: %v, %v; want %s", name, typ, err, tt.want)
		}
		if n, err := o.Size(); err != nil || n != uint64(len(tt.content)) {
			t.Errorf("%s: size %d, %v", name, n, err)
		}
		if trusted, err := o.Trusted(); err != nil || trusted {
			t.Errorf("%s: trusted %v, %v with no database", name, trusted, err)
		}
	}
	d := &Object{Fd: open(t, dir), Path: dir, Trust: Trust{DB: &trust.DB{}}}
	if _, err := d.FileType(); !errors.Is(err, policy.ErrNoValue) {
		t.Errorf("directory type: %v", err)
	}
	if _, err := d.SHA256(); !errors.Is(err, policy.ErrNoValue) {
		t.Errorf("directory sha256: %v", err)
	}
	if _, err := d.Size(); !errors.Is(err, policy.ErrNoValue) {
		t.Errorf("directory size: %v", err)
	}
}

// A read-only bind mount makes mount_writable=no for the same file that is writable
// elsewhere: it is the mount the descriptor was opened through that counts.
func TestObjectMountWritable(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	p := filepath.Join(dir, "x")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ro := t.TempDir()
	if err := sys.Mount(dir, ro, "", sys.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Unmount(ro, sys.MNT_DETACH) })
	if err := sys.Mount("", ro, "", sys.MS_BIND|sys.MS_REMOUNT|sys.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{p: true, filepath.Join(ro, "x"): false} {
		o := &Object{Fd: open(t, path), Path: path}
		if w, err := o.MountWritable(); err != nil || w != want {
			t.Errorf("%s: mount writable %v, %v; want %v", path, w, err, want)
		}
	}
}

// Hashing past the deadline is an error (the guard's on-timeout), not "untrusted".
func TestObjectDeadline(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "big")
	data := make([]byte, 8<<20)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	tf := filepath.Join(dir, "t.trust")
	os.WriteFile(tf, []byte(trust.FormatLine(p, int64(len(data)), sha256.Sum256(data))+"\n"), 0o644)
	db, err := trust.Load(trust.Config{Files: []string{tf}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	o := &Object{Fd: open(t, p), Path: p, Ctx: ctx, Trust: Trust{DB: db}}
	if trusted, err := o.Trusted(); trusted || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("past the deadline: %v, %v", trusted, err)
	}
	if a := o.Audit(nil); a.Trust == nil || a.Trust.Status != "timeout" {
		t.Errorf("audit %+v", a.Trust)
	}
	pol := mustParse(t, "allow open ** trusted=yes\ndeny open **\n")
	d := pol.Decide(&policy.Request{Path: p, Event: engine.OpenPerm, Obj: &Object{Fd: open(t, p), Path: p, Ctx: ctx, Trust: Trust{DB: db}}})
	if !d.TimedOut() || d.Verdict != engine.Deny {
		t.Errorf("decision %+v", d)
	}
	// In time, the same file is trusted.
	o = &Object{Fd: open(t, p), Path: p, Trust: Trust{DB: db}}
	if trusted, err := o.Trusted(); !trusted || err != nil {
		t.Errorf("in time: %v, %v", trusted, err)
	}
}

func mustParse(t *testing.T, text string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse("test.rules", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// This test process from /proc: what backend's readers say, and its ancestors up the chain.
func TestProcessSelf(t *testing.T) {
	p := &Process{Pid: int32(os.Getpid())}
	if uid, err := p.UID(); err != nil || uid != uint32(os.Geteuid()) {
		t.Errorf("uid %d, %v", uid, err)
	}
	exe, verified, err := p.Exe()
	self, _ := os.Executable()
	if err != nil || !verified || exe != realpath(t, self) {
		t.Errorf("exe %q %v %v; want %s", exe, verified, err, self)
	}
	if ppid, err := p.PPid(); err != nil || ppid != int32(os.Getppid()) {
		t.Errorf("ppid %d, %v", ppid, err)
	}
	anc, err := p.Ancestors()
	if err != nil || !anc.Complete || len(anc.List) == 0 || anc.List[0].Pid != int32(os.Getppid()) {
		t.Fatalf("ancestors %+v, %v", anc, err)
	}
	if !p.Read(policy.AttrAncestor) || p.Read(policy.AttrComm) {
		t.Error("Read")
	}
	// The test binary is nobody's: not trusted, and /proc/PID/exe not even opened.
	p.Trust = Trust{DB: packages(t)}
	if trusted, err := p.TrustedExe(); trusted || err != nil {
		t.Errorf("the test binary trusted: %v, %v", trusted, err)
	}
	if a, ok := p.ExeTrust(); !ok || a.Status != "not-listed" {
		t.Errorf("exe trust %+v", a)
	}
	gone := &Process{Pid: 0}
	if _, err := gone.Ancestors(); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("pid 0: %v", err)
	}
}

// A process running a package's binary has a trusted executable; one running a replaced copy
// (the file at its path is another now) does not, though the path is listed.
func TestProcessTrustedExe(t *testing.T) {
	db := packages(t)
	sleep := realpath(t, "/usr/bin/sleep")
	c := exec.Command(sleep, "600")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { c.Process.Kill(); c.Wait() }()
	waitExe(t, c.Process.Pid, sleep)
	p := &Process{Pid: int32(c.Process.Pid), Trust: Trust{DB: db}}
	if trusted, err := p.TrustedExe(); !trusted || err != nil {
		t.Fatalf("%s: trusted_exe %v, %v", sleep, trusted, err)
	}
	if a, ok := p.ExeTrust(); !ok || a.Status != "trusted" || !strings.HasPrefix(a.Source, "dpkg:coreutils") {
		t.Errorf("exe trust %+v", a)
	}

	// A copy listed in a trust file, run, then replaced at its path by a rename.
	dir := t.TempDir()
	cp := filepath.Join(dir, "sleep")
	data, _ := os.ReadFile(sleep)
	os.WriteFile(cp, data, 0o755)
	cp = realpath(t, cp)
	tf := filepath.Join(dir, "t.trust")
	os.WriteFile(tf, []byte(trust.FormatLine(cp, int64(len(data)), sha256.Sum256(data))+"\n"), 0o644)
	db2, err := trust.Load(trust.Config{Files: []string{tf}})
	if err != nil {
		t.Fatal(err)
	}
	r := exec.Command(cp, "600")
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { r.Process.Kill(); r.Wait() }()
	waitExe(t, r.Process.Pid, cp)
	if trusted, err := (&Process{Pid: int32(r.Process.Pid), Trust: Trust{DB: db2}}).TrustedExe(); !trusted || err != nil {
		t.Fatalf("the listed copy: %v, %v", trusted, err)
	}
	os.WriteFile(cp+".new", data, 0o755)
	if err := os.Rename(cp+".new", cp); err != nil {
		t.Fatal(err)
	}
	q := &Process{Pid: int32(r.Process.Pid), Trust: Trust{DB: db2}}
	if trusted, err := q.TrustedExe(); trusted || err != nil {
		t.Fatalf("a replaced executable: %v, %v (same content, but the path leads to another file now)", trusted, err)
	}
	if _, verified, _ := q.Exe(); verified {
		t.Error("the replaced executable is verified")
	}
}

// CacheOnly, TrustedExe answers from the hash cache only: ErrNotCached before the executable
// was hashed, trusted (from the cache, no byte read) after, and untrusted, with nothing read,
// once its path leads to another file; the O_PATH descriptor it identifies the file with is
// of the very executable.
func TestProcessTrustedExeCacheOnly(t *testing.T) {
	dir := t.TempDir()
	cp := filepath.Join(dir, "sleep")
	data, err := os.ReadFile(realpath(t, "/usr/bin/sleep"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(cp, data, 0o755)
	cp = realpath(t, cp)
	tf := filepath.Join(dir, "t.trust")
	os.WriteFile(tf, []byte(trust.FormatLine(cp, int64(len(data)), sha256.Sum256(data))+"\n"), 0o644)
	db, err := trust.Load(trust.Config{Files: []string{tf}})
	if err != nil {
		t.Fatal(err)
	}
	v := trust.NewVerifier(trust.VerifierConfig{Settle: time.Nanosecond})
	r := exec.Command(cp, "600")
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { r.Process.Kill(); r.Wait() }()
	waitExe(t, r.Process.Pid, cp)
	proc := func(cacheOnly bool) *Process {
		return &Process{Pid: int32(r.Process.Pid), Trust: Trust{DB: db, Verifier: v}, CacheOnly: cacheOnly}
	}
	if trusted, err := proc(true).TrustedExe(); trusted || !errors.Is(err, trust.ErrNotCached) {
		t.Fatalf("cold cache: %v, %v; want ErrNotCached", trusted, err)
	}
	if trusted, err := proc(false).TrustedExe(); !trusted || err != nil {
		t.Fatalf("hashed: %v, %v", trusted, err)
	}
	hashes := v.Stats().Hashes
	p := proc(true)
	if trusted, err := p.TrustedExe(); !trusted || err != nil {
		t.Fatalf("warm cache: %v, %v", trusted, err)
	}
	if a, ok := p.ExeTrust(); !ok || a.Status != "trusted" || v.Stats().Hashes != hashes || v.Stats().Hits == 0 {
		t.Fatalf("warm cache: exe trust %+v, stats %+v; want trusted from the cache", a, v.Stats())
	}
	// Replaced at its path (same content, another file): untrusted, nothing hashed.
	os.WriteFile(cp+".new", data, 0o755)
	if err := os.Rename(cp+".new", cp); err != nil {
		t.Fatal(err)
	}
	if trusted, err := proc(true).TrustedExe(); trusted || err != nil {
		t.Fatalf("replaced: %v, %v; want untrusted", trusted, err)
	}
	if v.Stats().Hashes != hashes {
		t.Fatalf("stats %+v: cache-only hashed", v.Stats())
	}
}

// waitExe waits until pid runs path (after its execve).
func waitExe(t *testing.T, pid int, path string) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && l == path {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("process %d does not run %s", pid, path)
}

// The policy over the real system: the allowlist rules on real files and this process.
func TestPolicyOverTheSystem(t *testing.T) {
	db := packages(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "x.py")
	os.WriteFile(script, []byte("#!/usr/bin/python3\nprint(1)\n"), 0o755)
	script = realpath(t, script)
	ls := realpath(t, "/usr/bin/ls")
	pol := mustParse(t, `
deny exec ** ftype=elf-executable,script* trusted=no
deny open ** ftype=script:python* trusted=no
`)
	v := trust.NewVerifier(trust.VerifierConfig{Settle: time.Nanosecond})
	decide := func(path string, ev engine.Mask) (policy.Decision, *Object) {
		o := &Object{Fd: open(t, path), Path: path, Trust: Trust{DB: db, Verifier: v}}
		return pol.Decide(&policy.Request{Path: path, Event: ev, Pid: int32(os.Getpid()), Proc: &Process{Pid: int32(os.Getpid())}, Obj: o}), o
	}
	if d, _ := decide(ls, engine.OpenExecPerm); d.Verdict != engine.Allow || d.Err != nil {
		t.Errorf("exec %s: %+v", ls, d)
	}
	if d, o := decide(script, engine.OpenExecPerm); d.Verdict != engine.Deny || d.Source() != "test.rules:2" || !o.Read(policy.AttrTrusted) {
		t.Errorf("exec %s: %+v", script, d)
	}
	if d, _ := decide(script, engine.OpenPerm); d.Verdict != engine.Deny || d.Source() != "test.rules:3" {
		t.Errorf("open %s: %+v", script, d)
	}
	// A library opened for reading: no rule on it, and its content never hashed.
	if d, o := decide(ls, engine.OpenPerm); d.Verdict != engine.Allow || o.Read(policy.AttrTrusted) {
		t.Errorf("open %s: %+v (hashed: %v)", ls, d, o.Read(policy.AttrTrusted))
	}
}

// TestObjectSHA256Unverifiable: what a file's writer controls makes its sha256 unverifiable
// (policy.ErrUnverifiable, a condition that may hold), never the deadline or an error: the file
// open for writing, and, at the guard's late point (Late), a digest not in the hash cache, at
// once. A hash that its ctx cuts, or a request already past it, is a timeout (the guard then
// decides at its late point), within its bound.
func TestObjectSHA256Unverifiable(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 64<<30); err != nil {
		t.Fatal(err)
	}
	soon := func(d time.Duration) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		t.Cleanup(cancel)
		return ctx
	}
	for _, tc := range []struct {
		name    string
		path    string
		timeout time.Duration      // the request's deadline, from SHA256's call
		late    bool               // Object.Late
		prepare func(t *testing.T) // before SHA256
		want    string             // in the error; "" for a timeout
		within  [2]time.Duration   // how long SHA256 may take
	}{
		{"open for writing", small, 5 * time.Second, false, func(t *testing.T) {
			w, err := os.OpenFile(small, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { w.Close() })
		}, "open for writing", [2]time.Duration{0, time.Second}},
		{"late, not in the hash cache", big, 5 * time.Second, true, nil, "not hashed: decided at the guard's late point", [2]time.Duration{0, 100 * time.Millisecond}},
		{"cut by its ctx", big, time.Second, false, nil, "", [2]time.Duration{time.Second, 1300 * time.Millisecond}},
		{"past the deadline", big, -time.Second, false, nil, "", [2]time.Duration{0, 100 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.prepare != nil {
				tc.prepare(t)
			}
			o := &Object{Fd: open(t, tc.path), Path: tc.path, Ctx: soon(tc.timeout), Late: tc.late}
			t0 := time.Now()
			_, err := o.SHA256()
			took := time.Since(t0)
			if took < tc.within[0] || took > tc.within[1] {
				t.Errorf("took %v, want %v to %v", took, tc.within[0], tc.within[1])
			}
			if tc.want == "" {
				if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, policy.ErrUnverifiable) {
					t.Fatalf("err %v, want the deadline's", err)
				}
				return
			}
			if !errors.Is(err, policy.ErrUnverifiable) || !strings.Contains(err.Error(), tc.want) || errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err %v, want policy.ErrUnverifiable saying %q", err, tc.want)
			}
			if a := o.Audit(nil); a.SHA256 != "" || !strings.Contains(a.SHA256Unverifiable, tc.want) {
				t.Errorf("audit %+v", a)
			}
		})
	}
	// With none of these, the digest.
	o := &Object{Fd: open(t, small), Path: small, Ctx: soon(5 * time.Second)}
	if sum, err := o.SHA256(); err != nil || sum != sha256.Sum256([]byte("#!/bin/sh\nexit 0\n")) {
		t.Errorf("SHA256 = %x, %v", sum, err)
	}
}

// Nameless: a regular file with no link and size 0 (an O_TMPFILE, an unlinked empty file) on
// a filesystem that keeps its size itself (tmpfs, ext4); not once written, not linked, not a
// directory, and never on ramfs (not in sys.WritesSeen's list: the rule takes no filesystem
// it has not been shown for).
func TestObjectNameless(t *testing.T) {
	testenv.RequireRoot(t)
	for _, fs := range []struct {
		name string
		dir  string
		want bool
	}{{"tmpfs", testenv.Tmpfs(t), true}, {"ext4", testenv.Ext4(t, 16), true}, {"ramfs", testenv.PublicRamfs(t), false}} {
		nameless := func(fd int) bool { o := Object{Fd: fd}; return o.Nameless() }
		tmp, err := syscall.Open(fs.dir, syscall.O_RDWR|0o20200000, 0o600) // O_TMPFILE (with O_DIRECTORY)
		if err != nil {
			t.Fatal(err)
		}
		if got := nameless(tmp); got != fs.want {
			t.Errorf("%s: empty O_TMPFILE: Nameless %v, want %v", fs.name, got, fs.want)
		}
		syscall.Write(tmp, []byte("x"))
		if nameless(tmp) {
			t.Errorf("%s: O_TMPFILE with content: Nameless", fs.name)
		}
		syscall.Close(tmp)
		f, err := os.Create(filepath.Join(fs.dir, "linked"))
		if err != nil {
			t.Fatal(err)
		}
		if nameless(int(f.Fd())) {
			t.Errorf("%s: an empty linked file: Nameless", fs.name)
		}
		f.Close()
		d, err := os.Open(fs.dir)
		if err != nil {
			t.Fatal(err)
		}
		if nameless(int(d.Fd())) {
			t.Errorf("%s: a directory: Nameless", fs.name)
		}
		d.Close()
	}
}
