//go:build linux

package daemon_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/client"
	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

func header(length uint32, typ proto.Type, nfds uint8, req uint64) []byte {
	b := make([]byte, proto.HeaderSize)
	binary.LittleEndian.PutUint32(b[0:], length)
	binary.LittleEndian.PutUint16(b[4:], uint16(typ))
	b[6] = nfds
	binary.LittleEndian.PutUint64(b[8:], req)
	return b
}

// TestBadFrames: a malformed or oversized frame gets a Fatal with the matching code and the
// daemon closes that connection only; a client connected meanwhile keeps working.
func TestBadFrames(t *testing.T) {
	testenv.RequireRoot(t)
	scratch := testenv.Tmpfs(t)
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	d := startDaemon(t, testConfig(), sock)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	good, err := client.Dial(ctx, client.Options{Socket: sock, Name: "good"})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if _, err := good.AddMark(ctx, scratch, engine.KindInode, engine.MarkSpec{Mask: engine.Create | engine.EventOnChild}); err != nil {
		t.Fatal(err)
	}

	// Permission clients' sockets are read on the backend's event loop (inline.go), others' by a
	// goroutine each: both reject bad frames alike.
	for _, class := range []engine.Class{engine.ClassNotification, engine.ClassContent} {
		t.Run(class.String(), func(t *testing.T) { testBadFrames(t, sock, class) })
	}

	// The good client did not notice.
	if err := good.Ping(ctx); err != nil {
		t.Fatalf("the other client: %v", err)
	}
	if err := os.WriteFile(filepath.Join(scratch, "after"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-good.Events():
		if ev.Path != filepath.Join(scratch, "after") {
			t.Errorf("the other client: event %+v, want the creation of %s", ev, filepath.Join(scratch, "after"))
		}
	case <-time.After(hang):
		t.Fatal("the other client gets no events any more")
	}
	if !eventually(hang, func() bool { return d.srv.Stats(false, 0).Daemon.Clients == 1 }) {
		t.Errorf("the daemon counts %d clients, want 1 (the good one)", d.srv.Stats(false, 0).Daemon.Clients)
	}
}

func testBadFrames(t *testing.T, sock string, class engine.Class) {
	for _, tc := range []struct {
		name  string
		hello bool // send a valid Hello first
		raw   []byte
		code  proto.Code
	}{
		{"oversized frame", true, header(proto.MaxPayload+1, proto.TypeAddMark, 0, 2), proto.CodeTooLarge},
		{"over its type's maximum", true, append(header(8, proto.TypePing, 0, 2), make([]byte, 8)...), proto.CodeTooLarge},
		{"unknown type", true, header(0, 0x0042, 0, 2), proto.CodeUnknownType},
		{"daemon message from a client", true, header(0, proto.TypePong, 0, 2), proto.CodeUnexpected},
		{"reserved flags", true, append(header(4, proto.TypeStatsRequest, 0, 2), 0x80, 0, 0, 0), proto.CodeBadField},
		{"fd declared, none sent", true, append(header(24, proto.TypeAddMark, 1, 2), make([]byte, 24)...), proto.CodeFDCount},
		{"a second Hello", true, nil, proto.CodeUnexpected},
		{"no Hello first", false, header(0, proto.TypePing, 0, 1), proto.CodeUnexpected},
		{"not the protocol at all", false, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), proto.CodeTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := proto.Dial(sock)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(hang))
			hello := &proto.Hello{Req: 1, MinVersion: proto.MinVersion, MaxVersion: proto.MaxVersion, Name: "bad", Class: class}
			raw := tc.raw
			if tc.hello {
				if err := conn.WriteMsg(hello); err != nil {
					t.Fatal(err)
				}
				m, err := conn.ReadMsg()
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := m.(*proto.Welcome); !ok {
					t.Fatalf("got %T, want Welcome", m)
				}
				if raw == nil { // a second Hello
					frame, _, err := proto.Encode(hello)
					if err != nil {
						t.Fatal(err)
					}
					raw = frame
				}
			}
			if _, err := conn.UnixConn().Write(raw); err != nil {
				t.Fatal(err)
			}
			m, err := conn.ReadMsg()
			if err != nil {
				t.Fatalf("reading the daemon's answer: %v", err)
			}
			f, ok := m.(*proto.Fatal)
			if !ok {
				t.Fatalf("got %T, want Fatal", m)
			}
			if f.Code != tc.code {
				t.Errorf("Fatal %v %q, want code %v", f.Code, f.Message, tc.code)
			} else {
				t.Logf("Fatal %v: %s", f.Code, f.Message)
			}
			if m, err := conn.ReadMsg(); !errors.Is(err, io.EOF) {
				t.Errorf("after the Fatal: %T, %v; want the daemon to close the connection (EOF)", m, err)
			}
		})
	}

}

