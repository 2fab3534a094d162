package sys_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

const fuzzIn = "FuzzParseInotify"

type inotify struct{ fd int }

func newInotify(t *testing.T) *inotify {
	t.Helper()
	fd, err := InotifyInit(IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Close(fd) })
	return &inotify{fd}
}

func (in *inotify) watch(t *testing.T, path string, mask uint32) int {
	t.Helper()
	wd, err := InotifyAddWatch(in.fd, path, mask)
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

// read returns one read's bytes, waiting for the first event.
func (in *inotify) read(t *testing.T) []byte {
	t.Helper()
	ok, err := PollRead(in.fd, eventTimeout)
	if err != nil || !ok {
		t.Fatalf("no inotify event within %v (%v)", eventTimeout, err)
	}
	buf := make([]byte, InotifyReadSize)
	n, err := Read(in.fd, buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

func parseInotify(t *testing.T, buf []byte) []InotifyEvent {
	t.Helper()
	var evs []InotifyEvent
	if err := ParseInotify(buf, func(ev *InotifyEvent) error {
		evs = append(evs, ev.Clone())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return evs
}

func formatInotify(evs []InotifyEvent) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "\n  wd %d %s cookie %d %q", ev.Wd, InotifyMaskString(ev.Mask), ev.Cookie, ev.Name)
	}
	return b.String()
}

// TestKernelInotifyBatched: 20 creates, one read, 20 events with the right names; names of
// lengths around the kernel's 16-byte padding.
func TestKernelInotifyBatched(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	in := newInotify(t)
	wd := in.watch(t, dir, IN_CREATE)
	var names []string
	for i := range 20 {
		names = append(names, fmt.Sprintf("f%02d", i))
	}
	// The name field is NUL-padded to a multiple of 16: exercise 15, 16, 17 and NAME_MAX.
	names = append(names, strings.Repeat("a", 15), strings.Repeat("b", 16), strings.Repeat("c", 17),
		strings.Repeat("d", 255))
	for _, name := range names {
		writeFile(t, filepath.Join(dir, name), nil)
	}
	buf := in.read(t)
	evs := parseInotify(t, buf)
	if len(evs) != len(names) {
		t.Fatalf("one read of %d bytes gave %d events, want %d:%s", len(buf), len(evs), len(names), formatInotify(evs))
	}
	for i, ev := range evs {
		if ev.Wd != int32(wd) || ev.Mask != IN_CREATE || string(ev.Name) != names[i] {
			t.Errorf("event %d: wd %d %s %q, want wd %d CREATE %q", i, ev.Wd, InotifyMaskString(ev.Mask), ev.Name,
				wd, names[i])
		}
	}
	saveSeed(t, fuzzIn, "kernel-creates", buf)
}

// TestKernelInotifyLifecycle: moves with cookies, directories, self events, watch removal and
// unmount.
func TestKernelInotifyLifecycle(t *testing.T) {
	testenv.RequireRoot(t)
	dir := testenv.Tmpfs(t)
	in := newInotify(t)
	dwd := in.watch(t, dir, IN_ALL_EVENTS)
	file := filepath.Join(dir, "file")
	writeFile(t, file, []byte("x"))
	fwd := in.watch(t, file, IN_ALL_EVENTS)
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(file, filepath.Join(dir, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "moved")); err != nil {
		t.Fatal(err)
	}
	buf := in.read(t)
	evs := parseInotify(t, buf)
	var from, to *InotifyEvent
	var sawDeleteSelf, sawIgnored, sawMkdir bool
	for i := range evs {
		ev := &evs[i]
		switch {
		case ev.Wd == int32(dwd) && ev.Mask == IN_MOVED_FROM:
			from = ev
		case ev.Wd == int32(dwd) && ev.Mask == IN_MOVED_TO:
			to = ev
		case ev.Wd == int32(dwd) && ev.Mask == IN_CREATE|IN_ISDIR && string(ev.Name) == "sub":
			sawMkdir = true
		case ev.Wd == int32(fwd) && ev.Mask == IN_DELETE_SELF:
			sawDeleteSelf = len(ev.Name) == 0
		case ev.Wd == int32(fwd) && ev.Mask == IN_IGNORED:
			sawIgnored = true
		}
	}
	if from == nil || to == nil || from.Cookie == 0 || from.Cookie != to.Cookie ||
		string(from.Name) != "file" || string(to.Name) != "moved" {
		t.Errorf("no MOVED_FROM/MOVED_TO pair with one cookie:%s", formatInotify(evs))
	}
	if !sawMkdir || !sawDeleteSelf || !sawIgnored {
		t.Errorf("mkdir %v, delete_self %v, ignored %v:%s", sawMkdir, sawDeleteSelf, sawIgnored, formatInotify(evs))
	}
	saveSeed(t, fuzzIn, "kernel-lifecycle", buf)

	// Removing a watch queues IN_IGNORED; unmounting queues IN_UNMOUNT then IN_IGNORED.
	subwd := in.watch(t, filepath.Join(dir, "sub"), IN_ALL_EVENTS)
	if err := InotifyRmWatch(in.fd, subwd); err != nil {
		t.Fatal(err)
	}
	if err := Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	buf = in.read(t)
	evs = parseInotify(t, buf)
	want := []InotifyEvent{{Wd: int32(subwd), Mask: IN_IGNORED}, {Wd: int32(dwd), Mask: IN_UNMOUNT | IN_ISDIR}, // the watched object is a directory
		{Wd: int32(dwd), Mask: IN_IGNORED}}
	if fmt.Sprint(evs) != fmt.Sprint(want) {
		t.Errorf("got%s\nwant%s", formatInotify(evs), formatInotify(want))
	}
	saveSeed(t, fuzzIn, "kernel-rm-watch-unmount", buf)
}
