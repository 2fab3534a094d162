package trust

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"
)

// DefaultDir holds the trust files read when none is named: every *.trust file in it.
const DefaultDir = "/etc/fsnotifyd/trust.d"

// DefaultFile is where "fsnotifyd trust add" writes when no file is named.
const DefaultFile = DefaultDir + "/local.trust"

// maxLine bounds a trust-file line (a path is at most PATH_MAX, 4096 bytes, escaped at most
// four bytes per byte), so a stray binary file fails cleanly.
const maxLine = 64 << 10

// ParseError is a trust-file error at a position. Line and Col are 1-based; Col counts bytes.
type ParseError struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// ParseFile reads a trust file: one entry per line, "PATH SIZE SHA256" (see FormatLine for
// PATH's escapes). Blank lines are ignored, and a word that begins with # comments out the
// rest of its line. name is used in errors and in the entries' Source.
func ParseFile(name string, r io.Reader) ([]Entry, error) {
	var entries []Entry
	seen := map[string]int{} // path -> line
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := sc.Bytes()
		if lineNo == 1 {
			line = bytes.TrimPrefix(line, []byte("\ufeff"))
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		e, ok, err := parseLine(name, lineNo, line)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if prev, dup := seen[e.Path]; dup {
			return nil, &ParseError{name, lineNo, 1, fmt.Sprintf("%s is already listed on line %d (one line per path)", EscapePath(e.Path), prev)}
		}
		seen[e.Path] = lineNo
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &ParseError{name, lineNo + 1, 1, fmt.Sprintf("line longer than %d bytes", maxLine)}
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return entries, nil
}

// word is a word of a line and its 1-based column.
type word struct {
	text []byte
	col  int
}

// parseLine parses one line; ok is false for a blank or comment line.
func parseLine(name string, lineNo int, line []byte) (Entry, bool, error) {
	errAt := func(col int, format string, args ...any) error {
		return &ParseError{name, lineNo, col, fmt.Sprintf(format, args...)}
	}
	var words []word
	for i := 0; i < len(line); {
		if line[i] == ' ' || line[i] == '\t' {
			i++
			continue
		}
		if line[i] == '#' {
			break
		}
		start := i
		for i < len(line) && line[i] != ' ' && line[i] != '\t' {
			if line[i] == '\\' && i+1 < len(line) {
				i++ // an escaped space stays in the word
			}
			i++
		}
		words = append(words, word{line[start:i], start + 1})
	}
	if len(words) == 0 {
		return Entry{}, false, nil
	}
	if len(words) < 3 {
		return Entry{}, false, errAt(len(line)+1, "want PATH SIZE SHA256, got %d word(s)", len(words))
	}
	if len(words) > 3 {
		return Entry{}, false, errAt(words[3].col, "unexpected %q after the SHA256 (a path's spaces are written \\ )", words[3].text)
	}
	path, err := unescapePath(words[0].text)
	if err != nil {
		var ee *escapeError
		if errors.As(err, &ee) {
			return Entry{}, false, errAt(words[0].col+ee.off, "%s", ee.msg)
		}
		return Entry{}, false, errAt(words[0].col, "%v", err)
	}
	if msg := checkPath(path); msg != "" {
		return Entry{}, false, errAt(words[0].col, "%s", msg)
	}
	size, err := strconv.ParseInt(string(words[1].text), 10, 64)
	if err != nil || size < 0 || words[1].text[0] == '+' {
		return Entry{}, false, errAt(words[1].col, "size %q is not a number of bytes", words[1].text)
	}
	hexSum := words[2].text
	if len(hexSum) != 64 {
		return Entry{}, false, errAt(words[2].col, "sha256 %q has %d characters, want 64 hex digits", hexSum, len(hexSum))
	}
	e := Entry{Path: path, Size: size, Source: Source{Kind: FromFile, File: name, Line: lineNo}}
	e.Digest.Algo = SHA256
	if _, err := hex.Decode(e.Digest.Sum[:], hexSum); err != nil {
		return Entry{}, false, errAt(words[2].col, "sha256 %q is not hex", hexSum)
	}
	return e, true, nil
}

// checkPath says what is wrong with a trust file's path, "" if nothing: it must be absolute
// and canonical, as the kernel reports paths.
func checkPath(p string) string {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Sprintf("path %q is not absolute", EscapePath(p))
	case p == "/":
		return "path / is a directory: a trust file lists files"
	case filepath.Clean(p) != p:
		return fmt.Sprintf("path %q is not canonical (write %s)", EscapePath(p), EscapePath(filepath.Clean(p)))
	case strings.IndexByte(p, 0) >= 0:
		return "a path cannot contain a NUL byte"
	case len(p) > 4095:
		return fmt.Sprintf("path is %d bytes, longer than PATH_MAX", len(p))
	}
	return ""
}

