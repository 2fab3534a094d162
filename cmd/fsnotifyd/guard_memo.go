//go:build linux

package main

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/lru"
	"github.com/fsnotifyd/fsnotifyd/internal/policy"
	"github.com/fsnotifyd/fsnotifyd/notify"
)

// The exec memo: the decision of an exec, remembered for the next exec of the same file by the
// same path under the same state, so that a program run again and again (a shell loop, a build)
// is answered on the kernel reader from one lookup instead of the rules, the trust database and
// the hash cache (its fstat included). Invariant (docs/security.md, "The exec memo"): a
// remembered decision is given only where the rules would give the same one now:
//
//   - the state is the one it was decided under (entries name it; a store clears the memo),
//     so the rules and the trust database are the same;
//   - every rule that applies to exec reads nothing but the path and the file
//     (policy.DecidesByFile: no process attribute, no mount attribute), so the process does
//     not matter;
//   - the path is the same (read again for each exec, and checked to name the file, as every
//     decision's is) and the file is the same inode with the same size, mtime and ctime as
//     the backend's statx of the event's descriptor read them (notify.Request.InlineStamp, no
//     system call), with that ctime older than the trust hash cache's settle time
//     (trust.DefaultSettle) when the decision was kept: any later change of the inode (a
//     write, a truncate, a rename, a link, a chmod) gets a ctime no earlier than its own time
//     less the clock's granularity, so a different one, and an inode that reuses the number
//     was created after the remembered one was freed, with a ctime of its own — the
//     argument of the hash cache (trust: cachedSums.sameFile), which the memo follows (a
//     write through a mapping to a page it had already dirtied moves no ctime: a decision
//     that read the content is inline only from a digest the hash cache kept, which it keeps
//     only for a file nothing had open for writing, where every later write is seen:
//     trust.ErrOpenForWrite, sys.WritesSeen);
//   - a file the guard's forgetter sees written (MODIFY, CLOSE_WRITE; all of them when its
//     queue overflowed) is forgotten here as in the hash cache, and a decision made while a
//     forget came is not kept.
//
// It is off (guardRun.execMemoFor) with --no-exec-memo, with an audit log or
// --export-decisions (their records want each decision's attributes read), with a scanner
// (--exec), and when the exec is decided from its kind alone (bareKinds: nothing to save).
// Only inline decisions are kept: one that needs the file hashed is made by a handler, and the
// next exec, decided inline from the hash cache, is the one kept.
//
// Concurrency: lookups and stores run on the kernel reader (Inline), forgets on the forgetter
// goroutine; the entries are an lru.Cache (its own leaf lock), the counters atomic. No lock of
// its own, nothing called out.
type execMemo struct {
	entries *lru.Cache[memoKey, memoEntry]
	settle  int64         // ns: how old a ctime must be when a decision is kept
	forgets atomic.Uint64 // one more per forget, before its delete
	hits    atomic.Uint64 // execs answered from the memo
	kept    atomic.Uint64 // decisions stored
}

// execMemoEntries bounds the memo: the executables a host runs often are far fewer.
const execMemoEntries = 4096

type memoKey struct{ dev, ino uint64 }

// memoEntry is one remembered decision and what it was decided for.
type memoEntry struct {
	st   *guardState
	path string
	id   notify.FileStamp
	d    policy.Decision
}

func newExecMemo(settle time.Duration) *execMemo {
	return &execMemo{entries: lru.New[memoKey, memoEntry](execMemoEntries), settle: settle.Nanoseconds()}
}

// lookup returns the decision remembered for an exec of path, whose file is id, under st.
func (m *execMemo) lookup(st *guardState, path string, id *notify.FileStamp) (policy.Decision, bool) {
	e, ok := m.entries.Get(memoKey{id.Dev, id.Ino})
	if !ok || e.st != st || e.path != path || e.id != *id {
		return policy.Decision{}, false
	}
	m.hits.Add(1)
	return e.d, true
}

// store keeps d, decided under st for an exec of path whose file was id, unless d cannot be
// given again (an error, an unknown path), the file changed too recently for its ctime to tell
// a later change apart (now is a few µs after the statx: the settle time dwarfs that), or a
// forget came since forgets was read (before the decision began).
func (m *execMemo) store(st *guardState, path string, id *notify.FileStamp, forgets uint64, d *policy.Decision, now time.Time) {
	if d.Err != nil || d.PathUnknown || path == "" || id.Ctime >= now.UnixNano()-m.settle {
		return
	}
	k := memoKey{id.Dev, id.Ino}
	m.entries.Put(k, memoEntry{st: st, path: path, id: *id, d: *d})
	if m.forgets.Load() != forgets {
		// A forget counted after the decision began (of this file or another): the decision
		// may have read digests it dropped. A forget counted after this load deletes after
		// the Put, so nothing it forgets stays.
		m.entries.Delete(k)
		return
	}
	m.kept.Add(1)
}

// forget drops what is remembered of inode (dev, ino): the forgetter saw it written.
func (m *execMemo) forget(dev, ino uint64) {
	m.forgets.Add(1)
	m.entries.Delete(memoKey{dev, ino})
}

// forgetAll drops everything: writes were lost (the forgetter's queue overflowed), or the
// state changed (storeLocked: its entries could never match again, and would keep it alive).
func (m *execMemo) forgetAll() {
	m.forgets.Add(1)
	m.entries.Clear()
}

// execMemoFor reports whether exec decisions under pol may be remembered (see above).
func (g *guardRun) execMemoFor(pol *policy.Policy, bare notify.AccessKind) bool {
	return g.memo != nil && g.kinds&notify.AccessExec != 0 && bare&notify.AccessExec == 0 &&
		g.audit == nil && !g.report && g.execCmd == "" && pol.DecidesByFile(notify.AccessExec.Mask())
}

// inlineExec is inlineFunc for an exec under a state whose exec decisions are remembered:
// from the memo when it has the decision, else decided and kept.
func (g *guardRun) inlineExec(r *notify.Request, st *guardState) (notify.Verdict, bool) {
	m := g.memo
	path := r.Path() // first: it takes the statx again for a file unlinked meanwhile
	id, ok := r.InlineStamp()
	if ok {
		if d, hit := m.lookup(st, path, &id); hit {
			return g.inlineDecided(r, st, &d, nil)
		}
	}
	forgets := m.forgets.Load()
	d, o := g.decide(context.Background(), st, r, readInline)
	if ok && d.Err == nil {
		m.store(st, path, &id, forgets, &d, time.Now())
	}
	return g.inlineDecided(r, st, &d, o)
}
