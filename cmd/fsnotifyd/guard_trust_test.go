//go:build linux

package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
	"github.com/fsnotifyd/fsnotifyd/internal/trust"
)

// copyExe copies the system's true(1) to path: a small executable to trust or not.
func copyExe(t *testing.T, path string) {
	t.Helper()
	src, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true(1)")
	}
	if err := os.WriteFile(path, must(os.ReadFile(src)), 0o755); err != nil {
		t.Fatal(err)
	}
}

// isEPERMRun reports an exec that failed with EPERM.
func isEPERMRun(err error) bool { return errors.Is(err, syscall.EPERM) }

// waitFor polls cond every 5ms for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// A trust-based exec policy on the real kernel: a listed executable runs, an unlisted copy
// and the listed one once modified do not (the hash cache does not vouch for new content),
// and adding it again to the trust file is picked up without a restart. The audit line names
// the rule, the trust status, the source and the digest.
func TestGuardTrustExec(t *testing.T) {
	mnt := testenv.Tmpfs(t)
	etc := t.TempDir()
	tool, other := filepath.Join(mnt, "tool"), filepath.Join(mnt, "other")
	copyExe(t, tool)
	copyExe(t, other)
	tf := filepath.Join(etc, "local.trust")
	if _, errOut, st := fsn(t, "trust", "add", "--file", tf, tool); st != 0 {
		t.Fatalf("trust add: %s", errOut)
	}
	rules := filepath.Join(etc, "exec.rules")
	writeFile(t, rules, "allow exec "+mnt+"/** trusted=yes\ndeny exec "+mnt+"/**\n")
	audit := filepath.Join(etc, "audit.jsonl")
	p := start(t, "guard", "--events", "exec", "--policy", rules, "--trust", tf, "--no-package-trust",
		"--reload-interval", "50ms", "--audit", audit, mnt)

	if err := exec.Command(tool).Run(); err != nil {
		t.Fatalf("trusted tool: %v", err)
	}
	if err := exec.Command(tool).Run(); err != nil { // hashed again: changed less than trust.DefaultSettle ago
		t.Fatalf("trusted tool, again: %v", err)
	}
	if err := exec.Command(other).Run(); !isEPERMRun(err) {
		t.Fatalf("unlisted copy: %v, want EPERM", err)
	}
	// Modified in place (same inode): no longer trusted.
	f, err := os.OpenFile(tool, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0})
	f.Close()
	if err := exec.Command(tool).Run(); !isEPERMRun(err) {
		t.Fatalf("modified tool: %v, want EPERM", err)
	}
	// Trusted again: the trust file changes on disk, the guard reloads it.
	if _, errOut, st := fsn(t, "trust", "add", "--file", tf, tool); st != 0 {
		t.Fatalf("trust add: %s", errOut)
	}
	if !waitFor(10*time.Second, func() bool { return exec.Command(tool).Run() == nil }) {
		t.Fatalf("re-added tool still denied; stderr:\n%s", p.errText())
	}
	waitAudit(t, audit, other)
	if st := p.stop(); st != 0 {
		t.Fatalf("exit %d: %s", st, p.errText())
	}
	recs := auditLines(t, audit)
	var trusted, modified, unlisted, reloads int
	for _, r := range recs {
		tr, _ := r["trust"].(map[string]any)
		switch {
		case r["event"] == "trust-reload" && r["verdict"] == "applied":
			reloads++
		case r["path"] == tool && r["verdict"] == "allow" && tr != nil && tr["status"] == "trusted":
			if r["rule"] != rules+":1" || tr["source"] != tf+":1" || !strings.HasPrefix(tr["digest"].(string), "sha256:") {
				t.Errorf("trusted exec's audit line: %v", r)
			}
			trusted++
		case r["path"] == tool && r["verdict"] == "deny" && tr != nil && tr["status"] == "modified":
			if r["rule"] != rules+":2" || tr["want"] == nil || tr["want"] == tr["digest"] {
				t.Errorf("modified exec's audit line: %v", r)
			}
			modified++
		case r["path"] == other && r["verdict"] == "deny":
			if tr == nil || tr["status"] != "not-listed" || r["rule"] != rules+":2" {
				t.Errorf("unlisted exec's audit line: %v", r)
			}
			unlisted++
		}
	}
	if trusted < 3 || modified < 1 || unlisted != 1 || reloads < 1 {
		t.Errorf("audit: %d trusted, %d modified, %d unlisted execs, %d trust reloads; want >=3, >=1, 1, >=1\n%v", trusted, modified, unlisted, reloads, recs)
	}
}

// trustFilesystems are the filesystems the as-nobody trust tests run on: tmpfs (multigrain
// timestamps) and ramfs (no export operations; timestamps too coarse to tell two writes in
// one clock tick apart, so the settle rule, trust.DefaultSettle, and the guard's
// MODIFY/CLOSE_WRITE forgetting are what stop a stale cache hit).
var trustFilesystems = []struct {
	name  string
	mount func(testing.TB) string
}{{"tmpfs", testenv.PublicTmpfs}, {"ramfs", testenv.PublicRamfs}}

// eachTrustFilesystem runs f once per trustFilesystems entry, as a subtest.
func eachTrustFilesystem(t *testing.T, f func(t *testing.T, mount func(testing.TB) string)) {
	for _, fs := range trustFilesystems {
		t.Run(fs.name, func(t *testing.T) { f(t, fs.mount) })
	}
}

// guardTrustedToolOfNobody starts a guard that lets only trusted files run on a scratch
// filesystem (mount), with a copy of an executable there that user nobody owns (in a
// directory nobody owns) and that a trust file lists as it is now; it returns the
// executable's path. The guard decides opens too (allowed by default): an exec is then two
// permission events, as under bench/exec.sh.
func guardTrustedToolOfNobody(t *testing.T, mount func(testing.TB) string) string {
	t.Helper()
	_, tool := guardTrustedOfNobody(t, mount, "true", "tool", "open,exec", func(mnt string) string {
		return "allow exec " + mnt + "/** trusted=yes\ndeny exec " + mnt + "/**\n"
	})
	return tool
}

