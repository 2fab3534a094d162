//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/fsevent"
	"github.com/fsnotifyd/fsnotifyd/internal/policy"
	"github.com/fsnotifyd/fsnotifyd/internal/sdnotify"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/trust"
	"github.com/fsnotifyd/fsnotifyd/notify"
)

// The guard's policy and trust database, and how they change while it runs.
//
// A guardState (the policy, the trust database it needs, what it reads) is immutable and held
// by guardRun.state, an atomic.Pointer. Each decision loads it once and decides entirely
// under it, so a decision in flight when a new one is stored finishes under the old one and
// the next decision uses the new one; no decision waits for a reload and no access goes
// unanswered (the kernel-facing side never changes). The writers (ApplyPolicy, reloadTrust,
// from SIGHUP, the file poller or the fleet) take guardRun.applyMu, which no decision takes,
// build the new state (parsing, loading the trust database) and store it; they write to
// stderr and the audit log after unlocking.
//
// After a store: the Verifier's hash cache is dropped (ForgetAll) and the kernel's cached
// allows are flushed, twice: at once, and again when every decision that could have loaded
// the old state has been answered or timed out (the deadline, plus a margin). A decision that
// finishes under a state that is no longer current never asks the kernel to cache its allow;
// one that checked the state just before the store asks, but its event was read before the
// flush, whose generation keeps its answer from being cached (backend.FlushVerdictCache,
// embedded and in the daemon alike: through the daemon the flush is protocol version 6's
// FlushCache, answered once the daemon's backend has flushed).
//
// The verdicts of the kinds decided from their kind alone (guardState.byKind) are answered in
// the source without loading the state (notify.Guard.SetKindVerdicts): a store withdraws the
// published ones first, stores the state, then publishes its own (storeLocked). An access
// therefore gets published verdicts only of the state current when it read them — a cached
// allow only while that state is current, as inlineDecided's check of the state — and between
// the two an access is decided by Inline, under the state it loads.
//
// The kinds of access the marks ask the kernel for follow the state (storeLocked, askKinds in
// guard.go): grown before a state is stored, shrunk after.
//
// Goroutines: watchReload (SIGHUP and the poller) runs until the guard stops; the forget
// reader (guard_forget.go) likewise. Lock: applyMu, a leaf; it serializes the writers only and
// is held across their mark changes (Guard.SetEvents, the forget group's marks), which must not
// interleave with another writer's store; no decision and no kernel reader takes it.

// guardState is one policy with what it needs.
type guardState struct {
	pol *policy.Policy
	// db is the trust database; nil when no rule tests trusted= or trusted_exe=.
	db *trust.DB
	// pathKinds: the kinds of access some rule tells paths apart for (the others are decided
	// with no readlink: pathKinds in guard.go).
	pathKinds notify.AccessKind
	// bareKinds: the kinds of access decided from their kind alone (bareKinds in guard.go):
	// no attribute state is built for them; bare holds their decisions, by kind (bareIndex),
	// made once with the state.
	bareKinds notify.AccessKind
	bare      [bareIndexes]policy.Decision
	// byKind are the verdicts of the bare kinds Inline would give every Request of the kind
	// (kindVerdicts in guard.go), published to the Guard while this state is current.
	byKind notify.KindVerdicts
	// execMemo: exec decisions under this state are remembered (guardRun.memo, guard_memo.go).
	execMemo bool
	// origin names where the policy's file part came from ("" when only flags).
	origin string
}

// fileStamp identifies a file's version without reading it (notify.FileStamp, the exec
// memo's too), and whether the file could be stat'ed.
type fileStamp struct {
	ok bool
	notify.FileStamp
}

func stampOf(path string) fileStamp {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return fileStamp{}
	}
	return fileStamp{ok: true, FileStamp: notify.FileStamp{Dev: st.Dev, Ino: st.Ino, Size: uint64(st.Size),
		Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano()}}
}

// buildStateLocked makes the state for a policy file's rules (nil: flags only): the
// command-line rules first, the trust database loaded if a rule needs it (fresh, loaded anew
// for this reload, if given; else the current one when there is one). It does not store it.
func (g *guardRun) buildStateLocked(filePol *policy.Policy, origin string, fresh *trust.DB) (*guardState, error) {
	pol, err := guardPolicy(g.flagPol, filePol, g.cache)
	if err != nil {
		return nil, err
	}
	st := &guardState{pol: pol, origin: origin, pathKinds: pathKinds(pol, g.audit != nil),
		bareKinds: bareKinds(pol, g.audit != nil || g.report)}
	st.bare = bareDecisions(pol, st.bareKinds)
	st.byKind = g.kindVerdicts(st)
	st.execMemo = g.execMemoFor(pol, st.bareKinds)
	if pol.Needs(policy.AttrTrusted) || pol.Needs(policy.AttrTrustedExe) {
		if fresh != nil {
			st.db = fresh
		} else if cur := g.state.Load(); cur != nil && cur.db != nil {
			st.db = cur.db
		} else if st.db, err = trust.Load(g.trustCfg); err != nil {
			return nil, &trustLoadError{err}
		}
	}
	return st, nil
}

