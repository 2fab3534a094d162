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

// elfSpec builds an ELF file laid out as a linker would: the header, the program headers
// (a PT_LOAD mapping the whole file at address 0, so an address is its file offset; a
// PT_INTERP if asked; a PT_DYNAMIC for the dynamic entries if any; then extra), and the
// dynamic entries after them.
type elfSpec struct {
	class     byte
	bo        binary.ByteOrder
	etype     uint16
	interp    bool
	dyn       [][2]uint64 // (tag, value); a DT_NULL is appended
	extra     []phdr      // more program headers, after the others
	phentsize int         // 0: the ABI's
	truncate  int         // cut the file to this many bytes (0: no cut)
}

// phdr is a program header's type, file offset, address and sizes.
type phdr struct {
	typ                       uint32
	off, vaddr, filesz, memsz uint64
}

// Program header indexes in an elfSpec's file.
const (
	phLoad = 0 // the PT_LOAD
)

func (s elfSpec) bytes() []byte {
	is64 := s.class == 2
	ehsize, phent := 52, 32
	if is64 {
		ehsize, phent = 64, 56
	}
	if s.phentsize == 0 {
		s.phentsize = phent
	}
	phdrs := []phdr{{typ: ptLoad}}
	if s.interp {
		phdrs = append(phdrs, phdr{typ: ptInterp})
	}
	nph := len(phdrs) + len(s.extra)
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
		phdrs = append(phdrs, phdr{typ: ptDynamic, off: dynOff, vaddr: dynOff, filesz: dynSize, memsz: dynSize})
	}
	phdrs = append(phdrs, s.extra...)
	b := make([]byte, int(dynOff)+int(dynSize))
	phdrs[phLoad].filesz, phdrs[phLoad].memsz = uint64(len(b)), uint64(len(b))
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
		putPhdr(b[ehsize+i*s.phentsize:], is64, s.bo, ph)
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

func putPhdr(p []byte, is64 bool, bo binary.ByteOrder, ph phdr) {
	bo.PutUint32(p, ph.typ)
	if is64 {
		bo.PutUint64(p[8:], ph.off)
		bo.PutUint64(p[16:], ph.vaddr)
		bo.PutUint64(p[24:], ph.vaddr)
		bo.PutUint64(p[32:], ph.filesz)
		bo.PutUint64(p[40:], ph.memsz)
	} else {
		bo.PutUint32(p[4:], uint32(ph.off))
		bo.PutUint32(p[8:], uint32(ph.vaddr))
		bo.PutUint32(p[12:], uint32(ph.vaddr))
		bo.PutUint32(p[16:], uint32(ph.filesz))
		bo.PutUint32(p[20:], uint32(ph.memsz))
	}
}

// The following edit a 64-bit little-endian ELF file, as the crafted libraries do.

// phdrsOf returns the file offset of each program header of b.
func phdrsOf(b []byte) []int {
	off, n := int(le.Uint64(b[32:])), int(le.Uint16(b[56:]))
	at := make([]int, n)
	for i := range at {
		at[i] = off + i*56
	}
	return at
}

// findPhdr returns the file offset of the last program header of type typ (-1: none).
func findPhdr(b []byte, typ uint32) int {
	at := -1
	for _, p := range phdrsOf(b) {
		if le.Uint32(b[p:]) == typ {
			at = p
		}
	}
	return at
}

// appendDyn appends a dynamic table (a DT_NULL is appended to it) at an 8-byte boundary and
// returns the file and the table's offset.
func appendDyn(b []byte, dyn [][2]uint64) ([]byte, uint64) {
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	off := uint64(len(b))
	for _, d := range append(dyn, [2]uint64{dtNull, 0}) {
		b = le.AppendUint64(b, d[0])
		b = le.AppendUint64(b, d[1])
	}
	return b, off
}

// growLoad makes an elfSpec file's PT_LOAD map all of it.
func growLoad(b []byte) []byte {
	p := phdrsOf(b)[phLoad]
	le.PutUint64(b[p+32:], uint64(len(b)))
	le.PutUint64(b[p+40:], uint64(len(b)))
	return b
}