// guardTrustedOfNobody makes a scratch filesystem (mount) with a directory home that user
// nobody owns, and in it a copy of the system's program prog named name, owned by nobody and
// listed in a trust file as it is now; it waits until the copy is old enough for the hash cache
// (trust.DefaultSettle), so that its first trusted use fills the cache and the hostile steps
// meet it warm, and starts a guard on the whole mount for events with the rules that
// prepare(mount point) returns (prepare may also make files there: the guard is not running
// yet). It returns the mount point and the copy's path.
func guardTrustedOfNobody(t *testing.T, mount func(testing.TB) string, prog, name, events string, prepare func(mnt string) string) (mnt, tool string) {
	t.Helper()
	g := startTrustedOfNobody(t, mount, prog, name, events, prepare)
	return g.mnt, g.tool
}

// trustedGuard is a guard startTrustedOfNobody started: its mount point, the trusted copy,
// its rules file (rewrite it and send SIGHUP to reload) and its process.
type trustedGuard struct {
	mnt, tool, rules string
	p                *proc
}

// startTrustedOfNobody is guardTrustedOfNobody, returning the guard too; extra are more
// guard flags.
func startTrustedOfNobody(t *testing.T, mount func(testing.TB) string, prog, name, events string, prepare func(mnt string) string, extra ...string) trustedGuard {
	t.Helper()
	mnt := mount(t)
	_, tool := nobodysTool(t, mnt, name, programFile(t, prog), 0)
	etc := t.TempDir()
	tf := filepath.Join(etc, "local.trust")
	if _, errOut, st := fsn(t, "trust", "add", "--file", tf, tool); st != 0 {
		t.Fatalf("trust add: %s", errOut)
	}
	rf := filepath.Join(etc, "guard.rules")
	writeFile(t, rf, prepare(mnt))
	time.Sleep(trust.DefaultSettle + 100*time.Millisecond)
	args := append([]string{"guard", "--mount", "--events", events, "--policy", rf, "--trust", tf, "--no-package-trust"}, extra...)
	p := start(t, append(args, mnt)...)
	return trustedGuard{mnt: mnt, tool: tool, rules: rf, p: p}
}

// A hostile local user who owns a trusted file (listed as it was) modifies it and runs it at
// once, fifty times over, each time after appending to it in place (same inode, the hash cache
// warm from the run before): every run after a change is denied. The first, unchanged, runs.
func TestGuardTrustModifiedAsNobody(t *testing.T) {
	trustedToolNeverEscapes(t, func(tool string) string {
		return tool + ` && echo FIRST-RAN
for i in $(seq 50); do
	printf x >> ` + tool + `
	` + tool + ` 2>/dev/null && echo ESCAPED
done; true`
	})
}

// trustedToolNeverEscapes runs, on each trust filesystem, nobody's script for a trusted tool
// of nobody's (guardTrustedToolOfNobody; script is given its path), which must print
// FIRST-RAN and never ESCAPED.
func trustedToolNeverEscapes(t *testing.T, script func(tool string) string) {
	eachTrustFilesystem(t, func(t *testing.T, mount func(testing.TB) string) {
		tool := guardTrustedToolOfNobody(t, mount)
		out, err := testenv.Sh(testenv.Nobody, script(tool))
		if err != nil || !strings.Contains(out, "FIRST-RAN") || strings.Contains(out, "ESCAPED") {
			t.Fatalf("as nobody: %v\n%s", err, out)
		}
	})
}

// The same, with same-size rewrites that the loader ignores (a byte of the ELF header's
// padding, EI_PAD, flipped between 'x' and 'y'), so an exec that escaped would run: the hash
// cache is warm (the trusted first run, decided inline from it after the first hash), and
// every run after a change must miss it and be denied. On ramfs the rewrite and the exec
// come within one clock tick, with the size and times of the cached version.
func TestGuardTrustSameSizeRewriteAsNobody(t *testing.T) {
	trustedToolNeverEscapes(t, func(tool string) string {
		return tool + ` && ` + tool + ` && echo FIRST-RAN
for i in $(seq 25); do
	printf x | dd of=` + tool + ` bs=1 seek=10 conv=notrunc status=none
	` + tool + ` 2>/dev/null && echo ESCAPED
	printf y | dd of=` + tool + ` bs=1 seek=10 conv=notrunc status=none
	` + tool + ` 2>/dev/null && echo ESCAPED
done; true`
	})
}

// Trust is by path and content: as nobody, after the trusted tool ran (the hash cache warm),
// a hard link to it and the tool renamed are not listed and do not run; a same-size impostor
// (one ELF padding byte changed) renamed over the trusted path, or hard-linked there, does
// not run either (another inode: the cache misses, the hash differs); the trusted content put
// back under its path runs again. Each line of output names a step and whether it ran.
func TestGuardTrustLinksAndRenamesAsNobody(t *testing.T) {
	eachTrustFilesystem(t, func(t *testing.T, mount func(testing.TB) string) {
		tool := guardTrustedToolOfNobody(t, mount)
		dir := filepath.Dir(tool)
		out, err := testenv.Sh(testenv.Nobody, `set -u
cd `+dir+`
try() { if "$2" 2>/dev/null; then echo "$1 ran"; else echo "$1 denied"; fi; }
try trusted ./tool
try trusted-again ./tool
ln tool link && try hardlink ./link
cp tool impostor && printf x | dd of=impostor bs=1 seek=10 conv=notrunc status=none
mv tool orig && try renamed ./orig
mv impostor tool && try impostor-renamed-over ./tool
rm tool && ln orig tool && try relinked-original ./tool
cp tool impostor2 && printf y | dd of=impostor2 bs=1 seek=10 conv=notrunc status=none
rm tool && ln impostor2 tool && try impostor-linked-over ./tool
rm tool && mv orig tool && try moved-back ./tool
`)
		want := []string{"trusted ran", "trusted-again ran", "hardlink denied", "renamed denied",
			"impostor-renamed-over denied", "relinked-original ran", "impostor-linked-over denied", "moved-back ran"}
		got := strings.Fields(strings.ReplaceAll(strings.TrimSpace(out), " ", "_"))
		if err != nil || strings.Join(got, "\n") != strings.ReplaceAll(strings.Join(want, "\n"), " ", "_") {
			t.Fatalf("as nobody: %v\ngot:\n%s\nwant:\n%s", err, out, strings.Join(want, "\n"))
		}
	})
}