type escapeError struct {
	off int // 0-based within the word
	msg string
}

func (e *escapeError) Error() string { return e.msg }

// unescapePath undoes EscapePath.
func unescapePath(w []byte) (string, error) {
	if bytes.IndexByte(w, '\\') < 0 {
		return string(w), nil
	}
	out := make([]byte, 0, len(w))
	for i := 0; i < len(w); i++ {
		c := w[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if i+1 == len(w) {
			return "", &escapeError{i, `a \ ends the path (write \\ for a backslash)`}
		}
		i++
		switch w[i] {
		case '\\':
			out = append(out, '\\')
		case ' ':
			out = append(out, ' ')
		case 't':
			out = append(out, '\t')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 'x':
			if i+2 >= len(w) {
				return "", &escapeError{i - 1, `\x wants two hex digits`}
			}
			var b [1]byte
			if _, err := hex.Decode(b[:], w[i+1:i+3]); err != nil {
				return "", &escapeError{i - 1, fmt.Sprintf(`\x%s is not two hex digits`, w[i+1:i+3])}
			}
			out = append(out, b[0])
			i += 2
		default:
			r, _ := utf8.DecodeRune(w[i:])
			return "", &escapeError{i - 1, fmt.Sprintf(`unknown escape \%c (escapes: \\ \  \t \n \r \xHH)`, r)}
		}
	}
	return string(out), nil
}

// EscapePath writes p as one word of a trust file: a backslash, space, tab, newline and
// carriage return become \\ \  \t \n \r; other control bytes, DEL and bytes that are not
// UTF-8 become \xHH. Everything else, other UTF-8 included, stays as it is.
func EscapePath(p string) string {
	clean := true
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c == '\\' || c >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); {
		c := p[i]
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c == ' ':
			b.WriteString(`\ `)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c < ' ' || c == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(p[i:])
			if r == utf8.RuneError && size <= 1 {
				fmt.Fprintf(&b, `\x%02x`, c)
				i++
				continue
			}
			b.WriteString(p[i : i+size])
			i += size
			continue
		default:
			b.WriteByte(c)
		}
		i++
	}
	return b.String()
}

// FormatLine is an entry's trust-file line, without the newline: "PATH SIZE SHA256".
func FormatLine(path string, size int64, sha256 [32]byte) string {
	return EscapePath(path) + " " + strconv.FormatInt(size, 10) + " " + hex.EncodeToString(sha256[:])
}

// ReadFile opens, checks and parses the trust file name (see OpenFile and CheckOwner).
func ReadFile(name string) ([]Entry, error) {
	data, err := ReadChecked(name, "trust file")
	if err != nil {
		return nil, err
	}
	return ParseFile(name, bytes.NewReader(data))
}

