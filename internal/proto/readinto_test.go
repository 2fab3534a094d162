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

// FuzzDecodeInto: decoding into a reused Event with the previous event's strings
// (decodeFrame's into and last, as Conn.ReadMsgInto and DecodeRingFrame do) decides every
// frame as Decode does: the same message or an error, whatever frame came before it. The
// reuse skips the string rules for strings that are the same bytes as the last event's
// (Event.checkStrings): a first frame that got its strings into last without passing those
// rules, or a second that reused them while differing, would let a bad path through. And
// DecodeRingFrame, the ring's decoder, accepts what Decode accepts of events and overflows,
// and nothing else.
func FuzzDecodeInto(f *testing.F) {
	ev, _, _ := Encode(&Event{ID: 1, Mask: fsevent.OpenPerm, Pid: 1, Path: "/mnt/d/f", Name: "f", Comm: "cat"})
	ev2, _, _ := Encode(&Event{Mask: fsevent.Modify, Pid: 2, Path: "/mnt/d/g", OldPath: "/mnt/d/h"})
	ovf, _, _ := Encode(&Overflow{Reason: OverflowQueue})
	bad := append([]byte(nil), ev...)
	bad[len(bad)-2] = '/' // a name with a slash
	f.Add(ev, ev)
	f.Add(ev, ev2)
	f.Add(ev2, ev)
	f.Add(ev, ovf)
	f.Add(ev, bad)
	f.Add(bad, ev)
	f.Fuzz(func(t *testing.T, a, b []byte) {
		var into Event
		var last string
		decodeFrame(a, nil, &into, &last)
		got, gerr := decodeFrame(b, nil, &into, &last)
		want, werr := Decode(b, nil)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("after %x, %x decodes into the reused event with error %v; alone with %v", a, b, gerr, werr)
		}
		if werr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("after %x, %x decodes into the reused event as %#v; alone as %#v", a, b, got, want)
		}
		rm, rerr := DecodeRingFrame(b, nil, nil)
		isRing := werr == nil && (reflect.TypeOf(want) == reflect.TypeOf(&Event{}) || reflect.TypeOf(want) == reflect.TypeOf(&Overflow{}))
		if isRing != (rerr == nil) {
			t.Fatalf("DecodeRingFrame(%x): %v; Decode: %#v, %v", b, rerr, want, werr)
		}
		if isRing && !reflect.DeepEqual(rm, want) {
			t.Fatalf("DecodeRingFrame(%x) = %#v, Decode %#v", b, rm, want)
		}
	})
}
