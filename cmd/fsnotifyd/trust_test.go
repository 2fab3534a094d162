//go:build linux

package main

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// fsn runs the fsnotifyd binary and returns its stdout, stderr and exit status.
func fsn(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), exitStatus(err)
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}

func sha(content string) string {
	s := sha256.Sum256([]byte(content))
	return hex.EncodeToString(s[:])
}

func TestTrustAddListCheck(t *testing.T) {
	dir := t.TempDir()
	tool, script, gone := filepath.Join(dir, "tool"), filepath.Join(dir, "my script.sh"), filepath.Join(dir, "gone")
	writeFile(t, tool, "tool v1")
	writeFile(t, script, "#!/bin/sh\necho hi\n")
	writeFile(t, gone, "soon gone")
	if err := os.Symlink("tool", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "trust.d", "local.trust")

	out, errOut, st := fsn(t, "trust", "add", "--file", file, filepath.Join(dir, "link"), script, gone)
	wantOut := fmt.Sprintf("%[1]s:1: added %[2]s 7 %[3]s\n%[1]s:2: added %[4]s 18 %[5]s\n%[1]s:3: added %[6]s 9 %[7]s\n",
		file, tool, sha("tool v1"), strings.ReplaceAll(script, " ", `\ `), sha("#!/bin/sh\necho hi\n"), gone, sha("soon gone"))
	if st != 0 || out != wantOut || !strings.Contains(errOut, "link is "+tool) {
		t.Fatalf("add: exit %d\n%s\nwant\n%s\nstderr: %s", st, out, wantOut, errOut)
	}
	// Re-adding after a change replaces the line.
	writeFile(t, tool, "tool v2!")
	out, _, st = fsn(t, "trust", "add", "-f", file, tool)
	if st != 0 || out != fmt.Sprintf("%s:1: replaced %s 8 %s\n", file, tool, sha("tool v2!")) {
		t.Fatalf("re-add: exit %d: %s", st, out)
	}
	out, _, st = fsn(t, "trust", "list", "--file", file)
	if st != 0 || strings.Count(out, "\n") != 3 || !strings.Contains(out, tool+" 8 sha256:"+sha("tool v2!")+" "+file+":1\n") {
		t.Fatalf("list: exit %d:\n%s", st, out)
	}
	out, _, st = fsn(t, "trust", "list", "--file", file, "--no-packages", filepath.Join(dir, "link"))
	if st != 0 || strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, tool+" ") {
		t.Fatalf("list PATH: exit %d:\n%s", st, out)
	}
	out, errOut, st = fsn(t, "trust", "list", "--file", file, "--no-packages", filepath.Join(dir, "other"))
	if st != 1 || out != "" || !strings.Contains(errOut, "other: no entry (not trusted)") {
		t.Fatalf("list of an unlisted path: exit %d: %q %q", st, out, errOut)
	}

	out, errOut, st = fsn(t, "trust", "check", "--file", file)
	if st != 0 || strings.Count(out, "OK       ") != 3 || !strings.Contains(errOut, "checked 3 entries: 3 OK, 0 MODIFIED, 0 MISSING, 0 ERROR") {
		t.Fatalf("check: exit %d:\n%s%s", st, out, errOut)
	}
	// Modified (same size), missing, replaced by a directory.
	writeFile(t, tool, "tool v3!")
	os.Remove(gone)
	os.Remove(script)
	os.Mkdir(script, 0o755)
	out, errOut, st = fsn(t, "trust", "check", "--file", file)
	want := []string{
		fmt.Sprintf("MODIFIED %s (%s:1: sha256:%s, want sha256:%s)", tool, file, sha("tool v3!"), sha("tool v2!")),
		fmt.Sprintf("MODIFIED %s (%s:2: now a directory)", strings.ReplaceAll(script, " ", `\ `), file),
		fmt.Sprintf("MISSING  %s (%s:3)", gone, file),
	}
	if st != 1 || out != strings.Join(want, "\n")+"\n" || !strings.Contains(errOut, "3 entries: 0 OK, 2 MODIFIED, 1 MISSING") {
		t.Fatalf("check after changes: exit %d:\n%s\nwant\n%s\n%s", st, out, strings.Join(want, "\n"), errOut)
	}
	out, _, st = fsn(t, "trust", "check", "--file", file, "--failed", tool)
	if st != 1 || strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "MODIFIED") {
		t.Fatalf("check PATH --failed: exit %d:\n%s", st, out)
	}
}

