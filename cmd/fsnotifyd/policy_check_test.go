//go:build linux

package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPolicyCheck runs "policy check" on rules files and compares its whole stdout, and the
// exit status: errors exit 1, warnings 0 (1 with --strict), an unreadable file 2.
func TestPolicyCheck(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name   string
		rules  string
		args   []string
		want   []string // stdout lines, FILE replaced by the file's path
		status int
		mode   os.FileMode // the file's, if not 0644
	}{
		{name: "clean", rules: "default deny\nallow exec /usr/** trusted=yes\nallow open /etc/** uid=0\n",
			want: nil, status: 0},
		{name: "syntax error", rules: "allow open /srv/** colour=red\n",
			want: []string{`FILE:1:20: error: unknown condition "colour" (want pid=, uid=, gid=, comm=, exe=, ppid=, ancestor=, trusted_exe=, ftype=, sha256=, trusted=, size>, size<, mount_writable=, errno=, or cache)`}, status: 1},
		{name: "comm grants", rules: "default deny\nallow open /etc/** comm=bash\n",
			want:   []string{"FILE:2: warning: this allow rule tells who may access by comm=bash alone, and any process can set its own name (prctl PR_SET_NAME, or a copy of a program under another name): it grants the access to every process; add exe=, uid= or gid= [forgeable]"},
			status: 0},
		{name: "after a catch-all", rules: "allow open **\ndeny open /tmp/**\n",
			want:   []string{"FILE:2: warning: this rule never decides: FILE:1 (allow open **) comes first and decides every access it could [unreachable]"},
			status: 0},
		{name: "never matches", rules: "deny open /srv/** size>10 size<5\n",
			want:   []string{"FILE:1: warning: this rule never matches: no size is both more than 10 and less than 5 bytes [never-matches]"},
			status: 0},
		{name: "strict", rules: "allow open **\ndeny open /tmp/**\n", args: []string{"--strict"},
			want:   []string{"FILE:2: warning: this rule never decides: FILE:1 (allow open **) comes first and decides every access it could [unreachable]"},
			status: 1},
		// A file others can write: a warning (it may be checked before it is installed), which
		// --strict makes fatal; the guard refuses it.
		{name: "world-writable", rules: "default deny\nallow exec /usr/** trusted=yes\n", mode: 0o666,
			want:   []string{"FILE: warning: policy file FILE: writable by others (mode 0666): a policy file must be writable only by root (chown root FILE; chmod go-w FILE); guard --policy refuses it [owner]"},
			status: 0},
		{name: "group-writable strict", rules: "default deny\nallow exec /usr/** trusted=yes\n", mode: 0o664, args: []string{"--strict"},
			want:   []string{"FILE: warning: policy file FILE: writable by its group (mode 0664): a policy file must be writable only by root (chown root FILE; chmod go-w FILE); guard --policy refuses it [owner]"},
			status: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".rules")
			if err := os.WriteFile(file, []byte(tt.rules), 0o644); err != nil {
				t.Fatal(err)
			}
			if tt.mode != 0 {
				if err := os.Chmod(file, tt.mode); err != nil {
					t.Fatal(err)
				}
			}
			out, errOut, st := fsn(t, append(append([]string{"policy", "check"}, tt.args...), file)...)
			checkOutput(t, out, errOut, st, tt.want, tt.status, file, "FILE")
			if !strings.Contains(errOut, file+": ") {
				t.Errorf("no summary on stderr: %q", errOut)
			}
		})
	}
	// Usage errors and unreadable files: 2, naming what is wrong.
	for _, args := range [][]string{{"policy", "check"}, {"policy", "check", filepath.Join(dir, "missing.rules")}} {
		_, errOut, st := fsn(t, args...)
		if st != 2 || errOut == "" {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a reason", args, st, errOut)
		}
	}
}

// checkOutput fails t unless out's non-empty lines, each old string of oldnew replaced by
// its new one (as strings.NewReplacer: the first that matches at a place), are want and st
// is status.
func checkOutput(t *testing.T, out, errOut string, st int, want []string, status int, oldnew ...string) {
	t.Helper()
	r := strings.NewReplacer(oldnew...)
	var got []string
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if l != "" {
			got = append(got, r.Replace(l))
		}
	}
	if st != status || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("exit %d (want %d)\n%s\nwant\n%s\nstderr: %s", st, status, strings.Join(got, "\n"), strings.Join(want, "\n"), errOut)
	}
}