// TestStopDuringHandshake: a connection that has not said Hello yet when the daemon stops
// neither holds Run up (a silent peer has handshake_timeout to say Hello) nor, saying Hello afterwards,
// becomes a client of a daemon that has stopped.
func TestStopDuringHandshake(t *testing.T) {
	testenv.RequireRoot(t)
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	d := startDaemon(t, testConfig(), sock)
	silent, err := proto.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	late, err := proto.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	// Both are accepted (a Ping round trip of a third client orders us after the accepts).
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{Socket: sock})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	start := time.Now()
	d.Cancel()
	time.Sleep(50 * time.Millisecond) // Run is closing its clients by now
	late.SetDeadline(time.Now().Add(hang))
	late.WriteMsg(&proto.Hello{Req: 1, MinVersion: proto.MinVersion, MaxVersion: proto.MaxVersion, Name: "late"})
	returned, err := d.WaitRun(3 * time.Second)
	if !returned {
		t.Fatalf("Run has not returned 3 s after its context ended: a connection without Hello, or one admitted after the stop, holds it")
	}
	if err != nil {
		t.Errorf("Run: %v", err)
	}
	t.Logf("Run returned %v after its context ended", time.Since(start).Round(time.Millisecond))
	if m, err := late.ReadMsg(); err == nil {
		if w, ok := m.(*proto.Welcome); ok {
			t.Errorf("a client was welcomed (id %d) by a daemon that had stopped", w.ClientID)
		}
	}
}

// TestBye: Bye is answered with a Result (once the client's pending permission events have
// their close verdict), then the daemon closes the connection.
func TestBye(t *testing.T) {
	testenv.RequireRoot(t)
	scratch := testenv.Tmpfs(t)
	file := filepath.Join(scratch, "f")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	d := startDaemon(t, testConfig(), sock)
	conn, err := proto.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(hang))
	if err := conn.WriteMsg(&proto.Hello{Req: 1, MinVersion: proto.MinVersion, MaxVersion: proto.MaxVersion,
		Class: engine.ClassContent, Deadline: time.Minute, CloseVerdict: engine.Deny}); err != nil {
		t.Fatal(err)
	}
	if m, err := conn.ReadMsg(); err != nil {
		t.Fatal(err)
	} else if _, ok := m.(*proto.Welcome); !ok {
		t.Fatalf("got %T, want Welcome", m)
	}
	fd, err := sys.Open(scratch, sys.O_PATH, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = conn.WriteMsg(&proto.AddMark{Req: 2, Kind: engine.KindInode, Mask: engine.OpenPerm | engine.EventOnChild, Target: proto.NewFD(fd)})
	sys.Close(fd)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := conn.ReadMsg(); err != nil || m.(*proto.Result).Err() != nil {
		t.Fatalf("AddMark: %v %v", m, err)
	}
	acc := startAccessors(t, file, 1)[0]
	m, err := conn.ReadMsg()
	if err != nil {
		t.Fatal(err)
	}
	if ev, ok := m.(*proto.Event); !ok || ev.ID == 0 {
		t.Fatalf("got %+v, want a permission event", m)
	}
	if err := conn.WriteMsg(&proto.Bye{Req: 3}); err != nil {
		t.Fatal(err)
	}
	m, err = conn.ReadMsg()
	if err != nil {
		t.Fatalf("Bye: no Result: %v", err)
	}
	if r, ok := m.(*proto.Result); !ok || r.Req != 3 || r.Err() != nil {
		t.Fatalf("Bye: got %+v, want a successful Result for request 3", m)
	}
	if st := d.srv.Stats(false, 0).Daemon; st.CloseAnswered != 1 {
		t.Errorf("when Bye's Result came, %d events had their close verdict, want 1", st.CloseAnswered)
	}
	if m, err := conn.ReadMsg(); !errors.Is(err, io.EOF) {
		t.Errorf("after Bye's Result: %T, %v; want EOF", m, err)
	}
	if errno, _ := acc.result(t, hang); errno != int(syscall.EPERM) {
		t.Errorf("the open pending at Bye: errno %d, want EPERM (the close verdict deny)", errno)
	}
}

