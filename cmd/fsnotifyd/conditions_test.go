//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// zombieLeaderPy opens argv[1] from a second thread after the main thread has exited: the
// process then has no executable to show (/proc/PID/exe cannot be read).
const zombieLeaderPy = `
import ctypes, sys, threading, time
def f():
    time.sleep(0.3)
    try:
        open(sys.argv[1]).read()
        print("OPENED", flush=True)
    except OSError as e:
        print("ERR", e.errno, flush=True)
threading.Thread(target=f).start()
ctypes.CDLL(None).pthread_exit(None)
`

// exe= and gid= decide by what a process cannot forge: its executable (a copy elsewhere, or
// a process whose executable cannot be verified, is not the program) and its groups.
func TestGuardExeAndGidConditions(t *testing.T) {
	cat, _ := exec.LookPath("cat")
	cat, _ = filepath.EvalSymlinks(cat)
	nobody := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	staff := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{27}}}
	guardModes(t, func(t *testing.T, extra []string) {
		dir := testenv.Tmpfs(t)
		for _, d := range []string{"keys", "staff", "backup"} {
			os.MkdirAll(filepath.Join(dir, d), 0o755)
			os.WriteFile(filepath.Join(dir, d, "a"), []byte("x\n"), 0o644)
		}
		testenv.OpenToAll(t, dir+"/keys/a")
		copied := filepath.Join(testenv.PublicDir(t), "cat")
		data, _ := os.ReadFile(cat)
		os.WriteFile(copied, data, 0o755)
		script := filepath.Join(testenv.PublicDir(t), "zl.py")
		os.WriteFile(script, []byte(zombieLeaderPy), 0o644)

		rules := filepath.Join(t.TempDir(), "rules")
		os.WriteFile(rules, []byte(strings.NewReplacer("DIR", dir, "CAT", cat).Replace(`
allow open DIR/keys/** exe=CAT
deny  open DIR/keys/**
allow open DIR/staff/** gid=27
deny  open DIR/staff/**
deny  open DIR/backup/** exe!=CAT
`)), 0o644)
		audit := filepath.Join(t.TempDir(), "audit.jsonl")
		p := start(t, append(append([]string{"guard"}, extra...), "--policy", rules, "--audit", audit, dir)...)
		run := func(attr *syscall.SysProcAttr, argv ...string) (string, error) {
			c := exec.Command(argv[0], argv[1:]...)
			c.SysProcAttr = attr
			out, err := c.CombinedOutput()
			return string(out), err
		}
		for _, tc := range []struct {
			name   string
			attr   *syscall.SysProcAttr
			argv   []string
			denied bool
		}{
			{"the allowed executable", nobody, []string{cat, dir + "/keys/a"}, false},
			{"another executable", nobody, []string{"head", dir + "/keys/a"}, true},
			{"a copy of the allowed executable elsewhere", nobody, []string{copied, dir + "/keys/a"}, true},
			{"in group 27", staff, []string{cat, dir + "/staff/a"}, false},
			{"not in group 27", nobody, []string{cat, dir + "/staff/a"}, true},
			{"exe!=: the one executable", nil, []string{cat, dir + "/backup/a"}, false},
			{"exe!=: another", nil, []string{"head", dir + "/backup/a"}, true},
		} {
			out, err := run(tc.attr, tc.argv...)
			if isEPERM(err, out) != tc.denied || (!tc.denied && err != nil) {
				t.Errorf("%s: %v %q; want denied=%v", tc.name, err, out, tc.denied)
			}
		}
		// A process whose executable cannot be read matches no exe= glob: exe!= holds.
		out, err := run(nil, "/usr/bin/python3", script, dir+"/backup/a")
		if err != nil || strings.TrimSpace(out) != "ERR 1" {
			t.Errorf("a process with an exited thread-group leader: %v %q, want ERR 1 (EPERM)", err, out)
		}
		waitAudit(t, audit, dir+"/keys/a")
		p.stop()
		keys := auditFor(auditLines(t, audit), dir+"/keys/a")
		sawCopy := false
		for _, r := range keys {
			if r["exe"] == copied && r["verdict"] == "deny" && r["rule"] != nil {
				sawCopy = true
			}
		}
		if !sawCopy {
			t.Errorf("no audit line names the copied executable %s with its deny: %v", copied, keys)
		}
	})
}

