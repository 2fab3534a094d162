//go:build linux

package notify

import "github.com/fsnotifyd/fsnotifyd/engine"

// One operation per event, as fsnotify (inotify) delivers them.
//
// A kernel queue merges an unread event into a later one on the same object (fanotify
// merges any unread one, inotify only an exact repeat of the last), so one kernel event
// may carry an open, a read and a close. The Watcher splits such an event into one event
// per operation, in the order the operations happen for one object — engine.SplitOrder:
// created, opened, read or written, closed, attributes, moved away or removed. The engine
// group under a Watcher merges only exact repeats of its newest event (engine.Options
// MergeLast), as inotify does, so distinct operations are never merged there.
// docs/events.md has the whole rule.

// splitOrder is engine.SplitOrder in operations.
var splitOrder = func() []Op {
	var out []Op
	seen := Op(0)
	for _, m := range engine.SplitOrder {
		if op := opsOf(m); op != 0 && !seen.Has(op) {
			seen |= op
			out = append(out, op)
		}
	}
	// Operations with no engine bit of their own come last (none today: keeps splitEvent
	// total if one is added).
	for _, n := range opNames {
		if !seen.Has(n.op) {
			out = append(out, n.op)
		}
	}
	return out
}()

// splitEvent appends ev to dst as one event per operation, in splitOrder. OldName stays
// with the Create (a rename's arrival), the only operation it describes.
func splitEvent(ev Event, dst []Event) []Event {
	if ev.Op&(ev.Op-1) == 0 { // zero or one operation
		return append(dst, ev)
	}
	for _, op := range splitOrder {
		if !ev.Op.Has(op) {
			continue
		}
		e := ev
		e.Op = op
		if op != Create {
			e.OldName = ""
		}
		dst = append(dst, e)
	}
	return dst
}
