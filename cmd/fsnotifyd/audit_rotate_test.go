//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// auditPathsIn counts the records of each path in the audit files (each line must be whole
// JSON; a NUL fails the test).
func auditPathsIn(t *testing.T, files ...string) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.IndexByte(data, 0); i >= 0 {
			t.Fatalf("%s has a NUL at offset %d of %d (written at an old offset, not appended)", f, i, len(data))
		}
		for _, r := range auditLines(t, f) {
			if p, ok := r["path"].(string); ok {
				n[p]++
			}
		}
	}
	return n
}

// TestGuardAuditRotation: the audit log as logrotate rotates it.
//
//   - "rename, then SIGHUP" (logrotate's default, with `postrotate kill -HUP`): the guard
//     opens the name again on SIGHUP, so records reach the new audit.log; each of the 300
//     opens made while the file is renamed and the signal sent has exactly one record, in one
//     of the two files. Before, the guard wrote into the renamed file for ever: no record
//     reached the new name.
//   - "copytruncate": the file is copied and cut to 0 under the guard; its next records start
//     at offset 0 (O_APPEND), with no hole of NULs.
//   - "refused at the reopen": after the rename, in a sticky directory anyone may write,
//     another user puts a link at the name (to a root file); the SIGHUP's reopen refuses it
//     as the start does (docs/security.md, --audit), says so on stderr, and records keep going
//     to the file already open; the link's target is not written.
func TestGuardAuditRotation(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	const n = 300
	for i := range n {
		os.WriteFile(fmt.Sprintf("%s/f%03d", dir, i), []byte("x\n"), 0o644)
	}
	os.WriteFile(dir+"/last", []byte("x\n"), 0o644)
	open := func(name string) {
		f, err := os.Open(name)
		if err != nil {
			t.Error(err)
			return
		}
		f.Close()
	}

	t.Run("rename, then SIGHUP", func(t *testing.T) {
		logs := testenv.Tmpfs(t)
		audit := logs + "/audit.log"
		p := start(t, "guard", "--events", "open", "--audit", audit, dir)
		for i := range n {
			switch i {
			case n / 3:
				if err := os.Rename(audit, audit+".1"); err != nil {
					t.Fatal(err)
				}
			case n / 2:
				p.cmd.Process.Signal(syscall.SIGHUP)
			}
			open(fmt.Sprintf("%s/f%03d", dir, i))
			time.Sleep(time.Millisecond)
		}
		for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			open(dir + "/last")
			if data, _ := os.ReadFile(audit); bytes.Contains(data, []byte(strconvQuote(dir+"/last"))) {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("no record reached the new %s within 10s of the SIGHUP (still written to the renamed file); stderr:\n%s", audit, p.errText())
			}
		}
		if code := p.stop(); code != 0 {
			t.Errorf("exit status %d", code)
		}
		got := auditPathsIn(t, audit+".1", audit)
		for i := range n {
			if name := fmt.Sprintf("%s/f%03d", dir, i); got[name] != 1 {
				t.Errorf("%s: %d records in %s.1 and %s, want exactly 1", name, got[name], audit, audit)
			}
		}
		if old := auditPathsIn(t, audit+".1"); old[fmt.Sprintf("%s/f%03d", dir, n/3-1)] != 1 {
			t.Errorf("the records before the rename are not in the renamed file")
		}
	})

	t.Run("copytruncate", func(t *testing.T) {
		logs := testenv.Tmpfs(t)
		audit := logs + "/audit.log"
		p := start(t, "guard", "--events", "open", "--audit", audit, dir)
		for i := range 100 {
			open(fmt.Sprintf("%s/f%03d", dir, i))
		}
		waitAudit(t, audit, fmt.Sprintf("%s/f%03d", dir, 99))
		sh(t, "cp "+audit+" "+audit+".1 && truncate -s 0 "+audit)
		open(dir + "/last")
		waitAudit(t, audit, dir+"/last")
		if code := p.stop(); code != 0 {
			t.Errorf("exit status %d", code)
		}
		data, _ := os.ReadFile(audit)
		if len(data) == 0 || data[0] != '{' {
			t.Fatalf("after copytruncate the audit file begins %q, want a record at offset 0", data[:min(len(data), 32)])
		}
		if got := auditPathsIn(t, audit); got[dir+"/last"] != 1 {
			t.Errorf("record of %s/last: %d, want 1", dir, got[dir+"/last"])
		}
	})

	t.Run("refused at the reopen", func(t *testing.T) {
		base := testenv.PublicTmpfs(t)
		shared, private := filepath.Join(base, "shared"), filepath.Join(base, "private")
		secret := filepath.Join(private, "secret")
		sh(t, fmt.Sprintf("mkdir -p %[1]s %[2]s && chmod 1777 %[1]s && echo keep >%[3]s", shared, private, secret))
		audit := shared + "/audit.log"
		p := start(t, "guard", "--events", "open", "--audit", audit, dir)
		open(dir + "/f000")
		waitAudit(t, audit, dir+"/f000")
		if err := os.Rename(audit, audit+".1"); err != nil {
			t.Fatal(err)
		}
		// nobody's link where the audit log was.
		sh(t, fmt.Sprintf("ln -s %s %s && chown -h 65534:65534 %s", secret, audit, audit))
		p.cmd.Process.Signal(syscall.SIGHUP)
		for end := time.Now().Add(10 * time.Second); !strings.Contains(p.errText(), "owned by uid 65534"); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("the SIGHUP's reopen did not say it refused nobody's link; stderr:\n%s", p.errText())
			}
		}
		open(dir + "/f001")
		waitAudit(t, audit+".1", dir+"/f001") // still the file already open
		time.Sleep(2500 * time.Millisecond)   // polls (every 1s) see it moved, and are refused too
		if n := strings.Count(p.errText(), "owned by uid 65534"); n > 2 {
			t.Errorf("the refusal said %d times, want once for the SIGHUP and at most once for the polls:\n%s", n, p.errText())
		}
		if code := p.stop(); code != 0 {
			t.Errorf("exit status %d", code)
		}
		if data, _ := os.ReadFile(secret); string(data) != "keep\n" {
			t.Errorf("the link's target was written: %q", data)
		}
	})
}

