//go:build linux

package notify

import (
	"slices"
	"testing"
)

func TestSplitEvent(t *testing.T) {
	for _, c := range []struct {
		in   Event
		want []Event
	}{
		{Event{Name: "f", Op: Write}, []Event{{Name: "f", Op: Write}}},
		{Event{Op: Overflow}, []Event{{Op: Overflow}}},
		{Event{Name: "f", Op: Open | CloseRead}, []Event{{Name: "f", Op: Open}, {Name: "f", Op: CloseRead}}},
		{Event{Name: "f", Op: CloseRead | Read | Open, Pid: 7, IsDir: true},
			[]Event{{Name: "f", Op: Open, Pid: 7, IsDir: true}, {Name: "f", Op: Read, Pid: 7, IsDir: true},
				{Name: "f", Op: CloseRead, Pid: 7, IsDir: true}}},
		{Event{Name: "f", Op: CloseWrite | Write | Open}, []Event{{Name: "f", Op: Open}, {Name: "f", Op: Write}, {Name: "f", Op: CloseWrite}}},
		{Event{Name: "f", Op: Remove | Chmod}, []Event{{Name: "f", Op: Chmod}, {Name: "f", Op: Remove}}},
		{Event{Name: "f", Op: Remove | Create}, []Event{{Name: "f", Op: Create}, {Name: "f", Op: Remove}}},
		{Event{Name: "g", Op: Create | Write, OldName: "f"}, []Event{{Name: "g", Op: Create, OldName: "f"}, {Name: "g", Op: Write}}},
		{Event{Name: "x", Op: Exec | Open}, []Event{{Name: "x", Op: Open}, {Name: "x", Op: Exec}}},
	} {
		if got := splitEvent(c.in, nil); !slices.Equal(got, c.want) {
			t.Errorf("splitEvent(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	// Every operation is in the order once.
	var all Op
	for _, op := range splitOrder {
		if all.Has(op) {
			t.Errorf("%v twice in splitOrder", op)
		}
		all |= op
	}
	for _, n := range opNames {
		if !all.Has(n.op) {
			t.Errorf("%v missing from splitOrder", n.op)
		}
	}
}
