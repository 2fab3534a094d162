package trust

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/lru"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/workslot"
)

// Status is the outcome of a verification.
type Status uint8

const (
	// NotListed: no source lists the path. The file is not trusted.
	NotListed Status = iota
	// Trusted: an entry for the path has the file's content.
	Trusted
	// Modified: the path is listed, but the content matches no entry for it (or its size
	// differs). The file is not trusted until it is listed again as it is now.
	Modified
	// Unverifiable: the file could not be hashed (not a regular file, a read error, changed
	// while it was read, or the deadline passed). The file is not trusted; Verify's error
	// says why.
	Unverifiable
)

var statusNames = [...]string{NotListed: "not-listed", Trusted: "trusted", Modified: "modified", Unverifiable: "unverifiable"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "unknown"
}

// Errors of Verify and Sums, besides the context's and read errors.
var (
	ErrNotRegular = errors.New("not a regular file")
	ErrChanged    = errors.New("the file changed while it was being hashed")
	// ErrOpenForWrite: the file was open for writing (a descriptor, or a shared writable
	// mapping) when it was to be hashed. A write through a mapping to a page it has already
	// dirtied changes the content with no trace (no ctime, no event): the content hashed
	// need not be the content used, so it is not vouched for (see Verifier.sums).
	ErrOpenForWrite = errors.New("the file is open for writing: its content can change with no trace while it is read")
	// ErrNotCached: VerifyCached could not answer without reading the file's content (no
	// digest of its content as it is now is in the hash cache).
	ErrNotCached = errors.New("the file's digest is not in the hash cache: answering needs its content read")
)

// Sums are a file's digests; Have says which were computed.
type Sums struct {
	Have   Algo
	Size   int64 // the bytes hashed: the file's size
	MD5    [16]byte
	SHA256 [32]byte
}

// Digest returns the digest for algo, if computed.
func (s Sums) Digest(algo Algo) (Digest, bool) {
	d := Digest{Algo: algo}
	switch {
	case algo == MD5 && s.Have&MD5 != 0:
		copy(d.Sum[:], s.MD5[:])
	case algo == SHA256 && s.Have&SHA256 != 0:
		d.Sum = s.SHA256
	default:
		return Digest{}, false
	}
	return d, true
}

func (s Sums) matches(e *Entry) bool {
	d, ok := s.Digest(e.Digest.Algo)
	return ok && d == e.Digest
}

// Result is a verification's outcome.
type Result struct {
	Status Status
	// Entry is the deciding entry: the one the content matched (Trusted), else the first one
	// listed for the path (Modified, Unverifiable). Zero for NotListed.
	Entry Entry
	// Actual is the file's digest in Entry's algorithm (zero if it was not hashed: NotListed,
	// a size that already differs, Unverifiable).
	Actual Digest
	// Sums are all the digests computed or found in the cache; Sums.SHA256 is there whenever
	// an entry with a sha256 was compared.
	Sums Sums
	// Cached says the digests came from the hash cache (no byte was read).
	Cached bool
}

// Trusted reports whether the file is trusted.
func (r Result) Trusted() bool { return r.Status == Trusted }

// String is a line for logs: "trusted (dpkg:coreutils, md5:...)".
func (r Result) String() string {
	switch r.Status {
	case NotListed:
		return "not-listed"
	case Trusted:
		return fmt.Sprintf("trusted (%s, %s)", r.Entry.Source, r.Entry.Digest)
	case Modified:
		if r.Actual.Algo == 0 {
			return fmt.Sprintf("modified (%s: size differs)", r.Entry.Source)
		}
		return fmt.Sprintf("modified (%s: %s, want %s)", r.Entry.Source, r.Actual, r.Entry.Digest)
	}
	return fmt.Sprintf("unverifiable (%s)", r.Entry.Source)
}

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// CacheEntries bounds the hash cache (files whose digests are remembered); 0 is 16384.
	CacheEntries int
	// ChunkSize is the size of each read while hashing; 0 is 128 KiB. The deadline is checked
	// between reads.
	ChunkSize int
	// Settle is how long ago a file must have last changed (its ctime) for its digests to be
	// cached; 0 is DefaultSettle. See DefaultSettle.
	Settle time.Duration
	// HashSlots bounds the files hashed at once; 0 is half the CPUs, at least 1. Hashing is
	// CPU-bound: more at once finish none sooner, and every running hash delays the rest of
	// the host and of the process — a guard's decisions at their late point among them, and,
	// through the daemon, the daemon that brings them, which must be made within a tenth of
	// the deadline however many files a user asks to have hashed. A hash waits for a slot
	// until its ctx ends. The slots are shared among the owners of the hashes that wait
	// (workslot.WithOwner on their ctx: a guard's decisions name the user of the process
	// they decide for), in turn, a chunk at a time: a running hash gives its slot to another
	// owner's that waits after each read, and goes on at its own owner's next turn. One user
	// asking for a thousand hashes delays another's by a chunk of each hash running, not by
	// the thousand hashes.
	HashSlots int
}

