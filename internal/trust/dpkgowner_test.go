package trust

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPackageDatabaseOthersCanChangeIsRefused: the package database says what may run, as
// a trust file does, so a guard or `trust` given `--dpkg-dir DIR` refuses one that someone
// other than root could change — its directory, its info directory, its status file or a
// package's md5sums — naming the file and the fix, where before it trusted what that user
// wrote. A file owned by another user (a hard link they made before the directory was
// theirs, or a chown) is refused too, when running as root.
func TestPackageDatabaseOthersCanChangeIsRefused(t *testing.T) {
	cases := []struct {
		name   string
		root   bool                       // needs root (chown)
		change func(s *fakeSystem) string // makes the change, returns the path the error names
	}{
		{"database directory writable by others", false, func(s *fakeSystem) string {
			must(t, os.Chmod(s.dpkg, 0o777))
			return s.dpkg
		}},
		{"info directory writable by its group", false, func(s *fakeSystem) string {
			p := filepath.Join(s.dpkg, "info")
			must(t, os.Chmod(p, 0o775))
			return p
		}},
		{"status writable by others", false, func(s *fakeSystem) string {
			p := filepath.Join(s.dpkg, "status")
			must(t, os.Chmod(p, 0o666))
			return p
		}},
		{"md5sums writable by its group", false, func(s *fakeSystem) string {
			p := filepath.Join(s.dpkg, "info", "tool.md5sums")
			must(t, os.Chmod(p, 0o664))
			return p
		}},
		{"list owned by another user", true, func(s *fakeSystem) string {
			p := filepath.Join(s.dpkg, "info", "tool.list")
			must(t, os.Chown(p, 65534, 65534))
			return p
		}},
		{"database directory owned by another user", true, func(s *fakeSystem) string {
			must(t, os.Chown(s.dpkg, 65534, 65534))
			return s.dpkg
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.root && os.Geteuid() != 0 {
				t.Skip("chown needs root")
			}
			s := newFakeSystem(t)
			s.file("usr/bin/tool", "tool v1")
			s.add(pkg{name: "tool", list: []string{"/usr/bin/tool"}, sums: map[string]string{"/usr/bin/tool": "tool v1"}})
			s.load("") // sound as made: loads
			named := c.change(s)
			db, err := Load(Config{Packages: true, DpkgDir: s.dpkg, Root: s.root})
			var oe *OwnerError
			if !errors.As(err, &oe) {
				t.Fatalf("Load = %v; want an *OwnerError (db %t)", err, db != nil)
			}
			if msg := err.Error(); !strings.Contains(msg, named) || !strings.Contains(msg, "package database") ||
				!strings.Contains(msg, "chmod go-w") && !strings.Contains(msg, "chown root") {
				t.Fatalf("error %q does not name %s, the package database and the fix", msg, named)
			}
		})
	}
}

// FuzzDpkgStatus: the status file's stanza parser never panics, and what it keeps is well
// formed: a package by a non-empty name (and "name:arch"), conffiles by absolute paths, and
// "installed" only for a Status line whose third word says the files are on disk.
func FuzzDpkgStatus(f *testing.F) {
	f.Add("Package: a\nStatus: install ok installed\nArchitecture: amd64\nConffiles:\n /etc/a " + md5hex("a") + "\n\nPackage: b\nStatus: deinstall ok config-files\n")
	f.Add("Package: a\nPackage: b\nConffiles:\n\t/etc/x " + md5hex("x") + " obsolete\nStatus: install ok unpacked\n")
	f.Add("Conffiles:\n /etc/x " + md5hex("x") + "\nPackage:\n\n\n:\n")
	f.Fuzz(func(t *testing.T, status string) {
		name := filepath.Join(t.TempDir(), "status")
		must(t, os.WriteFile(name, []byte(status), 0o644))
		l := &dpkgLoader{euid: uint32(os.Geteuid())}
		db, err := l.readStatus(name)
		if err != nil {
			t.Fatal(err)
		}
		for pkg, st := range db {
			if pkg == "" {
				t.Fatalf("package named %q", pkg)
			}
			if st.installed && !strings.Contains(status, "Status:") {
				t.Fatalf("%q installed without a Status line", pkg)
			}
			for _, c := range st.conffiles {
				if !strings.HasPrefix(c.path, "/") {
					t.Fatalf("%q: conffile %q", pkg, c.path)
				}
			}
		}
	})
}