// ReadChecked reads the file name that says what may run (what names it in errors: "trust
// file", "policy file"), opened with OpenFile and checked with CheckFile. When CheckFile
// refuses its owner or modes (an *OwnerError), the content is returned with that error, for
// a caller that only warns (policy check); any other error returns no content.
func ReadChecked(name, what string) ([]byte, error) {
	f, err := OpenFile(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var oe *OwnerError
	check := CheckFile(f, name, what)
	if check != nil && !errors.As(check, &oe) {
		return nil, check
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	return data, check
}

// OpenFile opens name for reading, as a trust file or another file that says what may run
// (a guard's policy file), is opened before CheckFile: without waiting for a writer if it is
// a FIFO (O_NONBLOCK, which changes nothing for a regular file), so that CheckFile can refuse
// it instead of hanging. A final symbolic link is followed.
func OpenFile(name string) (*os.File, error) {
	return os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}

// CheckOwner is CheckFile for a trust file.
func CheckOwner(f *os.File, name string) error { return CheckFile(f, name, "trust file") }

// OwnerError is CheckFile's refusal of a file, or of a directory above it, that someone other
// than root (or this process's user) could change. Its text names the file, what is wrong
// and the fix (chown, chmod).
type OwnerError struct{ msg string }

func (e *OwnerError) Error() string { return e.msg }

// CheckFile refuses a file that says what may run (what names it in errors: "trust file",
// "policy file") when someone other than root (or this process's user) could change it: the
// open file f must be a regular file, owned by root or by the effective uid and writable by
// nobody else; so must be every directory in which resolving name looks a name up — those
// above name, and where name goes through a symbolic link, those above the link's target,
// link by link, as the kernel resolves it — (a directory with the sticky bit, such as /tmp,
// may be writable by others: they cannot replace what they do not own), and every symbolic
// link it goes through must be owned by root or the effective uid. Checking only the
// directories above name let a policy named by a link in /etc/fsnotifyd live in a directory
// its user could write (rename another file over it, or remove it). f must be the file the
// resolution ends at (else it changed meanwhile: refused). Ownership and modes are refused
// with an *OwnerError.
func CheckFile(f *os.File, name, what string) error {
	euid := uint32(os.Geteuid())
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s %s is not a regular file (%s)", what, name, FileKind(fi.Mode()))
	}
	if msg := ownerProblem(fi, euid, false); msg != "" {
		return fileOwnerError(name, what, msg)
	}
	final, err := resolveOwned(name, name, what)
	if err != nil {
		return err
	}
	ri, err := os.Lstat(final)
	if err != nil {
		return err
	}
	if !os.SameFile(fi, ri) {
		return fmt.Errorf("%s %s changed while it was checked (it now leads to another file): try again", what, name)
	}
	return nil
}

// fileOwnerError is CheckFile's refusal of the file name (what: "trust file") for the reason
// msg (ownerProblem's).
func fileOwnerError(name, what, msg string) error {
	return &OwnerError{fmt.Sprintf("%s %s: %s: a %s must be writable only by root (chown root %s; chmod go-w %s)", what, name, msg, what, name, name)}
}

// CheckDirOf refuses, as CheckFile refuses the directories above a file it reads, the
// directories above name, a file that root creates or writes there (the daemon's socket, a
// trust file that `trust add` makes), which need not exist yet: each directory must be owned
// by root or the effective uid and writable by nobody else (sticky ones excepted), and each
// symbolic link on the way owned by them. Else another user could rename the file away and
// put theirs in its place, or a link where it is made. Errors name what, name, the directory
// or link, and the fix; refusals are *OwnerError.
func CheckDirOf(name, what string) error {
	dir := filepath.Dir(name)
	final, err := resolveOwned(dir, name, what)
	if err != nil {
		return err
	}
	di, err := os.Lstat(final)
	if err != nil {
		return err
	}
	return checkDir(final, di, name, what)
}

// resolveOwned is resolveChecked of path with the checks of CheckFile and CheckDirOf: every
// directory a name is looked up in, and every symbolic link followed, must be owned by root
// or the effective uid, and the directories writable by nobody else unless sticky. Errors
// speak of the file name (what: "trust file").
func resolveOwned(path, name, what string) (string, error) {
	euid := uint32(os.Geteuid())
	return resolveChecked(path, func(dir string, di os.FileInfo) error {
		return checkDir(dir, di, name, what)
	}, func(link string, li os.FileInfo) error {
		if st, ok := li.Sys().(*syscall.Stat_t); !ok || (st.Uid != 0 && st.Uid != euid) {
			return &OwnerError{fmt.Sprintf("%s %s: the symbolic link %s on its path is not owned by root: its owner can point it elsewhere (chown -h root %s)", what, name, link, link)}
		}
		return nil
	})
}

// checkDir is the refusal of dir (di its Lstat) above the file name.
func checkDir(dir string, di os.FileInfo, name, what string) error {
	if msg := ownerProblem(di, uint32(os.Geteuid()), true); msg != "" {
		return &OwnerError{fmt.Sprintf("%s %s: its directory %s: %s: whoever can write there can replace the file (chown root %s; chmod go-w %s)", what, name, dir, msg, dir, dir)}
	}
	return nil
}

// maxLinks is how many symbolic links resolveChecked follows in one name (the kernel's
// limit, ELOOP).
const maxLinks = 40

// resolveChecked resolves name component by component as the kernel does (".." after a
// link goes up from the link's target, not lexically), calling dir for each directory a
// name is looked up in (a path without symbolic links, and its Lstat) and link for each
// symbolic link followed, and returns the path without symbolic links it ends at. Either
// callback's error ends it.
func resolveChecked(name string, dir func(string, os.FileInfo) error, link func(string, os.FileInfo) error) (string, error) {
	path := name
	if !filepath.IsAbs(path) {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		path = wd + "/" + path
	}
	todo := strings.Split(path, "/")
	cur, links := "/", 0
	checked := map[string]bool{}
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur) // cur has no links: its parent is lexical
			continue
		}
		if !checked[cur] {
			di, err := os.Lstat(cur)
			if err != nil {
				return "", err
			}
			if err := dir(cur, di); err != nil {
				return "", err
			}
			checked[cur] = true
		}
		next := filepath.Join(cur, c)
		li, err := os.Lstat(next)
		if err != nil {
			return "", err
		}
		if li.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > maxLinks {
			return "", &os.PathError{Op: "resolve", Path: name, Err: syscall.ELOOP}
		}
		if err := link(next, li); err != nil {
			return "", err
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return cur, nil
}

