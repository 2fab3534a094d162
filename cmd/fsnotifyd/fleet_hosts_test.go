//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/fleet"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// fleetHost is one of TestFleetThreeHosts' hosts: a daemon, a guard through it, a scratch
// filesystem.
type fleetHost struct {
	name, mnt, sock string
	guard           *proc
}

// denied reports whether an open of the host's a.key is denied now (EPERM); other errors
// fail the test.
func (h *fleetHost) denied(t *testing.T) bool {
	f, err := os.Open(h.mnt + "/srv/a.key")
	if err == nil {
		f.Close()
		return false
	}
	if !errors.Is(err, syscall.EPERM) {
		t.Fatalf("%s: open: %v", h.name, err)
	}
	return true
}

// policyStatuses runs "policy status --json" and returns the hosts' lines by host name.
func policyStatuses(t *testing.T, url string) map[string]fleet.PolicyStatus {
	out, stderr, rc := fsn(t, "policy", "status", "--nats", url, "--json")
	if rc != 0 {
		t.Fatalf("policy status: rc %d: %s", rc, stderr)
	}
	got := map[string]fleet.PolicyStatus{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var s fleet.PolicyStatus
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("policy status line %q: %v", sc.Text(), err)
		}
		got[s.Host] = s
	}
	return got
}

