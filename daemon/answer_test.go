//go:build linux

package daemon_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// answerBound is how soon an answered access must return: the answer is immediate, so this
// only absorbs a loaded machine (the helper process's start, the race detector).
const answerBound = time.Second

// TestErrnoDenyIsPlainDenyThroughDaemon: a deny with an errno (EIO) from a permission client
// through the daemon fails the open at once, in both read modes, with and without a deadline:
// EIO for a pre-content client (FAN_DENY_ERRNO), EPERM — a plain deny — for a content client,
// which cannot send an errno. It used to wait out the deadline and then be allowed, or hang
// forever with none (issue 9, item 2).
func TestErrnoDenyIsPlainDenyThroughDaemon(t *testing.T) {
	testenv.RequireRoot(t)
	for _, mode := range readModes {
		for _, class := range []struct {
			name string
			want syscall.Errno
		}{{"content", syscall.EPERM}, {"pre-content", syscall.EIO}} {
			for _, deadline := range []time.Duration{30 * time.Second, 0} {
				name := fmt.Sprintf("%s/%s/deadline=%v", mode.name, class.name, deadline)
				t.Run(name, func(t *testing.T) {
					testErrnoDeny(t, mode.threadPerClient, class.name, deadline, class.want)
				})
			}
		}
	}
}

func testErrnoDeny(t *testing.T, threadPerClient bool, class string, deadline time.Duration, want syscall.Errno) {
	scratch := testenv.Tmpfs(t)
	file := filepath.Join(scratch, "f.bad")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.MaxDeadline = 0 // no cap: deadline 0 means none
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	startDaemonMode(t, cfg, sock, threadPerClient)
	c := dialClient(t, sock, fmt.Sprintf("class=%s,deadline=%v,auto=deny,errno=%d", class, deadline, int(syscall.EIO)), spawnOpts{})
	if w := c.allLines("welcome")[0]; !strings.Contains(w, fmt.Sprintf(" deadline=%d ", int64(deadline))) {
		t.Fatalf("welcome %q: want deadline %v", w, deadline)
	}
	mustAdd(t, c, kindInode, maskOpenPerm, scratch)
	for i, acc := range startAccessors(t, file, 3) {
		errno, end := acc.result(t, 5*time.Second)
		took := time.Duration(end - acc.start)
		if syscall.Errno(errno) != want || took > answerBound {
			t.Errorf("open %d: errno %d (%v) after %v, want %d (%v) within %v", i, errno, syscall.Errno(errno), took, int(want), want, answerBound)
		}
	}
	if l, ok := c.waitLine("respond-err", 0); ok {
		t.Errorf("the client's answer was refused: %s", l)
	}
}

// rawPermClient is a content-class client speaking the protocol itself, so that it can send
// what the client package never would.
type rawPermClient struct {
	t    *testing.T
	conn *proto.Conn
	req  uint64
}

func dialRaw(t *testing.T, sock string, h proto.Hello) *rawPermClient {
	t.Helper()
	conn, err := proto.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(hang))
	h.Req, h.MinVersion, h.MaxVersion = 1, proto.MinVersion, proto.MaxVersion
	if err := conn.WriteMsg(&h); err != nil {
		t.Fatal(err)
	}
	m, err := conn.ReadMsg()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.(*proto.Welcome); !ok {
		t.Fatalf("got %#v, want a Welcome", m)
	}
	return &rawPermClient{t: t, conn: conn, req: 1}
}

// next reads the next message (and closes the descriptor it may carry).
func (c *rawPermClient) next() proto.Msg {
	c.t.Helper()
	m, err := c.conn.ReadMsg()
	if err != nil {
		c.t.Fatalf("reading from the daemon: %v", err)
	}
	proto.CloseFDs(m)
	return m
}

// result writes m and returns its Result, skipping what comes before it.
func (c *rawPermClient) result(m proto.Msg) *proto.Result {
	c.t.Helper()
	if err := c.conn.WriteMsg(m); err != nil {
		c.t.Fatal(err)
	}
	for {
		if r, ok := c.next().(*proto.Result); ok && r.Req == m.RequestID() {
			return r
		}
	}
}

