//go:build linux

package backend

import (
	"slices"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/paths"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// Events misplaced by a directory's move (docs/events.md, "Known limits").
//
// The kernel names an event's directory by its handle; the reader turns the handle into the
// directory's path and ancestry when it reads the event. A directory moved after the event
// but before its read is found at its new place: the event is dispatched there, and a
// subtree that held the directory when the event happened does not get it (a recursive
// watch on fanotify lost the file written in w/T by `mkdir w/T; echo x >w/T/f; mv w/T out/`,
// 4-7 times in 300, with no overflow). The move's own events are queued after the event, so
// the reader cannot tell at the event's read; it can at the move's: a directory resolved
// since the moved directory's previous move was read, at or below the move's new path,
// was resolved after the move happened — and the events read with it, queued before the
// move, happened before it, elsewhere. Those events cannot be taken back; the groups whose
// subtrees held the directory before the move (the MOVED_FROM's ancestry) and not after it
// get an overflow, in order, before the move's MOVED_TO: events were lost. (Those that
// hold it on both sides got them, with the new path: docs/events.md.) A directory resolved
// before the move has its old path, and does not count.

// movedAwayRing is how many directories resolved last are looked at: misplacements among
// more events than that between a move and its read are not seen.
const movedAwayRing = 1024

// movedAway is the FID reader's record for it (per filesystem; that goroutine only).
type movedAway struct {
	ring [movedAwayRing]*dirInfo // the directories resolved last
	next int
	// moves counts the directory moves read; movedAt, by directory, the count just after its
	// last move was read (bounded: forgotten wholesale past 4096 directories).
	moves   uint64
	movedAt map[engine.ID]uint64
	// from is the last directory MOVED_FROM read: the moved directory's handle key and the
	// ancestry of the place it left (the directory it left first).
	fromKey   string
	fromChain []engine.ID
}

// resolved notes a directory just resolved from the kernel.
func (m *movedAway) resolved(d *dirInfo) {
	d.moves = m.moves
	m.ring[m.next] = d
	m.next = (m.next + 1) % movedAwayRing
}

// movedFrom notes a directory's MOVED_FROM: key is its handle's, chain the ancestry of its
// entry (the directory it left, and those above).
func (m *movedAway) movedFrom(key string, chain []engine.ID) {
	m.fromKey, m.fromChain = key, chain
}

// movedTo checks a directory's MOVED_TO (moved, its ID; newPath, where it went; key, its
// handle's) and notes the move. It returns whether events were misplaced, and the ancestry
// of the place it left (nil if unknown).
func (m *movedAway) movedTo(moved engine.ID, key, newPath string) (misplaced bool, left []engine.ID) {
	since := m.movedAt[moved]
	for _, d := range m.ring {
		if d == nil || d.moves < since || d.path == "" {
			continue
		}
		if d.id != moved && !slices.Contains(d.ancestors, moved) {
			continue
		}
		if paths.Within(d.path, newPath) {
			misplaced = true
			break
		}
	}
	if m.fromKey == key {
		left = m.fromChain
	}
	m.fromKey, m.fromChain = "", nil
	m.moves++
	if m.movedAt == nil || len(m.movedAt) >= 4096 {
		m.movedAt = map[engine.ID]uint64{}
	}
	m.movedAt[moved] = m.moves
	return misplaced, left
}

// checkMovedAway runs on the FID reader for a directory's MOVED_FROM or MOVED_TO (kev, ev
// built from it, d its directory) before it is dispatched: see movedAway.
func (b *Backend) checkMovedAway(fv *fsView, kev *sys.FanotifyEvent, ev *engine.Event, d *dirInfo) {
	if !kev.Records.Has(sys.FAN_EVENT_INFO_TYPE_FID) || !fv.needAncestry() {
		return
	}
	m := &fv.state.moved
	key := handleKey(kev.FID.Handle)
	if ev.Mask&engine.MovedFrom != 0 {
		m.movedFrom(key, d.childChain())
	}
	if ev.Mask&engine.MovedTo == 0 || ev.Path == "" {
		return
	}
	moved, _ := b.objectID(fv, &kev.FID, ev.Path, nil)
	misplaced, left := m.movedTo(moved, key, ev.Path)
	if !misplaced {
		return
	}
	// The misplaced events went to the subtrees above the new place: a subtree above the
	// old place and not the new one lost them (a rename inside a watch loses nothing: its
	// events came with the new name).
	now := d.childChain()
	told := false
	for _, eg := range b.eng.Groups() {
		for _, mk := range eg.Marks() {
			if id := mk.Object.ID; mk.Object.Kind == engine.KindSubtree && (left == nil || slices.Contains(left, id)) &&
				!slices.Contains(now, id) {
				eg.Overflow()
				told = true
				break
			}
		}
	}
	if told {
		b.stats.MovedAwayOverflows.Add(1)
	}
}

// checkMergedMove runs after a directory's MOVED_TO and MOVED_FROM on one entry, merged by
// the kernel (both unread: `mv out/T w/T; ...; mv w/T out/T`, repeated), were dispatched.
// The merged event sits where the first of them was queued, so the events that happened
// while the directory was at that entry — in it, and below — are read after both moves,
// and found wherever it is now: the moves' own check (movedTo, at a MOVED_TO read after
// them) never comes. Each group with a subtree above the entry and not above where the
// directory is now gets an overflow, in order, before those events (they happened before
// the read: a rescan then sees what they did).
func (b *Backend) checkMergedMove(fv *fsView, kev *sys.FanotifyEvent) {
	fs := fv.state
	entry, ok := b.resolveDir(fs, &kev.DFID, true)
	if !ok {
		return
	}
	var now []engine.ID
	if d, ok := b.resolveDir(fs, &kev.FID, true); ok && !d.placeUnknown {
		now = d.childChain()
	}
	left := entry.childChain()
	told := false
	for _, eg := range b.eng.Groups() {
		for _, mk := range eg.Marks() {
			if id := mk.Object.ID; mk.Object.Kind == engine.KindSubtree && slices.Contains(left, id) && !slices.Contains(now, id) {
				eg.Overflow()
				told = true
				break
			}
		}
	}
	if told {
		b.stats.MovedAwayOverflows.Add(1)
	}
}
