package trust

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

const hexA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" // sha256("test")

func TestParseFile(t *testing.T) {
	in := "\ufeff# local tools\n" +
		"/usr/local/bin/tool 4 " + hexA + "\r\n" +
		"\n" +
		"   /opt/my\\ app/run\\ me  12 " + strings.ToUpper(hexA) + "   # trailing comment\n" +
		"\t/opt/odd\\\\name\\tx\\nnl\\x01\\xff 0 " + hexA + "\n" +
		"/opt/caf\u00e9#not-a-comment 1 " + hexA
	entries, err := ParseFile("t.trust", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		path string
		size int64
		line int
	}{
		{"/usr/local/bin/tool", 4, 2},
		{"/opt/my app/run me", 12, 4},
		{"/opt/odd\\name\tx\nnl\x01\xff", 0, 5},
		{"/opt/caf\u00e9#not-a-comment", 1, 6},
	}
	if len(entries) != len(want) {
		t.Fatalf("%d entries, want %d: %v", len(entries), len(want), entries)
	}
	for i, w := range want {
		e := entries[i]
		if e.Path != w.path || e.Size != w.size || e.Source.File != "t.trust" || e.Source.Line != w.line ||
			e.Source.Kind != FromFile || e.Digest.Algo != SHA256 || e.Digest.Hex() != hexA {
			t.Errorf("entry %d: %+v, want %q size %d line %d", i, e, w.path, w.size, w.line)
		}
	}
	deep := strings.Repeat("/d", 2047) // 4094 bytes: the deepest a path can be
	if e, err := ParseFile("deep", strings.NewReader(deep+" 1 "+hexA)); err != nil || len(e) != 1 || e[0].Path != deep {
		t.Errorf("a 4094-byte path: %v", err)
	}
	if s := entries[1].Source.String(); s != "t.trust:4" {
		t.Errorf("source %q", s)
	}
}

func TestParseFileErrors(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"/a 1", "t.trust:1:5: want PATH SIZE SHA256, got 2 word(s)"},
		{"/a 1 " + hexA + " extra", "t.trust:1:71: unexpected \"extra\" after the SHA256"},
		{"/a b " + hexA, "t.trust:1:4: size \"b\" is not a number of bytes"},
		{"/a -1 " + hexA, "t.trust:1:4: size \"-1\" is not a number"},
		{"/a +1 " + hexA, "t.trust:1:4: size \"+1\" is not a number"},
		{"/a 1 abc", "t.trust:1:6: sha256 \"abc\" has 3 characters, want 64 hex digits"},
		{"/a 1 " + strings.Repeat("g", 64), "t.trust:1:6: sha256 \"ggg"},
		{"rel/path 1 " + hexA, "t.trust:1:1: path \"rel/path\" is not absolute"},
		{"/a/../b 1 " + hexA, "t.trust:1:1: path \"/a/../b\" is not canonical (write /b)"},
		{"/a/ 1 " + hexA, "t.trust:1:1: path \"/a/\" is not canonical (write /a)"},
		{"/ 1 " + hexA, "t.trust:1:1: path / is a directory"},
		{"\n  /a\\q 1 " + hexA, "t.trust:2:5: unknown escape \\q"},
		{"/a\\x4z 1 " + hexA, "t.trust:1:3: \\x4z is not two hex digits"},
		{"/a\\x4 1 " + hexA, "t.trust:1:3: \\x wants two hex digits"},
		{"/ab\\x 1 " + hexA, "t.trust:1:4: \\x wants two hex digits"},
		{"/a\\x00 1 " + hexA, "t.trust:1:1: a path cannot contain a NUL byte"},
		{"/a\\", "t.trust:1:4: want PATH SIZE SHA256, got 1 word(s)"},
		{"/a\\ 1 " + hexA, "t.trust:1:71: want PATH SIZE SHA256, got 2 word(s)"},
		{"/x 1 " + hexA + "\n/y 1 " + hexA + "\n/x 2 " + hexA, "t.trust:3:1: /x is already listed on line 1"},
		{strings.Repeat("/a", 40000) + " 1 " + hexA, "t.trust:1:1: line longer than 65536 bytes"},
		{strings.Repeat("/abcd", 820) + " 1 " + hexA, "t.trust:1:1: path is 4100 bytes, longer than PATH_MAX"},
	}
	for _, tt := range tests {
		_, err := ParseFile("t.trust", strings.NewReader(tt.in))
		var pe *ParseError
		if !errors.As(err, &pe) || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%.40q: %v, want %q...", tt.in, err, tt.want)
		}
	}
}

