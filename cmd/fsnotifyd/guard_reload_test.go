//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/daemon"
	"github.com/fsnotifyd/fsnotifyd/internal/testdaemon"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// reloadPolicies are the rules files the reload tests swap between: deny (s is denied), allow
// (everything allowed), allowCached (and the kernel may cache it: a reload must flush that) and
// a file that does not parse.
func reloadPolicies(mnt string) (deny, allow, allowCached, invalid string) {
	return "deny open " + mnt + "/s\n",
		"allow open " + mnt + "/**\n",
		"allow open " + mnt + "/** cache\n",
		"deny open " + mnt + "/s colour=red\n"
}

// openOnce opens and closes path: nil, or EPERM (decided: denied); anything else is an error.
func openOnce(path string) (denied bool, err error) {
	f, err := os.Open(path)
	if err == nil {
		f.Close()
		return false, nil
	}
	if errors.Is(err, syscall.EPERM) {
		return true, nil
	}
	return false, err
}

// reloadFiles makes what a reload test guards: a tmpfs (mnt) with a file s in it, and the path
// of a rules file in a directory of its own (etc), not written yet.
func reloadFiles(t *testing.T) (mnt, s, etc, rules string) {
	t.Helper()
	mnt, etc = testenv.Tmpfs(t), t.TempDir()
	s = filepath.Join(mnt, "s")
	writeFile(t, s, "s")
	return mnt, s, etc, filepath.Join(etc, "guard.rules")
}

