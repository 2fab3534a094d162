// Package ftype tells a file's type by its content, read from an open descriptor with pread(2)
// (never by its name, never by reopening its path): an ELF executable or shared object, a
// script with its interpreter named, text, or data.
//
// The types, as a policy's ftype= key spells them (Type.String):
//
//	elf-executable     ET_EXEC, or an ET_DYN that glibc's loader refuses to load as a library
//	                   because it is marked a position-independent executable (below)
//	elf-shared-object  any other ET_DYN: libraries, the dynamic loader itself, and any ET_DYN
//	                   whose marking cannot be read for certain within the read bounds
//	elf-other          any other ELF file: relocatable objects (.o), core dumps, other
//	                   e_type values, and headers nothing loads (too short, bad class or byte
//	                   order, an ET_DYN's program header size not the ABI's)
//	script:NAME        "#!" at offset 0: a script whose interpreter is NAME (below); "script"
//	                   alone when the line names none (the kernel refuses it with ENOEXEC)
//	text               no NUL, valid UTF-8 (a character cut at the end of what is read is
//	                   fine), no control characters but \t \n \v \f \r \b and ESC
//	empty              a file of size 0
//	data               anything else (Latin-1 or UTF-16 text included)
//
// PIE executables and libraries are both ET_DYN, and the kernel execs either. What tells
// them apart here is what matters to an allowlist: whether glibc's dynamic loader would load
// the file as a library (LD_PRELOAD, DT_NEEDED, dlopen), after open(2)ing it. The loader
// (elf/dl-load.c, _dl_map_object_from_fd) refuses ET_EXEC, and refuses an ET_DYN whose
// DT_FLAGS_1 has DF_1_PIE ("cannot dynamically load position-independent executable"), which
// binutils ≥ 2.33, lld and Go's linker write for -pie and -static-pie. It finds that flag as
// it does, not as the file's section headers or PT_DYNAMIC's p_offset say: the dynamic section
// is at the last PT_DYNAMIC's p_vaddr in the image the PT_LOAD segments map (translated to a
// file offset through the PT_LOAD holding it), read up to its DT_NULL, and the last DT_FLAGS_1
// before that counts (elf/get-dynamic-info.h). An ET_DYN is elf-executable only when that
// reading finds DF_1_PIE for certain: the whole table, DT_NULL included, within one PT_LOAD's
// file content (p_filesz), on pages no other PT_LOAD maps, and within the read bounds. In every
// other case (no PT_DYNAMIC, program headers over 64 KiB or cut short, an address in no
// segment's file content, no DT_NULL in the 16 KiB read) it is elf-shared-object: the class an
// allowlist denies when untrusted, so a file the guard cannot read to the end is never let
// through as a program. So an older toolchain's PIE (binutils < 2.33: PT_INTERP, no DT_SONAME,
// no DF_1_PIE) is elf-shared-object: glibc loads it as a library. PT_INTERP and DT_SONAME
// decide nothing (glibc's libc.so.6 has a PT_INTERP and runs). The loader
// (ld-linux-x86-64.so.2) is a shared object, though it can be run: a policy names it by path.
// Other loaders (musl's) are not modelled.
//
// For an exec the kernel (fs/binfmt_elf.c) runs ET_EXEC and every ET_DYN alike (with at most
// 64 KiB of program headers), marked or not: an exec rule that means "any ELF program" writes
// ftype=elf-*, not ftype=elf-executable.
//
// Scripts: the interpreter line is parsed as the kernel does (fs/binfmt_script.c, within the
// first 256 bytes, BINPRM_BUF_SIZE): the interpreter is the first word after "#!" (words end
// at a space, tab or NUL), and the rest of the line is one argument. NAME is the base name of
// the interpreter: "#!/bin/sh -e" is script:sh, "#!/usr/bin/python3.11" is
// script:python3.11. When the interpreter is env (any path ending in /env, or "env"), NAME is
// the program env runs:
//
//	#!/usr/bin/env python3             script:python3
//	#!/usr/bin/env -S python3 -u       script:python3 (-S: the argument is split at spaces and
//	                                   tabs; env's options -i -0 -v --debug --, -u NAME,
//	                                   -C DIR, --unset=NAME, --chdir=DIR and NAME=VALUE
//	                                   assignments are skipped)
//	#!/usr/bin/env python3 -u          script:env (without -S env looks for a program named
//	                                   "python3 -u", which does not exist)
//	#!/usr/bin/env                     script:env
//
// env's quoting and escapes inside -S ("\_", quotes) are not interpreted: a word with a quote
// or a backslash leaves NAME env. A script's interpreter is exec'd (and decided on) in turn;
// NAME is what the script asks for, not proof of what will run (env searches PATH).
//
// Reads are bounded: 512 bytes at offset 0, then for an ET_DYN its program headers (at most
// 64 KiB, the kernel's own limit for an executable's; glibc reads up to 65535 entries, so a
// larger table is loadable as a library and is elf-shared-object) and at most 16 KiB of its
// dynamic section. The package keeps no state, starts no goroutine and takes no lock.
package ftype

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// Kind is a file's kind.
type Kind uint8

