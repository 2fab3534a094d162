//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
	"github.com/fsnotifyd/fsnotifyd/internal/trust"
)

// runStepPy defines run(step, do) for the python3 scripts these tests run as nobody: do (an
// exec, usually) runs in a forked child, and run prints step and how the child ended, which it
// returns: CODES's word for its exit status (the script defines CODES first), "refused ERRNO"
// where do raised OSError, else "exit N".
const runStepPy = `def run(step, do):
    pid = os.fork()
    if pid == 0:
        try:
            do()
        except OSError as e:
            os._exit(100 + e.errno)
        os._exit(99)
    _, st = os.waitpid(pid, 0)
    c = os.waitstatus_to_exitcode(st)
    r = CODES.get(c, "refused %d" % (c - 100) if c >= 100 else "exit %d" % c)
    print(step, r, flush=True)
    return r
`

// Every way a hostile user has to run a file meets the allowlist's `deny exec` on the file
// the kernel opens, never on a name: as nobody, on a tmpfs nobody writes, under
// `allow exec D/** trusted=yes` / `deny exec D/**` (the exec memo on: every rule for exec
// tests only the file), embedded and through the daemon.
//
//   - Routes: execve by path, fexecve (execveat AT_EMPTY_PATH) of an O_PATH and of an
//     O_RDONLY descriptor, execve of /proc/self/fd/N of each, fexecve of a descriptor whose
//     file was then unlinked. The trusted copy of true runs by each (the memo and the hash
//     cache warm after the first); an untrusted file of the same size (false) is refused
//     (EPERM) by each.
//   - #! chains, up to the kernel's depth: a trusted script whose interpreter is an
//     untrusted script is refused (the kernel opens each interpreter for exec), and so is a
//     chain of four trusted scripts whose last link is untrusted; the same chain all trusted
//     runs.
//   - A rename race: while nobody swaps the untrusted file over the trusted one's name and
//     back, 200 execs of that name: the guard decides on the event's descriptor (its content
//     and the path it has at that moment), so false's content never runs (a run that exits 1
//     would be one); each exec either runs true, is refused, or finds no file.
//
// Any route decided by the name the process gave, or by a cached verdict for another inode,
// would run false (exit 1: "failed") or be allowed where it must be refused.
func TestGuardExecRoutesAsNobody(t *testing.T) {
	trueExe, falseExe := programFile(t, "true"), programFile(t, "false")
	guardModes(t, func(t *testing.T, extra []string) {
		mnt := testenv.PublicTmpfs(t)
		home, tool := nobodysTool(t, mnt, "tool", trueExe, 0)
		files := map[string]string{
			"other": string(falseExe),
			// s1 (trusted) is run by s2 (untrusted), which sh runs.
			"s1": "#!" + home + "/s2\n", "s2": "#!/bin/sh\nexit 0\n",
			// c1..c4 trusted, each run by the next, c4 by sh: the kernel's depth allows it.
			"c1": "#!" + home + "/c2\n", "c2": "#!" + home + "/c3\n", "c3": "#!" + home + "/c4\n", "c4": "#!/bin/sh\nexit 0\n",
			// u1..u3 trusted, u4 (their last link) untrusted.
			"u1": "#!" + home + "/u2\n", "u2": "#!" + home + "/u3\n", "u3": "#!" + home + "/u4\n", "u4": "#!/bin/sh\nexit 0\n",
		}
		for name, content := range files {
			p := filepath.Join(home, name)
			if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}
		tf := filepath.Join(t.TempDir(), "local.trust")
		args := []string{"trust", "add", "--file", tf, tool}
		for _, n := range []string{"s1", "c1", "c2", "c3", "c4", "u1", "u2", "u3"} {
			args = append(args, filepath.Join(home, n))
		}
		if _, errOut, st := fsn(t, args...); st != 0 {
			t.Fatalf("trust add: %s", errOut)
		}
		rules := filepath.Join(t.TempDir(), "guard.rules")
		writeFile(t, rules, "allow exec "+mnt+"/** trusted=yes\ndeny exec "+mnt+"/**\n")
		time.Sleep(trust.DefaultSettle + 100*time.Millisecond) // old enough for the hash cache and the memo
		p := start(t, append(append([]string{"guard"}, extra...),
			"--events", "open,exec", "--policy", rules, "--trust", tf, "--no-package-trust", mnt)...)
		out, err := testenv.Sh(testenv.Nobody, `python3 - `+home+` <<'EOF'
import os, sys
home = sys.argv[1]
CODES = {0: "ran", 1: "failed"}
`+runStepPy+`def path(p):
    return lambda: os.execv(p, [p])
def fd(p, flags, proc):
    def do():
        n = os.open(p, flags)
        if proc:
            os.execv("/proc/self/fd/%d" % n, [p])
        os.execve(n, [p], {})
    return do
def unlinked(p):
    def do():
        n = os.open(p, os.O_RDONLY)
        os.unlink(p)
        os.execve(n, [p], {})
    return do
for name in ("tool", "other"):
    p = os.path.join(home, name)
    run(name + " path", path(p))
    run(name + " path-again", path(p))
    run(name + " fexecve-opath", fd(p, os.O_PATH, False))
    run(name + " fexecve-rdonly", fd(p, os.O_RDONLY, False))
    run(name + " proc-fd-opath", fd(p, os.O_PATH, True))
    run(name + " proc-fd-rdonly", fd(p, os.O_RDONLY, True))
with open(os.path.join(home, "other"), "rb") as f:
    data = f.read()
gone = os.path.join(home, "gone")
with open(gone, "wb") as f:
    f.write(data)
os.chmod(gone, 0o755)
run("other fexecve-unlinked", unlinked(gone))
for name in ("s1", "c1", "u1"):
    run(name + " chain", path(os.path.join(home, name)))
# The rename race.
tool, other, bak, stop = [os.path.join(home, n) for n in ("tool", "other", "bak", "stop")]
pid = os.fork()
if pid == 0:
    while not os.path.exists(stop):
        os.rename(tool, bak); os.rename(other, tool); os.rename(tool, other); os.rename(bak, tool)
    os._exit(0)
counts = {}
for i in range(200):
    pid2 = os.fork()
    if pid2 == 0:
        try:
            os.execv(tool, [tool])
        except OSError as e:
            os._exit(100 + e.errno)
    _, st = os.waitpid(pid2, 0)
    c = os.waitstatus_to_exitcode(st)
    k = {0: "ran", 1: "failed", 101: "refused", 102: "missing"}.get(c, "exit%d" % c)
    counts[k] = counts.get(k, 0) + 1
open(stop, "w").close()
os.waitpid(pid, 0)
print("race", " ".join("%s=%d" % kv for kv in sorted(counts.items())))
run("tool after-race", path(tool))
run("other after-race", path(other))
EOF`)
		if err != nil {
			t.Fatalf("as nobody: %v\n%s\nguard:\n%s", err, out, p.errText())
		}
		var want []string
		for _, name := range []string{"tool", "other"} {
			verdict := "ran"
			if name == "other" {
				verdict = "refused 1"
			}
			for _, route := range []string{"path", "path-again", "fexecve-opath", "fexecve-rdonly", "proc-fd-opath", "proc-fd-rdonly"} {
				want = append(want, name+" "+route+" "+verdict)
			}
		}
		want = append(want, "other fexecve-unlinked refused 1", "s1 chain refused 1", "c1 chain ran", "u1 chain refused 1")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var race string
		var got []string
		for _, l := range lines {
			if strings.HasPrefix(l, "race ") {
				race = l
				continue
			}
			if strings.HasSuffix(l, "after-race ran") || strings.HasSuffix(l, "after-race refused 1") {
				continue
			}
			got = append(got, l)
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("as nobody:\ngot:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		// The race: false's content never runs, and nothing but a run of true, a refusal or a
		// missing name happens; 200 execs in all.
		var n int
		for _, kv := range strings.Fields(strings.TrimPrefix(race, "race ")) {
			k, v, _ := strings.Cut(kv, "=")
			if k != "ran" && k != "refused" && k != "missing" {
				t.Errorf("rename race: %q, want only ran, refused, missing (false's content must never run)", race)
			}
			c, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("rename race: %q: %v", race, err)
			}
			n += c
		}
		if n != 200 {
			t.Errorf("rename race: %q, want 200 execs", race)
		}
		t.Logf("%s", race)
		if !strings.Contains(out, "tool after-race ran") || !strings.Contains(out, "other after-race refused 1") {
			t.Errorf("after the race: %s\nwant the trusted tool to run and the other refused", out)
		}
	})
}

// An unlinked file's path is its last one, as the kernel prints it for the event's
// descriptor: in the mount namespace the file was opened in. As nobody, in a user and mount
// namespace of their own (unshare -Urm), a directory of nobody's on the guarded filesystem is
// bind-mounted over another directory there (one nobody may not write), a program is written
// through it, opened, unlinked and run from its descriptor (fexecve): the guard read the
// other namespace's path as the file's, so an allow by that directory's path let it run (the
// path allowlist), or it was outside the guarded subtree altogether (a denylist of nobody's
// directory, guarding only that). The same file left linked is refused (its path does not
// lead to it here: unknown), and so must the unlinked one be. Embedded and through the daemon.
func TestGuardUnlinkedFileFromAUsersMountNamespaceAsNobody(t *testing.T) {
	requireUserNS(t)
	falseExe := programFile(t, "false")
	guardModes(t, func(t *testing.T, extra []string) {
		for _, tc := range []struct {
			name  string
			rules string // for MNT, whose home is nobody's and bin and pub root's
			guard string // the path guarded, under MNT
			over  string // the directory nobody's home is bind-mounted over, under MNT
		}{
			{"path allowlist", "allow exec MNT/bin/**\ndeny exec MNT/**\n", "", "bin"},
			{"denylist of the guarded subtree", "deny exec MNT/home/**\n", "home", "pub"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				mnt := testenv.PublicTmpfs(t)
				home, _ := nobodysTool(t, mnt, "tool", falseExe, 0)
				for _, d := range []string{"bin", "pub"} {
					if err := os.Mkdir(filepath.Join(mnt, d), 0o755); err != nil {
						t.Fatal(err)
					}
				}
				rules := filepath.Join(t.TempDir(), "guard.rules")
				writeFile(t, rules, strings.ReplaceAll(tc.rules, "MNT/", mnt+"/"))
				p := start(t, append(append([]string{"guard"}, extra...),
					"--events", "exec", "--policy", rules, filepath.Join(mnt, tc.guard))...)
				over := filepath.Join(mnt, tc.over)
				nobodySays(t, p, "linked refused 1\nunlinked refused 1", `unshare -Urm python3 - `+home+` `+over+` <<'EOF'
import os, subprocess, sys
home, over = sys.argv[1], sys.argv[2]
data = open(os.path.join(home, "tool"), "rb").read()
CODES = {0: "exit 0", 1: "ran"}
`+runStepPy+`def fexecve(name, unlink):
    def do():
        p = os.path.join(over, name)
        with open(p, "wb") as f:
            f.write(data)
        os.chmod(p, 0o755)
        n = os.open(p, os.O_RDONLY)
        if unlink:
            os.unlink(p)
        os.execve(n, [p], {})
    return do
subprocess.run(["mount", "--bind", home, over], check=True)
run("linked", fexecve("linked", False))
run("unlinked", fexecve("unlinked", True))
EOF`)
			})
		}
	})
}

