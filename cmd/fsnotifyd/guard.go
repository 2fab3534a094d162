//go:build linux

package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/fsevent"
	"github.com/fsnotifyd/fsnotifyd/internal/format"
	"github.com/fsnotifyd/fsnotifyd/internal/policy"
	"github.com/fsnotifyd/fsnotifyd/internal/sdnotify"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/sysattr"
	"github.com/fsnotifyd/fsnotifyd/internal/trust"
	"github.com/fsnotifyd/fsnotifyd/internal/workslot"
	"github.com/fsnotifyd/fsnotifyd/notify"
)

const guardHelp = `
Decide on every access (open by default) to anything below each PATH,
recursively, including files in directories created later (no window). The
accessing process waits for the verdict; a denied access fails with EPERM.

--mount guards the whole mount of each PATH instead (one mount mark: every
file on that mount, whatever its directory), as fapolicyd does. A mount mark
sees only that mount: the same files reached through a bind mount, or from
another mount namespace (which any user can make with "unshare -Urm" where
unprivileged user namespaces are on), or through an overlayfs whose layer is
on that mount (a container's image; a user's own overlay), are not decided:
the guard warns at its start where user namespaces are on. On an overlayfs
(a container's merged directory) only --mount works, and the same files
reached through the overlay's layer directories are not decided: guard the
layer directories instead, which covers accesses through the overlay too.
Guarding a directory sees every mount of its filesystem. A guarded directory
renamed (or one above it) stays guarded under its new path, which rules are
matched against: the guard warns at its start of a deny rule naming a
directory that a user other than root may rename. See docs/security.md.

Rules: --deny GLOB and --allow GLOB, in command-line order, then the rules
of --policy FILE (syntax: docs/policy.md); the first match wins, and with no
match the access is allowed. In globs * and ? stay within one path component
and ** crosses directories: /srv/**/*.key, /home/*/secret/**. FILE must be a
regular file only root can change, as a trust file: owned by root (or the
guard's user), not writable by group or others, and likewise each directory
above it (a sticky one, such as /tmp, excepted); the guard refuses any other.

--exec CMD runs a scanner for each access to a file that no rule decided
(a directory's is allowed: its files are scanned as they are opened). Its
last argument ("$1" of a shell command line) is /proc/PID/fd/N of the guard:
the guard's descriptor of the very file being accessed, open until the
scanner exits; opening it opens that file, whatever its path leads to by
then, so the verdict is about the file accessed, never another put in its
place. Read the file by that argument only. The path, for display, is in
FSNOTIFYD_PATH (any bytes but NUL, newlines included; empty, with
FSNOTIFYD_PATH_UNKNOWN=1, when it cannot be read: deeper than PATH_MAX);
FSNOTIFYD_PID and FSNOTIFYD_EVENT are the process and the access. Exit
status 0 allows, anything else denies. It runs under the deadline (it is
killed there, with its process group) and its own file accesses, and its
children's, never wait on the guard; another process's do, so a scanner
must open the file itself, never hand the name to a daemon to open:
clamdscan --fdpass (clamd, as its own user, cannot open the guard's
/proc/PID/fd/N, and its own opens would be scanned in turn). Through the
daemon, the guard's uid must be in its fd_uid (root's is). A scanner
given by path (not a shell command line) must be a file only root can
change, as FILE above: the guard refuses any other (it would run as root,
exempt).

A file whose path cannot be read is still decided: a deny rule that may
match it denies, an allow rule that may match it does not allow, and the
default applies otherwise (docs/policy.md, "Paths that cannot be read").

--deadline bounds each decision (default 5s; 0 waits forever). A decision
not made by its late point, a tenth of the deadline before it (at most
500ms; twice that through the daemon), because a hash took too long or
every handler was busy (a user can ask for many large files at once), is
made there by the rules without hashing: a condition on content not in the
hash cache (sha256=, trusted=, trusted_exe=) may hold, so a deny rule
denies and an allow rule is passed over; the audit line says "late".
--on-timeout gives the verdict of an --exec scanner that has not answered
by then (it is stopped; default allow, so the host stays usable if a
scanner hangs), or not started (every scanner busy: they are shared among
the users waiting for one, in turn, so only the user who keeps them busy
waits that long), and of a decision not made even at the deadline.
--on-error gives the verdict when the guard itself fails to decide: a
scanner that cannot start, crashes or is killed by a signal, an error
reading what a rule needs (/proc), a panic (default deny: a file that
crashes the scanner must not get through). Each such decision has an audit
line naming the error. Neither applies to a sha256= condition whose file is
open for writing or changes while it is hashed (its writer chose that): the
condition may hold, as above. The kernel's own behaviour is not the guard's
to choose: if the guard is killed, accesses are allowed; while it is
stopped (SIGSTOP), they wait. See docs/security.md.

--permissive decides and audits but allows everything. --cache lets the
kernel remember allows until the file changes, for files no unprivileged
user could rename or link (root's, in root's directories); others are
decided every time. Through the daemon, allows are cached only by a daemon
of protocol version 6 or later, which withdraws them at a reload; with an
older one nothing is cached (the guard says so at its start).
--audit FILE (or - for stdout) writes one JSON line per decision: time, path,
pid, comm, exe (where a rule read it, and for every deny), event, verdict,
rule, error, latency. FILE is opened again on SIGHUP (a log rotated by
rename: logrotate's postrotate sends it; contrib/fsnotifyd-guard.logrotate),
and at the next --reload-interval poll once it is renamed or removed; it is
appended to, so copytruncate works too. Records the audit file cannot
keep up with are dropped, never the verdicts; stderr says so at the first
drop and how many once it has caught up.

Rules that test trusted= or trusted_exe= use the trust database
(docs/trust.md): the files the package manager installed (off with
--no-package-trust) and the trust files given by --trust FILE (repeatable;
default the *.trust files of --trust-dir, /etc/fsnotifyd/trust.d). A file is
hashed from the event's descriptor, at most once per version of it (the
digests are cached by inode, size and times, and dropped when the file is
written; a file changed in the last 3s is hashed each time); rules that read
content (ftype=, sha256=, and trusted=, trusted_exe= when the digest is not
cached) are decided off the goroutine that reads the kernel, at most half
as many hashes at once as there are CPUs, until the late point.
The audit line names the rule and, for trust decisions, the status, the
source that lists the file and the digest compared.
When every rule for exec tests only the path and the file (trusted=,
sha256=, ftype=, size; no process or mount attribute), an exec's decision
is remembered for the next exec of the same file by the same path while the
file is unchanged (same inode, size and times, last changed over 3s before)
and the policy and trust database stay as they are: --no-exec-memo turns
that off. Not with --audit, --export-decisions or --exec.

SIGHUP reads the policy file and the trust sources again, and so does a
change to either on disk (checked every --reload-interval, default 1s):
the new policy applies to the next decisions, those in flight finish under
the old one, and a file that does not parse, or that others could change,
leaves the old policy in place (the reason goes to stderr and the audit
log). A changed file is read once it has stood still for 100ms (a file being
written in place is never read half-written), and an empty file is refused
("default allow" says that).

Rules may test comm=, the process name, which any process can set: a
warning on stderr says so for an allow rule that tests nothing else where
it grants something. Test exe=, uid= or gid= instead.

"Watches established." is printed on stderr once the marks are in place; with
NOTIFY_SOCKET set (systemd Type=notify: contrib/fsnotifyd-guard.service) it
also sends READY=1 then, and RELOADING=1 ... READY=1 around a SIGHUP reload.
On SIGINT or SIGTERM everything pending is answered and the guard exits 0
(a second signal while it stops is ignored).
Guarding needs root (fanotify permission events).

Examples:
  fsnotifyd guard --deny '/srv/**/*.key' /srv
  fsnotifyd guard --allow '/data/public/**' --deny '/data/**' /data
  fsnotifyd guard --policy /etc/fsnotifyd/guard.rules --audit /var/log/guard.jsonl /srv
  fsnotifyd guard --exec 'clamdscan --fdpass --no-summary' --deadline 2s --on-timeout deny --cache /home
  fsnotifyd guard --events open,exec --permissive --audit - /opt
  fsnotifyd guard --mount --allow '**' /srv
  fsnotifyd guard --events open,exec --policy /etc/fsnotifyd/allowlist.rules --audit /var/log/guard.jsonl / /home /tmp /dev/shm /run
`

