package trust

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestCheckFileThroughSymbolicLinks: a file that says what may run, named through symbolic
// links, is held to the rule in every directory the name's resolution looks a name up in —
// the link's target's directories too — and its links must be root's. Before, only the
// directories above the name as written were checked: a policy named by a link in a root
// directory and living in a directory nobody could write was accepted (nobody could rename
// another root file over it, or remove it).
func TestCheckFileThroughSymbolicLinks(t *testing.T) {
	testenv.RequireRoot(t)
	base := t.TempDir()
	p := func(rel string) string { return base + "/" + rel } // not filepath.Join: it cleans ".." lexically
	mkdir := func(rel string, uid int) {
		t.Helper()
		must(t, os.MkdirAll(p(rel), 0o755))
		must(t, os.Chown(p(rel), uid, uid))
	}
	file := func(rel string) {
		t.Helper()
		must(t, os.WriteFile(p(rel), []byte("/a 1 "+hexA+"\n"), 0o644))
	}
	link := func(target, rel string, uid int) {
		t.Helper()
		must(t, os.Symlink(target, p(rel)))
		must(t, os.Lchown(p(rel), uid, uid))
	}
	const nobody = 65534
	mkdir("etc", 0)
	mkdir("home/u", nobody)
	mkdir("opt/sub", 0)
	file("home/u/pol")
	file("opt/pol")
	file("opt/sub/pol")
	link(p("home/u/pol"), "etc/to-users", 0)       // a root link into nobody's directory
	link(p("home/u"), "etc/users-dir", 0)          // a directory link into it
	link(p("opt/pol"), "etc/nobodys-link", nobody) // nobody's link to a good file
	link(p("opt/pol"), "etc/good", 0)
	link("../opt/sub", "etc/rel", 0) // relative, to a directory
	link("etc/good", "chain", 0)     // a link to a link (relative to base)
	link(p("etc/loop2"), "etc/loop1", 0)
	link(p("etc/loop1"), "etc/loop2", 0)

	cases := []struct {
		name, want string // want: "" accepted, else a part of the refusal
		owner      bool   // the refusal is an *OwnerError
	}{
		{"etc/good", "", false},
		{"chain", "", false},
		{"etc/rel/pol", "", false},
		// ".." after a link goes up from its target (opt/sub/.. is opt), not lexically (etc).
		{"etc/rel/../pol", "", false},
		{"etc/to-users", "its directory " + p("home/u") + ": owned by uid 65534", true},
		{"etc/users-dir/pol", "its directory " + p("home/u") + ": owned by uid 65534", true},
		{"etc/nobodys-link", "the symbolic link " + p("etc/nobodys-link") + " on its path is not owned by root", true},
		{"etc/loop1", "too many levels of symbolic links", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := OpenFile(p(c.name))
			if err != nil {
				if c.want != "" && strings.Contains(err.Error(), c.want) {
					return // the kernel's own refusal (ELOOP)
				}
				t.Fatal(err)
			}
			defer f.Close()
			err = CheckFile(f, p(c.name), "policy file")
			var oe *OwnerError
			switch {
			case c.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("got %v, want a refusal with %q", err, c.want)
			case c.want != "" && errors.As(err, &oe) != c.owner:
				t.Errorf("%v: an OwnerError: %v, want %v", err, !c.owner, c.owner)
			}
		})
	}

	// The open file must be the one the name leads to.
	other, err := OpenFile(p("opt/sub/pol"))
	must(t, err)
	defer other.Close()
	if err := CheckFile(other, p("etc/good"), "policy file"); err == nil || !strings.Contains(err.Error(), "changed while it was checked") {
		t.Errorf("another file than the name's: %v", err)
	}
}
