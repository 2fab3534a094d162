//go:build linux

package backend

import (
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/fsevent"
)

// lazyPath is a payload that resolves the event's path on demand, and counts how often.
type lazyPath struct {
	path  string
	calls int
}

func (p *lazyPath) Release()     {}
func (p *lazyPath) Path() string { p.calls++; return p.path }

func TestRecord(t *testing.T) {
	now := time.Unix(7, 0)
	if r := Record(engine.Delivery{Mask: engine.QueueOverflow}, true); r != (fsevent.Event{Mask: engine.QueueOverflow}) {
		t.Errorf("overflow: %+v", r)
	}
	ev := &engine.Event{Mask: engine.Create, Inode: engine.ID{Hi: 2049, Lo: 12}, Path: "/d/x", Name: "x",
		Pid: 4, Tid: 5, Comm: "touch", Exe: "/bin/touch", Time: now}
	want := fsevent.Event{Mask: engine.Create | engine.OnDir, Time: now, Pid: 4, Tid: 5, Comm: "touch", Exe: "/bin/touch",
		Path: "/d/x", Name: "x", Dev: 2049, Ino: 12, HasObject: true}
	if r := Record(engine.Delivery{Event: ev, Mask: engine.Create | engine.OnDir}, false); r != want {
		t.Errorf("Record = %+v\nwant %+v", r, want)
	}

	// A permission event's path is resolved by its payload: only when asked to.
	p := &lazyPath{path: "/secret"}
	perm := &engine.Event{Mask: engine.OpenPerm, Payload: p}
	if r := Record(engine.Delivery{Event: perm, Mask: engine.OpenPerm, ID: 3}, false); r.Path != "" || r.PathUnknown || p.calls != 0 {
		t.Errorf("unresolved: %+v, %d resolutions", r, p.calls)
	}
	if r := Record(engine.Delivery{Event: perm, Mask: engine.OpenPerm, ID: 3}, true); r.Path != "/secret" || r.PathUnknown || r.ID != 3 {
		t.Errorf("resolved: %+v", r)
	}
	p.path = ""
	if r := Record(engine.Delivery{Event: perm, Mask: engine.OpenPerm, ID: 3}, true); r.Path != "" || !r.PathUnknown {
		t.Errorf("a path the payload cannot read is unknown: %+v", r)
	}
	// The backend's own permission events are told lazy by their type (resolvesOnDemand).
	pe := &permEvent{fd: -1}
	pe.pathState.Store(pathSettled) // a Path would give "" without reading
	if r := Record(engine.Delivery{Event: &engine.Event{Mask: engine.OpenPerm, Payload: pe}, Mask: engine.OpenPerm}, false); r.Path != "" || r.PathUnknown {
		t.Errorf("a permission event's path was resolved unasked: %+v", r)
	}
	// An event without such a payload and without a path: unknown, whatever resolve says.
	if r := Record(engine.Delivery{Event: &engine.Event{Mask: engine.Open}, Mask: engine.Open}, false); !r.PathUnknown {
		t.Errorf("no path, no resolver: %+v", r)
	}
}
