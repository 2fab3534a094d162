package trust

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
	"github.com/fsnotifyd/fsnotifyd/internal/workslot"
)

// trustFile writes a trust file in dir listing each path as it is now, and returns its name.
func trustFile(t *testing.T, dir string, paths ...string) string {
	t.Helper()
	var b strings.Builder
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(FormatLine(p, int64(len(data)), sha256.Sum256(data)) + "\n")
	}
	name := filepath.Join(dir, "t.trust")
	must(t, os.WriteFile(name, []byte(b.String()), 0o644))
	return name
}

func loadFiles(t *testing.T, files ...string) *DB {
	t.Helper()
	db, err := Load(Config{Files: files})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func openFd(t *testing.T, p string) (*os.File, int) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, int(f.Fd())
}

func TestVerifyTrustFileAndCache(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "tool")
	must(t, os.WriteFile(bin, []byte("#!/bin/sh\necho tool\n"), 0o755))
	db := loadFiles(t, trustFile(t, dir, bin))
	v := NewVerifier(VerifierConfig{Settle: testSettle})
	f, fd := openFd(t, bin)
	f.Seek(3, 0)
	ctx := context.Background()

	res, err := v.Verify(ctx, db, bin, fd)
	if err != nil || !res.Trusted() || res.Cached || res.Entry.Source.Line != 1 || res.Actual != res.Entry.Digest ||
		res.Sums.Have != SHA256 {
		t.Fatalf("first verify: %v %+v %v", res, res, err)
	}
	if off, _ := f.Seek(0, 1); off != 3 {
		t.Fatalf("Verify moved the descriptor's offset to %d", off)
	}
	// A second exec of the same binary: no hashing.
	res, err = v.Verify(ctx, db, bin, fd)
	if err != nil || !res.Trusted() || !res.Cached {
		t.Fatalf("second verify: %v %v", res, err)
	}
	if st := v.Stats(); st.Hashes != 1 || st.Hits != 1 || st.Cached != 1 {
		t.Fatalf("stats %+v, want 1 hash and 1 hit", st)
	}
	// Another path: not listed, nothing read (not even the descriptor).
	if res, err := v.Verify(ctx, db, bin+"2", -1); err != nil || res.Status != NotListed || res.Trusted() {
		t.Fatalf("unlisted: %v %v", res, err)
	}
	// Modified in place, same size: a miss, and Modified.
	must(t, os.WriteFile(bin, []byte("#!/bin/sh\necho evil\n"), 0o755))
	res, err = v.Verify(ctx, db, bin, fd)
	if err != nil || res.Status != Modified || res.Cached || res.Actual.Algo != SHA256 || res.Actual == res.Entry.Digest {
		t.Fatalf("after a same-size write: %v %v", res, err)
	}
	// A different size is Modified without hashing.
	must(t, os.WriteFile(bin, []byte("longer content than before\n"), 0o755))
	hashes := v.Stats().Hashes
	res, err = v.Verify(ctx, db, bin, fd)
	if err != nil || res.Status != Modified || res.Actual.Algo != 0 || v.Stats().Hashes != hashes {
		t.Fatalf("after a size change: %v %v (hashes %d -> %d)", res, err, hashes, v.Stats().Hashes)
	}
}

// TestVerifyNeverReopensThePath: the content is read from the descriptor. A file unlinked and
// replaced after it was opened is judged by what the descriptor holds.
func TestVerifyNeverReopensThePath(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "tool")
	must(t, os.WriteFile(bin, []byte("good"), 0o755))
	db := loadFiles(t, trustFile(t, dir, bin))
	_, fd := openFd(t, bin)
	must(t, os.Remove(bin))
	must(t, os.WriteFile(bin, []byte("evil"), 0o755))
	v := NewVerifier(VerifierConfig{Settle: testSettle})
	if res, err := v.Verify(context.Background(), db, bin, fd); err != nil || !res.Trusted() {
		t.Fatalf("the opened file: %v %v", res, err)
	}
	_, fd2 := openFd(t, bin)
	if res, err := v.Verify(context.Background(), db, bin, fd2); err != nil || res.Status != Modified {
		t.Fatalf("the replacement: %v %v", res, err)
	}
}

// TestVerifyOnePassForBoth: a path with a dpkg entry (md5) and a trust-file entry (sha256) is
// hashed once, both digests in the same read.
func TestVerifyOnePassForBoth(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	content := strings.Repeat("x", 300000)
	must(t, os.WriteFile(p, []byte(content), 0o644))
	md := md5.Sum([]byte(content))
	entries := []Entry{
		{Path: p, Size: -1, Digest: Digest{Algo: MD5}, Source: Source{Kind: FromPackage, Package: "pkg"}},
		{Path: p, Size: int64(len(content)), Digest: Digest{Algo: SHA256, Sum: sha256.Sum256([]byte("other"))}, Source: Source{Kind: FromFile, File: "x", Line: 1}},
	}
	copy(entries[0].Digest.Sum[:], md[:])
	v := NewVerifier(VerifierConfig{Settle: testSettle, ChunkSize: 4096})
	reads := 0
	v.afterChunk = func(int64) { reads++ }
	_, fd := openFd(t, p)
	res, err := v.VerifyEntries(context.Background(), entries, fd)
	if err != nil || !res.Trusted() || res.Entry.Source.Package != "pkg" || res.Sums.Have != MD5|SHA256 ||
		res.Sums.SHA256 != sha256.Sum256([]byte(content)) {
		t.Fatalf("%v %+v %v", res, res.Sums, err)
	}
	if want := (len(content) + 4095) / 4096; reads != want || v.Stats().Hashes != 1 {
		t.Fatalf("%d reads, %d hashes; want %d reads in one pass", reads, v.Stats().Hashes, want)
	}
	// Asking for sha256 again is a cache hit; the cache keeps both.
	s, err := v.Sums(context.Background(), fd, SHA256|MD5)
	if err != nil || s != res.Sums || reads != (len(content)+4095)/4096 {
		t.Fatalf("Sums after Verify: %+v %v (reads %d)", s, err, reads)
	}
}