// TestGuardAuditFloodDropsSaidWhileRunning: nobody floods opens (20,000 `: <file` of a
// shell) while the audit log's reader (a FIFO) is not reading, so the writer's queue fills
// and records are dropped. Verdicts do not wait; once the reader reads again, the guard says
// on stderr, while it runs, how many records were dropped — the operator learns of the hole
// in the log when it happens, not weeks later at the guard's exit. Before, the count was said
// only at exit.
func TestGuardAuditFloodDropsSaidWhileRunning(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.PublicTmpfs(t)
	os.WriteFile(dir+"/a", []byte("x\n"), 0o644)
	fifo := filepath.Join(t.TempDir(), "audit.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0) // not reading, yet
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := start(t, "guard", "--events", "open", "--audit", fifo, dir)
	t0 := time.Now()
	if out, err := testenv.Sh(&syscall.Credential{Uid: 65534, Gid: 65534}, "i=0; while [ $i -lt 20000 ]; do : <"+dir+"/a; i=$((i+1)); done"); err != nil {
		t.Fatalf("nobody's flood: %v %s", err, out)
	}
	if d := time.Since(t0); d > 60*time.Second {
		t.Errorf("20,000 opens took %v with the audit reader stopped", d)
	}
	// Said at the first drop, though the writer is stuck in its write to the FIFO.
	for end := time.Now().Add(5 * time.Second); !strings.Contains(p.errText(), "records are dropped (counted)"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the audit queue overflowed and the running guard did not say that records are dropped; stderr:\n%s", p.errText())
		}
	}
	go func() { // the reader reads again
		buf := make([]byte, 1<<16)
		for {
			if _, err := r.Read(buf); err != nil && !errors.Is(err, syscall.EAGAIN) {
				return
			}
		}
	}()
	for end := time.Now().Add(10 * time.Second); !strings.Contains(p.errText(), "audit records were dropped"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("10s after a flood that overflowed the audit queue, the running guard has not said that records were dropped; stderr:\n%s", p.errText())
		}
	}
	var n, total int
	for _, l := range strings.Split(p.errText(), "\n") {
		if i := strings.Index(l, fifo+": "); i >= 0 && strings.Contains(l, "audit records were dropped") {
			fmt.Sscanf(l[i+len(fifo)+2:], "%d audit records were dropped (the audit file could not keep up; %d since the start)", &n, &total)
		}
	}
	if n < 20000-8192-1000 || total != n {
		t.Errorf("said %d records dropped (%d since the start), want at least %d of the 20,000 (the queue holds 8,192, the pipe some hundreds); stderr:\n%s", n, total, 20000-8192-1000, p.errText())
	}
	if code := p.stop(); code != 0 {
		t.Errorf("exit status %d", code)
	}
}

// TestGuardAuditRenamedWithoutSignal: logrotate without postrotate (or an operator's mv):
// the guard sees, at its next poll (--reload-interval), that its audit file is no longer at
// its name, and opens the name again, saying so on stderr; each record is in one of the two
// files, once. Before, it wrote into the renamed file until a SIGHUP, or for ever.
func TestGuardAuditRenamedWithoutSignal(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	os.WriteFile(dir+"/a", []byte("x\n"), 0o644)
	os.WriteFile(dir+"/b", []byte("x\n"), 0o644)
	logs := testenv.Tmpfs(t)
	audit := logs + "/audit.log"
	p := start(t, "guard", "--events", "open", "--audit", audit, "--reload-interval", "200ms", dir)
	f, _ := os.Open(dir + "/a")
	f.Close()
	waitAudit(t, audit, dir+"/a")
	if err := os.Rename(audit, audit+".1"); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		f, _ := os.Open(dir + "/b")
		f.Close()
		if data, _ := os.ReadFile(audit); bytes.Contains(data, []byte(strconvQuote(dir+"/b"))) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("5s after the audit file was renamed (polled every 200ms), no record reached a new %s; stderr:\n%s", audit, p.errText())
		}
	}
	if !strings.Contains(p.errText(), "opened again") {
		t.Errorf("stderr does not say the audit file was opened again:\n%s", p.errText())
	}
	if code := p.stop(); code != 0 {
		t.Errorf("exit status %d", code)
	}
	if got := auditPathsIn(t, audit+".1", audit); got[dir+"/a"] != 1 {
		t.Errorf("%s/a: %d records, want 1", dir, got[dir+"/a"])
	}
}
