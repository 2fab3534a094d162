//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// Kernel mask bits the tests read in the guard's fdinfo.
const (
	fanOpenPerm     = 0x10000
	fanOpenExecPerm = 0x40000
)

// guardPermMask returns the event mask of pid's fanotify mount mark that asks for execs (the
// guard's permission mark), read from /proc/PID/fdinfo.
func guardPermMask(t *testing.T, pid int) uint64 {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range fds {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); l != "anon_inode:[fanotify]" {
			continue
		}
		info, _ := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
		for _, line := range strings.Split(string(info), "\n") {
			if !strings.HasPrefix(line, "fanotify mnt_id:") {
				continue
			}
			for _, f := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(f, "mask:"); ok {
					m, err := strconv.ParseUint(v, 16, 64)
					if err != nil {
						t.Fatalf("fdinfo: %q", line)
					}
					if m&fanOpenExecPerm != 0 {
						return m
					}
				}
			}
		}
	}
	t.Fatalf("guard %d: no fanotify mount mark asking for execs", pid)
	return 0
}

// waitReloads waits until the guard has said n times that it reloaded its policy (after the
// reload's mark changes: storeLocked returns before the message).
func waitReloads(t *testing.T, p *proc, n int) {
	t.Helper()
	if !waitFor(10*time.Second, func() bool { return strings.Count(p.errText(), "policy reloaded from") >= n }) {
		t.Fatalf("no reload %d; stderr:\n%s", n, p.errText())
	}
}

// Under an exec allowlist (no rule for opens, default allow) `guard --events open,exec` asks
// the kernel for execs only, and a hostile local user (nobody) gains nothing by it: after 50
// opens each, an untrusted copy of the trusted tool, a file made executable after its opens,
// the trusted tool appended to, and an impostor renamed over it are all denied, and the
// trusted tool runs. Then 10 times over: a reload that adds a rule for opens (deny one root
// file) asks for opens before the policy is in force — the first open after the reload is
// denied, and the mark asks for opens — and a reload back stops asking; each first open after
// it is allowed.
func TestGuardUnaskedOpensAsNobody(t *testing.T) {
	eachTrustFilesystem(t, func(t *testing.T, mount func(testing.TB) string) {
		execOnly := func(mnt string) string {
			return "allow exec " + mnt + "/** trusted=yes\ndeny exec " + mnt + "/**\n"
		}
		var secret string
		g := startTrustedOfNobody(t, mount, "true", "tool", "open,exec", func(mnt string) string {
			secret = filepath.Join(mnt, "secret")
			writeFile(t, secret, "s")
			return execOnly(mnt)
		}, "--reload-interval", "0")
		pid := g.p.cmd.Process.Pid
		if m := guardPermMask(t, pid); m&fanOpenPerm != 0 {
			t.Fatalf("exec allowlist: the mark asks for opens (mask %#x)", m)
		}
		dir := filepath.Dir(g.tool)
		out, err := testenv.Sh(testenv.Nobody, `set -u
cd `+dir+`
try() { if "$2" 2>/dev/null; then echo "$1 ran"; else echo "$1 denied"; fi; }
opens() { for i in $(seq 50); do cat "$1" > /dev/null || echo "open of $1 failed"; done; }
opens `+secret+`
try trusted ./tool
cp tool copy && chmod +x copy && opens copy && try untrusted-copy ./copy
cp tool late && chmod -x late && opens late && chmod +x late && try chmod-x-after-opens ./late
cp tool impostor && printf x >> impostor && opens impostor
opens tool && try trusted-after-opens ./tool
mv impostor tool && try impostor-renamed-over ./tool
printf x >> copy && try appended-copy ./copy
`)
		want := []string{"trusted ran", "untrusted-copy denied", "chmod-x-after-opens denied",
			"trusted-after-opens ran", "impostor-renamed-over denied", "appended-copy denied"}
		got := strings.Split(strings.TrimSpace(out), "\n")
		if err != nil || strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("as nobody: %v\ngot:\n%s\nwant:\n%s", err, out, strings.Join(want, "\n"))
		}

		denyOpen := execOnly(g.mnt) + "deny open " + secret + "\n"
		reloads := 0
		reload := func(rules string) {
			t.Helper()
			writeFile(t, g.rules, rules)
			reloads++
			syscall.Kill(pid, syscall.SIGHUP)
			waitReloads(t, g.p, reloads)
		}
		for i := 0; i < 10; i++ {
			reload(denyOpen)
			if out, err := testenv.Sh(testenv.Nobody, "cat "+secret); err == nil || !strings.Contains(out, "Operation not permitted") {
				t.Fatalf("round %d: the first open after a reload that denies it: %v %s; want denied", i, err, out)
			}
			if m := guardPermMask(t, pid); m&fanOpenPerm == 0 {
				t.Fatalf("round %d: a policy with a rule for opens, and the mark does not ask for them (mask %#x)", i, m)
			}
			reload(execOnly(g.mnt))
			if out, err := testenv.Sh(testenv.Nobody, "cat "+secret); err != nil {
				t.Fatalf("round %d: the first open after the reload back: %v %s; want allowed", i, err, out)
			}
			if m := guardPermMask(t, pid); m&fanOpenPerm != 0 {
				t.Fatalf("round %d: back to the exec allowlist, and the mark still asks for opens (mask %#x)", i, m)
			}
		}
	})
}

