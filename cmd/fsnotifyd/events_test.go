//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/format"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// usageCase is a command line that must be refused as a usage error (exit 2, one line of
// stderr naming want, before any watch is set up).
type usageCase struct {
	args []string
	want []string // each must be in the message
	not  []string // and none of these
}

func checkUsageErrors(t *testing.T, cases []usageCase) {
	t.Helper()
	for _, tt := range cases {
		// A command line accepted by mistake would watch until killed.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		out, err := exec.CommandContext(ctx, bin, tt.args...).CombinedOutput()
		cancel()
		msg := strings.TrimSpace(string(out))
		if code := exitStatus(err); code != exitUsage {
			t.Errorf("fsnotifyd %q: exit %d, want %d (usage); output %q", tt.args, code, exitUsage, msg)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(msg, w) {
				t.Errorf("fsnotifyd %q: %q does not say %q", tt.args, msg, w)
			}
		}
		for _, n := range tt.not {
			if strings.Contains(msg, n) {
				t.Errorf("fsnotifyd %q: %q says %q", tt.args, msg, n)
			}
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("fsnotifyd %q: more than one line: %q", tt.args, msg)
		}
	}
}

// TestEmptyEventListIsAUsageError: an event list given but empty (-e "", as a shell variable that
// expanded to nothing) is refused as "-e ," is, for watch and trace (one parser) and guard's
// --events; it used to mean every event (watch, trace) or the default (guard).
func TestEmptyEventListIsAUsageError(t *testing.T) {
	dir := t.TempDir()
	var cases []usageCase
	for _, cmd := range []string{"watch", "trace"} {
		for _, flag := range []string{"-e", "--event", "--events"} {
			for _, list := range []string{"", " ", ","} {
				cases = append(cases, usageCase{args: []string{cmd, flag, list, dir}, want: []string{"fsnotifyd " + cmd + ": -e: empty event", "create"}})
			}
		}
	}
	for _, flag := range []string{"-e", "--events"} {
		cases = append(cases, usageCase{args: []string{"guard", flag, "", dir}, want: []string{"fsnotifyd guard: --events: empty list", "open, access, exec"}})
		cases = append(cases, usageCase{args: []string{"guard", flag, " ", dir}, want: []string{"fsnotifyd guard: --events: empty list"}})
	}
	checkUsageErrors(t, cases)
}

// traceLine is a trace line's letters and path ("D /mnt/w/r", "< /mnt/w/r -> /mnt/w/r2").
func traceLine(t *testing.T, l string) string {
	t.Helper()
	_, rest, ok := strings.Cut(l, "): ")
	f := strings.Fields(rest)
	if !ok || (len(f) != 2 && (len(f) != 4 || f[2] != "->")) {
		t.Fatalf("not a trace line: %q", l)
	}
	return strings.Join(f, " ")
}