// TestHashStreamsAndStopsAtDeadline: an 8 GiB sparse file is hashed in chunks (memory stays
// flat) and the deadline stops it.
func TestHashStreamsAndStopsAtDeadline(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big")
	f, err := os.Create(p)
	must(t, err)
	must(t, f.Truncate(8<<30))
	f.Close()
	_, fd := openFd(t, p)
	v := NewVerifier(VerifierConfig{Settle: testSettle})
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	entries := []Entry{{Path: p, Size: -1, Digest: Digest{Algo: MD5}}}
	res, err := v.VerifyEntries(ctx, entries, fd)
	took := time.Since(t0)
	runtime.ReadMemStats(&m1)
	if !errors.Is(err, context.DeadlineExceeded) || res.Status != Unverifiable || res.Trusted() {
		t.Fatalf("%v %v", res, err)
	}
	if took > 2*time.Second {
		t.Fatalf("stopped %v after a 100ms deadline", took)
	}
	if grew := m1.TotalAlloc - m0.TotalAlloc; grew > 4<<20 {
		t.Fatalf("hashing allocated %d bytes: it does not stream", grew)
	}
	if st := v.Stats(); st.Cached != 0 || st.Hashes != 0 {
		t.Fatalf("an unfinished hash was counted or cached: %+v", st)
	}
	t.Logf("stopped %v after the start, %d KiB allocated", took, (m1.TotalAlloc-m0.TotalAlloc)>>10)
}

func TestVerifyNotRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	must(t, syscall.Mkfifo(fifo, 0o644))
	fd, err := syscall.Open(fifo, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	must(t, err)
	defer syscall.Close(fd)
	v := NewVerifier(VerifierConfig{Settle: testSettle})
	entries := []Entry{{Path: fifo, Size: -1, Digest: Digest{Algo: MD5}}}
	if res, err := v.VerifyEntries(context.Background(), entries, fd); !errors.Is(err, ErrNotRegular) || res.Status != Unverifiable {
		t.Fatalf("FIFO: %v %v", res, err)
	}
	_, dfd := openFd(t, dir)
	if _, err := v.Sums(context.Background(), dfd, SHA256); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("directory: %v", err)
	}
}

// TestForget: Forget and ForgetAll make the next verification hash again; a Forget while a hash
// runs keeps that hash from being stored.
func TestForget(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	must(t, os.WriteFile(p, []byte(strings.Repeat("y", 40000)), 0o644))
	db := loadFiles(t, trustFile(t, dir, p))
	v := NewVerifier(VerifierConfig{Settle: testSettle, ChunkSize: 4096})
	_, fd := openFd(t, p)
	ctx := context.Background()
	verify := func(what string, wantCached bool) {
		t.Helper()
		res, err := v.Verify(ctx, db, p, fd)
		if err != nil || !res.Trusted() || res.Cached != wantCached {
			t.Fatalf("%s: %v cached=%v, %v; want cached=%v", what, res, res.Cached, err, wantCached)
		}
	}
	verify("first", false)
	verify("second", true)
	st, err := sys.Fstat(fd)
	must(t, err)
	v.Forget(st.Dev, st.Ino)
	verify("after Forget", false)
	verify("again", true)
	must(t, v.ForgetFd(fd))
	verify("after ForgetFd", false)
	v.ForgetAll()
	verify("after ForgetAll", false)
	v.Forget(st.Dev, st.Ino+1) // another inode: no effect
	verify("after forgetting another inode", true)

	v.ForgetAll()
	v.afterChunk = func(off int64) {
		if off == 8192 {
			v.Forget(st.Dev, st.Ino) // MODIFY arrives while the hash runs
		}
	}
	verify("hash with a Forget during it", false)
	v.afterChunk = nil
	verify("after it: not stored", false)
	verify("then stored", true)

	v.ForgetAll()
	v.afterChunk = func(off int64) {
		if off == 8192 {
			v.ForgetAll()
		}
	}
	verify("hash with a ForgetAll during it", false)
	v.afterChunk = nil
	verify("after it: not stored", false)

	// Forgets of other inodes during a hash do not stop it from storing, up to the ring's size.
	v.ForgetAll()
	v.afterChunk = func(off int64) {
		if off == 8192 {
			for i := uint64(0); i < forgetRing; i++ {
				v.Forget(st.Dev, st.Ino+1+i)
			}
		}
	}
	verify("hash with 64 other Forgets", false)
	v.afterChunk = nil
	verify("stored", true)
}

// TestCacheKeyIdentity: a cached digest is for the inode's size, mtime and ctime; another of
// any of them misses (the inode number is the key).
func TestCacheKeyIdentity(t *testing.T) {
	id := fileIdentity{key: inodeKey{1, 2}, size: 3, mtime: 4, ctime: 5}
	c := cachedSums{size: 3, mtime: 4, ctime: 5}
	if !c.sameFile(&id) {
		t.Fatal("the same file missed")
	}
	for name, mod := range map[string]func(*fileIdentity){
		"size":  func(i *fileIdentity) { i.size++ },
		"mtime": func(i *fileIdentity) { i.mtime++ },
		"ctime": func(i *fileIdentity) { i.ctime++ },
	} {
		other := id
		mod(&other)
		if c.sameFile(&other) {
			t.Errorf("another %s hit", name)
		}
	}
}

// TestCacheInodeReuse: on ext4, which gives a freed inode number to the next file created, a
// trusted file is hashed and cached, then deleted, and an impostor of the same size is created
// in its place with the freed number and the trusted file's mtime: the cache must not vouch for
// it (its ctime is newer than the cached one: sameFile). The identification has no file handle
// (no generation): the settle rule's ctime is what tells the two inodes apart. Needs root.
func TestCacheInodeReuse(t *testing.T) {
	mnt := testenv.Ext4(t, 16)
	p := filepath.Join(mnt, "tool")
	good, evil := []byte(strings.Repeat("g", 5000)), []byte(strings.Repeat("e", 5000))
	must(t, os.WriteFile(p, good, 0o755))
	db := loadFiles(t, trustFile(t, t.TempDir(), p))
	const settle = 50 * time.Millisecond // above ext4's timestamp granularity and the clock tick
	v := NewVerifier(VerifierConfig{Settle: settle})
	reused := 0
	for round := 0; round < 5; round++ {
		must(t, os.WriteFile(p, good, 0o755))
		time.Sleep(2 * settle)
		f, fd := openFd(t, p)
		st, err := sys.Fstat(fd)
		must(t, err)
		for i, wantCached := range []bool{false, true} {
			if res, err := v.Verify(context.Background(), db, p, fd); err != nil || !res.Trusted() || res.Cached != wantCached {
				t.Fatalf("round %d, verify %d of the trusted file: %v cached=%v %v", round, i, res, res.Cached, err)
			}
		}
		f.Close()
		must(t, os.Remove(p))
		must(t, os.WriteFile(p, evil, 0o755))
		mtime := time.Unix(0, st.Mtime)
		must(t, os.Chtimes(p, mtime, mtime))
		_, fd2 := openFd(t, p)
		st2, err := sys.Fstat(fd2)
		must(t, err)
		if st2.Dev == st.Dev && st2.Ino == st.Ino && st2.Size == st.Size && st2.Mtime == st.Mtime {
			reused++
		}
		if res, err := v.VerifyCached(db, p, fd2); !errors.Is(err, ErrNotCached) {
			t.Fatalf("round %d: VerifyCached of the impostor (inode %d, was %d): %v %v, want ErrNotCached", round, st2.Ino, st.Ino, res, err)
		}
		if res, err := v.Verify(context.Background(), db, p, fd2); err != nil || res.Status != Modified || res.Cached {
			t.Fatalf("round %d: the impostor: %v cached=%v %v, want modified by its content", round, res, res.Cached, err)
		}
		must(t, os.Remove(p))
	}
	if reused == 0 {
		t.Fatal("ext4 never gave the freed inode number to the impostor: the test did not test reuse")
	}
}

