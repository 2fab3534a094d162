//go:build linux

package client_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/daemon"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
	"github.com/fsnotifyd/fsnotifyd/internal/testdaemon"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// hang bounds steps that take milliseconds, generously.
const hang = 20 * time.Second

// serve runs a real daemon in this process on a socket of its own until the test ends; stop
// ends it earlier.
func serve(t *testing.T, cfg daemon.Config) (sock string, stop func()) {
	t.Helper()
	testenv.RequireRoot(t)
	sock = filepath.Join(testenv.PublicDir(t), "d.sock")
	return sock, serveOn(t, cfg, sock)
}

func serveOn(t *testing.T, cfg daemon.Config, sock string) (stop func()) {
	t.Helper()
	return testdaemon.Start(t, daemon.Options{Config: cfg}, sock).Stop
}

func dial(t *testing.T, opts client.Options) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	c, err := client.Dial(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestErrUnavailable: without a daemon, Dial fails at once with ErrUnavailable, whether the
// socket is missing or stale, with or without Reconnect, and says how to start one.
func TestErrUnavailable(t *testing.T) {
	dir := testenv.PublicDir(t)
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	for _, tc := range []struct {
		name, sock string
		reconnect  bool
	}{
		{"missing socket", filepath.Join(dir, "none.sock"), false},
		{"stale socket", stale, false},
		{"missing socket, Reconnect", filepath.Join(dir, "none.sock"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			c, err := client.Dial(context.Background(), client.Options{Socket: tc.sock, Reconnect: tc.reconnect})
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded without a daemon")
			}
			if !errors.Is(err, client.ErrUnavailable) || !client.IsUnavailable(err) {
				t.Errorf("Dial: %v, want ErrUnavailable", err)
			}
			if errors.Is(err, client.ErrPermission) || errors.Is(err, client.ErrNotFound) {
				t.Errorf("Dial: %v matches another typed error too", err)
			}
			if !strings.Contains(err.Error(), "fsnotifyd serve") || !strings.Contains(err.Error(), tc.sock) {
				t.Errorf("Dial: %q does not name the socket and how to start a daemon", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Dial took %v to fail", d)
			}
		})
	}
}

// TestErrPermission: the daemon's refusals of an unprivileged client (uid 65534, in a child
// process) are ErrPermission, which is also fs.ErrPermission.
func TestErrPermission(t *testing.T) {
	if testenv.IsChild() {
		return // run as TestErrPermissionChild
	}
	sock, _ := serve(t, daemon.DefaultConfig())
	scratch := testenv.Tmpfs(t)
	for d := filepath.Dir(scratch); strings.HasPrefix(d, os.TempDir()+"/"); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	t.Setenv("FSND_SOCKET", sock)
	t.Setenv("FSND_DIR", scratch)
	out, err := testenv.RunTestAs(t, 65534, 65534, "TestErrPermissionChild")
	t.Logf("as uid 65534:\n%s", out)
	if err != nil {
		t.Errorf("the child failed: %v", err)
	}
}

func TestErrPermissionChild(t *testing.T) {
	if !testenv.IsChild() {
		t.Skip("runs as uid 65534 under TestErrPermission")
	}
	sock, dir := os.Getenv("FSND_SOCKET"), os.Getenv("FSND_DIR")
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	check := func(what string, err error) {
		t.Helper()
		switch {
		case err == nil:
			t.Errorf("%s: no error", what)
		case !errors.Is(err, client.ErrPermission) || !errors.Is(err, fs.ErrPermission):
			t.Errorf("%s: %v, want ErrPermission (and fs.ErrPermission)", what, err)
		case errors.Is(err, client.ErrNotFound) || errors.Is(err, client.ErrUnavailable):
			t.Errorf("%s: %v also matches another typed error", what, err)
		default:
			var e *client.Error
			if !errors.As(err, &e) || e.Code != proto.CodePermission || e.Msg == "" {
				t.Errorf("%s: %v, want a *client.Error with the daemon's message", what, err)
			}
			t.Logf("%s: %v", what, err)
		}
	}
	_, err := client.Dial(ctx, client.Options{Socket: sock, Class: engine.ClassContent})
	check("a content-class Dial", err)
	c, err := client.Dial(ctx, client.Options{Socket: sock})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.AddMark(ctx, dir, engine.KindMount, engine.MarkSpec{Mask: engine.Open})
	check("a mount mark", err)
	_, err = c.AddMark(ctx, dir, engine.KindFilesystem, engine.MarkSpec{Mask: engine.Open})
	check("a filesystem mark", err)
	if _, err := c.AddMark(ctx, dir, engine.KindInode, engine.MarkSpec{Mask: engine.Open | engine.EventOnChild}); err != nil {
		t.Errorf("an inode mark on a directory it may read: %v", err)
	}
}

// TestErrNotFound: removing an unknown mark, and answering an event that is not pending, are
// ErrNotFound (and fs.ErrNotExist); watching a missing path is the open's fs.ErrNotExist.
func TestErrNotFound(t *testing.T) {
	sock, _ := serve(t, daemon.DefaultConfig())
	c := dial(t, client.Options{Socket: sock, Class: engine.ClassContent, Deadline: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, client.ErrNotFound) || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v, want ErrNotFound (and fs.ErrNotExist)", what, err)
		} else if errors.Is(err, client.ErrPermission) || errors.Is(err, client.ErrUnavailable) {
			t.Errorf("%s: %v also matches another typed error", what, err)
		} else {
			t.Logf("%s: %v", what, err)
		}
	}
	check("RemoveMark of an unknown mark", c.RemoveMark(ctx, 42))
	check("RespondWait to an unknown event", c.RespondWait(ctx, 12345, engine.Response{}))
	dir := t.TempDir()
	id, err := c.AddMark(ctx, dir, engine.KindInode, engine.MarkSpec{Mask: engine.Create | engine.EventOnChild})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveMark(ctx, id); err != nil {
		t.Fatal(err)
	}
	check("RemoveMark twice", c.RemoveMark(ctx, id))
	_, err = c.AddMark(ctx, filepath.Join(dir, "missing"), engine.KindInode, engine.MarkSpec{Mask: engine.Open})
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, client.ErrUnavailable) {
		t.Errorf("AddMark of a missing path: %v, want fs.ErrNotExist", err)
	}
}

