//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// overlayRoutesPy, run as nobody in `unshare -Urm` with a guarded directory (argv[1]) and a
// directory of nobody's (argv[2]), mounts an overlayfs whose lower layer is the guarded
// directory (upper and work in nobody's, on the same filesystem) and tries every way to
// reach its files through the overlay: a line per step, "ran" (exec), "done" (no error),
// "refused ERRNO".
const overlayRoutesPy = `
import os, sys, mmap, subprocess
lower, work = sys.argv[1], sys.argv[2]
m, up, wk = [os.path.join(work, n) for n in ("m", "up", "wk")]
for d in (m, up, wk):
    os.makedirs(d, exist_ok=True)
subprocess.run(["mount", "-t", "overlay", "ov", "-o", "lowerdir=%s,upperdir=%s,workdir=%s,userxattr" % (lower, up, wk), m], check=True)
CODES = {0: "ran", 99: "done"}
` + runStepPy + `def fexecve(p, flags):
    return lambda: os.execve(os.open(p, flags), [p], {})
def readf(p):
    def do():
        with open(p, "rb") as f:
            f.read()
    return do
def mapx(p):
    return lambda: mmap.mmap(os.open(p, os.O_RDONLY), 0, prot=mmap.PROT_READ | mmap.PROT_EXEC)
tool = os.path.join(m, "tool")
for i in range(3):
    run("exec", lambda: os.execv(tool, [tool]))
run("fexecve-rdonly", fexecve(tool, os.O_RDONLY))
run("fexecve-opath", fexecve(tool, os.O_PATH))
run("execve-procfd", lambda: os.execv("/proc/self/fd/%d" % os.open(tool, os.O_PATH), [tool]))
run("mmap-exec", mapx(tool))
for i in range(2):
    run("read-secret", readf(os.path.join(m, "secret")))
run("list-sub", lambda: os.listdir(os.path.join(m, "sub")))
for i in range(3):
    run("read-other", readf(os.path.join(m, "other")))
run("read-noread", readf(os.path.join(m, "noread")))
`

