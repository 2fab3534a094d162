package trust

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"math/bits"
	"os"
	"path/filepath"
	"strings"

	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// DefaultDpkgDir is dpkg's administrative directory.
const DefaultDpkgDir = "/var/lib/dpkg"

// pkgIndex is the files of the installed packages with their md5 digests, in a form that
// loads fast and costs the garbage collector nothing: the paths in 1 MiB byte chunks (filled
// once, never grown or copied: a load touches little more memory than the index keeps),
// fixed-size records, and an open-addressing table of record numbers. Immutable once built.
type pkgIndex struct {
	chunks [][]byte // the canonical paths, one after the other
	recs   []pkgRec // one per (path, package); a path may have several
	table  []uint32 // record number + 1, 0 for an empty slot; len is a power of two
	seed   maphash.Seed
	pkgs   []string // package names, as dpkg -S prints them ("coreutils", "libc6:amd64")

	stats PackageStats
}

// Path chunks: a record's off is its chunk number << chunkBits | its offset in the chunk.
const (
	chunkBits = 20
	chunkSize = 1 << chunkBits
)

// pkgRec is a file of a package: where its path is and its md5.
type pkgRec struct {
	off  uint32 // chunk << chunkBits | offset
	n    uint16
	conf uint16 // 1 for a conffile
	pkg  uint32 // index in pkgs
	md5  [16]byte
}

// PackageStats describes what was read from the package database.
type PackageStats struct {
	Packages         int // installed packages with files
	Files            int // files with a digest (md5sums lines owned by their package)
	Conffiles        int // configuration files with a digest (from status)
	WithoutChecksums int // installed packages with a .list but no .md5sums: their files stay untrusted
	NotInstalled     int // info files of packages whose status is not installed (ignored)
	NotListed        int // md5sums lines whose path the package no longer owns (replaced by another)
	Diverted         int // files found under a diversion's name
	Aliased          int // files found under their canonical path (/bin/cat -> /usr/bin/cat)
	InfoBytes        int64
	IndexBytes       int // memory of the index: paths, records, table
}

// dpkgShared is what the status and diversions said, for reading the packages.
type dpkgShared struct {
	div  map[string]diversion // dpkg path -> diversion
	top  map[string]string    // first path component that is a symbolic link -> its canonical directory ("bin" -> "/usr/bin")
	seed maphash.Seed
}

// dpkgLoader is a load's state: the records built so far and the buffers.
type dpkgLoader struct {
	sh      *dpkgShared
	chunks  [][]byte   // paths; the last one is being filled
	recs    [][]pkgRec // in blocks of recBlock, the last one being filled
	stats   PackageStats
	buf     []byte   // file reader buffer, reused
	listed  []uint64 // the current package's .list (resetListed)
	nlisted int
	scratch []byte
	euid    uint32 // owner besides root whose files are taken (CheckFile's rule)
}

// dpkgError is err of reading the database, said as such (a refusal of CheckFile's rule
// already says so).
func dpkgError(err error) error {
	var oe *OwnerError
	if errors.As(err, &oe) {
		return err
	}
	return fmt.Errorf("package database: %w", err)
}

// dpkgWhat names the package database in the errors of CheckFile's rule.
const dpkgWhat = "package database"

type diversion struct {
	to, by string // by: the package that diverts ("" for a local diversion, ":" in the file)
}

// pkgJob is an installed package to read.
type pkgJob struct {
	name    string
	no      uint32 // index in pkgIndex.pkgs
	st      *pkgStatus
	hasSums bool
}

