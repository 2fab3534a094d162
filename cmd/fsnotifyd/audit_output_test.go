package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/format"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// hostileNames are file names a local user may choose (any byte but / and NUL) to forge or
// split an operator's log line, to make two files one in it, or to send escape sequences to
// the terminal that shows it.
var hostileNames = []string{
	"inv\xffalid",                      // not UTF-8 ...
	"inv\xfealid",                      // ... and another that JSON's U+FFFD would make the same
	"inv\uFFFDalid",                    // ... and the U+FFFD itself
	"nl\n{\"path\":\"forged\"}",        // a newline and a forged record
	"cr\rtab\tbs\\q\"",                 // CR, tab, backslash, quote
	"esc\x1b[2J\x1b]52;c;ZXZpbA==\x07", // clear screen, OSC 52 (set the clipboard)
	"c1\u0085\u009b",                   // C1 controls (NEL, CSI)
	"ls\u2028ps\u2029",                 // JavaScript's line and paragraph separators
}

// TestGuardAuditHostileNamesAsNobody: nobody opens files with hostile names (and runs a
// program whose name, its comm, is not UTF-8); every audit line stays one JSON object, with
// no raw control byte, whose path and comm (path_raw and comm_raw when not UTF-8, as watch
// --json writes them) read back to the exact bytes.
func TestGuardAuditHostileNamesAsNobody(t *testing.T) {
	testenv.RequireRoot(t)
	guardModes(t, testGuardAuditHostileNames)
}

func testGuardAuditHostileNames(t *testing.T, extra []string) {
	dir := testenv.PublicTmpfs(t)
	os.Chmod(dir, 0o1777)
	cat, _ := exec.LookPath("cat")
	prog := dir + "/c\xff\x1b[31m"
	if out, err := exec.Command("cp", cat, prog).CombinedOutput(); err != nil {
		t.Fatal(err, string(out))
	}
	os.Chmod(prog, 0o755)
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	p := start(t, append(append([]string{"guard"}, extra...), "--events", "open", "--audit", audit, dir)...)
	for _, name := range hostileNames {
		path := dir + "/" + name
		c := exec.Command("sh", "-c", `printf x > "$1" && "$2" "$1" >/dev/null`, "sh", path, prog)
		c.SysProcAttr = &syscall.SysProcAttr{Credential: testenv.Nobody}
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%q as nobody: %v %s", name, err, out)
		}
	}
	want := map[string]bool{}
	for _, name := range hostileNames {
		want[dir+"/"+name] = true
	}
	comm := filepath.Base(prog) // shorter than comm's 15 bytes
	var data []byte
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		data, _ = os.ReadFile(audit)
		if bytes.Count(data, []byte("\n")) >= 2*len(hostileNames) {
			break
		}
	}
	p.stop()
	data, _ = os.ReadFile(audit)
	for i, c := range data {
		if c < 0x20 && c != '\n' || c == 0x7f {
			t.Errorf("audit file holds raw control byte %#x at %d: %q", c, i, data[max(0, i-20):min(len(data), i+20)])
			break
		}
	}
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		r, err := format.ParseJSON([]byte(l))
		if err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		if want[r.Path] && r.Comm == comm {
			seen[r.Path] = true
		}
	}
	for path := range want {
		if !seen[path] {
			t.Errorf("no audit line with path %q opened by comm %q; audit:\n%s", path, comm, data)
		}
	}
}
