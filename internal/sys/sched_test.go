package sys

import (
	"runtime"
	"testing"
	"time"
)

// TestSetSlice: a thread's slice reads back as set, and 0 restores the default; a kernel
// without custom slices for SCHED_OTHER (before 6.12) is skipped, with what it read.
func TestSetSlice(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	def, err := Slice(0)
	if err != nil {
		t.Fatal(err)
	}
	defer SetSlice(0, 0)
	if err := SetSlice(0, 300*time.Microsecond); err != nil {
		t.Fatal(err)
	}
	got, err := Slice(0)
	if err != nil {
		t.Fatal(err)
	}
	if got != 300*time.Microsecond {
		t.Skipf("the kernel keeps no custom slice for SCHED_OTHER (set 300µs, read %v, default %v)", got, def)
	}
	if err := SetSlice(0, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := Slice(0); err != nil || got == 300*time.Microsecond || got <= 0 {
		t.Fatalf("after SetSlice(0, 0): slice %v, %v; want the default back (%v before)", got, err, def)
	}
}