// loadDpkg reads dpkg's database below dir. root is where the packages' paths are resolved
// (only the first component: the /usr merge's /bin -> /usr/bin).
//
// The database says what may run, as a trust file does, and is held to the same rule
// (CheckFile's): its directory, its info directory and every directory above them, and each
// file read, must be owned by root (or this process's user) and writable by nobody else.
// Else whoever could write there (a `--dpkg-dir` in their home, a group-writable copy of an
// image's database) would choose the digests that are trusted. Each file is checked on the
// descriptor it is read from (fstat): a file another user owns in root's directory (a hard
// link made before the directory was root's) is refused too.
func loadDpkg(dir, root string) (*pkgIndex, error) {
	sh := &dpkgShared{seed: maphash.MakeSeed()}
	l := &dpkgLoader{sh: sh, euid: uint32(os.Geteuid())}
	infoDir := filepath.Join(dir, "info")
	for _, f := range []string{filepath.Join(dir, "status"), filepath.Join(infoDir, "*.list")} {
		if err := CheckDirOf(f, dpkgWhat); err != nil {
			return nil, dpkgError(err)
		}
	}
	var err error
	if sh.div, err = l.readDiversions(filepath.Join(dir, "diversions")); err != nil {
		return nil, err
	}
	status, err := l.readStatus(filepath.Join(dir, "status"))
	if err != nil {
		return nil, err
	}
	if sh.top, err = symlinkedTops(root); err != nil {
		return nil, err
	}
	des, err := os.ReadDir(infoDir)
	if err != nil {
		return nil, dpkgError(err)
	}
	// Every installed package has a .list; the files with digests are in its .md5sums.
	hasSums := map[string]bool{}
	for _, de := range des {
		if name, ok := strings.CutSuffix(de.Name(), ".md5sums"); ok {
			hasSums[name] = true
		}
	}
	idx := &pkgIndex{seed: sh.seed}
	var jobs []pkgJob
	for _, de := range des {
		pkg, ok := strings.CutSuffix(de.Name(), ".list")
		if !ok {
			continue
		}
		st := status.lookup(pkg)
		if st == nil || !st.installed {
			idx.stats.NotInstalled++
			continue
		}
		jobs = append(jobs, pkgJob{pkg, uint32(len(idx.pkgs)), st, hasSums[pkg]})
		idx.pkgs = append(idx.pkgs, pkg)
	}
	idx.stats.Packages = len(jobs)
	// One goroutine: reading the packages in two was no faster on a 2-vCPU machine that
	// others use (more CPU for the same wall time); the work is system calls and cache misses.
	for _, j := range jobs {
		if err := l.readPackage(infoDir, j); err != nil {
			return nil, err
		}
	}
	idx.finish(l)
	return idx, nil
}

// symlinkedTops maps each top-level directory of root that is a symbolic link to the canonical
// directory it leads to, as a path in root: {"bin": "/usr/bin", "lib64": "/usr/lib64"} on a
// merged-/usr system.
func symlinkedTops(root string) (map[string]string, error) {
	des, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("package database: resolving paths: %w", err)
	}
	top := map[string]string{}
	for _, de := range des {
		if de.Type()&os.ModeSymlink == 0 {
			continue
		}
		real, err := filepath.EvalSymlinks(filepath.Join(root, de.Name()))
		if err != nil {
			continue // dangling: nothing is found through it
		}
		if rel, err := filepath.Rel(root, real); err == nil && rel != de.Name() && !strings.HasPrefix(rel, "..") {
			top[de.Name()] = "/" + rel
		}
	}
	return top, nil
}

// finish takes the loader's records and indexes them.
func (x *pkgIndex) finish(l *dpkgLoader) {
	nr := 0
	for _, b := range l.recs {
		nr += len(b)
	}
	x.recs = make([]pkgRec, 0, nr)
	for _, b := range l.recs {
		x.recs = append(x.recs, b...)
	}
	x.chunks = l.chunks
	s := &l.stats
	x.stats.Files, x.stats.Conffiles, x.stats.WithoutChecksums = s.Files, s.Conffiles, s.WithoutChecksums
	x.stats.NotListed, x.stats.Diverted, x.stats.Aliased = s.NotListed, s.Diverted, s.Aliased
	x.stats.InfoBytes = s.InfoBytes
	x.buildTable()
}

// pkgBase is a package's name without its architecture ("libc6:amd64" -> "libc6"), as
// diversions name it.
func pkgBase(pkg string) string {
	if i := strings.IndexByte(pkg, ':'); i >= 0 {
		return pkg[:i]
	}
	return pkg
}

