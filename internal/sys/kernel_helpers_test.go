package sys_test

import (
	"errors"
	. "github.com/fsnotifyd/fsnotifyd/internal/sys"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Helpers for tests against the real kernel. Safety rules (see internal/testenv): marks only on
// scratch mounts, FAN_CLOEXEC/O_CLOEXEC (FanotifyInit forces both), every permission event
// answered, and the goroutine that reads and answers never touches a marked file. A group is
// closed in t.Cleanup, which allows whatever is still pending.

// captureSeeds makes the kernel tests store what they read as fuzz seeds:
//
//	FSNOTIFYD_CAPTURE_SEEDS=1 go test -run 'Kernel' ./internal/sys
var captureSeeds = os.Getenv("FSNOTIFYD_CAPTURE_SEEDS") != ""

// saveSeed stores buf as testdata/fuzz/<target>/<name> in "go test fuzz v1" format.
func saveSeed(t *testing.T, target, name string, buf []byte) {
	t.Helper()
	if !captureSeeds {
		return
	}
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	name = strings.ReplaceAll(name, " ", "-")
	data := "go test fuzz v1\n[]byte(" + strconv.QuoteToASCII(string(buf)) + ")\n"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("saved seed %s/%s (%d bytes)", target, name, len(buf))
}

const eventTimeout = 5 * time.Second

// group is a fanotify group; its methods take the (sub)test that uses them, since t.Fatal
// must come from that test's goroutine.
type group struct {
	fd int
}

// newGroup creates a non-blocking fanotify group closed at cleanup.
func newGroup(t *testing.T, flags, eventFFlags uint) *group {
	t.Helper()
	fd, err := FanotifyInit(flags|FAN_NONBLOCK, eventFFlags|O_LARGEFILE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Close(fd) })
	return &group{fd}
}

func (g *group) mark(t *testing.T, flags uint, mask uint64, path string) {
	t.Helper()
	if err := FanotifyMark(g.fd, flags, mask, AT_FDCWD, path); err != nil {
		t.Fatal(err)
	}
}

// read waits for the group to be readable and returns what one read gave.
func (g *group) read(t *testing.T) []byte {
	t.Helper()
	ok, err := PollRead(g.fd, eventTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("no fanotify event within %v", eventTimeout)
	}
	buf := make([]byte, FanotifyReadSize)
	n, err := Read(g.fd, buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// readQuiet returns everything readable now, in one buffer per read, or nil.
func (g *group) readQuiet(t *testing.T) [][]byte {
	t.Helper()
	var bufs [][]byte
	for {
		buf := make([]byte, FanotifyReadSize)
		n, err := Read(g.fd, buf)
		if errors.Is(err, syscall.EAGAIN) {
			return bufs
		}
		if err != nil {
			t.Fatal(err)
		}
		bufs = append(bufs, buf[:n])
	}
}

// parseAnswer parses buf, answers every permission event with response and closes every event
// fd and pidfd, then returns deep copies of the events. Answering comes first, before any
// check can fail.
func (g *group) parseAnswer(t *testing.T, buf []byte, response uint32) []FanotifyEvent {
	t.Helper()
	var evs []FanotifyEvent
	var errs []error
	err := ParseFanotify(buf, func(ev *FanotifyEvent) error {
		if ev.IsPerm() && ev.Fd >= 0 {
			if err := WriteResponse(g.fd, ev.Fd, response); err != nil {
				errs = append(errs, err)
			}
		}
		evs = append(evs, ev.Clone())
		return nil
	})
	for _, ev := range evs {
		if ev.Fd >= 0 {
			Close(int(ev.Fd))
		}
		if ev.Records.Has(FAN_EVENT_INFO_TYPE_PIDFD) && ev.Pidfd >= 0 {
			Close(int(ev.Pidfd))
		}
	}
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	for _, err := range errs {
		t.Error(err)
	}
	return evs
}

// async runs fn in a goroutine (the accessor of a marked file) and returns its result channel.
func async(fn func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- fn() }()
	return ch
}

// wait returns the accessor's result, failing the test if it stays blocked.
func wait(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(eventTimeout):
		t.Fatalf("accessor still blocked after %v", eventTimeout) // cleanup closes the group: allowed
		return nil
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func handleOf(t *testing.T, path string) FileHandle {
	t.Helper()
	h, _, err := NameToHandleAt(AT_FDCWD, path, 0)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func fsidOf(t *testing.T, path string) Fsid {
	t.Helper()
	st, err := Statfs(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Fsid
}

// checkFID compares a fid record with the object at path (and name, for *_NAME records).
func checkFID(t *testing.T, what string, got FileID, path, name string) {
	t.Helper()
	want := handleOf(t, path)
	if got.Fsid != fsidOf(t, path) {
		t.Errorf("%s: fsid %v, want %v (statfs of %s)", what, got.Fsid, fsidOf(t, path), path)
	}
	if got.Handle.Type != want.Type || string(got.Handle.Bytes) != string(want.Bytes) {
		t.Errorf("%s: handle %v, want %v (name_to_handle_at of %s)", what, got.Handle, want, path)
	}
	if string(got.Name) != name {
		t.Errorf("%s: name %q, want %q", what, got.Name, name)
	}
}
