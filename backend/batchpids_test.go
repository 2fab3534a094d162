//go:build linux

package backend

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

// fanEvent is one event of a fanotify read buffer: its fixed header (with extra bytes of
// info records after it, when extra > 0).
func fanEvent(mask uint64, fd, pid int32, extra int) []byte {
	b := make([]byte, fanMetaLen+extra)
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	b[4] = 3 // FANOTIFY_METADATA_VERSION
	binary.NativeEndian.PutUint16(b[6:], fanMetaLen)
	binary.NativeEndian.PutUint64(b[fanMetaMask:], mask)
	binary.NativeEndian.PutUint32(b[16:], uint32(fd))
	binary.NativeEndian.PutUint32(b[fanMetaPid:], uint32(pid))
	return b
}

// notificationPids, dispatchBatch's first pass (it names the notifications' processes before
// the batch is translated, reading only the headers), gives the pid of each notification event
// in order and none of a permission event's, steps over info records by each event's length,
// and stops at a header that does not fit, as the real parse agrees on the events before it.
func TestNotificationPids(t *testing.T) {
	for _, tc := range []struct {
		name    string
		buf     [][]byte
		want    []int32
		noParse bool // bytes after a header that are no valid info record: the parse would refuse them
	}{
		{"permission events only", [][]byte{fanEvent(sys.FAN_OPEN_PERM, 5, 10, 0), fanEvent(sys.FAN_OPEN_EXEC_PERM|sys.FAN_OPEN_PERM, 6, 11, 0), fanEvent(sys.FAN_ACCESS_PERM, 7, 12, 0), fanEvent(sys.FAN_PRE_ACCESS, 8, 13, 0)}, nil, false},
		{"mixed, in order", [][]byte{fanEvent(sys.FAN_OPEN, 5, 10, 0), fanEvent(sys.FAN_OPEN_PERM, 6, 11, 0), fanEvent(sys.FAN_CLOSE_WRITE, 7, 12, 0), fanEvent(sys.FAN_MODIFY, 8, 10, 0)}, []int32{10, 12, 10}, false},
		{"events longer than their header", [][]byte{fanEvent(sys.FAN_OPEN_PERM, 5, 10, 40), fanEvent(sys.FAN_CLOSE_WRITE, 7, 12, 16), fanEvent(sys.FAN_MODIFY, 8, 13, 0)}, []int32{12, 13}, true},
		{"truncated last header", [][]byte{fanEvent(sys.FAN_OPEN, 5, 10, 0), fanEvent(sys.FAN_OPEN, 6, 11, 0)[:20]}, []int32{10}, false},
		{"length past the buffer", [][]byte{fanEvent(sys.FAN_OPEN, 5, 10, 0), func() []byte {
			b := fanEvent(sys.FAN_OPEN, 6, 11, 0)
			binary.NativeEndian.PutUint32(b, 4096)
			return b
		}()}, []int32{10}, false},
		{"length below a header", [][]byte{func() []byte {
			b := fanEvent(sys.FAN_OPEN, 6, 11, 0)
			binary.NativeEndian.PutUint32(b, 8)
			return b
		}(), fanEvent(sys.FAN_OPEN, 5, 10, 0)}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := slices.Concat(tc.buf...)
			var got []int32
			walked, perm := notificationPids(buf, func(pid int32, _ uint64) { got = append(got, pid) })
			if !slices.Equal(got, tc.want) {
				t.Errorf("pids %v, want %v", got, tc.want)
			}
			if tc.noParse {
				return
			}
			// The real parse sees the same notifications up to where it stops.
			var parsed []int32
			all, perms := 0, 0
			perr := sys.ParseFanotify(buf, func(ev *sys.FanotifyEvent) error {
				all++
				if !ev.IsPerm() {
					parsed = append(parsed, ev.Pid)
				} else {
					perms++
				}
				return nil
			})
			if !slices.Equal(parsed, got) {
				t.Errorf("the parse's notification pids %v, the header pass's %v", parsed, got)
			}
			// The counts it returns are what Stats adds before the batch is handled.
			if perr == nil && (walked != all || perm != perms) {
				t.Errorf("the header pass walked %d events, %d of them permission events; the parse saw %d and %d", walked, perm, all, perms)
			}
		})
	}
}
