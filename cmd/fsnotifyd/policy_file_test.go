//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestFIFORefusedAsPolicyOrTrustFile: a FIFO named as a rules file or a trust file is refused
// at once, as not a regular file, with the flag or the path named, by every command that reads
// one; none waits for a writer.
func TestFIFORefusedAsPolicyOrTrustFile(t *testing.T) {
	dir, mnt := t.TempDir(), testenv.Tmpfs(t)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	trusting := filepath.Join(dir, "trusting.rules")
	writeFile(t, trusting, "allow open ** trusted=yes\n")
	ok := filepath.Join(dir, "ok")
	writeFile(t, ok, "ok")
	notRegular := "file " + fifo + " is not a regular file (a FIFO)"
	for _, tt := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"policy", "check", fifo}, exitUsage, "fsnotifyd policy check: policy " + notRegular},
		{[]string{"policy", "explain", fifo, "--path", ok}, exitUsage, "fsnotifyd policy explain: policy " + notRegular},
		{[]string{"trust", "list", "--file", fifo}, exitRuntime, "fsnotifyd trust list: trust " + notRegular},
		{[]string{"trust", "check", "--file", fifo}, exitRuntime, "fsnotifyd trust check: trust " + notRegular},
		{[]string{"trust", "add", "--file", fifo, ok}, exitRuntime, "fsnotifyd trust add: trust " + notRegular},
		{[]string{"guard", "--policy", fifo, mnt}, exitRuntime, "fsnotifyd guard: --policy: policy " + notRegular},
		// policy push read it with os.ReadFile: it waited for a writer, for ever.
		{[]string{"policy", "push", fifo, "--nats", "nats://127.0.0.1:1"}, exitRuntime, "fsnotifyd policy push: policy " + notRegular},
		{[]string{"guard", "--trust", fifo, "--no-package-trust", "--policy", trusting, mnt}, exitRuntime, "fsnotifyd guard: --trust: trust " + notRegular},
	} {
		t0 := time.Now()
		_, errOut, st, timedOut := fsnWithin(t, 10*time.Second, tt.args...)
		if timedOut || st != tt.code || !strings.Contains(errOut, tt.msg) {
			t.Errorf("fsnotifyd %s: exit %d after %v (killed at 10s: %v), stderr %q; want exit %d at once with %q",
				strings.Join(tt.args, " "), st, time.Since(t0).Round(time.Millisecond), timedOut, errOut, tt.code, tt.msg)
		}
	}
}

// TestGuardRefusesPolicyFileOthersCanWrite: guard --policy refuses, as a usage error naming
// --policy with the fix, a rules file that someone other than root could change — its mode,
// its owner, or its directory's — as trust files are; a sticky directory (/tmp) is fine.
func TestGuardRefusesPolicyFileOthersCanWrite(t *testing.T) {
	mnt := testenv.Tmpfs(t)
	for _, tt := range []struct {
		name  string
		setup func(dir, rules string) error
		msg   string // after "--policy: policy file RULES: "
		fix   string // the command that fixes it, on DIR or RULES
	}{
		{"world-writable", func(dir, rules string) error { return os.Chmod(rules, 0o666) },
			"writable by others (mode 0666)", "chmod go-w RULES"},
		{"group-writable", func(dir, rules string) error { return os.Chmod(rules, 0o664) },
			"writable by its group (mode 0664)", "chmod go-w RULES"},
		{"owned by nobody", func(dir, rules string) error { return os.Chown(rules, 65534, 65534) },
			"owned by uid 65534", "chown root RULES"},
		{"directory world-writable", func(dir, rules string) error { return os.Chmod(dir, 0o777) },
			"its directory DIR: writable by others (mode 0777)", "chmod go-w DIR"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Contains(tt.name, "nobody") && os.Geteuid() != 0 {
				t.Skip("chown needs root")
			}
			dir := filepath.Join(t.TempDir(), "etc")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			rules := filepath.Join(dir, "guard.rules")
			writeFile(t, rules, "deny open "+mnt+"/s\n")
			if err := tt.setup(dir, rules); err != nil {
				t.Fatal(err)
			}
			r := strings.NewReplacer("DIR", dir, "RULES", rules)
			want := "fsnotifyd guard: --policy: policy file " + rules + ": " + r.Replace(tt.msg)
			_, errOut, st, timedOut := fsnWithin(t, 10*time.Second, "guard", "--policy", rules, mnt)
			if timedOut || st != exitUsage || !strings.Contains(errOut, want) || !strings.Contains(errOut, r.Replace(tt.fix)) {
				t.Errorf("exit %d (still running at 10s: %v), stderr %q; want exit 2 with %q and %q", st, timedOut, errOut, want, r.Replace(tt.fix))
			}
		})
	}
}

