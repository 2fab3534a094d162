//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

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
