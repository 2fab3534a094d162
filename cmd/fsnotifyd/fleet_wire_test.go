//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/fleet"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
	"github.com/nats-io/nats.go/jetstream"
)

// fleetRecords reads every record of the stream from its start until done says so (or 15 s
// pass), decoded, with their subjects in "_subject".
func fleetRecords(t *testing.T, url string, decisions bool, done func([]map[string]any) bool) []map[string]any {
	return fleetRecordsFor(t, url, decisions, 15*time.Second, done)
}

// fleetRecordsFor is fleetRecords for at most timeout.
func fleetRecordsFor(t *testing.T, url string, decisions bool, timeout time.Duration, done func([]map[string]any) bool) []map[string]any {
	t.Helper()
	js := fleetJS(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got []map[string]any
	var mu sync.Mutex
	var err error
	// The exporter creates the stream when it first reaches the server, which may be after
	// the events (its stream check backs off): until then, ask again.
	for {
		err = tailRecords(ctx, js, decisions, &mu, &got, done)
		if err == nil || !strings.Contains(err.Error(), "does not exist yet") || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil && !strings.Contains(err.Error(), "does not exist yet") {
		t.Fatal(err)
	}
	return got
}

// tailRecords is one fleet.Tail of fleetRecordsFor, appending to got under mu.
func tailRecords(ctx context.Context, js jetstream.JetStream, decisions bool, mu *sync.Mutex, got *[]map[string]any, done func([]map[string]any) bool) error {
	return fleet.Tail(ctx, js, fleet.TailOptions{StartSeq: 1, Decisions: decisions}, func(r *fleet.Received) error {
		var m map[string]any
		if err := json.Unmarshal(r.Data, &m); err != nil {
			return fmt.Errorf("record %q: %v", r.Data, err)
		}
		m["_subject"] = r.Subject
		mu.Lock()
		defer mu.Unlock()
		*got = append(*got, m)
		if done(*got) {
			return fleet.ErrStopTail
		}
		return nil
	})
}

// fleetJS connects to the JetStream at url for the rest of the test.
func fleetJS(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	o := fleet.ConnOptions{URLs: url}
	nc, err := o.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := o.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// startExportingServe starts a daemon exporting to url as host, with an export config for
// the export lines given; it returns the socket.
func startExportingServe(t *testing.T, url, host string, exportLines ...string) string {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "export.conf")
	os.WriteFile(conf, []byte(strings.Join(exportLines, "\n")+"\n"), 0o644)
	return startServeIn(t, dir, "--export", url, "--host", host, "--spool", filepath.Join(dir, "spool"), "--export-config", conf)
}

// TestServeExportEndToEnd: serve --export sends the events of its export lines from a
// scratch filesystem (and only those: another directory and another event stay out), each
// with host, boot_id and a seq counting from 1 without a hole; a guard through the daemon
// with --export-decisions has its decisions exported with verdict, rule, event, path, pid,
// exe, uid and latency and the reporting client's identity; a guard without it has none; a
// client's report that tries to set the host, or comes from a notification client, is not
// exported.
func TestServeExportEndToEnd(t *testing.T) {
	testenv.RequireRoot(t)
	url := natsURL(t)
	mnt := testenv.Tmpfs(t)
	sh(t, "mkdir -p "+mnt+"/etc "+mnt+"/other "+mnt+"/srv && echo s > "+mnt+"/srv/a.key && echo ok > "+mnt+"/srv/ok")
	sock := startExportingServe(t, url, "web-1", "export close_write,delete "+mnt+"/etc/**")
	const n = 200
	for i := 0; i < n; i++ {
		os.WriteFile(fmt.Sprintf("%s/etc/f%d", mnt, i), []byte("x"), 0o644)
		os.WriteFile(fmt.Sprintf("%s/other/f%d", mnt, i), []byte("x"), 0o644) // not exported: another directory
	}
	os.ReadFile(mnt + "/etc/f0") // not exported: an open is not in the line
	os.Remove(mnt + "/etc/f0")

	// Decisions: one guard reports them, one does not.
	g := start(t, "guard", "--daemon="+sock, "--deny", "**/*.key", "--export-decisions", mnt+"/srv")
	if _, err := os.ReadFile(mnt + "/srv/a.key"); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("read of a denied file: %v", err)
	}
	if _, err := os.ReadFile(mnt + "/srv/ok"); err != nil {
		t.Fatal(err)
	}
	g.stop()
	g2 := start(t, "guard", "--daemon="+sock, "--deny", "**/*.key", mnt+"/srv")
	os.ReadFile(mnt + "/srv/a.key")
	g2.stop()
	// Hostile reports: a permission client setting "host" (or another field the daemon sets,
	// in any case), a notification client.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range []struct {
		class engine.Class
		text  string
	}{
		{engine.ClassContent, `{"verdict":"allow","path":"/forged","host":"web-2"}`},
		// The same keys in another case: Go's decoder (fleet.ParseHeader's) matches them to the
		// header's fields, the last one winning.
		{engine.ClassContent, `{"verdict":"allow","path":"/forged-HOST","HOST":"web-2"}`},
		{engine.ClassContent, `{"verdict":"allow","path":"/forged-Seq","Seq":1}`},
		{engine.ClassContent, `{"verdict":"allow","path":"/forged-long-s","\u017feq":1}`},
		{engine.ClassContent, `{"verdict":"allow","path":"/forged-kelvin","\u212aind":"gap"}`},
		{engine.ClassContent, `{"verdict":"allow","path":"/forged-uid","Client_UID":0}`},
		{engine.ClassNotification, `{"verdict":"allow","path":"/forged-by-notification"}`},
		{engine.ClassContent, `{"verdict":"allow","path":"/reported-by-hand"}`},
	} {
		cl, err := client.Dial(ctx, client.Options{Socket: sock, Name: "hand", Class: c.class})
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.Report([]byte(c.text)); err != nil {
			t.Fatal(err)
		}
		cl.Ping(ctx) // the daemon handled the report
		cl.Close()
	}

	events := fleetRecords(t, url, false, func(got []map[string]any) bool { return len(got) >= n+1 })
	if len(events) != n+1 {
		t.Fatalf("%d event records, want %d (%d close_write, 1 delete)", len(events), n+1, n)
	}
	bootID := fleet.KernelBootID()
	deletes := 0
	for i, r := range events {
		if r["host"] != "web-1" || r["boot_id"] != bootID || r["kind"] != "event" || r["_subject"] != "fsnotifyd.events.web-1" {
			t.Fatalf("record %d: %v", i, r)
		}
		if p, _ := r["path"].(string); !strings.HasPrefix(p, mnt+"/etc/f") {
			t.Fatalf("record %d outside the export line: %v", i, r)
		}
		if ev := fmt.Sprint(r["events"]); strings.Contains(ev, "DELETE") {
			deletes++
		} else if ev != "[CLOSE_WRITE]" {
			t.Fatalf("record %d: events %s, want CLOSE_WRITE or DELETE only", i, ev)
		}
	}
	if deletes != 1 {
		t.Errorf("%d delete records, want 1", deletes)
	}
	// Three decisions, and no fourth within 3 s (the forged reports were sent before the
	// hand report, whose record is there).
	decisions := fleetRecordsFor(t, url, true, 3*time.Second, func(got []map[string]any) bool { return len(got) > 3 })
	// Seqs: one counter per host for events and decisions alike, from 1, without a hole.
	seqs := map[float64]bool{}
	for _, r := range append(events, decisions...) {
		seqs[r["seq"].(float64)] = true
	}
	for s := 1; s <= len(seqs); s++ {
		if !seqs[float64(s)] {
			t.Fatalf("seq %d missing among %d records", s, len(seqs))
		}
	}
	if len(decisions) != 3 {
		t.Fatalf("%d decision records, want 3 (the reporting guard's deny and allow, the hand report): %v", len(decisions), decisions)
	}
	var deny map[string]any
	for _, r := range decisions {
		if r["host"] != "web-1" || r["kind"] != "decision" || r["_subject"] != "fsnotifyd.decisions.web-1" {
			t.Fatalf("decision record: %v", r)
		}
		if r["path"] == mnt+"/srv/a.key" {
			deny = r
		}
		if strings.HasPrefix(fmt.Sprint(r["path"]), "/forged") {
			t.Fatalf("a forged report was exported: %v", r)
		}
	}
	if deny == nil {
		t.Fatalf("no deny of a.key among %v", decisions)
	}
	for _, k := range []string{"verdict", "rule", "event", "path", "pid", "exe", "uid", "latency", "latency_ns", "client", "client_pid", "client_uid"} {
		if _, ok := deny[k]; !ok {
			t.Errorf("decision record lacks %q: %v", k, deny)
		}
	}
	if deny["verdict"] != "deny" || deny["pid"] != float64(os.Getpid()) || deny["uid"] != float64(0) || deny["client"] != "fsnotifyd-guard" {
		t.Errorf("decision record: %v", deny)
	}
	if exe, _ := os.Executable(); deny["exe"] != exe {
		t.Errorf("decision exe %v, want %s", deny["exe"], exe)
	}
}

