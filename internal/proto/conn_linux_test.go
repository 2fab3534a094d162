package proto

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/fsevent"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

const oPath = 0x200000 // O_PATH (the syscall package lacks it)

func pipe(t testing.TB) (d, c *Conn) {
	t.Helper()
	d, c, err := Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(); c.Close() })
	return d, c
}

func handshake(t testing.TB, d, c *Conn) { handshakeAt(t, d, c, MaxVersion) }

// handshakeAt is the handshake of a client that speaks versions 1 to version.
func handshakeAt(t testing.TB, d, c *Conn, version uint16) {
	t.Helper()
	if err := c.WriteMsg(&Hello{Req: 1, MinVersion: 1, MaxVersion: version, Name: "test"}); err != nil {
		t.Fatal(err)
	}
	m, err := d.ReadMsg()
	if err != nil {
		t.Fatal(err)
	}
	h := m.(*Hello)
	v, err := Negotiate(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WriteMsg(&Welcome{Req: h.Req, Version: v, ClientID: 1, Instance: testInstance, Fresh: true}); err != nil {
		t.Fatal(err)
	}
	m, err = c.ReadMsg()
	if err != nil {
		t.Fatal(err)
	}
	if w := m.(*Welcome); w.Version != version || c.Version() != version || d.Version() != version {
		t.Fatalf("versions: welcome %d, client %d, daemon %d, want %d", w.Version, c.Version(), d.Version(), version)
	}
}

// rawPipe returns a daemon Conn and the raw client socket, for sending arbitrary bytes.
func rawPipe(t testing.TB) (*Conn, *net.UnixConn) {
	t.Helper()
	d, c := pipe(t)
	return d, c.UnixConn()
}

func openPath(t testing.TB, path string) int {
	t.Helper()
	fd, err := syscall.Open(path, oPath|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

func sameFile(t testing.TB, a, b int) bool {
	t.Helper()
	var sa, sb syscall.Stat_t
	if err := syscall.Fstat(a, &sa); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Fstat(b, &sb); err != nil {
		t.Fatal(err)
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

func fcntl(t testing.TB, fd, cmd int) int {
	t.Helper()
	r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), uintptr(cmd), 0)
	if errno != 0 {
		t.Fatalf("fcntl(%d, %d): %v", fd, cmd, errno)
	}
	return int(r)
}

func TestConnHandshake(t *testing.T) {
	d, c := pipe(t)
	if c.Side() != ClientSide || d.Side() != DaemonSide || d.Version() != 0 {
		t.Fatal("sides")
	}
	handshake(t, d, c)
	if err := c.WriteMsg(&Ping{Req: 2}); err != nil {
		t.Fatal(err)
	}
	if m, err := d.ReadMsg(); err != nil || m.(*Ping).Req != 2 {
		t.Fatal(m, err)
	}
	if err := d.WriteMsg(&Pong{Req: 2}); err != nil {
		t.Fatal(err)
	}
	if m, err := c.ReadMsg(); err != nil || m.(*Pong).Req != 2 {
		t.Fatal(m, err)
	}
}

func TestConnPassesFDs(t *testing.T) {
	d, c := pipe(t)
	handshake(t, d, c)
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := testenv.OpenFDs(t)

	// Client → daemon: O_PATH fds of a directory and a file, as mark targets.
	for _, target := range []string{dir, file} {
		fd := openPath(t, target)
		if err := c.WriteMsg(&AddMark{Req: 3, Kind: fsevent.KindInode, Mask: fsevent.Open, Target: NewFD(fd)}); err != nil {
			t.Fatal(err)
		}
		m, err := d.ReadMsg()
		if err != nil {
			t.Fatal(err)
		}
		am := m.(*AddMark)
		got := am.Target.Int()
		if got < 0 || got == fd {
			t.Fatalf("received fd %d (sent %d)", got, fd)
		}
		if !sameFile(t, fd, got) {
			t.Fatalf("%s: received fd is another file", target)
		}
		if fcntl(t, got, syscall.F_GETFD)&syscall.FD_CLOEXEC == 0 {
			t.Error("received fd is not close-on-exec")
		}
		if fcntl(t, got, syscall.F_GETFL)&oPath == 0 {
			t.Error("received fd lost O_PATH")
		}
		syscall.Close(fd)
		CloseFDs(am)
		if am.Target.Valid() {
			t.Error("CloseFDs left the fd")
		}
	}

	// Daemon → client: a permission event's open file, readable by the client.
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WriteMsg(&Event{ID: 5, Mask: fsevent.OpenPerm, Path: file, FD: NewFD(int(f.Fd()))}); err != nil {
		t.Fatal(err)
	}
	f.Close() // the kernel holds the sent reference
	m, err := c.ReadMsg()
	if err != nil {
		t.Fatal(err)
	}
	ev := m.(*Event)
	got := os.NewFile(uintptr(ev.FD.Take()), "event")
	data, err := io.ReadAll(got)
	got.Close()
	if err != nil || string(data) != "content" {
		t.Fatalf("read through the event fd: %q, %v", data, err)
	}
	if n := testenv.OpenFDs(t); n != base {
		t.Errorf("%d fds open, %d before", n, base)
	}
}

func TestConnWriteMsgsBatch(t *testing.T) {
	d, c := pipe(t)
	handshake(t, d, c)
	dir := t.TempDir()
	var paths []string
	var ms []Msg
	var sent []int
	for i := range 20 {
		p := filepath.Join(dir, fmt.Sprint(i))
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
		if i%3 == 0 {
			ms = append(ms, &Event{Mask: fsevent.Create, Path: p})
			continue
		}
		fd := openPath(t, p)
		sent = append(sent, fd)
		ms = append(ms, &Event{ID: uint64(i + 1), Mask: fsevent.OpenPerm, Path: p, FD: NewFD(fd)})
	}
	ms = append(ms, &Overflow{Reason: OverflowConnection}, &Pong{Req: 9})
	if err := d.WriteMsgs(ms...); err != nil {
		t.Fatal(err)
	}
	for _, fd := range sent {
		syscall.Close(fd)
	}
	for i, want := range ms {
		m, err := c.ReadMsg()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if m.Type() != want.Type() {
			t.Fatalf("message %d is %v, want %v", i, m.Type(), want.Type())
		}
		if ev, ok := m.(*Event); ok {
			if ev.Path != paths[i] {
				t.Fatalf("message %d: path %s", i, ev.Path)
			}
			if ev.FD.Valid() != (ev.ID != 0) {
				t.Fatalf("message %d: fd %v", i, ev.FD)
			}
			if ev.FD.Valid() {
				fd := openPath(t, paths[i])
				if !sameFile(t, fd, ev.FD.Int()) {
					t.Fatalf("message %d: fd of another file", i)
				}
				syscall.Close(fd)
				ev.FD.Close()
			}
		}
	}
	// An invalid message anywhere writes nothing.
	if err := d.WriteMsgs(&Pong{Req: 1}, &Event{}); !errors.Is(err, ErrBadField) {
		t.Fatalf("WriteMsgs with a bad message: %v", err)
	}
	d.WriteMsg(&Pong{Req: 77})
	if m, err := c.ReadMsg(); err != nil || m.(*Pong).Req != 77 {
		t.Fatalf("after a refused batch: %v %v", m, err)
	}
}

// TestConnPartialWrites sends large frames with fds through a small socket buffer and a slow
// reader, so that sendmsg takes only part of a write and the rest follows without fds.
func TestConnPartialWrites(t *testing.T) {
	for _, blocking := range []bool{false, true} {
		t.Run(modeName(blocking), func(t *testing.T) { testConnPartialWrites(t, blocking) })
	}
}

func modeName(blocking bool) string {
	if blocking {
		return "blocking"
	}
	return "poller"
}

// setBlocking moves both ends out of the netpoller (SetBlockingReads), or leaves them.
func setBlocking(t testing.TB, blocking bool, conns ...*Conn) {
	t.Helper()
	if !blocking {
		return
	}
	for _, c := range conns {
		if err := c.SetBlockingReads(); err != nil {
			t.Fatal(err)
		}
	}
}

func testConnPartialWrites(t *testing.T, blocking bool) {
	d, c := pipe(t)
	handshake(t, d, c)
	for _, conn := range []*net.UnixConn{d.UnixConn(), c.UnixConn()} {
		conn.SetWriteBuffer(4096)
		conn.SetReadBuffer(4096)
	}
	setBlocking(t, blocking, d, c)
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o644)
	fd := openPath(t, file)
	defer syscall.Close(fd)
	long := "/" + strings.Repeat("d", MaxPath-1)
	const n = 200
	errc := make(chan error, 1)
	go func() {
		for i := range n {
			ms := []Msg{
				&Event{ID: uint64(i + 1), Mask: fsevent.OpenPerm, Path: long, FD: NewFD(fd)},
				&Event{Mask: fsevent.Modify, Path: long, OldPath: long},
				&Event{ID: uint64(i + 1), Mask: fsevent.AccessPerm, Path: long, OldPath: long, FD: NewFD(fd)},
			}
			if err := d.WriteMsgs(ms...); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for i := range 3 * n {
		if i%50 == 0 {
			time.Sleep(time.Millisecond) // let the writer fill the buffer
		}
		m, err := c.ReadMsg()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		ev := m.(*Event)
		if ev.Path != long || ev.FD.Valid() != (i%3 != 1) {
			t.Fatalf("message %d: %v", i, ev.Mask)
		}
		if ev.FD.Valid() && !sameFile(t, fd, ev.FD.Int()) {
			t.Fatalf("message %d: fd of another file", i)
		}
		ev.FD.Close()
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestConnConcurrentWriters(t *testing.T) {
	d, c := pipe(t)
	handshake(t, d, c)
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				var err error
				if i%2 == 0 {
					err = d.WriteMsg(&Event{ID: uint64(w*each + i + 1), Mask: fsevent.Open, Path: fmt.Sprintf("/w%d/%d", w, i)})
				} else {
					err = d.WriteMsgs(&Result{Req: uint64(w*each + i + 1)}, &Overflow{Lost: uint64(w)})
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	seen := map[uint64]bool{}
	for len(seen) < writers*each {
		m, err := c.ReadMsg()
		if err != nil {
			t.Fatal(err)
		}
		switch m := m.(type) {
		case *Event:
			w, i := (m.ID-1)/each, (m.ID-1)%each
			if m.Path != fmt.Sprintf("/w%d/%d", w, i) {
				t.Fatalf("event %d: path %s", m.ID, m.Path)
			}
			seen[m.ID] = true
		case *Result:
			seen[m.Req] = true
			m2, err := c.ReadMsg()
			if err != nil || m2.(*Overflow).Lost != (m.Req-1)/each {
				t.Fatalf("the batch was split: %v %v", m2, err)
			}
		}
	}
	wg.Wait()
}

// TestConnSplitWrites sends frames a byte at a time, with the fds on the first byte.
func TestConnSplitWrites(t *testing.T) {
	d, raw := rawPipe(t)
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o644)
	fd := openPath(t, file)
	defer syscall.Close(fd)
	var frames [][]byte
	for _, m := range []Msg{
		&Hello{Req: 1, MinVersion: 1, MaxVersion: 1, Name: "split"},
		&AddMark{Req: 2, Kind: fsevent.KindInode, Mask: fsevent.Open, Target: NewFD(fd)},
		&Ping{Req: 3},
		&RemoveMark{Req: 4, By: RemoveByTarget, Kind: fsevent.KindInode, Target: NewFD(fd)},
		&Bye{Req: 5},
	} {
		f, _ := mustEncode(t, m)
		frames = append(frames, f)
	}
	go func() {
		for i, f := range frames {
			for j := range f {
				var oob []byte
				if j == 0 && (i == 1 || i == 3) {
					oob = syscall.UnixRights(fd)
				}
				if _, _, err := raw.WriteMsgUnix(f[j:j+1], oob, nil); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	for i, want := range []Type{TypeHello, TypeAddMark, TypePing, TypeRemoveMark, TypeBye} {
		m, err := d.ReadMsg()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if m.Type() != want || m.RequestID() != uint64(i+1) {
			t.Fatalf("message %d: %v", i, m.Type())
		}
		if m.numFDs() == 1 {
			var got FD
			switch m := m.(type) {
			case *AddMark:
				got = m.Target
			case *RemoveMark:
				got = m.Target
			}
			if !sameFile(t, fd, got.Int()) {
				t.Fatal("fd of another file")
			}
		}
		CloseFDs(m)
	}
}

func TestConnRejects(t *testing.T) {
	hello, _ := mustEncode(t, &Hello{Req: 1, MinVersion: 1, MaxVersion: 1})
	addMark, _ := mustEncode(t, &AddMark{Req: 2, Kind: fsevent.KindInode, Target: NewFD(0)})
	ping, _ := mustEncode(t, &Ping{Req: 3})
	event, _ := mustEncode(t, &Event{Mask: fsevent.Open})
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o644)

	type write struct {
		b   []byte
		fds int // O_PATH fds to attach
	}
	for _, c := range []struct {
		name   string
		writes []write
		close  bool // close the client side after the writes
		code   Code
	}{
		{"declared-fd-not-sent", []write{{hello, 0}, {addMark, 0}}, false, CodeFDCount},
		{"fd-not-declared", []write{{hello, 0}, {ping, 1}}, false, CodeFDCount},
		{"fd-not-declared-then-frame", []write{{hello, 0}, {append(bytes.Clone(ping), ping...), 1}}, false, CodeFDCount},
		{"two-fds-one-frame", []write{{hello, 0}, {addMark, 2}}, false, CodeFDCount},
		{"too-many-fds", []write{{hello, 0}, {addMark[:1], 3}}, false, CodeFDCount},
		{"fd-on-hello", []write{{hello, 1}}, false, CodeFDCount},
		{"oversized", []write{{append(le32(MaxPayload+1), hello[4:HeaderSize]...), 0}}, false, CodeTooLarge},
		{"http", []write{{[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0}}, false, CodeTooLarge},
		{"unknown-type", []write{{frameOf(0x0042, 0, 1, nil), 0}}, false, CodeUnknownType},
		{"bad-field", []write{{patch(hello, 0, 'x'), 0}}, false, CodeBadField},
		{"truncated-header", []write{{hello[:10], 0}}, true, CodeTruncated},
		{"truncated-payload", []write{{hello[:30], 0}}, true, CodeTruncated},
		{"truncated-with-fd", []write{{hello, 0}, {addMark[:20], 1}}, true, CodeTruncated},
		{"fd-then-eof", []write{{hello, 0}, {ping, 1}}, true, CodeFDCount},
		{"request-before-hello", []write{{ping, 0}}, false, CodeUnexpected},
		{"second-hello", []write{{hello, 0}, {hello, 0}}, false, CodeUnexpected},
		{"daemon-message", []write{{hello, 0}, {event, 0}}, false, CodeUnexpected},
		{"daemon-message-first", []write{{event, 0}}, false, CodeUnexpected},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := testenv.OpenFDs(t)
			d, raw := rawPipe(t)
			for _, w := range c.writes {
				var fds []int
				for range w.fds {
					fds = append(fds, openPath(t, file))
				}
				var oob []byte
				if len(fds) > 0 {
					oob = syscall.UnixRights(fds...)
				}
				if _, _, err := raw.WriteMsgUnix(w.b, oob, nil); err != nil {
					t.Fatal(err)
				}
				for _, fd := range fds {
					syscall.Close(fd)
				}
			}
			if c.close {
				raw.CloseWrite()
			}
			var err error
			for range 5 {
				var m Msg
				if m, err = d.ReadMsg(); err != nil {
					break
				}
				CloseFDs(m)
			}
			wantCode(t, err, c.code)
			if _, err2 := d.ReadMsg(); err2 != err {
				t.Errorf("second ReadMsg: %v, want the same error", err2)
			}
			d.Close()
			raw.Close()
			if n := testenv.OpenFDs(t); n != base {
				t.Errorf("%d fds open after the rejection, %d before", n, base)
			}
		})
	}
}

func TestConnEOF(t *testing.T) {
	d, c := pipe(t)
	handshake(t, d, c)
	c.Close()
	if _, err := d.ReadMsg(); err != io.EOF {
		t.Fatalf("ReadMsg after the peer closed: %v, want io.EOF", err)
	}
	if _, err := d.ReadMsg(); err != io.EOF {
		t.Fatalf("second ReadMsg: %v", err)
	}
}

func TestConnReadTimeout(t *testing.T) {
	d, raw := rawPipe(t)
	hello, _ := mustEncode(t, &Hello{Req: 1, MinVersion: 1, MaxVersion: 1, Name: "slow"})
	d.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := d.ReadMsg(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadMsg with nothing sent: %v", err)
	}
	raw.Write(hello[:20])
	d.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := d.ReadMsg(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadMsg inside a frame: %v", err)
	}
	raw.Write(hello[20:])
	d.SetReadDeadline(time.Time{})
	m, err := d.ReadMsg()
	if err != nil || m.(*Hello).Name != "slow" {
		t.Fatalf("ReadMsg after the timeouts: %v %v", m, err)
	}
}

func TestConnCloseWhileReading(t *testing.T) {
	base := testenv.OpenFDs(t)
	d, raw := rawPipe(t)
	hello, _ := mustEncode(t, &Hello{Req: 1, MinVersion: 1, MaxVersion: 1})
	addMark, _ := mustEncode(t, &AddMark{Req: 2, Kind: fsevent.KindInode, Target: NewFD(0)})
	fd := openPath(t, t.TempDir())
	raw.Write(hello)
	raw.WriteMsgUnix(addMark[:10], syscall.UnixRights(fd), nil) // an fd waiting for its frame
	syscall.Close(fd)
	if _, err := d.ReadMsg(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, err := d.ReadMsg()
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	d.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("ReadMsg after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadMsg still blocked after Close")
	}
	raw.Close()
	if n := testenv.OpenFDs(t); n != base {
		t.Errorf("%d fds open after Close, %d before", n, base)
	}
	if err := d.WriteMsg(&Fatal{Code: CodeInternal}); err == nil {
		t.Error("WriteMsg after Close succeeded")
	}
	d.Close() // twice is fine
}

func TestConnWriteRules(t *testing.T) {
	d, c := pipe(t)
	for _, x := range []struct {
		conn *Conn
		m    Msg
	}{
		{c, &Ping{Req: 1}},              // before Hello
		{c, &Event{Mask: fsevent.Open}}, // a daemon message
		{d, &Event{Mask: fsevent.Open}}, // before Welcome
		{d, &Ping{Req: 1}},              // a client message
		{c, &Hello{}},                   // in order, but invalid
	} {
		err := x.conn.WriteMsg(x.m)
		if x.m.Type() == TypeHello {
			if !errors.Is(err, ErrBadField) {
				t.Errorf("%v side, invalid Hello: %v", x.conn.Side(), err)
			}
			continue
		}
		if !errors.Is(err, ErrUnexpected) {
			t.Errorf("%v side writing %v: %v", x.conn.Side(), x.m.Type(), err)
		}
	}
	// A Fatal may come first, e.g. when the daemon is full.
	if err := d.WriteMsg(&Fatal{Code: CodeLimit, Message: "too many clients"}); err != nil {
		t.Fatal(err)
	}
	m, err := c.ReadMsg()
	if err != nil || !errors.Is(m.(*Fatal).Err(), ErrLimit) {
		t.Fatalf("Fatal first: %v %v", m, err)
	}
	handshakeAfter := func() {
		if err := c.WriteMsg(&Hello{Req: 1, MinVersion: 1, MaxVersion: 1}); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteMsg(&Hello{Req: 2, MinVersion: 1, MaxVersion: 1}); !errors.Is(err, ErrUnexpected) {
			t.Errorf("second Hello: %v", err)
		}
		if err := d.WriteMsgs(&Welcome{Req: 1, Version: 1, ClientID: 1, Instance: testInstance}, &Welcome{Req: 1, Version: 1, ClientID: 1, Instance: testInstance}); !errors.Is(err, ErrUnexpected) {
			t.Errorf("two Welcomes: %v", err)
		}
	}
	handshakeAfter()
}

func TestPeerCred(t *testing.T) {
	d, _ := pipe(t)
	cred, err := d.PeerCred()
	if err != nil {
		t.Fatal(err)
	}
	if int(cred.Pid) != os.Getpid() || int(cred.Uid) != os.Getuid() || int(cred.Gid) != os.Getgid() {
		t.Fatalf("PeerCred = %+v", cred)
	}
}

func TestDial(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan *Conn, 1)
	go func() {
		uc, err := l.AcceptUnix()
		if err != nil {
			t.Error(err)
			accepted <- nil
			return
		}
		accepted <- NewConn(uc, DaemonSide)
	}()
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d := <-accepted
	if d == nil {
		t.FailNow()
	}
	defer d.Close()
	handshake(t, d, c)
	if _, err := Dial(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Fatal("Dial of a missing socket succeeded")
	}
}

func TestConnLargeFrame(t *testing.T) {
	d, c := pipe(t)
	handshake(t, d, c)
	st := &Stats{Req: 2, Clients: make([]ClientStats, MaxStatsClients)}
	for i := range st.Clients {
		st.Clients[i] = ClientStats{ID: uint64(i + 1), Name: strings.Repeat("n", MaxName)}
	}
	errc := make(chan error, 1)
	go func() { errc <- d.WriteMsgs(st, &Pong{Req: 3}) }()
	m, err := c.ReadMsg()
	if err != nil {
		t.Fatal(err)
	}
	if got := m.(*Stats); len(got.Clients) != MaxStatsClients || got.Clients[MaxStatsClients-1].ID != MaxStatsClients {
		t.Fatal("large Stats came back different")
	}
	if m, err := c.ReadMsg(); err != nil || m.Type() != TypePong {
		t.Fatal(m, err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if cap(c.rbuf) > clientReadBuffer || cap(d.wbuf) > maxKeptBuffer {
		t.Errorf("buffers grown for a large frame were kept: read %d, write %d", cap(c.rbuf), cap(d.wbuf))
	}
}

// With SetBlockingReads: messages and fds pass both ways, the socket leaves the netpoller
// without leaking a descriptor, deadlines are refused, and Close wakes a reader blocked in
// poll(2) and a writer blocked on a full socket.
func TestConnBlockingReads(t *testing.T) {
	base := testenv.OpenFDs(t)
	d, c := pipe(t)
	handshake(t, d, c)
	d.UnixConn().SetWriteBuffer(4096)
	c.UnixConn().SetReadBuffer(4096)
	setBlocking(t, true, d, c)
	if n := testenv.OpenFDs(t); n != base+2 {
		t.Errorf("%d fds open with a blocking pair, want %d", n, base+2)
	}
	if err := d.SetBlockingReads(); err != nil {
		t.Errorf("SetBlockingReads twice: %v", err)
	}
	for _, set := range []func(time.Time) error{d.SetDeadline, d.SetReadDeadline, d.SetWriteDeadline} {
		if err := set(time.Now().Add(time.Second)); !errors.Is(err, os.ErrNoDeadline) {
			t.Errorf("a deadline after SetBlockingReads: %v, want os.ErrNoDeadline", err)
		}
	}

	// Both ways, with an fd; the reader is already blocked when the message is sent.
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, []byte("x"), 0o644)
	fd := openPath(t, file)
	got := make(chan Msg, 1)
	go func() {
		m, err := c.ReadMsg()
		if err != nil {
			t.Error(err)
		}
		got <- m
	}()
	time.Sleep(10 * time.Millisecond)
	if err := d.WriteMsg(&Event{ID: 7, Mask: fsevent.OpenPerm, Path: file, FD: NewFD(fd)}); err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd)
	ev := (<-got).(*Event)
	if ev.ID != 7 || !ev.FD.Valid() {
		t.Fatalf("event: %+v", ev)
	}
	ev.FD.Close()
	if err := c.WriteMsg(&Respond{EventID: 7, Verdict: fsevent.Deny}); err != nil {
		t.Fatal(err)
	}
	if m, err := d.ReadMsg(); err != nil || m.(*Respond).EventID != 7 {
		t.Fatalf("answer: %v %v", m, err)
	}

	// Close wakes a blocked reader (d: the client sends nothing more)...
	errc := make(chan error, 2)
	go func() {
		_, err := d.ReadMsg()
		errc <- err
	}()
	// ... and a writer blocked on the full socket (nobody reads c).
	go func() {
		long := "/" + strings.Repeat("w", MaxPath-1)
		for {
			if err := d.WriteMsg(&Event{Mask: fsevent.Modify, Path: long}); err != nil {
				errc <- err
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	d.Close() // its own Close, not the peer's, must wake both
	for range 2 {
		select {
		case err := <-errc:
			if err == nil {
				t.Error("a blocked read or write returned no error after Close")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a read or write still blocked after Close")
		}
	}
	c.Close()
	if n := testenv.OpenFDs(t); n != base {
		t.Errorf("%d fds open after Close, %d before", n, base)
	}
	if err := d.SetBlockingReads(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Errorf("SetBlockingReads after Close: %v", err)
	}
}

// A peer that goes away is EOF to a blocking reader, as to a polled one.
func TestConnBlockingEOF(t *testing.T) {
	d, c := pipe(t)
	handshake(t, d, c)
	setBlocking(t, true, d)
	errc := make(chan error, 1)
	go func() {
		_, err := d.ReadMsg()
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	c.Close()
	select {
	case err := <-errc:
		if err != io.EOF {
			t.Fatalf("ReadMsg after the peer closed: %v, want io.EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadMsg still blocked after the peer closed")
	}
}

// TryWriteMsgs writes what fits without waiting, whole frames only: a reader sees every
// message once, in order, with its fds, whether TryWriteMsgs or WriteMsgs sent it.
func TestConnTryWriteMsgs(t *testing.T) {
	d, c := pipe(t)
	handshake(t, d, c)
	if n, err := d.TryWriteMsgs(&Event{ID: 1, Mask: fsevent.OpenPerm}); n != 0 || err != nil {
		t.Fatalf("TryWriteMsgs without SetBlockingReads: %d, %v; want 0, nil", n, err)
	}
	d.UnixConn().SetWriteBuffer(4096)
	setBlocking(t, true, d, c)
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o644)
	fd := openPath(t, file)
	defer syscall.Close(fd)

	// Nobody reads: TryWriteMsgs stops when the socket is full, and never blocks.
	long := "/" + strings.Repeat("t", 1000)
	var sent []Msg
	tries := 0
	for {
		ms := []Msg{
			&Event{ID: uint64(len(sent) + 1), Mask: fsevent.OpenPerm, Path: long, FD: NewFD(fd)},
			&Event{Mask: fsevent.Modify, Path: long},
			&Event{Mask: fsevent.Modify, Path: long},
		}
		n, err := d.TryWriteMsgs(ms...)
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, ms[:n]...)
		if n < len(ms) {
			// The rest goes with WriteMsgs, once a reader drains the socket.
			rest := ms[n:]
			done := make(chan error, 1)
			go func() { done <- d.WriteMsgs(rest...) }()
			for i := range len(sent) + len(rest) {
				m, err := c.ReadMsg()
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				ev := m.(*Event)
				want := append(sent, rest...)[i].(*Event)
				if ev.Path != long || ev.Mask != want.Mask || ev.ID != want.ID || ev.FD.Valid() != want.FD.Valid() {
					t.Fatalf("message %d: %v id %d fd %v; want %v id %d", i, ev.Mask, ev.ID, ev.FD.Valid(), want.Mask, want.ID)
				}
				if ev.FD.Valid() && !sameFile(t, fd, ev.FD.Int()) {
					t.Fatalf("message %d: fd of another file", i)
				}
				ev.FD.Close()
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			break
		}
		if tries++; tries > 10000 {
			t.Fatal("TryWriteMsgs never found the socket full")
		}
	}
	// Small messages to an empty socket go at once; one too long to go out in one piece
	// (the send buffer is 4 KiB here) is left to WriteMsgs, as is what follows it.
	small := &Event{Mask: fsevent.Modify, Path: "/s"}
	huge := &Event{Mask: fsevent.Modify, Path: "/" + strings.Repeat("h", MaxPath-1)}
	if n, err := d.TryWriteMsgs(small, small, huge, small); n != 2 || err != nil {
		t.Fatalf("small, small, huge, small to an empty socket: %d written, %v; want 2", n, err)
	}
	for range 2 {
		if _, err := c.ReadMsg(); err != nil {
			t.Fatal(err)
		}
	}
}

// TryReadMsg never waits: nothing, then a frame sent in two parts (nothing until it is
// whole), with an fd; errors as ReadMsg's; not before SetBlockingReads.
func TestConnTryReadMsg(t *testing.T) {
	d, c := pipe(t)
	handshake(t, d, c)
	if _, err := d.TryReadMsg(); !errors.Is(err, ErrNotRaw) {
		t.Fatalf("TryReadMsg before SetBlockingReads: %v, want ErrNotRaw", err)
	}
	if _, err := d.RawFd(); !errors.Is(err, ErrNotRaw) {
		t.Fatalf("RawFd before SetBlockingReads: %v, want ErrNotRaw", err)
	}
	setBlocking(t, true, d)
	if fd, err := d.RawFd(); err != nil || fd < 0 {
		t.Fatalf("RawFd: %d %v", fd, err)
	}
	if m, err := d.TryReadMsg(); m != nil || err != nil {
		t.Fatalf("TryReadMsg with nothing sent: %v %v", m, err)
	}
	frame, _, err := Encode(&Respond{EventID: 9, Verdict: fsevent.Deny})
	if err != nil {
		t.Fatal(err)
	}
	raw := c.UnixConn()
	if _, err := raw.Write(frame[:HeaderSize+2]); err != nil {
		t.Fatal(err)
	}
	if m, err := d.TryReadMsg(); m != nil || err != nil {
		t.Fatalf("TryReadMsg with part of a frame: %v %v", m, err)
	}
	if _, err := raw.Write(frame[HeaderSize+2:]); err != nil {
		t.Fatal(err)
	}
	if m, err := d.TryReadMsg(); err != nil || m == nil || m.(*Respond).EventID != 9 {
		t.Fatalf("TryReadMsg of the whole frame: %v %v", m, err)
	}
	// Two frames in one write: the second stays buffered, where BufferedMsg finds it and
	// poll(2) would not.
	if _, err := raw.Write(append(append([]byte(nil), frame...), frame...)); err != nil {
		t.Fatal(err)
	}
	if m, err := d.BufferedMsg(); m != nil || err != nil {
		t.Fatalf("BufferedMsg before any read: %v %v", m, err)
	}
	for i := 0; i < 2; i++ {
		read := d.TryReadMsg
		if i == 1 {
			read = d.BufferedMsg
		}
		if m, err := read(); err != nil || m == nil || m.(*Respond).EventID != 9 {
			t.Fatalf("frame %d of two: %v %v", i, m, err)
		}
	}
	if m, err := d.BufferedMsg(); m != nil || err != nil {
		t.Fatalf("BufferedMsg with nothing left: %v %v", m, err)
	}
	// With an fd.
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, []byte("x"), 0o644)
	fd := openPath(t, file)
	if err := c.WriteMsg(&AddMark{Req: 3, Kind: fsevent.KindInode, Mask: fsevent.Open, Target: NewFD(fd)}); err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd)
	m, err := d.TryReadMsg()
	if err != nil || m == nil {
		t.Fatalf("TryReadMsg of an AddMark: %v %v", m, err)
	}
	if am := m.(*AddMark); !am.Target.Valid() {
		t.Fatalf("AddMark without its fd: %+v", am)
	} else {
		am.Target.Close()
	}
	// The peer gone: EOF, and for good.
	c.Close()
	for i := 0; i < 2; i++ {
		if _, err := d.TryReadMsg(); !errors.Is(err, io.EOF) {
			t.Fatalf("TryReadMsg after the peer closed (%d): %v, want EOF", i, err)
		}
	}
}

// Version 2's event fields never reach a version-1 peer: the writer refuses them (the
// daemon drops them first with ForVersion), and a reader refuses them on a version-1
// connection.
func TestEventVersion2FieldsNeedVersion2(t *testing.T) {
	deep := "/" + strings.Repeat("d", MaxPath+10)
	v2 := []*Event{
		{ID: 1, Mask: fsevent.OpenPerm, PathUnknown: true},
		{Mask: fsevent.Create, Path: "/x", HasObject: true, Dev: 1, Ino: 2},
		{Mask: fsevent.Create, Path: deep},
		{Mask: fsevent.Rename, Path: "/x", OldPath: deep},
	}
	for _, version := range []uint16{1, 2} {
		d, c := pipe(t)
		handshakeAt(t, d, c, version)
		for _, ev := range v2 {
			e := *ev
			err := d.WriteMsg(&e)
			if version == 1 {
				wantCode(t, err, CodeBadField)
				e.ForVersion(1)
				if e.V2() || len(e.Path) > MaxPath || e.PathUnknown || e.HasObject {
					t.Fatalf("ForVersion(1) left %+v", e)
				}
				if err := d.WriteMsg(&e); err != nil {
					t.Fatalf("after ForVersion(1): %v", err)
				}
			} else if err != nil {
				t.Fatalf("version 2: %v", err)
			}
			got, err := c.ReadMsg()
			if err != nil {
				t.Fatalf("version %d, %+v: %v", version, ev, err)
			}
			if version == 2 && !reflect.DeepEqual(got, ev) {
				t.Fatalf("version 2: got %+v, want %+v", got, ev)
			}
		}
	}
	// A version-1 reader refuses version-2 fields written by a peer that ignores the rule.
	d, c := pipe(t)
	c.WriteMsg(&Hello{Req: 1, MinVersion: 1, MaxVersion: 1})
	d.ReadMsg()
	d.WriteMsg(&Welcome{Req: 1, Version: 1, ClientID: 1, Instance: testInstance})
	c.ReadMsg()
	frame, _ := mustEncode(t, &Event{ID: 1, Mask: fsevent.OpenPerm, PathUnknown: true})
	if _, err := d.UnixConn().Write(frame); err != nil {
		t.Fatal(err)
	}
	_, err := c.ReadMsg()
	wantCode(t, err, CodeBadField)
}

// TryWriteFrames writes pre-encoded frames without waiting, on a pollable socket (the daemon's
// notification clients) and after SetBlockingReads alike: nobody reads, so it stops when the
// socket is full, at a frame boundary (every frame arrives whole, in order, once the rest goes
// with WriteFrames); a frame too long to go in one piece is left to WriteFrames; a partial
// frame is refused.
func TestConnTryWriteFrames(t *testing.T) {
	for _, blocking := range []bool{false, true} {
		t.Run(fmt.Sprintf("blocking=%v", blocking), func(t *testing.T) {
			d, c := pipe(t)
			handshake(t, d, c)
			d.UnixConn().SetWriteBuffer(4096)
			if blocking {
				setBlocking(t, true, d, c)
			}
			long := "/" + strings.Repeat("t", 300)
			var frames []byte
			for i := range 400 {
				var err error
				frames, err = AppendEvent(frames, &Event{Mask: fsevent.Modify, Path: long, Pid: int32(i + 1)})
				if err != nil {
					t.Fatal(err)
				}
			}
			n, err := d.TryWriteFrames(frames)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 || n >= len(frames) {
				t.Fatalf("TryWriteFrames wrote %d of %d bytes to a 4 KiB socket nobody reads; want part", n, len(frames))
			}
			done := make(chan error, 1)
			go func() { done <- d.WriteFrames(frames[n:]) }()
			for i := range 400 {
				m, err := c.ReadMsg()
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if ev := m.(*Event); ev.Path != long || ev.Pid != int32(i+1) {
					t.Fatalf("message %d: pid %d path %d bytes; want pid %d", i, ev.Pid, len(ev.Path), i+1)
				}
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			huge, err := AppendEvent(nil, &Event{Mask: fsevent.Modify, Path: "/" + strings.Repeat("h", MaxPath-1)})
			if err != nil {
				t.Fatal(err)
			}
			small, _ := AppendEvent(nil, &Event{Mask: fsevent.Modify, Path: "/s"})
			b := append(append(append([]byte{}, small...), huge...), small...)
			if n, err := d.TryWriteFrames(b); n != len(small) || err != nil {
				t.Fatalf("small, huge, small to an empty socket: %d written, %v; want %d", n, err, len(small))
			}
			if _, err := c.ReadMsg(); err != nil {
				t.Fatal(err)
			}
			if n, err := d.TryWriteFrames(small[:len(small)-1]); n != 0 || err == nil {
				t.Fatalf("a partial frame: %d, %v; want an error", n, err)
			}
		})
	}
}

// AppendEvent into a buffer with room makes no allocation (the daemon encodes every
// notification with it).
func TestAppendEventAllocs(t *testing.T) {
	buf := make([]byte, 0, 4096)
	ev := &Event{Mask: fsevent.Modify, Path: "/some/path", Name: "path", Comm: "cat", Pid: 1, HasObject: true, Dev: 1, Ino: 2}
	if a := testing.AllocsPerRun(100, func() {
		var err error
		if buf, err = AppendEvent(buf[:0], ev); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("%v allocations per AppendEvent, want 0", a)
	}
}

// A reader blocked in ReadMsg after SetBlockingReads is not woken by its peer reading what
// the connection wrote. (In a unix stream socket's recvmsg it was, each time: the peer's read
// frees the writer's buffer space, and the kernel's "room to write" wake-up reaches a reader
// sleeping in recvmsg on the same socket — a second wake-up per event of a permission client,
// on the daemon's CPU; see rawSock.recvmsg.) The reader's thread's voluntary context
// switches are counted while its peer reads 200 messages it wrote.
func TestConnBlockingReaderNotWokenByPeerReads(t *testing.T) {
	d, c := pipe(t)
	handshake(t, d, c)
	setBlocking(t, true, c)
	tidc := make(chan int, 1)
	got := make(chan Msg, 1)
	go func() {
		runtime.LockOSThread() // the thread the read blocks on is this goroutine's
		defer runtime.UnlockOSThread()
		tidc <- syscall.Gettid()
		m, err := c.ReadMsg()
		if err != nil {
			t.Error(err)
		}
		got <- m
	}()
	tid := <-tidc
	switches := func() int {
		b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/status", tid))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "voluntary_ctxt_switches:"); ok {
				var n int
				fmt.Sscan(v, &n)
				return n
			}
		}
		t.Fatal("no voluntary_ctxt_switches in /proc/self/task/TID/status")
		return 0
	}
	// Until the reader sleeps in its wait (state S, not switching any more).
	before := -1
	for deadline := time.Now().Add(5 * time.Second); ; {
		time.Sleep(20 * time.Millisecond)
		n := switches()
		if n == before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the reader's thread never settled in its wait")
		}
		before = n
	}
	const n = 200
	for i := range n {
		if err := c.WriteMsg(&Respond{EventID: uint64(i + 1), Verdict: fsevent.Allow}); err != nil {
			t.Fatal(err)
		}
		if m, err := d.ReadMsg(); err != nil || m.(*Respond).EventID != uint64(i+1) {
			t.Fatalf("answer %d: %v %v", i+1, m, err)
		}
	}
	woken := switches() - before
	// The reader still waits, and gets what comes next.
	select {
	case m := <-got:
		t.Fatalf("the reader returned %v with nothing sent to it", m)
	default:
	}
	if err := d.WriteMsg(&Pong{Req: 9}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if p, ok := m.(*Pong); !ok || p.Req != 9 {
			t.Fatalf("the reader got %v, want the Pong", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the reader did not get the Pong")
	}
	// A few for the runtime (a GC, a signal) at most; the old wait had one per peer read.
	if woken > n/20 {
		t.Errorf("the blocked reader's thread switched %d times while its peer read %d messages it wrote, want at most %d", woken, n, n/20)
	}
}

// TestFlushCacheNeedsVersion6: FlushCache goes only on a connection of version 6 or later:
// a client of a version-5 connection cannot write it, and a daemon of one refuses it read from
// a peer that ignores the rule (unexpected: a version-5 daemon would not know the type at all).
func TestFlushCacheNeedsVersion6(t *testing.T) {
	for _, version := range []uint16{5, 6} {
		d, c := pipe(t)
		handshakeAt(t, d, c, version)
		err := c.WriteMsg(&FlushCache{Req: 2})
		if version < VersionFlush {
			wantCode(t, err, CodeUnexpected)
			frame, _ := mustEncode(t, &FlushCache{Req: 2})
			if _, err := c.UnixConn().Write(frame); err != nil {
				t.Fatal(err)
			}
			_, err = d.ReadMsg()
			wantCode(t, err, CodeUnexpected)
			continue
		}
		if err != nil {
			t.Fatalf("version %d: %v", version, err)
		}
		if m, err := d.ReadMsg(); err != nil || m.(*FlushCache).Req != 2 {
			t.Fatalf("version %d: read %v, %v", version, m, err)
		}
	}
}
