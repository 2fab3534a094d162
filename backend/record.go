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
func Record(d engine.Delivery, resolve bool) (r fsevent.Event) {
	RecordTo(&r, d, resolve)
	return r
}

// RecordTo is Record written into *dst, every field of it: for a caller that keeps the record
// in a larger value (an embedded source's event offered inline), which it then need not copy.
func RecordTo(dst *fsevent.Event, d engine.Delivery, resolve bool) {
	*dst = fsevent.Event{}
	ev := d.Event
	if ev == nil {
		dst.Mask = engine.QueueOverflow
		return
	}
	dst.ID, dst.Mask, dst.Time, dst.Pid, dst.Tid = d.ID, d.Mask, ev.Time, ev.Pid, ev.Tid
	dst.ExeDeleted = ev.ExeDeleted
	dst.Comm, dst.Exe, dst.Path, dst.OldPath, dst.Name, dst.NewName = ev.Comm, ev.Exe, ev.Path, ev.OldPath, ev.Name, ev.NewName
	if dst.Path == "" && (resolve || !resolvesOnDemand(ev.Payload)) {
		dst.Path = ev.GetPath()
		dst.PathUnknown = dst.Path == ""
	}
	if !ev.Inode.IsZero() {
		dst.Dev, dst.HasObject = ev.Inode.Hi, true
		if !ev.InodeStandIn {
			dst.Ino = ev.Inode.Lo // else unknown (0): a stand-in is no inode's number
		}
	}
	if d.Mask&engine.PreAccess != 0 {
		dst.Range = ev.Range
	}
	if d.Mask&engine.FSError != 0 {
		dst.FSErrno, dst.FSErrorCount = ev.FSErrno, ev.FSErrorCount
	}
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
