//go:build linux

package backend

import (
	"os"
	"testing"
)

func TestStatusEUID(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		uid        uint32
		ok         bool
	}{
		{"effective, not real", "Name:\tsu\nUmask:\t0022\nState:\tS\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n", 0, true},
		{"last line without newline", "Name:\tx\nUid:\t5\t7\t7\t7", 7, true},
		{"no Uid line", "Name:\tx\nGid:\t1\t1\t1\t1\n", 0, false},
		{"one field only", "Uid:\t5\n", 0, false},
		{"not a number", "Uid:\t5\tx\t5\t5\n", 0, false},
		{"empty", "", 0, false},
	} {
		uid, ok := statusEUID([]byte(tc.text))
		if uid != tc.uid || ok != tc.ok {
			t.Errorf("%s: statusEUID = %d, %v; want %d, %v", tc.name, uid, ok, tc.uid, tc.ok)
		}
	}
}

func TestProcLookups(t *testing.T) {
	pid := int32(os.Getpid())
	if uid, ok := ProcessEUID(pid); !ok || uid != uint32(os.Geteuid()) {
		t.Errorf("ProcessEUID(self) = %d, %v; want %d", uid, ok, os.Geteuid())
	}
	b, _ := os.ReadFile("/proc/self/comm")
	if got, want := ProcessComm(pid), string(b[:len(b)-1]); got != want {
		t.Errorf("ProcessComm(self) = %q, want %q", got, want)
	}
	if _, ok := ProcessEUID(-1); ok {
		t.Error("ProcessEUID(-1) succeeded")
	}
	if got := ProcessComm(0); got != "" {
		t.Errorf("ProcessComm(0) = %q", got)
	}
	if got := parentPid(pid); got != int32(os.Getppid()) {
		t.Errorf("parentPid(self) = %d, want %d", got, os.Getppid())
	}
	if !Descends(int(pid), os.Getppid()) || Descends(os.Getppid(), int(pid)) {
		t.Error("Descends does not follow parents")
	}
}
