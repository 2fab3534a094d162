//go:build linux

package daemon

import (
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
)

// The engine-to-wire conversions (once proto's, now the daemon's).
func TestEngineConversions(t *testing.T) {
	h := &proto.Hello{Name: "n", Class: engine.ClassContent, QueueLimit: 5, Deadline: time.Second,
		DeadlineVerdict: engine.Deny, CloseVerdict: engine.Deny, QueueFullVerdict: engine.Deny}
	if o := groupOptions(h); o.Name != "n" || o.Class != engine.ClassContent || o.QueueLimit != 5 || o.Deadline != time.Second ||
		o.DeadlineVerdict != engine.Deny || o.CloseVerdict != engine.Deny || o.QueueFullVerdict != engine.Deny {
		t.Errorf("Options = %+v", o)
	}
	am := &proto.AddMark{Mask: engine.Open, Ignore: engine.Modify, Flags: engine.IgnoreSurviveModify}
	if s := markSpec(am); s != (engine.MarkSpec{Mask: engine.Open, Ignore: engine.Modify, Flags: engine.IgnoreSurviveModify}) {
		t.Errorf("Spec = %+v", s)
	}
	r := &proto.Respond{EventID: 1, Verdict: engine.Deny, Errno: syscall.EIO}
	if got := response(r); got.Verdict != engine.Deny || got.Errno != syscall.EIO || got.Cache {
		t.Errorf("Response = %+v", got)
	}
	if wireEvent(engine.Delivery{Mask: engine.QueueOverflow}, true) != nil {
		t.Error("wireEvent of an overflow")
	}
	src := &engine.Event{Mask: engine.PreAccess, Path: "/p", OldPath: "/o", Name: "n", NewName: "m", Pid: 1, Tid: 2,
		Range: engine.Range{Offset: 1, Count: 2}, FSErrno: 5, FSErrorCount: 6, Time: time.Unix(5, 0),
		Comm: "cat", Exe: "/bin/cat"}
	ev := wireEvent(engine.Delivery{Event: src, Mask: engine.PreAccess, ID: 9}, true)
	want := &proto.Event{ID: 9, Mask: engine.PreAccess, Path: "/p", OldPath: "/o", Name: "n", NewName: "m", Pid: 1, Tid: 2,
		Range: engine.Range{Offset: 1, Count: 2}, Time: time.Unix(5, 0)}
	if !reflect.DeepEqual(ev, want) {
		t.Errorf("wireEvent = %+v (comm and exe go only where asked for)", ev)
	}
	if _, _, err := proto.Encode(ev); err != nil {
		t.Error(err)
	}
	ev = wireEvent(engine.Delivery{Event: src, Mask: engine.FSError}, true)
	if ev.FSErrno != 5 || ev.FSErrorCount != 6 || ev.Range != (engine.Range{}) {
		t.Errorf("wireEvent of FS_ERROR = %+v", ev)
	}
}

// lazyPath is a payload whose path is read on demand, as the backend's permission events.
type lazyPath struct{ calls int }

func (p *lazyPath) Path() string { p.calls++; return "/lazy" }
func (p *lazyPath) Release()     {}

// TestWireEventNoPaths: for a client that asked for no paths (Hello.NoPaths), a permission
// event's path is not read at all (no readlink and statx), and goes empty without
// PATH_UNKNOWN; for the others it is read once and sent.
func TestWireEventNoPaths(t *testing.T) {
	p := &lazyPath{}
	src := &engine.Event{Mask: engine.OpenPerm, Payload: p, Inode: engine.ID{Hi: 1, Lo: 2}}
	ev := wireEvent(engine.Delivery{Event: src, Mask: engine.OpenPerm, ID: 3}, false)
	if ev.Path != "" || ev.PathUnknown || p.calls != 0 {
		t.Fatalf("no paths: path %q, unknown %v, resolved %d times; want no path, not unknown, never resolved", ev.Path, ev.PathUnknown, p.calls)
	}
	if !ev.HasObject || ev.Dev != 1 || ev.Ino != 2 || ev.ID != 3 {
		t.Fatalf("no paths: the rest of the event is lost: %+v", ev)
	}
	ev = wireEvent(engine.Delivery{Event: src, Mask: engine.OpenPerm, ID: 3}, true)
	if ev.Path != "/lazy" || ev.PathUnknown || p.calls != 1 {
		t.Fatalf("with paths: path %q, unknown %v, resolved %d times", ev.Path, ev.PathUnknown, p.calls)
	}
}
