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
	if wireEvent(engine.Delivery{Mask: engine.QueueOverflow}) != nil {
		t.Error("wireEvent of an overflow")
	}
	src := &engine.Event{Mask: engine.PreAccess, Path: "/p", OldPath: "/o", Name: "n", NewName: "m", Pid: 1, Tid: 2,
		Range: engine.Range{Offset: 1, Count: 2}, FSErrno: 5, FSErrorCount: 6, Time: time.Unix(5, 0),
		Comm: "cat", Exe: "/bin/cat"}
	ev := wireEvent(engine.Delivery{Event: src, Mask: engine.PreAccess, ID: 9})
	want := &proto.Event{ID: 9, Mask: engine.PreAccess, Path: "/p", OldPath: "/o", Name: "n", NewName: "m", Pid: 1, Tid: 2,
		Range: engine.Range{Offset: 1, Count: 2}, Time: time.Unix(5, 0)}
	if !reflect.DeepEqual(ev, want) {
		t.Errorf("wireEvent = %+v (comm and exe go only where asked for)", ev)
	}
	if _, _, err := proto.Encode(ev); err != nil {
		t.Error(err)
	}
	ev = wireEvent(engine.Delivery{Event: src, Mask: engine.FSError})
	if ev.FSErrno != 5 || ev.FSErrorCount != 6 || ev.Range != (engine.Range{}) {
		t.Errorf("wireEvent of FS_ERROR = %+v", ev)
	}
}
