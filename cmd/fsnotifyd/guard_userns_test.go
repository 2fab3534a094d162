//go:build linux

package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/sysattr"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// guardOpens starts a guard (guardModes' extra) deciding the opens on mnt by policy.
func guardOpens(t *testing.T, extra []string, mnt, policy string) *proc {
	t.Helper()
	rules := filepath.Join(t.TempDir(), "guard.rules")
	writeFile(t, rules, policy)
	return start(t, append(append([]string{"guard"}, extra...), "--events", "open", "--policy", rules, mnt)...)
}

// nobodySays fails the test unless script, run as nobody (testenv.Sh), prints want (trimmed);
// p is the guard, whose stderr the failure shows.
func nobodySays(t *testing.T, p *proc, want, script string) {
	t.Helper()
	if out, err := testenv.Sh(testenv.Nobody, script); err != nil || strings.TrimSpace(out) != want {
		t.Fatalf("as nobody: %v\ngot:\n%s\nwant:\n%s\nguard:\n%s", err, out, want, p.errText())
	}
}

// guardSecretByExe starts a guard (guardModes' extra) with an audit log, on a mount whose file
// data/secret ("TOPSECRET\n") only a process for which cond holds may open ("allow open
// DATA/** COND", then "deny open DATA/**"), and a trust file listing trusted: the guard, the
// secret's path, the audit log's.
func guardSecretByExe(t *testing.T, extra []string, cond string, trusted ...string) (p *proc, secret, audit string) {
	t.Helper()
	mnt := testenv.PublicTmpfs(t)
	data := filepath.Join(mnt, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	secret = filepath.Join(data, "secret")
	writeFile(t, secret, "TOPSECRET\n")
	etc := t.TempDir()
	tf := filepath.Join(etc, "local.trust")
	if _, errOut, st := fsn(t, append([]string{"trust", "add", "--file", tf}, trusted...)...); st != 0 {
		t.Fatalf("trust add: %s", errOut)
	}
	rules := filepath.Join(etc, "guard.rules")
	writeFile(t, rules, "allow open "+data+"/** "+cond+"\ndeny open "+data+"/**\n")
	audit = filepath.Join(t.TempDir(), "audit.jsonl")
	p = start(t, append(append([]string{"guard"}, extra...), "--events", "open", "--policy", rules,
		"--trust", tf, "--no-package-trust", "--audit", audit, mnt)...)
	return p, secret, audit
}

// requireUserNS skips when an unprivileged user cannot make a user and mount namespace here.
func requireUserNS(t *testing.T) {
	t.Helper()
	if out, err := testenv.Sh(testenv.Nobody, "unshare -Urm true"); err != nil {
		t.Skipf("no unprivileged user namespaces here: %v %s", err, out)
	}
}

// The paths a process gives in a mount namespace of its own user's say nothing of what runs:
// as nobody, `unshare -Urm` and a bind mount of python3 over /usr/bin/true make a process
// whose /proc/PID/exe reads /usr/bin/true while python3 runs. Such an executable is unknown: an
// exe= condition may hold, so `deny open ... exe=/usr/bin/python3*` denies its open of a
// script. Before, it matched no glob, and the script ran (a reviewer's report).
func TestGuardExeFromAUsersMountNamespaceAsNobody(t *testing.T) {
	requireUserNS(t)
	python, err := filepath.EvalSymlinks("/usr/bin/python3")
	if err != nil {
		t.Skip("no python3")
	}
	guardModes(t, func(t *testing.T, extra []string) {
		mnt := testenv.PublicTmpfs(t)
		script := filepath.Join(mnt, "x.py")
		writeFile(t, script, "print('SCRIPT RAN')\n")
		p := guardOpens(t, extra, mnt, "deny open "+mnt+"/** exe=/usr/bin/python3*\n")
		// Verified, as a control: python3 itself is denied.
		if out, _ := testenv.Sh(testenv.Nobody, python+" "+script+" 2>&1"); strings.Contains(out, "SCRIPT RAN") {
			t.Fatalf("python3 ran the script: %s", out)
		}
		out, _ := testenv.Sh(testenv.Nobody, "unshare -Urm sh -c 'mount --bind "+python+" /usr/bin/true && /usr/bin/true "+script+"' 2>&1")
		if strings.Contains(out, "SCRIPT RAN") {
			t.Fatalf("python3 bind-mounted over /usr/bin/true in nobody's namespace ran the script: %s\nguard:\n%s", out, p.errText())
		}
		if !strings.Contains(out, "Permission denied") && !strings.Contains(out, "Operation not permitted") {
			t.Fatalf("want the open denied, got: %s", out)
		}
	})
}

// ld.so PROGRAM runs PROGRAM with the loader as the process's executable: the loader is a
// trusted file, but what runs is whatever it loaded, so trusted_exe= of such a process may
// hold (an allow rule is passed over, a deny rule denies). As nobody, a copy of cat that no
// trust file lists, run through the listed loader, must not read a file that only trusted
// executables may read; the listed cat may (a control). Before, the loader's trust vouched
// for the copy.
func TestGuardTrustedExeThroughTheLoaderAsNobody(t *testing.T) {
	loaders := sysattr.Loaders()
	if len(loaders) == 0 {
		t.Skip("no dynamic loader found")
	}
	var loader string
	for l := range loaders {
		loader = l
	}
	cat, err := filepath.EvalSymlinks("/usr/bin/cat")
	if err != nil {
		t.Skip("no cat")
	}
	guardModes(t, func(t *testing.T, extra []string) {
		mycat := filepath.Join(testenv.PublicDir(t), "mycat")
		if err := os.WriteFile(mycat, must(os.ReadFile(cat)), 0o755); err != nil {
			t.Fatal(err)
		}
		p, secret, audit := guardSecretByExe(t, extra, "trusted_exe=yes", loader, cat)
		if out, err := testenv.Sh(testenv.Nobody, cat+" "+secret); err != nil || !strings.Contains(out, "TOPSECRET") {
			t.Fatalf("the listed cat could not read it: %v %s\nguard:\n%s", err, out, p.errText())
		}
		if out, _ := testenv.Sh(testenv.Nobody, loader+" "+mycat+" "+secret+" 2>&1"); strings.Contains(out, "TOPSECRET") {
			t.Fatalf("an unlisted cat run through the loader read it: %s", out)
		}
		p.stop()
		var through, listed []map[string]any
		for _, r := range auditFor(auditLines(t, audit), secret) {
			switch r["exe"] {
			case loader:
				through = append(through, r)
			case cat:
				listed = append(listed, r)
			}
		}
		if len(through) != 1 || through[0]["verdict"] != "deny" {
			t.Errorf("audit of the open through the loader: %v, want one deny naming the loader as exe", through)
		}
		// An allow by trusted_exe= names the executable it verified, as a deny does.
		if len(listed) != 1 || listed[0]["verdict"] != "allow" {
			t.Errorf("audit of the listed cat's open: %v, want one allow naming cat as exe", listed)
		}
	})
}

// A read-only mount counts for mount_writable=no only when it is root's: as nobody, in a
// mount namespace of its own, a read-only bind mount of a directory over itself leaves its
// files writable through every other mount. `deny exec ** mount_writable=yes trusted=no`
// must still deny nobody's untrusted tool run through it (before: it ran), while root's own
// read-only bind mount, in the guard's mount namespace, counts as read-only (a control: the
// allow below applies).
func TestGuardMountWritableFromAUsersMountNamespaceAsNobody(t *testing.T) {
	requireUserNS(t)
	mnt := testenv.PublicTmpfs(t)
	for _, d := range []string{"up", "ro"} {
		dir := filepath.Join(mnt, d)
		if err := os.Mkdir(dir, 0o1777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o1777); err != nil {
			t.Fatal(err)
		}
		copyExe(t, filepath.Join(dir, "t"))
	}
	ro := filepath.Join(mnt, "ro")
	if out, err := exec.Command("sh", "-c", "mount --bind "+ro+" "+ro+" && mount -o remount,bind,ro "+ro).CombinedOutput(); err != nil {
		t.Fatalf("root's read-only bind mount: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", ro).Run() })
	rules := filepath.Join(t.TempDir(), "guard.rules")
	writeFile(t, rules, "deny exec "+mnt+"/** mount_writable=yes trusted=no\nallow exec "+mnt+"/**\n")
	p := start(t, "guard", "--events", "exec", "--policy", rules, "--no-package-trust", mnt)
	if out, err := testenv.Sh(testenv.Nobody, ro+"/t && echo RAN"); err != nil || !strings.Contains(out, "RAN") {
		t.Fatalf("a tool on root's read-only bind mount did not run: %v %s\nguard:\n%s", err, out, p.errText())
	}
	up := filepath.Join(mnt, "up")
	if out, _ := testenv.Sh(testenv.Nobody, up+"/t; echo rc=$?"); !strings.Contains(out, "rc=126") {
		t.Fatalf("a tool on the writable mount: %s, want it denied (126)", out)
	}
	out, _ := testenv.Sh(testenv.Nobody, "unshare -Urm sh -c 'mount --bind "+up+" "+up+" && mount -o remount,bind,ro "+up+" && "+up+"/t && echo RAN' 2>&1")
	if strings.Contains(out, "RAN") {
		t.Fatalf("nobody's tool ran through nobody's own read-only bind mount: %s", out)
	}
}