// An overlayfs a user mounts over a guarded directory (nobody, in `unshare -Urm`: the
// kernel lets any user mount one, with any directory they can read as its lower layer)
// reaches the guarded files, but the kernel opens them on the layer (the overlay's backing
// file), which the guard's filesystem mark sees, under their real path (found by handle:
// the layer's private mount prints a path relative to the layer). As nobody, with the
// guarded directory as the lower layer, embedded and through the daemon: reading a denied
// file is EPERM, twice; listing a denied directory is EPERM; a program under `deny exec` is
// refused by execve, fexecve of an O_RDONLY and an O_PATH descriptor of the overlay's file,
// and execve of /proc/self/fd/N, three execve in a row; a mapping PROT_EXEC of it is an
// open, allowed (the limit "Memory maps"); three reads of an allowed file are each
// allowed, each audited under its real path; a read (`access`, each read(2) asks) of a file
// under `deny access` is refused, its open allowed. Before permEvent.Path found such paths by
// handle, the second and third read were refused (their path unknown, one deny rule
// that may match), and the mapping too (the open after the execs).
func TestGuardOverlayOfAGuardedTreeAsNobody(t *testing.T) {
	requireUserNS(t)
	guardModes(t, func(t *testing.T, extra []string) {
		mnt := testenv.PublicTmpfs(t)
		g, work := filepath.Join(mnt, "g"), filepath.Join(mnt, "u")
		mkdirs(t, g, filepath.Join(g, "sub"), work)
		toNobody(t, work)
		writeFile(t, filepath.Join(g, "secret"), "TOPSECRET\n")
		writeFile(t, filepath.Join(g, "other"), "other\n")
		writeFile(t, filepath.Join(g, "noread"), "noread\n")
		copyExe(t, filepath.Join(g, "tool"))
		rules := filepath.Join(t.TempDir(), "guard.rules")
		writeFile(t, rules, "deny open "+g+"/secret\ndeny open "+g+"/sub\ndeny exec "+g+"/**\ndeny access "+g+"/noread\n")
		audit := filepath.Join(t.TempDir(), "audit.jsonl")
		p := start(t, append(append([]string{"guard"}, extra...), "--events", "open,exec,access", "--policy", rules, "--audit", audit, g)...)
		out, err := testenv.Sh(testenv.Nobody, "unshare -Urm python3 - "+g+" "+work+" <<'EOF'\n"+overlayRoutesPy+"EOF")
		t.Cleanup(func() { exec.Command("umount", "-l", filepath.Join(work, "m")).Run() }) // gone with the namespace; never left
		if err != nil {
			t.Fatalf("as nobody: %v\n%s\nguard:\n%s", err, out, p.errText())
		}
		want := strings.Join([]string{
			"exec refused 1", "exec refused 1", "exec refused 1",
			"fexecve-rdonly refused 1", "fexecve-opath refused 1", "execve-procfd refused 1",
			"mmap-exec done",
			"read-secret refused 1", "read-secret refused 1",
			"list-sub refused 1",
			"read-other done", "read-other done", "read-other done",
			"read-noread refused 1",
		}, "\n")
		if got := strings.TrimSpace(out); got != want {
			t.Errorf("as nobody, through an overlay of the guarded directory:\ngot:\n%s\nwant:\n%s", got, want)
		}
		p.stop()
		recs := auditLines(t, audit)
		for _, c := range []struct {
			file, verdict string
			n             int
		}{{"other", "allow", 3}, {"secret", "deny", 2}, {"sub", "deny", 1}, {"noread", "deny", 1}} {
			var got []map[string]any
			for _, r := range auditFor(recs, filepath.Join(g, c.file)) {
				if r["event"] == "open" || c.file == "noread" && r["event"] == "access" {
					got = append(got, r)
				}
			}
			if c.file == "noread" {
				got = got[min(1, len(got)):] // its open, allowed; then its read
			}
			if len(got) != c.n {
				t.Errorf("audit of %s: %d records, want %d under its real path: %v", c.file, len(got), c.n, got)
			}
			for _, r := range got {
				if r["verdict"] != c.verdict {
					t.Errorf("audit of %s: %v, want %s", c.file, r, c.verdict)
				}
			}
		}
	})
}

// guard --mount sees one mount: an overlay whose lower layer is on the guarded mount opens
// its files on the overlay's private copy of that mount, which the mount mark does not see
// (the limit, as for another mount namespace's copy), and the warning at its start says so.
// A guard of an overlay's merged directory (a container's root) cannot place its marks
// (overlayfs takes no filesystem-wide marks); it says so, and says to guard the layer
// directories, which decides the accesses through the overlay too.
func TestGuardMountMarkAndOverlayLimitsAsNobody(t *testing.T) {
	requireUserNS(t)
	mnt := testenv.PublicTmpfs(t)
	g, work := filepath.Join(mnt, "g"), filepath.Join(mnt, "u")
	mkdirs(t, g, work)
	toNobody(t, work)
	writeFile(t, filepath.Join(g, "secret"), "TOPSECRET\n")
	p := start(t, "guard", "--mount", "--deny", g+"/secret", mnt)
	if !strings.Contains(p.errText(), "overlayfs") {
		t.Errorf("guard --mount: the warning does not name overlays:\n%s", p.errText())
	}
	script := "mkdir -p " + work + "/m " + work + "/up " + work + "/wk && mount -t overlay ov -o lowerdir=" + g + ",upperdir=" + work + "/up,workdir=" + work + "/wk " + work + "/m && cat " + work + "/m/secret"
	if out, _ := testenv.Sh(testenv.Nobody, "cat "+g+"/secret 2>&1"); !strings.Contains(out, "Operation not permitted") {
		t.Fatalf("through the guarded mount: %s, want EPERM", out)
	}
	if out, err := testenv.Sh(testenv.Nobody, "unshare -Urm sh -c '"+script+"' 2>&1"); err != nil || !strings.Contains(out, "TOPSECRET") {
		t.Errorf("through nobody's overlay of the mount-marked mount: %v %s; the limit documented is that it is read", err, out)
	}
	p.stop()

	// root's overlay (a container's root): lower in g, merged at m.
	lo, up, wk, m := filepath.Join(mnt, "lo"), filepath.Join(mnt, "up"), filepath.Join(mnt, "wk"), filepath.Join(mnt, "m")
	mkdirs(t, lo, up, wk, m)
	writeFile(t, filepath.Join(lo, "secret"), "TOPSECRET\n")
	if err := sys.Mount("overlay", m, "overlay", 0, "lowerdir="+lo+",upperdir="+up+",workdir="+wk); err != nil {
		t.Skipf("no overlayfs: %v", err)
	}
	t.Cleanup(func() { sys.Unmount(m, sys.MNT_DETACH) })
	_, errOut, st := fsn(t, "guard", "--deny", "**/secret", m)
	if st != 1 || !strings.Contains(errOut, "is on an overlayfs") || !strings.Contains(errOut, "guard those directories instead") {
		t.Errorf("guard of an overlay's merged directory: status %d, stderr:\n%s\nwant 1, saying it is an overlay and to guard the layer directories", st, errOut)
	}
	p = start(t, "guard", "--deny", "**/secret", lo)
	for _, f := range []string{filepath.Join(lo, "secret"), filepath.Join(m, "secret")} {
		if out, _ := testenv.Sh(testenv.Nobody, "cat "+f+" 2>&1"); !strings.Contains(out, "Operation not permitted") {
			t.Errorf("guard of the lower layer: nobody's read of %s: %s, want EPERM", f, out)
		}
	}
}