// TestFleetThreeHosts is issue 14's test (d): three daemons on one machine as three hosts
// (their own --host, scratch filesystem, spool and policy state; one in-process server).
// fleet tail shows the events and decisions of all three; a policy push is enforced by all
// three (a denied open on each) within 1 s of the push, each round measured and logged; policy
// status shows the revision on each; an invalid revision is refused by each host, which
// keeps enforcing the old one and reports the error.
func TestFleetThreeHosts(t *testing.T) {
	testenv.RequireRoot(t)
	url := natsURL(t)
	dir := t.TempDir()
	allowKeys := []byte("deny open **/*.nothing\n")
	denyKeys := []byte("deny open **/*.key\n")
	os.WriteFile(filepath.Join(dir, "first.rules"), allowKeys, 0o644)
	if out, stderr, rc := fsn(t, "policy", "push", filepath.Join(dir, "first.rules"), "--nats", url); rc != 0 {
		t.Fatalf("policy push: rc %d: %s%s", rc, out, stderr)
	}

	var hosts []*fleetHost
	for i := 0; i < 3; i++ {
		h := &fleetHost{name: fmt.Sprintf("host-%d", i), mnt: testenv.Tmpfs(t)}
		sh(t, "mkdir -p "+h.mnt+"/etc "+h.mnt+"/srv && echo s > "+h.mnt+"/srv/a.key")
		h.sock = startExportingServe(t, url, h.name, "export close_write "+h.mnt+"/etc/**")
		h.guard = start(t, "guard", "--daemon="+h.sock, "--policy-from", url+"/fsnotifyd-policy/default",
			"--host", h.name, "--policy-state", filepath.Join(dir, h.name), "--export-decisions", h.mnt+"/srv")
		hosts = append(hosts, h)
	}
	for _, h := range hosts {
		if h.denied(t) {
			t.Fatalf("%s denies a.key under the first policy", h.name)
		}
		os.WriteFile(h.mnt+"/etc/hosts", []byte(h.name), 0o644)
	}

	// fleet tail shows all three, events and decisions.
	for _, args := range [][]string{{}, {"--decisions"}} {
		var out string
		for deadline := time.Now().Add(10 * time.Second); ; {
			var rc int
			var stderr string
			out, stderr, rc = fsn(t, append([]string{"fleet", "tail", "--nats", url, "--seq", "1", "--timeout", "1s"}, args...)...)
			if rc != 0 {
				t.Fatalf("fleet tail %v: rc %d: %s", args, rc, stderr)
			}
			if strings.Contains(out, "host-0 ") && strings.Contains(out, "host-1 ") && strings.Contains(out, "host-2 ") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("fleet tail %v does not show all three hosts:\n%s", args, out)
			}
		}
		for _, h := range hosts {
			want := h.mnt + "/etc/hosts"
			if len(args) > 0 {
				want = h.mnt + "/srv/a.key"
			}
			if !strings.Contains(out, h.name+" ") || !strings.Contains(out, want) {
				t.Errorf("fleet tail %v: no line of %s with %s:\n%s", args, h.name, want, out)
			}
		}
	}

	js := fleetJS(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kv, err := fleet.OpenBucket(ctx, js, fleet.DefaultBucket, false)
	if err != nil {
		t.Fatal(err)
	}

	// Push → enforced on all three, in rounds: deny, allow again, deny.
	var took []time.Duration
	var rev uint64
	for round, data := range [][]byte{denyKeys, allowKeys, denyKeys} {
		wantDenied := string(data) == string(denyKeys)
		t0 := time.Now()
		res, err := fleet.Push(ctx, kv, fleet.DefaultKey, data, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		rev = res.Revision
		pending := map[*fleetHost]bool{hosts[0]: true, hosts[1]: true, hosts[2]: true}
		for len(pending) > 0 {
			for h := range pending {
				if h.denied(t) == wantDenied {
					delete(pending, h)
				}
			}
			if time.Since(t0) > 10*time.Second {
				t.Fatalf("round %d: revision %d not enforced after 10 s", round, rev)
			}
		}
		took = append(took, time.Since(t0))
	}
	t.Logf("push → enforced on all three hosts: %v (rounds: deny, allow, deny)", took)
	for i, d := range took {
		if d > time.Second {
			t.Errorf("round %d: push → enforced on all three took %v, over 1 s", i, d)
		}
	}

	// policy status shows the revision on each.
	waitStatus := func(what string, ok func(fleet.PolicyStatus) bool) map[string]fleet.PolicyStatus {
		for deadline := time.Now().Add(10 * time.Second); ; {
			st := policyStatuses(t, url)
			n := 0
			for _, h := range hosts {
				if s, found := st[h.name]; found && ok(s) {
					n++
				}
			}
			if n == len(hosts) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("policy status never showed %s on every host: %+v", what, st)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitStatus(fmt.Sprintf("revision %d", rev), func(s fleet.PolicyStatus) bool { return s.Revision == rev && s.Error == "" && s.Source == "nats" })
	out, _, _ := fsn(t, "policy", "status", "--nats", url)
	for _, h := range hosts {
		if !strings.Contains(out, h.name+"  ") || !strings.Contains(out, fmt.Sprintf("revision %d,", rev)) {
			t.Errorf("policy status does not show %s at revision %d:\n%s", h.name, rev, out)
		}
	}

	// An invalid revision (written past push's local check): refused by each host, which
	// keeps enforcing the previous one and says why.
	bad, err := kv.Put(ctx, fleet.DefaultKey, []byte("deny open **/*.key\nallow sometimes /x\n"))
	if err != nil {
		t.Fatal(err)
	}
	st := waitStatus(fmt.Sprintf("revision %d refused", bad), func(s fleet.PolicyStatus) bool { return s.Refused == bad })
	for _, h := range hosts {
		s := st[h.name]
		if s.Revision != rev || !strings.Contains(s.Error, "sometimes") {
			t.Errorf("%s after an invalid revision: %+v; want revision %d kept and the parse error", h.name, s, rev)
		}
		if !h.denied(t) {
			t.Errorf("%s stopped enforcing revision %d after refusing revision %d", h.name, rev, bad)
		}
		if !strings.Contains(h.guard.errText(), fmt.Sprintf("revision %d refused", bad)) {
			t.Errorf("%s's guard does not say it refused revision %d:\n%s", h.name, bad, h.guard.errText())
		}
	}
	out, _, _ = fsn(t, "policy", "status", "--nats", url)
	if strings.Count(out, "refused") < 3 {
		t.Errorf("policy status does not show the refusal on each host:\n%s", out)
	}

	// NATS unreachable: a guard restarted with the same state enforces the last good revision
	// from disk from the start, and says so; one without a saved copy refuses to start.
	h := hosts[0]
	if st := h.guard.stop(); st != 0 {
		t.Fatalf("guard exit %d", st)
	}
	offline := start(t, "guard", "--daemon="+h.sock, "--policy-from", "nats://127.0.0.1:1/fsnotifyd-policy/default",
		"--host", h.name, "--policy-state", filepath.Join(dir, h.name), "--nats-timeout", "1s", h.mnt+"/srv")
	if !h.denied(t) {
		t.Errorf("a guard without NATS does not enforce the saved revision %d", rev)
	}
	if e := offline.errText(); !strings.Contains(e, fmt.Sprintf("enforcing revision %d from", rev)) || !strings.Contains(e, "until NATS answers") {
		t.Errorf("a guard without NATS does not say what it enforces:\n%s", e)
	}
	_, stderr, rc := fsn(t, "guard", "--daemon="+h.sock, "--policy-from", "nats://127.0.0.1:1/fsnotifyd-policy/default",
		"--host", h.name, "--policy-state", filepath.Join(dir, "empty"), "--nats-timeout", "1s", h.mnt+"/srv")
	if rc != 1 || !strings.Contains(stderr, "no policy within 1s") || !strings.Contains(stderr, "holds no saved copy") {
		t.Errorf("a guard with neither NATS nor a saved policy: rc %d, %s", rc, stderr)
	}
}
