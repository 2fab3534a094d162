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