// DefaultSettle: digests of a file whose ctime is less than this before the fstat that
// identified it are not cached (it is hashed again next time). A write changes a file's
// ctime to the current time in the filesystem's granularity, which may be a clock tick
// (ramfs and other filesystems without multigrain timestamps: a few ms) or coarser (1 s on
// ext4 with small inodes, 2 s on FAT): a write in the same tick as the version that was
// hashed leaves size, mtime and ctime as they were, and a cache hit would vouch for the new
// content. A write after the identifying fstat gets a ctime no earlier than that fstat's
// time less the granularity, so once the cached ctime is older than that by more than any
// granularity, every later write moves it (every write that moves a time at all: see
// sums on writes through a mapping). 3 s is above every granularity and tick. (On
// filesystems with multigrain timestamps a write after any fstat already moves ctime: the
// rule costs them a hash per exec only for files changed in the last 3 s.) The same bound
// tells a reused inode number apart: the cached inode was open (the identifying fstat's
// descriptor) at that fstat, so a new inode with its number is created after it and gets a
// ctime no earlier than that fstat's time less the granularity, later than any cached ctime;
// no file handle is needed for that (see cachedSums.sameFile). Only root can step the clock
// back, which could make a later write's or a new file's ctime repeat a cached one.
const DefaultSettle = 3 * time.Second

// Verifier hashes files from their descriptors and remembers the digests by inode. One
// Verifier serves every decision (and every DB: digests do not depend on the trust sources);
// it is safe for concurrent use.
type Verifier struct {
	cache  *lru.Cache[inodeKey, cachedSums]
	chunk  int
	settle int64          // VerifierConfig.Settle in ns
	pool   sync.Pool      // *[]byte read buffers
	slots  *workslot.Fair // a slot per hash running (VerifierConfig.HashSlots), shared by owner

	mu     sync.Mutex // orders Forget with the store of a hash that was running meanwhile
	gen    uint64     // guarded by mu: one more per forgotten inode, forgetRing+1 more for ForgetAll
	recent [forgetRing]forgotten
	// hashing, guarded by mu: the files being hashed whose digests will be stored, each with
	// the channel its hash closes when it ends (sums).
	hashing map[inodeKey]chan struct{}

	hashes, hashedBytes, hits, unsettled atomic.Uint64
	openForWrite, uncacheable, shared    atomic.Uint64

	// afterChunk, when set (tests), runs after each read while hashing.
	afterChunk func(off int64)
	// beforeClaim, when set (tests), runs when a decision that missed the cache is about to
	// claim the hash of a file whose digests will be kept (sumsOnce).
	beforeClaim func()
}

// forgetRing is how many recent Forgets a running hash checks before storing its digests: a
// hash that saw more Forgets than this since it began does not store.
const forgetRing = 64

type forgotten struct {
	gen uint64
	key inodeKey
}

type inodeKey struct{ dev, ino uint64 }

// cachedSums are a file's digests and what identified its content when they were computed.
type cachedSums struct {
	size         uint64
	mtime, ctime int64
	sums         Sums
}