// exeFromAUsersMountPy, run as nobody with a directory of theirs (argv[1]), the file to read
// (argv[2]) and "overlay" or "bind" (argv[3]): a child in `unshare -Urm` mounts /usr/bin
// there (an overlay with it as lower layer, or a bind mount), opens dash through it (O_PATH)
// and passes the descriptor back over a socket; the parent, in the guard's namespaces, runs
// it (fexecve): root's own dash, reached through nobody's mount, reads the file.
const exeFromAUsersMountPy = `
import os, socket, subprocess, sys
work, secret, mode = sys.argv[1], sys.argv[2], sys.argv[3]
a, b = socket.socketpair()
child = subprocess.Popen(["unshare", "-Urm", "python3", "-c", """
import os, socket, subprocess, sys
w, mode = sys.argv[1], sys.argv[3]
for d in ("m", "up", "wk"):
    os.makedirs(os.path.join(w, d), exist_ok=True)
if mode == "overlay":
    subprocess.run(["mount", "-t", "overlay", "ov", "-o", "lowerdir=/usr/bin,upperdir=%s/up,workdir=%s/wk,userxattr" % (w, w), w + "/m"], check=True)
else:
    subprocess.run(["mount", "--bind", "/usr/bin", w + "/m"], check=True)
s = socket.socket(fileno=int(sys.argv[2]))
socket.send_fds(s, [b"x"], [os.open(w + "/m/dash", os.O_PATH)])
""", work, str(b.fileno()), mode], pass_fds=[b.fileno()])
_, fds, _, _ = socket.recv_fds(a, 1, 1)
child.wait()
pid = os.fork()
if pid == 0:
    os.execve(fds[0], ["sh", "-c", "exec 2>/dev/null; if read x < " + secret + "; then echo read; else echo refused; fi"], {})
os.waitpid(pid, 0)
`