func runGuard(args []string) int {
	// SIGHUP is caught from the first moment: one sent while the guard starts (a logrotate
	// script, systemctl reload; loading a large dpkg database takes seconds) would otherwise
	// end it with the default action. It is kept, and watchReload reloads once the guard
	// runs. It stays caught until the process exits (no signal.Stop: that would give it back
	// its default action while the deferred closes flush the audit log).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	var (
		rules              commandLineRules
		policyFile, events string
		execCmd, onTimeout string
		onError            = "deny"
		deadline           = 5 * time.Second
		permissive         bool
		noExecMemo         bool
		quiet, mount       bool
		audit              string
		daemon             daemonFlag
		concurrency        int
		tsrc               trustSources
		reloadInterval     = time.Second
	)
	fs := newFlagSet("guard", "[--policy FILE] [--deny GLOB]... [--allow GLOB]... [--events EVENTS] [--exec CMD] [--deadline DUR] [--on-timeout allow|deny] [--on-error deny|allow] [--permissive] [--cache] [--no-exec-memo] [--audit FILE|-] [--mount] [--trust FILE]... [--no-package-trust] [--reload-interval DUR] PATH...", guardHelp)
	rules.register(fs) // --deny, --allow, --cache
	fs.stringVar(&policyFile, "policy", "read rules from FILE, which only root may change (see docs/policy.md)")
	fs.stringVar(&events, "events,e", "accesses to decide on: open, access, exec, pre_access (comma list; default open)")
	fs.stringVar(&execCmd, "exec", "run the scanner CMD for each access to a file that no rule decided, the file as its last argument (/proc/PID/fd/N); exit 0 allows")
	fs.durationVar(&deadline, "deadline", "bound each decision by DUR; 0 waits forever")
	onTimeout = "allow"
	fs.stringVar(&onTimeout, "on-timeout", "verdict at the deadline: allow or deny")
	fs.stringVar(&onError, "on-error", "verdict when the guard fails to decide (a scanner that cannot run or crashes, /proc unreadable): deny (default) or allow")
	fs.boolVar(&permissive, "permissive", "decide and audit, but allow everything")
	fs.boolVar(&noExecMemo, "no-exec-memo", "decide every exec by the rules: do not remember an exec's decision for the next exec of the same unchanged file by the same path (see docs/security.md)")
	fs.stringVar(&audit, "audit", "write one JSON line per decision to FILE (- for stdout)")
	fs.intVar(&concurrency, "concurrency", "run at most N (at least 1) scanners at once (default 64), shared among the users waiting for one, in turn")
	fs.boolVar(&quiet, "q,quiet", "do not print \"Watches established.\"")
	fs.boolVar(&mount, "mount", "guard the whole mount of each PATH (a mount mark) instead of the subtree below it")
	tsrc.registerGuardStyle(fs)
	fs.durationVar(&reloadInterval, "reload-interval", "check the policy file and trust sources for changes every DUR (default 1s; 0: only on SIGHUP)")
	fs.value(&daemon, "daemon", "run through the fsnotifyd daemon (--daemon=SOCKET for another socket)")
	var fleetFlags guardFleetFlags
	fleetFlags.register(fs)
	paths, status, ok := fs.parseArgs(args)
	if !ok {
		return status
	}
	if status, ok := tsrc.checkDir(fs.cmd); !ok {
		return status
	}
	if err := fleetFlags.check(fs, daemon.on, policyFile); err != nil {
		return refuseConn(fs, err)
	}
	if fs.given("concurrency") && concurrency < 1 {
		return fs.usageError(fmt.Errorf("--concurrency %d: want at least 1", concurrency))
	}
	if len(paths) == 0 {
		return fs.usageError(errors.New("no PATH given: name the directories (or files) to guard"))
	}
	timeoutVerdict, err := engine.ParseVerdict(onTimeout)
	if err != nil {
		return fs.usageError(fmt.Errorf("--on-timeout: %w", err))
	}
	errorVerdict, err := engine.ParseVerdict(onError)
	if err != nil {
		return fs.usageError(fmt.Errorf("--on-error: %w", err))
	}
	if execCmd != "" && !isShellLine(execCmd) {
		// Found now, not at the first access: a scanner that cannot start denies every
		// access (--on-error deny) or lets every one through.
		path, err := exec.LookPath(execCmd)
		if err != nil {
			return fs.usageError(fmt.Errorf("--exec %q: %w (give the scanner's path, or a shell command line)", execCmd, errors.Unwrap(err)))
		}
		// It runs as this user, exempt: whoever could replace it would (sshd refuses such an
		// AuthorizedKeysCommand). Held to the trust files' rule, as --policy is.
		if err := checkScanner(path); err != nil {
			return fs.usageError(fmt.Errorf("--exec: %w", err))
		}
	}
	kinds := notify.AccessOpen
	if fs.given("events,e") {
		// Given, even empty, it must name accesses: an empty list (a variable that expanded
		// to nothing) is the usage error "--events ," is, not the default.
		if strings.TrimSpace(events) == "" {
			return fs.usageError(fmt.Errorf("--events: empty list (want a comma list of %s)", fsevent.AccessNames(", ")))
		}
		if kinds, err = notify.ParseAccessKinds(events); err != nil {
			return fs.usageError(fmt.Errorf("--events: %w", err))
		}
	}
	flagPol, err := policy.FromFlags(rules.flags)
	if err != nil {
		return fs.usageError(err)
	}
	g := &guardRun{kinds: kinds, execCmd: execCmd, permissive: permissive, onError: notify.Deny, flagPol: flagPol, cache: rules.cache,
		policyFile: policyFile, quiet: quiet, deadline: deadline, paths: paths, mountMarks: mount,
		verifier: trust.NewVerifier(trust.VerifierConfig{}),
		trustCfg: trust.Config{Files: tsrc.files, Packages: !tsrc.noPackages, DpkgDir: tsrc.dpkgDir}}
	sysattr.Loaders() // read now, before any mark: never by a decision, whose reads could wait on a guard
	if len(tsrc.files) == 0 {
		g.trustCfg.Dir = cmp.Or(tsrc.dir, trust.DefaultDir)
	}
	if !noExecMemo {
		g.memo = newExecMemo(g.verifier.Settle()) // before the state: it says whether to use it
	}
	var filePol *policy.Policy
	if policyFile != "" {
		src, owner, stamp, err := readPolicyAtStart(policyFile) // never half-written
		g.lastStamp = stamp
		if err != nil {
			return fail("guard", fmt.Errorf("--policy: %w", err))
		}
		if owner != nil {
			// Whoever can write the file decides what the guard allows (as for trust files).
			return fs.usageError(fmt.Errorf("--policy: %w", owner))
		}
		filePol, err = policy.Parse(policyFile, bytes.NewReader(src))
		if err != nil {
			return fail("guard", err) // names file:line:col
		}
	}
	surviveBrokenPipes() // guard --audit - | head: the audit writer counts and reports EPIPE
	// What the guard says while it runs goes through a queue of its own: a handler that says
	// why a scan failed must not wait for a stderr nobody reads (a paused pager), or the
	// deadline's verdict would decide in its place.
	g.stderr = newLogWriter(os.Stderr)
	g.stderr.dropped = func(n uint64) {
		fmt.Fprintf(g.stderr, "fsnotifyd guard: %d lines of stderr were dropped (its reader did not keep up)\n", n)
	}
	defer g.stderr.close()
	if audit != "" {
		// Opened before the state is built: a policy that needs no path still gets paths in
		// its audit lines.
		if g.audit, err = newAuditWriter(audit, g.stderr); err != nil {
			return fail("guard", fmt.Errorf("--audit: %w", err))
		}
		defer g.audit.close()
	}
	if fleetFlags.exportDecisions {
		g.report, g.reporter = true, newReporter(g.stderr) // guard_fleet.go
		defer g.reporter.close()                           // after guard.Close: its last decisions are queued
	}
	g.applyMu.Lock()
	st, err := g.buildStateLocked(filePol, policyFile, nil)
	if err == nil {
		g.state.Store(st)
	}
	g.applyMu.Unlock()
	if err != nil {
		return fail("guard", startStateError(err))
	}
	if fleetFlags.from != "" {
		// The fleet's policy is in force before the marks are placed (guard_fleet.go).
		fol, err := g.startFleetPolicy(&fleetFlags)
		if err != nil {
			return fail("guard", err)
		}
		defer fol.Close()
	}
	pol := g.state.Load().pol
	for _, w := range pol.LintWith(policy.LintOptions{Scanned: execCmd != "", UserNS: sys.UnprivilegedUserNS()}) {
		fmt.Fprintf(os.Stderr, "fsnotifyd guard: warning: %s\n", w)
	}
	for _, w := range pathWarnings(pol) {
		fmt.Fprintf(os.Stderr, "fsnotifyd guard: warning: %s\n", w)
	}
	if pol.NeedsPreContent() && kinds&notify.AccessPreAccess == 0 {
		// An errno= rule needs a pre-content group; pre_access rules need their events.
		fmt.Fprintln(os.Stderr, "fsnotifyd guard: note: the policy denies with an errno or names pre_access; add --events ...,pre_access to use it (without a pre-content guard an errno= deny is a plain deny, EPERM)")
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return fail("guard", explainPathError(p, err))
		}
		if st, err := sys.Statfs(p); err == nil && st.Type == sys.OVERLAYFS_SUPER_MAGIC {
			// The overlay's files are its layers' files: opened through a layer's own
			// directory they raise no event on the overlay (docs/security.md, "Overlayfs
			// and containers").
			fmt.Fprintf(os.Stderr, "fsnotifyd guard: warning: %s is on an overlayfs: its files are reachable through the overlay's layer directories (lowerdir=, upperdir= in /proc/self/mountinfo), whose accesses this guard does not see; guard those directories instead (a guard of a layer directory decides the accesses through the overlay too); see docs/security.md\n", p)
		}
	}
	if deadline == 0 {
		fmt.Fprintln(os.Stderr, "fsnotifyd guard: warning: --deadline 0: accesses wait forever for a verdict; a hung scanner will hang every process that touches the guarded files")
	}
	if mount && sys.UnprivilegedUserNS() {
		fmt.Fprintln(os.Stderr, "fsnotifyd guard: warning: --mount: unprivileged user namespaces are enabled, so any user can reach these mounts' files through the copies of them in a mount namespace of their own (unshare -Urm), or through an overlayfs they mount with a directory here as its lower layer (its files are opened on the overlay's private copy of the mount), which a mount mark does not see: their accesses are not decided. Guard the paths without --mount (every mount of their filesystems, in every namespace), or turn unprivileged user namespaces off (sysctl user.max_user_namespaces=0); see docs/security.md")
	}
	if errorVerdict == engine.Allow {
		g.onError = notify.Allow
	}
	if execCmd != "" {
		if concurrency <= 0 {
			concurrency = 64
		}
		g.scanSlots = workslot.NewFair(concurrency)
		if g.launcher, err = startLauncher(); err != nil {
			return fail("guard", err)
		}
		defer g.launcher.close()
	}
	v := notify.Allow
	if timeoutVerdict == engine.Deny && !permissive {
		v = notify.Deny
	}
	g.onTimeout = v
	cfg := notify.GuardConfig{
		Paths:     paths,
		Events:    kinds,
		Deadline:  deadline,
		OnTimeout: v,
		OnLate:    g.late,
		OnClose:   notify.Allow,
		Cache:     true, // the policy says which allows may be cached (d.Cache), also after a reload
		Inline:    g.inlineFunc(),
		// ByKind (the current state's kindVerdicts) is set with the state, under applyMu below;
		// it is used only while no OnDecision is set (then bareKinds is 0 anyway).
		// Neither inline nor decided keeps a Request: decided copies what it records, and
		// the outcome kept for it (outcomes) is taken out before it returns.
		ReuseRequests: true,
		AllowOnError:  errorVerdict == engine.Allow || permissive,
	}
	if g.audit != nil || g.report {
		// Only then does decided record anything (both are fixed for the guard's life): with
		// neither, the Guard reads no clock for a latency nobody reads, per access.
		cfg.OnDecision = g.decided
	}
	if mount {
		cfg.Paths, cfg.Mounts = nil, paths
	}
	if !daemon.on {
		// The guard's own backend, shared by the guard and the forgetter (MODIFY and
		// CLOSE_WRITE drop the hash cache's digests of a file: guard_state.go).
		// ReusePermEvents: the guard's Requests, which refer to their events, are reused
		// with them (ReuseRequests); the forgetter watches for notifications only, whose
		// events are never reused.
		if g.backend, err = backend.New(backend.Options{Mode: backend.ModeAuto, ReusePermEvents: true}); err != nil {
			return fail("guard", err)
		}
		defer g.backend.Close()
		if !g.backend.Privileged() {
			return fail("guard", notify.ErrGuardNeedsPrivilege)
		}
		cfg.Backend = g.backend
		if pol.ReadsContent() {
			g.applyMu.Lock()
			g.startForgetLocked() // before the guard's marks: no write goes unseen once it decides
			g.applyMu.Unlock()
			if g.forgetErr != nil {
				return fail("guard", fmt.Errorf("watching the guarded files for writes: %w", g.forgetErr))
			}
		}
	}
	if daemon.on {
		// Through the daemon: it holds the kernel side and enforces the deadline; this
		// process decides by the same rules (and scanner).
		cfg.Daemon, cfg.Name = daemon.path(), "fsnotifyd-guard"
		// Rules that tell no paths apart and read nothing of the file, fixed for the guard's
		// life (no --policy file to reload, no fleet), with no audit, report or scanner, need
		// neither the events' paths nor their files: the daemon then reads no path (a
		// readlink and a statx per access) and duplicates no descriptor (a dup, and a close
		// on each side).
		if policyFile == "" && g.fleet == nil && !g.report && g.audit == nil && g.launcher == nil && g.execCmd == "" &&
			pathKinds(pol, false) == 0 && !pol.ReadsContent() {
			cfg.NoPaths, cfg.NoFiles = true, true
		}
		cfg.OnResync = func() {
			fmt.Fprintln(g.stderr, "fsnotifyd guard: the daemon restarted; watches re-established (accesses meanwhile were allowed)")
		}
		cfg.OnDisconnected = func(err error) {
			fmt.Fprintf(g.stderr, "fsnotifyd guard: the daemon is gone or refuses this guard (%v): accesses are NOT guarded until the guard is back on it\n", err)
		}
		cfg.OnLost = func(path string, err error) {
			fmt.Fprintf(g.stderr, "fsnotifyd guard: %s is NOT guarded any more: %v (it changed while the daemon was down; restart the guard to guard what is there now)\n", path, err)
		}
	}
	if g.launcher != nil {
		cfg.Exempt = []int{g.launcher.pid()}
	}
	// The kinds the marks ask for follow the state: placed under applyMu, so no reload can
	// store a state between choosing them and g.guard being set (storeLocked).
	g.applyMu.Lock()
	g.embedded = !daemon.on
	cfg.Ask = g.askKinds(g.state.Load().pol)
	cfg.ByKind = g.state.Load().byKind
	guard, err := notify.NewGuard(cfg, g.handle)
	if err == nil {
		g.guard, g.publishKinds = guard, guard.SetKindVerdicts
	}
	g.applyMu.Unlock()
	if err != nil {
		return fail("guard", err)
	}
	if g.report {
		g.reporter.gd.Store(guard)
	}
	g.fleetRunning() // revisions from now on go to ApplyPolicy (guard_fleet.go)
	if g.execCmd != "" && !guard.Files() {
		// The scanner reads the event's own descriptor of the file (scanFile), never its
		// path: through a daemon that sends none, every scan would fail (--on-error).
		guard.Close()
		return fail("guard", fmt.Errorf("--exec: the daemon sends this guard (uid %d) no descriptors of the files it decides, which the scanner reads: add \"fd_uid %d\" to the daemon's config (docs/daemon.md), or run the guard as root", os.Getuid(), os.Getuid()))
	}
	if got := guard.Deadline(); got != deadline {
		fmt.Fprintf(os.Stderr, "fsnotifyd guard: note: the daemon caps the deadline at %v\n", got)
	}
	if daemon.on && g.state.Load().pol.Caches() && !guard.Caches() {
		fmt.Fprintln(os.Stderr, "fsnotifyd guard: note: the daemon speaks a protocol older than version 6, which cannot withdraw a cached allow: no allow is cached (cache, --cache); upgrade fsnotifyd serve to cache")
	}
	// Signals are caught before "Watches established.": a SIGINT sent as soon as it is read
	// must stop the guard as one sent later does (exit 0, reports flushed), not kill it.
	// Once stopping, SIGINT and SIGTERM are ignored (untilStopped), and SIGHUP stays caught
	// (hup, no longer read): a second SIGTERM or a SIGHUP while pending accesses are answered
	// and the audit log is flushed must not kill the guard on its way out.
	ctx, stop := untilStopped()
	if !quiet {
		fmt.Fprintln(os.Stderr, "Watches established.")
	}
	// Under systemd (Type=notify: contrib/fsnotifyd-guard.service), units ordered after the
	// guard start once its marks are in place.
	if err := sdnotify.Send(fmt.Sprintf("READY=1\nSTATUS=guarding %d paths", len(paths))); err != nil {
		fmt.Fprintf(os.Stderr, "fsnotifyd guard: telling systemd the guard is ready (sd_notify): %v\n", err)
	}
	reloadDone := make(chan struct{})
	go func() {
		defer close(reloadDone)
		g.watchReload(ctx, hup, reloadInterval)
	}()
	<-ctx.Done()
	stop()
	// A reload under way is finished first (its READY=1 goes out), then systemd hears
	// STOPPING=1: a READY=1 after it would call a stopping guard ready.
	<-reloadDone
	sdnotify.Send("STOPPING=1")
	if g.reporter != nil {
		// The reports go with the Guard's connection. A decision is recorded (decided) a
		// moment after its answer went out, so the process may have its answer — and the
		// signal may have come — before its report is queued: wait for the decisions
		// answered by now (outcomes holds each until it is recorded), then for the queue.
		var answered []any
		g.outcomes.Range(func(r, _ any) bool { answered = append(answered, r); return true })
		g.reporter.flush(2*time.Second, func() bool {
			for _, r := range answered {
				if _, ok := g.outcomes.Load(r); ok {
					return false
				}
			}
			return true
		})
	}
	if err := guard.Close(); err != nil { // answers everything pending (allow), waits for running scanners
		fmt.Fprintf(g.stderr, "fsnotifyd guard: %v\n", err)
	}
	g.applyMu.Lock()
	if g.forget != nil {
		g.forget.stop()
	}
	g.applyMu.Unlock()
	return exitOK // the audit file's close (deferred) says what it could not write
}