// forgeExeC is a program of nobody's own that makes its /proc/PID/exe name another
// executable (argv[1]) and then copies a file (argv[2]) to stdout. It moves every mapping of
// its own executable to anonymous memory (mremap over itself: the code stays where it runs),
// which prctl(PR_SET_MM_MAP) asks for before it replaces the executable, and sets exe_fd
// with the CAP_CHECKPOINT_RESTORE it holds in a user namespace of its own (unshare). With
// SIBLING set, a clone(CLONE_VM) child does that in its own user namespace, and the parent,
// which stays in the first user namespace and the first mount namespace, opens the file.
const forgeExeC = `#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/prctl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static char **args;

static int move_exe_maps(void) {
	char self[4096], line[8192];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n < 0) return -1;
	self[n] = 0;
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f) return -1;
	unsigned long lo[64], hi[64];
	int k = 0;
	while (fgets(line, sizeof line, f) && k < 64) {
		char *p = strchr(line, '/');
		if (!p) continue;
		p[strcspn(p, "\n")] = 0;
		if (strcmp(p, self) == 0 && sscanf(line, "%lx-%lx", &lo[k], &hi[k]) == 2) k++;
	}
	fclose(f);
	for (int i = 0; i < k; i++) {
		size_t len = hi[i] - lo[i];
		void *tmp = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (tmp == MAP_FAILED) return -1;
		mprotect((void *)lo[i], len, PROT_READ | PROT_WRITE | PROT_EXEC);
		memcpy(tmp, (void *)lo[i], len);
		mprotect(tmp, len, PROT_READ | PROT_WRITE | PROT_EXEC);
		if (mremap(tmp, len, len, MREMAP_FIXED | MREMAP_MAYMOVE, (void *)lo[i]) == MAP_FAILED) return -1;
	}
	return 0;
}

static int forge(void *unused) {
	if (unshare(CLONE_NEWUSER) != 0) { perror("unshare"); return 3; }
	int fd = open(args[1], O_RDONLY);
	if (fd < 0) { perror("open exe"); return 4; }
	if (move_exe_maps() != 0) { perror("move"); return 5; }
	char buf[4096];
	int sf = open("/proc/self/stat", O_RDONLY);
	ssize_t n = read(sf, buf, sizeof buf - 1);
	close(sf);
	if (n <= 0) return 6;
	buf[n] = 0;
	unsigned long v[64] = {0};
	int i = 3;
	for (char *tok = strtok(strrchr(buf, ')') + 2, " "); tok && i < 64; tok = strtok(NULL, " ")) v[i++] = strtoul(tok, NULL, 10);
	struct prctl_mm_map m = {0};
	m.start_code = v[26]; m.end_code = v[27]; m.start_stack = v[28];
	m.start_data = v[45]; m.end_data = v[46]; m.start_brk = v[47];
	m.arg_start = v[48]; m.arg_end = v[49]; m.env_start = v[50]; m.env_end = v[51];
	m.brk = (unsigned long)sbrk(0);
	if (m.brk < m.start_brk) m.brk = m.start_brk;
	m.exe_fd = fd;
	if (prctl(PR_SET_MM, PR_SET_MM_MAP, &m, sizeof m, 0) != 0) { perror("prctl"); return 6; }
	return 0;
}

static int show(void) {
	char l[4096], buf[4096];
	ssize_t n = readlink("/proc/self/exe", l, sizeof l - 1);
	if (n > 0) { l[n] = 0; printf("exe=%s\n", l); fflush(stdout); }
	int in = open(args[2], O_RDONLY);
	if (in < 0) { perror("open"); return 7; }
	while ((n = read(in, buf, sizeof buf)) > 0) write(1, buf, n);
	return 0;
}

int main(int argc, char **argv) {
	if (argc < 3) return 2;
	args = argv;
	if (getenv("SIBLING")) {
		char *stk = malloc(1 << 20);
		int st, pid = clone(forge, stk + (1 << 20), CLONE_VM | SIGCHLD, NULL);
		if (pid < 0 || waitpid(pid, &st, 0) != pid || st != 0) return 8;
		return show();
	}
	int err = forge(NULL);
	return err ? err : show();
}
`