// accessor opens path from another process (the daemon exempts its own); it reports the
// open's outcome on the returned channel.
func accessor(t *testing.T, path string) <-chan error {
	t.Helper()
	cmd := exec.Command("sh", "-c", `exec 3< "$0"`, path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := make(chan error, 1)
	exited := make(chan struct{})
	go func() { ch <- cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	return ch
}

// scratchFile mounts a scratch tmpfs (testenv.Tmpfs) with one file, f, holding content, and
// returns both paths.
func scratchFile(t *testing.T, content string) (scratch, file string) {
	t.Helper()
	scratch = testenv.Tmpfs(t)
	file = filepath.Join(scratch, "f")
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return scratch, file
}

// TestCloseSemantics: Close answers the client's pending permission events with its close
// verdict at once, closes Events, is idempotent, and everything after it is ErrClosed.
func TestCloseSemantics(t *testing.T) {
	sock, _ := serve(t, daemon.DefaultConfig())
	scratch, file := scratchFile(t, "x")
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{Socket: sock, Class: engine.ClassContent, Deadline: time.Minute, CloseVerdict: engine.Deny})
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.AddMark(ctx, scratch, engine.KindInode, engine.MarkSpec{Mask: engine.OpenPerm | engine.EventOnChild})
	if err != nil {
		t.Fatal(err)
	}
	done := accessor(t, file)
	var ev client.Event
	select {
	case ev = <-c.Events():
	case <-time.After(hang):
		t.Fatal("no permission event")
	}
	if ev.ID == 0 || ev.Path != file || ev.Mark != id {
		t.Fatalf("event %+v, want a permission event for %s through mark %d", ev, file, id)
	}
	select {
	case err := <-done:
		t.Fatalf("the open returned (%v) before anyone answered", err)
	case <-time.After(50 * time.Millisecond):
	}
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("the open pending at Close succeeded; the close verdict is deny")
		}
		t.Logf("the open pending at Close failed (%v) %v after Close", err, time.Since(start).Round(time.Microsecond))
	case <-time.After(hang):
		t.Fatal("the open pending at Close still waits")
	}
	if _, ok := <-c.Events(); ok {
		t.Errorf("Events is not closed after Close")
	}
	if err := c.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
	for what, err := range map[string]error{
		"AddMark": func() error {
			_, err := c.AddMark(ctx, scratch, engine.KindInode, engine.MarkSpec{Mask: engine.Open})
			return err
		}(),
		"RemoveMark":  c.RemoveMark(ctx, id),
		"Stats":       func() error { _, err := c.Stats(ctx, false); return err }(),
		"Ping":        c.Ping(ctx),
		"Respond":     c.Respond(ev.ID, engine.Response{}),
		"RespondWait": c.RespondWait(ctx, ev.ID, engine.Response{}),
	} {
		if !errors.Is(err, client.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", what, err)
		}
	}
	if m := c.Marks(); len(m) != 0 {
		t.Errorf("Marks after Close: %v", m)
	}
}