// pathKinds are the kinds of access whose decision may read the file's path (with an audit
// log, all: its lines name the path). Any other kind is decided without it, which saves a
// readlink and its check per access (policy.NeedsPath: every rule for that kind matches
// whatever the path; an allow-all policy, or the opens under an exec-only allowlist). Without
// the path a policy sees an unknown one, which "**" matches (it matches every path; "/**"
// does not match "/").
func pathKinds(p *policy.Policy, audit bool) notify.AccessKind {
	var ks notify.AccessKind
	for k := notify.AccessOpen; k <= notify.AccessPreAccess; k <<= 1 {
		if audit || p.NeedsPath(k.Mask()) {
			ks |= k
		}
	}
	return ks
}

// bareKinds are the kinds of access whose decision reads nothing of the access but its kind:
// every rule that applies to the kind has the glob "**" and no condition (policy.NeedsPath is
// false: an allow-all policy, the opens under an exec-only allowlist), and nothing records
// the access's attributes (no audit log, no --export-decisions: with either it is none).
// decide gives such a kind the policy's decision for a request with no path and no process
// or file behind it (Decide then reads neither: only a rule's conditions do), without building
// the attribute state (docs/security.md, "a kind of access decided from its kind alone").
func bareKinds(p *policy.Policy, recorded bool) notify.AccessKind {
	if recorded {
		return 0
	}
	return (notify.AccessOpen | notify.AccessRead | notify.AccessExec | notify.AccessPreAccess) &^ pathKinds(p, false)
}

