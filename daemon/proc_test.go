package daemon

import (
	"os"
	"testing"
)

func TestStatusUID(t *testing.T) {
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
		uid, ok := statusUID([]byte(tc.text))
		if uid != tc.uid || ok != tc.ok {
			t.Errorf("%s: statusUID = %d, %v; want %d, %v", tc.name, uid, ok, tc.uid, tc.ok)
		}
	}
}

func TestProcLookups(t *testing.T) {
	pid := int32(os.Getpid())
	if uid, ok := procUID(pid); !ok || uid != uint32(os.Geteuid()) {
		t.Errorf("procUID(self) = %d, %v; want %d", uid, ok, os.Geteuid())
	}
	b, _ := os.ReadFile("/proc/self/comm")
	if got, want := procComm(pid), string(b[:len(b)-1]); got != want {
		t.Errorf("procComm(self) = %q, want %q", got, want)
	}
	if _, ok := procUID(-1); ok {
		t.Error("procUID(-1) succeeded")
	}
	if got := procComm(0); got != "" {
		t.Errorf("procComm(0) = %q", got)
	}
}
