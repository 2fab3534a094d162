//go:build linux

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

var nobody, shAs = testenv.Nobody, testenv.Sh

func denied(cred *syscall.Credential, path string) bool {
	out, err := shAs(cred, "cat "+path)
	return err != nil && strings.Contains(out, "Operation not permitted")
}

// TestGuardDecidesFilesMovedIn is issue 9's move-in repro under `guard --deny '**/*.key'
// DIR`: a file on the same filesystem opened outside DIR, then moved or hard-linked in,
// must be decided (EPERM, and a deny in the audit). Moved by nobody (from nobody's own
// directory), the first open after the move is denied; moved or linked by root, within the
// window until the guard reads the move (docs/security.md).
func TestGuardDecidesFilesMovedIn(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { testGuardMoveIn(t) })
	t.Run("daemon", func(t *testing.T) { testGuardMoveIn(t, "--daemon="+startServe(t)) })
}

func testGuardMoveIn(t *testing.T, extra ...string) {
	root := testenv.PublicTmpfs(t)
	g, out, pub := root+"/g", root+"/out", root+"/pub"
	sh(t, "mkdir -p "+g+"/inc "+out+" "+pub+" && chown 65534:65534 "+g+"/inc "+pub+
		" && echo k > "+out+"/a.key && echo t > "+out+"/l.txt")
	if o, err := shAs(nobody, "echo k > "+pub+"/b.key"); err != nil {
		t.Fatal(o, err)
	}
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	p := start(t, append(append([]string{"guard"}, extra...), "--deny", "**/*.key", "--audit", audit, g)...)
	// Opened outside, repeatedly: time enough for any outside-ignore mark to be placed.
	for i := 0; i < 20; i++ {
		for _, c := range []struct {
			cred *syscall.Credential
			path string
		}{{nil, out + "/a.key"}, {nil, out + "/l.txt"}, {nobody, pub + "/b.key"}} {
			if o, err := shAs(c.cred, "cat "+c.path); err != nil {
				t.Fatalf("open outside the guarded directory: %v %s", err, o)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if o, err := shAs(nobody, "mv "+pub+"/b.key "+g+"/inc/b.key"); err != nil {
		t.Fatal(o, err)
	}
	if !denied(nobody, g+"/inc/b.key") {
		t.Fatal("nobody's file moved in by nobody: the first open was not denied")
	}
	sh(t, "mv "+out+"/a.key "+g+"/a.key && ln "+out+"/l.txt "+g+"/l.key")
	for _, path := range []string{g + "/a.key", g + "/l.key"} {
		deadline := time.Now().Add(5 * time.Second)
		for !denied(nobody, path) {
			if time.Now().After(deadline) {
				t.Fatalf("%s, moved or linked in by root, still opens 5 s later", path)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if st := p.stop(); st != 0 {
		t.Fatalf("guard exit %d on SIGINT", st)
	}
	data, _ := os.ReadFile(audit)
	deny := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r struct{ Path, Verdict string }
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		if r.Verdict == "deny" {
			deny[r.Path] = true
		}
	}
	for _, path := range []string{g + "/inc/b.key", g + "/a.key", g + "/l.key"} {
		if !deny[path] {
			t.Errorf("no deny of %s in the audit:\n%s", path, data)
		}
	}
}