// `deny open D/** exe=/usr/bin/dash` keeps dash from reading D. As nobody: root's dash,
// opened through nobody's own overlay (or bind mount) of /usr/bin in a mount namespace of
// theirs and run from that descriptor in the guard's namespaces, shows an executable whose
// path (/dash, printed relative to nobody's mount) leads to no file here: unverified. It was
// "matches no glob" (root's file: as a container's or an upgraded daemon's), so the deny did
// not hold and dash read the file, both ways, without a copy of dash anywhere (before). A
// process in the guard's own mount namespace whose executable is on a mount of no namespace
// here was handed its executable from another: its path says nothing, it is unknown
// (procfs.ExeUnknown), and the deny denies. dash run directly is denied (a control).
func TestGuardExeThroughAUsersOverlayAsNobody(t *testing.T) {
	requireUserNS(t)
	dash, err := filepath.EvalSymlinks("/usr/bin/dash")
	if err != nil || filepath.Dir(dash) != "/usr/bin" {
		t.Skip("no /usr/bin/dash")
	}
	guardModes(t, func(t *testing.T, extra []string) {
		mnt := testenv.PublicTmpfs(t)
		d, work := filepath.Join(mnt, "d"), filepath.Join(mnt, "u")
		mkdirs(t, d, work)
		toNobody(t, work)
		f := filepath.Join(d, "f")
		writeFile(t, f, "x\n")
		rules := filepath.Join(t.TempDir(), "guard.rules")
		writeFile(t, rules, "deny open "+d+"/** exe="+dash+"\n")
		p := start(t, append(append([]string{"guard"}, extra...), "--events", "open", "--policy", rules, d)...)
		if out, _ := testenv.Sh(testenv.Nobody, dash+" -c 'read x < "+f+" && echo read || echo refused' 2>/dev/null"); strings.TrimSpace(out) != "refused" {
			t.Fatalf("dash run directly: %s, want refused", out)
		}
		for _, mode := range []string{"overlay", "bind"} {
			out, err := testenv.Sh(testenv.Nobody, "python3 - "+work+" "+f+" "+mode+" <<'EOF'\n"+exeFromAUsersMountPy+"EOF")
			if err != nil || strings.TrimSpace(out) != "refused" {
				t.Errorf("as nobody, root's dash through nobody's %s of /usr/bin, run in the guard's namespaces: %v %s, want refused\nguard:\n%s", mode, err, out, p.errText())
			}
		}
	})
}

// Container hosts: an overlay whose upper layer is on a filesystem a guard with a deny rule
// marks copies a lower file up into an O_TMPFILE in its work directory (overlayfs checks at
// its mount that the upper filesystem has them), opened on the overlay's private mount:
// unlinked, on a mount of no namespace here, its path is unknown. Empty at that open, it is
// about no path (policy.Request.Nameless): the deny rule of a particular path does not apply,
// and the write that caused the copy-up works, through an overlay mounted before the guard
// and one mounted while it runs (whose O_TMPFILE probe is an open of the same kind). Before,
// the first got EPERM (a deny rule may match an unknown path), though neither layer is below
// the guarded directory. The guarded file itself stays denied. Embedded and through the
// daemon. docs/security.md, "Overlayfs and containers".
func TestGuardOverlayCopyUpOnAGuardedFilesystem(t *testing.T) {
	guardModes(t, func(t *testing.T, extra []string) {
		mnt := testenv.PublicTmpfs(t)
		g := filepath.Join(mnt, "g")
		dirs := func(pre string) (lo, up, wk, m string) {
			lo, up, wk, m = filepath.Join(mnt, pre+"lo"), filepath.Join(mnt, pre+"up"), filepath.Join(mnt, pre+"wk"), filepath.Join(mnt, pre+"m")
			for _, d := range []string{lo, up, wk, m} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			writeFile(t, filepath.Join(lo, "f"), "x\n")
			return lo, up, wk, m
		}
		mount := func(lo, up, wk, m string) {
			if err := sys.Mount("overlay", m, "overlay", 0, "lowerdir="+lo+",upperdir="+up+",workdir="+wk); err != nil {
				t.Skipf("no overlayfs: %v", err)
			}
			t.Cleanup(func() { sys.Unmount(m, sys.MNT_DETACH) })
		}
		mkdirs(t, g)
		writeFile(t, filepath.Join(g, "secret"), "TOPSECRET\n")
		lo, up, wk, before := dirs("a")
		mount(lo, up, wk, before)
		p := start(t, append(append([]string{"guard"}, extra...), "--deny", g+"/secret", g)...)
		lo, up, wk, after := dirs("b")
		mount(lo, up, wk, after)
		for _, c := range []struct{ m, when string }{{before, "before"}, {after, "after"}} {
			for i := 0; i < 2; i++ { // the copy-up, then a write to the upper file
				if out, _ := testenv.Sh(nil, "echo y >> "+c.m+"/f && echo copied"); !strings.Contains(out, "copied") {
					t.Errorf("root's write %d through an overlay mounted %s the guard: %s, want it done\nguard:\n%s", i+1, c.when, out, p.errText())
				}
			}
		}
		if out, _ := testenv.Sh(nil, "cat "+g+"/secret"); strings.Contains(out, "TOPSECRET") {
			t.Errorf("the guarded file read: %s", out)
		}
	})
}