// TestPolicyExplain runs "policy explain" on described and real processes and files and checks
// each rule's lines and the decision, and the exit status (0 allowed, 1 denied, 2 cannot say).
func TestPolicyExplain(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "explain.rules")
	writeFile(t, rules, `default deny
deny exec /tmp/** comm=evil
allow exec ** ftype=elf-executable exe=/usr/bin/bash uid=1000
allow open /srv/** size<100
allow open ** uid=0
`)
	script := filepath.Join(dir, "x.sh")
	writeFile(t, script, "#!/bin/sh\necho hi\n")
	small := filepath.Join(dir, "small")
	writeFile(t, small, "tiny")
	trueBin, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true(1)")
	}
	trueBin, _ = filepath.EvalSymlinks(trueBin)
	bash, _ := filepath.EvalSymlinks("/usr/bin/bash")
	for _, tt := range []struct {
		name   string
		args   []string
		want   []string // lines (or fragments of a line, in order) the output must contain
		status int
	}{
		{name: "exec allowed by type and exe",
			args: []string{"--event", "exec", "--path", trueBin, "--exe", "/usr/bin/bash", "--uid", "1000", "--gid", "1000", "--comm", "bash"},
			want: []string{"request  exec of " + trueBin,
				rules + ":3  allow exec ** ftype=elf-executable exe=/usr/bin/bash uid=1000",
				"ftype=elf-executable  ftype is elf-executable", "holds",
				"exe=/usr/bin/bash", "exe is " + bash, "holds",
				"→ decides",
				"decision allow by " + rules + ":3"},
			status: 0},
		{name: "script is not an elf executable",
			args: []string{"--event", "exec", "--path", script, "--exe", "/usr/bin/bash", "--uid", "1000", "--gid", "1000", "--comm", "bash"},
			want: []string{"ftype is script:sh", "fails", "→ no match",
				rules + ":4  allow open /srv/** size<100", "events  exec is not one of its events  no match",
				"decision deny by default"},
			status: 1},
		{name: "open by root",
			args: []string{"--path", small, "--uid", "0"},
			want: []string{rules + ":2  deny exec /tmp/** comm=evil", "events  open is not one of its events  no match",
				"path  " + small + " does not match /srv/**  no match",
				"uid=0", "uid is 0", "holds", "decision allow by " + rules + ":5"},
			status: 0},
		{name: "missing attribute names its flag",
			args:   []string{"--path", small},
			want:   []string{"decision none:", "give --uid"},
			status: 2},
		{name: "size overridden",
			args:   []string{"--path", "/srv/www/new.html", "--size", "50", "--uid", "33"},
			want:   []string{"file     /srv/www/new.html (", "size<100", "size is 50", "holds", "decision allow by " + rules + ":4"},
			status: 0},
		// --ancestry-cut alone printed "process  ancestors  (given)": nothing said the chain
		// was cut, nor that it was empty.
		{name: "ancestry cut alone",
			args:   []string{"--path", small, "--uid", "0", "--ancestry-cut"},
			want:   []string{"process  uid 0, ancestors unknown (--ancestry-cut) (given)"},
			status: 0},
		{name: "ancestry cut",
			args:   []string{"--path", small, "--uid", "0", "--ancestor", trueBin, "--ancestry-cut"},
			want:   []string{"process  uid 0, ancestors " + trueBin + " and more (--ancestry-cut) (given)"},
			status: 0},
		{name: "a live process",
			args:   []string{"--path", small, "--pid", fmt.Sprint(os.Getpid())},
			want:   []string{fmt.Sprintf("process  %d (read from /proc)", os.Getpid()), "uid=0", fmt.Sprintf("uid is %d", os.Geteuid())},
			status: map[bool]int{true: 0, false: 1}[os.Geteuid() == 0]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, st := fsn(t, append([]string{"policy", "explain", rules}, tt.args...)...)
			rest := out
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("no %q (in order) in\n%s\nstderr: %s", w, out, errOut)
				}
				rest = rest[i+len(w):]
			}
			if st != tt.status {
				t.Fatalf("exit %d, want %d\n%s\nstderr: %s", st, tt.status, out, errOut)
			}
			// The columns are padded between cells, never after the last (a line that
			// ends in blanks does not equal docs/policy.md's, nor a diff's).
			for _, l := range strings.Split(out, "\n") {
				if strings.TrimRight(l, " ") != l {
					t.Errorf("line ends in blanks: %q", l)
				}
			}
		})
	}
	// Usage errors: 2, with the flag named.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{rules}, "--path"},
		{[]string{rules, "--path", small, "--event", "open,exec"}, "--event"},
		{[]string{rules, "--path", small, "--pid", "1", "--uid", "0"}, "--uid"},
		{[]string{rules, "--path", small, "--uid", "x"}, "--uid"},
		// A file attribute's bad value is refused whether or not a rule reads it: before,
		// it was taken, and explain either said nothing of it (no rule read it) or printed
		// "decision deny (--on-error)", exit 1, which the guard would not decide.
		{[]string{rules, "--path", small, "--uid", "0", "--sha256", "zz"}, `--sha256 "zz": want 64 hex digits`},
		{[]string{rules, "--path", "/srv/www/new.html", "--uid", "33", "--size", "-5"}, `--size: size "-5": want a number of bytes`},
		{[]string{rules, "--path", small, "--uid", "0", "--ftype", "elf"}, `--ftype: `},
		// A rules file that cannot be read, or does not parse, is no denial (exit 1).
		{[]string{filepath.Join(dir, "missing.rules"), "--path", small, "--uid", "0"}, "missing.rules: no such file or directory"},
		{[]string{small, "--path", small, "--uid", "0"}, small + ":1:1: "},
	} {
		out, errOut, st := fsn(t, append([]string{"policy", "explain"}, tt.args...)...)
		if st != 2 || out != "" || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2, no output, naming %s", tt.args, st, out, errOut, tt.want)
		}
	}
}