// deniedNow returns a check that opens path once: whether it was denied (any other error
// fails the test).
func deniedNow(t *testing.T, path string) func() bool {
	return func() bool {
		d, err := openOnce(path)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
}

// 100 reloads by SIGHUP while four goroutines open two files as fast as they can: every open
// gets exactly one decision (one audit line each, counted against the opens made), the file
// both policies allow is never denied, a file that does not parse keeps the old policy (and
// says so on stderr and in the audit log), and the last valid policy (a deny) holds at the
// end. (No policy here lets the kernel cache an allow: a cached allow is not a decision.)
func TestGuardReload100UnderLoad(t *testing.T) {
	mnt := testenv.Tmpfs(t)
	etc := t.TempDir()
	a, s := filepath.Join(mnt, "a"), filepath.Join(mnt, "s")
	writeFile(t, a, "a")
	writeFile(t, s, "s")
	deny, allow, _, invalid := reloadPolicies(mnt)
	rules := filepath.Join(etc, "guard.rules")
	writeFile(t, rules, deny)
	audit := filepath.Join(etc, "audit.jsonl")
	p := start(t, "guard", "--policy", rules, "--reload-interval", "0", "--audit", audit, "--deadline", "10s", mnt)

	counts, stopOpens := keepOpening(t, 4, 0, a, s)
	defer stopOpens()
	opensA, deniedA, opensS := &counts[0].opens, &counts[0].denied, &counts[1].opens
	const reloads = 100
	rejected := 0
	for i := 0; i < reloads; i++ {
		text := deny
		switch {
		case i%10 == 9:
			text = invalid
			rejected++
		case i%2 == 1:
			text = allow
		}
		writeFile(t, rules, text)
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if !waitFor(10*time.Second, func() bool {
			e := p.errText()
			return strings.Count(e, "policy reloaded from")+strings.Count(e, "policy reload from") == i+1
		}) {
			t.Fatalf("reload %d not reported; stderr:\n%s", i+1, p.errText())
		}
	}
	stopOpens()
	if t.Failed() {
		t.FailNow() // an open under reloads failed
	}
	// The last file did not parse: the deny before it holds.
	if d, err := openOnce(s); err != nil || !d {
		t.Fatalf("after an invalid reload: open s: denied %v, %v; want the old deny", d, err)
	}
	opensS.Add(1)
	if st := p.stop(); st != 0 {
		t.Fatalf("exit %d: %s", st, p.errText())
	}
	errText := p.errText()
	if strings.Contains(errText, "dropped") {
		t.Fatalf("audit records dropped: %s", errText)
	}
	if n := strings.Count(errText, "policy reload from "+rules+" rejected, the old policy stays: "+rules+":1:"); n != rejected {
		t.Errorf("%d rejections on stderr, want %d:\n%s", n, rejected, errText)
	}
	if deniedA.Load() != 0 {
		t.Errorf("%d opens of a file every policy allows were denied", deniedA.Load())
	}
	recs := auditLines(t, audit)
	var gotA, gotS, applied, rej int64
	for _, r := range recs {
		switch {
		case r["path"] == a:
			gotA++
		case r["path"] == s:
			gotS++
		case r["event"] == "policy-reload" && r["verdict"] == "applied":
			applied++
		case r["event"] == "policy-reload" && r["verdict"] == "rejected":
			if !strings.Contains(fmt.Sprint(r["error"]), "colour") {
				t.Errorf("rejection's audit line does not say why: %v", r)
			}
			rej++
		}
	}
	t.Logf("%d opens of a, %d of s, under %d reloads", opensA.Load(), opensS.Load(), reloads)
	if gotA != opensA.Load() || gotS != opensS.Load() {
		t.Errorf("decisions: a %d audit lines for %d opens, s %d for %d; want exactly one each", gotA, opensA.Load(), gotS, opensS.Load())
	}
	if applied != reloads-int64(rejected) || rej != int64(rejected) {
		t.Errorf("audit: %d applied, %d rejected reloads; want %d, %d", applied, rej, reloads-rejected, rejected)
	}
	if opensA.Load() < reloads {
		t.Errorf("only %d opens during %d reloads: no load", opensA.Load(), reloads)
	}
}

// Without a signal, a change to the policy file on disk is picked up (polled), and so is a
// fix after an invalid version; the invalid one keeps the policy before it. The first policy
// lets the kernel cache its allow of s: the deny that replaces it must flush that, or s would
// stay allowed. Embedded and through the daemon.
func TestGuardReloadOnFileChange(t *testing.T) {
	guardModes(t, func(t *testing.T, extra []string) {
		mnt, s, etc, rules := reloadFiles(t)
		deny, allow, allowCached, invalid := reloadPolicies(mnt)
		writeFile(t, rules, allowCached)
		audit := filepath.Join(etc, "audit.jsonl")
		p := start(t, append(append([]string{"guard"}, extra...), "--policy", rules, "--reload-interval", "20ms", "--audit", audit, mnt)...)
		denied := deniedNow(t, s)
		if denied() || denied() { // the second may come from the kernel's cache
			t.Fatal("denied under the allow policy")
		}
		writeFile(t, rules, deny)
		// Within 3s: before the second flush (at the 5s deadline), so the first one did it.
		if !waitFor(3*time.Second, denied) {
			t.Fatalf("the deny policy did not apply within 3s; stderr:\n%s", p.errText())
		}
		writeFile(t, rules, invalid)
		if !waitFor(10*time.Second, func() bool { return strings.Contains(p.errText(), "rejected") }) {
			t.Fatalf("the invalid file was not reported; stderr:\n%s", p.errText())
		}
		if !denied() {
			t.Fatal("the invalid file replaced the policy")
		}
		writeFile(t, rules, allow)
		if !waitFor(10*time.Second, func() bool { return !denied() }) {
			t.Fatalf("the fixed file never applied; stderr:\n%s", p.errText())
		}
		p.stop()
		var rej int
		for _, r := range auditLines(t, audit) {
			if r["event"] == "policy-reload" && r["verdict"] == "rejected" && strings.Contains(fmt.Sprint(r["error"]), rules+":1:") {
				rej++
			}
		}
		if rej != 1 {
			t.Errorf("%d rejected reloads in the audit log, want 1", rej)
		}
	})
}

// The policy file is polled every --reload-interval while it is unchanged (a poll wakes an
// idle guard: polls every 100 ms, policySettle, cost it 4x its idle CPU), and every
// policySettle once a change is seen, until it is read: a change made just after the start
// under a 2 s interval is not seen before the first poll (not applied after 1 s), and is
// applied soon after it (within 1 s of that poll, not one more interval later).
func TestGuardReloadPollsAtInterval(t *testing.T) {
	mnt, s, _, rules := reloadFiles(t)
	deny, allow, _, _ := reloadPolicies(mnt)
	writeFile(t, rules, allow)
	p := start(t, "guard", "--policy", rules, "--reload-interval", "2s", mnt)
	started := time.Now() // the first poll is 2 s after the guard's start, which was before
	writeFile(t, rules, deny)
	denied := deniedNow(t, s)
	time.Sleep(time.Second - time.Since(started))
	if denied() {
		t.Fatalf("the change applied within 1 s under a 2 s interval: polled more often; stderr:\n%s", p.errText())
	}
	if !waitFor(3*time.Second-time.Since(started), denied) {
		t.Fatalf("the change did not apply within 3 s of the start (a poll at 2 s sees it, one %v later reads it); stderr:\n%s", 100*time.Millisecond, p.errText())
	}
	p.stop()
}

// A policy file rewritten in place (truncated, then written in pieces, as an editor without
// rename or `cat > file` does) is never read between the pieces: s stays denied the whole
// time, the partial file is never applied, and the finished one is, once. A file left empty
// is refused (an empty policy allows everything), and the deny stays. The pieces come 40 ms
// apart, and, as from a slow writer (a slow pipe into `cat > file`, or any writer on a
// loaded host), 3 × policySettle apart: the file stands still longer than policySettle, but
// its writer still has it open. Before, the slow writer's pieces were read: the empty file
// refused, then the comment alone applied (allowing everything); and under load the 40 ms
// pauses, which the test's own sleeps make, were sometimes that long too.
func TestGuardReloadTornWrite(t *testing.T) {
	for _, pause := range []time.Duration{40 * time.Millisecond, 3 * policySettle} {
		t.Run("pieces "+pause.String()+" apart", func(t *testing.T) { testReloadTornWrite(t, pause) })
	}
}

func testReloadTornWrite(t *testing.T, pause time.Duration) {
	mnt, s, etc, rules := reloadFiles(t)
	first := "# the first version\ndeny open " + mnt + "/s\n"
	writeFile(t, rules, first)
	audit := filepath.Join(etc, "audit.jsonl")
	p := start(t, "guard", "--policy", rules, "--reload-interval", "10ms", "--audit", audit, mnt)

	counts, stopOpens := keepOpening(t, 1, time.Millisecond, s) // any allow is a torn read applied
	opens, denied := &counts[0].opens, &counts[0].denied
	defer stopOpens()

	// The rewrite: empty for a pause, then a comment line alone for a pause (a policy with no
	// rule: allow everything), then the rest.
	second := "# the second version, written in two pieces\ndeny open " + mnt + "/s\n"
	cut := strings.Index(second, "\n") + 1
	f, err := os.OpenFile(rules, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(pause)
	if _, err := f.WriteString(second[:cut]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(pause)
	if _, err := f.WriteString(second[cut:]); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if !waitFor(5*time.Second, func() bool { return strings.Contains(p.errText(), "policy reloaded from") }) {
		t.Fatalf("the finished file was never applied; stderr:\n%s", p.errText())
	}
	time.Sleep(50 * time.Millisecond)
	stopOpens()
	if allowed := opens.Load() - denied.Load(); opens.Load() < 20 || allowed != 0 {
		t.Fatalf("%d of %d opens of s allowed during the rewrite, want 0 (of at least 20); stderr:\n%s", allowed, opens.Load(), p.errText())
	}

	// Left empty: refused, the deny stays.
	if err := os.Truncate(rules, 0); err != nil {
		t.Fatal(err)
	}
	if !waitFor(5*time.Second, func() bool { return strings.Contains(p.errText(), "the file is empty") }) {
		t.Fatalf("the empty file was not refused; stderr:\n%s", p.errText())
	}
	if d, err := openOnce(s); err != nil || !d {
		t.Fatalf("s after the empty file: denied %v, %v; want denied", d, err)
	}
	p.stop()
	var applied, rejected int
	for _, r := range auditLines(t, audit) {
		if r["event"] != "policy-reload" {
			continue
		}
		switch r["verdict"] {
		case "applied":
			applied++
		case "rejected":
			rejected++
		}
	}
	if applied != 1 {
		t.Errorf("%d applied reloads in the audit log, want 1 (only the finished file)", applied)
	}
	if rejected < 1 {
		t.Errorf("%d rejected reloads in the audit log, want the empty file's", rejected)
	}
	t.Logf("%d opens of s during the rewrite, all denied; stderr:\n%s", opens.Load(), p.errText())
}

// cacheModes runs f embedded, through a daemon (protocol version 6: the guard's allows are
// cached there, and withdrawn at a reload), and through a daemon that plays version 5 (in
// this process: daemon.Options.MaxVersion), where the guard caches nothing and says so at its
// start; caches says which.
func cacheModes(t *testing.T, f func(t *testing.T, extra []string, caches bool)) {
	t.Run("embedded", func(t *testing.T) { f(t, nil, true) })
	t.Run("daemon", func(t *testing.T) { f(t, []string{"--daemon=" + startServe(t)}, true) })
	t.Run("daemon-v5", func(t *testing.T) {
		testenv.RequireRoot(t)
		d := testdaemon.Start(t, daemon.Options{MaxVersion: 5}, filepath.Join(testenv.PublicDir(t), "d.sock"))
		f(t, []string{"--daemon=" + d.Sock}, false)
	})
}

// noCacheNote is what the guard says at its start through a daemon that cannot withdraw a
// cached allow.
const noCacheNote = "no allow is cached (cache, --cache)"

// checkCacheNote checks that the guard p said noCacheNote exactly when it caches nothing.
func checkCacheNote(t *testing.T, p *proc, caches bool) {
	t.Helper()
	if said := strings.Contains(p.errText(), noCacheNote); said == caches {
		t.Errorf("the note %q on stderr: %v, want it only where nothing is cached (caches %v):\n%s", noCacheNote, said, caches, p.errText())
	}
}

// allowsOf counts the audit file's allow records of path, once they stood still for 100 ms.
func allowsOf(t *testing.T, audit, path string) int {
	t.Helper()
	count := func() int {
		data, _ := os.ReadFile(audit)
		n := 0
		for _, l := range strings.Split(string(data), "\n") {
			// "allow", or "allow(cached)": an allow the guard asked the kernel to cache
			if strings.Contains(l, `"path":`+strconvQuote(path)) && strings.Contains(l, `"verdict":"allow`) {
				n++
			}
		}
		return n
	}
	n := count()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
		m := count()
		if m == n {
			break
		}
		n = m
	}
	return n
}

// A reload that turns a cached allow into a deny takes effect for the next access, embedded
// and through the daemon, whose kernel groups hold the cached allows of its clients (protocol
// version 6 withdraws them: FlushCache): rounds of allow-with-cache (opened twice as nobody:
// the second open may come from the kernel's cache), SIGHUP, then deny, SIGHUP; every open by
// nobody after the deny's reload was reported must be denied. No round's open may pass on
// the allow cached before the reload. Where the guard caches (embedded, a version-6 daemon)
// some opens under the allow must have come from the cache (fewer allows in the audit log
// than opens: else the test tests nothing); through a version-5 daemon none (every open
// decided), and the guard said so at its start.
func TestGuardReloadFlushesCachedAllows(t *testing.T) {
	cacheModes(t, func(t *testing.T, extra []string, caches bool) {
		mnt, etc := testenv.PublicTmpfs(t), t.TempDir()
		s := filepath.Join(mnt, "s")
		writeFile(t, s, "s") // root's, 0644, one link: an allow of it may be cached
		deny, _, allowCached, _ := reloadPolicies(mnt)
		rules, audit := filepath.Join(etc, "guard.rules"), filepath.Join(etc, "audit.jsonl")
		writeFile(t, rules, allowCached)
		p := start(t, append(append([]string{"guard"}, extra...), "--policy", rules, "--reload-interval", "0", "--audit", audit, mnt)...)
		reload := sighupReload(t, p, rules)
		checkCacheNote(t, p, caches)
		const rounds = 10
		passed := 0
		for i := 0; i < rounds; i++ {
			if i > 0 {
				reload(allowCached)
			}
			if out, err := testenv.Sh(testenv.Nobody, "cat "+s+" && cat "+s); err != nil {
				t.Fatalf("round %d: nobody's opens under the allow: %v %s", i, err, out)
			}
			reload(deny)
			if out, err := testenv.Sh(testenv.Nobody, "cat "+s); err == nil {
				passed++
			} else if !strings.Contains(out, "Operation not permitted") {
				t.Fatalf("round %d: nobody's open under the deny: %v %s", i, err, out)
			}
		}
		if passed != 0 {
			t.Errorf("%d of %d opens by nobody after a reload to deny was reported were allowed (the allow cached before it)", passed, rounds)
		}
		allows := allowsOf(t, audit, s)
		switch {
		case caches && allows >= 2*rounds:
			t.Errorf("%d allows decided of %d opens under the allow: none came from the kernel's cache", allows, 2*rounds)
		case !caches && allows != 2*rounds:
			t.Errorf("%d allows decided of %d opens under the allow: the daemon cannot withdraw a cached allow, so every open must be decided", allows, 2*rounds)
		}
		if data, _ := os.ReadFile(audit); !caches && strings.Contains(string(data), "allow(cached)") {
			t.Errorf("the audit log says allow(cached) where nothing is cached:\n%s", data)
		}
		t.Logf("%d of %d opens under the allow decided (caches %v)", allows, 2*rounds, caches)
	})
}

// sighupReload returns a function that writes text to the guard p's rules file, sends it
// SIGHUP and returns once p has reported the reload applied on stderr.
func sighupReload(t *testing.T, p *proc, rules string) func(text string) {
	reloads := 0
	return func(text string) {
		t.Helper()
		writeFile(t, rules, text)
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		reloads++
		if !waitFor(10*time.Second, func() bool { return strings.Count(p.errText(), "policy reloaded from") == reloads }) {
			t.Fatalf("reload %d not reported; stderr:\n%s", reloads, p.errText())
		}
	}
}

// Reloads alternate between an allow the kernel may cache and a deny while nobody opens the
// file in a loop: no open that started after a reload to deny was reported passes, embedded
// and through the daemon (no allow of the old policy, cached or in flight, outlives the
// report); and the opens under the allow pass (the load is real), some of them from the
// kernel's cache where the guard caches (fewer allows in the audit log than opens that
// passed), none through a daemon of protocol version 5.
func TestGuardReloadUnderOpensAsNobody(t *testing.T) {
	cacheModes(t, func(t *testing.T, extra []string, caches bool) {
		mnt, etc := testenv.PublicTmpfs(t), t.TempDir()
		s := filepath.Join(mnt, "s")
		writeFile(t, s, "s")
		deny, _, allowCached, _ := reloadPolicies(mnt)
		rules, audit := filepath.Join(etc, "guard.rules"), filepath.Join(etc, "audit.jsonl")
		writeFile(t, rules, allowCached)
		p := start(t, append(append([]string{"guard"}, extra...), "--policy", rules, "--reload-interval", "0", "--audit", audit, mnt)...)
		reload := sighupReload(t, p, rules)
		checkCacheNote(t, p, caches)
		opener := startBg(t, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c",
			"while :; do t=$(date +%s%N); if cat "+s+" >/dev/null 2>&1; then v=ok; else v=no; fi; echo $v $t $(date +%s%N); done")
		type window struct{ from, to int64 } // unix ns: a deny was reported before from, the next allow asked for after to
		var denied []window
		for i := 0; i < 15; i++ {
			if i > 0 {
				reload(allowCached)
			}
			time.Sleep(100 * time.Millisecond)
			reload(deny)
			from := time.Now().UnixNano()
			time.Sleep(100 * time.Millisecond)
			denied = append(denied, window{from, time.Now().UnixNano()})
		}
		opener.cmd.Process.Kill()
		<-opener.done
		var passed, deniedIn, allowedOut int
		for _, l := range strings.Split(opener.output(), "\n") {
			var verdict string
			var at, end int64 // the open started after at and returned before end
			if n, _ := fmt.Sscanf(l, "%s %d %d", &verdict, &at, &end); n != 3 {
				continue
			}
			in := false
			for _, w := range denied {
				in = in || (at > w.from && end < w.to)
			}
			switch {
			case in && verdict == "ok":
				passed++
			case in:
				deniedIn++
			case verdict == "ok":
				allowedOut++
			}
		}
		t.Logf("under the deny: %d denied, %d passed; under the allow: %d passed", deniedIn, passed, allowedOut)
		if passed != 0 {
			t.Errorf("%d opens by nobody that started after a reload to deny was reported were allowed", passed)
		}
		if deniedIn < 15 || allowedOut < 15 {
			t.Errorf("too few opens: %d under the deny, %d allowed under the allow", deniedIn, allowedOut)
		}
		// Every open that passed was decided by the guard, or came from the kernel's cache.
		allows := allowsOf(t, audit, s)
		t.Logf("%d allows decided of %d opens that passed (caches %v)", allows, passed+allowedOut, caches)
		if caches && allows >= passed+allowedOut {
			t.Errorf("%d allows decided of %d opens that passed: none came from the kernel's cache", allows, passed+allowedOut)
		}
	})
}

// Two guards through one daemon (protocol version 6) share its kernel group, where a cached
// allow is an ignore mark that hides the file's opens from every client: guard A allows with
// --cache, guard B denies the file. An allow A cached must never skip B's decision: nobody's
// opens are denied once B is watching, whether A cached before B came (B's mark withdraws
// it) or B was there first (B's deny is no cacheable allow), and after A reloads (its flush
// withdraws every client's cached allow, none of B's decisions with it) and leaves. And A's
// allows were cached while A decided alone (fewer decisions than opens: the test is real).
// docs/security.md, "Evictable ignore marks and the verdict cache", invariant 6.
func TestGuardCachedAllowNeverSkipsAnotherGuardAsNobody(t *testing.T) {
	for _, order := range []string{"caching guard first", "denying guard first"} {
		t.Run(order, func(t *testing.T) {
			sock := startServe(t)
			mnt, etc := testenv.PublicTmpfs(t), t.TempDir()
			s := filepath.Join(mnt, "s")
			writeFile(t, s, "s") // root's, 0644, one link: an allow of it may be cached
			auditA, rulesA := filepath.Join(etc, "a.jsonl"), filepath.Join(etc, "a.rules")
			_, _, allowCached, _ := reloadPolicies(mnt)
			writeFile(t, rulesA, allowCached)
			startA := func() *proc {
				p := start(t, "guard", "--daemon="+sock, "--policy", rulesA, "--audit", auditA, "--reload-interval", "0", mnt)
				checkCacheNote(t, p, true)
				return p
			}
			startB := func() *proc {
				return start(t, "guard", "--daemon="+sock, "--deny", s, mnt)
			}
			nobodyDenied := func(when string, n int) {
				t.Helper()
				for i := 0; i < n; i++ {
					out, err := testenv.Sh(testenv.Nobody, "cat "+s)
					if err == nil || !strings.Contains(out, "Operation not permitted") {
						t.Fatalf("%s: nobody's open %d: %v %q, want EPERM (guard B denies it)", when, i, err, out)
					}
				}
			}
			var a *proc
			if order == "caching guard first" {
				a = startA()
				for i := 0; i < 10; i++ {
					if out, err := testenv.Sh(testenv.Nobody, "cat "+s); err != nil {
						t.Fatalf("nobody's open under A alone: %v %s", err, out)
					}
				}
				if n := allowsOf(t, auditA, s); n >= 10 {
					t.Fatalf("A decided %d of 10 opens: none was cached, the test tests nothing", n)
				}
				startB()
			} else {
				startB()
				a = startA()
			}
			nobodyDenied("with both guards", 10)
			sighupReload(t, a, rulesA)(allowCached)
			nobodyDenied("after A's reload", 5)
			if st := a.stop(); st != 0 {
				t.Fatalf("A exited %d: %s", st, a.errText())
			}
			nobodyDenied("after A left", 5)
		})
	}
}

// procCounts are the descriptors and threads of process pid (/proc).
func procCounts(t *testing.T, pid int) (fds, threads int) {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			threads, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return len(ents), threads
}

// A storm of 1000 SIGHUPs, with the policy file renamed over (install's way) every 2ms
// between two policies that both deny s and allow a, and one time in three by a file that
// does not parse, and the poller (--reload-interval 10ms) racing the signals, while four
// goroutines open a and s: the guard lives, no open of s is allowed nor of a denied (no open is
// decided by neither policy), every open has exactly one audit line, the sd_notify messages
// of the reloads stay paired (RELOADING=1, READY=1, in turn), and the guard holds as many
// descriptors after the storm as before it (threads: at most 4 more).
func TestGuardSIGHUPStormUnderOpens(t *testing.T) {
	mnt, s, etc, rules := reloadFiles(t)
	a := filepath.Join(mnt, "a")
	writeFile(t, a, "a")
	policies := []string{
		"deny open " + s + "\nallow open " + a + "\n",
		"allow open " + a + "\ndeny open " + mnt + "/*\n",
		"deny open " + s + " colour=red\n", // does not parse: the one before stays
	}
	writeFile(t, rules, policies[0])
	env, notes := notifySocket(t)
	t.Setenv("NOTIFY_SOCKET", strings.TrimPrefix(env, "NOTIFY_SOCKET="))
	var mu sync.Mutex
	var states []string
	go func() {
		for m := range notes {
			mu.Lock()
			for _, l := range strings.Split(m, "\n") {
				if l == "READY=1" || l == "RELOADING=1" {
					states = append(states, l)
				}
			}
			mu.Unlock()
		}
	}()
	audit := filepath.Join(etc, "audit.jsonl")
	p := start(t, "guard", "--policy", rules, "--reload-interval", "10ms", "--audit", audit, "--deadline", "2s", mnt)
	pid := p.cmd.Process.Pid
	time.Sleep(200 * time.Millisecond)
	fds0, threads0 := procCounts(t, pid)

	var opensA, opensS, wrong atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if d, err := openOnce(a); err != nil || d {
					wrong.Add(1)
				}
				opensA.Add(1)
				if d, err := openOnce(s); err != nil || !d {
					wrong.Add(1)
				}
				opensS.Add(1)
			}
		}()
	}
	tmp := rules + ".new"
	t0 := time.Now()
	for i := range 1000 {
		if i%4 == 0 {
			writeFile(t, tmp, policies[i/4%len(policies)])
			if err := os.Rename(tmp, rules); err != nil {
				t.Fatal(err)
			}
		}
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			t.Fatalf("SIGHUP %d: %v", i, err)
		}
		time.Sleep(500 * time.Microsecond)
	}
	writeFile(t, tmp, policies[0])
	os.Rename(tmp, rules)
	syscall.Kill(pid, syscall.SIGHUP)
	storm := time.Since(t0)
	// Settled: the last READY=1 answers a RELOADING=1, and nothing more comes.
	settled := func() bool {
		mu.Lock()
		n := len(states)
		mu.Unlock()
		time.Sleep(300 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		return n == len(states) && states[n-1] == "READY=1"
	}
	if !waitFor(20*time.Second, settled) {
		t.Fatalf("the reloads did not settle; stderr:\n%s", p.errText())
	}
	time.Sleep(2*time.Second + 500*time.Millisecond) // the reloads' second cache flushes (the deadline) are over
	close(stop)
	wg.Wait()
	// A leak stays; a descriptor in use when counted goes (the poller's read of the policy
	// every 10 ms, an event's descriptor closed after its answer): counted until it is back
	// to the start's or 2 s passed (once 19 for 18 at the first count, under load).
	var fds1, threads1 int
	waitFor(2*time.Second, func() bool {
		fds1, threads1 = procCounts(t, pid)
		return fds1 == fds0
	})
	if st := p.stop(); st != 0 {
		t.Fatalf("exit %d after the storm: %s", st, p.errText())
	}
	if wrong.Load() != 0 {
		t.Errorf("%d opens decided by neither policy (a denied, s allowed, or an error), of %d", wrong.Load(), opensA.Load()+opensS.Load())
	}
	if fds1 != fds0 || threads1 > threads0+4 {
		t.Errorf("descriptors %d before the storm, %d after; threads %d, %d", fds0, fds1, threads0, threads1)
	}
	mu.Lock()
	seq := append([]string(nil), states...)
	mu.Unlock()
	reloads := 0
	for i, st := range seq {
		want := "READY=1"
		if i%2 == 1 {
			want = "RELOADING=1"
			reloads++
		}
		if st != want {
			t.Fatalf("sd_notify message %d is %s, want %s (unpaired): %v", i, st, want, seq)
		}
	}
	if len(seq)%2 != 1 {
		t.Errorf("%d sd_notify messages: a RELOADING=1 without its READY=1", len(seq))
	}
	var gotA, gotS int64
	for _, r := range auditLines(t, audit) {
		switch r["path"] {
		case a:
			gotA++
		case s:
			gotS++
		}
	}
	if gotA != opensA.Load() || gotS != opensS.Load() {
		t.Errorf("audit: %d lines for %d opens of a, %d for %d of s; want one each", gotA, opensA.Load(), gotS, opensS.Load())
	}
	t.Logf("storm of %v: %d reloads told to systemd, %d opens of a, %d of s; fds %d→%d, threads %d→%d",
		storm, reloads, opensA.Load(), opensS.Load(), fds0, fds1, threads0, threads1)
}