// watch -r of an overlay (a container's merged directory), as root: overlayfs takes no
// filesystem-wide marks, so it fails, saying to watch its upper layer, where every change
// made through the overlay lands — which that watch then reports (under the upper layer's
// paths). Before, the error ended with the kernel's "(this filesystem does not support these
// events)". Unprivileged (inotify) the merged directory is watched, but a change made in a
// layer directly is not seen there: the limit docs/events.md states, checked here.
func TestWatchOfAnOverlaySaysWatchTheUpperLayer(t *testing.T) {
	testenv.RequireRoot(t)
	base := testenv.PublicTmpfs(t)
	lo, up, wk, ov := base+"/lo", base+"/up", base+"/wk", base+"/ov"
	sh(t, "mkdir "+lo+" "+up+" "+wk+" "+ov+" && mount -t overlay overlay -o lowerdir="+lo+",upperdir="+up+",workdir="+wk+" "+ov)
	t.Cleanup(func() { exec.Command("umount", ov).Run() })
	_, errOut, st := fsn(t, "watch", "-r", ov)
	if st != exitRuntime || !strings.Contains(errOut, ov+": ") || !strings.Contains(errOut, "watch -r its upper layer directory") {
		t.Errorf("watch -r %s: exit %d, %q; want exit %d naming it and its upper layer", ov, st, errOut, exitRuntime)
	}
	p := start(t, "watch", "-r", "-e", "create", up)
	sh(t, "echo x > "+ov+"/through")
	if got := p.collect(10*time.Second, func(l []string) bool { return len(l) > 0 }); len(got) == 0 || !strings.Contains(got[0], "CREATE through") {
		t.Errorf("watch -r %s: %q for a file made through the overlay, want its CREATE", up, got)
	}
	u := start(t, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin, "watch", "-r", "-e", "create", ov)
	sh(t, "echo x > "+lo+"/direct && echo x > "+ov+"/merged")
	got := u.collect(10*time.Second, func(l []string) bool { return len(l) > 0 && strings.Contains(l[len(l)-1], "merged") })
	if len(got) != 1 || !strings.Contains(got[0], "CREATE merged") {
		t.Errorf("unprivileged watch -r %s: %q, want the CREATE of the file made through it only (the one made in the lower layer directly is not seen: the limit)", ov, got)
	}
}

// pre_access through an overlay whose lower layer is on ext4 (a filesystem that takes
// pre-content events): nobody's read through the overlay asks on the backing file, under its
// real path, and `deny pre_access` refuses it, as a read of the file itself; its open is
// allowed. Embedded and through the daemon.
func TestGuardOverlayPreAccessAsNobody(t *testing.T) {
	requireUserNS(t)
	guardModes(t, func(t *testing.T, extra []string) {
		mnt, _ := testenv.PublicExt4Image(t, 16)
		if err := os.Chmod(mnt, 0o755); err != nil {
			t.Fatal(err)
		}
		g, work := filepath.Join(mnt, "g"), filepath.Join(mnt, "u")
		mkdirs(t, g, work)
		toNobody(t, work)
		f := filepath.Join(g, "f")
		writeFile(t, f, "PRE\n")
		if err := os.Chmod(f, 0o644); err != nil {
			t.Fatal(err)
		}
		rules := filepath.Join(t.TempDir(), "guard.rules")
		writeFile(t, rules, "deny pre_access "+f+"\n")
		audit := filepath.Join(t.TempDir(), "audit.jsonl")
		p := start(t, append(append([]string{"guard"}, extra...), "--events", "open,pre_access", "--policy", rules, "--audit", audit, g)...)
		script := "cd " + work + " && mkdir -p m up wk && mount -t overlay ov -o lowerdir=" + g + ",upperdir=up,workdir=wk,userxattr m && cat m/f"
		if out, _ := testenv.Sh(testenv.Nobody, "unshare -Urm sh -c '"+script+"' 2>&1"); strings.Contains(out, "PRE") || !strings.Contains(out, "Operation not permitted") {
			t.Fatalf("as nobody, a read through an overlay of a file under deny pre_access: %s, want EPERM", out)
		}
		p.stop()
		var pre []map[string]any
		for _, r := range auditFor(auditLines(t, audit), f) {
			if r["event"] == "pre_access" {
				pre = append(pre, r)
			}
		}
		if len(pre) != 1 || pre[0]["verdict"] != "deny" {
			t.Errorf("audit of the read through the overlay: %v, want one pre_access deny under %s", pre, f)
		}
	})
}