// TestChangedWhileHashing: a file whose content changes while it is read is Unverifiable and
// nothing is cached: on tmpfs (multigrain timestamps since 6.13), even a same-size write
// moves ctime. Needs root for the tmpfs.
func TestChangedWhileHashing(t *testing.T) {
	dir := testenv.Tmpfs(t)
	p := filepath.Join(dir, "f")
	must(t, os.WriteFile(p, []byte(strings.Repeat("a", 40000)), 0o644))
	db := loadFiles(t, trustFile(t, t.TempDir(), p))
	for _, tc := range []struct {
		name  string
		write func(f *os.File)
	}{
		{"same size", func(f *os.File) { f.WriteAt([]byte("b"), 20000) }},
		{"grown", func(f *os.File) { f.WriteAt([]byte("bb"), 39999) }},
		{"truncated", func(f *os.File) { f.Truncate(10000) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			must(t, os.WriteFile(p, []byte(strings.Repeat("a", 40000)), 0o644))
			_, fd := openFd(t, p)
			v := NewVerifier(VerifierConfig{Settle: testSettle, ChunkSize: 4096})
			// The writer opens during the hash: one open before it is ErrOpenForWrite
			// (TestHostileDirtyMappedPage).
			v.afterChunk = func(off int64) {
				if off == 8192 {
					w, err := os.OpenFile(p, os.O_RDWR, 0)
					must(t, err)
					tc.write(w)
					w.Close()
				}
			}
			res, err := v.Verify(context.Background(), db, p, fd)
			if !errors.Is(err, ErrChanged) || res.Status != Unverifiable || v.Stats().Cached != 0 {
				t.Fatalf("%v %v (cached %d)", res, err, v.Stats().Cached)
			}
		})
	}
}

// TestHostileSameSizeRewrite: an unprivileged user who may write a trusted file rewrites it
// with content of the same size and puts its mtime back. The cached digest is not used: the
// file is Modified. Needs root (tmpfs, and the child runs as nobody).
func TestHostileSameSizeRewrite(t *testing.T) {
	dir := testenv.Tmpfs(t)
	p := filepath.Join(dir, "user-tool")
	must(t, os.WriteFile(p, []byte("#!/bin/sh\necho good\n"), 0o666))
	fi, err := os.Stat(p)
	must(t, err)
	db := loadFiles(t, trustFile(t, t.TempDir(), p))
	v := NewVerifier(VerifierConfig{Settle: testSettle})
	_, fd := openFd(t, p)
	for i := 0; i < 2; i++ {
		if res, err := v.Verify(context.Background(), db, p, fd); err != nil || !res.Trusted() {
			t.Fatalf("before: %v %v", res, err)
		}
	}
	// The user writes through a descriptor of their own (the path is below root's 0700 test
	// directory, as a file may be reachable to its writer by a descriptor only).
	w, err := os.OpenFile(p, os.O_WRONLY, 0)
	must(t, err)
	cmd := exec.Command("sh", "-c", `printf '#!/bin/sh\necho evil\n' >&3`)
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the rewrite as nobody: %v %s", err, out)
	}
	w.Close()
	must(t, os.Chtimes(p, fi.ModTime(), fi.ModTime()))
	if data, _ := os.ReadFile(p); !strings.Contains(string(data), "evil") || len(data) != int(fi.Size()) {
		t.Fatalf("the rewrite did not happen: %q", data)
	}
	res, err := v.Verify(context.Background(), db, p, fd)
	if err != nil || res.Status != Modified || res.Cached {
		t.Fatalf("after the rewrite: %v cached=%v %v", res, res.Cached, err)
	}
}