func TestEscapePath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/usr/bin/ls", "/usr/bin/ls"},
		{"/a b", `/a\ b`},
		{"/a\\b", `/a\\b`},
		{"/t\tn\nr\r", `/t\tn\nr\r`},
		{"/c\x01\x7f", `/c\x01\x7f`},
		{"/caf\u00e9", "/caf\u00e9"},
		{"/bad\xff\xfe", `/bad\xff\xfe`},
		{"/#hash", "/#hash"},
	}
	for _, tt := range tests {
		if got := EscapePath(tt.in); got != tt.want {
			t.Errorf("EscapePath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzTrustLine: FormatLine's output parses back to the same entry for every canonical path;
// no input makes ParseFile panic, and its errors carry a position.
func FuzzTrustLine(f *testing.F) {
	for _, s := range []string{"/usr/bin/ls", "/a b/c\td", "/x\\y", "/\xff\x00", "/caf\u00e9", "/#", "//x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		sum := sha256.Sum256([]byte(p))
		line := FormatLine(p, int64(len(p)), sum)
		if strings.ContainsAny(line, "\n\r") {
			t.Fatalf("line %q has a line break", line)
		}
		entries, err := ParseFile("f", strings.NewReader(line))
		if checkPath(p) != "" {
			if err == nil && len(entries) > 0 {
				t.Fatalf("path %q is not canonical but parsed: %v", p, entries)
			}
			return
		}
		if err != nil || len(entries) != 1 || entries[0].Path != p || entries[0].Size != int64(len(p)) || entries[0].Digest.Sum != sum {
			t.Fatalf("%q -> %q -> %v, %v", p, line, entries, err)
		}
		if utf8.ValidString(p) != utf8.ValidString(line) && utf8.ValidString(p) {
			t.Fatalf("escaping made %q invalid UTF-8: %q", p, line)
		}
		// Anything at all: no panic, and a positioned error.
		if _, err := ParseFile("f", strings.NewReader(p)); err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line < 1 || pe.Col < 1 {
				t.Fatalf("error without a position: %v", err)
			}
		}
	})
}

func TestCheckOwner(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "x.trust")
	if err := os.WriteFile(name, []byte("/a 1 "+hexA+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(name); err != nil {
		t.Fatalf("a 0644 file in a private directory: %v", err)
	}
	os.Chmod(name, 0o666)
	if _, err := ReadFile(name); err == nil || !strings.Contains(err.Error(), "writable by others (mode 0666)") ||
		!strings.Contains(err.Error(), "chmod go-w "+name) {
		t.Fatalf("a 0666 trust file: %v", err)
	}
	os.Chmod(name, 0o664)
	if _, err := ReadFile(name); err == nil || !strings.Contains(err.Error(), "writable by its group") {
		t.Fatalf("a 0664 trust file: %v", err)
	}
	os.Chmod(name, 0o644)
	os.Chmod(dir, 0o777)
	if _, err := ReadFile(name); err == nil || !strings.Contains(err.Error(), "its directory "+dir) {
		t.Fatalf("a trust file in a 0777 directory: %v", err)
	}
	os.Chmod(dir, 0o777|os.ModeSticky)
	if _, err := ReadFile(name); err != nil {
		t.Fatalf("a trust file in a sticky 1777 directory: %v", err)
	}
	os.Chmod(dir, 0o755)
	if os.Geteuid() == 0 {
		os.Chown(name, 65534, 65534)
		if _, err := ReadFile(name); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Fatalf("a trust file owned by nobody: %v", err)
		}
		os.Chown(name, 0, 0)
	}
	fifo := filepath.Join(dir, "fifo.trust")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	// Opening a FIFO for reading would wait for a writer: DirFiles skips it, and Load names
	// only what it lists.
	files, err := DirFiles(dir)
	if err != nil || len(files) != 1 || files[0] != name {
		t.Fatalf("DirFiles: %v, %v", files, err)
	}
}

func TestDirFiles(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"b.trust", "a.trust", ".hidden.trust", "c.trust~", "notes.txt"} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o644)
	}
	os.Mkdir(filepath.Join(dir, "d.trust"), 0o755)
	files, err := DirFiles(dir)
	if err != nil || strings.Join(files, ",") != filepath.Join(dir, "a.trust")+","+filepath.Join(dir, "b.trust") {
		t.Fatalf("DirFiles: %v, %v", files, err)
	}
	if files, err := DirFiles(filepath.Join(dir, "missing")); err != nil || files != nil {
		t.Fatalf("missing dir: %v, %v", files, err)
	}
}

