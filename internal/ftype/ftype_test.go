package ftype

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// elfFile builds an ELF file: class 1 or 2, byte order, e_type, program headers (type, and
// for PT_DYNAMIC the dynamic entries, placed after the headers).
type elfSpec struct {
	class     byte
	bo        binary.ByteOrder
	etype     uint16
	interp    bool
	dyn       [][2]uint64 // (tag, value); a DT_NULL is appended
	phentsize int         // 0: the ABI's
	truncate  int         // cut the file to this many bytes (0: no cut)
}

func (s elfSpec) bytes() []byte {
	is64 := s.class == 2
	ehsize, phent := 52, 32
	if is64 {
		ehsize, phent = 64, 56
	}
	if s.phentsize == 0 {
		s.phentsize = phent
	}
	var phdrs [][3]uint64 // type, offset, size
	if s.interp {
		phdrs = append(phdrs, [3]uint64{ptInterp, 0, 0})
	}
	nph := len(phdrs)
	if s.dyn != nil {
		nph++
	}
	dynOff := uint64(ehsize + nph*s.phentsize)
	ent := 8
	if is64 {
		ent = 16
	}
	dynSize := uint64((len(s.dyn) + 1) * ent)
	if s.dyn != nil {
		phdrs = append(phdrs, [3]uint64{ptDynamic, dynOff, dynSize})
	}
	b := make([]byte, int(dynOff)+int(dynSize))
	copy(b, "\x7fELF")
	b[4] = s.class
	if s.bo == binary.BigEndian {
		b[5] = elfData2MSB
	} else {
		b[5] = elfData2LSB
	}
	b[6] = 1
	s.bo.PutUint16(b[16:], s.etype)
	if is64 {
		s.bo.PutUint64(b[32:], uint64(ehsize))
		s.bo.PutUint16(b[54:], uint16(s.phentsize))
		s.bo.PutUint16(b[56:], uint16(len(phdrs)))
	} else {
		s.bo.PutUint32(b[28:], uint32(ehsize))
		s.bo.PutUint16(b[42:], uint16(s.phentsize))
		s.bo.PutUint16(b[44:], uint16(len(phdrs)))
	}
	for i, ph := range phdrs {
		p := b[ehsize+i*s.phentsize:]
		s.bo.PutUint32(p, uint32(ph[0]))
		if is64 {
			s.bo.PutUint64(p[8:], ph[1])
			s.bo.PutUint64(p[32:], ph[2])
		} else {
			s.bo.PutUint32(p[4:], uint32(ph[1]))
			s.bo.PutUint32(p[16:], uint32(ph[2]))
		}
	}
	for i, d := range s.dyn {
		p := b[int(dynOff)+i*ent:]
		if is64 {
			s.bo.PutUint64(p, d[0])
			s.bo.PutUint64(p[8:], d[1])
		} else {
			s.bo.PutUint32(p, uint32(d[0]))
			s.bo.PutUint32(p[4:], uint32(d[1]))
		}
	}
	if s.truncate > 0 && s.truncate < len(b) {
		b = b[:s.truncate]
	}
	return b
}

var le, be = binary.LittleEndian, binary.BigEndian