// TestPolicyExplainAllowlistCraftedLibraries: the reference allowlist's rule 4
// (`deny open ** ftype=elf-shared-object trusted=no`) denies an untrusted copy of libm crafted
// as the reviewer's libraries (b) (PT_DYNAMIC's p_offset at an appended DT_FLAGS_1=DF_1_PIE
// table; glibc reads the real one, at p_vaddr, and loads it) and (c) (1200 program headers,
// over the 64 KiB read; glibc loads it). Before, ftype= read them as elf-executable and
// elf-other, and no rule denied their open: an LD_PRELOAD the allowlist let through. The file's
// type is read from it, as the guard does.
func TestPolicyExplainAllowlistCraftedLibraries(t *testing.T) {
	libm := sharedObjectFile(t)
	le := binary.LittleEndian
	if libm[4] != 2 || libm[5] != 1 {
		t.Skip("libm is not a 64-bit little-endian ELF file")
	}
	phoff, phnum := int(le.Uint64(libm[32:])), int(le.Uint16(libm[56:]))
	fake := bytes.Clone(libm)
	for len(fake)%8 != 0 {
		fake = append(fake, 0)
	}
	table := uint64(len(fake))
	fake = le.AppendUint64(le.AppendUint64(fake, 0x6ffffffb), 0x08000000) // DT_FLAGS_1 DF_1_PIE
	fake = append(fake, make([]byte, 16)...)                              // DT_NULL
	many := bytes.Clone(fake[:table])
	newPhoff := len(many)
	for i := range phnum {
		p := phoff + i*56
		if le.Uint32(libm[p:]) == 2 { // PT_DYNAMIC
			le.PutUint64(fake[p+8:], table)
		}
		e := bytes.Clone(libm[p : p+56])
		if le.Uint32(e) == 6 { // PT_PHDR: the table is no longer where it says
			le.PutUint32(e, 0)
		}
		many = append(many, e...)
	}
	many = append(many, make([]byte, (1200-phnum)*56)...)
	le.PutUint64(many[32:], uint64(newPhoff))
	le.PutUint16(many[56:], 1200)
	dir := t.TempDir()
	rules := filepath.Join("..", "..", "internal", "policy", "testdata", "allowlist.rules")
	for name, content := range map[string][]byte{"fakedyn.so": fake, "manyphdrs.so": many} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name)
			writeFile(t, p, string(content))
			out, errOut, st := fsn(t, "policy", "explain", rules, "--event", "open", "--path", p,
				"--exe", "/usr/bin/true", "--uid", "1000", "--gid", "1000", "--comm", "true", "--trusted", "no")
			if want := "decision deny by " + rules + ":47"; st != 1 || !strings.Contains(out, want) || !strings.Contains(out, "ftype is elf-shared-object") {
				t.Fatalf("exit %d, want 1 and %q\n%s\nstderr: %s", st, want, out, errOut)
			}
		})
	}
}

