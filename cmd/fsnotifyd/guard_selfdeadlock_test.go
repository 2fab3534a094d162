//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// The guard never waits on its own accesses: its audit file, trust file and policy file are
// inside the tree it guards, under a deny-by-default policy that allows only a trusted file,
// with --on-timeout deny (a decision that waited on the guard itself would end at the deadline
// as a deny). Opens by another process are decided well within the deadline, before and after
// reloads (SIGHUP: the guard reads the policy and trust files again, through its own marks),
// while every decision writes to the audit file in the tree.
func TestGuardNoSelfDeadlock(t *testing.T) {
	for _, fs := range []string{"tmpfs", "ext4"} {
		t.Run(fs, func(t *testing.T) {
			var mnt string
			if fs == "tmpfs" {
				mnt = testenv.Tmpfs(t)
			} else {
				mnt = testenv.Ext4(t, 32)
			}
			for _, d := range []string{"etc", "log", "ok"} {
				if err := os.Mkdir(filepath.Join(mnt, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			tool, other := filepath.Join(mnt, "ok", "tool"), filepath.Join(mnt, "other")
			writeFile(t, tool, "trusted content\n")
			writeFile(t, other, "untrusted\n")
			tf, rules, audit := filepath.Join(mnt, "etc", "local.trust"), filepath.Join(mnt, "etc", "guard.rules"), filepath.Join(mnt, "log", "audit.jsonl")
			if _, errOut, st := fsn(t, "trust", "add", "--file", tf, tool); st != 0 {
				t.Fatalf("trust add: %s", errOut)
			}
			writeFile(t, rules, "default deny\nallow open "+mnt+"/ok/** trusted=yes\n")
			const deadline = 5 * time.Second
			p := start(t, "guard", "--policy", rules, "--trust", tf, "--no-package-trust", "--audit", audit,
				"--deadline", deadline.String(), "--on-timeout", "deny", "--reload-interval", "20ms", mnt)

			// cat reads a file: it must be decided (allowed or denied) in well under the deadline.
			check := func(path string, allowed bool) {
				t.Helper()
				begin := time.Now()
				out, err := exec.Command("cat", path).CombinedOutput()
				took := time.Since(begin)
				if took > deadline/2 {
					t.Fatalf("cat %s took %v (deadline %v): the decision waited", path, took, deadline)
				}
				if (err == nil) != allowed {
					t.Fatalf("cat %s: %v %s; want allowed=%v", path, err, out, allowed)
				}
			}
			for round := 1; round <= 5; round++ {
				check(tool, true)
				check(other, false)
				check(audit, false)
				check(tf, false)
				if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
					t.Fatal(err)
				}
				// The guard itself reads both files again, through its own marks; wait until
				// it reports having done so for this SIGHUP before the next (two SIGHUPs sent
				// during one reload are one more reload, as signals pending together are one).
				if !waitFor(10*time.Second, func() bool {
					return strings.Count(p.errText(), "policy reloaded from "+rules) >= round && strings.Count(p.errText(), "trust reloaded from SIGHUP") >= round
				}) {
					t.Fatalf("round %d: reloads not reported; stderr:\n%s", round, p.errText())
				}
			}
			check(tool, true)
			check(other, false)
			if st := p.stop(); st != 0 {
				t.Fatalf("exit %d: %s", st, p.errText())
			}
			recs := auditLines(t, audit)
			var decided int
			for _, r := range recs {
				if r["rule"] == "deadline" {
					t.Errorf("a decision hit the deadline: %v", r)
				}
				if r["event"] == "open" {
					decided++
				}
			}
			if decided < 22 {
				t.Errorf("%d open decisions in the audit log, want at least 22", decided)
			}
		})
	}
}