func (c *rawPermClient) mark(dir string) {
	c.t.Helper()
	fd, err := sys.Open(dir, sys.O_PATH, 0)
	if err != nil {
		c.t.Fatal(err)
	}
	c.req++
	r := c.result(&proto.AddMark{Req: c.req, Kind: engine.KindInode, Mask: engine.OpenPerm | engine.EventOnChild, Target: proto.NewFD(fd)})
	syscall.Close(fd)
	if r.Err() != nil {
		c.t.Fatal(r.Err())
	}
}

func (c *rawPermClient) event() *proto.Event {
	c.t.Helper()
	for {
		if ev, ok := c.next().(*proto.Event); ok && ev.ID != 0 {
			return ev
		}
	}
}

// respondFrame is the frame of a Respond for id with the verdict byte and errno given as they
// go on the wire, whether or not they are valid.
func respondFrame(id uint64, verdict byte, errno uint16) []byte {
	frame, _, err := proto.Encode(&proto.Respond{EventID: id})
	if err != nil {
		panic(err)
	}
	frame[proto.HeaderSize+8] = verdict
	frame[proto.HeaderSize+10], frame[proto.HeaderSize+11] = byte(errno), byte(errno>>8)
	return frame
}

// TestEveryRejectedAnswerEndsInAVerdict: each way the daemon can reject a permission client's
// answer ends the access in a defined verdict, promptly, in both read modes:
//   - an unknown id, or another client's pending event's, is not-found and touches nothing:
//     the pending event waits for its answer; a second answer is not-found (the first holds);
//   - an answer after the deadline is not-found: the deadline verdict applied;
//   - a Respond the daemon cannot decode (a verdict other than 0 or 1, an errno with allow) is
//     a protocol error: Fatal bad-field, the connection ends, and the pending event gets the
//     client's close verdict at once (deny and allow both tried).
func TestEveryRejectedAnswerEndsInAVerdict(t *testing.T) {
	testenv.RequireRoot(t)
	for _, mode := range readModes {
		t.Run(mode.name, func(t *testing.T) { testRejectedAnswers(t, mode.threadPerClient) })
	}
}

