//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
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
// the same (but for what its own -r race misses in the new directory). On fanotify (root),
// inotify (nobody) and through the daemon.
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
			d := userDir(t, base, who)
			p := start(t, as(t, who, []string{"watch", "-r", "-c", "-e", events, d})...)
			var peer *proc
			if _, err := exec.LookPath("inotifywait"); err == nil {
				peer = start(t, "inotifywait", "-m", "-r", "-c", "-e", events, d)
			}
			sh(t, fmt.Sprintf(script, d))
			got := p.linesCut(len(want), d)
			if who == "nobody" {
				// The inotify fallback may see 'in' only by scanning 'sub,1' when it adds its
				// watch, too late to know what else happened to it (a modify): it says so
				// with an overflow line (backend newDirLocked). inotifywait misses it quietly.
				got = slices.DeleteFunc(got, func(l string) bool { return l == "Q_OVERFLOW," })
			}
			if !slices.Equal(got, want) {
				t.Errorf("watch -c printed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if peer != nil {
				// inotifywait -r watches 'sub,1' only once it has read its CREATE: what the
				// script did in it before then it misses, quietly (its own race, seen once
				// under load). Its lines are compared for their form, so those it missed
				// are left out of what it must print.
				got := peer.linesCut(len(want), d)
				wantPeer := slices.DeleteFunc(slices.Clone(want), func(l string) bool {
					return strings.HasPrefix(l, `"D/sub,1/",`) && !slices.Contains(got, l)
				})
				if !slices.Equal(got, wantPeer) {
					t.Errorf("inotifywait -m -c printed\n%s\nthe test wants\n%s", strings.Join(got, "\n"), strings.Join(wantPeer, "\n"))
				}
			}
			p.stopOK(t)
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
					d := userDir(t, filepath.Join(base, who), tt.name)
					args := append([]string{"watch", "-e", "create", "--format", "%w%f"}, tt.flags...)
					p := start(t, as(t, who, append(args, d))...)
					sh(t, "cd "+d+" && "+tt.script)
					if got := p.linesCut(len(tt.want), d); !slices.Equal(got, tt.want) {
						t.Errorf("watch %q printed\n%s\nwant\n%s", tt.flags, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
					}
					p.stopOK(t)
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
		{args: []string{"watch", "-r", dir, "@"}, want: []string{"@ without a path"}},
	})
}