// TestServeExportFlagErrors: bad flags and export lines are refused before anything starts,
// naming the flag, or the file and line.
func TestServeExportFlagErrors(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "export.conf")
	os.WriteFile(conf, []byte("# comment\nexport open /etc/**\nexport frobnicate /etc/**\n"), 0o644)
	rel := filepath.Join(dir, "rel.conf")
	os.WriteFile(rel, []byte("export open etc/**\n"), 0o644)
	daemonConf := filepath.Join(dir, "daemon.conf")
	os.WriteFile(daemonConf, []byte("max_clients 100\nexport\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--export", "http://h:1"}, `--export: NATS URL "http://h:1": scheme "http"`},
		{[]string{"--export", "nats://h:1/bucket"}, "--export: NATS URL \"nats://h:1/bucket\" has a path"},
		{[]string{"--export-config", conf}, "--export-config needs --export"},
		{[]string{"--export", "nats://127.0.0.1:1", "--export-config", conf}, conf + ":3: export: unknown event \"frobnicate\""},
		{[]string{"--export", "nats://127.0.0.1:1", "--export-config", rel}, rel + ":1: export: glob \"etc/**\": want an absolute pattern"},
		{[]string{"--export", "nats://127.0.0.1:1", "--export-config", filepath.Join(dir, "missing")}, "--export-config: open " + filepath.Join(dir, "missing")},
		{[]string{"--export", "nats://127.0.0.1:1", "--nats-creds", filepath.Join(dir, "missing")}, "--export: --nats-creds: open"},
		{[]string{"--host", "web-1"}, "--host is for --export"},
		{[]string{"--export", "nats://127.0.0.1:1", "--host", ""}, ""},
		{[]string{"--config", daemonConf}, daemonConf + ":2: export needs a value"},
	} {
		if c.want == "" {
			continue
		}
		_, stderr, rc := fsn(t, append([]string{"serve", "--socket", filepath.Join(dir, "s.sock")}, c.args...)...)
		if rc == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("serve %v: rc %d, stderr %q; want %q", c.args, rc, stderr, c.want)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--policy-from", "http://h/b/k"}, "--policy-from:"},
		{[]string{"--policy-from", "nats://127.0.0.1:1/b/k", "--policy", conf}, "--policy and --policy-from cannot be used together"},
		{[]string{"--policy-from", "nats://127.0.0.1:1/fsnotifyd-policy/status.web-3"}, `--policy-from: policy key "status.web-3": keys under status. are the hosts' status entries`},
		{[]string{"--policy-from", "nats://127.0.0.1:1/fsnotifyd-policy/>"}, `--policy-from: policy key ">"`},
		{[]string{"--export-decisions"}, "--export-decisions needs --daemon"},
		{[]string{"--host", "web-1"}, "--host is for --policy-from"},
	} {
		_, stderr, rc := fsn(t, append(append([]string{"guard"}, c.args...), dir)...)
		if rc != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("guard %v: rc %d, stderr %q; want %q", c.args, rc, stderr, c.want)
		}
	}
}