// TestGuardReloadRefusesPolicyFileOthersCanWrite: a new version of the policy file that others
// can write is refused as an invalid one is: the old policy stays, and stderr and the audit
// log say why; made private again it applies. A FIFO put in its place is refused likewise,
// at once (the reload does not wait for a writer), and the guard goes on reloading.
func TestGuardReloadRefusesPolicyFileOthersCanWrite(t *testing.T) {
	mnt, s, etc, rules := reloadFiles(t)
	deny, allow, _, _ := reloadPolicies(mnt)
	writeFile(t, rules, deny)
	audit := filepath.Join(etc, "audit.jsonl")
	p := start(t, "guard", "--policy", rules, "--reload-interval", "20ms", "--audit", audit, mnt)
	denied := deniedNow(t, s)
	if !denied() {
		t.Fatal("allowed under the deny policy")
	}
	// The allow policy, world-writable, put in place at once (a rename: no other version seen).
	tmp := filepath.Join(etc, "new.rules")
	writeFile(t, tmp, allow)
	if err := os.Chmod(tmp, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, rules); err != nil {
		t.Fatal(err)
	}
	refused := "policy reload from " + rules + " rejected, the old policy stays: --policy: policy file " + rules + ": writable by others (mode 0666)"
	if !waitFor(10*time.Second, func() bool { return strings.Contains(p.errText(), refused) }) {
		t.Fatalf("the world-writable file was not refused; stderr:\n%s", p.errText())
	}
	if !denied() {
		t.Fatal("the world-writable file replaced the policy")
	}
	if err := os.Chmod(rules, 0o644); err != nil { // its ctime changes: the next poll reads it
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool { return !denied() }) {
		t.Fatalf("the file made private never applied; stderr:\n%s", p.errText())
	}
	// A FIFO in its place: refused at once, and the guard still reloads afterwards.
	fifo := filepath.Join(etc, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(fifo, rules); err != nil {
		t.Fatal(err)
	}
	refusedFIFO := "rejected, the old policy stays: --policy: policy file " + rules + " is not a regular file (a FIFO)"
	if !waitFor(10*time.Second, func() bool { return strings.Contains(p.errText(), refusedFIFO) }) {
		t.Fatalf("the FIFO was not refused; stderr:\n%s", p.errText())
	}
	writeFile(t, tmp, deny)
	if err := os.Rename(tmp, rules); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, denied) {
		t.Fatalf("no reload after the FIFO (the reload is stuck on it?); stderr:\n%s", p.errText())
	}
	p.stop()
	var rej []string
	for _, r := range auditLines(t, audit) {
		if r["event"] == "policy-reload" && r["verdict"] == "rejected" {
			rej = append(rej, fmt.Sprint(r["error"]))
		}
	}
	if len(rej) != 2 || !strings.Contains(rej[0], "writable by others (mode 0666)") || !strings.Contains(rej[1], "(a FIFO)") {
		t.Errorf("rejected reloads in the audit log: %q; want the world-writable file's, then the FIFO's", rej)
	}
}

// TestGuardTrustErrorsNameTrustFlag: a trust file the guard cannot use at the start is blamed
// on --trust (or --trust-dir, for a file found there), with the file named, not on --policy.
func TestGuardTrustErrorsNameTrustFlag(t *testing.T) {
	dir, mnt := t.TempDir(), testenv.Tmpfs(t)
	trusting := filepath.Join(dir, "trusting.rules")
	writeFile(t, trusting, "allow open ** trusted=yes\n")
	missing := filepath.Join(dir, "missing.trust")
	open := filepath.Join(dir, "open.trust")
	writeFile(t, open, "")
	if err := os.Chmod(open, 0o666); err != nil {
		t.Fatal(err)
	}
	tdir := filepath.Join(dir, "trust.d")
	if err := os.Mkdir(tdir, 0o755); err != nil {
		t.Fatal(err)
	}
	inDir := filepath.Join(tdir, "local.trust")
	writeFile(t, inDir, "")
	if err := os.Chmod(inDir, 0o666); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--trust", missing}, "fsnotifyd guard: --trust: open " + missing + ": no such file or directory"},
		{[]string{"--trust", open}, "fsnotifyd guard: --trust: trust file " + open + ": writable by others (mode 0666)"},
		{[]string{"--trust-dir", tdir}, "fsnotifyd guard: --trust-dir: trust file " + inDir + ": writable by others (mode 0666)"},
	} {
		args := append(append([]string{"guard", "--no-package-trust", "--policy", trusting}, tt.flags...), mnt)
		_, errOut, st, timedOut := fsnWithin(t, 10*time.Second, args...)
		if timedOut || st != exitRuntime || !strings.Contains(errOut, tt.want) || strings.Contains(errOut, "--policy") {
			t.Errorf("%v: exit %d (still running at 10s: %v), stderr %q; want exit 1 with %q, and no --policy", tt.flags, st, timedOut, errOut, tt.want)
		}
	}
}
