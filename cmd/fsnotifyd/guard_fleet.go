//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/fleet"
	"github.com/fsnotifyd/fsnotifyd/internal/policy"
	"github.com/fsnotifyd/fsnotifyd/notify"
)

// The guard's fleet side: --policy-from (follow a policy in a NATS key-value bucket) and
// --export-decisions (report each decision to the daemon for its fleet export).

// DefaultPolicyState is where a guard following a fleet policy keeps the last good revision.
const DefaultPolicyState = "/var/lib/fsnotifyd/policy"

// guardFleetFlags are guard's fleet flags.
type guardFleetFlags struct {
	from, host, state string
	conn              fleet.ConnOptions
	exportDecisions   bool
}

func (f *guardFleetFlags) register(fs *flagSet) {
	f.state = DefaultPolicyState
	fs.stringVar(&f.from, "policy-from", "follow the policy in a NATS key-value bucket: nats://HOST:PORT[,...]/BUCKET/KEY (docs/fleet.md)")
	fs.stringVar(&f.host, "host", "this host's name in the fleet (default: the machine's host name)")
	fs.stringVar(&f.state, "policy-state", "keep the last good fleet policy in DIR, enforced from the start when NATS is unreachable")
	registerConnFlags(fs, &f.conn, ", with --policy-from", "; also how long a guard without a saved policy waits for the first one")
	fs.boolVar(&f.exportDecisions, "export-decisions", "with --daemon: report each decision to the daemon, which exports it to the fleet stream (serve --export)")
}

// check reports a usage error in the fleet flags.
func (f *guardFleetFlags) check(fs *flagSet, daemon bool, policyFile string) error {
	if f.exportDecisions && !daemon {
		return errors.New("--export-decisions needs --daemon: the daemon exports the decisions (serve --export)")
	}
	if f.from == "" {
		return connFlagsWithout(&f.conn, "--policy-from nats://HOST:PORT/BUCKET/KEY", append([][2]string{{"--host", f.host}}, fs.givenFlags("policy-state", "nats-timeout")...)...)
	}
	if policyFile != "" {
		return errors.New("--policy and --policy-from cannot be used together: the fleet policy replaces the whole file (--deny/--allow flags still come first)")
	}
	urls, _, key, err := fleet.ParsePolicyURL(f.from)
	if err != nil {
		return fmt.Errorf("--policy-from: %w", err)
	}
	if err := fleet.CheckPolicyKey(key); err != nil {
		return fmt.Errorf("--policy-from: %w", err)
	}
	f.conn.URLs = urls
	if err := f.conn.Check(); err != nil {
		return fmt.Errorf("--policy-from: %w", err)
	}
	if f.host != "" {
		if _, err := fleet.HostToken(f.host); err != nil {
			return fmt.Errorf("--host: %w", err)
		}
	}
	return nil
}

// fleetApply hands the followed revisions to ApplyPolicy (guard_state.go), which swaps the
// guard's state atomically. Before the Guard runs (its marks not yet placed, g.guard not yet
// set), a revision is checked (parsed) and kept as pending; runGuard applies it on its own
// goroutine before placing the marks, so the fleet's policy is in force from the first
// access, and fleetRunning applies any that came meanwhile, in order, before letting the
// follower call ApplyPolicy itself. mu is a leaf: nothing is called with it held.
type fleetApply struct {
	key     string
	mu      sync.Mutex
	running bool
	pending *fleet.PolicyRevision
	first   chan struct{} // closed at the first revision taken
	once    sync.Once
}

func (fa *fleetApply) origin(rev *fleet.PolicyRevision) string {
	return fmt.Sprintf("%s revision %d", fa.key, rev.Revision)
}

// apply is the follower's Apply.
func (g *guardRun) fleetApplyRevision(rev fleet.PolicyRevision) error {
	fa := g.fleet
	fa.mu.Lock()
	if !fa.running {
		_, err := policy.Parse(fa.origin(&rev), bytes.NewReader(rev.Data))
		if err == nil {
			fa.pending = &rev
		}
		fa.mu.Unlock()
		if err == nil {
			fa.once.Do(func() { close(fa.first) })
		}
		return err
	}
	fa.mu.Unlock()
	return g.ApplyPolicy(rev.Data, fa.origin(&rev))
}

// applyPending applies the revisions kept before the Guard ran, on runGuard's goroutine, and
// with running makes the follower call ApplyPolicy itself from then on.
func (g *guardRun) applyPending(running bool) error {
	fa := g.fleet
	for {
		fa.mu.Lock()
		rev := fa.pending
		fa.pending = nil
		if rev == nil {
			fa.running = fa.running || running
			fa.mu.Unlock()
			return nil
		}
		fa.mu.Unlock()
		if err := g.ApplyPolicy(rev.Data, fa.origin(rev)); err != nil {
			return err
		}
	}
}

// fleetRunning is called once the Guard runs (g.guard set): see fleetApply.
func (g *guardRun) fleetRunning() {
	if g.fleet != nil {
		g.applyPending(true)
	}
}

