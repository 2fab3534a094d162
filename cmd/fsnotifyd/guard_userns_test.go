//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/internal/sysattr"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

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
		rules := filepath.Join(t.TempDir(), "guard.rules")
		writeFile(t, rules, "deny open "+mnt+"/** exe=/usr/bin/python3*\n")
		p := start(t, append(append([]string{"guard"}, extra...), "--events", "open", "--policy", rules, mnt)...)
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
		mnt := testenv.PublicTmpfs(t)
		data := filepath.Join(mnt, "data")
		if err := os.Mkdir(data, 0o755); err != nil {
			t.Fatal(err)
		}
		secret := filepath.Join(data, "secret")
		writeFile(t, secret, "TOPSECRET\n")
		mycat := filepath.Join(testenv.PublicDir(t), "mycat")
		if err := os.WriteFile(mycat, must(os.ReadFile(cat)), 0o755); err != nil {
			t.Fatal(err)
		}
		etc := t.TempDir()
		tf := filepath.Join(etc, "local.trust")
		if _, errOut, st := fsn(t, "trust", "add", "--file", tf, loader, cat); st != 0 {
			t.Fatalf("trust add: %s", errOut)
		}
		rules := filepath.Join(etc, "guard.rules")
		writeFile(t, rules, "allow open "+data+"/** trusted_exe=yes\ndeny open "+data+"/**\n")
		audit := filepath.Join(t.TempDir(), "audit.jsonl")
		p := start(t, append(append([]string{"guard"}, extra...), "--events", "open", "--policy", rules,
			"--trust", tf, "--no-package-trust", "--audit", audit, mnt)...)
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
