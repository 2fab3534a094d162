//go:build linux

package main

import (
	"os"
	"runtime"
	"testing"
)

// keepTwoPs raises one P to two, leaves more alone, and leaves any count alone when
// GOMAXPROCS is set in the environment.
func TestKeepTwoPs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	tests := []struct {
		env       string // "" unset
		had, want int
	}{
		{"", 1, 2},
		{"", 2, 2},
		{"", 3, 3},
		{"1", 1, 1},
		{"4", 1, 1},
	}
	for _, tc := range tests {
		if tc.env == "" {
			t.Setenv("GOMAXPROCS", "") // restored when the test ends
			os.Unsetenv("GOMAXPROCS")
		} else {
			t.Setenv("GOMAXPROCS", tc.env)
		}
		runtime.GOMAXPROCS(tc.had)
		keepTwoPs()
		if got := runtime.GOMAXPROCS(0); got != tc.want {
			t.Errorf("GOMAXPROCS env %q, %d Ps: %d after keepTwoPs, want %d", tc.env, tc.had, got, tc.want)
		}
	}
}