// trustLoadError is buildStateLocked's error loading the trust database.
type trustLoadError struct{ err error }

func (e *trustLoadError) Error() string { return "trust database: " + e.err.Error() }
func (e *trustLoadError) Unwrap() error { return e.err }

// startStateError is the message of buildStateLocked's error at the start, naming the flag
// that chose what failed: --trust or --trust-dir for a trust file (the error names it), none
// for the package database, --policy for the rules.
func startStateError(err error) error {
	var fe *trust.FileError
	var te *trustLoadError
	switch {
	case errors.As(err, &fe) && fe.InDir:
		return fmt.Errorf("--trust-dir: %w", fe)
	case errors.As(err, &fe):
		return fmt.Errorf("--trust: %w", fe)
	case errors.As(err, &te):
		return err
	}
	return fmt.Errorf("--policy: %w", err)
}

// storeLocked makes st the guard's state. The marks ask the kernel for every kind of access
// st's policy may decide before st is stored, and stop asking for those it allows whatever they
// are (askKinds) only after: an access of a kind no mark asks for is never one the current
// policy could deny. If the marks cannot be made to ask, st is not stored and the error says
// why (the old state stays).
func (g *guardRun) storeLocked(st *guardState) error {
	var ask notify.AccessKind
	if g.guard != nil {
		ask = g.askKinds(st.pol)
		if asked := g.guard.Asked(); asked|ask != asked {
			if err := g.setEvents(asked | ask); err != nil {
				return err
			}
		}
	}
	// The verdicts by kind are answered without loading the state: none are published while
	// the state changes, so that none is given once st is stored but by st (its own, once
	// published), as Inline's decisions, which load the state, are. A cached allow of the old
	// state is thus asked for only by an access that read the old verdicts before st was
	// stored, as inlineDecided's check of the state allows (afterStore's second flush).
	if g.publishKinds != nil {
		g.publishKinds(notify.KindVerdicts{})
	}
	g.state.Store(st)
	if g.publishKinds != nil {
		g.publishKinds(st.byKind)
	}
	g.verifier.ForgetAll()
	if g.memo != nil {
		g.memo.forgetAll() // entries of the old state: they never match again
	}
	if st.pol.ReadsContent() {
		g.startForgetLocked()
	}
	if g.guard != nil && ask != g.guard.Asked() {
		// Asking for fewer kinds only saves time: on an error some marks ask for more than
		// st needs, and every such access is decided (allowed) as before; Asked is then 0
		// (not known), so the next store sets every mark.
		g.setEvents(ask)
	}
	return nil
}

// setEvents makes the guard's marks ask for the kinds ask (Guard.SetEvents, bounded in time).
func (g *guardRun) setEvents(ask notify.AccessKind) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return g.guard.SetEvents(ctx, ask)
}

// afterStore flushes the kernel's cached allows, at once and once more when every decision
// under an older state is over (see the package comment above). Call it without applyMu.
func (g *guardRun) afterStore() {
	if g.guard == nil {
		return
	}
	g.flushCache()
	if g.deadline > 0 {
		time.AfterFunc(g.deadline+100*time.Millisecond, g.flushCache)
	}
}

// flushCache flushes the kernel's cached allows (through the daemon, the daemon's: protocol
// version 6), and says on stderr when it could not.
func (g *guardRun) flushCache() {
	if err := g.guard.FlushCache(); err != nil {
		fmt.Fprintf(g.stderr, "fsnotifyd guard: the allows cached before the reload may still hold (the daemon did not withdraw them: %v); they go when a file changes, or restart the guard\n", err)
	}
}

// ApplyPolicy parses src, a rules file's text (docs/policy.md) named origin in messages, and
// makes it the guard's policy atomically, after the command-line rules: decisions in flight
// finish under the old policy, the next ones use the new. If src does not parse, or the trust
// database it needs cannot be loaded, the old policy stays and the error says why (with
// origin:line:col). Either way the outcome is written to stderr and, with --audit, to the
// audit log. Safe for concurrent use: SIGHUP, the file poller and the fleet call it, once
// the guard is running (after "Watches established.": g.guard is set).
func (g *guardRun) ApplyPolicy(src []byte, origin string) error {
	return g.applyPolicyReported(src, origin, nil)
}