func TestDetect(t *testing.T) {
	pie := [][2]uint64{{dtFlags1, df1PIE | 1}}
	now := [][2]uint64{{dtFlags1, 1}} // DF_1_NOW only
	soname := [][2]uint64{{dtSoname, 1}}
	tests := []struct {
		name string
		data []byte
		want string
		path string // InterpPath, for scripts
	}{
		{"empty", nil, "empty", ""},
		{"text", []byte("hello, world\n\tindented\r\n"), "text", ""},
		{"utf-8 text", []byte("h\u00e9llo w\u00f6rld \u2713 \x1b[1mbold\x1b[0m\n"), "text", ""},
		{"text with a character cut at the read's end", append(bytes.Repeat([]byte("a"), headSize-1), "\u00e9"...), "text", ""},
		{"a cut character at the file's end", []byte("caf\xc3"), "data", ""},
		{"latin-1", []byte("caf\xe9 cr\xe8me\n"), "data", ""},
		{"nul", []byte("abc\x00def"), "data", ""},
		{"control character", []byte("abc\x01def"), "data", ""},
		{"DEL", []byte("abc\x7fdef"), "data", ""},
		{"gzip", []byte{0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0}, "data", ""},

		{"sh", []byte("#!/bin/sh\necho hi\n"), "script:sh", "/bin/sh"},
		{"sh -e", []byte("#!/bin/sh -e\n"), "script:sh", "/bin/sh"},
		{"spaces before the interpreter", []byte("#!  \t/usr/bin/python3.11  \n"), "script:python3.11", "/usr/bin/python3.11"},
		{"relative interpreter", []byte("#!python3\n"), "script:python3", "python3"},
		{"env", []byte("#!/usr/bin/env python3\nprint(1)\n"), "script:python3", "python3"},
		{"env with a path", []byte("#!/usr/bin/env /opt/py/bin/python3\n"), "script:python3", "/opt/py/bin/python3"},
		{"env -S", []byte("#!/usr/bin/env -S python3 -u\n"), "script:python3", "python3"},
		{"env -S glued", []byte("#!/usr/bin/env -Spython3 -u\n"), "script:python3", "python3"},
		{"env -S options and assignments", []byte("#!/usr/bin/env -S -i PYTHONPATH=/x -u HOME -C /tmp -uLANG --unset=LC_ALL -- perl -w\n"), "script:perl", "perl"},
		{"env --split-string=", []byte("#!/bin/env --split-string=ruby -w\n"), "script:ruby", "ruby"},
		{"env without -S, two words", []byte("#!/usr/bin/env python3 -u\n"), "script:env", "/usr/bin/env"},
		{"env alone", []byte("#!/usr/bin/env\n"), "script:env", "/usr/bin/env"},
		{"env unknown option", []byte("#!/usr/bin/env -S --frobnicate x python3\n"), "script:env", "/usr/bin/env"},
		{"env -S quoted", []byte("#!/usr/bin/env -S \"python3\" -u\n"), "script:env", "/usr/bin/env"},
		{"env assignment only", []byte("#!/usr/bin/env A=1\n"), "script:env", "/usr/bin/env"},
		{"no interpreter", []byte("#!\n"), "script", ""},
		{"root as interpreter", []byte("#!/\n"), "script", "/"},
		{"blank interpreter", []byte("#!  \t \nexit\n"), "script", ""},
		{"interpreter cut at 256 bytes", append([]byte("#!/"), bytes.Repeat([]byte("a"), 300)...), "script", ""},
		{"argument cut at 256 bytes", append([]byte("#!/bin/sh "), bytes.Repeat([]byte("a"), 300)...), "script:sh", "/bin/sh"},
		{"CRLF keeps the CR, as the kernel does", []byte("#!/bin/bash\r\n"), "script:bash\r", "/bin/bash\r"},
		{"NUL ends the line", []byte("#!/bin/sh\x00/bin/bash\n"), "script:sh", "/bin/sh"},
		{"#! not at the start", []byte(" #!/bin/sh\n"), "text", ""},

		{"ELF magic only", []byte("\x7fELF"), "elf-other", ""},
		{"ELF header cut", []byte("\x7fELF\x02\x01\x01" + strings.Repeat("\x00", 40)), "elf-other", ""},
		{"ET_EXEC 64", elfSpec{class: 2, bo: le, etype: etExec, interp: true}.bytes(), "elf-executable", ""},
		{"ET_EXEC 32 big-endian", elfSpec{class: 1, bo: be, etype: etExec}.bytes(), "elf-executable", ""},
		{"PIE: DF_1_PIE", elfSpec{class: 2, bo: le, etype: etDyn, interp: true, dyn: pie}.bytes(), "elf-executable", ""},
		{"static PIE: DF_1_PIE, no interpreter", elfSpec{class: 2, bo: le, etype: etDyn, dyn: pie}.bytes(), "elf-executable", ""},
		{"old PIE: interpreter, DF_1_NOW, no soname", elfSpec{class: 2, bo: le, etype: etDyn, interp: true, dyn: now}.bytes(), "elf-executable", ""},
		{"old PIE: interpreter, no dynamic section", elfSpec{class: 2, bo: le, etype: etDyn, interp: true}.bytes(), "elf-executable", ""},
		{"old PIE 32 big-endian", elfSpec{class: 1, bo: be, etype: etDyn, interp: true, dyn: now}.bytes(), "elf-executable", ""},
		{"library with interpreter and soname (libc.so.6)", elfSpec{class: 2, bo: le, etype: etDyn, interp: true, dyn: soname}.bytes(), "elf-shared-object", ""},
		{"library without interpreter", elfSpec{class: 2, bo: le, etype: etDyn, dyn: soname}.bytes(), "elf-shared-object", ""},
		{"library 32 big-endian", elfSpec{class: 1, bo: be, etype: etDyn, dyn: now}.bytes(), "elf-shared-object", ""},
		{"ET_DYN without program headers", elfSpec{class: 2, bo: le, etype: etDyn}.bytes(), "elf-other", ""},
		{"ET_DYN with a bad program header size", elfSpec{class: 2, bo: le, etype: etDyn, interp: true, phentsize: 48}.bytes(), "elf-other", ""},
		{"ET_DYN with program headers cut", elfSpec{class: 2, bo: le, etype: etDyn, interp: true, dyn: pie, truncate: 70}.bytes(), "elf-other", ""},
		{"ET_DYN with its dynamic section cut", elfSpec{class: 2, bo: le, etype: etDyn, interp: true, dyn: soname, truncate: 64 + 2*56 + 4}.bytes(), "elf-executable", ""},
		{"ET_REL", elfSpec{class: 2, bo: le, etype: 1}.bytes(), "elf-other", ""},
		{"ET_CORE", elfSpec{class: 2, bo: le, etype: 4}.bytes(), "elf-other", ""},
		{"bad class", elfSpec{class: 3, bo: le, etype: etExec}.bytes(), "elf-other", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &countingReader{data: tt.data}
			got, err := Detect(r)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.want || got.InterpPath != tt.path {
				t.Fatalf("Detect = %q (interpreter path %q), want %q (%q)", got, got.InterpPath, tt.want, tt.path)
			}
			if r.read > MaxRead {
				t.Fatalf("read %d bytes, more than MaxRead %d", r.read, MaxRead)
			}
		})
	}
}

