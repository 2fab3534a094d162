package format

import (
	"slices"
	"strings"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/fsevent"
)

// FuzzParseEvents: -e's list (and the daemon config's export lines) parses into a non-empty
// mask of the watch events only, every name in it one of them (case aside), and the names
// of that mask parse back into it; anything else is an error, never a mask with other bits.
func FuzzParseEvents(f *testing.F) {
	for _, s := range []string{
		"open,exec", "create,close_write,move", "CLOSE", " open , modify ", "open,", ",open", "",
		" ", "open_perm", "access_perm", "ondir", "isdir", "q_overflow", "open\x00", "0x1", "1",
		"open,open", "move_self,delete_self", "rename,open_exec", "acceſs", "OPEN|MODIFY",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		m, err := ParseEvents(list)
		if err != nil {
			if m != 0 {
				t.Fatalf("ParseEvents(%q) = %v with error %v", list, m, err)
			}
			return
		}
		var all engine.Mask
		for _, w := range watchEvents {
			all |= w
		}
		if m == 0 || m&^all != 0 || m&engine.PermissionEvents != 0 {
			t.Fatalf("ParseEvents(%q) = %v: not watch events", list, m)
		}
		var names []string
		for _, name := range strings.Split(list, ",") {
			name = strings.TrimSpace(name)
			if !slices.ContainsFunc(watchEvents, func(w engine.Mask) bool { return strings.EqualFold(fsevent.Name(w), name) }) {
				t.Fatalf("ParseEvents(%q) took %q, no watch event's name", list, name)
			}
		}
		for _, w := range watchEvents {
			if m&w == w {
				names = append(names, strings.ToLower(fsevent.Name(w)))
			}
		}
		if back, err := ParseEvents(strings.Join(names, ",")); err != nil || back != m {
			t.Fatalf("ParseEvents(%q) = %v; its names %q give %v, %v", list, m, names, back, err)
		}
	})
}