// applyPolicyReported is ApplyPolicy with the trust database fresh (nil: the current one),
// loaded anew for the same reload: the policy and the database it reads are stored at once.
func (g *guardRun) applyPolicyReported(src []byte, origin string, fresh *trust.DB) error {
	err := g.applyPolicy(src, origin, fresh)
	g.reported("policy", origin, err)
	return err
}

func (g *guardRun) applyPolicy(src []byte, origin string, fresh *trust.DB) error {
	filePol, err := policy.Parse(origin, bytes.NewReader(src))
	if err != nil {
		return err
	}
	g.applyMu.Lock()
	st, err := g.buildStateLocked(filePol, origin, fresh)
	if err == nil {
		err = g.storeLocked(st)
	}
	g.applyMu.Unlock()
	if err != nil {
		return err
	}
	g.afterStore()
	for _, w := range st.pol.LintWith(policy.LintOptions{Scanned: g.execCmd != "", UserNS: sys.UnprivilegedUserNS()}) {
		fmt.Fprintf(os.Stderr, "fsnotifyd guard: warning: %s\n", w)
	}
	for _, w := range pathWarnings(st.pol) {
		fmt.Fprintf(os.Stderr, "fsnotifyd guard: warning: %s\n", w)
	}
	return nil
}

// reloadTrust stores fresh, the trust database loaded again from its sources (nil: load it
// now), with the current policy; on error the old one stays.
func (g *guardRun) reloadTrust(fresh *trust.DB) error {
	g.applyMu.Lock()
	cur := g.state.Load()
	if cur.db == nil {
		g.applyMu.Unlock()
		return nil // no rule needs it
	}
	db, err := fresh, error(nil)
	if db == nil {
		db, err = trust.Load(g.trustCfg)
	}
	if err == nil {
		st := *cur
		st.db = db
		err = g.storeLocked(&st)
	}
	g.applyMu.Unlock()
	if err == nil {
		g.afterStore()
	}
	return err
}

// reported says on stderr and in the audit log that a reload of what ("policy", "trust")
// from origin was applied, or why it was not.
func (g *guardRun) reported(what, origin string, err error) {
	rec := auditRecord{Decision: fsevent.Decision{Time: time.Now().Format(time.RFC3339Nano), Event: what + "-reload", Verdict: "applied", Rule: origin}}
	if err != nil {
		rec.Verdict, rec.Error = "rejected", err.Error()
		fmt.Fprintf(g.stderr, "fsnotifyd guard: %s reload from %s rejected, the old %s stays: %v\n", what, origin, what, err)
	} else if !g.quiet {
		fmt.Fprintf(g.stderr, "fsnotifyd guard: %s reloaded from %s\n", what, origin)
	}
	if g.audit != nil {
		g.audit.write(rec)
	}
}

// policySettle is how long a changed policy file must keep the same size, times and inode
// before a poll reads it, and nothing may have it open for writing (beingWritten). An editor
// or a script that writes the file in place truncates it, then writes it, maybe in pieces: a
// poll in between would read an empty or partial policy, and an empty one allows everything.
// SIGHUP reads at once (whoever sends it says the file is ready), and the read itself is
// checked (reloadPolicyFile).
const policySettle = 100 * time.Millisecond

// beingWritten reports whether something has the policy file name open for writing
// (sys.OpenForWrite): a writer between two pieces, however long it pauses — a slow pipe into
// `cat > FILE`, or a writer on a loaded host that stands still for more than policySettle
// between its write calls, whose first piece (a comment alone) would otherwise be read and
// allow everything. Unknown (no leases on the file's filesystem, or it cannot be opened) is
// false: the settle time alone decides, as the read reports what is wrong with the file.
func beingWritten(name string) bool {
	f, err := trust.OpenFile(name) // never waits on a FIFO
	if err != nil {
		return false
	}
	defer f.Close()
	w, err := sys.OpenForWrite(int(f.Fd()))
	return err == nil && w
}

// errPolicyChanging: the file changed while it was read; the next poll reads it again.
var errPolicyChanging = errors.New("the file changed while it was read (it is being written); it is read again once it stands still")

// policyStartWait bounds how long the start waits for a policy file that keeps changing
// (readPolicyAtStart): then it is read as it is, and the poller reads it again once it changes.
const policyStartWait = 5 * time.Second