// TestTraceReportsItsPathsOwnDeleteAndMove: a traced directory's own move and deletion print
// as docs/trace-format.md says (MOVE_SELF "<" with where it was and where it went, DELETE_SELF
// "D"), once each, as does a traced file's deletion; a directory removed below the PATH is one
// "D" (its DELETE), not two; stderr says where the PATH went, traced there. trace asked the
// kernel for neither self event: it printed nothing for them, and "-e delete_self PATH"
// failed with "engine: invalid argument". Then a move printed "<   r2" alone: where it went,
// with the letter of a move away, and nothing said that r itself was no longer traced.
func TestTraceReportsItsPathsOwnDeleteAndMove(t *testing.T) {
	testenv.RequireRoot(t)
	mnt := testenv.Tmpfs(t)
	for _, tc := range []struct {
		name string
		args []string
		want []string // {{r}} and {{f}} are the paths
	}{
		{"default", nil, []string{"D {{r}}/s", "< {{r}} -> {{r}}2", "< {{r}}2 -> {{r}}", "D {{r}}"}},
		{"-e delete_self,move_self", []string{"-e", "delete_self,move_self"}, []string{"< {{r}} -> {{r}}2", "< {{r}}2 -> {{r}}", "D {{r}}"}},
		{"-e delete_self", []string{"-e", "delete_self"}, []string{"D {{r}}"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := filepath.Join(mnt, strings.NewReplacer(" ", "", ",", "").Replace(tc.name), "r")
			sh(t, "mkdir -p "+r+"/s")
			p := start(t, append([]string{"trace", r}, tc.args...)...)
			var want []string
			for _, w := range tc.want {
				want = append(want, strings.ReplaceAll(w, "{{r}}", r))
			}
			sh(t, "rmdir "+r+"/s")
			var got []string
			if strings.HasSuffix(want[0], "/s") {
				// Printed before r moves: a path is resolved when its event is read, and one
				// read after the move below names r's new place (docs/events.md, "Known limits"), which
				// under load (CI: 1 run in some 80) it was. This test is about r's own events.
				got = p.collect(10*time.Second, func(l []string) bool { return len(l) >= 1 })
			}
			// One step at a time, each once the last is printed: a move read after the next
			// one, or after the removal, has a place the kernel does not say, printed "?"
			// (TestTraceNeverNamesAWrongPlaceForItsPathsMoves); under load (a busy loop on
			// the CPU) that happened here, 1 run in some 100.
			for _, step := range []string{"mv %[1]s %[1]s2", "mv %[1]s2 %[1]s", "rmdir %[1]s"} {
				sh(t, fmt.Sprintf(step, r))
				if tc.name == "-e delete_self" && !strings.HasPrefix(step, "rmdir") {
					continue // prints nothing
				}
				got = append(got, p.collect(10*time.Second, func(l []string) bool { return len(l) >= 1 })...)
			}
			got = append(got, p.collect(300*time.Millisecond, func([]string) bool { return false })...) // nothing more
			for i := range got {
				got[i] = traceLine(t, got[i])
			}
			if !slices.Equal(got, want) {
				t.Errorf("trace %v printed\n%s\nwant\n%s", tc.args, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			p.stopOK(t)
			if tc.name != "-e delete_self" {
				for _, w := range []string{r + " moved to " + r + "2, traced there", r + "2 moved to " + r + ", traced there"} {
					if !strings.Contains(p.errText(), w) {
						t.Errorf("stderr does not say %q:\n%s", w, p.errText())
					}
				}
			}
		})
	}
	t.Run("file", func(t *testing.T) {
		f := filepath.Join(mnt, "f")
		sh(t, "touch "+f)
		p := start(t, "trace", "-e", "delete_self", f)
		sh(t, "rm "+f)
		got := p.collect(10*time.Second, func(l []string) bool { return len(l) >= 1 })
		if len(got) != 1 || traceLine(t, got[0]) != "D "+f {
			t.Errorf("trace -e delete_self FILE printed %q, want one line \"D %s\"", got, f)
		}
	})
}

// TestTraceNeverNamesAWrongPlaceForItsPathsMoves: a traced PATH moved twice (r -> r2 -> r,
// r -> r2 -> r3), or moved and removed, before the trace reads the first move (the trace is
// stopped, SIGSTOP, meanwhile: a busy CPU does the same by chance) prints each move and the
// removal with the places they had, or "?" where the kernel gave no way to know one; never a
// place the PATH was not in. Before, the second move printed "<   r2" and the removal "D   r2"
// (the name a cache held from before the moves), or the first move "<   r -> r3" (where the
// second took it).
func TestTraceNeverNamesAWrongPlaceForItsPathsMoves(t *testing.T) {
	testenv.RequireRoot(t)
	mnt := testenv.Tmpfs(t)
	for _, ops := range []struct {
		name, script string
		want         []string // the true places; a "?" may stand for any path
	}{
		{"back-and-removed", "mv {{r}} {{r}}2 && mv {{r}}2 {{r}} && rmdir {{r}}", []string{"< {{r}} -> {{r}}2", "< {{r}}2 -> {{r}}", "D {{r}}"}},
		{"moved-and-removed", "mv {{r}} {{r}}2 && rmdir {{r}}2", []string{"< {{r}} -> {{r}}2", "D {{r}}2"}},
		{"twice", "mv {{r}} {{r}}2 && mv {{r}}2 {{r}}3", []string{"< {{r}} -> {{r}}2", "< {{r}}2 -> {{r}}3"}},
	} {
		for _, ev := range [][]string{nil, {"-e", "delete_self,move_self"}} {
			name := ops.name + "/default"
			if ev != nil {
				name = ops.name + "/-e_self"
			}
			t.Run(name, func(t *testing.T) {
				r := filepath.Join(mnt, strings.ReplaceAll(name, "/", "-"), "r")
				sh(t, "mkdir -p "+r)
				p := start(t, append([]string{"trace", r}, ev...)...)
				rep := strings.NewReplacer("{{r}}", r)
				var want []string
				for _, w := range ops.want {
					want = append(want, rep.Replace(w))
				}
				pid := p.cmd.Process.Pid
				if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
					t.Fatal(err)
				}
				sh(t, rep.Replace(ops.script))
				if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
					t.Fatal(err)
				}
				got := p.collect(10*time.Second, func(l []string) bool { return len(l) >= len(want) })
				got = append(got, p.collect(300*time.Millisecond, func([]string) bool { return false })...)
				for i := range got {
					// "? (dev 0:45)": what is known of an unknown path, after it.
					got[i] = traceLine(t, regexp.MustCompile(` \(dev [0-9:]+( ino [0-9]+)?\)`).ReplaceAllString(got[i], ""))
				}
				ok := len(got) == len(want)
				for i := 0; ok && i < len(got); i++ {
					g, w := strings.Fields(got[i]), strings.Fields(want[i])
					ok = len(g) == len(w)
					for j := 0; ok && j < len(g); j++ {
						ok = g[j] == w[j] || (j > 0 && g[j] == "?")
					}
				}
				if !ok {
					t.Errorf("trace %v printed\n%s\nwant (a path may be \"?\")\n%s", ev, strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
				p.stopOK(t)
			})
		}
	}
}

// TestTraceEventsItCannotReportAreAUsageError: an -e that asks for nothing a trace of that
// kind reports (or a watch of a file) is a usage error naming -e and what it reports; it
// reached the engine as an empty mask ("engine: invalid argument", exit 1).
func TestTraceEventsItCannotReportAreAUsageError(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	checkUsageErrors(t, []usageCase{
		{args: []string{"trace", "-e", "delete_self", "--mount", dir}, want: []string{"-e delete_self: --mount reports only", "open_exec", "use --fs"}},
		{args: []string{"trace", "-e", "create,delete", "--mount", dir}, want: []string{"-e create,delete: --mount reports only"}},
		{args: []string{"trace", "-e", "delete_self", "--fs", dir}, want: []string{"-e delete_self: --fs reports only", "rename", "trace the PATH"}},
		{args: []string{"trace", "-e", "move_self"}, want: []string{"-e move_self: a trace of every filesystem", "trace the PATH"}},
		{args: []string{"trace", "-e", "create,moved_to", file}, want: []string{"-e create,moved_to: a file (" + file + ") reports only", "delete_self, move_self"}},
		{args: []string{"watch", "-e", "create,moved_to", file}, want: []string{"-e create,moved_to: a file (" + file + ") reports only", "delete_self, move_self"}},
	})
}

// TestTimefmtIsCheckedAndNamed: --timefmt is checked when given, with or without a %T to use
// it, and its errors name --timefmt. They were reported as --format's ("--format: time
// format ..."), and a bad --timefmt without %T in the format was accepted.
func TestTimefmtIsCheckedAndNamed(t *testing.T) {
	dir := t.TempDir()
	var cases []usageCase
	for _, cmd := range []string{"watch", "trace"} {
		for _, tc := range []struct {
			extra []string
			want  string
		}{
			{[]string{"--timefmt", "%Q", "--format", "%T %w%f"}, `--timefmt: time format "%Q": unknown directive "%Q"`},
			{[]string{"--timefmt", "%Q"}, `--timefmt: time format "%Q": unknown directive "%Q"`},
			{[]string{"--timefmt", "%Q", "--json"}, `--timefmt: time format "%Q"`},
			{[]string{"--timefmt", "%F %", "--format", "%T"}, `--timefmt: time format "%F %" ends with a lone %`},
			{[]string{"--timefmt", "%3S", "--format", "%T"}, `--timefmt: time format "%3S": directive "%3S": a width is supported only for %N`},
			{[]string{"--timefmt=%-F"}, `--timefmt: time format "%-F"`},
		} {
			cases = append(cases, usageCase{args: append([]string{cmd, dir}, tc.extra...), want: []string{"fsnotifyd " + cmd + ": " + tc.want}, not: []string{"--format:"}})
		}
		// --format's own errors still name --format.
		cases = append(cases, usageCase{args: []string{cmd, dir, "--timefmt", "%H", "--format", "%Q"}, want: []string{"fsnotifyd " + cmd + `: --format: format "%Q": unknown directive`}, not: []string{"--timefmt:"}})
	}
	checkUsageErrors(t, cases)
}

// TestWatchJSONPairsRenames: with watch's default events, a rename's MOVED_TO record has
// old_path, the path its MOVED_FROM record printed, whenever both halves are watched (as
// inotifywait's cookie pairs them); a move in from an unwatched directory has none, the
// MOVED_FROM has none, and the RENAME asked for to pair them is not printed. The default
// events had no RENAME, so nothing paired the halves (no cookie, no old_path). On every
// source: fanotify (root), inotify (nobody) and the daemon.
func TestWatchJSONPairsRenames(t *testing.T) {
	testenv.RequireRoot(t)
	base := testenv.PublicTmpfs(t)
	for _, who := range []string{"root", "nobody", "daemon"} {
		t.Run(who, func(t *testing.T) {
			d := filepath.Join(base, who)
			sh(t, fmt.Sprintf("mkdir -p %[1]s/a %[1]s/b %[1]s/c && touch %[1]s/a/x %[1]s/a/y %[1]s/c/z && chmod -R 777 %[1]s", d))
			args := []string{"watch", "--json", d + "/a", d + "/b"}
			args = as(t, who, args)
			p := start(t, args...)
			sh(t, fmt.Sprintf("mv %[1]s/a/x %[1]s/b/x2 && mv %[1]s/a/y %[1]s/a/y2 && mv %[1]s/c/z %[1]s/b/z", d))
			type rec struct {
				Path    string   `json:"path"`
				Events  []string `json:"events"`
				OldPath *string  `json:"old_path"`
			}
			want := []string{
				"MOVED_FROM a/x", "MOVED_TO b/x2 (from a/x)",
				"MOVED_FROM a/y", "MOVED_TO a/y2 (from a/y)",
				"MOVED_TO b/z", // from c, which nobody watches
			}
			lines := p.collect(10*time.Second, func(l []string) bool { return len(l) >= len(want) })
			lines = append(lines, p.collect(300*time.Millisecond, func([]string) bool { return false })...)
			var got []string
			for _, l := range lines {
				var r rec
				if err := json.Unmarshal([]byte(l), &r); err != nil {
					t.Fatalf("%v: %s", err, l)
				}
				s := strings.Join(r.Events, ",") + " " + strings.TrimPrefix(r.Path, d+"/")
				if r.OldPath != nil {
					s += " (from " + strings.TrimPrefix(*r.OldPath, d+"/") + ")"
				}
				got = append(got, s)
			}
			if !slices.Equal(got, want) {
				t.Errorf("watch --json printed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			p.stopOK(t)
		})
	}
}

// TestWriteSplitKeepsOldPathOnTheMove: a MOVED_TO merged with the entry's other events (an
// unread CLOSE_WRITE of the name it arrived at) prints old_path on its own line only: the
// other lines are not the move's.
func TestWriteSplitKeepsOldPathOnTheMove(t *testing.T) {
	var b bytes.Buffer
	r := &format.Record{Path: "/d/new", OldPath: "/d/old", Mask: engine.MovedTo | engine.CloseWrite}
	if _, n, err := writeSplit(&b, format.JSON{}, r, nil, 0, nil); err != nil || n != 2 {
		t.Fatalf("wrote %d lines, err %v", n, err)
	}
	want := `{"path":"/d/new","events":["MOVED_TO"],"isdir":false,"old_path":"/d/old"}` + "\n" +
		`{"path":"/d/new","events":["CLOSE_WRITE"],"isdir":false}` + "\n"
	if b.String() != want {
		t.Errorf("got\n%swant\n%s", b.String(), want)
	}
	if r.OldPath != "/d/old" {
		t.Errorf("the record's old path changed to %q", r.OldPath)
	}
}

// TestWatchPercentWIsTheWatchThatMatched: "watch W/f W" and a write to f through a hard link
// in another directory O: %w is the watched path that matched, f's own watch (W/f, %f empty),
// as inotify reports it. On fanotify (as root, and through the daemon) it was the link's
// directory, O/, which nobody watched. A move of the watched file prints its watch too.
func TestWatchPercentWIsTheWatchThatMatched(t *testing.T) {
	testenv.RequireRoot(t)
	base := testenv.PublicTmpfs(t)
	for _, who := range []string{"root", "nobody", "daemon"} {
		t.Run(who, func(t *testing.T) {
			d := filepath.Join(base, who)
			sh(t, fmt.Sprintf("mkdir -p %[1]s/w %[1]s/o && echo a >%[1]s/w/f && ln %[1]s/w/f %[1]s/o/l && chmod -R 777 %[1]s", d))
			args := []string{"watch", "-e", "modify,move_self", "--format", "%w|%f|%e", d + "/w/f", d + "/w"}
			args = as(t, who, args)
			p := start(t, args...)
			sh(t, fmt.Sprintf("echo b >>%[1]s/o/l && mv %[1]s/w/f %[1]s/w/g", d))
			want := []string{d + "/w/f||MODIFY", d + "/w/f||MOVE_SELF"}
			got := p.collect(10*time.Second, func(l []string) bool { return len(l) >= len(want) })
			got = append(got, p.collect(300*time.Millisecond, func([]string) bool { return false })...)
			if !slices.Equal(got, want) {
				t.Errorf("printed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			p.stopOK(t)
		})
	}
}

// TestTraceLinesOfHostileNamesReadBackAsNobody: a user names its process "x(1): W /etc/sh"
// or "?" and renames its file "a -> /etc/shadow" (in its directories "a -> " and "etc") to
// "b -> c"; every trace line of theirs
// still reads back one way: the command is what comes before the line's first "(", the pid
// is its own, and a rename's line has one " -> ", the arrow. Before, the first line read
// "x(1): W /etc/sh(4839): +   ...": pid 1, letters W, path /etc/sh... to a reader that
// takes the first "): " (fleet tail did); "?(4840)" was an unknown name; and "<>  D/a ->
// /etc/shadow -> D/b -> c" could be split three ways.
func TestTraceLinesOfHostileNamesReadBackAsNobody(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.PublicTmpfs(t)
	if err := os.Chmod(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	p := start(t, "trace", "--fs", dir)
	wantComm := map[string]string{}
	for i, c := range []struct{ comm, shown string }{{"x(1): W /etc/sh", `x\x281\x29: W /etc/sh`}, {"?", `\x3f`}} {
		// The name is set from inside, and the files written by the shell itself; it waits
		// on stdin until its lines are read (its name is read when its first event is).
		sh := exec.Command("sh", "-c", `printf '%s' "$1" >/proc/$$/comm && mkdir -p "$2/a -> /etc" && echo y >"$2/a -> /etc/shadow$3" && mv "$2/a -> /etc/shadow$3" "$2/b -> c$3" && read x`,
			"sh", c.comm, dir, fmt.Sprint(i))
		sh.SysProcAttr = &syscall.SysProcAttr{Credential: testenv.Nobody}
		stdin, _ := sh.StdinPipe()
		if err := sh.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { stdin.Close(); sh.Wait() }()
		wantComm[strconv.Itoa(sh.Process.Pid)] = c.shown
	}
	renames := 0
	got := p.collect(10*time.Second, func(l []string) bool {
		renames = 0
		for _, s := range l {
			renames += strings.Count(s, "<>")
		}
		return renames == 2
	})
	p.stop()
	if renames != 2 {
		t.Fatalf("no rename lines of both processes:\n%s", strings.Join(got, "\n"))
	}
	for _, l := range got {
		_, rest, _ := strings.Cut(l, " ") // the time
		comm, rest, _ := strings.Cut(rest, "(")
		pid, rest, _ := strings.Cut(rest, "): ")
		if _, err := strconv.Atoi(pid); err != nil {
			t.Errorf("line %q: pid %q", l, pid)
		}
		if want, ours := wantComm[pid]; ours && comm != want {
			t.Errorf("line %q: command %q, want %q", l, comm, want)
		}
		if arrows := strings.Count(rest, " -> "); arrows > 1 || strings.HasPrefix(rest, "<>") && arrows != 1 {
			t.Errorf("line %q: %d arrows", l, arrows)
		}
	}
}

// TestTraceNeverMakesUpAnInodeNumber: files created, written and removed (rm -rf of their
// directories) while the trace is stopped are gone when their events are read; a record whose path is unknown names its
// object by dev and ino, and that ino is the file's own or left out (its events then name
// the device only), never a number the file never had. Before, the unlink's ATTRIB of each
// file printed "? (dev 0:40 ino 17412191703858416674)": a hash of its file handle, printed
// as its inode number (docs/trace-format.md: no format makes up a field).
func TestTraceNeverMakesUpAnInodeNumber(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	p := start(t, "trace", "--json", "--fs", dir)
	testenv.Stop(t, p.cmd.Process.Pid)
	inos := map[float64]bool{}
	for i := range 20 {
		f := filepath.Join(dir, fmt.Sprint("d", i), "e", "f")
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		inos[float64(st.Sys().(*syscall.Stat_t).Ino)] = true
		if out, err := testenv.Sh(nil, fmt.Sprintf("rm -rf %s/d%d", dir, i)); err != nil { // its unlinks
			t.Fatal(out, err)
		}
	}
	sh(t, "touch "+dir+"/end")
	syscall.Kill(p.cmd.Process.Pid, syscall.SIGCONT)
	got := p.collect(10*time.Second, func(l []string) bool {
		return len(l) > 0 && strings.Contains(l[len(l)-1], dir+"/end")
	})
	p.stop()
	unknown := 0
	for _, l := range got {
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		if r["path_unknown"] != true {
			continue
		}
		unknown++
		if ino, ok := r["ino"].(float64); ok && !inos[ino] {
			t.Errorf("record %s: ino %v is no file's (%d files)", l, r["ino"], len(inos))
		}
		if r["dev"] == nil {
			t.Errorf("record %s: no dev", l)
		}
	}
	t.Logf("%d of %d records with path_unknown", unknown, len(got))
}

// TestTraceNamesTheFilesRmRemoves: rm of a file made before the trace started, and rm -rf
// of trees made and removed while the trace was stopped: the unlink's ATTRIB (the link count,
// an event on the file alone, queued just before its DELETE, read when the file is gone) is
// printed with the file's path, "A   D/f" before "D   D/f", never "?". Before, each was
// "rm(4242): A   ? (dev 0:42 ino ...)": the most common "?" of trace --fs.
func TestTraceNamesTheFilesRmRemoves(t *testing.T) {
	testenv.RequireRoot(t)
	for _, stopped := range []bool{false, true} {
		t.Run(fmt.Sprint("stopped=", stopped), func(t *testing.T) {
			dir := testenv.Tmpfs(t)
			var files []string
			for i := range 10 {
				f := filepath.Join(dir, fmt.Sprint("d", i), "e", "f")
				if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
				files = append(files, f)
			}
			p := start(t, "trace", "--fs", dir)
			if stopped {
				testenv.Stop(t, p.cmd.Process.Pid)
			}
			for i := range files {
				rm := fmt.Sprintf("rm %s/d%d/e/f", dir, i) // one file, or its tree
				if i%2 == 1 {
					rm = fmt.Sprintf("rm -rf %s/d%d", dir, i)
				}
				if out, err := testenv.Sh(nil, rm); err != nil {
					t.Fatal(out, err)
				}
			}
			sh(t, "touch "+dir+"/end")
			syscall.Kill(p.cmd.Process.Pid, syscall.SIGCONT)
			got := p.collect(10*time.Second, func(l []string) bool {
				return len(l) > 0 && strings.HasSuffix(l[len(l)-1], dir+"/end")
			})
			p.stop()
			for _, l := range got {
				if strings.Contains(l, "): A   ?") {
					t.Errorf("line %q: an ATTRIB with no path", l)
				}
			}
			for _, f := range files {
				a, d := slices.Index(got, ""), -1
				for i, l := range got {
					if strings.HasSuffix(l, "): A   "+f) && a < 0 {
						a = i
					}
					if strings.HasSuffix(l, "): D   "+f) {
						d = i
					}
				}
				if a < 0 || d < 0 || a > d {
					t.Errorf("%s: A line %d, D line %d; want an A, then a D", f, a, d)
				}
			}
			if t.Failed() {
				t.Logf("trace printed:\n%s", strings.Join(got, "\n"))
			}
		})
	}
}

// TestTraceOfAFilesystemWithoutItsEventsSaysUseMount: overlayfs reports no filesystem-wide
// events (fanotify refuses the mark), but a mount mark on it works: trace --fs OV and trace
// OV fail naming the path, the reason and --mount, which then traces it. Before, the error
// ended with "(this filesystem does not support these events)" and nothing to do.
func TestTraceOfAFilesystemWithoutItsEventsSaysUseMount(t *testing.T) {
	testenv.RequireRoot(t)
	base := testenv.Tmpfs(t)
	ov := base + "/ov"
	sh(t, fmt.Sprintf("mkdir %[1]s/lo %[1]s/up %[1]s/wk %[1]s/ov && echo x >%[1]s/lo/f && mount -t overlay overlay -o lowerdir=%[1]s/lo,upperdir=%[1]s/up,workdir=%[1]s/wk %[1]s/ov", base))
	t.Cleanup(func() { exec.Command("umount", ov).Run() })
	for _, args := range [][]string{{"trace", "--fs", ov}, {"trace", ov}} {
		out, err := exec.Command(bin, append(args, "-q")...).CombinedOutput()
		msg := strings.TrimSpace(string(out))
		if code := exitStatus(err); code != exitRuntime || !strings.Contains(msg, ov+": ") || !strings.Contains(msg, "trace --mount "+ov) {
			t.Errorf("fsnotifyd %q: exit %d, %q; want exit %d naming %s and --mount", args, code, msg, exitRuntime, ov)
		}
	}
	p := start(t, "trace", "--mount", ov)
	sh(t, "cat "+ov+"/f >/dev/null")
	got := p.collect(10*time.Second, func(l []string) bool { return len(l) > 0 && strings.HasSuffix(l[len(l)-1], ov+"/f") })
	if len(got) == 0 {
		t.Errorf("trace --mount %s printed nothing of a cat of its file", ov)
	}
}

// TestTraceOfEveryFilesystemGoesOnPastAnOverlay: a trace with no PATH, on a machine with an
// overlayfs mounted (every container host; a user's own mount is enough), traces the overlay
// by its mount, says so, and traces the rest. It exited 1 at the overlay's refusal of a
// filesystem mark, tracing nothing. The trace runs in a mount namespace of its own whose root
// is a tmpfs (pivot_root), so that it marks none of the machine's filesystems.
func TestTraceOfEveryFilesystemGoesOnPastAnOverlay(t *testing.T) {
	testenv.RequireRoot(t)
	nr := testenv.Tmpfs(t) + "/root"
	script := `set -e
NR=$1; BIN=$2
mkdir "$NR"; mount -t tmpfs tmpfs "$NR"
mkdir -p "$NR/old" "$NR/bin" "$NR/proc" "$NR/lo" "$NR/up" "$NR/wk" "$NR/ov"
cp "$BIN" "$NR/bin/fsnotifyd"; cp "$(command -v umount)" "$NR/bin/umount"
for f in $(ldd "$BIN" "$(command -v umount)" | grep -o '/[^ ]*' | grep -v ':$' | sort -u); do mkdir -p "$NR$(dirname "$f")"; cp "$f" "$NR$f"; done
echo x >"$NR/lo/f"; mkdir "$NR/dev"; mknod -m 666 "$NR/dev/null" c 1 3
mount -t overlay overlay -o lowerdir="$NR/lo",upperdir="$NR/up",workdir="$NR/wk" "$NR/ov"
mount -t proc proc "$NR/proc"
cd "$NR"; pivot_root . old; cd /
PATH=/bin; umount -l /old
fsnotifyd trace --timeout 3s >/out 2>/err &
ready() { while read -r l; do case "$l" in *"Watches established."*) return 0;; esac; done 2>/dev/null </err; return 1; }
n=0; until ready; do n=$((n+1)); [ $n -lt 100000 ] || break; done
read x </ov/f
rc=0; wait $! || rc=$?
echo "rc=$rc"; while read -r l; do echo "err: $l"; done </err; while read -r l; do echo "out: $l"; done </out`
	out, err := exec.Command("unshare", "--mount", "--propagation", "private", "--fork", "sh", "-c", script, "sh", nr, bin).CombinedOutput()
	got := string(out)
	if err != nil {
		t.Fatalf("%v:\n%s", err, got)
	}
	if !strings.Contains(got, "rc=0\n") || !strings.Contains(got, "/ov: ") || !strings.Contains(got, "traced by its mount only") {
		t.Errorf("the trace did not go on past the overlay, traced by its mount:\n%s", got)
	}
	if !regexp.MustCompile(`out: \S+ sh\(\d+\): O +/ov/f\n`).MatchString(got) {
		t.Errorf("no open of /ov/f in the trace:\n%s", got)
	}
}

// TestTraceJSONExeDeletedOrNamedSo: --json --exe of a process whose executable was deleted
// while it runs, and of one whose executable is a file named "x (deleted)", tell the two
// apart: the deleted one's "exe" is its path, with "exe_deleted":true; the other's is its
// name, " (deleted)" and all, without it. Before, both read "/…/x (deleted)" (the kernel's
// /proc/PID/exe), so any user could make their program look deleted, or a deleted one look
// like a file of that name.
func TestTraceJSONExeDeletedOrNamedSo(t *testing.T) {
	testenv.RequireRoot(t)
	data := testenv.Tmpfs(t)
	bins := testenv.Tmpfs(t)
	shExe, _ := exec.LookPath("sh")
	sh(t, fmt.Sprintf(`echo x >%[1]s/data && cp %[2]s "%[3]s/x (deleted)" && cp %[2]s %[3]s/y`, data, shExe, bins))
	p := start(t, "trace", "--json", "--exe", "--fs", data)
	run := func(exe, script string) *exec.Cmd {
		// It stays alive (its sleep child) until its read is seen: the exe is read then.
		cmd := exec.Command(exe, "-c", script, exe, data+"/data")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	named := run(bins+"/x (deleted)", `read x <"$1"; sleep 5`)
	deleted := run(bins+"/y", `rm "$0"; read x <"$1"; sleep 5`)
	want := map[int]map[string]any{
		named.Process.Pid:   {"exe": bins + "/x (deleted)"},
		deleted.Process.Pid: {"exe": bins + "/y", "exe_deleted": true},
	}
	got := map[int]map[string]any{}
	all := p.collect(10*time.Second, func(l []string) bool {
		if len(l) == 0 {
			return false
		}
		var r map[string]any
		if json.Unmarshal([]byte(l[len(l)-1]), &r) == nil && r["path"] == data+"/data" {
			if pid, ok := r["pid"].(float64); ok && want[int(pid)] != nil && got[int(pid)] == nil {
				got[int(pid)] = r
			}
		}
		return len(got) == len(want)
	})
	p.stop()
	for pid, w := range want {
		r := got[pid]
		if r == nil {
			t.Errorf("no record of pid %d (want %v); records:\n%s", pid, w, strings.Join(all, "\n"))
			continue
		}
		if r["exe"] != w["exe"] || r["exe_deleted"] != w["exe_deleted"] {
			t.Errorf("pid %d: exe %q, exe_deleted %v; want %q, %v", pid, r["exe"], r["exe_deleted"], w["exe"], w["exe_deleted"])
		}
	}
}

// TestTraceNamesAReusedPidByItsNewProcess: a process (olda) reads a traced file and exits,
// and another program (newb) takes its pid (ns_last_pid, root's: a user who forks fast
// cycles the pids in about a second) and reads it too, 200 ms later, within the 2 s the name
// is kept: newb's read is named newb, with its executable. Before, it was shown as olda's,
// with olda's executable, for up to 2 s (the name cache trusted the pid alone).
func TestTraceNamesAReusedPidByItsNewProcess(t *testing.T) {
	testenv.RequireRoot(t)
	data := testenv.Tmpfs(t)
	bins := testenv.Tmpfs(t)
	shExe, _ := exec.LookPath("sh")
	sh(t, fmt.Sprintf(`echo x >%[1]s/data && cp %[2]s %[3]s/olda && cp %[2]s %[3]s/newb`, data, shExe, bins))
	p := start(t, "trace", "--json", "--exe", "--fs", data)
	reads := func(pid int) []map[string]any {
		var recs []map[string]any
		p.collect(5*time.Second, func(l []string) bool {
			if len(l) == 0 {
				return false
			}
			var r map[string]any
			if json.Unmarshal([]byte(l[len(l)-1]), &r) == nil && r["pid"] == float64(pid) && r["path"] == data+"/data" {
				recs = append(recs, r)
			}
			return len(recs) > 0
		})
		return recs
	}
	for try := 0; ; try++ {
		old := exec.Command(bins+"/olda", "-c", `read x <"$0"; sleep 0.1`, data+"/data")
		if err := old.Start(); err != nil {
			t.Fatal(err)
		}
		pid := old.Process.Pid
		if r := reads(pid); len(r) == 0 || r[0]["comm"] != "olda" {
			t.Fatalf("olda's read: %v", r)
		}
		old.Wait()
		p.collect(200*time.Millisecond, func([]string) bool { return false }) // olda's other lines
		// The next pid is pid: another process may take it first (the test's own, or the
		// host's); then again.
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0); err != nil {
			t.Skipf("ns_last_pid: %v", err)
		}
		nb := exec.Command(bins+"/newb", "-c", `read x <"$0"; sleep 1`, data+"/data")
		if err := nb.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { nb.Process.Kill(); nb.Wait() }()
		if nb.Process.Pid != pid {
			if try == 10 {
				t.Skipf("pid %d not taken again in 10 tries", pid)
			}
			continue
		}
		r := reads(pid)
		if len(r) == 0 || r[0]["comm"] != "newb" || r[0]["exe"] != bins+"/newb" {
			t.Errorf("newb's read, on olda's pid %d 200 ms later: %v; want comm newb, exe %s/newb", pid, r, bins)
		}
		return
	}
}

// TestTraceNamesAnAttribThroughARemovedLinkByACurrentName: a file with two links, a and b,
// opened through a; a is removed, then the file's mode changed through the descriptor
// (fchmod). The kernel names the ATTRIB by the descriptor's link, a, removed before it: the
// trace prints the file's current name, b, not a name it no longer had. Before, "A   d/a".
func TestTraceNamesAnAttribThroughARemovedLinkByACurrentName(t *testing.T) {
	testenv.RequireRoot(t)
	d := testenv.Tmpfs(t)
	a, b := filepath.Join(d, "a"), filepath.Join(d, "b")
	sh(t, fmt.Sprintf("echo x >%s && ln %s %s", a, a, b))
	p := start(t, "trace", "-e", "attrib,delete", "--fs", d)
	f, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Remove(a); err != nil {
		t.Fatal(err)
	}
	// Its ATTRIB once the removal is read: unread, the kernel merges it into the removal's
	// DELETE (same link, same file), whose split puts it first (docs/trace-format.md).
	lines := p.collect(10*time.Second, func(l []string) bool { return len(l) >= 2 })
	if err := f.Chmod(0o600); err != nil {
		t.Fatal(err)
	}
	lines = append(lines, p.collect(10*time.Second, func(l []string) bool { return len(l) >= 1 })...)
	var got []string
	for _, l := range lines {
		got = append(got, traceLine(t, l))
	}
	// The unlink's link count (on the file: its current name), the unlink, the fchmod.
	want := []string{"A " + b, "D " + a, "A " + b}
	if !slices.Equal(got, want) {
		t.Errorf("trace printed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