// countingReader is a bytes.Reader's ReadAt that counts what it returns.
type countingReader struct {
	data []byte
	read int
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, io.ErrUnexpectedEOF
	}
	if off >= int64(len(c.data)) {
		return 0, io.EOF
	}
	n := copy(p, c.data[off:])
	c.read += n
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// TestFromFdRealFiles reads this machine's own binaries and scripts written here.
func TestFromFdRealFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		path, want string
	}{
		{"/bin/ls", "elf-executable"}, // a PIE (ET_DYN with DF_1_PIE)
		{"/bin/sh", "elf-executable"}, // a symlink to dash: the open follows it
		{write("py", "#!/usr/bin/env python3\nprint('hi')\n"), "script:python3"},
		{write("sh", "#!/bin/sh -e\necho hi\n"), "script:sh"},
		{write("txt", "just words\n"), "text"},
		{write("empty", ""), "empty"},
		{write("bin", "\x00\x01\x02\x03"), "data"},
	}
	if runtime.GOARCH == "amd64" {
		tests = append(tests,
			// libc.so.6 has a PT_INTERP, and a soname: a library.
			struct{ path, want string }{"/lib/x86_64-linux-gnu/libc.so.6", "elf-shared-object"},
			struct{ path, want string }{"/lib64/ld-linux-x86-64.so.2", "elf-shared-object"},
		)
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			f, err := os.Open(tt.path)
			if os.IsNotExist(err) {
				t.Skipf("%s is not on this machine", tt.path)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Seek(1, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			got, err := FromFd(int(f.Fd()))
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.want {
				t.Fatalf("%s: %q, want %q", tt.path, got, tt.want)
			}
			if off, _ := f.Seek(0, io.SeekCurrent); off != 1 {
				t.Fatalf("FromFd moved the file offset from 1 to %d", off)
			}
		})
	}
}