// publicExt4 is a scratch ext4 (testenv.Ext4) that user nobody can reach. ext4 gives a freed
// inode number to the next file created in the same group.
func publicExt4(t testing.TB) string {
	mnt := testenv.Ext4(t, 16)
	testenv.OpenToAll(t, mnt)
	return mnt
}

// A hostile owner of a trusted file on ext4 runs it (trusted: the guard hashes it and caches
// its digests, the file being older than trust.DefaultSettle), deletes it, and creates at once
// an impostor of the same size (one ELF padding byte changed, so that it would run) under the
// same name, which ext4 gives the freed inode number, with the trusted file's mtime; then runs
// it. The impostor is written through a bind mount of the same filesystem that the guard does
// not watch, so no MODIFY or CLOSE_WRITE tells the guard to forget the cached digests: only the
// hash cache's identification (device, inode number, size, mtime and ctime; no file handle)
// can tell the two inodes apart, and the impostor's ctime is newer. It must be denied. The test
// checks that the impostor did get the freed number (else it tested nothing), and that the
// trusted content, copied back, runs.
func TestGuardTrustInodeReuseAsNobody(t *testing.T) {
	g := startTrustedOfNobody(t, publicExt4, "true", "tool", "open,exec", func(mnt string) string {
		return "allow exec " + mnt + "/** trusted=yes\ndeny exec " + mnt + "/**\n"
	})
	other := filepath.Join(testenv.PublicDir(t), "other")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := sys.Mount(g.mnt, other, "", sys.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Unmount(other, sys.MNT_DETACH) })
	dir := filepath.Dir(g.tool)
	odir := filepath.Join(other, filepath.Base(dir))
	out, err := testenv.Sh(testenv.Nobody, `set -u
try() { if "$2" 2>/dev/null; then echo "$1 ran"; else echo "$1 denied"; fi; }
cd `+odir+`
cp tool good && touch -r tool good
cp tool impostor.src && printf x | dd of=impostor.src bs=1 seek=10 conv=notrunc status=none
try trusted `+dir+`/tool
try trusted-again `+dir+`/tool
old=$(stat -c %i tool)
rm tool && cp impostor.src tool && touch -r good tool
[ "$(stat -c %i tool)" = "$old" ] && echo inode-reused
try impostor `+dir+`/tool
rm tool && cp good tool && try trusted-copy `+dir+`/tool
`)
	want := []string{"trusted ran", "trusted-again ran", "inode-reused", "impostor denied", "trusted-copy ran"}
	got := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("as nobody: %v\ngot:\n%s\nwant:\n%s", err, out, strings.Join(want, "\n"))
	}
}

// A hostile owner of a trusted file on a filesystem with coarse timestamps (ramfs: one clock
// tick, a few ms) puts the trusted content back and runs it (trusted: the guard hashes it),
// then at once rewrites one ELF padding byte in place (same size) and runs it again, 300
// times: the rewrite often lands in the tick of the trusted version, with its size, mtime,
// ctime and inode, and the hash cache would vouch for it (it did, 2% of rounds, before
// trust.DefaultSettle). Every rewritten run must be denied and every trusted run allowed.
func TestGuardTrustSameTickRewriteAsNobody(t *testing.T) {
	if testenv.IsChild() {
		sameTickRewrites(t, os.Getenv("FSNOTIFYD_TEST_TOOL"), 300)
		return
	}
	eachTrustFilesystem(t, func(t *testing.T, mount func(testing.TB) string) {
		tool := guardTrustedToolOfNobody(t, mount)
		t.Setenv("FSNOTIFYD_TEST_TOOL", tool)
		out, err := testenv.RunTestAs(t, 65534, 65534, "TestGuardTrustSameTickRewriteAsNobody")
		if err != nil || !strings.Contains(out, "REWRITES-DONE") {
			t.Fatalf("as nobody: %v\n%s", err, out)
		}
	})
}

// sameTickRewrites is the hostile side of TestGuardTrustSameTickRewriteAsNobody.
func sameTickRewrites(t *testing.T, tool string, rounds int) {
	orig := make([]byte, 1)
	f, err := os.Open(tool)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadAt(orig, 10); err != nil {
		t.Fatal(err)
	}
	f.Close()
	put := func(b byte) {
		f, err := os.OpenFile(tool, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte{b}, 10); err != nil {
			t.Fatal(err)
		}
		f.Close() // before the exec: a file open for writing cannot run (ETXTBSY)
	}
	escaped, denied := 0, 0
	for i := 0; i < rounds; i++ {
		put(orig[0])
		if err := exec.Command(tool).Run(); err != nil {
			denied++
		}
		put('x' + byte(i&1))
		if exec.Command(tool).Run() == nil {
			escaped++
		}
	}
	put(orig[0])
	if escaped != 0 || denied != 0 {
		t.Fatalf("%d of %d rewritten runs escaped; %d trusted runs denied", escaped, rounds, denied)
	}
	fmt.Println("REWRITES-DONE")
}