// Opens are asked whatever the policy when something sees them: an audit log (a line per
// decision), a scanner (it decides what no rule did).
func TestGuardAsksOpensWhenSomethingSeesThem(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra func(etc string) []string
	}{
		{"audit", func(etc string) []string { return []string{"--audit", filepath.Join(etc, "audit.jsonl")} }},
		{"scanner", func(string) []string { return []string{"--exec", "true"} }},
		{"none", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var extra []string
			if tc.extra != nil {
				extra = tc.extra(t.TempDir())
			}
			g := startTrustedOfNobody(t, testenv.PublicTmpfs, "true", "tool", "open,exec", func(mnt string) string {
				return "allow exec " + mnt + "/** trusted=yes\ndeny exec " + mnt + "/**\n"
			}, extra...)
			m := guardPermMask(t, g.p.cmd.Process.Pid)
			if asked := m&fanOpenPerm != 0; asked != (tc.extra != nil) {
				t.Fatalf("mask %#x: opens asked %v, want %v", m, asked, tc.extra != nil)
			}
		})
	}
}

// lastLine is the last line of text that contains sub ("" if none).
func lastLine(text, sub string) string {
	var last string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			last = l
		}
	}
	return last
}

// A reload that is refused leaves the old policy exactly, the kinds the marks ask for with it:
// under an exec denylist (no rule for opens: opens are not asked), a reload to rules that
// would deny an open is refused because they do not parse, because the trust database they
// need cannot be loaded (a trust file others may write), or because others may write the
// policy file; after each, the mark still does not ask for opens, the file those rules would
// deny opens, and the old exec deny holds.
func TestGuardRejectedReloadKeepsAskedKinds(t *testing.T) {
	mnt, s, etc, rules := reloadFiles(t)
	bad := filepath.Join(mnt, "bad")
	copyExe(t, bad)
	tf := filepath.Join(etc, "local.trust")
	writeFile(t, tf, "")
	old := "deny exec " + bad + "\n"
	writeFile(t, rules, old)
	p := start(t, "guard", "--mount", "--events", "open,exec", "--policy", rules, "--trust", tf, "--no-package-trust", "--reload-interval", "0", mnt)
	pid := p.cmd.Process.Pid
	if m := guardPermMask(t, pid); m&fanOpenPerm != 0 {
		t.Fatalf("an exec denylist, and the mark asks for opens (mask %#x)", m)
	}
	denyOpen := "deny open " + s + "\n" + old
	for i, tc := range []struct {
		name, rules, why string // why: in the refusal's line
		prepare, undo    func()
	}{
		{"does not parse", denyOpen + "deny open " + s + " colour=red\n", "colour", nil, nil},
		{"trust database unloadable", denyOpen + "allow open " + mnt + "/** trusted=yes\n", tf,
			func() { os.Chmod(tf, 0o666) }, func() { os.Chmod(tf, 0o644) }},
		{"policy file writable by others", denyOpen, "writable", func() { os.Chmod(rules, 0o666) }, func() { os.Chmod(rules, 0o644) }},
	} {
		writeFile(t, rules, tc.rules)
		if tc.prepare != nil {
			tc.prepare()
		}
		syscall.Kill(pid, syscall.SIGHUP)
		if !waitFor(10*time.Second, func() bool { return strings.Count(p.errText(), "policy reload from") == i+1 }) {
			t.Fatalf("%s: the reload was not refused; stderr:\n%s", tc.name, p.errText())
		}
		if tc.undo != nil {
			tc.undo()
		}
		if l := lastLine(p.errText(), "policy reload from"); !strings.Contains(l, tc.why) {
			t.Errorf("%s: the refusal does not say why (%q): %s", tc.name, tc.why, l)
		}
		if m := guardPermMask(t, pid); m&fanOpenPerm != 0 {
			t.Errorf("%s: refused, and the mark asks for opens (mask %#x)", tc.name, m)
		}
		if d, err := openOnce(s); err != nil || d {
			t.Errorf("%s: open of s after the refused reload: denied %v, %v; want allowed (the old policy)", tc.name, d, err)
		}
		if err := exec.Command(bad).Run(); !isEPERMRun(err) {
			t.Errorf("%s: exec of bad after the refused reload: %v, want EPERM (the old policy)", tc.name, err)
		}
	}
	if n := strings.Count(p.errText(), "policy reloaded from"); n != 0 {
		t.Errorf("%d reloads applied, want none; stderr:\n%s", n, p.errText())
	}
}
