package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/policy"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// guardStub is what the guard will do in Apply: parse, and swap on success.
type guardStub struct {
	mu      sync.Mutex
	rev     uint64
	pol     *policy.Policy
	data    []byte // the applied revision's
	applied map[uint64]time.Time
}

func (g *guardStub) apply(p PolicyRevision) error {
	pol, err := policy.Parse(fmt.Sprintf("revision %d", p.Revision), bytes.NewReader(p.Data))
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.rev, g.pol, g.data = p.Revision, pol, p.Data
	if g.applied == nil {
		g.applied = map[uint64]time.Time{}
	}
	g.applied[p.Revision] = time.Now()
	return nil
}

func (g *guardStub) revision() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.rev
}

func validatePolicy(b []byte) error {
	_, err := policy.Parse("policy", bytes.NewReader(b))
	return err
}

func startFollower(t *testing.T, ns *natsServer, host, state string, g *guardStub) (*PolicyFollower, *testLog) {
	t.Helper()
	return startFollowerAt(t, ns.url(), host, state, g)
}

// followH1 starts host h1's follower (a state directory of its own; closed at the test's end)
// and waits, at most 10 s, for it to apply revision rev (what names it, for the failure).
func followH1(t *testing.T, ns *natsServer, rev uint64, what string) (*guardStub, *testLog) {
	t.Helper()
	g := &guardStub{}
	f, lg := startFollower(t, ns, "h1", t.TempDir(), g)
	t.Cleanup(f.Close)
	waitFor(t, 10*time.Second, what, func() bool { return g.revision() == rev })
	return g, lg
}

// startFollowerAt starts host's follower connecting to url (a host user's, with the example
// permissions).
func startFollowerAt(t *testing.T, url, host, state string, g *guardStub) (*PolicyFollower, *testLog) {
	t.Helper()
	lg := &testLog{t: t}
	f, err := StartPolicyFollower(FollowerConfig{Conn: ConnOptions{URLs: url, Timeout: 2 * time.Second},
		Host: host, StateDir: state, Apply: g.apply, Log: lg.log})
	if err != nil {
		t.Fatal(err)
	}
	return f, lg
}