// startFleetPolicy follows --policy-from: every good revision becomes the guard's policy (after
// the flags' rules), a bad one is refused and the old one kept. It returns once the fleet's
// policy is in force: the saved copy at once, else the bucket's within --nats-timeout; without
// either it fails, saying what to check (the guard would enforce only its flags' rules).
func (g *guardRun) startFleetPolicy(f *guardFleetFlags) (*fleet.PolicyFollower, error) {
	_, bucket, key, _ := fleet.ParsePolicyURL(f.from)
	g.fleet = &fleetApply{key: key, first: make(chan struct{})}
	fol, err := fleet.StartPolicyFollower(fleet.FollowerConfig{
		Conn: f.conn, Bucket: bucket, Key: key, Host: f.host, StateDir: f.state,
		Apply: g.fleetApplyRevision,
		Log:   func(msg string) { fmt.Fprintln(os.Stderr, "fsnotifyd guard: "+msg) },
	})
	if err != nil {
		return nil, err
	}
	select {
	case <-g.fleet.first:
	case <-time.After(f.conn.Timeout):
		fol.Close()
		return nil, fmt.Errorf("--policy-from %s: no policy within %v: NATS did not answer (or the key has no value) and %s holds no saved copy; check the server and push one (fsnotifyd policy push)", f.from, f.conn.Timeout, f.state)
	}
	if err := g.applyPending(false); err != nil {
		fol.Close()
		return nil, fmt.Errorf("--policy-from %s: %w", f.from, err)
	}
	return fol, nil
}

// reporter sends decisions' records to the daemon (--export-decisions) from its own
// goroutine: OnDecision runs on the deciding goroutine (for an inline decision, right after its
// answer went out), so no decision waits on marshalling or on the daemon's socket. When it falls
// behind, records are dropped and counted, never the verdicts: the first drop of a burst is
// said on stderr, the next report sent carries the count ("reports_dropped", so the fleet's
// readers see the hole in its place in the order), and the total is said at exit.
type reporter struct {
	gd       atomic.Pointer[notify.Guard] // set once the Guard runs
	say      io.Writer                    // the guard's stderr queue (never waits); nil: none
	ch       chan auditRecord
	done     chan struct{}
	dropped  atomic.Uint64
	dropping atomic.Bool // dropped since the last report sent
	failed   atomic.Uint64
	pending  atomic.Int64 // queued and not yet sent
	carried  uint64       // run's own: the drops told in reports sent so far
}

func newReporter(say io.Writer) *reporter {
	r := &reporter{say: say, ch: make(chan auditRecord, 8192), done: make(chan struct{})}
	go r.run()
	return r
}

// report queues one record; it never waits.
func (r *reporter) report(rec *auditRecord) {
	r.pending.Add(1)
	select {
	case r.ch <- *rec:
	default:
		r.pending.Add(-1)
		r.dropped.Add(1)
		if r.dropping.CompareAndSwap(false, true) && r.say != nil {
			fmt.Fprintln(r.say, "fsnotifyd guard: --export-decisions: decision reports are dropped (the daemon's socket does not keep up); the next report sent carries the count (reports_dropped); verdicts do not wait for it")
		}
	}
}

// marshal encodes rec, with the drops not yet told (reports_dropped) counted as told. Run's own.
func (r *reporter) marshal(rec *auditRecord) ([]byte, error) {
	r.dropping.Store(false) // a drop from now on is said again
	rec.ReportsDropped = r.dropped.Load() - r.carried
	r.carried += rec.ReportsDropped
	return json.Marshal(rec)
}

func (r *reporter) run() {
	defer close(r.done)
	for rec := range r.ch {
		gd := r.gd.Load()
		if gd == nil {
			r.dropped.Add(1) // a decision before NewGuard returned: nowhere to send it yet
			r.pending.Add(-1)
			continue
		}
		b, err := r.marshal(&rec)
		if err == nil {
			err = gd.Report(b)
		}
		if err != nil {
			r.carried -= rec.ReportsDropped // not told: the next report tells them
		}
		r.pending.Add(-1)
		if err != nil && r.failed.Add(1) == 1 {
			fmt.Fprintf(os.Stderr, "fsnotifyd guard: a decision report did not reach the daemon (%v); counting, not repeating\n", err)
		}
	}
}

// flush waits (at most timeout) until recorded says every decision to wait for was recorded
// and what is queued is sent: called before the Guard closes, since its connection to the
// daemon goes with it.
func (r *reporter) flush(timeout time.Duration, recorded func() bool) {
	deadline := time.Now().Add(timeout)
	for !recorded() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	for r.pending.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

// close sends what is queued (reports after the Guard closed fail, counted) and says what was
// lost. Nothing may report after it.
func (r *reporter) close() {
	close(r.ch)
	<-r.done
	if n := r.dropped.Load() + r.failed.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "fsnotifyd guard: %d decision reports did not reach the daemon (%d dropped, the reporter could not keep up; %d failed)\n", n, r.dropped.Load(), r.failed.Load())
	}
}
