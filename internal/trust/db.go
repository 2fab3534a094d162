package trust

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Config says which sources a DB is loaded from.
type Config struct {
	// Packages reads the system package manager's database (dpkg). The CLI turns it on by
	// default (guard --no-package-trust turns it off).
	Packages bool
	// DpkgDir is dpkg's administrative directory; "" is DefaultDpkgDir.
	DpkgDir string
	// Root is where package paths are resolved to canonical ones (the /usr merge); "" is "/".
	// Tests point DpkgDir and Root at a made-up system.
	Root string
	// Files are trust files to read, in order.
	Files []string
	// Dir is a directory whose *.trust files are read after Files (see DirFiles); a missing
	// Dir has none. The CLI uses DefaultDir when no file is named.
	Dir string
}

// DB is a loaded trust database: which content each path must have to be trusted, and who
// says so. It is immutable once loaded and safe for concurrent use; a reload builds a new one
// (Load) and the user swaps the pointer.
type DB struct {
	cfg     Config
	pkgs    *pkgIndex          // nil without Packages
	byPath  map[string][]Entry // trust-file entries by path
	entries []Entry            // trust-file entries in file order
	files   []string           // the trust files read
	inputs  []input            // what was read, for Changed
	stats   Stats
}

// Stats describes a loaded DB.
type Stats struct {
	TrustFiles   int           // trust files read
	TrustEntries int           // their entries
	Packages     PackageStats  // the package database's figures (zero without Packages)
	LoadTime     time.Duration // how long Load took
}

// input is a file or directory Load read, with what identified its content then.
type input struct {
	path string
	id   fileID // zero: it did not exist
}

type fileID struct {
	dev, ino, size uint64
	mtime, ctime   int64
}

func statID(path string) fileID {
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{}
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fileID{dev: st.Dev, ino: st.Ino, size: uint64(st.Size),
		mtime: st.Mtim.Sec*1e9 + st.Mtim.Nsec, ctime: st.Ctim.Sec*1e9 + st.Ctim.Nsec}
}

// FileError is Load's error about a trust file, or about Config.Dir itself (File is then
// Config.Dir), so that a caller can name the setting that chose it: InDir says it comes from
// Config.Dir, not Config.Files. Its text is Err's.
type FileError struct {
	File  string
	InDir bool
	Err   error
}

func (e *FileError) Error() string { return e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// Load reads the sources of cfg into a new DB. Loading reads files (the package database,
// the trust files): see the package doc for when a guard may do it. On error nothing is
// returned; a guard keeps its old DB.
func Load(cfg Config) (*DB, error) {
	t0 := time.Now()
	db := &DB{cfg: cfg, byPath: map[string][]Entry{}}
	files := append([]string(nil), cfg.Files...)
	if cfg.Dir != "" {
		db.inputs = append(db.inputs, input{cfg.Dir, statID(cfg.Dir)})
		more, err := DirFiles(cfg.Dir)
		if err != nil {
			return nil, &FileError{File: cfg.Dir, InDir: true, Err: fmt.Errorf("trust directory: %w", err)}
		}
		files = append(files, more...)
	}
	for i, name := range files {
		id := statID(name)
		entries, err := ReadFile(name)
		if err != nil {
			return nil, &FileError{File: name, InDir: i >= len(cfg.Files), Err: err}
		}
		db.inputs = append(db.inputs, input{name, id})
		db.files = append(db.files, name)
		for _, e := range entries {
			db.byPath[e.Path] = append(db.byPath[e.Path], e)
		}
		db.entries = append(db.entries, entries...)
	}
	db.stats.TrustFiles, db.stats.TrustEntries = len(db.files), len(db.entries)
	if cfg.Packages {
		dir := cfg.DpkgDir
		if dir == "" {
			dir = DefaultDpkgDir
		}
		root := cfg.Root
		if root == "" {
			root = "/"
		}
		for _, p := range []string{filepath.Join(dir, "status"), filepath.Join(dir, "diversions"), filepath.Join(dir, "info")} {
			db.inputs = append(db.inputs, input{p, statID(p)})
		}
		idx, err := loadDpkg(dir, root)
		if err != nil {
			return nil, err
		}
		db.pkgs = idx
		db.stats.Packages = idx.stats
	}
	db.stats.LoadTime = time.Since(t0)
	return db, nil
}

// Config returns the configuration db was loaded with (to load it again).
func (db *DB) Config() Config { return db.cfg }

// Stats returns figures of what db holds.
func (db *DB) Stats() Stats { return db.stats }

// Files returns the trust files db read, in order.
func (db *DB) Files() []string { return db.files }

// Lookup appends to buf the entries for path (the canonical path the kernel reports), trust
// files' first, and returns the extended slice. It reads nothing but memory, and allocates
// nothing when buf has room (a guard passes a small array's slice).
func (db *DB) Lookup(path string, buf []Entry) []Entry {
	buf = append(buf, db.byPath[path]...)
	if db.pkgs != nil {
		buf = db.pkgs.lookup(path, buf)
	}
	return buf
}

// Each calls f for every entry, trust files' first (in file order), then the packages', until
// f returns false.
func (db *DB) Each(f func(Entry) bool) {
	for _, e := range db.entries {
		if !f(e) {
			return
		}
	}
	if db.pkgs != nil {
		db.pkgs.each(f)
	}
}

// Len is the number of entries.
func (db *DB) Len() int {
	n := len(db.entries)
	if db.pkgs != nil {
		n += len(db.pkgs.recs)
	}
	return n
}

// Changed reports whether a source db was loaded from has changed on disk since (a trust file
// or the package database replaced, written, created or removed, a trust file added to or
// removed from Dir), and names one. It stats paths only (no open), so it is cheap enough to
// poll; a guard that sees a change loads a new DB.
func (db *DB) Changed() (bool, string) {
	for _, in := range db.inputs {
		if statID(in.path) != in.id {
			return true, in.path
		}
	}
	return false, ""
}