// eachLine calls f for each line of the file name (without its newline; valid only during
// the call). It streams the file through the loader's buffer (256 KiB, grown only for a longer
// line): a load reads about 16 MB in 1,400 files, and a buffer the size of the largest one
// costs page faults for memory touched once.
func (l *dpkgLoader) eachLine(name string, f func(line []byte)) error {
	// O_NONBLOCK: a FIFO is refused below instead of waiting for a writer.
	fd, err := sys.Open(name, sys.O_RDONLY|sys.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer sys.Close(fd)
	st, err := sys.Fstat(fd)
	if err != nil {
		return err
	}
	if st.Mode&sys.S_IFMT != sys.S_IFREG {
		return fmt.Errorf("%s is not a regular file", name)
	}
	if msg := ownerModeProblem(st.Uid, os.FileMode(st.Mode&0o777), l.euid, false); msg != "" {
		return fileOwnerError(name, dpkgWhat, msg)
	}
	if l.buf == nil {
		l.buf = make([]byte, 256<<10)
	}
	var off int64
	keep := 0 // bytes of an unfinished line at the start of buf
	for {
		if keep == len(l.buf) {
			l.buf = append(l.buf, make([]byte, len(l.buf))...)
		}
		n, err := sys.Pread(fd, l.buf[keep:], off)
		if err != nil {
			return err
		}
		off += int64(n)
		l.stats.InfoBytes += int64(n)
		data := l.buf[:keep+n]
		for {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				break
			}
			f(data[:i])
			data = data[i+1:]
		}
		if n == 0 {
			if len(data) > 0 {
				f(data) // no newline at the end
			}
			return nil
		}
		keep = copy(l.buf, data)
	}
}

// readDiversions reads dpkg's diversions: three lines per diversion (the path, where other
// packages' copies of it go, the package that diverts or ":" for a local diversion).
func (l *dpkgLoader) readDiversions(name string) (map[string]diversion, error) {
	var lines []string
	err := l.eachLine(name, func(line []byte) { lines = append(lines, string(line)) })
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, dpkgError(err)
	}
	if len(lines)%3 != 0 {
		return nil, fmt.Errorf("package database: %s: %d lines, not three per diversion", name, len(lines))
	}
	div := make(map[string]diversion, len(lines)/3)
	for i := 0; i < len(lines); i += 3 {
		by := lines[i+2]
		if by == ":" {
			by = ""
		}
		div[lines[i]] = diversion{to: lines[i+1], by: by}
	}
	return div, nil
}

// pkgStatus is what dpkg's status file says of a package.
type pkgStatus struct {
	installed bool // its files are on disk: installed, unpacked, half-configured, triggers-*
	conffiles []conffile
}

type conffile struct {
	path string
	md5  [16]byte
}

type statusDB map[string]*pkgStatus // by "name" and "name:arch"

// lookup finds the status of the package whose info files are named pkg.
func (s statusDB) lookup(pkg string) *pkgStatus {
	if st := s[pkg]; st != nil {
		return st
	}
	return s[pkgBase(pkg)]
}

// readStatus reads the installed state and conffiles of every package from dpkg's status file.
func (l *dpkgLoader) readStatus(name string) (statusDB, error) {
	db := statusDB{}
	var pkg, arch string
	var st *pkgStatus
	inConf := false
	flush := func() {
		if pkg != "" && st != nil {
			db[pkg] = st
			if arch != "" {
				db[pkg+":"+arch] = st
			}
		}
		pkg, arch, st, inConf = "", "", &pkgStatus{}, false
	}
	flush()
	err := l.eachLine(name, func(line []byte) {
		if len(line) == 0 {
			flush()
			return
		}
		if line[0] == ' ' || line[0] == '\t' {
			if inConf {
				if c, ok := parseConffile(string(line)); ok {
					st.conffiles = append(st.conffiles, c)
				}
			}
			return
		}
		inConf = false
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return
		}
		switch string(key) {
		case "Package":
			pkg = string(bytes.TrimSpace(val))
		case "Architecture":
			arch = string(bytes.TrimSpace(val))
		case "Status":
			f := bytes.Fields(val)
			if len(f) == 3 {
				switch string(f[2]) {
				case "installed", "unpacked", "half-configured", "triggers-awaited", "triggers-pending":
					st.installed = true
				}
			}
		case "Conffiles":
			inConf = true
		}
	})
	if err != nil {
		return nil, dpkgError(err)
	}
	flush()
	return db, nil
}

// parseConffile parses a Conffiles line: " PATH MD5 [obsolete] [remove-on-upgrade]". An
// obsolete conffile (no longer shipped) and a digest that is not an md5 ("newconffile") are
// skipped.
func parseConffile(line string) (conffile, bool) {
	f := strings.Fields(line)
	for len(f) > 2 && (f[len(f)-1] == "obsolete" || f[len(f)-1] == "remove-on-upgrade") {
		if f[len(f)-1] == "obsolete" {
			return conffile{}, false
		}
		f = f[:len(f)-1]
	}
	if len(f) < 2 {
		return conffile{}, false
	}
	sum := f[len(f)-1]
	// The path may hold spaces: it is the line up to the digest.
	p := strings.TrimSpace(line)
	p = strings.TrimSpace(p[:strings.LastIndex(p, sum)])
	var c conffile
	if len(sum) != 32 || !strings.HasPrefix(p, "/") {
		return c, false
	}
	if _, err := hex.Decode(c.md5[:], []byte(sum)); err != nil {
		return c, false
	}
	c.path = p
	return c, true
}

