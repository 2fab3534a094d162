//go:build linux

package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// usageCase is a command line that must be refused as a usage error (exit 2, one line of
// stderr naming want, before any watch is set up).
type usageCase struct {
	args []string
	want []string // each must be in the message
}

func checkUsageErrors(t *testing.T, cases []usageCase) {
	t.Helper()
	for _, tt := range cases {
		// A command line accepted by mistake would watch until killed.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		out, err := exec.CommandContext(ctx, bin, tt.args...).CombinedOutput()
		cancel()
		msg := strings.TrimSpace(string(out))
		if code := exitStatus(err); code != exitUsage {
			t.Errorf("fsnotifyd %q: exit %d, want %d (usage); output %q", tt.args, code, exitUsage, msg)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(msg, w) {
				t.Errorf("fsnotifyd %q: %q does not say %q", tt.args, msg, w)
			}
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("fsnotifyd %q: more than one line: %q", tt.args, msg)
		}
	}
}

// TestEmptyEventListIsAUsageError: an event list given but empty (-e "", as a shell variable that
// expanded to nothing) is refused as "-e ," is, for watch and trace (one parser) and guard's
// --events; it used to mean every event (watch, trace) or the default (guard).
func TestEmptyEventListIsAUsageError(t *testing.T) {
	dir := t.TempDir()
	var cases []usageCase
	for _, cmd := range []string{"watch", "trace"} {
		for _, flag := range []string{"-e", "--event", "--events"} {
			for _, list := range []string{"", " ", ","} {
				cases = append(cases, usageCase{[]string{cmd, flag, list, dir}, []string{"fsnotifyd " + cmd + ": -e: empty event", "create"}})
			}
		}
	}
	for _, flag := range []string{"-e", "--events"} {
		cases = append(cases, usageCase{[]string{"guard", flag, "", dir}, []string{"fsnotifyd guard: --events: empty list", "open, access, exec"}})
		cases = append(cases, usageCase{[]string{"guard", flag, " ", dir}, []string{"fsnotifyd guard: --events: empty list"}})
	}
	checkUsageErrors(t, cases)
}