// namelessRoutesPy, run with a guarded directory (argv[1], writable by its runner) and a
// directory of the runner's (argv[2]) on the same filesystem, under `deny open G/**` and
// `deny exec U/**`, tries to reach content through unlinked files and O_TMPFILEs: a line
// per step, "done" or "refused ERRNO" (the step and what failed). With argv[3] "overlay" it
// also mounts an overlay of the guarded directory and of its own lower directory.
const namelessRoutesPy = `
import os, sys, subprocess, ctypes
libc = ctypes.CDLL(None, use_errno=True)
G, U, mode = sys.argv[1], sys.argv[2], sys.argv[3]
CODES = {99: "done"}
` + runStepPy + `def reopen(fd, flags=os.O_RDONLY):
    return os.open("/proc/self/fd/%d" % fd, flags)
def tmpfile_outside():
    os.write(os.open(U, os.O_TMPFILE | os.O_RDWR, 0o600), b"mine")
planted = os.path.join(G, "planted")
def tmpfile_linked_in():
    fd = os.open(G, os.O_TMPFILE | os.O_RDWR, 0o644)
    os.write(fd, b"mine")
    if libc.linkat(-100, b"/proc/self/fd/%d" % fd, -100, planted.encode(), 0x400) != 0: # AT_SYMLINK_FOLLOW
        raise OSError(ctypes.get_errno(), "linkat")
def with_content():
    p = os.path.join(U, "c%d" % os.getpid())
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o600)
    os.write(fd, b"mine")
    os.unlink(p)
    reopen(fd)
def empty_then_written():
    p = os.path.join(U, "e%d" % os.getpid())
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o600)
    os.unlink(p)
    os.read(reopen(fd), 10)
    print("empty-reopened done", flush=True)
    os.write(fd, b"mine")
    reopen(fd)
def exec_empty():
    fd = os.open(U, os.O_TMPFILE | os.O_RDWR, 0o755)
    r = reopen(fd)
    os.close(fd)
    os.execve(r, ["x"], {})
run("tmpfile-outside", tmpfile_outside)
run("tmpfile-linked-in", tmpfile_linked_in)
run("open-linked", lambda: os.open(planted, os.O_RDONLY)) # decided under its name
run("with-content", with_content)
run("empty-then-written", empty_then_written)
run("exec-empty", exec_empty)
if mode == "overlay":
    m, up, wk, lo = [os.path.join(U, n) for n in ("m", "up", "wk", "lo")]
    for d in (m, up, wk, lo):
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(lo, "own"), "w") as f:
        f.write("own\n")
    subprocess.run(["mount", "-t", "overlay", "ov", "-o", "lowerdir=%s:%s,upperdir=%s,workdir=%s,userxattr" % (G, lo, up, wk), m], check=True)
    def append(p):
        def do():
            with open(p, "a") as f:
                f.write("y\n")
        return do
    def read(p):
        def do():
            with open(p) as f:
                if "TOPSECRET" in f.read():
                    os._exit(98)
        return do
    run("copy-up-own", append(os.path.join(m, "own")))
    run("copy-up-guarded", append(os.path.join(m, "secret")))
    run("read-guarded", read(os.path.join(m, "secret")))
    run("read-upper", read(os.path.join(up, "secret")))
`