// bareIndexes is the number of kinds of access (notify.AccessKind's bits); bareIndex is a
// kind's index among them.
const bareIndexes = 4

func bareIndex(k notify.AccessKind) int { return bits.TrailingZeros8(uint8(k)) & (bareIndexes - 1) }

// bareDecisions are the decisions of the kinds ks, made with the policy as decide would make
// them with no path, process or file (Decide reads none of them for such a kind).
func bareDecisions(p *policy.Policy, ks notify.AccessKind) [bareIndexes]policy.Decision {
	var ds [bareIndexes]policy.Decision
	for i := range bareIndexes {
		if k := notify.AccessKind(1) << i; ks&k != 0 {
			ds[i] = p.Decide(&policy.Request{Event: k.Mask()})
		}
	}
	return ds
}

// askKinds are the kinds of access the guard's marks ask the kernel for under policy p: every
// kind of --events, but an open or exec that p allows whatever its process, path and file
// (policy.AllowsEvery) while nothing else would see the access (no audit, report or scanner),
// embedded (through the daemon every kind is asked), as long as another kind is still asked.
// The kernel then lets such accesses through with no event: under bench/exec.sh's exec
// allowlist an exec is one permission event instead of two (docs/security.md, "Kinds of
// access no rule decides").
func (g *guardRun) askKinds(p *policy.Policy) notify.AccessKind {
	ask := g.kinds
	if !g.embedded || g.audit != nil || g.report || g.execCmd != "" {
		return ask
	}
	for _, k := range []notify.AccessKind{notify.AccessOpen, notify.AccessExec} {
		if ask&k != 0 && ask&^k != 0 && p.AllowsEvery(k.Mask()) {
			ask &^= k
		}
	}
	return ask
}

// guardRun is one running guard command: its policy and trust database (guard_state.go),
// scanner and audit.
type guardRun struct {
	guard      *notify.Guard
	kinds      notify.AccessKind // --events
	embedded   bool              // not through the daemon; set with guard
	backend    *backend.Backend  // the guard's own (nil through the daemon)
	execCmd    string
	permissive bool
	quiet      bool
	onError    notify.Verdict // --on-error
	onTimeout  notify.Verdict // --on-timeout (Allow with --permissive)
	deadline   time.Duration
	audit      *auditWriter
	stderr     *logWriter     // what the guard says while it runs (never waits for its reader)
	scanSlots  *workslot.Fair // --concurrency scanners at once, shared among the users waiting
	launcher   *launcher
	paths      []string
	mountMarks bool

	// state is the policy and trust database decisions load (guard_state.go).
	state    atomic.Pointer[guardState]
	verifier *trust.Verifier // one for every decision and every state: its cache is by inode
	// memo remembers exec decisions (guard_memo.go); nil with --no-exec-memo. Used under a
	// state whose execMemo is set.
	memo *execMemo
	// publishKinds publishes the verdicts of the kinds decided from their kind alone
	// (Guard.SetKindVerdicts, storeLocked); under applyMu, nil until the guard runs.
	publishKinds func(notify.KindVerdicts)
	// What a new state is built from: the command-line rules, --cache, the trust sources,
	// --policy FILE and the version of it last read.
	flagPol    *policy.Policy
	cache      bool
	trustCfg   trust.Config
	policyFile string
	lastStamp  fileStamp // written by the reload goroutine only (and before it starts)

	applyMu   sync.Mutex // serializes state writers; no decision takes it
	forget    *forgetter // under applyMu
	forgetErr error      // under applyMu
	forgets   atomic.Uint64

	// outcomes holds each decided request's audit outcome until its audit line is written
	// (only with --audit or --export-decisions): *notify.Request -> *outcome.
	outcomes sync.Map

	// The fleet (guard_fleet.go): report is --export-decisions; fleet follows --policy-from.
	report   bool
	reporter *reporter
	fleet    *fleetApply
}

