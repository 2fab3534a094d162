//go:build linux

package backend

import (
	"reflect"
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

// junk sets every field of *v (a struct) to something not zero.
func junk(v reflect.Value) {
	for i := range v.NumField() {
		f := v.Field(i)
		if !f.CanSet() {
			continue
		}
		switch f.Kind() {
		case reflect.Bool:
			f.SetBool(true)
		case reflect.String:
			f.SetString("junk")
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			f.SetInt(99)
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f.SetUint(99)
		case reflect.Struct:
			if f.Type() == reflect.TypeOf(time.Time{}) {
				f.Set(reflect.ValueOf(time.Unix(99, 0)))
			} else {
				junk(f)
			}
		}
	}
}

// TestRecordToOverwritesEverything: RecordTo writes every field of its destination, so that
// nothing of what it held before (the inline path's record of an earlier event) is left: a
// destination full of junk gets Record's record, for each kind of delivery.
func TestRecordToOverwritesEverything(t *testing.T) {
	now := time.Unix(7, 0)
	for _, d := range []engine.Delivery{
		{Mask: engine.QueueOverflow},
		{Event: &engine.Event{Mask: engine.Create, Inode: engine.ID{Hi: 1, Lo: 2}, Path: "/d/x", Name: "x", Pid: 4, Time: now}, Mask: engine.Create},
		{Event: &engine.Event{Mask: engine.OpenPerm, Payload: &lazyPath{path: "/p"}}, Mask: engine.OpenPerm, ID: 3},
		{Event: &engine.Event{Mask: engine.PreAccess, Payload: &lazyPath{}, Range: engine.Range{Offset: 1, Count: 2}}, Mask: engine.PreAccess, ID: 4},
		{Event: &engine.Event{Mask: engine.FSError, FSErrno: 5, FSErrorCount: 6}, Mask: engine.FSError},
	} {
		var dst fsevent.Event
		junk(reflect.ValueOf(&dst).Elem())
		RecordTo(&dst, d, false)
		if want := Record(d, false); dst != want {
			t.Errorf("%v: RecordTo over junk = %+v\nwant %+v", d.Mask, dst, want)
		}
	}
}
