package sys

import (
	"errors"
	"reflect"
	"testing"
	"unsafe"
)

// The fuzz targets check that the parsers never panic or loop, that every accepted event
// stays inside its bytes, and that re-encoding a parsed event parses back to the same event.
// The seed corpus is testdata/fuzz/<target>/: buffers read from Linux 6.18 by the kernel tests
// (FSNOTIFYD_CAPTURE_SEEDS=1), plus the synthetic seeds added here. Plain `go test` runs all
// seeds; `go test -fuzz FuzzParseFanotify ./internal/sys` explores further.

func FuzzParseFanotify(f *testing.F) {
	for _, seed := range [][]byte{
		fanEvent(FAN_OPEN_PERM, 5, 1),
		cat(fanEvent(FAN_OPEN, 5, 1), fanEvent(FAN_CLOSE_NOWRITE, 5, 1)),
		fanEvent(FAN_RENAME, -1, 9,
			fidRecord(FAN_EVENT_INFO_TYPE_OLD_DFID_NAME, fsid1, 0x81, handle8, "a"),
			fidRecord(FAN_EVENT_INFO_TYPE_NEW_DFID_NAME, fsid1, 0x81, handle8, "bcd"),
			fidRecord(FAN_EVENT_INFO_TYPE_FID, fsid1, 0x81, handle8, "")),
		fanEvent(FAN_FS_ERROR, -1, 0, errorRecord(108, 2), fidRecord(FAN_EVENT_INFO_TYPE_FID, fsid1, 0xff, nil, "")),
		fanEvent(FAN_PRE_ACCESS, 8, 77, pidfdRecord(9), rangeRecord(4096, 8192)),
		fanEvent(FAN_MNT_ATTACH, -1, 0, mntRecord(42)),
		fanEvent(FAN_OPEN, 3, 1, cat(infoHeader(99, 8), le32(7))),
		with(fanEvent(FAN_OPEN, 3, 1, pidfdRecord(1)), 26, []byte{0, 0}), // record len 0
		with(fanEvent(FAN_OPEN, 3, 1), 0, le32(0xffffffff)),
	} {
		f.Add(seed)
	}
	f.Fuzz(checkFanotifyBuffer)
}

func FuzzParseInotify(f *testing.F) {
	for _, seed := range [][]byte{
		inotifyEvent_(1, IN_CREATE, 0, "name", 16),
		cat(inotifyEvent_(1, IN_MOVED_FROM, 7, "a", 16), inotifyEvent_(1, IN_MOVED_TO, 7, "b", 16)),
		inotifyEvent_(-1, IN_Q_OVERFLOW, 0, "", 0),
		inotifyEvent_(1, IN_CREATE, 0, "abcd", 4), // unterminated
	} {
		f.Add(seed)
	}
	f.Fuzz(checkInotifyBuffer)
}

// within reports whether s lies inside buf (an empty slice anywhere counts).
func within(s, buf []byte) bool {
	if len(s) == 0 {
		return true
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	return p >= start && p+uintptr(len(s)) <= start+uintptr(len(buf))
}

func fileIDs(ev *FanotifyEvent) map[string]*FileID {
	return map[string]*FileID{"FID": &ev.FID, "DFID": &ev.DFID, "OldDFID": &ev.OldDFID, "NewDFID": &ev.NewDFID}
}

func checkFanotifyBuffer(t *testing.T, buf []byte) {
	var events []FanotifyEvent
	var parseErr error
	var ev FanotifyEvent
	const known = InfoSet(1<<FAN_EVENT_INFO_TYPE_FID | 1<<FAN_EVENT_INFO_TYPE_DFID_NAME | 1<<FAN_EVENT_INFO_TYPE_DFID |
		1<<FAN_EVENT_INFO_TYPE_PIDFD | 1<<FAN_EVENT_INFO_TYPE_ERROR | 1<<FAN_EVENT_INFO_TYPE_RANGE |
		1<<FAN_EVENT_INFO_TYPE_MNT | 1<<FAN_EVENT_INFO_TYPE_OLD_DFID_NAME | 1<<FAN_EVENT_INFO_TYPE_NEW_DFID_NAME)
	for off, steps := 0, 0; off < len(buf); steps++ {
		if steps > len(buf)/FAN_EVENT_METADATA_LEN {
			t.Fatalf("more events than the buffer can hold")
		}
		n, err := ParseFanotifyEvent(buf[off:], &ev)
		if err != nil {
			var pe *ParseError
			if n != 0 || !errors.Is(err, ErrMalformed) || !errors.As(err, &pe) {
				t.Fatalf("bad error %T %v with n %d", err, err, n)
			}
			parseErr = err
			break
		}
		if n < FAN_EVENT_METADATA_LEN || n > len(buf)-off {
			t.Fatalf("event length %d at %d of %d", n, off, len(buf))
		}
		if ev.Records&^known != 0 {
			t.Fatalf("records %b has unknown types", ev.Records)
		}
		if ev.Records.Has(FAN_EVENT_INFO_TYPE_DFID) && ev.Records.Has(FAN_EVENT_INFO_TYPE_DFID_NAME) {
			t.Fatalf("both DFID and DFID_NAME")
		}
		for name, fid := range fileIDs(&ev) {
			for _, s := range [][]byte{fid.Handle.Bytes, fid.Name} {
				if !within(s, buf[off:off+n]) || cap(s) != len(s) {
					t.Fatalf("%s: slice outside its event or with spare capacity", name)
				}
			}
			for _, c := range fid.Name {
				if c == 0 {
					t.Fatalf("%s: NUL in name %q", name, fid.Name)
				}
			}
		}
		events = append(events, ev.Clone())
		if !reflect.DeepEqual(events[len(events)-1], ev) {
			t.Fatalf("clone differs:\n%+v\n%+v", events[len(events)-1], ev)
		}
		off += n
	}

	// ParseFanotify agrees with the event-by-event walk.
	i := 0
	err := ParseFanotify(buf, func(ev *FanotifyEvent) error {
		if i >= len(events) || !reflect.DeepEqual(*ev, events[i]) {
			t.Fatalf("ParseFanotify event %d differs", i)
		}
		i++
		return nil
	})
	if i != len(events) || (err == nil) != (parseErr == nil) {
		t.Fatalf("ParseFanotify: %d events, err %v; walk: %d events, err %v", i, err, len(events), parseErr)
	}

	// Re-encoding the known records canonically parses back to the same event.
	for _, ev := range events {
		enc := encodeFanotify(&ev)
		var back FanotifyEvent
		n, err := ParseFanotifyEvent(enc, &back)
		if err != nil || n != len(enc) {
			t.Fatalf("re-encoded event: n %d, err %v", n, err)
		}
		ev.UnknownRecords = 0
		if !reflect.DeepEqual(back.Clone(), ev) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", back, ev)
		}
	}
}