// outcome is what an audit line says of a decision by the rules: what decided, whether the
// rules denied (before --permissive), and what was read of the file and executable.
type outcome struct {
	source string
	deny   bool
	late   bool // decided at the late point (guardRun.late)
	attrs  format.AuditAttrs
}

// decide decides r by st's rules, reading content as mode says (readInline: an attribute that
// reads content fails with errSlow). ctx bounds hashing (the late point).
func (g *guardRun) decide(ctx context.Context, st *guardState, r *notify.Request, mode readMode) (policy.Decision, *outcome) {
	if g.audit != nil || g.report {
		// The audit line is written after the answer, when the process may be gone (a cat):
		// learn its name (and, for the fleet, its uid) while it waits.
		r.Comm()
		if g.report {
			r.LookupUid()
		}
	}
	if st.bareKinds&r.Kind != 0 {
		return st.bare[bareIndex(r.Kind)], nil // the policy's decision for the kind, whatever the access
	}
	tr := sysattr.Trust{DB: st.db, Verifier: g.verifier}
	fast, late := mode == readInline, mode == readLate
	var ds *decideState
	if fast {
		ds = decideStates.Get().(*decideState)
	} else {
		ds = new(decideState)
	}
	proc, obj, req := &ds.proc, &ds.obj, &ds.req
	*proc = guardProc{r: r, fast: fast, sp: sysattr.Process{Pid: int32(r.Pid), Ctx: ctx, Trust: tr, CacheOnly: fast, Late: late}}
	*obj = guardObj{r: r, fast: fast, late: late, ctx: ctx, trust: tr}
	*req = policy.Request{Event: r.Kind.Mask(), Pid: int32(r.Pid), Proc: proc, Obj: obj}
	if st.pathKinds&r.Kind != 0 {
		req.Path = r.Path()
		req.PathUnknown = req.Path == ""
		// An open of an unlinked empty file (an O_TMPFILE, an overlay's copy-up) is about
		// no path (docs/policy.md, "Paths that cannot be read").
		req.Nameless = req.PathUnknown && r.Kind == notify.AccessOpen && obj.nameless()
	}
	d := st.pol.Decide(req)
	obj.close()
	var o *outcome
	if (g.audit != nil || g.report) && !errors.Is(d.Err, errSlow) {
		o = &outcome{source: d.Source(), deny: d.Verdict == engine.Deny && d.Err == nil, attrs: obj.audit(proc)}
	}
	if fast {
		*ds = decideState{}
		decideStates.Put(ds)
	}
	return d, o
}

// decideState is what one decision reads attributes through: the process, the file and the
// policy's request, in one allocation. Inline decisions (fast: on the kernel reader, which reads
// nothing that could outlive the decision — no hashing, no duplicated descriptor) reuse them
// from decideStates, so that an allow-all guard allocates nothing here; a handler's decision,
// whose hashing may outlive a deadline, gets its own.
type decideState struct {
	proc guardProc
	obj  guardObj
	req  policy.Request
}

var decideStates = sync.Pool{New: func() any { return new(decideState) }}

// keep remembers r's outcome for its audit line.
func (g *guardRun) keep(r *notify.Request, o *outcome) {
	if o != nil {
		g.outcomes.Store(r, o)
	}
}

// inlineFunc returns the Guard's Inline: it decides on the kernel reader goroutine by the
// rules, unless they need the file's content or the scanner: then handle does. A function
// literal, not the method value of a method (one generated wrapper's call less per access).
func (g *guardRun) inlineFunc() func(r *notify.Request) (notify.Verdict, bool) {
	return func(r *notify.Request) (notify.Verdict, bool) {
		st := g.state.Load()
		if st.bareKinds&r.Kind != 0 {
			// decide's first case, read in place: a policy.Decision (eight fields) returned
			// by decide is copied through memory, with loads that stall store forwarding.
			return g.inlineDecided(r, st, &st.bare[bareIndex(r.Kind)], nil)
		}
		if st.execMemo && r.Kind == notify.AccessExec {
			return g.inlineExec(r, st)
		}
		d, o := g.decide(context.Background(), st, r, readInline)
		return g.inlineDecided(r, st, &d, o)
	}
}

// kindVerdicts are the verdicts of the kinds of access st decides from their kind alone, as
// inlineFunc gives them to every Request of the kind (notify.GuardConfig.ByKind): st's bare
// kinds (bareKinds), but for a decision inlineDecided would read the Request for (one with an
// error, which failed records in it) or pass on (no rule decided, and the scanner does).
// Published only while st is the guard's state (storeLocked): a cached allow in them is
// therefore asked for only while st is current, as inlineDecided's check of the state asks.
func (g *guardRun) kindVerdicts(st *guardState) notify.KindVerdicts {
	var kv notify.KindVerdicts
	for i := range bareIndexes {
		k := notify.AccessKind(1) << i
		d := &st.bare[i]
		if st.bareKinds&k == 0 || d.Err != nil || g.leftToScanner(d) {
			continue
		}
		// final's without a Request: bareKinds is 0 when a deny's audit line would read one.
		kv.Set(k, g.verdict(d.Verdict == engine.Deny, d.Errno, d.Cache))
	}
	return kv
}

// inlineDecided is inlineFunc's verdict for decision d of state st (o: its audit outcome).
func (g *guardRun) inlineDecided(r *notify.Request, st *guardState, d *policy.Decision, o *outcome) (notify.Verdict, bool) {
	switch {
	case d.Err != nil && errors.Is(d.Err, errSlow):
		return notify.Verdict{}, false // decided again, from the start, by handle
	case d.Err != nil:
		g.keep(r, o)
		return g.failed(r, d.Err), true
	case g.scans(r, d):
		return notify.Verdict{}, false // no rule decided: the scanner does
	}
	g.keep(r, o)
	return g.final(r, d.Verdict == engine.Deny, d.Errno, d.Cache && g.state.Load() == st), true
}

// handle decides off the kernel reader, under the deadline: the rules with every attribute,
// then the scanner if no rule decided.
func (g *guardRun) handle(ctx context.Context, r *notify.Request) notify.Verdict {
	st := g.state.Load()
	d, o := g.decide(ctx, st, r, readHandler)
	if g.scans(r, &d) {
		v := g.scan(ctx, r)
		if o != nil {
			o.source, o.deny = "--exec", r.Note == noteScanDenied
			g.keep(r, o)
		}
		return v
	}
	g.keep(r, o)
	if d.Err != nil {
		if d.TimedOut() {
			return notify.Allow // too late: the Guard applies the deadline verdict
		}
		return g.failed(r, d.Err)
	}
	return g.final(r, d.Verdict == engine.Deny, d.Errno, d.Cache && g.state.Load() == st)
}

// late decides r at its late point (notify.GuardConfig.OnLate): no handler had decided it
// LateMargin before the deadline, because none was free (a flood of large files to hash,
// say) or its own ran out of time. The rules decide afresh with what can be had at once:
// the process, the file's type and size, digests from the hash cache; a condition on
// content that would need hashing may hold, so a deny rule denies and an allow rule is
// passed over. The verdict is the rules', not --on-timeout's: whoever makes the guard late
// must not choose it. --on-timeout stays for what the rules leave to the scanner (--exec),
// and for a decision that is late at the deadline itself.
func (g *guardRun) late(r *notify.Request) notify.Verdict {
	st := g.state.Load()
	d, o := g.decide(context.Background(), st, r, readLate) // nothing it reads waits
	if o != nil {
		o.late = true
	}
	if g.scans(r, &d) {
		if o != nil {
			o.source = "deadline" // the scanner's verdict is unknown: --on-timeout
		}
		g.keep(r, o)
		return g.onTimeout
	}
	g.keep(r, o)
	if d.Err != nil {
		return g.failed(r, d.Err)
	}
	return g.final(r, d.Verdict == engine.Deny, d.Errno, false)
}

// leftToScanner reports whether d leaves the access to the --exec scanner: no rule decided
// (the default allow, without an error) and there is a scanner.
func (g *guardRun) leftToScanner(d *policy.Decision) bool {
	return d.Err == nil && d.Verdict == engine.Allow && d.Rule == nil && g.execCmd != ""
}