// A SIGHUP after both the policy file and a trust file changed switches to the new policy with
// the new trust database in one step: never the new policy with the old database. Here the old
// pair denies x (the old policy denies it), and so does the new pair (the new policy allows x
// only if trusted, and the new trust file no longer lists it); the new policy with the old
// trust file would allow it. A process opens x every 200µs across the reload (the package
// database, 300000 files, takes 100ms or more to load): no open may be allowed. Before, the
// policy was stored first with the old database, and the trust database loaded and stored
// after it: opens in between were allowed.
func TestGuardSIGHUPReloadsPolicyAndTrustAsOne(t *testing.T) {
	mnt, _, etc, rules := reloadFiles(t)
	x := filepath.Join(mnt, "x")
	writeFile(t, x, "x")
	tf := filepath.Join(etc, "local.trust")
	writeFile(t, tf, fmt.Sprintf("%s 1 %s\n", x, sha256Hex([]byte("x"))))
	writeFile(t, rules, "deny open "+x+"\nallow open "+mnt+"/other trusted=yes\n")
	p := start(t, "guard", "--policy", rules, "--trust", tf, "--dpkg-dir", bigDpkg(t, etc), "--reload-interval", "0", mnt)
	if d, err := openOnce(x); err != nil || !d {
		t.Fatalf("x under the first policy: denied %v, %v; want denied", d, err)
	}
	counts, stopOpens := keepOpening(t, 1, 200*time.Microsecond, x)
	opens, denied := &counts[0].opens, &counts[0].denied
	defer stopOpens()
	writeFile(t, rules+".new", "allow open "+x+" trusted=yes\ndeny open "+x+"\n")
	writeFile(t, tf+".new", "")
	os.Rename(tf+".new", tf)
	os.Rename(rules+".new", rules)
	p.cmd.Process.Signal(syscall.SIGHUP)
	ok := waitFor(10*time.Second, func() bool {
		e := p.errText()
		return strings.Contains(e, "policy reloaded from") && strings.Contains(e, "trust reloaded from")
	})
	time.Sleep(50 * time.Millisecond)
	stopOpens()
	if !ok {
		t.Fatalf("the reload was not reported; stderr:\n%s", p.errText())
	}
	allowed := opens.Load() - denied.Load()
	if allowed != 0 {
		t.Errorf("%d of %d opens of x allowed across the reload: the new policy with the old trust database; want none", allowed, opens.Load())
	}
	if d, err := openOnce(x); err != nil || !d {
		t.Errorf("x after the reload: denied %v, %v; want denied (no longer trusted)", d, err)
	}
	if st := p.stop(); st != 0 {
		t.Fatalf("exit %d: %s", st, p.errText())
	}
	t.Logf("%d opens of x across the reload, %d allowed", opens.Load(), allowed)
}

