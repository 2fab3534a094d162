package format

import (
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
)

// ParseJSON is the inverse of JSON.Append, non-UTF-8 names included.
func TestParseJSONRoundTrip(t *testing.T) {
	at := time.Date(2024, 5, 1, 12, 34, 56, 789, time.FixedZone("", 7200))
	for _, r := range []Record{
		{Time: at, Path: "/srv/new", OldPath: "/srv/old", Mask: engine.Rename, Pid: 7, Comm: "mv"},
		{Path: "/a\xff\n", Mask: engine.Create | engine.OnDir, IsDir: true, Comm: "x\x80"},
		{Mask: engine.QueueOverflow},
		{Path: "/p", Mask: engine.CloseWrite | engine.Modify | 1<<40},
	} {
		b := JSON{}.Append(nil, &r)
		got, err := ParseJSON(append(b[:len(b)-1:len(b)-1], `,"host":"h","seq":3}`...))
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		want := r
		want.IsDir = r.isDir()
		want.Mask &^= flagBits
		if !got.Time.Equal(want.Time) || got.Path != want.Path || got.OldPath != want.OldPath || got.Mask != want.Mask ||
			got.IsDir != want.IsDir || got.Pid != want.Pid || got.Comm != want.Comm {
			t.Errorf("%s:\n got %+v\nwant %+v", b, got, want)
		}
	}
	for _, bad := range []string{`{"events":["NOPE"]}`, `{"time":"yesterday","events":[]}`, `{"path_raw":[300],"events":[]}`, `[`} {
		if _, err := ParseJSON([]byte(bad)); err == nil {
			t.Errorf("ParseJSON(%s) accepted", bad)
		}
	}
}

func FuzzParseJSON(f *testing.F) {
	f.Add([]byte(`{"time":"2024-05-01T12:00:00Z","path":"/a","events":["OPEN"],"isdir":false,"pid":3}`))
	f.Add([]byte(`{"path_raw":[47,255],"events":["0x2000"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseJSON(b)
		if err != nil {
			return
		}
		// What parses prints, and prints back to the same record.
		out := JSON{}.Append(nil, &r)
		r2, err := ParseJSON(out)
		if err != nil || r2.Path != r.Path || r2.Mask != r.Mask&^flagBits || r2.Comm != r.Comm || r2.OldPath != r.OldPath {
			t.Fatalf("%s -> %s -> %+v %v", b, out, r2, err)
		}
	})
}
