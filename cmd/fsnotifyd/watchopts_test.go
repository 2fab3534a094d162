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

// TestWatchExcludeInclude: --exclude drops the events whose %w%f matches, --include keeps
// only those, --excludei and --includei ignoring case; with and without -r, and with -r a
// directory whose creation --include dropped is watched all the same (inotifywait 3.22
// stopped at the filter and missed it). On fanotify (root), inotify (nobody) and through the
// daemon. Without the flags (one case) every event is printed: the filters make the
// difference.
func TestWatchExcludeInclude(t *testing.T) {
	base := testenv.PublicTmpfs(t)
	tests := []struct {
		name   string
		flags  []string
		script string // run in the watched directory
		want   []string
	}{
		{"none", nil, "touch a.tmp b.txt", []string{"D/a.tmp", "D/b.txt"}},
		{"exclude", []string{"--exclude", `\.tmp$`}, "touch a.tmp A.TMP b.txt", []string{"D/A.TMP", "D/b.txt"}},
		{"excludei", []string{"--excludei", `\.tmp$`}, "touch a.tmp A.TMP b.txt", []string{"D/b.txt"}},
		{"include", []string{"--include", `\.txt$`}, "touch a.tmp B.TXT b.txt", []string{"D/b.txt"}},
		{"includei", []string{"--includei", `\.txt$`}, "touch a.tmp B.TXT b.txt", []string{"D/B.TXT", "D/b.txt"}},
		// %w%f is matched: the watched path is part of it.
		{"exclude-watched-path", []string{"--exclude", `^/.*/exclude-watched-path/x`}, "touch x1 y1", []string{"D/y1"}},
		{"exclude-r", []string{"-r", "--exclude", `/cache(/|$)`},
			"mkdir cache keep && touch cache/x keep/y && mkdir cache/deeper && touch cache/deeper/z cached",
			[]string{"D/keep", "D/keep/y", "D/cached"}},
		{"include-r", []string{"-r", "--include", `\.log$`},
			"mkdir sub && touch sub/a.log sub/b.txt && mkdir sub/s2 && touch sub/s2/c.log c.txt",
			[]string{"D/sub/a.log", "D/sub/s2/c.log"}},
		{"includei-r", []string{"-r", "--includei", `/SUB/`}, "mkdir sub && touch sub/a other",
			[]string{"D/sub/a"}},
	}
	for _, who := range []string{"root", "nobody", "daemon"} {
		t.Run(who, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					d := filepath.Join(base, who, tt.name)
					sh(t, fmt.Sprintf("mkdir -p %[1]s && chmod 777 %[1]s", d))
					args := append([]string{"watch", "-e", "create", "--format", "%w%f"}, tt.flags...)
					p := start(t, as(t, who, append(args, d))...)
					sh(t, "cd "+d+" && "+tt.script)
					if got := p.linesCut(len(tt.want), d); !slices.Equal(got, tt.want) {
						t.Errorf("watch %q printed\n%s\nwant\n%s", tt.flags, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
					}
					if st := p.stop(); st != 0 {
						t.Errorf("exit status %d; stderr:\n%s", st, p.errText())
					}
				})
			}
		})
	}
}

// TestWatchOptionUsageErrors: the new flags' misuses are usage errors (exit 2, one line)
// naming the flag, and a bad pattern is named with its flag.
func TestWatchOptionUsageErrors(t *testing.T) {
	dir := t.TempDir()
	checkUsageErrors(t, []usageCase{
		{args: []string{"watch", "-c", "--json", dir}, want: []string{"-c (--csv) and --json"}},
		{args: []string{"watch", "--csv", "--format", "%w", dir}, want: []string{"-c (--csv) and --format"}},
		{args: []string{"watch", "--exclude", "a(", dir}, want: []string{`--exclude "a(": not a regular expression`, "missing closing )"}},
		{args: []string{"watch", "--excludei", "[z-a]", dir}, want: []string{`--excludei "[z-a]": not a regular expression`}},
		{args: []string{"watch", "--include", `x\`, dir}, want: []string{`--include "x\\": not a regular expression`}},
		{args: []string{"watch", "--includei", "a**", dir}, want: []string{`--includei "a**"`}},
		{args: []string{"watch", "--exclude", "a", "--include", "b", dir}, want: []string{"--exclude and --include cannot be used together"}},
		{args: []string{"watch", "--exclude", "a", "--excludei", "b", dir}, want: []string{"--exclude and --excludei cannot be used together"}},
		{args: []string{"watch", "--includei", "a", "--excludei", "b", dir}, want: []string{"--excludei and --includei cannot be used together"}},
		{args: []string{"watch", "--exclude", `\<tmp`, dir}, want: []string{`--exclude "\\<tmp"`, `\< is GNU's anchor`}},
		{args: []string{"watch", "--include", `(a)\1`, dir}, want: []string{`--include "(a)\\1": not a regular expression`}},
		{args: []string{"watch", "--exclude", "", dir}, want: []string{"--exclude: empty pattern"}},
		{args: []string{"watch", "--exclude"}, want: []string{"--exclude needs an argument"}},
		{args: []string{"watch", dir, "-c", "--timefmt"}, want: []string{"--timefmt needs an argument"}},
	})
}
