package proto

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/fsevent"
)

type sample struct {
	name string
	msg  Msg
}

var testInstance = InstanceID{0x5e, 0xed, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}

// samples returns messages of every type, with their fields exercised; fd fields hold fake
// fd numbers (fd is the number to use), which encoding and decoding never touch.
func samples(fd int) []sample {
	long := strings.Repeat("x", MaxName)
	return []sample{
		{"hello-minimal", &Hello{Req: 1, MinVersion: 1, MaxVersion: 1}},
		{"hello-full", &Hello{Req: 1, MinVersion: 1, MaxVersion: 1, Name: "guard", Class: fsevent.ClassPreContent,
			QueueLimit: 1000, Deadline: 200 * time.Millisecond, DeadlineVerdict: fsevent.Deny,
			CloseVerdict: fsevent.Deny, QueueFullVerdict: fsevent.Deny, WantEventFDs: true, WantUID: true,
			WantComm: true, LastInstance: testInstance}},
		{"hello-v4", &Hello{Req: 1, MinVersion: 1, MaxVersion: 4, Name: "allow"}},
		{"hello-v5-ring", &Hello{Req: 1, MinVersion: 1, MaxVersion: 5, Class: fsevent.ClassContent, NoPaths: true, WantRing: true}},
		{"ringgrant", &RingGrant{Req: 1, Mem: NewFD(fd), Kick: NewFD(fd)}},
		{"hello-v4-nopaths", &Hello{Req: 1, MinVersion: 2, MaxVersion: 4, Class: fsevent.ClassContent, NoPaths: true}},
		{"hello-unlimited", &Hello{Req: 0xffffffffffffffff, MinVersion: 1, MaxVersion: 1, QueueLimit: -1, Name: "wätch ✓"}},
		{"addmark-inode", &AddMark{Req: 2, Kind: fsevent.KindInode, Mask: fsevent.Create | fsevent.Delete | fsevent.EventOnChild | fsevent.OnDir, Target: NewFD(fd)}},
		{"addmark-subtree", &AddMark{Req: 3, Kind: fsevent.KindSubtree, Mask: fsevent.OpenPerm, Ignore: fsevent.Open,
			Flags: fsevent.IgnoreSurviveModify, Replace: true, Target: NewFD(fd)}},
		{"addmark-mount", &AddMark{Req: 4, Kind: fsevent.KindMount, Mask: fsevent.Open | fsevent.CloseWrite, Target: NewFD(fd)}},
		{"addmark-filesystem", &AddMark{Req: 5, Kind: fsevent.KindFilesystem, Mask: fsevent.FSError, Target: NewFD(fd)}},
		{"removemark-id", &RemoveMark{Req: 6, By: RemoveByID, MarkID: 42}},
		{"removemark-id-bits", &RemoveMark{Req: 6, By: RemoveByID, MarkID: 42, Mask: fsevent.Open, Ignore: fsevent.Modify}},
		{"removemark-target", &RemoveMark{Req: 7, By: RemoveByTarget, Kind: fsevent.KindSubtree, Target: NewFD(fd)}},
		{"removemark-all", &RemoveMark{Req: 8, By: RemoveAll}},
		{"removemark-all-mounts", &RemoveMark{Req: 8, By: RemoveAll, Kind: fsevent.KindMount}},
		{"respond-allow", &Respond{EventID: 7, Verdict: fsevent.Allow}},
		{"respond-allow-cache", &Respond{Req: 9, EventID: 7, Verdict: fsevent.Allow, Cache: true}},
		{"respond-deny-errno", &Respond{Req: 10, EventID: 1 << 40, Verdict: fsevent.Deny, Errno: syscall.EIO}},
		{"statsrequest", &StatsRequest{Req: 11}},
		{"statsrequest-all", &StatsRequest{Req: 11, AllClients: true}},
		{"ping", &Ping{Req: 12}},
		{"bye", &Bye{Req: 13}},
		{"flushcache", &FlushCache{Req: 14}},
		{"report", &Report{Text: `{"verdict":"deny","rule":"deny open **/*.key","path":"/srv/a.key"}`}},
		{"welcome", &Welcome{Req: 1, Version: 1, ClientID: 17, Instance: testInstance, Fresh: true,
			DaemonVersion: "fsnotifyd 0.1.0", Class: fsevent.ClassContent, QueueLimit: 16384, MarkLimit: 8192,
			Deadline: 5 * time.Second, DeadlineVerdict: fsevent.Allow, CloseVerdict: fsevent.Deny,
			QueueFullVerdict: fsevent.Deny, EventFDs: true, MountMarks: true, UID: 1000, GID: 1000, PID: 4242}},
		{"welcome-minimal", &Welcome{Req: 1, Version: 1, ClientID: 1, Instance: testInstance, QueueLimit: -1}},
		{"result-ok", &Result{Req: 2, ID: 99}},
		{"result-error", &Result{Req: 4, Code: CodePermission, Message: "mount marks need uid 0 or an allowed uid in /etc/fsnotifyd/config"}},
		{"result-respond-failed", &Result{ID: 7, Code: CodeNotFound, Message: "no pending permission event 7"}},
		{"result-unknown-code", &Result{Req: 5, Code: 999, Message: "from a newer daemon"}},
		{"event-create", &Event{Mask: fsevent.Create, Path: "/srv/data/new.txt", Name: "new.txt", Pid: 1234, Tid: 1235,
			Time: time.Unix(0, 1700000000123456789)}},
		{"event-dir", &Event{Mask: fsevent.Create | fsevent.OnDir, Path: "/srv/data/sub", Name: "sub"}},
		{"event-rename", &Event{Mask: fsevent.Rename, Path: "/srv/b/new", OldPath: "/srv/a/old", Name: "old", NewName: "new"}},
		{"event-perm-fd", &Event{ID: 77, Mask: fsevent.OpenPerm, Path: "/srv/data/secret", Pid: 99, Tid: 99, UID: 1000,
			HasUID: true, Comm: "cat", FD: NewFD(fd)}},
		{"event-perm-root", &Event{ID: 78, Mask: fsevent.OpenExecPerm, Path: "/bin/sh", UID: 0, HasUID: true}},
		{"event-preaccess", &Event{ID: 79, Mask: fsevent.PreAccess, Path: "/srv/big", Range: fsevent.Range{Offset: 4096, Count: 8192}}},
		{"event-fserror", &Event{Mask: fsevent.FSError, FSErrno: int32(syscall.EUCLEAN), FSErrorCount: 3}},
		{"event-long", &Event{Mask: fsevent.Modify, Path: "/" + strings.Repeat("p", MaxPath-1), OldPath: "/" + strings.Repeat("o", MaxPath-1),
			Name: long, NewName: long, Comm: long}},
		{"event-negative-time", &Event{Mask: fsevent.Attrib, Time: time.Unix(0, -5)}},
		{"event-v2-path-unknown", &Event{ID: 80, Mask: fsevent.OpenPerm, PathUnknown: true, HasObject: true,
			Dev: 0x800001, Ino: 1 << 40, Pid: 7, Comm: "cat", FD: NewFD(fd)}},
		{"event-v2-object", &Event{Mask: fsevent.Create, Path: "/srv/x", Name: "x", HasObject: true, Dev: 2049, Ino: 12}},
		{"event-v2-long-path", &Event{Mask: fsevent.Create, Path: "/" + strings.Repeat("d", MaxPath+100),
			OldPath: "/" + strings.Repeat("o", MaxPath), Name: "deep.key", HasObject: true, Dev: 1, Ino: 2}},
		{"overflow", &Overflow{Reason: OverflowQueue, Lost: 12}},
		{"overflow-unknown", &Overflow{}},
		{"overflow-kernel", &Overflow{Reason: OverflowKernel}},
		{"stats-minimal", &Stats{Req: 11}},
		{"stats", &Stats{Req: 11, Truncated: true, Daemon: DaemonStats{Uptime: time.Hour, Clients: 3, Events: 1e6,
			PermissionEvents: 5e5, Delivered: 2e6, Dropped: 10, Overflows: 2, KernelOverflows: 1, Pending: 4,
			DeadlineExpired: 7, CloseAnswered: 8, Marks: 30,
			Latency: Latency{Count: 5e5, Sum: 50 * time.Second, Max: 200 * time.Millisecond},
			Buckets: []Bucket{{Le: 100 * time.Microsecond, Count: 4e5}, {Le: time.Millisecond, Count: 9e4}, {Le: time.Second, Count: 1e4}}},
			Clients: []ClientStats{
				{ID: 1, Name: "guard", PID: 10, UID: 0, Class: fsevent.ClassContent, Queued: 1, Pending: 2, Marks: 3,
					Delivered: 4, Merged: 5, Dropped: 6, Overflows: 7, Answered: 8, DeadlineExpired: 9, CloseAnswered: 10,
					QueueFull: 11, Latency: Latency{Count: 8, Sum: time.Millisecond, Max: time.Microsecond}},
				{ID: 2, Name: "", PID: 11, UID: 1000},
			}}},
		{"pong", &Pong{Req: 12}},
		{"fatal", &Fatal{Code: CodeBadField, Message: "AddMark: object kind 9: want 1 (inode), 2 (mount), 3 (filesystem) or 4 (subtree)"}},
		{"fatal-req", &Fatal{Req: 1, Code: CodeVersion, Message: "client speaks protocol versions 2..3; this side speaks 1..1: upgrade fsnotifyd"}},
	}
}