// TestConnectionLost: without Reconnect, losing the daemon closes Events and later requests
// fail; with Reconnect, Close returns promptly while the client waits to reconnect.
func TestConnectionLost(t *testing.T) {
	t.Run("without Reconnect", func(t *testing.T) {
		sock, stop := serve(t, daemon.DefaultConfig())
		c := dial(t, client.Options{Socket: sock})
		stop()
		select {
		case _, ok := <-c.Events():
			if ok {
				t.Fatal("an event after the daemon stopped")
			}
		case <-time.After(hang):
			t.Fatal("Events is still open after the daemon stopped")
		}
		if err := c.Ping(context.Background()); !errors.Is(err, client.ErrClosed) && !errors.Is(err, client.ErrUnavailable) {
			t.Errorf("Ping after the daemon stopped: %v, want ErrClosed or ErrUnavailable", err)
		}
	})
	t.Run("with Reconnect", func(t *testing.T) {
		sock, stop := serve(t, daemon.DefaultConfig())
		c := dial(t, client.Options{Socket: sock, Reconnect: true})
		stop()
		time.Sleep(300 * time.Millisecond) // a few reconnection attempts
		start := time.Now()
		c.Close()
		if d := time.Since(start); d > time.Second {
			t.Errorf("Close took %v while reconnecting", d)
		}
	})
}

// fakeDaemon speaks the daemon's side of the protocol by hand, for what a real daemon does
// too rarely to test: events racing a reconnection's marks, a silent handshake.
type fakeDaemon struct {
	t    *testing.T
	sock string
	ln   *net.UnixListener
	inst proto.InstanceID
	n    uint64
	// class, if set, is the class every Welcome grants (a daemon's bug); else the Hello's.
	class *engine.Class
}

func newFake(t *testing.T) *fakeDaemon {
	f := &fakeDaemon{t: t, sock: filepath.Join(testenv.PublicDir(t), "f.sock")}
	var err error
	f.ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: f.sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.ln.Close() })
	f.inst[0] = 1
	return f
}

// newFakeAs is newFake on sock, listening as cred: the socket's peer credentials, which a
// client reads, are cred's (an impostor daemon of another user).
func newFakeAs(t *testing.T, cred *syscall.Credential, sock string) *fakeDaemon {
	f := &fakeDaemon{t: t, sock: sock, ln: testenv.ListenAs(t, cred, sock)}
	f.inst[0] = 1
	return f
}

