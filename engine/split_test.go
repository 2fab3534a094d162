package engine

import (
	"slices"
	"testing"
)

func TestSplitMask(t *testing.T) {
	for _, c := range []struct {
		in   Mask
		want []Mask
	}{
		{0, []Mask{0}},
		{Open, []Mask{Open}},
		{Open | OnDir, []Mask{Open | OnDir}},
		{CloseNoWrite | Open, []Mask{Open, CloseNoWrite}},
		{CloseWrite | Modify | Open, []Mask{Open, Modify, CloseWrite}},
		{Access | CloseNoWrite | Open | OnDir, []Mask{Open | OnDir, Access | OnDir, CloseNoWrite | OnDir}},
		{Delete | Attrib, []Mask{Attrib, Delete}},
		// touch: futimens on the open descriptor, then close.
		{Open | Attrib | CloseWrite, []Mask{Open, Attrib, CloseWrite}},
		// a file written and removed: the unlink's link count after the close.
		{Create | Open | Modify | CloseWrite | Attrib | Delete, []Mask{Create, Open, Modify, CloseWrite, Attrib, Delete}},
		{Open | CloseNoWrite | Attrib | DeleteSelf, []Mask{Open, CloseNoWrite, Attrib, DeleteSelf}},
		{Delete | Create, []Mask{Create, Delete}},
		{MovedFrom | Rename | MovedTo, []Mask{MovedTo | Rename, MovedFrom}},
		{QueueOverflow, []Mask{QueueOverflow}},
		{OpenExec | Open, []Mask{Open, OpenExec}},
	} {
		if got := SplitMask(c.in, nil); !slices.Equal(got, c.want) {
			t.Errorf("SplitMask(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	// Every bit of the input is in some part, and nothing else.
	for m := Mask(1); m < 1<<16; m = m*3 + 1 {
		var or Mask
		for _, p := range SplitMask(m, nil) {
			or |= p
		}
		if or != m {
			t.Errorf("SplitMask(%#x): parts OR to %#x", m, or)
		}
	}
}