// A guard that cannot read what a rule needs answers with --on-error and says why. Here it
// runs without CAP_SYS_PTRACE, so it may not read another user's /proc/PID/exe (EACCES).
func TestGuardAttributeErrorGetsOnError(t *testing.T) {
	guardModes(t, func(t *testing.T, extra []string) {
		dir := testenv.Tmpfs(t)
		os.WriteFile(dir+"/a", []byte("x\n"), 0o644)
		os.WriteFile(dir+"/plain", []byte("x\n"), 0o644)
		testenv.OpenToAll(t, dir+"/a")
		cat, _ := exec.LookPath("cat")
		cat, _ = filepath.EvalSymlinks(cat)
		rules := filepath.Join(t.TempDir(), "rules")
		os.WriteFile(rules, []byte("allow open "+dir+"/a exe="+cat+"\ndeny open "+dir+"/a\n"), 0o644)
		for _, onError := range []string{"deny", "allow"} {
			audit := filepath.Join(t.TempDir(), "audit.jsonl")
			p := start(t, append([]string{"setpriv", "--bounding-set=-sys_ptrace", bin, "guard"},
				append(extra, "--policy", rules, "--on-error", onError, "--audit", audit, dir)...)...)
			c := exec.Command(cat, dir+"/a")
			c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			out, err := c.CombinedOutput()
			if isEPERM(err, string(out)) != (onError == "deny") {
				t.Errorf("--on-error %s: cat as nobody: %v %q", onError, err, out)
			}
			if out, err := exec.Command("cat", dir+"/plain").CombinedOutput(); err != nil {
				t.Errorf("a file no rule with exe= covers: %v %s", err, out)
			}
			waitAudit(t, audit, dir+"/a")
			p.stop()
			recs := auditFor(auditLines(t, audit), dir+"/a")
			if len(recs) != 1 || recs[0]["verdict"] != onError || recs[0]["rule"] != "error in "+rules+":1" ||
				!strings.Contains(recs[0]["error"].(string), "permission denied") {
				t.Errorf("--on-error %s: audit %v", onError, recs)
			}
		}
	})
}

// comm= is forgeable: an allow rule that tests nothing else gets a warning, and indeed any
// process gets through it by bearing the name.
func TestGuardWarnsThatCommIsForgeable(t *testing.T) {
	dir := testenv.Tmpfs(t)
	os.WriteFile(dir+"/a", []byte("x\n"), 0o644)
	testenv.OpenToAll(t, dir+"/a")
	rules := filepath.Join(t.TempDir(), "rules")
	os.WriteFile(rules, []byte("default deny\nallow open "+dir+"/** comm=backup\nallow open "+dir+"/** comm=cat uid=0\n"), 0o644)
	p := start(t, "guard", "--policy", rules, dir)
	if !strings.Contains(p.errText(), "warning: "+rules+":2: this allow rule tells who may access by comm=backup alone") ||
		strings.Contains(p.errText(), rules+":3") {
		t.Errorf("stderr:\n%s\nwant a warning about line 2 only", p.errText())
	}
	cat, _ := exec.LookPath("cat")
	forged := filepath.Join(testenv.PublicDir(t), "backup")
	os.WriteFile(forged, must(os.ReadFile(cat)), 0o755)
	c := exec.Command(forged, dir+"/a")
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := c.CombinedOutput(); err != nil {
		t.Errorf("a copy of cat named backup: %v %s; comm= is forgeable, so it should get through (the warning's point)", err, out)
	}
}

// A NUL (or another control byte) in a rules file is an error at its line and column.
func TestGuardPolicyFileRejectsNUL(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "nul.rules")
	os.WriteFile(rules, []byte("deny open /x/**\ndeny open **/*.key\x00.txt\n"), 0o644)
	out, err := exec.Command(bin, "guard", "--policy", rules, dir).CombinedOutput()
	if exitStatus(err) == 0 || !strings.Contains(string(out), "nul.rules:2:19: NUL byte") {
		t.Fatalf("got %v: %s", err, out)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