// trusted_exe= as nobody: only a trusted reader may open the data. The trusted copy of cat
// reads it (first hashed by a handler, then decided inline from the hash cache, through an
// O_PATH descriptor of /proc/PID/exe: a listener that opened the executable for reading on
// its kernel reader would wait on itself, and the run would hang until killed); a hard link
// to it and an unlisted copy do not (their paths are not listed); the trusted copy rewritten
// in place (same size) after the warm runs does not. Each step is bounded (timeout -s KILL).
func TestGuardTrustedExeAsNobody(t *testing.T) {
	eachTrustFilesystem(t, func(t *testing.T, mount func(testing.TB) string) {
		mnt, reader := guardTrustedOfNobody(t, mount, "cat", "cat", "open,exec", func(mnt string) string {
			if err := os.Mkdir(filepath.Join(mnt, "data"), 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(mnt, "data", "f"), "DATA")
			return "deny open " + mnt + "/data/** trusted_exe=no\n"
		})
		data := filepath.Join(mnt, "data")
		home := filepath.Dir(reader)
		out, err := testenv.Sh(testenv.Nobody, `cd `+home+`
try() { if timeout -s KILL 20 "$2" `+data+`/f > /dev/null 2>&1; then echo "$1 read"; else echo "$1 denied"; fi; }
try trusted ./cat
try trusted-warm ./cat
try trusted-warm-again ./cat
ln cat link && try hardlink ./link
cp cat copy && try copy ./copy
printf x | dd of=cat bs=1 seek=10 conv=notrunc status=none && try rewritten ./cat
`)
		want := "trusted read\ntrusted-warm read\ntrusted-warm-again read\nhardlink denied\ncopy denied\nrewritten denied"
		if err != nil || strings.TrimSpace(out) != want {
			t.Fatalf("as nobody: %v\ngot:\n%s\nwant:\n%s", err, out, want)
		}
	})
}

// A hostile owner of a trusted file makes the guard hash it while a shared writable mapping of
// it has a dirty page, then writes their own code through that page — which moves no time and
// makes no event until the mapping goes — unmaps it and runs it at once: a digest cached at
// the hash would vouch for the new content, and only the forgetter's CLOSE_WRITE, read from
// another queue than the exec, could save it. The guard must not trust, nor cache, what it
// hashed while the file was open for writing (trust.ErrOpenForWrite; ramfs caches nothing).
// Step by step, as nobody with python3: map the tool, dirty its first page with the bytes it
// holds, wait past trust.DefaultSettle (the page fault moved the ctime), try to run it (the
// kernel asks the guard, then refuses the exec of a file open for writing: ETXTBSY), change
// one ELF padding byte through the mapping, unmap, run it: denied. Then the trusted content
// written back (a write(2), which moves the ctime) runs.
func TestGuardTrustDirtyMappedPageAsNobody(t *testing.T) {
	for _, fs := range []struct {
		name  string
		mount func(testing.TB) string
	}{{"tmpfs", testenv.PublicTmpfs}, {"ext4", publicExt4}, {"ramfs", testenv.PublicRamfs}} {
		t.Run(fs.name, func(t *testing.T) {
			tool := guardTrustedToolOfNobody(t, fs.mount)
			out, err := testenv.Sh(testenv.Nobody, `python3 - `+tool+` <<'EOF'
`+pyRun+`
import mmap, time
good = open(tool, "rb").read()
fd = os.open(tool, os.O_RDWR)
m = mmap.mmap(fd, 0, mmap.MAP_SHARED)
os.close(fd)
m[0:4096] = good[0:4096]
time.sleep(3.3)
run("while-mapped")
m[10:11] = b"x"
m.close()
run("rewritten")
with open(tool, "r+b") as f:
    f.write(good)
time.sleep(0.05)
run("restored")
EOF`)
			// Denied by the guard (EPERM, 1) while mapped: open for writing, unverifiable (the kernel
			// would refuse it next with ETXTBSY, 26, unless the writer went away meanwhile).
			want := "while-mapped refused 1\nrewritten refused 1\nrestored ran"
			if err != nil || strings.TrimSpace(out) != want {
				t.Fatalf("as nobody: %v\ngot:\n%s\nwant:\n%s", err, out, want)
			}
		})
	}
}

// pyPatchInImage is Python (os and sys imported, tool and img set) that changes one byte of
// tool's first page in img, the loop image of the filesystem the tool is on, behind the
// mount's back, and drops the tool's cached pages so that the next read and exec see it.
const pyPatchInImage = `def patch_in_image(tool, img):
    head = open(tool, "rb").read(4096)
    with open(img, "r+b") as f:
        data = f.read()
        at = data.find(head)
        if at < 0 or data.find(head, at + 1) >= 0:
            sys.exit("the tool's first page is not once in the image")
        f.seek(at + 10)
        f.write(b"x")
        f.flush()
        os.fsync(f.fileno())
    fd = os.open(tool, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    if open(tool, "rb").read(11)[10:11] != b"x":
        sys.exit("the patch is not what the mounted file reads")
patch_in_image(tool, img)`

// pyRun starts the python3 scripts of these tests: tool is argv[1], and run(step, argv) runs
// argv (default: the tool) and prints "STEP ran", "STEP failed" (a non-zero exit) or
// "STEP refused ERRNO" (the exec failed: 1 is the guard's EPERM, 26 the kernel's ETXTBSY).
const pyRun = `import os, subprocess, sys
tool = sys.argv[1]
def run(step, argv=None):
    try:
        r = subprocess.run(argv or [tool], stderr=subprocess.DEVNULL)
        print(step, "ran" if r.returncode == 0 else "failed")
    except OSError as e:
        print(step, "refused", e.errno)`