func TestRoundTrip(t *testing.T) {
	const fd = 1000
	seen := map[Type]bool{}
	for _, s := range samples(fd) {
		t.Run(s.name, func(t *testing.T) {
			seen[s.msg.Type()] = true
			frame, fds, err := Encode(s.msg)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			h, err := DecodeHeader(frame)
			if err != nil {
				t.Fatalf("DecodeHeader: %v", err)
			}
			if h.Type != s.msg.Type() || h.Req != s.msg.RequestID() || int(h.Length) != len(frame)-HeaderSize || int(h.NFDs) != len(fds) {
				t.Fatalf("header %+v for a %d-byte frame with %d fds", h, len(frame), len(fds))
			}
			if want := s.msg.numFDs(); len(fds) != want || (want == 1 && fds[0] != fd) {
				t.Fatalf("fds %v, want %d of fd %d", fds, want, fd)
			}
			got, err := Decode(frame, fds)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, s.msg) {
				t.Fatalf("decoded\n%#v\nwant\n%#v", got, s.msg)
			}
			again, fds2, err := Encode(got)
			if err != nil || !bytes.Equal(again, frame) || !reflect.DeepEqual(fds, fds2) {
				t.Fatalf("re-encoding differs (err %v)", err)
			}
			// Append appends after existing content.
			buf, afds, err := Append([]byte("prefix"), []int{-7}, s.msg)
			if err != nil || string(buf[:6]) != "prefix" || !bytes.Equal(buf[6:], frame) || afds[0] != -7 || len(afds) != 1+len(fds) {
				t.Fatalf("Append: %v", err)
			}
		})
	}
	for tp := range typeNames {
		if !seen[tp] {
			t.Errorf("no sample of %v", tp)
		}
	}
}