const (
	Data Kind = iota
	Empty
	Text
	Script
	ElfExecutable
	ElfSharedObject
	ElfOther
)

var kindNames = [...]string{
	Data:            "data",
	Empty:           "empty",
	Text:            "text",
	Script:          "script",
	ElfExecutable:   "elf-executable",
	ElfSharedObject: "elf-shared-object",
	ElfOther:        "elf-other",
}

// String is the kind's name as a policy writes it.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Kinds lists every kind, for documentation and policy checks.
func Kinds() []Kind {
	return []Kind{ElfExecutable, ElfSharedObject, ElfOther, Script, Text, Empty, Data}
}

// Type is a file's type.
type Type struct {
	Kind Kind
	// Interp is a Script's interpreter name (see the package doc): "python3", "sh"; empty
	// when the "#!" line names none.
	Interp string
	// InterpPath is the interpreter as the script's line writes it: "/bin/sh",
	// "/usr/bin/env"; for env, the program word env runs ("python3").
	InterpPath string
}

// String is the type as a policy's ftype= key writes it: "elf-executable", "script:python3".
func (t Type) String() string {
	if t.Kind == Script && t.Interp != "" {
		return "script:" + t.Interp
	}
	return t.Kind.String()
}

// Read bounds.
const (
	headSize   = 512      // the first read: ELF header, "#!" line, text sample
	binprmBuf  = 256      // BINPRM_BUF_SIZE: the kernel reads the "#!" line from this much
	maxPhdrs   = 64 << 10 // program headers read; the kernel refuses an executable with more
	maxDynamic = 16 << 10 // dynamic entries read in search of DT_FLAGS_1 and DT_NULL
	// MaxRead is the most Detect ever reads from one file.
	MaxRead = headSize + maxPhdrs + maxDynamic
)

// Detect reads r's type. r is read with ReadAt only, at most MaxRead bytes in total. A
// short file is no error: io.EOF from ReadAt ends the data. Other read errors are returned.
func Detect(r io.ReaderAt) (Type, error) {
	var buf [headSize]byte
	n, err := readFull(r, buf[:], 0)
	if err != nil {
		return Type{}, err
	}
	head := buf[:n]
	switch {
	case n == 0:
		return Type{Kind: Empty}, nil
	case n >= 4 && head[0] == 0x7f && head[1] == 'E' && head[2] == 'L' && head[3] == 'F':
		return detectELF(r, head)
	case n >= 2 && head[0] == '#' && head[1] == '!':
		return detectScript(head), nil
	case isText(head, n == headSize):
		return Type{Kind: Text}, nil
	}
	return Type{Kind: Data}, nil
}

// FromFd is Detect on the open file fd, read with pread(2): the descriptor's file offset,
// which it may share with the process being decided on, is not moved.
func FromFd(fd int) (Type, error) { return Detect(fdReader(fd)) }

type fdReader int

func (fd fdReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := sys.Pread(int(fd), p, off)
	if err == nil && n == 0 && len(p) > 0 {
		err = io.EOF
	}
	return n, err
}