// TestConcurrentVerifyAndForget runs verifications, Forgets and ForgetAlls at once (for
// -race); every verification of the unchanged file says trusted.
func TestConcurrentVerifyAndForget(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i := 0; i < 4; i++ {
		p := filepath.Join(dir, "f"+strconv.Itoa(i))
		must(t, os.WriteFile(p, []byte(strings.Repeat(strconv.Itoa(i), 10000+i)), 0o644))
		paths = append(paths, p)
	}
	db := loadFiles(t, trustFile(t, dir, paths...))
	v := NewVerifier(VerifierConfig{Settle: testSettle, CacheEntries: 2, ChunkSize: 1024})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				p := paths[(g+i)%len(paths)]
				f, err := os.Open(p)
				if err != nil {
					t.Error(err)
					return
				}
				res, err := v.Verify(context.Background(), db, p, int(f.Fd()))
				if err != nil || !res.Trusted() {
					t.Errorf("%s: %v %v", p, res, err)
				}
				switch i % 10 {
				case 3:
					v.ForgetFd(int(f.Fd()))
				case 7:
					if g == 0 {
						v.ForgetAll()
					}
				}
				f.Close()
			}
		}()
	}
	wg.Wait()
	if n := v.Stats().Cached; n > 2 {
		t.Fatalf("%d cached, above the bound 2", n)
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	must(t, os.WriteFile(p, []byte("x"), 0o644))
	db := loadFiles(t, trustFile(t, dir, p))
	var buf [4]Entry
	other := p + "x"
	allocs := testing.AllocsPerRun(100, func() {
		if len(db.Lookup(p, buf[:0])) != 1 || len(db.Lookup(other, buf[:0])) != 0 {
			t.Fatal("lookup")
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per lookup", allocs)
	}
}

// TestLoadFilesAndChanged: Dir's *.trust files after Files; an entry listed in two files has
// both; Changed notices an edit, a new file in Dir and a removal.
func TestLoadFilesAndChanged(t *testing.T) {
	dir := t.TempDir()
	tdir := filepath.Join(dir, "trust.d")
	must(t, os.Mkdir(tdir, 0o755))
	line := func(p string) string { return FormatLine(p, 1, sha256.Sum256([]byte(p))) + "\n" }
	must(t, os.WriteFile(filepath.Join(tdir, "b.trust"), []byte(line("/b")+line("/both")), 0o644))
	must(t, os.WriteFile(filepath.Join(tdir, "a.trust"), []byte(line("/a")), 0o644))
	explicit := filepath.Join(dir, "explicit.trust")
	must(t, os.WriteFile(explicit, []byte(line("/both")), 0o644))
	db, err := Load(Config{Files: []string{explicit}, Dir: tdir})
	must(t, err)
	if got := strings.Join(db.Files(), ","); got != explicit+","+filepath.Join(tdir, "a.trust")+","+filepath.Join(tdir, "b.trust") {
		t.Fatalf("files %s", got)
	}
	both := db.Lookup("/both", nil)
	if len(both) != 2 || both[0].Source.File != explicit || both[1].Source.String() != filepath.Join(tdir, "b.trust")+":2" {
		t.Fatalf("/both: %v", both)
	}
	if st := db.Stats(); st.TrustFiles != 3 || st.TrustEntries != 4 || db.Len() != 4 {
		t.Fatalf("stats %+v", st)
	}
	if ch, what := db.Changed(); ch {
		t.Fatalf("changed at once: %s", what)
	}
	must(t, os.WriteFile(filepath.Join(tdir, "a.trust"), []byte(line("/a")+line("/a2")), 0o644))
	if ch, what := db.Changed(); !ch || what != filepath.Join(tdir, "a.trust") {
		t.Fatalf("after an edit: %v %s", ch, what)
	}
	db, err = Load(db.Config())
	must(t, err)
	must(t, os.WriteFile(filepath.Join(tdir, "c.trust"), nil, 0o644))
	if ch, what := db.Changed(); !ch || what != tdir {
		t.Fatalf("after a new file: %v %s", ch, what)
	}
	// A missing Dir is no error, and its creation is a change.
	db, err = Load(Config{Dir: filepath.Join(dir, "later")})
	if err != nil || db.Len() != 0 {
		t.Fatalf("missing dir: %v", err)
	}
	must(t, os.Mkdir(filepath.Join(dir, "later"), 0o755))
	if ch, _ := db.Changed(); !ch {
		t.Fatal("the directory's creation went unnoticed")
	}
	// A bad file fails the load and names it.
	must(t, os.WriteFile(filepath.Join(tdir, "d.trust"), []byte("oops\n"), 0o644))
	if _, err := Load(Config{Dir: tdir}); err == nil || !strings.Contains(err.Error(), "d.trust:1:") {
		t.Fatalf("bad file: %v", err)
	}
	if _, err := Load(Config{Files: []string{filepath.Join(dir, "missing.trust")}}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing explicit file: %v", err)
	}
}

// TestNoCacheOnOverlayfs: a shared writable mapping of an overlayfs file maps its upper
// layer's file, and once the writer's descriptor is closed the overlay inode is not open for
// writing any more (TestHostileDirtyMappedPage): OpenForWrite cannot see that writer, so
// nothing is cached there (sys.WritesSeen) and every verification hashes.
func TestNoCacheOnOverlayfs(t *testing.T) {
	m := overlayOnTmpfs(t)
	p := filepath.Join(m, "tool")
	must(t, os.WriteFile(p, []byte("upper tool"), 0o755))
	db := loadFiles(t, trustFile(t, t.TempDir(), p))
	v := NewVerifier(VerifierConfig{Settle: testSettle})
	_, fd := openFd(t, p)
	for i := 0; i < 2; i++ {
		if res, err := v.Verify(context.Background(), db, p, fd); err != nil || !res.Trusted() || res.Cached {
			t.Fatalf("verify %d: %v cached=%v %v", i, res, res.Cached, err)
		}
	}
	if st := v.Stats(); st.Cached != 0 || st.Uncacheable != 2 {
		t.Fatalf("stats %+v: want nothing cached, 2 uncacheable", st)
	}
}

// testSettle lets the tests cache the digests of files they have just written (the
// default, DefaultSettle, is tested by TestCacheSettle).
const testSettle = time.Nanosecond

// TestCacheSettle: with the default Settle, the digests of a file changed less than
// DefaultSettle ago are not cached (it is hashed at every check, and VerifyCached cannot
// answer), so a same-size rewrite within one clock tick of the hashed version (ramfs, where
// it keeps size, mtime and ctime) is never vouched for by the cache; the trusted run and the
// rewrite are both decided by their content.
func TestCacheSettle(t *testing.T) {
	mnt := testenv.PublicTmpfs(t)
	p := filepath.Join(mnt, "tool")
	must(t, os.WriteFile(p, []byte("good tool"), 0o755))
	db := loadFiles(t, trustFile(t, t.TempDir(), p))
	v := NewVerifier(VerifierConfig{})
	for i := 0; i < 20; i++ {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		must(t, err)
		_, err = f.WriteAt([]byte("good"), 0)
		must(t, err)
		f.Close()
		_, fd := openFd(t, p)
		if res, err := v.Verify(context.Background(), db, p, fd); err != nil || !res.Trusted() || res.Cached {
			t.Fatalf("round %d, good: %v cached=%v %v", i, res, res.Cached, err)
		}
		if res, err := v.VerifyCached(db, p, fd); !errors.Is(err, ErrNotCached) {
			t.Fatalf("round %d: VerifyCached of a file changed just now: %v %v, want ErrNotCached", i, res, err)
		}
		f, err = os.OpenFile(p, os.O_WRONLY, 0)
		must(t, err)
		_, err = f.WriteAt([]byte("evil"), 0)
		must(t, err)
		f.Close()
		_, fd2 := openFd(t, p)
		if res, err := v.Verify(context.Background(), db, p, fd2); err != nil || res.Status != Modified || res.Cached {
			t.Fatalf("round %d, rewritten: %v cached=%v %v, want modified by its content", i, res, res.Cached, err)
		}
	}
	if st := v.Stats(); st.Unsettled != 40 || st.Cached != 0 || st.Hits != 0 {
		t.Fatalf("stats %+v, want 40 unsettled hashes, nothing cached, no hits", st)
	}
}

// TestNoCacheOnRamfs: on ramfs a write through a shared mapping moves no time at all
// (TestHostileDirtyMappedPage), so a cached digest could outlive the content it was taken
// of: every verification there hashes (sys.WritesSeen), and VerifyCached has nothing.
func TestNoCacheOnRamfs(t *testing.T) {
	mnt := testenv.PublicRamfs(t)
	p := filepath.Join(mnt, "tool")
	must(t, os.WriteFile(p, []byte("ramfs tool"), 0o755))
	db := loadFiles(t, trustFile(t, t.TempDir(), p))
	v := NewVerifier(VerifierConfig{Settle: testSettle})
	_, fd := openFd(t, p)
	for i := 0; i < 3; i++ {
		res, err := v.Verify(context.Background(), db, p, fd)
		if err != nil || !res.Trusted() || res.Cached {
			t.Fatalf("verify %d: %v cached=%v %v", i, res, res.Cached, err)
		}
	}
	if res, err := v.VerifyCached(db, p, fd); !errors.Is(err, ErrNotCached) {
		t.Fatalf("VerifyCached: %v %v, want ErrNotCached", res, err)
	}
	if st := v.Stats(); st.Hashes != 3 || st.Cached != 0 || st.Uncacheable != 3 {
		t.Fatalf("stats %+v: want 3 hashes, none cached, 3 uncacheable", st)
	}
}

// BenchmarkVerifyCached is a second exec's cost: lookup, fstat, cache hit;
// BenchmarkFstat is the fstat alone, its reference.
func BenchmarkVerifyCached(b *testing.B) {
	dir := b.TempDir()
	p := filepath.Join(dir, "f")
	data := make([]byte, 1<<20)
	os.WriteFile(p, data, 0o755)
	line := FormatLine(p, int64(len(data)), sha256.Sum256(data)) + "\n"
	os.WriteFile(filepath.Join(dir, "t.trust"), []byte(line), 0o644)
	db, err := Load(Config{Files: []string{filepath.Join(dir, "t.trust")}})
	if err != nil {
		b.Fatal(err)
	}
	f, _ := os.Open(p)
	defer f.Close()
	v := NewVerifier(VerifierConfig{Settle: testSettle})
	ctx := context.Background()
	if res, err := v.Verify(ctx, db, p, int(f.Fd())); err != nil || !res.Trusted() {
		b.Fatal(res, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if res, _ := v.Verify(ctx, db, p, int(f.Fd())); !res.Cached {
			b.Fatal("not cached")
		}
	}
}

// BenchmarkVerifyHash1MiB hashes a 1 MiB file (sha256) each time: the first exec's cost.
func BenchmarkVerifyHash1MiB(b *testing.B) {
	p := filepath.Join(b.TempDir(), "f")
	data := make([]byte, 1<<20)
	os.WriteFile(p, data, 0o755)
	f, _ := os.Open(p)
	defer f.Close()
	v := NewVerifier(VerifierConfig{Settle: testSettle})
	entries := []Entry{{Path: p, Size: int64(len(data)), Digest: Digest{Algo: SHA256, Sum: sha256.Sum256(data)}}}
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		v.ForgetAll()
		if res, err := v.VerifyEntries(context.Background(), entries, int(f.Fd())); err != nil || !res.Trusted() {
			b.Fatal(res, err)
		}
	}
}

func BenchmarkFstat(b *testing.B) {
	f, _ := os.Open(b.TempDir())
	defer f.Close()
	for i := 0; i < b.N; i++ {
		sys.Fstat(int(f.Fd()))
	}
}

// TestLinksAndMoves: trust belongs to a path and a content. A hard link elsewhere is not
// trusted (the kernel reports the link's path); another file moved onto a trusted path is
// judged by its own content, not by the cached digests of the file that was there.
func TestLinksAndMoves(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	must(t, os.WriteFile(good, []byte("good tool"), 0o755))
	db := loadFiles(t, trustFile(t, dir, good))
	v := NewVerifier(VerifierConfig{Settle: testSettle})
	_, fd := openFd(t, good)
	if res, _ := v.Verify(context.Background(), db, good, fd); !res.Trusted() {
		t.Fatalf("good: %v", res)
	}
	link := filepath.Join(dir, "link")
	must(t, os.Link(good, link))
	_, lfd := openFd(t, link)
	if res, err := v.Verify(context.Background(), db, link, lfd); res.Status != NotListed || err != nil {
		t.Fatalf("hard link: %v %v", res, err)
	}
	evil := filepath.Join(dir, "evil")
	must(t, os.WriteFile(evil, []byte("evil tool"), 0o755)) // same size
	must(t, os.Rename(evil, good))
	_, efd := openFd(t, good)
	if res, err := v.Verify(context.Background(), db, good, efd); res.Status != Modified || res.Cached || err != nil {
		t.Fatalf("a file moved onto the trusted path: %v cached=%v %v", res, res.Cached, err)
	}
}

// TestCacheBoundUnderFlood: verifying many distinct files keeps at most CacheEntries.
func TestCacheBoundUnderFlood(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i := 0; i < 100; i++ {
		p := filepath.Join(dir, "f"+strconv.Itoa(i))
		must(t, os.WriteFile(p, []byte(p), 0o644))
		paths = append(paths, p)
	}
	db := loadFiles(t, trustFile(t, dir, paths...))
	v := NewVerifier(VerifierConfig{Settle: testSettle, CacheEntries: 10})
	for _, p := range paths {
		_, fd := openFd(t, p)
		if res, err := v.Verify(context.Background(), db, p, fd); !res.Trusted() || err != nil {
			t.Fatalf("%s: %v %v", p, res, err)
		}
	}
	if st := v.Stats(); st.Cached != 10 || st.Evictions != 90 || st.Hashes != 100 {
		t.Fatalf("stats %+v, want 10 cached, 90 evicted", st)
	}
}

// TestVerifyCached: the cache-only verification (the guard's inline trusted=) never reads the
// content: ErrNotCached until a Verify hashed the file, the cached answer after, ErrNotCached
// again after a Forget or a rewrite (a modified file is not trusted from a stale digest), and
// the answers that need no digest (not listed, wrong size) without one.
func TestVerifyCached(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	must(t, os.WriteFile(p, []byte(strings.Repeat("z", 20000)), 0o644))
	db := loadFiles(t, trustFile(t, dir, p))
	v := NewVerifier(VerifierConfig{Settle: testSettle})
	_, fd := openFd(t, p)
	read := false
	v.afterChunk = func(int64) { read = true }
	cached := func(what string, wantErr error, wantStatus Status) {
		t.Helper()
		read = false
		res, err := v.VerifyCached(db, p, fd)
		if !errors.Is(err, wantErr) || res.Status != wantStatus || read {
			t.Fatalf("%s: %v, %v (content read: %v); want %v, %v, no read", what, res, err, read, wantStatus, wantErr)
		}
		if wantErr == nil && wantStatus == Trusted && !res.Cached {
			t.Fatalf("%s: trusted but not from the cache", what)
		}
	}
	cached("before any hash", ErrNotCached, Unverifiable)
	if res, err := v.Verify(context.Background(), db, p, fd); err != nil || !res.Trusted() || !read {
		t.Fatalf("Verify: %v, %v (read %v)", res, err, read)
	}
	cached("after Verify", nil, Trusted)
	st, err := sys.Fstat(fd)
	must(t, err)
	v.Forget(st.Dev, st.Ino)
	cached("after Forget", ErrNotCached, Unverifiable)

	// Same size, other content, through another descriptor: the cached digest must not serve.
	if _, err := v.Verify(context.Background(), db, p, fd); err != nil {
		t.Fatal(err)
	}
	cached("cached again", nil, Trusted)
	time.Sleep(10 * time.Millisecond) // a later ctime even on coarse clocks
	must(t, os.WriteFile(p, []byte(strings.Repeat("Z", 20000)), 0o644))
	cached("after a same-size rewrite", ErrNotCached, Unverifiable)
	must(t, os.WriteFile(p, []byte("short"), 0o644))
	cached("wrong size: modified, no digest needed", nil, Modified)
	q := filepath.Join(dir, "other")
	must(t, os.WriteFile(q, []byte("x"), 0o644))
	_, qfd := openFd(t, q)
	if res, err := v.VerifyCached(db, q, qfd); err != nil || res.Status != NotListed {
		t.Fatalf("not listed: %v, %v", res, err)
	}
}

// TestHostileDirtyMappedPage: a write through a shared writable mapping to a page it has
// already dirtied changes the file's content and moves neither its ctime nor its mtime, and
// no fanotify event tells of it until the mapping goes (CLOSE_WRITE, which the guard's
// forgetter reads from another queue than its permission events). A user who can write a file
// whose content a rule trusts (a trust file's entry, a sha256= rule that allows the content
// wherever it is) dirties a page of it through a mapping with the byte it already holds, lets
// the guard hash it (an exec attempt does: the kernel asks before it refuses the exec of a
// file open for writing), then writes their own code through the mapping, unmaps and execs:
// a digest cached at the hash would vouch for the new content. The Verifier neither trusts
// nor caches what it hashed while the file was open for writing, and once nothing writes it,
// the first write of any new writer moves the ctime (checked here too: the invariant rests
// on it). On tmpfs, ramfs and ext4.
func TestHostileDirtyMappedPage(t *testing.T) {
	testenv.RequireRoot(t)
	good := []byte("#!/bin/sh\necho good\n" + strings.Repeat("#", 4096))
	evil := []byte("#!/bin/sh\necho evil\n" + strings.Repeat("#", 4096))
	for _, fs := range []struct {
		name   string
		mount  func(t *testing.T) string
		caches bool // sys.WritesSeen
		// sees: sys.OpenForWrite sees the mapping once its descriptor is closed (not on
		// overlayfs, whose mapping holds the upper layer's file).
		sees bool
	}{
		{"tmpfs", func(t *testing.T) string { return testenv.Tmpfs(t) }, true, true},
		{"ext4", func(t *testing.T) string { return testenv.Ext4(t, 16) }, true, true},
		{"ramfs", func(t *testing.T) string { return testenv.PublicRamfs(t) }, false, true},
		{"overlayfs", overlayOnTmpfs, false, false},
	} {
		t.Run(fs.name, func(t *testing.T) {
			p := filepath.Join(fs.mount(t), "user-tool")
			must(t, os.WriteFile(p, good, 0o755))
			db := loadFiles(t, trustFile(t, t.TempDir(), p))
			v := NewVerifier(VerifierConfig{Settle: testSettle})
			_, fd := openFd(t, p)
			ctx := context.Background()
			// The writer's mapping, its descriptor closed, its first page dirtied with the
			// bytes it holds: the content is still the trusted one.
			mapping := func() []byte {
				w, err := os.OpenFile(p, os.O_RDWR, 0)
				must(t, err)
				defer w.Close()
				b, err := syscall.Mmap(int(w.Fd()), 0, len(good), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
				must(t, err)
				return b
			}
			b := mapping()
			copy(b, good)
			before := fstat(t, fd)
			for i := 0; i < 2; i++ {
				res, err := v.Verify(ctx, db, p, fd)
				switch {
				case fs.sees && (res.Trusted() || res.Cached || !errors.Is(err, ErrOpenForWrite)):
					t.Fatalf("verify %d while open for writing: %v cached=%v err=%v; want unverifiable, ErrOpenForWrite", i, res, res.Cached, err)
				case !fs.sees && (res.Cached || err != nil):
					t.Fatalf("verify %d while open for writing, unseen: %v cached=%v err=%v; want hashed again, not cached", i, res, res.Cached, err)
				}
			}
			// The attack's write: through the dirty page, no ctime or mtime moved.
			copy(b, evil)
			if after := fstat(t, fd); after.Ctime != before.Ctime || after.Mtime != before.Mtime {
				t.Logf("%s moved the times at a write to a dirty mapped page: the hole is not there", fs.name)
			}
			must(t, syscall.Munmap(b))
			for i, wantCached := range []bool{false, fs.caches} {
				res, err := v.Verify(ctx, db, p, fd)
				if err != nil || res.Status != Modified || res.Cached != wantCached {
					t.Fatalf("verify %d after the write and unmap: %v cached=%v err=%v; want modified", i, res, res.Cached, err)
				}
			}
			// With nothing open for writing, the cached digest holds until a writer writes,
			// and its first write moves the ctime, whatever the page cache holds (where the
			// Verifier caches; on ramfs nothing moves it, which is why it does not).
			cached := fstat(t, fd)
			b = mapping()
			copy(b, good)
			if after := fstat(t, fd); fs.caches && after.Ctime == cached.Ctime {
				t.Fatalf("%s: the first write through a new mapping left the ctime as it was (%d): the cache's invariant does not hold", fs.name, after.Ctime)
			} else if !fs.caches && after.Ctime != cached.Ctime {
				t.Logf("%s moved the ctime at a new mapping's first write: it could cache", fs.name)
			}
			must(t, syscall.Munmap(b))
			if res, err := v.Verify(ctx, db, p, fd); err != nil || !res.Trusted() || res.Cached {
				t.Fatalf("after writing the trusted content back: %v cached=%v %v", res, res.Cached, err)
			}
		})
	}
}

// overlayOnTmpfs mounts an overlayfs whose layers are on a tmpfs and returns its mount point
// (skips where overlayfs cannot be mounted).
func overlayOnTmpfs(t *testing.T) string {
	base := testenv.Tmpfs(t)
	for _, d := range []string{"l", "u", "w", "m"} {
		must(t, os.Mkdir(filepath.Join(base, d), 0o755))
	}
	m := filepath.Join(base, "m")
	opts := "lowerdir=" + filepath.Join(base, "l") + ",upperdir=" + filepath.Join(base, "u") + ",workdir=" + filepath.Join(base, "w")
	if err := sys.Mount("overlay", m, "overlay", 0, opts); err != nil {
		t.Skipf("no overlayfs: %v", err)
	}
	t.Cleanup(func() { sys.Unmount(m, sys.MNT_DETACH) })
	return m
}

func fstat(t *testing.T, fd int) sys.Stat {
	t.Helper()
	st, err := sys.Fstat(fd)
	must(t, err)
	return st
}

// TestCacheOnSquashfs: squashfs (a snap's files) cannot be written at all, so its digests are
// cached like ext4's (sys.WritesSeen): the second verification hashes nothing.
func TestCacheOnSquashfs(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		t.Skip("no mksquashfs (squashfs-tools)")
	}
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "tool"), []byte("squashed tool"), 0o755))
	img := filepath.Join(t.TempDir(), "fs.squashfs")
	if out, err := exec.Command("mksquashfs", src, img, "-quiet", "-noappend").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v %s", err, out)
	}
	mnt := testenv.Tmpfs(t)
	if out, err := exec.Command("mount", "-t", "squashfs", "-o", "loop,ro", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount squashfs here: %v %s", err, out)
	}
	t.Cleanup(func() { sys.Unmount(mnt, sys.MNT_DETACH) })
	p := filepath.Join(mnt, "tool")
	db := loadFiles(t, trustFile(t, t.TempDir(), p))
	v := NewVerifier(VerifierConfig{Settle: testSettle})
	_, fd := openFd(t, p)
	for i, wantCached := range []bool{false, true} {
		res, err := v.Verify(context.Background(), db, p, fd)
		if err != nil || !res.Trusted() || res.Cached != wantCached {
			t.Fatalf("verify %d: %v cached=%v %v (stats %+v)", i, res, res.Cached, err, v.Stats())
		}
	}
	if st := v.Stats(); st.Hashes != 1 || st.Uncacheable != 0 {
		t.Fatalf("stats %+v: want 1 hash, none uncacheable", st)
	}
}