// TestWireValues pins the engine values that go on the wire as they are documented in
// docs/protocol.md: if the engine renumbers one, the protocol must not follow silently.
func TestWireValues(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"KindInode", uint64(fsevent.KindInode), 1}, {"KindMount", uint64(fsevent.KindMount), 2},
		{"KindFilesystem", uint64(fsevent.KindFilesystem), 3}, {"KindSubtree", uint64(fsevent.KindSubtree), 4},
		{"ClassNotification", uint64(fsevent.ClassNotification), 0}, {"ClassContent", uint64(fsevent.ClassContent), 1},
		{"ClassPreContent", uint64(fsevent.ClassPreContent), 2},
		{"Allow", uint64(fsevent.Allow), 0}, {"Deny", uint64(fsevent.Deny), 1},
		{"IgnoreSurviveModify", uint64(fsevent.IgnoreSurviveModify), 1},
		{"Access", uint64(fsevent.Access), 0x1}, {"Modify", uint64(fsevent.Modify), 0x2},
		{"Attrib", uint64(fsevent.Attrib), 0x4}, {"CloseWrite", uint64(fsevent.CloseWrite), 0x8},
		{"CloseNoWrite", uint64(fsevent.CloseNoWrite), 0x10}, {"Open", uint64(fsevent.Open), 0x20},
		{"MovedFrom", uint64(fsevent.MovedFrom), 0x40}, {"MovedTo", uint64(fsevent.MovedTo), 0x80},
		{"Create", uint64(fsevent.Create), 0x100}, {"Delete", uint64(fsevent.Delete), 0x200},
		{"DeleteSelf", uint64(fsevent.DeleteSelf), 0x400}, {"MoveSelf", uint64(fsevent.MoveSelf), 0x800},
		{"OpenExec", uint64(fsevent.OpenExec), 0x1000}, {"QueueOverflow", uint64(fsevent.QueueOverflow), 0x4000},
		{"FSError", uint64(fsevent.FSError), 0x8000}, {"OpenPerm", uint64(fsevent.OpenPerm), 0x10000},
		{"AccessPerm", uint64(fsevent.AccessPerm), 0x20000}, {"OpenExecPerm", uint64(fsevent.OpenExecPerm), 0x40000},
		{"PreAccess", uint64(fsevent.PreAccess), 0x100000}, {"EventOnChild", uint64(fsevent.EventOnChild), 0x8000000},
		{"Rename", uint64(fsevent.Rename), 0x10000000}, {"OnDir", uint64(fsevent.OnDir), 0x40000000},
	} {
		if c.got != c.want {
			t.Errorf("fsevent.%s = %#x; the protocol defines %#x", c.name, c.got, c.want)
		}
	}
}