// TestGuardStoppedRightAfterADecisionStillReportsIt: a decision is recorded a moment after its
// answer went out, so a guard signalled as soon as the process has its answer must still
// report it before its connection closes (it used to close first: the report failed, and
// TestServeExportEndToEnd missed a decision record under load).
func TestGuardStoppedRightAfterADecisionStillReportsIt(t *testing.T) {
	testenv.RequireRoot(t)
	url := natsURL(t)
	mnt := testenv.Tmpfs(t)
	sh(t, "mkdir -p "+mnt+"/srv && echo s > "+mnt+"/srv/a.key")
	sock := startExportingServe(t, url, "web-1")
	const rounds = 10
	for i := range rounds {
		g := start(t, "guard", "--daemon="+sock, "--deny", "**/*.key", "--export-decisions", mnt+"/srv")
		if _, err := os.ReadFile(mnt + "/srv/a.key"); !errors.Is(err, syscall.EPERM) {
			t.Fatalf("round %d: read of a denied file: %v", i, err)
		}
		if st := g.stop(); st != 0 {
			t.Fatalf("round %d: exit status %d; stderr:\n%s", i, st, g.errText())
		}
		if strings.Contains(g.errText(), "did not reach the daemon") {
			t.Errorf("round %d: %s", i, g.errText())
		}
	}
	// The bound is for loss, not latency: a loaded machine may take seconds to store them.
	decisions := fleetRecordsFor(t, url, true, 30*time.Second, func(got []map[string]any) bool { return len(got) >= rounds })
	if len(decisions) != rounds {
		t.Fatalf("%d decision records, want %d (one deny per guard)", len(decisions), rounds)
	}
}

