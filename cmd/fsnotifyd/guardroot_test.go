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

// TestGuardWarnsWhenOthersMayRenameTheGuardedDirectory: a subtree guard guards a directory,
// not a name, and a glob matches the path a file has at the access. As nobody, where a
// directory the rule `deny open G/secret/**` names lets them (G's parent 0777, or G theirs in
// a sticky one, or G itself 0777), they rename it and open the file the rule kept closed: the
// tree is still decided (an audit line under the new name) but the rule no longer matches,
// so the open is allowed. The guard must say so at its start, naming the rule; where nobody
// cannot rename them (root's 0755 parent; root's directory in a sticky one) it must say
// nothing, and the rename fails; and never for a rule that names no directory (**/*.key).
// docs/security.md, "The guarded directory's name".
func TestGuardWarnsWhenOthersMayRenameTheGuardedDirectory(t *testing.T) {
	for _, c := range []struct {
		name, parentMode, gMode, owner string
		from, to                       string // renamed by nobody, below pub; "" if they cannot
	}{
		{"parent 0777", "0777", "0755", "0", "g", "h"},
		{"parent 0755", "0755", "0755", "0", "", ""},
		{"sticky parent, root's", "1777", "0755", "0", "", ""},
		{"sticky parent, nobody's", "1777", "0755", "65534", "g", "h"},
		{"guarded directory 0777", "0755", "0777", "0", "g/secret", "g/s2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := testenv.PublicTmpfs(t)
			pub := root + "/pub"
			g := pub + "/g"
			sh(t, "mkdir -p "+g+"/secret && echo s > "+g+"/secret/k && chmod "+c.parentMode+" "+pub+
				" && chmod "+c.gMode+" "+g+" && chown "+c.owner+" "+g)
			audit := filepath.Join(t.TempDir(), "audit.jsonl")
			p := start(t, "guard", "--deny", g+"/secret/**", "--deny", "**/*.key", "--audit", audit, g)
			warned := strings.Contains(p.errText(), "warning: --deny "+g+"/secret/**:")
			if warned != (c.from != "") || strings.Contains(p.errText(), "warning: --deny **/*.key") {
				t.Errorf("warning about --deny %s/secret/** at the start: %v, want %v, and none about **/*.key; stderr:\n%s", g, warned, c.from != "", p.errText())
			}
			if !denied(nobody, g+"/secret/k") {
				t.Fatal("the guarded file opened before any rename")
			}
			if c.from == "" {
				if o, err := shAs(nobody, "mv "+g+" "+pub+"/h || mv "+g+"/secret "+g+"/s2"); err == nil {
					t.Fatalf("nobody renamed %s or its secret: %s", g, o)
				}
				if !denied(nobody, g+"/secret/k") {
					t.Fatal("the guarded file opened after nobody's refused renames")
				}
				return
			}
			if o, err := shAs(nobody, "mv "+pub+"/"+c.from+" "+pub+"/"+c.to); err != nil {
				t.Fatal(o, err)
			}
			moved := pub + "/" + c.to // the secret directory under its new name
			if c.from == "g" {
				moved += "/secret"
			}
			// The limit the warning names: still decided, under the name nobody gave it.
			if denied(nobody, moved+"/k") {
				t.Fatal("the renamed tree's file denied: the limit is gone, update the warning and docs")
			}
			p.stop()
			found := false
			for _, l := range auditLines(t, audit) {
				found = found || l["path"] == moved+"/k"
			}
			if !found {
				t.Errorf("no audit line for %s/k: the renamed tree was not decided", moved)
			}
		})
	}
}

// TestGuardWarnsOfRulesThroughSymbolicLinks: a glob matches the path the kernel reports,
// which has no symbolic links; a rule whose literal directories pass through one (a guarded
// directory named by a link, /lib on merged-/usr) never matches, and before, nothing said
// so: `guard --deny L/secret/** L`, L a link to G, let nobody read G/secret/k. The guard
// must warn at its start naming the rule and the link, and not for a rule naming the real
// path, nor for one whose directories do not exist or that starts with **.
func TestGuardWarnsOfRulesThroughSymbolicLinks(t *testing.T) {
	root := testenv.PublicTmpfs(t)
	g, l := root+"/g", root+"/l"
	sh(t, "mkdir -p "+g+"/secret "+g+"/other && echo s > "+g+"/secret/k && echo o > "+g+"/other/o && ln -s g "+l+
		" && ln -s ../other/o "+g+"/secret/lo")
	rules := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(rules, []byte("deny open **/*.pem\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, "guard", "--deny", l+"/secret/**", "--deny", g+"/secret/lo", "--deny", g+"/other/*.key",
		"--deny", root+"/none/**", "--policy", rules, l)
	text := p.errText()
	for _, want := range []string{
		"warning: --deny " + l + "/secret/**: " + l + " is a symbolic link",
		"warning: --deny " + g + "/secret/lo: " + g + "/secret/lo is a symbolic link",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q at the start; stderr:\n%s", want, text)
		}
	}
	for _, not := range []string{"--deny " + g + "/other/*.key:", "--deny " + root + "/none/**:", rules + ":1:"} {
		if strings.Contains(text, "warning: "+not) {
			t.Errorf("a warning about %s; stderr:\n%s", not, text)
		}
	}
	// And after a reload that brings such a rule.
	if err := os.WriteFile(rules, []byte("deny open **/*.pem\ndeny open "+l+"/other/**\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	want := "warning: " + rules + ":2: " + l + " is a symbolic link"
	if !waitFor(10*time.Second, func() bool { return strings.Contains(p.errText(), want) }) {
		t.Errorf("no %q after the reload; stderr:\n%s", want, p.errText())
	}
	// policy check says the same, with its kind.
	out, _ := exec.Command(bin, "policy", "check", rules).Output()
	if want := rules + ":2: warning: " + l + " is a symbolic link"; !strings.Contains(string(out), want) || !strings.Contains(string(out), "[symlink]") {
		t.Errorf("policy check: no %q [symlink]:\n%s", want, out)
	}
	// The limit the warning names: the link's rule matches nothing.
	if denied(nobody, l+"/secret/k") {
		t.Error("the rule through the link denied: the limit is gone, update the warning and docs")
	}
}