func TestSizes(t *testing.T) {
	// The fixed payload sizes that docs/protocol.md states.
	for _, c := range []struct {
		m    Msg
		size int
	}{
		{&Hello{Req: 1, MinVersion: 1, MaxVersion: 1}, 46},
		{&AddMark{Req: 1, Kind: 1, Target: NewFD(3)}, 24},
		{&RemoveMark{Req: 1, By: RemoveAll}, 32},
		{&Respond{EventID: 1}, 16},
		{&StatsRequest{Req: 1}, 4},
		{&Ping{Req: 1}, 0}, {&Bye{Req: 1}, 0}, {&Pong{Req: 1}, 0},
		{&Welcome{Req: 1, Version: 1, ClientID: 1, Instance: testInstance}, 62},
		{&Result{Req: 1}, 12},
		{&Fatal{Code: 1}, 4},
		{&Event{Mask: 1}, 74},
		{&Overflow{}, 16},
		{&Stats{Req: 1}, 128},
		{&Stats{Req: 1, Daemon: DaemonStats{Buckets: []Bucket{{Le: 1}}}, Clients: []ClientStats{{}}}, 128 + 16 + 122},
	} {
		frame, _, err := Encode(c.m)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(frame) - HeaderSize; got != c.size {
			t.Errorf("%v: payload of %d bytes, want %d", c.m.Type(), got, c.size)
		}
	}
}

