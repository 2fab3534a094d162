//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/backend"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/policy"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
	"github.com/fsnotifyd/fsnotifyd/internal/trust"
	"github.com/fsnotifyd/fsnotifyd/notify"
)

// The memo gives a remembered decision only for the state, path and file version it was
// decided for, keeps none it cannot vouch for (an error, an unknown path, a ctime within the
// settle time, a forget during the decision), and forgets what the forgetter reports.
func TestExecMemoKeepsAndGivesOnlyWhatItCanVouchFor(t *testing.T) {
	settle := time.Second
	now := time.Unix(1_000_000, 0)
	old := now.Add(-2 * settle).UnixNano()
	st, other := &guardState{}, &guardState{}
	id := notify.FileStamp{Dev: 8, Ino: 42, Size: 100, Mtime: old - 5, Ctime: old}
	allow := policy.Decision{Verdict: engine.Allow, Rule: &policy.Rule{}}
	deny := policy.Decision{Verdict: engine.Deny, Errno: syscall.EACCES}
	changed := func(f func(*notify.FileStamp)) notify.FileStamp { c := id; f(&c); return c }
	tests := []struct {
		name      string
		keep      notify.FileStamp
		path      string
		d         policy.Decision
		forgetMid bool // a forget counted while deciding
		then      func(m *execMemo)
		lookSt    *guardState
		lookPath  string
		look      notify.FileStamp
		want      bool
	}{
		{name: "the same state, path and file", keep: id, path: "/a/tool", d: allow, lookSt: st, lookPath: "/a/tool", look: id, want: true},
		{name: "a deny too", keep: id, path: "/a/tool", d: deny, lookSt: st, lookPath: "/a/tool", look: id, want: true},
		{name: "another state", keep: id, path: "/a/tool", d: allow, lookSt: other, lookPath: "/a/tool", look: id},
		{name: "another path (a link, a rename, a bind mount)", keep: id, path: "/a/tool", d: allow, lookSt: st, lookPath: "/b/tool", look: id},
		{name: "another inode", keep: id, path: "/a/tool", d: allow, lookSt: st, lookPath: "/a/tool", look: changed(func(s *notify.FileStamp) { s.Ino++ })},
		{name: "another device", keep: id, path: "/a/tool", d: allow, lookSt: st, lookPath: "/a/tool", look: changed(func(s *notify.FileStamp) { s.Dev++ })},
		{name: "another size", keep: id, path: "/a/tool", d: allow, lookSt: st, lookPath: "/a/tool", look: changed(func(s *notify.FileStamp) { s.Size++ })},
		{name: "another mtime", keep: id, path: "/a/tool", d: allow, lookSt: st, lookPath: "/a/tool", look: changed(func(s *notify.FileStamp) { s.Mtime++ })},
		{name: "another ctime", keep: id, path: "/a/tool", d: allow, lookSt: st, lookPath: "/a/tool", look: changed(func(s *notify.FileStamp) { s.Ctime++ })},
		{name: "changed within the settle time: not kept", keep: changed(func(s *notify.FileStamp) { s.Ctime = now.Add(-settle / 2).UnixNano() }), path: "/a/tool", d: allow,
			lookSt: st, lookPath: "/a/tool", look: changed(func(s *notify.FileStamp) { s.Ctime = now.Add(-settle / 2).UnixNano() })},
		{name: "changed exactly the settle time ago: not kept", keep: changed(func(s *notify.FileStamp) { s.Ctime = now.Add(-settle).UnixNano() }), path: "/a/tool", d: allow,
			lookSt: st, lookPath: "/a/tool", look: changed(func(s *notify.FileStamp) { s.Ctime = now.Add(-settle).UnixNano() })},
		{name: "an error: not kept", keep: id, path: "/a/tool", d: policy.Decision{Verdict: engine.Deny, Err: errors.New("unreadable")}, lookSt: st, lookPath: "/a/tool", look: id},
		{name: "an unknown path: not kept", keep: id, path: "", d: allow, lookSt: st, lookPath: "", look: id},
		{name: "a decision that says its path was unknown: not kept", keep: id, path: "/a/tool", d: policy.Decision{Verdict: engine.Allow, PathUnknown: true}, lookSt: st, lookPath: "/a/tool", look: id},
		{name: "a forget while deciding: not kept", keep: id, path: "/a/tool", d: allow, forgetMid: true, lookSt: st, lookPath: "/a/tool", look: id},
		{name: "forgotten after", keep: id, path: "/a/tool", d: allow, then: func(m *execMemo) { m.forget(id.Dev, id.Ino) }, lookSt: st, lookPath: "/a/tool", look: id},
		{name: "another file forgotten after: still there", keep: id, path: "/a/tool", d: allow, then: func(m *execMemo) { m.forget(id.Dev, id.Ino+1) }, lookSt: st, lookPath: "/a/tool", look: id, want: true},
		{name: "all forgotten after", keep: id, path: "/a/tool", d: allow, then: func(m *execMemo) { m.forgetAll() }, lookSt: st, lookPath: "/a/tool", look: id},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newExecMemo(settle)
			f := m.forgets.Load()
			if tc.forgetMid {
				m.forget(99, 99) // any file's: the decision may have read what it dropped
			}
			m.store(st, tc.path, &tc.keep, f, &tc.d, now)
			if tc.then != nil {
				tc.then(m)
			}
			d, ok := m.lookup(tc.lookSt, tc.lookPath, &tc.look)
			if ok != tc.want {
				t.Fatalf("lookup: %v (%+v), want %v", ok, d, tc.want)
			}
			if ok && (d.Verdict != tc.d.Verdict || d.Rule != tc.d.Rule || d.Errno != tc.d.Errno) {
				t.Fatalf("lookup gave %+v, kept %+v", d, tc.d)
			}
			if got := m.hits.Load(); got != map[bool]uint64{true: 1}[ok] {
				t.Fatalf("hits %d after one lookup that found %v", got, ok)
			}
		})
	}
}