// scans reports whether the scanner decides r, of decision d: d leaves it to the scanner, and
// r is a file's, not a directory's. A directory is no content to scan, and a scanner given
// one scans every file below it (clamdscan, grep -r): a user's dirty file would make every
// listing of the directories above it fail, and a deep tree every listing wait for the
// deadline. Its files are scanned as they are opened. Nothing else reaches the guard:
// fanotify reports no special file (FIFO, device, socket) with a descriptor
// (TestGuardScannerOnlyScansRegularFilesAsNobody).
func (g *guardRun) scans(r *notify.Request, d *policy.Decision) bool {
	return g.leftToScanner(d) && !r.IsDir
}

// failed is the verdict when the guard could not decide because of err (--on-error), with
// err in the request for the audit line.
func (g *guardRun) failed(r *notify.Request, err error) notify.Verdict {
	r.Err = err
	return g.final(r, g.onError.Denied(), 0, false)
}

// final is verdict's, with the executable of a deny read for its audit line.
func (g *guardRun) final(r *notify.Request, deny bool, errno syscall.Errno, cache bool) notify.Verdict {
	if deny && (g.audit != nil || g.report) {
		r.Exe() // the audit line names the executable of every deny, read while it waits
	}
	return g.verdict(deny, errno, cache)
}

// verdict is the verdict of a decision: final's, without the Request.
func (g *guardRun) verdict(deny bool, errno syscall.Errno, cache bool) notify.Verdict {
	if deny && g.permissive {
		return notify.Allow
	}
	switch {
	case deny && errno != 0:
		return notify.DenyErrno(errno)
	case deny:
		return notify.Deny
	case cache:
		return notify.AllowAndCache
	}
	return notify.Allow
}

// scanArgv is how --exec CMD runs for file (scanFile): CMD FILE, or through sh for a command
// line, FILE its "$1". FILE is always /proc/PID/fd/N: it starts with '/', never with '-'.
func scanArgv(execCmd, file string) []string {
	if isShellLine(execCmd) {
		return []string{"/bin/sh", "-c", execCmd + ` "$1"`, "fsnotifyd-exec", file}
	}
	return []string{execCmd, file}
}

// scanFile is the name the scanner reads the file by: /proc/PID/fd/N of this process, N a
// descriptor of the very file the event is for (Request.File), held open until the scanner
// has exited (launcher.run). Opening it opens that file, whatever its names lead to by then:
// a path, read again by the scanner, could be made to lead to another file between the
// event and the read (a rename over it, a directory above it swapped, a symbolic link put in
// its place), and the scanner would vouch for that one (TestGuardScannerScansTheOpenedFileNotItsPathAsNobody).
func scanFile(f *os.File) string {
	return "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/" + strconv.Itoa(int(f.Fd()))
}

// checkScanner refuses an --exec program that someone other than root (or this user) could
// change or replace (trust.CheckFile: its owner and mode, its directories', the links on its
// path). A shell command line is not looked into: what it runs is the shell's to find.
func checkScanner(path string) error {
	f, err := trust.OpenFile(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return trust.CheckFile(f, path, "scanner")
}

// isShellLine reports whether --exec CMD is a command line for sh rather than a program.
func isShellLine(execCmd string) bool { return strings.ContainsAny(execCmd, " \t'\"$;|&<>(){}*?") }

// scanEnv is the scanner's environment: the guard's, without what is the guard's alone
// (systemd's NOTIFY_SOCKET: the scanner is not the service; FSNOTIFYD_* of the guard's own
// environment), and FSNOTIFYD_PATH (the file's path, for display: "" when it cannot be read,
// then with FSNOTIFYD_PATH_UNKNOWN=1), FSNOTIFYD_PID and FSNOTIFYD_EVENT.
func scanEnv(path string, pid int, event string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "NOTIFY_SOCKET=") || strings.HasPrefix(kv, "FSNOTIFYD_")
	})
	env = append(env, "FSNOTIFYD_PATH="+path, "FSNOTIFYD_PID="+strconv.Itoa(pid), "FSNOTIFYD_EVENT="+event)
	if path == "" {
		env = append(env, "FSNOTIFYD_PATH_UNKNOWN=1")
	}
	return env
}

// errNoFile: a Request without the file (Request.File nil). Through the daemon, a guard whose
// uid its fd_uid and fd_gid do not name gets none; the start refuses --exec then.
var errNoFile = errors.New("no descriptor of the file to give the scanner (through the daemon: one whose fd_uid and fd_gid do not name this guard's uid sends none)")

// scan runs --exec for one access, through the launcher.
func (g *guardRun) scan(ctx context.Context, r *notify.Request) notify.Verdict {
	// The slots are shared among the users waiting for one, in turn (the handler's ctx names
	// the user: notify's Request.owner): a user who keeps every scanner busy delays another
	// user's scan by one scan, not by all of theirs. Waiting, the handler gives its place back.
	slot, err := g.scanSlots.Acquire(ctx)
	if err != nil {
		return notify.Allow // too late: the Guard applies the deadline verdict
	}
	defer slot.Release()
	// The scanner reads the file itself (scanFile), never by its path, which is only shown.
	f := r.File()
	if f == nil {
		err := fmt.Errorf("--exec: %w", errNoFile)
		fmt.Fprintf(g.stderr, "fsnotifyd guard: %v\n", err)
		return g.failed(r, err) // nothing to show the scanner: it cannot vouch
	}
	var timeout time.Duration
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	res, err := g.launcher.run(ctx, scanArgv(g.execCmd, scanFile(f)), scanEnv(r.Path(), r.Pid, r.Kind.String()), timeout, f)
	if scanTooLate(ctx, res) {
		return notify.Allow // too late: the Guard applies the deadline verdict
	}
	if err == nil && res.Err != "" {
		err = errors.New(res.Err) // it did not start, or a signal killed it
	}
	if err == nil && isShellLine(g.execCmd) && (res.Exit == 126 || res.Exit == 127) {
		err = fmt.Errorf("sh could not run the command (exit status %d: not executable, or not found)", res.Exit)
	}
	if err != nil {
		// A scanner that cannot run, or crashes, cannot vouch for the file.
		err = fmt.Errorf("--exec: %w", err)
		fmt.Fprintf(g.stderr, "fsnotifyd guard: %v\n", err)
		return g.failed(r, err)
	}
	deny := res.Exit != 0
	if deny {
		r.Note = noteScanDenied
	}
	return g.final(r, deny, 0, !deny && g.state.Load().pol.CacheAllows)
}

const noteScanDenied = "scanner denied"

// scanTooLate: the scan ended too late for its result to count (ctx ended, or the launcher
// killed the scanner at its timeout), so the Guard applies its deadline verdict. The Guard
// takes the handler's verdict as the answer unless ctx has ended when the handler returns
// (notify's runHandler). The launcher's timer starts when it reads the request, after ctx's
// deadline was read (scan: timeout), so a scanner it killed ran past that deadline; but this
// process's timer may not have run yet (its thread late on a loaded machine), and returning
// now would have the placeholder allow answer in place of --on-timeout: so wait for ctx to
// end, which is due (TestScanKilledAtItsTimeoutWaitsForTheDeadline).
func scanTooLate(ctx context.Context, res launchReply) bool {
	if _, ok := ctx.Deadline(); res.Killed && ok {
		<-ctx.Done()
	}
	return ctx.Err() != nil || res.Killed
}