func TestEncodeRejects(t *testing.T) {
	tooLongPath := "/" + strings.Repeat("a", MaxLongPath)
	tooManyClients := make([]ClientStats, MaxStatsClients+1)
	for _, c := range []struct {
		name string
		m    Msg
		code Code
	}{
		{"nil", nil, CodeBadField},
		{"hello-req0", &Hello{MinVersion: 1, MaxVersion: 1}, CodeBadField},
		{"hello-noversion", &Hello{Req: 1}, CodeBadField},
		{"hello-range", &Hello{Req: 1, MinVersion: 2, MaxVersion: 1}, CodeBadField},
		{"hello-class", &Hello{Req: 1, MinVersion: 1, MaxVersion: 1, Class: 3}, CodeBadField},
		{"hello-queue", &Hello{Req: 1, MinVersion: 1, MaxVersion: 1, QueueLimit: -2}, CodeBadField},
		{"hello-queue-big", &Hello{Req: 1, MinVersion: 1, MaxVersion: 1, QueueLimit: 1 << 31}, CodeBadField},
		{"hello-deadline", &Hello{Req: 1, MinVersion: 1, MaxVersion: 1, Deadline: -1}, CodeBadField},
		{"hello-verdict", &Hello{Req: 1, MinVersion: 1, MaxVersion: 1, CloseVerdict: 2}, CodeBadField},
		{"hello-nopaths-v3", &Hello{Req: 1, MinVersion: 1, MaxVersion: 3, NoPaths: true}, CodeBadField},
		{"hello-name-long", &Hello{Req: 1, MinVersion: 1, MaxVersion: 1, Name: strings.Repeat("n", MaxName+1)}, CodeBadField},
		{"hello-name-nul", &Hello{Req: 1, MinVersion: 1, MaxVersion: 1, Name: "a\x00b"}, CodeBadField},
		{"hello-name-utf8", &Hello{Req: 1, MinVersion: 1, MaxVersion: 1, Name: "a\xffb"}, CodeBadField},
		{"addmark-nofd", &AddMark{Req: 1, Kind: fsevent.KindInode, Mask: fsevent.Open}, CodeFDCount},
		{"addmark-kind0", &AddMark{Req: 1, Mask: fsevent.Open, Target: NewFD(3)}, CodeBadField},
		{"addmark-kind5", &AddMark{Req: 1, Kind: 5, Mask: fsevent.Open, Target: NewFD(3)}, CodeBadField},
		{"addmark-flags", &AddMark{Req: 1, Kind: 1, Flags: 2, Target: NewFD(3)}, CodeBadField},
		{"addmark-req0", &AddMark{Kind: 1, Target: NewFD(3)}, CodeBadField},
		{"removemark-mode0", &RemoveMark{Req: 1}, CodeBadField},
		{"removemark-id0", &RemoveMark{Req: 1, By: RemoveByID}, CodeBadField},
		{"removemark-id-kind", &RemoveMark{Req: 1, By: RemoveByID, MarkID: 1, Kind: 1}, CodeBadField},
		{"removemark-id-fd", &RemoveMark{Req: 1, By: RemoveByID, MarkID: 1, Target: NewFD(3)}, CodeFDCount},
		{"removemark-target-nofd", &RemoveMark{Req: 1, By: RemoveByTarget, Kind: 1}, CodeFDCount},
		{"removemark-target-id", &RemoveMark{Req: 1, By: RemoveByTarget, Kind: 1, MarkID: 1, Target: NewFD(3)}, CodeBadField},
		{"removemark-all-mask", &RemoveMark{Req: 1, By: RemoveAll, Mask: 1}, CodeBadField},
		{"removemark-all-kind", &RemoveMark{Req: 1, By: RemoveAll, Kind: 9}, CodeBadField},
		{"respond-id0", &Respond{Req: 1}, CodeBadField},
		{"respond-verdict", &Respond{EventID: 1, Verdict: 2}, CodeBadField},
		{"respond-errno-allow", &Respond{EventID: 1, Errno: 5}, CodeBadField},
		{"respond-errno-big", &Respond{EventID: 1, Verdict: fsevent.Deny, Errno: 4096}, CodeBadField},
		{"respond-cache-deny", &Respond{EventID: 1, Verdict: fsevent.Deny, Cache: true}, CodeBadField},
		{"ping-req0", &Ping{}, CodeBadField},
		{"welcome-version", &Welcome{Req: 1, Version: MaxVersion + 1, ClientID: 1, Instance: testInstance}, CodeVersion},
		{"welcome-client0", &Welcome{Req: 1, Version: 1, Instance: testInstance}, CodeBadField},
		{"welcome-instance0", &Welcome{Req: 1, Version: 1, ClientID: 1}, CodeBadField},
		{"welcome-marklimit", &Welcome{Req: 1, Version: 1, ClientID: 1, Instance: testInstance, MarkLimit: -1}, CodeBadField},
		{"result-ok-req0", &Result{}, CodeBadField},
		{"result-protocol-code", &Result{Req: 1, Code: CodeTruncated}, CodeBadField},
		{"result-message", &Result{Req: 1, Code: CodeInternal, Message: strings.Repeat("m", MaxMessage+1)}, CodeBadField},
		{"fatal-ok", &Fatal{}, CodeBadField},
		{"event-mask0", &Event{}, CodeBadField},
		{"event-overflow", &Event{Mask: fsevent.QueueOverflow}, CodeBadField},
		{"event-range", &Event{Mask: fsevent.Open, Range: fsevent.Range{Count: 1}}, CodeBadField},
		{"event-fserror", &Event{Mask: fsevent.Open, FSErrno: 5}, CodeBadField},
		{"event-uid", &Event{Mask: fsevent.Open, UID: 5}, CodeBadField},
		{"event-fd-notification", &Event{Mask: fsevent.Open, FD: NewFD(3)}, CodeBadField},
		{"event-path-long", &Event{Mask: fsevent.Open, Path: tooLongPath}, CodeBadField},
		{"event-name-slash", &Event{Mask: fsevent.Open, Name: "a/b"}, CodeBadField},
		{"event-path-nul", &Event{Mask: fsevent.Open, Path: "/a\x00"}, CodeBadField},
		{"overflow-reason", &Overflow{Reason: 4}, CodeBadField},
		{"stats-buckets-order", &Stats{Req: 1, Daemon: DaemonStats{Buckets: []Bucket{{Le: 2}, {Le: 2}}}}, CodeBadField},
		{"stats-bucket-zero", &Stats{Req: 1, Daemon: DaemonStats{Buckets: []Bucket{{Le: 0}}}}, CodeBadField},
		{"stats-buckets-many", &Stats{Req: 1, Daemon: DaemonStats{Buckets: make([]Bucket, MaxBuckets+1)}}, CodeBadField},
		{"stats-clients-many", &Stats{Req: 1, Clients: tooManyClients}, CodeBadField},
		{"stats-latency", &Stats{Req: 1, Daemon: DaemonStats{Latency: Latency{Sum: -1}}}, CodeBadField},
		{"stats-uptime", &Stats{Req: 1, Daemon: DaemonStats{Uptime: -1}}, CodeBadField},
		{"stats-client-class", &Stats{Req: 1, Clients: []ClientStats{{Class: 3}}}, CodeBadField},
	} {
		t.Run(c.name, func(t *testing.T) {
			buf, fds, err := Append([]byte("keep"), []int{9}, c.m)
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != c.code {
				t.Fatalf("error %v, want code %v", err, c.code)
			}
			if string(buf) != "keep" || len(fds) != 1 {
				t.Fatalf("Append changed its inputs on error: %q %v", buf, fds)
			}
			if pe.Msg == "" {
				t.Error("no message")
			}
		})
	}
}