// The memo is used only where the rules for exec read nothing but the path and the file, and
// nothing records each decision's attributes.
func TestExecMemoOnlyWhereDecisionsDependOnTheFileAlone(t *testing.T) {
	tests := []struct {
		name, rules string
		set         func(*guardRun) // nil: the guard's defaults
		want        bool
	}{
		{"a trust allowlist", "allow exec ** trusted=yes\ndeny exec **", nil, true},
		{"paths and sizes", "allow exec /usr/** size<1000000\ndeny exec /tmp/**", nil, true},
		{"digests and types", "deny exec ** sha256=" + strings.Repeat("ab", 32) + "\nallow exec ** ftype=elf-*\ndeny exec **", nil, true},
		{"process rules for opens only", "deny open ** uid=0\nallow exec ** trusted=yes\ndeny exec **", nil, true},
		{"uid", "allow exec ** trusted=yes uid=0\ndeny exec **", nil, false},
		{"gid", "deny exec ** gid=100\nallow exec ** trusted=yes", nil, false},
		{"pid", "deny exec ** pid=1", nil, false},
		{"ppid", "deny exec ** ppid=1", nil, false},
		{"comm", "allow exec ** comm=make\ndeny exec **", nil, false},
		{"exe", "allow exec ** exe=/usr/bin/make\ndeny exec **", nil, false},
		{"ancestor", "allow exec ** ancestor=/usr/bin/make\ndeny exec **", nil, false},
		{"trusted_exe", "allow exec ** trusted_exe=yes\ndeny exec **", nil, false},
		{"a rule for every event on the process", "deny ** uid=1000\nallow exec ** trusted=yes", nil, false},
		{"mount_writable", "deny exec ** mount_writable=yes", nil, false},
		{"decided by kind: nothing to remember", "allow exec **", nil, false},
		{"with an audit log", "allow exec ** trusted=yes\ndeny exec **", func(g *guardRun) { g.audit = &auditWriter{} }, false},
		{"with --export-decisions", "allow exec ** trusted=yes\ndeny exec **", func(g *guardRun) { g.report = true }, false},
		{"with a scanner", "allow exec ** trusted=yes\ndeny exec **", func(g *guardRun) { g.execCmd = "true" }, false},
		{"exec not guarded", "allow exec ** trusted=yes\ndeny exec **", func(g *guardRun) { g.kinds = notify.AccessOpen }, false},
	}
	for _, tc := range tests {
		for _, memo := range []bool{true, false} {
			pol, err := policy.Parse("t", strings.NewReader(tc.rules))
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			g := &guardRun{kinds: notify.AccessOpen | notify.AccessExec}
			if tc.set != nil {
				tc.set(g)
			}
			if memo {
				g.memo = newExecMemo(time.Second)
			}
			got := g.execMemoFor(pol, bareKinds(pol, g.audit != nil || g.report))
			if want := tc.want && memo; got != want {
				t.Errorf("%s, --no-exec-memo %v: memo %v, want %v", tc.name, !memo, got, want)
			}
		}
	}
}

