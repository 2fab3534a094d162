//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/fleet"
	"github.com/fsnotifyd/fsnotifyd/internal/testnats"
	"github.com/nats-io/nats.go/jetstream"
)

// natsURL starts an in-process nats-server with JetStream for the test.
func natsURL(t *testing.T) string { return testnats.URL(t) }

func TestPolicyPushAndStatusCommands(t *testing.T) {
	url := natsURL(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.rules")
	os.WriteFile(good, []byte("deny open /srv/**/*.key\n"), 0o644)
	bad := filepath.Join(dir, "bad.rules")
	os.WriteFile(bad, []byte("deny open /srv\nallow sometimes /x\n"), 0o644)

	if _, stderr, rc := fsn(t, "policy", "push", bad, "--nats", url); rc != 1 || !strings.Contains(stderr, "bad.rules:2:") || !strings.Contains(stderr, "nothing was pushed") {
		t.Errorf("invalid file: rc %d, %s", rc, stderr)
	}
	if out, stderr, rc := fsn(t, "policy", "push", good, "--nats", url); rc != 0 || !strings.Contains(out, "revision 1 pushed") {
		t.Fatalf("push: rc %d, %s %s", rc, out, stderr)
	}
	if out, _, rc := fsn(t, "policy", "push", good, "--nats", url); rc != 0 || !strings.Contains(out, "unchanged") {
		t.Errorf("same push: rc %d, %s", rc, out)
	}
	os.WriteFile(good, []byte("deny open /srv/**\n"), 0o644)
	if _, stderr, rc := fsn(t, "policy", "push", good, "--nats", url, "--if-revision", "7"); rc != 1 || !strings.Contains(stderr, "push again") {
		t.Errorf("stale --if-revision: rc %d, %s", rc, stderr)
	}
	if out, _, rc := fsn(t, "policy", "push", good, "--nats", url, "--if-revision", "1"); rc != 0 || !strings.Contains(out, "revision 2 pushed (replacing revision 1)") {
		t.Errorf("push on revision 1: rc %d, %s", rc, out)
	}

	// Two hosts follow it and say so.
	for _, h := range []string{"web-1", "db.example.com"} {
		f, err := fleet.StartPolicyFollower(fleet.FollowerConfig{Conn: fleet.ConnOptions{URLs: url}, Host: h, StateDir: t.TempDir(),
			Apply: func(fleet.PolicyRevision) error { return nil }})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, stderr, rc := fsn(t, "policy", "status", "--nats", url)
		if rc == 0 && strings.Contains(out, "revision 2, pushed") && strings.Count(out, "  2  ") == 2 &&
			strings.Contains(out, "web-1") && strings.Contains(out, "db.example.com") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status: rc %d\n%s%s", rc, out, stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, stderr, rc := fsn(t, "policy", "status", "--nats", "nats://127.0.0.1:1", "--nats-timeout", "1s"); rc != 1 || !strings.Contains(stderr, "cannot reach NATS at nats://127.0.0.1:1") {
		t.Errorf("unreachable: rc %d, %s", rc, stderr)
	}
	if _, _, rc := fsn(t, "policy", "frobnicate"); rc != 2 {
		t.Errorf("unknown subcommand: rc %d", rc)
	}
}

func TestFleetTailCommand(t *testing.T) {
	url := natsURL(t)
	e, err := fleet.NewExporter(fleet.ExporterConfig{Conn: fleet.ConnOptions{URLs: url}, Host: "web-1", SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	at := "2024-05-01T12:34:56.789012Z"
	for i := 0; i < 10; i++ {
		e.Append(fleet.Event, fmt.Appendf(nil, `{"time":%q,"path":"/etc/f%d","events":["CLOSE_WRITE"],"isdir":false,"pid":42,"comm":"cp"}`, at, i))
	}
	e.Append(fleet.Decision, fmt.Appendf(nil, `{"time":%q,"path":"/srv/a.key","pid":7,"comm":"cat","event":"open","verdict":"deny","rule":"p:1","latency":"35µs","latency_ns":35000}`, at))
	e.Overflow()
	e.Append(fleet.Event, fmt.Appendf(nil, `{"time":%q,"path":"/tmp/x","events":["CREATE"],"isdir":false}`, at))
	deadline := time.Now().Add(10 * time.Second)
	for e.Stats().AckedThrough < 13 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.Close(ctx)

	local := func(s string) string {
		tm, _ := time.Parse(time.RFC3339Nano, s)
		return tm.Local().Format("15:04:05.000000")
	}(at)
	out, stderr, rc := fsn(t, "fleet", "tail", "--nats", url, "--seq", "1", "--timeout", "3s")
	if rc != 0 {
		t.Fatalf("rc %d: %s", rc, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 12 || lines[0] != "web-1 "+local+" cp(42): CW  /etc/f0" || !strings.HasPrefix(lines[10], "web-1 *** LOST: overflow") || lines[11] != "web-1 "+local+" ?(?): +   /tmp/x" {
		t.Errorf("tail:\n%s", out)
	}
	out, _, _ = fsn(t, "fleet", "tail", "--nats", url, "--seq", "1", "--decisions", "-n", "2", "--timeout", "3s")
	if !strings.Contains(out, "web-1 "+local+" cat(7): DENY open /srv/a.key rule=p:1 latency=35µs\n") || !strings.Contains(out, "LOST: overflow") {
		t.Errorf("decisions:\n%s", out)
	}
	out, _, _ = fsn(t, "fleet", "tail", "--nats", url, "--seq", "1", "--path", "/etc/f[12]", "--json", "--timeout", "2s")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 3 || !strings.Contains(lines[0], `"path":"/etc/f1"`) || !strings.Contains(lines[0], `"stream_seq":2}`) {
		t.Errorf("--path --json (two events and the gap):\n%s", out)
	}
	// A durable reader stops and goes on where it stopped.
	var all []string
	for i := 0; i < 3; i++ {
		out, stderr, rc := fsn(t, "fleet", "tail", "--nats", url, "--seq", "1", "--durable", "reader", "-n", "4", "--timeout", "3s")
		if rc != 0 {
			t.Fatalf("durable: %d %s", rc, stderr)
		}
		all = append(all, strings.Split(strings.TrimSpace(out), "\n")...)
	}
	if len(all) != 12 || all[0] != lines[0] || all[4] != lines[4] || all[11] != lines[11] {
		t.Errorf("three durable runs of 4:\n%s", strings.Join(all, "\n"))
	}
	if _, stderr, rc := fsn(t, "fleet", "tail", "--since", "1h", "--seq", "3"); rc != 2 || !strings.Contains(stderr, "cannot be used together") {
		t.Errorf("rc %d %s", rc, stderr)
	}
}

// fleet init makes the stream and the policy bucket as the admin (hosts need no permission to
// create a stream), with the stream's limits from its flags; run again it finds them right;
// a stream made wrong (one that republishes, where a host's message would be stored as the
// policy) is an error naming the setting.
func TestFleetInitCommand(t *testing.T) {
	url := natsURL(t)
	if out, stderr, rc := fsn(t, "fleet", "init", "--nats", url, "--stream-max-age", "720h"); rc != 0 || !strings.Contains(out, "FSNOTIFYD") {
		t.Fatalf("fleet init: rc %d, %s %s", rc, out, stderr)
	}
	js := fleetJS(t, url)
	ctx := context.Background()
	s, err := js.Stream(ctx, fleet.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.CachedInfo().Config; c.MaxAge != 720*time.Hour || c.AllowRollup {
		t.Errorf("the stream: max_age %v, allow_rollup %v", c.MaxAge, c.AllowRollup)
	}
	if allows, err := fleet.BucketAllowsRollups(ctx, js, fleet.DefaultBucket); err != nil || allows {
		t.Errorf("the bucket: allows rollups %v, %v", allows, err)
	}
	if out, stderr, rc := fsn(t, "fleet", "init", "--nats", url); rc != 0 {
		t.Errorf("fleet init again: rc %d, %s %s", rc, out, stderr)
	}
	cfg := s.CachedInfo().Config
	cfg.RePublish = &jetstream.RePublish{Source: ">", Destination: "elsewhere.>"}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, stderr, rc := fsn(t, "fleet", "init", "--nats", url); rc != 1 || !strings.Contains(stderr, "republishes") {
		t.Errorf("fleet init on a stream that republishes: rc %d, %s", rc, stderr)
	}
}

// The stream's own limits drop records a durable reader has not read (it was stopped): a
// stream of max_msgs 10, discard old, made by the admin. fleet tail says which stream
// sequences it missed and how many, in text and JSON, before the records it goes on with;
// before, it went on from what the stream held as if nothing were missing.
func TestFleetTailSaysWhatTheStreamDropped(t *testing.T) {
	url := natsURL(t)
	js := fleetJS(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, stderr, rc := fsn(t, "fleet", "init", "--nats", url); rc != 0 {
		t.Fatalf("fleet init: rc %d, %s %s", rc, out, stderr)
	}
	s, err := js.Stream(ctx, fleet.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.MaxMsgs = 10
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	e, err := fleet.NewExporter(fleet.ExporterConfig{Conn: fleet.ConnOptions{URLs: url}, Host: "web-1", SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	write := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			e.Append(fleet.Event, fmt.Appendf(nil, `{"time":"2024-05-01T12:34:56Z","path":"/etc/f%d","events":["CREATE"],"isdir":false}`, i))
		}
		if !waitFor(10*time.Second, func() bool { return e.Stats().AckedThrough == uint64(to) }) {
			t.Fatalf("records acked through %d, want %d", e.Stats().AckedThrough, to)
		}
	}
	write(0, 5)
	for _, durable := range []string{"t", "j"} {
		if out, stderr, rc := fsn(t, "fleet", "tail", "--nats", url, "--seq", "1", "--durable", durable, "-n", "5", "--timeout", "5s"); rc != 0 || strings.Count(out, "\n") != 5 {
			t.Fatalf("%s: the first run: rc %d, %s%s", durable, rc, out, stderr)
		}
	}
	write(5, 100) // stream sequences 6-100: the stream keeps 91-100
	for _, tc := range []struct {
		name, durable string
		args          []string
		want          string
	}{
		{"text", "t", nil, "*** LOST stream seq 6-90 (85 records): stream FSNOTIFYD dropped them before this reader got there (its max_msgs, max_bytes or max_age, or a purge); records of any host and kind ***"},
		{"json", "j", []string{"--json"}, `{"kind":"gap","reason":"stream_dropped","stream":"FSNOTIFYD","stream_first":6,"stream_last":90,"count":85}`},
	} {
		args := append([]string{"fleet", "tail", "--nats", url, "--durable", tc.durable, "-n", "10", "--timeout", "5s"}, tc.args...)
		out, stderr, rc := fsn(t, args...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if rc != 0 || len(lines) != 11 || lines[0] != tc.want || !strings.Contains(lines[1], "/etc/f90") || !strings.Contains(lines[10], "/etc/f99") {
			t.Errorf("%s: the run after the stream dropped 85 unread records: rc %d, want first line\n%s\ngot:\n%s%s", tc.name, rc, tc.want, out, stderr)
		}
	}
}