// Trust files added to and removed from --trust-dir all along (one every 500µs), while SIGHUPs
// and the poller (10ms) reload: x, listed in a trust file that stays, is never denied (a load
// that met a file removed under it is refused whole: the old database stays, never one without
// x), and y, listed only in the files that come and go, is trusted once they are left in place
// and denied once they are gone, each after the churn stops (the poller reads the directory's
// last state). The guard lives through it.
func TestGuardTrustDirChurnDuringReloads(t *testing.T) {
	mnt, _, etc, rules := reloadFiles(t)
	x, y := filepath.Join(mnt, "x"), filepath.Join(mnt, "y")
	writeFile(t, x, "x")
	writeFile(t, y, "y")
	dir := filepath.Join(etc, "trust.d")
	os.Mkdir(dir, 0o755)
	line := func(p, content string) string { return fmt.Sprintf("%s 1 %s\n", p, sha256Hex([]byte(content))) }
	writeFile(t, filepath.Join(dir, "a.trust"), line(x, "x"))
	writeFile(t, rules, "allow open "+mnt+"/* trusted=yes\ndeny open "+mnt+"/*\n")
	p := start(t, "guard", "--policy", rules, "--trust-dir", dir, "--no-package-trust", "--reload-interval", "10ms", mnt)
	pid := p.cmd.Process.Pid

	counts, stopOpens := keepOpening(t, 1, 0, x)
	opens, deniedX := &counts[0].opens, &counts[0].denied
	defer stopOpens()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // SIGHUPs
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(3 * time.Millisecond):
				syscall.Kill(pid, syscall.SIGHUP)
			}
		}
	}()
	for i := range 1000 {
		name := filepath.Join(dir, fmt.Sprintf("y%d.trust", i%8))
		if i/8%2 == 0 {
			writeFile(t, name, line(y, "y"))
		} else {
			os.Remove(name)
		}
		time.Sleep(500 * time.Microsecond)
	}
	writeFile(t, filepath.Join(dir, "y0.trust"), line(y, "y"))
	if !waitFor(5*time.Second, func() bool { d, _ := openOnce(y); return !d }) {
		t.Errorf("y, listed in a trust file left in place, still denied after the churn; stderr:\n%s", p.errText())
	}
	for i := range 8 {
		os.Remove(filepath.Join(dir, fmt.Sprintf("y%d.trust", i)))
	}
	if !waitFor(5*time.Second, func() bool { d, _ := openOnce(y); return d }) {
		t.Errorf("y, its trust files removed, still allowed; stderr:\n%s", p.errText())
	}
	close(stop)
	wg.Wait()
	stopOpens()
	if deniedX.Load() != 0 {
		t.Errorf("%d of %d opens of x denied while trust files came and went: a database without a file that stayed", deniedX.Load(), opens.Load())
	}
	if st := p.stop(); st != 0 {
		t.Fatalf("exit %d: %s", st, p.errText())
	}
	e := p.errText()
	t.Logf("%d opens of x; %d trust reloads applied, %d rejected", opens.Load(),
		strings.Count(e, "trust reloaded from"), strings.Count(e, "trust reload from"))
}