func TestMaxStatsFits(t *testing.T) {
	// The largest Stats a daemon may send fits in a frame.
	st := &Stats{Req: 1, Daemon: DaemonStats{Buckets: make([]Bucket, MaxBuckets)}, Clients: make([]ClientStats, MaxStatsClients)}
	for i := range st.Daemon.Buckets {
		st.Daemon.Buckets[i].Le = time.Duration(i + 1)
	}
	for i := range st.Clients {
		st.Clients[i].Name = strings.Repeat("c", MaxName)
	}
	frame, _, err := Encode(st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(frame, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("largest Stats frame: %d bytes of %d", len(frame), MaxFrame)
}

func TestErrors(t *testing.T) {
	e := &Error{Code: CodePermission, Msg: "mount marks need uid 0 or an allowed uid in /etc/fsnotifyd/config"}
	if got, want := e.Error(), "permission: mount marks need uid 0 or an allowed uid in /etc/fsnotifyd/config"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var err error = fmt.Errorf("client: add mark: %w", e)
	if !errors.Is(err, ErrPermission) || errors.Is(err, ErrInvalid) {
		t.Error("errors.Is by code")
	}
	if !errors.Is(err, syscall.EPERM) || !errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist) {
		t.Error("errors.Is by errno")
	}
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != CodePermission {
		t.Error("errors.As")
	}
	if !errors.Is((&Result{Req: 1, Code: CodeNotFound}).Err(), fs.ErrNotExist) {
		t.Error("Result.Err not-found")
	}
	if (&Result{Req: 1}).Err() != nil {
		t.Error("Result.Err of success")
	}
	if !errors.Is((&Fatal{Code: CodeVersion}).Err(), ErrVersion) {
		t.Error("Fatal.Err")
	}
	for c := Code(0); c < 40; c++ {
		if c.Known() != !strings.HasPrefix(c.String(), "code(") {
			t.Errorf("code %d: Known %v, String %q", c, c.Known(), c.String())
		}
		if c.Known() && c != CodeOK && c.Errno() == 0 {
			t.Errorf("code %v has no errno", c)
		}
	}
	if Code(500).String() != "code(500)" || !Code(3).Protocol() || Code(16).Protocol() {
		t.Error("Code helpers")
	}
	if Type(0x1234).String() != "type(0x1234)" || TypeEvent.String() != "Event" || !TypeEvent.FromDaemon() || TypeHello.FromDaemon() {
		t.Error("Type helpers")
	}
}

func TestAsError(t *testing.T) {
	if AsError(nil) != nil {
		t.Fatal("AsError(nil)")
	}
	e := AsError(errors.New("boom\x00 \xff" + strings.Repeat("é", MaxMessage)))
	if e.Code != CodeInternal || len(e.Msg) > MaxMessage || checkText(TypeResult, "m", e.Msg, MaxMessage) != nil {
		t.Fatalf("AsError: %v %q", e.Code, e.Msg)
	}
	wrapped := fmt.Errorf("ctx: %w", Errorf(CodeLimit, "mark limit %d reached", 10))
	if e := AsError(wrapped); e.Code != CodeLimit || e.Msg != "mark limit 10 reached" {
		t.Fatalf("AsError(wrapped) = %v", e)
	}
	r := ResultFor(5, 0, wrapped)
	if r.Req != 5 || r.Code != CodeLimit {
		t.Fatalf("ResultFor: %+v", r)
	}
	if _, _, err := Encode(r); err != nil {
		t.Fatal(err)
	}
	if r := ResultFor(5, 0, Errorf(CodeBadField, "x")); r.Code != CodeInternal || r.Message != "bad-field: x" {
		t.Fatalf("ResultFor of a protocol error: %+v", r)
	}
	if r := ResultFor(5, 8, nil); r.Code != CodeOK || r.ID != 8 {
		t.Fatalf("ResultFor success: %+v", r)
	}
	f := FatalFor(0, AsError(errors.New(strings.Repeat("x", 5000))))
	if _, _, err := Encode(f); err != nil || f.Code != CodeInternal {
		t.Fatalf("FatalFor: %v", err)
	}
	if f := FatalFor(0, &Error{Code: CodeOK}); f.Code == CodeOK {
		t.Fatal("FatalFor with CodeOK")
	}
}

func TestNegotiate(t *testing.T) {
	for _, c := range []struct {
		min, max uint16
		want     uint16
		upgrade  string
	}{
		{1, 1, 1, ""}, {1, 6, 6, ""}, {1, 7, 6, ""}, {2, 3, 3, ""}, {2, 2, 2, ""}, {4, 5, 5, ""}, {4, 4, 4, ""}, {5, 6, 6, ""}, {5, 5, 5, ""}, {7, 8, 0, "upgrade fsnotifyd"}, {0, 0, 0, "upgrade the client"},
	} {
		v, err := Negotiate(&Hello{MinVersion: c.min, MaxVersion: c.max})
		if v != c.want || (err == nil) != (c.upgrade == "") || (err != nil && (!errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), c.upgrade))) {
			t.Errorf("Negotiate(%d..%d) = %d, %v", c.min, c.max, v, err)
		}
	}
}