// Nameless files (unlinked and empty at an open whose path is unknown: policy.Request.Nameless)
// are about no path: the hostile routes through them, as nobody in their own namespaces
// (where an unlinked file's path is unknown), as nobody in the guard's (where its last path is
// known) and as root in a mount namespace of its own, embedded and through the daemon, under
// `deny open G/**` and `deny exec U/**` (G writable by nobody). An O_TMPFILE outside G is
// opened (before, EPERM where its path was unknown); one made in G and linked there is
// refused when opened by its name (in the guard's namespace its open is already refused: its
// last path is G's); an unlinked file with content reopened through /proc/self/fd is refused
// where its path is unknown, and an empty one is reopened, but refused once written (before,
// EPERM already while empty); an empty O_TMPFILE under
// `deny exec` is refused (EPERM, not ENOEXEC: exec is never decided as nameless); and through
// an overlay of G, nobody's copy-up of its own file works, while the guarded file is copied
// up by no route (its lower open is refused: EPERM) and read by none. Before, each open of a
// nameless file where its path was unknown was EPERM (a deny rule may match), and so was the
// copy-up through an overlay mounted before the guard (TestGuardOverlayCopyUpOnAGuardedFilesystem).
func TestGuardNamelessFilesAsNobody(t *testing.T) {
	requireUserNS(t)
	guardModes(t, func(t *testing.T, extra []string) {
		mnt := testenv.PublicTmpfs(t)
		g, u := filepath.Join(mnt, "g"), filepath.Join(mnt, "u")
		mkdirs(t, g, u)
		toNobody(t, g, u)
		secret := filepath.Join(g, "secret")
		writeFile(t, secret, "TOPSECRET\n")
		toNobody(t, secret) // only the guard stands in the way
		rules := filepath.Join(t.TempDir(), "guard.rules")
		writeFile(t, rules, "deny open "+g+"/**\ndeny exec "+u+"/**\n")
		p := start(t, append(append([]string{"guard"}, extra...), "--events", "open,exec", "--policy", rules, g, u)...)
		unknownPath := []string{"tmpfile-outside done", "tmpfile-linked-in done", "open-linked refused 1", "with-content refused 1", "empty-reopened done", "empty-then-written refused 1", "exec-empty refused 1",
			"copy-up-own done", "copy-up-guarded refused 1", "read-guarded refused 1", "read-upper refused 2"}
		for _, c := range []struct {
			name string
			cred *syscall.Credential
			cmd  string
			want []string
		}{
			{"nobody in its own namespaces", testenv.Nobody, "unshare -Urm python3 - %s %s overlay", unknownPath},
			{"root in a mount namespace of its own", nil, "unshare -m python3 - %s %s overlay", unknownPath},
			{"nobody in the guard's namespaces", testenv.Nobody, "python3 - %s %s plain",
				[]string{"tmpfile-outside done", "tmpfile-linked-in refused 1", "open-linked refused 2", "with-content done", "empty-reopened done", "empty-then-written done", "exec-empty refused 1"}},
		} {
			sh := fmt.Sprintf(c.cmd, g, u)
			out, err := testenv.Sh(c.cred, sh+" <<'EOF'\n"+namelessRoutesPy+"EOF")
			exec.Command("umount", "-l", filepath.Join(u, "m")).Run() // gone with the namespace; never left
			if err != nil {
				t.Fatalf("%s: %v\n%s\nguard:\n%s", c.name, err, out, p.errText())
			}
			if got, want := strings.TrimSpace(out), strings.Join(c.want, "\n"); got != want {
				t.Errorf("%s, nameless routes:\ngot:\n%s\nwant:\n%s", c.name, got, want)
			}
			if b, err := os.ReadFile(filepath.Join(g, "planted")); err == nil && string(b) != "mine" {
				t.Errorf("%s: the file linked into the guarded directory holds %q, want its own content", c.name, b)
			}
			os.Remove(filepath.Join(g, "planted"))
			os.RemoveAll(filepath.Join(u, "up"))
			os.RemoveAll(filepath.Join(u, "wk"))
		}
	})
}