// accept takes the next connection and, with welcome, answers its Hello.
func (f *fakeDaemon) accept(welcome bool) *proto.Conn {
	f.t.Helper()
	f.ln.SetDeadline(time.Now().Add(hang))
	uc, err := f.ln.AcceptUnix()
	if err != nil {
		f.t.Fatal(err)
	}
	conn := proto.NewConn(uc, proto.DaemonSide)
	f.t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(hang))
	m, err := conn.ReadMsg()
	if err != nil {
		f.t.Fatal(err)
	}
	if welcome {
		f.n++
		f.inst[1]++
		class := m.(*proto.Hello).Class // granted as asked, as the daemon does
		if f.class != nil {
			class = *f.class
		}
		if err := conn.WriteMsg(&proto.Welcome{Req: m.RequestID(), Version: proto.Version, ClientID: f.n, Instance: f.inst,
			Fresh: true, Class: class, DaemonVersion: "fake"}); err != nil {
			f.t.Fatal(err)
		}
	}
	return conn
}

// dial connects a client with opts (to f) and accepts its connection; the client is nil if
// Dial failed (the test has failed then).
func (f *fakeDaemon) dial(opts client.Options) (*client.Client, *proto.Conn) {
	f.t.Helper()
	opts.Socket = f.sock
	ready := make(chan *client.Client, 1)
	go func() {
		c, err := client.Dial(context.Background(), opts)
		if err != nil {
			f.t.Error(err)
		}
		ready <- c
	}()
	conn := f.accept(true)
	return <-ready, conn
}

// expect reads the next request, which must be a T.
func expect[T proto.Msg](t *testing.T, conn *proto.Conn) T {
	t.Helper()
	m, err := conn.ReadMsg()
	if err != nil {
		t.Fatal(err)
	}
	v, ok := m.(T)
	if !ok {
		t.Fatalf("got %T, want %T", m, v)
	}
	proto.CloseFDs(m)
	return v
}

func nextEvent(t *testing.T, c *client.Client) client.Event {
	t.Helper()
	return nextEventWithin(t, c, hang)
}

// TestReconnectKeepsEarlyEvents: after a reconnection, a permission event that the daemon
// sends for a mark placed again before it answers the AddMark is delivered after the Resync
// (not dropped, which would leave the accessing process waiting for the deadline), and
// events of the new connection come after the Resync.
func TestReconnectKeepsEarlyEvents(t *testing.T) {
	f := newFake(t)
	dir := t.TempDir()
	c, conn := f.dial(client.Options{Class: engine.ClassContent, Reconnect: true})
	if c == nil {
		return
	}
	defer c.Close()
	added := make(chan error, 1)
	go func() {
		_, err := c.AddMark(context.Background(), dir, engine.KindInode, engine.MarkSpec{Mask: engine.OpenPerm | engine.EventOnChild})
		added <- err
	}()
	am := expect[*proto.AddMark](t, conn)
	conn.WriteMsg(&proto.Result{Req: am.Req, ID: 1})
	if err := <-added; err != nil {
		t.Fatal(err)
	}
	conn.Close() // the daemon restarts

	conn = f.accept(true)
	am = expect[*proto.AddMark](t, conn)
	early := &proto.Event{ID: 7, Mask: engine.OpenPerm, Path: filepath.Join(dir, "early"), Pid: 1}
	late := &proto.Event{ID: 8, Mask: engine.OpenPerm, Path: filepath.Join(dir, "late"), Pid: 1}
	if err := conn.WriteMsgs(early, &proto.Result{Req: am.Req, ID: 1}); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, c); !ev.Resync {
		t.Fatalf("first event after the reconnection: %+v, want the Resync", ev)
	}
	conn.WriteMsg(late)
	for _, want := range []uint64{7, 8} {
		ev := nextEvent(t, c)
		if ev.ID != want {
			t.Fatalf("event %+v, want permission event %d", ev, want)
		}
		if err := c.Respond(ev.ID, engine.Response{}); err != nil {
			t.Fatal(err)
		}
		if r := expect[*proto.Respond](t, conn); r.EventID != want {
			t.Errorf("the daemon got an answer for %d, want %d", r.EventID, want)
		}
	}
}

