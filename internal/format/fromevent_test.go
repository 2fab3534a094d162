package format

import (
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/fsevent"
)

// FromEvent makes the record watch and trace print: a known path as it is; an unknown one —
// or one not the listener's to know — as unknown, with the name and object; an overflow with
// its mask alone; a missing time as now. JSON then prints what the record's event would.
func TestFromEvent(t *testing.T) {
	when := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		ev   fsevent.Event
		want Record
		json string
	}{
		{"known path", fsevent.Event{Time: when, Mask: engine.CloseWrite, Path: "/srv/a", OldPath: "/srv/b", Pid: 42, Comm: "cp",
			Exe: "/bin/cp", Name: "a", Dev: 8, Ino: 9, HasObject: true},
			Record{Time: when, Path: "/srv/a", OldPath: "/srv/b", Mask: engine.CloseWrite, Pid: 42, Comm: "cp", Exe: "/bin/cp"},
			`{"time":"2024-05-01T12:00:00Z","path":"/srv/a","events":["CLOSE_WRITE"],"isdir":false,"pid":42,"comm":"cp","exe":"/bin/cp","old_path":"/srv/b"}`},
		{"unknown path", fsevent.Event{Time: when, Mask: engine.Create | engine.OnDir, PathUnknown: true, Name: "d", Dev: 2049, Ino: 12, HasObject: true},
			Record{Time: when, Mask: engine.Create | engine.OnDir, IsDir: true, PathUnknown: true, Name: "d", Dev: 2049, Ino: 12, HasObject: true},
			`{"time":"2024-05-01T12:00:00Z","events":["CREATE"],"isdir":true,"path_unknown":true,"dev":"8:1","ino":12,"name":"d"}`},
		{"a path not ours to know", fsevent.Event{Time: when, Mask: engine.Modify},
			Record{Time: when, Mask: engine.Modify, PathUnknown: true},
			`{"time":"2024-05-01T12:00:00Z","events":["MODIFY"],"isdir":false,"path_unknown":true}`},
		{"overflow", fsevent.Event{Time: when, Mask: engine.QueueOverflow},
			Record{Time: when, Mask: engine.QueueOverflow},
			`{"time":"2024-05-01T12:00:00Z","events":["Q_OVERFLOW"],"isdir":false}`},
	} {
		r := FromEvent(&tc.ev)
		if r != tc.want {
			t.Errorf("%s: FromEvent = %+v\nwant %+v", tc.name, r, tc.want)
		}
		if got := string(JSON{}.Append(nil, &r)); got != tc.json {
			t.Errorf("%s: JSON %s\nwant %s", tc.name, got, tc.json)
		}
	}
	before := time.Now()
	if r := FromEvent(&fsevent.Event{Mask: engine.Modify, Path: "/x"}); r.Time.Before(before) || r.Time.After(time.Now()) {
		t.Errorf("an event without a time: record time %v, want now", r.Time)
	}
}