// decided writes the audit record of one decision.
func (g *guardRun) decided(d notify.Decision) {
	if g.audit == nil && !g.report {
		return
	}
	var o outcome
	if v, ok := g.outcomes.Load(d.Request); ok {
		o = *v.(*outcome)
		// Taken out only once the report is queued: the shutdown flush waits for the decisions
		// still in outcomes, then for the reporter's queue, so between the two a decision must
		// be in one or the other (taking it out first lost its report when a guard was stopped
		// right after the decision).
		defer g.outcomes.Delete(d.Request)
	}
	verdict, rule := d.Verdict.String(), d.By
	switch d.By {
	case "inline", "handler", "late":
		rule = o.source
		if g.permissive && o.deny {
			verdict = "deny(permissive)" // what the rules said, not the allow that was sent
		}
	}
	rec := auditRecord{Decision: fsevent.Decision{
		Time:    time.Now().Format(time.RFC3339Nano),
		Path:    d.Request.Path(),
		Pid:     d.Request.Pid,
		Comm:    d.Request.Comm(),
		Event:   d.Request.Kind.String(),
		Verdict: verdict,
		Rule:    rule,
		Latency: d.Latency.String(),
		LatNS:   d.Latency.Nanoseconds(),
	}, AuditAttrs: o.attrs}
	rec.Late = o.late
	if rec.Path == "" {
		// What is known instead of the path: the file's device and inode.
		rec.PathUnknown = true
		if dev, ino, ok := d.Request.Inode(); ok {
			rec.Dev, rec.Ino = fsevent.DevString(dev), ino
		}
	}
	if d.Err != nil {
		rec.Error = d.Err.Error()
		if g.permissive && !g.onError.Denied() {
			rec.Verdict = d.Verdict.String()
		} else if g.permissive {
			rec.Verdict = "deny(permissive)"
		}
	}
	if exe, verified, ok := d.Request.ExeRead(); ok && exe != "" {
		rec.Exe, rec.ExeUnverified = exe, !verified
	}
	rec.KeepBytes() // a name that is not UTF-8 is written as its bytes
	if g.report {
		if uid := d.Request.Uid(); uid >= 0 {
			rec.UID = &uid
		}
		g.reporter.report(&rec)
	}
	if g.audit != nil {
		g.audit.write(rec)
	}
}

// auditRecord is one --audit line: fsevent.Decision (the record fleet decisions carry too),
// and what the decision read of the file and the executable: ftype, sha256, and each trust
// verdict with its source and digest (their JSON fields sit beside the others).
type auditRecord struct {
	fsevent.Decision
	format.AuditAttrs
	// ReportsDropped is, in a decision report (--export-decisions), how many reports the
	// guard dropped before this one since the last one sent (its queue full); never in an
	// audit line.
	ReportsDropped uint64 `json:"reports_dropped,omitempty"`
}

// auditWriter writes audit records from its own goroutine: a decision never waits on the
// audit file (which may itself be on a guarded filesystem, or a slow pipe). When it falls
// behind, records are dropped and counted, never the verdicts. When a write fails (a full
// disk, an I/O error), the records it did not write are counted and said on stderr, and the
// next write tries again; at close, a reader that stopped reading is not waited for.
type auditWriter struct {
	name     string    // the --audit argument, for messages
	say      io.Writer // where the messages go (the guard's stderr queue)
	ch       chan auditRecord
	done     chan struct{}
	reopenc  chan struct{} // a SIGHUP's request to open name again (reopen)
	checkc   chan struct{} // a poll's request to open it again if it is no longer at name (reopenIfMoved)
	w        *progressWriter
	c        io.Closer
	dropped  atomic.Uint64 // records the queue had no room for
	dropping atomic.Bool   // records were dropped since run last said how many
	queued   atomic.Uint64 // records queued
	written  atomic.Uint64 // records written whole
	lost     atomic.Uint64 // records a failed write did not write whole
	// run's own:
	saidDropped uint64 // the dropped records said so far
	checkFailed bool   // the last poll's reopen was refused (said once)
	failing     bool   // the last write failed
	lastErr     error  // the last failed write's error
	partial     bool   // that write wrote part of a line: the next write ends it first
}

func newAuditWriter(path string, say io.Writer) (*auditWriter, error) {
	a := &auditWriter{name: path, say: say, ch: make(chan auditRecord, 8192), done: make(chan struct{}), reopenc: make(chan struct{}, 1), checkc: make(chan struct{}, 1)}
	if path == "-" {
		a.w = &progressWriter{w: os.Stdout}
	} else {
		f, err := openOutput(path, 0o640) // not another user's link, file or FIFO in /tmp
		if err != nil {
			return nil, err
		}
		a.w, a.c = &progressWriter{w: f}, f
	}
	go a.run()
	return a, nil
}

func (a *auditWriter) write(r auditRecord) {
	select {
	case a.ch <- r:
		a.queued.Add(1)
	default:
		a.dropped.Add(1)
		if a.dropping.CompareAndSwap(false, true) { // once a burst: a.say never waits (its own queue)
			fmt.Fprintf(a.say, "fsnotifyd guard: --audit %s: the audit file does not keep up: records are dropped (counted) until it does; verdicts do not wait for it\n", a.name)
		}
	}
}

// auditBatch is how many bytes of records run writes at most at once.
const auditBatch = 64 << 10

func (a *auditWriter) run() {
	defer close(a.done)
	var buf []byte
	for {
		var r auditRecord
		select {
		case <-a.reopenc:
			// The records taken from the queue so far go to the file open until now, the
			// later ones to the file opened: each is written once, to one of the two.
			buf = a.flush(buf)
			a.reopenFile("on SIGHUP", false)
			continue
		case <-a.checkc:
			if a.moved() {
				buf = a.flush(buf)
				// A refusal is said once, not at every poll while it lasts.
				ok := a.reopenFile("once it was renamed or removed", a.checkFailed)
				if a.checkFailed = !ok; ok {
					fmt.Fprintf(a.say, "fsnotifyd guard: --audit %s: the file was renamed or removed: opened again at its name\n", a.name)
				}
			}
			continue
		case rec, ok := <-a.ch:
			if !ok {
				a.flush(buf)
				return
			}
			r = rec
		}
		b, err := json.Marshal(r)
		if err != nil { // nothing in a record fails to marshal; count it rather than lose it silently
			a.lost.Add(1)
			continue
		}
		buf = append(append(buf, b...), '\n')
		if len(a.ch) == 0 || len(buf) >= auditBatch {
			buf = a.flush(buf)
		}
		if len(a.ch) == 0 && a.dropping.Swap(false) {
			// Caught up after a burst of drops: how many, said while the guard runs (not
			// only at its exit), so the hole in the log is known when it happens.
			if n := a.dropped.Load(); n > a.saidDropped {
				fmt.Fprintf(a.say, "fsnotifyd guard: --audit %s: %d audit records were dropped (the audit file could not keep up; %d since the start)\n", a.name, n-a.saidDropped, n)
				a.saidDropped = n
			}
		}
	}
}

// reopen asks the writer to open the audit file's name again (SIGHUP: a log rotated by
// rename, logrotate's default, whose postrotate sends it). It never waits: the writer's
// goroutine opens it between two writes. A nil writer (no --audit) and --audit - do nothing.
func (a *auditWriter) reopen() {
	if a == nil || a.name == "-" { // (a.c is run's to change)
		return
	}
	select {
	case a.reopenc <- struct{}{}:
	default: // one is pending: it opens the name as it is then
	}
}

// reopenIfMoved asks the writer to open the name again if the file it writes is no longer
// there (renamed or removed: logrotate without postrotate). It never waits; a no-op as reopen.
func (a *auditWriter) reopenIfMoved() {
	if a == nil || a.name == "-" {
		return
	}
	select {
	case a.checkc <- struct{}{}:
	default:
	}
}

// moved reports whether a.name is no longer the file being written (run's own).
func (a *auditWriter) moved() bool {
	f, ok := a.c.(*os.File)
	if !ok {
		return false
	}
	open, err := f.Stat()
	if err != nil || open.Mode()&os.ModeNamedPipe != 0 {
		return false // a FIFO's reader keeps it; nothing to rotate
	}
	now, err := os.Stat(a.name)
	return errors.Is(err, os.ErrNotExist) || err == nil && !os.SameFile(open, now)
}

// reopenFile opens a.name again with the checks of the start (openOutput: not another
// user's link, file or FIFO in a sticky directory anyone may write; a FIFO is not waited
// for), and writes the next records there; the file open until now is closed. If it cannot
// be opened, that is said on stderr and the records keep going to the file open until now.
// Run's own.
func (a *auditWriter) reopenFile(why string, quiet bool) bool {
	f, err := openOutput(a.name, 0o640)
	if err != nil && !quiet {
		fmt.Fprintf(a.say, "fsnotifyd guard: --audit %s: not opened again %s: %v; records still go to the file open until now\n", a.name, why, err)
	}
	if err != nil {
		return false
	}
	if a.partial { // end the line cut short in the file it was cut in, not in the new one
		a.w.Write([]byte{'\n'})
		a.partial = false
	}
	a.c.Close()
	a.w.w, a.c = f, f // a.w's Write runs only here, on this goroutine; close reads a.c once done is closed
	return true
}