// TestCloseDuringSilentHandshake: Close returns promptly while the client is reconnecting to
// a daemon that accepted the connection but does not answer the Hello.
func TestCloseDuringSilentHandshake(t *testing.T) {
	f := newFake(t)
	c, conn := f.dial(client.Options{Reconnect: true})
	if c == nil {
		return
	}
	conn.Close()
	f.accept(false) // the reconnection's Hello, unanswered
	start := time.Now()
	c.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v while the reconnection's handshake hung", d)
	}
}

// TestEventFDs: a permission event carries its open file when the daemon grants it; the
// client reads the content through it and answers.
func TestEventFDs(t *testing.T) {
	sock, _ := serve(t, daemon.DefaultConfig())
	scratch, file := scratchFile(t, "content")
	c := dial(t, client.Options{Socket: sock, Class: engine.ClassContent, Deadline: 10 * time.Second, WantEventFDs: true})
	if !c.Welcome().EventFDs {
		t.Fatal("root was not granted event fds")
	}
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	if _, err := c.AddMark(ctx, scratch, engine.KindInode, engine.MarkSpec{Mask: engine.OpenPerm | engine.EventOnChild}); err != nil {
		t.Fatal(err)
	}
	done := accessor(t, file)
	ev := nextEvent(t, c)
	if !ev.FD.Valid() {
		t.Fatal("a permission event without its file")
	}
	buf := make([]byte, 16)
	n, err := syscall.Pread(ev.FD.Int(), buf, 0)
	if err != nil || string(buf[:n]) != "content" {
		t.Errorf("reading the event's file: %q, %v", buf[:n], err)
	}
	ev.FD.Close()
	if err := c.RespondWait(ctx, ev.ID, engine.Response{}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("the allowed open: %v", err)
	}
}