// A directory's path, too, is printed in the mount namespace it was opened in. As nobody, in
// unshare -Urm, a directory the guard keeps closed (`deny open MNT/secret`, the guard on the
// whole filesystem) bind-mounted at /mnt and listed there: the guard took "/mnt" for its path
// and let nobody list it. It must be refused, as it is by its own path; a directory the rules
// allow is still listed by its path here. Embedded and through the daemon.
func TestGuardDirectoryFromAUsersMountNamespaceAsNobody(t *testing.T) {
	requireUserNS(t)
	guardModes(t, func(t *testing.T, extra []string) {
		mnt := testenv.PublicTmpfs(t)
		for _, d := range []string{"secret", "pub"} {
			if err := os.Mkdir(filepath.Join(mnt, d), 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(mnt, d, "f"), "x\n")
		}
		p := guardOpens(t, extra, mnt, "deny open "+mnt+"/secret\ndeny open "+mnt+"/secret/**\n")
		secret, pub := filepath.Join(mnt, "secret"), filepath.Join(mnt, "pub")
		nobodySays(t, p, "pub listed\nsecret refused\nsecret-in-ns refused", `try() { if ls "$2" >/dev/null 2>&1; then echo "$1 listed"; else echo "$1 refused"; fi; }
try pub `+pub+`
try secret `+secret+`
unshare -Urm sh -c 'mount --bind `+secret+` /mnt && if ls /mnt >/dev/null 2>&1; then echo "secret-in-ns listed"; else echo "secret-in-ns refused"; fi'`)
	})
}

