//go:build linux

package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/fsevent"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// The repro: deep.key, 22 directories of 200 bytes below the guarded directory (a
// path of ~4,460 bytes, longer than the kernel prints), opened by `cat deep.key` from a
// working directory down there. Embedded, through the daemon, as a mount guard and under a
// default-deny policy, the open fails with EPERM and the audit holds exactly one line for
// it, saying its path is unknown and naming its device and inode.
func TestGuardDecidesPathsBeyondPathMax(t *testing.T) {
	for _, tc := range []struct {
		name string
		args func(t *testing.T, dir string) []string
		rule string
	}{
		{"embedded", func(*testing.T, string) []string { return []string{"--deny", "**/*.key"} }, "--deny **/*.key"},
		{"daemon", func(t *testing.T, _ string) []string {
			return []string{"--daemon=" + startServe(t), "--deny", "**/*.key"}
		}, "--deny **/*.key"},
		{"mount", func(*testing.T, string) []string { return []string{"--mount", "--deny", "**/*.key"} }, "--deny **/*.key"},
		{"default deny", func(t *testing.T, _ string) []string {
			rules := filepath.Join(t.TempDir(), "p.rules")
			os.WriteFile(rules, []byte("default deny\nallow /**/*.txt\n"), 0o644)
			return []string{"--policy", rules}
		}, "default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := testenv.Tmpfs(t)
			deep := testenv.DeepTree(t, dir, 22, 200)
			deep.WriteFile(t, "deep.key", "k")
			st := deep.Stat(t, "deep.key")
			audit := filepath.Join(t.TempDir(), "audit.jsonl")
			args := append(append([]string{"guard"}, tc.args(t, dir)...), "--audit", audit, dir)
			p := start(t, args...)
			cat := exec.Command("cat", "deep.key")
			cat.Dir = deep.Dir()
			out, err := cat.CombinedOutput()
			if err == nil || !strings.Contains(string(out), "Operation not permitted") {
				t.Fatalf("cat deep.key (%d-byte path) under guard %v: %v %s", len(deep.Path)+9, args[1:], err, out)
			}
			if st := p.stop(); st != 0 {
				t.Fatalf("guard exit %d; stderr:\n%s", st, p.errText())
			}
			data, _ := os.ReadFile(audit)
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			if len(lines) != 1 {
				t.Fatalf("audit has %d lines, want exactly one:\n%s", len(lines), data)
			}
			var r struct {
				Path        *string `json:"path"`
				PathUnknown bool    `json:"path_unknown"`
				Dev         string  `json:"dev"`
				Ino         uint64  `json:"ino"`
				Verdict     string  `json:"verdict"`
				Rule        string  `json:"rule"`
				Comm        string  `json:"comm"`
				Pid         int     `json:"pid"`
			}
			if err := json.Unmarshal([]byte(lines[0]), &r); err != nil {
				t.Fatalf("%v: %s", err, lines[0])
			}
			if r.Path == nil || *r.Path != "" || !r.PathUnknown || r.Ino != st.Ino || r.Dev != fsevent.DevString(st.Dev) ||
				r.Verdict != "deny" || r.Rule != tc.rule || r.Pid != cat.Process.Pid {
				t.Fatalf("audit line %s; want a deny by %s of an unknown path, ino %d dev %s, pid %d", lines[0], tc.rule, st.Ino, fsevent.DevString(st.Dev), cat.Process.Pid)
			}
		})
	}
}

