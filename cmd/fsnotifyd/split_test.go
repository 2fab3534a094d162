//go:build linux

package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/format"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

func TestWriteSplit(t *testing.T) {
	out, err := format.Compile("%w %,e %f", "")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	r := &format.Record{Watched: "/d/", Name: "f", Mask: engine.CloseNoWrite | engine.Access | engine.Open}
	if _, n, err := writeSplit(&b, out, r, nil, 0, nil); err != nil || n != 3 {
		t.Fatalf("wrote %d lines, err %v", n, err)
	}
	if want := "/d/ OPEN f\n/d/ ACCESS f\n/d/ CLOSE_NOWRITE,CLOSE f\n"; b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	if r.Mask != engine.CloseNoWrite|engine.Access|engine.Open {
		t.Errorf("record's mask changed to %v", r.Mask)
	}
	b.Reset()
	r = &format.Record{Watched: "/d/", Name: "sub", Mask: engine.Attrib | engine.OnDir}
	writeSplit(&b, out, r, nil, 0, nil)
	if want := "/d/ ATTRIB,ISDIR sub\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
	// -n: at most max lines.
	b.Reset()
	r = &format.Record{Watched: "/d/", Name: "f", Mask: engine.CloseWrite | engine.Modify}
	if _, n, _ := writeSplit(&b, out, r, nil, 1, nil); n != 1 || b.String() != "/d/ MODIFY f\n" {
		t.Errorf("max 1: %d lines %q", n, b.String())
	}
}

// watch prints one operation per line, in order, where the kernel merged them: cat of a
// file (open, read, close a few microseconds apart, usually one kernel event).
func TestWatchOneOperationPerLine(t *testing.T) {
	dir := testenv.Tmpfs(t)
	sh(t, "echo data > "+dir+"/f")
	p := start(t, "watch", "-e", "open,access,close_nowrite", "--format", "%,e %f", dir)
	for i := 0; i < 3; i++ {
		sh(t, "cat "+dir+"/f > /dev/null")
	}
	var want []string
	for i := 0; i < 3; i++ {
		want = append(want, "OPEN f", "ACCESS f", "CLOSE_NOWRITE,CLOSE f")
	}
	got := p.collect(10*time.Second, func(l []string) bool { return len(l) >= len(want) })
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if st := p.stop(); st != 0 {
		t.Fatalf("exit status %d", st)
	}
}

// TestDisplayerSplit: %w and %f of an event path are given in the form the watched PATH was
// written in (inotifywait's), and with a PATH given absolute (and clean) the line costs no
// allocation: the event's own path is %w%f already (before, one string per line was built
// again). A PATH written otherwise ("./d/", "d//", "/") is still printed as written.
func TestDisplayerSplit(t *testing.T) {
	for _, tc := range []struct {
		given, abs, path string
		isRoot           bool
		watched, name    string
		allocs           float64
	}{
		{"/srv/d", "/srv/d", "/srv/d/sub/f", false, "/srv/d/sub/", "f", 0},
		{"/srv/d/", "/srv/d", "/srv/d/sub/f", false, "/srv/d/sub/", "f", 0},
		{"/srv/d", "/srv/d", "/srv/d/sub", true, "/srv/d/sub", "", 0},
		{"/srv/d", "/srv/d", "/srv/d", true, "/srv/d", "", 0},
		{"/", "/", "/etc/passwd", false, "/etc/", "passwd", 0},
		{"./d/", "/home/u/d", "/home/u/d/sub/f", false, "./d/sub/", "f", 1},
		{"d", "/home/u/d", "/home/u/d/f", false, "d/", "f", 1},
		{"d//", "/home/u/d", "/home/u/d/f", false, "d//", "f", 1},
		{"/srv/d", "/srv/d", "/elsewhere/f", false, "/elsewhere/", "f", 0},
	} {
		disp := &displayer{roots: []watchSpec{{path: tc.given, abs: tc.abs}}}
		w, n := disp.split(tc.path, tc.isRoot)
		if w != tc.watched || n != tc.name {
			t.Errorf("PATH %q: %s gives %q %q, want %q %q", tc.given, tc.path, w, n, tc.watched, tc.name)
		}
		if a := testing.AllocsPerRun(100, func() { w, n = disp.split(tc.path, tc.isRoot) }); a > tc.allocs {
			t.Errorf("PATH %q: %s: %.0f allocations, want at most %.0f", tc.given, tc.path, a, tc.allocs)
		}
	}
}