// TestSlowReaderOverflowsAlone: a client that does not read, with a queue of 16 in the
// daemon, loses events in a burst and learns it from Overflows of its queue (not the
// kernel's); a client on the same directory receives every event.
// A client that does not read gets an overflow of its own queue, and no other client loses
// anything; the events it does get are in order. For a permission-class client, whose events
// the backend's event loop forwards itself (session.forward) until its socket is full, too.
func TestSlowReaderOverflowsAlone(t *testing.T) {
	for _, class := range []engine.Class{engine.ClassNotification, engine.ClassContent} {
		t.Run(class.String(), func(t *testing.T) { testSlowReaderOverflowsAlone(t, class) })
	}
}

func testSlowReaderOverflowsAlone(t *testing.T, class engine.Class) {
	testenv.RequireRoot(t)
	const n = 5000
	scratch := testenv.Tmpfs(t)
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	d := startDaemon(t, testConfig(), sock)

	slow, err := proto.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.SetDeadline(time.Now().Add(time.Minute))
	slow.WriteMsg(&proto.Hello{Req: 1, MinVersion: proto.MinVersion, MaxVersion: proto.MaxVersion, Name: "slow", QueueLimit: 16,
		Class: class, Deadline: time.Minute})
	if _, err := slow.ReadMsg(); err != nil {
		t.Fatal(err)
	}
	fd, err := sys.Open(scratch, sys.O_PATH, 0)
	if err != nil {
		t.Fatal(err)
	}
	slow.WriteMsg(&proto.AddMark{Req: 2, Kind: engine.KindInode, Mask: engine.Create | engine.EventOnChild, Target: proto.NewFD(fd)})
	sys.Close(fd)
	if m, err := slow.ReadMsg(); err != nil || m.(*proto.Result).Err() != nil {
		t.Fatalf("AddMark: %v %v", m, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fast, err := client.Dial(ctx, client.Options{Socket: sock, Name: "fast"})
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	if _, err := fast.AddMark(ctx, scratch, engine.KindInode, engine.MarkSpec{Mask: engine.Create | engine.EventOnChild}); err != nil {
		t.Fatal(err)
	}
	got := make(chan int, 1)
	go func() {
		count, overflows := 0, 0
		for ev := range fast.Events() {
			if ev.Overflow {
				overflows++
			} else {
				count++
			}
			if count == n {
				break
			}
		}
		if overflows > 0 {
			t.Errorf("the fast client got %d overflows", overflows)
		}
		got <- count
	}()
	for i := 0; i < n; i++ {
		f, err := os.Create(filepath.Join(scratch, fmt.Sprintf("f%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	select {
	case c := <-got:
		if c != n {
			t.Errorf("the fast client got %d events, want %d", c, n)
		}
	case <-time.After(hang):
		t.Fatalf("the fast client did not get its %d events (a client that does not read held it up?)", n)
	}
	// Now the slow one reads: what fitted in its socket, then an Overflow of its queue.
	var events, overflows, notQueue int
	last := -1
	slow.SetReadDeadline(time.Now().Add(time.Second))
	for {
		m, err := slow.ReadMsg()
		if err != nil {
			break
		}
		switch m := m.(type) {
		case *proto.Event:
			events++
			var i int
			if _, err := fmt.Sscanf(m.Name, "f%d", &i); err != nil || i <= last {
				t.Errorf("event %d: %q after f%d", events, m.Name, last)
			}
			last = i
		case *proto.Overflow:
			overflows++
			if m.Reason != proto.OverflowQueue {
				notQueue++ // the kernel's queue never overflowed here
			}
		}
	}
	var slowStats, fastStats proto.ClientStats
	for _, cs := range d.srv.Stats(true, 0).Clients {
		switch cs.Name {
		case "slow":
			slowStats = cs
		case "fast":
			fastStats = cs
		}
	}
	t.Logf("slow client: %d events and %d overflows read, %d dropped in the daemon; fast client: %d delivered, %d dropped",
		events, overflows, slowStats.Dropped, fastStats.Delivered, fastStats.Dropped)
	if overflows == 0 || notQueue > 0 || slowStats.Dropped == 0 {
		t.Errorf("the slow client: %d overflows (%d not of its queue), %d dropped; want Overflows of its queue", overflows, notQueue, slowStats.Dropped)
	}
	if fastStats.Dropped != 0 || fastStats.Overflows != 0 {
		t.Errorf("the fast client lost events: %+v", fastStats)
	}
}

// TestInlineFloodSlowsOnlyItself: a permission client (read on the backend's event loop) that
// sends requests faster than it reads the replies is paused, not served at others' expense:
// another client keeps working meanwhile, and once it reads, every reply comes, in order.
func TestInlineFloodSlowsOnlyItself(t *testing.T) {
	testenv.RequireRoot(t)
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	d := startDaemon(t, testConfig(), sock)
	const n = 50000 // far more Pongs than the socket buffers hold
	var frames []byte
	for i := range n {
		f, _, err := proto.Encode(&proto.Ping{Req: uint64(i + 2)})
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, f...)
	}
	flood := func(name string) (*proto.Conn, chan error) {
		conn, err := proto.Dial(sock)
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.WriteMsg(&proto.Hello{Req: 1, MinVersion: proto.MinVersion, MaxVersion: proto.MaxVersion,
			Name: name, Class: engine.ClassContent}); err != nil {
			t.Fatal(err)
		}
		if m, err := conn.ReadMsg(); err != nil {
			t.Fatal(err)
		} else if _, ok := m.(*proto.Welcome); !ok {
			t.Fatalf("got %T, want Welcome", m)
		}
		wrote := make(chan error, 1)
		go func() {
			_, err := conn.UnixConn().Write(frames)
			wrote <- err
		}()
		return conn, wrote
	}
	// A flooder that leaves while paused is cleaned up like any other client.
	quitter, _ := flood("quitter")
	time.Sleep(100 * time.Millisecond)
	quitter.Close()
	if !eventually(hang, func() bool { return d.srv.Stats(false, 0).Daemon.Clients == 0 }) {
		t.Fatalf("a flooder that left is still counted: %d clients", d.srv.Stats(false, 0).Daemon.Clients)
	}
	conn, wrote := flood("flood")
	defer conn.Close()
	// While the flooder's replies pile up unread, another client is served at once.
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	time.Sleep(100 * time.Millisecond)
	other, err := client.Dial(ctx, client.Options{Socket: sock, Name: "other", Class: engine.ClassContent})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for range 10 {
		if err := other.Ping(ctx); err != nil {
			t.Fatalf("another client while one floods: %v", err)
		}
	}
	// Now read: every Pong, in order.
	conn.SetReadDeadline(time.Now().Add(hang))
	for i := range n {
		m, err := conn.ReadMsg()
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if p, ok := m.(*proto.Pong); !ok || p.Req != uint64(i+2) {
			t.Fatalf("reply %d: %+v, want Pong %d", i, m, i+2)
		}
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}