func TestFD(t *testing.T) {
	var f FD
	if f.Valid() || f.Int() != -1 || f.Take() != -1 || f.Close() != nil {
		t.Fatal("zero FD")
	}
	if NewFD(-1).Valid() || !NewFD(0).Valid() || NewFD(0).Int() != 0 {
		t.Fatal("NewFD")
	}
	g := NewFD(5)
	if g.Take() != 5 || g.Valid() {
		t.Fatal("Take")
	}
}

func TestEventTimeZero(t *testing.T) {
	frame, _, _ := Encode(&Event{Mask: fsevent.Open})
	m, err := Decode(frame, nil)
	if err != nil || !m.(*Event).Time.IsZero() {
		t.Fatalf("zero time: %v %v", m, err)
	}
}

func TestStrings(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{RemoveByID.String(), "id"}, {RemoveByTarget.String(), "target"}, {RemoveAll.String(), "all"},
		{RemoveBy(9).String(), "remove-by(9)"},
		{OverflowUnknown.String(), "unknown"}, {OverflowQueue.String(), "queue"}, {OverflowKernel.String(), "kernel"},
		{OverflowConnection.String(), "connection"}, {OverflowReason(7).String(), "overflow-reason(7)"},
		{testInstance.String(), "5eed0102030405060708090a0b0c0d0e"},
		{DaemonSide.String(), "daemon"}, {ClientSide.String(), "client"},
		{(&Error{Code: CodeNotFound}).Error(), "not-found"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if !(&Event{Mask: fsevent.Create | fsevent.OnDir}).IsDir() || (&Event{Mask: fsevent.Create}).IsDir() {
		t.Error("IsDir")
	}
	if !(InstanceID{}).IsZero() || testInstance.IsZero() {
		t.Error("IsZero")
	}
}

// TestMaxPayloadOf checks the per-type limits against the largest message of each type.
func TestMaxPayloadOf(t *testing.T) {
	name, msg := strings.Repeat("n", MaxName), strings.Repeat("m", MaxMessage)
	path := "/" + strings.Repeat("p", MaxLongPath-1)
	for _, m := range []Msg{
		&AddMark{Req: 1, Kind: 1, Target: NewFD(3)}, &RemoveMark{Req: 1, By: RemoveAll}, &Respond{EventID: 1},
		&StatsRequest{Req: 1}, &Ping{Req: 1}, &Bye{Req: 1}, &Pong{Req: 1}, &Overflow{},
		&Welcome{Req: 1, Version: 1, ClientID: 1, Instance: testInstance, DaemonVersion: name},
		&Result{Req: 1, Message: msg}, &Fatal{Code: 1, Message: msg},
		&Event{Mask: 1, Path: path, OldPath: path, Name: name, NewName: name, Comm: name, HasObject: true, Dev: 1, Ino: 1},
	} {
		frame, _ := mustEncode(t, m)
		if got, want := len(frame)-HeaderSize, MaxPayloadOf(m.Type()); got != want {
			t.Errorf("largest %v: %d bytes, MaxPayloadOf says %d", m.Type(), got, want)
		}
	}
	// Hello keeps room for later versions' fields.
	frame, _ := mustEncode(t, &Hello{Req: 1, MinVersion: 1, MaxVersion: 1, Name: name})
	if len(frame)-HeaderSize > MaxHello || MaxPayloadOf(TypeHello) != MaxHello || MaxPayloadOf(TypeStats) != MaxPayload {
		t.Error("Hello or Stats limit")
	}
}

// TestNewRespondAlwaysEncodes: whatever a client answers, NewRespond gives a frame the daemon
// can decode (a frame it cannot would end the connection and answer every pending event with
// the close verdict); an answer that is no verdict goes as a deny, and says so.
func TestNewRespondAlwaysEncodes(t *testing.T) {
	type answer struct {
		Verdict fsevent.Verdict
		Errno   syscall.Errno
		Cache   bool
	}
	for _, tc := range []struct {
		name  string
		r     answer
		want  answer
		valid bool
	}{
		{"allow", answer{}, answer{}, true},
		{"allow-cache", answer{Cache: true}, answer{Cache: true}, true},
		{"deny-errno", answer{Verdict: fsevent.Deny, Errno: syscall.EIO}, answer{Verdict: fsevent.Deny, Errno: syscall.EIO}, true},
		{"deny-cache", answer{Verdict: fsevent.Deny, Cache: true}, answer{Verdict: fsevent.Deny}, true},
		{"deny-huge-errno", answer{Verdict: fsevent.Deny, Errno: 70000}, answer{Verdict: fsevent.Deny}, true},
		{"unknown-verdict", answer{Verdict: 9, Cache: true}, answer{Verdict: fsevent.Deny}, false},
		{"allow-errno", answer{Errno: syscall.EIO}, answer{Verdict: fsevent.Deny}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, valid := NewRespond(3, 7, tc.r.Verdict, tc.r.Errno, tc.r.Cache)
			if valid != tc.valid {
				t.Errorf("valid = %v, want %v", valid, tc.valid)
			}
			frame, fds, err := Encode(m)
			if err != nil {
				t.Fatalf("Encode(%+v): %v", m, err)
			}
			got, err := Decode(frame, fds)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			r := got.(*Respond)
			if got := (answer{r.Verdict, r.Errno, r.Cache}); r.Req != 3 || r.EventID != 7 || got != tc.want {
				t.Errorf("NewRespond(%+v) decodes to %+v, want event 7 answered %+v", tc.r, r, tc.want)
			}
		})
	}
}