// A program a user deleted while it runs (or that deletes itself) shows its executable as
// "PATH (deleted)", which leads to no file: unverified, and before 2026-12-07 it matched no
// exe= glob, as an upgraded daemon's does. But its path was the user's choice: as nobody, a
// copy of dash in nobody's directory, which `deny open MNT/secret/** exe=MNT/home/**` keeps
// from the secret, removed itself and then read the secret. So did the same copy, linked, run
// in the guard's namespaces from a descriptor opened through a bind mount in nobody's own
// (its executable reads /mnt/sh). Its executable may be any program (procfs.ExeUnknown: an
// unverified executable not owned by root that was deleted or opened through another mount
// namespace's mount), so the deny holds. Embedded and through the daemon.
func TestGuardDeletedExecutableAsNobody(t *testing.T) {
	requireUserNS(t)
	guardModes(t, func(t *testing.T, extra []string) {
		mnt := testenv.PublicTmpfs(t)
		home, _ := nobodysTool(t, mnt, "sh", programFile(t, "dash"), 0)
		secret := filepath.Join(mnt, "secret")
		if err := os.Mkdir(secret, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(secret, "f"), "x\n")
		p := guardOpens(t, extra, mnt, "deny open "+secret+"/** exe="+home+"/**\n")
		sh, f := filepath.Join(home, "sh"), filepath.Join(secret, "f")
		nobodySays(t, p, "cat read\nlive refused\ndeleted refused", `cp `+sh+` `+home+`/sh2
cat `+f+` >/dev/null && echo "cat read"
`+sh+` -c 'if read x < `+f+`; then echo "live read"; else echo "live refused"; fi' 2>/dev/null
`+home+`/sh2 -c 'rm `+home+`/sh2; if read x < `+f+`; then echo "deleted read"; else echo "deleted refused"; fi' 2>/dev/null`)
		// The same program, linked, run in the guard's namespaces from a descriptor opened
		// through a bind mount in nobody's own (unshare -Urm, passed back over a socket): its
		// executable reads as the path there, /mnt/sh, which leads nowhere here.
		nobodySays(t, p, "from-namespace refused", `python3 - `+home+` `+f+` <<'EOF'
import os, socket, subprocess, sys
home, secret = sys.argv[1], sys.argv[2]
a, b = socket.socketpair()
child = subprocess.Popen(["unshare", "-Urm", "python3", "-c", """
import os, socket, subprocess, sys
subprocess.run(["mount", "--bind", sys.argv[1], "/mnt"], check=True)
s = socket.socket(fileno=int(sys.argv[2]))
socket.send_fds(s, [b"x"], [os.open("/mnt/sh", os.O_PATH)])
""", home, str(b.fileno())], pass_fds=[b.fileno()])
_, fds, _, _ = socket.recv_fds(a, 1, 1)
child.wait()
pid = os.fork()
if pid == 0:
    os.execve(fds[0], ["sh", "-c", "exec 2>/dev/null; if read x < " + secret + "; then echo 'from-namespace read'; else echo 'from-namespace refused'; fi"], {})
os.waitpid(pid, 0)
EOF`)
	})
}