// (d) push with compare-and-set, concurrent pushes, status per host, an invalid revision kept
// out and reported, and a follower that keeps its policy from disk without NATS.
func TestPolicyPushFollowStatus(t *testing.T) {
	ns := startNATS(t)
	_, js := ns.connect(t)
	ctx := context.Background()
	kv := openBucket(t, js)
	hosts := []string{"h1", "h2.example.com", "h3"}
	guards := make([]*guardStub, len(hosts))
	followers := make([]*PolicyFollower, len(hosts))
	logs := make([]*testLog, len(hosts))
	states := make([]string, len(hosts))
	for i, h := range hosts {
		guards[i], states[i] = &guardStub{}, t.TempDir()
		followers[i], logs[i] = startFollower(t, ns, h, states[i], guards[i])
	}

	// A local check refuses a bad file before anything is sent.
	if _, err := Push(ctx, kv, DefaultKey, []byte("deny open relative/*.key\n"), 0, validatePolicy); err == nil || !strings.Contains(err.Error(), "1:") {
		t.Fatalf("invalid policy pushed: %v", err)
	}
	res, err := Push(ctx, kv, DefaultKey, []byte("deny open /srv/**/*.key\n"), 0, validatePolicy)
	if err != nil || res.Previous != 0 || res.Unchanged {
		t.Fatal(res, err)
	}
	pushed := time.Now()
	for i := range hosts {
		waitFor(t, 5*time.Second, hosts[i]+" to enforce revision 1", func() bool { return guards[i].revision() == res.Revision })
	}
	var worst time.Duration
	for _, g := range guards {
		worst = max(worst, g.applied[res.Revision].Sub(pushed))
	}
	t.Logf("push to enforcement on all %d hosts: %v", len(hosts), worst)
	if worst > time.Second {
		t.Errorf("push to enforcement took %v (> 1s)", worst)
	}
	if guards[0].pol.Decide(&policy.Request{Path: "/srv/a/b.key", Event: engine.OpenPerm}).Verdict.String() != "deny" {
		t.Error("the applied policy does not deny")
	}

	// Status: one entry per host with the revision.
	waitFor(t, 5*time.Second, "status of every host", func() bool {
		st, err := ReadStatuses(ctx, kv)
		if err != nil || len(st) != len(hosts) {
			return false
		}
		for _, s := range st {
			if s.Status.Revision != res.Revision || s.Status.Error != "" || s.Status.Source != "nats" {
				return false
			}
		}
		return true
	})

	// The same bytes again: nothing written.
	if r, err := Push(ctx, kv, DefaultKey, []byte("deny open /srv/**/*.key\n"), 0, validatePolicy); err != nil || !r.Unchanged || r.Revision != res.Revision {
		t.Errorf("unchanged push: %+v %v", r, err)
	}

	// Concurrent pushes on the same revision: exactly one wins, the others fail clearly.
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	revs := make([]uint64, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := Push(ctx, kv, DefaultKey, fmt.Appendf(nil, "deny open /srv/%d/**\n", i), res.Revision, validatePolicy)
			revs[i], errs[i] = r.Revision, err
		}()
	}
	wg.Wait()
	wins := 0
	var winner uint64
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
			winner = revs[i]
		case !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "push again"):
			t.Errorf("push %d: %v", i, err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d concurrent pushes won: %v", wins, errs)
	}
	for i := range hosts {
		waitFor(t, 5*time.Second, "the winner enforced", func() bool { return guards[i].revision() == winner })
	}

	// An invalid revision written past the local check (an old client, a hand edit) is refused
	// by every host, which keeps the previous policy and says why.
	bad, err := kv.Put(ctx, DefaultKey, []byte("allow sometimes /srv\n"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the refusal in every status", func() bool {
		st, _ := ReadStatuses(ctx, kv)
		ok := len(st) == len(hosts)
		for _, s := range st {
			ok = ok && s.Status.Refused == bad && s.Status.Revision == winner && strings.Contains(s.Status.Error, fmt.Sprintf("revision %d refused", bad))
		}
		return ok
	})
	for i := range hosts {
		if guards[i].revision() != winner {
			t.Errorf("%s enforces %d after the bad revision, want %d", hosts[i], guards[i].revision(), winner)
		}
		if !logs[i].has(fmt.Sprintf("revision %d refused", bad)) {
			t.Errorf("%s did not log the refusal:\n%s", hosts[i], logs[i])
		}
	}

	// A host that loses NATS keeps its policy and says so; restarted without NATS it enforces
	// the last good revision from disk at once.
	ns.stop()
	waitFor(t, 10*time.Second, "the outage logged", func() bool { return logs[0].has(fmt.Sprintf("still enforcing revision %d", winner)) })
	for _, f := range followers {
		f.Close()
	}
	g := &guardStub{}
	f, lg := startFollower(t, ns, hosts[0], states[0], g)
	if g.revision() != winner || f.Status().Source != "disk" {
		t.Errorf("restarted without NATS: enforcing %d from %q, want %d from disk", g.revision(), f.Status().Source, winner)
	}
	if !lg.has(fmt.Sprintf("enforcing revision %d from", winner)) {
		t.Errorf("log:\n%s", lg)
	}
	ns.start()
	waitFor(t, 15*time.Second, "the status after NATS is back", func() bool {
		st, _ := ReadStatuses(ctx, kv)
		for _, s := range st {
			if s.Status.Host == hosts[0] {
				return s.Status.Source == "nats" && s.Status.Revision == winner && s.Status.Refused == bad
			}
		}
		return false
	})
	f.Close()
}

func TestPushIfRevision(t *testing.T) {
	ns := startNATS(t)
	_, js := ns.connect(t)
	ctx := context.Background()
	kv := openBucket(t, js)
	if _, err := OpenBucket(ctx, js, "nope", false); err == nil || !strings.Contains(err.Error(), "push a policy first") {
		t.Errorf("missing bucket: %v", err)
	}
	r1, err := Push(ctx, kv, "k", []byte("default deny\n"), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Not a race: the error says which revision is there, not "changed while it was being
	// pushed".
	want := fmt.Sprintf("--if-revision %d: the bucket holds revision %d; nothing was written", r1.Revision+5, r1.Revision)
	if _, err := Push(ctx, kv, "k", []byte("default allow\n"), r1.Revision+5, nil); !errors.Is(err, ErrConflict) || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("push on a revision not current: %v; want ErrConflict, saying %q", err, want)
	}
	r2, err := Push(ctx, kv, "k", []byte("default allow\n"), r1.Revision, nil)
	if err != nil || r2.Previous != r1.Revision || r2.Revision <= r1.Revision {
		t.Errorf("%+v %v", r2, err)
	}
}