// readPolicyAtStart reads --policy FILE at the start (readPolicySource) with a reload's checks
// (reloadPolicyFile, watchReload): once it has stood still for policySettle (a file changed
// less than that ago is waited for: a start while the file is written in place would
// otherwise read its first pieces, maybe a comment alone, which allows everything), and only a
// read during which it did not change. It returns the stamp of the version read (lastStamp).
func readPolicyAtStart(name string) (src []byte, owner error, stamp fileStamp, err error) {
	deadline := time.Now().Add(policyStartWait)
	for {
		stamp = stampOf(name)
		waiting := time.Now().Before(deadline)
		if age := time.Since(time.Unix(0, stamp.Ctime)); stamp.ok && waiting && (age >= 0 && age < policySettle || beingWritten(name)) {
			time.Sleep(policySettle / 4)
			continue
		}
		src, owner, err = readPolicySource(name)
		if err == nil && waiting && stampOf(name) != stamp {
			continue // changed while it was read
		}
		return src, owner, stamp, err
	}
}

// reloadPolicyFile reads --policy FILE again and applies it: only a version that stood still
// while it was read (same stamp before and after), and never an empty file over a policy
// that had rules (an empty file allows everything: a torn write, not a policy; "default
// allow" says it on purpose). A file that is not a regular file, or that someone other than
// root could change (readPolicySource), is refused as one that does not parse. fresh is
// applyPolicyReported's.
func (g *guardRun) reloadPolicyFile(fresh *trust.DB) error {
	before := stampOf(g.policyFile)
	src, owner, err := readPolicySource(g.policyFile) // never waits on a FIFO
	if err == nil {
		err = owner // a file someone else could write is refused, as at the start
	}
	if err != nil {
		err = fmt.Errorf("--policy: %w", err)
		g.lastStamp = before
		g.reported("policy", g.policyFile, err)
		return err
	}
	if stampOf(g.policyFile) != before {
		// lastStamp stays: the next poll sees a change and reads again.
		g.reported("policy", g.policyFile, errPolicyChanging)
		return errPolicyChanging
	}
	g.lastStamp = before
	if len(bytes.TrimSpace(src)) == 0 {
		if st := g.state.Load(); st != nil && st.origin != "" && st.pol != nil && len(st.pol.Rules) > 0 {
			err := errors.New("the file is empty: an empty policy would allow everything (a file caught in the middle of a write?); write \"default allow\" to mean that")
			g.reported("policy", g.policyFile, err)
			return err
		}
	}
	return g.applyPolicyReported(src, g.policyFile, fresh)
}

// watchReload reloads on SIGHUP (the policy file and the trust database) and when the policy
// file or a trust source changes on disk (polled every interval: stat only), until ctx ends.
// A changed policy file is read once it has stood still for policySettle: once a poll sees it
// changed, the next polls come every policySettle (or interval, if shorter) until it is read.
// hup is registered for SIGHUP by runGuard as it begins (a SIGHUP while the guard starts would
// otherwise end it): one sent before the guard runs is read here, as a reload.
//
// Between changes the poll runs every interval, not every policySettle: each poll wakes a
// thread of an otherwise idle guard, and at 10 a second those wake-ups cost an idle guard about
// 2 ms of CPU, 100 context switches and 120 system calls per second (the Go runtime's sysmon
// woken with it), which a guard on a busy host takes from the processes it guards and which
// bench/exec.sh counted in the guard's CPU per exec (h8-exec, docs/design/performance.md).
func (g *guardRun) watchReload(ctx context.Context, hup <-chan os.Signal, interval time.Duration) {
	var tick <-chan time.Time
	var timer *time.Timer
	if interval > 0 {
		timer = time.NewTimer(interval)
		defer timer.Stop()
		tick = timer.C
	}
	var (
		seen      fileStamp // the changed version last seen, and since when
		seenSince time.Time
		lastTrust time.Time
	)
	for {
		policyChanged, trustChanged, why, polled := false, false, "", false
		select {
		case <-ctx.Done():
			return
		case <-hup:
			g.audit.reopen() // a rotated audit log (logrotate's postrotate kill -HUP)
			policyChanged, trustChanged = g.policyFile != "", true
			why = "SIGHUP"
		case now := <-tick:
			polled = true
			g.audit.reopenIfMoved() // rotated without a SIGHUP (logrotate without postrotate)
			if g.policyFile != "" {
				if st := stampOf(g.policyFile); st != g.lastStamp {
					if st != seen {
						// Since now, not the tick's time: a tick the guard ran late for
						// (a loaded host) was due before this stamp was seen, maybe
						// before the change itself, and would shorten the settle.
						seen, seenSince = st, time.Now()
					}
					policyChanged = now.Sub(seenSince) >= policySettle && !beingWritten(g.policyFile)
				} else {
					seen = fileStamp{} // back as it was read last: nothing to settle
				}
			}
			if now.Sub(lastTrust) >= interval {
				lastTrust = now
				if st := g.state.Load(); st.db != nil {
					trustChanged, why = st.db.Changed()
				}
			}
		}
		// A SIGHUP's reload is told to systemd (RELOADING=1 ... READY=1, as Type=notify and
		// notify-reload want: `systemctl reload` returns once it is done); the file poller's
		// are not asked for by anyone.
		if !polled {
			sdnotify.Send(sdnotify.Reloading())
		}
		var policyErr, trustErr error
		var fresh *trust.DB
		if policyChanged && trustChanged && g.state.Load().db != nil {
			// Both at once: the new policy is stored with the new trust database, in one
			// step. Stored one after the other, the new policy would decide with the old
			// database (or the old policy with the new one) meanwhile — which may allow what
			// neither pair allows. A database that cannot be loaded leaves the old one, with
			// the new policy (as a trust reload that fails does).
			fresh, trustErr = trust.Load(g.trustCfg)
		}
		if policyChanged {
			if policyErr = g.reloadPolicyFile(fresh); !errors.Is(policyErr, errPolicyChanging) {
				seen = fileStamp{} // read (or refused): settled; a torn read polls again soon
			}
		}
		if trustChanged {
			if why == "" {
				why = "a trust source changed"
			}
			if trustErr == nil && (fresh == nil || policyErr != nil) {
				trustErr = g.reloadTrust(fresh) // not stored with a policy: with the current one
			}
			g.reported("trust", why, trustErr)
		}
		if !polled {
			status := "reloaded on SIGHUP"
			if err := errors.Join(policyErr, trustErr); err != nil {
				status = "SIGHUP: reload rejected, the old policy stays: " + strings.ReplaceAll(err.Error(), "\n", "; ")
			}
			sdnotify.Send("READY=1\nSTATUS=" + status)
		}
		if polled {
			next := interval
			if seen != (fileStamp{}) {
				next = min(interval, policySettle) // a change is settling: look again soon
			}
			timer.Reset(next)
		}
	}
}