// buildForgeExe compiles forgeExeC into a directory nobody may read; it skips without a C
// compiler or when the program cannot do its trick here.
func buildForgeExe(t *testing.T) string {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler")
	}
	dir := testenv.PublicDir(t)
	src := filepath.Join(dir, "forge.c")
	writeFile(t, src, forgeExeC)
	bin := filepath.Join(dir, "forge")
	if out, err := exec.Command(cc, "-O1", "-o", bin, src).CombinedOutput(); err != nil {
		t.Skipf("cc: %v %s", err, out)
	}
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// Any process may choose its /proc/PID/exe where it holds CAP_CHECKPOINT_RESTORE in its user
// namespace: in one of its own (unshare -U, no mount namespace needed), prctl(PR_SET_MM_MAP)
// with exe_fd sets it to any executable file it can open, once its own executable is
// unmapped. As nobody, a program of nobody's own makes its exe read /usr/bin/cat, a listed,
// verified file (the path leads to that very file), and reads a file that only trusted
// executables may read (trusted_exe=yes), or only cat (exe=). A process in a user namespace
// other than the guard's is now unknown (procfs.ReadExe, ExeUnknown): an allow by exe= or
// trusted_exe= is passed over. Before, both allowed it and it read the secret.
//
// The limit: a clone(CLONE_VM) child shares its parent's memory, and so its executable; the
// child enters a user namespace of its own, sets the executable there, and the parent, which
// never left the guard's user and mount namespaces, runs as "cat". Nothing in /proc tells
// that parent from cat (docs/security.md, "What fanotify cannot see"): the test checks that
// this limit is what the documentation says, and fails if it goes (then update the docs).
func TestGuardExeForgedInAUserNamespaceAsNobody(t *testing.T) {
	requireUserNS(t)
	forge := buildForgeExe(t)
	cat, err := filepath.EvalSymlinks("/usr/bin/cat")
	if err != nil {
		t.Skip("no cat")
	}
	// The trick works here, away from any guard: its exe reads cat.
	probe := filepath.Join(testenv.PublicDir(t), "probe")
	writeFile(t, probe, "PROBE\n")
	if err := os.Chmod(probe, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := testenv.Sh(testenv.Nobody, forge+" "+cat+" "+probe+" 2>&1"); err != nil || !strings.Contains(out, "exe="+cat+"\nPROBE") {
		t.Skipf("prctl(PR_SET_MM_MAP) exe_fd does not work here: %v %s", err, out)
	}
	for _, tc := range []struct{ name, rule string }{
		{"trusted_exe", "trusted_exe=yes"},
		{"exe", "exe=" + cat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			guardModes(t, func(t *testing.T, extra []string) {
				p, secret, audit := guardSecretByExe(t, extra, tc.rule, cat)
				if out, err := testenv.Sh(testenv.Nobody, cat+" "+secret); err != nil || !strings.Contains(out, "TOPSECRET") {
					t.Fatalf("cat itself could not read it: %v %s\nguard:\n%s", err, out, p.errText())
				}
				out, _ := testenv.Sh(testenv.Nobody, forge+" "+cat+" "+secret+" 2>&1")
				if !strings.Contains(out, "exe="+cat) {
					t.Fatalf("the forged exe did not read %s: %s", cat, out)
				}
				if strings.Contains(out, "TOPSECRET") {
					t.Fatalf("nobody's program, its exe set to cat in its own user namespace, read the secret:\n%s\nguard:\n%s", out, p.errText())
				}
				if !strings.Contains(out, "Permission denied") && !strings.Contains(out, "Operation not permitted") {
					t.Fatalf("want the open denied, got: %s", out)
				}
				// The limit, as documented.
				out, _ = testenv.Sh(testenv.Nobody, "SIBLING=1 "+forge+" "+cat+" "+secret+" 2>&1")
				if !strings.Contains(out, "exe="+cat+"\nTOPSECRET") {
					t.Errorf("the CLONE_VM sibling's parent did not read the secret (%s): the limit in docs/security.md is gone, update it", out)
				}
				p.stop()
				var forged []map[string]any
				for _, r := range auditFor(auditLines(t, audit), secret) {
					if r["verdict"] == "deny" {
						forged = append(forged, r)
					}
				}
				if len(forged) != 1 || forged[0]["exe"] != cat || forged[0]["exe_unverified"] != true {
					t.Errorf("audit of the forged exe's open: %v, want one deny naming %s, unverified", forged, cat)
				}
			})
		})
	}
}

