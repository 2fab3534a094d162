//go:build linux

package main

import (
	"bytes"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/format"
)

func TestWriteSplit(t *testing.T) {
	out, err := format.Compile("%w %,e %f", "")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	r := &format.Record{Watched: "/d/", Name: "f", Mask: engine.CloseNoWrite | engine.Access | engine.Open}
	if _, err := writeSplit(&b, out, r, nil); err != nil {
		t.Fatal(err)
	}
	if want := "/d/ OPEN f\n/d/ ACCESS f\n/d/ CLOSE_NOWRITE,CLOSE f\n"; b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	if r.Mask != engine.CloseNoWrite|engine.Access|engine.Open {
		t.Errorf("record's mask changed to %v", r.Mask)
	}
	b.Reset()
	r = &format.Record{Watched: "/d/", Name: "sub", Mask: engine.Attrib | engine.OnDir}
	writeSplit(&b, out, r, nil)
	if want := "/d/ ATTRIB,ISDIR sub\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}