func TestTrustRefusesAndUsage(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "t.trust")
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	ok := filepath.Join(dir, "ok")
	writeFile(t, ok, "ok")
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"trust", "add", "-f", file, ok, dir}, 1, dir + ": a directory, not a regular file: only files can be trusted"},
		{[]string{"trust", "add", "-f", file, ok, fifo}, 1, fifo + ": a FIFO, not a regular file"},
		{[]string{"trust", "add", "-f", file, filepath.Join(dir, "nope")}, 1, "nope: no such file or directory"},
		{[]string{"trust"}, 2, "no subcommand: add, list or check"},
		{[]string{"trust", "frob"}, 2, `unknown subcommand "frob"`},
		{[]string{"trust", "add", "-f", file}, 2, "fsnotifyd trust add: no PATH given"},
		{[]string{"trust", "add", "--bogus", ok}, 2, `unknown flag --bogus (see "fsnotifyd trust add --help")`},
		{[]string{"trust", "list", "--packages", "--no-packages"}, 2, "contradict"},
		{[]string{"trust", "check", "-j", "0", "-f", file}, 2, "-j 0: want at least 1"},
		{[]string{"trust", "list", "-f", filepath.Join(dir, "missing.trust")}, 1, "missing.trust: no such file or directory"},
	}
	for _, tt := range tests {
		out, errOut, st := fsn(t, tt.args...)
		if st != tt.code || !strings.Contains(errOut, tt.msg) || out != "" {
			t.Errorf("fsnotifyd %v: exit %d, %q %q; want exit %d mentioning %q", tt.args, st, out, errOut, tt.code, tt.msg)
		}
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("a refused add wrote %s: %v", file, err)
	}
	// A trust file others can write is refused, with the fix.
	writeFile(t, file, "")
	os.Chmod(file, 0o666)
	if _, errOut, st := fsn(t, "trust", "list", "-f", file); st != 1 || !strings.Contains(errOut, "writable by others (mode 0666)") {
		t.Fatalf("0666 trust file: exit %d %q", st, errOut)
	}
	if _, errOut, st := fsn(t, "trust", "add", "-f", file, ok); st != 1 || !strings.Contains(errOut, "chmod go-w") {
		t.Fatalf("add to a 0666 trust file: exit %d %q", st, errOut)
	}
	for _, c := range []string{"trust", "trust add", "trust list", "trust check"} {
		out, _, st := fsn(t, append(strings.Fields(c), "--help")...)
		if st != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "Usage: fsnotifyd "+c) {
			t.Errorf("%s --help: exit %d\n%s", c, st, out)
		}
	}
}

// TestTrustPackages runs list and check on a made-up dpkg database (--dpkg-dir).
func TestTrustPackages(t *testing.T) {
	dir := t.TempDir()
	dpkg := filepath.Join(dir, "dpkg")
	os.MkdirAll(filepath.Join(dpkg, "info"), 0o755)
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeFile(t, a, "a")
	writeFile(t, b, "b edited")
	md := func(s string) string { m := md5.Sum([]byte(s)); return hex.EncodeToString(m[:]) }
	writeFile(t, filepath.Join(dpkg, "info", "pkg.list"), "/.\n"+dir+"\n"+a+"\n"+b+"\n")
	writeFile(t, filepath.Join(dpkg, "info", "pkg.md5sums"), md("a")+"  "+a[1:]+"\n"+md("b")+"  "+b[1:]+"\n")
	writeFile(t, filepath.Join(dpkg, "status"), "Package: pkg\nStatus: install ok installed\nArchitecture: amd64\n\n")
	empty := filepath.Join(dir, "trust.d")
	os.Mkdir(empty, 0o755)
	src := []string{"--dpkg-dir", dpkg, "--dir", empty}

	out, _, st := fsn(t, append([]string{"trust", "list", "--packages"}, src...)...)
	if st != 0 || out != fmt.Sprintf("%s - md5:%s dpkg:pkg\n%s - md5:%s dpkg:pkg\n", a, md("a"), b, md("b")) {
		t.Fatalf("list --packages: exit %d:\n%s", st, out)
	}
	out, _, st = fsn(t, append([]string{"trust", "list", "--count", "--packages"}, src...)...)
	if st != 0 || !strings.HasPrefix(out, "2 entries\n") || !strings.Contains(out, "packages: 2 files and 0 conffiles of 1 packages") {
		t.Fatalf("list --count: exit %d:\n%s", st, out)
	}
	// Without --packages and without PATH: the trust files only (none).
	out, _, st = fsn(t, append([]string{"trust", "list"}, src...)...)
	if st != 0 || out != "" {
		t.Fatalf("list: exit %d: %q", st, out)
	}
	out, errOut, st := fsn(t, append([]string{"trust", "check", "--packages"}, src...)...)
	want := fmt.Sprintf("OK       %s (dpkg:pkg)\nMODIFIED %s (dpkg:pkg: md5:%s, want md5:%s)\n", a, b, md("b edited"), md("b"))
	if st != 1 || out != want || !strings.Contains(errOut, "2 entries: 1 OK, 1 MODIFIED") || strings.Contains(errOut, "\r") {
		t.Fatalf("check --packages: exit %d:\n%s\nwant\n%s\n%q", st, out, want, errOut)
	}
	// A PATH is looked up in the packages too, unless --no-packages.
	out, _, st = fsn(t, append([]string{"trust", "check", a}, src...)...)
	if st != 0 || out != fmt.Sprintf("OK       %s (dpkg:pkg)\n", a) {
		t.Fatalf("check PATH: exit %d: %q", st, out)
	}
	if _, errOut, st := fsn(t, append([]string{"trust", "check", "--no-packages", a}, src...)...); st != 1 || !strings.Contains(errOut, "no entry") {
		t.Fatalf("check --no-packages PATH: exit %d: %q", st, errOut)
	}
}

// TestTrustAddUnprivileged: a user who cannot write the default trust file is told so, and
// nothing is written.
func TestTrustAddUnprivileged(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.PublicDir(t)
	f := filepath.Join(dir, "tool")
	writeFile(t, f, "x")
	target := filepath.Join(dir, "root-only", "local.trust")
	os.Mkdir(filepath.Dir(target), 0o755)
	cmd := exec.Command(bin, "trust", "add", "--file", target, f)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if exitStatus(err) != 1 || !strings.Contains(string(out), "permission denied") || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
		t.Fatalf("unprivileged add: %v %q", err, out)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Fatalf("%s was written: %v", target, err)
	}
}