// TestPolicyExplainTrust explains a trusted= rule against a trust file: the file as listed is
// trusted (and the source and digest are printed), a modified copy is not.
func TestPolicyExplainTrust(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tool := filepath.Join(dir, "tool")
	writeFile(t, tool, "tool v1")
	tf := filepath.Join(dir, "local.trust")
	if _, errOut, st := fsn(t, "trust", "add", "--file", tf, tool); st != 0 {
		t.Fatalf("trust add: %d %s", st, errOut)
	}
	rules := filepath.Join(dir, "trust.rules")
	writeFile(t, rules, "default deny\nallow exec ** trusted=yes\n")
	args := []string{"policy", "explain", rules, "--event", "exec", "--path", tool, "--trust", tf, "--no-package-trust"}
	out, errOut, st := fsn(t, args...)
	if st != 0 || !strings.Contains(out, "trusted is yes") || !strings.Contains(out, "trust    file trusted source="+tf+":1 digest=sha256:"+sha("tool v1")) {
		t.Fatalf("trusted: exit %d\n%s\nstderr: %s", st, out, errOut)
	}
	writeFile(t, tool, "tool v2")
	out, errOut, st = fsn(t, args...)
	if st != 1 || !strings.Contains(out, "trusted is no") || !strings.Contains(out, "trust    file modified source="+tf+":1 digest=sha256:"+sha("tool v2")+" want=sha256:"+sha("tool v1")) {
		t.Fatalf("modified: exit %d\n%s\nstderr: %s", st, out, errOut)
	}
}

// TestPolicyExplainPathAsTheKernelResolvesIt: explain decides for the file the kernel would
// report for --path: a ".." after a symbolic link is the link target's parent (as open(2)
// resolves it, not as the text reads), and a file that does not exist yet, named through a
// link, is the one the link leads to. Before, the path was cleaned as text first
// ("link/../secret" was "secret" beside the link) and a missing file kept the link's name:
// explain allowed what the guard denies.
func TestPolicyExplainPathAsTheKernelResolvesIt(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "real", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "real", "secret"), "k")
	writeFile(t, filepath.Join(dir, "secret"), "decoy")
	if err := os.Symlink(filepath.Join("real", "sub"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(dir, "rl")); err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(dir, "p.rules")
	writeFile(t, rules, "deny "+dir+"/real/**\n")
	for _, tt := range []struct{ path, canon string }{
		{dir + "/link/../secret", dir + "/real/secret"},    // open(2) reads real/sub/.. = real
		{dir + "/link/new", dir + "/real/sub/new"},         // not there yet: where it would be
		{dir + "/rl/sub/../new", dir + "/real/new"},        // missing, after a link and a ..
		{dir + "/link/nodir/x", dir + "/real/sub/nodir/x"}, // missing directories too
		{dir + "/real/sub/../../real/secret", dir + "/real/secret"},
	} {
		out, errOut, st := fsn(t, "policy", "explain", rules, "--path", tt.path, "--uid", "0")
		if st != 1 || !strings.Contains(out, "file     "+tt.canon+" ") || !strings.Contains(out, "decision deny by "+rules+":1") {
			t.Errorf("explain --path %s: exit %d, want 1 (denied) for %s\n%s\nstderr: %s", tt.path, st, tt.canon, out, errOut)
		}
	}
}