func testRejectedAnswers(t *testing.T, threadPerClient bool) {
	scratch := testenv.Tmpfs(t)
	file := filepath.Join(scratch, "f")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	startDaemonMode(t, testConfig(), sock, threadPerClient)
	opened := func(acc *accessor, want syscall.Errno, what string) {
		t.Helper()
		errno, end := acc.result(t, 5*time.Second)
		if took := time.Duration(end - acc.start); syscall.Errno(errno) != want || took > answerBound+500*time.Millisecond {
			t.Errorf("%s: open got errno %d after %v, want %d (%v)", what, errno, took, int(want), want)
		}
	}
	// pendingTillDenied: acc's open still waits 100 ms after an answer that must not count
	// (what), then c's deny of ev (request req) answers it: EPERM.
	pendingTillDenied := func(t *testing.T, acc *accessor, c *rawPermClient, ev *proto.Event, req uint64, what string) {
		t.Helper()
		time.Sleep(100 * time.Millisecond)
		if acc.returned() {
			t.Fatal(what + " answered the pending event")
		}
		if r := c.result(&proto.Respond{Req: req, EventID: ev.ID, Verdict: engine.Deny}); r.Err() != nil {
			t.Fatalf("the real answer: %v", r.Err())
		}
		opened(acc, syscall.EPERM, "after the real answer")
	}

	t.Run("unknown id", func(t *testing.T) {
		c := dialRaw(t, sock, proto.Hello{Class: engine.ClassContent, Deadline: time.Minute})
		c.mark(scratch)
		acc := startAccessors(t, file, 1)[0]
		ev := c.event()
		for _, req := range []uint64{0, 10} {
			m := &proto.Respond{Req: req, EventID: ev.ID + 1000}
			r := c.result(m)
			if r.Code != proto.CodeNotFound || r.ID != ev.ID+1000 {
				t.Errorf("Respond (req %d) to an unknown id: %+v, want not-found naming the id", req, r)
			}
		}
		pendingTillDenied(t, acc, c, ev, 11, "an answer to another id")
	})

	t.Run("another client's id", func(t *testing.T) {
		// Two permission clients on the file; the first asked holds the event, the other
		// (asked only after it) answers the first one's id: not-found, nothing answered.
		a := dialRaw(t, sock, proto.Hello{Class: engine.ClassContent, Deadline: time.Minute})
		a.mark(scratch)
		b := dialRaw(t, sock, proto.Hello{Class: engine.ClassContent, Deadline: time.Minute})
		b.mark(scratch)
		acc := startAccessors(t, file, 1)[0]
		ev := a.event()
		if r := b.result(&proto.Respond{Req: 20, EventID: ev.ID}); r.Code != proto.CodeNotFound {
			t.Errorf("an allow for another client's pending event: %+v, want not-found", r)
		}
		pendingTillDenied(t, acc, a, ev, 21, "another client's answer")
	})

	t.Run("answered already", func(t *testing.T) {
		c := dialRaw(t, sock, proto.Hello{Class: engine.ClassContent, Deadline: time.Minute})
		c.mark(scratch)
		acc := startAccessors(t, file, 1)[0]
		ev := c.event()
		if r := c.result(&proto.Respond{Req: 30, EventID: ev.ID, Verdict: engine.Deny}); r.Err() != nil {
			t.Fatalf("the answer: %v", r.Err())
		}
		if r := c.result(&proto.Respond{Req: 31, EventID: ev.ID}); r.Code != proto.CodeNotFound {
			t.Errorf("a second answer (allow) to an answered event: %+v, want not-found", r)
		}
		opened(acc, syscall.EPERM, "the first answer")
	})

	t.Run("after the deadline", func(t *testing.T) {
		c := dialRaw(t, sock, proto.Hello{Class: engine.ClassContent, Deadline: 300 * time.Millisecond, DeadlineVerdict: engine.Deny})
		c.mark(scratch)
		acc := startAccessors(t, file, 1)[0]
		ev := c.event()
		opened(acc, syscall.EPERM, "at the deadline")
		if r := c.result(&proto.Respond{Req: 2, EventID: ev.ID}); r.Code != proto.CodeNotFound {
			t.Errorf("an allow after the deadline: %+v, want not-found (the deadline verdict applied)", r)
		}
	})

	for _, tc := range []struct {
		name    string
		verdict byte
		errno   uint16
	}{
		{"unknown verdict", 7, 0},
		{"errno with allow", 0, uint16(syscall.EIO)},
	} {
		for _, cv := range []engine.Verdict{engine.Deny, engine.Allow} {
			t.Run(tc.name+"/close verdict "+cv.String(), func(t *testing.T) {
				c := dialRaw(t, sock, proto.Hello{Class: engine.ClassContent, Deadline: time.Minute, CloseVerdict: cv})
				c.mark(scratch)
				acc := startAccessors(t, file, 1)[0]
				ev := c.event()
				if _, err := c.conn.UnixConn().Write(respondFrame(ev.ID, tc.verdict, tc.errno)); err != nil {
					t.Fatal(err)
				}
				for {
					m, err := c.conn.ReadMsg()
					if err != nil {
						t.Fatalf("no Fatal before the connection ended: %v", err)
					}
					proto.CloseFDs(m)
					if f, ok := m.(*proto.Fatal); ok {
						if f.Code != proto.CodeBadField {
							t.Errorf("Fatal %v, want bad-field", f.Err())
						}
						break
					}
				}
				want := syscall.Errno(0)
				if cv == engine.Deny {
					want = syscall.EPERM
				}
				opened(acc, want, "the close verdict")
			})
		}
	}
}

