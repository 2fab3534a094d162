// Package ftype tells a file's type by its content, read from an open descriptor with pread(2)
// (never by its name, never by reopening its path): an ELF executable or shared object, a
// script with its interpreter named, text, or data.
//
// The types, as a policy's ftype= key spells them (Type.String):
//
//	elf-executable     ET_EXEC, or ET_DYN marked as a position-independent executable (below)
//	elf-shared-object  ET_DYN that is not an executable: libraries, and the dynamic loader itself
//	elf-other          any other ELF file: relocatable objects (.o), core dumps, or a header
//	                   the kernel and the loader would refuse (bad class, program header size
//	                   or count)
//	script:NAME        "#!" at offset 0: a script whose interpreter is NAME (below); "script"
//	                   alone when the line names none (the kernel refuses it with ENOEXEC)
//	text               no NUL, valid UTF-8 (a character cut at the end of what is read is
//	                   fine), no control characters but \t \n \v \f \r \b and ESC
//	empty              a file of size 0
//	data               anything else (Latin-1 or UTF-16 text included)
//
// PIE executables and libraries are both ET_DYN. An ET_DYN is an executable when its dynamic
// section has DF_1_PIE in DT_FLAGS_1 (what binutils ≥ 2.33, lld and Go's linker write for
// -pie and -static-pie). Without DF_1_PIE (older toolchains) it is an executable when it
// has a PT_INTERP and no DT_SONAME. PT_INTERP alone does not decide: glibc's libc.so.6 has one
// (it prints its version when run) but is a library with a soname. The loader
// (ld-linux-x86-64.so.2) is a shared object, though it can be run: a policy names it by path.
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
// 64 KiB, the kernel's own limit for an executable's program headers) and at most 16 KiB of
// its dynamic section. The package keeps no state, starts no goroutine and takes no lock.
package ftype

import (
	"encoding/binary"
	"errors"
	"io"
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
	maxPhdrs   = 64 << 10 // the kernel refuses an executable whose program headers exceed this
	maxDynamic = 16 << 10 // dynamic entries read in search of DT_FLAGS_1 and DT_SONAME
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
	ptDynamic   = 2
	ptInterp    = 3
	dtNull      = 0
	dtSoname    = 14
	dtFlags1    = 0x6ffffffb
	df1PIE      = 0x08000000
)

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
		return Type{Kind: ElfExecutable}, nil
	case etDyn:
	default:
		return other, nil
	}
	// ET_DYN: executable or library? The kernel (load_elf_phdrs) and the loader refuse a
	// program header size other than the ABI's and a table over 64 KiB.
	if phentsize != wantEnt || phnum == 0 || phnum*phentsize > maxPhdrs || phoff > 1<<62 {
		return other, nil
	}
	phdrs := make([]byte, phnum*phentsize)
	n, err := readFull(r, phdrs, int64(phoff))
	if err != nil {
		return Type{}, err
	}
	if n < len(phdrs) {
		return other, nil // truncated: nothing could load it
	}
	var hasInterp, hasDynamic bool
	var dynOff, dynSize uint64
	for i := 0; i < phnum; i++ {
		ph := phdrs[i*phentsize:]
		switch bo.Uint32(ph) {
		case ptInterp:
			hasInterp = true
		case ptDynamic:
			if !hasDynamic {
				hasDynamic = true
				if class == elfClass32 {
					dynOff, dynSize = uint64(bo.Uint32(ph[4:])), uint64(bo.Uint32(ph[16:]))
				} else {
					dynOff, dynSize = bo.Uint64(ph[8:]), bo.Uint64(ph[32:])
				}
			}
		}
	}
	var flags1 uint64
	var hasFlags1, hasSoname bool
	if hasDynamic && dynOff <= 1<<62 {
		size := min(dynSize, maxDynamic)
		dyn := make([]byte, size)
		n, err := readFull(r, dyn, int64(dynOff))
		if err != nil {
			return Type{}, err
		}
		ent := 16
		if class == elfClass32 {
			ent = 8
		}
	scan:
		for off := 0; off+ent <= n; off += ent {
			var tag, val uint64
			if class == elfClass32 {
				tag, val = uint64(int64(int32(bo.Uint32(dyn[off:])))), uint64(bo.Uint32(dyn[off+4:]))
			} else {
				tag, val = bo.Uint64(dyn[off:]), bo.Uint64(dyn[off+8:])
			}
			switch tag {
			case dtNull:
				break scan
			case dtSoname:
				hasSoname = true
			case dtFlags1:
				flags1, hasFlags1 = val, true
			}
		}
	}
	switch {
	case hasFlags1 && flags1&df1PIE != 0:
		return Type{Kind: ElfExecutable}, nil
	case hasInterp && !hasSoname:
		// Not marked: an older toolchain's PIE (binutils < 2.33) has an interpreter and no
		// soname, and may have DT_FLAGS_1 for other flags (-z now).
		return Type{Kind: ElfExecutable}, nil
	}
	return Type{Kind: ElfSharedObject}, nil
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
