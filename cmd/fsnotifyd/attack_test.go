//go:build linux

package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// Running a denied file, as a hostile local user (uid nobody) would: execve, the dynamic
// loader (ld.so FILE: an open, not an exec) and a script interpreter (sh FILE, python3 FILE:
// the interpreter opens the script). See docs/security.md, "Running a denied file".

// attackEnv is a guarded tree with a program and scripts that, when they run, create the
// marker file named by their first argument.
type attackEnv struct {
	dir, binDir         string
	tool, script, py    string
	markers             string
	ldso, sh, python3   string // the loader, sh and python3 as found
	ldsoExe, shExe, pyE string // their executables (symlinks resolved): what exe= sees
}

func newAttackEnv(t *testing.T) *attackEnv {
	t.Helper()
	e := &attackEnv{dir: testenv.Tmpfs(t)}
	e.binDir = filepath.Join(e.dir, "g", "bin")
	os.MkdirAll(e.binDir, 0o755)
	touch, err := exec.LookPath("touch")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(touch)
	if err != nil {
		t.Fatal(err)
	}
	e.tool = filepath.Join(e.binDir, "tool")
	e.script = filepath.Join(e.binDir, "script.sh")
	e.py = filepath.Join(e.binDir, "script.py")
	for _, f := range []struct {
		path string
		data []byte
	}{{e.tool, data}, {e.script, []byte("#!/bin/sh\ntouch \"$1\"\n")}, {e.py, []byte("import sys\nopen(sys.argv[1], 'w').close()\n")}} {
		if err := os.WriteFile(f.path, f.data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	testenv.OpenToAll(t, e.tool)
	e.markers = filepath.Join(testenv.PublicDir(t), "markers")
	os.Mkdir(e.markers, 0o777)
	os.Chmod(e.markers, 0o1777)
	for _, l := range []string{"/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1", "/lib/ld-linux.so.2"} {
		if _, err := os.Stat(l); err == nil {
			e.ldso = l
			break
		}
	}
	if e.ldso == "" {
		t.Fatal("no dynamic loader found for this architecture")
	}
	e.sh, _ = exec.LookPath("sh")
	e.python3 = "/usr/bin/python3" // not a per-user shim (pyenv): nobody must be able to run it
	if _, err := os.Stat(e.python3); err != nil {
		t.Fatalf("python3 is needed (CI installs python3-minimal): %v", err)
	}
	e.ldsoExe, _ = filepath.EvalSymlinks(e.ldso)
	e.shExe, _ = filepath.EvalSymlinks(e.sh)
	e.pyE, _ = filepath.EvalSymlinks(e.python3)
	return e
}

// attack is one way to run a file.
type attack struct {
	name string
	argv func(e *attackEnv, marker string) []string
}

var attacks = map[string]attack{
	"execve":        {"execve", func(e *attackEnv, m string) []string { return []string{e.tool, m} }},
	"execve-script": {"execve of a script", func(e *attackEnv, m string) []string { return []string{e.script, m} }},
	"ld.so":         {"ld.so", func(e *attackEnv, m string) []string { return []string{e.ldso, e.tool, m} }},
	"sh":            {"sh", func(e *attackEnv, m string) []string { return []string{e.sh, e.script, m} }},
	"python3":       {"python3", func(e *attackEnv, m string) []string { return []string{e.python3, e.py, m} }},
}

// run runs attack a as uid nobody; it reports whether the file ran (its marker exists) and
// whether the attempt failed with EPERM.
func (e *attackEnv) run(t *testing.T, a string, n int) (ran, eperm bool, detail string) {
	t.Helper()
	marker := filepath.Join(e.markers, a+"-"+strconv.Itoa(n))
	argv := attacks[a].argv(e, marker)
	c := exec.Command(argv[0], argv[1:]...)
	c.Dir = e.markers
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := c.CombinedOutput()
	_, serr := os.Stat(marker)
	ran = serr == nil
	eperm = errors.Is(err, syscall.EPERM) || (err != nil && strings.Contains(string(out), "Operation not permitted"))
	return ran, eperm, strings.TrimSpace(string(out)) + " (" + errString(err) + ")"
}

func errString(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

func TestGuardRunningADeniedFile(t *testing.T) {
	guardModes(t, func(t *testing.T, extra []string) {
		e := newAttackEnv(t)
		bins := e.binDir + "/**"
		for _, tc := range []struct {
			name   string
			events string
			rules  string
			denied []string // attacks that must fail with EPERM, the file never running
			ran    []string // attacks that run: the documented limit of the rules
			plain  bool     // cat of the files is still allowed
		}{
			{
				// Without a rule every way runs the file (so that a deny below is the guard's).
				name: "no rule", events: "open,exec", rules: "deny exec /nothing",
				ran: []string{"execve", "execve-script", "ld.so", "sh", "python3"},
			},
			{
				name: "deny exec", events: "open,exec", rules: "deny exec " + bins,
				denied: []string{"execve", "execve-script"},
				// An exec rule sees execve only: the loader and interpreters open the
				// file (docs/security.md).
				ran: []string{"ld.so", "sh", "python3"}, plain: true,
			},
			{
				name: "deny open", events: "open", rules: "deny open " + bins,
				denied: []string{"execve", "execve-script", "ld.so", "sh", "python3"},
			},
			{
				name: "deny exec, and open by the loader and the interpreters", events: "open,exec",
				rules:  "deny exec " + bins + "\ndeny open " + bins + " exe=" + e.ldsoExe + "," + e.shExe + "," + e.pyE,
				denied: []string{"execve", "execve-script", "ld.so", "sh", "python3"}, plain: true,
			},
		} {
			t.Run(tc.name, func(t *testing.T) {
				rules := filepath.Join(t.TempDir(), "rules")
				os.WriteFile(rules, []byte(tc.rules+"\n"), 0o644)
				audit := filepath.Join(t.TempDir(), "audit.jsonl")
				p := start(t, append(append([]string{"guard"}, extra...), "--events", tc.events, "--policy", rules, "--audit", audit, e.dir)...)
				for i, a := range tc.denied {
					if ran, eperm, d := e.run(t, a, i); ran || !eperm {
						t.Errorf("%s of a denied file: ran=%v EPERM=%v: %s", attacks[a].name, ran, eperm, d)
					} else {
						t.Logf("%s: %s", attacks[a].name, d)
					}
				}
				for i, a := range tc.ran {
					if ran, _, d := e.run(t, a, 100+i); !ran {
						t.Errorf("%s under %q: did not run (%s); the documented limit changed: update docs/security.md", attacks[a].name, tc.rules, d)
					}
				}
				if tc.plain {
					out, err := exec.Command("cat", e.tool, e.script, e.py).CombinedOutput()
					if err != nil {
						t.Errorf("reading the files (not running them): %v %.200s", err, out)
					}
				}
				if st := p.stop(); st != 0 {
					t.Fatalf("guard exit %d:\n%s", st, p.errText())
				}
				// The loader's denied open is audited with the loader as the executable.
				if len(tc.denied) == len(attacks) {
					found := false
					for _, r := range auditFor(auditLines(t, audit), e.tool) {
						if r["verdict"] == "deny" && r["exe"] == e.ldsoExe && r["event"] == "open" {
							found = true
						}
					}
					if !found {
						t.Errorf("no audit line of the loader's denied open of %s with exe %s", e.tool, e.ldsoExe)
					}
				}
			})
		}
	})
}
