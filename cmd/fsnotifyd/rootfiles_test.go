//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestServeRefusesConfigOthersCanWrite: serve --config (who may mark mounts, receive
// permission events and files) and --export-config (what root's daemon marks and sends out)
// are held to the trust files' rule: a file owned by another user, or in a directory another
// user may write, is refused before anything starts, with the flag, the file, what is wrong
// and the fix; before, root's daemon read such a file, so its owner granted themselves
// allow_uid.
func TestServeRefusesConfigOthersCanWrite(t *testing.T) {
	testenv.RequireRoot(t)
	for _, flag := range []struct {
		args    []string // before the file
		what    string
		content string // a file that would be accepted
	}{
		{[]string{"--config"}, "daemon config file", "allow_uid 65534\n"},
		{[]string{"--export", "nats://127.0.0.1:1", "--export-config"}, "export config file", "export open /etc/**\n"},
	} {
		for _, tt := range []struct {
			name  string
			setup func(dir, conf string) error
			msg   string // after "FLAG: WHAT CONF: "
			fix   string
		}{
			{"owned by nobody", func(dir, conf string) error { return os.Chown(conf, 65534, 65534) },
				"owned by uid 65534", "chown root CONF"},
			{"group-writable", func(dir, conf string) error { return os.Chmod(conf, 0o664) },
				"writable by its group (mode 0664)", "chmod go-w CONF"},
			{"directory owned by nobody", func(dir, conf string) error { return os.Chown(dir, 65534, 65534) },
				"its directory DIR: owned by uid 65534", "chown root DIR"},
		} {
			t.Run(flag.what+"/"+tt.name, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "etc")
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				conf := filepath.Join(dir, "fsnotifyd.conf")
				if err := os.WriteFile(conf, []byte(flag.content), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := tt.setup(dir, conf); err != nil {
					t.Fatal(err)
				}
				r := strings.NewReplacer("DIR", dir, "CONF", conf)
				flagName := flag.args[len(flag.args)-1]
				want := flagName + ": " + flag.what + " " + conf + ": " + r.Replace(tt.msg)
				args := append([]string{"serve", "--socket", filepath.Join(t.TempDir(), "s.sock")}, flag.args...)
				_, errOut, st, timedOut := fsnWithin(t, 5*time.Second, append(args, conf)...)
				if timedOut || st == 0 || !strings.Contains(errOut, want) || !strings.Contains(errOut, r.Replace(tt.fix)) {
					t.Errorf("exit %d (still serving at 5s: %v), stderr %q; want a refusal with %q and %q", st, timedOut, errOut, want, r.Replace(tt.fix))
				}
			})
		}
	}
}

// TestServeRefusesSocketDirectoryOthersCanWrite: serve refuses a --socket in a directory
// another user owns or may write (without the sticky bit): there they could rename root's
// socket away and put theirs in its place, for clients to talk to, or a link in the socket's
// place between bind and root's chmod of it (followed: chmod 0666 of /etc/shadow). The
// refusal names the directory, what is wrong and the fix; a sticky directory (/tmp) is fine.
func TestServeRefusesSocketDirectoryOthersCanWrite(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tt := range []struct {
		name  string
		setup func(dir string) error
		msg   string // after "daemon socket SOCK: its directory DIR: "
		fix   string
	}{
		{"owned by nobody", func(dir string) error { return os.Chown(dir, 65534, 65534) },
			"owned by uid 65534", "chown root DIR"},
		{"world-writable", func(dir string) error { return os.Chmod(dir, 0o777) },
			"writable by others (mode 0777)", "chmod go-w DIR"},
		{"parent group-writable", func(dir string) error { return os.Chmod(filepath.Dir(dir), 0o775) },
			"writable by its group (mode 0775)", "chmod go-w DIR"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(testenv.PublicDir(t), "run")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := tt.setup(dir); err != nil {
				t.Fatal(err)
			}
			bad := dir
			if strings.HasPrefix(tt.name, "parent") {
				bad = filepath.Dir(dir)
			}
			sock := filepath.Join(dir, "d.sock")
			r := strings.NewReplacer("DIR", bad)
			want := "daemon socket " + sock + ": its directory " + bad + ": " + tt.msg
			_, errOut, st, timedOut := fsnWithin(t, 5*time.Second, "serve", "--socket", sock)
			if timedOut || st == 0 || !strings.Contains(errOut, want) || !strings.Contains(errOut, r.Replace(tt.fix)) {
				t.Errorf("exit %d (still serving at 5s: %v), stderr %q; want a refusal with %q and %q", st, timedOut, errOut, want, r.Replace(tt.fix))
			}
		})
	}
	t.Run("sticky", func(t *testing.T) {
		dir := filepath.Join(testenv.PublicDir(t), "tmp")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
			t.Fatal(err)
		}
		startServeIn(t, dir) // fails the test if serve does not answer
	})
}

