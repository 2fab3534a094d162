// Package trust is fsnotifyd's trust database: which files may be trusted (to run, to be
// loaded as libraries, to be read by interpreters), because the system's package manager
// installed them or a trust file lists them, as long as their content is what was installed
// or listed. docs/trust.md is the user's side of it.
//
// # Sources
//
//   - The package database (Config.Packages; dpkg on Debian): every file in an installed
//     package's md5sums (/var/lib/dpkg/info/PKG.md5sums) that the package's .list still owns
//     (a file taken over by another package belongs to that one only), and every conffile
//     with the digest dpkg's status records for it (a locally edited conffile is therefore
//     Modified). Diversions (/var/lib/dpkg/diversions) are applied: a package's copy of a
//     diverted path is looked for under the diverted name, except for the diverting package's
//     own. Paths are indexed by their canonical form as far as the first component goes: on
//     a merged-/usr system dpkg's /bin/cat is found as /usr/bin/cat, which the kernel reports.
//     Packages that are not installed (status other than installed, unpacked, half-configured
//     or triggers-*) are ignored; a package with no md5sums has no verifiable files.
//   - Trust files (Config.Files, and Config.Dir's *.trust): lines of "PATH SIZE SHA256"
//     (ParseFile, FormatLine). A trust file, and every directory above it, must be writable
//     only by root (CheckOwner): who can edit it can run anything.
//
// A path may have several entries (two packages, a package and a trust file): the file is
// trusted when its content matches any of them.
//
// # Decisions
//
// Verifier.Verify(ctx, db, path, fd) answers for one access: the path is the one the kernel
// reported for the event, fd the event's descriptor. It never opens a path: Lookup is a
// memory read, and the content is read from fd with fstat and pread (the
// descriptor's file offset is not moved). Hashing streams in chunks (no whole-file read), md5
// and sha256 in one pass when the entries want both, at most VerifierConfig.HashSlots files at
// once (a hash waits for a slot: the slots are shared among the owners that wait, in turn, a
// chunk at a time, workslot.Fair), and stops at ctx's deadline (the guard's late point).
//
// The hash cache remembers a file's digests by inode (device, inode number) together with its
// size, mtime and ctime; a lookup whose fstat differs in any of them is a miss. So a second
// exec of an unchanged binary costs one fstat, no reading.
// A write moves mtime and ctime (the kernel gives every change after a stat a new timestamp on
// filesystems with multigrain timestamps, ext4, xfs, btrfs and tmpfs since Linux 6.13; on
// others a write in the same clock tick, or the same second or two where the granularity is
// that coarse, may keep them): so digests are stored only when the file's ctime is at least
// VerifierConfig.Settle (DefaultSettle, 3 s) older than the time taken just before the
// identifying fstat, after which every write moves ctime; and a new file that reuses a freed
// inode number is created after that fstat (the cached inode was open then), so its ctime
// differs from the cached one too, with the same size and mtime (no file handle is compared:
// cachedSums.sameFile says why).
// Every write, that is, but one: a write through a shared writable mapping to a page that
// mapping had already dirtied moves no time and makes no event (until the mapping goes: a
// CLOSE_WRITE). So before hashing, after the identifying fstat, the Verifier asks whether the
// file is open for writing anywhere (sys.OpenForWrite, a read lease the kernel refuses exactly
// then): if it is, the file is Unverifiable (ErrOpenForWrite) and nothing is cached; a writer
// that opens after the question moves ctime with its first write (write(2), or the first write
// fault of each new mapping). Digests are cached only where both hold (sys.WritesSeen): not on
// ramfs (no mapped write moves its times) nor overlayfs (the question cannot see a mapping of
// its upper file). TestHostileDirtyMappedPage. Nor on blocks another than the filesystem may
// write (sys.DeviceWritesSeen: a loop device whose image is not root's alone, where its user
// changes a file with no time moved).
// On top of that the guard calls Forget on MODIFY and CLOSE_WRITE, and ForgetAll when the
// policy or the trust sources change. A hash running while its inode is forgotten does not
// store its result, and a file whose size or times change while it is being read is
// Unverifiable (ErrChanged), never trusted.
//
// # No self-deadlock
//
// Load reads files: the package database and the trust files. A guard must load before it
// places its marks, or load from a thread of a process the kernel never asks it about (the
// backend exempts the guard's own pid); a reload is built in the background and swapped in
// (the DB is immutable: decisions in flight keep the one they started with). Nothing at
// decision time opens a path: DB.Lookup reads memory, Verifier reads the descriptor it is
// given. A descriptor the guard opens itself (/proc/PID/exe for a trusted_exe= key) is read
// by the guard's own pid, which the backend exempts. DB.Changed, for polling the sources,
// only stats paths.
//
// # Locks and goroutines
//
// The package starts no goroutine. Locks, outermost first:
//
//	Verifier.mu      the forget generation and ring, and the files being hashed whose
//	                 digests will be kept (hashing); held while storing into or deleting
//	                 from the cache, so that a Forget cannot slip between a hash's check
//	                 and its store, and while looking in it once more before claiming a
//	                 hash, so that a hash that ended since the first look is not run again
//	└── lru.Cache.mu the hash cache (a leaf; a cache hit takes only this one)
//
// No lock is held while reading a file, and no method calls out while holding one. A hash
// holds a slot of Verifier.slots (a workslot.Fair, not a lock: taken with no lock held, waited
// for until ctx ends, yielded between two chunks to another owner's hash that waits and taken
// back at its owner's turn, given back when the hash returns; its mutex is a leaf, held by
// none of the calls here) while it reads; a decision waiting
// for another's hash of the same file waits, with no lock held, on the channel that hash
// closes once it stored its digests (or failed). Before either wait it gives back its
// caller's place among the guard's handlers (workslot.Release on ctx), never taken again.
package trust