// nobodysTool makes in mnt a directory home that user nobody owns, and in it a file name
// holding content, executable and owned by nobody, made size bytes long by a sparse tail when
// that is longer. It returns home and the file's path.
func nobodysTool(t *testing.T, mnt, name string, content []byte, size int64) (home, tool string) {
	t.Helper()
	home = filepath.Join(mnt, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	tool = filepath.Join(home, name)
	if err := os.WriteFile(tool, content, 0o755); err != nil {
		t.Fatal(err)
	}
	if size > int64(len(content)) {
		if err := os.Truncate(tool, size); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{home, tool} {
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	return home, tool
}

// programFile returns the content of the system's program prog (skipping the test without it).
func programFile(t *testing.T, prog string) []byte {
	t.Helper()
	src, err := exec.LookPath(prog)
	if err != nil {
		t.Skipf("no %s: %v", prog, err)
	}
	return must(os.ReadFile(src))
}

// sha256Hex is b's sha256, as a sha256= key writes it.
func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// A hostile user who can write a file keeps it open for writing while it is run, so that the
// guard cannot read its content as one version (trust.ErrOpenForWrite). Were that the guard's
// own failure, --on-error allow would let it through: a script given to sh (an open, which
// the kernel does not refuse for a writer) would run whatever its writer put there, unseen;
// for an exec, the kernel's refusal of a file open for writing (ETXTBSY, 26) comes after the
// guard's answer, so a writer that closes in between runs what it wrote. Such content is
// neither an error nor any digest: a sha256= condition on it may hold — a deny rule denies
// (exec: EPERM, 1; sh: cannot open), an allow rule is passed over — whatever --on-error says.
// With the writer closed, the digest decides. As nobody (the writer opens the file by a link
// outside the guarded directory), embedded and through the daemon, for
// an allowlist of execs and of scripts, a denylist and a denylist by !=; the audit line of the
// first run says why.
func TestGuardSHA256OpenForWriteAsNobody(t *testing.T) {
	trueExe, script := programFile(t, "true"), []byte("exit 0\n")
	sum, other := sha256Hex, hex.EncodeToString(make([]byte, 32))
	guardModes(t, func(t *testing.T, extra []string) {
		for _, tc := range []struct {
			name, rules string // rules for the directory D
			script      bool   // the tool is a script run by sh (opens), else a copy of true (execs)
			allowed     bool   // whether the tool runs once its writer is gone
			rule        string // the line that decides the run with a writer
		}{
			{"allowlist", "allow exec D/** sha256=" + sum(trueExe) + "\ndeny exec D/**\n", false, true, ":2"},
			{"allowlist of scripts", "allow open D/** sha256=" + sum(script) + "\ndeny open D/**\n", true, true, ":2"},
			{"denylist", "deny exec D/** sha256=" + other + "\n", false, true, ":1"},
			{"denylist by !=", "deny exec D/** sha256!=" + sum(trueExe) + "\n", false, true, ":1"},
			{"denylist of the tool", "deny exec D/** sha256=" + sum(trueExe) + "\n", false, false, ":1"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				content, events, run, want := trueExe, "exec", "None", "refused 1"
				if tc.script {
					content, events, run, want = script, "open", `["sh", tool]`, "failed"
				}
				mnt := testenv.PublicTmpfs(t)
				dir, tool := nobodysTool(t, mnt, "tool", content, 0)
				// The writer opens the file by a link outside the guarded directory: its open
				// there is no rule's (an open for writing through D would itself be unverifiable).
				link := filepath.Join(mnt, "link")
				if err := os.Link(tool, link); err != nil {
					t.Fatal(err)
				}
				rules := filepath.Join(t.TempDir(), "guard.rules")
				writeFile(t, rules, strings.ReplaceAll(tc.rules, "D/", dir+"/"))
				audit := filepath.Join(t.TempDir(), "audit.jsonl")
				p := start(t, append(append([]string{"guard"}, extra...),
					"--events", events, "--policy", rules, "--on-error", "allow", "--audit", audit, dir)...)
				out, err := testenv.Sh(testenv.Nobody, `python3 - `+tool+` `+link+` <<'EOF'
`+pyRun+`
link = sys.argv[2]
fd = os.open(link, os.O_WRONLY)
run("open-for-writing", `+run+`)
os.close(fd)
run("closed", `+run+`)
EOF`)
				after := "closed " + want
				if tc.allowed {
					after = "closed ran"
				}
				if want := "open-for-writing " + want + "\n" + after; err != nil || strings.TrimSpace(out) != want {
					t.Fatalf("as nobody: %v\ngot:\n%s\nwant:\n%s", err, out, want)
				}
				waitAudit(t, audit, tool)
				p.stop()
				recs := auditFor(auditLines(t, audit), tool)
				if len(recs) < 2 {
					t.Fatalf("audit records of %s: %v, want two", tool, recs)
				}
				first := recs[0]
				why, _ := first["sha256_unverifiable"].(string)
				if first["verdict"] != "deny" || first["rule"] != rules+tc.rule || first["error"] != nil ||
					!strings.Contains(why, "open for writing") || first["sha256"] != nil {
					t.Errorf("the run with a writer: audit %v, want a deny by %s%s with sha256_unverifiable naming the writer and no error", first, rules, tc.rule)
				}
				if last := recs[len(recs)-1]; last["sha256"] != sum(content) || last["sha256_unverifiable"] != nil {
					t.Errorf("the run without: audit %v, want the digest %s", last, sum(content))
				}
			})
		}
	})
}

// A hostile user picks the size of what a sha256= condition hashes: a copy of false(1) with a
// sparse 64 GiB tail runs as false does, and no hash of it ends before the guard's deadline,
// whose --on-timeout verdict is allow by default: the allowlist would let it run. The hash
// stops at the late point (a tenth of the deadline before it), where the rules decide again
// without hashing (notify.GuardConfig.OnLate): the content is unverifiable, so a deny rule
// denies and an allow rule is passed over — decided, before the deadline. As nobody,
// embedded and through the daemon, --deadline 2s, default --on-timeout.
func TestGuardSHA256TooLargeToHashAsNobody(t *testing.T) {
	falseExe, good, other := programFile(t, "false"), sha256Hex(programFile(t, "true")), hex.EncodeToString(make([]byte, 32))
	const deadline = 2 * time.Second // the late point is 200 ms before it
	guardModes(t, func(t *testing.T, extra []string) {
		for _, tc := range []struct{ name, rules, rule string }{
			{"allowlist", "allow exec D/** sha256=" + good + "\ndeny exec D/**\n", ":2"},
			{"denylist", "deny exec D/** sha256=" + other + "\n", ":1"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				dir, tool := nobodysTool(t, testenv.PublicTmpfs(t), "tool", falseExe, 64<<30)
				rules := filepath.Join(t.TempDir(), "guard.rules")
				writeFile(t, rules, strings.ReplaceAll(tc.rules, "D/", dir+"/"))
				audit := filepath.Join(t.TempDir(), "audit.jsonl")
				p := start(t, append(append([]string{"guard"}, extra...),
					"--events", "exec", "--policy", rules, "--deadline", deadline.String(), "--audit", audit, dir)...)
				lateness := testenv.MachineLateness()
				t0 := time.Now()
				c := exec.Command(tool)
				c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
				err := c.Run()
				took := time.Since(t0)
				late := lateness()
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					waitAudit(t, audit, tool)
					t.Fatalf("the padded false ran (%v after %v, the machine's lateness %v): the hash's timeout let it through; audit %v; stderr:\n%s", err, took, late, auditFor(auditLines(t, audit), tool), p.errText())
				}
				if !errors.Is(err, syscall.EPERM) || took > deadline {
					t.Fatalf("exec as nobody: %v after %v, want EPERM before the %v deadline", err, took, deadline)
				}
				waitAudit(t, audit, tool)
				p.stop()
				recs := auditFor(auditLines(t, audit), tool)
				why, _ := recs[0]["sha256_unverifiable"].(string)
				if len(recs) != 1 || recs[0]["verdict"] != "deny" || recs[0]["rule"] != rules+tc.rule || recs[0]["late"] != true || !strings.Contains(why, "not hashed") {
					t.Errorf("audit %v, want one deny by %s%s at the late point, saying the file was not hashed", recs, rules, tc.rule)
				}
			})
		}
	})
}