// TestTrustAddRefusesAnotherUsersLink: `trust add --file F` run by root, where F is another
// user's symbolic link (in a sticky directory such as /tmp, where they could make it first),
// is refused as the guard refuses to read through such a link, and the file the link points
// at is left as it was; before, root followed the link and rewrote a file of the user's
// choosing (any root file that parses as a trust file: an empty one, another trust file).
func TestTrustAddRefusesAnotherUsersLink(t *testing.T) {
	testenv.RequireRoot(t)
	shared := filepath.Join(testenv.PublicDir(t), "tmp")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(shared, "app.trust")
	if out, err := testenv.Sh(testenv.Nobody, "ln -s "+victim+" "+link); err != nil {
		t.Fatalf("nobody's ln -s: %v %s", err, out)
	}
	tool := filepath.Join(t.TempDir(), "tool")
	writeFile(t, tool, "#!/bin/sh\n")
	_, errOut, st := fsn(t, "trust", "add", "--file", link, tool)
	want := "the symbolic link " + link + " on its path is not owned by root"
	if st == 0 || !strings.Contains(errOut, want) {
		t.Errorf("trust add --file %s (nobody's link to %s): exit %d, stderr %q; want a refusal with %q", link, victim, st, errOut, want)
	}
	if data, err := os.ReadFile(victim); err != nil || len(data) != 0 {
		t.Errorf("%s, the link's target: %q %v; want it empty, as it was", victim, data, err)
	}
}

// TestGuardRefusesScannerOthersCanChange: guard --exec PROGRAM refuses, as a usage error
// naming --exec, the scanner, what is wrong and the fix, a program that another user could
// replace or change — its owner, its mode, its directory's — as sshd refuses such an
// AuthorizedKeysCommand: the scanner runs as the guard's user, exempt from the guard, at the
// first access no rule decides. Before, root's guard ran nobody's program.
func TestGuardRefusesScannerOthersCanChange(t *testing.T) {
	testenv.RequireRoot(t)
	mnt := testenv.Tmpfs(t)
	for _, tt := range []struct {
		name  string
		setup func(dir, scanner string) error
		msg   string // after "--exec: scanner SCANNER: "
		fix   string
	}{
		{"owned by nobody", func(dir, scanner string) error { return os.Chown(scanner, 65534, 65534) },
			"owned by uid 65534", "chown root SCANNER"},
		{"world-writable", func(dir, scanner string) error { return os.Chmod(scanner, 0o777) },
			"writable by others (mode 0777)", "chmod go-w SCANNER"},
		{"directory owned by nobody", func(dir, scanner string) error { return os.Chown(dir, 65534, 65534) },
			"its directory DIR: owned by uid 65534", "chown root DIR"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "bin")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			scanner := filepath.Join(dir, "scan")
			if err := os.WriteFile(scanner, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := tt.setup(dir, scanner); err != nil {
				t.Fatal(err)
			}
			r := strings.NewReplacer("DIR", dir, "SCANNER", scanner)
			want := "--exec: scanner " + scanner + ": " + r.Replace(tt.msg)
			_, errOut, st, timedOut := fsnWithin(t, 10*time.Second, "guard", "--exec", scanner, mnt)
			if timedOut || st != exitUsage || !strings.Contains(errOut, want) || !strings.Contains(errOut, r.Replace(tt.fix)) {
				t.Errorf("exit %d (still guarding at 10s: %v), stderr %q; want exit 2 with %q and %q", st, timedOut, errOut, want, r.Replace(tt.fix))
			}
		})
	}
}