// TestHashSlots: at most HashSlots files are hashed at once, whatever the number asked; one
// that finds them all taken gives its caller's worker place back (workslot) and waits, until
// its ctx ends (its error then, within its bound, and nothing read), and hashes once a slot is
// free. One that finds a slot free keeps its place.
func TestHashSlots(t *testing.T) {
	const slots, asked = 2, 6
	dir := t.TempDir()
	v := NewVerifier(VerifierConfig{Settle: testSettle, HashSlots: slots})
	var running, most atomic.Int32
	release := make(chan struct{})
	v.afterChunk = func(off int64) {
		// The first read of each hash stops here until release: the hashes that got a slot
		// stay in it.
		if off != 128<<10 {
			return
		}
		n := running.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		running.Add(-1)
	}
	fds := make([]int, asked+1)
	for i := range fds {
		p := filepath.Join(dir, "f"+strconv.Itoa(i))
		must(t, os.WriteFile(p, bytes.Repeat([]byte{byte(i)}, 300<<10), 0o644))
		_, fds[i] = openFd(t, p)
	}
	errs := make(chan error, asked)
	var released atomic.Int32
	withRelease := func(ctx context.Context) context.Context {
		var once atomic.Bool
		return workslot.WithRelease(ctx, func() {
			if once.CompareAndSwap(false, true) {
				released.Add(1)
			}
		})
	}
	for i := range asked {
		go func() {
			_, err := v.Sums(withRelease(context.Background()), fds[i], SHA256)
			errs <- err
		}()
	}
	for end := time.Now().Add(5 * time.Second); running.Load() < slots && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // room for a hash that should wait to start anyway
	if n := running.Load(); n != slots {
		t.Fatalf("%d hashes running of %d asked, want %d (the slots)", n, asked, slots)
	}
	// One more, with a deadline: it waits for a slot until then.
	ctx, cancel := context.WithTimeout(withRelease(context.Background()), 200*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_, err := v.Sums(ctx, fds[asked], SHA256)
	if took := time.Since(t0); !errors.Is(err, context.DeadlineExceeded) || took < 200*time.Millisecond || took > time.Second {
		t.Fatalf("with every slot taken: %v after %v, want the deadline's error after 200 ms", err, took)
	}
	close(release)
	for range asked {
		if err := <-errs; err != nil {
			t.Errorf("a hash that waited for its slot: %v", err)
		}
	}
	if m := most.Load(); m != slots {
		t.Errorf("at most %d hashes ran at once, want %d", m, slots)
	}
	if r := released.Load(); r != asked-slots+1 {
		t.Errorf("%d gave their place back, want %d (those that waited for a slot)", r, asked-slots+1)
	}
	if st := v.Stats(); st.Hashes != asked {
		t.Errorf("%d hashes counted, want %d", st.Hashes, asked)
	}
}

// TestOneHashForConcurrentAsks: decisions that ask at once for the digests of one file the
// cache will keep wait for one hash and get the cache's answer (Shared); of a file changed
// too recently to be kept, each hashes (nothing is passed by hand); when the one hashing gives
// up (its deadline), a waiter hashes instead. Every answer is the file's digest.
func TestOneHashForConcurrentAsks(t *testing.T) {
	const n = 8
	content := bytes.Repeat([]byte("tool"), 256<<10) // 1 MiB: several reads
	want := sha256.Sum256(content)
	for _, tc := range []struct {
		name           string
		settle         time.Duration
		giveUp         bool // the first hash's ctx ends while it is blocked
		hashes, shared uint64
	}{
		{"settled: one hash", testSettle, false, 1, n - 1},
		{"changed just now: each hashes", time.Hour, false, n, 0},
		{"the one hashing gives up: another hashes", testSettle, true, 1, n - 1}, // the one that gave up is not counted
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(testenv.Tmpfs(t), "tool")
			must(t, os.WriteFile(p, content, 0o755))
			time.Sleep(10 * time.Millisecond)
			v := NewVerifier(VerifierConfig{Settle: tc.settle, HashSlots: n})
			var firsts atomic.Int32
			release := make(chan struct{})
			leaderCtx, giveUp := context.WithCancel(context.Background())
			defer giveUp()
			v.afterChunk = func(off int64) {
				if off == 128<<10 && firsts.Add(1) == 1 || !tc.giveUp && off == 128<<10 {
					<-release // every hash that starts stops at its first read until release
				}
			}
			errs := make(chan error, n)
			sums := make(chan [32]byte, n)
			for i := range n {
				ctx := context.Background()
				if i == 0 {
					ctx = leaderCtx
				}
				_, fd := openFd(t, p)
				go func() {
					s, err := v.Sums(ctx, fd, SHA256)
					errs <- err
					sums <- s.SHA256
				}()
				if i == 0 {
					// the first is hashing before the others ask
					for end := time.Now().Add(5 * time.Second); firsts.Load() == 0 && time.Now().Before(end); {
						time.Sleep(time.Millisecond)
					}
				}
			}
			wantBlocked := func() bool {
				if tc.shared > 0 {
					return v.Stats().Shared >= tc.shared
				}
				return firsts.Load() >= n
			}
			for end := time.Now().Add(5 * time.Second); !wantBlocked() && time.Now().Before(end); {
				time.Sleep(time.Millisecond)
			}
			if tc.giveUp {
				giveUp()
			}
			close(release)
			failed := 0
			for range n {
				if err := <-errs; err != nil {
					failed++
				}
				if s := <-sums; s != want && s != ([32]byte{}) {
					t.Errorf("a digest that is not the file's: %x", s)
				}
			}
			if want := map[bool]int{false: 0, true: 1}[tc.giveUp]; failed != want {
				t.Errorf("%d of %d failed, want %d (the one that gave up)", failed, n, want)
			}
			if st := v.Stats(); st.Hashes != tc.hashes || st.Shared < tc.shared {
				t.Errorf("hashes %d, shared %d; want %d hashes, at least %d shared", st.Hashes, st.Shared, tc.hashes, tc.shared)
			}
		})
	}
}

