//go:build linux

package notify

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/source"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestDenyErrnoOutsidePreContentIsPlainDeny: a Guard that is not pre-content and answers
// DenyErrno(EIO) — from its Handler or its Inline policy, embedded or through the daemon, with
// a deadline or none — denies the open at once with EPERM, and OnDecision is told the plain
// deny it was. Through the daemon it used to wait out the deadline and then be allowed (or
// hang forever without one).
func TestDenyErrnoOutsidePreContentIsPlainDeny(t *testing.T) {
	testenv.RequireRoot(t)
	for _, where := range []string{"embedded", "daemon"} {
		for _, path := range []string{"handler", "inline"} {
			for _, deadline := range []time.Duration{5 * time.Second, 0} {
				t.Run(where+"/"+path+"/deadline="+deadline.String(), func(t *testing.T) {
					testDenyErrnoPlain(t, where == "daemon", path == "inline", deadline)
				})
			}
		}
	}
}

func testDenyErrnoPlain(t *testing.T, viaDaemon, inline bool, deadline time.Duration) {
	dir := testenv.Tmpfs(t)
	if err := os.WriteFile(dir+"/f.bad", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	decide := func(r *Request) Verdict {
		if strings.HasSuffix(r.Path(), ".bad") {
			return DenyErrno(syscall.EIO)
		}
		return Allow
	}
	var mu sync.Mutex
	var decisions []string
	cfg := GuardConfig{Paths: []string{dir}, Deadline: deadline, OnDecision: func(d Decision) {
		mu.Lock()
		decisions = append(decisions, d.Verdict.String())
		mu.Unlock()
	}}
	if viaDaemon {
		cfg.Daemon = startDaemon(t)
	}
	var h Handler
	if inline {
		cfg.Inline = func(r *Request) (Verdict, bool) { return decide(r), true }
	} else {
		h = func(_ context.Context, r *Request) Verdict { return decide(r) }
	}
	g, err := NewGuard(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // then SIGKILL
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, "cat", dir+"/f.bad").CombinedOutput()
	took := time.Since(start)
	if err == nil || !strings.Contains(string(out), "Operation not permitted") || took > time.Second {
		t.Fatalf("cat of a file denied with EIO by a content guard: %v %q after %v, want EPERM within 1s", err, out, took)
	}
	deadlineAt := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		got := strings.Join(decisions, ",")
		mu.Unlock()
		if got == "deny" {
			break
		}
		if time.Now().After(deadlineAt) {
			t.Fatalf("OnDecision saw %q, want one plain deny", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// eachGuardMode runs f for a Guard embedded and for one through a daemon (daemon is its
// socket, or "").
func eachGuardMode(t *testing.T, f func(t *testing.T, daemon string)) {
	t.Run("embedded", func(t *testing.T) { testenv.RequireRoot(t); f(t, "") })
	t.Run("daemon", func(t *testing.T) { f(t, startDaemon(t)) })
}

// decisionLog collects a Guard's OnDecision calls.
type decisionLog struct {
	mu   sync.Mutex
	list []Decision
}

func (d *decisionLog) add(x Decision) {
	x.Request.Path() // resolved while the event is held (OnDecision runs before its release)
	d.mu.Lock()
	d.list = append(d.list, x)
	d.mu.Unlock()
}

// of waits for the decision on a path ending in suffix.
func (d *decisionLog) of(t *testing.T, suffix string) Decision {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
		d.mu.Lock()
		for _, x := range d.list {
			if strings.HasSuffix(x.Request.Path(), suffix) {
				d.mu.Unlock()
				return x
			}
		}
		d.mu.Unlock()
	}
	t.Fatalf("no decision on *%s", suffix)
	return Decision{}
}

// catFile runs cat on path (as cred, if set) and returns its error and output.
func catFile(path string, cred *syscall.Credential) (string, error) {
	c := exec.Command("cat", path)
	if cred != nil {
		c.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	out, err := c.CombinedOutput()
	return string(out), err
}

func denied(out string, err error) bool {
	return err != nil && strings.Contains(out, "Operation not permitted")
}

// A handler (or Inline) that panics is the Guard's own failure: the access gets the on-error
// verdict — deny unless AllowOnError — the panic is in Decision.Err, and the Guard goes on
// deciding.
func TestGuardHandlerPanicAnswersOnError(t *testing.T) {
	eachGuardMode(t, func(t *testing.T, daemon string) {
		for _, allowOnError := range []bool{false, true} {
			t.Run("AllowOnError="+strconv.FormatBool(allowOnError), func(t *testing.T) {
				dir := testenv.Tmpfs(t)
				for _, n := range []string{"boom", "boom-inline", "ok"} {
					os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644)
				}
				var ds decisionLog
				g, err := NewGuard(GuardConfig{Paths: []string{dir}, Daemon: daemon, Deadline: 10 * time.Second,
					AllowOnError: allowOnError, OnDecision: ds.add,
					Inline: func(r *Request) (Verdict, bool) {
						if strings.HasSuffix(r.Path(), "/boom-inline") {
							panic("inline went wrong")
						}
						return Verdict{}, false
					}},
					func(ctx context.Context, r *Request) Verdict {
						if strings.HasSuffix(r.Path(), "/boom") {
							panic("handler went wrong")
						}
						return Allow
					})
				if err != nil {
					t.Fatal(err)
				}
				defer g.Close()
				for _, tc := range []struct{ name, value string }{{"boom", "handler went wrong"}, {"boom-inline", "inline went wrong"}} {
					out, err := catFile(filepath.Join(dir, tc.name), nil)
					if denied(out, err) == allowOnError {
						t.Errorf("%s: cat: %v %s; want denied=%v", tc.name, err, out, !allowOnError)
					}
					d := ds.of(t, "/"+tc.name)
					var pe *PanicError
					if !errors.As(d.Err, &pe) || pe.Value != tc.value || len(pe.Stack) == 0 || d.Verdict.Denied() == allowOnError {
						t.Errorf("%s: decision %+v (err %v), want the panic %q and the on-error verdict", tc.name, d, d.Err, tc.value)
					}
				}
				if out, err := catFile(filepath.Join(dir, "ok"), nil); err != nil {
					t.Errorf("after the panics the Guard no longer decides: %v %s", err, out)
				}
			})
		}
	})
}

// A handler reads the process's attributes while it waits: executable (verified), all its
// groups, effective uid, name; a handler's own failure goes to the audit through Request.Err.
func TestGuardRequestProcessAttributes(t *testing.T) {
	cat, err := exec.LookPath("cat")
	if err != nil {
		t.Fatal(err)
	}
	cat, _ = filepath.EvalSymlinks(cat)
	eachGuardMode(t, func(t *testing.T, daemon string) {
		dir := testenv.Tmpfs(t)
		file := filepath.Join(dir, "probe")
		os.WriteFile(file, []byte("p"), 0o644)
		testenv.OpenToAll(t, file)
		type seen struct {
			exe      string
			verified bool
			exeErr   error
			groups   []uint32
			uid      int
			comm     string
		}
		got := make(chan seen, 1)
		var ds decisionLog
		g, err := NewGuard(GuardConfig{Paths: []string{dir}, Daemon: daemon, Deadline: 10 * time.Second, OnDecision: ds.add},
			func(ctx context.Context, r *Request) Verdict {
				var s seen
				s.exe, s.verified, s.exeErr = r.Exe()
				s.groups, _ = r.Groups()
				s.uid, _ = r.LookupUid()
				s.comm = r.Comm()
				select {
				case got <- s:
				default:
				}
				r.Err = errors.New("a handler's own failure")
				return Deny
			})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		out, err := catFile(file, &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{27}})
		if !denied(out, err) {
			t.Fatalf("cat: %v %s", err, out)
		}
		s := <-got
		if s.exe != cat || !s.verified || s.exeErr != nil {
			t.Errorf("Exe = %q, %v, %v; want %q, verified", s.exe, s.verified, s.exeErr, cat)
		}
		if !slices.Contains(s.groups, 65534) || !slices.Contains(s.groups, 27) || slices.Contains(s.groups, 0) {
			t.Errorf("Groups = %v, want 65534 and 27 (and not root's 0)", s.groups)
		}
		if s.uid != 65534 || s.comm != "cat" {
			t.Errorf("uid %d comm %q", s.uid, s.comm)
		}
		d := ds.of(t, "/probe")
		if d.Err == nil || d.Err.Error() != "a handler's own failure" {
			t.Errorf("Decision.Err = %v", d.Err)
		}
		if exe, verified, ok := d.Request.ExeRead(); !ok || exe != cat || !verified {
			t.Errorf("ExeRead = %q, %v, %v", exe, verified, ok)
		}
	})
}

// A Guard's queue never fills, so that no queue-full verdict ever answers for it: embedded,
// its kernel group has FAN_UNLIMITED_QUEUE (so the kernel never drops, and allows, a permission
// event) and its engine group no limit; through the daemon it asks for, and gets, no limit.
func TestGuardQueueNeverFull(t *testing.T) {
	eachGuardMode(t, func(t *testing.T, daemon string) {
		dir := testenv.Tmpfs(t)
		g, err := NewGuard(GuardConfig{Paths: []string{dir}, Daemon: daemon}, func(context.Context, *Request) Verdict { return Allow })
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		if daemon != "" {
			if q := g.src.(interface{ Welcome() client.Welcome }).Welcome().QueueLimit; q >= 0 {
				t.Errorf("the daemon granted a queue limit of %d", q)
			}
			return
		}
		if q := g.src.(interface{ Group() *engine.Group }).Group().Options().QueueLimit; q >= 0 {
			t.Errorf("engine queue limit %d", q)
		}
		flags := fanotifyFlags(t)
		const classBits, unlimitedQueue = 0xc, 0x10
		n := 0
		for _, f := range flags {
			if f&classBits != 0 { // a content or pre-content group: the guard's
				n++
				if f&unlimitedQueue == 0 {
					t.Errorf("a permission group without FAN_UNLIMITED_QUEUE: flags %#x", f)
				}
			}
		}
		if n == 0 {
			t.Fatalf("no permission group among this process's fanotify groups %x", flags)
		}
	})
}

// fanotifyFlags returns the fanotify_init flags of this process's fanotify groups, from
// /proc/self/fdinfo.
func fanotifyFlags(t *testing.T) []uint64 {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, e := range ents {
		if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); l != "anon_inode:[fanotify]" {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			if rest, ok := strings.CutPrefix(line, "fanotify flags:"); ok {
				f := strings.Fields(rest)[0]
				v, err := strconv.ParseUint(f, 16, 64)
				if err != nil {
					t.Fatalf("fdinfo %q", line)
				}
				out = append(out, v)
			}
		}
	}
	return out
}

// A helper given in GuardConfig.Exempt that leads its own session is exempt with its
// session's members (its children); any other process, the Guard's other children included,
// is decided.
func TestGuardExemptHelperSession(t *testing.T) {
	eachGuardMode(t, func(t *testing.T, daemon string) {
		dir := testenv.Tmpfs(t)
		file := filepath.Join(dir, "f")
		os.WriteFile(file, []byte("x"), 0o644)
		h := exec.Command("sh", "-c", "read go; cat "+file+" && echo HELPER-CHILD-OK")
		h.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		in, _ := h.StdinPipe()
		out := &strings.Builder{}
		var mu sync.Mutex
		h.Stdout = writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) })
		h.Stderr = h.Stdout
		if err := h.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { h.Process.Kill(); h.Wait() }()
		g, err := NewGuard(GuardConfig{Paths: []string{dir}, Daemon: daemon, Deadline: 10 * time.Second, Exempt: []int{h.Process.Pid}},
			func(context.Context, *Request) Verdict { return Deny })
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		io.WriteString(in, "go\n")
		in.Close()
		if err := h.Wait(); err != nil {
			mu.Lock()
			t.Errorf("the helper's child: %v %s", err, out.String())
			mu.Unlock()
		}
		if out, err := catFile(file, nil); !denied(out, err) {
			t.Errorf("another child of the guard's process: %v %s, want EPERM", err, out)
		}
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// ExemptPid works the same embedded and through the daemon: a helper started after the Guard
// and exempted by pid opens a guarded file although the handler denies every access; another
// process is still denied; a reaped pid is refused with an error (never a silent no-op).
func TestGuardExemptPid(t *testing.T) {
	eachGuardMode(t, func(t *testing.T, daemon string) {
		dir := testenv.Tmpfs(t)
		file := filepath.Join(dir, "f")
		os.WriteFile(file, []byte("x"), 0o644)
		g, err := NewGuard(GuardConfig{Paths: []string{dir}, Daemon: daemon, Deadline: 10 * time.Second},
			func(context.Context, *Request) Verdict { return Deny })
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		h, gate := testenv.Gated(t, "read go; exec cat "+file) // the helper itself opens it
		done, err := g.ExemptPid(h.Process.Pid)
		if err != nil {
			t.Fatalf("ExemptPid(%d): %v", h.Process.Pid, err)
		}
		defer done()
		gate()
		if err := h.Wait(); err != nil {
			t.Errorf("the exempt helper's cat: %v", err)
		}
		if out, err := catFile(file, nil); !denied(out, err) {
			t.Errorf("another process: %v %s, want EPERM", err, out)
		}
		reaped := exec.Command("true")
		reaped.Run()
		if _, err := g.ExemptPid(reaped.Process.Pid); err == nil {
			t.Errorf("ExemptPid(%d), a reaped process: no error", reaped.Process.Pid)
		}
	})
}

// InlineFd is the event's own descriptor of the file while Inline runs (its content read with
// pread, the same inode as the file; through the daemon, the descriptor it passed), and -1 in
// the Handler, where the descriptor may already be closed.
func TestGuardInlineFd(t *testing.T) {
	eachGuardMode(t, func(t *testing.T, daemon string) {
		dir := testenv.Tmpfs(t)
		file := filepath.Join(dir, "probe")
		os.WriteFile(file, []byte("inline-content"), 0o644)
		var st syscall.Stat_t
		if err := syscall.Stat(file, &st); err != nil {
			t.Fatal(err)
		}
		type seen struct {
			fd      int
			ino     uint64
			content string
		}
		inl, hnd := make(chan seen, 8), make(chan int, 8)
		g, err := NewGuard(GuardConfig{Paths: []string{dir}, Daemon: daemon, Deadline: 10 * time.Second,
			Inline: func(r *Request) (Verdict, bool) {
				s := seen{fd: r.InlineFd()}
				if s.fd >= 0 {
					var fst syscall.Stat_t
					if syscall.Fstat(s.fd, &fst) == nil {
						s.ino = fst.Ino
					}
					b := make([]byte, 64)
					n, _ := syscall.Pread(s.fd, b, 0)
					s.content = string(b[:max(n, 0)])
				}
				inl <- s
				return Verdict{}, false
			}},
			func(ctx context.Context, r *Request) Verdict {
				hnd <- r.InlineFd()
				return Allow
			})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		if out, err := catFile(file, nil); err != nil || out != "inline-content" {
			t.Fatalf("cat: %v %q", err, out)
		}
		select {
		case s := <-inl:
			if s.fd < 0 || s.ino != st.Ino || s.content != "inline-content" {
				t.Errorf("inline: fd %d inode %d content %q; want the file's (inode %d)", s.fd, s.ino, s.content, st.Ino)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Inline was not called")
		}
		select {
		case fd := <-hnd:
			if fd != -1 {
				t.Errorf("in the handler InlineFd = %d, want -1", fd)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the handler was not called")
		}
	})
}

// TestGuardByKindDecidesFirst: the verdicts by kind (GuardConfig.ByKind, then
// SetKindVerdicts) decide each access of their kinds first, embedded and without OnDecision:
// the access gets its verdict, it is counted in Stats, and Inline never hears of it; a kind
// they leave out (none set, SetKindVerdicts with none) goes to Inline, and one set again
// decides again, at once. With OnDecision, or through the daemon, Inline decides every access
// and OnDecision records each. It fails when the verdicts by kind are used with OnDecision set
// (a decision OnDecision never sees), when their decisions go uncounted, when their verdict is
// dropped, or when SetKindVerdicts does not take effect at once.
func TestGuardByKindDecidesFirst(t *testing.T) {
	eachGuardMode(t, func(t *testing.T, daemon string) {
		for _, tc := range []struct {
			name       string
			onDecision bool
		}{
			{"deny", false},
			{"with OnDecision", true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				embedded := daemon == ""
				dir := testenv.Tmpfs(t)
				f := filepath.Join(dir, "f")
				os.WriteFile(f, []byte("f"), 0o644)
				var mu sync.Mutex
				var inlines int
				var ds decisionLog
				var byKind KindVerdicts
				byKind.Set(AccessOpen, Deny)
				cfg := GuardConfig{Paths: []string{dir}, Daemon: daemon, Deadline: 10 * time.Second,
					ByKind: byKind,
					Inline: func(r *Request) (Verdict, bool) {
						mu.Lock()
						inlines++
						mu.Unlock()
						return Allow, true
					}}
				if tc.onDecision {
					cfg.OnDecision = ds.add
				}
				g, err := NewGuard(cfg, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer g.Close()
				byKindUsed := embedded && !tc.onDecision
				// check cats n times: denied by the verdicts by kind when they are used and
				// deny is set, else allowed by Inline; the decisions so far are want.
				var wantDecided, wantDenied uint64
				wantInlines := 0
				check := func(step string, n int, deny bool) {
					t.Helper()
					deny = deny && byKindUsed
					for range n {
						if out, err := catFile(f, nil); denied(out, err) != deny {
							t.Errorf("%s: cat: %v %q; want denied=%v", step, err, out, deny)
						}
					}
					wantDecided += uint64(n)
					if deny {
						wantDenied += uint64(n)
					} else {
						wantInlines += n
					}
					mu.Lock()
					gotInlines := inlines
					mu.Unlock()
					if gotInlines != wantInlines {
						t.Errorf("%s: Inline asked %d times, want %d", step, gotInlines, wantInlines)
					}
					// Counted as decided (and denied) when the answer is made: embedded, before
					// the answer goes out (the table's count, and Answered's on the kernel
					// reader before the batch's write), so before the opener returns; through
					// the daemon, Answered comes once the answer went over the connection:
					// within a moment.
					deadline := time.Now().Add(5 * time.Second)
					for {
						st := g.Stats()
						if st.Decided == wantDecided && st.Denied == wantDenied {
							break
						}
						if embedded || time.Now().After(deadline) {
							t.Errorf("%s: Stats: decided %d, denied %d; want %d, %d", step, st.Decided, st.Denied, wantDecided, wantDenied)
							break
						}
						time.Sleep(time.Millisecond)
					}
				}
				check("ByKind", 3, true)
				g.SetKindVerdicts(KindVerdicts{})
				check("none by kind", 2, false)
				var execs KindVerdicts
				execs.Set(AccessExec, Deny)
				g.SetKindVerdicts(execs)
				check("execs by kind", 2, false)
				g.SetKindVerdicts(byKind)
				check("opens by kind again", 2, true)
				if tc.onDecision {
					if d := ds.of(t, "/f"); d.By != "inline" || d.Verdict.Denied() {
						t.Errorf("OnDecision: %+v, want Inline's allow", d)
					}
				}
			})
		}
	})
}

// TestKindVerdictsAnswerAsTheGuard: a verdict by kind reaches the source's table as the Guard
// answers it on every other path (answer: an errno only in a pre-content guard and only one
// of DenyErrnos, a cached allow only with Cache), for every kind and configuration, and only
// for the kinds set; accessKinds are in the table's order (source.TableKinds). It fails when
// the verdicts by kind skip answer, or a kind lands in another kind's entry.
func TestKindVerdictsAnswerAsTheGuard(t *testing.T) {
	for i := range accessKinds {
		if accessKinds[i].mask != source.TableKinds[i] {
			t.Fatalf("accessKinds[%d] is %v, the table's %v", i, accessKinds[i].mask, source.TableKinds[i])
		}
	}
	verdicts := []Verdict{Allow, AllowAndCache, Deny, DenyErrno(syscall.EIO), DenyErrno(syscall.EPERM), DenyErrno(syscall.EINVAL)}
	for _, events := range []AccessKind{AccessOpen, AccessOpen | AccessExec, AccessOpen | AccessRead | AccessExec | AccessPreAccess} {
		for _, cache := range []bool{false, true} {
			gd := &Guard{cfg: GuardConfig{Events: events, Cache: cache}, table: new(source.InlineTable)}
			for _, k := range []AccessKind{AccessOpen, AccessRead, AccessExec, AccessPreAccess} {
				for _, v := range verdicts {
					var kv KindVerdicts
					kv.Set(k, v)
					if got, ok := kv.Get(k); !ok || got != v {
						t.Fatalf("Get(%v) = %v %v after Set(%v, %v)", k, got, ok, k, v)
					}
					gd.SetKindVerdicts(kv)
					want := gd.answer(v).sourceAnswer()
					for _, other := range []AccessKind{AccessOpen, AccessRead, AccessExec, AccessPreAccess} {
						got, ok := gd.table.Load().Get(other.Mask())
						switch {
						case other == k && (!ok || got != want):
							t.Errorf("events %v, cache %v: %v by kind %v: the table has %+v %v, want %+v", events, cache, k, v, got, ok, want)
						case other != k && ok:
							t.Errorf("events %v, cache %v: %v by kind %v: the table answers %v too (%+v)", events, cache, k, v, other, got)
						}
					}
				}
			}
		}
	}
	// Without the table (through the daemon, with OnDecision) SetKindVerdicts does nothing.
	var kv KindVerdicts
	kv.Set(AccessOpen, Deny)
	(&Guard{}).SetKindVerdicts(kv)
}
