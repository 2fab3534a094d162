//go:build linux

package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// linesCut collects want lines of p, then what else comes within 300 ms (a line printed by
// mistake), with prefix written D in each.
func (p *proc) linesCut(want int, prefix string) []string {
	got := p.collect(10*time.Second, func(l []string) bool { return len(l) >= want })
	got = append(got, p.collect(300*time.Millisecond, func([]string) bool { return false })...)
	for i := range got {
		got[i] = strings.ReplaceAll(got[i], prefix, "D")
	}
	return got
}

// TestWatchCSVAsInotifywait: watch -c prints inotifywait -m -c's lines, byte for byte, for
// names that need quoting (a comma, a double quote, a leading blank) and for a directory's
// (CREATE,ISDIR, its own DELETE_SELF with %f empty): the want lines are what inotifywait
// 3.22.6.0 printed on this machine, and a running inotifywait, when installed, must print
// the same. On fanotify (root), inotify (nobody) and through the daemon.
func TestWatchCSVAsInotifywait(t *testing.T) {
	base := testenv.PublicTmpfs(t)
	want := []string{
		`D/,CREATE,"a,b"`,
		`D/,CREATE,"q""t"`,
		`D/,MODIFY,"q""t"`,
		`D/,CREATE," sp"`,
		`D/,"CREATE,ISDIR","sub,1"`,
		`"D/sub,1/",CREATE,in`,
		`D/,DELETE,"a,b"`,
		`"D/sub,1/",DELETE,in`,
		`"D/sub,1/",DELETE_SELF,`,
		`D/,"DELETE,ISDIR","sub,1"`,
	}
	script := `cd %s && touch 'a,b' && echo x >>'q"t' && touch ' sp' && mkdir 'sub,1' && touch 'sub,1/in' && ` +
		`rm 'a,b' && rm 'sub,1/in' && rmdir 'sub,1'`
	events := "create,modify,delete,delete_self"
	for _, who := range []string{"root", "nobody", "daemon"} {
		t.Run(who, func(t *testing.T) {
			d := filepath.Join(base, who)
			sh(t, fmt.Sprintf("mkdir -p %[1]s && chmod 777 %[1]s", d))
			p := start(t, as(t, who, []string{"watch", "-r", "-c", "-e", events, d})...)
			var peer *proc
			if _, err := exec.LookPath("inotifywait"); err == nil {
				peer = start(t, "inotifywait", "-m", "-r", "-c", "-e", events, d)
			}
			sh(t, fmt.Sprintf(script, d))
			if got := p.linesCut(len(want), d); !slices.Equal(got, want) {
				t.Errorf("watch -c printed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if peer != nil {
				if got := peer.linesCut(len(want), d); !slices.Equal(got, want) {
					t.Errorf("inotifywait -m -c printed\n%s\nthe test wants\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
			}
			if st := p.stop(); st != 0 {
				t.Errorf("exit status %d; stderr:\n%s", st, p.errText())
			}
		})
	}
}

// TestWatchOptionUsageErrors: the new flags' misuses are usage errors (exit 2, one line)
// naming the flag.
func TestWatchOptionUsageErrors(t *testing.T) {
	dir := t.TempDir()
	checkUsageErrors(t, []usageCase{
		{args: []string{"watch", "-c", "--json", dir}, want: []string{"-c (--csv) and --json"}},
		{args: []string{"watch", "--csv", "--format", "%w", dir}, want: []string{"-c (--csv) and --format"}},
	})
}
