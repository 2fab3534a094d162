//go:build linux

package proto

import (
	"reflect"
	"testing"
	"time"
	"unsafe"

	"github.com/fsnotifyd/fsnotifyd/fsevent"
)

// TestReadMsgIntoReusesEvent: ReadMsgInto decodes events into the caller's Event (no
// allocation for a repeated event, strings shared with the previous one when equal), each
// overwritten whole (no field of the previous event left behind), a copy taken before the
// next read is unchanged by it, and other messages are decoded as ReadMsg does.
func TestReadMsgIntoReusesEvent(t *testing.T) {
	d, c := pipe(t)
	handshake(t, d, c)
	first := &Event{ID: 0, Mask: fsevent.Open, Time: time.Unix(0, 1700000000123456789), Pid: 7, Tid: 8,
		UID: 1000, HasUID: true, HasObject: true, Dev: 3, Ino: 4, Path: "/mnt/d/f", Name: "f", Comm: "cat"}
	other := &Event{Mask: fsevent.Modify, Pid: 9, Tid: 9, Path: "/mnt/d/g", OldPath: "/mnt/d/h", Comm: "sh"}
	var scratch Event
	read := func(want Msg) Msg {
		t.Helper()
		m, err := c.ReadMsgInto(&scratch)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(m, want) {
			t.Fatalf("read %#v, want %#v", m, want)
		}
		return m
	}
	for _, m := range []Msg{first, first, other, &Overflow{Reason: OverflowQueue}, first} {
		if err := d.WriteMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	if m := read(first); m != &scratch {
		t.Fatalf("ReadMsgInto returned %p, not the caller's event %p", m, &scratch)
	}
	kept := scratch // what a reader copies out
	read(first)
	if unsafe.StringData(scratch.Path) != unsafe.StringData(kept.Path) {
		t.Fatal("the same strings again were not shared with the previous event's")
	}
	read(other) // every field of first overwritten (DeepEqual: HasUID, Dev, Name... zero)
	if !reflect.DeepEqual(&kept, first) {
		t.Fatalf("a copy of an earlier event changed: %#v", kept)
	}
	if m := read(&Overflow{Reason: OverflowQueue}); m == Msg(&scratch) {
		t.Fatal("an Overflow was decoded into the event")
	}
	read(first)

	// A repeated event costs no allocation (the reading side's; the write is outside).
	frame, _, err := Encode(first)
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	for range n + 1 {
		if _, err := d.TryWriteFrames(frame); err != nil {
			t.Fatal(err)
		}
	}
	if allocs := testing.AllocsPerRun(n, func() { read(first) }); allocs != 0 {
		t.Fatalf("%.1f allocations per repeated event read with ReadMsgInto, want 0", allocs)
	}
}

// TestDecodeIntoChecksReusedStrings: an event whose strings are the very bytes of the
// previous one's skips the string rules only if that previous event decoded and passed
// every check: strings that failed them (a NUL, a '/' in a name) fail again, as often as
// they come; an event that failed another check fails it again with the last event's
// strings; good strings after them are accepted.
func TestDecodeIntoChecksReusedStrings(t *testing.T) {
	good := &Event{Mask: fsevent.Open, Pid: 7, Path: "/mnt/d/f", Name: "f", Comm: "cat"}
	frameOf := func(name string) []byte {
		t.Helper()
		ev := *good
		ev.Name = name
		frame, _, err := Encode(&ev)
		if err != nil {
			t.Fatal(err)
		}
		return frame
	}
	// patch returns frame with the first occurrence of old (same length) replaced by new.
	patch := func(frame []byte, old, new string) []byte {
		t.Helper()
		out := append([]byte(nil), frame...)
		for i := HeaderSize; i+len(old) <= len(out); i++ {
			if string(out[i:i+len(old)]) == old {
				copy(out[i:], new)
				return out
			}
		}
		t.Fatalf("%q not in the frame", old)
		return nil
	}
	okFrame := frameOf("f")
	nul := patch(frameOf("fX"), "fX", "f\x00") // a NUL in the name
	slash := patch(frameOf("fX"), "fX", "f/")  // a '/' in the name
	badUID := append([]byte(nil), okFrame...)  // the strings of okFrame, a uid without HAS_UID
	badUID[HeaderSize+32] = 1
	for _, tc := range []struct {
		name   string
		frames [][]byte
		wantOK []bool
	}{
		{"a NUL, again and again", [][]byte{okFrame, nul, nul, nul, okFrame}, []bool{true, false, false, false, true}},
		{"a slash in a name, twice", [][]byte{slash, slash, okFrame, okFrame}, []bool{false, false, true, true}},
		{"after good strings", [][]byte{okFrame, okFrame, nul, okFrame, slash}, []bool{true, true, false, true, false}},
		{"the same strings, a uid without HAS_UID", [][]byte{badUID, okFrame, badUID, badUID, okFrame}, []bool{false, true, false, false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ev Event
			var last string
			for i, f := range tc.frames {
				_, err := decodeFrame(f, nil, &ev, &last)
				if (err == nil) != tc.wantOK[i] {
					t.Fatalf("frame %d: error %v, want ok %v", i, err, tc.wantOK[i])
				}
			}
		})
	}
}