// TestNoPathsPermissionEvents: a permission client that asks for no paths (Hello.NoPaths,
// protocol version 4) gets its permission events without one once the daemon need not read
// it to place the event (the second access to a file under a directory mark: its parent is
// cached) — empty, not marked unknown, with the object's device and inode — and answers them
// as usual; a client that does not ask gets the file's path every time, in both read modes.
func TestNoPathsPermissionEvents(t *testing.T) {
	testenv.RequireRoot(t)
	for _, mode := range readModes {
		for _, noPaths := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/nopaths=%v", mode.name, noPaths), func(t *testing.T) {
				scratch := testenv.Tmpfs(t)
				file := filepath.Join(scratch, "f")
				if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
				var st syscall.Stat_t
				if err := syscall.Stat(file, &st); err != nil {
					t.Fatal(err)
				}
				sock := filepath.Join(testenv.PublicDir(t), "d.sock")
				startDaemonMode(t, testConfig(), sock, mode.threadPerClient)
				c := dialRaw(t, sock, proto.Hello{Class: engine.ClassContent, Deadline: time.Minute, NoPaths: noPaths})
				c.mark(scratch)
				for i := range 2 {
					acc := startAccessors(t, file, 1)[0]
					ev := c.event()
					want := file
					if noPaths && i > 0 {
						want = ""
					}
					if (ev.Path != want && (i == 1 || !noPaths)) || ev.PathUnknown || !ev.HasObject || ev.Ino != st.Ino {
						t.Errorf("access %d: event path %q (unknown %v), object %v ino %d; want path %q, not unknown, ino %d",
							i, ev.Path, ev.PathUnknown, ev.HasObject, ev.Ino, want, st.Ino)
					}
					if err := c.conn.WriteMsg(&proto.Respond{EventID: ev.ID, Verdict: engine.Allow}); err != nil {
						t.Fatal(err)
					}
					if errno, _ := acc.result(t, 5*time.Second); errno != 0 {
						t.Errorf("access %d: errno %d after an allow", i, errno)
					}
				}
			})
		}
	}
}

// TestPermissionClientsAskedInTurn: an access that two permission clients of one class mark
// is asked of them in turn, as the kernel asks its groups: the first deny ends it (the client
// after it never sees the event), an allow passes it on, and each client's deadline runs from
// when it got the event, so an access that two silent clients hold waits for both deadlines
// (docs/daemon.md, "Several permission clients"). Whichever client the daemon asks first, a
// deny by either one is the verdict.
func TestPermissionClientsAskedInTurn(t *testing.T) {
	testenv.RequireRoot(t)
	scratch := testenv.Tmpfs(t)
	file := filepath.Join(scratch, "f")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(testenv.PublicDir(t), "d.sock")
	startDaemon(t, testConfig(), sock)
	const deadline = 500 * time.Millisecond
	open := func() (syscall.Errno, time.Duration) {
		acc := startAccessors(t, file, 1)[0]
		errno, end := acc.result(t, 10*time.Second)
		return syscall.Errno(errno), time.Duration(end - acc.start)
	}

	t.Run("two silent clients", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			dialRaw(t, sock, proto.Hello{Class: engine.ClassContent, Deadline: deadline}).mark(scratch)
		}
		errno, took := open()
		if errno != 0 || took < 2*deadline-50*time.Millisecond || took > 2*deadline+answerBound {
			t.Errorf("open held by two silent clients: errno %v after %v, want allowed after both deadlines (%v)", errno, took, 2*deadline)
		}
	})

	for _, denierFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("denier connected first %v", denierFirst), func(t *testing.T) {
			var silent, denier *rawPermClient
			dial := func() *rawPermClient {
				c := dialRaw(t, sock, proto.Hello{Class: engine.ClassContent, Deadline: deadline})
				c.mark(scratch)
				return c
			}
			if denierFirst {
				denier, silent = dial(), dial()
			} else {
				silent, denier = dial(), dial()
			}
			got := make(chan uint64, 1)
			go func() {
				ev := denier.event()
				denier.conn.WriteMsg(&proto.Respond{EventID: ev.ID, Verdict: engine.Deny})
				got <- ev.ID
			}()
			errno, took := open()
			// In the order they connected: a silent client asked first holds the deny back
			// until its deadline (its deadline verdict, allow, passes the event on).
			least := time.Duration(0)
			if !denierFirst {
				least = deadline - 50*time.Millisecond
			}
			if errno != syscall.EPERM || took < least || took > deadline+answerBound {
				t.Errorf("open: errno %v after %v, want EPERM after %v to %v", errno, took, least, deadline+answerBound)
			}
			select {
			case <-got:
			case <-time.After(hang):
				t.Fatal("the denying client never got the event")
			}
			// The silent client got the event only if it was asked first.
			silent.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			var sawEvent bool
			for {
				m, err := silent.conn.ReadMsg()
				if err != nil {
					break
				}
				proto.CloseFDs(m)
				if ev, ok := m.(*proto.Event); ok && ev.ID != 0 {
					sawEvent = true
				}
			}
			if sawEvent == denierFirst {
				t.Errorf("the silent client got the event: %v; want %v (asked only before the denier)", sawEvent, !denierFirst)
			}
		})
	}
}