// forgetter drops the hash cache's digests of files written in the guarded tree: a
// notification group for MODIFY and CLOSE_WRITE on the guard's own backend, on the same marks'
// objects. Started once, when a policy first reads content.
type forgetter struct {
	g      *engine.Group
	cancel context.CancelFunc
	done   chan struct{}
}

// startForgetLocked starts the forgetter, if the guard runs its own backend and it has not
// started yet. (Through the daemon there is none: the cache then relies on the size, times
// and file handle it keys on; docs/policy.md.)
func (g *guardRun) startForgetLocked() {
	if g.forget != nil || g.backend == nil {
		return
	}
	fg, err := g.backend.Engine().NewGroup(engine.Options{Name: "guard-forget", Class: engine.ClassNotification, QueueLimit: 4096})
	if err != nil {
		g.forgetErr = err
		return
	}
	add := func(path string, k engine.Kind) error {
		if k == engine.KindSubtree {
			if st, err := os.Stat(path); err == nil && !st.IsDir() {
				k = engine.KindInode
			}
		}
		t, err := g.backend.Resolve(path, k, false)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return g.backend.AddMark(fg, t, engine.MarkSpec{Mask: engine.Modify | engine.CloseWrite})
	}
	kind := engine.KindSubtree
	if g.mountMarks {
		kind = engine.KindMount
	}
	for _, p := range g.paths {
		if err := add(p, kind); err != nil {
			fg.Close()
			g.forgetErr = err
			return
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &forgetter{g: fg, cancel: cancel, done: make(chan struct{})}
	g.forget = f
	go f.run(ctx, g)
}

func (f *forgetter) run(ctx context.Context, g *guardRun) {
	defer close(f.done)
	buf := make([]engine.Delivery, 64)
	for {
		n, err := f.g.ReadBatch(ctx, buf)
		if err != nil {
			return
		}
		for _, d := range buf[:n] {
			switch {
			case d.Mask&engine.QueueOverflow != 0 || d.Event == nil:
				g.verifier.ForgetAll() // writes were lost: nothing cached can be vouched for
				if g.memo != nil {
					g.memo.forgetAll()
				}
			default:
				g.verifier.Forget(d.Event.Inode.Hi, d.Event.Inode.Lo)
				if g.memo != nil {
					g.memo.forget(d.Event.Inode.Hi, d.Event.Inode.Lo)
				}
				g.forgets.Add(1)
			}
			d.Release()
		}
	}
}

func (f *forgetter) stop() {
	f.cancel()
	f.g.Close()
	<-f.done
}
