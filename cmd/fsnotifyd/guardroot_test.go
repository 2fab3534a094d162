//go:build linux

package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestGuardWarnsWhenOthersMayRenameTheGuardedDirectory: a subtree guard guards a directory,
// not a name. As nobody, where the guarded directory's parent lets them (0777, or a sticky
// directory and the guarded directory theirs), they rename it and open a file that `deny open
// G/secret/**` kept closed: its tree is still decided (an audit line under the new name) but
// the rule names the old path, so the open is allowed. The guard must say so at its start;
// where nobody cannot rename it (root's 0755 parent; root's directory in a sticky one) it
// must say nothing, and the rename fails. docs/security.md, "The guarded directory's name".
func TestGuardWarnsWhenOthersMayRenameTheGuardedDirectory(t *testing.T) {
	for _, c := range []struct {
		name, parentMode, owner string
		renamable               bool
	}{
		{"parent 0777", "0777", "0", true},
		{"parent 0755", "0755", "0", false},
		{"sticky parent, root's", "1777", "0", false},
		{"sticky parent, nobody's", "1777", "65534", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := testenv.PublicTmpfs(t)
			pub := root + "/pub"
			g, h := pub+"/g", pub+"/h"
			sh(t, "mkdir -p "+g+"/secret && echo s > "+g+"/secret/k && chmod "+c.parentMode+" "+pub+
				" && chown "+c.owner+" "+g)
			audit := filepath.Join(t.TempDir(), "audit.jsonl")
			p := start(t, "guard", "--deny", g+"/secret/**", "--audit", audit, g)
			warned := strings.Contains(p.errText(), "warning: "+g+":")
			if warned != c.renamable {
				t.Errorf("warning about %s at the start: %v, want %v; stderr:\n%s", g, warned, c.renamable, p.errText())
			}
			if !denied(nobody, g+"/secret/k") {
				t.Fatal("the guarded file opened before any rename")
			}
			o, err := shAs(nobody, "mv "+g+" "+h)
			if !c.renamable {
				if err == nil {
					t.Fatalf("nobody renamed %s", g)
				}
				if !denied(nobody, g+"/secret/k") {
					t.Fatal("the guarded file opened after nobody's refused rename")
				}
				return
			}
			if err != nil {
				t.Fatal(o, err)
			}
			// The limit the warning names: still decided, under the name nobody gave it.
			if denied(nobody, h+"/secret/k") {
				t.Fatal("the renamed tree's file denied: the limit is gone, update the warning and docs")
			}
			p.stop()
			found := false
			for _, l := range auditLines(t, audit) {
				found = found || l["path"] == h+"/secret/k"
			}
			if !found {
				t.Errorf("no audit line for %s/secret/k: the renamed tree was not decided", h)
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
	p := start(t, "guard", "--deny", l+"/secret/**", "--deny", g+"/secret/lo", "--deny", g+"/other/*.key",
		"--deny", root+"/none/**", "--deny", "**/*.pem", l)
	text := p.errText()
	for _, want := range []string{
		"warning: --deny " + l + "/secret/**: " + l + " is a symbolic link",
		"warning: --deny " + g + "/secret/lo: " + g + "/secret/lo is a symbolic link",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q at the start; stderr:\n%s", want, text)
		}
	}
	for _, not := range []string{"--deny " + g + "/other/*.key:", "--deny " + root + "/none/**:", "--deny **/*.pem:"} {
		if strings.Contains(text, "warning: "+not) {
			t.Errorf("a warning about %s; stderr:\n%s", not, text)
		}
	}
	// The limit the warning names: the link's rule matches nothing.
	if denied(nobody, l+"/secret/k") {
		t.Error("the rule through the link denied: the limit is gone, update the warning and docs")
	}
}
