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

// TestGuardDecidesAsExplainAsNobody: a sample of the policy model's tricky cases
// (internal/policy TestGlobModel, TestPolicyModelExplainAgreesWithDecide) end to end. Each
// name, opened by nobody under an embedded guard, is decided as `policy explain --path`
// says, and as docs/policy.md says: names with a space, a newline, a backslash, a [, a *,
// bytes that are not UTF-8 (a class of a Latin-1 file holds its byte only), "...", a 255-byte
// name, a ** that matches no directory.
func TestGuardDecidesAsExplainAsNobody(t *testing.T) {
	root := testenv.PublicTmpfs(t)
	d := root + "/d"
	files := map[string]bool{ // name below d: denied
		"\xffcaf":                true,  // [\xff]*
		"\xfe":                   false, // [\xff]* holds 0xff only (before: every byte not UTF-8)
		"\xa9":                   true,  // *\xa9
		"é":                      false, // *\xa9 does not match half of é (before: it did)
		"a b":                    true,
		"x\ny":                   true, // x?y
		"x\\y":                   true, // x?y
		"back\\slash":            true,
		"[br]":                   true,
		"b":                      false, // \[br] is literal
		"star*":                  true,
		"starry":                 false,
		".../k":                  true,
		"sub/deep/f":             true, // /**/f
		"f":                      true, // /**/f: no directory
		"sub/deep/g":             false,
		strings.Repeat("a", 255): true,
		strings.Repeat("b", 255): false,
	}
	for name := range files {
		p := filepath.Join(d, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rules := filepath.Join(t.TempDir(), "model.rules")
	text := "" +
		"deny open " + d + "/[\xff]*\n" +
		"deny open " + d + "/*\xa9\n" +
		"deny open \"" + d + "/a b\"\n" +
		"deny open " + d + "/x?y\n" +
		"deny open " + d + "/back\\\\slash\n" +
		"deny open " + d + "/\\[br]\n" +
		"deny open " + d + "/star\\*\n" +
		"deny open " + d + "/.../**\n" +
		"deny open " + d + "/**/f\n" +
		"deny open " + d + "/a*\n"
	if err := os.WriteFile(rules, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	start(t, "guard", "--policy", rules, d)
	for name, want := range files {
		p := filepath.Join(d, name)
		_, _, st := fsn(t, "policy", "explain", rules, "--path", p, "--uid", "65534")
		explained := st == 1
		if st != 0 && st != 1 {
			t.Errorf("explain %q: exit %d", name, st)
			continue
		}
		c := exec.Command("cat", p)
		c.SysProcAttr = &syscall.SysProcAttr{Credential: testenv.Nobody}
		out, err := c.CombinedOutput()
		guard := isEPERM(err, string(out))
		if err != nil && !guard {
			t.Errorf("cat %q as nobody: %v: %s", name, err, out)
			continue
		}
		if guard != explained || guard != want {
			t.Errorf("%q: the guard denies: %v, policy explain says denied: %v, docs/policy.md: %v", name, guard, explained, want)
		}
	}
}