func TestUpdateFile(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "new", "local.trust")
	sum := func(s string) [32]byte { return sha256.Sum256([]byte(s)) }
	lines, replaced, err := UpdateFile(name, []NewEntry{{"/opt/a", 1, sum("a")}, {"/opt/b c", 2, sum("b")}})
	if err != nil || len(lines) != 2 || lines[0] != 1 || lines[1] != 2 || replaced[0] || replaced[1] {
		t.Fatalf("create: %v %v %v", lines, replaced, err)
	}
	if fi, err := os.Stat(name); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("new file: %v %v", fi, err)
	}
	// A comment and a CRLF line stay; /opt/a is replaced in place, /opt/d appended.
	data, _ := os.ReadFile(name)
	must(t, os.WriteFile(name, append([]byte("# keep me\r\n"), data...), 0o600))
	must(t, os.Chmod(name, 0o600))
	lines, replaced, err = UpdateFile(name, []NewEntry{{"/opt/a", 10, sum("a2")}, {"/opt/d", 4, sum("d")}})
	if err != nil || lines[0] != 2 || !replaced[0] || lines[1] != 4 || replaced[1] {
		t.Fatalf("update: %v %v %v", lines, replaced, err)
	}
	entries, err := ReadFile(name)
	if err != nil || len(entries) != 3 || entries[0].Path != "/opt/a" || entries[0].Size != 10 ||
		entries[0].Digest.Sum != sum("a2") || entries[1].Path != "/opt/b c" || entries[2].Path != "/opt/d" {
		t.Fatalf("after the update: %v %v", entries, err)
	}
	if data, _ := os.ReadFile(name); !strings.HasPrefix(string(data), "# keep me\r\n") {
		t.Fatalf("the comment went: %q", data)
	}
	if fi, _ := os.Stat(name); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want the file's 0600 kept", fi.Mode())
	}
	// A broken file is not rewritten.
	must(t, os.WriteFile(name, []byte("/x 1 nothex\n"), 0o644))
	if _, _, err := UpdateFile(name, []NewEntry{{"/opt/e", 1, sum("e")}}); err == nil || !strings.Contains(err.Error(), "local.trust:1:6") {
		t.Fatalf("broken file: %v", err)
	}
	if data, _ := os.ReadFile(name); string(data) != "/x 1 nothex\n" {
		t.Fatalf("a broken file was rewritten: %q", data)
	}
	// Nor one that others may write.
	must(t, os.WriteFile(name, nil, 0o644))
	os.Chmod(name, 0o666)
	if _, _, err := UpdateFile(name, []NewEntry{{"/opt/e", 1, sum("e")}}); err == nil || !strings.Contains(err.Error(), "writable by others") {
		t.Fatalf("0666 file: %v", err)
	}
	os.Chmod(name, 0o644)
	if _, _, err := UpdateFile(name, []NewEntry{{"relative", 1, sum("e")}}); err == nil || !strings.Contains(err.Error(), "not absolute") {
		t.Fatalf("relative path: %v", err)
	}
	if des, _ := os.ReadDir(filepath.Dir(name)); len(des) != 1 {
		t.Fatalf("temporary files left: %v", des)
	}
}

// TestUpdateFileConcurrent: updates at once lose no line (the directory's flock).
func TestUpdateFileConcurrent(t *testing.T) {
	name := filepath.Join(t.TempDir(), "c.trust")
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				p := fmt.Sprintf("/opt/g%d/f%d", g, i)
				if _, _, err := UpdateFile(name, []NewEntry{{p, 1, sha256.Sum256([]byte(p))}}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	entries, err := ReadFile(name)
	if err != nil || len(entries) != 80 {
		t.Fatalf("%d entries, want 80: %v", len(entries), err)
	}
}

// within runs f, failing the test if it has not returned within 10s (a FIFO opened for
// reading waits for a writer: f would never return).
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: still waiting after 10s", what)
	}
}

// TestTrustFileFIFO: a FIFO named as a trust file is refused at once, as not a regular file,
// by ReadFile, Load and UpdateFile (which writes nothing), instead of waiting for a writer.
func TestTrustFileFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.trust")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	want := "trust file " + fifo + " is not a regular file (a FIFO)"
	within(t, "ReadFile", func() {
		if _, err := ReadFile(fifo); err == nil || err.Error() != want {
			t.Errorf("ReadFile: %v, want %q", err, want)
		}
	})
	within(t, "Load", func() {
		_, err := Load(Config{Files: []string{fifo}})
		var fe *FileError
		if !errors.As(err, &fe) || fe.File != fifo || fe.InDir || err.Error() != want {
			t.Errorf("Load: %#v, want a FileError for %s, not InDir, saying %q", err, fifo, want)
		}
	})
	within(t, "UpdateFile", func() {
		if _, _, err := UpdateFile(fifo, []NewEntry{{"/opt/a", 1, sha256.Sum256([]byte("a"))}}); err == nil || err.Error() != want {
			t.Errorf("UpdateFile: %v, want %q", err, want)
		}
	})
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("UpdateFile replaced the FIFO: %v %v", fi, err)
	}
}

// TestLoadFileError: Load's error about a trust file says whether Config.Files or Config.Dir
// named it (a guard names --trust or --trust-dir), with the file's own error as its text.
func TestLoadFileError(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.trust")
	if err := os.WriteFile(bad, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(bad, 0o666)
	for _, tt := range []struct {
		cfg   Config
		inDir bool
	}{
		{Config{Files: []string{bad}}, false},
		{Config{Dir: dir}, true},
	} {
		_, err := Load(tt.cfg)
		var fe *FileError
		var oe *OwnerError
		if !errors.As(err, &fe) || fe.File != bad || fe.InDir != tt.inDir || !errors.As(err, &oe) ||
			!strings.HasPrefix(err.Error(), "trust file "+bad+": writable by others (mode 0666)") {
			t.Errorf("%+v: %#v, want a FileError for %s (InDir %v) wrapping an OwnerError", tt.cfg, err, bad, tt.inDir)
		}
	}
	_, err := Load(Config{Files: []string{filepath.Join(dir, "missing.trust")}})
	var fe *FileError
	if !errors.As(err, &fe) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %#v, want a FileError wrapping ErrNotExist", err)
	}
}
