package sys

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// Builders of synthetic buffers, laid out like the kernel writes them
// (fs/notify/fanotify/fanotify_user.c: copy_fid_info_to_user pads a record to 4 bytes).

func le32(v uint32) []byte { return ne.AppendUint32(nil, v) }

func metadata(eventLen uint32, vers uint8, metaLen uint16, mask uint64, fd, pid int32) []byte {
	b := ne.AppendUint32(nil, eventLen)
	b = append(b, vers, 0)
	b = ne.AppendUint16(b, metaLen)
	b = ne.AppendUint64(b, mask)
	b = ne.AppendUint32(b, uint32(fd))
	return ne.AppendUint32(b, uint32(pid))
}

func infoHeader(typ uint8, recLen int) []byte {
	return ne.AppendUint16([]byte{typ, 0}, uint16(recLen))
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// fidRecord builds a fid record; name is appended with its NUL for the *_NAME types.
func fidRecord(typ uint8, fsid Fsid, htype int32, handle []byte, name string) []byte {
	body := ne.AppendUint32(nil, uint32(fsid[0]))
	body = ne.AppendUint32(body, uint32(fsid[1]))
	body = ne.AppendUint32(body, uint32(len(handle)))
	body = ne.AppendUint32(body, uint32(htype))
	body = append(body, handle...)
	switch typ {
	case FAN_EVENT_INFO_TYPE_DFID_NAME, FAN_EVENT_INFO_TYPE_OLD_DFID_NAME, FAN_EVENT_INFO_TYPE_NEW_DFID_NAME:
		body = append(append(body, name...), 0)
	}
	body = pad4(body)
	return append(infoHeader(typ, 4+len(body)), body...)
}

func pidfdRecord(pidfd int32) []byte {
	return ne.AppendUint32(infoHeader(FAN_EVENT_INFO_TYPE_PIDFD, 8), uint32(pidfd))
}

func errorRecord(errno int32, count uint32) []byte {
	b := ne.AppendUint32(infoHeader(FAN_EVENT_INFO_TYPE_ERROR, 12), uint32(errno))
	return ne.AppendUint32(b, count)
}

func rangeRecord(off, count uint64) []byte {
	b := ne.AppendUint32(infoHeader(FAN_EVENT_INFO_TYPE_RANGE, 24), 0)
	b = ne.AppendUint64(b, off)
	return ne.AppendUint64(b, count)
}

func mntRecord(id uint64) []byte {
	b := infoHeader(FAN_EVENT_INFO_TYPE_MNT, sizeofInfoMnt)
	b = append(b, make([]byte, offMntID-sizeofInfoHeader)...)
	return ne.AppendUint64(b, id)
}

// fanEvent builds one event with a correct event_len.
func fanEvent(mask uint64, fd, pid int32, recs ...[]byte) []byte {
	n := 24
	for _, r := range recs {
		n += len(r)
	}
	b := metadata(uint32(n), 3, 24, mask, fd, pid)
	for _, r := range recs {
		b = append(b, r...)
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// with returns a copy of b with b[off:] overwritten by v.
func with(b []byte, off int, v []byte) []byte {
	c := bytes.Clone(b)
	copy(c[off:], v)
	return c
}

var (
	fsid1   = Fsid{0x1234, -7}
	handle8 = []byte{1, 2, 3, 4, 5, 6, 7, 8}
)

// parseAll runs ParseFanotify and returns deep copies of the events.
func parseAll(buf []byte) ([]FanotifyEvent, error) {
	var evs []FanotifyEvent
	err := ParseFanotify(buf, func(ev *FanotifyEvent) error {
		evs = append(evs, ev.Clone())
		return nil
	})
	return evs, err
}

// parseAllAt walks buf with ParseFanotifyEventAt in a loop of its own (as the backend's FD
// group does) and returns deep copies of the events.
func parseAllAt(buf []byte) ([]FanotifyEvent, error) {
	var evs []FanotifyEvent
	var ev FanotifyEvent
	for off := 0; off < len(buf); {
		n, err := ParseFanotifyEventAt(buf, off, &ev)
		if err != nil {
			return evs, err
		}
		evs = append(evs, ev.Clone())
		off += n
	}
	return evs, nil
}

// The walkers of a batch: ParseFanotify's callback, and a loop of ParseFanotifyEventAt. Both
// must deliver the same events, and fail at the same event with the same offset.
var walkers = []struct {
	name  string
	parse func([]byte) ([]FanotifyEvent, error)
}{{"ParseFanotify", parseAll}, {"ParseFanotifyEventAt", parseAllAt}}

func TestParseFanotifyValid(t *testing.T) {
	fidObj := func(typ uint8, name string) FileID {
		f := FileID{Fsid: fsid1, Handle: FileHandle{Type: 0x81, Bytes: handle8}}
		if typ != FAN_EVENT_INFO_TYPE_FID && typ != FAN_EVENT_INFO_TYPE_DFID {
			f.Name = []byte(name)
		}
		return f
	}
	set := func(types ...uint8) (s InfoSet) {
		for _, typ := range types {
			s |= 1 << typ
		}
		return s
	}
	for _, tc := range []struct {
		name string
		buf  []byte
		want []FanotifyEvent
	}{
		{"fd event", fanEvent(FAN_OPEN, 7, 42),
			[]FanotifyEvent{{Mask: FAN_OPEN, Fd: 7, Pid: 42}}},
		{"overflow", fanEvent(FAN_Q_OVERFLOW, FAN_NOFD, 0),
			[]FanotifyEvent{{Mask: FAN_Q_OVERFLOW, Fd: -1}}},
		{"two events", cat(fanEvent(FAN_OPEN_PERM, 5, 1), fanEvent(FAN_CLOSE_NOWRITE, 6, 2)),
			[]FanotifyEvent{{Mask: FAN_OPEN_PERM, Fd: 5, Pid: 1}, {Mask: FAN_CLOSE_NOWRITE, Fd: 6, Pid: 2}}},
		{"fid", fanEvent(FAN_ATTRIB, -1, 3, fidRecord(FAN_EVENT_INFO_TYPE_FID, fsid1, 0x81, handle8, "")),
			[]FanotifyEvent{{Mask: FAN_ATTRIB, Fd: -1, Pid: 3, Records: set(FAN_EVENT_INFO_TYPE_FID),
				FID: fidObj(FAN_EVENT_INFO_TYPE_FID, "")}}},
		{"dfid", fanEvent(FAN_CREATE, -1, 3, fidRecord(FAN_EVENT_INFO_TYPE_DFID, fsid1, 0x81, handle8, "")),
			[]FanotifyEvent{{Mask: FAN_CREATE, Fd: -1, Pid: 3, Records: set(FAN_EVENT_INFO_TYPE_DFID),
				DFID: fidObj(FAN_EVENT_INFO_TYPE_DFID, "")}}},
		{"dfid_name + fid",
			fanEvent(FAN_CREATE, -1, 3, fidRecord(FAN_EVENT_INFO_TYPE_DFID_NAME, fsid1, 0x81, handle8, "file.txt"),
				fidRecord(FAN_EVENT_INFO_TYPE_FID, fsid1, 0x81, handle8, "")),
			[]FanotifyEvent{{Mask: FAN_CREATE, Fd: -1, Pid: 3,
				Records: set(FAN_EVENT_INFO_TYPE_DFID_NAME, FAN_EVENT_INFO_TYPE_FID),
				DFID:    fidObj(FAN_EVENT_INFO_TYPE_DFID_NAME, "file.txt"), FID: fidObj(FAN_EVENT_INFO_TYPE_FID, "")}}},
		{"rename", fanEvent(FAN_RENAME, -1, 9,
			fidRecord(FAN_EVENT_INFO_TYPE_OLD_DFID_NAME, fsid1, 0x81, handle8, "a"),
			fidRecord(FAN_EVENT_INFO_TYPE_NEW_DFID_NAME, fsid1, 0x81, handle8, "bcd"),
			fidRecord(FAN_EVENT_INFO_TYPE_FID, fsid1, 0x81, handle8, "")),
			[]FanotifyEvent{{Mask: FAN_RENAME, Fd: -1, Pid: 9,
				Records: set(FAN_EVENT_INFO_TYPE_OLD_DFID_NAME, FAN_EVENT_INFO_TYPE_NEW_DFID_NAME, FAN_EVENT_INFO_TYPE_FID),
				OldDFID: fidObj(FAN_EVENT_INFO_TYPE_OLD_DFID_NAME, "a"),
				NewDFID: fidObj(FAN_EVENT_INFO_TYPE_NEW_DFID_NAME, "bcd"),
				FID:     fidObj(FAN_EVENT_INFO_TYPE_FID, "")}}},
		{"empty handle (FILEID_INVALID) + error", fanEvent(FAN_FS_ERROR, -1, 0,
			errorRecord(108, 2), fidRecord(FAN_EVENT_INFO_TYPE_FID, fsid1, 0xff, nil, "")),
			[]FanotifyEvent{{Mask: FAN_FS_ERROR, Fd: -1, Records: set(FAN_EVENT_INFO_TYPE_ERROR, FAN_EVENT_INFO_TYPE_FID),
				Error: 108, ErrorCount: 2, FID: FileID{Fsid: fsid1, Handle: FileHandle{Type: 0xff, Bytes: []byte{}}}}}},
		{"pidfd + range", fanEvent(FAN_PRE_ACCESS, 8, 77, pidfdRecord(9), rangeRecord(4096, 1<<40)),
			[]FanotifyEvent{{Mask: FAN_PRE_ACCESS, Fd: 8, Pid: 77,
				Records: set(FAN_EVENT_INFO_TYPE_PIDFD, FAN_EVENT_INFO_TYPE_RANGE),
				Pidfd:   9, RangeOffset: 4096, RangeCount: 1 << 40}}},
		{"pidfd FAN_NOPIDFD", fanEvent(FAN_OPEN, 8, 77, pidfdRecord(FAN_NOPIDFD)),
			[]FanotifyEvent{{Mask: FAN_OPEN, Fd: 8, Pid: 77, Records: set(FAN_EVENT_INFO_TYPE_PIDFD), Pidfd: -1}}},
		{"fd error", fanEvent(FAN_OPEN, -13, 77),
			[]FanotifyEvent{{Mask: FAN_OPEN, Fd: -13, Pid: 77}}},
		{"mnt", fanEvent(FAN_MNT_ATTACH, -1, 0, mntRecord(0x1_0000_0042)),
			[]FanotifyEvent{{Mask: FAN_MNT_ATTACH, Fd: -1, Records: set(FAN_EVENT_INFO_TYPE_MNT), MntID: 0x1_0000_0042}}},
		{"unknown record types are skipped", fanEvent(FAN_OPEN, 3, 1,
			cat(infoHeader(99, 8), le32(0xdeadbeef)), pidfdRecord(4), cat(infoHeader(200, 4))),
			[]FanotifyEvent{{Mask: FAN_OPEN, Fd: 3, Pid: 1, Records: set(FAN_EVENT_INFO_TYPE_PIDFD), Pidfd: 4,
				UnknownRecords: 2}}},
		{"reserved types 11 and 13 are unknown", fanEvent(FAN_RENAME, -1, 1,
			fidRecord(11, fsid1, 1, handle8, ""), fidRecord(13, fsid1, 1, handle8, "")),
			[]FanotifyEvent{{Mask: FAN_RENAME, Fd: -1, Pid: 1, UnknownRecords: 2}}},
		{"longer metadata_len (future extension)",
			cat(metadata(24+8+8, 3, 32, FAN_OPEN, 3, 1), make([]byte, 8), pidfdRecord(5)),
			[]FanotifyEvent{{Mask: FAN_OPEN, Fd: 3, Pid: 1, Records: set(FAN_EVENT_INFO_TYPE_PIDFD), Pidfd: 5}}},
		{"longer fixed records", fanEvent(FAN_OPEN, 3, 1, cat(with(pidfdRecord(5), 2, []byte{12, 0}), le32(0))),
			[]FanotifyEvent{{Mask: FAN_OPEN, Fd: 3, Pid: 1, Records: set(FAN_EVENT_INFO_TYPE_PIDFD), Pidfd: 5}}},
		{"name fills the record exactly", fanEvent(FAN_CREATE, -1, 1,
			fidRecord(FAN_EVENT_INFO_TYPE_DFID_NAME, fsid1, 0x81, handle8, "abc")), // 20+8+4 = 32, no pad
			[]FanotifyEvent{{Mask: FAN_CREATE, Fd: -1, Pid: 1, Records: set(FAN_EVENT_INFO_TYPE_DFID_NAME),
				DFID: fidObj(FAN_EVENT_INFO_TYPE_DFID_NAME, "abc")}}},
		{"empty buffer", nil, nil},
	} {
		for _, w := range walkers {
			t.Run(w.name+"/"+tc.name, func(t *testing.T) {
				got, err := w.parse(tc.buf)
				if err != nil {
					t.Fatalf("error: %v", err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("got  %+v\nwant %+v", got, tc.want)
				}
			})
		}
	}
}

func TestParseFanotifyMalformed(t *testing.T) {
	good := fanEvent(FAN_OPEN, 3, 1)
	fid := fidRecord(FAN_EVENT_INFO_TYPE_FID, fsid1, 1, handle8, "")
	dname := fidRecord(FAN_EVENT_INFO_TYPE_DFID_NAME, fsid1, 1, handle8, "xyz")
	for _, tc := range []struct {
		name      string
		buf       []byte
		delivered int    // events delivered before the error
		reason    string // substring of the error
	}{
		{"short", good[:10], 0, "10 bytes left"},
		{"short second event", cat(good, good[:23]), 1, "offset 24: 23 bytes left"},
		{"vers 2", with(good, 4, []byte{2}), 0, "vers 2, want 3"},
		{"vers 4", with(good, 4, []byte{4}), 0, "vers 4"},
		{"metadata_len 20", with(good, 6, []byte{20, 0}), 0, "metadata_len 20 < 24"},
		{"event_len < metadata_len", with(good, 0, le32(20)), 0, "event_len 20 < metadata_len 24"},
		{"event_len 0", with(good, 0, le32(0)), 0, "event_len 0 < metadata_len 24"},
		{"event_len beyond buffer", with(good, 0, le32(28)), 0, "event_len 28 beyond the 24 bytes left"},
		{"event_len huge", with(good, 0, le32(0xffffffff)), 0, "event_len 4294967295 beyond"},
		{"metadata_len beyond event_len", with(good, 6, []byte{64, 0}), 0, "event_len 24 < metadata_len 64"},
		{"record len 0", fanEvent(FAN_OPEN, 3, 1, with(pidfdRecord(1), 2, []byte{0, 0})), 0, "len 0 < 4"},
		{"record len 3", fanEvent(FAN_OPEN, 3, 1, with(pidfdRecord(1), 2, []byte{3, 0})), 0, "len 3 < 4"},
		{"record overruns event", fanEvent(FAN_OPEN, 3, 1, with(pidfdRecord(1), 2, []byte{12, 0})), 0,
			"len 12 overruns event_len 32"},
		{"unknown record overruns event", fanEvent(FAN_OPEN, 3, 1, cat(infoHeader(99, 400), le32(0))), 0,
			"type 99 at 24: len 400 overruns"},
		{"trailing bytes", fanEvent(FAN_OPEN, 3, 1, []byte{1, 0}), 0, "2 trailing bytes at 24"},
		{"pidfd short", fanEvent(FAN_OPEN, 3, 1, infoHeader(FAN_EVENT_INFO_TYPE_PIDFD, 4)), 0, "type 4 at 24: len 4 < 8"},
		{"error short", fanEvent(FAN_FS_ERROR, -1, 0, errorRecord(5, 1)[:8]), 0, "type 5"},
		{"range short", fanEvent(FAN_PRE_ACCESS, 3, 1, with(rangeRecord(0, 1), 2, []byte{16, 0})[:16]), 0,
			"type 6 at 24: len 16 < 24"},
		{"mnt short", fanEvent(FAN_MNT_ATTACH, -1, 0, cat(infoHeader(FAN_EVENT_INFO_TYPE_MNT, 8), le32(1))), 0,
			"type 7 at 24: len 8 <"},
		{"fid short", fanEvent(FAN_ATTRIB, -1, 1, cat(infoHeader(FAN_EVENT_INFO_TYPE_FID, 12), le32(1), le32(2))), 0,
			"type 1 at 24: len 12 < 20"},
		{"handle_bytes overruns", fanEvent(FAN_ATTRIB, -1, 1, with(fid, 12, le32(9))), 0,
			"handle_bytes 9 overruns"},
		{"handle_bytes huge", fanEvent(FAN_ATTRIB, -1, 1, with(fid, 12, le32(0xfffffff0))), 0,
			"handle_bytes 4294967280 overruns"},
		{"name unterminated", fanEvent(FAN_CREATE, -1, 1, with(dname, len(dname)-1, []byte{'!'})), 0,
			"name not NUL-terminated"},
		{"name missing", fanEvent(FAN_CREATE, -1, 1, with(fidRecord(FAN_EVENT_INFO_TYPE_DFID_NAME, fsid1, 1, handle8, "")[:28],
			2, []byte{28, 0})), 0, "not NUL-terminated"},
		{"duplicate fid", fanEvent(FAN_ATTRIB, -1, 1, fid, fid), 0, "duplicate record"},
		{"dfid and dfid_name", fanEvent(FAN_CREATE, -1, 1, dname,
			fidRecord(FAN_EVENT_INFO_TYPE_DFID, fsid1, 1, handle8, "")), 0, "type 3 at 56: duplicate record"},
		{"duplicate pidfd", fanEvent(FAN_OPEN, 3, 1, pidfdRecord(1), pidfdRecord(2)), 0, "duplicate"},
		{"bad second event after good ones", cat(good, good, with(good, 4, []byte{0})), 2, "offset 48: vers 0"},
	} {
		for _, w := range walkers {
			t.Run(w.name+"/"+tc.name, func(t *testing.T) {
				got, err := w.parse(tc.buf)
				if err == nil {
					t.Fatalf("no error; parsed %+v", got)
				}
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("errors.Is(%v, ErrMalformed) = false", err)
				}
				var pe *ParseError
				if !errors.As(err, &pe) || pe.Kind != "fanotify" {
					t.Errorf("error %T %v is not a fanotify *ParseError", err, err)
				}
				if !strings.Contains(err.Error(), tc.reason) {
					t.Errorf("error %q does not mention %q", err, tc.reason)
				}
				if len(got) != tc.delivered {
					t.Errorf("delivered %d events before the error, want %d", len(got), tc.delivered)
				}
			})
		}
	}
}

func TestParseFanotifyCallbackError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	buf := cat(fanEvent(FAN_OPEN, 3, 1), fanEvent(FAN_OPEN, 4, 1), fanEvent(FAN_OPEN, 5, 1))
	err := ParseFanotify(buf, func(ev *FanotifyEvent) error {
		n++
		if ev.Fd == 4 {
			return stop
		}
		return nil
	})
	if err != stop || n != 2 {
		t.Errorf("got err %v after %d events, want stop after 2", err, n)
	}
}

// TestParseAliasing checks the documented lifetime: names and handles alias the buffer, with
// clipped capacity, and Clone detaches them.
func TestParseAliasing(t *testing.T) {
	buf := fanEvent(FAN_CREATE, -1, 1, fidRecord(FAN_EVENT_INFO_TYPE_DFID_NAME, fsid1, 1, handle8, "name"))
	var ev FanotifyEvent
	if _, err := ParseFanotifyEvent(buf, &ev); err != nil {
		t.Fatal(err)
	}
	if cap(ev.DFID.Name) != len(ev.DFID.Name) || cap(ev.DFID.Handle.Bytes) != len(ev.DFID.Handle.Bytes) {
		t.Errorf("aliasing slices have spare capacity: append would write into the buffer")
	}
	c := ev.Clone()
	copy(buf[24+20:], "XXXXXXXXXXXXX") // overwrite handle and name in the buffer
	if string(ev.DFID.Name) == "name" {
		t.Errorf("ev.DFID.Name does not alias the buffer")
	}
	if string(c.DFID.Name) != "name" || !bytes.Equal(c.DFID.Handle.Bytes, handle8) {
		t.Errorf("clone changed with the buffer: %q %v", c.DFID.Name, c.DFID.Handle.Bytes)
	}
}

func TestParseFanotifyNoAllocs(t *testing.T) {
	buf := cat(
		fanEvent(FAN_RENAME, -1, 9,
			fidRecord(FAN_EVENT_INFO_TYPE_OLD_DFID_NAME, fsid1, 0x81, handle8, "a"),
			fidRecord(FAN_EVENT_INFO_TYPE_NEW_DFID_NAME, fsid1, 0x81, handle8, "bcd"),
			fidRecord(FAN_EVENT_INFO_TYPE_FID, fsid1, 0x81, handle8, "")),
		fanEvent(FAN_PRE_ACCESS, 8, 77, pidfdRecord(9), rangeRecord(4096, 1<<40)))
	var ev FanotifyEvent
	allocs := testing.AllocsPerRun(100, func() {
		for off := 0; off < len(buf); {
			n, err := ParseFanotifyEvent(buf[off:], &ev)
			if err != nil {
				panic(err)
			}
			off += n
		}
	})
	if allocs != 0 {
		t.Errorf("ParseFanotifyEvent allocates %.1f times per buffer, want 0", allocs)
	}
	var iev InotifyEvent
	ibuf := inotifyEvent_(1, IN_CREATE, 0, "name", 16)
	allocs = testing.AllocsPerRun(100, func() {
		if _, err := ParseInotifyEvent(ibuf, &iev); err != nil {
			panic(err)
		}
	})
	if allocs != 0 {
		t.Errorf("ParseInotifyEvent allocates %.1f times, want 0", allocs)
	}
}

func BenchmarkParseFanotify(b *testing.B) {
	var buf []byte
	for i := range 20 {
		buf = append(buf, fanEvent(FAN_CREATE, -1, 1,
			fidRecord(FAN_EVENT_INFO_TYPE_DFID_NAME, fsid1, 0x81, handle8, fmt.Sprintf("file%02d", i)))...)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	var ev FanotifyEvent
	for b.Loop() {
		for off := 0; off < len(buf); {
			n, err := ParseFanotifyEvent(buf[off:], &ev)
			if err != nil {
				b.Fatal(err)
			}
			off += n
		}
	}
}

// inotifyEvent_ builds a struct inotify_event with its name NUL-padded to nameLen bytes
// (the kernel pads to a multiple of 16).
func inotifyEvent_(wd int32, mask, cookie uint32, name string, nameLen int) []byte {
	b := ne.AppendUint32(nil, uint32(wd))
	b = ne.AppendUint32(b, mask)
	b = ne.AppendUint32(b, cookie)
	b = ne.AppendUint32(b, uint32(nameLen))
	nb := make([]byte, nameLen)
	copy(nb, name)
	return append(b, nb...)
}

func TestParseInotify(t *testing.T) {
	type ev = InotifyEvent
	for _, tc := range []struct {
		name   string
		buf    []byte
		want   []InotifyEvent
		reason string // non-empty: expect an error mentioning it
	}{
		{"self event", inotifyEvent_(1, IN_DELETE_SELF, 0, "", 0), []ev{{Wd: 1, Mask: IN_DELETE_SELF}}, ""},
		{"named", inotifyEvent_(2, IN_CREATE|IN_ISDIR, 0, "dir", 16),
			[]ev{{Wd: 2, Mask: IN_CREATE | IN_ISDIR, Name: []byte("dir")}}, ""},
		{"name of 16 needs 32", inotifyEvent_(2, IN_CREATE, 0, "0123456789abcdef", 32),
			[]ev{{Wd: 2, Mask: IN_CREATE, Name: []byte("0123456789abcdef")}}, ""},
		{"move pair", cat(inotifyEvent_(1, IN_MOVED_FROM, 77, "a", 16), inotifyEvent_(1, IN_MOVED_TO, 77, "b", 16)),
			[]ev{{Wd: 1, Mask: IN_MOVED_FROM, Cookie: 77, Name: []byte("a")},
				{Wd: 1, Mask: IN_MOVED_TO, Cookie: 77, Name: []byte("b")}}, ""},
		{"overflow", inotifyEvent_(-1, IN_Q_OVERFLOW, 0, "", 0), []ev{{Wd: -1, Mask: IN_Q_OVERFLOW}}, ""},
		{"empty", nil, nil, ""},
		{"short", inotifyEvent_(1, IN_CREATE, 0, "", 0)[:15], nil, "15 bytes left"},
		{"len beyond", inotifyEvent_(1, IN_CREATE, 0, "abc", 16)[:20], nil, "len 16 beyond the 4 bytes left"},
		{"len huge", with(inotifyEvent_(1, IN_CREATE, 0, "", 0), 12, le32(0xffffffff)), nil, "len 4294967295 beyond"},
		{"unterminated", inotifyEvent_(1, IN_CREATE, 0, "abcd", 4), nil, "not NUL-terminated"},
		{"bad second", cat(inotifyEvent_(1, IN_OPEN, 0, "", 0), inotifyEvent_(1, IN_OPEN, 0, "", 0)[:8]),
			[]ev{{Wd: 1, Mask: IN_OPEN}}, "offset 16: 8 bytes left"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []InotifyEvent
			err := ParseInotify(tc.buf, func(e *InotifyEvent) error {
				got = append(got, e.Clone())
				return nil
			})
			if tc.reason == "" && err != nil {
				t.Fatalf("error: %v", err)
			}
			if tc.reason != "" {
				if !errors.Is(err, ErrMalformed) || !strings.Contains(fmt.Sprint(err), tc.reason) {
					t.Errorf("error %v, want ErrMalformed mentioning %q", err, tc.reason)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// One FanotifyEvent reused for a sequence of events, as the backend's readers do: after each
// parse it holds exactly what a parse into a zero FanotifyEvent gives — the fields of the
// records the previous event had and this one lacks are zero (a header-only event after one
// with records, after an unknown record, after a malformed event: a duplicate record, whose
// field is written before the duplicate is found). Fails when parseFanotifyEvent skips its
// reset after records.
func TestParseFanotifyReusedEvent(t *testing.T) {
	unknown := append(infoHeader(200, 8), 0, 0, 0, 0)
	plain := fanEvent(FAN_OPEN_PERM, 5, 10)
	seq := []struct {
		name string
		buf  []byte
		bad  bool
	}{
		{"plain", plain, false},
		{"range and pidfd", fanEvent(FAN_PRE_ACCESS, 6, 11, rangeRecord(4096, 8192), pidfdRecord(42)), false},
		{"plain after records", plain, false},
		{"fid and dfid name", fanEvent(FAN_CREATE, -1, 12, fidRecord(FAN_EVENT_INFO_TYPE_DFID_NAME, fsid1, 1, handle8, "n"), fidRecord(FAN_EVENT_INFO_TYPE_FID, fsid1, 1, handle8, "")), false},
		{"plain after fids", plain, false},
		{"error and mnt", fanEvent(FAN_FS_ERROR, -1, 0, errorRecord(5, 2), mntRecord(77)), false},
		{"plain after error", plain, false},
		{"unknown record", fanEvent(FAN_OPEN, 7, 13, unknown), false},
		{"plain after unknown", plain, false},
		{"malformed after a range", cat(fanEvent(FAN_PRE_ACCESS, 6, 11, rangeRecord(1, 2), rangeRecord(3, 4))), true},
		{"plain after malformed", plain, false},
		{"duplicate pidfd", fanEvent(FAN_OPEN_PERM, 8, 14, pidfdRecord(1), pidfdRecord(2)), true},
		{"plain after duplicate pidfd", plain, false},
		{"truncated fid", fanEvent(FAN_CREATE, -1, 12, fidRecord(FAN_EVENT_INFO_TYPE_FID, fsid1, 1, handle8, "")[:20]), true},
		{"plain after duplicate", plain, false},
	}
	var ev FanotifyEvent
	for _, s := range seq {
		_, err := ParseFanotifyEventAt(s.buf, 0, &ev)
		if (err != nil) != s.bad {
			t.Fatalf("%s: err %v, want error %v", s.name, err, s.bad)
		}
		if s.bad {
			continue // ev must not be used; the next parse must be clean
		}
		var want FanotifyEvent
		if _, err := ParseFanotifyEvent(s.buf, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ev, want) {
			t.Errorf("%s: reused event\n %+v\nwant\n %+v", s.name, ev, want)
		}
	}
}