// NewVerifier returns a Verifier with an empty cache.
func NewVerifier(cfg VerifierConfig) *Verifier {
	if cfg.CacheEntries <= 0 {
		cfg.CacheEntries = 16384
	}
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = 128 << 10
	}
	if cfg.Settle <= 0 {
		cfg.Settle = DefaultSettle
	}
	if cfg.HashSlots <= 0 {
		cfg.HashSlots = max(1, runtime.NumCPU()/2)
	}
	v := &Verifier{cache: lru.New[inodeKey, cachedSums](cfg.CacheEntries), chunk: cfg.ChunkSize, settle: cfg.Settle.Nanoseconds(),
		slots: workslot.NewFair(cfg.HashSlots), hashing: make(map[inodeKey]chan struct{})}
	v.pool.New = func() any { b := make([]byte, v.chunk); return &b }
	return v
}

// Settle is how long ago a file must have last changed for its digests to be cached
// (VerifierConfig.Settle).
func (v *Verifier) Settle() time.Duration { return time.Duration(v.settle) }

// VerifierStats are a Verifier's counters.
type VerifierStats struct {
	Hashes      uint64 // files hashed
	HashedBytes uint64
	Hits        uint64 // verifications answered from the cache
	Cached      int    // files in the cache
	Evictions   uint64 // files dropped from the cache to make room
	Unsettled   uint64 // hashes not cached: the file changed less than Settle before
	// OpenForWrite counts files not hashed (ErrOpenForWrite): something could write them.
	OpenForWrite uint64
	// Uncacheable counts hashes not cached because a later write might not move the file's
	// ctime (its filesystem is not one of sys.WritesSeen's, or is on blocks another may
	// write: sys.DeviceWritesSeen) or whether anything could write it could not be asked
	// (sys.OpenForWrite failed: no leases there).
	Uncacheable uint64
	// Shared counts decisions that waited for another's hash of the same file (one whose
	// digests the cache keeps) instead of hashing it too, then looked in the cache again.
	Shared uint64
}

func (v *Verifier) Stats() VerifierStats {
	return VerifierStats{Hashes: v.hashes.Load(), HashedBytes: v.hashedBytes.Load(), Hits: v.hits.Load(),
		Cached: v.cache.Len(), Evictions: v.cache.Evictions(), Unsettled: v.unsettled.Load(),
		OpenForWrite: v.openForWrite.Load(), Uncacheable: v.uncacheable.Load(), Shared: v.shared.Load()}
}

// Verify says whether the file open as fd, which the kernel reported at path, is trusted by
// db. It reads db (memory) and fd (fstat and pread on the descriptor: the path is never
// opened); with no entry for path it reads nothing. Hashing stops at ctx's
// deadline: then the Result is Unverifiable and the error is ctx's. Any error means
// Unverifiable: the file is not trusted.
func (v *Verifier) Verify(ctx context.Context, db *DB, path string, fd int) (Result, error) {
	var buf [4]Entry
	return v.VerifyEntries(ctx, db.Lookup(path, buf[:0]), fd)
}

// VerifyEntries is Verify against the given entries (all for the file's path): trusted when
// the content matches any of them, compared in order.
func (v *Verifier) VerifyEntries(ctx context.Context, entries []Entry, fd int) (Result, error) {
	return v.verifyEntries(ctx, entries, fd, false)
}

// VerifyCached is Verify without reading the file's content: from the path's entries, the
// descriptor's fstat (as Verify identifies the file) and the hash cache only: one system call.
// When the answer would need the file hashed, it is an Unverifiable Result with ErrNotCached:
// the caller must then Verify (the guard does that off its kernel-reading goroutine). Every
// other answer is the one Verify would give now, since Verify takes the same cached digests
// under the same identity check.
func (v *Verifier) VerifyCached(db *DB, path string, fd int) (Result, error) {
	var buf [4]Entry
	return v.verifyEntries(context.Background(), db.Lookup(path, buf[:0]), fd, true)
}

