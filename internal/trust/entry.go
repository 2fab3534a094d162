package trust

import (
	"encoding/hex"
	"fmt"
	"strconv"
)

// Algo is a digest algorithm, or a set of them (MD5|SHA256).
type Algo uint8

const (
	// MD5 is what dpkg records for the files of a package (md5sums, and conffiles in status).
	MD5 Algo = 1 << iota
	// SHA256 is what trust files record, and what a policy's sha256= key compares.
	SHA256
)

// String is "md5", "sha256", or both joined with "+".
func (a Algo) String() string {
	switch a {
	case MD5:
		return "md5"
	case SHA256:
		return "sha256"
	case MD5 | SHA256:
		return "md5+sha256"
	case 0:
		return "none"
	}
	return "algo(" + strconv.Itoa(int(a)) + ")"
}

// Size is the digest's length in bytes (for a single algorithm).
func (a Algo) Size() int {
	switch a {
	case MD5:
		return 16
	case SHA256:
		return 32
	}
	return 0
}

// Digest is one algorithm's digest of a file's content.
type Digest struct {
	Algo Algo // MD5 or SHA256; 0 for none
	Sum  [32]byte
}

// Bytes is the digest's bytes (16 for md5, 32 for sha256).
func (d Digest) Bytes() []byte { return d.Sum[:d.Algo.Size()] }

// Hex is the digest in lower-case hex.
func (d Digest) Hex() string { return hex.EncodeToString(d.Bytes()) }

// String is "sha256:HEX" or "md5:HEX", "" for none.
func (d Digest) String() string {
	if d.Algo == 0 {
		return ""
	}
	return d.Algo.String() + ":" + d.Hex()
}

// SourceKind says where an entry comes from.
type SourceKind uint8

const (
	// FromPackage: the system's package manager (dpkg) installed the file.
	FromPackage SourceKind = iota + 1
	// FromFile: a line of a trust file.
	FromFile
)

// Source is where an entry comes from: a package (its name as dpkg -S prints it:
// "coreutils", "libc6:amd64") or a trust file's line.
type Source struct {
	Kind     SourceKind
	Package  string // FromPackage
	Conffile bool   // FromPackage: a configuration file, its digest from dpkg's status
	File     string // FromFile
	Line     int    // FromFile, 1-based
}

// String is "dpkg:coreutils", "dpkg:cron (conffile)" or "/etc/fsnotifyd/trust.d/local.trust:3".
func (s Source) String() string {
	switch s.Kind {
	case FromPackage:
		if s.Conffile {
			return "dpkg:" + s.Package + " (conffile)"
		}
		return "dpkg:" + s.Package
	case FromFile:
		return s.File + ":" + strconv.Itoa(s.Line)
	}
	return "none"
}

// Entry says that the file at Path is trusted when its content has Digest (and, when Size is
// not -1, Size bytes).
type Entry struct {
	Path   string // absolute, canonical: the path the kernel reports for the file
	Size   int64  // -1 when the source records none (dpkg)
	Digest Digest
	Source Source
}

func (e Entry) String() string {
	return fmt.Sprintf("%s %d %s (%s)", e.Path, e.Size, e.Digest, e.Source)
}