// TestPolicyCheckWarnsOfRuleNamingADirectory: a glob matches one path, so "deny /srv/secret"
// where /srv/secret is a directory denies opening the directory (listing it) and nothing
// below it: a careless administrator's deny that keeps no file out. policy check (and the
// guard, at its start) warns, naming the glob to write. Before, nothing was said.
func TestPolicyCheckWarnsOfRuleNamingADirectory(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "secret"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "file"), "x")
	rules := filepath.Join(dir, "p.rules")
	writeFile(t, rules, "deny "+dir+"/secret\ndeny "+dir+"//secret/\ndeny "+dir+"/file\ndeny "+dir+"/secret/**\ndeny "+dir+"/[s]ecret\nallow "+dir+"/secret\n")
	out, errOut, st := fsn(t, "policy", "check", rules)
	for line, want := range map[int]bool{1: true, 2: true, 3: false, 4: false, 5: false, 6: true} {
		prefix := fmt.Sprintf("%s:%d: warning: ", rules, line)
		got := false
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, prefix) && strings.HasSuffix(l, "[directory]") {
				got = true
				if !strings.Contains(l, dir+"/secret/**") {
					t.Errorf("line %d: the warning does not say what to write (%s/secret/**): %s", line, dir, l)
				}
			}
		}
		if got != want {
			t.Errorf("line %d: [directory] warning %v, want %v\n%s\nstderr: %s (exit %d)", line, got, want, out, errOut, st)
		}
	}
}

// TestPolicyExplainNameless: the guard decides an open of a file with no name and no content
// (an empty O_TMPFILE, an unlinked empty file: policy.Request.Nameless) as about no path, and
// policy explain can say so (--nameless): a deny of particular paths neither denies nor
// allows it, the default does, and a run of it is any unknown path. Before, explain had no way
// to ask (--path-unknown denies where the guard allows).
func TestPolicyExplainNameless(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "p.rules")
	writeFile(t, rules, "deny **/*.key\n")
	checkExplain(t, rules, dir+"/x.key", []explainCase{
		{[]string{"--nameless", "--event", "open"}, 0, "no name and no content"},
		{[]string{"--path-unknown", "--event", "open"}, 1, "the path is unknown"},
		{[]string{"--nameless", "--event", "exec"}, 1, "the path is unknown"},
	})
}

// explainCase is a run of policy explain with args, its exit status and what its output holds.
type explainCase struct {
	args []string
	want int
	out  string
}

// checkExplain runs policy explain RULES --path PATH --uid 0 ARGS... for each case (no RULES
// if "").
func checkExplain(t *testing.T, rules, path string, cases []explainCase) {
	t.Helper()
	for _, tt := range cases {
		args := []string{"policy", "explain", "--path", path, "--uid", "0"}
		if rules != "" {
			args = append(args, rules)
		}
		out, errOut, st := fsn(t, append(args, tt.args...)...)
		if st != tt.want || !strings.Contains(out, tt.out) {
			t.Errorf("explain %v: exit %d, want %d and %q\n%s\nstderr: %s", tt.args, st, tt.want, tt.out, out, errOut)
		}
	}
}

// TestPolicyExplainPathLongerThanTheKernelPrints: the guard cannot read the path of a file
// deeper than PATH_MAX (4096 bytes: the kernel prints none) and decides its access as an
// unknown path, where an allow of particular paths is passed over. policy explain --path of
// such a file decides the same. Before, it matched the long path as text: it said "allow"
// (exit 0) where the guard denies.
func TestPolicyExplainPathLongerThanTheKernelPrints(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(dir, "p.rules")
	writeFile(t, rules, "default deny\nallow "+dir+"/**\n")
	seg := strings.Repeat("d", 200)
	long := dir
	for len(long) < 4200 {
		long += "/" + seg
	}
	short := dir + "/" + seg + "/f"
	for _, tt := range []struct {
		path string
		want int
	}{{short, 0}, {long + "/f", 1}} {
		out, errOut, st := fsn(t, "policy", "explain", rules, "--path", tt.path, "--uid", "0")
		if st != tt.want || tt.want == 1 && !strings.Contains(out, "the path is unknown") {
			t.Errorf("explain --path (%d bytes): exit %d, want %d\n%s\nstderr: %s", len(tt.path), st, tt.want, out, errOut)
		}
	}
}