func ownerProblem(fi os.FileInfo, euid uint32, isDir bool) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "cannot tell its owner"
	}
	return ownerModeProblem(st.Uid, fi.Mode(), euid, isDir)
}

// ownerModeProblem is ownerProblem of a file owned by uid with mode (os.FileMode's bits).
func ownerModeProblem(uid uint32, mode os.FileMode, euid uint32, isDir bool) string {
	if uid != 0 && uid != euid {
		return fmt.Sprintf("owned by uid %d", uid)
	}
	perm := mode.Perm()
	if isDir && mode&os.ModeSticky != 0 {
		return ""
	}
	if perm&0o022 != 0 {
		who := "others"
		if perm&0o002 == 0 {
			who = "its group"
		}
		return fmt.Sprintf("writable by %s (mode %04o)", who, perm)
	}
	return ""
}

// FileKind names what a file that is not a regular file is, for errors: "a directory",
// "a FIFO", "a symbolic link" ...
func FileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeSymlink != 0:
		return "a symbolic link"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	}
	return "not a regular file"
}

// DirFiles lists the trust files of dir: its *.trust regular files (not hidden ones), sorted
// by name. A missing dir has none.
func DirFiles(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var files []string
	for _, de := range des {
		n := de.Name()
		if strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ".trust") || !de.Type().IsRegular() {
			continue
		}
		files = append(files, filepath.Join(dir, n))
	}
	sort.Strings(files)
	return files, nil
}

// NewEntry is a file as it is now, for UpdateFile.
type NewEntry struct {
	Path   string // absolute, canonical
	Size   int64
	SHA256 [32]byte
}

// UpdateFile writes entries into the trust file name: the line of a path already listed is
// replaced where it is, other paths are appended; comments and other lines stay. It returns
// each entry's line number and whether it replaced a line. The file and its directory (mode
// 0755) are created when missing; an existing file must pass CheckOwner and parse (its error
// is returned, and nothing is written), and a new one's directories pass CheckDirOf; a
// symbolic link at name is followed only if CheckFile would (root's, in root's directories).
// The new content replaces the file atomically (rename: a guard reading it sees the old or
// the new file, never half), under an exclusive flock of the directory, so that two updates
// at once do not lose each other's lines.
func UpdateFile(name string, entries []NewEntry) (lines []int, replaced []bool, err error) {
	for _, e := range entries {
		if msg := checkPath(e.Path); msg != "" {
			return nil, nil, fmt.Errorf("%s", msg)
		}
		if e.Size < 0 {
			return nil, nil, fmt.Errorf("%s: negative size %d", EscapePath(e.Path), e.Size)
		}
	}
	// Replace the file a symbolic link leads to, not the link; but only through links and
	// directories nobody else could have changed (as the guard reads it): another user's link
	// in /tmp would have root rewrite a file of their choosing.
	real, err := resolveOwned(name, name, "trust file")
	switch {
	case err == nil:
		name = real
	case !errors.Is(err, os.ErrNotExist):
		return nil, nil, err
	}
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	if err := CheckDirOf(name, "trust file"); err != nil {
		return nil, nil, err
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil, nil, err
	}
	defer d.Close()
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX); err != nil {
		return nil, nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	defer syscall.Flock(int(d.Fd()), syscall.LOCK_UN)

	var text []string // the file's lines, without their newlines
	mode := os.FileMode(0o644)
	if f, err := OpenFile(name); err == nil {
		err := CheckOwner(f, name)
		var data []byte
		if err == nil {
			fi, _ := f.Stat()
			mode = fi.Mode().Perm() &^ 0o022
			data, err = io.ReadAll(f)
		}
		f.Close()
		if err != nil {
			return nil, nil, err
		}
		if _, err := ParseFile(name, bytes.NewReader(data)); err != nil {
			return nil, nil, err
		}
		if len(data) > 0 {
			text = strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	at := map[string]int{} // path -> index in text
	for i, l := range text {
		if e, ok, _ := parseLine(name, i+1, bytes.TrimSuffix([]byte(l), []byte("\r"))); ok {
			at[e.Path] = i
		}
	}
	for _, e := range entries {
		line := FormatLine(e.Path, e.Size, e.SHA256)
		i, ok := at[e.Path]
		if ok {
			text[i] = line
		} else {
			i = len(text)
			text = append(text, line)
			at[e.Path] = i
		}
		lines = append(lines, i+1)
		replaced = append(replaced, ok)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return nil, nil, err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	_, err = tmp.WriteString(strings.Join(text, "\n") + "\n")
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), name)
	}
	if err == nil {
		err = d.Sync()
	}
	if err != nil {
		return nil, nil, err
	}
	return lines, replaced, nil
}