// memoGuard is an embedded guard of execs on mnt, run in this process so that a test can read
// its memo's counters: the trust allowlist of bench/exec.sh (trusted files of mnt run, nothing
// else there does), the trust file tf, settle as the hash cache's and the memo's settle time.
func memoGuard(t *testing.T, mnt, tf string, settle time.Duration) *guardRun {
	t.Helper()
	flagPol, err := policy.FromFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	v := trust.NewVerifier(trust.VerifierConfig{Settle: settle})
	g := &guardRun{kinds: notify.AccessExec, onError: notify.Deny, flagPol: flagPol, deadline: 5 * time.Second,
		paths: []string{mnt}, verifier: v, memo: newExecMemo(v.Settle()), embedded: true,
		trustCfg: trust.Config{Files: []string{tf}}}
	filePol, err := policy.Parse("memo.rules", strings.NewReader("allow exec "+mnt+"/** trusted=yes\ndeny exec "+mnt+"/**\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := backend.New(backend.Options{Mode: backend.ModeAuto, ReusePermEvents: true})
	if err != nil {
		t.Fatal(err)
	}
	g.backend = b
	g.applyMu.Lock()
	defer g.applyMu.Unlock()
	st, err := g.buildStateLocked(filePol, "memo.rules", nil)
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	if !st.execMemo {
		b.Close()
		t.Fatal("the trust allowlist's state does not use the memo")
	}
	g.state.Store(st)
	g.startForgetLocked()
	if g.forgetErr != nil {
		b.Close()
		t.Fatal(g.forgetErr)
	}
	cfg := notify.GuardConfig{Paths: []string{mnt}, Events: notify.AccessExec, Deadline: g.deadline,
		OnTimeout: notify.Deny, OnClose: notify.Allow, Cache: true, Inline: g.inlineFunc(),
		ReuseRequests: true, Backend: b, Ask: g.askKinds(st.pol), ByKind: st.byKind}
	gd, err := notify.NewGuard(cfg, g.handle)
	if err != nil {
		g.forget.stop()
		b.Close()
		t.Fatal(err)
	}
	g.guard, g.publishKinds = gd, gd.SetKindVerdicts
	t.Cleanup(func() {
		gd.Close()
		g.applyMu.Lock()
		g.forget.stop()
		g.applyMu.Unlock()
		b.Close()
	})
	return g
}

// The exec memo under a hostile local user. As nobody, with a trusted copy of true(1) that
// nobody owns in a directory nobody owns: the copy run again and again is answered from the
// memo (counted); then every way to reach a decision the memo must not give is tried, and
// each must be decided by the rules — denied, and no memo hit counted: the same file run
// through a hard link, a renamed directory and a bind mount (other paths); the file rewritten
// in place with the same size (same path and inode, new ctime), at once and over and over;
// an untrusted file renamed over the trusted path; the trust database reloaded without the
// file, and a policy with a rule on the process (uid=) that the memo would ignore.
func TestExecMemoAsNobody(t *testing.T) {
	testenv.RequireRoot(t)
	const settle = 300 * time.Millisecond
	mnt := testenv.PublicTmpfs(t)
	home, bin := filepath.Join(mnt, "home"), filepath.Join(mnt, "home", "bin")
	tool, other := filepath.Join(bin, "tool"), filepath.Join(bin, "other")
	mkdirs(t, home, bin)
	// fresh puts a copy of true(1) that nobody owns at path (by a rename: a new inode), with
	// one byte of the ELF header's padding (EI_PAD, ignored by the loader) set to pad.
	fresh := func(path string, pad byte) {
		t.Helper()
		tmp := filepath.Join(home, "fresh")
		copyExe(t, tmp)
		b := must(os.ReadFile(tmp))
		b[10] = pad
		if err := os.WriteFile(tmp, b, 0o755); err != nil {
			t.Fatal(err)
		}
		toNobody(t, tmp)
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	fresh(tool, 0)
	fresh(other, 'z') // the same size, another digest: not listed
	toNobody(t, home, bin)
	tf := filepath.Join(t.TempDir(), "local.trust")
	if _, errOut, st := fsn(t, "trust", "add", "--file", tf, tool); st != 0 {
		t.Fatalf("trust add: %s", errOut)
	}
	g := memoGuard(t, mnt, tf, settle)
	m := g.memo

	// asNobody runs script as nobody in bin and returns its output.
	asNobody := func(script string) string {
		t.Helper()
		out, err := testenv.Sh(testenv.Nobody, "cd "+bin+" && try() { if \"$2\" 2>/dev/null; then echo \"$1 ran\"; else echo \"$1 denied\"; fi; }\n"+script)
		if err != nil {
			t.Fatalf("as nobody: %v\n%s", err, out)
		}
		return out
	}
	// warm runs the tool until the memo answers it (it has stood still for the settle time).
	warm := func() {
		t.Helper()
		time.Sleep(settle + 100*time.Millisecond)
		h := m.hits.Load()
		if out := asNobody("try tool ./tool; try tool ./tool; try tool ./tool"); out != "tool ran\ntool ran\ntool ran" {
			t.Fatalf("the trusted tool: %q", out)
		}
		if m.hits.Load() == h {
			t.Fatalf("three runs of the unchanged trusted tool, no memo hit (kept %d)", m.kept.Load())
		}
	}
	// denied runs script, which must print only "... denied" lines, with no memo hit: each
	// step runs each path once (or changes the file before each run), so that a hit could
	// only be of a decision from before the step.
	denied := func(step, script string) {
		t.Helper()
		h := m.hits.Load()
		out := asNobody(script)
		if strings.Contains(out, " ran") || !strings.Contains(out, "denied") {
			t.Errorf("%s: %s", step, out)
		}
		if got := m.hits.Load() - h; got != 0 {
			t.Errorf("%s: %d memo hits", step, got)
		}
	}

	warm()
	h := m.hits.Load()
	if out := asNobody("for i in $(seq 50); do try tool ./tool; done | sort | uniq -c | tr -s ' '"); out != "50 tool ran" {
		t.Fatalf("50 runs: %q", out)
	}
	if got := m.hits.Load() - h; got < 50 {
		t.Errorf("50 runs of the unchanged trusted tool: %d memo hits, want 50", got)
	}

	denied("a hard link", "ln tool link && try link ./link; rm link")
	warm()
	denied("a renamed directory", "cd .. && mv bin b2 && try moved b2/tool; mv b2 bin")
	warm()
	bind := filepath.Join(mnt, "bind")
	mkdirs(t, bind)
	if err := syscall.Mount(bin, bind, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	denied("a bind mount", "try bound "+bind+"/tool")
	// Detached: the guard closes the event's descriptor of bound/tool just after its answer,
	// which may be after the denied shell is gone (EBUSY, once in a suite run beside a busy
	// loop, 2026-12-07).
	if err := syscall.Unmount(bind, syscall.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	warm()
	// A same-size rewrite in place (the padding byte: an exec that got through would run),
	// run at once, over and over.
	denied("same-size rewrites", `for i in $(seq 20); do
	printf x | dd of=tool bs=1 seek=10 conv=notrunc status=none; try rewritten ./tool
	printf y | dd of=tool bs=1 seek=10 conv=notrunc status=none; try rewritten ./tool
done`)
	fresh(tool, 0) // the trusted content back, in a new inode
	warm()
	denied("an untrusted file of the same size renamed over the trusted path", "cp other o2 && mv o2 tool && try impostor ./tool")
	fresh(tool, 0)
	warm()

	// The trust database reloaded without the tool: the next run is decided by the new one.
	if err := os.WriteFile(tf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := g.reloadTrust(nil); err != nil {
		t.Fatal(err)
	}
	denied("the trust database without the tool", "try tool ./tool")
	if _, errOut, st := fsn(t, "trust", "add", "--file", tf, tool); st != 0 {
		t.Fatalf("trust add: %s", errOut)
	}
	if err := g.reloadTrust(nil); err != nil {
		t.Fatal(err)
	}
	warm()

	// A rule on the process: root may run the tool, nobody may not; the memo is off, and
	// the two, alternating, each get their own decision.
	if err := g.ApplyPolicy([]byte(fmt.Sprintf("allow exec %s/** trusted=yes uid=0\ndeny exec %s/**\n", mnt, mnt)), "uid.rules"); err != nil {
		t.Fatal(err)
	}
	if g.state.Load().execMemo {
		t.Fatal("a policy with uid= uses the memo")
	}
	h = m.hits.Load()
	for i := range 5 {
		if out, err := testenv.Sh(nil, tool+" && echo ran"); err != nil || out != "ran" {
			t.Fatalf("round %d: root: %v %q", i, err, out)
		}
		denied(fmt.Sprintf("round %d: nobody under uid=0", i), "try tool ./tool")
	}
	if got := m.hits.Load() - h; got != 0 {
		t.Errorf("under a policy with uid=: %d memo hits", got)
	}
}