// encodeFanotify writes ev the way the kernel would: metadata, then its known records.
func encodeFanotify(ev *FanotifyEvent) []byte {
	var recs [][]byte
	fid := func(typ uint8, f *FileID) {
		if ev.Records.Has(typ) {
			r := fidRecord(typ, f.Fsid, f.Handle.Type, f.Handle.Bytes, string(f.Name))
			recs = append(recs, r)
		}
	}
	fid(FAN_EVENT_INFO_TYPE_DFID_NAME, &ev.DFID)
	fid(FAN_EVENT_INFO_TYPE_DFID, &ev.DFID)
	fid(FAN_EVENT_INFO_TYPE_OLD_DFID_NAME, &ev.OldDFID)
	fid(FAN_EVENT_INFO_TYPE_NEW_DFID_NAME, &ev.NewDFID)
	fid(FAN_EVENT_INFO_TYPE_FID, &ev.FID)
	if ev.Records.Has(FAN_EVENT_INFO_TYPE_PIDFD) {
		recs = append(recs, pidfdRecord(ev.Pidfd))
	}
	if ev.Records.Has(FAN_EVENT_INFO_TYPE_ERROR) {
		recs = append(recs, errorRecord(ev.Error, ev.ErrorCount))
	}
	if ev.Records.Has(FAN_EVENT_INFO_TYPE_RANGE) {
		recs = append(recs, rangeRecord(ev.RangeOffset, ev.RangeCount))
	}
	if ev.Records.Has(FAN_EVENT_INFO_TYPE_MNT) {
		recs = append(recs, mntRecord(ev.MntID))
	}
	return fanEvent(ev.Mask, ev.Fd, ev.Pid, recs...)
}

func checkInotifyBuffer(t *testing.T, buf []byte) {
	var events []InotifyEvent
	var ev InotifyEvent
	var parseErr error
	for off, steps := 0, 0; off < len(buf); steps++ {
		if steps > len(buf)/sizeofInotifyEvent {
			t.Fatalf("more events than the buffer can hold")
		}
		n, err := ParseInotifyEvent(buf[off:], &ev)
		if err != nil {
			if n != 0 || !errors.Is(err, ErrMalformed) {
				t.Fatalf("bad error %T %v with n %d", err, err, n)
			}
			parseErr = err
			break
		}
		if n < sizeofInotifyEvent || n > len(buf)-off {
			t.Fatalf("event length %d at %d of %d", n, off, len(buf))
		}
		if !within(ev.Name, buf[off+sizeofInotifyEvent:off+n]) || cap(ev.Name) != len(ev.Name) {
			t.Fatalf("name outside its event or with spare capacity")
		}
		for _, c := range ev.Name {
			if c == 0 {
				t.Fatalf("NUL in name %q", ev.Name)
			}
		}
		events = append(events, ev.Clone())
		off += n
	}
	i := 0
	err := ParseInotify(buf, func(ev *InotifyEvent) error {
		if i >= len(events) || !reflect.DeepEqual(*ev, events[i]) {
			t.Fatalf("ParseInotify event %d differs", i)
		}
		i++
		return nil
	})
	if i != len(events) || (err == nil) != (parseErr == nil) {
		t.Fatalf("ParseInotify: %d events, err %v; walk: %d events, err %v", i, err, len(events), parseErr)
	}
	for _, ev := range events {
		nameLen := 0
		if ev.Name != nil {
			nameLen = (len(ev.Name) + 1 + 15) / 16 * 16
		}
		enc := inotifyEvent_(ev.Wd, ev.Mask, ev.Cookie, string(ev.Name), nameLen)
		var back InotifyEvent
		if n, err := ParseInotifyEvent(enc, &back); err != nil || n != len(enc) ||
			!reflect.DeepEqual(back.Clone(), ev) {
			t.Fatalf("round trip: %+v, n %d, err %v; want %+v", back, n, err, ev)
		}
	}
}