// TestSavedPolicyOthersCanChangeIsRefused: the last good revision a follower enforces without
// NATS is held to the trust files' rule: written by another user, or writable by others, it
// is not applied (and the log says why); root's own, mode 0600, is (a control).
func TestSavedPolicyOthersCanChangeIsRefused(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tc := range []struct {
		name    string
		mode    os.FileMode
		owner   int
		applied bool
	}{
		{"root's", 0o600, 0, true},
		{"writable by others", 0o666, 0, false},
		{"nobody's", 0o600, 65534, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			sp := savedPolicy{Bucket: DefaultBucket, Key: DefaultKey, Revision: 7, Applied: time.Now(), Data: []byte("deny open /x/**\n")}
			b, _ := json.Marshal(sp)
			p := filepath.Join(state, "policy."+DefaultBucket+"."+DefaultKey+".json")
			if err := os.WriteFile(p, b, tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(p, tc.owner, tc.owner); err != nil {
				t.Fatal(err)
			}
			g := &guardStub{}
			lg := &testLog{t: t}
			f, err := StartPolicyFollower(FollowerConfig{Conn: ConnOptions{URLs: "nats://127.0.0.1:1", Timeout: 200 * time.Millisecond},
				Host: "h", StateDir: state, Apply: g.apply, Log: lg.log})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if got := g.revision() == 7; got != tc.applied {
				t.Fatalf("saved revision applied %v, want %v; log:\n%s", got, tc.applied, lg)
			}
			if !tc.applied && !lg.has("cannot be read") {
				t.Errorf("the refusal is not logged:\n%s", lg)
			}
		})
	}
}

// TestPolicyStateDirOthersCanWriteIsRefused: a --policy-state directory that another user
// owns or may write (even while it holds no saved policy yet) is refused at start, naming it
// and the fix: there they could remove the saved policy, or put theirs in its place, which
// load refuses — either way the guard would start with no policy until NATS answers. Before,
// the follower started and saved into it.
func TestPolicyStateDirOthersCanWriteIsRefused(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tc := range []struct {
		name  string
		mode  os.FileMode
		owner int
		msg   string
	}{
		{"nobody's", 0o700, 65534, "owned by uid 65534"},
		{"anyone may write", 0o777, 0, "writable by others (mode 0777)"},
		{"the group may write", 0o770, 0, "writable by its group (mode 0770)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "state")
			if err := os.Mkdir(state, tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(state, tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(state, tc.owner, tc.owner); err != nil {
				t.Fatal(err)
			}
			g := &guardStub{}
			lg := &testLog{t: t}
			f, err := StartPolicyFollower(FollowerConfig{Conn: ConnOptions{URLs: "nats://127.0.0.1:1", Timeout: 200 * time.Millisecond},
				Host: "h", StateDir: state, Apply: g.apply, Log: lg.log})
			if f != nil {
				f.Close()
			}
			want := "its directory " + state + ": " + tc.msg
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "chmod go-w "+state) {
				t.Errorf("StartPolicyFollower with --policy-state %s: %v; want a refusal with %q and the fix", state, err, want)
			}
		})
	}
}

// A policy larger than the server takes in one message is not pushed, and the error says the
// size, the server's limit and what to do; the bucket keeps the previous revision.
func TestPushTooLargeSaysWhy(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "nats.conf")
	os.WriteFile(conf, []byte("max_payload: 4096\njetstream: enabled\n"), 0o600)
	ns := &natsServer{t: t, store: t.TempDir(), port: freePort(t), conf: conf}
	ns.start()
	t.Cleanup(ns.stop)
	_, js := ns.connect(t)
	ctx := context.Background()
	kv := openBucket(t, js)
	first := push(t, kv, "deny open /srv/**\n")
	big := []byte(strings.Repeat("deny open /srv/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/**\n", 200))
	_, err := Push(ctx, kv, DefaultKey, big, 0, validatePolicy)
	if err == nil || !strings.Contains(err.Error(), "max_payload") || !strings.Contains(err.Error(), strconv.Itoa(len(big))) || !strings.Contains(err.Error(), "nothing was written") {
		t.Errorf("Push of %d bytes: %v; want the size, max_payload and nothing written", len(big), err)
	}
	if e, err := kv.Get(ctx, DefaultKey); err != nil || e.Revision() != first.Revision {
		t.Errorf("the bucket after the refused push: %v %v", e, err)
	}
}