func (v *Verifier) verifyEntries(ctx context.Context, entries []Entry, fd int, cacheOnly bool) (Result, error) {
	if len(entries) == 0 {
		return Result{Status: NotListed}, nil
	}
	res := Result{Status: Unverifiable, Entry: entries[0]}
	id, err := identify(fd)
	if err != nil {
		return res, err
	}
	// Entries whose size differs cannot match: a size check needs no hashing.
	var want Algo
	for i := range entries {
		if entries[i].Size < 0 || uint64(entries[i].Size) == id.size {
			want |= entries[i].Digest.Algo
		}
	}
	if want == 0 {
		res.Status = Modified
		return res, nil
	}
	sums, cached, err := v.sums(ctx, fd, id, want, cacheOnly)
	res.Sums, res.Cached = sums, cached
	if err != nil {
		return res, err
	}
	for i := range entries {
		e := &entries[i]
		if (e.Size < 0 || uint64(e.Size) == id.size) && sums.matches(e) {
			res.Status, res.Entry = Trusted, *e
			res.Actual, _ = sums.Digest(e.Digest.Algo)
			return res, nil
		}
	}
	res.Status = Modified
	res.Actual, _ = sums.Digest(res.Entry.Digest.Algo)
	if res.Entry.Size >= 0 && uint64(res.Entry.Size) != id.size {
		res.Actual = Digest{} // the first entry lost on its size
	}
	return res, nil
}

// Sums returns the digests want of the file open as fd (from the cache when its content is
// unchanged), for a policy's sha256= key and for audit lines.
func (v *Verifier) Sums(ctx context.Context, fd int, want Algo) (Sums, error) {
	return v.sumsOf(ctx, fd, want, false)
}

// CachedSums is Sums from the cache alone: ErrNotCached when the file would have to be hashed.
func (v *Verifier) CachedSums(fd int, want Algo) (Sums, error) {
	return v.sumsOf(context.Background(), fd, want, true)
}

// sumsOf is Sums, or CachedSums with cacheOnly.
func (v *Verifier) sumsOf(ctx context.Context, fd int, want Algo, cacheOnly bool) (Sums, error) {
	if want&^(MD5|SHA256) != 0 || want == 0 {
		return Sums{}, fmt.Errorf("trust: Sums of %v: want md5, sha256 or both", want)
	}
	id, err := identify(fd)
	if err != nil {
		return Sums{}, err
	}
	s, _, err := v.sums(ctx, fd, id, want, cacheOnly)
	return s, err
}

// Forget drops the cached digests of inode (dev, ino), and keeps a hash of it that is running
// now from being stored: the guard calls it when the file is modified (MODIFY, CLOSE_WRITE).
func (v *Verifier) Forget(dev, ino uint64) {
	key := inodeKey{dev, ino}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.gen++
	v.recent[v.gen%forgetRing] = forgotten{v.gen, key}
	v.cache.Delete(key) // lru.Cache's lock is a leaf below v.mu
}

// ForgetFd is Forget of the file open as fd.
func (v *Verifier) ForgetFd(fd int) error {
	st, err := sys.Fstat(fd)
	if err != nil {
		return err
	}
	v.Forget(st.Dev, st.Ino)
	return nil
}

// ForgetAll drops every cached digest, and keeps every hash running now from being stored: for
// a change of policy or trust sources, after which nothing computed before is reused.
func (v *Verifier) ForgetAll() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.gen += forgetRing + 1
	v.cache.Clear()
}

// fileIdentity is what identifies a file's content without reading it.
type fileIdentity struct {
	key          inodeKey
	size         uint64
	mtime, ctime int64
	at           int64 // the time just before the fstat, ns since the epoch (CLOCK_REALTIME)
}

func identify(fd int) (fileIdentity, error) {
	at := time.Now().UnixNano()
	st, err := sys.Fstat(fd)
	if err != nil {
		return fileIdentity{}, err
	}
	if st.Mode&sys.S_IFMT != sys.S_IFREG {
		return fileIdentity{}, ErrNotRegular
	}
	return fileIdentity{key: inodeKey{st.Dev, st.Ino}, size: st.Size, mtime: st.Mtime, ctime: st.Ctime, at: at}, nil
}

// sameFile: the cached digests are of the content of the file id identifies. The inode
// (device and number) is the cache's key; size, mtime and ctime must be those the digests
// were computed with. ctime alone would do (a write moves it, and size and mtime cannot change
// without it): nobody but the kernel sets it, to its clock, at every change of the inode,
// and digests are stored only for an inode whose ctime was VerifierConfig.Settle older than
// the identifying fstat (sums), so neither a later write (DefaultSettle) nor a later inode that
// reuses the number can have it: that inode is created after the cached one was freed, so
// after its identifying fstat, and its ctime is at least that fstat's time less the clock's
// granularity. Until 2026-12-05 the file handle (name_to_handle_at, with the inode's
// generation) was compared too, one more system call per exec for a case the ctime already
// decides; on filesystems whose ctime is not the kernel's (FUSE, a network filesystem's
// server) the handle is the server's too, so it told nothing the ctime does not.
// TestCacheInodeReuse reuses an inode number with the same size and mtime.
func (c *cachedSums) sameFile(id *fileIdentity) bool {
	return c.size == id.size && c.mtime == id.mtime && c.ctime == id.ctime
}