// readPackage adds the files of a package's md5sums that its .list still owns, and its
// conffiles.
func (l *dpkgLoader) readPackage(infoDir string, j pkgJob) error {
	base := pkgBase(j.name)
	if j.hasSums {
		l.resetListed()
		if err := l.eachLine(filepath.Join(infoDir, j.name+".list"), l.addListed); err != nil {
			return dpkgError(err)
		}
		err := l.eachLine(filepath.Join(infoDir, j.name+".md5sums"), func(line []byte) {
			sum, p, ok := parseSumsLine(line)
			if !ok {
				return
			}
			l.scratch = append(append(l.scratch[:0], '/'), p...)
			if !l.isListed(l.scratch) {
				l.stats.NotListed++
				return
			}
			if isConffile(j.st, l.scratch) {
				return // added below, as a conffile
			}
			l.add(l.scratch, j.no, false, sum, base)
			l.stats.Files++
		})
		if err != nil {
			return dpkgError(err)
		}
	} else if len(j.st.conffiles) == 0 {
		l.stats.WithoutChecksums++
	}
	for _, c := range j.st.conffiles {
		l.add([]byte(c.path), j.no, true, c.md5, base)
		l.stats.Conffiles++
	}
	return nil
}

func isConffile(st *pkgStatus, p []byte) bool {
	for _, c := range st.conffiles {
		if c.path == string(p) {
			return true
		}
	}
	return false
}

