//go:build linux

package backend

import (
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/fsevent"
)

// Record returns the record (fsevent.Event) of a delivery of this backend's events, the one
// conversion every consumer shares (the embedded sources, and the daemon before it trims what a
// client may see): its id, mask, time, process (pid, tid, and the comm and exe the reader
// read), paths and names, the object the event is reported on (the backend's inode IDs are
// {device, inode number}), and the byte range or filesystem error where the mask has
// PRE_ACCESS or FS_ERROR.
//
// A permission event's path is resolved on demand, by its payload: with resolve, Record
// resolves it; without, it leaves Path "" and PathUnknown false, for a consumer that reads it
// only if it needs it (engine.Event.GetPath). An overflow delivery's record has the mask
// QueueOverflow and nothing else.
func Record(d engine.Delivery, resolve bool) fsevent.Event {
	ev := d.Event
	if ev == nil {
		return fsevent.Event{Mask: engine.QueueOverflow}
	}
	r := fsevent.Event{ID: d.ID, Mask: d.Mask, Time: ev.Time, Pid: ev.Pid, Tid: ev.Tid, Comm: ev.Comm,
		Exe: ev.Exe, Path: ev.Path, OldPath: ev.OldPath, Name: ev.Name, NewName: ev.NewName}
	if r.Path == "" && (resolve || !resolvesOnDemand(ev.Payload)) {
		r.Path = ev.GetPath()
		r.PathUnknown = r.Path == ""
	}
	if !ev.Inode.IsZero() {
		r.Dev, r.Ino, r.HasObject = ev.Inode.Hi, ev.Inode.Lo, true
	}
	if d.Mask&engine.PreAccess != 0 {
		r.Range = ev.Range
	}
	if d.Mask&engine.FSError != 0 {
		r.FSErrno, r.FSErrorCount = ev.FSErrno, ev.FSErrorCount
	}
	return r
}

// resolvesOnDemand reports whether payload resolves its path on demand (engine.PathResolver). A
// permission event's (the embedded guard's every event) is told by its type alone, without
// the interface assertion's cache lookup.
func resolvesOnDemand(payload any) bool {
	if _, ok := payload.(*permEvent); ok {
		return true
	}
	_, ok := payload.(engine.PathResolver)
	return ok
}

var _ engine.PathResolver = (*permEvent)(nil)