// readFull reads len(p) bytes at off, or fewer at the end of the file.
func readFull(r io.ReaderAt, p []byte, off int64) (int, error) {
	total := 0
	for total < len(p) {
		n, err := r.ReadAt(p[total:], off+int64(total))
		total += n
		if err == io.EOF || (err == nil && n == 0) {
			break
		}
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// ELF constants (include/uapi/linux/elf.h).
const (
	elfClass32  = 1
	elfClass64  = 2
	elfData2LSB = 1
	elfData2MSB = 2
	etExec      = 2
	etDyn       = 3
	ptLoad      = 1
	ptDynamic   = 2
	ptInterp    = 3
	dtNull      = 0
	dtSoname    = 14
	dtFlags1    = 0x6ffffffb
	df1PIE      = 0x08000000
)

// pageSize is what the loader rounds segments to: the kernel's page size (AT_PAGESZ).
var pageSize = uint64(os.Getpagesize())

func detectELF(r io.ReaderAt, head []byte) (Type, error) {
	other := Type{Kind: ElfOther}
	if len(head) < 52 { // the 32-bit header; the 64-bit one (64) is checked below
		return other, nil
	}
	var bo binary.ByteOrder
	switch head[5] {
	case elfData2LSB:
		bo = binary.LittleEndian
	case elfData2MSB:
		bo = binary.BigEndian
	default:
		return other, nil
	}
	class := head[4]
	var phoff uint64
	var phentsize, phnum, wantEnt int
	switch class {
	case elfClass32:
		phoff = uint64(bo.Uint32(head[28:]))
		phentsize, phnum, wantEnt = int(bo.Uint16(head[42:])), int(bo.Uint16(head[44:])), 32
	case elfClass64:
		if len(head) < 64 {
			return other, nil
		}
		phoff = bo.Uint64(head[32:])
		phentsize, phnum, wantEnt = int(bo.Uint16(head[54:])), int(bo.Uint16(head[56:])), 56
	default:
		return other, nil
	}
	switch bo.Uint16(head[16:]) {
	case etExec:
		// glibc's loader never loads an ET_EXEC as a library; the kernel execs it.
		return Type{Kind: ElfExecutable}, nil
	case etDyn:
	default:
		return other, nil
	}
	// ET_DYN: a PIE or a library? glibc's loader (open_verify) refuses a program header size
	// other than the ABI's, as the kernel does: nothing loads that file.
	if phentsize != wantEnt {
		return other, nil
	}
	pie, err := markedPIE(r, bo, class == elfClass64, phoff, phnum, phentsize)
	if err != nil {
		return Type{}, err
	}
	if pie {
		return Type{Kind: ElfExecutable}, nil
	}
	return Type{Kind: ElfSharedObject}, nil
}

// segment is a PT_LOAD's placement: its address, file offset, and sizes in the file and in
// memory.
type segment struct{ vaddr, off, filesz, memsz uint64 }

// markedPIE reports whether glibc's loader, loading the ET_DYN as a library
// (_dl_map_object_from_fd), would find DF_1_PIE and refuse it: the last PT_DYNAMIC's address
// (p_vaddr; its p_offset is not used), read in the image the PT_LOAD segments map, up to its
// DT_NULL, and the last DT_FLAGS_1 entry before that. It is false whenever that cannot be read
// for certain within the read bounds: program headers over maxPhdrs or cut short, no
// PT_DYNAMIC, an address in no segment's file content, a table with no DT_NULL in the
// maxDynamic bytes read or running past its segment's file content, pages of it that
// another segment maps too (the later mapping would replace them), or a segment that wraps
// around the address space.
func markedPIE(r io.ReaderAt, bo binary.ByteOrder, is64 bool, phoff uint64, phnum, phentsize int) (bool, error) {
	size := phnum * phentsize
	if phnum == 0 || size > maxPhdrs || phoff > math.MaxInt64-uint64(size) {
		return false, nil
	}
	phdrs := make([]byte, size)
	n, err := readFull(r, phdrs, int64(phoff))
	if err != nil {
		return false, err
	}
	if n < size {
		return false, nil
	}
	var loads []segment
	var dynAddr uint64
	hasDynamic := false
	for i := 0; i < phnum; i++ {
		ph := phdrs[i*phentsize:]
		var s segment
		if is64 {
			s = segment{vaddr: bo.Uint64(ph[16:]), off: bo.Uint64(ph[8:]), filesz: bo.Uint64(ph[32:]), memsz: bo.Uint64(ph[40:])}
		} else {
			s = segment{vaddr: uint64(bo.Uint32(ph[8:])), off: uint64(bo.Uint32(ph[4:])), filesz: uint64(bo.Uint32(ph[16:])), memsz: uint64(bo.Uint32(ph[20:]))}
		}
		switch bo.Uint32(ph) {
		case ptLoad:
			loads = append(loads, s)
		case ptDynamic:
			dynAddr, hasDynamic = s.vaddr, true // the last one counts
		}
	}
	if !hasDynamic {
		return false, nil // the loader refuses an ET_DYN without one
	}
	// Each segment's mapping, to its last page, must fit in the address space: one that wraps
	// around (in a 32-bit file, past 4 GiB) could be mapped anywhere, the table's pages too.
	limit := uint64(1) << 32
	if is64 {
		limit = math.MaxUint64 - pageSize
	}
	for _, s := range loads {
		if end, ok := add(s.vaddr, max(s.filesz, s.memsz)); !ok || end > limit {
			return false, nil
		}
	}
	// The segment whose file content holds the table's start. Past p_filesz the image holds
	// zeros or the file's next bytes, depending on p_memsz and the page: not read here.
	in := -1
	var avail uint64 // the segment's file content from dynAddr on
	for i, s := range loads {
		if end := s.vaddr + min(s.filesz, s.memsz); dynAddr >= s.vaddr && dynAddr < end {
			in, avail = i, end-dynAddr
			break
		}
	}
	if in < 0 {
		return false, nil
	}
	l := loads[in]
	off, ok := add(l.off, dynAddr-l.vaddr)
	if !ok || off > math.MaxInt64-maxDynamic {
		return false, nil
	}
	dyn := make([]byte, min(avail, maxDynamic))
	if n, err = readFull(r, dyn, int64(off)); err != nil {
		return false, err
	}
	ent := 8
	if is64 {
		ent = 16
	}
	var flags1 uint64
	tableEnd := uint64(0) // the end of the table, DT_NULL included, relative to dynAddr
	for at := 0; at+ent <= n; at += ent {
		var tag, val uint64
		if is64 {
			tag, val = bo.Uint64(dyn[at:]), bo.Uint64(dyn[at+8:])
		} else {
			tag, val = uint64(int64(int32(bo.Uint32(dyn[at:])))), uint64(bo.Uint32(dyn[at+4:]))
		}
		if tag == dtNull {
			tableEnd = uint64(at + ent)
			break
		}
		if tag == dtFlags1 {
			flags1 = val
		}
	}
	if tableEnd == 0 {
		return false, nil // no DT_NULL read: the table goes on past the bound or the file
	}
	// The pages of the table must be the segment's alone: the loader maps the segments in
	// order, each over what was there, and zero-fills a segment's memory past p_filesz.
	lo, hi := dynAddr&^(pageSize-1), dynAddr+tableEnd // within the segment: no overflow
	for i, s := range loads {
		end := s.vaddr + max(s.filesz, s.memsz) // checked above
		if i != in && s.vaddr&^(pageSize-1) < hi && lo < (end+pageSize-1)&^(pageSize-1) {
			return false, nil
		}
	}
	return flags1&df1PIE != 0, nil
}

// add is a+b, and false when it overflows.
func add(a, b uint64) (uint64, bool) {
	s := a + b
	return s, s >= a
}

// errNoInterp marks a "#!" line the kernel refuses (ENOEXEC): no interpreter named, or one cut
// off at the end of the 256 bytes it reads.
var errNoInterp = errors.New("no interpreter")

func detectScript(head []byte) Type {
	name, arg, err := shebang(head)
	if err != nil {
		return Type{Kind: Script}
	}
	t := Type{Kind: Script, Interp: baseName(name), InterpPath: name}
	if t.Interp == "env" {
		if prog := envProgram(arg); prog != "" && baseName(prog) != "" {
			t.Interp, t.InterpPath = baseName(prog), prog
		}
	}
	return t
}

// baseName is the last element of an interpreter's path ("" for "/", which names none).
func baseName(p string) string {
	if b := path.Base(p); b != "/" {
		return b
	}
	return ""
}

func spacetab(c byte) bool { return c == ' ' || c == '\t' }

// shebang splits a "#!" line as fs/binfmt_script.c does: interpreter name and the optional
// single argument.
func shebang(head []byte) (name, arg string, err error) {
	buf := head
	if len(buf) > binprmBuf {
		buf = buf[:binprmBuf]
	}
	buf = buf[2:]
	end := -1
	for i, c := range buf {
		if c == '\n' {
			end = i
			break
		}
	}
	if end < 0 {
		// No newline in the buffer: the kernel accepts the line only if the interpreter's
		// name ends (a space, tab or NUL) within it.
		i := 0
		for i < len(buf) && spacetab(buf[i]) {
			i++
		}
		j := i
		for j < len(buf) && !spacetab(buf[j]) && buf[j] != 0 {
			j++
		}
		if i == len(buf) || j == len(buf) {
			return "", "", errNoInterp
		}
		end = len(buf)
	}
	line := buf[:end]
	// A NUL ends the line for the kernel (it works on C strings).
	for i, c := range line {
		if c == 0 {
			line = line[:i]
			break
		}
	}
	for len(line) > 0 && spacetab(line[len(line)-1]) {
		line = line[:len(line)-1]
	}
	for len(line) > 0 && spacetab(line[0]) {
		line = line[1:]
	}
	if len(line) == 0 {
		return "", "", errNoInterp
	}
	i := 0
	for i < len(line) && !spacetab(line[i]) {
		i++
	}
	name = string(line[:i])
	rest := line[i:]
	for len(rest) > 0 && spacetab(rest[0]) {
		rest = rest[1:]
	}
	return name, string(rest), nil
}

// envProgram returns the program env runs when its single argument (from a "#!" line) is arg,
// or "" when it cannot tell (see the package doc).
func envProgram(arg string) string {
	var words []string
	switch {
	case arg == "":
		return ""
	case strings.HasPrefix(arg, "-S"):
		words = strings.FieldsFunc(arg[2:], func(r rune) bool { return r == ' ' || r == '\t' })
	case strings.HasPrefix(arg, "--split-string="):
		words = strings.FieldsFunc(arg[len("--split-string="):], func(r rune) bool { return r == ' ' || r == '\t' })
	case strings.HasPrefix(arg, "--split-string"), strings.HasPrefix(arg, "-"):
		return "" // other options in one word: what env makes of them is not worth guessing
	default:
		if strings.ContainsAny(arg, " \t") || strings.Contains(arg, "=") {
			return "" // one program name with a space, or an assignment: env runs no such program
		}
		return arg
	}
	for i := 0; i < len(words); i++ {
		w := words[i]
		switch {
		case w == "--":
			if i+1 < len(words) {
				return plainWord(words[i+1])
			}
			return ""
		case w == "-i" || w == "-" || w == "--ignore-environment" || w == "-0" || w == "--null" ||
			w == "-v" || w == "--debug" || strings.HasPrefix(w, "--unset=") || strings.HasPrefix(w, "--chdir=") ||
			(strings.HasPrefix(w, "-u") && len(w) > 2) || (strings.HasPrefix(w, "-C") && len(w) > 2):
		case w == "-u" || w == "-C" || w == "--unset" || w == "--chdir":
			i++ // the option's value
		case strings.HasPrefix(w, "-"):
			return "" // an option we do not know: it may take a value
		case strings.Contains(w, "="):
			// NAME=VALUE
		default:
			return plainWord(w)
		}
	}
	return ""
}

// plainWord returns w unless env -S would rewrite it (quotes, escapes, ${VAR}).
func plainWord(w string) string {
	if strings.ContainsAny(w, "\"'\\$") {
		return ""
	}
	return w
}

// isText reports whether b looks like text; full says b filled the read, so a character may be
// cut at its end.
func isText(b []byte, full bool) bool {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\v' && c != '\f' && c != '\r' && c != '\b' && c != 0x1b || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			// Invalid, or a character cut at the end of a full read.
			return full && !utf8.FullRune(b[i:])
		}
		i += size
	}
	return true
}