// opened counts keepOpening's opens of one path, and those denied.
type opened struct{ opens, denied atomic.Int64 }

// keepOpening opens paths in turn, every interval (0: at once again), from each of n
// goroutines of its own until stop is called (stop waits for them; defer it too: it runs
// once), counting the opens of each path and those denied (counts[i] is paths[i]'s); any
// other error fails the test and ends its goroutine.
func keepOpening(t *testing.T, n int, every time.Duration, paths ...string) (counts []opened, stop func()) {
	counts = make([]opened, len(paths))
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				for i, path := range paths {
					d, err := openOnce(path)
					if err != nil {
						t.Error(err)
						return
					}
					counts[i].opens.Add(1)
					if d {
						counts[i].denied.Add(1)
					}
				}
				time.Sleep(every)
			}
		}()
	}
	return counts, sync.OnceFunc(func() { close(done); wg.Wait() })
}

// A policy file being written in place when the guard starts is not read half-written either:
// its first piece (a comment line alone: a policy with no rule, which allows everything) stands
// for a pause, then the rest (deny s) is written and the file closed, while the guard starts
// with no poller (--reload-interval 0: nothing would read it again). s must be denied once the
// guard runs. The pause is 40 ms, and, as from a slow writer, 1 s: longer than policySettle,
// with the file still open for writing. Before, the start read the file as it was, with none
// of a reload's checks: the guard ran the comment alone, allowing everything, for good; then,
// with the settle time alone, it did so still after the slow writer's pause.
func TestGuardStartDuringTornWrite(t *testing.T) {
	for _, pause := range []time.Duration{40 * time.Millisecond, time.Second} {
		t.Run("a pause of "+pause.String(), func(t *testing.T) {
			mnt, s, _, rules := reloadFiles(t)
			full := "# written in two pieces\ndeny open " + s + "\n"
			cut := strings.Index(full, "\n") + 1
			writeFile(t, rules, full[:cut])
			f, err := os.OpenFile(rules, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			written := make(chan error, 1)
			go func() {
				time.Sleep(pause)
				_, err := f.WriteString(full[cut:])
				written <- errors.Join(err, f.Close())
			}()
			p := start(t, "guard", "--policy", rules, "--reload-interval", "0", mnt)
			if err := <-written; err != nil {
				t.Fatal(err)
			}
			if d, err := openOnce(s); err != nil || !d {
				t.Fatalf("s once the guard runs: denied %v, %v; want denied (the whole file); stderr:\n%s", d, err, p.errText())
			}
		})
	}
}