// manyPhdrs rewrites b's program header table at the end of the file with n entries, the
// others PT_NULL, and its PT_PHDR made PT_NULL too (the reviewer's library (c)).
func manyPhdrs(b []byte, n int) []byte {
	old := phdrsOf(b)
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	off := len(b)
	for _, p := range old {
		e := bytes.Clone(b[p : p+56])
		if le.Uint32(e) == ptPhdr {
			le.PutUint32(e, 0)
		}
		b = append(b, e...)
	}
	b = append(b, make([]byte, (n-len(old))*56)...)
	le.PutUint64(b[32:], uint64(off))
	le.PutUint16(b[56:], uint16(n))
	return b
}

var le, be = binary.LittleEndian, binary.BigEndian

const ptPhdr = 6

// edit returns f(b).
func edit(b []byte, f func([]byte) []byte) []byte { return f(b) }

// repeatDyn is n copies of a dynamic entry.
func repeatDyn(n int, d [2]uint64) [][2]uint64 {
	s := make([][2]uint64, n)
	for i := range s {
		s[i] = d
	}
	return s
}

func TestDetect(t *testing.T) {
	pie := [][2]uint64{{dtFlags1, df1PIE | 1}}
	now := [][2]uint64{{dtFlags1, 1}} // DF_1_NOW only
	soname := [][2]uint64{{dtSoname, 1}}
	pieSpec := elfSpec{class: 2, bo: le, etype: etDyn, interp: true, dyn: pie}
	libSpec := elfSpec{class: 2, bo: le, etype: etDyn, dyn: soname}
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
		{"ET_EXEC with 1200 program headers", manyPhdrs(elfSpec{class: 2, bo: le, etype: etExec, interp: true}.bytes(), 1200), "elf-executable", ""},
		{"PIE: DF_1_PIE", pieSpec.bytes(), "elf-executable", ""},
		{"static PIE: DF_1_PIE, no interpreter", elfSpec{class: 2, bo: le, etype: etDyn, dyn: pie}.bytes(), "elf-executable", ""},
		{"PIE 32 big-endian", elfSpec{class: 1, bo: be, etype: etDyn, interp: true, dyn: pie}.bytes(), "elf-executable", ""},
		{"PIE with another PT_LOAD 64 KiB away", elfSpec{class: 2, bo: le, etype: etDyn, interp: true, dyn: pie,
			extra: []phdr{{typ: ptLoad, off: 0x10000, vaddr: 0x10000, memsz: 0x2000}}}.bytes(), "elf-executable", ""},
		{"PIE: the last DT_FLAGS_1 has DF_1_PIE", elfSpec{class: 2, bo: le, etype: etDyn, dyn: [][2]uint64{{dtFlags1, 1}, {dtFlags1, df1PIE}}}.bytes(), "elf-executable", ""},
		{"PIE: DT_NULL within the 16 KiB read", elfSpec{class: 2, bo: le, etype: etDyn, dyn: repeatDyn(maxDynamic/16-1, [2]uint64{dtFlags1, df1PIE})}.bytes(), "elf-executable", ""},
		{"PIE: PT_DYNAMIC's p_vaddr at a DF_1_PIE table, p_offset at a plain one", edit(libSpec.bytes(), func(b []byte) []byte {
			b, t := appendDyn(b, pie)
			le.PutUint64(b[findPhdr(b, ptDynamic)+16:], t)
			return growLoad(b)
		}), "elf-executable", ""},
		{"PIE with 1170 program headers (65520 bytes)", manyPhdrs(pieSpec.bytes(), 1170), "elf-executable", ""},

		{"library", libSpec.bytes(), "elf-shared-object", ""},
		{"library with interpreter and soname (libc.so.6)", elfSpec{class: 2, bo: le, etype: etDyn, interp: true, dyn: soname}.bytes(), "elf-shared-object", ""},
		{"library 32 big-endian", elfSpec{class: 1, bo: be, etype: etDyn, dyn: now}.bytes(), "elf-shared-object", ""},
		// (a): glibc loads an ET_DYN without DF_1_PIE whatever its PT_INTERP and soname.
		{"(a) interpreter, DF_1_NOW, no soname (an old toolchain's PIE)", elfSpec{class: 2, bo: le, etype: etDyn, interp: true, dyn: now}.bytes(), "elf-shared-object", ""},
		{"(a) interpreter, no soname, 32 big-endian", elfSpec{class: 1, bo: be, etype: etDyn, interp: true, dyn: now}.bytes(), "elf-shared-object", ""},
		{"interpreter, no dynamic section", elfSpec{class: 2, bo: le, etype: etDyn, interp: true}.bytes(), "elf-shared-object", ""},
		// (b): the loader reads the last PT_DYNAMIC at its p_vaddr, up to DT_NULL, the last
		// DT_FLAGS_1 counting.
		{"(b) PT_DYNAMIC's p_offset at a fake DF_1_PIE table", edit(libSpec.bytes(), func(b []byte) []byte {
			b, t := appendDyn(b, pie)
			le.PutUint64(b[findPhdr(b, ptDynamic)+8:], t)
			return b
		}), "elf-shared-object", ""},
		{"(b) two PT_DYNAMIC, the last plain", edit(elfSpec{class: 2, bo: le, etype: etDyn, interp: true, dyn: pie, extra: []phdr{{typ: ptDynamic}}}.bytes(), func(b []byte) []byte {
			b, t := appendDyn(b, soname)
			last := findPhdr(b, ptDynamic)
			le.PutUint64(b[last+8:], t)
			le.PutUint64(b[last+16:], t)
			return growLoad(b)
		}), "elf-shared-object", ""},
		{"(b) the last DT_FLAGS_1 has no DF_1_PIE", elfSpec{class: 2, bo: le, etype: etDyn, dyn: [][2]uint64{{dtFlags1, df1PIE}, {dtFlags1, 1}}}.bytes(), "elf-shared-object", ""},
		{"(b) DF_1_PIE after DT_NULL", elfSpec{class: 2, bo: le, etype: etDyn, dyn: [][2]uint64{{dtNull, 0}, {dtFlags1, df1PIE}}}.bytes(), "elf-shared-object", ""},
		{"(b) DT_NULL past the segment's file content", edit(pieSpec.bytes(), func(b []byte) []byte {
			p := phdrsOf(b)[phLoad]
			le.PutUint64(b[p+32:], uint64(len(b)-8))
			le.PutUint64(b[p+40:], 0x10000)
			return b
		}), "elf-shared-object", ""},
		{"(b) PT_DYNAMIC's address in no PT_LOAD", edit(pieSpec.bytes(), func(b []byte) []byte {
			le.PutUint64(b[findPhdr(b, ptDynamic)+16:], 0x100000)
			return b
		}), "elf-shared-object", ""},
		{"(b) no PT_LOAD", edit(pieSpec.bytes(), func(b []byte) []byte {
			le.PutUint32(b[phdrsOf(b)[phLoad]:], 0)
			return b
		}), "elf-shared-object", ""},
		{"(b) another PT_LOAD maps the table's page", elfSpec{class: 2, bo: le, etype: etDyn, interp: true, dyn: pie,
			extra: []phdr{{typ: ptLoad, off: 0x1000, vaddr: 0x1000 - 16, filesz: 16, memsz: 16}}}.bytes(), "elf-shared-object", ""},
		{"(b) a 32-bit PT_LOAD wrapping past 4 GiB (onto the table's page)", elfSpec{class: 1, bo: le, etype: etDyn, interp: true, dyn: pie,
			extra: []phdr{{typ: ptLoad, vaddr: 0xfffff000, memsz: 0x2000}}}.bytes(), "elf-shared-object", ""},
		{"(b) no DT_NULL within the 16 KiB read", elfSpec{class: 2, bo: le, etype: etDyn, dyn: repeatDyn(maxDynamic/16, [2]uint64{dtFlags1, df1PIE})}.bytes(), "elf-shared-object", ""},
		{"(b) the table cut by the file's end", elfSpec{class: 2, bo: le, etype: etDyn, interp: true, dyn: pie, truncate: 64 + 3*56 + 20}.bytes(), "elf-shared-object", ""},
		// (c): glibc reads up to 65535 program headers; more than 64 KiB are not read here.
		{"(c) PIE with 1200 program headers", manyPhdrs(pieSpec.bytes(), 1200), "elf-shared-object", ""},
		{"program headers cut", elfSpec{class: 2, bo: le, etype: etDyn, interp: true, dyn: pie, truncate: 70}.bytes(), "elf-shared-object", ""},
		{"program headers past the end", edit(pieSpec.bytes(), func(b []byte) []byte {
			le.PutUint64(b[32:], 1<<63-10)
			return b
		}), "elf-shared-object", ""},
		{"ET_DYN without PT_DYNAMIC", elfSpec{class: 2, bo: le, etype: etDyn}.bytes(), "elf-shared-object", ""},
		{"ET_DYN without program headers", edit(pieSpec.bytes(), func(b []byte) []byte {
			le.PutUint16(b[56:], 0)
			return b
		}), "elf-shared-object", ""},

		{"ET_DYN with a bad program header size", elfSpec{class: 2, bo: le, etype: etDyn, interp: true, dyn: pie, phentsize: 48}.bytes(), "elf-other", ""},
		{"ET_REL", elfSpec{class: 2, bo: le, etype: 1}.bytes(), "elf-other", ""},
		{"ET_CORE", elfSpec{class: 2, bo: le, etype: 4}.bytes(), "elf-other", ""},
		{"bad class", elfSpec{class: 3, bo: le, etype: etDyn, dyn: pie}.bytes(), "elf-other", ""},
		{"bad byte order", edit(pieSpec.bytes(), func(b []byte) []byte { b[5] = 3; return b }), "elf-other", ""},
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
			if validDyn(tt.data) {
				// The fuzz test's model of the loader agrees on every PIE here.
				if pie, certain := loaderSeesPIE(tt.data); (pie && certain) != (tt.want == "elf-executable") && tt.want == "elf-executable" {
					t.Fatalf("loaderSeesPIE = %v, %v", pie, certain)
				}
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
			struct{ path, want string }{"/lib/x86_64-linux-gnu/libm.so.6", "elf-shared-object"},
			struct{ path, want string }{"/usr/bin/true", "elf-executable"},
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

// systemELF reads a 64-bit little-endian ELF file of this machine's, the first of paths found
// (skipping the test without one).
func systemELF(t *testing.T, paths ...string) []byte {
	t.Helper()
	for _, pat := range paths {
		m, _ := filepath.Glob(pat)
		if len(m) == 0 {
			continue
		}
		b, err := os.ReadFile(m[0])
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 64 || b[4] != 2 || b[5] != elfData2LSB {
			t.Skipf("%s is not a 64-bit little-endian ELF file", m[0])
		}
		return b
	}
	t.Skipf("none of %v on this machine", paths)
	return nil
}

// TestCraftedSystemFiles crafts the reviewer's libraries (b) and (c) from this machine's libm
// and PIE /usr/bin/true, in memory: the loader reads the dynamic section at PT_DYNAMIC's
// p_vaddr, and reads any number of program headers.
func TestCraftedSystemFiles(t *testing.T) {
	libm := systemELF(t, "/lib/*/libm.so.6", "/usr/lib/*/libm.so.6", "/lib64/libm.so.6", "/usr/lib64/libm.so.6")
	pie := systemELF(t, "/usr/bin/true", "/bin/true")
	// pointOffset appends a dynamic table and points PT_DYNAMIC's p_offset (only) at it.
	pointOffset := func(b []byte, dyn [][2]uint64) []byte {
		b, t := appendDyn(bytes.Clone(b), dyn)
		le.PutUint64(b[findPhdr(b, ptDynamic)+8:], t)
		return b
	}
	for _, tt := range []struct {
		name string
		data []byte
		want string
	}{
		{"libm", libm, "elf-shared-object"},
		{"true", pie, "elf-executable"},
		{"(b) libm, p_offset at a fake DF_1_PIE table", pointOffset(libm, [][2]uint64{{dtFlags1, df1PIE}}), "elf-shared-object"},
		{"true, p_offset at a plain table", pointOffset(pie, [][2]uint64{{dtSoname, 1}}), "elf-executable"},
		{"(c) libm, 1200 program headers", manyPhdrs(bytes.Clone(libm), 1200), "elf-shared-object"},
		// Too many program headers to read: a PIE too is taken for a shared object.
		{"true, 1200 program headers", manyPhdrs(bytes.Clone(pie), 1200), "elf-shared-object"},
		{"true, 1170 program headers", manyPhdrs(bytes.Clone(pie), 1170), "elf-executable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Detect(bytes.NewReader(tt.data))
			if err != nil || got.String() != tt.want {
				t.Fatalf("Detect = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestGlibcLoadsWhatIsASharedObject is the reviewer's reproduction, against this machine's
// loader: libraries built with gcc, whose constructor writes "ctor-ran", and the crafted
// variants (a) a PT_INTERP and no soname, (b) PT_DYNAMIC's p_offset at a fake DF_1_PIE table,
// (c) 1200 program headers, each preloaded (LD_PRELOAD) into /usr/bin/true. Each is loaded, and
// each is elf-shared-object; a PIE and a static PIE are refused by the loader, and are
// elf-executable. Whatever the loader loads is elf-shared-object. Skipped without gcc.
func TestGlibcLoadsWhatIsASharedObject(t *testing.T) {
	if testing.Short() {
		t.Skip("builds with gcc")
	}
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("no gcc")
	}
	if _, err := os.Stat("/usr/bin/true"); err != nil {
		t.Skip("no /usr/bin/true")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "x.c")
	os.WriteFile(src, []byte(`#include <unistd.h>
#ifdef INTERP
const char interp[] __attribute__((section(".interp"))) = "/lib64/ld-linux-x86-64.so.2";
#endif
__attribute__((constructor)) static void ctor(void) { write(2, "ctor-ran\n", 9); }
int main(void) { return 0; }
`), 0o644)
	build := func(name string, args ...string) []byte {
		out := filepath.Join(dir, name)
		if b, err := exec.Command(gcc, append(append([]string{"-o", out}, args...), src)...).CombinedOutput(); err != nil {
			t.Logf("gcc %v: %v\n%s", args, err, b)
			return nil
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	plain := build("plain.so", "-shared", "-fPIC")
	if plain == nil {
		t.Skip("gcc cannot build a shared library")
	}
	if plain[4] != 2 || plain[5] != elfData2LSB {
		t.Skip("not a 64-bit little-endian machine")
	}
	fake, off := appendDyn(bytes.Clone(plain), [][2]uint64{{dtFlags1, df1PIE}})
	le.PutUint64(fake[findPhdr(fake, ptDynamic)+8:], off)
	type variant struct {
		name   string
		data   []byte
		want   string
		loaded bool
	}
	vs := []variant{
		{"plain.so", plain, "elf-shared-object", true},
		{"(a) interp.so", build("interp.so", "-shared", "-fPIC", "-DINTERP"), "elf-shared-object", true},
		{"(b) fakedyn.so", fake, "elf-shared-object", true},
		{"(c) manyphdrs.so", manyPhdrs(bytes.Clone(plain), 1200), "elf-shared-object", true},
		{"pie", build("pie", "-fPIE", "-pie"), "elf-executable", false},
	}
	if spie := build("static-pie", "-static-pie", "-fPIE"); spie != nil {
		vs = append(vs, variant{"static-pie", spie, "elf-executable", false})
	} else {
		t.Log("no static PIE (libc.a missing?): not tried")
	}
	for _, v := range vs {
		t.Run(v.name, func(t *testing.T) {
			if v.data == nil {
				t.Fatal("not built")
			}
			p := filepath.Join(dir, "v-"+strings.NewReplacer(" ", "", "(", "", ")", "").Replace(v.name))
			if err := os.WriteFile(p, v.data, 0o755); err != nil {
				t.Fatal(err)
			}
			got, err := Detect(bytes.NewReader(v.data))
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("/usr/bin/true")
			cmd.Env = []string{"LD_PRELOAD=" + p}
			out, _ := cmd.CombinedOutput()
			loaded := strings.Contains(string(out), "ctor-ran")
			if loaded && got.Kind != ElfSharedObject {
				t.Errorf("the loader loaded it, and Detect calls it %q", got)
			}
			if loaded != v.loaded {
				t.Errorf("loaded %v, want %v: %s", loaded, v.loaded, out)
			}
			if got.String() != v.want {
				t.Errorf("Detect = %q, want %q", got, v.want)
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
// and only scripts name an interpreter. An ET_DYN with a valid header is elf-executable or
// elf-shared-object, never elf-other; and it is elf-executable only when loaderSeesPIE, a
// model of glibc's loader written apart from detectELF, reads DF_1_PIE for certain.
func FuzzDetect(f *testing.F) {
	pie := [][2]uint64{{dtFlags1, df1PIE}}
	f.Add([]byte("#!/usr/bin/env -S python3 -u\n"))
	f.Add(elfSpec{class: 2, bo: le, etype: etDyn, interp: true, dyn: pie}.bytes())
	f.Add(elfSpec{class: 1, bo: be, etype: etDyn, dyn: [][2]uint64{{dtSoname, 1}}}.bytes())
	f.Add(elfSpec{class: 2, bo: le, etype: etDyn, dyn: [][2]uint64{{dtFlags1, df1PIE}, {dtFlags1, 1}}, extra: []phdr{{typ: ptDynamic, vaddr: 0x100}, {typ: ptLoad, vaddr: 0x2000, memsz: 0x100}}}.bytes())
	f.Add(edit(elfSpec{class: 2, bo: le, etype: etDyn, dyn: [][2]uint64{{dtSoname, 1}}}.bytes(), func(b []byte) []byte {
		b, t := appendDyn(b, pie)
		le.PutUint64(b[findPhdr(b, ptDynamic)+8:], t)
		return b
	}))
	f.Add(manyPhdrs(elfSpec{class: 2, bo: le, etype: etDyn, dyn: pie}.bytes(), 40))
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
		if validDyn(data) && got.Kind != ElfExecutable && got.Kind != ElfSharedObject {
			t.Fatalf("an ET_DYN with a valid header: %v", got)
		}
		if got.Kind == ElfExecutable && validDyn(data) {
			if pie, certain := loaderSeesPIE(data); !pie || !certain {
				t.Fatalf("an ET_DYN called elf-executable, but the loader model reads DF_1_PIE %v (certain %v)", pie, certain)
			}
		}
		again, _ := Detect(&countingReader{data: data})
		if again != got {
			t.Fatalf("not deterministic: %v then %v", got, again)
		}
	})
}

// elfHeader reads what validDyn and loaderSeesPIE need of an ELF header, if it is one whose
// class and byte order are known and whose program header size is the ABI's.
func elfHeader(data []byte) (bo binary.ByteOrder, is64 bool, etype uint16, phoff uint64, phnum int, ok bool) {
	if len(data) < 64 || string(data[:4]) != "\x7fELF" || data[4] != 1 && data[4] != 2 || data[5] != 1 && data[5] != 2 {
		return nil, false, 0, 0, 0, false
	}
	bo, is64 = le, data[4] == 2
	if data[5] == 2 {
		bo = be
	}
	etype = bo.Uint16(data[16:])
	if is64 {
		return bo, is64, etype, bo.Uint64(data[32:]), int(bo.Uint16(data[56:])), bo.Uint16(data[54:]) == 56
	}
	return bo, is64, etype, uint64(bo.Uint32(data[28:])), int(bo.Uint16(data[44:])), bo.Uint16(data[42:]) == 32
}

// validDyn: data is an ET_DYN whose header glibc's loader could take (class, byte order,
// program header size).
func validDyn(data []byte) bool {
	_, _, etype, _, _, ok := elfHeader(data)
	return ok && etype == etDyn
}

// loaderSeesPIE models what glibc's loader reads of an ET_DYN it loads as a library
// (_dl_map_segments, elf_get_dynamic_info), byte by byte: the PT_LOAD segments mapped in
// order, each page over what was there, from the file up to p_filesz's page end, zero from
// p_filesz to p_memsz and on zero pages after; the last PT_DYNAMIC's p_vaddr walked to DT_NULL,
// the last DT_FLAGS_1 counting. certain is false when a byte it needs is in no segment or past
// the end of the file (the loader would fault), or the table goes on for 2048 entries.
func loaderSeesPIE(data []byte) (pie, certain bool) {
	bo, is64, _, phoff, phnum, _ := elfHeader(data)
	type seg struct{ vaddr, off, filesz, memsz uint64 }
	var loads []seg
	var dyn uint64
	hasDyn := false
	phent := uint64(32)
	if is64 {
		phent = 56
	}
	for i := 0; i < phnum; i++ {
		o := phoff + uint64(i)*phent
		if o < phoff || o > uint64(len(data)) || uint64(len(data))-o < phent {
			return false, false
		}
		ph := data[o:]
		var s seg
		if is64 {
			s = seg{bo.Uint64(ph[16:]), bo.Uint64(ph[8:]), bo.Uint64(ph[32:]), bo.Uint64(ph[40:])}
		} else {
			s = seg{uint64(bo.Uint32(ph[8:])), uint64(bo.Uint32(ph[4:])), uint64(bo.Uint32(ph[16:])), uint64(bo.Uint32(ph[20:]))}
		}
		switch bo.Uint32(ph) {
		case ptLoad:
			if s.vaddr+s.filesz < s.vaddr || s.vaddr+s.memsz < s.vaddr || s.vaddr+max(s.filesz, s.memsz)+pageSize < s.vaddr {
				return false, false
			}
			loads = append(loads, s)
		case ptDynamic:
			dyn, hasDyn = s.vaddr, true
		}
	}
	if !hasDyn {
		return false, false
	}
	up := func(a uint64) uint64 { return (a + pageSize - 1) &^ (pageSize - 1) }
	byteAt := func(a uint64) (byte, bool) {
		for i := len(loads) - 1; i >= 0; i-- {
			s := loads[i]
			dataEnd, allocEnd := s.vaddr+s.filesz, s.vaddr+s.memsz
			mapEnd := up(dataEnd)
			if a < s.vaddr&^(pageSize-1) || a >= max(mapEnd, up(allocEnd)) {
				continue
			}
			if a >= dataEnd && a < allocEnd || a >= mapEnd {
				return 0, true
			}
			fo := s.off + a - s.vaddr // wraps below the segment's start as the page offset does
			if a < s.vaddr && s.vaddr-a > s.off || fo >= uint64(len(data)) {
				return 0, false
			}
			return data[fo], true
		}
		return 0, false
	}
	ent := uint64(8)
	if is64 {
		ent = 16
	}
	var flags1 uint64
	for k := uint64(0); k < 2048; k++ {
		var e [16]byte
		for j := uint64(0); j < ent; j++ {
			b, ok := byteAt(dyn + k*ent + j)
			if !ok {
				return false, false
			}
			e[j] = b
		}
		var tag, val uint64
		if is64 {
			tag, val = bo.Uint64(e[:]), bo.Uint64(e[8:])
		} else {
			tag, val = uint64(int64(int32(bo.Uint32(e[:])))), uint64(bo.Uint32(e[4:]))
		}
		switch tag {
		case dtNull:
			return flags1&df1PIE != 0, true
		case dtFlags1:
			flags1 = val
		}
	}
	return false, false
}