// sums returns the digests want of the file (id read from fd just now), from the cache or by
// hashing what is missing (cacheOnly: ErrNotCached instead of hashing). Of several decisions
// that would hash one file whose digests the cache will keep (storable), one hashes and the
// others wait for it (until ctx ends), then look in the cache again: a flood of opens of one
// large file hashes it once, not once per open — and what the others get is the cache's
// answer, under the cache's rules, never a digest passed by hand.
func (v *Verifier) sums(ctx context.Context, fd int, id fileIdentity, want Algo, cacheOnly bool) (Sums, bool, error) {
	for {
		s, cached, wait, err := v.sumsOnce(ctx, fd, id, want, cacheOnly)
		if wait == nil {
			return s, cached, err
		}
		workslot.Release(ctx) // a wait that needs no worker: give the caller's place back
		select {
		case <-wait:
		case <-ctx.Done():
			return Sums{}, false, ctx.Err()
		}
	}
}

// sumsOnce is one attempt of sums: wait, when not nil, is closed once the hash of the same
// file that another decision is running ends; sums then tries again.
func (v *Verifier) sumsOnce(ctx context.Context, fd int, id fileIdentity, want Algo, cacheOnly bool) (_ Sums, _ bool, wait <-chan struct{}, _ error) {
	v.mu.Lock()
	gen := v.gen
	v.mu.Unlock()
	have, ok := v.cached(&id)
	if ok && have.Have&want == want {
		v.hits.Add(1)
		return have, true, nil, nil
	}
	if cacheOnly {
		return Sums{}, false, nil, ErrNotCached
	}
	// Nothing may write the file while it is hashed, or the digests vouch for nothing: a
	// write through a shared mapping to a page it had dirtied before id was read changes the
	// content and moves no ctime, during the hash or after it (ErrOpenForWrite). Asked after
	// id was read: a writer that opens later makes its first write (write(2), or the first
	// write fault of its mapping) move the ctime, which the identity check after the hash,
	// or a later lookup, sees. Where the question cannot be asked (no leases on the
	// filesystem, fs.leases-enable 0, no CAP_LEASE for another's file) the digests are
	// computed and used, but not cached: the next decision hashes again.
	writers, probeErr := sys.OpenForWrite(fd)
	if writers {
		v.openForWrite.Add(1)
		return Sums{}, false, nil, ErrOpenForWrite
	}
	// And the digests are cached only where every later change is seen, by the ctime or by
	// that question (sys.WritesSeen: not on ramfs, where no write through a mapping moves
	// the ctime, nor on overlayfs, whose mappings the question cannot see), on blocks that
	// only the filesystem writes (sys.DeviceWritesSeen: not a loop device whose image its
	// user may write, where a file changes with no time moved; asked on a miss only).
	cacheable := probeErr == nil
	if fs, err := sys.Fstatfs(fd); err != nil || !sys.WritesSeen(fs.Type) || !sys.DeviceWritesSeen(id.key.dev) {
		cacheable = false
	}
	settled := id.ctime < id.at-v.settle
	if cacheable && settled {
		// Its digests will be stored: one hash for all who ask meanwhile (sums).
		if v.beforeClaim != nil {
			v.beforeClaim()
		}
		v.mu.Lock()
		if w, ok := v.hashing[id.key]; ok {
			v.mu.Unlock()
			v.shared.Add(1)
			return Sums{}, false, w, nil
		}
		// A hash of it that ran when the cache was read above, and has ended since, stored
		// its digests before it left hashing, under v.mu: look again rather than hash again.
		// TestNoHashAgainOfWhatAHashJustStored.
		if c, ok := v.cached(&id); ok && c.Have&want == want {
			v.mu.Unlock()
			v.hits.Add(1)
			return c, true, nil, nil
		}
		done := make(chan struct{})
		v.hashing[id.key] = done
		v.mu.Unlock()
		defer func() {
			v.mu.Lock()
			delete(v.hashing, id.key)
			v.mu.Unlock()
			close(done) // after the store: a waiter looks in the cache next
		}()
	}
	slot, err := v.slots.Acquire(ctx) // waiting, it gives the caller's place back
	if err != nil {
		return Sums{}, false, nil, err
	}
	sums, err := v.hash(ctx, &slot, fd, id.size, want&^have.Have)
	slot.Release()
	if err != nil {
		return Sums{}, false, nil, err
	}
	// The content must not have changed while it was read: the digests would be of a mix.
	after, err := identify(fd)
	if err != nil {
		return Sums{}, false, nil, err
	}
	if after.key != id.key || after.size != id.size || after.mtime != id.mtime || after.ctime != id.ctime {
		return Sums{}, false, nil, ErrChanged
	}
	sums.Size = int64(id.size)
	if have.Have&MD5 != 0 {
		sums.MD5, sums.Have = have.MD5, sums.Have|MD5
	}
	if have.Have&SHA256 != 0 {
		sums.SHA256, sums.Have = have.SHA256, sums.Have|SHA256
	}
	switch {
	case !cacheable:
		v.uncacheable.Add(1) // a later write might not be seen: not vouched for later
	case settled:
		v.storeIfUnforgotten(gen, id, sums)
	default:
		v.unsettled.Add(1) // changed too recently to vouch for a later one (DefaultSettle)
	}
	return sums, false, nil, nil
}