// parseSumsLine parses an md5sums line, "MD5  PATH" (md5sum's format, the path relative to
// /; a leading backslash means the path has \\ and \n escapes).
func parseSumsLine(line []byte) (sum [16]byte, p []byte, ok bool) {
	escaped := len(line) > 0 && line[0] == '\\'
	if escaped {
		line = line[1:]
	}
	if len(line) < 35 || (line[32] != ' ') || (line[33] != ' ' && line[33] != '*') {
		return sum, nil, false
	}
	if _, err := hex.Decode(sum[:], line[:32]); err != nil {
		return sum, nil, false
	}
	p = line[34:]
	if escaped {
		p = bytes.ReplaceAll(bytes.ReplaceAll(p, []byte(`\n`), []byte("\n")), []byte(`\\`), []byte(`\`))
	}
	p = bytes.TrimPrefix(p, []byte("./"))
	p = bytes.TrimPrefix(p, []byte("/"))
	return sum, p, len(p) > 0
}

// l.listed is the current package's .list: an open-addressing set of path hashes (0 marks an
// empty slot), grown by doubling when half full.
func (l *dpkgLoader) resetListed() {
	const initial = 1024
	if cap(l.listed) < initial {
		l.listed = make([]uint64, initial)
	}
	l.listed = l.listed[:initial]
	clear(l.listed)
	l.nlisted = 0
}

func (l *dpkgLoader) addListed(line []byte) {
	if len(line) == 0 {
		return
	}
	if 2*(l.nlisted+1) > len(l.listed) {
		old := append([]uint64(nil), l.listed...)
		if cap(l.listed) >= 2*len(old) {
			l.listed = l.listed[:2*len(old)]
			clear(l.listed)
		} else {
			l.listed = make([]uint64, 2*len(old))
		}
		for _, h := range old {
			if h != 0 {
				l.insertListed(h)
			}
		}
	}
	if l.insertListed(maphash.Bytes(l.sh.seed, line) | 1) {
		l.nlisted++
	}
}

func (l *dpkgLoader) insertListed(h uint64) bool {
	mask := uint64(len(l.listed) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch l.listed[i] {
		case 0:
			l.listed[i] = h
			return true
		case h:
			return false
		}
	}
}

func (l *dpkgLoader) isListed(p []byte) bool {
	mask := uint64(len(l.listed) - 1)
	h := maphash.Bytes(l.sh.seed, p) | 1
	for i := h & mask; ; i = (i + 1) & mask {
		switch l.listed[i] {
		case 0:
			return false
		case h:
			return true
		}
	}
}

// add records that pkg installed the file dpkgPath with digest md5, at its diverted and
// canonical path.
func (l *dpkgLoader) add(dpkgPath []byte, pkgNo uint32, conf bool, md5 [16]byte, base string) {
	p := dpkgPath
	if d, ok := l.sh.div[string(p)]; ok && d.by != base {
		// Another package diverted this path: this package's copy lives under d.to.
		p = []byte(d.to)
		l.stats.Diverted++
	}
	dir, tail := l.canonicalTop(p)
	n := len(dir) + len(tail)
	if n > 0xffff {
		return // longer than any path the kernel reports
	}
	if dir != "" {
		l.stats.Aliased++
	}
	last := len(l.chunks) - 1
	if last < 0 || chunkSize-len(l.chunks[last]) < n {
		l.chunks = append(l.chunks, make([]byte, 0, chunkSize))
		last++
	}
	off := uint32(last)<<chunkBits | uint32(len(l.chunks[last]))
	l.chunks[last] = append(append(l.chunks[last], dir...), tail...)
	lb := len(l.recs) - 1
	if lb < 0 || len(l.recs[lb]) == cap(l.recs[lb]) {
		l.recs = append(l.recs, make([]pkgRec, 0, recBlock))
		lb++
	}
	r := pkgRec{off: off, n: uint16(n), pkg: pkgNo, md5: md5}
	if conf {
		r.conf = 1
	}
	l.recs[lb] = append(l.recs[lb], r)
}

// canonicalTop resolves p's first component: on a merged-/usr system /bin, /sbin and /lib*
// are symbolic links into /usr, and the kernel reports /usr/bin/cat for dpkg's /bin/cat. The
// canonical path is dir+tail; dir is "" when p is canonical already (tail is then p). Deeper
// symbolic links are not followed (no package on Debian 12 installs files below one; a file
// only reachable through one is not found, so it stays untrusted).
func (l *dpkgLoader) canonicalTop(p []byte) (dir string, tail []byte) {
	if len(p) < 2 {
		return "", p
	}
	i := bytes.IndexByte(p[1:], '/')
	if i < 0 {
		return "", p
	}
	dir, ok := l.sh.top[string(p[1:1+i])]
	if !ok {
		return "", p
	}
	return dir, p[1+i:]
}

// recBlock is how many records a loader allocates at a time.
const recBlock = 4096

// buildTable indexes the records by path.
func (x *pkgIndex) buildTable() {
	size := 1 << bits.Len(uint(2*len(x.recs)))
	x.table = make([]uint32, size)
	mask := uint64(size - 1)
	for i := range x.recs {
		h := maphash.Bytes(x.seed, x.path(i))
		j := h & mask
		for x.table[j] != 0 {
			j = (j + 1) & mask
		}
		x.table[j] = uint32(i + 1)
	}
	x.stats.IndexBytes = len(x.recs)*28 + len(x.table)*4
	for _, c := range x.chunks {
		x.stats.IndexBytes += len(c)
	}
}

func (x *pkgIndex) path(i int) []byte {
	r := &x.recs[i]
	o := r.off & (chunkSize - 1)
	return x.chunks[r.off>>chunkBits][o : o+uint32(r.n)]
}

// lookup appends p's entries to buf.
func (x *pkgIndex) lookup(p string, buf []Entry) []Entry {
	if len(x.table) == 0 {
		return buf
	}
	mask := uint64(len(x.table) - 1)
	for j := maphash.String(x.seed, p) & mask; x.table[j] != 0; j = (j + 1) & mask {
		i := int(x.table[j] - 1)
		if string(x.path(i)) == p {
			buf = append(buf, x.entry(i, p))
		}
	}
	return buf
}

func (x *pkgIndex) entry(i int, p string) Entry {
	r := &x.recs[i]
	e := Entry{Path: p, Size: -1, Source: Source{Kind: FromPackage, Package: x.pkgs[r.pkg], Conffile: r.conf != 0}}
	e.Digest.Algo = MD5
	copy(e.Digest.Sum[:], r.md5[:])
	return e
}

// each calls f for every entry, in package order, until f returns false.
func (x *pkgIndex) each(f func(Entry) bool) bool {
	for i := range x.recs {
		if !f(x.entry(i, string(x.path(i)))) {
			return false
		}
	}
	return true
}