// TestNoHashAgainOfWhatAHashJustStored: a decision that missed the cache while another's hash
// of the file ran, and comes to claim the hash once that one has stored its digests and ended
// (it was slow between the two: the lease question, fstatfs, a loaded machine), reads the
// cache instead of hashing again: one hash for all who asked meanwhile (docs/trust.md).
func TestNoHashAgainOfWhatAHashJustStored(t *testing.T) {
	content := bytes.Repeat([]byte("tool"), 256<<10) // 1 MiB: several reads
	want := sha256.Sum256(content)
	p := filepath.Join(testenv.Tmpfs(t), "tool")
	must(t, os.WriteFile(p, content, 0o755))
	time.Sleep(10 * time.Millisecond) // settled (testSettle)
	v := NewVerifier(VerifierConfig{Settle: testSettle, HashSlots: 2})
	leaderHashing, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	v.afterChunk = func(off int64) {
		if off == 128<<10 {
			once.Do(func() { close(leaderHashing); <-release }) // the first hash stops at its first read
		}
	}
	inWindow, leaderEnded := make(chan struct{}), make(chan struct{})
	var claims atomic.Int32
	v.beforeClaim = func() {
		if claims.Add(1) == 2 { // the second decision: it missed the cache, the first still hashing
			close(inWindow)
			<-leaderEnded
		}
	}
	type result struct {
		s   Sums
		err error
	}
	ask := func() <-chan result {
		_, fd := openFd(t, p)
		r := make(chan result, 1)
		go func() {
			s, err := v.Sums(context.Background(), fd, SHA256)
			r <- result{s, err}
		}()
		return r
	}
	check := func(who string, r <-chan result) {
		select {
		case got := <-r:
			if got.err != nil || got.s.SHA256 != want {
				t.Fatalf("%s: digest %x, %v; want the file's", who, got.s.SHA256, got.err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s: no answer after a minute", who)
		}
	}
	first := ask()
	<-leaderHashing
	second := ask()
	<-inWindow
	close(release)
	check("the first", first) // its digests stored, its hash ended
	close(leaderEnded)
	check("the second", second)
	if st := v.Stats(); st.Hashes != 1 || st.Hits != 1 {
		t.Errorf("hashes %d, hits %d; want 1 hash, and the second decision's answer from the cache", st.Hashes, st.Hits)
	}
}

// TestHashSlotsSharedByOwner: with one slot, a hash for owner A that holds it for long (its
// reads slowed) gives it, between two reads, to owner B's hash that waits, which ends while
// A's goes on; A's then ends too, with the right digest.
func TestHashSlotsSharedByOwner(t *testing.T) {
	dir := t.TempDir()
	v := NewVerifier(VerifierConfig{Settle: testSettle, HashSlots: 1})
	bigData := bytes.Repeat([]byte{1}, 64*128<<10) // 64 reads
	must(t, os.WriteFile(filepath.Join(dir, "big"), bigData, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "small"), []byte("small"), 0o644))
	_, bigFd := openFd(t, filepath.Join(dir, "big"))
	_, smallFd := openFd(t, filepath.Join(dir, "small"))
	started := make(chan struct{})
	var once sync.Once
	v.afterChunk = func(off int64) {
		if off >= 128<<10 { // only the big file's reads are slowed
			once.Do(func() { close(started) })
			time.Sleep(10 * time.Millisecond)
		}
	}
	owner := func(o uint64) context.Context {
		return workslot.WithOwner(context.Background(), func() uint64 { return o })
	}
	bigDone := make(chan error, 1)
	go func() {
		s, err := v.Sums(owner(1), bigFd, SHA256)
		if err == nil && s.SHA256 != sha256.Sum256(bigData) {
			err = errors.New("wrong digest")
		}
		bigDone <- err
	}()
	<-started
	t0 := time.Now()
	s, err := v.Sums(owner(2), smallFd, SHA256)
	took := time.Since(t0)
	if err != nil || s.SHA256 != sha256.Sum256([]byte("small")) {
		t.Fatalf("B's hash: %v", err)
	}
	select {
	case err := <-bigDone:
		t.Fatalf("A's hash ended (%v) before B's, which took %v: B waited for the whole of A's", err, took)
	default:
	}
	if took > 300*time.Millisecond {
		t.Errorf("B's hash of 5 bytes took %v beside A's slowed one (10 ms a read), want about a read", took)
	}
	if err := <-bigDone; err != nil {
		t.Fatalf("A's hash: %v", err)
	}
}