// TestPolicyCheckWarnsOfExeThroughSymbolicLinks: exe= and ancestor= test the executable's
// path as /proc/PID/exe gives it, links resolved (docs/policy.md, "The executable"), so
// "deny open /srv/** exe=/usr/bin/python3" (python3 a link to python3.11), or exe=/bin/sh on
// merged /usr, never matches: python reads what the rule was written to keep from it.
// policy check warns ([symlink]) as it does of a rule's own glob through a link, naming the
// path to write. Before, nothing was said.
func TestPolicyCheckWarnsOfExeThroughSymbolicLinks(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir+"/usr/bin", 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir+"/usr/bin/python3.11", "x")
	if err := os.Symlink("python3.11", dir+"/usr/bin/python3"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/bin", dir+"/bin"); err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(dir, "p.rules")
	writeFile(t, rules, "deny open /srv/** exe="+dir+"/usr/bin/python3\n"+
		"deny open /srv/** ancestor=/usr/sbin/cron,"+dir+"/bin/*\n"+
		"deny open /srv/** exe="+dir+"/usr/bin/python3.11\n")
	out, errOut, st := fsn(t, "policy", "check", rules)
	for line, want := range map[int]string{
		1: dir + "/usr/bin/python3 is a symbolic link (to " + dir + "/usr/bin/python3.11)",
		2: dir + "/bin is a symbolic link (to " + dir + "/usr/bin)",
	} {
		prefix := fmt.Sprintf("%s:%d: warning: ", rules, line)
		if !strings.Contains(out, prefix) || !strings.Contains(out, want) || !strings.Contains(out, "[symlink]") {
			t.Errorf("line %d: no warning %q [symlink]\n%s\nstderr: %s (exit %d)", line, want, out, errOut, st)
		}
	}
	if strings.Contains(out, rules+":3: warning") {
		t.Errorf("a warning of line 3, whose exe= has no link:\n%s", out)
	}
}

// TestPolicyExplainCommandLineRules: a guard's --deny and --allow rules come before its
// --policy file's (and --cache caches its allows): policy explain takes them too, so that
// `guard --allow /srv/tls/dhparam.key --policy FILE` (docs/policy.md's example) is explained
// as it decides. Before, explain took FILE alone and said "deny" of what that guard allows.
func TestPolicyExplainCommandLineRules(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "p.rules")
	writeFile(t, rules, "deny /srv/tls/**\n")
	checkExplain(t, rules, "/srv/tls/dhparam.key", []explainCase{
		{[]string{"--allow", "/srv/tls/dhparam.key"}, 0, "decision allow by --allow /srv/tls/dhparam.key\n"},
		{[]string{"--allow", "/srv/tls/dhparam.key", "--cache"}, 0, "(the kernel may cache this allow)"},
		{[]string{"--deny", "/srv/**", "--allow", "/srv/tls/dhparam.key"}, 1, "decision deny by --deny /srv/**"},
		{nil, 1, "decision deny by " + rules + ":1"},
	})
	// The guard runs on command-line rules alone (no --policy): explain decides as it does.
	// Before, explain wanted a FILE.
	checkExplain(t, "", "/srv/tls/dhparam.key", []explainCase{
		{[]string{"--deny", "/srv/tls/**"}, 1, "decision deny by --deny /srv/tls/**\n"},
		{[]string{"--allow", "/srv/tls/*", "--cache"}, 0, "decision allow by --allow /srv/tls/* (the kernel may cache this allow)"},
		{[]string{"--cache"}, 2, ""}, // no rule at all: no FILE given
	})
}

