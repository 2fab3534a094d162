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
