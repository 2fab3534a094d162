//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/fleet"
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