// A hostile user floods a guard whose rules test sha256= with execs of large files, so that
// decisions wait for a handler past the deadline and get --on-timeout (allow by default): 300
// at once of a copy of false(1) with a sparse 64 GiB tail, under an allowlist of true's
// digest, --deadline 2s. Before the hash slots and the late point, all but a few were
// allowed by the deadline and ran (293 of 300). Now every one is decided by the rules, and
// denied (most at the late point: the hashes wait for a slot).
func TestGuardSHA256FloodAsNobody(t *testing.T) {
	dir, tool := nobodysTool(t, testenv.PublicTmpfs(t), "tool", programFile(t, "false"), 64<<30)
	rules := filepath.Join(t.TempDir(), "guard.rules")
	writeFile(t, rules, "allow exec "+dir+"/** sha256="+sha256Hex(programFile(t, "true"))+"\ndeny exec "+dir+"/**\n")
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	p := start(t, "guard", "--events", "exec", "--policy", rules, "--deadline", "2s", "--audit", audit, dir)
	// From sh, not os/exec: Go forks under a lock that a child's exec, waiting for its verdict,
	// would hold, and the 300 would come one at a time.
	const n = 300
	out, err := testenv.Sh(testenv.Nobody, `i=0; while [ $i -lt `+strconv.Itoa(n)+` ]; do (`+tool+` 2>/dev/null; echo "rc=$?") & i=$((i+1)); done; wait`)
	if err != nil {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	// sh says 126 for an exec denied (EPERM); 1 is false's own: it ran.
	rcs := map[string]int{}
	for _, l := range strings.Fields(out) {
		rcs[l]++
	}
	if rcs["rc=126"] != n {
		t.Errorf("of %d execs at once: %v (rc=1: it ran), want every one denied (rc=126)", n, rcs)
	}
	for end := time.Now().Add(10 * time.Second); len(auditFor(auditLines(t, audit), tool)) < n && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	p.stop()
	rulesSeen := map[any]int{}
	for _, r := range auditFor(auditLines(t, audit), tool) {
		rulesSeen[r["rule"]]++
	}
	if len(rulesSeen) != 1 || rulesSeen[rules+":2"] != n {
		t.Errorf("audit rules %v, want all %d by %s:2 (none by the deadline)", rulesSeen, n, rules)
	}
}

// userBackedExt4 mounts (as root would for a user: udisks, a desktop's loop-setup) an ext4
// image that user nobody owns, in a directory anyone may enter, and returns its mount point,
// open to all, and the image's path.
func userBackedExt4(t *testing.T) (mnt, img string) {
	t.Helper()
	mnt, img = testenv.PublicExt4Image(t, 16)
	if err := os.Chown(img, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	testenv.OpenToAll(t, mnt)
	return mnt, img
}

// A user who owns the image file behind a mounted filesystem (a loop device) changes a file
// in it without the filesystem knowing: a write to the image moves no time of the file, makes
// no event, and once the file's pages are dropped from the cache (posix_fadvise DONTNEED,
// which anyone who may read it can ask) its next read is the new content. A digest the hash
// cache kept would vouch for it: such a filesystem is not cacheable (sys.DeviceWritesSeen:
// a loop device's backing file must be root's, writable by root alone). As nobody: run the
// trusted tool (hashed), patch one ELF padding byte of it in the image, drop its pages, run
// it: denied.
func TestGuardTrustLoopBackingFileAsNobody(t *testing.T) {
	var img string
	g := startTrustedOfNobody(t, func(tb testing.TB) string {
		var mnt string
		mnt, img = userBackedExt4(t)
		return mnt
	}, "true", "tool", "open,exec", func(mnt string) string {
		return "allow exec " + mnt + "/** trusted=yes\ndeny exec " + mnt + "/**\n"
	})
	out, err := testenv.Sh(testenv.Nobody, `python3 - `+g.tool+` `+img+` <<'EOF'
`+pyRun+`
img = sys.argv[2]
run("trusted")
os.sync() # the tool's pages, through the loop device, into the image
`+pyPatchInImage+`
run("patched")
EOF`)
	if want := "trusted ran\npatched refused 1"; err != nil || strings.TrimSpace(out) != want {
		t.Fatalf("as nobody: %v\ngot:\n%s\nwant:\n%s", err, out, want)
	}
}

// sharedObjectFile returns the content of a shared library of the system (libm), which
// ftype= calls elf-shared-object (skipping the test without one).
func sharedObjectFile(t *testing.T) []byte {
	t.Helper()
	for _, pat := range []string{"/lib/*/libm.so.6", "/usr/lib/*/libm.so.6", "/lib64/libm.so.6", "/usr/lib64/libm.so.6"} {
		if m, _ := filepath.Glob(pat); len(m) > 0 {
			return must(os.ReadFile(m[0]))
		}
	}
	t.Skip("no libm.so.6")
	return nil
}

// A hostile user keeps every handler of a guard busy hashing a large file that a trust file
// lists (each open of it hashes it: it changed less than trust.DefaultSettle ago, as after a
// package upgrade, so no digest of it is kept and no hash is shared; after a start or a
// reload, many different large listed files would do), so that the decisions behind them
// wait past the deadline for a handler and get --on-timeout (allow by default). Among the flood, the
// user opens its own copy of a library, not listed, which the reference allowlist's rule
// `deny open ** ftype=elf-shared-object trusted=no` denies: a preload it must not get. As
// nobody, 1,000 opens of the listed 256 MiB library (a copy of libm with a sparse tail, root's)
// with 20 of nobody's copy among them, default --deadline (5s: through the daemon an answer
// must also reach the daemon in the last tenth of it, and under this load a 200 ms margin
// was too short for some) and --on-timeout, embedded and through the daemon. Before the late
// point (notify.GuardConfig.OnLate) and the Verifier's hash slots, 7 of 20 copies were
// opened (embedded), by the deadline. Now each is decided by the rules, and denied, and by a
// handler, at once: the opens of the listed library wait for the hash slot without holding a
// handler (workslot), and are decided at their late point (unverifiable: denied).
func TestGuardTrustFloodAsNobody(t *testing.T) {
	guardModes(t, func(t *testing.T, extra []string) {
		var evil string
		f := startHashFlood(t, extra, func(f *hashFlood) []string {
			_, evil = nobodysTool(t, f.mnt, "evil.so", f.so, 0)
			return nil // not listed
		})
		// From sh, as in TestGuardSHA256FloodAsNobody. head exits 0 when it opened the file.
		const n, every = 1000, 50
		out, err := f.flood(n, `if [ $((i % `+strconv.Itoa(every)+`)) -eq 25 ]; then (head -c1 `+evil+` >/dev/null 2>&1; echo "evil=$?") & fi`)
		if err != nil {
			t.Fatalf("as nobody: %v\n%s", err, out)
		}
		rcs := map[string]int{}
		for _, l := range strings.Fields(out) {
			rcs[l]++
		}
		if want := n / every; rcs["evil=1"] != want {
			t.Errorf("of %d opens of nobody's untrusted library among %d of the listed one: %v (evil=0: it was opened), want all denied (evil=1)", want, n, rcs)
		}
		for end := time.Now().Add(10 * time.Second); len(auditFor(auditLines(t, f.audit), evil)) < n/every && time.Now().Before(end); {
			time.Sleep(10 * time.Millisecond)
		}
		f.p.stop()
		rulesSeen := map[string]int{}
		for _, r := range auditFor(auditLines(t, f.audit), evil) {
			rulesSeen[fmt.Sprint(r["rule"], " ", r["verdict"])]++
			if r["late"] == true {
				// A handler waiting for a hash slot gives its place back: nobody's copy, which
				// needs no hash, finds a handler at once (0.5-81 ms measured), not at its late point.
				t.Errorf("nobody's library decided at its late point (after %v): the handlers were held by waits for a hash", r["latency"])
			}
		}
		if want := f.rules + ":1 deny"; len(rulesSeen) != 1 || rulesSeen[want] != n/every {
			t.Errorf("audit of nobody's library %v, want all %d %q (none by the deadline)", rulesSeen, n/every, want)
		}
	})
}

// hashFlood is the scene of the hash-flood tests: on a public tmpfs mnt, root's 256 MiB library
// lib/libbig.so (a copy of libm, so, with a sparse tail; just written, so each open hashes it:
// no digest of a file changed less than trust.DefaultSettle ago is kept, none shared), listed
// in a trust file with the files more returns (more prepares the scene before the guard
// starts), and a guard p of that trust file with the rule
// `deny open MNT/** ftype=elf-shared-object trusted=no` (the reference allowlist's) and an
// audit file.
type hashFlood struct {
	mnt, big, rules, audit string
	so                     []byte
	p                      *proc
}

func startHashFlood(t *testing.T, extra []string, more func(f *hashFlood) []string) *hashFlood {
	f := &hashFlood{so: sharedObjectFile(t), mnt: testenv.PublicTmpfs(t)}
	lib := filepath.Join(f.mnt, "lib")
	if err := os.Mkdir(lib, 0o755); err != nil {
		t.Fatal(err)
	}
	f.big = filepath.Join(lib, "libbig.so")
	if err := os.WriteFile(f.big, f.so, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(f.big, 256<<20); err != nil {
		t.Fatal(err)
	}
	listed := []string{f.big}
	if more != nil {
		listed = append(listed, more(f)...)
	}
	etc := t.TempDir()
	tf := filepath.Join(etc, "local.trust")
	if _, errOut, st := fsn(t, append([]string{"trust", "add", "--file", tf}, listed...)...); st != 0 {
		t.Fatalf("trust add: %s", errOut)
	}
	f.rules = filepath.Join(etc, "guard.rules")
	writeFile(t, f.rules, "deny open "+f.mnt+"/** ftype=elf-shared-object trusted=no\n")
	f.audit = filepath.Join(t.TempDir(), "audit.jsonl")
	f.p = start(t, append(append([]string{"guard"}, extra...), "--events", "open", "--policy", f.rules,
		"--trust", tf, "--no-package-trust", "--audit", f.audit, f.mnt)...)
	return f
}

// flood opens the big library n times as nobody, each in a background head(1) (which exits 0
// when it opened the file), running also, after each, the sh commands also (with $i, the
// open's number), and waits for all; its output is also's.
func (f *hashFlood) flood(n int, also string) (string, error) {
	return testenv.Sh(testenv.Nobody, `i=0; while [ $i -lt `+strconv.Itoa(n)+` ]; do
		head -c1 `+f.big+` >/dev/null 2>&1 &
		`+also+`
		i=$((i+1)); done; wait`)
}

// The hash slots are a resource every user shares: a user who asks for a thousand hashes of a
// large listed file (TestGuardTrustFloodAsNobody's flood) must not make another user's
// accesses of listed files wait behind them until their late point, where, with the content
// unverifiable, `trusted=no` may hold and they are denied: a denial of service of root by
// nobody. The slots are shared among the real uids waiting, in turn, a chunk of a hash at a
// time (workslot.Fair): amid nobody's flood, root's opens of ten listed libraries, each
// changed just now (so each is hashed), are allowed, each by a handler (the rules with the
// content hashed: not late), while some of nobody's opens reach their late point (the flood
// did fill the slots). Before the slots were shared, root's hashes waited behind nobody's.
func TestGuardHashSlotsSharedAmongUsers(t *testing.T) {
	guardModes(t, func(t *testing.T, extra []string) {
		const mine = 10
		var roots []string
		f := startHashFlood(t, extra, func(f *hashFlood) []string {
			for i := range mine {
				p := filepath.Join(f.mnt, "lib", "libroot"+strconv.Itoa(i)+".so")
				if err := os.WriteFile(p, f.so, 0o644); err != nil {
					t.Fatal(err)
				}
				roots = append(roots, p)
			}
			return roots
		})
		const n = 1000
		flooded := make(chan error, 1)
		go func() {
			out, err := f.flood(n, "")
			if err != nil {
				err = fmt.Errorf("%w\n%s", err, out)
			}
			flooded <- err
		}()
		// Root's opens once nobody's wait in numbers (blocked in open, in head).
		if !waitFor(20*time.Second, func() bool { return countComm("head") >= 200 }) {
			t.Fatalf("nobody's opens did not pile up: %d head processes", countComm("head"))
		}
		slowest := openAllAtOnce(t, roots, "amid nobody's flood")
		if err := <-flooded; err != nil {
			t.Fatalf("as nobody: %v", err)
		}
		f.p.stop()
		recs := auditLines(t, f.audit)
		for _, p := range roots {
			got := auditFor(recs, p)
			if len(got) != 1 || got[0]["verdict"] != "allow" || got[0]["late"] == true {
				t.Errorf("audit of root's %s: %v, want one allow by a handler (not late)", p, got)
			}
		}
		late := 0
		for _, r := range auditFor(recs, f.big) {
			if r["late"] == true {
				late++
			}
		}
		if late == 0 {
			t.Errorf("none of nobody's %d opens was decided at its late point: the flood did not fill the hash slots, the test shows nothing", n)
		}
		t.Logf("root's %d opens took at most %v; %d of nobody's %d opens were decided at their late point", mine, slowest, late, n)
	})
}

// countComm counts the processes named comm.
func countComm(comm string) int {
	n := 0
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		if b, err := os.ReadFile("/proc/" + d.Name() + "/comm"); err == nil && strings.TrimSpace(string(b)) == comm {
			n++
		}
	}
	return n
}

// The reference allowlist's rule 2 denies every open of a process started as `ld.so PROGRAM`,
// which runs PROGRAM with the loader as its executable. A system may have more than one
// loader, each trusted (multilib's 32-bit one, musl's, a vendor runtime's under /opt): as
// nobody, a root-owned copy of the system's loader at another path, which a trust file lists,
// must not run nobody's untrusted program (a copy of true) that the allowlist denies to an
// exec. Before, rule 2 named the one loader's path, and the second loader ran the program.
func TestGuardAllowlistThroughAnotherLoaderAsNobody(t *testing.T) {
	system, err := filepath.EvalSymlinks("/lib64/ld-linux-x86-64.so.2")
	if err != nil {
		t.Skipf("no x86-64 loader: %v", err)
	}
	mnt := testenv.PublicTmpfs(t)
	lib := filepath.Join(mnt, "opt", "lib")
	if err := os.MkdirAll(lib, 0o755); err != nil {
		t.Fatal(err)
	}
	loader := filepath.Join(lib, "ld-linux-x86-64.so.2")
	if err := os.WriteFile(loader, must(os.ReadFile(system)), 0o755); err != nil {
		t.Fatal(err)
	}
	_, tool := nobodysTool(t, mnt, "tool", programFile(t, "true"), 0)
	etc := t.TempDir()
	tf := filepath.Join(etc, "local.trust")
	if _, errOut, st := fsn(t, "trust", "add", "--file", tf, loader); st != 0 {
		t.Fatalf("trust add: %s", errOut)
	}
	// The test's mount is below /tmp, where rule 1 would deny the loader's own exec (as it
	// should for a real /tmp): that rule is left out, the rest is the reference allowlist.
	ref := string(must(os.ReadFile(filepath.Join("..", "..", "internal", "policy", "testdata", "allowlist.rules"))))
	rules := filepath.Join(etc, "allowlist.rules")
	writeFile(t, rules, strings.Replace(ref, "deny exec /tmp/**\n", "", 1))
	p := start(t, "guard", "--events", "open,exec", "--policy", rules, "--trust", tf, "--no-package-trust", mnt)
	if out, _ := testenv.Sh(testenv.Nobody, tool+" 2>&1; echo rc=$?"); !strings.Contains(out, "rc=126") {
		t.Fatalf("nobody's untrusted program, run directly: %s, want denied (rc=126)\nguard:\n%s", out, p.errText())
	}
	if out, _ := testenv.Sh(testenv.Nobody, loader+" "+tool+" 2>&1; echo rc=$?"); !strings.Contains(out, "rc=127") {
		t.Errorf("nobody's untrusted program, run through a second, trusted loader: %s, want its open denied (rc=127)\nguard:\n%s", out, p.errText())
	}
	if out, _ := testenv.Sh(testenv.Nobody, loader+" --version 2>&1; echo rc=$?"); !strings.Contains(out, "rc=0") {
		t.Errorf("the second loader, run by itself (a control: it is trusted): %s, want rc=0", out)
	}
}