// TestServeExportMetrics: `serve --export --metrics` serves the export's figures, and they
// follow what happens: the export lines' events and a guard's decision report handed over and
// acknowledged by JetStream (no lag, nothing lost), a notification client's report refused.
func TestServeExportMetrics(t *testing.T) {
	testenv.RequireRoot(t)
	url := natsURL(t)
	mnt := testenv.Tmpfs(t)
	sh(t, "mkdir -p "+mnt+"/etc "+mnt+"/srv && echo s > "+mnt+"/srv/a.key")
	addr := freeTCPAddr(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "export.conf")
	os.WriteFile(conf, []byte("export close_write "+mnt+"/etc/**\n"), 0o644)
	sock := startServeIn(t, dir, "--export", url, "--host", "web-1", "--spool", filepath.Join(dir, "spool"),
		"--export-config", conf, "--metrics", addr)

	const n = 20
	for i := range n {
		os.WriteFile(fmt.Sprintf("%s/etc/f%d", mnt, i), []byte("x"), 0o644)
	}
	g := start(t, "guard", "--daemon="+sock, "--deny", "**/*.key", "--export-decisions", mnt+"/srv")
	if _, err := os.ReadFile(mnt + "/srv/a.key"); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("read of a denied file: %v", err)
	}
	g.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, client.Options{Socket: sock, Name: "hand", Class: engine.ClassNotification})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Report([]byte(`{"verdict":"allow","path":"/forged-by-notification"}`)); err != nil {
		t.Fatal(err)
	}
	cl.Ping(ctx) // the daemon handled the report
	cl.Close()

	m := waitMetrics(t, addr, "every record handed over and acknowledged", func(m map[string]float64) bool {
		return m["fsnotifyd_export_events_total"] >= n && m["fsnotifyd_export_decision_reports_total"] == 1 &&
			m["fsnotifyd_export_records_acked_total"] >= n+1 && m["fsnotifyd_export_unacked_records"] == 0
	})
	if got := m["fsnotifyd_export_events_total"]; got != n {
		t.Errorf("fsnotifyd_export_events_total %v, want %d (one close_write per file)", got, n)
	}
	if got, want := m["fsnotifyd_export_records_appended_total"], m["fsnotifyd_export_events_total"]+1; got != want {
		t.Errorf("fsnotifyd_export_records_appended_total %v, want %v (the events and the report)", got, want)
	}
	for name, want := range map[string]float64{
		"fsnotifyd_export_decision_reports_refused_total":     1,
		"fsnotifyd_export_connected":                          1,
		`fsnotifyd_export_records_lost_total{where="buffer"}`: 0,
		`fsnotifyd_export_records_lost_total{where="spool"}`:  0,
		"fsnotifyd_export_overflows_total":                    0,
	} {
		if got, ok := m[name]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	if _, ok := m["fsnotifyd_export_spool_bytes"]; !ok {
		t.Errorf("/metrics has no fsnotifyd_export_spool_bytes")
	}
}