// A read-only mount of the guard's own mount namespace is not read-only to a user who owns
// the image behind it: udisks mounts a desktop user's own image for them (read-only if they
// ask), and the user writes any file's blocks into the image, drops the file's pages
// (posix_fadvise DONTNEED) and runs the new content through the "read-only" mount. Such a
// filesystem (sys.DeviceWritesSeen: a loop device whose backing file anyone but root may
// write) counts as writable, as FUSE does. As nobody, under `deny exec ** mount_writable=yes`:
// a tool on root's own image mounted read-only runs (a control); the same tool on nobody's
// image mounted read-only, patched by nobody through the image, is denied. Before, it ran.
func TestGuardMountWritableOfAUsersImageAsNobody(t *testing.T) {
	type image struct{ mnt, img, tool string }
	var imgs [2]image
	for i := range imgs {
		mnt, img := testenv.PublicExt4Image(t, 16)
		tool := filepath.Join(mnt, "t")
		copyExe(t, tool)
		testenv.OpenToAll(t, mnt)
		if i == 1 {
			if err := os.Chown(img, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}
		if out, err := exec.Command("mount", "-o", "remount,ro", mnt).CombinedOutput(); err != nil {
			t.Fatalf("remount read-only: %v %s", err, out)
		}
		imgs[i] = image{mnt, img, tool}
	}
	root, users := imgs[0], imgs[1]
	rules := filepath.Join(t.TempDir(), "guard.rules")
	writeFile(t, rules, "deny exec ** mount_writable=yes\nallow exec **\n")
	p := start(t, "guard", "--events", "exec", "--policy", rules, "--no-package-trust", root.mnt, users.mnt)
	if out, err := testenv.Sh(testenv.Nobody, root.tool+" && echo RAN"); err != nil || !strings.Contains(out, "RAN") {
		t.Fatalf("a tool on root's image mounted read-only did not run: %v %s\nguard:\n%s", err, out, p.errText())
	}
	out, err := testenv.Sh(testenv.Nobody, `python3 - `+users.tool+` `+users.img+` <<'EOF'
import os, subprocess, sys
tool, img = sys.argv[1], sys.argv[2]
`+pyPatchInImage+`
try:
    r = subprocess.run([tool])
    print("ran", r.returncode)
except PermissionError:
    print("refused")
EOF`)
	if err != nil || strings.TrimSpace(out) != "refused" {
		t.Fatalf("nobody's tool, patched through nobody's image mounted read-only: %v %s, want refused\nguard:\n%s", err, out, p.errText())
	}
}

// Where unprivileged user namespaces are enabled, an allow by exe= alone grants its access to
// every process (TestGuardExeForgedInAUserNamespaceAsNobody: the CLONE_VM sibling), and the
// guard says so at its start, as it does for comm=; a rule that also tests uid= gets no
// warning. policy check says the same.
func TestGuardWarnsThatExeIsForgeableWithUserNamespaces(t *testing.T) {
	requireUserNS(t)
	if !sys.UnprivilegedUserNS() {
		t.Fatal("nobody made a user namespace, but sys.UnprivilegedUserNS says none can be made")
	}
	dir := testenv.Tmpfs(t)
	rules := filepath.Join(t.TempDir(), "rules")
	writeFile(t, rules, "default deny\nallow open "+dir+"/** exe=/usr/bin/cat\nallow open "+dir+"/** exe=/usr/bin/cat uid=0\n")
	p := start(t, "guard", "--policy", rules, dir)
	p.stop()
	if !strings.Contains(p.errText(), "warning: "+rules+":2: this allow rule tells who may access by exe=/usr/bin/cat alone") ||
		!strings.Contains(p.errText(), "PR_SET_MM_MAP") || strings.Contains(p.errText(), rules+":3") {
		t.Errorf("stderr:\n%s\nwant a warning about line 2 only, naming PR_SET_MM_MAP", p.errText())
	}
	out, _, _ := fsn(t, "policy", "check", rules)
	if !strings.Contains(out, rules+":2: warning: this allow rule tells who may access by exe=/usr/bin/cat alone") || strings.Contains(out, rules+":3") {
		t.Errorf("policy check:\n%s\nwant a warning about line 2 only", out)
	}
}

// dropGroupsPy, run by a user with a supplementary group, enters a user namespace of its own
// (keeping its capabilities there: no exec after the unshare), says its pid, waits for its
// maps to be written (as newgidmap writes them from /etc/subgid, with setgroups left allowed),
// drops every supplementary group (setgroups) and prints the file argv[1].
const dropGroupsPy = `import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).unshare(0x10000000) != 0:
    sys.exit("unshare: errno %d" % ctypes.get_errno())
print(os.getpid(), flush=True)
sys.stdin.readline()
os.setgroups([])
print("groups", os.getgroups(), flush=True)
try:
    print(open(sys.argv[1]).read(), flush=True)
except OSError as e:
    print(e, flush=True)
`

// gid= says who is in a group: "deny open ... gid=G" keeps G's members out, a group no
// unprivileged process can leave (setgroups needs CAP_SETGID). But in a user namespace where
// setgroups is allowed — newgidmap (shadow's uidmap, setuid) leaves it allowed when it maps a
// user's subordinate gids (/etc/subgid: what rootless containers use, and useradd gives every
// user by default where uidmap is installed) — the user holds CAP_SETGID and drops any
// supplementary group. As nobody with group 4242, in a user namespace whose maps root writes
// as newgidmap would (uidmap is not installed here), setgroups([]) and then an open of a file
// that `deny open D/** gid=4242` keeps from 4242: denied (procfs.GroupsMayLack: the groups of
// such a process may lack one it had, so gid= may hold). Before, it read the file. Controls:
// nobody with 4242 is denied; nobody without it, in an `unshare -Ur` namespace (setgroups
// deny: it can drop nothing), is allowed.
func TestGuardGidWhenGroupsMayBeDroppedAsNobody(t *testing.T) {
	requireUserNS(t)
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	guardModes(t, func(t *testing.T, extra []string) {
		mnt := testenv.PublicTmpfs(t)
		secret := filepath.Join(mnt, "secret")
		writeFile(t, secret, "TOPSECRET\n")
		if err := os.Chmod(secret, 0o644); err != nil {
			t.Fatal(err)
		}
		p := guardOpens(t, extra, mnt, "deny open "+mnt+"/** gid=4242\n")
		asNobody := func(groups string, args ...string) *exec.Cmd {
			return exec.Command("setpriv", append([]string{"--reuid", "65534", "--regid", "65534", "--groups", groups}, args...)...)
		}
		if out, _ := asNobody("4242", "cat", secret).CombinedOutput(); strings.Contains(string(out), "TOPSECRET") {
			t.Fatalf("a member of 4242 read it: %s", out)
		}
		if out, err := asNobody("4243", "unshare", "-Ur", "cat", secret).CombinedOutput(); err != nil || !strings.Contains(string(out), "TOPSECRET") {
			t.Fatalf("nobody without 4242, in its own user namespace (setgroups deny), could not read it: %v %s\nguard:\n%s", err, out, p.errText())
		}
		c := asNobody("4242", python, "-c", dropGroupsPy, secret)
		in, err := c.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		outPipe, err := c.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		c.Stderr = &stderr
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		defer c.Process.Kill()
		r := bufio.NewReader(outPipe)
		line, err := r.ReadString('\n')
		pid, perr := strconv.Atoi(strings.TrimSpace(line))
		if err != nil || perr != nil {
			c.Wait()
			t.Skipf("no user namespace for python3: %q %v %s", line, err, stderr.String())
		}
		// What newgidmap writes for a user with subordinate ids: its own ids at 0, and the
		// ranges; setgroups stays allowed.
		for file, m := range map[string]string{"uid_map": "0 65534 1\n1 165536 65536\n", "gid_map": "0 65534 1\n1 165536 65536\n"} {
			if err := os.WriteFile("/proc/"+strconv.Itoa(pid)+"/"+file, []byte(m), 0); err != nil {
				t.Fatalf("writing %s: %v", file, err)
			}
		}
		in.Write([]byte("go\n"))
		rest, _ := io.ReadAll(r)
		c.Wait()
		out := string(rest)
		if !strings.Contains(out, "groups []") {
			t.Fatalf("the groups were not dropped: %s %s", out, stderr.String())
		}
		if strings.Contains(out, "TOPSECRET") {
			t.Fatalf("nobody dropped 4242 in its user namespace and read what gid=4242 is denied:\n%s\nguard:\n%s", out, p.errText())
		}
		if !strings.Contains(out, "Permission denied") && !strings.Contains(out, "Operation not permitted") {
			t.Fatalf("want the open denied, got: %s", out)
		}
	})
}

// A deny by ancestor= (or ppid=) holds for a process's descendants (children), which any of
// them leaves by a double fork: as nobody, under `deny exec D/** ancestor=SH`, sh's child
// cannot run D's tool, and a grandchild whose parent exited (reparented to a reaper) runs it.
// That is the kernel's (a process may leave its parent); `policy check` calls such a rule
// [weak-deny], as it does a deny by comm=. Before, it said nothing.
func TestGuardDenyByAncestorLeftByADoubleForkAsNobody(t *testing.T) {
	sh, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Skip("no /bin/sh")
	}
	echo, err := exec.LookPath("echo")
	if err != nil {
		t.Skip("no echo(1)")
	}
	mnt := testenv.PublicTmpfs(t)
	tool := filepath.Join(mnt, "t") // a copy of echo
	if err := os.WriteFile(tool, must(os.ReadFile(echo)), 0o755); err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(t.TempDir(), "guard.rules")
	writeFile(t, rules, "deny exec "+mnt+"/** ancestor="+sh+"\n")
	p := start(t, "guard", "--events", "exec", "--policy", rules, mnt)
	if got, _ := testenv.Sh(testenv.Nobody, tool+" RAN; echo rc=$?"); strings.Contains(got, "RAN\n") || !strings.Contains(got, "rc=126") {
		t.Fatalf("sh's child ran the tool: %s\nguard:\n%s", got, p.errText())
	}
	// The grandchild (a sh, whose parent exited) runs the tool itself (exec): its ancestors
	// are a reaper's. The output pipe stays open until it exits: Sh waits for it. Where the
	// reaper's executable cannot be read (pid 1 of another user namespace: a sandbox), the
	// chain is cut and the deny applies.
	got, _ := testenv.Sh(testenv.Nobody, "( (sleep 0.3; exec "+tool+" RAN) & ); exit 0")
	switch _, err := os.Readlink("/proc/1/exe"); {
	case err != nil:
		t.Logf("pid 1's executable is unreadable here (%v): the grandchild's chain is cut, and the deny applies: %s", err, got)
	case !strings.Contains(got, "RAN"):
		t.Errorf("the double fork's grandchild did not run the tool (%s): the limit this test shows is gone, update docs/policy.md", got)
	}
	report, _, _ := fsn(t, "policy", "check", rules)
	if !strings.Contains(report, rules+":1: warning: this deny rule tells who by ancestor="+sh+" alone") || !strings.Contains(report, "double fork") || !strings.Contains(report, "[weak-deny]") {
		t.Errorf("policy check:\n%s\nwant a weak-deny warning about line 1", report)
	}
}

