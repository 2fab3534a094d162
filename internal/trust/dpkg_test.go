package trust

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// fakeSystem is a made-up Debian system: a root with a merged /usr and a dpkg database.
type fakeSystem struct {
	t          *testing.T
	root, dpkg string
	status     strings.Builder
}

func newFakeSystem(t *testing.T) *fakeSystem {
	s := &fakeSystem{t: t, root: t.TempDir()}
	s.dpkg = filepath.Join(s.root, "var/lib/dpkg")
	for _, d := range []string{"usr/bin", "usr/sbin", "usr/lib", "etc", "opt", "var/lib/dpkg/info"} {
		must(t, os.MkdirAll(filepath.Join(s.root, d), 0o755))
	}
	for _, l := range []string{"bin", "sbin", "lib"} {
		must(t, os.Symlink("usr/"+l, filepath.Join(s.root, l)))
	}
	return s
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func md5hex(content string) string {
	s := md5.Sum([]byte(content))
	return hex.EncodeToString(s[:])
}

// file writes content at path (relative to the root, through its symlinks).
func (s *fakeSystem) file(path, content string) {
	must(s.t, os.WriteFile(filepath.Join(s.root, path), []byte(content), 0o755))
}

// pkg describes an installed package: its .list, its md5sums (path -> content digested), and
// its conffiles (path -> content) in status. state "" is "installed".
type pkg struct {
	name, state string
	list        []string
	sums        map[string]string // path (with /) -> content whose md5 is recorded
	conffiles   map[string]string
	noSums      bool
	extraSums   []string // raw md5sums lines
}

func (s *fakeSystem) add(p pkg) {
	info := filepath.Join(s.dpkg, "info", p.name)
	list := append([]string{"/."}, p.list...)
	must(s.t, os.WriteFile(info+".list", []byte(strings.Join(list, "\n")+"\n"), 0o644))
	if !p.noSums {
		var lines []string
		keys := make([]string, 0, len(p.sums))
		for k := range p.sums {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			lines = append(lines, md5hex(p.sums[k])+"  "+strings.TrimPrefix(k, "/"))
		}
		lines = append(lines, p.extraSums...)
		must(s.t, os.WriteFile(info+".md5sums", []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	}
	name, arch, _ := strings.Cut(p.name, ":")
	if arch == "" {
		arch = "amd64"
	}
	state := p.state
	if state == "" {
		state = "installed"
	}
	fmt.Fprintf(&s.status, "Package: %s\nStatus: install ok %s\nPriority: optional\nArchitecture: %s\nVersion: 1.0\n", name, state, arch)
	if strings.Contains(p.name, ":") {
		fmt.Fprintf(&s.status, "Multi-Arch: same\n")
	}
	if len(p.conffiles) > 0 {
		fmt.Fprintf(&s.status, "Conffiles:\n")
		for path, content := range p.conffiles {
			if content == "OBSOLETE" {
				fmt.Fprintf(&s.status, " %s %s obsolete\n", path, md5hex(path))
				continue
			}
			fmt.Fprintf(&s.status, " %s %s\n", path, md5hex(content))
		}
	}
	fmt.Fprintf(&s.status, "Description: test\n multi-line description\n\n")
}

func (s *fakeSystem) load(diversions string) *DB {
	must(s.t, os.WriteFile(filepath.Join(s.dpkg, "status"), []byte(s.status.String()), 0o644))
	if diversions != "" {
		must(s.t, os.WriteFile(filepath.Join(s.dpkg, "diversions"), []byte(diversions), 0o644))
	}
	db, err := Load(Config{Packages: true, DpkgDir: s.dpkg, Root: s.root})
	if err != nil {
		s.t.Fatal(err)
	}
	return db
}

// verifyPath verifies the file at the canonical path p of the fake root.
func (s *fakeSystem) verifyPath(v *Verifier, db *DB, p string) (Result, error) {
	f, err := os.Open(filepath.Join(s.root, p))
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	return v.Verify(context.Background(), db, p, int(f.Fd()))
}

// TestDpkg: what the package database trusts, on a merged-/usr system with diversions,
// replaced files, conffiles and packages in every state.
func TestDpkg(t *testing.T) {
	s := newFakeSystem(t)
	// coreutils ships /bin/cat (the /usr merge puts it at /usr/bin/cat) and /usr/bin/ls.
	s.file("usr/bin/cat", "cat v1")
	s.file("usr/bin/ls", "ls v1")
	s.add(pkg{name: "coreutils", list: []string{"/bin", "/bin/cat", "/usr", "/usr/bin", "/usr/bin/ls"},
		sums: map[string]string{"/bin/cat": "cat v1", "/usr/bin/ls": "ls v1"}})
	// dash diverts /usr/bin/sh: bash's /usr/bin/sh goes to /usr/bin/sh.distrib.
	s.file("usr/bin/sh", "dash's sh")
	s.file("usr/bin/sh.distrib", "bash's sh")
	s.add(pkg{name: "dash", list: []string{"/usr/bin/sh"}, sums: map[string]string{"/usr/bin/sh": "dash's sh"}})
	s.add(pkg{name: "bash", list: []string{"/usr/bin/sh"}, sums: map[string]string{"/usr/bin/sh": "bash's sh"}})
	// A local diversion moves every package's copy.
	s.file("usr/bin/tool.orig", "tool")
	s.add(pkg{name: "tools", list: []string{"/usr/bin/tool"}, sums: map[string]string{"/usr/bin/tool": "tool"}})
	// new replaced old's /usr/bin/shared: old's md5sums still lists it, its .list no longer.
	s.file("usr/bin/shared", "new shared")
	s.add(pkg{name: "old", list: []string{"/usr/bin"}, sums: map[string]string{"/usr/bin/shared": "old shared"}})
	s.add(pkg{name: "new", list: []string{"/usr/bin/shared"}, sums: map[string]string{"/usr/bin/shared": "new shared"}})
	// cron's conffiles: one as shipped, one edited, one obsolete; a conffile that is also in
	// md5sums counts once, as a conffile.
	s.file("etc/cron.daily", "as shipped")
	s.file("etc/crontab", "edited by the admin")
	s.add(pkg{name: "cron", list: []string{"/etc/cron.daily", "/etc/crontab", "/etc/old"},
		sums:      map[string]string{"/etc/cron.daily": "as shipped"},
		conffiles: map[string]string{"/etc/cron.daily": "as shipped", "/etc/crontab": "as shipped", "/etc/old": "OBSOLETE"}})
	// Multi-arch: info files named libfoo:amd64; a path with a space and an escaped md5sums line.
	s.file("usr/lib/libfoo.so.1", "foo")
	s.file("usr/lib/with space", "spaced")
	s.file("usr/lib/back\\slash", "bs")
	s.add(pkg{name: "libfoo:amd64", list: []string{"/lib/libfoo.so.1", "/usr/lib/with space", "/usr/lib/back\\slash"},
		sums:      map[string]string{"/lib/libfoo.so.1": "foo", "/usr/lib/with space": "spaced"},
		extraSums: []string{"\\" + md5hex("bs") + "  usr/lib/back\\\\slash", "not a line", ""}})
	// Removed (config-files), half-installed, without md5sums, and not in status at all.
	s.file("usr/bin/gone", "gone")
	s.add(pkg{name: "removed", state: "config-files", list: []string{"/usr/bin/gone"}, sums: map[string]string{"/usr/bin/gone": "gone"}})
	s.add(pkg{name: "broken", state: "half-installed", list: []string{"/usr/bin/gone"}, sums: map[string]string{"/usr/bin/gone": "gone"}})
	s.add(pkg{name: "nosums", list: []string{"/usr/bin/gone"}, noSums: true})
	must(t, os.WriteFile(filepath.Join(s.dpkg, "info", "ghost.list"), []byte("/usr/bin/gone\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(s.dpkg, "info", "ghost.md5sums"), []byte(md5hex("gone")+"  usr/bin/gone\n"), 0o644))

	db := s.load("/usr/bin/sh\n/usr/bin/sh.distrib\ndash\n/usr/bin/tool\n/usr/bin/tool.orig\n:\n")
	v := NewVerifier(VerifierConfig{Settle: testSettle})
	tests := []struct {
		path   string
		status Status
		source string
	}{
		{"/usr/bin/cat", Trusted, "dpkg:coreutils"}, // listed as /bin/cat
		{"/usr/bin/ls", Trusted, "dpkg:coreutils"},
		{"/usr/bin/sh", Trusted, "dpkg:dash"},         // the diverting package keeps the name
		{"/usr/bin/sh.distrib", Trusted, "dpkg:bash"}, // the diverted copy
		{"/usr/bin/tool.orig", Trusted, "dpkg:tools"}, // a local diversion
		{"/usr/bin/shared", Trusted, "dpkg:new"},
		{"/etc/cron.daily", Trusted, "dpkg:cron (conffile)"},
		{"/etc/crontab", Modified, "dpkg:cron (conffile)"},
		{"/usr/lib/libfoo.so.1", Trusted, "dpkg:libfoo:amd64"},
		{"/usr/lib/with space", Trusted, "dpkg:libfoo:amd64"},
		{"/usr/lib/back\\slash", Trusted, "dpkg:libfoo:amd64"},
		{"/usr/bin/gone", NotListed, "none"}, // only packages that are not installed list it
	}
	for _, tt := range tests {
		res, err := s.verifyPath(v, db, tt.path)
		if err != nil || res.Status != tt.status || res.Entry.Source.String() != tt.source {
			t.Errorf("%s: %v (%v), want %v from %s", tt.path, res, err, tt.status, tt.source)
		}
	}
	// The non-canonical names dpkg uses are not indexed: the kernel never reports them.
	for _, p := range []string{"/bin/cat", "/lib/libfoo.so.1", "/usr/bin/tool", "/etc/old"} {
		if e := db.Lookup(p, nil); len(e) != 0 {
			t.Errorf("%s has entries %v", p, e)
		}
	}
	if e := db.Lookup("/usr/bin/shared", nil); len(e) != 1 {
		t.Errorf("/usr/bin/shared: %v, want new's entry only", e)
	}
	st := db.Stats().Packages
	want := PackageStats{Packages: 9, Files: 9, Conffiles: 2, WithoutChecksums: 1, NotInstalled: 3, NotListed: 1, Diverted: 2, Aliased: 2}
	st.InfoBytes, st.IndexBytes = 0, 0
	if st != want {
		t.Errorf("stats %+v\nwant  %+v", st, want)
	}
	n := 0
	db.Each(func(e Entry) bool {
		n++
		if e.Size != -1 || e.Digest.Algo != MD5 || e.Source.Kind != FromPackage || !strings.HasPrefix(e.Path, "/") {
			t.Errorf("entry %v", e)
		}
		return true
	})
	if n != db.Len() || n != want.Files+want.Conffiles {
		t.Errorf("Each gave %d entries, Len %d", n, db.Len())
	}
}

func TestDpkgErrors(t *testing.T) {
	s := newFakeSystem(t)
	s.add(pkg{name: "a", list: []string{"/usr/bin/a"}, sums: map[string]string{"/usr/bin/a": "a"}})
	must(t, os.WriteFile(filepath.Join(s.dpkg, "status"), []byte(s.status.String()), 0o644))
	must(t, os.WriteFile(filepath.Join(s.dpkg, "diversions"), []byte("/a\n/b\n"), 0o644))
	if _, err := Load(Config{Packages: true, DpkgDir: s.dpkg, Root: s.root}); err == nil || !strings.Contains(err.Error(), "not three per diversion") {
		t.Fatalf("bad diversions: %v", err)
	}
	if _, err := Load(Config{Packages: true, DpkgDir: filepath.Join(s.root, "nowhere")}); err == nil || !strings.Contains(err.Error(), "package database") {
		t.Fatalf("missing database: %v", err)
	}
}

// FuzzDpkgLines: the md5sums and Conffiles line parsers never panic, and what they accept is
// well formed.
func FuzzDpkgLines(f *testing.F) {
	f.Add(md5hex("x") + "  usr/bin/x")
	f.Add("\\" + md5hex("x") + "  usr/bin/a\\\\b\\nc")
	f.Add(" /etc/cron.daily/x " + md5hex("x") + " obsolete")
	f.Add(" /etc/my conf " + md5hex("x") + " remove-on-upgrade")
	f.Fuzz(func(t *testing.T, line string) {
		if sum, p, ok := parseSumsLine([]byte(line)); ok {
			if len(p) == 0 || p[0] == '/' || hex.EncodeToString(sum[:]) != strings.ToLower(strings.TrimPrefix(line, "\\")[:32]) {
				t.Fatalf("%q -> %x %q", line, sum, p)
			}
		}
		if c, ok := parseConffile(line); ok {
			if !strings.HasPrefix(c.path, "/") || !strings.Contains(line, hex.EncodeToString(c.md5[:])) && !strings.Contains(strings.ToLower(line), hex.EncodeToString(c.md5[:])) {
				t.Fatalf("%q -> %+v", line, c)
			}
		}
	})
}
