//go:build linux

package notify

import (
	"strings"
	"testing"
)

// FuzzParseAccessKinds: the guard's list of accesses (guard --events, ask=) parses into kinds
// whose String parses back into them; an empty or unknown name is an error, not nothing.
func FuzzParseAccessKinds(f *testing.F) {
	for _, s := range []string{"open,exec", "open", "read,pre-access", "access,pre_access", "", ",", "open,",
		" exec ", "OPEN", "none", "open_perm", "exec,exec", "open\x00", "all"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseAccessKinds(s)
		if err != nil {
			return
		}
		if k == 0 || k.Mask() == 0 {
			t.Fatalf("ParseAccessKinds(%q) = %v: no kind", s, k)
		}
		for _, f := range strings.Split(s, ",") {
			if strings.TrimSpace(f) == "" {
				t.Fatalf("ParseAccessKinds(%q) took an empty name", s)
			}
		}
		if back, err := ParseAccessKinds(k.String()); err != nil || back != k {
			t.Fatalf("ParseAccessKinds(%q) = %v; its String %q gives %v, %v", s, k, k.String(), back, err)
		}
	})
}