// TestWatchFromFile: --fromfile's paths are watched (the file's, then the command line's),
// its "@PATH" lines exclude PATH's subtree from -r (nothing through a watch there: a new
// directory below it neither), but a watched path below an exclusion is watched all the
// same, and an excluded directory's own entry in its parent is reported (inotifywait's
// rules); empty lines and a lone @ are skipped; "-" reads stdin. Without @ (the "none" list)
// the excluded events are printed. The same paths as arguments ("args"): @PATH excludes on
// the command line as inotifywait's does. On fanotify (root), inotify (nobody) and the daemon.
func TestWatchFromFile(t *testing.T) {
	base := testenv.PublicTmpfs(t)
	for _, who := range []string{"root", "nobody", "daemon"} {
		for _, list := range []string{"file", "stdin", "none", "args"} {
			t.Run(who+"/"+list, func(t *testing.T) {
				d := filepath.Join(base, who, list)
				sh(t, fmt.Sprintf("mkdir -p %[1]s/a/skip/keep %[1]s/a/skip/other %[1]s/b %[1]s/c && chmod -R 777 %[1]s", d))
				text := fmt.Sprintf("%[1]s/a\n@%[1]s/a/skip\n\n@\n%[1]s/a/skip/keep\n", d)
				want := []string{"D/a/skip/keep/ CREATE k", "D/a/ CREATE,ISDIR new", "D/a/ CREATE f", "D/b/ CREATE g"}
				if list == "none" {
					text = fmt.Sprintf("%[1]s/a\n", d)
					want = []string{"D/a/skip/ CREATE x", "D/a/skip/other/ CREATE y", "D/a/skip/keep/ CREATE k",
						"D/a/skip/ CREATE,ISDIR n", "D/a/skip/n/ CREATE z", "D/a/ CREATE,ISDIR new", "D/a/ CREATE f", "D/b/ CREATE g"}
				}
				listFile := filepath.Join(base, who+"-"+list+".list")
				if err := os.WriteFile(listFile, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
				args := []string{"watch", "-r", "-e", "create", d + "/b"}
				switch list {
				case "stdin":
					args = append(args, "--fromfile", "-")
				case "args": // the list's lines as arguments: @PATH excludes on the command line too
					args = append(args, d+"/a", "@"+d+"/a/skip", d+"/a/skip/keep")
				default:
					args = append(args, "--fromfile", listFile)
				}
				args = as(t, who, args)
				if list == "stdin" {
					// The list on stdin: a shell opens it and runs the whole command line
					// (start runs a line that begins with setpriv as it is).
					if args[0] != "setpriv" {
						args = append([]string{bin}, args...)
					}
					args = append([]string{"setpriv", "sh", "-c", `exec "$@" <` + listFile, "sh"}, args...)
				}
				p := start(t, args...)
				sh(t, fmt.Sprintf("cd %s && touch a/skip/x a/skip/other/y a/skip/keep/k && mkdir a/skip/n && touch a/skip/n/z && "+
					"mkdir a/new && touch a/f b/g c/h", d))
				if got := p.linesCut(len(want), d); !slices.Equal(got, want) {
					t.Errorf("watch --fromfile (%s) printed\n%s\nwant\n%s", list, strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
				p.stopOK(t)
			})
		}
	}
}

// TestWatchFromFileAndOutfileErrors: a list or an output file that cannot be used is a
// runtime error (exit 1) naming the flag and the file, a listed path that is not there names
// the list's file and line; a second --fromfile or -o, an empty name, or a list with no path
// is a usage error (exit 2). None watches anything.
func TestWatchFromFileAndOutfileErrors(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "list")
	if err := os.WriteFile(list, []byte(dir+"\n\n"+dir+"/nope\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n@"+dir+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--fromfile", dir + "/missing"}, 1, "--fromfile " + dir + "/missing: no such file or directory"},
		{[]string{"--fromfile", list}, 1, "--fromfile " + list + ":3: " + dir + "/nope: no such file or directory"},
		{[]string{"--fromfile", empty}, 2, "no PATH given: --fromfile " + empty + " lists none"},
		{[]string{"--fromfile", list, "--fromfile", empty, dir}, 2, "flag --fromfile: given twice"},
		{[]string{"--fromfile", "", dir}, 2, "--fromfile: empty file name"},
		{[]string{"-o", dir + "/no/such/dir/out", dir}, 1, "-o " + dir + "/no/such/dir/out: no such file or directory"},
		{[]string{"-o", dir + "/a", "--outfile", dir + "/b", dir}, 2, "flag --outfile: given twice"},
		{[]string{"-o", "", dir}, 2, "-o: empty file name"},
	}
	for _, tt := range tests {
		_, stderr, code, timedOut := fsnWithin(t, 5*time.Second, append([]string{"watch"}, tt.args...)...)
		if timedOut || code != tt.code || !strings.Contains(stderr, tt.msg) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("watch %q: exit %d (timed out: %v), %q; want exit %d, one line saying %q", tt.args, code, timedOut, stderr, tt.code, tt.msg)
		}
	}
}

// TestWatchOutfile: -o FILE appends the lines to FILE (kept content before them; created
// mode 0600, as inotifywait) and prints none; a FILE in the watched directory does not
// report its own writes (each would print one more: the watch would never be quiet). On
// fanotify (root), inotify (nobody) and the daemon, with -c to show the output's format is
// the one chosen.
func TestWatchOutfile(t *testing.T) {
	base := testenv.PublicTmpfs(t)
	for _, who := range []string{"root", "nobody", "daemon"} {
		t.Run(who, func(t *testing.T) {
			d := userDir(t, base, who)
			userDir(t, d, "w")
			for i, out := range []string{d + "/out", d + "/w/log"} {
				inside := strings.HasPrefix(out, d+"/w/")
				f := fmt.Sprint("f", i) // a new file each time
				if inside {
					sh(t, "echo old >"+out+" && chmod 666 "+out)
				}
				p := start(t, as(t, who, []string{"watch", "-c", "-o", out, d + "/w"})...)
				sh(t, fmt.Sprintf("touch %[1]s/w/%[2]s && echo x >>%[1]s/w/%[2]s", d, f))
				want := []string{"D/w/,CREATE,F", "D/w/,OPEN,F", "D/w/,ATTRIB,F", `D/w/,"CLOSE_WRITE,CLOSE",F`,
					"D/w/,OPEN,F", "D/w/,MODIFY,F", `D/w/,"CLOSE_WRITE,CLOSE",F`}
				for j := range want {
					want[j] = strings.Replace(want[j], ",F", ","+f, 1)
				}
				if inside {
					want = append([]string{"old"}, want...)
				}
				var got []string
				for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
					data, _ := os.ReadFile(out)
					if got = strings.Split(strings.TrimSuffix(strings.ReplaceAll(string(data), d, "D"), "\n"), "\n"); len(got) >= len(want) {
						break
					}
				}
				time.Sleep(300 * time.Millisecond) // a line of the file's own writes would come now
				data, _ := os.ReadFile(out)
				got = strings.Split(strings.TrimSuffix(strings.ReplaceAll(string(data), d, "D"), "\n"), "\n")
				if !slices.Equal(got, want) {
					t.Errorf("-o %s holds\n%s\nwant\n%s", out, strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
				p.stopOK(t)
				p.mu.Lock()
				if p.stdout.Len() != 0 {
					t.Errorf("with -o, stdout got %q", p.stdout.String())
				}
				p.mu.Unlock()
				if fi, err := os.Stat(out); !inside && (err != nil || fi.Mode().Perm() != 0o600) {
					t.Errorf("-o created %s: %v, %v; want mode 0600", out, fi.Mode(), err)
				}
			}
		})
	}
}

// TestWatchOutfileAnotherUserPlaced: -o refuses, in a sticky directory anyone may write
// (/tmp), a link, file or FIFO that another user owns, whatever fs.protected_symlinks,
// protected_regular and protected_fifos say (0 on some hosts, this one included): a link of
// nobody's to a root file would have root's watch append to it, nobody's file would give
// nobody root's events, and nobody's FIFO hung the watch. Root's own link and a new file are
// taken; a FIFO with no reader elsewhere is an error at once, not a hang. guard --audit too.
func TestWatchOutfileAnotherUserPlaced(t *testing.T) {
	base := testenv.PublicTmpfs(t)
	shared, watched, private := filepath.Join(base, "shared"), filepath.Join(base, "w"), filepath.Join(base, "private")
	secret := filepath.Join(private, "secret")
	sh(t, fmt.Sprintf("mkdir -p %[1]s %[2]s %[3]s && chmod 1777 %[1]s && echo keep >%[4]s && "+
		"ln -s %[4]s %[1]s/link && chown -h 65534:65534 %[1]s/link && "+
		"touch %[1]s/file && chmod 666 %[1]s/file && chown 65534:65534 %[1]s/file && "+
		"mkfifo -m 666 %[1]s/fifo && chown 65534:65534 %[1]s/fifo && "+
		"ln -s %[3]s/root.log %[1]s/mine && mkfifo %[3]s/fifo",
		shared, watched, private, secret))
	tests := []struct {
		out  string
		code int
		msg  string
	}{
		{shared + "/link", 1, "a symbolic link owned by uid 65534 in " + shared},
		{shared + "/file", 1, "a file owned by uid 65534 in " + shared},
		{shared + "/fifo", 1, "a FIFO owned by uid 65534 in " + shared},
		{private + "/fifo", 1, "-o " + private + "/fifo: no such device or address (a FIFO with no reader: start its reader first)"},
		{shared + "/mine", 0, ""},
		{shared + "/new", 0, ""},
	}
	for _, tt := range tests {
		_, stderr, code, timedOut := fsnWithin(t, 5*time.Second, "watch", "-q", "--timeout", "1s", "-o", tt.out, watched)
		if timedOut || code != tt.code || !strings.Contains(stderr, tt.msg) {
			t.Errorf("watch -o %s: exit %d (timed out: %v), %q; want exit %d saying %q", tt.out, code, timedOut, stderr, tt.code, tt.msg)
		}
	}
	// The guard's --audit log is opened the same way (the guard refuses to start).
	for _, out := range []string{shared + "/link", shared + "/fifo"} {
		_, stderr, code, timedOut := fsnWithin(t, 10*time.Second, "guard", "--audit", out, watched)
		if timedOut || code != 1 || !strings.Contains(stderr, "--audit: a ") || !strings.Contains(stderr, "owned by uid 65534 in "+shared) {
			t.Errorf("guard --audit %s: exit %d (timed out: %v), %q; want exit 1, refused", out, code, timedOut, stderr)
		}
	}
	if data, _ := os.ReadFile(secret); string(data) != "keep\n" {
		t.Errorf("the link's target was written: %q", data)
	}
	for _, p := range []string{private + "/root.log", shared + "/new"} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
			t.Errorf("%s: %v, %v; want root's, mode 0600", p, fi, err)
		}
	}
}