// TestPolicyCheckCommandLineRules: a guard's --deny and --allow rules come before its --policy
// file's (and --cache caches its allows), so policy check takes them too and lints the policy
// that guard runs: a file rule or default made unreachable by a command-line rule, and the
// command-line rules' own findings, which are reported by their flag ("--deny GLOB: warning:
// ..."), not a file line. The guard runs on command-line rules alone, so check does too.
// Before, check took FILE alone ("unknown flag --allow") and said nothing of them.
func TestPolicyCheckCommandLineRules(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "real", "secret"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		rules  string // FILE's content; "" runs check with no FILE
		args   []string
		want   []string // stdout lines, FILE replaced by the file's path, DIR by dir
		status int
	}{
		{name: "file rule after an allow of everything", rules: "deny /srv/tls/**\n", args: []string{"--allow", "**"},
			want: []string{"FILE:1: warning: this rule never decides: --allow ** (allow * **) comes first and decides every access it could [unreachable]"}},
		{name: "file default after an allow of everything", rules: "default deny\nallow /srv/**\n", args: []string{"--allow", "**", "--cache"},
			want: []string{"FILE:2: warning: this rule never decides: --allow ** (allow * **) comes first and decides every access it could [unreachable]",
				"FILE:1: warning: default deny never applies: --allow ** (allow * **) decides every access [unreachable]"}},
		{name: "strict", rules: "deny /srv/tls/**\n", args: []string{"--strict", "--allow", "**"},
			want:   []string{"FILE:1: warning: this rule never decides: --allow ** (allow * **) comes first and decides every access it could [unreachable]"},
			status: 1},
		{name: "a flag rule after another", rules: "deny /etc/shadow\n", args: []string{"--deny", "/srv/**", "--allow", "/srv/tls/*"},
			want: []string{"--allow /srv/tls/*: warning: this rule never decides: --deny /srv/** (deny * /srv/**) comes first and decides every access it could [unreachable]"}},
		{name: "a flag rule naming a directory", rules: "deny /etc/shadow\n", args: []string{"--deny", dir + "/real/secret"},
			want: []string{"--deny DIR/real/secret: warning: DIR/real/secret is a directory: this rule decides the accesses of the directory itself (listing it), not of the files below it: for those, write DIR/real/secret/** too [directory]"}},
		{name: "a flag rule through a link", rules: "deny /etc/shadow\n", args: []string{"--deny", dir + "/link/secret/**"},
			want: []string{"--deny DIR/link/secret/**: warning: DIR/link is a symbolic link (to DIR/real): a glob matches the path the kernel reports, with its links resolved, so this rule never matches there; write it with DIR/real [symlink]"}},
		{name: "flag rules alone", args: []string{"--deny", "/srv/**", "--deny", "/srv/tls/**"},
			want: []string{"--deny /srv/tls/**: warning: this rule never decides: --deny /srv/** (deny * /srv/**) comes first and decides every access it could [unreachable]"}},
		{name: "flag rules alone, clean", args: []string{"--deny", "/srv/tls/**", "--allow", "/srv/**", "--cache"}},
		{name: "no finding", rules: "default deny\nallow exec /usr/** trusted=yes\n", args: []string{"--deny", "/srv/tls/**"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"policy", "check"}, tt.args...)
			file := "no file given"
			if tt.rules != "" {
				file = filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".rules")
				writeFile(t, file, tt.rules)
				args = append(args, file)
			}
			out, errOut, st := fsn(t, args...)
			checkOutput(t, out, errOut, st, tt.want, tt.status, file, "FILE", dir, "DIR")
			// The summary counts the command-line rules with the file's.
			nrules := strings.Count(tt.rules, "\n") - strings.Count(tt.rules, "default ")
			for _, a := range tt.args {
				if a == "--deny" || a == "--allow" {
					nrules++
				}
			}
			if want := fmt.Sprintf(": %d rules, ", nrules); !strings.Contains(errOut, want) {
				t.Errorf("the summary does not say %q: %q", want, errOut)
			}
		})
	}
	// Usage errors: 2, naming what is wrong. The guard takes one --policy FILE: check with
	// command-line rules checks one policy, so one FILE.
	one := filepath.Join(dir, "one.rules")
	writeFile(t, one, "deny /etc/shadow\n")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--deny", "/srv/["}, `--deny "/srv/["`},
		{[]string{"--allow", "/srv/**", one, one}, "one FILE"},
		{[]string{"--cache"}, "no FILE given"},
		{nil, "no FILE given"},
	} {
		out, errOut, st := fsn(t, append([]string{"policy", "check"}, tt.args...)...)
		if st != 2 || out != "" || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2, no output, naming %s", tt.args, st, out, errOut, tt.want)
		}
	}
}