// watch -r --json and trace --json report an open and a create deeper than PATH_MAX by their
// full paths (the FID group names a file by its directory, whose path is read at any length,
// and its name), and an open deeper than the backend reads paths (sys.MaxLongPath) with what
// is known (path_unknown, dev, ino).
func TestWatchAndTraceReportPathsBeyondPathMax(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"watch", []string{"watch", "-r", "--json", "-e", "open,create"}},
		{"trace", []string{"trace", "--json", "-e", "open,create"}},
		{"watch through the daemon", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := testenv.Tmpfs(t)
			deep := testenv.DeepTree(t, dir, 22, 200)
			deep.WriteFile(t, "deep.txt", "d")
			deeper := testenv.DeepTree(t, dir, 170, 200) // 34,170 bytes: beyond sys.MaxLongPath
			deeper.WriteFile(t, "deeper.txt", "d")
			st := deeper.Stat(t, "deeper.txt")
			args := tc.args
			if args == nil {
				args = []string{"watch", "-r", "--json", "-e", "open,create", "--daemon=" + startServe(t)}
			}
			p := start(t, append(args, dir)...)
			cat := exec.Command("cat", "deeper.txt")
			cat.Dir = deeper.Dir()
			if out, err := cat.CombinedOutput(); err != nil {
				t.Fatalf("cat: %v %s", err, out)
			}
			cat2 := exec.Command("cat", "deep.txt")
			cat2.Dir = deep.Dir()
			if out, err := cat2.CombinedOutput(); err != nil {
				t.Fatalf("cat: %v %s", err, out)
			}
			deep.WriteFile(t, "new.txt", "n")
			type line struct {
				Path        string   `json:"path"`
				Events      []string `json:"events"`
				Pid         int      `json:"pid"`
				PathUnknown bool     `json:"path_unknown"`
				Dev         string   `json:"dev"`
				Ino         uint64   `json:"ino"`
			}
			var sawOpen, sawLongOpen, sawCreate bool
			got := p.collect(20*time.Second, func(ls []string) bool {
				for _, l := range ls {
					var r line
					json.Unmarshal([]byte(l), &r)
					if r.Pid == cat.Process.Pid && r.PathUnknown && r.Path == "" && r.Ino == st.Ino && r.Dev == fsevent.DevString(st.Dev) &&
						len(r.Events) == 1 && r.Events[0] == "OPEN" {
						sawOpen = true
					}
					if r.Pid == cat2.Process.Pid && r.Path == deep.Path+"/deep.txt" && !r.PathUnknown && len(r.Events) == 1 && r.Events[0] == "OPEN" {
						sawLongOpen = true
					}
					if r.Path == deep.Path+"/new.txt" && len(r.Events) == 1 && r.Events[0] == "CREATE" {
						sawCreate = true
					}
				}
				return sawOpen && sawLongOpen && sawCreate
			})
			if !sawOpen || !sawLongOpen || !sawCreate {
				t.Fatalf("%v: open beyond MaxLongPath with path unknown: %v, open and create beyond PATH_MAX by their full paths: %v, %v; got:\n%s",
					args, sawOpen, sawLongOpen, sawCreate, strings.Join(got, "\n"))
			}
		})
	}
}

// --exec gets a file whose path is unknown as /proc/PID/fd/N of the guard, which opens that
// very file: it can scan the content and decide.
func TestGuardExecScansFileWhosePathIsUnknown(t *testing.T) {
	dir := testenv.Tmpfs(t)
	deep := testenv.DeepTree(t, dir, 22, 200)
	deep.WriteFile(t, "bad.txt", "X5O EICAR test")
	deep.WriteFile(t, "good.txt", "clean")
	log := filepath.Join(t.TempDir(), "scans")
	scanner := filepath.Join(t.TempDir(), "scanner")
	os.WriteFile(scanner, []byte("#!/bin/sh\necho \"$1 unknown=$FSNOTIFYD_PATH_UNKNOWN\" >> "+log+"\ngrep -q EICAR \"$1\" && exit 1\nexit 0\n"), 0o755)
	p := start(t, "guard", "--exec", scanner, dir)
	for name, wantDenied := range map[string]bool{"bad.txt": true, "good.txt": false} {
		cat := exec.Command("cat", name)
		cat.Dir = deep.Dir()
		out, err := cat.CombinedOutput()
		if denied := err != nil && strings.Contains(string(out), "Operation not permitted"); denied != wantDenied {
			t.Fatalf("cat %s: %v %s; want denied %v; guard's stderr:\n%s", name, err, out, wantDenied, p.errText())
		}
	}
	p.stop()
	data, _ := os.ReadFile(log)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2 {
		t.Fatalf("scanner ran %d times, want 2:\n%s", len(lines), data)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "/proc/") || !strings.Contains(l, "/fd/") || !strings.HasSuffix(l, " unknown=1") {
			t.Fatalf("scanner got %q, want /proc/PID/fd/N and FSNOTIFYD_PATH_UNKNOWN=1", l)
		}
	}
}