// cached: the digests the cache holds of the file id identifies (ok false: none).
func (v *Verifier) cached(id *fileIdentity) (_ Sums, ok bool) {
	c, ok := v.cache.Get(id.key)
	if !ok || !c.sameFile(id) {
		return Sums{}, false
	}
	return c.sums, true
}

// storeIfUnforgotten caches sums unless the inode was forgotten since gen (a write during the
// hash, or a ForgetAll).
func (v *Verifier) storeIfUnforgotten(gen uint64, id fileIdentity, sums Sums) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.gen-gen > forgetRing {
		return
	}
	for g := gen + 1; g <= v.gen; g++ {
		if f := v.recent[g%forgetRing]; f.gen == g && f.key == id.key {
			return
		}
	}
	v.cache.Put(id.key, cachedSums{size: id.size, mtime: id.mtime, ctime: id.ctime, sums: sums})
}

// hash reads the whole file with pread, from offset 0, and computes the digests algos in one
// pass. It reads in chunks, holding slot, which it yields between two chunks to another
// owner's hash that waits (workslot.Slot.Yield), and stops at ctx's deadline.
func (v *Verifier) hash(ctx context.Context, slot *workslot.Slot, fd int, size uint64, algos Algo) (Sums, error) {
	var s Sums
	var hs []hash.Hash
	var m5, s256 hash.Hash
	if algos&MD5 != 0 {
		m5 = md5.New()
		hs = append(hs, m5)
	}
	if algos&SHA256 != 0 {
		s256 = sha256.New()
		hs = append(hs, s256)
	}
	bp := v.pool.Get().(*[]byte)
	defer v.pool.Put(bp)
	buf := *bp
	var off int64
	for {
		if err := ctx.Err(); err != nil {
			return s, err
		}
		n, err := sys.Pread(fd, buf, off)
		if err != nil {
			return s, err
		}
		if n == 0 {
			break
		}
		for _, h := range hs {
			h.Write(buf[:n])
		}
		off += int64(n)
		if v.afterChunk != nil {
			v.afterChunk(off)
		}
		if err := slot.Yield(ctx); err != nil {
			return s, err
		}
	}
	if uint64(off) != size {
		return s, ErrChanged // the size fstat gave is not what was read
	}
	s.Size = off
	v.hashes.Add(1)
	v.hashedBytes.Add(uint64(off))
	if m5 != nil {
		m5.Sum(s.MD5[:0])
		s.Have |= MD5
	}
	if s256 != nil {
		s256.Sum(s.SHA256[:0])
		s.Have |= SHA256
	}
	return s, nil
}