// The reference allowlist (internal/policy/testdata/allowlist.rules, docs/policy.md "An
// allowlisting policy") as its documentation deploys it, against nobody's own program on a
// guarded tmpfs, where unprivileged user namespaces are enabled:
//
//   - with --mount (the mount mark fapolicyd places), `unshare -Urm TOOL` runs the tool: the
//     mount namespace nobody makes holds a copy of every mount, with mount ids of its own,
//     which no mount mark sees (the kernel's: backend TestMountMarkSeesOneMount). The guard
//     now warns at its start; before, it said nothing, and the allowlist's documented command
//     lines used --mount. The test checks that the limit is as documented, and fails if it goes;
//   - without --mount (a filesystem mark, filtered by the paths), the copy is seen: denied;
//   - either way, a filesystem nobody mounts in a namespace of their own (a tmpfs, made
//     after every mark) has no mark at all: the tool copied there runs. That is the kernel's
//     too (docs/security.md, "What fanotify cannot see"): the test checks the limit is so.
func TestGuardAllowlistFromAUsersMountNamespaceAsNobody(t *testing.T) {
	requireUserNS(t)
	mnt := testenv.PublicTmpfs(t)
	_, tool := nobodysTool(t, mnt, "tool", programFile(t, "true"), 0)
	etc := t.TempDir()
	rules := filepath.Join(etc, "allowlist.rules")
	writeFile(t, rules, string(must(os.ReadFile(filepath.Join("..", "..", "internal", "policy", "testdata", "allowlist.rules")))))
	trustDir := filepath.Join(etc, "trust.d")
	if err := os.Mkdir(trustDir, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(cmd string) string {
		out, _ := testenv.Sh(testenv.Nobody, cmd+" 2>&1; echo rc=$?")
		return out
	}
	for _, tt := range []struct {
		name      string
		mount     bool
		viaUserNS string // rc of `unshare -Urm TOOL`
	}{
		{"--mount", true, "rc=0"},    // the limit of mount marks
		{"subtree", false, "rc=126"}, // a filesystem mark sees the copy
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"guard", "--events", "open,exec", "--policy", rules, "--no-package-trust", "--trust-dir", trustDir}
			if tt.mount {
				args = append(args, "--mount")
			}
			p := start(t, append(args, mnt)...)
			if got := run(tool); !strings.Contains(got, "rc=126") {
				t.Fatalf("nobody's tool, run directly: %s, want denied (rc=126)\nguard:\n%s", got, p.errText())
			}
			if got := run("unshare -Urm " + tool); !strings.Contains(got, tt.viaUserNS) {
				t.Errorf("nobody's tool, run in nobody's mount namespace: %s, want %s (docs/security.md: update it if this changed)\nguard:\n%s", got, tt.viaUserNS, p.errText())
			}
			// The limit of every mark: a filesystem made after them. nobody's cat reads the tool
			// in the guard's namespace (an ELF executable: opening it is not the allowlist's
			// business), and nobody writes it into a tmpfs of their own and runs it there.
			if got := run("cat " + tool + " | unshare -Urm sh -c 'mount -t tmpfs t /mnt && cat >/mnt/t && chmod +x /mnt/t && exec /mnt/t'"); !strings.Contains(got, "rc=0") {
				t.Errorf("nobody's tool, copied to a tmpfs of nobody's own: %s, want rc=0 (the limit docs/security.md states is gone: update it)", got)
			}
			p.stop()
			warned := strings.Contains(p.errText(), "warning: --mount: unprivileged user namespaces are enabled")
			if warned != tt.mount {
				t.Errorf("guard %s: warned about mount marks and user namespaces: %v, want %v; stderr:\n%s", tt.name, warned, tt.mount, p.errText())
			}
		})
	}
}
