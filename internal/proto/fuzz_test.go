package proto

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

// FuzzDecode checks that Decode never panics, that every rejection is an *Error with a
// known code, and that every accepted frame is canonical: re-encoding the message gives the
// same bytes and fds. The seed corpus is testdata/fuzz/FuzzDecode (one valid frame of every
// sample message, plus malformed ones; FSNOTIFYD_WRITE_SEEDS=1 go test -run TestWriteSeeds
// rewrites it); plain `go test` runs every seed.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, frame []byte) {
		checkDecode(t, frame, fakeFDs(frame))
	})
}

// fakeFDs returns as many fake fd numbers as frame's header declares (so the fuzzer gets
// past the fd count), none of them open: Decode must never touch them.
func fakeFDs(frame []byte) []int {
	if len(frame) < 7 {
		return nil
	}
	fds := make([]int, frame[6])
	for i := range fds {
		fds[i] = 1<<20 + i
	}
	return fds
}

func checkDecode(t *testing.T, frame []byte, fds []int) {
	t.Helper()
	m, err := Decode(frame, fds)
	if err != nil {
		var pe *Error
		if !errors.As(err, &pe) || !pe.Code.Known() || pe.Code == CodeOK || pe.Msg == "" || m != nil {
			t.Fatalf("Decode error %v (%T), message %v", err, err, m)
		}
		return
	}
	again, fds2, err := Encode(m)
	if err != nil {
		t.Fatalf("accepted %x as %#v, which does not encode: %v", frame, m, err)
	}
	want := frame
	if h, ok := m.(*Hello); ok && h.MaxVersion > MaxVersion {
		// A newer client's Hello may carry fields this version skips.
		want = frame[:len(again)]
		if !bytes.Equal(again[HeaderSize:], want[HeaderSize:]) {
			t.Fatalf("Hello from a newer client: prefix differs")
		}
		return
	}
	if !bytes.Equal(again, want) {
		t.Fatalf("accepted frame is not canonical:\n got %x\nwant %x\n(%#v)", again, want, m)
	}
	if len(fds) != len(fds2) || (len(fds) > 0 && !reflect.DeepEqual(fds, fds2)) {
		t.Fatalf("fds %v re-encode as %v", fds, fds2)
	}
	m2, err := Decode(again, fds2)
	if err != nil || !reflect.DeepEqual(m, m2) {
		t.Fatalf("re-decoding: %v", err)
	}
}

// TestWriteSeeds writes the seed corpus of FuzzDecode when FSNOTIFYD_WRITE_SEEDS=1.
func TestWriteSeeds(t *testing.T) {
	if os.Getenv("FSNOTIFYD_WRITE_SEEDS") != "1" {
		t.Skip("set FSNOTIFYD_WRITE_SEEDS=1 to rewrite testdata/fuzz/FuzzDecode")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, frame []byte) {
		data := "go test fuzz v1\n[]byte(" + strconv.Quote(string(frame)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range samples(3) {
		frame, _ := mustEncode(t, s.msg)
		write("valid-"+s.name, frame)
	}
	for name, frame := range malformedSeeds(t) {
		write("malformed-"+name, frame)
	}
}

// malformedSeeds are frames just past the checks, to point the fuzzer at each rejection.
func malformedSeeds(t *testing.T) map[string][]byte {
	hello, _ := mustEncode(t, &Hello{Req: 1, MinVersion: 1, MaxVersion: MaxVersion + 1, Name: "n"})
	event, _ := mustEncode(t, &Event{ID: 1, Mask: 0x10000, Path: "/p"})
	stats, _ := mustEncode(t, &Stats{Req: 1, Clients: []ClientStats{{ID: 1}}})
	return map[string][]byte{
		"too-large":       append(le32(MaxPayload+1), hello[4:]...),
		"unknown-type":    frameOf(0x8008, 0, 1, nil),
		"fd-count":        frameOf(TypeAddMark, 1, 1, make([]byte, 24)),
		"hello-trailing":  append(append(le32(uint32(len(hello)-HeaderSize+3)), hello[4:]...), 1, 2, 3),
		"event-truncated": event[:len(event)-1],
		"stats-counts":    patch(stats, 122, 0xff, 0x07),
		// FlushCache (version 6): a payload where none may be, no request id.
		"flushcache-payload": frameOf(TypeFlushCache, 0, 1, []byte{0}),
		"flushcache-req0":    frameOf(TypeFlushCache, 0, 0, nil),
		"flushcache-fd":      frameOf(TypeFlushCache, 1, 1, nil),
	}
}