// flush writes buf, whole lines, and returns it emptied. A failed write loses the lines it
// did not write whole: they are counted, and the first failure after a success is said on
// stderr, as is the first success after it.
func (a *auditWriter) flush(buf []byte) []byte {
	if len(buf) == 0 {
		return buf
	}
	if a.partial { // end the line cut short, so that the next records stay lines of their own
		if _, err := a.w.Write([]byte{'\n'}); err != nil {
			a.failed(buf, 0, err)
			return buf[:0]
		}
		a.partial = false
	}
	n, err := a.w.Write(buf)
	a.written.Add(uint64(bytes.Count(buf[:n], []byte{'\n'})))
	if err != nil {
		a.failed(buf, n, err)
		return buf[:0]
	}
	if a.failing {
		a.failing = false
		fmt.Fprintf(a.say, "fsnotifyd guard: --audit %s: written again (%d records lost so far)\n", a.name, a.lost.Load())
	}
	return buf[:0]
}

func (a *auditWriter) failed(buf []byte, n int, err error) {
	a.partial = n > 0 && buf[n-1] != '\n'
	a.lost.Add(uint64(bytes.Count(buf[n:], []byte{'\n'})))
	if !a.failing {
		fmt.Fprintf(a.say, "fsnotifyd guard: --audit: %v: audit records are lost (counted) until it can be written again; verdicts do not wait for it\n", err)
	}
	a.failing, a.lastErr = true, err
}

// close writes what is queued, and says on stderr what was not written. A reader of the
// audit FIFO or pipe that stops reading is waited for no longer than outputGrace: the guard
// ends rather than hang until SIGKILL.
func (a *auditWriter) close() {
	close(a.ch)
	if !waitOutput(a.done, a.w) {
		fmt.Fprintf(a.say, "fsnotifyd guard: --audit %s: blocked for %v, its reader not reading: up to %d audit records were not written\n",
			a.name, outputGrace, a.queued.Load()-a.written.Load()-a.lost.Load())
		return // run stays blocked in its write until the process ends
	}
	if a.c != nil {
		a.c.Close()
	}
	if n := a.dropped.Load(); n > 0 {
		fmt.Fprintf(a.say, "fsnotifyd guard: %d audit records were dropped (the audit file could not keep up)\n", n)
	}
	if n := a.lost.Load(); n > 0 {
		fmt.Fprintf(a.say, "fsnotifyd guard: %d audit records could not be written (the last error: %v)\n", n, a.lastErr)
	}
}

// pathWarnings are the warnings about pol's rules that look at this host's directories (at
// the start and after each reload, with no lock held): deny rules whose directories others
// may rename, and rules through symbolic links.
func pathWarnings(pol *policy.Policy) []policy.Warning {
	return append(append(denyRulesOthersMayRename(pol), rulesThroughLinks(pol)...), rulesNamingDirectories(pol)...)
}

// rulesNamingDirectories warns of each rule whose glob, without a wildcard, names a directory
// on this host: a glob matches one path, so the rule decides opening the directory itself
// (listing it), and none of the files below it, which "deny /srv/secret" was surely meant to
// keep out (docs/policy.md, "Globs").
func rulesNamingDirectories(pol *policy.Policy) []policy.Warning {
	var out []policy.Warning
	for _, r := range pol.Rules {
		if !r.Glob.Literal() {
			continue
		}
		p := r.Glob.LiteralPrefix()
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			out = append(out, policy.Warning{Rule: r, Kind: "directory", Msg: fmt.Sprintf("%s is a directory: this rule decides the accesses of the directory itself (listing it), not of the files below it: for those, write %s/** too", p, p)})
		}
	}
	return out
}

// denyRulesOthersMayRename warns of each deny rule whose glob's leading literal directories
// (the longest of them that exists) a user other than root may rename, or move away and
// replace: a glob matches the path a file has at the access, so that user chooses whether
// the rule matches (docs/security.md, "The guarded directory's name").
func denyRulesOthersMayRename(pol *policy.Policy) []policy.Warning {
	var out []policy.Warning
	for _, r := range pol.Rules {
		if r.Verdict != engine.Deny {
			continue
		}
		p := r.Glob.LiteralPrefix()
		for p != "" && p != "/" {
			if _, err := os.Lstat(p); err == nil {
				break
			}
			p = filepath.Dir(p)
		}
		if p == "" || p == "/" {
			continue
		}
		if msg := othersMayRename(p); msg != "" {
			out = append(out, policy.Warning{Rule: r, Kind: "renamable", Msg: fmt.Sprintf("%s; whoever may rename %s chooses the paths of the files below it, and this rule does not match them under another name (a guarded directory renamed stays guarded, under its new path: docs/security.md, \"The guarded directory's name\")", msg, p)})
		}
	}
	return out
}

// othersMayRename says why a user other than root (and the guard's) may rename p, or a
// directory above it, or "" if none may: the check of trust.CheckDirOf on
// the directories its name is looked up in, and, in a sticky directory, p's own owner (who
// may rename it there).
func othersMayRename(p string) string {
	if err := trust.CheckDirOf(p, "the rule's path"); err != nil {
		var oe *trust.OwnerError
		if errors.As(err, &oe) {
			return err.Error()
		}
		return "" // a lookup error: the start reports it
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return ""
	}
	parent := filepath.Dir(real)
	pi, err1 := os.Stat(parent)
	fi, err2 := os.Stat(real)
	if err1 != nil || err2 != nil || pi.Mode()&os.ModeSticky == 0 {
		return ""
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && st.Uid != uint32(os.Geteuid()) {
		return fmt.Sprintf("owned by uid %d in the sticky directory %s: its owner may rename it (chown root %s)", st.Uid, parent, p)
	}
	return ""
}

// rulesThroughLinks warns of each rule whose glob's leading literal directories (or the
// file it names) pass through a symbolic link on this host: the kernel reports paths with
// their links resolved, so such a rule never matches there (docs/policy.md, "Globs"). And of
// each exe= or ancestor= glob that does: /proc/PID/exe gives the executable with its links
// resolved too (exe=/usr/bin/python3, a link to python3.11, never matches: docs/policy.md,
// "The executable").
func rulesThroughLinks(pol *policy.Policy) []policy.Warning {
	var out []policy.Warning
	for _, r := range pol.Rules {
		if cur, real, ok := linkIn(r.Glob); ok {
			out = append(out, policy.Warning{Rule: r, Kind: "symlink", Msg: fmt.Sprintf("%s is a symbolic link (to %s): a glob matches the path the kernel reports, with its links resolved, so this rule never matches there; write it with %s", cur, real, real)})
		}
		for i := range r.Conditions {
			c := &r.Conditions[i]
			for _, g := range c.PathGlobs() {
				if cur, real, ok := linkIn(g); ok {
					out = append(out, policy.Warning{Rule: r, Kind: "symlink", Msg: fmt.Sprintf("%s=%s: %s is a symbolic link (to %s): the executable's path is read with its links resolved (/proc/PID/exe), so it never matches there; write it with %s", c.Attr, g, cur, real, real)})
				}
			}
		}
	}
	return out
}

// linkIn is the first of g's leading literal components (LiteralPrefix) that is a symbolic
// link on this host, and what it leads to.
func linkIn(g *policy.Glob) (cur, real string, ok bool) {
	for _, c := range strings.Split(strings.TrimPrefix(g.LiteralPrefix(), "/"), "/") {
		if c == "" {
			break
		}
		cur += "/" + c
		fi, err := os.Lstat(cur)
		if err != nil {
			break
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			real, err := filepath.EvalSymlinks(cur)
			if err != nil {
				real = "its target"
			}
			return cur, real, true
		}
	}
	return "", "", false
}