// TestGoBuiltBinaries classifies what Go's own linker writes: a static executable (ET_EXEC)
// and a PIE (ET_DYN with DF_1_PIE). -short skips the builds.
func TestGoBuiltBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries")
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module x\n\ngo 1.21\n"), 0o644)
	for _, tt := range []struct {
		name, want string
		args       []string
	}{
		{"static", "elf-executable", nil},
		{"pie", "elf-executable", []string{"-buildmode=pie"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, tt.name)
			cmd := exec.Command(goBin, append(append([]string{"build", "-o", out}, tt.args...), ".")...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go build %v: %v\n%s", tt.args, err, b)
			}
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := FromFd(int(f.Fd()))
			if err != nil || got.String() != tt.want {
				t.Fatalf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
			}
		})
	}
}

// TestFromFdErrors: a read error is returned, not taken for a type.
func TestFromFdErrors(t *testing.T) {
	if _, err := FromFd(-1); err == nil || !strings.Contains(err.Error(), "pread") {
		t.Fatalf("FromFd(-1): %v", err)
	}
	d, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := FromFd(int(d.Fd())); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("FromFd of a directory: %v", err)
	}
}

func TestKindNames(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range Kinds() {
		s := k.String()
		if s == "unknown" || seen[s] {
			t.Fatalf("kind %d: name %q", k, s)
		}
		seen[s] = true
	}
	if len(seen) != len(kindNames) {
		t.Fatalf("Kinds lists %d of %d kinds", len(seen), len(kindNames))
	}
}

// FuzzDetect: no input panics, loops or reads more than MaxRead; the result is a known kind,
// and only scripts name an interpreter.
func FuzzDetect(f *testing.F) {
	f.Add([]byte("#!/usr/bin/env -S python3 -u\n"))
	f.Add(elfSpec{class: 2, bo: le, etype: etDyn, interp: true, dyn: [][2]uint64{{dtFlags1, df1PIE}}}.bytes())
	f.Add(elfSpec{class: 1, bo: be, etype: etDyn, dyn: [][2]uint64{{dtSoname, 1}}}.bytes())
	f.Add([]byte("plain text\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &countingReader{data: data}
		got, err := Detect(r)
		if err != nil {
			t.Fatalf("error from an in-memory file: %v", err)
		}
		if r.read > MaxRead {
			t.Fatalf("read %d bytes, more than MaxRead %d", r.read, MaxRead)
		}
		if got.Kind.String() == "unknown" {
			t.Fatalf("unknown kind %d", got.Kind)
		}
		if got.Kind != Script && (got.Interp != "" || got.InterpPath != "") {
			t.Fatalf("%v names an interpreter %q", got.Kind, got.Interp)
		}
		if got.Kind == Script && strings.Contains(got.Interp, "/") {
			t.Fatalf("interpreter name %q has a slash", got.Interp)
		}
		if (len(data) == 0) != (got.Kind == Empty) {
			t.Fatalf("%d bytes: %v", len(data), got)
		}
		again, _ := Detect(&countingReader{data: data})
		if again != got {
			t.Fatalf("not deterministic: %v then %v", got, again)
		}
	})
}
