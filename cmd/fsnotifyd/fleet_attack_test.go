//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/fleet"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// A compromised host may publish only on its own subjects (docs/fleet.md, "Security"), but it
// writes what it likes in them: records that say they are another host's, with that host's
// next seqs. fleet tail takes a record's host from its subject (what the server's permissions
// vouch for), shows none of them as the other host's, and does not let them stand in for the
// other host's own records as "second copies" of their (host, seq).
func TestFleetTailRecordsForgedByAnotherHost(t *testing.T) {
	url := natsURL(t)
	js := fleetJS(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fleet.EnsureStream(ctx, js, fleet.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	at := "2024-05-01T12:34:56.789012Z"
	// web-1, on its own subjects: web-2's seqs 1-3 and a gap record, each with host web-2, and
	// one of its own records that sets the host twice (the second, differently cased, wins in
	// a decoder that folds case, as Go's does).
	forged := []struct{ subject, data string }{
		{fleet.Subject(fleet.Event, "web-1"), `{"host":"web-2","boot_id":"b","seq":1,"kind":"event","time":"` + at + `","path":"/forged/1","events":["OPEN"],"isdir":false}`},
		{fleet.Subject(fleet.Event, "web-1"), `{"host":"web-2","boot_id":"b","seq":2,"kind":"event","time":"` + at + `","path":"/forged/2","events":["OPEN"],"isdir":false}`},
		{fleet.Subject(fleet.Event, "web-1"), `{"host":"web-2","boot_id":"b","seq":3,"kind":"event","time":"` + at + `","path":"/forged/3","events":["OPEN"],"isdir":false}`},
		{fleet.Subject(fleet.Gap, "web-1"), `{"host":"web-2","boot_id":"b","seq":99,"kind":"gap","time":"` + at + `","reason":"overflow"}`},
		{fleet.Subject(fleet.Event, "web-1"), `{"host":"web-1","boot_id":"b","seq":7,"kind":"event","time":"` + at + `","path":"/forged/4","events":["OPEN"],"isdir":false,"HOST":"web-2"}`},
	}
	for _, f := range forged {
		if _, err := js.Publish(ctx, f.subject, []byte(f.data)); err != nil {
			t.Fatal(err)
		}
	}
	e, err := fleet.NewExporter(fleet.ExporterConfig{Conn: fleet.ConnOptions{URLs: url}, Host: "web-2", SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		e.Append(fleet.Event, fmt.Appendf(nil, `{"time":%q,"path":"/etc/real%d","events":["CLOSE_WRITE"],"isdir":false,"pid":42,"comm":"cp"}`, at, i))
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.Stats().AckedThrough < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	e.Close(ctx)

	for _, args := range [][]string{{"--json"}, {}} {
		out, stderr, rc := fsn(t, append([]string{"fleet", "tail", "--nats", url, "--seq", "1", "--timeout", "2s"}, args...)...)
		if rc != 0 {
			t.Fatalf("%v: rc %d: %s", args, rc, stderr)
		}
		var real int
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if strings.Contains(line, "/forged") || strings.Contains(line, "web-2 *** LOST") || strings.Contains(line, `"kind":"gap"`) {
				t.Errorf("%v: a forged record shown: %s", args, line)
			}
			if strings.Contains(line, "/etc/real") {
				if len(args) > 0 {
					var r map[string]any
					if err := json.Unmarshal([]byte(line), &r); err != nil || r["host"] != "web-2" {
						t.Errorf("%v: %s: %v", args, line, err)
					}
				} else if !strings.HasPrefix(line, "web-2 ") {
					t.Errorf("%v: %s", args, line)
				}
				real++
			}
		}
		if real != 3 {
			t.Errorf("%v: %d of web-2's 3 records shown:\n%s", args, real, out)
		}
		if n := strings.Count(stderr, "published on web-1's subject") + strings.Count(stderr, `sets "host" twice`); n != len(forged) {
			t.Errorf("%v: %d of %d forged records reported:\n%s", args, n, len(forged), stderr)
		}
	}
}

// A local user chooses file names: NATS subject tokens ('.', '*', '>'), a subject of another
// host, a newline, a JSON fragment that sets "host", U+2028, bytes that are not UTF-8. The
// names go into records' paths only, JSON-escaped (or path_raw): every record is on this
// host's subject, with this host's name, one per file, with the exact name; fleet tail prints
// one line per record.
func TestServeExportHostileNames(t *testing.T) {
	testenv.RequireRoot(t)
	url := natsURL(t)
	mnt := testenv.Tmpfs(t)
	dir := mnt + "/etc"
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	testenv.OpenToAll(t, dir+"/x")
	startExportingServe(t, url, "web-1", "export close_write "+mnt+"/etc/**")
	names := []string{"a.b", "*", ">", "fsnotifyd.events.web-2", "x\ny", `q","host":"web-2","seq":1,"k":"`,
		"\u2028", "\xff\xfe", "a b", "HOST", "-", "...", `\`, "%", "$JS.API.STREAM.PURGE.FSNOTIFYD"}
	cmd := exec.Command("sh", append([]string{"-c", `d=$1; shift; for n; do echo x > "$d/$n" || exit 1; done`, "sh", dir}, names...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: testenv.Nobody}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nobody creating the files: %v: %s", err, out)
	}
	recs := fleetRecords(t, url, false, func(got []map[string]any) bool { return len(got) >= len(names) })
	seen := map[string]int{}
	for _, r := range recs {
		if r["host"] != "web-1" || r["_subject"] != "fsnotifyd.events.web-1" || r["kind"] != "event" {
			t.Errorf("record %v", r)
		}
		p, _ := r["path"].(string)
		if raw, ok := r["path_raw"].([]any); ok {
			b := make([]byte, len(raw))
			for i, v := range raw {
				b[i] = byte(v.(float64))
			}
			p = string(b)
		}
		seen[strings.TrimPrefix(p, dir+"/")]++
	}
	for _, n := range names {
		if seen[n] != 1 {
			t.Errorf("%q: %d records, want 1 (records: %v)", n, seen[n], recs)
		}
	}
	if len(recs) != len(names) {
		t.Errorf("%d records for %d files", len(recs), len(names))
	}
	out, stderr, rc := fsn(t, "fleet", "tail", "--nats", url, "--seq", "1", "--timeout", "2s")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if rc != 0 || len(lines) != len(names) || stderr != "" {
		t.Errorf("fleet tail: rc %d, %d lines for %d records:\n%s\n%s", rc, len(lines), len(names), out, stderr)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "web-1 ") {
			t.Errorf("fleet tail line %q", l)
		}
	}
}

// A compromised host writes its own status entry (status.<its token>), but what it writes
// there is its own: an entry that says it is another host's must not show as that host's
// line in policy status — it would show web-2 enforcing the current revision while web-2 is
// behind (and in --json, a reader keyed by host would take the forged line for web-2's).
func TestPolicyStatusEntryForgedByAnotherHost(t *testing.T) {
	url := natsURL(t)
	js := fleetJS(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := fleet.OpenBucket(ctx, js, fleet.DefaultBucket, true)
	if err != nil {
		t.Fatal(err)
	}
	var cur uint64
	for _, p := range []string{"deny open /a/**\n", "deny open /b/**\n"} {
		r, err := fleet.Push(ctx, kv, fleet.DefaultKey, []byte(p), 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		cur = r.Revision
	}
	now := time.Now()
	put := func(token string, st fleet.PolicyStatus) {
		b, _ := json.Marshal(st)
		if _, err := kv.Put(ctx, fleet.StatusPrefix+token, b); err != nil {
			t.Fatal(err)
		}
	}
	// web-2, honest, behind; web-3, compromised, says it is web-2 and up to date.
	put("web-2", fleet.PolicyStatus{Host: "web-2", Key: fleet.DefaultKey, Revision: cur - 1, Source: "nats", UpdatedAt: now, AppliedAt: now})
	put("web-3", fleet.PolicyStatus{Host: "web-2", Key: fleet.DefaultKey, Revision: cur, Source: "nats", UpdatedAt: now, AppliedAt: now})

	got := policyStatuses(t, url)
	if s, ok := got["web-2"]; !ok || s.Revision != cur-1 {
		t.Errorf("policy status --json: web-2's line says revision %d (%v), want %d (behind): %v", s.Revision, ok, cur-1, got)
	}
	out, stderr, rc := fsn(t, "policy", "status", "--nats", url)
	if rc != 0 {
		t.Fatalf("rc %d: %s", rc, stderr)
	}
	var web2 []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "web-2 ") {
			web2 = append(web2, l)
		}
	}
	if len(web2) != 1 || !strings.Contains(web2[0], "(behind)") {
		t.Errorf("policy status: web-2's lines %q, want one, behind:\n%s", web2, out)
	}
	if !strings.Contains(out, "web-3") {
		t.Errorf("policy status does not show web-3's entry (refused) at all:\n%s", out)
	}
}

// A host whose spool starts over (reinstalled, or its spool removed as the error about a
// damaged seq file says to) numbers its records from 1 again. They are new records, not
// second copies of the old run's seqs 1, 2, ...: fleet tail shows them all.
func TestFleetTailHostWithANewSpool(t *testing.T) {
	url := natsURL(t)
	at := "2024-05-01T12:34:56.789012Z"
	export := func(n int, prefix string) {
		e, err := fleet.NewExporter(fleet.ExporterConfig{Conn: fleet.ConnOptions{URLs: url}, Host: "web-1", SpoolDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			e.Append(fleet.Event, fmt.Appendf(nil, `{"time":%q,"path":"/%s/%d","events":["CLOSE_WRITE"],"isdir":false}`, at, prefix, i))
		}
		deadline := time.Now().Add(10 * time.Second)
		for e.Stats().AckedThrough < uint64(n) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Close(ctx)
	}
	export(20, "old")
	export(5, "new")
	out, stderr, rc := fsn(t, "fleet", "tail", "--nats", url, "--seq", "1", "--timeout", "2s")
	if rc != 0 {
		t.Fatalf("rc %d: %s", rc, stderr)
	}
	if o, n := strings.Count(out, " /old/"), strings.Count(out, " /new/"); o != 20 || n != 5 {
		t.Errorf("%d of 20 old records, %d of 5 new ones:\n%s", o, n, out)
	}
}

// TestFleetTailDecisionCommCannotForgeItsPid: a process on a host names itself
// "x(1): W /etc/sh" (prctl, 15 bytes); fleet tail's text line of its decision keeps its own
// pid and shows the name as a name. appendCommPid cut the line at its first "):", which was
// the name's: "web-1 x(1): DENY open /srv/a", pid 4242 gone.
func TestFleetTailDecisionCommCannotForgeItsPid(t *testing.T) {
	data := `{"host":"web-1","boot_id":"b","seq":1,"kind":"decision","path":"/srv/a","pid":4242,"comm":"x(1): W /etc/sh","event":"open","verdict":"deny"}`
	r := &fleet.Received{StreamSeq: 1, Subject: "fsnotifyd.events.web-1", Data: []byte(data)}
	h, err := fleet.CheckHeader(r.Subject, []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	line, ok := tailLine(nil, r, &h, false, nil)
	want := `web-1 x\x281\x29: W /etc/sh(4242): DENY open /srv/a` + "\n"
	if !ok || string(line) != want {
		t.Errorf("fleet tail printed %q, want %q", line, want)
	}
}