// TestNoDescriptorLeak: marks added and removed, and a client closed, leave no descriptor
// open (in the client, nor in the daemon, which runs in this process too).
func TestNoDescriptorLeak(t *testing.T) {
	sock, _ := serve(t, daemon.DefaultConfig())
	scratch := testenv.Tmpfs(t)
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	warm, err := client.Dial(ctx, client.Options{Socket: sock})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := warm.AddMark(ctx, scratch, engine.KindInode, engine.MarkSpec{Mask: engine.Open}); err != nil {
		t.Fatal(err)
	}
	warm.Close()
	before := testenv.OpenFDs(t)
	c, err := client.Dial(ctx, client.Options{Socket: sock})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		id, err := c.AddMark(ctx, scratch, engine.KindInode, engine.MarkSpec{Mask: engine.Open})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.RemoveMark(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	var after int
	eventually := time.Now().Add(hang)
	for after = testenv.OpenFDs(t); after > before && time.Now().Before(eventually); after = testenv.OpenFDs(t) {
		time.Sleep(10 * time.Millisecond)
	}
	if after > before {
		t.Errorf("%d descriptors open before, %d after 50 marks added and removed", before, after)
	}
}

// TestHandler: with Options.Handler, events reach the handler on the reading goroutine, in
// order, Respond works from it, Events stays empty, a reconnection's Resync goes to the
// handler too, and Close returns promptly though the reader is blocked in poll(2).
func TestHandler(t *testing.T) {
	sock, stop := serve(t, daemon.DefaultConfig())
	scratch := testenv.Tmpfs(t)
	allowed, denied := filepath.Join(scratch, "allowed"), filepath.Join(scratch, "denied")
	for _, f := range []string{allowed, denied} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan client.Event, 16)
	var c *client.Client
	var cmu sync.Mutex
	handler := func(ev client.Event) {
		ev.FD.Close()
		if ev.ID != 0 {
			cmu.Lock()
			cl := c
			cmu.Unlock()
			r := engine.Response{}
			if ev.Path == denied {
				r.Verdict = engine.Deny
			}
			if err := cl.Respond(ev.ID, r); err != nil {
				t.Errorf("Respond from the handler: %v", err)
			}
		}
		got <- ev
	}
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	cl, err := client.Dial(ctx, client.Options{Socket: sock, Class: engine.ClassContent, Deadline: time.Minute,
		Handler: handler, Reconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	cmu.Lock()
	c = cl
	cmu.Unlock()
	if _, err := c.AddMark(ctx, scratch, engine.KindInode, engine.MarkSpec{Mask: engine.OpenPerm | engine.EventOnChild}); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		path string
		ok   bool
	}{{allowed, true}, {denied, false}, {allowed, true}} {
		select {
		case err := <-accessor(t, x.path):
			if (err == nil) != x.ok {
				t.Errorf("open %s: %v, want success %v", x.path, err, x.ok)
			}
		case <-time.After(hang):
			t.Fatalf("open %s never answered", x.path)
		}
		select {
		case ev := <-got:
			if ev.Path != x.path || ev.ID == 0 {
				t.Errorf("handler got %+v, want a permission event for %s", ev, x.path)
			}
		case <-time.After(hang):
			t.Fatal("the handler did not get the event")
		}
	}
	select {
	case ev := <-c.Events():
		t.Errorf("Events delivered %+v with a Handler set", ev)
	default:
	}

	// A daemon restart: the Resync goes to the handler, then events again.
	stop()
	serveOn(t, daemon.DefaultConfig(), sock)
	select {
	case ev := <-got:
		if !ev.Resync {
			t.Errorf("after the restart the handler got %+v, want a Resync", ev)
		}
	case <-time.After(hang):
		t.Fatal("no Resync after the restart")
	}
	select {
	case err := <-accessor(t, denied):
		if err == nil {
			t.Error("open of the denied file succeeded after the reconnection")
		}
	case <-time.After(hang):
		t.Fatal("open after the reconnection never answered")
	}

	start := time.Now()
	c.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
	if _, ok := <-c.Events(); ok {
		t.Error("Events not closed by Close")
	}
}

// TestNoAnswerIsLost: whatever a permission client answers, through Respond or RespondWait,
// the access ends at once: a deny with an errno a content client cannot send is a plain deny
// (EPERM, no error); an answer that is no verdict goes as a deny and is reported invalid. The
// client's close verdict is allow and its deadline a minute, so only an answer denies in time.
func TestNoAnswerIsLost(t *testing.T) {
	sock, _ := serve(t, daemon.DefaultConfig())
	scratch, file := scratchFile(t, "x")
	c := dial(t, client.Options{Socket: sock, Class: engine.ClassContent, Deadline: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	if _, err := c.AddMark(ctx, scratch, engine.KindInode, engine.MarkSpec{Mask: engine.OpenPerm | engine.EventOnChild}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		r       engine.Response
		invalid bool
	}{
		{"deny with EIO", engine.Response{Verdict: engine.Deny, Errno: syscall.EIO}, false},
		{"unknown verdict", engine.Response{Verdict: 5}, true},
		{"allow with errno", engine.Response{Errno: syscall.EIO}, true},
	} {
		for _, wait := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/wait=%v", tc.name, wait), func(t *testing.T) {
				start := time.Now()
				done := accessor(t, file)
				var ev client.Event
				select {
				case ev = <-c.Events():
					ev.FD.Close()
				case <-time.After(hang):
					t.Fatal("no permission event")
				}
				var err error
				if wait {
					err = c.RespondWait(ctx, ev.ID, tc.r)
				} else {
					err = c.Respond(ev.ID, tc.r)
				}
				if tc.invalid != errors.Is(err, client.ErrInvalid) || (!tc.invalid && err != nil) {
					t.Errorf("answer %+v: %v, want invalid %v", tc.r, err, tc.invalid)
				}
				select {
				case err := <-done:
					if err == nil || time.Since(start) > 2*time.Second {
						t.Errorf("open after answer %+v: %v after %v, want a deny within 2s", tc.r, err, time.Since(start))
					}
				case <-time.After(hang):
					t.Fatalf("answer %+v left the open waiting", tc.r)
				}
			})
		}
	}
}
