package fsevent

import (
	"reflect"
	"testing"
)

// The one table of names: every bit once, in bit order, each name found again by MaskByName.
func TestNamesTable(t *testing.T) {
	seen := map[string]bool{}
	var prev Mask
	for _, n := range names {
		if n.bit&(n.bit-1) != 0 || n.bit <= prev {
			t.Errorf("%s: %#x is not one bit above %#x (bit order)", n.name, uint64(n.bit), uint64(prev))
		}
		prev = n.bit
		if seen[n.name] {
			t.Errorf("%s named twice", n.name)
		}
		seen[n.name] = true
		if got, ok := MaskByName(n.name); !ok || got != n.bit {
			t.Errorf("MaskByName(%q) = %v, %v", n.name, got, ok)
		}
		if Name(n.bit) != n.name {
			t.Errorf("Name(%#x) = %q, want %q", uint64(n.bit), Name(n.bit), n.name)
		}
	}
	// Names are ASCII, matched without case: a letter Unicode folds to an ASCII one (the long
	// s, the Kelvin sign) is not taken for it, so a name reads as what it matches.
	for _, bad := range []string{"acceſs", "cloſe_write"} { // long s
		if m, ok := MaskByName(bad); ok {
			t.Errorf("MaskByName(%q) = %v, true; want no name", bad, m)
		}
	}
	if m, ok := MaskByName("oPEN_EXEc"); !ok || Name(m) != "OPEN_EXEC" {
		t.Errorf("MaskByName(oPEN_EXEc) = %v, %v; ASCII case is folded", m, ok)
	}
	for _, tc := range []struct {
		name string
		want Mask
	}{{"close", Close}, {"MOVE", Move}, {"open_exec", OpenExec}, {"Q_OVERFLOW", QueueOverflow}} {
		if got, ok := MaskByName(tc.name); !ok || got != tc.want {
			t.Errorf("MaskByName(%q) = %v, %v; want %v", tc.name, got, ok, tc.want)
		}
	}
	if _, ok := MaskByName("write"); ok {
		t.Error(`MaskByName("write") found a bit`)
	}
	if Name(Open|Close) != "" || Name(0x2000) != "" {
		t.Error("Name of a set of bits that is no group, or of an unknown bit, is not empty")
	}
}

func TestMaskString(t *testing.T) {
	for _, tc := range []struct {
		m    Mask
		want string
	}{
		{0, "0"},
		{Open, "OPEN"},
		{OnDir | Open, "OPEN|ONDIR"},
		{Rename | EventOnChild | Create, "CREATE|EVENT_ON_CHILD|RENAME"},
		{Open | 0x2000 | 0x80000000, "OPEN|0x2000|0x80000000"},
	} {
		if got := tc.m.String(); got != tc.want {
			t.Errorf("%#x.String() = %q, want %q", uint64(tc.m), got, tc.want)
		}
	}
	if got := (OpenPerm | 0x2000).Names(); !reflect.DeepEqual(got, []string{"OPEN_PERM", "0x2000"}) {
		t.Errorf("Names = %q", got)
	}
	if got := Mask(0).Names(); got != nil {
		t.Errorf("Names of 0 = %q", got)
	}
}

func TestAccessNames(t *testing.T) {
	if got := AccessNames(", "); got != "open, access, exec, pre_access" {
		t.Errorf("AccessNames = %q", got)
	}
	for _, tc := range []struct {
		bit  Mask
		name string
	}{{OpenPerm, "open"}, {AccessPerm, "access"}, {OpenExecPerm, "exec"}, {PreAccess, "pre_access"}, {Open, ""}} {
		if got := AccessName(tc.bit); got != tc.name {
			t.Errorf("AccessName(%v) = %q, want %q", tc.bit, got, tc.name)
		}
		if tc.name == "" {
			continue
		}
		if got, ok := MaskByAccess(tc.name); !ok || got != tc.bit {
			t.Errorf("MaskByAccess(%q) = %v, %v", tc.name, got, ok)
		}
	}
	for _, bad := range []string{"", "OPEN", "read", "pre-access"} {
		if _, ok := MaskByAccess(bad); ok {
			t.Errorf("MaskByAccess(%q) found an access", bad)
		}
	}
}
